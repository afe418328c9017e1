"""`reconciler watch` as a subprocess against a served emulator: its output lines as they come."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from tests.conftest import ServedEmulator
from tests.core.support import KEYS


class WatchProcess:
    """`python -m reconciler watch ARGS` in `cwd`; stdout and stderr lines kept and queued."""

    def __init__(self, served: ServedEmulator, cwd: Path, *args: str) -> None:
        env = {
            **KEYS,
            "PATH": "/usr/bin:/bin",
            "TTS_API_KEY": served.api_key,
            "RECONCILER_TTS_URL": served.root_url,
            "PYTHONUNBUFFERED": "1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "watch", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._pumps = [
            threading.Thread(target=self._pump, args=(stream,), daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 20.0) -> tuple[str, float]:
        """The first new line matching `pattern` and when it came (time.monotonic())."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.process.poll() is not None and self._queue.empty()):
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout} s:\n" + "\n".join(self.lines)
                )
            try:
                line = self._queue.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if regex.search(line):
                return line, time.monotonic()

    def __enter__(self) -> WatchProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def stop(self) -> str:
        """SIGTERM, then the exit code must be 0 and nothing may have gone wrong."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        code = self.process.wait(30)
        for pump in self._pumps:
            pump.join(5)  # they read what is left
        text = "\n".join(self.lines)
        assert code == 0, text
        assert "Traceback" not in text and "internal error" not in text, text
        return text
