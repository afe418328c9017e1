"""Faults, kills and interrupts: every run converges to the manifests, with no duplicate, orphan
or lost registry record (checked through the emulator's admin inventory of all four registries,
which the real API cannot list)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServedEmulator
from tests.core.support import KEYS, Engine, fleet_ids, fleet_site

DEVICES = 200


async def inventory(client: httpx.AsyncClient) -> dict[str, list[str]]:
    response = await client.get("http://emulator.test/_emulator/devices")
    response.raise_for_status()
    result: dict[str, list[str]] = response.json()
    return result


def assert_exactly(found: dict[str, list[str]], expected: list[str]) -> None:
    for registry in ("is", "ns", "as", "js"):
        assert found[registry] == sorted(expected), f"{registry} differs"


@pytest.fixture
def emulator_config() -> dict[str, Any]:
    # 8% of writes fail before applying, 8% are applied and their answer lost; a rate limit
    # tight enough to be hit (per token, RPC and entity).
    return {"fail_rate": 0.08, "drop_rate": 0.08, "rate_limit": (3000, 20), "seed": 7}


@pytest.mark.asyncio
async def test_apply_converges_under_faults_and_rate_limits(
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    eng = Engine(emulator_transport, admin_api_key)
    paths = [fleet_site(tmp_path, DEVICES)]
    rounds = 0
    while True:
        rounds += 1
        _run, report = await eng.apply(paths)
        if not report.failed:
            break
        assert rounds < 3, [r.error for r in report.failed][:5]
    stats = (await client.get("http://emulator.test/_emulator/stats")).json()
    statuses: dict[str, int] = {}
    for per_status in stats["rpcs"].values():
        for status, count in per_status.items():
            statuses[status] = statuses.get(status, 0) + count
    total = sum(statuses.values())
    assert statuses.get("503", 0) > 0, "the faults were not injected"
    assert statuses.get("429", 0) <= 0.01 * total, statuses
    # Converged: the next plan is empty, and every registry holds exactly the fleet.
    await client.put("http://emulator.test/_emulator/config", json={"fail_rate": 0, "drop_rate": 0})
    assert not (await eng.plan(paths)).plan.has_changes()
    assert_exactly(await inventory(client), fleet_ids(DEVICES))
    # Prune 10% under the same faults.
    await client.put(
        "http://emulator.test/_emulator/config", json={"fail_rate": 0.08, "drop_rate": 0.08}
    )
    smaller = [fleet_site(tmp_path, DEVICES, skip=10)]
    for _ in range(3):
        _run, report = await eng.apply(smaller, prune=True)
        if not report.failed:
            break
    await client.put("http://emulator.test/_emulator/config", json={"fail_rate": 0, "drop_rate": 0})
    assert not (await eng.plan(smaller, prune=True)).plan.has_changes()
    assert_exactly(await inventory(client), fleet_ids(DEVICES, skip=10))


def served_inventory(served: ServedEmulator) -> dict[str, list[str]]:
    response = httpx.get(
        f"{served.root_url}/_emulator/devices",
        headers={"Authorization": f"Bearer {served.api_key}"},
    )
    response.raise_for_status()
    result: dict[str, list[str]] = response.json()
    return result


def set_config(served: ServedEmulator, **settings: Any) -> None:
    httpx.put(
        f"{served.root_url}/_emulator/config",
        json=settings,
        headers={"Authorization": f"Bearer {served.api_key}"},
    ).raise_for_status()


def start_apply(served: ServedEmulator, paths: Path) -> subprocess.Popen[str]:
    env = {
        **KEYS,
        "TTS_API_KEY": served.api_key,
        "RECONCILER_TTS_URL": served.root_url,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", str(paths), "--auto-approve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_devices(served: ServedEmulator, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while len(served_inventory(served)["is"]) < count:
        assert process.poll() is None, "apply finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def rerun_converges(served: ServedEmulator, paths: Path) -> None:
    set_config(served, latency_ms=0)
    process = start_apply(served, paths)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, (out, err)
    assert_exactly(served_inventory(served), fleet_ids(DEVICES))


@pytest.mark.slow
def test_killed_apply_then_rerun_converges(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    paths = fleet_site(tmp_path, DEVICES)
    set_config(served_emulator, latency_ms=30)
    process = start_apply(served_emulator, paths)
    wait_for_devices(served_emulator, 40, process)
    process.kill()  # SIGKILL: no cleanup, requests cut mid-flight
    process.communicate(timeout=30)
    partial = served_inventory(served_emulator)
    assert 0 < len(partial["is"]) < DEVICES
    rerun_converges(served_emulator, paths)


@pytest.mark.slow
def test_ctrl_c_finishes_in_flight_devices_and_reports(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    paths = fleet_site(tmp_path, DEVICES)
    set_config(served_emulator, latency_ms=30)
    process = start_apply(served_emulator, paths)
    wait_for_devices(served_emulator, 40, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "Interrupted" in err
    assert "not started: interrupted" in out
    assert "Traceback" not in err
    found = served_inventory(served_emulator)
    assert 0 < len(found["is"]) < DEVICES
    # Devices in flight were finished: none is left half-registered.
    assert found["is"] == found["js"] == found["ns"] == found["as"]
    rerun_converges(served_emulator, paths)
