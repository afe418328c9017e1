"""Twins over raw HTTP: PATCH merge (null removes), PUT replace (null is 400), metadata and
versions, If-Match, the documented limits, reported properties closed to the service."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.iothub_emulator.support import device_body, error_name


@pytest.fixture
async def twin_device(hub_client: httpx.AsyncClient) -> str:
    response = await hub_client.put("/devices/tw-1", json=device_body("tw-1"))
    assert response.status_code == 200
    return "tw-1"


async def test_new_twin_shape(hub_client: httpx.AsyncClient, twin_device: str) -> None:
    twin = (await hub_client.get(f"/twins/{twin_device}")).json()
    device = (await hub_client.get(f"/devices/{twin_device}")).json()
    assert twin["deviceId"] == twin_device
    assert twin["etag"] == "AAAAAAAAAAE="
    assert twin["deviceEtag"] == device["etag"]
    assert twin["version"] == 1
    assert twin["status"] == "enabled"
    assert twin["statusUpdateTime"] == "0001-01-01T00:00:00Z"
    assert twin["authenticationType"] == "sas"
    assert twin["capabilities"] == {"iotEdge": False}
    for side in ("desired", "reported"):
        assert twin["properties"][side] == {
            "$metadata": {"$lastUpdated": "0001-01-01T00:00:00Z"},
            "$version": 1,
        }


async def test_patch_merges_and_null_removes(
    hub_client: httpx.AsyncClient, twin_device: str
) -> None:
    path = f"/twins/{twin_device}"
    first = await hub_client.patch(
        path,
        json={
            "tags": {"loc": {"site": "a", "floor": 2}, "owner": "ops"},
            "properties": {"desired": {"cfg": {"rate": 5, "mode": "eco"}, "on": True}},
        },
    )
    assert first.status_code == 200
    second = await hub_client.patch(
        path,
        json={
            "tags": {"loc": {"floor": None, "room": 7}, "owner": None},
            "properties": {"desired": {"cfg": {"mode": None}}},
        },
    )
    twin = second.json()
    assert twin["tags"] == {"loc": {"site": "a", "room": 7}}
    desired = twin["properties"]["desired"]
    assert {k: v for k, v in desired.items() if not k.startswith("$")} == {
        "cfg": {"rate": 5},
        "on": True,
    }
    assert desired["$version"] == 3
    assert twin["version"] == 3
    meta = desired["$metadata"]
    assert meta["cfg"]["$lastUpdatedVersion"] == 3
    assert meta["on"]["$lastUpdatedVersion"] == 2
    assert "mode" not in meta["cfg"]
    assert twin["etag"] == "AAAAAAAAAAM="
    # A tags-only patch leaves desired (and its version) alone.
    third = (await hub_client.patch(path, json={"tags": {"x": 1}})).json()
    assert third["properties"]["desired"]["$version"] == 3


async def test_put_replaces_and_rejects_null(
    hub_client: httpx.AsyncClient, twin_device: str
) -> None:
    path = f"/twins/{twin_device}"
    await hub_client.patch(
        path, json={"tags": {"a": 1, "b": 2}, "properties": {"desired": {"x": 1}}}
    )
    replaced = await hub_client.put(path, json={"tags": {"c": 3}})
    twin = replaced.json()
    assert replaced.status_code == 200
    assert twin["tags"] == {"c": 3}
    assert [k for k in twin["properties"]["desired"] if not k.startswith("$")] == []
    null = await hub_client.put(path, json={"tags": {"c": None}})
    assert (null.status_code, error_name(null)) == (400, "ArgumentInvalid")
    # A twin read back and sent again ($metadata, $version included) is accepted.
    again = await hub_client.put(path, json=twin)
    assert again.status_code == 200, again.text


async def test_twin_if_match(hub_client: httpx.AsyncClient, twin_device: str) -> None:
    path = f"/twins/{twin_device}"
    etag = (await hub_client.get(path)).json()["etag"]
    ok = await hub_client.patch(path, json={"tags": {"a": 1}}, headers={"If-Match": f'"{etag}"'})
    assert ok.status_code == 200
    stale = await hub_client.patch(path, json={"tags": {"a": 2}}, headers={"If-Match": f'"{etag}"'})
    assert (stale.status_code, error_name(stale)) == (412, "PreconditionFailed")
    stale_put = await hub_client.put(path, json={"tags": {}}, headers={"If-Match": f'"{etag}"'})
    assert stale_put.status_code == 412
    assert (
        await hub_client.patch(path, json={"tags": {"a": 3}}, headers={"If-Match": "*"})
    ).status_code == 200
    missing = await hub_client.patch("/twins/nobody", json={"tags": {}})
    assert (missing.status_code, error_name(missing)) == (404, "DeviceNotFound")


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for index in range(levels - 1):
        value = {f"l{index}": value}
    return value


@pytest.mark.parametrize(
    "body",
    [
        {"properties": {"reported": {"temp": 1}}},
        {"tags": {"a.b": 1}},
        {"tags": {"$x": 1}},
        {"tags": {"a b": 1}},
        {"tags": {"a\u0001": 1}},
        {"tags": {"k" * 1025: 1}},
        {"tags": {"s": "x" * 4097}},
        {"tags": {"big": 4503599627370496}},
        {"tags": {"small": -4503599627370497}},
        {"tags": {"blob": "x" * 4000, "blob2": "x" * 4000, "blob3": "x" * 400}},
        {"properties": {"desired": {f"k{i}": "x" * 4000 for i in range(9)}}},
        {"tags": _deep(11)},
        {"tags": "not an object"},
        {"properties": "not an object"},
        [1, 2],
    ],
)
async def test_twin_limits_and_bad_bodies(
    hub_client: httpx.AsyncClient, twin_device: str, body: Any
) -> None:
    response = await hub_client.patch(f"/twins/{twin_device}", json=body)
    assert (response.status_code, error_name(response)) == (400, "ArgumentInvalid"), body
    twin = (await hub_client.get(f"/twins/{twin_device}")).json()
    assert twin["version"] == 1  # nothing applied


async def test_limits_that_fit(hub_client: httpx.AsyncClient, twin_device: str) -> None:
    body = {
        "tags": {
            **_deep(10),
            "max": 4503599627370495,
            "s": "x" * 4096,
            "arr": [1, "a", {"b": 2}],
        },
        "properties": {"desired": {"f": 1.5, "ok": None}},
    }
    response = await hub_client.patch(f"/twins/{twin_device}", json=body)
    assert response.status_code == 200, response.text


async def test_module_twins_follow_device_twin_rules(
    hub_client: httpx.AsyncClient, twin_device: str
) -> None:
    created = await hub_client.put(
        f"/devices/{twin_device}/modules/mod-1",
        json={"deviceId": twin_device, "moduleId": "mod-1"},
    )
    assert created.status_code == 200, created.text
    path = f"/twins/{twin_device}/modules/mod-1"
    twin = (await hub_client.get(path)).json()
    assert (twin["deviceId"], twin["moduleId"]) == (twin_device, "mod-1")
    patched = await hub_client.patch(path, json={"properties": {"desired": {"a": 1}}})
    assert patched.json()["properties"]["desired"]["a"] == 1
    stale = await hub_client.patch(
        path, json={"tags": {}}, headers={"If-Match": f'"{twin["etag"]}"'}
    )
    assert stale.status_code == 412
    missing = await hub_client.get(f"/twins/{twin_device}/modules/nope")
    assert (missing.status_code, error_name(missing)) == (404, "ModuleNotFound")
