"""Auth info (who the caller is) and the any-right check of event streams."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts.auth import Caller
from reconciler.emulator.tts.codec import encode_message, message
from reconciler.emulator.tts.common import (
    require_app,
    require_gateway,
    require_organization,
    require_user,
)

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call, Operation


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

    return [Operation("GET", "/auth_info", "EntityAccess/AuthInfo", auth_info)]
