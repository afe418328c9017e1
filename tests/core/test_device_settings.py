"""Full device settings: every `mac_settings` field the Network Server accepts (ADR modes,
durations, enums, desired values), the deprecated ADR spelling, multicast groups and the other
device fields (serial number, NetID, join nonce resets, payload crypto override, claim code),
through the engine against the emulator."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from reconciler.manifest.load import load_manifests
from reconciler.plan.render import render_plan
from reconciler.providers.registry import MANIFEST_KINDS
from reconciler.providers.tts.manifest import mac_settings
from tests.core.support import STACK, Engine, write_manifests

CLAIM_CODE = "CLAIMCODE1234"
SECRETS = {"OTAA_APP_KEY": "2B7E151628AED2A6ABF7158809CF4F3C", "SENSOR_CLAIM": CLAIM_CODE}
APPLICATION = """
kind: Application
id: full-settings
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  lorawan_version: 1.0.3
  lorawan_phy_version: 1.0.3-a
"""
OTAA = """
kind: Device
application: full-settings
id: tuned-sensor
dev_eui: "70B3D57ED00000A1"
join_eui: "70B3D57ED0000000"
app_key: {env: OTAA_APP_KEY}
serial_number: sn-000123
resets_join_nonces: true
net_id: "000013"
skip_payload_crypto_override: false
claim_authentication_code: {env: SENSOR_CLAIM}
mac_settings:
  adr: {dynamic: {margin: 12.5, min_data_rate_index: 1, max_nb_trans: 2}}
  class_c_timeout: 2m
  status_time_periodicity: 3600
  status_count_periodicity: 50
  desired_max_duty_cycle: DUTY_CYCLE_16
  desired_adr_ack_limit_exponent: ADR_ACK_LIMIT_64
  desired_max_eirp: DEVICE_EIRP_14
  rx1_data_rate_offset: 2
  uplink_dwell_time: false
  schedule_downlinks: true
  beacon_frequency: 0
"""
MULTICAST = """
kind: Device
application: full-settings
id: street-lights
multicast: true
supports_class_c: true
lorawan_version: 1.0.4
lorawan_phy_version: RP002_V1_0_3
dev_addr: "260B1234"
app_s_key: "11223344556677889900AABBCCDDEEFF"
f_nwk_s_int_key: "FFEEDDCCBBAA00998877665544332211"
mac_settings:
  adr: {disabled: {}}
"""


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key, environ_extra=dict(SECRETS))


def site(directory: Path, otaa: str = OTAA, multicast: str = MULTICAST) -> Path:
    return write_manifests(
        directory, stack=STACK, application=APPLICATION, otaa=otaa, multicast=multicast
    )


def test_every_ns_mac_setting_is_modelled() -> None:
    """The model follows the Network Server's allow-list: a field the tables add is a manifest
    field, never silently missing."""
    names = mac_settings.ns_mac_settings()
    assert len(names) == 36
    assert set(names) == set(mac_settings.MacSettings.model_fields)


async def test_apply_then_plan_is_empty_and_drift_is_repaired(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    rendered = "\n".join(str(line) for line in render_plan(run.plan, full=True))
    assert CLAIM_CODE not in rendered and CLAIM_CODE not in run.plan.dumps()

    ns = (
        await client.get(
            "/ns/applications/full-settings/devices/tuned-sensor",
            params={"field_mask": "mac_settings"},
        )
    ).json()["mac_settings"]
    assert ns["adr"] == {"dynamic": {"margin": 12.5, "min_data_rate_index": 1, "max_nb_trans": 2}}
    assert ns["class_c_timeout"] == "120s"
    assert ns["status_time_periodicity"] == "3600s"
    assert ns["desired_max_duty_cycle"] == "DUTY_CYCLE_16"
    js = (
        await client.get(
            "/js/applications/full-settings/devices/tuned-sensor",
            params={"field_mask": "net_id,resets_join_nonces"},
        )
    ).json()
    assert js["net_id"] == "000013" and js["resets_join_nonces"] is True
    is_record = (
        await client.get(
            "/applications/full-settings/devices/tuned-sensor",
            params={"field_mask": "serial_number,claim_authentication_code"},
        )
    ).json()
    assert is_record["serial_number"] == "sn-000123"
    assert is_record["claim_authentication_code"]["value"] == CLAIM_CODE
    group = (
        await client.get(
            "/ns/applications/full-settings/devices/street-lights",
            params={"field_mask": "multicast,supports_join,mac_settings.adr"},
        )
    ).json()
    assert group["multicast"] is True and "supports_join" not in group

    again = (await eng.plan(paths)).plan.changes
    assert again == [], [(str(c.key), c.reason, [s.changes for s in c.steps]) for c in again]

    # The Console switches ADR to static and shortens the class C timeout.
    console = {
        "end_device": {
            "mac_settings": {"adr": {"static": {"data_rate_index": 5}}, "class_c_timeout": "5s"}
        },
        "field_mask": {"paths": ["mac_settings.adr", "mac_settings.class_c_timeout"]},
    }
    response = await client.put("/ns/applications/full-settings/devices/tuned-sensor", json=console)
    assert response.status_code == 200, response.text
    run = await eng.plan(paths)
    [change] = run.plan.changes
    changed = {c.path for s in change.steps for c in s.changes}
    assert changed == {"mac_settings.adr", "mac_settings.class_c_timeout"}
    _, report = await eng.apply(paths)
    assert not report.failed
    assert (await eng.plan(paths)).plan.changes == []


async def test_multicast_is_immutable(eng: Engine, tmp_path: Path) -> None:
    paths = [site(tmp_path)]
    _, report = await eng.apply(paths)
    assert not report.failed
    unicast = MULTICAST.replace("multicast: true", "multicast: false").replace(
        "lorawan_version: 1.0.4", 'lorawan_version: 1.0.4\ndev_eui: "70B3D57ED00000B1"'
    )
    run = await eng.plan([site(tmp_path, multicast=unicast)])
    [change] = [c for c in run.plan.changes if c.key.id == "street-lights"]
    assert change.action == "replace"
    assert "multicast" in change.reason


def load_errors(tmp_path: Path, **files: str) -> list[str]:
    write_manifests(tmp_path, stack=STACK, application=APPLICATION, **files)
    result = load_manifests([tmp_path], environ=SECRETS, kinds=MANIFEST_KINDS)
    return [
        f"{d.location.line}:{d.severity}: {d.message}"
        for d in result.diagnostics
        if d.severity in ("error", "warning")
    ]


def test_bad_settings_are_located(tmp_path: Path) -> None:
    bad = textwrap.dedent(
        """
        kind: Device
        application: full-settings
        id: tuned-sensor
        dev_eui: "70B3D57ED00000A1"
        join_eui: "70B3D57ED0000000"
        app_key: {env: OTAA_APP_KEY}
        mac_settings:
          adr: {dynamic: {}, disabled: {}}
          class_b_timeout: soon
          desired_max_eirp: DEVICE_EIRP_99
          status_count_periodicity: -1
        """
    )
    problems = load_errors(tmp_path, otaa=bad)
    text = "\n".join(problems)
    assert "exactly one of `static`, `dynamic` or `disabled`" in text
    assert "not a duration" in text
    assert "DEVICE_EIRP_14" in text  # the choices are listed
    lines = {p.split(":", 1)[0] for p in problems}
    assert {"8", "9", "10", "11"} <= lines, problems


def test_deprecated_adr_spelling_is_accepted_with_a_warning(tmp_path: Path) -> None:
    old = OTAA.replace(
        "  adr: {dynamic: {margin: 12.5, min_data_rate_index: 1, max_nb_trans: 2}}",
        "  use_adr: true\n  adr_margin: 10",
    )
    problems = load_errors(tmp_path, otaa=old)
    warnings = [p for p in problems if ":warning:" in p]
    assert any("deprecated" in w and "`adr`" in w for w in warnings), problems
    assert not [p for p in problems if ":error:" in p], problems
    both = OTAA.replace("mac_settings:\n", "mac_settings:\n  use_adr: true\n")
    assert any(
        ":error:" in p and "not also the deprecated" in p for p in load_errors(tmp_path, otaa=both)
    )


def test_multicast_rules_are_located(tmp_path: Path) -> None:
    joins = MULTICAST.replace('dev_addr: "260B1234"', 'dev_addr: "260B1234"\nsupports_join: true')
    problems = load_errors(tmp_path, multicast=joins)
    assert any("multicast" in p and "ABP" in p for p in problems), problems
    class_a = MULTICAST.replace("supports_class_c: true", "supports_class_c: false")
    problems = load_errors(tmp_path, multicast=class_a)
    assert any("multicast" in p and "class B or C" in p for p in problems), problems
