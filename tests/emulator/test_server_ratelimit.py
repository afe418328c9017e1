"""Rate limiting on demand: GCRA per token, RPC and entity, TTS's headers and 429 (FACTS §f)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.emulator.support import TtsApi, expect_error

HEADERS = (
    "X-Rate-Limit-Limit",
    "X-Rate-Limit-Available",
    "X-Rate-Limit-Reset",
    "X-Rate-Limit-Retry",
)


@pytest.fixture
def emulator_config() -> dict[str, Any]:
    return {"rate_limit": (60, 3)}


async def test_headers_then_429_with_headers_and_no_retry_after(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_application("app1")
    available = []
    for _ in range(3):
        response = await client.get("/applications/app1")
        assert response.status_code == 200
        assert all(h in response.headers for h in HEADERS)
        assert response.headers["X-Rate-Limit-Limit"] == "3"
        assert response.headers["X-Rate-Limit-Retry"] == "0"
        available.append(int(response.headers["X-Rate-Limit-Available"]))
    assert available == [2, 1, 0]
    limited = await client.get("/applications/app1")
    detail = expect_error(limited, code=8, name="rate_limit_exceeded", namespace="pkg/ratelimit")
    assert "ApplicationRegistry/Get" in detail["attributes"]["key"]
    assert "retry-after" not in limited.headers
    assert int(limited.headers["X-Rate-Limit-Retry"]) >= 1
    assert int(limited.headers["X-Rate-Limit-Reset"]) >= 1


async def test_buckets_are_per_rpc_entity_and_token(tts: TtsApi, client: httpx.AsyncClient) -> None:
    await tts.create_application("app1")
    await tts.create_application("app2")
    for _ in range(3):
        await client.get("/applications/app1")
    assert (await client.get("/applications/app1")).status_code == 429
    assert (await client.get("/applications/app2")).status_code == 200  # other entity
    assert (await client.get("/applications/app1/devices")).status_code == 200  # other RPC
    token = await tts.create_application_api_key("app1", ["RIGHT_APPLICATION_ALL"])
    other = tts.client_for(token)
    assert (await other.get("/applications/app1")).status_code == 200  # other token
