"""Field paths, their types, and the normal form used for diffing (pure; no network).

The TTS JSON marshaler writes values in one spelling and reads many: enum aliases,
hex in either case or base64, uint64 as numbers or strings, wrapper types as bare values, zero
values omitted. Both sides of a diff are brought to one *normal form* here:

- named enums: the canonical name (`MAC_V1_0_3`); the numeric enums (`RxDelay`,
  `DataRateIndex`, `DataRateOffset`): an int;
- fixed-length bytes (EUIs, DevAddr, keys): upper-case hex; other bytes: base64 text;
- integers of every width: int; floats: float; strings and bools as is;
- wrapper messages (`BoolValue`, `RxDelayValue`, ...): the bare inner value, or None when unset;
- missing: the zero value of the type (None for messages and wrappers).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from reconciler.providers.tts import reference

Kind = Literal[
    "string",
    "bool",
    "int",
    "int64",
    "float",
    "enum",
    "hex",
    "bytes",
    "message",
    "wrapper",
    "struct",
]

INT32_TYPES = frozenset({"int32", "uint32", "sint32", "fixed32", "sfixed32"})
INT64_TYPES = frozenset({"int64", "uint64", "sint64", "fixed64", "sfixed64"})
FLOAT_TYPES = frozenset({"double", "float"})
PROTO_PACKAGE = "ttn.lorawan.v3."


@dataclass(frozen=True, slots=True)
class FieldType:
    """The type of one field path: scalar kind, or message, possibly repeated or a map."""

    kind: Kind
    type_name: str  # proto full type (`ttn.lorawan.v3.MACVersion`, `uint64`, ...)
    repeated: bool = False
    map_value: FieldType | None = None  # set for map fields (keys are strings in TTS)
    hex_length: int = 0  # bytes length for hex fields
    inner: FieldType | None = None  # the wrapped value's type, for wrappers

    @property
    def enum_name(self) -> str:
        return self.type_name.removeprefix(PROTO_PACKAGE)


class UnknownPath(KeyError):
    """A field path that is not in the message schema."""


def _message_fields(message: str) -> dict[str, dict[str, Any]]:
    spec = reference.messages().get(message)
    if spec is None:
        raise UnknownPath(message)
    return {f["name"]: f for f in spec["fields"]}


def _is_wrapper(type_name: str) -> bool:
    """google.protobuf.*Value and TTS's own *Value messages: one field named `value`."""
    if not type_name.endswith("Value"):
        return False
    spec = reference.messages().get(type_name)
    if spec is None:
        return type_name.startswith("google.protobuf.")
    fields = spec["fields"]
    return len(fields) == 1 and fields[0]["name"] == "value"


_GOOGLE_WRAPPERS: dict[str, str] = {
    "google.protobuf.BoolValue": "bool",
    "google.protobuf.FloatValue": "float",
    "google.protobuf.DoubleValue": "double",
    "google.protobuf.UInt32Value": "uint32",
    "google.protobuf.Int32Value": "int32",
    "google.protobuf.UInt64Value": "uint64",
    "google.protobuf.Int64Value": "int64",
    "google.protobuf.StringValue": "string",
    "google.protobuf.BytesValue": "bytes",
}


def _scalar_type(type_name: str, field: Mapping[str, Any] | None = None) -> FieldType:
    if type_name == "string":
        return FieldType("string", type_name)
    if type_name == "bool":
        return FieldType("bool", type_name)
    if type_name in INT32_TYPES:
        return FieldType("int", type_name)
    if type_name in INT64_TYPES:
        return FieldType("int64", type_name)
    if type_name in FLOAT_TYPES:
        return FieldType("float", type_name)
    if type_name == "bytes":
        if field is not None and field.get("hex"):
            return FieldType("hex", type_name, hex_length=int(field["rules"]["bytes.len"]))
        return FieldType("bytes", type_name)
    if type_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return FieldType("string", type_name)
    if type_name in ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.Any"):
        return FieldType("struct", type_name)
    if type_name in _GOOGLE_WRAPPERS:
        inner = _scalar_type(_GOOGLE_WRAPPERS[type_name])
        return FieldType("wrapper", type_name, inner=inner)
    if type_name.removeprefix(PROTO_PACKAGE) in reference.enums():
        return FieldType("enum", type_name)
    if _is_wrapper(type_name):
        inner_field = _message_fields(type_name)["value"]
        return FieldType("wrapper", type_name, inner=_scalar_type(inner_field["type"], inner_field))
    return FieldType("message", type_name)


def _field_type(field: Mapping[str, Any]) -> FieldType:
    type_name: str = field["type"]
    if field["map"]:
        entry = _message_fields(type_name)
        value = _field_type({**entry["value"], "map": False, "repeated": False})
        return FieldType("message", type_name, map_value=value)
    base = _scalar_type(type_name, field)
    if field["repeated"]:
        return FieldType(base.kind, base.type_name, True, None, base.hex_length, base.inner)
    return base


@cache
def field_type(message: str, path: str) -> FieldType:
    """Type of `path` (dotted) inside `message` (e.g. `ttn.lorawan.v3.EndDevice`)."""
    current = message
    parts = path.split(".")
    result: FieldType | None = None
    for index, name in enumerate(parts):
        fields = _message_fields(current)
        if name not in fields:
            # Field-mask paths may name a wrapper's `.value` leaf.
            if name == "value" and result is not None and result.kind == "wrapper":
                assert result.inner is not None
                return result.inner
            raise UnknownPath(f"{message}: {path}")
        result = _field_type(fields[name])
        if index < len(parts) - 1:
            if result.kind not in ("message", "wrapper") or result.map_value or result.repeated:
                raise UnknownPath(f"{message}: {path}")
            current = result.type_name
    assert result is not None
    return result


def zero_value(ftype: FieldType) -> Any:
    if ftype.repeated:
        return []
    if ftype.map_value is not None:
        return {}
    match ftype.kind:
        case "string" | "hex" | "bytes":
            return ""
        case "bool":
            return False
        case "int" | "int64":
            return 0
        case "float":
            return 0.0
        case "enum":
            spec = reference.enum(ftype.enum_name)
            return 0 if spec.numeric else spec.canonical[0]
        case _:
            return None


class InvalidValue(ValueError):
    """A value that does not fit its field type (message names the type, never the value)."""


def _decode_bytes(value: str, length: int) -> bytes:
    """Hex when the text is exactly 2*length chars, base64 when of base64 length."""
    if len(value) == 2 * length:
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise InvalidValue(f"invalid hex for a {length}-byte field") from None
    try:
        padded = value + "=" * (-len(value) % 4)
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(f"invalid length for a {length}-byte field") from None
    if len(raw) != length:
        raise InvalidValue(f"invalid length for a {length}-byte field")
    return raw


def normalize(ftype: FieldType, value: Any) -> Any:
    """Bring a wire (or manifest) value to the normal form; None/missing becomes the zero value."""
    if value is None:
        return zero_value(ftype)
    if ftype.repeated:
        single = FieldType(ftype.kind, ftype.type_name, False, None, ftype.hex_length, ftype.inner)
        return [normalize(single, item) for item in value]
    if ftype.map_value is not None:
        return {str(k): normalize(ftype.map_value, v) for k, v in sorted(value.items())}
    match ftype.kind:
        case "string":
            return str(value)
        case "bool":
            return bool(value)
        case "int" | "int64":
            return int(value)
        case "float":
            return float(value)
        case "enum":
            spec = reference.enum(ftype.enum_name)
            number = spec.parse(value)
            if number is None:
                raise InvalidValue(f"not a {ftype.enum_name} value")
            return number if spec.numeric else spec.canonical[number]
        case "hex":
            if value == "":
                return ""
            return _decode_bytes(str(value), ftype.hex_length).hex().upper()
        case "wrapper":
            assert ftype.inner is not None
            if isinstance(value, Mapping) and ftype.type_name.startswith("google.protobuf."):
                value = value.get("value")
            return normalize(ftype.inner, value)
        case "message":
            return normalize_message(ftype.type_name, value)
        case _:
            return value


def normalize_message(message: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise every present field of a message value; zero-valued fields are dropped."""
    fields = _message_fields(message)
    result: dict[str, Any] = {}
    for name, raw in value.items():
        if name not in fields:
            continue
        ftype = _field_type(fields[name])
        normal = normalize(ftype, raw)
        if normal != zero_value(ftype):
            result[name] = normal
    return result


def to_wire(ftype: FieldType, value: Any) -> Any:
    """The JSON value to send for a normal-form value."""
    if value is None:
        return None
    if ftype.repeated:
        single = FieldType(ftype.kind, ftype.type_name, False, None, ftype.hex_length, ftype.inner)
        return [to_wire(single, item) for item in value]
    if ftype.map_value is not None:
        return {k: to_wire(ftype.map_value, v) for k, v in value.items()}
    match ftype.kind:
        case "int64":
            return str(value)
        case "wrapper":
            assert ftype.inner is not None
            return to_wire(ftype.inner, value)
        case "message":
            return message_to_wire(ftype.type_name, value)
        case _:
            return value


def message_to_wire(message: str, value: Mapping[str, Any]) -> dict[str, Any]:
    fields = _message_fields(message)
    return {
        name: to_wire(_field_type(fields[name]), item)
        for name, item in value.items()
        if name in fields
    }


MISSING: Any = object()


def get_path(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path in a JSON object, or MISSING."""
    current: Any = document
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return MISSING
        current = current[part]
    return current


def set_path(document: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path in a JSON object, creating intermediate objects."""
    parts = path.split(".")
    current = document
    for part in parts[:-1]:
        current = current.setdefault(part, {})
    current[parts[-1]] = value


def live_value(message: str, document: Mapping[str, Any], path: str) -> Any:
    """Normal form of `path` in a server response (missing means the zero value)."""
    ftype = field_type(message, path)
    raw = get_path(document, path)
    return normalize(ftype, None if raw is MISSING else raw)


END_DEVICE = "ttn.lorawan.v3.EndDevice"
APPLICATION = "ttn.lorawan.v3.Application"
GATEWAY = "ttn.lorawan.v3.Gateway"
ORGANIZATION = "ttn.lorawan.v3.Organization"
WEBHOOK = "ttn.lorawan.v3.ApplicationWebhook"
PUBSUB = "ttn.lorawan.v3.ApplicationPubSub"
PACKAGE_DEFAULT = "ttn.lorawan.v3.ApplicationPackageDefaultAssociation"
PACKAGE_ASSOCIATION = "ttn.lorawan.v3.ApplicationPackageAssociation"
APPLICATION_LINK = "ttn.lorawan.v3.ApplicationLink"
