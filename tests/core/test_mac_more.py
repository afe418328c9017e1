"""The last `mac_settings`: relays (`relay`, `desired_relay`) and dynamic ADR's channel steering
and per-data-rate overrides, in device manifests and device_defaults, through validate, plan,
apply and drift against the emulator, with every request checked against the real tables."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from reconciler.manifest.load import load_manifests
from reconciler.plan.markdown import render_markdown
from reconciler.plan.render import render_plan
from reconciler.providers.registry import MANIFEST_KINDS
from tests.core.support import STACK, Engine, write_manifests
from tests.core.test_request_audit import Recorder, audit
from tests.shared_data import needs_shared

SECRETS = {"RELAY_APP_KEY": "2B7E151628AED2A6ABF7158809CF4F3C", "LEAF_APP_KEY": "0" * 31 + "1"}
APPLICATION = """
kind: Application
id: relays
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  lorawan_version: 1.0.4
  lorawan_phy_version: RP002_V1_0_3
  join_eui: "70B3D57ED0000000"
  mac_settings:
    adr:
      dynamic:
        margin: 10
        channel_steering: {lora_narrow: {}}
        overrides:
          data_rate_2: {min_nb_trans: 1, max_nb_trans: 3}
          data_rate_5: {max_nb_trans: 2}
"""
DEVICES = """
kind: Device
application: relays
id: relay-one
dev_eui: "70B3D57ED00000C1"
app_key: {env: RELAY_APP_KEY}
mac_settings:
  desired_relay:
    serving:
      second_channel: {ack_offset: RELAY_SECOND_CH_ACK_OFFSET_800, data_rate_index: 3,
                       frequency: 868300000}
      default_channel_index: 1
      cad_periodicity: RELAY_CAD_PERIODICITY_20_MILLISECONDS
      uplink_forwarding_rules:
        - device_id: leaf-one
          limits: {bucket_size: RELAY_LIMIT_BUCKET_SIZE_4, reload_rate: 10}
      limits:
        reset_behavior: RELAY_RESET_LIMIT_COUNTER_NO_RESET
        overall: {bucket_size: RELAY_LIMIT_BUCKET_SIZE_12, reload_rate: 100}
---
kind: Device
application: relays
id: leaf-one
dev_eui: "70B3D57ED00000C2"
app_key: {env: LEAF_APP_KEY}
mac_settings:
  relay: {served: {always: {}, serving_device_id: relay-one}}
  desired_relay:
    served: {dynamic: {smart_enable_level: RELAY_SMART_ENABLE_LEVEL_32}, backoff: 12,
             serving_device_id: relay-one}
"""


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key, environ_extra=dict(SECRETS))


def site(directory: Path, devices: str = DEVICES) -> Path:
    return write_manifests(directory, stack=STACK, application=APPLICATION, devices=devices)


async def ns_mac_settings(client: httpx.AsyncClient, device_id: str) -> dict[str, object]:
    response = await client.get(
        f"/ns/applications/relays/devices/{device_id}", params={"field_mask": "mac_settings"}
    )
    assert response.status_code == 200, response.text
    settings: dict[str, object] = response.json()["mac_settings"]
    return settings


async def test_relays_and_steering_apply_plan_drift_and_repair(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await apply_drift_and_repair(eng, client, tmp_path)


@needs_shared
async def test_relay_and_steering_requests_pass_the_request_audit(
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    """Every request of that run would be accepted by the real server (routes, masks,
    non-zero rules, read from the reference tables)."""
    recorder = Recorder(emulator_transport)
    eng = Engine(recorder, admin_api_key, environ_extra=dict(SECRETS))
    await apply_drift_and_repair(eng, client, tmp_path)
    problems, rpcs = audit(recorder.requests)
    assert problems == []
    assert "NsEndDeviceRegistry/Set" in rpcs


async def apply_drift_and_repair(eng: Engine, client: httpx.AsyncClient, tmp_path: Path) -> None:
    paths = [site(tmp_path)]
    _run, report = await eng.apply(paths)
    assert not report.failed, report.failed

    relay = await ns_mac_settings(client, "relay-one")
    assert relay["desired_relay"] == {
        "serving": {
            "second_channel": {
                "ack_offset": "RELAY_SECOND_CH_ACK_OFFSET_800",
                "data_rate_index": 3,
                "frequency": "868300000",
            },
            "default_channel_index": 1,
            "cad_periodicity": "RELAY_CAD_PERIODICITY_20_MILLISECONDS",
            "uplink_forwarding_rules": [
                {
                    "device_id": "leaf-one",
                    "limits": {"bucket_size": "RELAY_LIMIT_BUCKET_SIZE_4", "reload_rate": 10},
                }
            ],
            "limits": {
                "reset_behavior": "RELAY_RESET_LIMIT_COUNTER_NO_RESET",
                "overall": {"bucket_size": "RELAY_LIMIT_BUCKET_SIZE_12", "reload_rate": 100},
            },
        }
    }
    # The application's device_defaults reach every device.
    assert relay["adr"] == {
        "dynamic": {
            "margin": 10.0,
            "channel_steering": {"lora_narrow": {}},
            "overrides": {
                "data_rate_2": {"min_nb_trans": 1, "max_nb_trans": 3},
                "data_rate_5": {"max_nb_trans": 2},
            },
        }
    }
    leaf = await ns_mac_settings(client, "leaf-one")
    assert leaf["relay"] == {"served": {"always": {}, "serving_device_id": "relay-one"}}
    assert leaf["adr"] == relay["adr"]

    again = await eng.plan(paths)
    assert again.plan.changes == [], again.plan.dumps()

    # The Console turns channel steering off and changes the leaf's backoff, with masks in the
    # oneof spelling (only those parts).
    console = {
        "end_device": {
            "mac_settings": {
                "adr": {"dynamic": {"channel_steering": {"disabled": {}}}},
                "desired_relay": {"served": {"backoff": 20}},
            }
        },
        "field_mask": {
            "paths": [
                "mac_settings.adr.mode.dynamic.channel_steering",
                "mac_settings.desired_relay.mode.served.backoff",
            ]
        },
    }
    response = await client.put("/ns/applications/relays/devices/leaf-one", json=console)
    assert response.status_code == 200, response.text
    drifted = await eng.plan(paths)
    [change] = drifted.plan.changes
    assert change.key.id == "leaf-one"
    [step] = change.steps
    assert step.paths == ["mac_settings.adr", "mac_settings.desired_relay"]
    text = "\n".join(str(line) for line in render_plan(drifted.plan))
    # Each differing part is named under its field, not two whole settings side by side.
    assert "        mac_settings.adr:\n" in text
    assert "          dynamic.channel_steering.disabled: {} -> (none)" in text
    assert "          dynamic.channel_steering.lora_narrow: (none) -> {}" in text
    assert "          served.backoff: 20 -> 12" in text
    assert "served.backoff: 20 -> 12" in render_markdown(drifted.plan)

    _run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    assert (await ns_mac_settings(client, "leaf-one"))["adr"] == relay["adr"]
    assert (await eng.plan(paths)).plan.changes == []

    # The leaf moves to another relay and the relay drops its forwarding rule: one update each.
    moved = DEVICES.replace("serving_device_id: relay-one}}", "serving_device_id: relay-two}}")
    moved = moved.replace(
        "      uplink_forwarding_rules:\n        - device_id: leaf-one\n"
        "          limits: {bucket_size: RELAY_LIMIT_BUCKET_SIZE_4, reload_rate: 10}\n",
        "",
    )
    run, report = await eng.apply([site(tmp_path, moved)])
    assert not report.failed, report.failed
    assert sorted(c.key.id for c in run.plan.changes) == ["leaf-one", "relay-one"]
    assert "uplink_forwarding_rules" not in str(
        (await ns_mac_settings(client, "relay-one"))["desired_relay"]
    )
    assert (await eng.plan(paths)).plan.changes == []


def load_errors(tmp_path: Path, devices: str) -> list[str]:
    write_manifests(tmp_path, stack=STACK, application=APPLICATION, devices=devices)
    result = load_manifests([tmp_path], environ=SECRETS, kinds=MANIFEST_KINDS)
    return [f"{d.location.line}: {d.message}" for d in result.diagnostics if d.severity == "error"]


def test_bad_relay_and_steering_settings_are_located(tmp_path: Path) -> None:
    bad = textwrap.dedent(
        """\
        kind: Device
        application: relays
        id: leaf-one
        dev_eui: "70B3D57ED00000C2"
        app_key: {env: LEAF_APP_KEY}
        mac_settings:
          relay: {served: {always: {}}}
          desired_relay:
            served: {always: {}, dynamic: {}, serving_device_id: relay-one}
          adr:
            dynamic:
              channel_steering: {}
        ---
        kind: Device
        application: relays
        id: relay-one
        dev_eui: "70B3D57ED00000C1"
        app_key: {env: RELAY_APP_KEY}
        mac_settings:
          relay:
            serving:
              cad_periodicity: RELAY_CAD_PERIODICITY_3_SECONDS
              limits: {overall: {reload_rate: 127}}
              uplink_forwarding_rules: [{device_id: Not_An_ID}]
          desired_relay:
            serving: {}
            served: {always: {}, serving_device_id: relay-two}
          adr:
            dynamic:
              overrides: {data_rate_3: {min_nb_trans: 3, max_nb_trans: 2}}
        """
    )
    problems = load_errors(tmp_path, bad)
    text = "\n".join(problems)
    expected = {
        7: "missing required field `serving_device_id`",
        9: "set at most one of `always`, `dynamic` or `end_device_controlled`",
        12: "needs exactly one of `lora_narrow` or `disabled`",
        22: "did you mean `RELAY_CAD_PERIODICITY_1_SECOND`?",  # and the choices are listed
        23: "less than or equal to 126",
        24: "should match pattern",
        25: "needs exactly one of `serving` or `served`",
        29: "`overrides.data_rate_3.max_nb_trans` (2) is below `min_nb_trans` (3)",
    }

    for line, message in expected.items():
        assert any(p.startswith(f"{line}: ") and message in p for p in problems), (line, text)
    assert len(problems) == len(expected), text
