"""protoc-gen-validate rules from the generated schema (FACTS §d), as TTS reports them.

The first violation wins (PGV's ValidateFields order: fields in declaration order). It becomes
`pkg/errors:validation` ("invalid `{field}`: {reason}"), wrapped once per enclosing message with
the reason "embedded message failed validation", so the real leaf sits in the `cause` chain.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlparse

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.codec import PKG, Field, Message, message, parse_timestamp
from reconciler.providers.tts import reference

# A path tree: field name -> subtree, or None for "the whole field".
PathTree = dict[str, "PathTree | None"]

# Identifier fields whose pattern also applies to the empty string (an ID is required there).
_REQUIRED_IDS = frozenset(
    {
        "application_id",
        "device_id",
        "gateway_id",
        "organization_id",
        "user_id",
        "client_id",
        "webhook_id",
        "pub_sub_id",
    }
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def path_tree(paths: list[str] | tuple[str, ...]) -> PathTree:
    tree: PathTree = {}
    for path in paths:
        node = tree
        parts = path.split(".")
        for index, part in enumerate(parts):
            if index == len(parts) - 1:
                node[part] = None
            else:
                child = node.get(part, {})
                if child is None:
                    break  # the parent is already validated whole
                node[part] = child
                node = child
    return tree


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fail(
    msg: Message, name: str, reason: str, cause: errors.TTSError | None = None
) -> errors.TTSError:
    return errors.validation(
        cause=cause,
        field=name,
        reason=reason,
        name=_go_type_name(msg) + "ValidationError",
    )


def _go_type_name(msg: Message) -> str:
    """The generated Go type's name: a nested message is `Outer_Inner`
    (`ADRSettings_DynamicMode_PerDataRateIndexOverride`)."""
    if msg.name.startswith(PKG):
        return msg.name.removeprefix(PKG).replace(".", "_")
    return msg.short


def _go_list(values: list[Any]) -> str:
    return "[" + " ".join(str(v) for v in values) + "]"


def _check_string(rules: dict[str, Any], value: str, prefix: str, id_field: bool) -> str | None:
    max_len = rules.get(prefix + "string.max_len")
    if max_len is not None and len(value) > max_len:
        return f"value length must be at most {max_len} runes"
    min_len = rules.get(prefix + "string.min_len")
    if min_len is not None and len(value) < min_len:
        return f"value length must be at least {min_len} runes"
    length = rules.get(prefix + "string.len")
    if length is not None and len(value) != length:
        return f"value length must be {length} runes"
    pattern = rules.get(prefix + "string.pattern")
    if pattern is not None and (value or id_field) and not _regex(pattern).search(value):
        return f"value does not match regex pattern {_go_quote(pattern)}"
    allowed = rules.get(prefix + "string.in")
    if allowed is not None and value not in allowed:
        return f"value must be in list {_go_list(allowed)}"
    if rules.get(prefix + "string.uri") and value:
        parsed = urlparse(value)
        if not parsed.scheme:
            return "value must be absolute"
        if not parsed.netloc and not parsed.path:
            return "value must be a valid URI"
    if rules.get(prefix + "string.email") and value and not _EMAIL.match(value):
        return "value must be a valid email address"
    return None


def _check_number(rules: dict[str, Any], value: float, prefix: str) -> str | None:
    for kind in ("uint32", "uint64", "int32", "float", "double"):
        base = f"{prefix}{kind}."
        if base + "lte" in rules and value > rules[base + "lte"]:
            return f"value must be less than or equal to {rules[base + 'lte']}"
        if base + "gte" in rules and value < rules[base + "gte"]:
            return f"value must be greater than or equal to {rules[base + 'gte']}"
        if base + "gt" in rules and value <= rules[base + "gt"]:
            return f"value must be greater than {rules[base + 'gt']}"
        if base + "not_in" in rules and value in rules[base + "not_in"]:
            return f"value must not be in list {_go_list(rules[base + 'not_in'])}"
    return None


def _bytes_len(field_: Field, value: str) -> int:
    if field_.kind == "hex":
        return len(value) // 2
    import base64

    return len(base64.b64decode(value)) if value else 0


def _check_single(field_: Field, value: Any, prefix: str, id_field: bool) -> str | None:
    rules = field_.rules
    kind = field_.kind
    if kind == "string":
        return _check_string(rules, value, prefix, id_field)
    if kind in ("int", "int64", "float"):
        return _check_number(rules, value, prefix)
    if kind in ("hex", "bytes") and value:
        size = _bytes_len(field_, value)
        if prefix + "bytes.len" in rules and size != rules[prefix + "bytes.len"]:
            return f"value length must be {rules[prefix + 'bytes.len']} bytes"
        if prefix + "bytes.max_len" in rules and size > rules[prefix + "bytes.max_len"]:
            return f"value length must be at most {rules[prefix + 'bytes.max_len']} bytes"
        if prefix + "bytes.min_len" in rules and size < rules[prefix + "bytes.min_len"]:
            return f"value length must be at least {rules[prefix + 'bytes.min_len']} bytes"
    if kind == "timestamp":
        moment, _ = parse_timestamp(value)
        if rules.get("timestamp.gt_now") and moment <= datetime.now(UTC):
            return "value must be greater than now"
        if rules.get("timestamp.lt_now") and moment >= datetime.now(UTC):
            return "value must be less than now"
    if kind == "wrapper":
        inner = value.get("value") if isinstance(value, dict) else None
        if inner is not None:
            return _check_number(rules, inner, prefix) if isinstance(inner, int | float) else None
    return None


def validate(
    msg: Message, data: dict[str, Any], tree: PathTree | None = None
) -> errors.TTSError | None:
    """First violation in `data` (canonical form) limited to `tree` (None: every field)."""
    for name, field_ in msg.fields.items():
        if tree is not None and name not in tree:
            continue
        subtree = None if tree is None else tree[name]
        value = data.get(name)
        rules = field_.rules
        if value is None:
            if (
                rules.get("message.required")
                or rules.get("timestamp.required")
                or rules.get("duration.required")
            ):
                return _fail(msg, name, "value is required")
            if field_.kind == "string" and not field_.repeated:
                id_field = (name in _REQUIRED_IDS and msg.short.endswith("Identifiers")) or (
                    msg.name,
                    name,
                ) in reference.PATTERN_ON_EMPTY
                reason = _check_string(rules, "", "", id_field)
                if reason:
                    return _fail(msg, name, reason)
            if field_.repeated and rules.get("repeated.min_items"):
                return _fail(
                    msg, name, f"value must contain at least {rules['repeated.min_items']} item(s)"
                )
            continue
        error = _validate_field(msg, field_, value, subtree)
        if error is not None:
            return error
    return None


def _validate_field(
    msg: Message, field_: Field, value: Any, subtree: PathTree | None
) -> errors.TTSError | None:
    name = field_.name
    rules = field_.rules
    if field_.kind == "map":
        assert field_.map_value is not None
        if "map.max_pairs" in rules and len(value) > rules["map.max_pairs"]:
            return _fail(
                msg, name, f"value must contain no more than {rules['map.max_pairs']} pair(s)"
            )
        for key, item in value.items():
            reason = _check_string(rules, key, "map.keys.", False)
            if reason:
                return _fail(msg, name, reason)
            if field_.map_value.kind == "string":
                reason = _check_string(rules, item, "map.values.", False)
                if reason:
                    return _fail(msg, name, reason)
            elif field_.map_value.kind == "message":
                inner = validate(field_.map_value.message, item)
                if inner is not None:
                    return _fail(msg, name, "embedded message failed validation", inner)
        return None
    if field_.repeated:
        if "repeated.max_items" in rules and len(value) > rules["repeated.max_items"]:
            return _fail(
                msg, name, f"value must contain no more than {rules['repeated.max_items']} item(s)"
            )
        if "repeated.min_items" in rules and len(value) < rules["repeated.min_items"]:
            return _fail(
                msg, name, f"value must contain at least {rules['repeated.min_items']} item(s)"
            )
        if rules.get("repeated.unique") and len({repr(v) for v in value}) != len(value):
            return _fail(msg, name, "repeated value must contain unique items")
        for index, item in enumerate(value):
            if field_.kind == "message":
                inner = validate(field_.message, item)
                if inner is not None:
                    return _fail(
                        msg, f"{name}[{index}]", "embedded message failed validation", inner
                    )
            else:
                reason = _check_single(field_, item, "repeated.items.", False)
                if reason:
                    return _fail(msg, f"{name}[{index}]", reason)
        return None
    if field_.kind == "message":
        inner = validate(field_.message, value, subtree)
        if inner is not None:
            return _fail(msg, name, "embedded message failed validation", inner)
        return None
    id_field = name in _REQUIRED_IDS and msg.short.endswith("Identifiers")
    reason = _check_single(field_, value, "", id_field)
    if reason:
        return _fail(msg, name, reason)
    return None


def validate_request(request_type: str, data: dict[str, Any], tree: PathTree | None = None) -> None:
    error = validate(message(request_type), data, tree)
    if error is not None:
        raise error
