"""Helpers for import tests: a varied live state made through the API alone, a second (empty)
emulator, record reads on all four registries, and the checks of the round-trip contract."""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from reconciler.manifest.load import load_manifests
from reconciler.plan.model import Plan
from reconciler.providers.registry import MANIFEST_KINDS
from reconciler.providers.tts.importing.live import Selection
from reconciler.providers.tts.importing.run import ImportOptions, run_import
from tests.conftest import ASGI_BASE_URL, build_emulator_app, end_streams_when_idle
from tests.core.support import ROOT_URL
from tests.emulator.support import expect_ok

UP_SCRIPT = "function decodeUplink(input) {\n  return {data: {bytes: input.bytes}};\n}\n"
DEVICE_SCRIPT = "function decodeUplink(input) { return {data: {t: input.bytes[0]}}; }\n"
WEBHOOK_HEADERS = {"Authorization": "Bearer s3cr3t-token", "X-Site": "north"}
# A pub/sub's credentials: the server returns them in clear; import writes references.
PUBSUB_PASSWORD = "mqtt-s3cr3t-password"
PUBSUB_CA = "-----BEGIN CERTIFICATE-----\nY2EgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"

# Device paths compared between original and recreated records, per registry.
RECORD_MASKS: dict[str, list[str]] = {
    "is": [
        "name",
        "description",
        "attributes",
        "version_ids",
        "locations",
        "network_server_address",
        "application_server_address",
        "join_server_address",
    ],
    "ns": [
        "frequency_plan_id",
        "lorawan_version",
        "lorawan_phy_version",
        "supports_join",
        "supports_class_b",
        "supports_class_c",
        "mac_settings",
        "session.dev_addr",
        "session.keys.f_nwk_s_int_key.key",
        "session.keys.s_nwk_s_int_key.key",
        "session.keys.nwk_s_enc_key.key",
        "version_ids",
    ],
    "as": ["formatters", "session.dev_addr", "session.keys.app_s_key.key", "version_ids"],
    "js": [
        "root_keys.app_key.key",
        "root_keys.nwk_key.key",
        "network_server_address",
        "application_server_address",
    ],
}
SERVER_OWNED = ("created_at", "updated_at")


def new_transport(api_key: str) -> contextlib.AbstractAsyncContextManager[httpx.ASGITransport]:
    """A fresh in-process emulator (its admin key `api_key`)."""

    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[httpx.ASGITransport]:
        app = build_emulator_app(api_key)
        end_streams_when_idle(app)
        async with app.router.lifespan_context(app):
            yield httpx.ASGITransport(app=app)

    return run()


def admin_client(transport: httpx.AsyncBaseTransport, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport,
        base_url=ASGI_BASE_URL,
        headers={"Authorization": f"Bearer {api_key}"},
    )


async def put_device(
    client: httpx.AsyncClient, server: str, app_id: str, device: Mapping[str, Any], paths: list[str]
) -> None:
    device_id = device["ids"]["device_id"]
    expect_ok(
        await client.put(
            f"/{server}/applications/{app_id}/devices/{device_id}",
            json={"end_device": device, "field_mask": {"paths": paths}},
        )
    )


async def register(client: httpx.AsyncClient, app_id: str, device: Mapping[str, Any]) -> None:
    """Register a device as the CLI does: IS create, then JS (OTAA), NS and AS, each with the
    paths of `device` it owns."""
    ids = dict(device["ids"])
    is_fields = {k: device[k] for k in RECORD_MASKS["is"] if k in device}
    expect_ok(
        await client.post(
            f"/applications/{app_id}/devices", json={"end_device": {"ids": ids, **is_fields}}
        )
    )
    otaa = bool(device.get("supports_join"))
    if otaa:
        await put_device(
            client,
            "js",
            app_id,
            {"ids": ids, "root_keys": device["root_keys"]},
            [f"root_keys.{k}.key" for k in device["root_keys"]],
        )
    ns_paths = [
        p
        for p in (
            "frequency_plan_id",
            "lorawan_version",
            "lorawan_phy_version",
            "supports_join",
            "supports_class_b",
            "supports_class_c",
        )
        if p in device
    ]
    if "version_ids" in device:  # the CLI writes them to IS, NS and AS
        ns_paths.append("version_ids")
    ns = {k: device[k] for k in ns_paths}
    if "mac_settings" in device:
        ns["mac_settings"] = device["mac_settings"]
        ns_paths += [f"mac_settings.{k}" for k in device["mac_settings"]]
    session = device.get("session")
    if session:
        ns["session"] = {
            "dev_addr": session["dev_addr"],
            "keys": {k: v for k, v in session["keys"].items() if k != "app_s_key"},
        }
        ns_paths += ["session.dev_addr"] + [
            f"session.keys.{k}.key" for k in session["keys"] if k != "app_s_key"
        ]
    await put_device(client, "ns", app_id, {"ids": ids, **ns}, ns_paths)
    as_body: dict[str, Any] = {"ids": ids}
    as_paths = ["ids.device_id"]
    if "formatters" in device:
        as_body["formatters"] = device["formatters"]
        as_paths += [f"formatters.{k}" for k in device["formatters"]]
    if "version_ids" in device:
        as_body["version_ids"] = device["version_ids"]
        as_paths.append("version_ids")
    if session:
        as_body["session"] = {
            "dev_addr": session["dev_addr"],
            "keys": {"app_s_key": session["keys"]["app_s_key"]},
        }
        as_paths += ["session.dev_addr", "session.keys.app_s_key.key"]
    await put_device(client, "as", app_id, as_body, as_paths)


def plain_otaa(index: int) -> dict[str, Any]:
    """A device the CSV format can hold (it goes to a fleet)."""
    return {
        "ids": {
            "device_id": f"node-{index}",
            "dev_eui": f"70B3D57EE{index:07X}",
            "join_eui": "70B3D57ED0000000",
        },
        "name": f"Node {index}",
        "frequency_plan_id": "EU_863_870_TTN",
        "lorawan_version": "MAC_V1_0_3",
        "lorawan_phy_version": "PHY_V1_0_3_REV_A",
        "supports_join": True,
        "root_keys": {"app_key": {"key": f"{index:032X}"}},
    }


def varied_devices() -> list[dict[str, Any]]:
    """OTAA 1.0.x and 1.1, ABP, class B and C, mac_settings, locations, attributes, version
    ids, device formatters: each feature on at least one device; and plain ones for a fleet."""
    plan = "EU_863_870_TTN"
    return [plain_otaa(i) for i in range(1, 4)] + [
        {
            "ids": {
                "device_id": "otaa-103",
                "dev_eui": "70B3D57ED0000001",
                "join_eui": "70B3D57ED0000000",
            },
            "name": "OTAA 1.0.3",
            "attributes": {"row": "1", "crop": "apple"},
            "locations": {
                "user": {
                    "latitude": 52.37,
                    "longitude": 4.89,
                    "altitude": 2,
                    "source": "SOURCE_REGISTRY",
                }
            },
            "version_ids": {
                "brand_id": "acme",
                "model_id": "probe-3",
                "hardware_version": "1.2",
                "firmware_version": "3.4",
                "band_id": "EU_863_870",
            },
            "frequency_plan_id": plan,
            "lorawan_version": "MAC_V1_0_3",
            "lorawan_phy_version": "PHY_V1_0_3_REV_A",
            "supports_join": True,
            "root_keys": {"app_key": {"key": "2B7E151628AED2A6ABF7158809CF4F3C"}},
            "mac_settings": {"rx1_delay": 5, "supports_32_bit_f_cnt": True, "use_adr": True},
            "formatters": {
                "up_formatter": "FORMATTER_JAVASCRIPT",
                "up_formatter_parameter": DEVICE_SCRIPT,
            },
        },
        {
            "ids": {
                "device_id": "otaa-103-b",
                "dev_eui": "70B3D57ED0000005",
                "join_eui": "70B3D57ED0000000",
            },
            "name": "OTAA 1.0.3 (second)",
            "attributes": {"row": "2", "crop": "apple"},
            "frequency_plan_id": plan,
            "lorawan_version": "MAC_V1_0_3",
            "lorawan_phy_version": "PHY_V1_0_3_REV_A",
            "supports_join": True,
            "root_keys": {"app_key": {"key": "2B7E151628AED2A6ABF7158809CF4F3D"}},
        },
        {
            "ids": {
                "device_id": "otaa-11",
                "dev_eui": "70B3D57ED0000002",
                "join_eui": "70B3D57ED0000000",
            },
            "frequency_plan_id": plan,
            "lorawan_version": "MAC_V1_1",
            "lorawan_phy_version": "PHY_V1_1_REV_B",
            "supports_join": True,
            "root_keys": {
                "app_key": {"key": "000102030405060708090A0B0C0D0E0F"},
                "nwk_key": {"key": "F0E0D0C0B0A090807060504030201000"},
            },
        },
        {
            "ids": {"device_id": "abp-102", "dev_eui": "70B3D57ED0000003"},
            "description": "ABP, LoRaWAN 1.0.2",
            "frequency_plan_id": plan,
            "lorawan_version": "MAC_V1_0_2",
            "lorawan_phy_version": "PHY_V1_0_2_REV_B",
            "mac_settings": {
                "resets_f_cnt": True,
                "factory_preset_frequencies": ["868100000", "868300000"],
            },
            "session": {
                "dev_addr": "260B0001",
                "keys": {
                    "app_s_key": {"key": "11223344556677889900AABBCCDDEEFF"},
                    "f_nwk_s_int_key": {"key": "FFEEDDCCBBAA00998877665544332211"},
                },
            },
        },
        {
            "ids": {
                "device_id": "class-b",
                "dev_eui": "70B3D57ED0000006",
                "join_eui": "70B3D57ED0000000",
            },
            "frequency_plan_id": plan,
            "lorawan_version": "MAC_V1_0_3",
            "lorawan_phy_version": "PHY_V1_0_3_REV_A",
            "supports_join": True,
            "supports_class_b": True,
            "root_keys": {"app_key": {"key": "A1A2A3A4A5A6A7A8A9AAABACADAEAFB1"}},
            "mac_settings": {
                "ping_slot_periodicity": "PING_EVERY_8S",
                "ping_slot_data_rate_index": 3,
                "ping_slot_frequency": "869525000",
            },
        },
        {
            "ids": {
                "device_id": "class-c",
                "dev_eui": "70B3D57ED0000004",
                "join_eui": "70B3D57ED0000000",
            },
            "frequency_plan_id": plan,
            "lorawan_version": "MAC_V1_0_3",
            "lorawan_phy_version": "PHY_V1_0_3_REV_A",
            "supports_join": True,
            "supports_class_c": True,
            "root_keys": {"app_key": {"key": "A1A2A3A4A5A6A7A8A9AAABACADAEAFB0"}},
            "mac_settings": {"rx2_data_rate_index": 3, "rx2_frequency": "869525000"},
        },
    ]


async def build_varied_state(client: httpx.AsyncClient, admin_user: str) -> None:
    """Applications, link formatters, webhooks with secret headers, devices and gateways, made
    through the API only (as the Console or scripts would)."""
    app = {
        "ids": {"application_id": "orchard"},
        "name": "Orchard sensors",
        "description": "Soil and weather",
        "attributes": {"site": "north"},
    }
    expect_ok(await client.post(f"/users/{admin_user}/applications", json={"application": app}))
    expect_ok(
        await client.put(
            "/as/applications/orchard/link",
            json={
                "link": {
                    "default_formatters": {
                        "up_formatter": "FORMATTER_JAVASCRIPT",
                        "up_formatter_parameter": UP_SCRIPT,
                        "down_formatter": "FORMATTER_CAYENNELPP",
                    }
                },
                "field_mask": {
                    "paths": [
                        "default_formatters.up_formatter",
                        "default_formatters.up_formatter_parameter",
                        "default_formatters.down_formatter",
                    ]
                },
            },
        )
    )
    webhook = {
        "ids": {"webhook_id": "ingest", "application_ids": {"application_id": "orchard"}},
        "base_url": "https://ingest.example.com/ttn",
        "format": "json",
        "headers": WEBHOOK_HEADERS,
        "uplink_message": {"path": "/up"},
        "join_accept": {},
    }
    expect_ok(
        await client.put(
            "/as/webhooks/orchard/ingest",
            json={
                "webhook": webhook,
                "field_mask": {
                    "paths": ["base_url", "format", "headers", "uplink_message", "join_accept"]
                },
            },
        )
    )
    pubsub = {
        "format": "json",
        "base_topic": "orchard",
        "mqtt": {
            "server_url": "mqtts://broker.example.com:8883",
            "username": "orchard",
            "password": PUBSUB_PASSWORD,
            "use_tls": True,
            "tls_ca": base64.b64encode(PUBSUB_CA.encode()).decode(),
            "publish_qos": "AT_LEAST_ONCE",
        },
        "uplink_message": {"topic": "up"},
        "downlink_push": {"topic": "down/push"},
    }
    pubsub_paths = [
        "format",
        "base_topic",
        "provider.mqtt",
        "uplink_message",
        "downlink_push",
    ]
    expect_ok(
        await client.put(
            "/as/pubsub/orchard/broker",
            json={"pubsub": pubsub, "field_mask": {"paths": pubsub_paths}},
        )
    )
    for device in varied_devices():
        await register(client, "orchard", device)
    empty = {"ids": {"application_id": "empty-app"}, "name": "No devices yet"}
    expect_ok(await client.post(f"/users/{admin_user}/applications", json={"application": empty}))
    gateways = [
        {
            "ids": {"gateway_id": "gw-barn", "eui": "B827EBFFFE8B01A1"},
            "name": "Barn roof",
            "frequency_plan_ids": ["EU_863_870_TTN"],
            "gateway_server_address": "emulator.test",
            "antennas": [
                {
                    "location": {
                        "latitude": 52.1,
                        "longitude": 4.2,
                        "altitude": 12,
                        "source": "SOURCE_REGISTRY",
                    }
                }
            ],
            "status_public": True,
        },
        {
            "ids": {"gateway_id": "gw-dual", "eui": "B827EBFFFE8B01A2"},
            "frequency_plan_ids": ["EU_863_870", "EU_863_870_TTN"],
            "gateway_server_address": "emulator.test",
            "attributes": {"mast": "west"},
            "location_public": True,
        },
    ]
    for gateway in gateways:
        expect_ok(await client.post(f"/users/{admin_user}/gateways", json={"gateway": gateway}))


async def device_records(
    client: httpx.AsyncClient, app_id: str, ownership_key: str = "managed-by"
) -> dict[str, dict[str, Any]]:
    """`device/registry` -> record (compared paths, without server-owned fields and the
    ownership marker) for every device of an application, on all four registries."""
    listing = expect_ok(
        await client.get(f"/applications/{app_id}/devices", params={"field_mask": "ids"})
    )
    records: dict[str, dict[str, Any]] = {}
    for item in listing.get("end_devices") or []:
        device_id = item["ids"]["device_id"]
        for server, mask in RECORD_MASKS.items():
            path = (
                f"/applications/{app_id}/devices/{device_id}"
                if server == "is"
                else f"/{server}/applications/{app_id}/devices/{device_id}"
            )
            response = await client.get(path, params={"field_mask": ",".join(mask)})
            if response.status_code == 404:
                continue
            records[f"{device_id}/{server}"] = strip(expect_ok(response), ownership_key)
    return records


def strip(record: dict[str, Any], ownership_key: str) -> dict[str, Any]:
    result = {k: v for k, v in record.items() if k not in SERVER_OWNED}
    attributes = dict(result.get("attributes") or {})
    attributes.pop(ownership_key, None)
    if attributes:
        result["attributes"] = attributes
    else:
        result.pop("attributes", None)
    return result


async def entity(
    client: httpx.AsyncClient, path: str, mask: str, ownership_key: str = "managed-by"
) -> dict[str, Any]:
    return strip(expect_ok(await client.get(path, params={"field_mask": mask})), ownership_key)


def import_options(
    out: Path, transport: httpx.AsyncBaseTransport, api_key: str, **kwargs: Any
) -> ImportOptions:
    kwargs.setdefault("selection", Selection(("orchard", "empty-app"), ("gw-barn", "gw-dual")))
    return ImportOptions(
        out=out,
        url=ROOT_URL,
        environ={"TTS_API_KEY": api_key},
        transport=transport,
        stack="orchard-north",
        **kwargs,
    )


async def do_import(options: ImportOptions) -> Any:
    return await run_import(options)


def env_template(out: Path) -> list[str]:
    text = (out / "secrets.env").read_text() if (out / "secrets.env").exists() else ""
    return re.findall(r"^([A-Z0-9_]+)=$", text, flags=re.MULTILINE)


def validate(out: Path, environ: Mapping[str, str]) -> None:
    result = load_manifests([out], environ=environ, kinds=MANIFEST_KINDS)
    assert not result.has_errors, "\n".join(str(d) for d in result.diagnostics)


def only_adoption(plan: Plan, stack: str, ownership_key: str = "managed-by") -> list[str]:
    """Problems with the contract "a plan on imported manifests shows only adoption"."""
    problems = []
    for change in plan.resources:
        if change.action == "no-op":
            continue
        if not change.adopt or change.action != "update":
            problems.append(f"{change.key}: {change.action} ({change.reason})")
            continue
        for step in change.steps:
            if step.endpoint != "is" or step.paths != ["attributes"]:
                problems.append(f"{change.key}: {step.endpoint} {step.operation} {step.paths}")
                continue
            for field in step.changes:
                if field.new != {ownership_key: stack}:
                    problems.append(f"{change.key}: attributes {field.old} -> {field.new}")
    return problems
