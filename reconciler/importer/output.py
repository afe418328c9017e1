"""The manifest tree an import writes: built in memory, written to a temporary directory beside
the target and moved into place, so an error or Ctrl-C leaves no half-written output."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from reconciler.diagnostics import ReconcilerError

GITIGNORE = ".gitignore"
# YAML 1.1 readers (libyaml) take `yes`, `on`, `1e3`, `0x1F` for booleans and numbers: every
# string value is written quoted, so it reads back as the same string.
_YAML_WIDTH = 4096


class ImportFailure(ReconcilerError):
    """An import that cannot be done (bad input, unreadable server state, output in the way)."""


def _quoted(value: Any) -> Any:
    if isinstance(value, str):
        if "\n" in value or "'" in value:
            return DoubleQuotedScalarString(value)
        return SingleQuotedScalarString(value)
    if isinstance(value, Mapping):
        return {key: _quoted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_quoted(item) for item in value]
    return value


def yaml_documents(documents: Sequence[Mapping[str, Any]], header: str = "") -> str:
    """YAML text of one or more documents (`---` separated), keys in the given order."""
    yaml = YAML(typ="rt")
    yaml.width = _YAML_WIDTH
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    stream = io.StringIO()
    if header:
        stream.write(header.rstrip("\n") + "\n")
    yaml.dump_all([_quoted(document) for document in documents], stream)
    return stream.getvalue()


def csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """`;`-separated CSV, as The Things Stack CSV import format writes it."""
    stream = io.StringIO()
    writer = csv.writer(stream, delimiter=";", lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return stream.getvalue()


class OutputTree:
    """Files of an import, by path relative to the output directory."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.ignored: list[str] = []  # .gitignore patterns (secrets)

    def add(self, path: str, text: str) -> None:
        relative = PurePosixPath(path)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"output path outside the tree: {path}")
        if path in self.files:
            raise ValueError(f"two outputs for {path}")
        self.files[path] = text

    def ignore(self, pattern: str) -> None:
        if pattern not in self.ignored:
            self.ignored.append(pattern)

    def write(self, out: Path, *, overwrite: bool) -> None:
        """Write into a temporary directory next to `out`, then move it into place. An existing
        `out` is replaced only with `overwrite` (its `.gitignore` is kept and updated)."""
        check_output_dir(out, overwrite=overwrite)
        parent = out.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=parent))
        old: Path | None = None
        try:
            for path, text in self.files.items():
                target = staging / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
                if path.endswith((".secrets.csv", ".env")) or "/secrets/" in f"/{path}":
                    os.chmod(target, 0o600)  # holds (or will hold) keys
            existing = out / GITIGNORE if out.is_dir() else None
            (staging / GITIGNORE).write_text(
                merged_gitignore(
                    existing.read_text(encoding="utf-8") if existing and existing.is_file() else "",
                    self.ignored,
                ),
                encoding="utf-8",
            )
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
                old.rmdir()
                out.rename(old)
            staging.rename(out)
        except OSError as error:
            if old is not None and not out.exists():
                old.rename(out)  # put the previous tree back
                old = None
            raise ImportFailure(f"cannot write {out}: {error.strerror or error}") from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)


def check_output_dir(out: Path, *, overwrite: bool) -> None:
    """Fail early (before reading anything) when the output directory is in the way."""
    if out.exists() and not out.is_dir():
        raise ImportFailure(f"--out {out}: exists and is not a directory")
    if out.is_dir() and not overwrite:
        with contextlib.suppress(OSError):
            if any(p.name != GITIGNORE for p in out.iterdir()):
                raise ImportFailure(
                    f"--out {out}: the directory is not empty; pass --overwrite to replace it"
                )


def merged_gitignore(existing: str, patterns: Sequence[str]) -> str:
    """`existing` with the secret patterns appended where missing."""
    lines = existing.splitlines()
    present = {line.strip() for line in lines}
    missing = [p for p in patterns if p not in present]
    if not missing:
        return existing if existing.endswith("\n") or not existing else existing + "\n"
    block = ["# secrets written by `reconciler import` (keep them out of git)", *missing]
    if lines and lines[-1].strip():
        block.insert(0, "")
    return "\n".join(lines + block) + "\n"
