"""Applications and gateways: one registry shape (create, get, list, update, delete, restore,
purge, rights), with each kind's own rules in `applications` and `gateways`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.auth import Caller
from reconciler.emulator.tts.codec import encode_message, message, now_timestamp, timestamp_key
from reconciler.emulator.tts.common import (
    check_blocklist,
    decode_request,
    deleted_param,
    list_params,
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
from reconciler.emulator.tts.fieldmask import check_allowed, merge
from reconciler.emulator.tts.identity import applications, gateways
from reconciler.emulator.tts.identity.shared import IS, IS_STORE, admin_only, collaborator_key
from reconciler.emulator.tts.validate import validate_request

if TYPE_CHECKING:
    from reconciler.emulator.state import Table
    from reconciler.emulator.tts.app import Call, Operation


RESTORE_WINDOW_S = 24 * 3600


def _contact(collaborator: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in collaborator.items() if k in ("user_ids", "organization_ids")}


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
            raise errors.id_taken()
        if kind is GATEWAY:
            eui = entity["ids"].get("eui")
            if eui:
                gateways.require_free_eui(call, eui)
            gateways.sync_frequency_plan(entity)
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
            {kind.kind: entity, "collaborators": {collaborator_key(collaborator): [all_right]}},
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
        if kind is GATEWAY and gateways.touches_secrets(paths):
            needed.append("RIGHT_GATEWAY_READ_SECRETS")
        kind.require(call, entity_id, *needed)
        record = kind.live(call, entity_id)
        return output(kind.message, record[kind.kind], paths)

    return get


def _list_entities(
    call: Call,
    kind: EntityKind,
    paths: list[str],
    page_params: tuple[str, int, int],
    deleted: bool,
    collaborator: tuple[str, str] | None,
    updated_since: str | None = None,
) -> Any:
    """The List RPC, wherever its request came from (path and query, or a POST body)."""
    from reconciler.emulator.tts.app import JSONResponse

    order, limit, page = page_params
    caller = call.caller()
    owner: str | None = None
    if collaborator is not None:
        account, account_id = collaborator
        owner = f"{account}:{account_id}"
        needed = f"RIGHT_{account.upper()}_{kind.plural.upper()}_LIST"
        if account == "user":
            require_user(call, account_id, needed)
        else:
            require_organization(call, account_id, needed)
    since = timestamp_key(updated_since) if updated_since else None
    items = []
    for record in kind.table(call).values():
        entity = record[kind.kind]
        if bool(entity.get("deleted_at")) != deleted:
            continue
        if since is not None and timestamp_key(entity["updated_at"]) <= since:
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


def make_list(kind: EntityKind) -> Any:
    def list_(call: Call) -> Any:
        paths = mask_from_query(call)
        check_allowed(f"{kind.service}/List", paths)
        page_params = list_params(call, f"List{kind.message}sRequest")
        collaborator: tuple[str, str] | None = None
        if "usr" in call.params:
            collaborator = ("user", call.params["usr"])
        elif "org" in call.params:
            collaborator = ("organization", call.params["org"])
        return _list_entities(call, kind, paths, page_params, deleted_param(call), collaborator)

    return list_


def make_list_filtered(kind: EntityKind) -> Any:
    """`POST /gateways/filter`: the List RPC with its whole request in the body, which adds
    `filters` (`updated_since`: entities whose record changed after it)."""
    request_type = f"List{kind.message}sRequest"

    def list_filtered(call: Call) -> Any:
        request = decode_request(request_type, call.body)
        paths = list(request.get("field_mask", {}).get("paths", []))
        check_allowed(f"{kind.service}/List", paths)
        validate_request(request_type, request)
        raw: dict[str, str] = {
            k: str(request[k]) for k in ("order", "limit", "page") if k in request
        }
        page_params = list_params(call, request_type, raw)
        collaborator: tuple[str, str] | None = None
        account = request.get("collaborator") or {}
        if account.get("user_ids"):
            collaborator = ("user", account["user_ids"].get("user_id", ""))
        elif account.get("organization_ids"):
            collaborator = ("organization", account["organization_ids"].get("organization_id", ""))
        since = None
        for filter_ in request.get("filters") or []:
            since = filter_.get("updated_since") or since
        return _list_entities(
            call, kind, paths, page_params, bool(request.get("deleted")), collaborator, since
        )

    return list_filtered


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
        if kind is GATEWAY and gateways.touches_secrets(paths):
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
            gateways.sync_frequency_plan(stored)
            # A gateway's EUI may change (`ids.eui` is in the Update allow-list, FACTS §e); it
            # stays unique among gateways, soft-deleted ones included.
            if "ids.eui" in paths or "ids" in paths:
                gateways.set_eui(call, stored, entity.get("ids", {}).get("eui", ""))
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


def make_delete(kind: EntityKind) -> Any:
    def delete(call: Call) -> dict[str, Any]:
        entity_id = call.params["id"]
        kind.require(call, entity_id, f"{kind.rights_prefix}DELETE")
        record = kind.live(call, entity_id)
        if kind is APPLICATION:
            applications.require_no_devices(call, entity_id)
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
        admin_only(
            call, f"admins_purge_{kind.plural}", f"{kind.plural} may only be purged by admins"
        )
        if entity_id not in kind.table(call):
            raise kind.not_found(entity_id)
        if kind is APPLICATION:
            applications.require_no_devices(call, entity_id)
        call.before_write()
        record = kind.table(call).delete(entity_id)
        for key_id, key in call.store.api_keys.items():
            if key["entity"] == kind.kind and key["entity_id"] == entity_id:
                call.store.api_keys.delete(key_id)
                call.emu.auth.forget(key_id)
        if kind is APPLICATION:
            applications.purge_application_data(call, entity_id)
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


def operations() -> list[Operation]:
    from reconciler.emulator.tts.app import Operation

    ops: list[Operation] = []
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
            *(
                [
                    Operation(
                        "POST",
                        f"{base}/filter",
                        f"{service}/List",
                        make_list_filtered(kind),
                        body=True,
                    )
                ]
                if kind is GATEWAY  # the real API has no such route for applications
                else []
            ),
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
    return ops
