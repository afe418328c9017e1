"""`POST /devices/query`: the SQL subset, pages with x-ms-max-item-count and opaque
continuation tokens, x-ms-item-type, module twins, COUNT, and 400s for what is not supported."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.iothub_emulator.support import device_body, error_name

FLEET = [
    # id, status, edge, tags, desired, reported-free
    ("q-a", "enabled", False, {"site": "north", "n": 1, "lorawan": {"devEui": "01"}}, {"rate": 5}),
    ("q-b", "disabled", False, {"site": "south", "n": 2}, {"rate": 10}),
    ("q-c", "enabled", True, {"site": "north", "n": 3}, {}),
    ("q-d", "enabled", False, {}, {"rate": 5, "mode": "eco"}),
]


@pytest.fixture
async def fleet(hub_client: httpx.AsyncClient) -> None:
    for device_id, status, edge, tags, desired in FLEET:
        body = device_body(device_id, status=status, capabilities={"iotEdge": edge})
        assert (await hub_client.put(f"/devices/{device_id}", json=body)).status_code == 200
        patch: dict[str, Any] = {"tags": tags, "properties": {"desired": desired}}
        assert (await hub_client.patch(f"/twins/{device_id}", json=patch)).status_code == 200
    module = {"deviceId": "q-a", "moduleId": "m1"}
    assert (await hub_client.put("/devices/q-a/modules/m1", json=module)).status_code == 200


async def ids(client: httpx.AsyncClient, query: str) -> list[str]:
    response = await client.post("/devices/query", json={"query": query})
    assert response.status_code == 200, response.text
    assert response.headers["x-ms-item-type"] == "twin"
    return [item["deviceId"] for item in response.json()]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("", ["q-a", "q-b", "q-c", "q-d"]),
        ("WHERE deviceId = 'q-b'", ["q-b"]),
        ("WHERE status = 'disabled'", ["q-b"]),
        ("WHERE status != 'disabled'", ["q-a", "q-c", "q-d"]),
        ("WHERE capabilities.iotEdge = true", ["q-c"]),
        ("WHERE tags.site = 'north'", ["q-a", "q-c"]),
        ("WHERE tags.site <> 'north'", ["q-b"]),
        ("WHERE tags.n > 1", ["q-b", "q-c"]),
        ("WHERE tags.n < 2", ["q-a"]),
        ("WHERE tags.n >= 2 AND tags.n <= 3", ["q-b", "q-c"]),
        ("WHERE tags.lorawan.devEui = '01'", ["q-a"]),
        ("WHERE properties.desired.rate = 5", ["q-a", "q-d"]),
        ("WHERE properties.desired.rate IN (10, 5)", ["q-a", "q-b", "q-d"]),
        ("WHERE deviceId NOT IN ('q-a', 'q-b')", ["q-c", "q-d"]),
        ("WHERE deviceId IN ['q-a', 'q-d']", ["q-a", "q-d"]),
        ("WHERE deviceId NIN ['q-a', 'q-d']", ["q-b", "q-c"]),
        ("WHERE tags.site = 'south' OR properties.desired.mode = 'eco'", ["q-b", "q-d"]),
        ("WHERE NOT (tags.site = 'north')", ["q-b"]),
        ("WHERE IS_DEFINED(tags.site)", ["q-a", "q-b", "q-c"]),
        ("WHERE NOT IS_DEFINED(tags.site)", ["q-d"]),
        ("WHERE is_defined(properties.reported.temp)", []),
        ("WHERE tags.n = '1'", []),  # a string never equals a number
        ("WHERE (status = 'enabled' AND tags.n = 1) OR deviceId = 'q-d'", ["q-a", "q-d"]),
    ],
)
async def test_where(
    hub_client: httpx.AsyncClient, fleet: None, where: str, expected: list[str]
) -> None:
    assert await ids(hub_client, f"SELECT * FROM devices {where}") == expected


async def test_items_are_twins(hub_client: httpx.AsyncClient, fleet: None) -> None:
    response = await hub_client.post(
        "/devices/query", json={"query": "SELECT * FROM devices WHERE deviceId = 'q-a'"}
    )
    [item] = response.json()
    assert item == (await hub_client.get("/twins/q-a")).json()


async def test_modules(hub_client: httpx.AsyncClient, fleet: None) -> None:
    response = await hub_client.post(
        "/devices/query", json={"query": "SELECT * FROM devices.modules"}
    )
    assert [(m["deviceId"], m["moduleId"]) for m in response.json()] == [("q-a", "m1")]


async def test_count(hub_client: httpx.AsyncClient, fleet: None) -> None:
    response = await hub_client.post(
        "/devices/query",
        json={"query": "SELECT COUNT() AS numberOfDevices FROM devices WHERE tags.site = 'north'"},
    )
    assert response.json() == [{"numberOfDevices": 2}]
    assert "x-ms-continuation" not in response.headers


async def test_pages_with_continuation(hub_client: httpx.AsyncClient) -> None:
    for index in range(25):
        await hub_client.put(f"/devices/p-{index:02}", json=device_body(f"p-{index:02}"))
    query = {"query": "SELECT * FROM devices"}
    seen: list[str] = []
    token: str | None = None
    sizes = []
    while True:
        headers = {"x-ms-max-item-count": "10"}
        if token:
            headers["x-ms-continuation"] = token
        response = await hub_client.post("/devices/query", json=query, headers=headers)
        assert response.status_code == 200
        page = [item["deviceId"] for item in response.json()]
        sizes.append(len(page))
        seen.extend(page)
        token = response.headers.get("x-ms-continuation")
        if not token:
            break
        # Changes between pages do not disturb the walk: a new device before the cursor and
        # a deleted one after it.
        if len(sizes) == 1:
            await hub_client.put("/devices/p-00a", json=device_body("p-00a"))
            await hub_client.delete("/devices/p-24", headers={"If-Match": "*"})
    assert sizes == [10, 10, 4]
    assert seen == [f"p-{index:02}" for index in range(24)]


async def test_default_page_size_is_100(hub_client: httpx.AsyncClient) -> None:
    body = [{"id": f"dp-{i:03}", "importMode": "create"} for i in range(100)]
    assert (await hub_client.post("/devices", json=body)).status_code == 200
    body = [{"id": f"dp-{i:03}", "importMode": "create"} for i in range(100, 150)]
    assert (await hub_client.post("/devices", json=body)).status_code == 200
    first = await hub_client.post("/devices/query", json={"query": "SELECT * FROM devices"})
    assert len(first.json()) == 100
    second = await hub_client.post(
        "/devices/query",
        json={"query": "SELECT * FROM devices"},
        headers={"x-ms-continuation": first.headers["x-ms-continuation"]},
    )
    assert len(second.json()) == 50 and "x-ms-continuation" not in second.headers


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"query": "SELECT deviceId FROM devices"}, {}),
        ({"query": "SELECT * FROM jobs"}, {}),
        ({"query": "SELECT * FROM devices WHERE"}, {}),
        ({"query": "SELECT * FROM devices WHERE tags.a = "}, {}),
        ({"query": "SELECT * FROM devices WHERE tags.a == 1"}, {}),
        ({"query": "SELECT * FROM devices WHERE (tags.a = 1"}, {}),
        ({"query": "SELECT * FROM devices WHERE tags.a = 'x"}, {}),
        ({"query": "SELECT * FROM devices WHERE tags.a IN ()"}, {}),
        ({"query": "SELECT * FROM devices WHERE tags.a IN ['x')"}, {}),
        ({"query": "DROP TABLE devices"}, {}),
        ({"query": ""}, {}),
        ({"query": 42}, {}),
        ({"nope": "SELECT * FROM devices"}, {}),
        ({"query": "SELECT * FROM devices"}, {"x-ms-max-item-count": "ten"}),
        ({"query": "SELECT * FROM devices"}, {"x-ms-continuation": "bm90IGEgdG9rZW4="}),
        ({"query": "SELECT * FROM devices"}, {"x-ms-continuation": "%%%"}),
    ],
)
async def test_bad_queries_are_400(
    hub_client: httpx.AsyncClient, body: Any, headers: dict[str, str]
) -> None:
    response = await hub_client.post("/devices/query", json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert error_name(response) == "ArgumentInvalid"


async def test_token_of_another_query_is_400(hub_client: httpx.AsyncClient) -> None:
    for index in range(3):
        await hub_client.put(f"/devices/t-{index}", json=device_body(f"t-{index}"))
    first = await hub_client.post(
        "/devices/query",
        json={"query": "SELECT * FROM devices"},
        headers={"x-ms-max-item-count": "1"},
    )
    token = first.headers["x-ms-continuation"]
    other = await hub_client.post(
        "/devices/query",
        json={"query": "SELECT * FROM devices WHERE status = 'enabled'"},
        headers={"x-ms-continuation": token},
    )
    assert other.status_code == 400
