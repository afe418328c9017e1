"""The IoT Hub emulator's state: devices, modules and hub settings, optionally in SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.emulator.state import Table


class Store:
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
        self.meta = Table("iothub_meta", self._db)
        self.devices = Table("iothub_devices", self._db)
        self.modules = Table("iothub_modules", self._db)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
