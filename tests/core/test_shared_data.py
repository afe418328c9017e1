"""The rule for tests that read ../shared (tests/shared_data.py): without it they skip with a
clear reason, except under CI=true, where its absence fails naming the missing directory.
Checked by running one such module in a pytest subprocess pointed at a directory that does
not exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.shared_data import REPO_ROOT

MODULE = "tests/core/test_device_split.py"  # reads ../shared/reference/tts, needs no emulator


def run_module(missing: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["RECONCILER_SHARED_DIR"] = str(missing)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", MODULE],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_reference_data_skips_with_the_reason(tmp_path: Path) -> None:
    result = run_module(tmp_path / "absent", ci=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "../shared/reference is not beside the repository" in result.stdout
    assert " skipped" in result.stdout and " passed" not in result.stdout, result.stdout


def test_missing_reference_data_fails_under_ci(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    result = run_module(absent, ci="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"CI=true and the reference data is missing: {absent / 'reference'}" in result.stdout
    assert " skipped" not in result.stdout and " error" in result.stdout, result.stdout
