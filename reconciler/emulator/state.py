"""Emulator state for any emulated API: dicts in memory, optionally written through to SQLite.

Every request runs its handler to completion on the event loop without awaiting in between, so
a read-modify-write is atomic with respect to other requests (no lost updates, no torn writes).
With a state file, each change is written in the same step, and a restart loads it all back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class Table:
    """A key -> JSON value map; writes go through to SQLite when a database is attached."""

    def __init__(self, name: str, db: sqlite3.Connection | None) -> None:
        self.name = name
        self.rows: dict[str, Any] = {}
        self._db = db
        if db is not None:
            for key, value in db.execute("SELECT key, value FROM kv WHERE tbl = ?", (name,)):
                self.rows[key] = json.loads(value)

    def get(self, key: str) -> Any:
        return self.rows.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def values(self) -> Iterator[Any]:
        return iter(list(self.rows.values()))

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self.rows.items()))

    def put(self, key: str, value: Any) -> None:
        self.rows[key] = value
        if self._db is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO kv (tbl, key, value) VALUES (?, ?, ?)",
                (self.name, key, json.dumps(value, separators=(",", ":"))),
            )
            self._db.commit()

    def delete(self, key: str) -> Any:
        value = self.rows.pop(key, None)
        if self._db is not None and value is not None:
            self._db.execute("DELETE FROM kv WHERE tbl = ? AND key = ?", (self.name, key))
            self._db.commit()
        return value


class Store:
    """Named tables in one SQLite file (or in memory only, without a path).

    An API declares its tables by calling `table(name)` once each (typically as attributes of a
    subclass); `meta` holds the emulator's own records, such as the admin credential.
    """

    def __init__(self, path: Path | None) -> None:
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS kv (tbl TEXT NOT NULL, key TEXT NOT NULL, "
                "value TEXT NOT NULL, PRIMARY KEY (tbl, key))"
            )
        self._tables: dict[str, Table] = {}
        self.meta = self.table("meta")

    def table(self, name: str) -> Table:
        """The table `name`, loaded from the file on first use."""
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = Table(name, self._db)
        return table

    def remembered(self, name: str, make: Callable[[], str]) -> str:
        """The value kept under `name` in `meta`, made (and kept) on first use: for credentials
        the emulator generates, which must stay valid across restarts with the same state."""
        value = self.meta.get(name)
        if not isinstance(value, str):
            value = make()
            self.meta.put(name, value)
        return value

    @property
    def persistent(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
