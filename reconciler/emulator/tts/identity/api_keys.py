"""API keys of users, applications, gateways and organizations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.auth import Caller, expand, hash_secret
from reconciler.emulator.tts.codec import encode_message, message, now_timestamp, timestamp_key
from reconciler.emulator.tts.common import (
    decode_request,
    list_params,
    not_found,
    paginate,
    require_app,
    require_gateway,
    require_organization,
    require_user,
    sort_entities,
    validate_masked,
)
from reconciler.emulator.tts.config import generate_api_key
from reconciler.emulator.tts.fieldmask import check_allowed, merge
from reconciler.emulator.tts.identity.shared import IS_STORE
from reconciler.emulator.tts.validate import validate_request

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call, Operation


# --- API keys --------------------------------------------------------------------------------


class KeyOwner:
    def __init__(self, kind: str, service: str, param: str) -> None:
        self.kind = kind
        self.service = service
        self.param = param
        self.title = kind.capitalize()

    def require(self, call: Call, entity_id: str, *needed: str) -> Caller:
        if self.kind == "application":
            return require_app(call, entity_id, *needed)
        if self.kind == "gateway":
            return require_gateway(call, entity_id, *needed)
        if self.kind == "organization":
            return require_organization(call, entity_id, *needed)
        return require_user(call, entity_id, *needed)

    def settings_right(self) -> str:
        return f"RIGHT_{self.kind.upper()}_SETTINGS_API_KEYS"

    def insufficient(self, entity_id: str, lacking: list[str]) -> errors.TTSError:
        factory = {
            "application": errors.insufficient_application_rights,
            "gateway": errors.insufficient_gateway_rights,
            "organization": errors.insufficient_organization_rights,
            "user": errors.insufficient_user_rights,
        }[self.kind]
        result: errors.TTSError = factory(uid=entity_id, missing=lacking)
        return result

    def held(self, call: Call, caller: Caller, entity_id: str) -> frozenset[str]:
        auth = call.emu.auth
        if self.kind == "application":
            return (
                auth.collaborator_rights(
                    caller, "application", call.store.applications.get(entity_id)
                )
                | caller.universal
            )
        if self.kind == "gateway":
            return (
                auth.collaborator_rights(caller, "gateway", call.store.gateways.get(entity_id))
                | caller.universal
            )
        if self.kind == "organization":
            return auth.organization_rights(caller, entity_id)
        return auth.user_rights(caller, entity_id)

    def exists(self, call: Call, entity_id: str) -> None:
        table = {
            "application": call.store.applications,
            "gateway": call.store.gateways,
            "organization": call.store.organizations,
            "user": call.store.users,
        }[self.kind]
        record = table.get(entity_id)
        if record is None or record[self.kind].get("deleted_at"):
            raise not_found(
                IS_STORE, f"{self.kind}_not_found", f"{self.kind} `{{id}}` not found", id=entity_id
            )


def _api_key_not_found(key_id: str) -> errors.TTSError:
    return not_found(IS_STORE, "api_key_not_found", "API key not found", api_key_id=key_id)


def _owned_key(call: Call, owner: KeyOwner, entity_id: str, key_id: str) -> dict[str, Any]:
    record = call.store.api_keys.get(key_id)
    if record is None or record["entity"] != owner.kind or record["entity_id"] != entity_id:
        raise _api_key_not_found(key_id)
    return dict(record)


def _publish(call: Call, owner: KeyOwner, entity_id: str, verb: str) -> None:
    """`<entity>.api-key.<verb>` on the key's entity, as the IS publishes it."""
    call.emu.events.publish(
        f"{owner.kind}.api-key.{verb}", [{f"{owner.kind}_ids": {f"{owner.kind}_id": entity_id}}]
    )


def make_key_create(owner: KeyOwner) -> Any:
    def create(call: Call) -> dict[str, Any]:
        entity_id = call.params[owner.param]
        request = decode_request(f"Create{owner.title}APIKeyRequest", call.body)
        request[f"{owner.kind}_ids"] = {f"{owner.kind}_id": entity_id}
        validate_request(f"Create{owner.title}APIKeyRequest", request)
        caller = owner.require(call, entity_id, owner.settings_right())
        rights = list(request.get("rights", []))
        held = owner.held(call, caller, entity_id)
        lacking = sorted(expand(rights) - held)
        if lacking:
            raise owner.insufficient(entity_id, lacking)
        owner.exists(call, entity_id)
        call.before_write()
        token, key_id, secret = generate_api_key()
        now = now_timestamp()
        api_key = {
            "id": key_id,
            "name": request.get("name", ""),
            "rights": rights,
            "created_at": now,
            "updated_at": now,
        }
        if request.get("expires_at"):
            api_key["expires_at"] = request["expires_at"]
        api_key = {k: v for k, v in api_key.items() if v not in ("", None)}
        call.store.api_keys.put(
            key_id,
            {
                "entity": owner.kind,
                "entity_id": entity_id,
                "hash": hash_secret(secret),
                "api_key": api_key,
            },
        )
        _publish(call, owner, entity_id, "create")
        return encode_message(message("APIKey"), {**api_key, "key": token})

    return create


def make_key_list(owner: KeyOwner) -> Any:
    def list_(call: Call) -> Any:
        from reconciler.emulator.tts.app import JSONResponse

        entity_id = call.params[owner.param]
        order, limit, page = list_params(call, f"List{owner.title}APIKeysRequest")
        owner.require(call, entity_id, owner.settings_right())
        keys = [
            r["api_key"]
            for r in call.store.api_keys.values()
            if r["entity"] == owner.kind and r["entity_id"] == entity_id
        ]
        sorters: dict[str, Any] = {
            "api_key_id": lambda k: k["id"],
            "name": lambda k: (k.get("name", ""), k["id"]),
            "created_at": lambda k: timestamp_key(k["created_at"]),
            "expires_at": lambda k: (k.get("expires_at", ""), k["id"]),
        }
        keys = sort_entities(keys, order, "api_key_id", sorters)
        page_keys = paginate(keys, limit, page)
        body = (
            {"api_keys": [encode_message(message("APIKey"), k) for k in page_keys]}
            if page_keys
            else {}
        )
        return JSONResponse(body, 200, {"X-Total-Count": str(len(keys))})

    return list_


def make_key_get(owner: KeyOwner) -> Any:
    def get(call: Call) -> dict[str, Any]:
        entity_id = call.params[owner.param]
        owner.require(call, entity_id, owner.settings_right())
        record = _owned_key(call, owner, entity_id, call.params["key_id"])
        return encode_message(message("APIKey"), record["api_key"])

    return get


def make_key_update(owner: KeyOwner) -> Any:
    def update(call: Call) -> dict[str, Any]:
        entity_id = call.params[owner.param]
        key_id = call.params["key_id"]
        request = decode_request(f"Update{owner.title}APIKeyRequest", call.body)
        request[f"{owner.kind}_ids"] = {f"{owner.kind}_id": entity_id}
        api_key = request.setdefault("api_key", {})
        api_key["id"] = key_id
        paths = list(request.get("field_mask", {}).get("paths", []))
        check_allowed(f"{owner.title}Access/UpdateAPIKey", paths)
        validate_masked(f"Update{owner.title}APIKeyRequest", request, "api_key", paths, [])
        caller = owner.require(call, entity_id, owner.settings_right())
        record = _owned_key(call, owner, entity_id, key_id)
        stored = dict(record["api_key"])
        effective = (
            [p for p in paths if p in ("name", "rights", "expires_at")]
            if paths
            else ["name", "rights", "expires_at"]
        )
        if "rights" in effective:
            held = owner.held(call, caller, entity_id)
            changed = expand(api_key.get("rights", [])) ^ expand(stored.get("rights", []))
            lacking = sorted(changed - held)
            if lacking:
                raise owner.insufficient(entity_id, lacking)
        call.before_write()
        merge(stored, api_key, effective)
        stored["updated_at"] = now_timestamp()
        call.store.api_keys.put(key_id, {**record, "api_key": stored})
        verb = "update"
        if not stored.get("rights"):
            call.store.api_keys.delete(key_id)  # a key without rights is deleted, as in TTS
            call.emu.auth.forget(key_id)
            verb = "delete"
        _publish(call, owner, entity_id, verb)
        return encode_message(message("APIKey"), stored)

    return update


def make_key_delete(owner: KeyOwner) -> Any:
    def delete(call: Call) -> dict[str, Any]:
        entity_id = call.params[owner.param]
        key_id = call.params["key_id"]
        owner.require(call, entity_id, owner.settings_right())
        _owned_key(call, owner, entity_id, key_id)
        call.before_write()
        call.store.api_keys.delete(key_id)
        call.emu.auth.forget(key_id)
        _publish(call, owner, entity_id, "delete")
        return {}

    return delete


def operations() -> list[Operation]:
    from reconciler.emulator.tts.app import Operation

    ops: list[Operation] = []
    for owner, base in (
        (KeyOwner("user", "UserAccess", "usr"), "/users/{usr}"),
        (KeyOwner("application", "ApplicationAccess", "id"), "/applications/{id}"),
        (KeyOwner("gateway", "GatewayAccess", "id"), "/gateways/{id}"),
        (KeyOwner("organization", "OrganizationAccess", "org"), "/organizations/{org}"),
    ):
        svc = owner.service
        ops += [
            Operation(
                "POST",
                f"{base}/api-keys",
                f"{svc}/CreateAPIKey",
                make_key_create(owner),
                write=True,
                body=True,
            ),
            Operation("GET", f"{base}/api-keys", f"{svc}/ListAPIKeys", make_key_list(owner)),
            Operation(
                "GET", f"{base}/api-keys/{{key_id}}", f"{svc}/GetAPIKey", make_key_get(owner)
            ),
            Operation(
                "PUT",
                f"{base}/api-keys/{{key_id}}",
                f"{svc}/UpdateAPIKey",
                make_key_update(owner),
                write=True,
                body=True,
            ),
            Operation(
                "DELETE",
                f"{base}/api-keys/{{key_id}}",
                f"{svc}/DeleteAPIKey",
                make_key_delete(owner),
                write=True,
            ),
        ]
    return ops
