"""Manifests are untrusted input (they arrive in pull requests): what the files they name may
be, and how the tool refuses the rest (issue 9, findings 1, 2 and 7). Each test builds a copy of
the example tree, changes one thing, and runs the real loader (or the CLI, where a hang or the
printing is the point)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.diagnostics import Diagnostic, ManifestError
from reconciler.manifest import files, loader
from reconciler.manifest.load import LoadResult, load_manifests
from reconciler.manifest.loader import STATS, load_csv
from reconciler.manifest.yaml_build import YamlLimits, build_documents
from reconciler.providers.registry import MANIFEST_KINDS
from reconciler.providers.tts.manifest.project import tts_project
from tests.manifest.support import MANIFESTS, REPO, example_environ

OUTSIDE_TEXT = "OUTSIDE-SECRET-do-not-read-4711"
APPLICATION = "applications/orchard-sensors.yaml"
FLEET = "fleets/soil-fleet.yaml"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the example manifests at tmp/tree, and a foreign file at tmp/outside."""
    root = tmp_path / "tree"
    shutil.copytree(MANIFESTS, root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(OUTSIDE_TEXT + "\n")
    (outside / "fleet.csv").write_text(f"id;dev_eui\n{OUTSIDE_TEXT};0004A30B00200001\n")
    return root


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / name
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new, 1))


def load(root: Path, environ: dict[str, str] | None = None) -> LoadResult:
    return load_manifests(
        [root], environ={**example_environ(), **(environ or {})}, kinds=MANIFEST_KINDS
    )


def errors(result: LoadResult) -> list[Diagnostic]:
    return [d for d in result.diagnostics if d.severity == "error"]


def only_error(result: LoadResult) -> Diagnostic:
    found = errors(result)
    assert len(found) == 1, [str(d) for d in found]
    return found[0]


def text_of(result: LoadResult) -> str:
    return "\n".join(str(d) for d in result.diagnostics)


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(REPO),
            "NO_COLOR": "1",
            "COLUMNS": "400",
            **example_environ(),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return process.returncode, process.stdout + process.stderr


# --- finding 1: file references outside the tree ----------------------------------------------

HEADER = "Authorization: {env: ORCHARD_WEBHOOK_TOKEN}"


@pytest.mark.parametrize(
    ("name", "old", "new", "path"),
    [
        (APPLICATION, HEADER, "Authorization: {file: /proc/self/environ}", "headers"),
        (APPLICATION, HEADER, "Authorization: {file: ../../outside/secret.txt}", "headers"),
        (APPLICATION, HEADER, "Authorization: {file: OUTSIDE_ABS/secret.txt}", "headers"),
        (
            APPLICATION,
            "up_formatter_parameter_file: ../formatters/soil-sensor.js",
            "up_formatter_parameter_file: ../../outside/secret.txt",
            "up_formatter_parameter_file",
        ),
        (
            APPLICATION,
            "up_formatter_parameter_file: ../formatters/soil-sensor.js",
            "up_formatter_parameter_file: /etc/shadow",
            "up_formatter_parameter_file",
        ),
        (FLEET, "csv: soil-fleet.csv", "csv: /etc/passwd", "csv"),
        (FLEET, "csv: soil-fleet.csv", "csv: ../../outside/fleet.csv", "csv"),
        (
            FLEET,
            "secrets_csv: soil-fleet.secrets.example.csv",
            "secrets_csv: OUTSIDE_ABS/fleet.csv",
            "secrets_csv",
        ),
        ("stack.yaml", "api_key: {env: TTS_API_KEY}", "api_key: {file: /etc/passwd}", "api_key"),
        ("stack.yaml", "safety:", "ca_bundle: ../outside/secret.txt\nsafety:", "ca_bundle"),
    ],
)
def test_finding1_references_outside_the_tree_are_located_errors(
    tree: Path, name: str, old: str, new: str, path: str
) -> None:
    edit(tree, name, old, new.replace("OUTSIDE_ABS", str(tree.parent / "outside")))
    result = load(tree)
    (error,) = [d for d in errors(result) if "outside the manifest tree" in d.message]
    assert error.location.file == str(tree / name)
    assert error.location.line is not None and path in (error.location.path or "")
    assert OUTSIDE_TEXT not in text_of(result) and "root:" not in text_of(result)


def test_finding1_csv_cells_and_symlinks_cannot_leave_the_tree(tree: Path) -> None:
    fleet_csv = tree / "fleets/soil-fleet.secrets.example.csv"
    lines = fleet_csv.read_text().splitlines()
    first = lines[1].split(";")
    lines[1] = ";".join([*first[:2], "file:../../outside/secret.txt"])
    fleet_csv.write_text("\n".join(lines) + "\n")
    error = only_error(result := load(tree))
    assert (error.location.file, error.location.line) == (str(fleet_csv), 2)
    assert error.message == (
        "secret file `../../outside/secret.txt` is outside the manifest tree" + files.OUTSIDE_HINT
    )
    assert OUTSIDE_TEXT not in text_of(result)

    shutil.copy(MANIFESTS / "fleets/soil-fleet.secrets.example.csv", fleet_csv)
    (tree / "formatters/link.js").symlink_to(tree.parent / "outside/secret.txt")
    edit(tree, APPLICATION, "../formatters/soil-sensor.js", "../formatters/link.js")
    error = only_error(result := load(tree))
    assert (error.location.file, error.location.line) == (str(tree / APPLICATION), 14)
    assert error.message == (
        "script file `../formatters/link.js` links to a file outside the manifest tree"
        + files.OUTSIDE_HINT
    )
    assert OUTSIDE_TEXT not in text_of(result)


def test_finding1_a_manifest_symlinked_from_outside_is_not_read(tree: Path) -> None:
    (tree.parent / "outside/evil.yaml").write_text(f"kind: {OUTSIDE_TEXT}\n")
    (tree / "evil.yaml").symlink_to(tree.parent / "outside/evil.yaml")
    result = load(tree)
    error = only_error(result)
    assert error.location.file == str(tree / "evil.yaml")
    assert error.message == "links to a file outside the manifest tree"
    assert OUTSIDE_TEXT not in text_of(result)


def test_allow_files_from_widens_the_tree_and_never_to_system_directories(tree: Path) -> None:
    edit(tree, APPLICATION, HEADER, "Authorization: {file: ../../outside/secret.txt}")
    edit(tree, "stack.yaml", "safety:", "allow_files_from: [../outside]\nsafety:")
    result = load(tree)
    assert not errors(result), text_of(result)
    (application,) = [a for a in tts_project(result.project).applications if a.webhooks]
    header = application.webhooks[0].fields["headers"]["Authorization"]
    assert header.reveal() == OUTSIDE_TEXT and header.source == "file:../../outside/secret.txt"

    edit(tree, "stack.yaml", "[../outside]", "[/, /proc/self, ../nowhere]")
    found = sorted((d.location.path, d.message) for d in errors(load(tree)))
    assert found == [
        (
            "allow_files_from[0]",
            "allowed directory `/` is a system directory: it may not be allowed",
        ),
        (
            "allow_files_from[1]",
            "allowed directory `/proc/self` is a system directory: it may not be allowed",
        ),
        ("allow_files_from[2]", "allowed directory `../nowhere` does not exist"),
        (
            "webhooks[0].headers.Authorization",
            "secret file `../../outside/secret.txt` is outside the "
            "manifest tree" + files.OUTSIDE_HINT,
        ),
    ]


def test_a_file_argument_makes_its_directory_the_tree(tree: Path) -> None:
    """`reconciler validate a/b.yaml` may read beside b.yaml, not above it."""
    (tree / "applications/token.txt").write_text("Bearer x-token\n")
    edit(tree, APPLICATION, HEADER, "Authorization: {file: token.txt}")
    result = load_manifests(
        [tree / "stack.yaml", tree / APPLICATION], environ=example_environ(), kinds=MANIFEST_KINDS
    )
    assert not errors(result), text_of(result)
    edit(tree, APPLICATION, "{file: token.txt}", "{file: ../stack.yaml}")
    only = [
        d
        for d in errors(
            load_manifests([tree / APPLICATION], environ=example_environ(), kinds=MANIFEST_KINDS)
        )
    ]
    assert any("outside the manifest tree" in d.message for d in only)


# --- finding 2: unbounded and blocking reads --------------------------------------------------


def test_finding2_fifos_block_nothing(tree: Path) -> None:
    """A FIFO as a secret, a formatter, a CSV and a manifest: located errors, no hang (the CLI
    runs with a timeout); a FIFO with another name in the tree is never opened."""
    for name in ("token.fifo", "formatters/script.fifo", "fleets/fleet.fifo", "zz.yaml", "x.txt"):
        os.mkfifo(tree / name)
    edit(tree, APPLICATION, HEADER, "Authorization: {file: ../token.fifo}")
    edit(tree, APPLICATION, "../formatters/soil-sensor.js", "../formatters/script.fifo")
    edit(tree, FLEET, "secrets_csv: soil-fleet.secrets.example.csv", "secrets_csv: fleet.fifo")
    code, output = cli("validate", str(tree), cwd=tree.parent)
    assert code == 1, output
    assert "secret file `../token.fifo` is not a regular file (a FIFO)" in output
    assert "script file `../formatters/script.fifo` is not a regular file (a FIFO)" in output
    assert "CSV file `fleet.fifo` is not a regular file (a FIFO) (at secrets_csv[0])" in output
    assert f"{tree / 'zz.yaml'}: error: not a regular file (a FIFO): not read" in output
    assert "internal error" not in output and "Traceback" not in output


def test_finding2_devices_and_oversized_files_are_refused_by_size_not_read(tree: Path) -> None:
    big = tree / "big.key"
    with big.open("wb") as stream:  # sparse: nothing is written or read
        stream.truncate(files.SECRET_FILE.max_bytes + 1)
    edit(tree, APPLICATION, HEADER, "Authorization: {file: ../big.key}")
    error = only_error(load(tree))
    assert error.message == (
        "secret file `../big.key` is too large (65,537 bytes; a secret file may have at most "
        "64 KiB)"
    )
    (tree / "zero.key").symlink_to("/dev/zero")
    edit(tree, APPLICATION, "{file: ../big.key}", "{file: ../zero.key}")
    assert "links to a file outside the manifest tree" in only_error(load(tree)).message


def test_finding2_symlink_loops_and_long_names_are_located_errors(tree: Path) -> None:
    (tree / "loop-a").symlink_to(tree / "loop-b")
    (tree / "loop-b").symlink_to(tree / "loop-a")
    (tree / "loop.yaml").symlink_to(tree / "loop.yaml")
    edit(tree, APPLICATION, HEADER, "Authorization: {file: ../loop-a}")
    edit(tree, APPLICATION, "../formatters/soil-sensor.js", "../" + "x" * 300 + ".js")
    edit(tree, FLEET, "secrets_csv: soil-fleet.secrets.example.csv", "secrets_csv: " + "a/" * 2500)
    code, output = cli("validate", str(tree), cwd=tree.parent)
    assert code == 1 and "internal error" not in output and "Traceback" not in output, output
    assert f"{tree / 'loop.yaml'}: error: cannot read: symlink loop" in output
    assert "secret file `../loop-a` cannot be read: symlink loop (at " in output
    assert "cannot be read: file name too long (at default_formatters." in output
    assert "CSV file: file name is too long (5,000 characters; the limit is 1,024)" in output


def test_finding2_the_tree_has_a_total_cap(tree: Path) -> None:
    tree_files = files.ManifestTree.of([tree])
    tree_files.max_tree_bytes = 5000
    path = tree / "devices/sensors.yaml"
    tree_files.read_counted(path, files.MANIFEST_FILE)
    with pytest.raises(files.FileRefError, match="exceed 5,000 bytes in total"):
        for _ in range(10):
            tree_files.read_counted(path, files.MANIFEST_FILE)
    # Secret files count too: many references to one file cannot add up to gigabytes.
    tree_files = files.ManifestTree.of([tree])
    tree_files.max_tree_bytes = 5000
    (tree / "token.txt").write_text("t" * 1000)
    with pytest.raises(files.FileRefError, match="exceed 5,000 bytes in total"):
        for _ in range(10):
            tree_files.read_text("token.txt", tree, files.SECRET_FILE)


# --- finding 7: printing and values that HTTP cannot carry -------------------------------------


def test_finding7_user_data_is_printed_without_emoji_or_markup(tree: Path) -> None:
    edit(tree, "devices/sensors.yaml", "id: soil-row-01", "id: soil:x:row")
    edit(tree, "devices/sensors.yaml", "id: weather-mast-01", 'id: "[red]mast\\e[2J"')
    code, output = cli("validate", str(tree), cwd=tree.parent)
    assert code == 1
    assert "ID `soil:x:row` is not valid" in output and "\u274c" not in output
    assert "ID `[red]mast\\x1b[2J` is not valid" in output and "\x1b" not in output


@pytest.mark.parametrize(
    "header",
    [
        'Authorization: "Bearer x\\r\\nX-Injected: 1"',
        "Authorization: {env: MULTILINE}",
        '"X-Evil\\r\\nHost": plain',
    ],
)
def test_finding7_webhook_headers_with_line_breaks_are_rejected(tree: Path, header: str) -> None:
    edit(tree, APPLICATION, HEADER, header)
    error = only_error(load(tree, {"MULTILINE": "Bearer a\nX-Injected: 1"}))
    assert error.location.file.endswith(APPLICATION) and "headers" in (error.location.path or "")
    assert "X-Injected" not in error.message


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("NNSXS.ABC\nDEF", "contains a line break (at character 10)"),
        (
            "NNSXS.ABC\u00e9DEF",
            "contains a character that is not printable ASCII (at character 10)",
        ),
    ],
)
def test_finding7_an_api_key_http_cannot_carry_is_a_located_error(
    tree: Path, key: str, problem: str
) -> None:
    result = load(tree)
    assert tts_project(result.project).target is not None
    with pytest.raises(ManifestError) as raised:
        tts_project(result.project).target.resolve_api_key({"TTS_API_KEY": key})
    (error,) = raised.value.diagnostics
    assert error.location.file == str(tree / "stack.yaml") and error.location.path == "api_key"
    assert error.message == f"API key: the key from env:TTS_API_KEY {problem}"
    code, output = cli(
        "plan", str(tree), "--url", "http://127.0.0.1:9", cwd=tree.parent, env={"TTS_API_KEY": key}
    )
    assert code == 1 and "internal error" not in output, output
    assert f"{tree / 'stack.yaml'}:13:1: error: API key: the key from env:TTS_API_KEY" in output


# --- finding 5: CSV diagnostics quote no cell that may hold a key -------------------------------

SECRETS_CSV = "fleets/soil-fleet.secrets.example.csv"


def secrets_lines(root: Path) -> list[str]:
    return (root / SECRETS_CSV).read_text().splitlines()


def keys_in(lines: list[str]) -> list[str]:
    return [line.split(";")[-1] for line in lines[1:]]


def assert_no_key_or_row(result: LoadResult, lines: list[str]) -> None:
    shown = text_of(result)
    for line in lines[1:]:
        assert line.split(";")[-1] not in shown.upper()
        assert line not in shown and line.replace(";", ",") not in shown


def test_finding5_a_secrets_csv_without_its_header_quotes_no_key(tree: Path) -> None:
    lines = secrets_lines(tree)
    (tree / SECRETS_CSV).write_text("\n".join(lines[1:]) + "\n")
    result = load(tree)
    assert_no_key_or_row(result, lines)
    header_errors = [d for d in errors(result) if d.code == "csv-column"]
    assert [(d.location.line, d.location.column) for d in header_errors] == [(1, 1), (1, 2), (1, 3)]
    header_error = header_errors[2]
    assert header_error.location.path is None
    assert header_error.message.startswith(
        "column 3 of the header is not allowed in a secrets CSV (allowed: id, dev_eui, app_key"
    )
    assert header_error.message.endswith("; is the header line missing?)")


def test_finding5_a_row_with_the_wrong_separator_is_not_printed(tree: Path) -> None:
    lines = secrets_lines(tree)
    wrong = lines[2].replace(";", ",")
    (tree / SECRETS_CSV).write_text("\n".join([*lines[:2], wrong, *lines[3:]]) + "\n")
    result = load(tree)
    assert_no_key_or_row(result, lines)
    (error,) = [d for d in errors(result) if d.location.file.endswith(SECRETS_CSV)]
    assert (error.location.line, error.location.path) == (3, "id")
    assert error.message == "device ID is longer than 36 characters"
    # The same in the fleet CSV itself, where keys may also be written inline (with a warning).
    fleet_csv = tree / "fleets/soil-fleet.csv"
    rows = fleet_csv.read_text().splitlines()
    rows[0] += ";app_key"
    rows[1] = (rows[1] + ";" + keys_in(lines)[0]).replace(";", ",")
    fleet_csv.write_text("\n".join(rows) + "\n")
    result = load(tree)
    assert_no_key_or_row(result, lines)
    assert any(d.location.line == 2 and d.location.path == "id" for d in errors(result))
    assert rows[1] not in text_of(result)


def test_finding5_a_fleet_csv_without_its_header_quotes_no_key(tree: Path) -> None:
    lines = secrets_lines(tree)
    fleet_csv = tree / "fleets/soil-fleet.csv"
    rows = fleet_csv.read_text().splitlines()
    joined = [f"{row};{key}" for row, key in zip(rows[1:], keys_in(lines), strict=False)]
    fleet_csv.write_text("\n".join(joined) + "\n")
    result = load(tree)
    assert_no_key_or_row(result, lines)
    unknown = [d for d in result.diagnostics if d.code == "csv-column"]
    assert unknown and all(d.location.path is None for d in unknown)
    assert all("of the header is not a known column: ignored" in d.message for d in unknown)
    # A header line that is really data may repeat a cell: the message quotes neither.
    fleet_csv.write_text(f"{keys_in(lines)[0]};{keys_in(lines)[0]}\n")
    (error,) = [d for d in errors(load(tree)) if d.code == "csv-duplicate-column"]
    assert error.message == "the header names the same column twice (columns 1 and 2)"


# --- finding 2: parsing cost proportional to the input ------------------------------------------


def test_finding2_dense_yaml_is_refused_before_it_costs_more_than_12x_its_size() -> None:
    dense = ("[" + ", ".join(["{}"] * 50_000) + "]\n").encode()
    built = build_documents(dense, YamlLimits(memory_floor=0))
    assert built.documents == []
    (problem,) = built.problems
    assert problem.code == "yaml-too-dense" and problem.line == 1
    assert f"more than {12 * len(dense):,} bytes of memory" in problem.message
    # Real manifests stay far below: the examples, and a file of many devices.
    devices = "".join(
        f"kind: Device\napplication: app\nid: dev-{n}\ndev_eui: '{n:016X}'\n---\n"
        for n in range(2000)
    ).encode()
    assert not build_documents(devices, YamlLimits(memory_floor=0)).problems
    for path in MANIFESTS.rglob("*.yaml"):
        assert not build_documents(path.read_bytes(), YamlLimits(memory_floor=0)).problems


def test_finding2_a_file_holds_a_bounded_number_of_values() -> None:
    flow = ("[" + ", ".join(["1"] * 1_001) + "]\n").encode()
    (problem,) = build_documents(flow, YamlLimits(max_nodes_per_file=1_000)).problems
    assert problem.code == "yaml-too-many-values"
    assert problem.message == "this file holds more than 1,000 YAML values: split it"


def test_finding2_a_problem_with_a_whole_document_needs_no_position_index(tree: Path) -> None:
    (tree / "list.yaml").write_text("\n\n  [" + ", ".join(["1"] * 10_000) + "]\n")
    before = STATS.position_indexes_built
    error = only_error(load(tree))
    assert (error.location.line, error.location.column) == (3, 3)
    assert error.message == "a manifest document must be a mapping with a `kind`"
    assert STATS.position_indexes_built == before


# --- parsing cost: CSV density -------------------------------------------------------------------


def test_a_fleet_csv_has_at_most_max_csv_rows_rows(tree: Path) -> None:
    """Rows of a byte or two cost far more than their bytes to parse and hold: the file is
    refused at the first row past the cap, located, and not read on (blank lines count)."""
    fleet_csv = tree / "fleets/soil-fleet.csv"
    header = fleet_csv.read_text().splitlines()[0]
    fleet_csv.write_text(header + "\n" + "\n" * files.MAX_CSV_ROWS)
    (error,) = [d for d in errors(load(tree)) if d.code == "too-large"]
    assert error.location.file == str(fleet_csv)
    assert error.location.line == files.MAX_CSV_ROWS + 1
    assert error.message == (
        f"more than {files.MAX_CSV_ROWS:,} rows: a CSV file may have at most "
        f"{files.MAX_CSV_ROWS:,} rows"
    )


def test_a_csv_file_has_at_most_max_csv_cells_cells() -> None:
    with tempfile.TemporaryDirectory() as directory:
        # One line of millions of separators would be one row of millions of cells: refused
        # before the CSV parser builds that row.
        one_line = Path(directory, "one-line.csv")
        one_line.write_text("id;" + ";" * files.MAX_CSV_CELLS + "\n")
        table, (problem,) = load_csv(one_line)
        assert table is None and problem.code == "too-large" and problem.location.line is None
        assert problem.message == (
            f"more than {files.MAX_CSV_CELLS:,} separators: a CSV file may have at most "
            f"{files.MAX_CSV_CELLS:,} cells"
        )
        # Quoted separators are not separators of cells: counted cells, located at their row.
        columns = 1000
        rows = files.MAX_CSV_CELLS // columns  # the header is one of them
        wide = Path(directory, "wide.csv")
        header = ",".join(f"c{n}" for n in range(columns))
        wide.write_text(header + "\n" + ("," * (columns - 1) + '"x;y"\n') * rows)
        table, (problem,) = load_csv(wide)
        assert table is None and problem.location.line == rows + 1
        assert problem.message.startswith(f"more than {files.MAX_CSV_CELLS:,} cells")


def test_the_csv_files_of_a_run_have_capped_rows_and_cells_in_total(tree: Path) -> None:
    fleet_csv = tree / "fleets/soil-fleet.csv"
    rows = len(fleet_csv.read_text().splitlines())
    cells = sum(len(line.split(";")) for line in fleet_csv.read_text().splitlines())
    tree_files = files.ManifestTree.of([tree])
    tree_files.max_csv_rows = rows + 1
    table, problems = load_csv(fleet_csv, tree_files)
    assert table is not None and not problems
    table, (problem,) = load_csv(fleet_csv, tree_files)
    assert table is None and problem.code == "too-large"
    assert problem.message == (
        f"the CSV files of this run have more than {rows + 1:,} rows in total"
    )
    tree_files = files.ManifestTree.of([tree])
    tree_files.max_csv_cells = cells
    assert load_csv(fleet_csv, tree_files)[0] is not None
    table, (problem,) = load_csv(fleet_csv, tree_files)
    assert table is None
    assert problem.message == f"the CSV files of this run have more than {cells:,} cells in total"


# --- a file swapped between its check and its read (time of check to time of use) ------------


def swap_after_check(monkeypatch: pytest.MonkeyPatch, name: str, swap: Callable[[], None]) -> None:
    """Run `swap` right after the reference `name` was resolved and checked to be inside the
    tree, before it is opened: the moment code racing the CI job would aim for."""
    resolve = files.ManifestTree.resolve

    def resolve_then_swap(
        self: files.ManifestTree, reference: str, base_dir: Path, kind: files.FileKind
    ) -> str:
        real = resolve(self, reference, base_dir, kind)
        if reference == name:
            swap()
        return real

    monkeypatch.setattr(files.ManifestTree, "resolve", resolve_then_swap)


CHANGED = "changed while it was being read (a symlink or another kind of file took its place)"


def test_a_secret_file_swapped_for_a_symlink_after_its_check_is_not_read(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tree / "token.txt"
    token.write_text("inside-token\n")
    edit(tree, APPLICATION, HEADER, "Authorization: {file: ../token.txt}")

    def to_symlink() -> None:
        token.unlink()
        token.symlink_to(tree.parent / "outside/secret.txt")

    swap_after_check(monkeypatch, "../token.txt", to_symlink)
    result = load(tree)
    error = only_error(result)
    assert error.location.file == str(tree / APPLICATION) and error.location.line is not None
    assert error.message == f"secret file `../token.txt` {CHANGED}: not read"
    assert OUTSIDE_TEXT not in text_of(result)


def test_a_directory_swapped_for_a_symlink_after_the_check_is_not_followed(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tree / "keys"
    keys.mkdir()
    (keys / "secret.txt").write_text("inside-token\n")
    edit(tree, APPLICATION, HEADER, "Authorization: {file: ../keys/secret.txt}")

    def to_symlink() -> None:
        keys.rename(tree / "keys-before")
        keys.symlink_to(tree.parent / "outside", target_is_directory=True)

    swap_after_check(monkeypatch, "../keys/secret.txt", to_symlink)
    error = only_error(result := load(tree))
    assert error.message == f"secret file `../keys/secret.txt` {CHANGED}: not read"
    assert OUTSIDE_TEXT not in text_of(result)


def test_a_file_swapped_for_a_fifo_after_its_check_is_refused_without_blocking(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tree / "formatters/soil-sensor.js"

    def to_fifo() -> None:
        script.unlink()
        os.mkfifo(script)

    swap_after_check(monkeypatch, "../formatters/soil-sensor.js", to_fifo)
    error = only_error(load(tree))  # no writer ever opens the FIFO: a blocking open would hang
    assert error.message == (
        "script file `../formatters/soil-sensor.js` is not a regular file (a FIFO)"
    )


def test_a_manifest_swapped_for_a_symlink_after_discovery_is_not_read(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tree.parent / "outside/evil.yaml").write_text(f"kind: {OUTSIDE_TEXT}\n")
    manifest = tree / "devices/sensors.yaml"
    discover = loader.discover

    def discover_then_swap(*args: Any, **kwargs: Any) -> Any:
        found = discover(*args, **kwargs)
        manifest.unlink()
        manifest.symlink_to(tree.parent / "outside/evil.yaml")
        return found

    monkeypatch.setattr(loader, "discover", discover_then_swap)
    result = load(tree)
    (error,) = [d for d in errors(result) if d.location.file == str(manifest)]
    assert error.message == "links to a file outside the manifest tree"
    assert OUTSIDE_TEXT not in text_of(result)
