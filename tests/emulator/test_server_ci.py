"""`reconciler emulator serve` as a CI service: clear port errors, `--port 0`, `/healthz`, a
request log without secrets, an admin key that survives restarts with `--state`, and TLS."""

from __future__ import annotations

import base64
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.emulator.support import make_api_key

ROOT = Path(__file__).resolve().parents[2]
KEY = re.compile(r"NNSXS\.[A-Z2-7]+\.[A-Z2-7]+")
READY = re.compile(r"ready at (https?)://127\.0\.0\.1:(\d+)/api/v3")
pytestmark = pytest.mark.slow


def _serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", "emulator", "serve", *args]


def _run_to_exit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _serve_command(*args), capture_output=True, text=True, cwd=ROOT, timeout=30, check=False
    )


def _assert_one_line_error(process: subprocess.CompletedProcess[str], *words: str) -> None:
    assert process.returncode == 1, (process.returncode, process.stdout, process.stderr)
    assert process.stdout == "", process.stdout
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in process.stderr and "internal error" not in process.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


@dataclass
class Served:
    ready: str
    scheme: str
    port: int
    output: str = ""  # stdout after the ready line and stderr, once stopped


@contextmanager
def _serving(*args: str) -> Iterator[Served]:
    """The CLI's emulator until SIGTERM, which must stop it cleanly."""
    process = subprocess.Popen(
        _serve_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        match = READY.search(ready)
        assert match is not None, f"no ready line: {ready!r}"
        served = Served(ready, match.group(1), int(match.group(2)))
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=15)
    served.output = stdout + stderr
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr


def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        _assert_one_line_error(_run_to_exit("--port", port), port, "in use")


@pytest.mark.parametrize("port", ["65536", "-1", "99999999"])
def test_port_out_of_range_is_a_one_line_error(port: str) -> None:
    _assert_one_line_error(_run_to_exit("--port", port), port, "0-65535")


def test_port_zero_binds_a_free_port_and_announces_it() -> None:
    with _serving("--port", "0") as served:
        assert served.port != 0, served.ready
        response = httpx.get(f"http://127.0.0.1:{served.port}/healthz", timeout=5)
        assert response.status_code == 200


def test_healthz_needs_no_credentials_and_the_api_still_does() -> None:
    with _serving("--port", "0") as served:
        port = served.port
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200, health.text
        assert health.json() == {"status": "ok"}
        api = httpx.get(f"http://127.0.0.1:{port}/api/v3/auth_info", timeout=5)
        assert api.status_code == 401, api.text


def test_request_log_has_method_path_status_and_time_and_no_secret(tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    api_key = make_api_key()
    secret_in_query = make_api_key()
    with _serving("--port", "0", "--api-key", api_key, "--request-log", str(log)) as served:
        base = f"http://127.0.0.1:{served.port}"
        headers = {"Authorization": f"Bearer {api_key}"}
        assert httpx.get(f"{base}/api/v3/auth_info", headers=headers, timeout=5).is_success
        missing = httpx.get(
            f"{base}/api/v3/applications/nowhere",
            params={"field_mask": "name", "api_key": secret_in_query, "token": "plain-secret"},
            headers=headers,
            timeout=5,
        )
        assert missing.status_code == 404, missing.text
        httpx.get(f"{base}/healthz", params={"x": secret_in_query}, timeout=5)
    text = log.read_text()
    lines = text.splitlines()
    assert len(lines) == 3, text
    assert re.search(r" GET /api/v3/auth_info 200 \d+\.\d+ ms$", lines[0]), lines[0]
    assert re.search(
        r" GET /api/v3/applications/nowhere\?field_mask=name&api_key=\*\*\*&token=\*\*\* 404 "
        r"\d+\.\d+ ms$",
        lines[1],
    ), lines[1]
    assert re.search(r" GET /healthz\?x=\*\*\* 200 ", lines[2]), lines[2]
    for secret in (api_key, secret_in_query, "plain-secret"):
        assert secret not in text
        assert secret.split(".")[-1] not in text


def test_request_log_is_off_by_default() -> None:
    with _serving("--port", "0") as served:
        assert httpx.get(f"http://127.0.0.1:{served.port}/healthz", timeout=5).is_success
    assert "/healthz" not in served.output


def test_restart_with_state_keeps_the_admin_key_working(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    with _serving("--port", "0", "--state", str(state)) as served:
        first = KEY.search(served.ready)
        assert first is not None, served.ready
    with _serving("--port", "0", "--state", str(state)) as served:
        port = served.port
        again = KEY.search(served.ready)
        assert again is not None, served.ready
        assert again.group(0) == first.group(0)
        headers = {"Authorization": f"Bearer {first.group(0)}"}
        admin = httpx.get(f"http://127.0.0.1:{port}/_emulator/stats", headers=headers, timeout=5)
        assert admin.status_code == 200, admin.text
        info = httpx.get(f"http://127.0.0.1:{port}/api/v3/auth_info", headers=headers, timeout=5)
        assert info.json()["is_admin"] is True


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_certificate_serves_https(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    with _serving("--port", "0", "--tls-cert", str(cert), "--tls-key", str(key)) as served:
        port = served.port
        assert served.scheme == "https", served.ready
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
            assert client.get(f"https://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def test_unreadable_tls_certificate_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    _assert_one_line_error(
        _run_to_exit("--port", str(free_port()), "--tls-cert", str(missing)), str(missing)
    )


def test_unknown_api_is_a_usage_error() -> None:
    process = _run_to_exit("--api", "nosuch")
    assert process.returncode == 2, (process.returncode, process.stderr)
    assert "Invalid value for '--api'" in process.stderr
    assert "tts" in process.stderr and "Traceback" not in process.stderr


def test_the_hub_emulators_key_variable_does_not_stop_tts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """IOTHUB_EMULATOR_SHARED_ACCESS_KEY belongs to `--api azure-iothub`; exported beside a TTS
    emulator it is not an option TTS refuses."""
    monkeypatch.setenv("IOTHUB_EMULATOR_SHARED_ACCESS_KEY", base64.b64encode(bytes(32)).decode())
    with _serving("--port", "0") as served:
        assert served.port != 0, served.ready
