"""`POST /devices`: up to 100 registry operations in one request, each with its own outcome.

The request as a whole fails with the normal error envelope (not an array, more than 100
entries, a device named twice, an unknown import mode). Otherwise every entry is applied in
order, independently: failures are listed in `errors[]` and the answer is 400 with the same
body shape, as the hub answers; entries that succeeded stay applied.
"""

from __future__ import annotations

from typing import Any

from reconciler.emulator.iothub import errors
from reconciler.emulator.iothub.registry import (
    IfMatch,
    Registry,
    TwinChange,
    check_id,
    device_etag,
    module_key,
    parse_authentication,
)
from reconciler.emulator.iothub.tables import IMPORT_MODES
from reconciler.emulator.iothub.twin import twin_etag

MAX_ENTRIES = 100


def _unquoted(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def _twin_change(entry: dict[str, Any]) -> TwinChange | None:
    if entry.get("tags") is None and not (entry.get("properties") or {}).get("desired"):
        return None
    body: dict[str, Any] = {}
    if entry.get("tags") is not None:
        body["tags"] = entry["tags"]
    properties = entry.get("properties")
    if isinstance(properties, dict) and properties.get("desired") is not None:
        body["properties"] = {"desired": properties["desired"]}
    return TwinChange(body, replace=False)


class BulkOperation:
    def __init__(self, registry: Registry, body: Any) -> None:
        self.registry = registry
        self.entries = self._validate(body)
        self.errors: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []

    @staticmethod
    def _validate(body: Any) -> list[dict[str, Any]]:
        if body is None:
            raise errors.argument_null("The list of devices cannot be null")
        if not isinstance(body, list):
            raise errors.argument_invalid("The body must be a JSON array of devices")
        if len(body) > MAX_ENTRIES:
            raise errors.IotHubError(
                "TooManyDevices",
                f"Too many devices: {len(body)}. At most {MAX_ENTRIES} devices per request",
            )
        seen: set[str] = set()
        for entry in body:
            if not isinstance(entry, dict):
                raise errors.argument_invalid("Each entry must be a JSON object")
            device_id = entry.get("id")
            if not isinstance(device_id, str):
                raise errors.argument_invalid("Each entry needs an id")
            if device_id in seen:
                raise errors.IotHubError(
                    "DeviceDefinedMultipleTimes",
                    f"DeviceDefinedMultipleTimes, device ID {device_id}",
                )
            seen.add(device_id)
            mode = entry.get("importMode")
            if mode not in IMPORT_MODES:
                raise errors.argument_invalid(
                    f"importMode {mode!r} is invalid: one of {', '.join(IMPORT_MODES)}"
                )
        return body

    def run(self) -> tuple[int, dict[str, Any]]:
        for entry in self.entries:
            try:
                self._apply(entry)
            except errors.IotHubError as error:
                failure: dict[str, Any] = {"deviceId": entry["id"]}
                if entry.get("moduleId") is not None:
                    failure["moduleId"] = entry["moduleId"]
                failure.update(
                    errorCode=error.name, errorStatus=error.text, operation=entry["importMode"]
                )
                self.errors.append(failure)
        result = {
            "isSuccessful": not self.errors,
            "errors": self.errors,
            "warnings": self.warnings,
        }
        return (400 if self.errors else 200), result

    def _apply(self, entry: dict[str, Any]) -> None:
        device_id = check_id(entry["id"], "deviceId")
        module_id = entry.get("moduleId")
        if module_id is not None:
            self._apply_module(entry, device_id, check_id(module_id, "moduleId"))
            return
        registry = self.registry
        mode: str = entry["importMode"]
        existing = registry.devices.get(device_id)
        if mode == "create":
            if existing is not None:
                raise errors.device_already_exists(device_id)
            fields = registry.identity_fields(self._identity_body(entry), device_id)
            change = self._twin_or_none(entry)
            record = registry.create_device(device_id, fields)
            self._apply_twin(record, change, entry)
            return
        if existing is None:
            raise errors.device_not_found(device_id)
        if mode in ("update", "updateIfMatchETag"):
            if mode == "updateIfMatchETag":
                self._check(entry.get("eTag"), device_etag(existing["version"]), existing)
            fields = registry.identity_fields(self._identity_body(entry), device_id)
            change = _twin_change(entry)
            record = registry.update_device(existing, fields)
            self._apply_twin(record, change, entry)
        elif mode in ("delete", "deleteIfMatchETag"):
            if mode == "deleteIfMatchETag":
                self._check(entry.get("eTag"), device_etag(existing["version"]), existing)
            registry.remove_device(device_id)
        else:  # updateTwin, updateTwinIfMatchETag
            if mode == "updateTwinIfMatchETag":
                self._check_twin(entry.get("twinETag"), existing)
            change = _twin_change(entry)
            self._apply_twin(existing, change, entry)

    def _apply_module(self, entry: dict[str, Any], device_id: str, module_id: str) -> None:
        registry = self.registry
        mode: str = entry["importMode"]
        registry.device(device_id)
        key = module_key(device_id, module_id)
        existing = registry.modules.get(key)
        fields = {
            "managedBy": entry.get("managedBy"),
            "auth": parse_authentication(entry.get("authentication")),
        }
        if mode == "create":
            if existing is not None:
                raise errors.module_already_exists(device_id, module_id)
            change = self._twin_or_none(entry)
            record = registry.create_module(device_id, module_id, fields)
            self._apply_twin(record, change, entry)
            return
        if existing is None:
            raise errors.module_not_found(device_id, module_id)
        if mode in ("update", "updateIfMatchETag"):
            if mode == "updateIfMatchETag":
                self._check(entry.get("eTag"), device_etag(existing["version"]), existing)
            record = {**existing, **fields, "version": existing["version"] + 1}
            registry.modules.put(key, record)
            self._apply_twin(record, _twin_change(entry), entry)
        elif mode in ("delete", "deleteIfMatchETag"):
            if mode == "deleteIfMatchETag":
                self._check(entry.get("eTag"), device_etag(existing["version"]), existing)
            registry.delete_module(device_id, module_id, IfMatch(None))
        else:
            if mode == "updateTwinIfMatchETag":
                self._check_twin(entry.get("twinETag"), existing)
            self._apply_twin(existing, _twin_change(entry), entry)

    @staticmethod
    def _identity_body(entry: dict[str, Any]) -> dict[str, Any]:
        body = {
            name: entry.get(name)
            for name in ("status", "statusReason", "authentication", "capabilities")
        }
        body["deviceId"] = entry["id"]
        body["deviceScope"] = entry.get("deviceScope")
        body["parentScopes"] = entry.get("parentScopes")
        return body

    def _twin_or_none(self, entry: dict[str, Any]) -> TwinChange | None:
        """Twin data on a create: invalid data still registers the device, with a warning."""
        try:
            return _twin_change(entry)
        except errors.IotHubError as error:
            self._warn(entry, error)
            return None

    def _warn(self, entry: dict[str, Any], error: errors.IotHubError) -> None:
        self.warnings.append(
            {
                "deviceId": entry["id"],
                "warningCode": "DeviceRegisteredWithoutTwin",
                "warningStatus": error.text,
            }
        )

    def _apply_twin(
        self, record: dict[str, Any], change: TwinChange | None, entry: dict[str, Any]
    ) -> None:
        if change is None:
            return
        try:
            new_state = change.apply(record["twin"])
        except errors.IotHubError as error:
            if entry["importMode"] == "create":
                self._warn(entry, error)
                return
            raise
        self.registry.store_record({**record, "twin": new_state})

    @staticmethod
    def _check(sent: Any, current: str, record: dict[str, Any]) -> None:
        if _unquoted(sent) != current:
            raise errors.precondition_failed("Device", record["version"], record["version"] + 1)

    @staticmethod
    def _check_twin(sent: Any, record: dict[str, Any]) -> None:
        state = record["twin"]
        if _unquoted(sent) != twin_etag(state["etag"]):
            raise errors.precondition_failed("Twin", state["version"], state["version"] + 1)
