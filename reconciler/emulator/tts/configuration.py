"""Routes clients such as the official JavaScript SDK (and the Console built on it) call besides
the registries: the admin user listing, frequency plans, DevAddr generation, JoinEUI prefixes
and webhook templates. Routes and answers follow api-definition.json and the response
messages of the reference tables.

Like the real servers, only the user listing checks the caller (admins only); the others
answer anyone. What this emulator cannot know as a real deployment does is said here:
frequency plans carry their ID and band (names and base frequencies live in the plan files, not
in the tables, so a `base_frequency` filter matches none), the
Network Server's NetID is 000013 (The Things Network's, DevAddr prefix 26000000/7), the Join
Server has one JoinEUI prefix covering every JoinEUI (the default configuration), and no
webhook templates are configured (a deployment without templates lists none).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.codec import timestamp_key
from reconciler.emulator.tts.common import (
    list_params,
    mask_from_query,
    not_found,
    output,
    paginate,
    sort_entities,
)
from reconciler.emulator.tts.fieldmask import check_allowed
from reconciler.providers.tts import reference

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call, Operation

IS = "pkg/identityserver"
# The Things Network's NetID 000013 (type 0): DevAddrs 26000000/7.
DEV_ADDR_PREFIX = 0x26000000
DEV_ADDR_PREFIX_BITS = 7


def list_users(call: Call) -> Any:
    from reconciler.emulator.tts.app import JSONResponse

    paths = mask_from_query(call)
    check_allowed("UserRegistry/List", paths)
    order, limit, page = list_params(call, "ListUsersRequest")
    if not call.caller().is_admin:
        raise errors.TTSError(
            IS, "permission_denied", "permission denied", errors.PERMISSION_DENIED
        )
    deleted = call.query("deleted") == "true"
    users = [
        record["user"]
        for record in call.store.users.values()
        if bool(record["user"].get("deleted_at")) == deleted
    ]
    keys: dict[str, Any] = {
        "user_id": lambda u: u["ids"]["user_id"],
        "name": lambda u: (u.get("name", ""), u["ids"]["user_id"]),
        "primary_email_address": lambda u: u.get("primary_email_address", ""),
        "state": lambda u: u.get("state", ""),
        "admin": lambda u: bool(u.get("admin")),
        "created_at": lambda u: timestamp_key(u["created_at"]),
    }
    users = sort_entities(users, order, "user_id", keys)
    page_users = paginate(users, limit, page)
    body = {"users": [output("User", u, paths) for u in page_users]} if page_users else {}
    return JSONResponse(body, 200, {"X-Total-Count": str(len(users))})


def list_frequency_plans(call: Call) -> dict[str, Any]:
    band = call.query("band_id")
    base_frequency = call.query("base_frequency")
    plans = [
        {"id": plan_id, "band_id": band_id}
        for plan_id, band_id in sorted(reference.frequency_plans().items())
        if (not band or band_id == band) and base_frequency in (None, "", "0")
    ]
    return {"frequency_plans": plans} if plans else {}


def generate_dev_addr(call: Call) -> dict[str, Any]:
    host_bits = 32 - DEV_ADDR_PREFIX_BITS
    dev_addr = DEV_ADDR_PREFIX | secrets.randbelow(1 << host_bits)
    return {"dev_addr": f"{dev_addr:08X}"}


def join_eui_prefixes(call: Call) -> dict[str, Any]:
    # One prefix of length 0 (every JoinEUI): all its fields are zero, so it is written `{}`.
    return {"prefixes": [{}]}


def list_webhook_templates(call: Call) -> dict[str, Any]:
    check_allowed("ApplicationWebhookRegistry/ListTemplates", mask_from_query(call))
    return {}


def get_webhook_template(call: Call) -> dict[str, Any]:
    check_allowed("ApplicationWebhookRegistry/GetTemplate", mask_from_query(call))
    raise not_found(
        "pkg/applicationserver/io/web/templates",
        "template_not_found",
        "template `{template_id}` not found",
        template_id=call.params["template"],
    )


def operations() -> list[Operation]:
    from reconciler.emulator.tts.app import Operation

    return [
        Operation("GET", "/users", "UserRegistry/List", list_users),
        Operation(
            "GET",
            "/configuration/frequency-plans",
            "Configuration/ListFrequencyPlans",
            list_frequency_plans,
        ),
        Operation("GET", "/ns/dev_addr", "Ns/GenerateDevAddr", generate_dev_addr),
        Operation("GET", "/js/join_eui_prefixes", "Js/GetJoinEUIPrefixes", join_eui_prefixes),
        Operation(
            "GET",
            "/as/webhook-templates",
            "ApplicationWebhookRegistry/ListTemplates",
            list_webhook_templates,
        ),
        Operation(
            "GET",
            "/as/webhook-templates/{template}",
            "ApplicationWebhookRegistry/GetTemplate",
            get_webhook_template,
        ),
    ]
