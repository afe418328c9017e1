"""A seeded fuzzer for manifest trees: it mutates a copy of the example tree (`manifests/`) the
way a hostile or careless pull request could, runs validation, and checks what comes out.

One case = one seed: copy the examples into a fresh directory, apply 1-4 random mutations
(text edits of YAML and CSV files, hostile values and file references, special files: FIFOs,
symlinks out of the tree and in loops, oversized sparse files), then load the tree
(`load_manifests`, in-process, under an alarm) and check:

* no exception escapes (the CLI would print "internal error"), and nothing hangs;
* no secret appears in any diagnostic or the summary: the values of `manifests/example.env`,
  the keys of the example secrets CSV, a key file planted in the tree, an unreferenced secret in
  the environment, and the content of a file outside the tree (`/etc/passwd` and
  `/proc/self/environ` included);
* nothing outside the tree is opened while loading (a Python audit hook watches `open`; the
  tool's own package data and the interpreter's files are allowed);
* the case takes less than `MAX_CASE_SECONDS`.

`run_cli_case` runs the same check through the real CLI (`python -m reconciler validate`,
exit code 0 or 1, no traceback). `tests/fuzz/test_fuzz.py` runs a few hundred cases in `make
test`; `bench/fuzz_manifests.py` runs thousands and prints the totals as JSON.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import reconciler
from reconciler.manifest.load import load_manifests
from reconciler.providers.registry import MANIFEST_KINDS

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests"
MAX_CASE_SECONDS = 10.0
# Planted by every case: a key file inside the tree (its content is a secret) and a file
# outside it (its content must never be read).
KEY_FILE_TEXT = "6B1D5E4F0A3C2B19887766554433AA11"
OUTSIDE_TEXT = "FOREIGN-FILE-CONTENT-5b9d0c"
UNREFERENCED_SECRET = "ci-deploy-token-0f8e7d6c5b4a"
FOREIGN_MARKERS = ("root:x:0:0", OUTSIDE_TEXT)


def example_environ() -> dict[str, str]:
    environ: dict[str, str] = {}
    for raw in (EXAMPLES / "example.env").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            environ[key] = value.strip().strip('"')
    return environ


def secret_values() -> list[str]:
    """Every value no output may contain (compared case-insensitively)."""
    values = [v for v in example_environ().values() if len(v) >= 8]
    for line in (EXAMPLES / "fleets/soil-fleet.secrets.example.csv").read_text().splitlines()[1:]:
        values.append(line.split(";")[-1])
    values += [KEY_FILE_TEXT, UNREFERENCED_SECRET, *FOREIGN_MARKERS]
    return values


# --- mutations ----------------------------------------------------------------------------------

HOSTILE_VALUES = [
    "{file: /proc/self/environ}",
    "{file: /etc/passwd}",
    "{file: ../../outside/secret.txt}",
    "{file: OUTSIDE/secret.txt}",
    "{file: /dev/zero}",
    "{file: /dev/urandom}",
    "{file: ../keys/node.key}",
    "{file: ../special/fifo}",
    "{file: ../special/loop}",
    "{file: ../special/big}",
    "{file: ../special/out-link}",
    "{file: ../special}",
    "{file: " + "x" * 5000 + "}",
    "{file: " + "d/" * 300 + "}",
    "{file: '\\0'}",
    "{env: UNREFERENCED_SECRET}",
    "{env: ORCHARD_WEBHOOK_TOKEN}",
    "{env: SOIL_ROW_01_APP_KEY}",
    "{env: }",
    "{file: }",
    "{env: A, file: B}",
    "soil:x:row",
    "'[red]bold[/red] :x: :smile:'",
    '"line\\r\\nX-Injected: yes"',
    '"\\e[2J\\u2028"',
    "null",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]",
    "!!python/object/apply:os.system [id]",
    "!!binary aGVsbG8=",
    "*nowhere",
    "&a [*a]",
    "1" + "0" * 5000,
    "0x" + "F" * 40,
    ".inf",
    "-.nan",
    "2024-01-01",
    "yes",
    '"' + "A" * 50000 + '"',
    "'NNSXS.ABC\u00e9DEF'",
    "env:SOIL_ROW_01_APP_KEY",
    "file:../keys/node.key",
    "file:/etc/passwd",
]
HOSTILE_PATHS = [
    "/etc/passwd",
    "/proc/self/environ",
    "/dev/zero",
    "../../outside/secret.txt",
    "OUTSIDE/secret.txt",
    "../keys/node.key",
    "../special/fifo",
    "../special/loop",
    "../special/big",
    "../special/out-link",
    "../special",
    "../stack.yaml",
    "x" * 5000,
    "nonexistent.csv",
    "'\\0'",
]
PATH_KEYS = (
    "csv",
    "secrets_csv",
    "up_formatter_parameter_file",
    "down_formatter_parameter_file",
    "ca_bundle",
)
CSV_CELLS = [
    "",
    ";;;;",
    '"unclosed',
    "file:/etc/passwd",
    "file:../../outside/secret.txt",
    "file:../keys/node.key",
    "env:UNREFERENCED_SECRET",
    "env:SOIL_ROW_01_APP_KEY",
    "x" * 200_000,
    "soil:x:row",
    "\x00",
    "\ufeff",
]


@dataclass
class Case:
    seed: int
    root: Path  # the tree that is loaded
    outside: Path  # a sibling directory the tree must not read
    mutations: list[str] = field(default_factory=list)
    # Directories the Stack document allows (`allow_files_from`): reading there is permitted.
    allowed: list[Path] = field(default_factory=list)


def scratch_directory() -> str | None:
    """Where cases are best built: tmpfs when there is one (creating and removing a tree there
    is about 15x faster than on a disk file system)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def build_case(seed: int, workdir: Path) -> Case:
    """A mutated copy of the examples under `workdir` (emptied first)."""
    if workdir.exists():
        shutil.rmtree(workdir)
    root = workdir / "tree"
    for relative, data in _example_files().items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    outside = workdir / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(OUTSIDE_TEXT + "\n")
    (root / "keys").mkdir()
    (root / "keys/node.key").write_text(KEY_FILE_TEXT + "\n")
    case = Case(seed, root, outside)
    rng = random.Random(seed)
    for _ in range(rng.randint(1, 4)):
        mutation = rng.choice(MUTATIONS)
        case.mutations.append(mutation(case, rng))
    return case


@functools.cache
def _example_files() -> dict[Path, bytes]:
    """The example tree, read once (writing it is faster than copying it for every case)."""
    return {
        path.relative_to(EXAMPLES): path.read_bytes()
        for path in sorted(EXAMPLES.rglob("*"))
        if path.is_file()
    }


def _editable(path: Path) -> bool:
    """A regular file small enough to edit (not one a mutation replaced)."""
    return not path.is_symlink() and path.is_file() and path.stat().st_size < 1024 * 1024


def _yaml_files(case: Case) -> list[Path]:
    return sorted(p for p in case.root.rglob("*.yaml") if _editable(p)) or [case.root / "x.yaml"]


def _csv_files(case: Case) -> list[Path]:
    return sorted(p for p in case.root.rglob("*.csv") if _editable(p)) or [case.root / "x.csv"]


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return [""]
    return path.read_text(encoding="utf-8", errors="replace").split("\n")


def _outside(case: Case, text: str) -> str:
    return text.replace("OUTSIDE", str(case.outside))


def replace_value(case: Case, rng: random.Random) -> str:
    """A `key: value` line's value becomes a hostile value (a reference, a tag, a bomb...)."""
    path = rng.choice(_yaml_files(case))
    lines = _lines(path)
    candidates = [i for i, line in enumerate(lines) if ": " in line and not line.startswith("#")]
    if not candidates:
        return "replace_value: none"
    index = rng.choice(candidates)
    key = lines[index].split(": ", 1)[0]
    value = _outside(case, rng.choice(HOSTILE_VALUES))
    lines[index] = f"{key}: {value}"
    path.write_text("\n".join(lines), encoding="utf-8")
    return f"replace_value {path.name}:{index + 1}"


def hostile_path(case: Case, rng: random.Random) -> str:
    """A file reference (CSV, formatter script, CA bundle, API key) names a hostile path."""
    path = rng.choice(_yaml_files(case))
    key = rng.choice(PATH_KEYS)
    target = _outside(case, rng.choice(HOSTILE_PATHS))
    text = "\n".join(_lines(path))
    if rng.random() < 0.3:
        text = text.replace("api_key: {env: TTS_API_KEY}", f"api_key: {{file: {target}}}")
        key = "api_key"
    elif f"\n{key}:" in text or f" {key}:" in text:
        lines = [
            f"{line.split(':', 1)[0]}: {target}" if line.strip().startswith(f"{key}:") else line
            for line in text.split("\n")
        ]
        text = "\n".join(lines)
    elif "kind: Stack" in text:
        text += f"\nca_bundle: {target}\n"
        key = "ca_bundle"
    else:
        text = text.replace(
            "  up_formatter: FORMATTER_JAVASCRIPT",
            f"  up_formatter: FORMATTER_JAVASCRIPT\n  down_formatter_parameter_file: {target}",
        )
    path.write_text(text, encoding="utf-8")
    return f"hostile_path {path.name} {key}"


def allow_directory(case: Case, rng: random.Random) -> str:
    """The Stack allows a directory (sometimes a system one, or the outside directory)."""
    directory = rng.choice(["/", "/proc", "/dev", "/etc", "../outside", "..", "keys", "nowhere"])
    stack = case.root / "stack.yaml"
    if _editable(stack):
        stack.write_text("\n".join(_lines(stack)) + f"\nallow_files_from: [{directory}]\n")
        case.allowed.append(case.root / directory)
    return f"allow_directory {directory}"


def edit_bytes(case: Case, rng: random.Random) -> str:
    """Byte-level damage: delete, duplicate, truncate, or insert odd bytes."""
    files = _yaml_files(case) + _csv_files(case)
    path = rng.choice(files)
    data = bytearray(path.read_bytes() if path.exists() else b"")
    operation = rng.choice(["delete", "duplicate", "truncate", "insert", "indent"])
    at = rng.randrange(len(data) + 1)
    if operation == "delete":
        del data[at : at + rng.randint(1, 40)]
    elif operation == "duplicate":
        data[at:at] = data[at : at + rng.randint(1, 200)]
    elif operation == "truncate":
        del data[at:]
    elif operation == "insert":
        data[at:at] = rng.choice(
            [b"\x00", b"\xff\xfe", b"\t", b"\r", b": ", b"- ", b"[", b"{", b"&x ", b"*x", b"\xc3"]
        )
    else:
        lines = bytes(data).split(b"\n")
        index = rng.randrange(len(lines))
        lines[index] = b"  " + lines[index]
        data = bytearray(b"\n".join(lines))
    path.write_bytes(bytes(data))
    return f"edit_bytes {path.name} {operation}"


def edit_csv(case: Case, rng: random.Random) -> str:
    """CSV damage: the header dropped, a wrong separator, a hostile or huge cell, a column
    repeated."""
    files = _csv_files(case)
    path = rng.choice(files)
    lines = _lines(path)
    operation = rng.choice(["drop-header", "separator", "cell", "duplicate-column", "quote"])
    if operation == "drop-header":
        lines = lines[1:]
    elif operation == "separator" and len(lines) > 2:
        index = rng.randrange(1, len(lines) - 1)
        lines[index] = lines[index].replace(";", ",")
    elif operation == "cell" and len(lines) > 2:
        index = rng.randrange(1, len(lines) - 1)
        cells = lines[index].split(";")
        cells[rng.randrange(len(cells))] = _outside(case, rng.choice(CSV_CELLS))
        lines[index] = ";".join(cells)
    elif operation == "duplicate-column":
        lines[0] = lines[0] + ";" + lines[0].split(";")[-1]
    else:
        lines.insert(rng.randrange(len(lines)), '"a;"b"')
    path.write_text("\n".join(lines), encoding="utf-8")
    return f"edit_csv {path.name} {operation}"


def special_files(case: Case, rng: random.Random) -> str:
    """Special files the references above may name, and one in place of a tree file: a FIFO,
    a symlink out of the tree, a symlink loop, a sparse file over every cap."""
    special = case.root / "special"
    if special.exists():
        return "special_files again"
    special.mkdir()
    os.mkfifo(special / "fifo")
    (special / "out-link").symlink_to(case.outside / "secret.txt")
    (special / "loop").symlink_to(special / "loop")
    with (special / "big").open("wb") as stream:
        stream.truncate(300 * 1024 * 1024)
    victims = _yaml_files(case) + _csv_files(case) + [case.root / "formatters/soil-sensor.js"]
    victim = rng.choice([v for v in victims if v.exists()] or [case.root / "x.yaml"])
    victim.unlink(missing_ok=True)
    kind = rng.choice(["fifo", "out-link", "loop", "big", "etc-link", "dir"])
    if kind == "fifo":
        os.mkfifo(victim)
    elif kind == "out-link":
        victim.symlink_to(case.outside / "secret.txt")
    elif kind == "loop":
        victim.symlink_to(victim)
    elif kind == "big":
        with victim.open("wb") as stream:
            stream.truncate(300 * 1024 * 1024)
    elif kind == "etc-link":
        victim.symlink_to("/etc/passwd")
    else:
        victim.mkdir()
    return f"special_files {victim.name} {kind}"


def dense_yaml(case: Case, rng: random.Random) -> str:
    """A manifest file of dense hostile YAML (a long flow list, an alias chain, deep nesting)."""
    shape = rng.choice(["flow", "aliases", "deep", "keys"])
    if shape == "flow":
        text = "[" + ", ".join(["{}"] * 5_000) + "]\n"
    elif shape == "aliases":
        text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
    elif shape == "deep":
        text = "[" * 10_000 + "]" * 10_000 + "\n"
    else:
        text = "kind: Device\n" + "".join(f"k{i}: v\n" for i in range(1000))
    (case.root / f"dense-{shape}.yaml").write_text(text)
    return f"dense_yaml {shape}"


MUTATIONS: list[Callable[[Case, random.Random], str]] = [
    replace_value,
    replace_value,
    hostile_path,
    hostile_path,
    allow_directory,
    edit_bytes,
    edit_bytes,
    edit_csv,
    special_files,
    dense_yaml,
]


# --- running and checking -----------------------------------------------------------------------


class Hang(Exception):
    """A case ran past its alarm."""


@dataclass
class Outcome:
    seed: int
    mutations: list[str]
    seconds: float = 0.0
    internal_error: str | None = None
    hang: bool = False
    leaks: list[str] = field(default_factory=list)
    outside_reads: list[str] = field(default_factory=list)
    exit_code: int | None = None
    harness_error: str | None = None  # the mutation itself failed (a bug of the fuzzer)

    @property
    def ok(self) -> bool:
        return not (
            self.internal_error
            or self.hang
            or self.leaks
            or self.outside_reads
            or self.harness_error
        )


class OpenAudit:
    """Records files opened while active (a `sys.addaudithook` hook cannot be removed, so one
    instance is installed per process and switched on around each case)."""

    _installed: OpenAudit | None = None

    def __init__(self) -> None:
        self.active = False
        self.opened: list[str] = []

    @classmethod
    def get(cls) -> OpenAudit:
        if cls._installed is None:
            audit = cls()
            sys.addaudithook(audit._hook)
            cls._installed = audit
        return cls._installed

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.active and event == "open" and args and isinstance(args[0], str | bytes):
            name = args[0].decode(errors="replace") if isinstance(args[0], bytes) else args[0]
            self.opened.append(name)

    @contextmanager
    def watching(self) -> Iterator[list[str]]:
        self.opened = []
        self.active = True
        try:
            yield self.opened
        finally:
            self.active = False


# Files the tool may open that are not manifests: its own package data and the interpreter's.
_ALLOWED_PREFIXES = tuple(
    os.path.realpath(p) + os.sep
    for p in {Path(reconciler.__file__).parent, Path(sys.prefix), Path(sys.base_prefix)}
)


def _is_package_metadata(real: str) -> bool:
    """The metadata of an installed distribution (`*.dist-info`, `*.egg-info` in a directory
    on sys.path): pydantic reads it to look for plugins when it builds its first validator,
    which happens while the first case is loaded (validators are built on first use)."""
    folder = os.path.dirname(real)
    on_path = {os.path.realpath(entry or ".") for entry in sys.path}
    return folder.endswith((".dist-info", ".egg-info")) and os.path.dirname(folder) in on_path


# Never readable, whatever the Stack allows.
_SYSTEM = ("/", "/proc", "/sys", "/dev")


def outside_reads(opened: list[str], root: Path, allowed: list[Path]) -> list[str]:
    """Opened files outside the tree and the non-system directories the Stack allowed."""
    permitted = [os.path.realpath(root) + os.sep]
    for directory in allowed:
        real = os.path.realpath(directory)
        system = real in _SYSTEM or real.startswith(("/proc/", "/sys/", "/dev/"))
        if not system or real.startswith("/dev/shm/"):  # tmpfs, where cases are built
            permitted.append(real + os.sep)
    bad = []
    for name in opened:
        real = os.path.realpath(os.path.join(root, name))
        if not (real + os.sep).startswith(tuple(permitted)) and not (
            real.startswith(_ALLOWED_PREFIXES) or _is_package_metadata(real)
        ):
            bad.append(name)
    return bad


def find_leaks(text: str, secrets: list[str]) -> list[str]:
    folded = text.casefold()
    return [secret for secret in secrets if secret.casefold() in folded]


@contextmanager
def alarm(seconds: float) -> Iterator[None]:
    def on_alarm(_signum: int, _frame: FrameType | None) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_case(seed: int, workdir: Path, secrets: list[str]) -> Outcome:
    """Build case `seed` and validate it in-process."""
    try:
        case = build_case(seed, workdir)
    except Exception as error:
        return Outcome(seed, [], harness_error=f"{type(error).__name__}: {error}")
    outcome = Outcome(seed, case.mutations)
    environ = {**example_environ(), "UNREFERENCED_SECRET": UNREFERENCED_SECRET}
    audit = OpenAudit.get()
    start = time.perf_counter()
    text = ""
    try:
        with alarm(MAX_CASE_SECONDS), audit.watching() as opened:
            result = load_manifests([case.root], environ=environ, kinds=MANIFEST_KINDS)
            text = "\n".join([*(str(d) for d in result.diagnostics), result.summary()])
            outcome.exit_code = 1 if result.has_errors else 0
    except Hang:
        outcome.hang = True
    except Exception as error:  # what the CLI would report as an internal error
        outcome.internal_error = f"{type(error).__name__}: {str(error)[:200]}"
    outcome.seconds = time.perf_counter() - start
    outcome.leaks = find_leaks(text, secrets)
    outcome.outside_reads = outside_reads(opened, case.root, case.allowed)
    return outcome


def run_cli_case(seed: int, workdir: Path, secrets: list[str]) -> Outcome:
    """Build case `seed` and validate it with the real CLI in a child process."""
    try:
        case = build_case(seed, workdir)
    except Exception as error:
        return Outcome(seed, [], harness_error=f"{type(error).__name__}: {error}")
    outcome = Outcome(seed, case.mutations)
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "NO_COLOR": "1",
        "COLUMNS": "200",
        **example_environ(),
        "UNREFERENCED_SECRET": UNREFERENCED_SECRET,
    }
    start = time.perf_counter()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "reconciler", "validate", str(case.root)],
            env=environ,
            capture_output=True,
            text=True,
            timeout=MAX_CASE_SECONDS + 20,  # interpreter start-up on a busy machine
            check=False,
        )
    except subprocess.TimeoutExpired:
        outcome.hang = True
        return outcome
    outcome.seconds = time.perf_counter() - start
    outcome.exit_code = process.returncode
    output = process.stdout + process.stderr
    if process.returncode not in (0, 1) or "internal error" in output or "Traceback" in output:
        outcome.internal_error = f"exit {process.returncode}: {output[-300:]}"
    outcome.leaks = find_leaks(output, secrets)
    return outcome
