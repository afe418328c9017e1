"""Which of the four registries gets which end-device field, from generated tables.

A path goes to every registry whose Set allow-list contains it exactly and that the ownership
table names for it, like the official CLI's split; reads come from the registries that serve it
on Get. `ids` are implicit: never in an IS Update mask, always in NS/AS/JS Set bodies (the Join
Server requires both EUIs on every Set). Server-owned fields are never managed.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from reconciler.providers.tts import reference
from reconciler.providers.tts.servers import Server

# Create order, as the official CLI creates (IS first, then JS for OTAA, NS, AS); deletes run
# in reverse.
CREATE_ORDER: tuple[Server, ...] = ("is", "js", "ns", "as")
DELETE_ORDER: tuple[Server, ...] = ("as", "ns", "js", "is")

SET_RPC: dict[Server, str] = {
    "is": "EndDeviceRegistry/Update",
    "ns": "NsEndDeviceRegistry/Set",
    "as": "AsEndDeviceRegistry/Set",
    "js": "JsEndDeviceRegistry/Set",
}
GET_RPC: dict[Server, str] = {
    "is": "EndDeviceRegistry/Get",
    "ns": "NsEndDeviceRegistry/Get",
    "as": "AsEndDeviceRegistry/Get",
    "js": "JsEndDeviceRegistry/Get",
}

IMPLICIT_PREFIXES = ("ids", "created_at", "updated_at")
# Changing these needs delete + create (the IS forbids EUI updates; the NS makes
# supports_join and multicast immutable).
IMMUTABLE_PATHS = frozenset({"ids.dev_eui", "ids.join_eui", "supports_join", "multicast"})
# Paths that need RIGHT_APPLICATION_DEVICES_READ_KEYS to read. Not the claim authentication
# code: the Identity Server returns it to anyone with RIGHT_APPLICATION_DEVICES_READ (a secret
# all the same: compared by fingerprint, never shown).
KEY_PATH_PREFIXES = (
    "root_keys.app_key",
    "root_keys.nwk_key",
    "session.keys.f_nwk_s_int_key",
    "session.keys.s_nwk_s_int_key",
    "session.keys.nwk_s_enc_key",
    "session.keys.app_s_key",
    "pending_session.keys",
)


def is_implicit(path: str) -> bool:
    return path.split(".", 1)[0] in IMPLICIT_PREFIXES


def is_key_path(path: str) -> bool:
    return path.startswith(KEY_PATH_PREFIXES)


def _servers(path: str, side: int, rpcs: dict[Server, str]) -> tuple[Server, ...]:
    """Registries the ownership table names for `path` on one side (0 get, 1 set) whose RPC
    allow-list contains it exactly, in create order."""
    ownership = reference.device_field_ownership().get(path)
    if ownership is None:
        return ()
    masks = reference.rpc_field_masks()
    return tuple(
        server
        for server in CREATE_ORDER
        if server in ownership[side] and path in masks[rpcs[server]].allowed
    )


@cache
def set_servers(path: str) -> tuple[Server, ...]:
    """Registries that accept `path` in their Set/Update mask, in create order."""
    return _servers(path, 1, SET_RPC)


@cache
def get_servers(path: str) -> tuple[Server, ...]:
    """Registries that return `path` on Get, in create order."""
    return _servers(path, 0, GET_RPC)


def compared_servers(path: str) -> tuple[Server, ...]:
    """Registries where a managed path is both written and readable, so drift is detectable."""
    readable = get_servers(path)
    return tuple(s for s in set_servers(path) if s in readable)


def split_paths(paths: Iterable[str], *, otaa: bool) -> dict[Server, list[str]]:
    """Managed paths per registry; the Join Server only takes part for OTAA devices."""
    result: dict[Server, list[str]] = {server: [] for server in CREATE_ORDER}
    for path in paths:
        if is_implicit(path):
            continue
        for server in set_servers(path):
            if server == "js" and not otaa:
                continue
            result[server].append(path)
    return {server: sorted(p) for server, p in result.items()}


def registries(*, otaa: bool) -> tuple[Server, ...]:
    """Registries a device lives in: all four for OTAA, no Join Server for ABP."""
    return CREATE_ORDER if otaa else ("is", "ns", "as")
