"""Users and organizations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.codec import encode_message, message, now_timestamp
from reconciler.emulator.tts.common import (
    check_blocklist,
    decode_request,
    mask_from_query,
    not_found,
    output,
    require_organization,
    require_user,
)
from reconciler.emulator.tts.fieldmask import check_allowed
from reconciler.emulator.tts.identity.shared import IS_STORE, admin_only
from reconciler.emulator.tts.validate import validate_request

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
        Operation("GET", "/organizations/{org}", "OrganizationRegistry/Get", get_organization),
        Operation(
            "DELETE",
            "/organizations/{org}",
            "OrganizationRegistry/Delete",
            delete_organization,
            write=True,
        ),
    ]
