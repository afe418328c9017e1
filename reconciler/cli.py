"""The command line. The only module that prints: it renders results and maps errors to exit
codes (0 ok, 1 error, 2 changes/drift where asked)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from reconciler import __version__
from reconciler.diagnostics import Diagnostic, ManifestError, ReconcilerError

app = typer.Typer(
    name="reconciler",
    help="Infrastructure-as-code for LoRaWAN fleets on The Things Stack: "
    "validate manifests, plan and apply changes, detect drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
emulator_app = typer.Typer(
    help="A local emulator of The Things Stack HTTP API v3 (for tests, CI and demos).",
    no_args_is_help=True,
)
app.add_typer(emulator_app, name="emulator")

# rich decides colour from the stream: styled on a TTY, plain text when piped (CI logs).
stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Manifest files or directories (default: ./manifests).", show_default=False),
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="RECONCILER_TTS_URL",
        help="Server root URL for all four TTS servers (e.g. https://eu1.cloud.thethings.network); "
        "overrides the target's URLs. The tool adds /api/v3.",
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        stdout.print(f"reconciler {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Infrastructure-as-code for LoRaWAN fleets on The Things Stack."""


def _paths(paths: list[Path] | None) -> list[Path]:
    return paths or [Path("manifests")]


def print_diagnostics(diagnostics: list[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        style = "red" if diagnostic.severity == "error" else "yellow"
        stderr.print(f"[{style}]{diagnostic}[/{style}]", markup=True, highlight=False)


def fail(message: str) -> NoReturn:
    stderr.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(1)


@app.command()
def validate(paths: PathsArg = None) -> None:
    """Validate manifests offline: every problem, located, in one run (exit 1 if any)."""
    from reconciler.manifest.load import load_manifests

    result = load_manifests(_paths(paths))
    print_diagnostics(result.diagnostics)
    if result.has_errors:
        raise typer.Exit(1)
    stdout.print(result.summary())


@app.command()
def schema(
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write the JSON Schemas to.")
    ] = Path("schemas"),
) -> None:
    """Write a JSON Schema per manifest kind (for editors: yaml-language-server)."""
    from reconciler.manifest.schema import write_schemas

    for path in write_schemas(out):
        stdout.print(f"wrote {path}")


@app.command()
def plan(
    paths: PathsArg = None,
    url: UrlOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the plan (JSON, no secrets) to this file.")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="Output format: text or json.")
    ] = "text",
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode", help="Exit 0 when there are no changes, 2 when there are."
        ),
    ] = False,
) -> None:
    """Show what apply would change, per resource and server (read-only)."""
    fail("plan is not implemented yet (issue #4)")


@app.command()
def apply(
    paths: PathsArg = None,
    url: UrlOpt = None,
    plan_file: Annotated[
        Path | None, typer.Option("--plan", help="Apply a plan saved by `plan --out`.")
    ] = None,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Do not ask for confirmation.")
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete owned resources that left the manifests.")
    ] = False,
    allow_replace: Annotated[
        bool,
        typer.Option("--allow-replace", help="Allow replacing devices (immutable field changes)."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Apply even when a safety threshold is exceeded.")
    ] = False,
) -> None:
    """Apply the manifests to The Things Stack."""
    fail("apply is not implemented yet (issue #4)")


@app.command()
def drift(
    paths: PathsArg = None,
    url: UrlOpt = None,
    output_format: Annotated[
        str, typer.Option("--format", help="Output format: text or json.")
    ] = "text",
) -> None:
    """Report live changes made outside the manifests (exit 0 in sync, 2 drift, 1 error)."""
    fail("drift is not implemented yet (issue #4)")


@emulator_app.command("serve")
def emulator_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 1885,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="TTS_EMULATOR_API_KEY",
            help="Admin API key (NNSXS.<id>.<secret>); generated and printed when omitted.",
            show_default=False,
        ),
    ] = None,
    user_id: Annotated[str, typer.Option("--user-id", help="The admin user.")] = "admin-user",
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Keep state in this SQLite file (survives restarts)."),
    ] = None,
    latency_ms: Annotated[float, typer.Option("--latency-ms", help="Added latency.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option("--jitter-ms", help="Random extra latency.")] = 0.0,
    rate_limit: Annotated[
        str | None,
        typer.Option(
            "--rate-limit",
            help="PER_MINUTE[:BURST] per token and RPC (GCRA), as TTS Cloud does.",
            show_default=False,
        ),
    ] = None,
    fail_rate: Annotated[
        float, typer.Option("--fail-rate", help="Probability of 503 before applying a write.")
    ] = 0.0,
    drop_rate: Annotated[
        float,
        typer.Option(
            "--drop-rate", help="Probability of applying a write, then losing the response."
        ),
    ] = 0.0,
) -> None:
    """Serve the emulator at http://HOST:PORT/api/v3 until SIGINT/SIGTERM."""
    from reconciler.emulator.server import ServeOptions, serve

    serve(
        ServeOptions(
            host=host,
            port=port,
            api_key=api_key,
            user_id=user_id,
            state=state,
            latency_ms=latency_ms,
            jitter_ms=jitter_ms,
            rate_limit=rate_limit,
            fail_rate=fail_rate,
            drop_rate=drop_rate,
        ),
        announce=lambda line: stdout.print(line, markup=False, highlight=False),
    )


def main() -> None:
    """Console-script entry point: user errors become one clean message and exit code 1."""
    try:
        app(standalone_mode=False)
    except ManifestError as error:
        print_diagnostics(error.diagnostics)
        stderr.print(str(error), markup=False, highlight=False)
        sys.exit(1)
    except ReconcilerError as error:
        stderr.print(f"error: {error}", markup=False, highlight=False)
        sys.exit(1)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        stderr.print("aborted", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        stderr.print("interrupted", markup=False)
        sys.exit(130)
    except typer.TyperException as error:  # usage errors: bad option, unknown command
        show = getattr(error, "show", None)
        if callable(show):
            show()
        else:
            stderr.print(f"error: {error}", markup=False, highlight=False)
        # Exit code 2 means "changes" for plan/drift, so usage errors exit 1.
        sys.exit(1)
