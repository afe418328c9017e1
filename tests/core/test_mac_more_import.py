"""`reconciler import` of relays and dynamic ADR's channel steering and overrides (a plan on the
imported tree changes nothing), and the claim authentication code: read with
RIGHT_APPLICATION_DEVICES_READ, as the Identity Server returns it, and imported as a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from reconciler.providers.tts.importing.live import Selection
from tests.core.support import STACK, Engine, write_manifests
from tests.emulator.support import expect_ok
from tests.importer.support import (
    do_import,
    import_options,
    only_adoption,
    register,
    validate,
)

CLAIM_CODE = "CLAIMCODE42"
STEERED = {
    "dynamic": {
        "margin": 12.5,
        "channel_steering": {"disabled": {}},
        "overrides": {
            "data_rate_0": {"min_nb_trans": 2, "max_nb_trans": 3},
            "data_rate_4": {"max_nb_trans": 1},
        },
    }
}
SERVING = {
    "serving": {
        "second_channel": {"data_rate_index": 3, "frequency": "869100000"},
        "cad_periodicity": "RELAY_CAD_PERIODICITY_50_MILLISECONDS",
        "uplink_forwarding_rules": [{"device_id": "leaf-one"}, {}],
        "limits": {"join_requests": {"reload_rate": 4}},
    }
}
SERVED = {"served": {"end_device_controlled": {}, "serving_device_id": "relay-one"}}


def otaa(device_id: str, dev_eui: str, key: str, mac_settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "ids": {"device_id": device_id, "dev_eui": dev_eui, "join_eui": "70B3D57ED0000000"},
        "frequency_plan_id": "EU_863_870_TTN",
        "lorawan_version": "MAC_V1_0_4",
        "lorawan_phy_version": "RP002_V1_0_3",
        "supports_join": True,
        "root_keys": {"app_key": {"key": key}},
        "mac_settings": mac_settings,
    }


async def build_state(client: httpx.AsyncClient) -> None:
    """Devices as the Console and API leave them: relay settings on both ends, steering and
    overrides, and a claim code on one."""
    expect_ok(
        await client.post(
            "/users/admin-user/applications",
            json={"application": {"ids": {"application_id": "relays"}}},
        )
    )
    relay = otaa(
        "relay-one",
        "70B3D57ED00000D1",
        "2B7E151628AED2A6ABF7158809CF4F3C",
        {"adr": STEERED, "relay": SERVING, "desired_relay": SERVING},
    )
    leaf = otaa(
        "leaf-one",
        "70B3D57ED00000D2",
        "000102030405060708090A0B0C0D0E0F",
        {"adr": {"static": {"data_rate_index": 5, "nb_trans": 2}}, "desired_relay": SERVED},
    )
    for device in (relay, leaf):
        await register(client, "relays", device)
    await set_claim_code(client, "leaf-one", CLAIM_CODE)


async def set_claim_code(client: httpx.AsyncClient, device_id: str, code: str) -> None:
    """As the Console sets it: an Identity Server update of the device."""
    body = {
        "end_device": {"claim_authentication_code": {"value": code}},
        "field_mask": {"paths": ["claim_authentication_code"]},
    }
    expect_ok(await client.put(f"/applications/relays/devices/{device_id}", json=body))


async def test_import_round_trips_relays_steering_and_the_claim_code(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    await build_state(client)
    out = tmp_path / "imported"
    report = await do_import(
        import_options(out, emulator_transport, admin_api_key, selection=Selection(("relays",), ()))
    )
    assert report.counts["device"] == 2
    report_text = (out / "import-report.txt").read_text()
    assert "relay" not in report_text and "mac_settings" not in report_text, report_text

    texts = {p: p.read_text() for p in out.rglob("*") if p.is_file()}
    manifests = "".join(t for p, t in texts.items() if p.suffix == ".yaml")
    assert CLAIM_CODE not in manifests
    assert "channel_steering" in manifests and "uplink_forwarding_rules" in manifests
    [claim_file] = [p for p in texts if p.name == "leaf-one.claim_authentication_code"]
    assert texts[claim_file].strip() == CLAIM_CODE

    environ = {"TTS_API_KEY": admin_api_key}
    validate(out, environ)
    run = await Engine(emulator_transport, admin_api_key, environ_extra=environ).plan([out])
    assert only_adoption(run.plan, "orchard-north") == []
    assert all(c.adopt for c in run.plan.changes)


APPLICATION = """
kind: Application
id: relays
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  lorawan_version: 1.0.4
  lorawan_phy_version: RP002_V1_0_3
  join_eui: "70B3D57ED0000000"
"""
CLAIMED = """
kind: Device
application: relays
id: claimed
dev_eui: "70B3D57ED00000D3"
app_key: {env: CLAIMED_APP_KEY}
claim_authentication_code: {env: CLAIMED_CODE}
"""


async def test_the_claim_code_is_compared_with_devices_read_alone(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    """The Identity Server returns the claim code to a key with RIGHT_APPLICATION_DEVICES_READ:
    a Console change of it is drift (sensitive) for a key without the keys-read right, not a
    key it "cannot verify"."""
    secrets = {"CLAIMED_APP_KEY": "2B7E151628AED2A6ABF7158809CF4F3C", "CLAIMED_CODE": CLAIM_CODE}
    paths = [write_manifests(tmp_path, stack=STACK, application=APPLICATION, device=CLAIMED)]
    _run, report = await Engine(emulator_transport, admin_api_key, environ_extra=secrets).apply(
        paths
    )
    assert not report.failed, report.failed
    rights = [  # all an operator's CI key needs, but not RIGHT_APPLICATION_DEVICES_READ_KEYS
        "RIGHT_APPLICATION_INFO",
        "RIGHT_APPLICATION_SETTINGS_BASIC",
        "RIGHT_APPLICATION_DEVICES_READ",
        "RIGHT_APPLICATION_DEVICES_WRITE",
        "RIGHT_APPLICATION_DEVICES_WRITE_KEYS",
        "RIGHT_APPLICATION_TRAFFIC_READ",
    ]
    created = expect_ok(
        await client.post(
            "/applications/relays/api-keys", json={"name": "reader", "rights": rights}
        )
    )
    reader = Engine(emulator_transport, created["key"], environ_extra=secrets)
    assert (await reader.plan(paths)).plan.changes == []

    await set_claim_code(client, "claimed", "CONSOLE99")
    run = await reader.plan(paths)
    [change] = run.plan.changes
    [step] = change.steps
    [field] = step.changes
    assert field.path == "claim_authentication_code.value"
    assert field.sensitive and not field.unverifiable
    assert "CONSOLE99" not in run.plan.dumps() and CLAIM_CODE not in run.plan.dumps()
