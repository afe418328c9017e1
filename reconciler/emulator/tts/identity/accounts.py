"""Users and organizations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
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
    require_organization,
    require_user,
    sort_entities,
    validate_masked,
)
from reconciler.emulator.tts.fieldmask import check_allowed, merge
from reconciler.emulator.tts.identity.shared import IS_STORE, admin_only
from reconciler.emulator.tts.validate import validate_request
from reconciler.providers.tts import rights

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call, Operation


# --- users and organizations -----------------------------------------------------------------


def create_user(call: Call) -> dict[str, Any]:
    request = decode_request("CreateUserRequest", call.body)
    validate_request("CreateUserRequest", request)
    user = request["user"]
    user_id = user["ids"]["user_id"]
    check_blocklist(user_id)
    admin_only(call, "admins_create_users", "users may only be created by admins")
    call.before_write()
    if user_id in call.store.users:
        raise errors.id_taken()
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
        raise errors.id_taken()
    now = now_timestamp()
    org["created_at"] = now
    org["updated_at"] = now
    for contact in ("administrative_contact", "technical_contact"):
        org.setdefault(contact, {"user_ids": {"user_id": user_id}})
    call.store.organizations.put(org_id, {"organization": org, "members": {user_id: ["RIGHT_ALL"]}})
    call.emu.events.publish("organization.create", [{"organization_ids": org["ids"]}])
    return encode_message(message("Organization"), org)


def organization_not_found(org_id: str) -> errors.TTSError:
    return not_found(
        IS_STORE,
        "organization_not_found",
        "organization `{organization_id}` not found",
        organization_id=org_id,
    )


def live_organization(call: Call, org_id: str) -> dict[str, Any]:
    record = call.store.organizations.get(org_id)
    if record is None or record["organization"].get("deleted_at"):
        raise organization_not_found(org_id)
    return dict(record)


def get_organization(call: Call) -> dict[str, Any]:
    org_id = call.params["org"]
    paths = mask_from_query(call)
    check_allowed("OrganizationRegistry/Get", paths)
    require_organization(call, org_id, "RIGHT_ORGANIZATION_INFO")
    return output("Organization", live_organization(call, org_id)["organization"], paths)


def list_organizations(call: Call) -> Any:
    """`GET /organizations` (the caller's, or every one for an admin) and
    `GET /users/{usr}/organizations` (those the user is a member of)."""
    from reconciler.emulator.tts.app import JSONResponse

    paths = mask_from_query(call)
    check_allowed("OrganizationRegistry/List", paths)
    order, limit, page = list_params(call, "ListOrganizationsRequest")
    deleted = deleted_param(call)
    caller = call.caller()
    member: str | None = None
    if "usr" in call.params:
        member = call.params["usr"]
        require_user(call, member, "RIGHT_USER_ORGANIZATIONS_LIST")
    elif caller.entity_kind == "user" and not caller.is_admin:
        member = caller.entity_id
    items = []
    for org_id, record in call.store.organizations.items():
        org = record["organization"]
        if bool(org.get("deleted_at")) != deleted:
            continue
        if caller.entity_kind == "organization" and member is None:
            if org_id != caller.entity_id:
                continue
        elif member is not None and member not in record.get("members", {}):
            continue
        items.append(org)
    keys: dict[str, Any] = {
        "organization_id": lambda o: o["ids"]["organization_id"],
        "name": lambda o: (o.get("name", ""), o["ids"]["organization_id"]),
        "created_at": lambda o: timestamp_key(o["created_at"]),
    }
    items = sort_entities(items, order, "organization_id", keys)
    selected = paginate(items, limit, page)
    body = {"organizations": [output("Organization", o, paths) for o in selected]}
    return JSONResponse(body if selected else {}, 200, {"X-Total-Count": str(len(items))})


def update_organization(call: Call) -> dict[str, Any]:
    org_id = call.params["org"]
    request = decode_request("UpdateOrganizationRequest", dict(call.body))
    org = request.setdefault("organization", {})
    org.setdefault("ids", {})["organization_id"] = org_id
    paths = list(request.get("field_mask", {}).get("paths", []))
    check_allowed("OrganizationRegistry/Update", paths)
    validate_masked("UpdateOrganizationRequest", request, "organization", paths, ["ids"])
    require_organization(call, org_id, "RIGHT_ORGANIZATION_SETTINGS_BASIC")
    record = live_organization(call, org_id)
    call.before_write()
    stored = dict(record["organization"])
    # Identifiers and timestamps are accepted in the mask and dropped, as for applications.
    effective = [
        p for p in paths if p.split(".")[0] not in ("ids", "created_at", "updated_at", "deleted_at")
    ]
    merge(stored, org, effective)
    stored["updated_at"] = now_timestamp()
    call.store.organizations.put(org_id, {**record, "organization": stored})
    call.emu.events.publish(
        "organization.update",
        [{"organization_ids": stored["ids"]}],
        {"@type": "type.googleapis.com/google.protobuf.FieldMask", "paths": paths},
    )
    return output("Organization", stored, paths)


def organization_rights(call: Call) -> dict[str, Any]:
    """`GET /organizations/{id}/rights`: the caller's rights on it (members' rights also
    cover the applications and gateways the organization collaborates on)."""
    org_id = call.params["org"]
    caller = call.caller()
    held = frozenset(
        r
        for r in call.emu.auth.organization_rights(caller, org_id)
        if rights.applies_to(r, "organization")
    )
    if not held:
        raise errors.no_organization_rights(uid=org_id)
    return {"rights": sorted(held)}


def restore_organization(call: Call) -> dict[str, Any]:
    """`POST /organizations/{id}/restore`: a soft-deleted organization back, within the
    restore window (admins at any time), for a caller holding RIGHT_ORGANIZATION_DELETE on it."""
    from datetime import UTC, datetime

    from reconciler.emulator.tts.identity.entities import RESTORE_WINDOW_S

    org_id = call.params["org"]
    caller = call.caller()
    record = call.store.organizations.get(org_id)
    held = caller.universal
    if record is not None and caller.entity_kind == "user":
        member = record.get("members", {}).get(caller.entity_id, [])
        held = held | (rights.expand(member) & caller.rights)
    elif record is not None and caller.entity_kind == "organization" and caller.entity_id == org_id:
        held = held | caller.rights
    if not held:
        raise errors.no_organization_rights(uid=org_id)
    if "RIGHT_ORGANIZATION_DELETE" not in held:
        raise errors.insufficient_organization_rights(
            uid=org_id, missing=["RIGHT_ORGANIZATION_DELETE"]
        )
    if record is None or not record["organization"].get("deleted_at"):
        raise organization_not_found(org_id)
    deleted_at = timestamp_key(record["organization"]["deleted_at"])[0]
    if (datetime.now(UTC) - deleted_at).total_seconds() > RESTORE_WINDOW_S and not caller.is_admin:
        raise errors.TTSError(
            "pkg/identityserver",
            "restore_window_expired",
            "restore window expired",
            errors.FAILED_PRECONDITION,
        )
    call.before_write()
    org = dict(record["organization"])
    org.pop("deleted_at", None)
    org["updated_at"] = now_timestamp()
    call.store.organizations.put(org_id, {**record, "organization": org})
    call.emu.events.publish("organization.restore", [{"organization_ids": org["ids"]}])
    return {}


def purge_organization(call: Call) -> dict[str, Any]:
    """`DELETE /organizations/{id}/purge`: admins only; frees the ID."""
    org_id = call.params["org"]
    admin_only(call, "admins_purge_organizations", "organizations may only be purged by admins")
    if org_id not in call.store.organizations:
        raise organization_not_found(org_id)
    call.before_write()
    record = call.store.organizations.delete(org_id)
    for key_id, key in call.store.api_keys.items():
        if key["entity"] == "organization" and key["entity_id"] == org_id:
            call.store.api_keys.delete(key_id)
            call.emu.auth.forget(key_id)
    call.emu.events.publish(
        "organization.purge", [{"organization_ids": record["organization"]["ids"]}]
    )
    return {}


def delete_organization(call: Call) -> dict[str, Any]:
    org_id = call.params["org"]
    require_organization(call, org_id, "RIGHT_ORGANIZATION_DELETE")
    record = live_organization(call, org_id)
    call.before_write()
    now = now_timestamp()
    org = {**record["organization"], "deleted_at": now, "updated_at": now}
    call.store.organizations.put(org_id, {**record, "organization": org})
    call.emu.events.publish("organization.delete", [{"organization_ids": org["ids"]}])
    return {}


def operations() -> list[Operation]:
    from reconciler.emulator.tts.app import Operation

    return [
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
        Operation("GET", "/organizations", "OrganizationRegistry/List", list_organizations),
        Operation(
            "GET", "/users/{usr}/organizations", "OrganizationRegistry/List", list_organizations
        ),
        Operation("GET", "/organizations/{org}", "OrganizationRegistry/Get", get_organization),
        Operation(
            "GET",
            "/organizations/{org}/rights",
            "OrganizationAccess/ListRights",
            organization_rights,
        ),
        Operation(
            "PUT",
            "/organizations/{org}",
            "OrganizationRegistry/Update",
            update_organization,
            write=True,
            body=True,
        ),
        Operation(
            "DELETE",
            "/organizations/{org}",
            "OrganizationRegistry/Delete",
            delete_organization,
            write=True,
        ),
        Operation(
            "POST",
            "/organizations/{org}/restore",
            "OrganizationRegistry/Restore",
            restore_organization,
            write=True,
        ),
        Operation(
            "DELETE",
            "/organizations/{org}/purge",
            "OrganizationRegistry/Purge",
            purge_organization,
            write=True,
        ),
    ]
