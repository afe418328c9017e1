"""The reference data beside the repository (../shared): where it is, and what a test that
needs it does when it is absent.

Only tests and generators read it; the product does not. A contributor's clone usually has no
../shared beside it, so such tests skip there with one clear reason; under CI (`CI=true`, as
GitHub Actions and most CI systems set it) its absence is a failure naming the missing
directory, so a CI job cannot pass by skipping the conformance tests. Every test that reads
../shared goes through `shared_path` (or the `needs_shared` marker, checked in conftest.py).
`RECONCILER_SHARED_DIR` points the tests at another directory (the test of this rule uses it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("RECONCILER_SHARED_DIR") or REPO_ROOT.parent / "shared")
REFERENCE_DIR = SHARED_DIR / "reference"
SEEDS_DIR = SHARED_DIR / "seeds"
TTS_REFERENCE_DIR = REFERENCE_DIR / "tts"
IOTHUB_REFERENCE_DIR = REFERENCE_DIR / "azure-iothub"

needs_shared = pytest.mark.needs_shared


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_shared() -> None:
    """Skip the running test if the reference data is absent; fail it under CI=true."""
    missing = [d for d in (REFERENCE_DIR, SEEDS_DIR) if not d.is_dir()]
    if not missing:
        return
    if under_ci():
        pytest.fail(
            f"CI=true and the reference data is missing: {', '.join(map(str, missing))} "
            "(check out ../shared beside the repository)",
            pytrace=False,
        )
    pytest.skip(f"../shared/{missing[0].name} is not beside the repository")


def shared_path(path: Path) -> Path:
    """`path` (under SHARED_DIR), after `require_shared`: call it inside a test or fixture."""
    require_shared()
    return path
