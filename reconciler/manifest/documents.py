"""The contract between the file loader and the models.

The loader turns files into `Document`s (one per YAML document) and `CsvTable`s, each able to say
where any value sits. Positions are computed lazily (see `Document.locate`), so valid input does
not pay for round-trip parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.diagnostics import Location

YamlPath = Sequence[str | int]


def format_yaml_path(path: YamlPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass
class Document:
    """One YAML document: plain data (dict/list/str/int/float/bool/None) plus a locator."""

    file: str
    index: int  # 0-based position in a multi-document file
    data: Any
    # Returns (line, column), 1-based, of the node at `path` (the key for mapping entries), or of
    # its nearest existing ancestor. Supplied by the loader; may parse the file again, lazily.
    locator: Callable[[YamlPath], tuple[int, int]] = field(repr=False, default=lambda _p: (1, 1))

    def locate(self, path: YamlPath) -> Location:
        line, column = self.locator(path)
        return Location(self.file, line, column, format_yaml_path(path) or None)


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int  # 1-based line number in the file
    values: dict[str, str]  # column name -> cell text (stripped); only columns present


@dataclass
class CsvTable:
    file: str
    separator: str
    header: list[str]
    rows: list[CsvRow]
    header_line: int = 1  # the header's line (blank lines before it are skipped)

    def locate(self, row: CsvRow, column: str | None = None) -> Location:
        col = self.header.index(column) + 1 if column in self.header else None
        return Location(self.file, row.line, col, column)
