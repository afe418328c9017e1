"""Fixtures: one in-process IoT Hub emulator per test, the engine against it, and an owner's
client to change the hub behind the tool's back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.iothub.support import HubEngine, new_key, owner_client
from tests.iothub_emulator.conftest import build_app


@pytest.fixture
def hub_key() -> str:
    return new_key()


@pytest.fixture
def hub_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """IotHubConfig fields for the emulator (parametrize indirectly to change them)."""
    settings: dict[str, Any] = getattr(request, "param", {})
    return settings


@pytest.fixture
async def hub_transport(hub_key: str, hub_settings: dict[str, Any]) -> AsyncIterator[Any]:
    app = build_app(hub_key, **hub_settings)
    async with app.router.lifespan_context(app):
        yield httpx.ASGITransport(app=app)


@pytest.fixture
def hub_engine(hub_transport: httpx.ASGITransport, hub_key: str) -> HubEngine:
    return HubEngine(hub_transport, hub_key)


@pytest.fixture
async def owner(
    hub_transport: httpx.ASGITransport, hub_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in owner_client(hub_transport, hub_key):
        yield client
