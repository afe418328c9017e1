"""`python -m reconciler ...` run as a user runs it: a subprocess with a given environment and
working directory, exit code checked, never a traceback or an "internal error", every output
kept (the secret scans search them)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


class CliRunner:
    def __init__(self, env: Mapping[str, str], cwd: Path) -> None:
        self.env = {"PATH": "/usr/bin:/bin", **env}
        self.cwd = cwd
        self.outputs: list[str] = []
        self.stdout = ""
        self.stderr = ""

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr]
        self.stdout, self.stderr = result.stdout, result.stderr
        assert result.returncode == expect, (args, result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert "internal error" not in result.stderr
        return result

    def __call__(self, *args: str, expect: int = 0) -> str:
        result = self.run(*args, expect=expect)
        return result.stdout + result.stderr
