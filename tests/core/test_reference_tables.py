"""The committed reference tables equal a fresh generation from ../shared/reference/tts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.shared_data import TTS_REFERENCE_DIR, needs_shared

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "reconciler" / "providers" / "tts" / "data"


@needs_shared
def test_generated_tables_are_up_to_date(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gen_tables", ROOT / "tools" / "gen_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_tables"] = module
    spec.loader.exec_module(module)
    written = module.generate(TTS_REFERENCE_DIR, tmp_path)
    stale = [p.name for p in written if p.read_bytes() != (COMMITTED / p.name).read_bytes()]
    assert not stale, f"run `make tables`: stale {stale}"
