"""`reconciler import --iothub` as an operator runs it (served emulator, subprocess): import,
validate, a plan of adoptions only; usage and credential errors (exit 2 and 1, no output
directory); Ctrl-C while reading (exit 130, no output directory); no key or connection string
in any output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import serve_in_thread
from tests.iothub.support import connection_string, new_key
from tests.iothub_emulator.conftest import build_app
from tests.iothub_emulator.support import API_VERSION, HOST, sas_token

pytestmark = pytest.mark.slow


def owner_http(root_url: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=root_url,
        headers={"Authorization": sas_token(HOST, key, "iothubowner")},
        params={"api-version": API_VERSION},
        timeout=10,
    )


@pytest.fixture(scope="module")
def served_hub() -> Iterator[tuple[str, str, str]]:
    """(root URL, owner key, a device key) of a hub with an edge device, a module, a child."""
    key = new_key()
    device_key = new_key()
    with serve_in_thread(build_app(key)) as root_url, owner_http(root_url, key) as client:
        edge = client.put(
            "/devices/edge-1", json={"deviceId": "edge-1", "capabilities": {"iotEdge": True}}
        )
        assert edge.status_code == 200, edge.text
        for path, body in (
            ("/devices/edge-1/modules/m", {"deviceId": "edge-1", "moduleId": "m"}),
            (
                "/devices/leaf-1",
                {
                    "deviceId": "leaf-1",
                    "deviceScope": edge.json()["deviceScope"],
                    "authentication": {
                        "type": "sas",
                        "symmetricKey": {"primaryKey": device_key, "secondaryKey": new_key()},
                    },
                },
            ),
        ):
            assert client.put(path, json=body).status_code == 200
        assert client.patch("/twins/leaf-1", json={"tags": {"site": "north"}}).status_code == 200
        yield root_url, key, device_key


def run(
    cwd: Path, env: dict[str, str], *args: str, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        check=False,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == expect, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def hub_env(root_url: str, key: str) -> dict[str, str]:
    return {"IOTHUB_CONNECTION_STRING": connection_string(key), "RECONCILER_IOTHUB_URL": root_url}


def test_import_validate_and_plan_only_adoptions(
    served_hub: tuple[str, str, str], tmp_path: Path
) -> None:
    root_url, key, device_key = served_hub
    env = hub_env(root_url, key)
    result = run(tmp_path, env, "import", "--iothub", "--out", "hub", "--with-secrets")
    assert "imported 2 devices, 1 module into hub" in result.stdout
    secrets_csv = (tmp_path / "hub" / "devices.secrets.csv").read_text()
    assert f"leaf-1;{device_key};" in secrets_csv  # the fleet device's keys, in one file
    validated = run(tmp_path, env, "validate", "hub")
    assert "2 iothub devices, 1 iothub module" in validated.stdout
    plan = run(tmp_path, env, "plan", "hub", "--detailed-exitcode", expect=2)
    assert plan.stdout.count("(adopt)") == 3, plan.stdout
    assert "parent" not in plan.stdout and "site" not in plan.stdout
    for output in (result, validated, plan):
        for text in (output.stdout, output.stderr):
            assert device_key not in text and key not in text


def test_usage_and_credential_errors_write_nothing(
    served_hub: tuple[str, str, str], tmp_path: Path
) -> None:
    root_url, key, _ = served_hub
    env = hub_env(root_url, key)
    usage = run(tmp_path, env, "import", "--iothub", "--application", "a", "--out", "o", expect=2)
    assert "--application is for The Things Stack" in usage.stderr
    usage = run(tmp_path, env, "import", "--with-secrets", "--all", "--out", "o", expect=2)
    assert "--with-secrets is for --iothub" in usage.stderr
    wrong = run(
        tmp_path, hub_env(root_url, new_key()), "import", "--iothub", "--out", "o", expect=1
    )
    assert "401" in wrong.stderr
    assert not (tmp_path / "o").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]


def test_ctrl_c_while_reading_leaves_no_output(tmp_path: Path) -> None:
    key = new_key()
    with serve_in_thread(build_app(key)) as root_url, owner_http(root_url, key) as client:
        assert client.put("/devices/edge-1", json={"deviceId": "edge-1"}).status_code == 200
        for index in range(30):
            body = {"deviceId": "edge-1", "moduleId": f"m{index}"}
            assert client.put(f"/devices/edge-1/modules/m{index}", json=body).status_code == 200
        config = client.put("/_emulator/config", json={"latency_ms": 200})
        assert config.status_code == 200, config.text
        client.delete("/_emulator/stats")
        command = ["import", "--iothub", "--out", "out", "--parallelism", "1"]
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *command],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", **hub_env(root_url, key)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Interrupt once the module identities are being read (30 GETs of 200 ms each).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rpcs = client.get("/_emulator/stats").json().get("rpcs") or {}
            if "GetModule" in rpcs:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        os.kill(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted: nothing was written" in stderr
    assert "Traceback" not in stderr
    assert [p.name for p in tmp_path.iterdir()] == []
