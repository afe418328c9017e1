"""Join Server end-device registry: root keys (FACTS §d, §g)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.common import field_value, not_found
from reconciler.emulator.tts.fieldmask import get_path, merge
from reconciler.emulator.tts.registry import DeviceRegistry, apply_ids_on_create

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call, Operation

JS = "pkg/joinserver"
ROOT_KEY_PATHS = ("root_keys.app_key.key", "root_keys.nwk_key.key")
ZERO_KEY = "0" * 32


class JoinServer(DeviceRegistry):
    component = "js"
    service = "JsEndDeviceRegistry"
    table_name = "js_devices"
    namespace = JS
    read_only_namespace = "pkg/joinserver"
    read_key_paths = ROOT_KEY_PATHS
    write_key_paths = (*ROOT_KEY_PATHS, "root_keys.root_key_id")

    def get_not_found(self) -> errors.TTSError:
        return not_found(JS, "device_not_found", "device not found")

    def delete_not_found(self, app_id: str, dev_id: str) -> errors.TTSError:
        return not_found(JS, "device_not_found", "device not found")

    def pre_rights(self, call: Call, device: dict[str, Any], paths: list[str]) -> None:
        # The JS keys its registry by EUIs: both are required in every Set body (FACTS §a).
        ids = device["ids"]
        if not ids.get("join_eui"):
            raise errors.TTSError(
                JS, "no_join_eui", "no JoinEUI specified", errors.INVALID_ARGUMENT
            )
        if not ids.get("dev_eui") or ids["dev_eui"] == "0000000000000000":
            raise errors.TTSError(JS, "no_dev_eui", "no DevEUI specified", errors.INVALID_ARGUMENT)

    def prepare(
        self,
        call: Call,
        existing: dict[str, Any] | None,
        device: dict[str, Any],
        paths: list[str],
    ) -> dict[str, Any]:
        if device["ids"].get("dev_addr"):
            if existing is None:
                raise field_value(JS, "ids.dev_addr")
            raise errors.TTSError(JS, "field_mask", "invalid field mask", errors.INVALID_ARGUMENT)
        if any(p.startswith("claim_authentication_code") for p in paths):
            call.warn(
                "Storage of claim authentication code in the Join Server registry is deprecated"
            )
        merged: dict[str, Any] = existing if existing is not None else {}
        if existing is None:
            apply_ids_on_create(merged, device)
        else:
            for name in ("join_eui", "dev_eui"):
                if device["ids"].get(name) != existing["ids"].get(name):
                    raise errors.TTSError(
                        self.read_only_namespace,
                        "read_only_field",
                        "read-only field `{field}`",
                        errors.INVALID_ARGUMENT,
                        {"field": f"ids.{name}"},
                    )
        merge(merged, device, [p for p in paths if p != "ids" and not p.startswith("ids.")])
        if "root_keys.app_key.key" in paths and not get_path(merged, "root_keys.app_key.key"):
            raise field_value(JS, "root_keys.app_key.key")
        root_keys = merged.get("root_keys")
        if isinstance(root_keys, dict):
            for name in ("app_key", "nwk_key"):
                envelope = root_keys.get(name)
                if isinstance(envelope, dict):
                    # Stored wrapped by the JS; only the plaintext key is ever returned.
                    envelope.pop("encrypted_key", None)
                    envelope.pop("kek_label", None)
                    if envelope.get("key") == ZERO_KEY and name == "nwk_key":
                        root_keys.pop(name)
        return merged

    def check_read_only_ids(
        self, existing: dict[str, Any], device: dict[str, Any], paths: list[str]
    ) -> None:
        """EUIs are compared in `prepare` (they are always in the JS body)."""


REGISTRY = JoinServer()


def operations() -> list[Operation]:
    return REGISTRY.operations()
