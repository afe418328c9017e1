"""The admin endpoints outside /api/v3: run-time knobs and request statistics."""

from __future__ import annotations

import time

import httpx

from tests.conftest import IN_PROCESS_STREAM_IDLE_S
from tests.emulator.support import TtsApi

ROOT = "http://emulator.test/_emulator"


async def test_admin_endpoints_need_the_admin_key(tts: TtsApi, client: httpx.AsyncClient) -> None:
    anonymous = tts.client_for(None)
    assert (await anonymous.get(f"{ROOT}/config")).status_code == 401
    user_key = await tts.create_user_api_key("admin-user", ["RIGHT_ALL"])
    other = tts.client_for(user_key)
    response = await other.get(f"{ROOT}/stats")
    assert response.status_code == 403
    assert response.json()["code"] == 7


async def test_config_is_adjustable_at_run_time(client: httpx.AsyncClient) -> None:
    initial = (await client.get(f"{ROOT}/config")).json()
    assert initial == {
        "latency_ms": 0.0,
        "jitter_ms": 0.0,
        "rate_limit": None,
        "fail_rate": 0.0,
        "drop_rate": 0.0,
        # None when served; in-process the fixture ends event streams once idle (conftest).
        "event_stream_idle_s": IN_PROCESS_STREAM_IDLE_S,
        "traffic_interval": None,
    }
    updated = await client.put(
        f"{ROOT}/config", json={"latency_ms": 60, "rate_limit": "600:5", "fail_rate": 0.25}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["rate_limit"] == {"per_minute": 600, "burst": 5}
    started = time.perf_counter()
    response = await client.get("/auth_info")
    assert time.perf_counter() - started >= 0.06
    assert response.headers["X-Rate-Limit-Limit"] == "5"
    back = await client.put(f"{ROOT}/config", json={"latency_ms": 0, "rate_limit": None})
    assert back.json()["rate_limit"] is None
    assert "X-Rate-Limit-Limit" not in (await client.get("/auth_info")).headers


async def test_bad_config_is_rejected(client: httpx.AsyncClient) -> None:
    for body in ({"fail_rate": 2}, {"latency_ms": "slow"}, {"nonsense": 1}, {"rate_limit": "x"}):
        response = await client.put(f"{ROOT}/config", json=body)
        assert response.status_code == 400, (body, response.text)
    assert (await client.get(f"{ROOT}/config")).json()["fail_rate"] == 0.0


async def test_stats_count_requests_per_rpc_and_status(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_application("app1")
    assert (await client.delete(f"{ROOT}/stats")).status_code == 200
    for _ in range(3):
        await client.get("/applications/app1/devices/nope")
    await client.get("/applications/app1")
    stats = (await client.get(f"{ROOT}/stats")).json()
    assert stats["rpcs"]["EndDeviceRegistry/Get"] == {"404": 3}
    assert stats["rpcs"]["ApplicationRegistry/Get"] == {"200": 1}
    assert stats["total"] == 4
    await client.delete(f"{ROOT}/stats")
    assert (await client.get(f"{ROOT}/stats")).json() == {"total": 0, "rpcs": {}}


async def test_healthz_answers_without_credentials(tts: TtsApi) -> None:
    anonymous = tts.client_for(None)
    response = await anonymous.get("http://emulator.test/healthz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}
