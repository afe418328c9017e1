"""Application Server pub/subs (MQTT, NATS, AWS IoT): the `ApplicationPubSubRegistry` routes.

As the real registry: Get and List need RIGHT_APPLICATION_TRAFFIC_READ, Set and Delete also
SETTINGS_BASIC and TRAFFIC_DOWN_WRITE; `format`, `provider` and `base_topic` are returned on
every read whatever the mask; Set upserts and Delete is idempotent (both publish an event,
`as.pubsub.set` / `as.pubsub.delete`). The provider is a oneof: its JSON member sits in the
pub/sub (`"mqtt": {...}`) while masks name it `provider.mqtt...`, and setting one provider
replaces another. Credentials (MQTT password, TLS client key, NATS URL) are stored and returned
as sent, as the real server does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts.codec import now_timestamp
from reconciler.emulator.tts.common import (
    decode_request,
    mask_from_query,
    not_found,
    output,
    require_app,
    validate_masked,
)
from reconciler.emulator.tts.fieldmask import (
    check_allowed,
    check_non_zero,
    delete_path,
    get_path,
    merge,
)
from reconciler.providers.tts import reference

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call, Operation

MESSAGE = "ApplicationPubSub"
FULL_MESSAGE = "ttn.lorawan.v3.ApplicationPubSub"
TRAFFIC_READ = "RIGHT_APPLICATION_TRAFFIC_READ"
WRITE_RIGHTS = (
    "RIGHT_APPLICATION_SETTINGS_BASIC",
    TRAFFIC_READ,
    "RIGHT_APPLICATION_TRAFFIC_DOWN_WRITE",
)
# Returned on every read, as the registry appends them to the caller's mask.
IMPLICIT_READ_PATHS = ("format", "provider", "base_topic")
FORMATS = {"json": "JSON", "protobuf": "Protocol Buffers"}
_SERVER_OWNED = ("ids", "created_at", "updated_at")


def wire_paths(paths: list[str]) -> list[str]:
    """Field-mask paths -> the JSON paths they cover (a bare oneof name covers every member)."""
    out: list[str] = []
    for path in paths:
        wire = reference.wire_path(FULL_MESSAGE, path)
        if wire == "" or wire.endswith("."):
            prefix = wire
            members = [
                f["name"]
                for f in reference.messages()[_message_at(prefix)]["fields"]
                if f["oneof"] == path.rsplit(".", 1)[-1]
            ]
            out.extend(prefix + m for m in members)
        else:
            out.append(wire)
    return out


def _message_at(prefix: str) -> str:
    current = FULL_MESSAGE
    for part in [p for p in prefix.split(".") if p]:
        for spec in reference.messages()[current]["fields"]:
            if spec["name"] == part:
                current = spec["type"]
                break
    return current


def _read_paths(paths: list[str]) -> list[str] | None:
    if not paths:
        return None
    return wire_paths([*IMPLICIT_READ_PATHS, *paths])


def _ids(app_id: str, pub_sub_id: str) -> dict[str, Any]:
    return {"application_ids": {"application_id": app_id}, "pub_sub_id": pub_sub_id}


def get_pubsub(call: Call) -> dict[str, Any]:
    app_id, pub_sub_id = call.params["app"], call.params["pubsub"]
    paths = mask_from_query(call)
    check_allowed("ApplicationPubSubRegistry/Get", paths)
    require_app(call, app_id, TRAFFIC_READ)
    found = call.store.pubsubs.get(f"{app_id}/{pub_sub_id}")
    if found is None:
        raise not_found("pkg/redis", "not_found", "entity not found")
    return output(MESSAGE, found, _read_paths(paths))


def list_pubsubs(call: Call) -> dict[str, Any]:
    app_id = call.params["app"]
    paths = mask_from_query(call)
    check_allowed("ApplicationPubSubRegistry/List", paths)
    require_app(call, app_id, TRAFFIC_READ)
    prefix = app_id + "/"
    found = sorted(
        (p for k, p in call.store.pubsubs.items() if k.startswith(prefix)),
        key=lambda p: p["ids"]["pub_sub_id"],
    )
    read = _read_paths(paths)
    return {"pubsubs": [output(MESSAGE, p, read) for p in found]} if found else {}


def set_pubsub(call: Call) -> dict[str, Any]:
    app_id = call.params["app"]
    request = decode_request("SetApplicationPubSubRequest", call.body)
    pubsub = request.setdefault("pubsub", {})
    ids = pubsub.setdefault("ids", {})
    ids["application_ids"] = {"application_id": app_id}
    if "pubsub" in call.params:
        ids["pub_sub_id"] = call.params["pubsub"]
    paths = list(request.get("field_mask", {}).get("paths", []))
    check_allowed("ApplicationPubSubRegistry/Set", paths)
    check_non_zero("ApplicationPubSubRegistry/Set", paths, pubsub)
    validate_masked(
        "SetApplicationPubSubRequest", request, "pubsub", wire_paths(paths) or paths, ["ids"]
    )
    require_app(call, app_id, *WRITE_RIGHTS)
    call.before_write()
    key = f"{app_id}/{ids['pub_sub_id']}"
    existing = call.store.pubsubs.get(key)
    stored: dict[str, Any] = (
        dict(existing) if existing else {"ids": _ids(app_id, ids["pub_sub_id"])}
    )
    effective = [p for p in wire_paths(paths) if p.split(".")[0] not in _SERVER_OWNED]
    for path in effective:
        # Setting a member of a oneof replaces the member set before (another provider).
        if get_path(pubsub, path) is not None:
            for sibling in reference.oneof_siblings(FULL_MESSAGE, path):
                delete_path(stored, sibling)
    merge(stored, pubsub, effective)
    now = now_timestamp()
    stored.setdefault("created_at", now)
    stored["updated_at"] = now
    call.store.pubsubs.put(key, stored)
    call.emu.events.publish("as.pubsub.set", [{"application_ids": {"application_id": app_id}}])
    return output(MESSAGE, stored, _read_paths(paths))


def delete_pubsub(call: Call) -> dict[str, Any]:
    app_id, pub_sub_id = call.params["app"], call.params["pubsub"]
    require_app(call, app_id, *WRITE_RIGHTS)
    call.before_write()
    call.store.pubsubs.delete(f"{app_id}/{pub_sub_id}")
    call.emu.events.publish("as.pubsub.delete", [{"application_ids": {"application_id": app_id}}])
    return {}


def pubsub_formats(call: Call) -> dict[str, Any]:
    call.caller()
    return {"formats": dict(FORMATS)}


def operations() -> list[Operation]:
    from reconciler.emulator.tts.app import Operation

    rpc = "ApplicationPubSubRegistry"
    return [
        Operation("GET", "/as/pubsub-formats", f"{rpc}/GetFormats", pubsub_formats),
        Operation("GET", "/as/pubsub/{app}", f"{rpc}/List", list_pubsubs),
        Operation("POST", "/as/pubsub/{app}", f"{rpc}/Set", set_pubsub, write=True, body=True),
        Operation("GET", "/as/pubsub/{app}/{pubsub}", f"{rpc}/Get", get_pubsub),
        Operation(
            "PUT", "/as/pubsub/{app}/{pubsub}", f"{rpc}/Set", set_pubsub, write=True, body=True
        ),
        Operation(
            "DELETE", "/as/pubsub/{app}/{pubsub}", f"{rpc}/Delete", delete_pubsub, write=True
        ),
    ]
