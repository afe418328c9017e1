"""Helpers for the manifest tests: the example env file and the CLI as a real process."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
EXAMPLE_ENV = MANIFESTS / "example.env"


def example_environ() -> dict[str, str]:
    """The variables `manifests/example.env` defines (shell `KEY=value` lines)."""
    environ: dict[str, str] = {}
    for raw in EXAMPLE_ENV.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        words = shlex.split(value)
        environ[key] = words[0] if words else ""
    return environ


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m reconciler ARGS` from the repository root, with exactly `env` (plus PATH)."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", ""), "NO_COLOR": "1", "COLUMNS": "400", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
