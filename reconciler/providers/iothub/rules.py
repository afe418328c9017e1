"""What an IoT Hub accepts, checked before anything is sent (pure; no pydantic, no HTTP).

The rules are the service's own: device and module ids (1-128 characters from a fixed ASCII
set), status reasons (128 characters), symmetric keys (base64 of 16 to 64 bytes), X.509
thumbprints (SHA-1 or SHA-256 as hex), and the twin document limits (tags 8 KB, desired
properties 32 KB, 10 levels, keys up to 1 KB without control characters, `.`, `$` or space,
strings up to 4 KB, integers within +-2^52).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from enum import Enum
from typing import Any

DEVICE_ID_CHARS = r"A-Za-z0-9\-:.+%_#*?!(),=@;$'"
DEVICE_ID = re.compile(f"[{DEVICE_ID_CHARS}]{{1,128}}")
ID_RULE = (
    "1-128 characters: letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ ' "
    "(no spaces or slashes)"
)
STATUSES = ("enabled", "disabled")
AUTH_TYPES = ("sas", "selfSigned", "certificateAuthority", "none")
STATUS_REASON_MAX = 128
KEY_MIN_BYTES = 16
KEY_MAX_BYTES = 64
THUMBPRINT = re.compile(r"[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64}")
TWIN_MAX_DEPTH = 10
TWIN_KEY_MAX_BYTES = 1024
TWIN_STRING_MAX_BYTES = 4096
TWIN_MIN_INT = -4503599627370496
TWIN_MAX_INT = 4503599627370495
TAGS_MAX_BYTES = 8 * 1024
DESIRED_MAX_BYTES = 32 * 1024
_FORBIDDEN_KEY_CHARS = frozenset(".$ ")
HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
SKUS = ("F1", "B1", "B2", "B3", "S1", "S2", "S3")


class OperationClass(Enum):
    IDENTITY = "identity registry operations"
    TWIN_READ = "twin reads"
    TWIN_UPDATE = "twin updates"
    QUERY = "queries"


def throttle_rates(sku: str, units: int) -> dict[OperationClass, float]:
    """Operations per second an IoT Hub of `units` units of `sku` allows (Azure's published
    throttles: identity 100/min/unit on tiers 1-2 and 5000/min/unit on tier 3; twin reads 100/s,
    updates 50/s on tier 1; queries 20/min/unit on tiers 1-2, 1000/min/unit on tier 3)."""
    tier = sku[1]
    if tier == "3":
        return {
            OperationClass.IDENTITY: 5000 / 60 * units,
            OperationClass.TWIN_READ: 500.0 * units,
            OperationClass.TWIN_UPDATE: 250.0 * units,
            OperationClass.QUERY: 1000 / 60 * units,
        }
    if tier == "2":
        return {
            OperationClass.IDENTITY: 100 / 60 * units,
            OperationClass.TWIN_READ: max(100.0, 10.0 * units),
            OperationClass.TWIN_UPDATE: max(50.0, 5.0 * units),
            OperationClass.QUERY: 20 / 60 * units,
        }
    return {
        OperationClass.IDENTITY: 100 / 60 * units,
        OperationClass.TWIN_READ: 100.0,
        OperationClass.TWIN_UPDATE: 50.0,
        OperationClass.QUERY: 20 / 60 * units,
    }


def check_device_id(value: object, what: str = "device id") -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"{what} must be a string" + (": quote it in YAML" if _number(value) else "")
        )
    if not DEVICE_ID.fullmatch(value):
        raise ValueError(f"{what} `{value[:140]}` is not valid: {ID_RULE}")
    return value


# The apply lease's identity on a hub (reconciler.providers.iothub.lease): the prefix is
# reserved for it, so no manifest device (of any stack sharing the hub) can take its place.
LEASE_DEVICE_PREFIX = "reconciler-lease."


def lease_device_id(stack: str) -> str:
    """The lease identity's device id: the stack name where it makes a valid id, else a digest."""
    candidate = LEASE_DEVICE_PREFIX + stack
    if DEVICE_ID.fullmatch(candidate):
        return candidate
    return LEASE_DEVICE_PREFIX + hashlib.sha256(stack.encode()).hexdigest()[:32]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_status_reason(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("statusReason must be a string")
    if len(value) > STATUS_REASON_MAX:
        raise ValueError(
            f"statusReason is longer than {STATUS_REASON_MAX} characters ({len(value)})"
        )
    return value


def key_problem(text: str) -> str | None:
    """Why `text` is not a symmetric key (never showing it), or None."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "is not base64"
    if not KEY_MIN_BYTES <= len(raw) <= KEY_MAX_BYTES:
        return f"decodes to {len(raw)} bytes; a key has {KEY_MIN_BYTES} to {KEY_MAX_BYTES}"
    return None


def check_thumbprint(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("a thumbprint must be a string of hex digits")
    text = value.replace(":", "").strip()
    if not THUMBPRINT.fullmatch(text):
        raise ValueError(
            "a thumbprint is the certificate's SHA-1 (40 hex digits) or SHA-256 (64 hex digits)"
        )
    return text.upper()


def twin_problems(document: dict[str, Any], what: str) -> list[tuple[list[str], str]]:
    """(path below `document`, problem) for every rule the hub enforces on a twin collection;
    `None` values (remove this key) are allowed."""
    problems: list[tuple[list[str], str]] = []

    def walk(value: Any, path: list[str], depth: int) -> None:
        if isinstance(value, dict):
            if depth > TWIN_MAX_DEPTH:
                problems.append((path, f"nested deeper than {TWIN_MAX_DEPTH} levels"))
                return
            for key, item in value.items():
                if not isinstance(key, str):
                    problems.append((path, f"key {key!r} must be a string"))
                    continue
                problem = twin_key_problem(key)
                if problem:
                    problems.append(([*path, key], problem))
                    continue
                walk(item, [*path, key], depth + 1)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict | list):
                    walk(item, [*path, str(index)], depth + 1)
                else:
                    walk(item, path, depth)
        elif isinstance(value, str):
            if len(value.encode()) > TWIN_STRING_MAX_BYTES:
                problems.append((path, f"string value longer than {TWIN_STRING_MAX_BYTES} bytes"))
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if not TWIN_MIN_INT <= value <= TWIN_MAX_INT:
                problems.append(
                    (path, f"integer outside {TWIN_MIN_INT}..{TWIN_MAX_INT} (the twin's range)")
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append((path, "not a finite number"))
        else:
            problems.append((path, f"a {type(value).__name__} is not a JSON value"))

    walk(document, [], 1)
    if not problems:
        limit = TAGS_MAX_BYTES if what == "tags" else DESIRED_MAX_BYTES
        size = len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())
        if size > limit:
            problems.append(([], f"{what} are {size} bytes as JSON; the hub allows {limit}"))
    return problems


def twin_key_problem(key: str) -> str | None:
    if not key:
        return "an empty key"
    if len(key.encode()) > TWIN_KEY_MAX_BYTES:
        return f"key longer than {TWIN_KEY_MAX_BYTES} bytes"
    for char in key:
        if char in _FORBIDDEN_KEY_CHARS or ord(char) < 0x20 or ord(char) == 0x7F:
            return f"key `{key[:60]}` has a character twins do not allow (`.`, `$`, space, control)"
    return None
