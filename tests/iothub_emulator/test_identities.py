"""Device identities over raw HTTP: If-Match rules, full-replace updates, validation 400s, the
error envelope and headers, api-version."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.iothub_emulator.support import device_body, error_name

NEVER = "0001-01-01T00:00:00Z"


def b64(size: int) -> str:
    return base64.b64encode(bytes(range(size))).decode()


async def create(client: httpx.AsyncClient, device_id: str, **fields: Any) -> dict[str, Any]:
    response = await client.put(f"/devices/{device_id}", json=device_body(device_id, **fields))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_identity_json_has_every_read_only_field(hub_client: httpx.AsyncClient) -> None:
    device = await create(hub_client, "shape-1")
    assert device["etag"] == "MA==" and base64.b64decode(device["etag"]) == b"0"
    assert re.fullmatch(r"\d{18}", device["generationId"])
    for name in ("connectionStateUpdatedTime", "statusUpdatedTime", "lastActivityTime"):
        assert device[name] == NEVER
    assert device["connectionState"] == "Disconnected"
    assert device["cloudToDeviceMessageCount"] == 0
    assert device["statusReason"] is None
    assert device["capabilities"] == {"iotEdge": False}
    response = await hub_client.get("/devices/shape-1")
    assert response.headers["content-type"].startswith("application/json")


async def test_if_match_rules_on_put(hub_client: httpx.AsyncClient) -> None:
    first = await create(hub_client, "etag-1")
    body = device_body("etag-1", statusReason="r")
    # No If-Match is create-only.
    conflict = await hub_client.put("/devices/etag-1", json=body)
    assert (conflict.status_code, error_name(conflict)) == (409, "DeviceAlreadyExists")
    # The current etag, quoted: updated, new etag (base64 of the next version).
    current = await hub_client.put(
        "/devices/etag-1", json=body, headers={"If-Match": f'"{first["etag"]}"'}
    )
    assert current.status_code == 200
    assert base64.b64decode(current.json()["etag"]) == b"1"
    # A stale etag, quoted: 412 naming the versions.
    stale = await hub_client.put(
        "/devices/etag-1", json=body, headers={"If-Match": f'"{first["etag"]}"'}
    )
    assert (stale.status_code, error_name(stale)) == (412, "PreconditionFailed")
    assert "existingVersion:1 newVersion:2" in stale.json()["Message"]
    # A wrong etag without quotes is ignored, as the hub ignores it.
    unquoted = await hub_client.put("/devices/etag-1", json=body, headers={"If-Match": "bm90LWl0"})
    assert unquoted.status_code == 200
    # The wildcard, quoted or bare.
    for wildcard in ('"*"', "*"):
        forced = await hub_client.put("/devices/etag-1", json=body, headers={"If-Match": wildcard})
        assert forced.status_code == 200
    # If-Match on a device that does not exist: not an upsert.
    missing = await hub_client.put(
        "/devices/etag-none", json=device_body("etag-none"), headers={"If-Match": "*"}
    )
    assert (missing.status_code, error_name(missing)) == (404, "DeviceNotFound")
    # An etag in the body counts for nothing.
    in_body = await hub_client.put("/devices/etag-1", json={**body, "etag": "AAAA"})
    assert in_body.status_code == 409


async def test_delete_rules(hub_client: httpx.AsyncClient) -> None:
    device = await create(hub_client, "del-1")
    stale = await hub_client.delete("/devices/del-1", headers={"If-Match": '"bm9wZQ=="'})
    assert (stale.status_code, error_name(stale)) == (412, "PreconditionFailed")
    gone = await hub_client.delete("/devices/del-1", headers={"If-Match": f'"{device["etag"]}"'})
    assert gone.status_code == 204 and gone.content == b""
    again = await hub_client.delete("/devices/del-1", headers={"If-Match": "*"})
    assert (again.status_code, error_name(again)) == (404, "DeviceNotFound")
    assert again.json()["Message"] == "ErrorCode:DeviceNotFound;del-1"


async def test_update_replaces_the_whole_identity(hub_client: httpx.AsyncClient) -> None:
    primary, secondary = b64(32), b64(20)
    created = await create(
        hub_client,
        "replace-1",
        statusReason="why",
        authentication={
            "type": "sas",
            "symmetricKey": {"primaryKey": primary, "secondaryKey": secondary},
        },
    )
    assert created["authentication"]["symmetricKey"]["primaryKey"] == primary
    updated = await hub_client.put(
        "/devices/replace-1",
        json=device_body("replace-1", status="disabled"),
        headers={"If-Match": "*"},
    )
    device = updated.json()
    assert device["statusReason"] is None
    assert device["authentication"]["symmetricKey"]["primaryKey"] not in (primary, None)
    assert device["status"] == "disabled"
    assert device["statusUpdatedTime"] != NEVER
    assert device["generationId"] == created["generationId"]


@pytest.mark.parametrize(
    ("device_id", "body", "expected"),
    [
        ("bad id", None, "ArgumentInvalid"),
        ("x" * 129, None, "ArgumentInvalid"),
        ("ok-1", {"deviceId": "other"}, "ArgumentInvalid"),
        ("ok-2", {"deviceId": "ok-2", "status": "paused"}, "ArgumentInvalid"),
        ("ok-3", {"deviceId": "ok-3", "statusReason": "r" * 129}, "ArgumentInvalid"),
        (
            "ok-4",
            {
                "deviceId": "ok-4",
                "authentication": {"type": "sas", "symmetricKey": {"primaryKey": b64(32)}},
            },
            "ArgumentInvalid",
        ),
        (
            "ok-5",
            {
                "deviceId": "ok-5",
                "authentication": {
                    "type": "sas",
                    "symmetricKey": {"primaryKey": b64(15), "secondaryKey": b64(32)},
                },
            },
            "ArgumentInvalid",
        ),
        (
            "ok-6",
            {
                "deviceId": "ok-6",
                "authentication": {
                    "type": "sas",
                    "symmetricKey": {"primaryKey": b64(65), "secondaryKey": b64(32)},
                },
            },
            "ArgumentInvalid",
        ),
        (
            "ok-7",
            {
                "deviceId": "ok-7",
                "authentication": {
                    "type": "sas",
                    "symmetricKey": {"primaryKey": "not base64!", "secondaryKey": b64(32)},
                },
            },
            "ArgumentInvalid",
        ),
        (
            "ok-8",
            {"deviceId": "ok-8", "authentication": {"type": "selfSigned", "x509Thumbprint": {}}},
            "ArgumentInvalid",
        ),
        (
            "ok-9",
            {
                "deviceId": "ok-9",
                "authentication": {
                    "type": "selfSigned",
                    "x509Thumbprint": {"primaryThumbprint": "A" * 41},
                },
            },
            "ArgumentInvalid",
        ),
        ("ok-10", {"deviceId": "ok-10", "authentication": {"type": "magic"}}, "ArgumentInvalid"),
        ("ok-11", {"deviceId": "ok-11", "capabilities": {"iotEdge": "yes"}}, "ArgumentInvalid"),
        (
            "ok-12",
            {"deviceId": "ok-12", "deviceScope": "ms-azure-iot-edge://nobody-1"},
            "ArgumentInvalid",
        ),
        ("ok-13", [], "ArgumentInvalid"),
    ],
)
async def test_invalid_identities_are_400(
    hub_client: httpx.AsyncClient, device_id: str, body: Any, expected: str
) -> None:
    payload = body if body is not None else {"deviceId": device_id}
    response = await hub_client.put(f"/devices/{device_id}", json=payload)
    assert response.status_code == 400, response.text
    assert error_name(response) == expected
    assert (await hub_client.get(f"/devices/{device_id}")).status_code in (400, 404)


async def test_id_character_set(hub_client: httpx.AsyncClient) -> None:
    """Every allowed punctuation character, escaped in the path as the SDKs escape it."""
    odd = "a-:.+%_#*?!(),=@;$'z"
    path = "/devices/" + quote(odd, safe="")
    created = await hub_client.put(path, json=device_body(odd))
    assert created.status_code == 200, created.text
    got = await hub_client.get(path)
    assert got.status_code == 200 and got.json()["deviceId"] == odd


async def test_empty_and_malformed_bodies(hub_client: httpx.AsyncClient) -> None:
    empty = await hub_client.put("/devices/body-1", content=b"")
    assert (empty.status_code, error_name(empty)) == (400, "ArgumentNull")
    for raw in (b"{", b'{"deviceId": "body-1",}', b"\xff\xfe", b"NaN", b'{"deviceId": NaN}'):
        response = await hub_client.put("/devices/body-1", content=raw)
        assert response.status_code == 400, raw
        assert error_name(response) in ("IotHubFormatError", "ArgumentInvalid")


async def test_api_version_is_required_and_checked(
    raw_client: httpx.AsyncClient, hub_client: httpx.AsyncClient
) -> None:
    headers = {"Authorization": hub_client.headers["Authorization"]}
    missing = await raw_client.get("/devices", headers=headers)
    assert (missing.status_code, error_name(missing)) == (400, "InvalidProtocolVersion")
    unknown = await raw_client.get(
        "/devices", params={"api-version": "1999-01-01"}, headers=headers
    )
    assert (unknown.status_code, error_name(unknown)) == (400, "InvalidProtocolVersion")


async def test_get_devices_top(hub_client: httpx.AsyncClient) -> None:
    for index in range(3):
        await create(hub_client, f"top-{index}")
    assert len((await hub_client.get("/devices", params={"top": 2})).json()) == 2
    # Outside 1..1000 counts as 1000.
    assert len((await hub_client.get("/devices", params={"top": 0})).json()) == 3
    assert len((await hub_client.get("/devices", params={"top": 5000})).json()) == 3
    bad = await hub_client.get("/devices", params={"top": "many"})
    assert bad.status_code == 400


async def test_unknown_route_and_method(hub_client: httpx.AsyncClient) -> None:
    response = await hub_client.get("/nothing/here")
    assert response.status_code == 404
    assert response.json()["Message"].startswith("ErrorCode:")
    response = await hub_client.post("/twins/x")
    assert response.status_code == 405
