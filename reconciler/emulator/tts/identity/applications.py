"""Rules of the application registry that gateways do not have: devices block deletion, and a
purge takes the application's link and webhooks with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.identity.shared import IS
from reconciler.emulator.tts.packages import purge_application_packages

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call


def require_no_devices(call: Call, app_id: str) -> None:
    prefix = app_id + "/"
    count = sum(1 for key, _ in call.store.is_devices.items() if key.startswith(prefix))
    if count:
        raise errors.TTSError(
            IS,
            "application_has_devices",
            "application still has `{count}` devices",
            errors.FAILED_PRECONDITION,
            {"count": count},
        )


def purge_application_data(call: Call, app_id: str) -> None:
    call.store.links.delete(app_id)
    for table in (call.store.webhooks, call.store.pubsubs):
        for key, _ in table.items():
            if key.startswith(app_id + "/"):
                table.delete(key)
    purge_application_packages(call, app_id)
