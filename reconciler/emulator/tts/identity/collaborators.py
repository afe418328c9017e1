"""Collaborators of applications, gateways and organizations: who holds which rights on them.

An organization's collaborators are its members (users only); they are kept in the organization
record's `members`, which the rights checks read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.auth import expand
from reconciler.emulator.tts.common import (
    decode_request,
    list_params,
    not_found,
    paginate,
    require_organization,
    sort_entities,
)
from reconciler.emulator.tts.identity.accounts import live_organization
from reconciler.emulator.tts.identity.entities import APPLICATION, GATEWAY, EntityKind
from reconciler.emulator.tts.identity.shared import IS, IS_STORE, collaborator_key
from reconciler.emulator.tts.validate import validate_request

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call, Operation


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
        key = collaborator_key(collaborator["ids"])
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
        # Setting no rights removes the collaborator, and the IS says so.
        verb = "collaborator.update" if rights else "collaborator.delete"
        kind.publish(call, verb, record[kind.kind]["ids"])
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


# --- organization members -------------------------------------------------------------------

MEMBERS_RIGHT = "RIGHT_ORGANIZATION_SETTINGS_MEMBERS"


def _publish_member(call: Call, org_id: str, verb: str) -> None:
    call.emu.events.publish(
        f"organization.collaborator.{verb}", [{"organization_ids": {"organization_id": org_id}}]
    )


def set_member(call: Call) -> dict[str, Any]:
    org_id = call.params["org"]
    request = decode_request("SetOrganizationCollaboratorRequest", call.body)
    request["organization_ids"] = {"organization_id": org_id}
    validate_request("SetOrganizationCollaboratorRequest", request)
    caller = require_organization(call, org_id, MEMBERS_RIGHT)
    record = live_organization(call, org_id)
    collaborator = request["collaborator"]
    key = collaborator_key(collaborator["ids"])
    if not key.startswith("user:"):
        # An organization cannot be a member of an organization: the Identity Server's
        # `nested_organizations` error, as for creating or listing organizations of one.
        raise errors.TTSError(
            IS, "nested_organizations", "organizations can not be nested", errors.INVALID_ARGUMENT
        )
    user_id = key.partition(":")[2]
    if user_id not in call.store.users:
        raise not_found(
            IS_STORE, "account_not_found", "account `{account_id}` not found", account_id=user_id
        )
    members = dict(record.get("members", {}))
    rights = list(collaborator.get("rights", []))
    held = call.emu.auth.organization_rights(caller, org_id)
    lacking = sorted((expand(rights) ^ expand(members.get(user_id, []))) - held)
    if lacking:
        raise errors.insufficient_organization_rights(uid=org_id, missing=lacking)
    call.before_write()
    if rights:
        members[user_id] = rights
    else:
        members.pop(user_id, None)
    call.store.organizations.put(org_id, {**record, "members": members})
    _publish_member(call, org_id, "update" if rights else "delete")
    return {}


def get_member(call: Call) -> dict[str, Any]:
    org_id = call.params["org"]
    require_organization(call, org_id, MEMBERS_RIGHT)
    record = live_organization(call, org_id)
    user_id = call.params["usr"]
    rights = record.get("members", {}).get(user_id)
    if not rights:
        raise _collaborator_not_found(f"user:{user_id}")
    return {"ids": {"user_ids": {"user_id": user_id}}, "rights": rights}


def list_members(call: Call) -> Any:
    from reconciler.emulator.tts.app import JSONResponse

    org_id = call.params["org"]
    order, limit, page = list_params(call, "ListOrganizationCollaboratorsRequest")
    require_organization(call, org_id, MEMBERS_RIGHT)
    record = live_organization(call, org_id)
    items = [
        {"key": f"user:{user}", "rights": rights}
        for user, rights in record.get("members", {}).items()
        if rights
    ]
    sorters: dict[str, Any] = {
        "id": lambda c: c["key"].partition(":")[2],
        "rights": lambda c: (len(expand(c["rights"])), c["key"]),
    }
    items = sort_entities(items, order, "id", sorters)
    selected = paginate(items, limit, page)
    body = {
        "collaborators": [
            {"ids": _collaborator_ids(c["key"]), "rights": c["rights"]} for c in selected
        ]
    }
    return JSONResponse(body if selected else {}, 200, {"X-Total-Count": str(len(items))})


def delete_member(call: Call) -> dict[str, Any]:
    org_id = call.params["org"]
    caller = require_organization(call, org_id, MEMBERS_RIGHT)
    record = live_organization(call, org_id)
    user_id = call.params["usr"]
    members = dict(record.get("members", {}))
    if user_id not in members:
        raise _collaborator_not_found(f"user:{user_id}")
    lacking = sorted(expand(members[user_id]) - call.emu.auth.organization_rights(caller, org_id))
    if lacking:
        raise errors.insufficient_organization_rights(uid=org_id, missing=lacking)
    call.before_write()
    del members[user_id]
    call.store.organizations.put(org_id, {**record, "members": members})
    _publish_member(call, org_id, "delete")
    return {}


def operations() -> list[Operation]:
    from reconciler.emulator.tts.app import Operation

    ops: list[Operation] = []
    for kind, base in ((APPLICATION, "/applications"), (GATEWAY, "/gateways")):
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
    base = "/organizations/{org}"
    ops += [
        Operation(
            "GET", f"{base}/collaborators", "OrganizationAccess/ListCollaborators", list_members
        ),
        Operation(
            "PUT",
            f"{base}/collaborators",
            "OrganizationAccess/SetCollaborator",
            set_member,
            write=True,
            body=True,
        ),
        Operation(
            "GET",
            f"{base}/collaborator/user/{{usr}}",
            "OrganizationAccess/GetCollaborator",
            get_member,
        ),
        # Plural, as the gateway delete route (the real binding).
        Operation(
            "DELETE",
            f"{base}/collaborators/user/{{usr}}",
            "OrganizationAccess/DeleteCollaborator",
            delete_member,
            write=True,
        ),
    ]
    return ops
