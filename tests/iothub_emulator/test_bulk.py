"""`POST /devices`: every REST import mode, per-device errors and warnings, 200 vs 400, and the
request-level refusals (400 DeviceDefinedMultipleTimes, 413 TooManyDevices)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.iothub_emulator.support import device_body, error_name


async def bulk(client: httpx.AsyncClient, entries: list[dict[str, Any]]) -> httpx.Response:
    return await client.post("/devices", json=entries)


async def test_create_all_succeed(hub_client: httpx.AsyncClient) -> None:
    response = await bulk(
        hub_client,
        [
            {"id": "b-1", "importMode": "create", "status": "enabled"},
            {
                "id": "b-2",
                "importMode": "create",
                "status": "disabled",
                "tags": {"t": 1},
                "properties": {"desired": {"d": 2}},
            },
            {"id": "b-3", "importMode": "create", "capabilities": {"iotEdge": True}},
        ],
    )
    assert response.status_code == 200
    assert response.json() == {"isSuccessful": True, "errors": [], "warnings": []}
    twin = (await hub_client.get("/twins/b-2")).json()
    assert twin["tags"] == {"t": 1} and twin["properties"]["desired"]["d"] == 2
    assert twin["status"] == "disabled"
    edge = (await hub_client.get("/devices/b-3")).json()
    assert edge["deviceScope"].startswith("ms-azure-iot-edge://b-3-")
    keys = (await hub_client.get("/devices/b-1")).json()["authentication"]["symmetricKey"]
    assert keys["primaryKey"] and keys["secondaryKey"]


async def test_every_mode(hub_client: httpx.AsyncClient) -> None:
    for device_id in ("m-upd", "m-updif", "m-del", "m-delif", "m-twin", "m-twinif"):
        await hub_client.put(f"/devices/{device_id}", json=device_body(device_id))
    etag = (await hub_client.get("/devices/m-updif")).json()["etag"]
    del_etag = (await hub_client.get("/devices/m-delif")).json()["etag"]
    await hub_client.patch("/twins/m-twin", json={"tags": {"keep": 1}})
    twin_etag = (await hub_client.get("/twins/m-twinif")).json()["etag"]
    response = await bulk(
        hub_client,
        [
            {"id": "m-new", "importMode": "create"},
            {"id": "m-upd", "importMode": "update", "status": "disabled"},
            {"id": "m-updif", "importMode": "updateIfMatchETag", "eTag": etag, "statusReason": "r"},
            {"id": "m-del", "importMode": "delete"},
            {"id": "m-delif", "importMode": "deleteIfMatchETag", "eTag": f'"{del_etag}"'},
            {"id": "m-twin", "importMode": "updateTwin", "tags": {"more": 2}},
            {
                "id": "m-twinif",
                "importMode": "updateTwinIfMatchETag",
                "twinETag": twin_etag,
                "properties": {"desired": {"x": 1}},
            },
        ],
    )
    assert response.status_code == 200, response.text
    assert (await hub_client.get("/devices/m-new")).status_code == 200
    assert (await hub_client.get("/devices/m-upd")).json()["status"] == "disabled"
    assert (await hub_client.get("/devices/m-updif")).json()["statusReason"] == "r"
    assert (await hub_client.get("/devices/m-del")).status_code == 404
    assert (await hub_client.get("/devices/m-delif")).status_code == 404
    assert (await hub_client.get("/twins/m-twin")).json()["tags"] == {"keep": 1, "more": 2}
    assert (await hub_client.get("/twins/m-twinif")).json()["properties"]["desired"]["x"] == 1


async def test_per_device_errors_give_400_with_the_result_body(
    hub_client: httpx.AsyncClient,
) -> None:
    await hub_client.put("/devices/e-exists", json=device_body("e-exists"))
    response = await bulk(
        hub_client,
        [
            {"id": "e-exists", "importMode": "create"},
            {"id": "e-fresh", "importMode": "create"},
            {"id": "e-missing", "importMode": "update"},
            {"id": "e-exists2", "importMode": "delete"},
            {"id": "e-bad id", "importMode": "create"},
        ],
    )
    assert response.status_code == 400
    result = response.json()
    assert result["isSuccessful"] is False
    codes = {e["deviceId"]: e["errorCode"] for e in result["errors"]}
    assert codes == {
        "e-exists": "DeviceAlreadyExists",
        "e-missing": "DeviceNotFound",
        "e-exists2": "DeviceNotFound",
        "e-bad id": "ArgumentInvalid",
    }
    assert all(e["errorStatus"] for e in result["errors"])
    # Entries that could be applied were applied.
    assert (await hub_client.get("/devices/e-fresh")).status_code == 200


async def test_etag_modes_fail_on_mismatch(hub_client: httpx.AsyncClient) -> None:
    await hub_client.put("/devices/x-1", json=device_body("x-1"))
    response = await bulk(
        hub_client,
        [
            {"id": "x-1", "importMode": "updateIfMatchETag", "eTag": "bm9wZQ=="},
        ],
    )
    assert response.json()["errors"][0]["errorCode"] == "PreconditionFailed"
    for mode, field in (("deleteIfMatchETag", "eTag"), ("updateTwinIfMatchETag", "twinETag")):
        response = await bulk(hub_client, [{"id": "x-1", "importMode": mode, field: "AAAA"}])
        assert response.json()["errors"][0]["errorCode"] == "PreconditionFailed", mode
    assert (await hub_client.get("/devices/x-1")).status_code == 200


async def test_invalid_twin_on_create_registers_without_twin(
    hub_client: httpx.AsyncClient,
) -> None:
    response = await bulk(
        hub_client, [{"id": "w-1", "importMode": "create", "tags": {"bad.key": 1}}]
    )
    assert response.status_code == 200
    result = response.json()
    assert result["isSuccessful"] is True
    assert [w["warningCode"] for w in result["warnings"]] == ["DeviceRegisteredWithoutTwin"]
    assert (await hub_client.get("/devices/w-1")).status_code == 200


async def test_modules_in_bulk(hub_client: httpx.AsyncClient) -> None:
    await hub_client.put("/devices/mb-1", json=device_body("mb-1"))
    response = await bulk(
        hub_client,
        [
            {"id": "mb-1", "moduleId": "mod", "importMode": "create", "tags": {"a": 1}},
        ],
    )
    assert response.status_code == 200, response.text
    assert (await hub_client.get("/twins/mb-1/modules/mod")).json()["tags"] == {"a": 1}
    missing = await bulk(hub_client, [{"id": "mb-none", "moduleId": "m", "importMode": "create"}])
    assert missing.json()["errors"][0] == {
        "deviceId": "mb-none",
        "moduleId": "m",
        "errorCode": "DeviceNotFound",
        "errorStatus": "mb-none",
        "operation": "create",
    }
    gone = await bulk(hub_client, [{"id": "mb-1", "moduleId": "mod", "importMode": "delete"}])
    assert gone.status_code == 200
    assert (await hub_client.get("/devices/mb-1/modules/mod")).status_code == 404


async def test_request_level_refusals(hub_client: httpx.AsyncClient) -> None:
    twice = await bulk(
        hub_client,
        [{"id": "dup", "importMode": "create"}, {"id": "dup", "importMode": "delete"}],
    )
    assert (twice.status_code, error_name(twice)) == (400, "DeviceDefinedMultipleTimes")
    assert twice.json()["Message"].endswith("DeviceDefinedMultipleTimes, device ID dup")
    modules_twice = await bulk(
        hub_client,
        [
            {"id": "dup", "moduleId": "a", "importMode": "create"},
            {"id": "dup", "moduleId": "b", "importMode": "create"},
        ],
    )
    assert error_name(modules_twice) == "DeviceDefinedMultipleTimes"
    too_many = await bulk(
        hub_client, [{"id": f"many-{i}", "importMode": "create"} for i in range(101)]
    )
    assert (too_many.status_code, error_name(too_many)) == (413, "TooManyDevices")
    for mode in ("createOrUpdate", "createOrUpdateIfMatchETag", None, "explode"):
        response = await bulk(hub_client, [{"id": "mode", "importMode": mode}])
        assert (response.status_code, error_name(response)) == (400, "ArgumentInvalid"), mode
    for body in ({"id": "x"}, "text", [1], [{"importMode": "create"}]):
        response = await hub_client.post("/devices", json=body)
        assert response.status_code == 400, body
    # Nothing of a refused request was applied.
    assert (await hub_client.get("/devices/dup")).status_code == 404
    assert (await hub_client.get("/devices/many-0")).status_code == 404
    # The C# SDK's path, with a trailing slash.
    slash = await hub_client.post("/devices/", json=[{"id": "slash", "importMode": "create"}])
    assert slash.status_code == 200
