"""The committed IoT Hub tables equal a fresh generation from ../shared/reference/azure-iothub."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.shared_data import IOTHUB_REFERENCE_DIR, needs_shared

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "reconciler" / "emulator" / "iothub" / "data"


@needs_shared
def test_generated_tables_are_up_to_date(tmp_path: Path) -> None:
    path = ROOT / "tools" / "gen_iothub_tables.py"
    spec = importlib.util.spec_from_file_location("gen_iothub_tables", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_iothub_tables"] = module
    spec.loader.exec_module(module)
    written = module.generate(IOTHUB_REFERENCE_DIR, tmp_path)
    stale = [p.name for p in written if p.read_bytes() != (COMMITTED / p.name).read_bytes()]
    assert not stale, f"run `make tables`: stale {stale}"
