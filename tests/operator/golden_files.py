"""Golden files of the GitOps outputs (tests/operator/golden/), compared byte for byte.

`RECONCILER_UPDATE_GOLDEN=1 pytest tests/operator` rewrites them (review the diff!)."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("RECONCILER_UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"
