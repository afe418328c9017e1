"""Full gateway settings through the engine against the emulator: Basics Station and CUPS
secrets (by reference, read only with RIGHT_GATEWAY_READ_SECRETS, never shown), update and
scheduling settings, version identifiers and contacts."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.plan.render import render_plan
from tests.core.support import STACK, Engine, write_manifests
from tests.emulator.support import ADMIN_USER, TtsApi

LNS_KEY = "lns-api-key-for-basics-station"
CUPS_KEY = "cups-api-key-for-basics-station"
SECRETS = {"GW_LNS_KEY": LNS_KEY, "GW_CUPS_KEY": CUPS_KEY}
GATEWAY = """
kind: Gateway
id: station-gw
eui: "B827EBFFFE8B0F01"
frequency_plan_ids: [EU_863_870_TTN]
require_authenticated_connection: true
lbs_lns_secret: {env: GW_LNS_KEY}
target_cups_uri: https://cups.example.com:443
target_cups_key: {env: GW_CUPS_KEY}
auto_update: true
update_channel: stable
enforce_duty_cycle: true
schedule_downlink_late: false
schedule_anytime_delay: 0.53s
disable_packet_broker_forwarding: true
update_location_from_status: true
version_ids: {brand_id: semtech, model_id: sx1302, firmware_version: "2.1"}
administrative_contact: {user: admin-user}
technical_contact: {user: admin-user}
"""


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key, environ_extra=dict(SECRETS))


def site(directory: Path, gateway: str = GATEWAY) -> Path:
    return write_manifests(directory, stack=STACK, gateway=gateway)


def shown(run: object) -> str:
    plan = run.plan  # type: ignore[attr-defined]
    return "\n".join(str(line) for line in render_plan(plan, full=True)) + plan.dumps()


async def test_apply_then_plan_is_empty_and_drift_is_repaired(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    assert LNS_KEY not in shown(run) and CUPS_KEY not in shown(run)
    mask = (
        "require_authenticated_connection,lbs_lns_secret,target_cups_uri,target_cups_key,"
        "auto_update,update_channel,enforce_duty_cycle,schedule_anytime_delay,"
        "disable_packet_broker_forwarding,update_location_from_status,version_ids,"
        "administrative_contact,technical_contact"
    )
    gateway = (await client.get("/gateways/station-gw", params={"field_mask": mask})).json()
    assert gateway["require_authenticated_connection"] is True
    assert gateway["target_cups_uri"] == "https://cups.example.com:443"
    assert gateway["schedule_anytime_delay"] == "0.530s"
    assert gateway["version_ids"]["model_id"] == "sx1302"
    assert gateway["technical_contact"] == {"user_ids": {"user_id": ADMIN_USER}}
    assert gateway["update_channel"] == "stable"
    again = await eng.plan(paths)
    assert again.plan.changes == [], [c.reason for c in again.plan.changes]

    # The Console turns duty-cycle enforcement off and pastes another LNS key.
    console = {
        "gateway": {"enforce_duty_cycle": False, "lbs_lns_secret": {"value": "b3RoZXI="}},
        "field_mask": {"paths": ["enforce_duty_cycle", "lbs_lns_secret.value"]},
    }
    assert (await client.put("/gateways/station-gw", json=console)).status_code == 200
    run = await eng.plan(paths)
    [change] = run.plan.changes
    fields = {c.path: c for s in change.steps for c in s.changes}
    assert set(fields) == {"enforce_duty_cycle", "lbs_lns_secret.value"}
    assert fields["lbs_lns_secret.value"].sensitive
    assert LNS_KEY not in shown(run)
    _, report = await eng.apply(paths)
    assert not report.failed
    assert (await eng.plan(paths)).plan.changes == []


async def test_without_the_secrets_right_secrets_are_set_on_create_only(
    eng: Engine, tmp_path: Path, tts: TtsApi
) -> None:
    paths = [site(tmp_path)]
    _, report = await eng.apply(paths)
    assert not report.failed
    rights = [
        "RIGHT_USER_GATEWAYS_LIST",
        "RIGHT_GATEWAY_INFO",
        "RIGHT_GATEWAY_SETTINGS_BASIC",
        "RIGHT_USER_GATEWAYS_CREATE",
    ]
    weak = await tts.create_user_api_key(ADMIN_USER, rights)
    weak_eng = Engine(eng.transport, weak, environ_extra=dict(SECRETS))
    run = await weak_eng.plan(paths)
    assert run.plan.changes == []
    [warning] = {w for c in run.plan.resources for w in c.warnings}
    assert "RIGHT_GATEWAY_READ_SECRETS" in warning
    rotate = await weak_eng.plan(paths, rotate_keys=True)
    [change] = rotate.plan.changes
    assert {c.path for s in change.steps for c in s.changes} == {
        "lbs_lns_secret.value",
        "target_cups_key.value",
    }
