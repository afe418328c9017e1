"""Field-mask allow-lists per RPC and the non-zero rule (FACTS §c, §d "Semantic rules", §e),
checked against the real server's table ../shared/reference/tts/rpc-field-mask-paths.server.json.

Each allowed path is sent alone; it must not be refused as `field_mask_paths` (other errors, e.g.
a zero value the NS refuses, are fine: they come after the allow-list check). Paths of the
schema outside the list, sent with the same body, must be refused with that error and named in
`forbidden_paths`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import pytest

from tests.emulator.support import (
    INVALID_ARGUMENT,
    TtsApi,
    error_name,
    expect_error,
    expect_ok,
    new_eui,
    new_key,
)
from tests.shared_data import TTS_REFERENCE_DIR, shared_path

FIELD_MASK_PATHS = "pkg/rpcmiddleware/validator:field_mask_paths"
FORBIDDEN_SAMPLE = 40


@cache
def server_table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (shared_path(TTS_REFERENCE_DIR) / "rpc-field-mask-paths.server.json").read_text("utf-8")
    )
    return data


def allowed(rpc: str) -> list[str]:
    return sorted(server_table()["rpcs"][f"/ttn.lorawan.v3.{rpc}"]["allowed"])


def forbidden_sample(rpc: str, must_include: tuple[str, ...] = ()) -> list[str]:
    spec = server_table()["rpcs"][f"/ttn.lorawan.v3.{rpc}"]
    schema = server_table()["all_paths"][spec["all_paths_of"]]
    outside = sorted(set(schema) - set(spec["allowed"]))
    sample = random.Random(rpc).sample(outside, min(FORBIDDEN_SAMPLE, len(outside)))
    return sorted({*sample, *must_include})


Send = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Rpc:
    name: str
    send: Send  # sends one request whose field mask is exactly [path]


def _get(url: str) -> Send:
    async def send(client: httpx.AsyncClient, path: str) -> httpx.Response:
        return await client.get(url, params={"field_mask": path})

    return send


def _put(url: str, wrapper: str, entity: dict[str, Any]) -> Send:
    async def send(client: httpx.AsyncClient, path: str) -> httpx.Response:
        return await client.put(url, json={wrapper: entity, "field_mask": {"paths": [path]}})

    return send


@pytest.fixture
async def world(tts: TtsApi) -> dict[str, Any]:
    """An application with an OTAA device in all registries, a gateway, a webhook, a link and an
    API key, so every RPC below has an existing target."""
    await tts.create_application("app1")
    ids = await tts.register_otaa_device("app1", "dev1")
    await tts.create_gateway("gtw1", new_eui())
    expect_ok(
        await tts.client.put(
            "/as/webhooks/app1/hook1",
            json={
                "webhook": {"base_url": "https://example.com/hook", "format": "json"},
                "field_mask": {"paths": ["base_url", "format"]},
            },
        )
    )
    expect_ok(
        await tts.client.put(
            "/as/applications/app1/link",
            json={
                "link": {"skip_payload_crypto": True},
                "field_mask": {"paths": ["skip_payload_crypto"]},
            },
        )
    )
    key = expect_ok(
        await tts.client.post(
            "/applications/app1/api-keys", json={"name": "k", "rights": ["RIGHT_APPLICATION_INFO"]}
        )
    )
    return {"ids": ids, "key_id": key["id"]}


def rpcs(world: dict[str, Any]) -> dict[str, Rpc]:
    ids = world["ids"]
    device = {"ids": {"device_id": "dev1", "dev_eui": ids["dev_eui"], "join_eui": ids["join_eui"]}}
    table = [
        Rpc("EndDeviceRegistry/Get", _get("/applications/app1/devices/dev1")),
        Rpc("EndDeviceRegistry/List", _get("/applications/app1/devices")),
        Rpc("EndDeviceRegistry/Update", _put("/applications/app1/devices/dev1", "end_device", {})),
        Rpc("NsEndDeviceRegistry/Get", _get("/ns/applications/app1/devices/dev1")),
        Rpc(
            "NsEndDeviceRegistry/Set",
            _put("/ns/applications/app1/devices/dev1", "end_device", device),
        ),
        Rpc("AsEndDeviceRegistry/Get", _get("/as/applications/app1/devices/dev1")),
        Rpc(
            "AsEndDeviceRegistry/Set",
            _put("/as/applications/app1/devices/dev1", "end_device", device),
        ),
        Rpc("JsEndDeviceRegistry/Get", _get("/js/applications/app1/devices/dev1")),
        Rpc(
            "JsEndDeviceRegistry/Set",
            _put("/js/applications/app1/devices/dev1", "end_device", device),
        ),
        Rpc("ApplicationRegistry/Get", _get("/applications/app1")),
        Rpc("ApplicationRegistry/List", _get("/applications")),
        Rpc("ApplicationRegistry/Update", _put("/applications/app1", "application", {})),
        Rpc("GatewayRegistry/Get", _get("/gateways/gtw1")),
        Rpc("GatewayRegistry/Update", _put("/gateways/gtw1", "gateway", {})),
        Rpc("ApplicationWebhookRegistry/Get", _get("/as/webhooks/app1/hook1")),
        Rpc("ApplicationWebhookRegistry/List", _get("/as/webhooks/app1")),
        Rpc("ApplicationWebhookRegistry/Set", _put("/as/webhooks/app1/hook1", "webhook", {})),
        Rpc("As/GetLink", _get("/as/applications/app1/link")),
        Rpc("As/SetLink", _put("/as/applications/app1/link", "link", {})),
        Rpc(
            "ApplicationAccess/UpdateAPIKey",
            _put(f"/applications/app1/api-keys/{world['key_id']}", "api_key", {}),
        ),
    ]
    return {rpc.name: rpc for rpc in table}


RPC_NAMES = [
    "EndDeviceRegistry/Get",
    "EndDeviceRegistry/List",
    "EndDeviceRegistry/Update",
    "NsEndDeviceRegistry/Get",
    "NsEndDeviceRegistry/Set",
    "AsEndDeviceRegistry/Get",
    "AsEndDeviceRegistry/Set",
    "JsEndDeviceRegistry/Get",
    "JsEndDeviceRegistry/Set",
    "ApplicationRegistry/Get",
    "ApplicationRegistry/List",
    "ApplicationRegistry/Update",
    "GatewayRegistry/Get",
    "GatewayRegistry/Update",
    "ApplicationWebhookRegistry/Get",
    "ApplicationWebhookRegistry/List",
    "ApplicationWebhookRegistry/Set",
    "As/GetLink",
    "As/SetLink",
    "ApplicationAccess/UpdateAPIKey",
]


@pytest.mark.parametrize("rpc_name", RPC_NAMES)
async def test_every_allowed_path_is_accepted(
    client: httpx.AsyncClient, world: dict[str, Any], rpc_name: str
) -> None:
    """§e every path in the server's allow-list for the RPC passes the field-mask validator
    (as do, for the Get/List RPCs, the paths returned: no 500s)."""
    rpc = rpcs(world)[rpc_name]
    refused: list[tuple[str, int, str | None]] = []
    for path in allowed(rpc_name):
        response = await rpc.send(client, path)
        if response.status_code >= 500 or error_name(response) == FIELD_MASK_PATHS:
            refused.append((path, response.status_code, error_name(response)))
        elif rpc_name.endswith(("/Get", "/List", "/GetLink")):
            assert response.status_code == 200, (path, response.text)
    assert refused == [], f"{len(refused)} allowed paths refused: {refused[:10]}"


FORBIDDEN_RPCS = {
    "EndDeviceRegistry/Get": ("session", "root_keys", "mac_settings"),
    "EndDeviceRegistry/Update": (
        "ids.dev_eui",
        "ids.join_eui",
        "ids.device_id",
        "created_at",
        "ids",
    ),
    "NsEndDeviceRegistry/Get": ("root_keys", "name", "formatters"),
    "NsEndDeviceRegistry/Set": (
        "ids.dev_addr",
        "created_at",
        "updated_at",
        "power_state",
        "session.keys.app_s_key.key",
        "formatters",
    ),
    "AsEndDeviceRegistry/Get": ("mac_settings", "root_keys"),
    "AsEndDeviceRegistry/Set": ("session", "session.keys", "ids.dev_addr", "pending_session"),
    "JsEndDeviceRegistry/Get": ("root_keys.app_key.encrypted_key", "root_keys.app_key.kek_label"),
    "JsEndDeviceRegistry/Set": (
        "ids.dev_addr",
        "root_keys.app_key.encrypted_key",
        "root_keys.nwk_key.kek_label",
    ),
    "ApplicationRegistry/Update": ("dev_eui_counter",),
}


@pytest.mark.parametrize("rpc_name", sorted(FORBIDDEN_RPCS))
async def test_paths_outside_allow_list_are_forbidden(
    client: httpx.AsyncClient, world: dict[str, Any], rpc_name: str
) -> None:
    """§d/§e a schema path outside the RPC's list fails with
    `pkg/rpcmiddleware/validator:field_mask_paths` (400), attribute `forbidden_paths`."""
    rpc = rpcs(world)[rpc_name]
    for path in forbidden_sample(rpc_name, FORBIDDEN_RPCS[rpc_name]):
        expect_error(
            await rpc.send(client, path),
            code=INVALID_ARGUMENT,
            namespace="pkg/rpcmiddleware/validator",
            name="field_mask_paths",
            message="forbidden path(s) in field mask",
            attributes={"forbidden_paths": [path]},
        )


async def test_forbidden_paths_lists_every_offender(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    """§e paths are matched exactly; allowed ones in the same mask are not reported."""
    response = await client.put(
        "/applications/app1/devices/dev1",
        json={
            "end_device": {"name": "x"},
            "field_mask": {"paths": ["name", "ids.dev_eui", "ids.join_eui"]},
        },
    )
    detail = expect_error(
        response,
        code=INVALID_ARGUMENT,
        namespace="pkg/rpcmiddleware/validator",
        name="field_mask_paths",
    )
    assert sorted(detail["attributes"]["forbidden_paths"]) == ["ids.dev_eui", "ids.join_eui"]
    got = expect_ok(
        await client.get("/applications/app1/devices/dev1", params={"field_mask": "name"})
    )
    assert "name" not in got  # nothing was written


async def test_forbidden_path_in_get_query(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    """§e the allow-list applies to read masks given as query parameters too."""
    response = await client.get(
        "/as/applications/app1/devices/dev1", params={"field_mask": "formatters,root_keys"}
    )
    expect_error(
        response,
        code=INVALID_ARGUMENT,
        namespace="pkg/rpcmiddleware/validator",
        name="field_mask_paths",
        attributes={"forbidden_paths": ["root_keys"]},
    )


async def test_unknown_path_is_forbidden(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    """§e a path that is not in the schema at all is not in the allow-list either."""
    response = await client.get(
        "/applications/app1/devices/dev1", params={"field_mask": "name,no_such_field"}
    )
    expect_error(
        response,
        code=INVALID_ARGUMENT,
        namespace="pkg/rpcmiddleware/validator",
        name="field_mask_paths",
        attributes={"forbidden_paths": ["no_such_field"]},
    )


GET_RPCS = [name for name in RPC_NAMES if name.endswith(("/Get", "/List", "/GetLink"))]


@pytest.mark.parametrize("rpc_name", GET_RPCS)
async def test_empty_field_mask_in_query_is_the_forbidden_path_empty(
    client: httpx.AsyncClient, world: dict[str, Any], rpc_name: str
) -> None:
    """The gateway splits `field_mask=` on commas as it is, so an empty value is the path ""
    (and `name,` is `name` and ""); no allow-list holds "", so the read is refused."""
    rpc = rpcs(world)[rpc_name]
    expect_error(
        await rpc.send(client, ""),
        code=INVALID_ARGUMENT,
        namespace="pkg/rpcmiddleware/validator",
        name="field_mask_paths",
        attributes={"forbidden_paths": [""]},
    )


async def test_trailing_comma_in_query_mask_is_refused_too(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    response = await client.get("/applications/app1/devices/dev1", params={"field_mask": "name,"})
    expect_error(
        response,
        code=INVALID_ARGUMENT,
        namespace="pkg/rpcmiddleware/validator",
        name="field_mask_paths",
        attributes={"forbidden_paths": [""]},
    )


async def test_no_field_mask_parameter_is_not_an_empty_path(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    """Leaving the parameter out is the empty mask: ids and timestamps only."""
    got = expect_ok(await client.get("/as/applications/app1/devices/dev1"))
    assert set(got) <= {"ids", "created_at", "updated_at"}, got


async def test_ns_set_non_zero_path(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    """§d "non_zero_path": NS Set with `session` in the mask while the body carries
    `session.keys.app_s_key` (an AS-only path) fails with
    `pkg/rpcmiddleware/validator:non_zero_path` ("path `X` is not zero")."""
    ids = world["ids"]
    response = await client.put(
        "/ns/applications/app1/devices/dev1",
        json={
            "end_device": {
                "ids": {
                    "device_id": "dev1",
                    "dev_eui": ids["dev_eui"],
                    "join_eui": ids["join_eui"],
                },
                "session": {
                    "dev_addr": "260B0001",
                    "keys": {
                        "session_key_id": "AQI=",
                        "f_nwk_s_int_key": {"key": new_key()},
                        "app_s_key": {"key": new_key()},
                    },
                },
            },
            "field_mask": {"paths": ["session"]},
        },
    )
    expect_error(
        response,
        code=INVALID_ARGUMENT,
        namespace="pkg/rpcmiddleware/validator",
        name="non_zero_path",
    )
    message = response.json()["message"]
    assert re.search(r"\(path `session\.keys\.app_s_key(\.key)?` is not zero\)$", message), message


async def test_non_zero_rule_only_for_disallowed_subpaths(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    """§d the non-zero rule covers only sub-paths outside the allow-list: `mac_settings` with
    settings inside is fine."""
    ids = world["ids"]
    response = await client.put(
        "/ns/applications/app1/devices/dev1",
        json={
            "end_device": {
                "ids": {
                    "device_id": "dev1",
                    "dev_eui": ids["dev_eui"],
                    "join_eui": ids["join_eui"],
                },
                "mac_settings": {"rx1_delay": 2, "supports_32_bit_f_cnt": True},
            },
            "field_mask": {"paths": ["mac_settings"]},
        },
    )
    assert expect_ok(response)["mac_settings"]["rx1_delay"] == 2
