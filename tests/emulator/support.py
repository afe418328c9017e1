"""Helpers for black-box tests of the TTS emulator (and of anything that talks to it).

Everything here goes through HTTP. The expectations come from
/work/shared/reference/tts/FACTS.md (cited as §a–§h), never from the emulator's code.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx

ADMIN_USER = "admin-user"
FREQUENCY_PLAN = "EU_863_870_TTN"
ERROR_DETAILS_TYPE = "type.googleapis.com/ttn.lorawan.v3.ErrorDetails"

# §d "gRPC code → HTTP status".
GRPC_TO_HTTP = {
    0: 200,
    1: 499,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    6: 409,
    7: 403,
    8: 429,
    9: 400,
    10: 409,
    11: 400,
    12: 501,
    13: 500,
    14: 503,
    15: 500,
    16: 401,
}
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED = 3, 5, 6, 7
RESOURCE_EXHAUSTED, FAILED_PRECONDITION, UNAUTHENTICATED = 8, 9, 16

_B32 = re.compile(r"^[A-Z2-7]+$")


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def make_api_key() -> str:
    """A well-formed TTS API key: `NNSXS.<39 base32>.<52 base32>` (§f)."""
    return f"NNSXS.{b32(os.urandom(24))}.{b32(os.urandom(32))}"


def api_key_id(token: str) -> str:
    """The key ID is the middle part of the token (§f)."""
    return token.split(".")[1]


def is_api_key(token: object) -> bool:
    if not isinstance(token, str):
        return False
    parts = token.split(".")
    return (
        len(parts) == 3
        and parts[0] == "NNSXS"
        and len(parts[1]) == 39
        and len(parts[2]) == 52
        and all(_B32.match(part) for part in parts[1:])
    )


# Unique identifiers across a whole pytest session, so module-scoped servers never collide.
_SESSION_PREFIX = secrets.token_hex(2).upper()
_counter = itertools.count(1)


def new_eui() -> str:
    """A fresh upper-case EUI (never all zeros)."""
    return f"70B3D57E{_SESSION_PREFIX}{next(_counter):04X}"


def new_dev_addr() -> str:
    return f"26{secrets.token_hex(3).upper()}"


def new_key() -> str:
    return secrets.token_hex(16).upper()


def new_id(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


# ---------------------------------------------------------------------------------------------
# Error assertions (§d "Error JSON shape")


def iter_causes(detail: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`detail` and each nested `cause` below it."""
    current: dict[str, Any] | None = detail
    while current:
        yield current
        current = current.get("cause")


def expect_error(
    response: httpx.Response,
    *,
    code: int,
    name: str,
    namespace: str | None = None,
    message: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assert a TTS error body and return its first ErrorDetails (§d).

    `{"code": <grpc>, "message": "error:<ns>:<name> (<formatted>)", "details": [ErrorDetails]}`;
    the HTTP status follows the gRPC code (§d table). `message` is the formatted text in the
    parentheses, `attributes` a subset the details' attributes must contain.
    """
    assert response.status_code == GRPC_TO_HTTP[code], (response.status_code, response.text)
    body = response.json()
    assert body["code"] == code, body
    ns_pattern = re.escape(namespace) if namespace else r"[^:() ]+"
    assert re.fullmatch(rf"error:{ns_pattern}:{re.escape(name)} \(.*\)", body["message"], re.S), (
        body["message"]
    )
    if message is not None:
        assert body["message"] == f"error:{namespace}:{name} ({message})", body["message"]
    assert isinstance(body["details"], list) and body["details"], body
    detail: dict[str, Any] = body["details"][0]
    assert detail["@type"] == ERROR_DETAILS_TYPE, detail
    if namespace is not None:
        assert detail["namespace"] == namespace, detail
    assert detail["name"] == name, detail
    assert isinstance(detail.get("message_format"), str) and detail["message_format"], detail
    assert isinstance(detail.get("correlation_id"), str) and detail["correlation_id"], detail
    if "code" in detail:  # present in newer versions (§d)
        assert detail["code"] == code, detail
    formatted = format_message(detail)
    if formatted is not None:
        assert body["message"] == f"error:{detail['namespace']}:{name} ({formatted})", (
            body["message"],
            formatted,
        )
    if attributes is not None:
        actual = detail.get("attributes", {})
        for key, value in attributes.items():
            assert actual.get(key) == value, (key, actual)
    return detail


def format_message(detail: dict[str, Any]) -> str | None:
    """`message_format` with its `{placeholders}` filled from the public attributes, or None when
    a placeholder has no simple attribute value to check against."""
    attributes = detail.get("attributes", {})
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        value = attributes.get(match.group(1))
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            missing = True
            return match.group(0)
        return str(value)

    formatted = re.sub(r"\{(\w+)\}", substitute, detail["message_format"])
    return None if missing else formatted


def expect_decode_error(response: httpx.Response) -> None:
    """A body that fails to decode: 400 `{"code": 3, "message": "<text>", "details": []}` (§b)."""
    assert response.status_code == 400, (response.status_code, response.text)
    body = response.json()
    assert body["code"] == INVALID_ARGUMENT, body
    assert isinstance(body["message"], str) and body["message"], body
    assert body["details"] == [], body


def expect_ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.text)
    result: dict[str, Any] = response.json()
    return result


def error_name(response: httpx.Response) -> str | None:
    """`<namespace>:<name>` of a TTS error response, None when it is not one."""
    if response.status_code < 400:
        return None
    try:
        detail = response.json()["details"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return f"{detail.get('namespace')}:{detail.get('name')}"


# ---------------------------------------------------------------------------------------------
# Setup helpers through the public API (§a)


class TtsApi:
    """Creates users, organizations, applications, keys, gateways and devices as the admin.

    Each helper asserts success: they set up a scenario, they are not the thing under test.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        admin_user: str,
        admin_key: str,
        client_factory: Callable[[str | None], httpx.AsyncClient],
    ) -> None:
        self.client = client
        self.admin_user = admin_user
        self.admin_key = admin_key
        self._client_factory = client_factory

    def client_for(self, token: str | None) -> httpx.AsyncClient:
        """A client with `Authorization: Bearer <token>` (none when token is None)."""
        return self._client_factory(token)

    async def create_user(self, user_id: str, **fields: Any) -> dict[str, Any]:
        user = {
            "ids": {"user_id": user_id},
            "primary_email_address": f"{user_id}@example.com",
            "password": "correct-horse-battery-staple-1",
            **fields,
        }
        return expect_ok(await self.client.post("/users", json={"user": user}))

    async def create_user_api_key(self, user_id: str, rights: list[str]) -> str:
        body = expect_ok(
            await self.client.post(
                f"/users/{user_id}/api-keys", json={"name": "test key", "rights": rights}
            )
        )
        token = body["key"]
        assert is_api_key(token), body
        return str(token)

    async def create_organization(self, org_id: str, owner: str | None = None) -> dict[str, Any]:
        return expect_ok(
            await self.client.post(
                f"/users/{owner or self.admin_user}/organizations",
                json={"organization": {"ids": {"organization_id": org_id}}},
            )
        )

    async def create_application(
        self,
        app_id: str,
        *,
        user: str | None = None,
        organization: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        owner = (
            f"/organizations/{organization}"
            if organization
            else f"/users/{user or self.admin_user}"
        )
        application = {"ids": {"application_id": app_id}, **fields}
        return expect_ok(
            await self.client.post(f"{owner}/applications", json={"application": application})
        )

    async def create_application_api_key(
        self, app_id: str, rights: list[str], name: str = "test key"
    ) -> str:
        body = expect_ok(
            await self.client.post(
                f"/applications/{app_id}/api-keys", json={"name": name, "rights": rights}
            )
        )
        token = body["key"]
        assert is_api_key(token), body
        return str(token)

    async def create_gateway(
        self,
        gateway_id: str,
        eui: str | None = None,
        *,
        user: str | None = None,
        organization: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        owner = (
            f"/organizations/{organization}"
            if organization
            else f"/users/{user or self.admin_user}"
        )
        ids: dict[str, str] = {"gateway_id": gateway_id}
        if eui:
            ids["eui"] = eui
        gateway = {
            "ids": ids,
            "frequency_plan_ids": [FREQUENCY_PLAN],
            "gateway_server_address": "emulator.test",
            **fields,
        }
        return expect_ok(await self.client.post(f"{owner}/gateways", json={"gateway": gateway}))

    async def create_end_device(
        self,
        app_id: str,
        device_id: str,
        *,
        dev_eui: str | None = None,
        join_eui: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        ids: dict[str, Any] = {"device_id": device_id}
        if dev_eui:
            ids["dev_eui"] = dev_eui
        if join_eui:
            ids["join_eui"] = join_eui
        return expect_ok(
            await self.client.post(
                f"/applications/{app_id}/devices",
                json={"end_device": {"ids": ids, **fields}},
            )
        )

    async def set_device(
        self,
        registry: str,
        app_id: str,
        device_id: str,
        end_device: dict[str, Any],
        paths: list[str],
    ) -> dict[str, Any]:
        """NS/AS/JS Set through the PUT (upsert) binding (§a)."""
        return expect_ok(
            await self.client.put(
                f"/{registry}/applications/{app_id}/devices/{device_id}",
                json={"end_device": end_device, "field_mask": {"paths": paths}},
            )
        )

    async def register_otaa_device(
        self,
        app_id: str,
        device_id: str,
        *,
        dev_eui: str | None = None,
        join_eui: str | None = None,
        app_key: str | None = None,
    ) -> dict[str, str]:
        """IS Create, then JS, NS and AS Set, like the CLI (§c). Returns the identifiers used."""
        dev_eui = dev_eui or new_eui()
        join_eui = join_eui or new_eui()
        app_key = app_key or new_key()
        await self.create_end_device(app_id, device_id, dev_eui=dev_eui, join_eui=join_eui)
        ids = {"device_id": device_id, "dev_eui": dev_eui, "join_eui": join_eui}
        await self.set_device(
            "js",
            app_id,
            device_id,
            {"ids": ids, "root_keys": {"app_key": {"key": app_key}}},
            ["root_keys.app_key.key"],
        )
        await self.set_device(
            "ns",
            app_id,
            device_id,
            {
                "ids": ids,
                "supports_join": True,
                "lorawan_version": "MAC_V1_0_2",
                "lorawan_phy_version": "PHY_V1_0_2_REV_B",
                "frequency_plan_id": FREQUENCY_PLAN,
            },
            ["supports_join", "lorawan_version", "lorawan_phy_version", "frequency_plan_id"],
        )
        await self.set_device("as", app_id, device_id, {"ids": ids}, ["ids.device_id"])
        return {**ids, "app_key": app_key}

    async def register_abp_device(
        self,
        app_id: str,
        device_id: str,
        *,
        dev_eui: str | None = None,
        dev_addr: str | None = None,
    ) -> dict[str, str]:
        """An ABP LoRaWAN 1.0.2 device in IS, NS and AS (§d ABP session rules)."""
        dev_eui = dev_eui or new_eui()
        dev_addr = dev_addr or new_dev_addr()
        nwk_key, app_s_key = new_key(), new_key()
        await self.create_end_device(app_id, device_id, dev_eui=dev_eui)
        ids = {"device_id": device_id, "dev_eui": dev_eui}
        await self.set_device(
            "ns",
            app_id,
            device_id,
            {
                "ids": ids,
                "supports_join": False,
                "lorawan_version": "MAC_V1_0_2",
                "lorawan_phy_version": "PHY_V1_0_2_REV_B",
                "frequency_plan_id": FREQUENCY_PLAN,
                "session": {"dev_addr": dev_addr, "keys": {"f_nwk_s_int_key": {"key": nwk_key}}},
            },
            [
                "supports_join",
                "lorawan_version",
                "lorawan_phy_version",
                "frequency_plan_id",
                "session.dev_addr",
                "session.keys.f_nwk_s_int_key.key",
            ],
        )
        await self.set_device(
            "as",
            app_id,
            device_id,
            {
                "ids": ids,
                "session": {"dev_addr": dev_addr, "keys": {"app_s_key": {"key": app_s_key}}},
            },
            ["session.dev_addr", "session.keys.app_s_key.key"],
        )
        return {
            **ids,
            "dev_addr": dev_addr,
            "f_nwk_s_int_key": nwk_key,
            "app_s_key": app_s_key,
        }
