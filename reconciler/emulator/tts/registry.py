"""What the NS, AS and JS end-device registries share: Get/Set/Delete with field masks,
non_zero_path, key rights and (JoinEUI, DevEUI) uniqueness (FACTS §a, §d, §f, §g)."""

from __future__ import annotations

import copy
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.codec import now_timestamp
from reconciler.emulator.tts.common import (
    decode_request,
    mask_from_query,
    not_found,
    output,
    require_app,
    validate_masked,
)
from reconciler.emulator.tts.devices import device_key, eui_index, eui_pair, remove_device
from reconciler.emulator.tts.events import device_identifiers, paths_data, publish_batch_delete
from reconciler.emulator.tts.fieldmask import check_allowed, check_non_zero
from reconciler.emulator.tts.validate import validate_request
from reconciler.providers.tts import reference

END_DEVICE = "ttn.lorawan.v3.EndDevice"

if TYPE_CHECKING:
    from reconciler.emulator.state import Table
    from reconciler.emulator.tts.app import Call, Operation

READ = "RIGHT_APPLICATION_DEVICES_READ"
WRITE = "RIGHT_APPLICATION_DEVICES_WRITE"
READ_KEYS = "RIGHT_APPLICATION_DEVICES_READ_KEYS"
WRITE_KEYS = "RIGHT_APPLICATION_DEVICES_WRITE_KEYS"
TRAFFIC_READ = "RIGHT_APPLICATION_TRAFFIC_READ"


def touches(paths: list[str], sensitive: tuple[str, ...]) -> bool:
    """Whether a mask names a sensitive path, one below it, or a parent covering it."""
    for path in paths:
        for key_path in sensitive:
            if (
                path == key_path
                or key_path.startswith(path + ".")
                or path.startswith(key_path + ".")
            ):
                return True
    return False


def euis_taken(join_eui: str, dev_eui: str) -> errors.TTSError:
    return errors.TTSError(
        "pkg/internal/registry",
        "end_device_euis_taken",
        "an end device with JoinEUI `{join_eui}` and DevEUI `{dev_eui}` is already registered",
        errors.ALREADY_EXISTS,
        {"join_eui": join_eui or "0000000000000000", "dev_eui": dev_eui},
    )


class DeviceRegistry:
    """One of the NS/AS/JS registries; subclasses add their semantic rules in `prepare`."""

    component = ""  # ns, as, js
    service = ""
    table_name = ""
    namespace = ""  # for device_not_found
    read_only_namespace = ""
    read_key_paths: tuple[str, ...] = ()
    write_key_paths: tuple[str, ...] = ()

    def table(self, call: Call) -> Table:
        table: Table = getattr(call.store, self.table_name)
        return table

    def get_not_found(self) -> errors.TTSError:
        return not_found("pkg/redis", "not_found", "entity not found")

    def delete_not_found(self, app_id: str, dev_id: str) -> errors.TTSError:
        return not_found(
            self.namespace,
            "device_not_found",
            "device `{device_uid}` not found",
            device_uid=f"{app_id}.{dev_id}",
        )

    def read_rights(self, paths: list[str]) -> list[str]:
        needed = [READ]
        if touches(paths, self.read_key_paths):
            needed.append(READ_KEYS)
        return needed

    # --- Get ---------------------------------------------------------------------------------

    def get(self, call: Call) -> dict[str, Any]:
        app_id, dev_id = call.params["app"], call.params["dev"]
        paths = mask_from_query(call)
        check_allowed(f"{self.service}/Get", paths)
        require_app(call, app_id, *_read_rights(self, tuple(paths)))
        device = self.table(call).get(device_key(app_id, dev_id))
        if device is None:
            raise self.get_not_found()
        return output("EndDevice", device, wire_paths(paths))

    # --- Set ---------------------------------------------------------------------------------

    def decode_set(self, call: Call) -> tuple[dict[str, Any], list[str]]:
        app_id = call.params["app"]
        request = decode_request("SetEndDeviceRequest", call.body)
        device = request.setdefault("end_device", {})
        ids = device.setdefault("ids", {})
        ids["application_ids"] = {"application_id": app_id}
        if "dev" in call.params:
            ids["device_id"] = call.params["dev"]
        paths = list(request.get("field_mask", {}).get("paths", []))
        check_allowed(f"{self.service}/Set", paths)
        check_non_zero(f"{self.service}/Set", paths, device)
        validate_masked(
            "SetEndDeviceRequest",
            request,
            "end_device",
            wire_paths(paths),
            ["ids.application_ids", "ids.device_id"],
        )
        return device, paths

    def pre_rights(self, call: Call, device: dict[str, Any], paths: list[str]) -> None:
        """Checks the server makes before looking at rights (JS: both EUIs present)."""

    def prepare(
        self,
        call: Call,
        existing: dict[str, Any] | None,
        device: dict[str, Any],
        paths: list[str],
    ) -> dict[str, Any]:
        """The device to store: `existing` with the masked fields of `device` applied."""
        raise NotImplementedError

    def created(self, call: Call, key: str) -> None:
        """A new record was stored under `key` (the NS starts the device's traffic)."""

    def check_read_only_ids(
        self, existing: dict[str, Any], device: dict[str, Any], paths: list[str]
    ) -> None:
        for name in ("join_eui", "dev_eui"):
            path = f"ids.{name}"
            if not any(p in (path, "ids") for p in paths):
                continue
            sent = device["ids"].get(name)
            if sent and sent != existing["ids"].get(name):
                raise errors.TTSError(
                    self.read_only_namespace,
                    "read_only_field",
                    "read-only field `{field}`",
                    errors.INVALID_ARGUMENT,
                    {"field": path},
                )

    def set(self, call: Call) -> dict[str, Any]:
        device, paths = self.decode_set(call)
        app_id = call.params["app"]
        dev_id = device["ids"]["device_id"]
        self.pre_rights(call, device, paths)
        needed = [WRITE]
        if touches(paths, self.write_key_paths):
            needed.append(WRITE_KEYS)
        require_app(call, app_id, *needed)
        key = device_key(app_id, dev_id)
        table = self.table(call)
        existing = table.get(key)
        if existing is not None:
            self.check_read_only_ids(existing, device, paths)
        stored = self.prepare(
            call, copy.deepcopy(existing) if existing else None, device, wire_paths(paths)
        )
        index = eui_index(call, table)
        pair = eui_pair(stored)
        if pair is not None and index.get(pair, key) != key:
            raise euis_taken(*pair)
        call.before_write()
        now = now_timestamp()
        if existing is None:
            stored["created_at"] = now
        stored["updated_at"] = now
        old_pair = eui_pair(existing) if existing else None
        if old_pair is not None and old_pair != pair:
            index.pop(old_pair, None)
        if pair is not None:
            index[pair] = key
        table.put(key, stored)
        if existing is None:
            self.created(call, key)
        verb = "create" if existing is None else "update"
        call.emu.events.publish(
            f"{self.component}.end_device.{verb}",
            device_identifiers(stored["ids"]),
            paths_data(paths),
        )
        return output("EndDevice", stored, wire_paths(paths))

    # --- Delete ------------------------------------------------------------------------------

    def _remove(self, call: Call, key: str) -> dict[str, Any] | None:
        return remove_device(call, self.table(call), key)

    def delete(self, call: Call) -> dict[str, Any]:
        app_id, dev_id = call.params["app"], call.params["dev"]
        require_app(call, app_id, WRITE)
        key = device_key(app_id, dev_id)
        if key not in self.table(call):
            raise self.delete_not_found(app_id, dev_id)
        call.before_write()
        device = self._remove(call, key)
        if device is not None:
            call.emu.events.publish(
                f"{self.component}.end_device.delete", device_identifiers(device["ids"])
            )
        return {}

    def batch_delete(self, call: Call) -> dict[str, Any]:
        app_id = call.params["app"]
        ids = [i for raw in call.query_list("device_ids") for i in raw.split(",") if i]
        validate_request(
            "BatchDeleteEndDevicesRequest",
            {"application_ids": {"application_id": app_id}, "device_ids": ids},
        )
        require_app(call, app_id, WRITE)
        call.before_write()
        removed = [self._remove(call, device_key(app_id, dev_id)) for dev_id in ids]
        deleted = [device["ids"] for device in removed if device is not None]
        publish_batch_delete(call, f"{self.component}.", app_id, deleted)
        return {}

    def operations(self) -> list[Operation]:
        from reconciler.emulator.tts.app import Operation

        base = f"/{self.component}/applications/{{app}}/devices"
        service = self.service
        batch = service.replace("EndDeviceRegistry", "EndDeviceBatchRegistry")
        return [
            Operation("DELETE", f"{base}/batch", f"{batch}/Delete", self.batch_delete, write=True),
            Operation("POST", base, f"{service}/Set", self.set, write=True, body=True),
            Operation("GET", f"{base}/{{dev}}", f"{service}/Get", self.get),
            Operation("PUT", f"{base}/{{dev}}", f"{service}/Set", self.set, write=True, body=True),
            Operation("DELETE", f"{base}/{{dev}}", f"{service}/Delete", self.delete, write=True),
        ]


@lru_cache(maxsize=1024)
def _read_rights(registry: DeviceRegistry, paths: tuple[str, ...]) -> tuple[str, ...]:
    # Once per registry and mask: a fleet's reads send the same mask for every device.
    return tuple(registry.read_rights(list(paths)))


@cache
def _wire_path(path: str) -> str:
    return reference.wire_path(END_DEVICE, path)


def wire_paths(paths: list[str]) -> list[str]:
    """Field-mask paths as the JSON spells them: masks name a oneof before its member
    (`mac_settings.adr.mode.dynamic`), the body holds the member directly (`adr.dynamic`)."""
    return [_wire_path(p) for p in paths]


def apply_ids_on_create(merged: dict[str, Any], device: dict[str, Any]) -> None:
    ids = device["ids"]
    merged["ids"] = {
        k: v
        for k, v in ids.items()
        if k in ("device_id", "application_ids", "dev_eui", "join_eui") and v
    }
