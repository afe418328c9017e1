"""The identity registry: devices, modules and their twins, as the hub keeps them.

Records are plain JSON-able dicts (so the state file can hold them); the `*_json` functions
render them in the wire shapes of the 2021-04-12 API. Each request runs to completion without
awaiting, so read-modify-write steps are atomic with respect to other requests.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import itertools
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from reconciler.emulator.iothub import errors, query, twin
from reconciler.emulator.iothub.faults import HubFaults
from reconciler.emulator.iothub.sas import decode_key, generate_key
from reconciler.emulator.iothub.store import IotHubStore
from reconciler.emulator.iothub.tables import AUTH_TYPES, STATUSES

ID_PATTERN = re.compile(r"[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}")
THUMBPRINT_PATTERN = re.compile(r"[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64}")
MAX_STATUS_REASON = 128
MAX_MODULES_PER_DEVICE = 50
NEVER = twin.NEVER
# .NET ticks (100 ns since 0001-01-01) at the Unix epoch: generation IDs look like the hub's.
_EPOCH_TICKS = 621355968000000000


def now_text() -> str:
    """A timestamp as the hub writes them: seven fractional digits, UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def device_etag(version: int) -> str:
    """Identity etags: base64 of the decimal version ("MA==" is version 0)."""
    return base64.b64encode(str(version).encode()).decode()


def check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise errors.argument_invalid(
            f"{what} {value!r} is invalid: 1-128 characters from A-Z a-z 0-9 and "
            "- : . + % _ # * ? ! ( ) , = @ ; $ '"
        )
    return value


class IfMatch:
    """The If-Match header: absent, `*`, or an entity tag (quoted or, leniently, not)."""

    __slots__ = ("etag", "present", "quoted", "wildcard")

    def __init__(self, header: str | None) -> None:
        self.present = header is not None
        text = (header or "").strip()
        self.quoted = len(text) >= 2 and text[0] == '"' and text[-1] == '"'
        self.etag = text[1:-1] if self.quoted else text
        self.wildcard = self.etag == "*"

    def stale(self, current: str) -> bool:
        """A quoted etag other than the current one fails; an unquoted one is ignored, as
        the hub ignores it."""
        return self.present and self.quoted and not self.wildcard and self.etag != current


# --- identity bodies ------------------------------------------------------------------------


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise errors.argument_invalid(f"{name} must be a string")
    return value


def _key(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    raw = decode_key(value) if isinstance(value, str) else None
    if raw is None or not 16 <= len(raw) <= 64:
        raise errors.argument_invalid(f"{name} must be a base64 string of 16 to 64 bytes")
    assert isinstance(value, str)
    return value


def _thumbprint(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not THUMBPRINT_PATTERN.fullmatch(value):
        raise errors.argument_invalid(f"{name} must be 40 or 64 hexadecimal characters")
    return value


def parse_authentication(value: Any) -> dict[str, Any]:
    """The stored authentication of a PUT body; keys are generated when none are given."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise errors.argument_invalid("authentication must be an object")
    symmetric = value.get("symmetricKey") or {}
    thumbprints = value.get("x509Thumbprint") or {}
    if not isinstance(symmetric, dict) or not isinstance(thumbprints, dict):
        raise errors.argument_invalid("symmetricKey and x509Thumbprint must be objects")
    kind = value.get("type")
    if kind is None:
        kind = "selfSigned" if thumbprints.get("primaryThumbprint") else "sas"
    if kind not in AUTH_TYPES:
        raise errors.argument_invalid(
            f"authentication.type {kind!r} is invalid: one of {', '.join(AUTH_TYPES)}"
        )
    auth: dict[str, Any] = {
        "type": kind,
        "primaryKey": None,
        "secondaryKey": None,
        "primaryThumbprint": None,
        "secondaryThumbprint": None,
    }
    if kind == "sas":
        primary = _key(symmetric.get("primaryKey"), "primaryKey")
        secondary = _key(symmetric.get("secondaryKey"), "secondaryKey")
        if (primary is None) != (secondary is None):
            raise errors.argument_invalid(
                "Both the primary and the secondary key must be given, or neither"
            )
        auth["primaryKey"] = primary or generate_key()
        auth["secondaryKey"] = secondary or generate_key()
    elif kind == "selfSigned":
        primary = _thumbprint(thumbprints.get("primaryThumbprint"), "primaryThumbprint")
        secondary = _thumbprint(thumbprints.get("secondaryThumbprint"), "secondaryThumbprint")
        if primary is None:
            raise errors.argument_invalid("selfSigned authentication needs a primaryThumbprint")
        auth["primaryThumbprint"] = primary
        auth["secondaryThumbprint"] = secondary
    return auth


def _body_object(body: Any, what: str) -> dict[str, Any]:
    if body is None:
        raise errors.argument_null(f"{what} cannot be null")
    if not isinstance(body, dict):
        raise errors.argument_invalid(f"{what} must be a JSON object")
    return body


def _status(body: dict[str, Any]) -> str:
    value = body.get("status")
    if value is None:
        return "enabled"
    if value not in STATUSES:
        raise errors.argument_invalid(f"status {value!r} is invalid: enabled or disabled")
    return str(value)


def _status_reason(body: dict[str, Any]) -> str | None:
    reason = _optional_str(body, "statusReason")
    if reason is not None and len(reason) > MAX_STATUS_REASON:
        raise errors.argument_invalid("statusReason is longer than 128 characters")
    return reason


def _edge(body: dict[str, Any]) -> bool:
    capabilities = body.get("capabilities")
    if capabilities is None:
        return False
    if not isinstance(capabilities, dict):
        raise errors.argument_invalid("capabilities must be an object")
    value = capabilities.get("iotEdge", False)
    if not isinstance(value, bool):
        raise errors.argument_invalid("capabilities.iotEdge must be a boolean")
    return value


def _scopes(body: dict[str, Any]) -> list[str]:
    value = body.get("parentScopes")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.argument_invalid("parentScopes must be an array of strings")
    return list(value)


# --- wire shapes ----------------------------------------------------------------------------


def authentication_json(auth: dict[str, Any]) -> dict[str, Any]:
    return {
        "symmetricKey": {"primaryKey": auth["primaryKey"], "secondaryKey": auth["secondaryKey"]},
        "x509Thumbprint": {
            "primaryThumbprint": auth["primaryThumbprint"],
            "secondaryThumbprint": auth["secondaryThumbprint"],
        },
        "type": auth["type"],
    }


def device_json(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "deviceId": record["deviceId"],
        "generationId": record["generationId"],
        "etag": device_etag(record["version"]),
        "connectionState": record["connectionState"],
        "status": record["status"],
        "statusReason": record["statusReason"],
        "connectionStateUpdatedTime": record["connectionStateUpdatedTime"],
        "statusUpdatedTime": record["statusUpdatedTime"],
        "lastActivityTime": record["lastActivityTime"],
        "cloudToDeviceMessageCount": record["cloudToDeviceMessageCount"],
        "authentication": authentication_json(record["auth"]),
        "capabilities": {"iotEdge": record["iotEdge"]},
        "deviceScope": record["deviceScope"],
        "parentScopes": list(record["parentScopes"]),
    }


def module_json(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "moduleId": record["moduleId"],
        "managedBy": record["managedBy"],
        "deviceId": record["deviceId"],
        "generationId": record["generationId"],
        "etag": device_etag(record["version"]),
        "connectionState": record["connectionState"],
        "connectionStateUpdatedTime": record["connectionStateUpdatedTime"],
        "lastActivityTime": record["lastActivityTime"],
        "cloudToDeviceMessageCount": record["cloudToDeviceMessageCount"],
        "authentication": authentication_json(record["auth"]),
    }


def twin_json(record: dict[str, Any]) -> dict[str, Any]:
    state = record["twin"]
    auth = record["auth"]
    result: dict[str, Any] = {"deviceId": record["deviceId"]}
    if "moduleId" in record:
        result["moduleId"] = record["moduleId"]
    result["etag"] = twin.twin_etag(state["etag"])
    result["deviceEtag"] = device_etag(record["version"])
    result["status"] = record.get("status", "enabled")
    if record.get("statusReason") is not None:
        result["statusReason"] = record["statusReason"]
    result["statusUpdateTime"] = record.get("statusUpdatedTime", NEVER)
    result["connectionState"] = record["connectionState"]
    result["lastActivityTime"] = record["lastActivityTime"]
    result["cloudToDeviceMessageCount"] = record["cloudToDeviceMessageCount"]
    result["authenticationType"] = auth["type"]
    result["x509Thumbprint"] = {
        "primaryThumbprint": auth["primaryThumbprint"],
        "secondaryThumbprint": auth["secondaryThumbprint"],
    }
    result["modelId"] = ""
    result["version"] = state["version"]
    if state["tags"]:
        result["tags"] = state["tags"]
    result["properties"] = {
        "desired": twin.properties_json(
            state["desired"], state["desiredMeta"], state["desiredVersion"]
        ),
        "reported": twin.properties_json(
            state["reported"], state["reportedMeta"], state["reportedVersion"]
        ),
    }
    if "moduleId" not in record:
        result["capabilities"] = {"iotEdge": record["iotEdge"]}
        if record["deviceScope"] is not None:
            result["deviceScope"] = record["deviceScope"]
        result["parentScopes"] = list(record["parentScopes"])
    return result


class TwinChange:
    """A validated twin write (PATCH merge or PUT replace), applied later in one step."""

    __slots__ = ("desired", "replace", "tags")

    def __init__(self, body: Any, *, replace: bool) -> None:
        body = _body_object(body, "The twin")
        self.replace = replace
        properties = body.get("properties")
        if properties is not None and not isinstance(properties, dict):
            raise errors.argument_invalid("properties must be an object")
        properties = properties or {}
        reported = _strip_system(properties.get("reported"))
        if reported:
            raise errors.argument_invalid(
                "Reported properties are written by the device; the service cannot set them"
            )
        nulls = not replace
        self.tags: dict[str, Any] | None = None
        self.desired: dict[str, Any] | None = None
        if "tags" in body or replace:
            self.tags = twin.check_collection(body.get("tags"), "tags", nulls=nulls)
        if "desired" in properties or replace:
            self.desired = twin.check_collection(
                _strip_system(properties.get("desired")), "properties.desired", nulls=nulls
            )

    def apply(self, state: dict[str, Any]) -> dict[str, Any]:
        """The new twin state (not stored yet); raises on a size limit."""
        now = now_text()
        new = dict(state)
        if self.tags is not None:
            tags = dict(self.tags) if self.replace else twin.merged(state["tags"], self.tags)
            twin.check_size(tags, "tags", twin.MAX_TAGS_BYTES)
            new["tags"] = tags
        if self.desired is not None:
            version = state["desiredVersion"] + 1
            if self.replace:
                desired = dict(self.desired)
                meta = twin.replaced_meta(desired, now, version)
            else:
                desired = twin.merged(state["desired"], self.desired)
                meta = twin.merged_meta(
                    state["desiredMeta"], state["desired"], self.desired, desired, now, version
                )
            twin.check_size(desired, "properties.desired", twin.MAX_DESIRED_BYTES)
            new["desired"] = desired
            new["desiredMeta"] = meta
            new["desiredVersion"] = version
        new["version"] = state["version"] + 1
        new["etag"] = state["etag"] + 1
        return new


def _strip_system(value: Any) -> Any:
    """`$metadata` and `$version` come back when a client sends a twin it read; not data."""
    if isinstance(value, dict) and ("$metadata" in value or "$version" in value):
        return {k: v for k, v in value.items() if k not in ("$metadata", "$version")}
    return value


# --- the registry ---------------------------------------------------------------------------


class Registry:
    def __init__(self, store: IotHubStore, faults: HubFaults) -> None:
        self.store = store
        self.devices = store.devices
        self.modules = store.modules
        self.faults = faults
        self._device_keys: list[str] | None = None
        self._module_keys: list[str] | None = None
        self._generation = itertools.count()

    # keys in query order, rebuilt lazily after creates and deletes

    def device_keys(self) -> list[str]:
        if self._device_keys is None:
            self._device_keys = sorted(key for key, _ in self.devices.items())
        return self._device_keys

    def module_keys(self) -> list[str]:
        if self._module_keys is None:
            self._module_keys = sorted(key for key, _ in self.modules.items())
        return self._module_keys

    def _changed_keys(self) -> None:
        self._device_keys = None
        self._module_keys = None

    def _generation_id(self) -> str:
        return str(_EPOCH_TICKS + int(time.time() * 10_000_000) + next(self._generation))

    # lookups

    def device(self, device_id: str, *, visible: bool = False) -> dict[str, Any]:
        record = self.devices.get(device_id)
        if record is None or (visible and self._hidden(record)):
            raise errors.device_not_found(device_id)
        return record  # type: ignore[no-any-return]

    def _hidden(self, record: dict[str, Any]) -> bool:
        """Within the visibility delay after a create, a GET answers 404 (the hub's registry is
        eventually consistent)."""
        delay = self.faults.visibility_delay_s
        return delay > 0 and time.time() - record.get("createdAt", 0.0) < delay

    def module(self, device_id: str, module_id: str) -> dict[str, Any]:
        self.device(device_id)
        record = self.modules.get(module_key(device_id, module_id))
        if record is None:
            raise errors.module_not_found(device_id, module_id)
        return record  # type: ignore[no-any-return]

    def modules_of(self, device_id: str) -> list[dict[str, Any]]:
        keys = self.module_keys()
        prefix = module_key(device_id, "")
        start = bisect.bisect_left(keys, prefix)
        result = []
        for key in keys[start:]:
            if not key.startswith(prefix):
                break
            result.append(self.modules.get(key))
        return result

    # device identities

    def _edge_scope_exists(self, scope: str) -> bool:
        return any(
            record["iotEdge"] and record["deviceScope"] == scope for record in self.devices.values()
        )

    def identity_fields(self, body: dict[str, Any], device_id: str) -> dict[str, Any]:
        if body.get("deviceId") != device_id:
            raise errors.argument_invalid(
                f"The deviceId in the body ({body.get('deviceId')!r}) does not match the "
                f"deviceId in the URI ({device_id!r})"
            )
        fields: dict[str, Any] = {
            "status": _status(body),
            "statusReason": _status_reason(body),
            "auth": parse_authentication(body.get("authentication")),
            "iotEdge": _edge(body),
            "deviceScope": _optional_str(body, "deviceScope") or None,
            "parentScopes": _scopes(body),
        }
        if fields["auth"]["type"] == "none":
            raise errors.argument_invalid("A device cannot have authentication type none")
        return fields

    def _link_scopes(self, fields: dict[str, Any], record: dict[str, Any] | None) -> None:
        """Edge devices keep the scope the hub generated; leaf devices name a parent's."""
        if fields["iotEdge"]:
            fields["deviceScope"] = (
                record["deviceScope"] if record is not None and record["iotEdge"] else None
            )
            for scope in fields["parentScopes"]:
                if not self._edge_scope_exists(scope):
                    raise errors.argument_invalid(f"parent scope {scope!r} is not an edge device")
        else:
            scope = fields["deviceScope"]
            if scope is not None:
                if not self._edge_scope_exists(scope):
                    raise errors.argument_invalid(
                        f"deviceScope {scope!r} is not the scope of an edge device"
                    )
                fields["parentScopes"] = [scope]
            else:
                fields["parentScopes"] = []

    def put_device(self, device_id: str, body: Any, if_match: IfMatch) -> dict[str, Any]:
        check_id(device_id, "deviceId")
        fields = self.identity_fields(_body_object(body, "The device"), device_id)
        existing = self.devices.get(device_id)
        if existing is None:
            if if_match.present:
                raise errors.device_not_found(device_id)
            record = self.create_device(device_id, fields)
        else:
            if not if_match.present:
                raise errors.device_already_exists(device_id)
            self._check_etag(if_match, existing, "Device")
            record = self.update_device(existing, fields)
        return device_json(record)

    def _check_etag(self, if_match: IfMatch, record: dict[str, Any], kind: str) -> None:
        if if_match.stale(device_etag(record["version"])):
            raise errors.precondition_failed(kind, record["version"], record["version"] + 1)

    def create_device(self, device_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        self._link_scopes(fields, None)
        generation = self._generation_id()
        if fields["iotEdge"]:
            fields["deviceScope"] = f"ms-azure-iot-edge://{device_id}-{generation}"
        record: dict[str, Any] = {
            "deviceId": device_id,
            "generationId": generation,
            "version": 0,
            "connectionState": "Disconnected",
            "connectionStateUpdatedTime": NEVER,
            "statusUpdatedTime": NEVER,
            "lastActivityTime": NEVER,
            "cloudToDeviceMessageCount": 0,
            "createdAt": time.time(),
            "twin": twin.new_twin(),
            **fields,
        }
        self.devices.put(device_id, record)
        self._changed_keys()
        return record

    def update_device(self, existing: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        self._link_scopes(fields, existing)
        if fields["iotEdge"] and fields["deviceScope"] is None:
            fields["deviceScope"] = (
                f"ms-azure-iot-edge://{existing['deviceId']}-{existing['generationId']}"
            )
        record = {**existing, **fields, "version": existing["version"] + 1}
        if fields["status"] != existing["status"]:
            record["statusUpdatedTime"] = now_text()
        self.devices.put(record["deviceId"], record)
        return record

    def delete_device(self, device_id: str, if_match: IfMatch) -> None:
        record = self.device(device_id)
        self._check_etag(if_match, record, "Device")
        self.remove_device(device_id)

    def remove_device(self, device_id: str) -> None:
        for module in self.modules_of(device_id):
            self.modules.delete(module_key(device_id, module["moduleId"]))
        self.devices.delete(device_id)
        self._changed_keys()

    def list_devices(self, top: int) -> list[dict[str, Any]]:
        keys = self.device_keys()[:top]
        return [device_json(self.devices.get(key)) for key in keys]

    # module identities

    def put_module(
        self, device_id: str, module_id: str, body: Any, if_match: IfMatch
    ) -> dict[str, Any]:
        check_id(device_id, "deviceId")
        check_id(module_id, "moduleId")
        body = _body_object(body, "The module")
        if body.get("moduleId") != module_id:
            raise errors.argument_invalid(
                f"The moduleId in the body ({body.get('moduleId')!r}) does not match the "
                f"moduleId in the URI ({module_id!r})"
            )
        if body.get("deviceId") not in (None, device_id):
            raise errors.argument_invalid("The deviceId in the body does not match the URI")
        fields = {
            "managedBy": _optional_str(body, "managedBy"),
            "auth": parse_authentication(body.get("authentication")),
        }
        self.device(device_id)
        key = module_key(device_id, module_id)
        existing = self.modules.get(key)
        if existing is None:
            if if_match.present:
                raise errors.module_not_found(device_id, module_id)
            if len(self.modules_of(device_id)) >= MAX_MODULES_PER_DEVICE:
                raise errors.IotHubError(
                    "TooManyModulesOnDevice",
                    f"Device '{device_id}' already has {MAX_MODULES_PER_DEVICE} modules",
                )
            record = self.create_module(device_id, module_id, fields)
        else:
            if not if_match.present:
                raise errors.module_already_exists(device_id, module_id)
            self._check_etag(if_match, existing, "Module")
            record = {**existing, **fields, "version": existing["version"] + 1}
            self.modules.put(key, record)
        return module_json(record)

    def create_module(
        self, device_id: str, module_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "deviceId": device_id,
            "moduleId": module_id,
            "generationId": self._generation_id(),
            "version": 0,
            "connectionState": "Disconnected",
            "connectionStateUpdatedTime": NEVER,
            "lastActivityTime": NEVER,
            "cloudToDeviceMessageCount": 0,
            "twin": twin.new_twin(),
            **fields,
        }
        self.modules.put(module_key(device_id, module_id), record)
        self._changed_keys()
        return record

    def delete_module(self, device_id: str, module_id: str, if_match: IfMatch) -> None:
        record = self.module(device_id, module_id)
        self._check_etag(if_match, record, "Module")
        self.modules.delete(module_key(device_id, module_id))
        self._changed_keys()

    # twins

    def twin_record(self, device_id: str, module_id: str | None) -> dict[str, Any]:
        if module_id is None:
            return self.device(device_id, visible=True)
        return self.module(device_id, module_id)

    def write_twin(
        self, device_id: str, module_id: str | None, body: Any, if_match: IfMatch, replace: bool
    ) -> dict[str, Any]:
        change = TwinChange(body, replace=replace)
        record = self.twin_record(device_id, module_id)
        state = record["twin"]
        if if_match.stale(twin.twin_etag(state["etag"])):
            raise errors.precondition_failed("Twin", state["version"], state["version"] + 1)
        record = {**record, "twin": change.apply(state)}
        self.store_record(record)
        return twin_json(record)

    def store_record(self, record: dict[str, Any]) -> None:
        if "moduleId" in record:
            self.modules.put(module_key(record["deviceId"], record["moduleId"]), record)
        else:
            self.devices.put(record["deviceId"], record)

    # the device side

    def device_activity(self, device_id: str) -> None:
        """A device-to-cloud message over HTTPS: activity is recorded; HTTPS devices do not
        count as connected, so the state stays Disconnected."""
        record = self.devices.get(device_id)
        if record is None:
            raise errors.device_not_found(device_id)
        now = now_text()
        self.devices.put(
            device_id, {**record, "lastActivityTime": now, "connectionStateUpdatedTime": now}
        )

    # queries

    def query_page(
        self, text: str, continuation: str | None, page_size: int
    ) -> tuple[list[dict[str, Any]], str | None, str]:
        """One page of a query: items, the next continuation token (None when done) and the
        item type. Pages follow key order, so a token stays valid while devices change."""
        parsed = query.parse(text)
        modules = parsed.source == "devices.modules"
        table = self.modules if modules else self.devices
        keys = self.module_keys() if modules else self.device_keys()
        condition = parsed.condition
        if parsed.count_alias is not None:
            count = 0
            for key in keys:
                if condition is None or condition(twin_json(table.get(key))) is True:
                    count += 1
            return [{parsed.count_alias: count}], None, "raw"
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        start = 0
        if continuation:
            start = bisect.bisect_right(keys, _decode_continuation(continuation, digest))
        items: list[dict[str, Any]] = []
        last = None
        index = start
        for index in range(start, len(keys)):
            key = keys[index]
            item = twin_json(table.get(key))
            if condition is None or condition(item) is True:
                items.append(item)
                last = key
                if len(items) == page_size:
                    break
        more = last is not None and index + 1 < len(keys)
        token = _encode_continuation(last, digest) if more and last is not None else None
        return items, token, "twin"

    # statistics

    def device_statistics(self) -> dict[str, int]:
        total = enabled = 0
        for record in self.devices.values():
            total += 1
            enabled += record["status"] == "enabled"
        return {
            "totalDeviceCount": total,
            "enabledDeviceCount": enabled,
            "disabledDeviceCount": total - enabled,
        }


def _encode_continuation(last_key: str, digest: str) -> str:
    raw = json.dumps({"k": last_key, "q": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continuation(token: str, digest: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        data = None
    if not isinstance(data, dict) or data.get("q") != digest or not isinstance(data.get("k"), str):
        raise errors.argument_invalid("The continuation token is invalid for this query")
    return str(data["k"])


def module_key(device_id: str, module_id: str) -> str:
    # "/" cannot occur in IDs, so it separates them and sorts modules by device.
    return f"{device_id}/{module_id}"
