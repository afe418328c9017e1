"""A fleet's secrets CSV files (`secrets_csv`): key cells joined to the fleet's rows by device
ID, so keys live in git-ignored files beside the fleet instead of in the fleet CSV or in one
file per key.

Each provider says which columns a secrets file may have and how a row names its device; this
module reads and indexes the rows, reports a header column that is not allowed, a row that
names no device and a device given twice (located), and keeps which rows the fleet used, so
the provider can report the others. Messages never quote a cell: read with the wrong
separator, one cell holds a whole row, keys included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from reconciler.diagnostics import Location
from reconciler.manifest.documents import CsvRow, CsvTable
from reconciler.manifest.extensions import ResolveContext, Validated

# A row's values -> (its device id, None), or (None, (column, problem)) when its id cell is
# not valid, or (None, None) when the row has no id cell.
RowId = Callable[[Mapping[str, str]], tuple[str | None, tuple[str, str] | None]]


@dataclass(frozen=True)
class SecretRow:
    table: CsvTable
    row: CsvRow


class FleetSecrets:
    """The rows of one fleet's secrets CSV files, by device id."""

    def __init__(
        self, run: ResolveContext, columns: Sequence[str], row_id: RowId, no_id: str
    ) -> None:
        self.run = run
        self.columns = columns  # allowed, in the order the error message lists them
        self.row_id = row_id
        self.no_id = no_id  # the message for a row that names no device
        self.rows: dict[str, SecretRow] = {}
        self.used: set[str] = set()

    def read(self, item: Validated, key: str, names: Sequence[str] | None) -> None:
        """Read the files listed at `key` of the fleet document `item`."""
        for index, name in enumerate(names or []):
            table = self.run.read_table(item, [key, index], name)
            if table is not None:
                self.add(table)

    def add(self, table: CsvTable) -> None:
        for index, column in enumerate(table.header, start=1):
            if column and column not in self.columns:
                self.run.error(
                    Location(table.file, table.header_line, index),
                    f"column {index} of the header is not allowed in a secrets CSV (allowed: "
                    f"{', '.join(self.columns)}; is the header line missing?)",
                    "csv-column",
                )
        for row in table.rows:
            device_id, problem = self.row_id(row.values)
            if device_id is None:
                if problem is None:
                    self.run.error(table.locate(row), self.no_id, "csv-row")
                else:
                    self.run.error(table.locate(row, problem[0]), problem[1], "csv-row")
                continue
            first = self.rows.get(device_id)
            if first is not None:
                self.run.error(
                    table.locate(row, "id"),
                    f"duplicate secrets for device `{device_id}` "
                    f"(first defined at {first.table.locate(first.row)})",
                    "duplicate-id",
                )
                continue
            self.rows[device_id] = SecretRow(table, row)

    def take(self, device_id: str) -> SecretRow | None:
        """The device's row (marked used), or None."""
        found = self.rows.get(device_id)
        if found is not None:
            self.used.add(device_id)
        return found

    def unused(self) -> Iterator[tuple[str, SecretRow]]:
        """The rows of devices the fleet did not take."""
        for device_id, found in self.rows.items():
            if device_id not in self.used:
                yield device_id, found
