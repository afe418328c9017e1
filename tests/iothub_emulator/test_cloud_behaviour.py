"""A cloud's behaviour on demand: SKU throttles with traffic shaping (queued, then 429),
injected failures and lost responses, the create-then-404 window, and the admin endpoints that
adjust them and count requests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.iothub_emulator.support import device_body, error_name


async def configure(client: httpx.AsyncClient, **settings: Any) -> httpx.Response:
    return await client.put("/_emulator/config", json=settings)


async def test_admin_config_round_trip_and_refusals(
    hub_client: httpx.AsyncClient, raw_client: httpx.AsyncClient, hub: Any
) -> None:
    current = (await hub_client.get("/_emulator/config")).json()
    assert current["sku"] is None and current["visibility_delay_ms"] == 0
    changed = await configure(hub_client, sku="S2", units=3, latency_ms=1, visibility_delay_ms=5)
    assert changed.status_code == 200
    assert {k: changed.json()[k] for k in ("sku", "units", "latency_ms")} == {
        "sku": "S2",
        "units": 3,
        "latency_ms": 1.0,
    }
    for bad in (
        {"sku": "S9"},
        {"units": 0},
        {"fail_rate": 2},
        {"nope": 1},
        {"rate_limit": 5},
        {"sku": "S1", "drop_rate": -1},
    ):
        response = await configure(hub_client, **bad)
        assert (response.status_code, error_name(response)) == (400, "ArgumentInvalid"), bad
    after = (await hub_client.get("/_emulator/config")).json()
    assert after == changed.json()  # nothing of a refused change was applied
    # Only a policy with every right may use the admin endpoints.
    service = await raw_client.get("/_emulator/config", headers=hub.headers("service"))
    assert (service.status_code, error_name(service)) == (401, "IotHubUnauthorizedAccess")
    assert (await raw_client.get("/_emulator/stats")).status_code == 401


async def test_stats_count_operations_by_status(hub_client: httpx.AsyncClient) -> None:
    await hub_client.delete("/_emulator/stats")
    await hub_client.put("/devices/st-1", json=device_body("st-1"))
    await hub_client.put("/devices/st-1", json=device_body("st-1"))
    await hub_client.get("/twins/st-1")
    stats = (await hub_client.get("/_emulator/stats")).json()
    assert stats["rpcs"]["PutDevice"] == {"200": 1, "409": 1}
    assert stats["rpcs"]["GetTwin"] == {"200": 1}


@pytest.fixture
def hub_config() -> dict[str, Any]:
    return {"seed": 7}


async def test_fail_rate_answers_503_before_applying(hub_client: httpx.AsyncClient) -> None:
    await configure(hub_client, fail_rate=1)
    response = await hub_client.put("/devices/f-1", json=device_body("f-1"))
    assert (response.status_code, error_name(response)) == (503, "ServiceUnavailable")
    assert (await hub_client.get("/devices/f-1")).status_code == 404  # reads still work
    await configure(hub_client, fail_rate=0)
    assert (await hub_client.put("/devices/f-1", json=device_body("f-1"))).status_code == 200


async def test_drop_rate_applies_then_loses_the_response(hub_client: httpx.AsyncClient) -> None:
    await configure(hub_client, drop_rate=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await hub_client.put("/devices/d-1", json=device_body("d-1"))
    await configure(hub_client, drop_rate=0)
    assert (await hub_client.get("/devices/d-1")).status_code == 200  # it was applied


async def test_get_right_after_create_may_404(hub_client: httpx.AsyncClient) -> None:
    assert (await hub_client.put("/devices/v-0", json=device_body("v-0"))).status_code == 200
    assert (await hub_client.get("/devices/v-0")).status_code == 200  # off by default
    await configure(hub_client, visibility_delay_ms=1000)
    assert (await hub_client.put("/devices/v-1", json=device_body("v-1"))).status_code == 200
    early = await hub_client.get("/devices/v-1")
    assert (early.status_code, error_name(early)) == (404, "DeviceNotFound")
    assert (await hub_client.get("/twins/v-1")).status_code == 404
    await asyncio.sleep(1.05)
    assert (await hub_client.get("/devices/v-1")).status_code == 200


async def test_identity_throttle_queues_then_refuses(hub_client: httpx.AsyncClient) -> None:
    """S1 with one unit: 100 identity operations a minute. A burst is served, the next requests
    wait their turn at the limit rate, and one that would wait past the backlog gets 429."""
    await hub_client.put("/devices/th-1", json=device_body("th-1"))
    await configure(hub_client, sku="S1", units=1, throttle_backlog_s=1.0)
    started = time.monotonic()
    first = await hub_client.get("/devices/th-1")  # within the burst: at once
    assert first.status_code == 200 and time.monotonic() - started < 0.55
    second = await hub_client.get("/devices/th-1")  # queued until its slot, 0.6 s later
    assert second.status_code == 200
    assert 0.45 < time.monotonic() - started < 5
    # Four more would wait about 0.6, 1.2, 1.8 and 2.4 s: those past the 1 s backlog get 429.
    answers = await asyncio.gather(*(hub_client.get("/devices/th-1") for _ in range(4)))
    statuses = [answer.status_code for answer in answers]
    assert 200 in statuses and 429 in statuses, statuses
    refused = answers[statuses.index(429)]
    assert error_name(refused) == "ThrottlingBacklogTimeout"
    assert refused.json()["Message"].endswith("Operation type: CRUD")
    # Twin reads are a different throttle (100/s on S1): not held up by identity operations.
    twin_started = time.monotonic()
    assert (await hub_client.get("/twins/th-1")).status_code == 200
    assert time.monotonic() - twin_started < 0.55


async def test_query_throttle_per_unit(hub_client: httpx.AsyncClient) -> None:
    """Queries: 20 a minute per unit on S1; ten units make the next query come at once."""
    await configure(hub_client, sku="S1", units=1, throttle_backlog_s=0.5)
    query = {"query": "SELECT * FROM devices"}
    assert (await hub_client.post("/devices/query", json=query)).status_code == 200
    refused = await hub_client.post("/devices/query", json=query)  # next slot in 3 s
    assert (refused.status_code, error_name(refused)) == (429, "ThrottlingBacklogTimeout")
    await configure(hub_client, sku="S3", units=1)  # 1000 a minute: a burst of 16
    for _ in range(5):
        assert (await hub_client.post("/devices/query", json=query)).status_code == 200
