"""apply on a terminal: the progress display stops before the confirmation prompt, so the prompt
stays on screen and nothing redraws while it waits for the answer."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ServedEmulator
from tests.core.support import KEYS, site

PROMPT = b"Apply these changes?"


def read_for(fd: int, seconds: float) -> bytes:
    """Everything the terminal shows within `seconds`."""
    data = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        data += chunk
    return data


def read_until(fd: int, marker: bytes, seconds: float) -> bytes:
    data = b""
    deadline = time.monotonic() + seconds
    while marker not in data and time.monotonic() < deadline:
        data += read_for(fd, 0.2)
    return data


@pytest.mark.slow
def test_the_prompt_is_not_redrawn_over_by_progress(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    site(tmp_path / "manifests")
    env = {
        **KEYS,
        "TTS_API_KEY": served_emulator.api_key,
        "RECONCILER_TTS_URL": served_emulator.root_url,
        "PATH": "/usr/bin:/bin",
        "TERM": "xterm-256color",
        "COLUMNS": "100",
        "LINES": "40",
    }
    subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "manifests", "--auto-approve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    # A change on every device, so the read phase reports progress before the prompt.
    devices = tmp_path / "manifests" / "devices.yaml"
    devices.write_text(devices.read_text().replace("dev_eui:", "description: moved\ndev_eui:"))
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "manifests"],
        cwd=tmp_path,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    try:
        shown = read_until(master, PROMPT, 60)
        assert PROMPT in shown, shown.decode(errors="replace")[-2000:]
        # While the prompt waits, the screen must stay as it is: no redraw, no erased line.
        after = read_for(master, 1.5)
        assert after == b"", f"the terminal changed while the prompt waited: {after[:200]!r}"
        os.write(master, b"n\n")
        rest = read_for(master, 10)
        assert process.wait(30) == 1
        assert b"aborted" in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
