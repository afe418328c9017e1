"""Rules of the gateway registry that applications do not have: secret fields, the derived
frequency plan, and EUIs unique among all gateways."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.identity.shared import IS

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call

# Reading or writing these needs RIGHT_GATEWAY_READ_SECRETS / RIGHT_GATEWAY_WRITE_SECRETS.
SECRET_PATHS = ("lbs_lns_secret", "target_cups_key", "claim_authentication_code")


def touches_secrets(paths: list[str]) -> bool:
    return any(p.startswith(SECRET_PATHS) for p in paths)


def sync_frequency_plan(entity: dict[str, Any]) -> None:
    """`frequency_plan_id` is derived from `frequency_plan_ids[0]`, as the real server does."""
    ids = entity.get("frequency_plan_ids")
    if ids:
        entity["frequency_plan_id"] = ids[0]
    elif entity.get("frequency_plan_id"):
        entity["frequency_plan_ids"] = [entity["frequency_plan_id"]]
    else:
        entity.pop("frequency_plan_id", None)


def require_free_eui(call: Call, eui: str, gateway_id: str = "") -> None:
    """409 `gateway_eui_taken` when another gateway (soft-deleted ones included) has the EUI."""
    for record in call.store.gateways.values():
        ids = record["gateway"]["ids"]
        if ids.get("eui") == eui and ids["gateway_id"] != gateway_id:
            raise errors.TTSError(
                IS,
                "gateway_eui_taken",
                "gateway with EUI `{gateway_eui}` is already registered as `{gateway_id}`",
                errors.ALREADY_EXISTS,
                {"gateway_eui": eui, "gateway_id": str(ids["gateway_id"])},
            )


def set_eui(call: Call, stored: dict[str, Any], eui: str) -> None:
    if eui:
        require_free_eui(call, eui, stored["ids"]["gateway_id"])
        stored["ids"] = {**stored["ids"], "eui": eui}
    else:
        stored["ids"] = {k: v for k, v in stored["ids"].items() if k != "eui"}
