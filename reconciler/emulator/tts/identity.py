"""Identity Server: users, organizations, applications, gateways, API keys, auth info."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.auth import Caller, expand, hash_secret
from reconciler.emulator.tts.codec import encode_message, message, now_timestamp, timestamp_key
from reconciler.emulator.tts.common import (
    check_blocklist,
    decode_request,
    deleted_param,
    list_params,
    mask_from_body,
    mask_from_query,
    not_found,
    output,
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
from reconciler.emulator.tts.validate import validate_request

if TYPE_CHECKING:
    from reconciler.emulator.state import Table
    from reconciler.emulator.tts.app import Call, Operation

IS_STORE = "pkg/identityserver/store"
IS = "pkg/identityserver"
RESTORE_WINDOW_S = 24 * 3600
# Gateway secrets need READ_SECRETS / WRITE_SECRETS (FACTS §f).
GATEWAY_SECRET_PATHS = ("lbs_lns_secret", "target_cups_key", "claim_authentication_code")


def _admin_only(call: Call, name: str, text: str) -> Caller:
    caller = call.caller()
    if not caller.is_admin:
        raise errors.TTSError(IS, name, text, errors.PERMISSION_DENIED)
    return caller


def _id_taken() -> errors.TTSError:
    return errors.id_taken()


def _contact(collaborator: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in collaborator.items() if k in ("user_ids", "organization_ids")}


def _collaborator_key(collaborator: dict[str, Any]) -> str:
    if "organization_ids" in collaborator:
        return f"organization:{collaborator['organization_ids'].get('organization_id', '')}"
    return f"user:{collaborator.get('user_ids', {}).get('user_id', '')}"


def _collaborator_from_path(call: Call) -> dict[str, Any]:
    if "org" in call.params:
        return {"organization_ids": {"organization_id": call.params["org"]}}
    return {"user_ids": {"user_id": call.params["usr"]}}


def _require_create(
    call: Call, collaborator: dict[str, Any], user_right: str, org_right: str
) -> None:
    if "organization_ids" in collaborator:
        org_id = collaborator["organization_ids"]["organization_id"]
        require_organization(call, org_id, org_right)
        if call.store.organizations.get(org_id) is None:
            raise not_found(
                IS_STORE,
                "organization_not_found",
                "organization `{organization_id}` not found",
                organization_id=org_id,
            )
    else:
        user_id = collaborator["user_ids"]["user_id"]
        require_user(call, user_id, user_right)
        if call.store.users.get(user_id) is None:
            raise not_found(
                IS_STORE, "user_not_found", "user `{user_id}` not found", user_id=user_id
            )


# --- applications and gateways (same shape) ---------------------------------------------------


class EntityKind:
    def __init__(
        self,
        kind: str,
        plural: str,
        message_name: str,
        service: str,
        rights_prefix: str,
    ) -> None:
        self.kind = kind
        self.plural = plural
        self.message = message_name
        self.service = service
        self.rights_prefix = rights_prefix

    def table(self, call: Call) -> Table:
        return call.store.applications if self.kind == "application" else call.store.gateways

    def require(self, call: Call, entity_id: str, *needed: str) -> Caller:
        if self.kind == "application":
            return require_app(call, entity_id, *needed)
        return require_gateway(call, entity_id, *needed)

    def not_found(self, entity_id: str) -> errors.TTSError:
        return not_found(
            IS_STORE,
            f"{self.kind}_not_found",
            f"{self.kind} `{{{self.kind}_id}}` not found",
            **{f"{self.kind}_id": entity_id},
        )

    def publish(
        self, call: Call, verb: str, ids: dict[str, Any], data: dict[str, Any] | None = None
    ) -> None:
        """Emit `<kind>.<verb>` (e.g. `gateway.update`) for this entity, as the IS does."""
        call.emu.events.publish(f"{self.kind}.{verb}", [{f"{self.kind}_ids": ids}], data)

    def live(self, call: Call, entity_id: str) -> dict[str, Any]:
        record = self.table(call).get(entity_id)
        if record is None or record[self.kind].get("deleted_at"):
            raise self.not_found(entity_id)
        return dict(record)


APPLICATION = EntityKind(
    "application", "applications", "Application", "ApplicationRegistry", "RIGHT_APPLICATION_"
)
GATEWAY = EntityKind("gateway", "gateways", "Gateway", "GatewayRegistry", "RIGHT_GATEWAY_")


def _gateway_fp(entity: dict[str, Any]) -> None:
    """`frequency_plan_id` is derived from `frequency_plan_ids[0]` (FACTS §a)."""
    ids = entity.get("frequency_plan_ids")
    if ids:
        entity["frequency_plan_id"] = ids[0]
    elif entity.get("frequency_plan_id"):
        entity["frequency_plan_ids"] = [entity["frequency_plan_id"]]
    else:
        entity.pop("frequency_plan_id", None)


def _gateway_eui_owner(call: Call, eui: str, except_id: str = "") -> str | None:
    for record in call.store.gateways.values():
        gateway = record["gateway"]
        if gateway["ids"].get("eui") == eui and gateway["ids"]["gateway_id"] != except_id:
            return str(gateway["ids"]["gateway_id"])
    return None


def _gateway_eui_taken(eui: str, owner: str) -> errors.TTSError:
    return errors.TTSError(
        IS,
        "gateway_eui_taken",
        "gateway with EUI `{gateway_eui}` is already registered as `{gateway_id}`",
        errors.ALREADY_EXISTS,
        {"gateway_eui": eui, "gateway_id": owner},
    )


def _set_gateway_eui(call: Call, stored: dict[str, Any], eui: str) -> None:
    gateway_id = stored["ids"]["gateway_id"]
    if eui:
        owner = _gateway_eui_owner(call, eui, except_id=gateway_id)
        if owner is not None:
            raise _gateway_eui_taken(eui, owner)
        stored["ids"] = {**stored["ids"], "eui": eui}
    else:
        stored["ids"] = {k: v for k, v in stored["ids"].items() if k != "eui"}


def make_create(kind: EntityKind) -> Any:
    def create(call: Call) -> dict[str, Any]:
        request = decode_request(f"Create{kind.message}Request", call.body)
        request["collaborator"] = _collaborator_from_path(call)
        validate_request(f"Create{kind.message}Request", request)
        entity: dict[str, Any] = request[kind.kind]
        entity_id = entity["ids"][f"{kind.kind}_id"]
        check_blocklist(entity_id)
        collaborator = request["collaborator"]
        right = "APPLICATIONS" if kind.kind == "application" else "GATEWAYS"
        _require_create(
            call, collaborator, f"RIGHT_USER_{right}_CREATE", f"RIGHT_ORGANIZATION_{right}_CREATE"
        )
        call.before_write()
        table = kind.table(call)
        if entity_id in table:  # soft-deleted IDs stay reserved until purged
            raise _id_taken()
        if kind is GATEWAY:
            eui = entity["ids"].get("eui")
            if eui:
                owner = _gateway_eui_owner(call, eui)
                if owner is not None:
                    raise _gateway_eui_taken(eui, owner)
            _gateway_fp(entity)
        for contact in ("administrative_contact", "technical_contact"):
            entity.setdefault(contact, _contact(collaborator))
        now = now_timestamp()
        entity.pop("deleted_at", None)
        entity.pop("dev_eui_counter", None)
        entity["created_at"] = now
        entity["updated_at"] = now
        all_right = "RIGHT_APPLICATION_ALL" if kind.kind == "application" else "RIGHT_GATEWAY_ALL"
        table.put(
            entity_id,
            {kind.kind: entity, "collaborators": {_collaborator_key(collaborator): [all_right]}},
        )
        kind.publish(call, "create", entity["ids"])
        return encode_message(message(kind.message), entity)

    return create


def make_get(kind: EntityKind) -> Any:
    public = {
        "ids",
        "created_at",
        "updated_at",
        "deleted_at",
        "administrative_contact",
        "technical_contact",
    }

    def get(call: Call) -> dict[str, Any]:
        entity_id = call.params["id"]
        paths = mask_from_query(call)
        check_allowed(f"{kind.service}/Get", paths)
        if kind is APPLICATION and set(paths) <= public:
            # Public fields skip the rights check and reach the store (FACTS §d exception).
            call.caller()
            return output(kind.message, kind.live(call, entity_id)[kind.kind], paths)
        needed = [f"{kind.rights_prefix}INFO"]
        if kind is GATEWAY and any(p.startswith(GATEWAY_SECRET_PATHS) for p in paths):
            needed.append("RIGHT_GATEWAY_READ_SECRETS")
        kind.require(call, entity_id, *needed)
        record = kind.live(call, entity_id)
        return output(kind.message, record[kind.kind], paths)

    return get


def make_list(kind: EntityKind) -> Any:
    def list_(call: Call) -> Any:
        from reconciler.emulator.tts.app import JSONResponse

        paths = mask_from_query(call)
        check_allowed(f"{kind.service}/List", paths)
        order, limit, page = list_params(call, f"List{kind.message}sRequest")
        deleted = deleted_param(call)
        caller = call.caller()
        owner: str | None = None
        if "usr" in call.params:
            owner = "user:" + call.params["usr"]
            require_user(call, call.params["usr"], f"RIGHT_USER_{kind.plural.upper()}_LIST")
        elif "org" in call.params:
            owner = "organization:" + call.params["org"]
            require_organization(
                call, call.params["org"], f"RIGHT_ORGANIZATION_{kind.plural.upper()}_LIST"
            )
        items = []
        for record in kind.table(call).values():
            entity = record[kind.kind]
            if bool(entity.get("deleted_at")) != deleted:
                continue
            if owner is not None:
                if owner not in record.get("collaborators", {}):
                    continue
            elif not caller.is_admin:
                live = dict(record)
                if deleted:
                    live = {
                        kind.kind: {**entity, "deleted_at": None},
                        "collaborators": record.get("collaborators", {}),
                    }
                if not call.emu.auth.collaborator_rights(caller, kind.kind, live):
                    continue
            items.append(entity)
        id_field = f"{kind.kind}_id"
        keys: dict[str, Any] = {
            id_field: lambda e: e["ids"][id_field],
            "name": lambda e: (e.get("name", ""), e["ids"][id_field]),
            "created_at": lambda e: timestamp_key(e["created_at"]),
            "gateway_eui": lambda e: (e["ids"].get("eui", ""), e["ids"][id_field]),
        }
        items = sort_entities(items, order, id_field, keys)
        total = len(items)
        page_items = paginate(items, limit, page)
        body = {kind.plural: [output(kind.message, e, paths) for e in page_items]}
        if not page_items:
            body = {}
        return JSONResponse(body, 200, {"X-Total-Count": str(total)})

    return list_


def make_update(kind: EntityKind) -> Any:
    def update(call: Call) -> dict[str, Any]:
        entity_id = call.params["id"]
        body = dict(call.body)
        request = decode_request(f"Update{kind.message}Request", body)
        entity = request.setdefault(kind.kind, {})
        entity.setdefault("ids", {})[f"{kind.kind}_id"] = entity_id
        paths = list(request.get("field_mask", {}).get("paths", []))
        check_allowed(f"{kind.service}/Update", paths)
        validate_masked(f"Update{kind.message}Request", request, kind.kind, paths, ["ids"])
        needed = [f"{kind.rights_prefix}SETTINGS_BASIC"]
        if kind is GATEWAY and any(p.startswith(GATEWAY_SECRET_PATHS) for p in paths):
            needed.append("RIGHT_GATEWAY_WRITE_SECRETS")
        kind.require(call, entity_id, *needed)
        record = kind.live(call, entity_id)
        call.before_write()
        stored = dict(record[kind.kind])
        effective = [
            p
            for p in paths
            if p.split(".")[0]
            not in ("ids", "created_at", "updated_at", "deleted_at", "dev_eui_counter")
        ]
        # frequency_plan_id is derived; the plural field is the one that counts.
        if (
            kind is GATEWAY
            and any(p.startswith("frequency_plan_id") for p in effective)
            and "frequency_plan_ids" not in effective
        ):
            fp = entity.get("frequency_plan_id")
            entity["frequency_plan_ids"] = [fp] if fp else []
            effective.append("frequency_plan_ids")
        merge(stored, entity, effective)
        if kind is GATEWAY:
            _gateway_fp(stored)
            # A gateway's EUI may change (`ids.eui` is in the Update allow-list, FACTS §e); it
            # stays unique among gateways, soft-deleted ones included.
            if "ids.eui" in paths or "ids" in paths:
                _set_gateway_eui(call, stored, entity.get("ids", {}).get("eui", ""))
        stored["updated_at"] = now_timestamp()
        kind.table(call).put(entity_id, {**record, kind.kind: stored})
        kind.publish(
            call,
            "update",
            stored["ids"],
            {"@type": "type.googleapis.com/google.protobuf.FieldMask", "paths": paths},
        )
        return output(kind.message, stored, paths)

    return update


def _device_count(call: Call, app_id: str) -> int:
    prefix = app_id + "/"
    return sum(1 for key, _ in call.store.is_devices.items() if key.startswith(prefix))


def _has_devices(call: Call, app_id: str) -> None:
    count = _device_count(call, app_id)
    if count:
        raise errors.TTSError(
            IS,
            "application_has_devices",
            "application still has `{count}` devices",
            errors.FAILED_PRECONDITION,
            {"count": count},
        )


def make_delete(kind: EntityKind) -> Any:
    def delete(call: Call) -> dict[str, Any]:
        entity_id = call.params["id"]
        kind.require(call, entity_id, f"{kind.rights_prefix}DELETE")
        record = kind.live(call, entity_id)
        if kind is APPLICATION:
            _has_devices(call, entity_id)
        call.before_write()
        entity = dict(record[kind.kind])
        now = now_timestamp()
        entity["deleted_at"] = now
        entity["updated_at"] = now
        kind.table(call).put(entity_id, {**record, kind.kind: entity})
        kind.publish(call, "delete", entity["ids"])
        return {}

    return delete


def make_restore(kind: EntityKind) -> Any:
    def restore(call: Call) -> dict[str, Any]:
        entity_id = call.params["id"]
        caller = call.caller()
        record = kind.table(call).get(entity_id)
        if record is not None:
            as_live = {
                kind.kind: {**record[kind.kind], "deleted_at": None},
                "collaborators": record.get("collaborators", {}),
            }
            rights = (
                call.emu.auth.collaborator_rights(caller, kind.kind, as_live) | caller.universal
            )
        else:
            rights = caller.universal
        if not rights:
            raise (
                errors.no_application_rights if kind is APPLICATION else errors.no_gateway_rights
            )(uid=entity_id)
        needed = f"{kind.rights_prefix}DELETE"
        if needed not in rights:
            raise (
                errors.insufficient_application_rights
                if kind is APPLICATION
                else errors.insufficient_gateway_rights
            )(uid=entity_id, missing=[needed])
        if record is None or not record[kind.kind].get("deleted_at"):
            raise kind.not_found(entity_id)
        from datetime import UTC, datetime

        deleted_at = timestamp_key(record[kind.kind]["deleted_at"])[0]
        if (
            datetime.now(UTC) - deleted_at
        ).total_seconds() > RESTORE_WINDOW_S and not caller.is_admin:
            raise errors.TTSError(
                IS, "restore_window_expired", "restore window expired", errors.FAILED_PRECONDITION
            )
        call.before_write()
        entity = dict(record[kind.kind])
        entity.pop("deleted_at", None)
        entity["updated_at"] = now_timestamp()
        kind.table(call).put(entity_id, {**record, kind.kind: entity})
        kind.publish(call, "restore", entity["ids"])
        return {}

    return restore


def make_purge(kind: EntityKind) -> Any:
    def purge(call: Call) -> dict[str, Any]:
        entity_id = call.params["id"]
        _admin_only(
            call, f"admins_purge_{kind.plural}", f"{kind.plural} may only be purged by admins"
        )
        if entity_id not in kind.table(call):
            raise kind.not_found(entity_id)
        if kind is APPLICATION:
            _has_devices(call, entity_id)
        call.before_write()
        record = kind.table(call).delete(entity_id)
        for key_id, key in call.store.api_keys.items():
            if key["entity"] == kind.kind and key["entity_id"] == entity_id:
                call.store.api_keys.delete(key_id)
                call.emu.auth.forget(key_id)
        if kind is APPLICATION:
            call.store.links.delete(entity_id)
            for key, _ in call.store.webhooks.items():
                if key.startswith(entity_id + "/"):
                    call.store.webhooks.delete(key)
        kind.publish(call, "purge", record[kind.kind]["ids"])
        return {}

    return purge


def make_rights(kind: EntityKind) -> Any:
    def rights(call: Call) -> dict[str, Any]:
        entity_id = call.params["id"]
        caller = call.caller()
        record = kind.table(call).get(entity_id)
        held = call.emu.auth.collaborator_rights(caller, kind.kind, record) | caller.universal
        held = frozenset(r for r in held if r.startswith(kind.rights_prefix))
        if not held:
            raise (
                errors.no_application_rights if kind is APPLICATION else errors.no_gateway_rights
            )(uid=entity_id)
        return {"rights": sorted(held)} if held else {}

    return rights


# --- collaborators ---------------------------------------------------------------------------


def _collaborator_ids(key: str) -> dict[str, Any]:
    kind, _, entity_id = key.partition(":")
    if kind == "organization":
        return {"organization_ids": {"organization_id": entity_id}}
    return {"user_ids": {"user_id": entity_id}}


def _collaborator_not_found(key: str) -> errors.TTSError:
    return not_found(IS_STORE, "collaborator_not_found", "collaborator not found", collaborator=key)


def _collaborator_path_key(call: Call) -> str:
    if "usr" in call.params:
        return f"user:{call.params['usr']}"
    return f"organization:{call.params['org']}"


def make_collaborator_set(kind: EntityKind) -> Any:
    def set_(call: Call) -> dict[str, Any]:
        entity_id = call.params["id"]
        request_type = f"Set{kind.message}CollaboratorRequest"
        request = decode_request(request_type, call.body)
        request[f"{kind.kind}_ids"] = {f"{kind.kind}_id": entity_id}
        validate_request(request_type, request)
        caller = kind.require(call, entity_id, f"{kind.rights_prefix}SETTINGS_COLLABORATORS")
        record = kind.live(call, entity_id) and kind.table(call).get(entity_id)
        collaborator = request["collaborator"]
        key = _collaborator_key(collaborator["ids"])
        member = key.partition(":")[2]
        table = call.store.users if key.startswith("user:") else call.store.organizations
        if member not in table:
            raise not_found(
                IS_STORE, "account_not_found", "account `{account_id}` not found", account_id=member
            )
        collaborators = dict(record.get("collaborators", {}))
        rights = list(collaborator.get("rights", []))
        held = call.emu.auth.collaborator_rights(caller, kind.kind, record) | caller.universal
        changed = expand(rights) ^ expand(collaborators.get(key, []))
        lacking = sorted(changed - held)
        if lacking:
            raise (
                errors.insufficient_application_rights
                if kind is APPLICATION
                else errors.insufficient_gateway_rights
            )(uid=entity_id, missing=lacking)
        call.before_write()
        if rights:
            collaborators[key] = rights
        else:
            collaborators.pop(key, None)
        kind.table(call).put(entity_id, {**record, "collaborators": collaborators})
        kind.publish(call, "collaborator.update", record[kind.kind]["ids"])
        return {}

    return set_


def make_collaborator_get(kind: EntityKind) -> Any:
    def get(call: Call) -> dict[str, Any]:
        entity_id = call.params["id"]
        kind.require(call, entity_id, f"{kind.rights_prefix}SETTINGS_COLLABORATORS")
        record = kind.table(call).get(entity_id)
        kind.live(call, entity_id)
        key = _collaborator_path_key(call)
        rights = record.get("collaborators", {}).get(key) if record else None
        if not rights:
            raise _collaborator_not_found(key)
        return {"ids": _collaborator_ids(key), "rights": rights}

    return get


def make_collaborator_list(kind: EntityKind) -> Any:
    def list_(call: Call) -> Any:
        from reconciler.emulator.tts.app import JSONResponse

        entity_id = call.params["id"]
        order, limit, page = list_params(call, f"List{kind.message}CollaboratorsRequest")
        kind.require(call, entity_id, f"{kind.rights_prefix}SETTINGS_COLLABORATORS")
        record = kind.live(call, entity_id) and kind.table(call).get(entity_id)
        items = [
            {"key": key, "rights": rights}
            for key, rights in record.get("collaborators", {}).items()
            if rights
        ]
        sorters: dict[str, Any] = {
            "id": lambda c: c["key"].partition(":")[2],
            "rights": lambda c: (len(expand(c["rights"])), c["key"]),
        }
        items = sort_entities(items, order, "id", sorters)
        selected = paginate(items, limit, page)
        body = (
            {
                "collaborators": [
                    {"ids": _collaborator_ids(c["key"]), "rights": c["rights"]} for c in selected
                ]
            }
            if selected
            else {}
        )
        return JSONResponse(body, 200, {"X-Total-Count": str(len(items))})

    return list_


def make_collaborator_delete(kind: EntityKind) -> Any:
    def delete(call: Call) -> dict[str, Any]:
        entity_id = call.params["id"]
        caller = kind.require(call, entity_id, f"{kind.rights_prefix}SETTINGS_COLLABORATORS")
        record = kind.live(call, entity_id) and kind.table(call).get(entity_id)
        key = _collaborator_path_key(call)
        collaborators = dict(record.get("collaborators", {}))
        if key not in collaborators:
            raise _collaborator_not_found(key)
        held = call.emu.auth.collaborator_rights(caller, kind.kind, record) | caller.universal
        lacking = sorted(expand(collaborators[key]) - held)
        if lacking:
            raise (
                errors.insufficient_application_rights
                if kind is APPLICATION
                else errors.insufficient_gateway_rights
            )(uid=entity_id, missing=lacking)
        call.before_write()
        del collaborators[key]
        kind.table(call).put(entity_id, {**record, "collaborators": collaborators})
        kind.publish(call, "collaborator.delete", record[kind.kind]["ids"])
        return {}

    return delete


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
        call.emu.events.publish(
            f"{owner.kind}.api-key.create", [{f"{owner.kind}_ids": {f"{owner.kind}_id": entity_id}}]
        )
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
        if not stored.get("rights"):
            call.store.api_keys.delete(key_id)  # a key without rights is deleted, as in TTS
            call.emu.auth.forget(key_id)
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
        return {}

    return delete


# --- users and organizations -----------------------------------------------------------------


def create_user(call: Call) -> dict[str, Any]:
    request = decode_request("CreateUserRequest", call.body)
    validate_request("CreateUserRequest", request)
    user = request["user"]
    user_id = user["ids"]["user_id"]
    check_blocklist(user_id)
    _admin_only(call, "admins_create_users", "users may only be created by admins")
    call.before_write()
    if user_id in call.store.users:
        raise _id_taken()
    now = now_timestamp()
    user.pop("password", None)  # the IS stores a hash only; the emulator has no logins
    user.pop("temporary_password", None)
    user.setdefault("state", "STATE_APPROVED")
    user["created_at"] = now
    user["updated_at"] = now
    call.store.users.put(user_id, {"user": user})
    call.emu.events.publish("user.create", [{"user_ids": user["ids"]}])
    return encode_message(message("User"), user)


def get_user(call: Call) -> dict[str, Any]:
    user_id = call.params["usr"]
    paths = mask_from_query(call)
    check_allowed("UserRegistry/Get", paths)
    require_user(call, user_id, "RIGHT_USER_INFO")
    record = call.store.users.get(user_id)
    if record is None or record["user"].get("deleted_at"):
        raise not_found(IS_STORE, "user_not_found", "user `{user_id}` not found", user_id=user_id)
    return output("User", record["user"], paths)


def create_organization(call: Call) -> dict[str, Any]:
    request = decode_request("CreateOrganizationRequest", call.body)
    request["collaborator"] = {"user_ids": {"user_id": call.params["usr"]}}
    validate_request("CreateOrganizationRequest", request)
    org = request["organization"]
    org_id = org["ids"]["organization_id"]
    check_blocklist(org_id)
    user_id = call.params["usr"]
    require_user(call, user_id, "RIGHT_USER_ORGANIZATIONS_CREATE")
    call.before_write()
    if org_id in call.store.organizations or org_id in call.store.users:
        raise _id_taken()
    now = now_timestamp()
    org["created_at"] = now
    org["updated_at"] = now
    for contact in ("administrative_contact", "technical_contact"):
        org.setdefault(contact, {"user_ids": {"user_id": user_id}})
    call.store.organizations.put(org_id, {"organization": org, "members": {user_id: ["RIGHT_ALL"]}})
    call.emu.events.publish("organization.create", [{"organization_ids": org["ids"]}])
    return encode_message(message("Organization"), org)


def get_organization(call: Call) -> dict[str, Any]:
    org_id = call.params["org"]
    paths = mask_from_query(call)
    check_allowed("OrganizationRegistry/Get", paths)
    require_organization(call, org_id, "RIGHT_ORGANIZATION_INFO")
    record = call.store.organizations.get(org_id)
    if record is None or record["organization"].get("deleted_at"):
        raise not_found(
            IS_STORE,
            "organization_not_found",
            "organization `{organization_id}` not found",
            organization_id=org_id,
        )
    return output("Organization", record["organization"], paths)


def delete_organization(call: Call) -> dict[str, Any]:
    org_id = call.params["org"]
    require_organization(call, org_id, "RIGHT_ORGANIZATION_DELETE")
    record = call.store.organizations.get(org_id)
    if record is None or record["organization"].get("deleted_at"):
        raise not_found(
            IS_STORE,
            "organization_not_found",
            "organization `{organization_id}` not found",
            organization_id=org_id,
        )
    call.before_write()
    org = {**record["organization"], "deleted_at": now_timestamp()}
    call.store.organizations.put(org_id, {**record, "organization": org})
    return {}


def auth_info(call: Call) -> dict[str, Any]:
    caller = call.caller()
    key = dict(caller.record["api_key"])
    entity_ids = {f"{caller.entity_kind}_ids": {f"{caller.entity_kind}_id": caller.entity_id}}
    body: dict[str, Any] = {
        "api_key": {
            "api_key": encode_message(message("APIKey"), key),
            "entity_ids": entity_ids,
        }
    }
    if caller.universal:
        body["universal_rights"] = {"rights": sorted(caller.universal)}
    if caller.is_admin:
        body["is_admin"] = True
    return body


def require_entity_access(call: Call, caller: Caller, ids: dict[str, Any]) -> None:
    """Any right on the entity (event streams)."""
    if "application_ids" in ids or "device_ids" in ids:
        app_ids = ids.get("application_ids") or ids.get("device_ids", {}).get("application_ids", {})
        require_app(call, str(app_ids.get("application_id", "")))
    elif "gateway_ids" in ids:
        require_gateway(call, str(ids["gateway_ids"].get("gateway_id", "")))
    elif "organization_ids" in ids:
        require_organization(call, str(ids["organization_ids"].get("organization_id", "")))
    elif "user_ids" in ids:
        require_user(call, str(ids["user_ids"].get("user_id", "")))


def operations() -> list[Operation]:
    from reconciler.emulator.tts.app import Operation

    ops = [
        Operation("GET", "/auth_info", "EntityAccess/AuthInfo", auth_info),
        Operation("POST", "/users", "UserRegistry/Create", create_user, write=True, body=True),
        Operation("GET", "/users/{usr}", "UserRegistry/Get", get_user),
        Operation(
            "POST",
            "/users/{usr}/organizations",
            "OrganizationRegistry/Create",
            create_organization,
            write=True,
            body=True,
        ),
        Operation("GET", "/organizations/{org}", "OrganizationRegistry/Get", get_organization),
        Operation(
            "DELETE",
            "/organizations/{org}",
            "OrganizationRegistry/Delete",
            delete_organization,
            write=True,
        ),
    ]
    for kind, base in ((APPLICATION, "/applications"), (GATEWAY, "/gateways")):
        service = kind.service
        ops += [
            Operation(
                "POST",
                f"/users/{{usr}}/{kind.plural}",
                f"{service}/Create",
                make_create(kind),
                write=True,
                body=True,
            ),
            Operation(
                "POST",
                f"/organizations/{{org}}/{kind.plural}",
                f"{service}/Create",
                make_create(kind),
                write=True,
                body=True,
            ),
            Operation("GET", base, f"{service}/List", make_list(kind)),
            Operation("GET", f"/users/{{usr}}/{kind.plural}", f"{service}/List", make_list(kind)),
            Operation(
                "GET", f"/organizations/{{org}}/{kind.plural}", f"{service}/List", make_list(kind)
            ),
            Operation("GET", f"{base}/{{id}}", f"{service}/Get", make_get(kind)),
            Operation(
                "PUT",
                f"{base}/{{id}}",
                f"{service}/Update",
                make_update(kind),
                write=True,
                body=True,
            ),
            Operation(
                "DELETE", f"{base}/{{id}}", f"{service}/Delete", make_delete(kind), write=True
            ),
            Operation(
                "POST",
                f"{base}/{{id}}/restore",
                f"{service}/Restore",
                make_restore(kind),
                write=True,
            ),
            Operation(
                "DELETE", f"{base}/{{id}}/purge", f"{service}/Purge", make_purge(kind), write=True
            ),
            Operation(
                "GET",
                f"{base}/{{id}}/rights",
                f"{kind.message}Access/ListRights",
                make_rights(kind),
            ),
        ]
        access = f"{kind.message}Access"
        # The gateway DELETE binding is plural, unlike every other collaborator route (§a).
        delete_base = "collaborators" if kind is GATEWAY else "collaborator"
        ops += [
            Operation(
                "GET",
                f"{base}/{{id}}/collaborators",
                f"{access}/ListCollaborators",
                make_collaborator_list(kind),
            ),
            Operation(
                "PUT",
                f"{base}/{{id}}/collaborators",
                f"{access}/SetCollaborator",
                make_collaborator_set(kind),
                write=True,
                body=True,
            ),
        ]
        for member, param in (("user", "usr"), ("organization", "org")):
            ops += [
                Operation(
                    "GET",
                    f"{base}/{{id}}/collaborator/{member}/{{{param}}}",
                    f"{access}/GetCollaborator",
                    make_collaborator_get(kind),
                ),
                Operation(
                    "DELETE",
                    f"{base}/{{id}}/{delete_base}/{member}/{{{param}}}",
                    f"{access}/DeleteCollaborator",
                    make_collaborator_delete(kind),
                    write=True,
                ),
            ]
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


__all__ = ["APPLICATION", "GATEWAY", "mask_from_body", "operations", "require_entity_access"]
