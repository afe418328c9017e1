"""Twin documents: limits, PATCH merge (null removes), PUT replace, `$metadata` and `$version`.

`tags` carry no metadata; `properties.desired` and `properties.reported` keep a metadata tree
beside the values: `$lastUpdated` on every node and `$lastUpdatedVersion` (the collection's
`$version` of the change) on every node below the root, as the hub returns them.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from reconciler.emulator.iothub import errors

NEVER = "0001-01-01T00:00:00Z"
MAX_DEPTH = 10
MAX_KEY_BYTES = 1024
MAX_STRING_BYTES = 4096
MIN_INT = -4503599627370496
MAX_INT = 4503599627370495
MAX_TAGS_BYTES = 8 * 1024
MAX_DESIRED_BYTES = 32 * 1024
_FORBIDDEN_KEY_CHARS = frozenset(".$ ")


def new_twin() -> dict[str, Any]:
    return {
        "version": 1,
        "etag": 1,
        "tags": {},
        "desired": {},
        "reported": {},
        "desiredVersion": 1,
        "reportedVersion": 1,
        "desiredMeta": {"$lastUpdated": NEVER},
        "reportedMeta": {"$lastUpdated": NEVER},
    }


def twin_etag(counter: int) -> str:
    return base64.b64encode(counter.to_bytes(8, "big")).decode()


def _check_key(key: str, where: str) -> None:
    if not key:
        raise errors.argument_invalid(f"{where}: property names must not be empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise errors.argument_invalid(f"{where}: property name longer than 1 KB")
    for char in key:
        if char in _FORBIDDEN_KEY_CHARS or ord(char) < 0x20 or ord(char) == 0x7F:
            raise errors.argument_invalid(
                f"{where}: property name {key!r} contains a character that is not allowed "
                "(control characters, '.', '$' and space are not)"
            )


def _check_value(value: Any, where: str, depth: int, nulls: bool) -> None:
    if depth > MAX_DEPTH:
        raise errors.argument_invalid(f"{where}: nesting deeper than {MAX_DEPTH} levels")
    if value is None:
        if not nulls:
            raise errors.argument_invalid(f"{where}: null values are not allowed here")
    elif isinstance(value, bool | float):
        pass
    elif isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise errors.argument_invalid(f"{where}: integer {value} is out of range")
    elif isinstance(value, str):
        if len(value.encode()) > MAX_STRING_BYTES:
            raise errors.argument_invalid(f"{where}: string value longer than 4 KB")
    elif isinstance(value, dict):
        for key, child in value.items():
            _check_key(key, where)
            _check_value(child, f"{where}.{key}", depth + 1, nulls)
    elif isinstance(value, list):
        for child in value:
            # Arrays hold values; null inside an array is a value, not a removal.
            _check_value(child, f"{where}[]", depth + 1, nulls=False)


def check_collection(value: Any, where: str, *, nulls: bool) -> dict[str, Any]:
    """A tags or desired object as sent; `nulls` allows null (removal in a PATCH)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.argument_invalid(f"{where} must be a JSON object")
    for key, child in value.items():
        _check_key(key, where)
        _check_value(child, f"{where}.{key}", 1, nulls)
    return value


def check_size(value: dict[str, Any], where: str, limit: int) -> None:
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        raise errors.argument_invalid(f"{where} is {size} bytes; the limit is {limit} bytes")


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return copy.deepcopy(value)


def _fresh_meta(value: Any, now: str, version: int | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"$lastUpdated": now}
    if version is not None:
        meta["$lastUpdatedVersion"] = version
    if isinstance(value, dict):
        for key, child in value.items():
            meta[key] = _fresh_meta(child, now, version)
    return meta


def merged(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch: keys set, null removes, objects merge recursively (a new copy)."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = _without_nulls(value)
    return result


def merged_meta(
    meta: dict[str, Any],
    old: dict[str, Any],
    patch: dict[str, Any],
    value: dict[str, Any],
    now: str,
    version: int,
) -> dict[str, Any]:
    """The metadata tree after `patch` turned `old` into `value`."""
    result = dict(meta)
    result["$lastUpdated"] = now
    for key, change in patch.items():
        if key not in value:
            result.pop(key, None)
        elif (
            isinstance(change, dict)
            and isinstance(old.get(key), dict)
            and isinstance(meta.get(key), dict)
        ):
            child = merged_meta(meta[key], old[key], change, value[key], now, version)
            child["$lastUpdatedVersion"] = version
            result[key] = child
        else:
            result[key] = _fresh_meta(value[key], now, version)
    return result


def replaced_meta(value: dict[str, Any], now: str, version: int) -> dict[str, Any]:
    meta = _fresh_meta(value, now, version)
    meta.pop("$lastUpdatedVersion", None)
    return meta


def properties_json(values: dict[str, Any], meta: dict[str, Any], version: int) -> dict[str, Any]:
    return {**values, "$metadata": meta, "$version": version}
