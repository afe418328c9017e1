"""The command line. The only module that prints: it renders results and maps errors to exit
codes (0 ok, 1 error, 2 changes/drift where asked)."""

from __future__ import annotations

import functools
import gc
import inspect
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from reconciler import __version__
from reconciler.diagnostics import Diagnostic, ManifestError, ReconcilerError, UsageError
from reconciler.plan.markdown import COMMENT_LIMIT
from reconciler.providers.tts.servers import URL_ENV, URL_HELP
from reconciler.redact import printable

# Only what every command needs is imported here: a command imports what it uses (asyncio, the
# engine, the providers, the plan renderers, rich's progress bars), so `version`, `--help`
# and `validate` do not pay for a plan's imports (see bench/bench_cli.py).
if TYPE_CHECKING:
    import asyncio

    from rich.progress import Progress, TaskID

    from reconciler.engine import Loaded, PlanRun, RunOptions, Session
    from reconciler.lease import LeaseKeeper
    from reconciler.plan.model import ApplyReport, Plan, ResourceResult

app = typer.Typer(
    name="reconciler",
    help="Infrastructure-as-code for IoT device fleets on The Things Stack (LoRaWAN) and "
    "Azure IoT Hub: validate manifests, plan and apply changes, detect drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
emulator_app = typer.Typer(
    help="Local emulators of the clouds reconciler manages (for tests, CI and demos).",
    no_args_is_help=True,
)
app.add_typer(emulator_app, name="emulator")

# rich decides colour from the stream: styled on a TTY, plain text when piped (CI logs).
# Output quotes user data (IDs, names, paths): no emoji codes (`soil:x:row` must not become
# `soil❌row`) and no highlighting; markup only where a call asks for it, with data escaped.
stdout = Console(highlight=False, soft_wrap=True, emoji=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Manifest files or directories (default: ./manifests).", show_default=False
    ),
]


def _check_url(url: str | None) -> str | None:
    """A usage error (exit 2) up front, instead of a connection error per request later."""
    from reconciler.transport import validate_root_url

    problem = validate_root_url(url) if url else None
    if problem:
        raise typer.BadParameter(problem)
    return url


UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar=URL_ENV,
        callback=_check_url,
        help=URL_HELP,
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
    """Infrastructure-as-code for IoT device fleets on The Things Stack and Azure IoT Hub."""


@app.command()
def version() -> None:
    """Show the version of reconciler (and of Python)."""
    import platform

    stdout.print(
        f"reconciler {__version__} (Python {platform.python_version()})",
        markup=False,
        highlight=False,
    )


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


@app.command()
def completion(
    shell: Annotated[Shell, typer.Argument(help="The shell: bash, zsh or fish.")],
) -> None:
    """Print the shell completion script, e.g. `eval "$(reconciler completion bash)"` in
    ~/.bashrc, or `reconciler completion fish > ~/.config/fish/completions/reconciler.fish`."""
    from typer._completion_shared import get_completion_script

    script = get_completion_script(
        prog_name="reconciler", complete_var="_RECONCILER_COMPLETE", shell=shell.value
    )
    stdout.print(script, markup=False, highlight=False, soft_wrap=True)


@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to write manifests/ and .gitignore.")
    ] = Path("."),
    stack: Annotated[
        str, typer.Option("--stack", help="The stack name (the ownership marker).")
    ] = "my-stack",
    url: Annotated[
        str, typer.Option("--url", help="Root URL of the The Things Stack servers.")
    ] = "https://eu1.cloud.thethings.network",
    owner: Annotated[
        str,
        typer.Option("--owner", help="Default owner of applications: user:ID or organization:ID."),
    ] = "user:my-user",
) -> None:
    """Write a starter manifest tree (a Stack, an application with a device), an example of
    the secrets it references, and a .gitignore that keeps secrets out of git."""
    from reconciler.providers.tts.starter import StarterOptions, write_starter

    kind, _, owner_id = owner.partition(":")
    if kind not in ("user", "organization") or not owner_id:
        raise typer.BadParameter(
            f"{owner!r} is not user:ID or organization:ID", param_hint="--owner"
        )
    options = StarterOptions(directory, stack, url, kind, owner_id)
    for path in write_starter(options):
        stdout.print(f"wrote {path}", markup=False, highlight=False)
    stdout.print(
        "Next: fill in secrets.env.example as .env, then "
        f"`reconciler validate {directory / 'manifests'}`.",
        markup=False,
        highlight=False,
    )


def _paths(paths: list[Path] | None) -> list[Path]:
    return paths or [Path("manifests")]


def _write_step_summary(markdown: str) -> None:
    """Under GitHub Actions, append to the job's step summary (Markdown)."""
    from reconciler import ci

    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not ci.under_github_actions(os.environ) or not target:
        return
    try:
        with open(target, "a", encoding="utf-8") as summary:
            summary.write(markdown + "\n")
    except OSError as error:
        stderr.print(f"warning: cannot write the step summary: {error.strerror}", markup=False)


def _annotate(lines: list[str]) -> None:
    """Under GitHub Actions, workflow-command annotations (on stderr: stdout may be JSON)."""
    from reconciler import ci

    if ci.under_github_actions(os.environ):
        for line in lines:
            stderr.print(line, markup=False, highlight=False, soft_wrap=True)


def print_diagnostics(diagnostics: list[Diagnostic]) -> None:
    from reconciler import ci

    _annotate(ci.diagnostic_annotations(diagnostics))
    for diagnostic in diagnostics:
        style = "red" if diagnostic.severity == "error" else "yellow"
        # Diagnostics quote manifest text: escape it so `[red]` in a key is shown, not styled,
        # and show control characters (a line break, an ANSI escape) as escapes.
        text = escape(printable(str(diagnostic)))
        stderr.print(f"[{style}]{text}[/{style}]", markup=True, highlight=False)


def _note(text: str) -> None:
    """A note on stderr (the lease's waits and takeovers): stdout keeps the plan and report."""
    stderr.print(f"note: {printable(text)}", markup=False, highlight=False)


def fail(message: str) -> NoReturn:
    stderr.print(f"[red]error:[/red] {escape(printable(message))}", markup=True, highlight=False)
    raise typer.Exit(1)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class PlanFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


OutFormat = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]


@app.command()
def validate(
    paths: PathsArg = None, url: UrlOpt = None, output_format: OutFormat = OutputFormat.text
) -> None:
    """Validate manifests offline: every problem, located, in one run (exit 1 if any)."""
    from reconciler import ci
    from reconciler.manifest.load import load_manifests
    from reconciler.providers.registry import MANIFEST_KINDS

    result = load_manifests(_paths(paths), url_override=url or None, kinds=MANIFEST_KINDS)
    summary = None if result.has_errors else result.summary()
    if output_format == "json":
        data = ci.diagnostics_json(result.diagnostics, summary)
        stdout.print(json.dumps(data, indent=2), markup=False, highlight=False)
        raise typer.Exit(1 if result.has_errors else 0)
    _write_step_summary(ci.validation_summary(result.diagnostics, summary or ""))
    # With errors, main() prints every diagnostic (and annotations) and the error count.
    result.raise_for_errors()
    print_diagnostics(result.diagnostics)  # warnings
    stdout.print(result.summary(), markup=False)


@app.command()
def schema(
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write the JSON Schemas to.")
    ] = Path("schemas"),
) -> None:
    """Write a JSON Schema per manifest kind (for editors: yaml-language-server)."""
    from reconciler.manifest.schema import write_schemas
    from reconciler.providers.registry import schema_models

    for path in write_schemas(out, schema_models()):
        stdout.print(f"wrote {path}", markup=False)


PlanFormatOpt = Annotated[
    PlanFormat,
    typer.Option(
        "--format",
        help="Output format: text, json (the plan data) or markdown (for a pull-request "
        "comment: a summary, a table, collapsed details, within --max-chars).",
    ),
]
MaxCharsOpt = Annotated[
    int,
    typer.Option(
        "--max-chars",
        min=1000,
        help="Size budget of --format markdown (GitHub's comment limit by default); what does "
        "not fit is counted.",
    ),
]
RotateKeysOpt = Annotated[
    bool,
    typer.Option(
        "--rotate-keys",
        help="Rewrite root and session keys even when the API key cannot read them "
        "(without RIGHT_APPLICATION_DEVICES_READ_KEYS they are otherwise set on create only).",
    ),
]
ParallelismOpt = Annotated[
    int, typer.Option("--parallelism", min=1, max=256, help="Concurrent requests.")
]
RetriesOpt = Annotated[
    int,
    typer.Option(
        "--retries",
        min=1,
        max=50,
        help="Tries per request on transient failures (5xx, resets, timeouts), with backoff.",
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.1,
        help="Seconds one request may take: connecting, sending and reading the whole answer.",
    ),
]
DeadlineOpt = Annotated[
    float | None,
    typer.Option(
        "--deadline",
        min=0.1,
        help="Seconds the whole run may take; after it no request is started (default: none).",
        show_default=False,
    ),
]
FullOpt = Annotated[
    bool | None,
    typer.Option(
        "--full/--compact",
        help="Show every field of every creation (default: only when there are few).",
        show_default=False,
    ),
]
AllowReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--allow-replace",
        help="Allow replacing devices whose immutable fields changed (delete + create; the "
        "device loses its session and must rejoin).",
    ),
]


VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Log every request on stderr: endpoint, method, path, status, latency (never a "
        "credential or a body).",
    ),
]


def _log_request(endpoint: str, method: str, path: str, status: int | None, seconds: float) -> None:
    answer = "no answer" if status is None else str(status)
    line = f"{endpoint} {method} {path} {answer} {seconds * 1000:.0f} ms"
    stderr.print(printable(line), markup=False, highlight=False, soft_wrap=True)


def _check_targets(values: list[str] | None) -> list[str] | None:
    for value in values or ():
        kind, _, ids = value.partition("/")
        if not kind or not ids:
            raise typer.BadParameter(f"{value!r} is not KIND/ID (e.g. device/my-app/sensor-*)")
    return values


TargetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        metavar="KIND/ID",
        help="Plan and apply only the resources this matches (repeatable; globs on the ids, "
        "e.g. device/my-app/sensor-*); the others are neither changed nor pruned.",
        callback=_check_targets,
        show_default=False,
    ),
]


def _check_rotations(values: list[str] | None) -> list[str] | None:
    for value in values or ():
        kind, _, ids = value.partition("/")
        if not kind or not ids or any(c in value for c in "*?["):
            raise typer.BadParameter(
                f"{value!r} is not an address such as api_key/gateway/GATEWAY_ID/NAME"
            )
    return values


RotateOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--rotate",
        metavar="ADDRESS",
        help="Rotate this declared API key now, whatever its age (a leaked key): create a new "
        "key, deliver its secret to the key's sink, delete the old one. ADDRESS is "
        "api_key/application|gateway|organization/ID/NAME (repeatable; a saved plan keeps it).",
        callback=_check_rotations,
        show_default=False,
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Do not stop at the safety thresholds.")]
PruneOpt = Annotated[
    bool | None,
    typer.Option(
        "--prune/--no-prune",
        help="Delete owned resources that left the manifests (default: the Stack's safety.prune).",
        show_default=False,
    ),
]


@dataclass
class PlanFlags:
    """The options `plan` and `apply` share: declared once here, added to both commands by
    `with_plan_flags` and handed to them as one object."""

    url: UrlOpt = None
    prune: PruneOpt = None
    allow_replace: AllowReplaceOpt = False
    rotate_keys: RotateKeysOpt = False
    rotate: RotateOpt = None
    force: ForceOpt = False
    target: TargetOpt = None
    verbose: VerboseOpt = False
    parallelism: ParallelismOpt = 16
    retries: RetriesOpt = 8
    timeout: TimeoutOpt = 30.0
    deadline: DeadlineOpt = None
    full: FullOpt = None


def with_plan_flags(command: Callable[..., None]) -> Callable[..., None]:
    """The command with PlanFlags' options added to its signature (typer reads it) and passed
    to it as `flags`."""
    signature = inspect.signature(command, eval_str=True)
    hints = inspect.get_annotations(PlanFlags, eval_str=True)
    names = [f.name for f in fields(PlanFlags)]
    added = [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name]
        )
        for f in fields(PlanFlags)
    ]
    own = [p for p in signature.parameters.values() if p.name != "flags"]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        flags = PlanFlags(**{name: kwargs.pop(name) for name in names})
        command(flags=flags, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in (*own, *added)}
    return wrapper


class Interrupts:
    """During apply, the first SIGINT/SIGTERM stops new work from starting (the changes in
    flight finish and are reported); a second one cancels everything at once."""

    def __init__(self) -> None:
        self.requested = False
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> Interrupts:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(signum, self._on_signal)
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._loop is not None
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.remove_signal_handler(signum)

    def _on_signal(self) -> None:
        if self.requested and self._task is not None:
            self._task.cancel()
            return
        self.requested = True
        stderr.print(
            "Interrupted: no new changes are started; the ones in flight finish "
            "(interrupt again to abort now).",
            markup=False,
        )


class ProgressReporter:
    """Progress of the read and write phases: bars on a terminal, a plain line every few
    seconds otherwise (CI logs)."""

    PLAIN_INTERVAL = 5.0

    def __init__(self, console: Console) -> None:
        self.console = console
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._started: dict[str, float] = {}
        self._last_line = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        label = {"read": "reading live state", "apply": "applying"}.get(phase, phase)
        if self.console.is_terminal:
            if self._bars is None:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )

                self._bars = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=self.console,
                    transient=True,
                )
                self._bars.start()
            if phase not in self._tasks:
                self._tasks[phase] = self._bars.add_task(label, total=total)
            self._bars.update(self._tasks[phase], completed=done, total=total)
            return
        now = time.monotonic()
        started = self._started.setdefault(phase, now)
        # Quick phases print nothing; long ones a line every interval and one at the end.
        due = now - max(started, self._last_line) >= self.PLAIN_INTERVAL
        if due or (done == total and self._last_line > started):
            self._last_line = now
            self.console.print(f"{label}: {done}/{total}", markup=False, highlight=False)

    def close(self) -> None:
        """Stop and clear the bars (before printing a plan or asking a question: a live bar
        keeps redrawing its line, which would erase a prompt); a later phase starts new ones."""
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
            self._tasks.clear()


T = TypeVar("T")


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, keeping the result out of the task: when the loop closes, asyncio builds
    the repr of a finished task's result, a string of megabytes for a large plan (measured
    ≈0.1 s per 1,000 devices, twice per plan)."""
    import asyncio

    box: list[T] = []

    async def keep() -> None:
        box.append(await coroutine)

    asyncio.run(keep())
    return box[0]


def _run_options(paths: list[Path], url: str | None, **kwargs: Any) -> RunOptions:
    from reconciler.engine import RunOptions
    from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY

    return RunOptions(
        paths=paths, providers=REGISTRY, manifest_kinds=MANIFEST_KINDS, url=url, **kwargs
    )


def _plan_options(paths: list[Path], flags: PlanFlags) -> RunOptions:
    return _run_options(
        paths,
        flags.url,
        prune=flags.prune,
        allow_replace=flags.allow_replace,
        rotate_keys=flags.rotate_keys,
        force=flags.force,
        targets=tuple(flags.target or ()),
        rotate=tuple(dict.fromkeys(flags.rotate or ())),
        request_log=_log_request if flags.verbose else None,
        parallelism=flags.parallelism,
        retries=flags.retries,
        limits=_limits(flags.timeout, flags.deadline),
        freeze_live_state=True,  # one run per process
    )


def _limits(timeout: float, deadline: float | None) -> Any:
    from reconciler.transport import HttpLimits

    return HttpLimits(request_timeout=timeout, run_deadline=deadline)


def _print_lines(lines: list[Any]) -> None:
    for line in lines:
        stdout.print(line)


def _prepare(options: RunOptions) -> tuple[Loaded, Session, ProgressReporter]:
    """Load the manifests (printing their warnings) and connect the providers, with progress."""
    from reconciler import engine

    progress = ProgressReporter(stderr)
    options.progress = progress
    loaded = engine.load(options)
    print_diagnostics(loaded.warnings)
    session = engine.connect(loaded, options)
    # The manifests and desired states live until the process exits: move them out of the
    # collector's sight, so the collections the HTTP objects trigger do not scan them again
    # and again (measured: the planner's first pass 2.6x slower without it).
    gc.freeze()
    return loaded, session, progress


def _make_plan(options: RunOptions) -> PlanRun:
    from reconciler import engine

    loaded, session, progress = _prepare(options)

    async def run() -> PlanRun:
        try:
            return await engine.make_plan(loaded, session, options)
        finally:
            progress.close()
            await session.aclose()

    return _run_async(run())


@app.command()
@with_plan_flags
def plan(
    flags: PlanFlags,
    paths: PathsArg = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the plan (JSON, no secrets) to this file.")
    ] = None,
    output_format: PlanFormatOpt = PlanFormat.text,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode", help="Exit 0 when there are no changes, 2 when there are."
        ),
    ] = False,
    max_chars: MaxCharsOpt = COMMENT_LIMIT,
) -> None:
    """Show what apply would change, per resource and server (read-only)."""
    from reconciler import ci
    from reconciler.plan.markdown import render_markdown

    options = _plan_options(_paths(paths), flags)
    options.look_for_leases = True  # plan takes no lease: it says when an apply holds one
    run = _make_plan(options)
    if out is not None:
        _write_plan(out, run.plan)
    _render_plan_as(run.plan, output_format, full=flags.full, max_chars=max_chars)
    if output_format == "text" and out is not None:
        stdout.print(f"Saved the plan to {out}; apply it with `reconciler apply --plan {out}`.")
    _annotate(ci.plan_annotations(run.plan))
    _write_step_summary(render_markdown(run.plan, max_chars=max_chars))
    if detailed_exitcode and run.plan.has_changes():
        raise typer.Exit(2)


def _render_plan_as(
    plan_data: Plan, output_format: str, *, full: bool | None, max_chars: int
) -> None:
    from reconciler.plan.markdown import render_markdown
    from reconciler.plan.render import render_plan

    if output_format == "json":
        stdout.print(plan_data.dumps(), markup=False, highlight=False, end="")
    elif output_format == "markdown":
        text = render_markdown(plan_data, max_chars=max_chars)
        stdout.print(text, markup=False, highlight=False, end="", soft_wrap=True)
    else:
        _print_lines(render_plan(plan_data, full=full))


@app.command()
def show(
    plan_file: Annotated[Path, typer.Argument(help="A plan saved by `plan --out`.")],
    output_format: PlanFormatOpt = PlanFormat.text,
    full: FullOpt = None,
    max_chars: MaxCharsOpt = COMMENT_LIMIT,
) -> None:
    """Render a saved plan (offline: reads only the file)."""
    _render_plan_as(_read_plan(plan_file), output_format, full=full, max_chars=max_chars)


def _write_plan(path: Path, plan_data: Plan) -> None:
    _write_atomically(path, plan_data.dumps(), "the plan")


def _write_atomically(path: Path, text: str, what: str) -> None:
    # Write beside the target, then rename: a file is never half-written.
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as error:
        fail(f"cannot write {what} to {path}: {error.strerror}")


def _read_plan(path: Path) -> Plan:
    from reconciler.plan.model import Plan, PlanFormatError
    from reconciler.transport import parse_json

    try:
        return Plan.from_json(parse_json(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        fail(f"{path}: no such plan file")
    except PlanFormatError as error:
        fail(f"{path}: {error}")
    except ValueError as error:  # not JSON
        fail(f"{path}: not a reconciler plan ({error})")


@app.command()
@with_plan_flags
def apply(
    flags: PlanFlags,
    paths: PathsArg = None,
    plan_file: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            help="Apply a plan saved by `plan --out`; each resource is re-checked first and "
            "skipped if it changed since.",
        ),
    ] = None,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Do not ask for confirmation.")
    ] = False,
    lock: Annotated[
        bool,
        typer.Option(
            "--lock/--no-lock",
            help="Hold the stack's apply lease while reading, planning and writing, so a second "
            "apply cannot interleave (--no-lock: only where a lease cannot be written).",
        ),
    ] = True,
    lock_timeout: Annotated[
        float,
        typer.Option(
            "--lock-timeout",
            metavar="SECONDS",
            min=0,
            help="Wait up to this long for another apply's lease instead of refusing at once.",
        ),
    ] = 0.0,
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            help="Output format: text, or json (one document at the end: the plan that was "
            "applied and the report, with the servers' warnings; the prompt goes to stderr).",
        ),
    ] = OutputFormat.text,
) -> None:
    """Apply the manifests to their targets (The Things Stack, Azure IoT Hub); shows the plan
    and asks first on a TTY."""
    import asyncio

    from reconciler import engine
    from reconciler.plan.model import ApplyReport
    from reconciler.plan.render import render_plan, render_report

    as_json = output_format == "json"

    saved = _read_plan(plan_file) if plan_file is not None else None
    options = _plan_options(paths or [], flags)
    options.lock = lock
    options.look_for_leases = not lock
    options.lock_timeout = lock_timeout
    if saved is not None:
        options = engine.saved_plan_options(saved, options)
    if not options.paths:
        options.paths = _paths(None)
    loaded, session, progress = _prepare(options)

    lease_lost: list[str] = []

    async def run() -> tuple[PlanRun, list[ResourceResult], ApplyReport | None]:
        try:
            if saved is not None:
                engine.check_saved_plan_scope(saved, session, options)
            # Before the lease is written: a usage error changes nothing on the servers.
            engine.check_rotations(session, options)
            async with engine.hold_lease(session, options, note=_note) as lease:
                return await plan_and_apply(lease)
        finally:
            progress.close()
            await session.aclose()

    async def plan_and_apply(
        lease: LeaseKeeper | None,
    ) -> tuple[PlanRun, list[ResourceResult], ApplyReport | None]:
        run = await engine.make_plan(loaded, session, options)
        progress.close()
        stale = engine.review_saved_plan(run, saved) if saved is not None else []
        if not as_json:
            _print_lines(render_plan(run.plan, title="apply", full=flags.full, stale=len(stale)))
        if not run.plan.has_changes():
            return run, stale, None
        ask = engine.needs_confirmation(
            run.plan,
            saved=saved is not None,
            auto_approve=auto_approve,
            interactive=sys.stdin.isatty(),
        )
        if ask and as_json:  # the plan the person is asked about, where the prompt goes
            for line in render_plan(run.plan, title="apply", full=flags.full):
                stderr.print(line)
        if ask and not typer.confirm("Apply these changes?", default=False, err=as_json):
            raise typer.Abort()
        if lease is not None:
            # The prompt blocked the renewals: extend the lease now, and write nothing if
            # another run took it over meanwhile.
            await lease.renew()
            lease.check()

        with Interrupts() as interrupts:
            report = await engine.apply_plan(
                run, session, options, lease=lease, interrupted=lambda: interrupts.requested
            )
        if lease is not None and lease.lost:
            lease_lost.append(lease.lost)
        return run, stale, report

    try:
        applied, stale, report = _run_async(run())
    except asyncio.CancelledError:
        stderr.print(
            "aborted: requests in flight were cancelled; `reconciler plan` shows what is left",
            markup=False,
        )
        raise typer.Exit(130) from None
    if report is None and not stale and not as_json:
        stdout.print("Nothing to apply.")
        return
    # One report, on one stream: what was done, failed, skipped, and stale.
    report = report or ApplyReport()
    report.results[:0] = stale
    if as_json:
        document = {"plan": applied.plan.to_json(), "report": report.to_json()}
        stdout.print(json.dumps(document, indent=2), markup=False, highlight=False)
    else:
        _print_lines(render_report(report))
    if lease_lost:
        fail(f"stopped: {lease_lost[0]}; the changes not yet started were skipped")
    if report.interrupted:
        raise typer.Exit(130)
    if report.failed or report.stale:
        raise typer.Exit(1)


@app.command()
def credentials(
    paths: PathsArg = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="File for the device connection strings (created with mode 0600).",
        ),
    ] = Path("device-credentials.csv"),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the file if it exists.")
    ] = False,
) -> None:
    """Write the connection strings of the declared IoT Hub SAS devices (keys the hub
    generated included) to a file only its owner can read. Nothing is printed but a count."""
    import asyncio

    from reconciler.providers.iothub.credentials import write_credentials

    options = _run_options(_paths(paths), None)
    _loaded, session, progress = _prepare(options)

    async def run() -> list[str]:
        lines: list[str] = []
        try:
            for target in session.targets:
                collect = getattr(target.provider, "device_connection_strings", None)
                if collect is not None:
                    lines += await collect(target.desired)
            return lines
        finally:
            progress.close()
            await session.aclose()

    if not any(hasattr(t.provider, "device_connection_strings") for t in session.targets):
        asyncio.run(session.aclose())
        fail("the manifests declare no IotHub: there are no device credentials to write")
    lines = asyncio.run(run())
    write_credentials(out, lines, overwrite=overwrite)
    stdout.print(f"Wrote {len(lines)} device connection string(s) to {out} (mode 0600).")


@app.command()
def drift(
    paths: PathsArg = None,
    url: UrlOpt = None,
    output_format: OutFormat = OutputFormat.text,
    parallelism: ParallelismOpt = 16,
    retries: RetriesOpt = 8,
    timeout: TimeoutOpt = 30.0,
    deadline: DeadlineOpt = None,
    verbose: VerboseOpt = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Show long values whole (by default values over 80 characters are cut, with "
            "their length; the JSON always holds them whole).",
        ),
    ] = False,
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit",
            metavar="FILE",
            help="Also write the result as JUnit XML (a test case per resource; drifted ones "
            "fail), for CI systems that read it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Report live changes made outside the manifests (exit 0 in sync, 2 drift, 1 error).

    Every managed field is compared on every server that holds it (the reads of a plan)."""
    from reconciler.plan.render import render_drift

    options = _run_options(
        _paths(paths),
        url,
        prune=False,
        parallelism=parallelism,
        retries=retries,
        request_log=_log_request if verbose else None,
        limits=_limits(timeout, deadline),
        freeze_live_state=True,  # one run per process
    )
    # drift takes no lease: another apply writing now would show as drift, so it says so.
    options.look_for_leases = True
    run = _make_plan(options)
    if output_format == "json":
        stdout.print(run.plan.dumps(), markup=False, highlight=False, end="")
    else:
        _print_lines(render_drift(run.plan, full=full))
    if junit is not None:
        from reconciler.ci import drift_junit

        _write_atomically(junit, drift_junit(run.plan), "the JUnit report")
    if run.plan.has_drift():
        raise typer.Exit(2)


@app.command("force-unlock")
def force_unlock(
    lease_id: Annotated[
        str,
        typer.Argument(
            help="The lease id the refused apply printed (`lease id ...`): only that lease is "
            "removed.",
            show_default=False,
        ),
    ],
    paths: PathsArg = None,
    url: UrlOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Remove a stuck apply lease (its run died and you cannot wait for it to expire). Only for
    a run that is not running any more: the lease is what keeps two applies apart."""
    from reconciler import engine

    options = _run_options(
        _paths(paths), url, request_log=_log_request if verbose else None, lock=False
    )
    _loaded, session, progress = _prepare(options)

    async def run() -> tuple[list[Any], list[Any]]:
        try:
            return await engine.force_unlock(session, lease_id.strip())
        finally:
            progress.close()
            await session.aclose()

    removed, others = _run_async(run())
    if not removed:
        found = "; ".join(lease.describe() for lease in others) or "no lease at all"
        fail(f"no lease with id {lease_id} on the targets (found: {found})")
    for lease in removed:
        stdout.print(f"Removed {lease.describe()}", markup=False, highlight=False)


def _duration(value: str | None) -> float | None:
    """`90`, `90s`, `5m`, `1h` -> seconds (a usage error otherwise)."""
    if value is None:
        return None
    text = value.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    factor = units.get(text[-1:], 0)
    number = text[:-1] if factor else text
    try:
        seconds = float(number) * (factor or 1)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):  # also refuses nan
        raise typer.BadParameter(f"{value!r} is not a duration such as 30s, 5m or 1h")
    return seconds


@app.command()
def watch(
    paths: PathsArg = None,
    url: UrlOpt = None,
    interval: Annotated[
        str,
        typer.Option(
            "--interval",
            callback=_duration,
            metavar="DURATION",
            help="Time between cheap sweeps (TTS: devices changed on the Identity Server since "
            "the last sweep, applications, webhooks, links, gateways; a target without a "
            "change stream is read in full), e.g. 30s, 5m.",
        ),
    ] = "60s",
    full_interval: Annotated[
        str,
        typer.Option(
            "--full-interval",
            callback=_duration,
            metavar="DURATION",
            help="Time between full sweeps (everything read, as plan does): the safety net for "
            "changes the event stream lost beyond what the server replays.",
        ),
    ] = "6h",
    heal: Annotated[
        bool,
        typer.Option(
            "--heal",
            help="Repair drift as it is found, through the same planner, safety rules and "
            "executor as apply (replacements are never made; prune as the target's "
            "safety.prune says).",
        ),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve the counters in the Prometheus text format at "
            "http://ADDRESS:PORT/metrics (0: a free port, printed at start).",
            show_default=False,
        ),
    ] = None,
    metrics_address: Annotated[
        str, typer.Option("--metrics-address", help="Address the metrics server listens on.")
    ] = "127.0.0.1",
    parallelism: ParallelismOpt = 16,
    retries: RetriesOpt = 8,
    timeout: TimeoutOpt = 30.0,
    verbose: VerboseOpt = False,
) -> None:
    """Keep watching: report drift as it happens (and with --heal repair it) until
    interrupted (SIGINT/SIGTERM: exit 0 after a summary). Manifests changed on disk are
    loaded again and healed towards (a tree that does not load is reported, the last good
    one kept)."""
    import asyncio

    from reconciler.watch import Watch, WatchOptions

    options = _run_options(
        _paths(paths),
        url,
        parallelism=parallelism,
        retries=retries,
        request_log=_log_request if verbose else None,
        limits=_limits(timeout, None),
    )
    settings = WatchOptions(
        interval=float(interval),  # the callback made it seconds
        full_interval=float(full_interval),
        heal=heal,
    )
    loaded, session, progress = _prepare(options)

    def report(what: str, line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        console = stderr if what in ("info", "error") else stdout
        console.print(printable(f"{stamp} {line}"), markup=False, highlight=False)

    async def run() -> str:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        watcher = Watch(loaded, session, options, settings, report)
        server = None
        try:
            if metrics_port is not None:
                server = await _serve_metrics(watcher, metrics_address, metrics_port, report)
            progress.close()
            metrics = await watcher.run(stop)
            return metrics.summary()
        finally:
            if server is not None:
                await server.cleanup()
            await watcher.session.aclose()  # a reload of the manifests may have replaced it

    summary = _run_async(run())
    stderr.print(f"watch stopped: {summary}", markup=False, highlight=False)


async def _serve_metrics(watcher: Any, address: str, port: int, report: Any) -> Any:
    """`GET /metrics` in the Prometheus text format, on the running loop."""
    from aiohttp import web

    from reconciler.watch import metrics_text

    async def metrics(_request: web.Request) -> web.Response:
        watcher.count_requests()
        return web.Response(
            text=metrics_text(watcher.metrics), content_type="text/plain", charset="utf-8"
        )

    application = web.Application()
    application.router.add_get("/metrics", metrics)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, address, port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise ReconcilerError(
            f"--metrics-port {port}: cannot listen on {address}: {error.strerror}"
        ) from None
    bound = runner.addresses[0][1] if runner.addresses else port
    report("info", f"metrics at http://{address}:{bound}/metrics")
    return runner


@app.command("import")
def import_command(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write the manifest tree to (new or empty).")
    ],
    url: UrlOpt = None,
    application: Annotated[
        list[str] | None,
        typer.Option(
            "--application", help="Application ID to import (repeatable).", show_default=False
        ),
    ] = None,
    gateway: Annotated[
        list[str] | None,
        typer.Option("--gateway", help="Gateway ID to import (repeatable).", show_default=False),
    ] = None,
    organization: Annotated[
        list[str] | None,
        typer.Option(
            "--organization",
            help="Organization ID to import, with its members and API keys (repeatable); the "
            "organizations owning an imported application or gateway are imported anyway.",
            show_default=False,
        ),
    ] = None,
    everything: Annotated[
        bool,
        typer.Option(
            "--all", help="Import every application, gateway and organization the key can see."
        ),
    ] = False,
    stack: Annotated[
        str | None,
        typer.Option(
            "--stack",
            help="Name for the manifests (the ownership marker): the Stack's (default "
            "imported), or with --iothub the IotHub's (default: the name every device's "
            "ownership tag carries, else the hub's name).",
            show_default=False,
        ),
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            help="Read devices from a The Things Stack export instead of the server: the "
            "Console's JSON import format (stream, array, template form, lorawan-stack-migrate "
            "output) or its CSV format. Needs one --application and --owner.",
            show_default=False,
        ),
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            help="Owner of applications and gateways on a new server: user:ID or "
            "organization:ID (default: the API key's user or organization).",
            show_default=False,
        ),
    ] = None,
    iothub: Annotated[
        bool,
        typer.Option(
            "--iothub",
            help="Import an Azure IoT Hub instead (every device identity, twin and module): "
            "the connection string from IOTHUB_CONNECTION_STRING, the endpoint moved by "
            "RECONCILER_IOTHUB_URL.",
        ),
    ] = False,
    with_secrets: Annotated[
        bool,
        typer.Option(
            "--with-secrets",
            help="With --iothub: write the symmetric keys to git-ignored secrets/ files the "
            "manifests reference (default: keys stay on the hub, undeclared).",
        ),
    ] = False,
    ownership_tag: Annotated[
        str,
        typer.Option("--ownership-tag", help="With --iothub: the twin tag naming the owner."),
    ] = "managed-by",
    sku: Annotated[
        str | None,
        typer.Option(
            "--sku",
            help="With --iothub: the hub's SKU (F1, B1-B3, S1-S3): reads are paced to its "
            "throttles and the manifests record it.",
            show_default=False,
        ),
    ] = None,
    units: Annotated[
        int | None,
        typer.Option(
            "--units",
            min=1,
            max=200,
            help="With --iothub and --sku: the hub's units.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a non-empty --out directory.")
    ] = False,
    no_device_packages: Annotated[
        bool,
        typer.Option(
            "--no-device-packages",
            help="Do not read each device's own package associations (one request per "
            "device; the report says they were skipped).",
        ),
    ] = False,
    parallelism: ParallelismOpt = 16,
    retries: RetriesOpt = 8,
) -> None:
    """Write manifests for existing resources (read-only on the server): a Stack, applications
    with formatters, webhooks and device fleets, gateways, organizations, their API keys and
    collaborators (API key secrets cannot be read back); or with --iothub an IoT Hub's device
    identities, twins and modules. Secrets go to git-ignored files."""
    import asyncio

    from reconciler.importer.report import REPORT_FILE

    progress = ProgressReporter(stderr)
    run_import: Callable[[], Coroutine[Any, Any, Any]]
    if iothub:
        tts_only = {
            "--application": bool(application),
            "--gateway": bool(gateway),
            "--organization": bool(organization),
            "--all": everything,
            "--from-file": from_file is not None,
            "--owner": owner is not None,
            "--no-device-packages": no_device_packages,
            "--url": url is not None and not _from_environment(ctx, "url"),
        }
        for flag, given in tts_only.items():
            if given:
                raise typer.BadParameter(
                    f"{flag} is for The Things Stack; --iothub reads the hub of "
                    "IOTHUB_CONNECTION_STRING (RECONCILER_IOTHUB_URL moves its endpoint)"
                )
        from reconciler.providers.iothub.importing.run import HubImportOptions
        from reconciler.providers.iothub.importing.run import run_import as run_hub_import

        hub_options = HubImportOptions(
            out=out,
            name=stack,
            ownership_tag=ownership_tag,
            with_secrets=with_secrets,
            sku=sku,
            units=units,
            overwrite=overwrite,
            parallelism=parallelism,
            retries=retries,
            progress=progress,
        )

        def run_import() -> Coroutine[Any, Any, Any]:
            return run_hub_import(hub_options)
    else:
        hub_only = {
            "--with-secrets": with_secrets,
            "--ownership-tag": ownership_tag != "managed-by",
            "--sku": sku is not None,
            "--units": units is not None,
        }
        for flag, given in hub_only.items():
            if given:
                raise typer.BadParameter(f"{flag} is for --iothub")
        from reconciler.providers.tts.importing.live import Selection
        from reconciler.providers.tts.importing.run import ImportOptions
        from reconciler.providers.tts.importing.run import run_import as run_tts_import

        options = ImportOptions(
            out=out,
            stack=stack or "imported",
            url=url,
            selection=Selection(
                tuple(application or ()),
                tuple(gateway or ()),
                everything,
                tuple(organization or ()),
            ),
            from_file=from_file,
            owner=owner,
            overwrite=overwrite,
            device_packages=not no_device_packages,
            parallelism=parallelism,
            retries=retries,
            progress=progress,
        )

        def run_import() -> Coroutine[Any, Any, Any]:
            return run_tts_import(options)

    async def run() -> Any:
        try:
            return await run_import()
        finally:
            progress.close()

    try:
        report = _run_async(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        stderr.print(f"interrupted: nothing was written to {out}", markup=False)
        raise typer.Exit(130) from None
    for line in report.lines():
        stderr.print(f"not imported: {line}", markup=False, highlight=False)
    stdout.print(f"{report.summary()} into {out} (report: {out / REPORT_FILE})", markup=False)


def _check_emulated_api(name: str) -> str:
    from reconciler.emulator.apis import APIS

    if name not in APIS:
        raise typer.BadParameter(f"{name!r} is not one of {', '.join(sorted(APIS))}")
    return name


def _from_environment(ctx: typer.Context, parameter: str) -> bool:
    # By name: typer carries its own copy of click, whose ParameterSource is not click's.
    source = ctx.get_parameter_source(parameter)
    return source is not None and source.name == "ENVIRONMENT"


@emulator_app.command("serve")
def emulator_serve(
    ctx: typer.Context,
    api: Annotated[
        str,
        typer.Option(
            "--api",
            help="The emulated API: tts (The Things Stack HTTP API v3) or azure-iothub (the "
            "Azure IoT Hub service REST API).",
            callback=_check_emulated_api,
        ),
    ] = "tts",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 1885,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="TTS_EMULATOR_API_KEY",
            help="The admin credential in the API's format (tts: NNSXS.<id>.<secret>); "
            "generated and printed when omitted.",
            show_default=False,
        ),
    ] = None,
    user_id: Annotated[
        str | None,
        typer.Option(
            "--user-id", help="tts: the admin user (default admin-user).", show_default=False
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Keep state in this SQLite file (survives restarts)."),
    ] = None,
    traffic_interval: Annotated[
        float | None,
        typer.Option(
            "--traffic-interval",
            metavar="SECONDS",
            min=0,
            help="tts: emulate a live network: every device sends an uplink about every SECONDS "
            "(jittered; OTAA devices join first); off when omitted or 0. Also settable at run "
            'time: PUT /_emulator/config {"traffic_interval": SECONDS}.',
            show_default=False,
        ),
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
    request_log: Annotated[
        str | None,
        typer.Option(
            "--request-log",
            metavar="FILE",
            help="Append one line per request (time, method, path, status, duration; never a "
            "credential) to FILE, or to stderr with '-'.",
            show_default=False,
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert", help="Serve HTTPS with this PEM certificate.", show_default=False
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key",
            help="The certificate's PEM private key (if not in the --tls-cert file).",
            show_default=False,
        ),
    ] = None,
    tls_self_signed: Annotated[
        bool,
        typer.Option(
            "--tls-self-signed",
            help="Serve HTTPS with a new self-signed certificate (localhost, loopback and "
            "served addresses), written beside --state or into a temporary directory and named "
            "in the ready line; trust it with REQUESTS_CA_BUNDLE or SSL_CERT_FILE.",
        ),
    ] = False,
    hub_name: Annotated[
        str | None,
        typer.Option(
            "--hub-name",
            help="azure-iothub: the hub's name; tokens are signed for NAME.azure-devices.net "
            "(default myhub).",
            show_default=False,
        ),
    ] = None,
    shared_access_key: Annotated[
        str | None,
        typer.Option(
            "--shared-access-key",
            envvar="IOTHUB_EMULATOR_SHARED_ACCESS_KEY",
            help="azure-iothub: the iothubowner policy's primary key (base64); generated (or "
            "kept from --state) when omitted.",
            show_default=False,
        ),
    ] = None,
    sku: Annotated[
        str | None,
        typer.Option(
            "--sku",
            help="azure-iothub: throttle as this tier does (F1, B1-B3, S1-S3); no throttling "
            "when omitted.",
            show_default=False,
        ),
    ] = None,
    units: Annotated[
        int | None,
        typer.Option(
            "--units", help="azure-iothub: the hub's units (default 1).", show_default=False
        ),
    ] = None,
) -> None:
    """Serve an emulated API until SIGINT/SIGTERM; one ready line gives its URL and admin
    credential (azure-iothub: the iothubowner connection string)."""
    # A shell or CI job serving both emulators exports each one's credential variable; a
    # variable that belongs to the other API is not an option this API should refuse.
    if api != "tts" and _from_environment(ctx, "api_key"):
        api_key = None
    if api != "azure-iothub" and _from_environment(ctx, "shared_access_key"):
        shared_access_key = None
    try:
        from reconciler.emulator.server import ServeOptions, serve
    except ImportError as error:  # starlette/uvicorn are the `emulator` extra
        fail(
            f"the emulator needs {error.name or 'its dependencies'}: "
            "pip install 'reconciler[emulator]'"
        )

    serve(
        ServeOptions(
            api=api,
            host=host,
            port=port,
            api_key=api_key,
            api_settings={
                name: str(value)
                for name, value in (
                    ("user_id", user_id),
                    ("traffic_interval", traffic_interval),
                    ("hub_name", hub_name),
                    ("shared_access_key", shared_access_key),
                    ("sku", sku),
                    ("units", units),
                )
                if value is not None
            },
            state=state,
            latency_ms=latency_ms,
            jitter_ms=jitter_ms,
            rate_limit=rate_limit,
            fail_rate=fail_rate,
            drop_rate=drop_rate,
            request_log=request_log,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_self_signed=tls_self_signed,
        ),
        announce=lambda line: stdout.print(line, markup=False, highlight=False),
    )


def main() -> None:
    """Console-script entry point: user errors become one clean message and exit code 1
    (usage errors: click's message and exit code 2)."""
    if "_RECONCILER_COMPLETE" in os.environ:
        # A completion request from the shell (see `reconciler completion`): typer's completion
        # classes answer it.
        from typer._completion_classes import completion_init

        completion_init()
    try:
        # Without standalone mode, click returns the code of a typer.Exit instead of raising.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except ManifestError as error:
        print_diagnostics(error.diagnostics)
        stderr.print(str(error), markup=False, highlight=False)
        sys.exit(1)
    except UsageError as error:
        stderr.print(f"error: {error}", markup=False, highlight=False)
        sys.exit(2)
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
    except typer.TyperException as error:
        # Usage errors (unknown command or option, bad value, no command): click's own message
        # with its suggestion, and its exit code 2.
        show = getattr(error, "show", None)
        if callable(show):
            show()
        else:
            stderr.print(f"error: {error}", markup=False, highlight=False)
        sys.exit(int(getattr(error, "exit_code", 2)))
    except Exception as error:
        # A bug, not bad input. Its message could hold data (even a secret), so by default
        # name only the type and where it happened; RECONCILER_DEBUG=1 shows the traceback.
        if os.environ.get("RECONCILER_DEBUG"):
            raise
        frame = traceback.extract_tb(error.__traceback__)[-1]
        stderr.print(
            f"internal error: {type(error).__name__} at {Path(frame.filename).name}:"
            f"{frame.lineno}; run again with RECONCILER_DEBUG=1 for details and report it",
            markup=False,
            highlight=False,
        )
        sys.exit(1)
