"""Fixtures: the IoT Hub emulator in-process (`hub_client`: httpx over ASGI with iothubowner's
token) and served on loopback for Microsoft's SDK (`sdk`, one emulator per test module).

Tests know the hub's keys the way a user does: the iothubowner key is chosen at start (generated
here at run time), the other policies' keys come from the admin endpoint."""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import serve_in_thread
from tests.iothub_emulator.support import API_VERSION, HOST, HUB, Hub, sas_token

BASE_URL = f"https://{HOST}"


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def owner_connection_string(key: str) -> str:
    return f"HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={key}"


def build_app(owner_key: str, **config: Any) -> Any:
    from reconciler.emulator.iothub import IotHubConfig, create_app

    config.setdefault("hub_name", HUB)
    config.setdefault("seed", 1)
    return create_app(IotHubConfig(shared_access_key=owner_key, **config))


def policy_keys(
    client: httpx.Client | None, response: httpx.Response | None = None
) -> dict[str, str]:
    assert response is not None or client is not None
    if response is None:
        assert client is not None
        response = client.get("/_emulator/policies")
    assert response.status_code == 200, response.text
    return {name: keys["primaryKey"] for name, keys in response.json().items()}


@pytest.fixture
def hub_config() -> dict[str, Any]:
    """Extra IotHubConfig fields for `hub_app`; override in a module to change knobs."""
    return {}


@pytest.fixture
def owner_key() -> str:
    return new_key()


@pytest.fixture
def hub_app(owner_key: str, hub_config: dict[str, Any]) -> Any:
    return build_app(owner_key, **hub_config)


@pytest.fixture
async def hub_transport(hub_app: Any) -> AsyncIterator[httpx.ASGITransport]:
    async with hub_app.router.lifespan_context(hub_app):
        yield httpx.ASGITransport(app=hub_app)


@pytest.fixture
async def hub(hub_transport: httpx.ASGITransport, owner_key: str) -> Hub:
    async with httpx.AsyncClient(
        transport=hub_transport,
        base_url=BASE_URL,
        headers={"Authorization": sas_token(HOST, owner_key, "iothubowner")},
    ) as client:
        response = await client.get("/_emulator/policies")
    return Hub(owner_connection_string(owner_key), policy_keys(None, response))


@pytest.fixture
async def hub_client(
    hub_transport: httpx.ASGITransport, hub: Hub
) -> AsyncIterator[httpx.AsyncClient]:
    """iothubowner's client; every request carries api-version 2021-04-12."""
    async with httpx.AsyncClient(
        transport=hub_transport,
        base_url=BASE_URL,
        headers=hub.headers(),
        params={"api-version": API_VERSION},
    ) as client:
        yield client


@pytest.fixture
async def raw_client(hub_transport: httpx.ASGITransport) -> AsyncIterator[httpx.AsyncClient]:
    """No token and no api-version: tests add exactly what they test."""
    async with httpx.AsyncClient(transport=hub_transport, base_url=BASE_URL) as client:
        yield client


@contextlib.contextmanager
def registry_manager(root_url: str, connection_string: str) -> Iterator[Any]:
    """Microsoft's IoTHubRegistryManager with its msrest client pointed at `root_url` (the SDK
    otherwise sends to https://HostName)."""
    from azure.iot.hub import IoTHubRegistryManager

    manager = IoTHubRegistryManager.from_connection_string(connection_string)
    manager.protocol.config.base_url = root_url
    try:
        yield manager
    finally:
        manager.amqp_svc_client.disconnect_sync()


@pytest.fixture(scope="module")
def served_hub() -> Iterator[tuple[str, str]]:
    """(root URL, owner connection string) of one served emulator per test module."""
    key = new_key()
    with serve_in_thread(build_app(key)) as root_url:
        yield root_url, owner_connection_string(key)


@pytest.fixture(scope="module")
def sdk(served_hub: tuple[str, str]) -> Iterator[Any]:
    """The SDK's registry manager as iothubowner; tests in a module use unique IDs."""
    with registry_manager(*served_hub) as manager:
        yield manager
