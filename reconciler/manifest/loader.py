"""Files -> located documents: manifest discovery, YAML documents and CSV fleets.

Every problem is returned as a located `Diagnostic`; nothing here raises on bad input.

Hostile-input policy (limits are the module constants below):

* Files: only regular files are read, without blocking (a FIFO in the tree is an error, not a
  hang); a symlink that leads out of the tree is an error (see `reconciler.manifest.files`).
* Size: a YAML file larger than `files.MANIFEST_FILE` (16 MiB), a CSV file larger than
  `files.CSV_FILE` (64 MiB), or past `files.MAX_TREE_BYTES` (256 MiB) for all files, is rejected
  without reading further.
* CSV density: a CSV file may have at most `files.MAX_CSV_ROWS` rows and `files.MAX_CSV_CELLS`
  cells (a file with more separators than that is refused before parsing: one line of
  millions of `;` would be one row of millions of cells), and all CSV files of a run at most
  `files.MAX_TREE_CSV_ROWS` and `files.MAX_TREE_CSV_CELLS`.
* Encoding: files must be UTF-8 (a leading BOM is fine). A NUL byte means a binary file; an
  invalid UTF-8 sequence is reported with its line, column and byte offset.
* YAML scalars longer than `YAML_LIMITS.max_scalar_chars` (1 MiB; TTS formatter scripts are at
  most 40,960 characters) and CSV cells longer than the csv module's field limit (128 KiB) are
  rejected.
* Nesting deeper than `YAML_LIMITS.max_depth` collections is rejected. Parsing never recurses
  per level (see `yaml_build`), so no input depth can overflow a stack.
* Aliases ("billion laughs"): anchors and aliases are allowed, but the nodes aliases add to a
  document, counted fully expanded, may not exceed max(100,000, 10 x the nodes written). Data
  stays shared (never copied), and a recursive alias is an error.
* Duplicate mapping keys are errors located at the second key, naming the first key's line.
* Only standard YAML tags are accepted (`!!python/object` and the like are errors); values are
  plain Python: dict, list, str, int, float, bool, None. Timestamps stay strings.

Positions: valid input is parsed once, by libyaml, without recording positions. Each document's
`locator` builds a position index for its file on first use (one more libyaml pass) and caches it
for all documents of that file; `STATS.position_indexes_built` counts those passes.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.diagnostics import Diagnostic, Location
from reconciler.manifest import files
from reconciler.manifest.documents import CsvRow, CsvTable, Document, YamlPath
from reconciler.manifest.yaml_build import (
    NodePosition,
    YamlLimits,
    build_documents,
    build_positions,
    locate_in,
)

YAML_LIMITS = YamlLimits()
YAML_SUFFIXES = (".yaml", ".yml")
# More problems than this in one file are not worth listing (the first ones are the useful ones).
MAX_DIAGNOSTICS_PER_FILE = 100


@dataclass
class LoaderStats:
    """Introspectable counters (tests use them to prove positions are computed lazily)."""

    yaml_files_parsed: int = 0
    position_indexes_built: int = 0


STATS = LoaderStats()


def discover(
    paths: Sequence[Path], suffixes: Sequence[str] = YAML_SUFFIXES
) -> tuple[list[Path], list[Diagnostic]]:
    """Manifest files under `paths`: files as given (their suffix must match), directories
    searched recursively, skipping hidden directories and files. Each root's files are sorted;
    roots keep the given order; a file reached twice is listed once. A file that is not a
    regular file (a FIFO, a device) or a symlink leading out of its root is an error; nothing
    is opened here."""
    found: list[Path] = []
    diagnostics: list[Diagnostic] = []
    seen: set[str] = set()
    wanted = tuple(suffix.lower() for suffix in suffixes)

    def add(path: Path, tree: files.ManifestTree) -> None:
        problem = _unreadable(path, tree)
        if problem is not None:
            diagnostics.append(_file_problem(str(path), problem, "file-type"))
            return
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            found.append(path)

    for root in paths:
        try:
            kind = _kind_of(root)
        except (OSError, ValueError) as error:
            diagnostics.append(
                _file_problem(
                    files.shown_name(str(root)),
                    f"cannot read: {files.os_error_reason(error)}",
                    "io",
                )
            )
            continue
        tree = files.ManifestTree.of([root])
        if kind == "dir":
            found_files: list[Path] = []

            def walk_error(error: OSError, root: Path = root) -> None:
                where = error.filename or str(root)
                diagnostics.append(
                    _file_problem(where, f"cannot read: {files.os_error_reason(error)}", "io")
                )

            for directory, subdirs, names in os.walk(root, onerror=walk_error):
                subdirs[:] = [name for name in subdirs if not name.startswith(".")]
                found_files.extend(
                    Path(directory, name)
                    for name in names
                    if not name.startswith(".") and name.lower().endswith(wanted)
                )
            for path in sorted(found_files, key=lambda p: p.parts):
                add(path, tree)
        elif kind == "file":
            if root.name.lower().endswith(wanted):
                add(root, tree)
            else:
                diagnostics.append(
                    _file_problem(
                        str(root),
                        f"not a manifest file: expected a name ending in {', '.join(suffixes)}",
                        "file-type",
                    )
                )
        elif kind == "other":
            diagnostics.append(_file_problem(str(root), "not a file or directory", "file-type"))
        else:
            diagnostics.append(_file_problem(str(root), "no such file or directory", "not-found"))
    return found, diagnostics


def _kind_of(path: Path) -> str:
    """`dir`, `file`, `other` or `missing` (symlinks followed)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def _unreadable(path: Path, tree: files.ManifestTree) -> str | None:
    """Why a manifest file found under a root must not be read, if it must not."""
    try:
        real = os.path.realpath(path, strict=True)
        mode = os.stat(real).st_mode
    except (OSError, ValueError, RuntimeError) as error:
        return f"cannot read: {files.os_error_reason(error)}"
    if not tree.contains(real):
        return "links to a file outside the manifest tree"
    if not stat.S_ISREG(mode):
        return f"not a regular file ({files.file_type(mode)}): not read"
    return None


def load_yaml_file(
    path: Path, tree: files.ManifestTree | None = None
) -> tuple[list[Document], list[Diagnostic]]:
    """One `Document` per non-empty YAML document in `path`, plus located problems. With a
    `tree`, the file counts against its per-tree cap."""
    file = str(path)
    source, problem = _read_checked(path, files.MANIFEST_FILE, tree)
    if problem is not None:
        return [], [problem]
    assert source is not None
    STATS.yaml_files_parsed += 1
    built = build_documents(source, YAML_LIMITS)
    diagnostics = [
        Diagnostic(Location(file, p.line, p.column), p.message, p.severity, p.code)
        for p in built.problems[:MAX_DIAGNOSTICS_PER_FILE]
    ]
    positions = _FilePositions(source, built.roots)
    documents = [
        Document(file, index, data, positions.locator(index)) for index, data in built.documents
    ]
    return documents, diagnostics


class _FilePositions:
    """The lazily built position index of one file, shared by its documents."""

    def __init__(self, source: bytes, document_roots: dict[int, tuple[int, int]]) -> None:
        self._source: bytes | None = source
        self._roots: list[NodePosition | None] | None = None
        self._document_roots = document_roots

    def locator(self, index: int) -> _Locator:
        return _Locator(self, index)

    def locate(self, index: int, path: YamlPath) -> tuple[int, int]:
        if not path and index in self._document_roots:
            return self._document_roots[index]  # known without an index
        if self._roots is None:
            assert self._source is not None
            limits = YAML_LIMITS
            max_bytes = limits.index_bytes_per_byte * len(self._source) + limits.memory_floor
            self._roots = build_positions(self._source, limits.max_depth, max_bytes)
            self._source = None  # the index replaces the text
            STATS.position_indexes_built += 1
        root = self._roots[index] if index < len(self._roots) else None
        if root is None:  # not indexed (the index stops at its memory limit): the document
            return self._document_roots.get(index, (1, 1))
        return locate_in(root, path)


@dataclass(frozen=True, slots=True)
class _Locator:
    positions: _FilePositions
    index: int

    def __call__(self, path: YamlPath) -> tuple[int, int]:
        return self.positions.locate(self.index, path)


def load_csv(
    path: Path, tree: files.ManifestTree | None = None
) -> tuple[CsvTable | None, list[Diagnostic]]:
    """A fleet in The Things Stack CSV format: a header line naming the columns, then one
    device per row. The separator is `;` or `,`, whichever the header line has more of (`,`
    on a tie). Quoting follows RFC 4180, so a quoted cell may span lines; `CsvRow.line` is the
    line a row starts on. Header names and cells are stripped; empty cells are left out of
    `CsvRow.values`, as are cells under an unnamed header column; blank rows are skipped. A
    row with more non-empty cells than the header has columns is an error (empty extra cells
    from trailing separators are tolerated); rows with fewer cells are read with the missing
    cells empty, with one warning per file. Which columns are known is the models' business.

    Returns no table when the file cannot be parsed as a whole (size, encoding, quoting,
    missing header, duplicate column names)."""
    file = str(path)
    source, problem = _read_checked(path, files.CSV_FILE, tree)
    if problem is not None:
        return None, [problem]
    assert source is not None
    text = source.decode("utf-8-sig")
    separator = _detect_separator(text)
    if text.count(separator) >= files.MAX_CSV_CELLS:
        return None, [
            _file_problem(
                file,
                f"more than {files.MAX_CSV_CELLS:,} separators: a CSV file may have at most "
                f"{files.MAX_CSV_CELLS:,} cells",
                "too-large",
            )
        ]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True)
    row_count = cell_count = 0
    header: list[str] | None = None
    header_line = 0
    rows: list[CsvRow] = []
    diagnostics: list[Diagnostic] = []
    previous_end = 0  # reader.line_num after the previous record
    short_rows: list[int] = []  # lines of rows with fewer cells than the header
    while True:
        start = previous_end + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            message, line = str(error), reader.line_num
            if "unexpected end of data" in message:
                message, line = f"unclosed quote in the row starting at line {start}", start
            return None, [*diagnostics, _file_problem(file, message, "csv-syntax", line)]
        previous_end = reader.line_num
        row_count += 1
        cell_count += len(cells)
        if row_count > files.MAX_CSV_ROWS or cell_count > files.MAX_CSV_CELLS:
            what, cap = (
                ("rows", files.MAX_CSV_ROWS)
                if row_count > files.MAX_CSV_ROWS
                else ("cells", files.MAX_CSV_CELLS)
            )
            message = f"more than {cap:,} {what}: a CSV file may have at most {cap:,} {what}"
            return None, [*diagnostics, _file_problem(file, message, "too-large", start)]
        if header is None:
            if not any(cell.strip() for cell in cells):
                continue
            header, header_line = [cell.strip() for cell in cells], start
            duplicate = _duplicate_column(file, header, header_line)
            if duplicate is not None:
                return None, [duplicate]
            continue
        if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header) :]):
            if len(diagnostics) < MAX_DIAGNOSTICS_PER_FILE:
                diagnostics.append(
                    Diagnostic(
                        Location(file, start, len(header) + 1),
                        f"row has {len(cells)} cells but the header (line {header_line}) "
                        f"names {len(header)} columns",
                        code="csv-extra-cells",
                    )
                )
            continue
        values = {
            name: value
            for name, cell in zip(header, cells, strict=False)
            if name and (value := cell.strip())
        }
        if values:
            rows.append(CsvRow(start, values))
            if len(cells) < len(header):
                short_rows.append(start)
    if header is None:
        return None, [_file_problem(file, "empty CSV file: no header line", "csv-header")]
    if tree is not None:
        try:
            tree.count_csv(row_count, cell_count)
        except files.FileRefError as error:
            return None, [*diagnostics, _file_problem(file, str(error), "too-large")]
    if short_rows:
        # Spreadsheets drop trailing empty cells, so a short row is read with those cells
        # empty; said once per file, since a shifted row would put values under wrong columns.
        more = f" and {len(short_rows) - 1} more row(s)" if len(short_rows) > 1 else ""
        diagnostics.append(
            Diagnostic(
                Location(file, short_rows[0]),
                f"row has fewer cells than the header (line {header_line}) names columns"
                f"{more}: the missing cells are read as empty",
                "warning",
                code="csv-missing-cells",
            )
        )
    return CsvTable(file, separator, header, rows, header_line), diagnostics


def _detect_separator(text: str) -> str:
    for line in io.StringIO(text, newline=""):
        if line.strip():
            return ";" if line.count(";") > line.count(",") else ","
    return ","


def _duplicate_column(file: str, header: list[str], line: int) -> Diagnostic | None:
    first: dict[str, int] = {}
    for column, name in enumerate(header, start=1):
        if name and name in first:
            # Not quoted: a header line may really be a row of data (keys included).
            return Diagnostic(
                Location(file, line, column),
                f"the header names the same column twice (columns {first[name]} and {column})",
                code="csv-duplicate-column",
            )
        first.setdefault(name, column)
    return None


def _read_checked(
    path: Path, kind: files.FileKind, tree: files.ManifestTree | None
) -> tuple[bytes | None, Diagnostic | None]:
    """The file's bytes, if it is a readable regular UTF-8 text file within its caps."""
    file = str(path)
    try:
        if tree is None:
            source = files.read_regular(file, kind, "file")
        else:
            source = tree.read_counted(path, kind)
    except files.FileRefError as error:
        code = "too-large" if isinstance(error, files.FileTooLarge) else "io"
        return None, _file_problem(file, str(error), code)
    if source.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, _file_problem(file, "file is UTF-16 encoded: save it as UTF-8", "encoding", 1)
    nul = source.find(b"\x00")
    if nul >= 0:
        line, column = _line_column(source, nul)
        return None, _file_problem(
            file, f"binary file: NUL byte at offset {nul}", "binary", line, column
        )
    try:
        source.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_column(source, error.start)
        byte = source[error.start]
        return None, _file_problem(
            file,
            f"not valid UTF-8: byte 0x{byte:02X} at offset {error.start}",
            "encoding",
            line,
            column,
        )
    return source, None


def _line_column(source: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    line_start = source.rfind(b"\n", 0, offset) + 1
    column = len(source[line_start:offset].decode("utf-8", "replace")) + 1
    return source.count(b"\n", 0, offset) + 1, column


def _file_problem(
    file: str, message: str, code: str, line: int | None = None, column: int | None = None
) -> Diagnostic:
    return Diagnostic(Location(file, line, column), message, code=code)
