"""The CLI as an operator runs it (a subprocess, as on a shell or in CI), against an emulator."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli_runner import CliRunner
from tests.conftest import ServedEmulator
from tests.core.support import KEYS

ROOT = Path(__file__).resolve().parents[2]


class Cli(CliRunner):
    """`reconciler ...` in `cwd` with the test keys and the emulator as the target."""

    def __init__(self, served: ServedEmulator, cwd: Path, **env: str) -> None:
        self.served = served
        keys = {**KEYS, "TTS_API_KEY": served.api_key, "RECONCILER_TTS_URL": served.root_url}
        super().__init__({**keys, "PATH": "/usr/bin:/bin", **env}, cwd)

    @classmethod
    def offline(cls, cwd: Path, **env: str) -> Cli:
        """For commands that need no server (validate, show, init, version)."""
        return cls(
            ServedEmulator(root_url="http://127.0.0.1:9", api_key="", user_id=""), cwd, **env
        )


def host_neutral(text: str) -> str:
    """The emulator's address (a random port) as `tts.example`, for golden files."""
    return re.sub(r"127\.0\.0\.1:\d+", "tts.example", text)
