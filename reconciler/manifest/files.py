"""Reading the files manifests name: they are untrusted input.

In GitOps the manifests arrive in pull requests, and CI runs `plan` with the deployment's
secrets in its environment. A path a manifest names (`{file: ...}` secrets and `file:` CSV
cells, formatter scripts, fleet and secrets CSVs, the CA bundle, the API key file) could
otherwise make the tool read `/proc/self/environ` or `~/.ssh/id_rsa` and upload it with a
webhook, or block it on a FIFO. So every such path:

* resolves, symlinks followed, inside the manifest tree: one of the directories given on the
  command line (for a file argument, its directory), or a directory the Stack document lists
  in `allow_files_from`. The check is made on the name first (so a name outside the tree is
  refused without looking at the file system) and again on the real path;
* is never under `/proc`, `/sys` or `/dev` (except the tmpfs `/dev/shm`), whatever the roots:
  their "regular files" hold the process's environment and memory, and their devices never
  end;
* names a regular file (not a FIFO, socket, device or directory); files are opened without
  blocking and read up to the cap of their kind (`FileKind`), never further;
* is opened as the file that was checked, not whatever its name points to a moment later: the
  real path is walked from the tree's directory that holds it, one component at a time,
  without following symlinks (a directory or the file swapped for a symlink after the check is
  refused), a file that is not regular is refused before it is opened, and the opened
  descriptor must be that same regular file (`fstat`: device and inode);
* fails as a `FileRefError` whose message names the reference and what is wrong with it, never
  any of the file's content. Symlink loops and over-long names are such errors too.

Manifest files themselves are found by `loader.discover`, which applies the same rules to what
it walks; `ManifestTree.read_manifest` reads them under the per-file and per-tree caps.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
# Formatter scripts: The Things Stack accepts at most this many characters.
FORMATTER_SCRIPT_MAX_CHARS = 40960


@dataclass(frozen=True)
class FileKind:
    """What a file is for, and how much of it may be read."""

    label: str  # "secret file": used in messages
    max_bytes: int


# A key, token or header value: the longest is a 4,096-character header value.
SECRET_FILE = FileKind("secret file", 64 * KIB)
# UTF-8 needs at most 4 bytes a character; the character limit is checked after decoding.
SCRIPT_FILE = FileKind("script file", 4 * FORMATTER_SCRIPT_MAX_CHARS)
CA_BUNDLE = FileKind("CA bundle", 1 * MIB)
CSV_FILE = FileKind("CSV file", 64 * MIB)
# YAML costs up to 20x its size in memory while parsing (see `yaml_build`), so less than CSV.
MANIFEST_FILE = FileKind("manifest file", 16 * MIB)
# All manifest and CSV files of one run together.
MAX_TREE_BYTES = 256 * MIB
# CSV density: within the byte cap, a file of `;;;;` or of one-character lines would still
# give tens of millions of cells or rows, each costing far more memory than its bytes. A fleet
# of 100,000 devices has 100,000 rows of about 10 cells (and as many rows in its secrets CSV).
MAX_CSV_ROWS = 200_000  # per file (blank lines count: the parser reads them too)
MAX_CSV_CELLS = 4_000_000  # per file (empty cells count)
MAX_TREE_CSV_ROWS = 1_000_000  # all CSV files of one run together
MAX_TREE_CSV_CELLS = 10_000_000
# Longer names are refused before the file system sees them (Linux allows 4,096 bytes).
MAX_NAME_CHARS = 1024
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")
OUTSIDE_HINT = (
    " (only files under the directories given on the command line, or listed in the Stack's "
    "`allow_files_from`, may be read)"
)


class FileRefError(ValueError):
    """A file a manifest names cannot be read; the message names it, never its content."""


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def is_pseudo_filesystem(path: str) -> bool:
    if _within(path, "/dev/shm"):  # an ordinary tmpfs
        return False
    return any(_within(path, root) for root in PSEUDO_FILESYSTEMS)


def _real_directory(path: Path) -> str:
    """The real path of a root directory (a file argument's directory)."""
    directory = path if path.is_dir() else path.parent
    return os.path.realpath(os.path.abspath(directory))


@dataclass
class ManifestTree:
    """The directories manifests may read from, and the bytes the run has read so far."""

    roots: tuple[str, ...]  # real paths
    max_tree_bytes: int = MAX_TREE_BYTES
    max_csv_rows: int = MAX_TREE_CSV_ROWS
    max_csv_cells: int = MAX_TREE_CSV_CELLS
    bytes_read: int = field(default=0, init=False)
    csv_rows: int = field(default=0, init=False)
    csv_cells: int = field(default=0, init=False)

    @classmethod
    def of(cls, paths: Iterable[Path]) -> ManifestTree:
        """The tree given on the command line: its directories, and file arguments' parents."""
        roots: list[str] = []
        for path in paths:
            try:
                real = _real_directory(path)
            except (OSError, ValueError):
                continue  # a bad argument is reported by discovery
            if real not in roots:
                roots.append(real)
        return cls(tuple(roots))

    def allow(self, directories: Sequence[Path]) -> None:
        """Add directories a Stack document allows (`allow_files_from`), already checked."""
        added = [os.path.realpath(d) for d in directories]
        self.roots = (*self.roots, *(d for d in added if d not in self.roots))

    def contains(self, real_path: str) -> bool:
        if is_pseudo_filesystem(real_path):
            return False
        return any(_within(real_path, root) for root in self.roots)

    # --- references ---------------------------------------------------------------------------

    def resolve(self, name: str, base_dir: Path, kind: FileKind) -> str:
        """The real path of `name` (relative to `base_dir`), if it may be read."""
        what = f"{kind.label} `{shown_name(name)}`"
        if not name:
            raise FileRefError(f"{kind.label}: empty file name")
        if len(name) > MAX_NAME_CHARS:
            raise FileRefError(
                f"{kind.label}: file name is too long ({len(name):,} characters; "
                f"the limit is {MAX_NAME_CHARS:,})"
            )
        if "\x00" in name:
            raise FileRefError(f"{kind.label}: file name contains a NUL character")
        try:
            base = os.path.realpath(os.path.abspath(base_dir))
            lexical = os.path.normpath(os.path.join(base, name))
        except (OSError, ValueError) as error:
            raise FileRefError(f"{what}: {os_error_reason(error)}") from None
        if not self.contains(lexical):
            raise FileRefError(f"{what} is outside the manifest tree{OUTSIDE_HINT}")
        try:
            real = os.path.realpath(lexical, strict=True)
        except FileNotFoundError:
            raise FileMissing(f"{what} does not exist") from None
        except (OSError, ValueError, RuntimeError) as error:
            raise FileRefError(f"{what} cannot be read: {os_error_reason(error)}") from None
        if not self.contains(real):
            raise FileRefError(f"{what} links to a file outside the manifest tree{OUTSIDE_HINT}")
        return real

    def read(self, name: str, base_dir: Path, kind: FileKind) -> bytes:
        """The bytes of the file `name`, under the confinement and cap rules."""
        real = self.resolve(name, base_dir, kind)
        return self._read_within_budget(real, kind, f"{kind.label} `{shown_name(name)}`")

    def read_text(self, name: str, base_dir: Path, kind: FileKind) -> str:
        data = self.read(name, base_dir, kind)
        return decode_text(data, f"{kind.label} `{shown_name(name)}`")

    def check(self, name: str, base_dir: Path, kind: FileKind) -> str:
        """`resolve` plus: it is a regular file within the cap (not read)."""
        real = self.resolve(name, base_dir, kind)
        what = f"{kind.label} `{shown_name(name)}`"
        try:
            info = os.stat(real)
        except OSError as error:
            raise FileRefError(f"{what} cannot be read: {os_error_reason(error)}") from None
        _check_stat(info, kind, what)
        return real

    def count_csv(self, rows: int, cells: int) -> None:
        """Add a parsed CSV file's rows and cells to the run's; `FileRefError` past the caps."""
        self.csv_rows += rows
        self.csv_cells += cells
        if self.csv_rows > self.max_csv_rows:
            raise FileRefError(
                f"the CSV files of this run have more than {self.max_csv_rows:,} rows in total"
            )
        if self.csv_cells > self.max_csv_cells:
            raise FileRefError(
                f"the CSV files of this run have more than {self.max_csv_cells:,} cells in total"
            )

    # --- manifest and CSV files (found by discovery or named by a Fleet) --------------------

    def read_counted(self, path: Path, kind: FileKind) -> bytes:
        """A manifest or CSV file (found by discovery or already resolved). Resolved again
        here: it may have changed since it was found."""
        real = _real_path(str(path), "file")
        if not self.contains(real):
            raise FileRefError("links to a file outside the manifest tree")
        return self._read_within_budget(real, kind, "file")

    def _root_of(self, real_path: str) -> str:
        """The innermost root that holds `real_path` (`contains` was checked)."""
        holding = [root for root in self.roots if _within(real_path, root)]
        if not holding or is_pseudo_filesystem(real_path):
            raise FileRefError("a file outside the manifest tree cannot be read")
        return max(holding, key=len)

    def _read_within_budget(self, real: str, kind: FileKind, what: str) -> bytes:
        """Every file read for a run counts against the per-tree cap (so do 10,000 references
        to a large secret file)."""
        remaining = self.max_tree_bytes - self.bytes_read
        capped = FileKind(kind.label, min(kind.max_bytes, max(remaining, 0)))
        try:
            data = read_resolved(real, self._root_of(real), capped, what)
        except FileTooLarge as error:
            if capped.max_bytes < kind.max_bytes and error.size <= kind.max_bytes:
                raise FileRefError(
                    f"{what}: the files read in this run exceed {_size(self.max_tree_bytes)} "
                    "in total"
                ) from None
            raise
        self.bytes_read += len(data)
        return data


class FileMissing(FileRefError):
    """The file does not exist (inside the tree)."""


class FileTooLarge(FileRefError):
    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


def read_regular(path: str, kind: FileKind, what: str) -> bytes:
    """Up to `kind.max_bytes` of a regular file (symlinks in `path` followed), without blocking
    on anything else."""
    real = _real_path(path, what)
    return read_resolved(real, os.path.dirname(real), kind, what)


def _real_path(path: str, what: str) -> str:
    try:
        return os.path.realpath(path, strict=True)
    except FileNotFoundError:
        raise FileMissing(f"{what} does not exist") from None
    except (OSError, ValueError, RuntimeError) as error:
        raise FileRefError(f"{what} cannot be read: {os_error_reason(error)}") from None


# The directories of a path are opened only to look up the next name (O_PATH needs no read
# permission on them, where Linux has it); nothing is ever opened through a symlink.
_DIRECTORY_FLAGS = (
    getattr(os, "O_PATH", os.O_RDONLY)
    | os.O_DIRECTORY
    | os.O_NOFOLLOW
    | getattr(os, "O_CLOEXEC", 0)
)
_FILE_FLAGS = (
    os.O_RDONLY
    | os.O_NONBLOCK  # a FIFO swapped in after the check opens without waiting for a writer
    | os.O_NOFOLLOW
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def _open_resolved(real: str, base: str, kind: FileKind, what: str) -> int:
    """A descriptor of the regular file at `real`, a path already resolved (absolute, without
    symlinks) below the directory `base` (a root of the tree), opened without following any
    symlink below `base`. Between the resolution and this call the tree may have changed (a
    pull request's CI job can run code that swaps files): a directory or the file replaced by
    a symlink, or the file by a FIFO or device, is refused here."""
    parts = os.path.relpath(real, base).split(os.sep)
    if not os.path.isabs(real) or any(part in ("", ".", "..") for part in parts):
        raise FileRefError(f"{what} cannot be read: not a resolved path inside its tree")
    changed = f"{what} changed while it was being read (a symlink or another kind of file "
    changed += "took its place): not read"
    directory = os.open(base, _DIRECTORY_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, _DIRECTORY_FLAGS, dir_fd=directory)
            except OSError as error:
                if error.errno in (errno.ENOTDIR, errno.ELOOP):
                    raise FileRefError(changed) from None
                raise
            os.close(directory)
            directory = inner
        # Checked before opening: a FIFO or a device is not opened at all.
        checked = os.stat(parts[-1], dir_fd=directory, follow_symlinks=False)
        if stat.S_ISLNK(checked.st_mode):
            raise FileRefError(changed)
        _check_stat(checked, kind, what)
        try:
            descriptor = os.open(parts[-1], _FILE_FLAGS, dir_fd=directory)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise FileRefError(changed) from None
            raise
    finally:
        os.close(directory)
    opened = os.fstat(descriptor)
    if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino) or not stat.S_ISREG(
        opened.st_mode
    ):
        os.close(descriptor)
        raise FileRefError(changed)
    return descriptor


def read_resolved(real: str, base: str, kind: FileKind, what: str) -> bytes:
    """Up to `kind.max_bytes` of the regular file at the resolved path `real` below the
    directory `base` (see `_open_resolved`), without blocking on anything else."""
    try:
        descriptor = _open_resolved(real, base, kind, what)
    except FileRefError:
        raise
    except FileNotFoundError:
        raise FileMissing(f"{what} does not exist") from None
    except (OSError, ValueError) as error:
        raise FileRefError(f"{what} cannot be read: {os_error_reason(error)}") from None
    try:
        _check_stat(os.fstat(descriptor), kind, what)  # the size, again: it may have grown
        chunks: list[bytes] = []
        size = 0
        # One byte past the cap: a size that lied (a growing file) is caught too.
        while size <= kind.max_bytes:
            chunk = os.read(descriptor, min(kind.max_bytes + 1 - size, 1 * MIB))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise FileRefError(f"{what} cannot be read: {os_error_reason(error)}") from None
    finally:
        os.close(descriptor)
    if size > kind.max_bytes:
        raise _too_large(what, size, kind)
    return b"".join(chunks)


def _check_stat(info: os.stat_result, kind: FileKind, what: str) -> None:
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        raise FileRefError(f"{what} is not a regular file ({file_type(mode)})")
    if info.st_size > kind.max_bytes:
        raise _too_large(what, info.st_size, kind)


def _too_large(what: str, size: int, kind: FileKind) -> FileTooLarge:
    return FileTooLarge(
        f"{what} is too large ({size:,} bytes; a {kind.label} may have at most "
        f"{_size(kind.max_bytes)})",
        size,
    )


def decode_text(data: bytes, what: str) -> str:
    """UTF-8 text (a BOM is dropped); the error gives the offset, not the bytes."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FileRefError(f"{what} is not UTF-8 text (offset {error.start})") from None


def file_type(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def os_error_reason(error: BaseException) -> str:
    if isinstance(error, OSError):
        if error.errno == errno.ELOOP:
            return "symlink loop"
        if error.errno == errno.ENAMETOOLONG:
            return "file name too long"
        if error.strerror:
            return error.strerror.lower()
    if isinstance(error, RuntimeError):
        return "symlink loop"
    return type(error).__name__


def shown_name(name: str) -> str:
    """A reference as quoted in messages: bounded, one line."""
    text = name if len(name) <= 120 else name[:117] + "..."
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


def _size(size: int) -> str:
    if size % MIB == 0:
        return f"{size // MIB} MiB"
    if size % KIB == 0:
        return f"{size // KIB} KiB"
    return f"{size:,} bytes"
