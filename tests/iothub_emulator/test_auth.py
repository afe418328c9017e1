"""Shared access signatures: the documented signing recipe, the five default policies and their
rights, device-key tokens, and 401 IotHubUnauthorizedAccess for everything else."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.iothub_emulator.conftest import new_key
from tests.iothub_emulator.support import API_VERSION, HOST, Hub, error_name, sas_token

VECTOR_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def test_token_recipe_reproduces_the_reference_vector() -> None:
    token = sas_token("myhub.azure-devices.net", VECTOR_KEY, expiry=1700000000)
    assert "sig=sJAIZTF5oG40VHrie96heZ865%2BnR4QavBvHnzxZm8rk%3D" in token
    scoped = sas_token("myhub.azure-devices.net/devices", VECTOR_KEY, expiry=1700000000)
    assert "sr=myhub.azure-devices.net%2Fdevices&" in scoped
    assert "sig=bcWIvqJXCP3NJh17lxOkjHhW5S7k7%2FidBzKdZNS7kvU%3D" in scoped


async def _status(
    client: httpx.AsyncClient, method: str, path: str, token: str | None, **kwargs: Any
) -> tuple[int, str | None]:
    headers = {"Authorization": token} if token is not None else {}
    response = await client.request(
        method, path, params={"api-version": API_VERSION}, headers=headers, **kwargs
    )
    if response.status_code >= 400:
        return response.status_code, error_name(response)
    return response.status_code, None


UNAUTHORIZED = (401, "IotHubUnauthorizedAccess")


async def test_reference_vector_key_is_accepted_and_its_expired_token_is_not() -> None:
    from tests.iothub_emulator.conftest import build_app

    app = build_app(VECTOR_KEY)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"https://{HOST}"
        ) as client,
    ):
        expired = sas_token(HOST, VECTOR_KEY, "iothubowner", expiry=1700000000)
        assert await _status(client, "GET", "/statistics/devices", expired) == UNAUTHORIZED
        fresh = sas_token(HOST, VECTOR_KEY, "iothubowner")
        assert await _status(client, "GET", "/statistics/devices", fresh) == (200, None)
        scoped = sas_token(f"{HOST}/devices", VECTOR_KEY, "iothubowner")
        assert await _status(client, "GET", "/devices", scoped) == (200, None)
        # Scopes match whole segments: /devices does not cover /statistics or /devicesX.
        assert await _status(client, "GET", "/statistics/devices", scoped) == UNAUTHORIZED


async def test_bad_tokens_get_401_with_the_envelope(
    raw_client: httpx.AsyncClient, hub: Hub
) -> None:
    path = "/statistics/devices"
    good = hub.token("iothubowner")
    assert await _status(raw_client, "GET", path, good) == (200, None)
    bad_tokens = {
        "missing": None,
        "empty": "",
        "wrong key": sas_token(HOST, new_key(), "iothubowner"),
        "unknown policy": sas_token(HOST, hub.policy_keys["iothubowner"], "nosuchpolicy"),
        "other policy's key": sas_token(HOST, hub.policy_keys["service"], "iothubowner"),
        "expired": hub.token("iothubowner", expiry=int(time.time()) - 5),
        "other hub": sas_token(
            "otherhub.azure-devices.net", hub.policy_keys["iothubowner"], "iothubowner"
        ),
        "bearer": "Bearer abc",
        "garbage": "SharedAccessSignature sr=&sig=%%%&se=x",
        "no signature": good.replace("&sig=", "&nosig="),
        "tampered expiry": good.replace("&se=", "&se=9"),
    }
    for name, token in bad_tokens.items():
        assert await _status(raw_client, "GET", path, token) == UNAUTHORIZED, name
    response = await raw_client.get(path, params={"api-version": API_VERSION})
    assert response.json()["Message"] == "ErrorCode:IotHubUnauthorizedAccess;Unauthorized"
    assert response.json()["ExceptionMessage"].startswith("Tracking ID:")


async def test_signature_escaping_variants_are_accepted(
    raw_client: httpx.AsyncClient, hub: Hub
) -> None:
    """The Python SDK leaves '/' raw in sig, others escape it: the hub URL-decodes sig."""
    from azure.iot.hub.sastoken import SasToken

    token = str(SasToken(HOST, hub.policy_keys["iothubowner"], "iothubowner"))
    assert await _status(raw_client, "GET", "/statistics/devices", token) == (200, None)


async def test_policy_rights(raw_client: httpx.AsyncClient, hub: Hub) -> None:
    owner = hub.token("iothubowner")
    assert await _status(
        raw_client, "PUT", "/devices/rights-1", owner, json={"deviceId": "rights-1"}
    ) == (200, None)
    calls = {
        "read identity": ("GET", "/devices/rights-1", {}),
        "write identity": ("PUT", "/devices/rights-2", {"json": {"deviceId": "rights-2"}}),
        "bulk": ("POST", "/devices", {"json": [{"id": "rights-3", "importMode": "create"}]}),
        "read twin": ("GET", "/twins/rights-1", {}),
        "query": ("POST", "/devices/query", {"json": {"query": "SELECT * FROM devices"}}),
    }
    allowed = {
        "registryRead": {"read identity"},
        "registryReadWrite": {"read identity", "write identity", "bulk"},
        "service": {"read twin", "query"},
        "device": set(),
    }
    for policy, permitted in allowed.items():
        token = hub.token(policy)
        for name, (method, path, kwargs) in calls.items():
            status, code = await _status(raw_client, method, path, token, **kwargs)
            if name in permitted:
                assert status == 200, (policy, name, code)
            else:
                assert (status, code) == UNAUTHORIZED, (policy, name)
        # Writes that were allowed are undone so that the next policy starts the same.
        await raw_client.delete(
            "/devices/rights-2",
            params={"api-version": API_VERSION},
            headers={"Authorization": owner, "If-Match": "*"},
        )
        await raw_client.delete(
            "/devices/rights-3",
            params={"api-version": API_VERSION},
            headers={"Authorization": owner, "If-Match": "*"},
        )


async def test_device_tokens_only_reach_their_own_device_endpoint(
    hub_client: httpx.AsyncClient, raw_client: httpx.AsyncClient, hub: Hub
) -> None:
    created = await hub_client.put("/devices/dev-a", json={"deviceId": "dev-a"})
    await hub_client.put("/devices/dev-b", json={"deviceId": "dev-b"})
    keys = created.json()["authentication"]["symmetricKey"]
    events = "/devices/dev-a/messages/events"
    for key in (keys["primaryKey"], keys["secondaryKey"]):
        token = sas_token(f"{HOST}/devices/dev-a", key)
        assert await _status(raw_client, "POST", events, token, content=b"x") == (204, None)
    own = sas_token(f"{HOST}/devices/dev-a", keys["primaryKey"])
    # Not another device's endpoint, not the service API.
    assert (
        await _status(raw_client, "POST", "/devices/dev-b/messages/events", own, content=b"x")
        == UNAUTHORIZED
    )
    assert await _status(raw_client, "GET", "/devices/dev-a", own) == UNAUTHORIZED
    assert await _status(raw_client, "GET", "/twins/dev-a", own) == UNAUTHORIZED
    # A device key used as if it were a policy key, and a key of the wrong device.
    policy_like = sas_token(HOST, keys["primaryKey"], "device")
    assert await _status(raw_client, "POST", events, policy_like, content=b"x") == UNAUTHORIZED
    wrong = sas_token(f"{HOST}/devices/dev-a", new_key())
    assert await _status(raw_client, "POST", events, wrong, content=b"x") == UNAUTHORIZED
    # The device policy (DeviceConnect) may send for any device; iothubowner has every right.
    for policy in ("device", "iothubowner"):
        assert await _status(raw_client, "POST", events, hub.token(policy), content=b"x") == (
            204,
            None,
        )
    assert (
        await _status(raw_client, "POST", events, hub.token("service"), content=b"x")
        == UNAUTHORIZED
    )
    # A disabled device cannot send.
    await hub_client.put(
        "/devices/dev-a",
        headers={"If-Match": "*"},
        json={
            "deviceId": "dev-a",
            "status": "disabled",
            "authentication": {"type": "sas", "symmetricKey": keys},
        },
    )
    assert await _status(raw_client, "POST", events, own, content=b"x") == UNAUTHORIZED
