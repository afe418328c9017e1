"""validate -> plan -> apply -> plan (empty) -> out-of-band changes -> plan/drift -> repair,
prune and adoption, against the in-process IoT Hub emulator."""

from __future__ import annotations

from pathlib import Path

import httpx

from reconciler.plan.render import render_plan
from tests.iothub.support import DEVICES, HUB, HubEngine, changes, write_manifests


async def test_apply_creates_everything_and_the_second_plan_is_empty(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    tree = write_manifests(tmp_path, hub=HUB, devices=DEVICES)
    run, report = await hub_engine.apply([tree])
    assert changes(run) == {
        "edge device gateway-1": "create",
        "device sensor-1": "create",
        "device sensor-2": "create",
        "device camera-1": "create",
        "device door-1": "create",
        "module gateway-1/filter": "create",
    }
    assert not report.failed, [r.error for r in report.failed]
    again = await hub_engine.plan([tree])
    assert changes(again) == {}

    twin = (await owner.get("/twins/sensor-1")).json()
    assert twin["tags"] == {
        "fleet": "plant-a",
        "site": "north",
        "kind": {"model": "probe", "rev": 2},
        "managed-by": "plant-a",
    }
    desired = twin["properties"]["desired"]
    assert desired["interval"] == 60
    assert desired["telemetry"] == {"enabled": True, "fields": ["t", "h"]}
    gateway = (await owner.get("/devices/gateway-1")).json()
    assert gateway["capabilities"]["iotEdge"] is True
    assert twin["deviceScope"] == gateway["deviceScope"]
    sensor_2 = (await owner.get("/devices/sensor-2")).json()
    assert sensor_2["status"] == "disabled"
    assert sensor_2["statusReason"] == "waiting for installation"
    assert sensor_2["authentication"]["symmetricKey"] == {
        "primaryKey": hub_engine.device_keys["SENSOR_2_PRIMARY"],
        "secondaryKey": hub_engine.device_keys["SENSOR_2_SECONDARY"],
    }
    camera = (await owner.get("/devices/camera-1")).json()
    assert camera["authentication"]["type"] == "selfSigned"
    door = (await owner.get("/devices/door-1")).json()
    assert door["authentication"]["type"] == "certificateAuthority"
    module = (await owner.get("/devices/gateway-1/modules/filter")).json()
    assert module["managedBy"] == "plant-a"
    module_twin = (await owner.get("/twins/gateway-1/modules/filter")).json()
    assert module_twin["tags"] == {"role": "filter", "managed-by": "plant-a"}
    assert "fleet" not in module_twin["tags"]  # device defaults are for devices
    assert module_twin["properties"]["desired"]["threshold"] == 5


async def test_out_of_band_changes_are_repaired_and_undeclared_keys_survive(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    tree = write_manifests(tmp_path, hub=HUB, devices=DEVICES)
    await hub_engine.apply([tree])
    keys_before = (await owner.get("/devices/sensor-1")).json()["authentication"]
    # Someone changes a desired property, removes a tag, adds their own keys and the TTS
    # integration's tags, and disables a device.
    patch = {
        "tags": {"site": None, "lorawan": {"devEui": "70B3D57ED0000001"}, "owner-team": "ops"},
        "properties": {"desired": {"interval": 300, "extra": {"debug": True}}},
    }
    response = await owner.patch("/twins/sensor-1", json=patch, headers={"If-Match": '"*"'})
    assert response.status_code == 200, response.text
    identity = (await owner.get("/devices/sensor-1")).json()
    identity["status"] = "disabled"
    response = await owner.put(
        "/devices/sensor-1", json=identity, headers={"If-Match": f'"{identity["etag"]}"'}
    )
    assert response.status_code == 200, response.text

    drift = await hub_engine.plan([tree])
    assert changes(drift) == {"device sensor-1": "update"}
    (change,) = drift.plan.changes
    twin_step, identity_step = change.steps
    assert twin_step.paths == ["tags.site", "properties.desired.interval"]
    assert identity_step.paths == ["status"]
    text = "\n".join(line.plain for line in render_plan(drift.plan))
    assert "properties.desired.interval: 300 -> 60" in text
    assert 'status: "disabled" -> "enabled"' in text

    _, report = await hub_engine.apply([tree])
    assert not report.failed, [r.error for r in report.failed]
    assert changes(await hub_engine.plan([tree])) == {}
    twin = (await owner.get("/twins/sensor-1")).json()
    assert twin["tags"]["site"] == "north"
    assert twin["tags"]["lorawan"] == {"devEui": "70B3D57ED0000001"}  # never touched
    assert twin["tags"]["owner-team"] == "ops"
    assert twin["properties"]["desired"]["interval"] == 60
    assert twin["properties"]["desired"]["extra"] == {"debug": True}
    identity = (await owner.get("/devices/sensor-1")).json()
    assert identity["status"] == "enabled"
    # A PUT replaces the whole identity: the keys and the parent link must have survived.
    assert identity["authentication"] == keys_before
    assert identity["deviceScope"].startswith("ms-azure-iot-edge://gateway-1-")


async def test_prune_deletes_owned_devices_only(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    tree = write_manifests(tmp_path, hub=HUB, devices=DEVICES)
    await hub_engine.apply([tree])
    # A device nobody owns (e.g. created by The Things Stack's integration) and one owned by
    # another stack.
    for device_id, tags in (
        ("eui-70b3d57ed0000009", {"lorawan": {"devEui": "70B3D57ED0000009"}}),
        ("other-stack", {"managed-by": "plant-b"}),
    ):
        body = {"deviceId": device_id, "status": "enabled"}
        assert (await owner.put(f"/devices/{device_id}", json=body)).status_code == 200
        response = await owner.patch(
            f"/twins/{device_id}", json={"tags": tags}, headers={"If-Match": '"*"'}
        )
        assert response.status_code == 200
    smaller = DEVICES.split("---\nkind: IotHubDevice\nid: camera-1")[0]
    write_manifests(tmp_path, devices=smaller)
    run, report = await hub_engine.apply([tree], prune=True)
    assert changes(run) == {"device camera-1": "delete", "device door-1": "delete"}
    assert not report.failed
    for device_id, status in (
        ("camera-1", 404),
        ("door-1", 404),
        ("eui-70b3d57ed0000009", 200),
        ("other-stack", 200),
        ("sensor-1", 200),
    ):
        assert (await owner.get(f"/devices/{device_id}")).status_code == status, device_id
    assert changes(await hub_engine.plan([tree], prune=True)) == {}


async def test_an_unowned_device_is_adopted_visibly(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    body = {"deviceId": "door-1", "status": "enabled", "authentication": {"type": "sas"}}
    assert (await owner.put("/devices/door-1", json=body)).status_code == 200
    tree = write_manifests(tmp_path, hub=HUB, devices=DEVICES)
    run = await hub_engine.plan([tree])
    door = next(c for c in run.plan.changes if c.key.id == "door-1")
    assert door.adopt and door.action == "update"
    assert [s.paths for s in door.steps] == [
        ["tags.fleet", "tags.managed-by", "properties.desired.locked"],
        ["authentication.type"],
    ]


async def test_rotate_keys_regenerates_only_hub_generated_keys_and_shows_no_key(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    tree = write_manifests(tmp_path, hub=HUB, devices=DEVICES)
    await hub_engine.apply([tree])
    before = {
        d: (await owner.get(f"/devices/{d}")).json()["authentication"]
        for d in ("sensor-1", "sensor-2")
    }
    assert changes(await hub_engine.plan([tree])) == {}  # never without --rotate-keys
    run, report = await hub_engine.apply([tree], rotate_keys=True)
    rotated = {c for c, a in changes(run).items() if a == "update"}
    # Identities whose keys the hub generated; sensor-2's keys are declared (not rotated).
    assert rotated == {"edge device gateway-1", "device sensor-1", "module gateway-1/filter"}
    assert not report.failed
    text = run.plan.dumps()
    after = {
        d: (await owner.get(f"/devices/{d}")).json()["authentication"]
        for d in ("sensor-1", "sensor-2")
    }
    assert after["sensor-1"]["symmetricKey"] != before["sensor-1"]["symmetricKey"]
    assert after["sensor-2"] == before["sensor-2"]
    for auth in (*before.values(), *after.values()):
        for key in auth["symmetricKey"].values():
            assert key not in text
    assert '"sensitive": true' in text


async def test_module_changes_are_planned_and_owned_modules_pruned(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    tree = write_manifests(tmp_path, hub=HUB, devices=DEVICES)
    await hub_engine.apply([tree])
    # A module someone else added on the edge device (as the edge runtime adds $edgeAgent).
    body = {"moduleId": "theirs", "deviceId": "gateway-1"}
    assert (await owner.put("/devices/gateway-1/modules/theirs", json=body)).status_code == 200
    edited = DEVICES.replace("managedBy: plant-a", "managedBy: ops").replace(
        "tags: {role: filter}", "tags: {role: filter, tier: gold}"
    )
    write_manifests(tmp_path, devices=edited)
    run = await hub_engine.plan([tree])
    (module,) = run.plan.changes
    assert str(module.key) == "module gateway-1/filter"
    assert [s.paths for s in module.steps] == [["tags.tier"], ["managedBy"]]
    await hub_engine.apply([tree])
    assert changes(await hub_engine.plan([tree])) == {}
    assert (await owner.get("/devices/gateway-1/modules/filter")).json()["managedBy"] == "ops"
    # Dropped from the manifests: pruned; the unowned module stays.
    write_manifests(
        tmp_path, devices=edited.replace("modules:\n  - id: filter", "modules:\n  - id: other")
    )
    run, report = await hub_engine.apply([tree], prune=True)
    assert changes(run) == {"module gateway-1/other": "create", "module gateway-1/filter": "delete"}
    assert not report.failed
    assert (await owner.get("/devices/gateway-1/modules/filter")).status_code == 404
    assert (await owner.get("/devices/gateway-1/modules/theirs")).status_code == 200
