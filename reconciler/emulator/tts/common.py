"""Helpers shared by the registries: masks from query or body, rights checks, list paging."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.codec import (
    Message,
    decode_message,
    decode_value,
    encode_message,
    message,
)
from reconciler.emulator.tts.fieldmask import project
from reconciler.emulator.tts.validate import path_tree, validate_request
from reconciler.providers.tts import reference

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call
    from reconciler.emulator.tts.auth import Caller

ALWAYS = ("ids", "created_at", "updated_at", "deleted_at")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def mask_from_query(call: Call) -> list[str]:
    """The paths as the real gateway parses them: each value split on commas, nothing trimmed or
    dropped, so `field_mask=` is the path "" and `name,` is `name` and "" (no allow-list holds
    "", so the validator refuses them). Without the parameter the mask is empty."""
    return list(_mask_of_query(call.query_string))


@lru_cache(maxsize=1024)
def _mask_of_query(query_string: bytes) -> tuple[str, ...]:
    # Once per distinct query: a fleet's reads send the same mask for every device.
    from reconciler.emulator.tts.app import parsed_query

    query = parsed_query(query_string)
    paths: list[str] = []
    for raw in query.getlist("field_mask") + query.getlist("field_mask.paths"):
        paths.extend(raw.split(","))
    return tuple(paths)


def mask_from_body(body: dict[str, Any]) -> list[str]:
    raw = body.get("field_mask", body.get("fieldMask"))
    if raw is None:
        return []
    decoded = decode_value(message("SetEndDeviceRequest").fields["field_mask"], raw)
    return list(decoded.get("paths", [])) if decoded else []


def decode_request(request_type: str, body: dict[str, Any]) -> dict[str, Any]:
    return decode_message(message(request_type), body)


def validate_masked(
    request_type: str, request: dict[str, Any], wrapper: str, paths: list[str], extra: list[str]
) -> None:
    """Update/Set validate the masked fields plus the ids; an empty mask validates everything."""
    if not paths:
        validate_request(request_type, request)
        return
    tree_paths = [f"{wrapper}.{p}" for p in paths + extra]
    validate_request(request_type, request, path_tree(tree_paths))


def output(msg: str | Message, entity: dict[str, Any], paths: list[str] | None) -> dict[str, Any]:
    """Project on the mask plus the always-returned fields, then encode."""
    schema = message(msg) if isinstance(msg, str) else msg
    if paths is None:
        return encode_message(schema, entity)
    return encode_message(schema, project(entity, [*ALWAYS, *paths]))


def missing(needed: tuple[str, ...] | list[str], held: frozenset[str]) -> list[str]:
    return [r for r in needed if r not in held]


def enforce(
    rights: frozenset[str],
    needed: tuple[str, ...],
    uid: str,
    no_rights: Callable[..., errors.TTSError],
    insufficient: Callable[..., errors.TTSError],
) -> None:
    """The real order of checks: no right at all on the entity (it may not exist, or not be
    the caller's) is `no_*_rights`; some but not all is `insufficient_*_rights` with `missing`."""
    if not rights:
        raise no_rights(uid=uid)
    lacking = missing(needed, rights)
    if lacking:
        raise insufficient(uid=uid, missing=lacking)


def require_app(call: Call, app_id: str, *needed: str) -> Caller:
    """Rights on an application: 403 no_application_rights when none (missing app included)."""
    caller = call.caller()
    if needed and caller.universal.issuperset(needed):
        # An admin's key: whatever the application's collaborators hold, the rights below are
        # the universal ones plus more, so they hold everything needed.
        return caller
    app = call.store.applications.get(app_id)
    rights = call.emu.auth.collaborator_rights(caller, "application", app)
    if app is not None:
        rights = rights | caller.universal
    elif caller.universal:
        rights = caller.universal
    enforce(
        rights, needed, app_id, errors.no_application_rights, errors.insufficient_application_rights
    )
    return caller


def require_gateway(call: Call, gtw_id: str, *needed: str) -> Caller:
    caller = call.caller()
    gtw = call.store.gateways.get(gtw_id)
    rights = call.emu.auth.collaborator_rights(caller, "gateway", gtw)
    if gtw is not None or caller.universal:
        rights = rights | caller.universal
    enforce(rights, needed, gtw_id, errors.no_gateway_rights, errors.insufficient_gateway_rights)
    return caller


def require_user(call: Call, user_id: str, *needed: str) -> Caller:
    caller = call.caller()
    rights = call.emu.auth.user_rights(caller, user_id)
    enforce(rights, needed, user_id, errors.no_user_rights, errors.insufficient_user_rights)
    return caller


def require_organization(call: Call, org_id: str, *needed: str) -> Caller:
    caller = call.caller()
    rights = call.emu.auth.organization_rights(caller, org_id)
    enforce(
        rights,
        needed,
        org_id,
        errors.no_organization_rights,
        errors.insufficient_organization_rights,
    )
    return caller


def not_found(namespace: str, name: str, message_format: str, **attributes: Any) -> errors.TTSError:
    return errors.TTSError(namespace, name, message_format, errors.NOT_FOUND, attributes)


def field_value(
    namespace: str, field: str, cause: errors.TTSError | None = None
) -> errors.TTSError:
    return errors.TTSError(
        namespace,
        "field_value",
        "invalid value of field `{field}`",
        errors.INVALID_ARGUMENT,
        {"field": field},
        cause,
    )


def check_blocklist(entity_id: str) -> None:
    if entity_id in reference.id_blocklist():
        raise errors.forbidden_id(id=entity_id)


@cache
def _order_values(request_type: str) -> tuple[str, ...]:
    return tuple(message(request_type).fields["order"].rules.get("string.in", ()))


def list_params(
    call: Call, request_type: str, overrides: dict[str, str] | None = None
) -> tuple[str, int, int]:
    """(order, limit, page) from the query, validated as the request message's rules say."""
    raw: dict[str, Any] = dict(overrides or {})
    for name in ("order", "limit", "page"):
        value = call.query(name)
        if value is not None and name not in raw:
            raw[name] = value
    schema = message(request_type)
    decoded: dict[str, Any] = {}
    for name, value in raw.items():
        field_ = schema.fields[name]
        if field_.kind == "int" and not value.strip().isdigit():
            raise errors.DecodeError(f'strconv.ParseUint: parsing "{value}": invalid syntax')
        result = decode_value(field_, value)
        if result is not None:
            decoded[name] = result
    validate_request(request_type, decoded, path_tree(list(decoded)))
    limit = decoded.get("limit", 0) or DEFAULT_LIMIT
    page = decoded.get("page", 0) or 1
    return decoded.get("order", ""), limit, page


def paginate(items: list[Any], limit: int, page: int) -> list[Any]:
    start = (page - 1) * limit
    return items[start : start + limit]


def sort_entities(
    items: list[dict[str, Any]], order: str, default: str, keys: dict[str, Any]
) -> list[dict[str, Any]]:
    field = order.lstrip("-") or default
    key = keys.get(field, keys[default])
    return sorted(items, key=key, reverse=order.startswith("-"))


def deleted_param(call: Call) -> bool:
    value = call.query("deleted")
    if value is None:
        return False
    if value not in ("true", "false", "1", "0", "True", "False"):
        raise errors.DecodeError(f'strconv.ParseBool: parsing "{value}": invalid syntax')
    return value in ("true", "1", "True")
