"""The tables generated from the IoT Hub reference (tools/gen_iothub_tables.py)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

_TABLES: dict[str, Any] = json.loads(
    resources.files("reconciler.emulator.iothub").joinpath("data/tables.json").read_text("utf-8")
)

API_VERSION: str = _TABLES["api_version"]
ERROR_CODES: dict[str, int] = _TABLES["error_codes"]
IMPORT_MODES: tuple[str, ...] = tuple(_TABLES["import_modes"])
AUTH_TYPES: tuple[str, ...] = tuple(_TABLES["auth_types"])
STATUSES: tuple[str, ...] = tuple(_TABLES["statuses"])
