"""The CLI as an operator runs it (a subprocess, as on a shell or in CI), against an emulator."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ServedEmulator
from tests.core.support import KEYS

ROOT = Path(__file__).resolve().parents[2]


class Cli:
    """`reconciler ...` in `cwd` with the test keys and the emulator as the target."""

    def __init__(self, served: ServedEmulator, cwd: Path, **env: str) -> None:
        self.served = served
        self.env = {
            **KEYS,
            "TTS_API_KEY": served.api_key,
            "RECONCILER_TTS_URL": served.root_url,
            "PATH": "/usr/bin:/bin",
            **env,
        }
        self.cwd = cwd
        self.stdout = ""
        self.stderr = ""

    @classmethod
    def offline(cls, cwd: Path, **env: str) -> Cli:
        """For commands that need no server (validate, show, init, version)."""
        return cls(
            ServedEmulator(root_url="http://127.0.0.1:9", api_key="", user_id=""), cwd, **env
        )

    def __call__(self, *args: str, expect: int = 0) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.stdout, self.stderr = result.stdout, result.stderr
        assert result.returncode == expect, (args, result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert "internal error" not in result.stderr
        return result.stdout + result.stderr


def host_neutral(text: str) -> str:
    """The emulator's address (a random port) as `tts.example`, for golden files."""
    return re.sub(r"127\.0\.0\.1:\d+", "tts.example", text)
