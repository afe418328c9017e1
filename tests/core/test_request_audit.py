"""Every request the tool sends would be accepted by the real TTS.

Requests are recorded while create, update, replace and prune runs go through the emulator, then
checked against the real server's tables read here straight from ../shared (not the generated
copies the tool uses): the route exists for that method (api-definition.json), each field-mask
path is in that RPC's allow-list, and no body carries a non-zero value under a masked path that
the RPC does not allow (`non_zero_path`), nor data outside its mask other than identifiers.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.core.support import DEVICES, Engine, site
from tests.shared_data import TTS_REFERENCE_DIR as REFERENCE
from tests.shared_data import needs_shared

pytestmark = [pytest.mark.asyncio, needs_shared]

WRAPPERS = (
    "end_device",
    "application",
    "gateway",
    "webhook",
    "pubsub",
    "link",
    "organization",
    "api_key",
    "default",
    "association",
)
# The message of each wrapper: bodies hold oneof members as their JSON spells them, masks name
# the oneof too (`mqtt.password` is `provider.mqtt.password`, `mac_settings.adr.dynamic` is
# `mac_settings.adr.mode.dynamic`).
MESSAGE_OF_WRAPPER = {
    wrapper: f"ttn.lorawan.v3.{name}"
    for wrapper, name in (
        ("end_device", "EndDevice"),
        ("application", "Application"),
        ("gateway", "Gateway"),
        ("webhook", "ApplicationWebhook"),
        ("pubsub", "ApplicationPubSub"),
        ("link", "ApplicationLink"),
        ("organization", "Organization"),
        ("api_key", "APIKey"),
        ("default", "ApplicationPackageDefaultAssociation"),
        ("association", "ApplicationPackageAssociation"),
    )
}
# Full device and gateway settings: ADR modes, durations, enums, JS and AS fields, secrets.
SETTINGS = """
kind: Device
application: field-sensors
id: tuned
dev_eui: "70B3D57ED00000F1"
app_key: {env: OTAA_103_APP_KEY}
serial_number: sn-0001
resets_join_nonces: true
net_id: "000013"
skip_payload_crypto_override: true
claim_authentication_code: ABC123
mac_settings:
  adr: {dynamic: {margin: 10, max_nb_trans: 2}}
  class_c_timeout: 30s
  desired_max_eirp: DEVICE_EIRP_14
  rx1_data_rate_offset: 1
---
kind: Gateway
id: audit-gw
eui: "B827EBFFFE8B0FA1"
frequency_plan_ids: [EU_863_870_TTN]
lbs_lns_secret: {env: BUS_MQTT_PASSWORD}
target_cups_uri: https://cups.example.com
enforce_duty_cycle: true
schedule_anytime_delay: 1s
version_ids: {brand_id: semtech, model_id: sx1302}
administrative_contact: {user: admin-user}
location: {latitude: 52.1, longitude: 4.3}
"""
PUBSUB_SECRETS = {
    "BUS_MQTT_PASSWORD": "first-password",
    "BUS_NATS_URL": "nats://u:p@nats.test:4222",
}
PUBSUB_APP = """
kind: Application
id: bus-app
pubsubs:
  - id: broker
    base_topic: site
    mqtt: {server_url: "mqtts://broker.test:8883", password: {env: BUS_MQTT_PASSWORD}}
    uplink_message: up
  - id: stream
    nats: {server_url: {env: BUS_NATS_URL}}
  - id: cloud
    aws_iot: {region: eu-west-1, endpoint_address: iot.eu-west-1.amazonaws.com}
"""
# Create RPCs take no mask; the body must only hold fields the registry stores.
CREATE_FIELDS_FROM = {
    "EndDeviceRegistry/Create": "EndDeviceRegistry/Update",
    "ApplicationRegistry/Create": "ApplicationRegistry/Update",
    "GatewayRegistry/Create": "GatewayRegistry/Update",
    "OrganizationRegistry/Create": "OrganizationRegistry/Update",
}


def route_table() -> list[tuple[str, re.Pattern[str], str]]:
    definition = json.loads((REFERENCE / "api-definition.json").read_text())
    routes = []
    for service, methods in definition.items():
        for method, spec in methods.items():
            for binding in spec.get("http", []):
                pattern = re.sub(r"\{[^}]+\}", "[^/]+", binding["pattern"])
                literal = len(re.sub(r"\{[^}]+\}", "", binding["pattern"]))
                routes.append(
                    (
                        binding["method"].upper(),
                        re.compile(f"^{pattern}$"),
                        f"{service}/{method}",
                        literal,
                    )
                )
    # Most literal first, so `/devices/batch` wins over `/devices/{id}`.
    routes.sort(key=lambda r: -r[3])
    return [(m, p, rpc) for m, p, rpc, _ in routes]


@functools.cache
def proto_messages() -> dict[str, Any]:
    """Every message of api.json (the real proto descriptions) by full name."""
    return {
        m["fullName"]: m
        for f in json.loads((REFERENCE / "api.json").read_text())["files"]
        for m in f["messages"]
    }


def oneof_mask_path(message: str, wire: str) -> str:
    """The field-mask spelling of a JSON path: each oneof member preceded by its oneof's name."""
    messages = proto_messages()
    out: list[str] = []
    current: str | None = message
    for part in wire.split("."):
        field = next(
            (
                f
                for f in (messages[current]["fields"] if current in messages else [])
                if f["name"] == part
            ),
            None,
        )
        if field is not None and field["isoneof"]:
            out.append(field["oneofdecl"])
        out.append(part)
        current = field["fullType"] if field is not None else None
    return ".".join(out)


def in_mask_spelling(value: Any, message: str, schema: set[str]) -> dict[str, Any]:
    """A body with its oneof members nested under their oneof's name, as masks spell them."""
    flat: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, item in node.items():
            wire = f"{prefix}.{key}" if prefix else key
            mask = oneof_mask_path(message, wire)
            if isinstance(item, dict) and any(p.startswith(mask + ".") for p in schema):
                walk(item, wire)
            else:
                flat[mask] = item

    walk(value, "")
    out: dict[str, Any] = {}
    for mask, item in flat.items():
        parts = mask.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = item
    return out


def leaf_paths(value: Any, schema: set[str], prefix: str = "") -> list[str]:
    """Paths of the values in a body, stopping at schema leaves and maps (attributes, ...)."""
    if not isinstance(value, dict) or (
        prefix and not any(p.startswith(prefix + ".") for p in schema)
    ):
        return [prefix] if prefix else []
    paths: list[str] = []
    for key, item in value.items():
        path = f"{prefix}.{key}" if prefix else key
        paths.extend(leaf_paths(item, schema, path) if path in schema else [path])
    return paths


class Recorder(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path.removeprefix("/api/v3")
        self.requests.append((request.method, path, dict(request.url.params), body))
        return await self.inner.handle_async_request(request)


def audit(
    requests: list[tuple[str, str, dict[str, str], Any]],
) -> tuple[list[str], set[str]]:
    """What the real server would refuse in these requests, and the RPCs they called."""
    routes = route_table()
    masks = json.loads((REFERENCE / "rpc-field-mask-paths.server.json").read_text())
    problems: list[str] = []
    seen_rpcs: set[str] = set()
    for method, path, params, body in requests:
        rpc = next((r for m, p, r in routes if m == method and p.match(path)), None)
        if rpc is None:
            problems.append(f"{method} {path}: no such route")
            continue
        seen_rpcs.add(rpc)
        spec = masks["rpcs"].get(f"/ttn.lorawan.v3.{rpc}")
        mask: list[str] = []
        if "field_mask" in params:
            # Split as the real gateway does: `field_mask=` is the (forbidden) path "".
            mask = params["field_mask"].split(",")
        if isinstance(body, dict) and "field_mask" in body:
            mask = list(body["field_mask"]["paths"])
        if spec is not None:
            problems += [f"{rpc}: forbidden path {p}" for p in mask if p not in spec["allowed"]]
        if rpc == "EndDeviceRegistry/Update":
            problems += [f"{rpc}: ids in mask: {p}" for p in mask if p.startswith("ids")]
        if not isinstance(body, dict) or method == "GET":
            continue
        wrapper = next((w for w in WRAPPERS if w in body), None)
        if wrapper is None:
            continue
        entity = body[wrapper]
        if rpc.startswith("JsEndDeviceRegistry/Set"):
            ids = entity.get("ids", {})
            if not (ids.get("dev_eui") and ids.get("join_eui")):
                problems.append(f"{rpc}: Join Server set without both EUIs")
        allowed_spec = spec or masks["rpcs"].get(
            f"/ttn.lorawan.v3.{CREATE_FIELDS_FROM.get(rpc, '')}"
        )
        if allowed_spec is None:
            continue
        schema = set(masks["all_paths"][allowed_spec["all_paths_of"]])
        entity = in_mask_spelling(entity, MESSAGE_OF_WRAPPER[wrapper], schema)
        allowed = set(allowed_spec["allowed"])
        for leaf in leaf_paths(entity, schema):
            if leaf.startswith("ids"):
                continue
            if spec is not None and not any(leaf == m or leaf.startswith(m + ".") for m in mask):
                problems.append(f"{rpc}: {leaf} sent outside the field mask")
            elif leaf not in allowed and not any(
                leaf.startswith(a + ".") and a in allowed and a in mask for a in allowed
            ):
                problems.append(f"{rpc}: {leaf} is not allowed (non_zero_path)")
            elif any(leaf.startswith(m + ".") for m in mask) and leaf not in allowed:
                problems.append(f"{rpc}: non-zero {leaf} under a masked parent")
    return problems, seen_rpcs


async def test_every_request_matches_the_real_routes_masks_and_non_zero_rules(
    emulator_transport: httpx.ASGITransport, admin_api_key: str, tmp_path: Path
) -> None:
    recorder = Recorder(emulator_transport)
    eng = Engine(recorder, admin_api_key, environ_extra=dict(PUBSUB_SECRETS))
    paths = [site(tmp_path, bus=PUBSUB_APP, settings=SETTINGS)]
    _run, report = await eng.apply(paths)
    assert not report.failed
    changed = (
        DEVICES.replace("name: OTAA 1.0.3", "name: renamed\ndescription: now described")
        .replace("resets_f_cnt: true", "resets_f_cnt: false\n  rx1_delay: 5")
        .replace("FORMATTER_CAYENNELPP}", "FORMATTER_JAVASCRIPT, up_formatter_parameter: x}")
        .replace("lorawan_phy_version: RP001_V1_1_REV_B", "lorawan_phy_version: 1.1-a")
        .replace("F0E0D0C0B0A090807060504030201000", "0")  # unused: keys come from env
        .replace("70B3D57ED0000004", "70B3D57ED00000C4")  # immutable: a replace
    )
    site(
        tmp_path,
        devices=changed,
        bus=PUBSUB_APP.replace("up\n", "uplinks\n"),
        settings=SETTINGS.replace("margin: 10", "margin: 12")
        .replace("30s", "45s")
        .replace("enforce_duty_cycle: true", "enforce_duty_cycle: false"),
    )
    eng.environ_extra = {
        **PUBSUB_SECRETS,
        "BUS_MQTT_PASSWORD": "second-password",
        "OTAA_11_NWK_KEY": "F0E0D0C0B0A090807060504030201001",
    }
    # As the CLI applies: under the stack's lease (taken, renewed and released by requests too).
    _run, report = await eng.apply_leased(paths, allow_replace=True, force=True)
    assert not report.failed, report.failed
    site(
        tmp_path,
        devices=changed.split("---")[0],
        bus=PUBSUB_APP.split("  - id: stream", maxsplit=1)[0],
    )
    _run, report = await eng.apply_leased(paths, prune=True, force=True)
    assert not report.failed
    lease_requests = {(m, p) for m, p, _, _ in recorder.requests if "reconciler-lease" in p}
    assert {m for m, _p in lease_requests} == {"GET", "PUT", "DELETE"}, lease_requests
    # An orphan of a declared device (its Identity Server record deleted alone): looked up on
    # the other registries, its records deleted, the device registered anew.
    async with httpx.AsyncClient(
        transport=emulator_transport, headers={"Authorization": f"Bearer {admin_api_key}"}
    ) as client:
        response = await client.delete(
            "http://emulator.test/api/v3/applications/field-sensors/devices/otaa-103"
        )
        assert response.status_code == 200
    run, report = await eng.apply_leased(paths, prune=True)
    assert not report.failed
    assert "orphan" in run.plan.changes[0].reason
    # A gateway deleted outside the manifests (not recorded) is restored: the soft-deleted
    # listing and the restore route.
    gateway = (
        "kind: Gateway\nid: gw-audit\neui: B827EBFFFE00A0D1\nfrequency_plan_ids: [EU_863_870]\n"
    )
    (tmp_path / "gateway.yaml").write_text(gateway, encoding="utf-8")
    _run, report = await eng.apply(paths, prune=True, force=True)
    assert not report.failed
    async with httpx.AsyncClient(
        transport=emulator_transport, headers={"Authorization": f"Bearer {admin_api_key}"}
    ) as client:
        response = await client.delete("http://emulator.test/api/v3/gateways/gw-audit")
        assert response.status_code == 200
    run, report = await eng.apply(paths, prune=True, force=True)
    assert not report.failed and [c.restore for c in run.plan.changes] == [True]

    problems, seen_rpcs = audit(recorder.requests)
    assert not problems, "\n".join(sorted(set(problems)))
    # The runs exercised every kind of write the tool makes.
    assert {
        "EndDeviceRegistry/Create",
        "EndDeviceRegistry/Update",
        "NsEndDeviceRegistry/Set",
        "AsEndDeviceRegistry/Set",
        "JsEndDeviceRegistry/Set",
        "NsEndDeviceRegistry/Delete",
        "AsEndDeviceRegistry/Delete",
        "JsEndDeviceRegistry/Delete",
        "EndDeviceRegistry/Delete",
        "ApplicationRegistry/Create",
        "GatewayRegistry/Create",
        "GatewayRegistry/Update",
        "As/SetLink",
        "ApplicationWebhookRegistry/Set",
        "ApplicationPubSubRegistry/Set",
        "ApplicationPubSubRegistry/Delete",
        "ApplicationPubSubRegistry/List",
        "EndDeviceRegistry/List",
        "Events/Stream",
        "GatewayRegistry/List",
        "GatewayRegistry/Restore",
    } <= seen_rpcs, seen_rpcs
