"""Plans, drift and saved plans on a live network: the emulator's traffic moves the Network,
Application and Join Server records (sessions, MAC state, nonces, `updated_at`) and the Identity
Server's `last_seen_at`, none of which a plan manages (issue 14, "Done when" 1).

In process the traffic runs on the emulator's manual clock (`traffic.advance`), so every uplink
is deterministic; the CLI test serves the emulator with `--traffic-interval 2` in real time.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import engine
from reconciler.plan.model import ApplyReport, Plan, ResourceResult
from tests.cli_runner import CliRunner
from tests.conftest import ServedEmulator, serve_in_subprocess
from tests.core.support import DEVICES, KEYS, Engine, site
from tests.emulator.support import make_api_key

DEVICE_IDS = ("otaa-103", "otaa-11", "abp-102", "class-c")
CONFIG = "http://emulator.test/_emulator/config"

# A change on every registry: AS formatters, NS MAC settings (ABP and OTAA), a JS root key and
# an IS name; each device's other registries move with traffic meanwhile.
EDITS = (
    (
        "formatters: {up_formatter: FORMATTER_CAYENNELPP}",
        "formatters: {up_formatter: FORMATTER_NONE}",
    ),
    ("  resets_f_cnt: true", "  resets_f_cnt: false"),
    ("id: otaa-11\n", "id: otaa-11\nname: One-one\n"),
    ("app_key: {env: CLASS_C_APP_KEY}", "app_key: {env: CLASS_C_APP_KEY_NEW}"),
)
NEW_KEYS = {"CLASS_C_APP_KEY_NEW": "B1B2B3B4B5B6B7B8B9BABBBCBDBEBFC0"}


def edited_devices() -> str:
    text = DEVICES
    for old, new in EDITS:
        assert old in text
        text = text.replace(old, new)
    return text


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def emulator_config() -> dict[str, Any]:
    return {"traffic_manual_clock": True}


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key, environ_extra=NEW_KEYS)


async def registry_stamps(client: httpx.AsyncClient) -> dict[str, str]:
    """`updated_at` of every device record on the NS, AS and JS, and IS `last_seen_at`."""
    stamps: dict[str, str] = {}
    for device in DEVICE_IDS:
        for server in ("ns", "as", "js"):
            response = await client.get(
                f"/{server}/applications/field-sensors/devices/{device}",
                params={"field_mask": "ids"},
            )
            if response.status_code == 200:
                stamps[f"{server} {device}"] = response.json()["updated_at"]
        identity = await client.get(
            f"/applications/field-sensors/devices/{device}",
            params={"field_mask": "last_seen_at"},
        )
        stamps[f"is {device}"] = identity.json()["updated_at"]
        stamps[f"seen {device}"] = identity.json().get("last_seen_at", "")
    return stamps


async def apply_saved(
    eng: Engine, paths: list[Path], saved: Plan
) -> tuple[list[ResourceResult], ApplyReport]:
    """`apply --plan` as the CLI runs it: re-plan, keep what still holds, apply that."""
    options = engine.saved_plan_options(saved, eng.options(paths))
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    try:
        engine.check_saved_plan_scope(saved, session, options)
        run = await engine.make_plan(loaded, session, options)
        stale = engine.review_saved_plan(run, saved)
        report = await engine.apply_plan(run, session, options)
        return stale, report
    finally:
        await session.aclose()


async def test_plans_and_saved_plans_hold_under_traffic(
    eng: Engine, emulator_app: Any, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    traffic = emulator_app.state.emulator.traffic
    paths = [site(tmp_path)]
    _, report = await eng.apply(paths)
    assert not report.failed

    # A saved plan made before the devices join; then the network gets busy.
    site(tmp_path, devices=edited_devices())
    saved = Plan.from_json(json.loads((await eng.plan(paths)).plan.dumps()))
    planned = {str(c.key) for c in saved.changes}
    assert planned == {f"device field-sensors/{d}" for d in DEVICE_IDS}
    before = await registry_stamps(client)
    response = await client.put(CONFIG, json={"traffic_interval": 2})
    assert response.status_code == 200
    for _ in range(5):
        traffic.advance(2)
    after = await registry_stamps(client)
    # Traffic moved every NS and JS record, the AS records of the devices that joined (the AS
    # stores a device when its session changes) and IS last_seen_at, never IS updated_at.
    unmoved = {f"is {d}" for d in DEVICE_IDS} | {"as abp-102"}
    assert {name for name, stamp in before.items() if after[name] == stamp} == unmoved
    assert traffic.snapshot()["joins"] == 3 and traffic.snapshot()["uplinks"] >= 8

    stale, report = await apply_saved(eng, paths, saved)
    assert stale == []
    assert {str(r.key) for r in report.results if r.outcome == "done"} == planned
    assert not report.failed

    # In sync under traffic: plan empty, drift finds nothing.
    for _ in range(3):
        traffic.advance(2)
        run = await eng.plan(paths)
        assert not run.plan.has_changes(), run.plan.dumps()
        assert not run.plan.orphans

    # A real change to a managed field still makes a saved plan stale, and only that resource.
    site(tmp_path, devices=DEVICES)  # (otaa-11's name is left as it is: no longer managed)
    saved = Plan.from_json(json.loads((await eng.plan(paths)).plan.dumps()))
    planned = {str(c.key) for c in saved.changes}
    assert len(planned) == 3 and "device field-sensors/class-c" in planned
    traffic.advance(2)
    response = await client.put(
        "/ns/applications/field-sensors/devices/class-c",
        json={
            "end_device": {"mac_settings": {"rx2_data_rate_index": 5}},
            "field_mask": {"paths": ["mac_settings.rx2_data_rate_index"]},
        },
    )
    assert response.status_code == 200, response.text
    traffic.advance(2)
    stale, report = await apply_saved(eng, paths, saved)
    assert [(str(r.key), r.error) for r in stale] == [
        ("device field-sensors/class-c", "changed on the server since the plan (endpoint ns)")
    ]
    assert {str(r.key) for r in report.results if r.outcome == "done"} == planned - {
        "device field-sensors/class-c"
    }


class Cli(CliRunner):
    def __init__(self, served: ServedEmulator, cwd: Path) -> None:
        env = {
            **KEYS,
            **NEW_KEYS,
            "TTS_API_KEY": served.api_key,
            "RECONCILER_TTS_URL": served.root_url,
        }
        super().__init__(env, cwd)


def wait_for_sessions(served: ServedEmulator, timeout: float = 20) -> dict[str, str]:
    """Wait until every device has a confirmed session on the NS; its `updated_at`s."""
    deadline = time.monotonic() + timeout
    with served.client() as client:
        while True:
            stamps = {}
            for device in DEVICE_IDS:
                record = client.get(
                    f"/ns/applications/field-sensors/devices/{device}",
                    params={"field_mask": "session.dev_addr,session.started_at"},
                ).json()
                if record.get("session", {}).get("started_at"):
                    stamps[device] = record["updated_at"]
            if len(stamps) == len(DEVICE_IDS):
                return stamps
            assert time.monotonic() < deadline, f"no session for some devices: {stamps}"
            time.sleep(0.2)


@pytest.mark.slow
def test_cli_under_traffic_interval_2(tmp_path: Path) -> None:
    with serve_in_subprocess(make_api_key(), "--traffic-interval", "2") as (served, ready):
        assert "traffic every 2 s per device" in ready
        manifests = site(tmp_path / "manifests")
        cli = Cli(served, tmp_path)
        cli("apply", "manifests", "--auto-approve")
        wait_for_sessions(served)
        cli("plan", "manifests", "--detailed-exitcode", expect=0)
        cli("drift", "manifests", expect=0)

        # A fresh saved plan, applied after every device sent more uplinks: applied in full.
        (manifests / "devices.yaml").write_text(edited_devices())
        plan_file = tmp_path / "plan.json"
        cli("plan", "manifests", "--out", str(plan_file))
        planned = wait_for_sessions(served)
        time.sleep(3.2)  # longer than the longest gap between two uplinks (1.5 x 2 s)
        moved = wait_for_sessions(served)
        assert all(instant(moved[d]) > instant(planned[d]) for d in DEVICE_IDS)
        applied = cli("apply", "--plan", str(plan_file))
        assert "Apply: 4 done, 0 failed, 0 skipped, 0 stale." in applied
        cli("plan", "manifests", "--detailed-exitcode", expect=0)
        cli("drift", "manifests", expect=0)
