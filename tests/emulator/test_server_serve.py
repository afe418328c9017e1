"""`reconciler emulator serve` as a process: the ready line, a working API, clean signals."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, serve_in_subprocess
from tests.emulator.support import is_api_key, make_api_key

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _start(*args: str) -> tuple[subprocess.Popen[str], str, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    ready = process.stdout.readline()
    return process, ready, port


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_generated_key_is_announced_and_signals_stop_cleanly(sig: signal.Signals) -> None:
    process, ready, port = _start()
    try:
        assert f"http://127.0.0.1:{port}/api/v3" in ready, ready
        match = re.search(r"NNSXS\.[A-Z2-7]+\.[A-Z2-7]+", ready)
        assert match and is_api_key(match.group(0)), ready
        info = httpx.get(
            f"http://127.0.0.1:{port}/api/v3/auth_info",
            headers={"Authorization": f"Bearer {match.group(0)}"},
            timeout=5,
        )
        assert info.status_code == 200, info.text
        assert info.json()["is_admin"] is True
        assert info.json()["api_key"]["entity_ids"] == {"user_ids": {"user_id": "admin-user"}}
    finally:
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, (process.returncode, stderr)
    assert stdout == "", stdout  # one line only, then nothing
    assert "Traceback" not in stderr, stderr


def test_given_key_is_not_printed() -> None:
    api_key = make_api_key()
    with serve_in_subprocess(api_key) as (served, ready):
        assert api_key not in ready
        assert api_key.split(".")[2] not in ready
        with served.client() as client:
            assert client.get("/auth_info").status_code == 200


def test_bad_rate_limit_is_a_clean_error() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "reconciler", "emulator", "serve", "--rate-limit", "fast"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    assert process.returncode == 1
    assert "invalid rate limit" in process.stderr
    assert "Traceback" not in process.stderr


def test_rate_limit_option_turns_limiting_on() -> None:
    with serve_in_subprocess(make_api_key(), "--rate-limit", "60:2") as (served, _ready):
        client = served.client()
        with client:
            statuses = [client.get("/auth_info").status_code for _ in range(3)]
            assert statuses == [200, 200, 429]


def test_served_on_uvloop_when_installed() -> None:
    import uvloop

    from reconciler.emulator.server import event_loop_factory

    factory = event_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
