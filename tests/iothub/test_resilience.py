"""Failure isolation, throttling, Ctrl-C and SIGKILL-then-rerun against the IoT Hub emulator:
whatever fails or is cut short, reruns converge with no device lost or duplicated and the next
plan empty."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import HoldLaterRequests, serve_in_thread
from tests.iothub.support import DEVICES, HUB, HubEngine, changes, connection_string, new_key
from tests.iothub.support import write_manifests as write
from tests.iothub_emulator.conftest import build_app
from tests.iothub_emulator.support import API_VERSION, HOST, sas_token

FLEET = "kind: IotHubFleet\ncsv: fleet.csv\n"


def fleet_tree(directory: Path, devices: int) -> Path:
    write(directory, hub=HUB, devices=DEVICES, fleet=FLEET)
    rows = ["id;tags.rack;properties.desired.interval"]
    rows += [f"node-{i:04d};r{i % 9};{30 + i % 4}" for i in range(devices)]
    (directory / "fleet.csv").write_text("\n".join(rows) + "\n")
    return directory


async def hub_ids(owner: httpx.AsyncClient) -> list[str]:
    response = await owner.post(
        "/devices/query",
        json={"query": "SELECT * FROM devices"},
        headers={"x-ms-max-item-count": "1000"},
    )
    return sorted(item["deviceId"] for item in response.json())


@pytest.mark.parametrize(
    "hub_settings", [{"fail_rate": 0.2, "drop_rate": 0.2, "seed": 7}], indirect=True
)
async def test_failures_and_lost_answers_converge_without_loss_or_duplicates(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    tree = fleet_tree(tmp_path, 250)
    for _attempt in range(6):
        run, report = await hub_engine.apply([tree], retries=2)
        if not run.plan.has_changes():
            break
        # One device's failure never stops the others.
        assert len(report.failed) < len(run.plan.changes) or len(run.plan.changes) == 1
    else:
        pytest.fail("did not converge in 6 applies")
    ids = await hub_ids(owner)
    assert len(ids) == len(set(ids)) == 255
    twin = (await owner.get("/twins/node-0007")).json()
    assert twin["tags"]["rack"] == "r7"
    assert twin["properties"]["desired"]["interval"] == 33


@pytest.mark.parametrize(
    "hub_settings", [{"sku": "S3", "units": 1, "throttle_backlog_s": 0.5}], indirect=True
)
async def test_throttled_requests_are_retried_with_backoff(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    tree = fleet_tree(tmp_path, 400)  # 4 bulk requests of 100 against 83 identity ops/s
    _run, report = await hub_engine.apply([tree])
    assert not report.failed, [r.error for r in report.failed][:3]
    stats = (await owner.get("/_emulator/stats")).json()
    assert stats["rpcs"]["BulkRegistry"].get("429", 0) > 0  # the hub did push back
    assert changes(await hub_engine.plan([tree])) == {}
    assert len(await hub_ids(owner)) == 405


@pytest.fixture
def held_hub() -> Iterator[tuple[str, str, HoldLaterRequests]]:
    """The served hub with its bulk registry requests after the first held."""
    key = new_key()
    gate = HoldLaterRequests(
        build_app(key, latency_ms=30), lambda method, path: (method, path) == ("POST", "/devices")
    )
    with serve_in_thread(gate) as root_url:
        try:
            yield root_url, key, gate
        finally:
            gate.release.set()


DEVICE_KEYS = {"SENSOR_2_PRIMARY": new_key(), "SENSOR_2_SECONDARY": new_key()}


def _cli(tree: Path, root_url: str, key: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", str(tree), "--auto-approve",
         "--parallelism", "2"],
        env={
            "PATH": "/usr/bin:/bin",
            "IOTHUB_CONNECTION_STRING": connection_string(key),
            "RECONCILER_IOTHUB_URL": root_url,
            **DEVICE_KEYS,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _device_ids(root_url: str, key: str) -> list[str]:
    headers = {"Authorization": sas_token(HOST, key, "iothubowner")}
    response = httpx.post(
        f"{root_url}/devices/query",
        params={"api-version": API_VERSION},
        json={"query": "SELECT * FROM devices"},
        headers={**headers, "x-ms-max-item-count": "1000"},
        timeout=10,
    )
    return [item["deviceId"] for item in response.json()]


def _stderr_until(process: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    """The process's stderr up to and including the first line starting with `prefix`."""
    lines: queue.Queue[str] = queue.Queue()
    stream = process.stderr
    assert stream is not None

    def read() -> None:
        for line in stream:
            lines.put(line)
            if line.startswith(prefix):
                return
        lines.put("")  # end of the stream

    threading.Thread(target=read, daemon=True).start()
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        seen.append(line)
        if not line or line.startswith(prefix):
            assert line, f"stderr ended without a line starting with {prefix!r}: {seen}"
            return "".join(seen)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_apply_converges_on_the_next_run(
    tmp_path: Path, held_hub: tuple[str, str, HoldLaterRequests], how: signal.Signals
) -> None:
    root_url, key, gate = held_hub
    tree = fleet_tree(tmp_path, 120)  # two bulk requests: one answered, one held
    process = _cli(tree, root_url, key)
    assert gate.first_answered.wait(60), "the apply never reached its first bulk request"
    process.send_signal(how)
    early = ""
    if how == signal.SIGINT:
        # Let the held request go only once the CLI has taken the interrupt.
        early = _stderr_until(process, "Interrupted", timeout=60)
    gate.release.set()
    _out, err = process.communicate(timeout=60)
    err = early + err
    assert "Traceback" not in err
    if how == signal.SIGINT:
        assert process.returncode == 130, err
    rerun = _cli(tree, root_url, key)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, (out, err)
    ids = _device_ids(root_url, key)
    assert len(ids) == len(set(ids)) == 125
    again = _cli(tree, root_url, key)
    out, _err = again.communicate(timeout=120)
    assert "No changes" in out or "Nothing to apply" in out, out
