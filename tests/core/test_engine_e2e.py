"""plan / apply / drift against the in-process emulator (issue 4's scenarios)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import engine
from reconciler.diagnostics import ManifestError
from reconciler.plan.model import Plan
from tests.core.support import KEYS, Engine, site, step_summary, write_manifests

pytestmark = pytest.mark.asyncio


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key)


async def test_apply_then_plan_is_empty_for_otaa_abp_and_class_c(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    summary = step_summary(run)
    # OTAA devices: IS create, then JS, NS, AS (FACTS §c); ABP: no Join Server.
    assert [s[:2] for s in summary["device field-sensors/otaa-103"]] == [
        ("is", "create"),
        ("js", "set"),
        ("ns", "set"),
        ("as", "set"),
    ]
    assert [s[:2] for s in summary["device field-sensors/abp-102"]] == [
        ("is", "create"),
        ("ns", "set"),
        ("as", "set"),
    ]
    again = await eng.plan(paths)
    assert not again.plan.has_changes(), again.plan.dumps()

    # What the servers hold is what the manifests say, in the servers' own spellings.
    ns = (
        await client.get(
            "/ns/applications/field-sensors/devices/otaa-11",
            params={"field_mask": "lorawan_version,lorawan_phy_version,supports_join"},
        )
    ).json()
    assert ns["lorawan_version"] == "MAC_V1_1"
    assert ns["lorawan_phy_version"] == "PHY_V1_1_REV_B"
    js = (
        await client.get(
            "/js/applications/field-sensors/devices/otaa-11",
            params={"field_mask": "root_keys.app_key.key,root_keys.nwk_key.key"},
        )
    ).json()
    assert js["root_keys"]["nwk_key"]["key"] == KEYS["OTAA_11_NWK_KEY"]
    abp = (
        await client.get(
            "/ns/applications/field-sensors/devices/abp-102",
            params={"field_mask": "session.dev_addr,mac_settings.resets_f_cnt,supports_join"},
        )
    ).json()
    assert abp["session"]["dev_addr"] == "260B0001"
    assert abp["mac_settings"]["resets_f_cnt"] is True
    assert "supports_join" not in abp  # false is a zero value: omitted
    class_c = (
        await client.get(
            "/ns/applications/field-sensors/devices/class-c",
            params={"field_mask": "supports_class_c,mac_settings.rx2_data_rate_index"},
        )
    ).json()
    assert class_c["supports_class_c"] is True
    assert class_c["mac_settings"]["rx2_data_rate_index"] == 3
    device = (
        await client.get(
            "/applications/field-sensors/devices/otaa-103", params={"field_mask": "attributes"}
        )
    ).json()
    assert device["attributes"] == {"row": "1", "managed-by": "site-a"}


OUT_OF_BAND: list[tuple[str, str, dict[str, Any], str]] = [
    ("is", "/applications/field-sensors/devices/otaa-103", {"name": "renamed"}, "name"),
    (
        "ns",
        "/ns/applications/field-sensors/devices/otaa-103",
        {"frequency_plan_id": "EU_863_870", "supports_class_c": True},
        "frequency_plan_id",
    ),
    (
        "as",
        "/as/applications/field-sensors/devices/otaa-103",
        {"formatters": {"up_formatter": "FORMATTER_JAVASCRIPT"}},
        "formatters.up_formatter",
    ),
    (
        "js",
        "/js/applications/field-sensors/devices/otaa-103",
        {"root_keys": {"app_key": {"key": "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"}}},
        "root_keys.app_key.key",
    ),
]


@pytest.mark.parametrize(("server", "path", "values", "field"), OUT_OF_BAND)
async def test_drift_on_each_server_is_found_and_repaired(
    eng: Engine,
    tmp_path: Path,
    client: httpx.AsyncClient,
    server: str,
    path: str,
    values: dict[str, Any],
    field: str,
) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    ids = {
        "device_id": "otaa-103",
        "application_ids": {"application_id": "field-sensors"},
        "dev_eui": "70B3D57ED0000001",
        "join_eui": "70B3D57ED0000000",
    }
    body: dict[str, Any] = {"end_device": {**values}, "field_mask": {"paths": [field]}}
    if server != "is":
        body["end_device"]["ids"] = ids
    # An unmanaged field changed at the same time must survive the repair.
    unmanaged = {"is": "description", "ns": "supports_class_c"}.get(server)
    if server == "is":
        body["end_device"]["description"] = "set in the Console"
    if unmanaged:
        body["field_mask"]["paths"].append(unmanaged)
    response = await client.put(path, json=body)
    assert response.status_code == 200, response.text

    drift = await eng.plan(paths, prune=False)
    (change,) = drift.plan.changes
    assert str(change.key) == "device field-sensors/otaa-103"
    (step,) = change.steps
    assert step.endpoint == server
    assert [c.path for c in step.changes] == [field]

    _run, report = await eng.apply(paths)
    assert not report.failed
    assert not (await eng.plan(paths)).plan.has_changes()
    if unmanaged:
        device = (await client.get(path, params={"field_mask": unmanaged})).json()
        assert device[unmanaged] in ("set in the Console", True)


async def test_partial_registration_is_completed(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    # As left by a failed Console registration: the device exists in the IS and JS only.
    for server in ("as", "ns"):
        response = await client.delete(f"/{server}/applications/field-sensors/devices/otaa-103")
        assert response.status_code == 200
    run = await eng.plan(paths)
    (change,) = run.plan.changes
    assert "partial registration" in change.reason
    assert [(s.endpoint, s.registers) for s in change.steps] == [("ns", True), ("as", True)]
    _run, report = await eng.apply(paths)
    assert not report.failed
    assert not (await eng.plan(paths)).plan.has_changes()


async def test_registry_without_managed_fields_is_still_read_for_partial_registration(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    """`class-c` manages no Application Server field. Its AS record is still read (the real
    server refuses `field_mask=` as the path "", so the read must carry a valid mask) and a
    missing AS record is still found and completed."""
    paths = [site(tmp_path)]
    _run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    assert not (await eng.plan(paths)).plan.has_changes()
    response = await client.delete("/as/applications/field-sensors/devices/class-c")
    assert response.status_code == 200
    run = await eng.plan(paths)
    (change,) = run.plan.changes
    assert str(change.key) == "device field-sensors/class-c"
    assert "partial registration" in change.reason
    assert [(s.endpoint, s.registers) for s in change.steps] == [("as", True)]
    _run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    assert not (await eng.plan(paths)).plan.has_changes()


async def test_existing_unowned_resources_are_adopted(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/users/admin-user/applications",
        json={"application": {"ids": {"application_id": "field-sensors"}, "name": "Field sensors"}},
    )
    assert created.status_code == 200, created.text
    paths = [site(tmp_path)]
    run = await eng.plan(paths)
    app = next(c for c in run.plan.changes if str(c.key) == "application field-sensors")
    assert app.adopt and app.action == "update"
    assert app.steps[0].paths == ["attributes"]
    _run, report = await eng.apply(paths)
    assert not report.failed
    assert not (await eng.plan(paths)).plan.has_changes()


async def test_immutable_change_is_replace_only_with_allow_replace(
    eng: Engine, tmp_path: Path
) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    changed = site(
        tmp_path,
        devices=(tmp_path / "devices.yaml")
        .read_text()
        .replace("70B3D57ED0000001", "70B3D57ED00000A1"),
    )
    run = await eng.plan([changed])
    (change,) = run.plan.changes
    assert change.action == "replace" and "rejoin" in change.reason
    assert run.plan.blocked
    _run, report = await eng.apply([changed], allow_replace=True)
    assert not report.failed, report.failed
    assert not (await eng.plan([changed])).plan.has_changes()


async def test_prune_deletes_owned_devices_in_reverse_order_and_spares_unowned(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    # A neighbour registered by someone else in the same application.
    neighbour = await client.post(
        "/applications/field-sensors/devices",
        json={"end_device": {"ids": {"device_id": "neighbour", "dev_eui": "70B3D57ED00000EE"}}},
    )
    assert neighbour.status_code == 200, neighbour.text
    remaining = (tmp_path / "devices.yaml").read_text().split("---")[0]
    smaller = site(tmp_path, devices=remaining)
    run = await eng.plan([smaller], prune=True, force=True)
    deletes = {str(c.key): c for c in run.plan.changes if c.action == "delete"}
    assert set(deletes) == {
        "device field-sensors/otaa-11",
        "device field-sensors/abp-102",
        "device field-sensors/class-c",
    }
    assert [s.endpoint for s in deletes["device field-sensors/otaa-11"].steps] == [
        "as",
        "ns",
        "js",
        "is",
    ]
    _run, report = await eng.apply([smaller], prune=True, force=True)
    assert not report.failed
    for server in ("", "/ns", "/as"):
        gone = await client.get(f"{server}/applications/field-sensors/devices/otaa-11")
        assert gone.status_code == 404
    kept = await client.get("/applications/field-sensors/devices/neighbour")
    assert kept.status_code == 200


async def test_keys_without_read_rights_are_set_on_create_only(
    emulator_transport: httpx.ASGITransport, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    admin_key = client.headers["Authorization"].removeprefix("Bearer ")
    paths = [site(tmp_path)]
    await Engine(emulator_transport, admin_key).apply(paths)
    rights = [
        "RIGHT_APPLICATION_INFO",
        "RIGHT_APPLICATION_SETTINGS_BASIC",
        "RIGHT_APPLICATION_DEVICES_READ",
        "RIGHT_APPLICATION_DEVICES_WRITE",
        "RIGHT_APPLICATION_DEVICES_WRITE_KEYS",
        "RIGHT_APPLICATION_TRAFFIC_READ",
        "RIGHT_APPLICATION_TRAFFIC_DOWN_WRITE",
    ]
    created = await client.post(
        "/applications/field-sensors/api-keys", json={"name": "ci", "rights": rights}
    )
    assert created.status_code == 200, created.text
    limited = Engine(emulator_transport, created.json()["key"])
    run = await limited.plan(paths)
    assert not run.plan.has_changes(), run.plan.dumps()
    assert any("cannot be verified" in w for w in run.plan.warnings)
    rotating = await limited.plan(paths, rotate_keys=True)
    assert rotating.plan.has_changes()
    assert all(c.unverifiable for r in rotating.plan.changes for s in r.steps for c in s.changes)


async def test_stale_saved_plan_skips_resources_changed_since(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    edited = (tmp_path / "devices.yaml").read_text()
    edited = edited.replace("name: OTAA 1.0.3", "name: OTAA one-oh-three")
    edited = edited.replace("id: otaa-11\n", "id: otaa-11\nname: One-one\n")
    site(tmp_path, devices=edited)
    saved = Plan.from_json(json.loads((await eng.plan(paths)).plan.dumps()))
    assert {str(c.key) for c in saved.changes} == {
        "device field-sensors/otaa-103",
        "device field-sensors/otaa-11",
    }
    # After the plan, someone changes otaa-103 on the Identity Server.
    await client.put(
        "/applications/field-sensors/devices/otaa-103",
        json={"end_device": {"description": "later"}, "field_mask": {"paths": ["description"]}},
    )
    fresh = await eng.plan(paths)
    kept, stale = engine.check_saved_plan(saved, fresh.plan)
    assert [str(r.key) for r in stale] == ["device field-sensors/otaa-103"]
    assert "since the plan" in stale[0].error
    assert [str(c.key) for c in kept.changes] == ["device field-sensors/otaa-11"]


async def test_multi_cluster_urls_send_each_server_its_requests(
    emulator_transport: httpx.ASGITransport, admin_api_key: str, tmp_path: Path
) -> None:
    hosts: dict[str, set[str]] = {}

    class Recording(httpx.AsyncBaseTransport):
        """Passes requests to the emulator and notes which host each path went to."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            prefix = request.url.path.removeprefix("/api/v3/").split("/")[0]
            hosts.setdefault(prefix, set()).add(request.url.host)
            return await emulator_transport.handle_async_request(request)

    stack = """
    kind: Stack
    name: site-a
    identity_server_url: https://is.example.test
    network_server_url: https://cluster.example.test
    application_server_url: https://cluster.example.test
    join_server_url: https://cluster.example.test
    api_key: {env: TTS_API_KEY}
    owner: {user: admin-user}
    """
    paths = [write_manifests(site(tmp_path), stack=stack)]
    eng = Engine(Recording(), admin_api_key, url="")
    run, report = await eng.apply(paths, url=None)
    assert not report.failed
    assert hosts["applications"] == {"is.example.test"}
    assert hosts["ns"] == hosts["as"] == hosts["js"] == {"cluster.example.test"}
    # Devices point at the cluster that serves them.
    device = next(r for r in run.desired["tts"].of_kind("device"))
    assert device.fields["network_server_address"] == "cluster.example.test"


async def test_attributes_leave_room_for_the_ownership_marker(eng: Engine, tmp_path: Path) -> None:
    attributes = ", ".join(f"k{i:02d}: v" for i in range(10))
    devices = DEVICES_WITH_ATTRIBUTES.replace("ATTRIBUTES", attributes)
    paths = [site(tmp_path, devices=devices)]
    with pytest.raises(ManifestError) as raised:
        await eng.plan(paths)
    (problem,) = raised.value.diagnostics
    assert problem.location.file.endswith("devices.yaml")
    assert "ownership marker" in problem.message


DEVICES_WITH_ATTRIBUTES = """
kind: Device
application: field-sensors
id: crowded
dev_eui: "70B3D57ED0000009"
app_key: {env: OTAA_103_APP_KEY}
attributes: {ATTRIBUTES}
"""
