"""Schema-driven JSON codec with the TTS marshaling rules (FACTS §b).

Input JSON is decoded into one canonical internal form and output is encoded from it:

* keys are proto (snake_case) names; lowerCamelCase input is accepted, unknown fields ignored;
* zero scalars are dropped at decode time (proto3 has no presence for them), while a message
  that was sent, even empty, stays as a dict: presence matters to the `non_zero_path` check;
* bytes with a fixed length (EUIs, DevAddr, NetID, AES keys) are UPPER-case hex, other bytes
  standard base64; enums are canonical names (numbers for DataRateIndex/DataRateOffset/RxDelay);
  timestamps and durations are their canonical strings; 64-bit integers are ints;
* wrapper messages (TTS and google) are dicts `{"value": x}` so mask paths ending in `.value`
  work uniformly; they are written as bare values.

The schema comes from `reference.messages()` (generated from the real protos).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from reconciler.emulator.tts import errors
from reconciler.providers.tts import reference
from reconciler.providers.tts.reference import EnumSpec

PKG = "ttn.lorawan.v3."
TTS_WRAPPERS = frozenset(
    PKG + name
    for name in (
        "BoolValue",
        "FrequencyValue",
        "ZeroableFrequencyValue",
        "DataRateIndexValue",
        "DataRateOffsetValue",
        "RxDelayValue",
        "PingSlotPeriodValue",
        "AggregatedDutyCycleValue",
        "ADRAckLimitExponentValue",
        "ADRAckDelayExponentValue",
        "DeviceEIRPValue",
    )
)
GOOGLE_WRAPPERS = frozenset(
    "google.protobuf." + name
    for name in (
        "BoolValue",
        "FloatValue",
        "DoubleValue",
        "UInt32Value",
        "Int32Value",
        "UInt64Value",
        "Int64Value",
        "StringValue",
        "BytesValue",
    )
)
_GOOGLE_WRAPPER_INNER = {
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
_INT32 = frozenset({"int32", "uint32", "sint32", "fixed32", "sfixed32"})
_INT64 = frozenset({"int64", "uint64", "sint64", "fixed64", "sfixed64"})
_TIMESTAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(eq=False)
class Field:
    name: str
    type: str
    kind: str  # string bool int int64 float bytes hex enum message wrapper timestamp duration
    #            struct any value fieldmask
    repeated: bool = False
    map_value: Field | None = None  # set for map fields: the value field of the entry
    rules: dict[str, Any] = field(default_factory=dict)
    hex_len: int = 0
    enum: EnumSpec | None = None
    unsigned: bool = False
    wrapper: str = ""  # "tts" (bare value only) or "google" (bare or {"value": x})
    oneof: str = ""

    @property
    def message(self) -> Message:
        return message(self.type)


@dataclass(eq=False)
class Message:
    name: str
    fields: dict[str, Field]
    by_json: dict[str, Field]

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def _scalar_field(name: str, type_: str, rules: dict[str, Any], hex_flag: bool) -> Field:
    if type_ == "string":
        return Field(name, type_, "string", rules=rules)
    if type_ == "bool":
        return Field(name, type_, "bool", rules=rules)
    if type_ in _INT32:
        return Field(name, type_, "int", rules=rules, unsigned=type_.startswith(("u", "fixed")))
    if type_ in _INT64:
        return Field(name, type_, "int64", rules=rules, unsigned=type_.startswith(("u", "fixed")))
    if type_ in ("float", "double"):
        return Field(name, type_, "float", rules=rules)
    if type_ == "bytes":
        if hex_flag:
            return Field(name, type_, "hex", rules=rules, hex_len=int(rules["bytes.len"]))
        return Field(name, type_, "bytes", rules=rules)
    raise KeyError(type_)


def _make_field(spec: dict[str, Any]) -> Field:
    name: str = spec["name"]
    type_: str = spec["type"]
    rules: dict[str, Any] = spec["rules"]
    repeated: bool = spec["repeated"]
    oneof: str = spec["oneof"]
    if spec["map"]:
        entry = reference.messages()[type_]
        value_spec = next(f for f in entry["fields"] if f["name"] == "value")
        return Field(
            name, type_, "map", map_value=_make_field(value_spec), rules=rules, oneof=oneof
        )
    kind: str
    if type_.startswith(PKG):
        short = type_.removeprefix(PKG)
        if type_ in reference.messages():
            kind = "message"
            if type_ in TTS_WRAPPERS:
                return Field(
                    name, type_, "wrapper", repeated, rules=rules, wrapper="tts", oneof=oneof
                )
            return Field(name, type_, kind, repeated, rules=rules, oneof=oneof)
        spec_enum = reference.enums().get(short)
        if spec_enum is None:
            raise KeyError(type_)
        return Field(name, type_, "enum", repeated, rules=rules, enum=spec_enum, oneof=oneof)
    if type_ in GOOGLE_WRAPPERS:
        return Field(name, type_, "wrapper", repeated, rules=rules, wrapper="google", oneof=oneof)
    special = {
        "google.protobuf.Timestamp": "timestamp",
        "google.protobuf.Duration": "duration",
        "google.protobuf.Struct": "struct",
        "google.protobuf.Any": "any",
        "google.protobuf.Value": "value",
        "google.protobuf.ListValue": "value",
        "google.protobuf.FieldMask": "fieldmask",
        "google.protobuf.Empty": "struct",
    }
    if type_ in special:
        return Field(name, type_, special[type_], repeated, rules=rules, oneof=oneof)
    result = _scalar_field(name, type_, rules, spec["hex"])
    result.repeated = repeated
    result.oneof = oneof
    return result


@cache
def message(name: str) -> Message:
    """The schema of a message by full name (`ttn.lorawan.v3.EndDevice`) or short name."""
    full = name if "." in name and name in reference.messages() else PKG + name
    spec = reference.messages()[full]
    fields: dict[str, Field] = {}
    by_json: dict[str, Field] = {}
    for field_spec in spec["fields"]:
        f = _make_field(field_spec)
        fields[f.name] = f
        by_json[f.name] = f
        by_json.setdefault(camel(f.name), f)
    return Message(full, fields, by_json)


@cache
def wrapper_inner(type_: str) -> Field:
    """The `value` field of a wrapper message."""
    if type_ in _GOOGLE_WRAPPER_INNER:
        return _scalar_field("value", _GOOGLE_WRAPPER_INNER[type_], {}, False)
    return message(type_).fields["value"]


@cache
def resolve(root: str, path: str) -> Field | None:
    """The field a dotted path names in a message, or None when the schema has no such path."""
    msg = message(root)
    found: Field | None = None
    parts = path.split(".")
    for index, part in enumerate(parts):
        if found is not None:
            if found.kind == "wrapper" and part == "value" and index == len(parts) - 1:
                return wrapper_inner(found.type)
            if found.kind != "message" or found.repeated:
                return None
            msg = found.message
        found = msg.fields.get(part)
        if found is None:
            return None
    return found


# --- decoding ----------------------------------------------------------------------------


def _type_error(value: Any, field_: Field) -> errors.DecodeError:
    shown = "object" if isinstance(value, dict) else type(value).__name__
    return errors.DecodeError(f"invalid value for {field_.type} field {field_.name}: {shown}")


def invalid_length(want: int, got: int) -> errors.TTSError:
    return errors.TTSError(
        "pkg/types",
        "invalid_length",
        "invalid length: want {want} got {got}",
        errors.INVALID_ARGUMENT,
        {"want": want, "got": got},
    )


def decode_hex(value: Any, field_: Field) -> str:
    """Fixed-length bytes: hex when 2N chars, base64 when of base64 length, else invalid length."""
    if not isinstance(value, str):
        raise _type_error(value, field_)
    n = field_.hex_len
    if len(value) == 2 * n:
        try:
            return bytes.fromhex(value).hex().upper()
        except ValueError:
            raise errors.DecodeError(f"encoding/hex: invalid byte in {value!r}") from None
    padded = 4 * ((n + 2) // 3)
    unpadded = math.ceil(n * 4 / 3)
    if len(value) in (padded, unpadded):
        raw = _b64decode(value)
        if raw is None or len(raw) != n:
            raise invalid_length(n, len(raw) if raw is not None else len(value))
        return raw.hex().upper()
    raise invalid_length(n, len(value) // 2 if len(value) % 2 == 0 else len(value))


def _b64decode(value: str) -> bytes | None:
    text = value.rstrip("=")
    text += "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode_bytes(value: Any, field_: Field) -> str:
    if not isinstance(value, str):
        raise _type_error(value, field_)
    raw = _b64decode(value)
    if raw is None:
        raise errors.DecodeError(f"illegal base64 data in field {field_.name}")
    return base64.b64encode(raw).decode()


def format_timestamp(moment: datetime, nanos: int | None = None) -> str:
    """RFC 3339 UTC with `Z`, fraction trimmed to 0, 3, 6 or 9 digits (as Go writes it)."""
    moment = moment.astimezone(UTC)
    if nanos is None:
        nanos = moment.microsecond * 1000
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos == 0:
        return base + "Z"
    if nanos % 1_000_000 == 0:
        return f"{base}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{base}.{nanos // 1_000:06d}Z"
    return f"{base}.{nanos:09d}Z"


def parse_timestamp(value: Any, name: str = "timestamp") -> tuple[datetime, int]:
    if not isinstance(value, str):
        raise errors.DecodeError(f"invalid value for google.protobuf.Timestamp field {name}")
    match = _TIMESTAMP.match(value)
    if match is None:
        raise errors.DecodeError(
            f'parsing time "{value}" as "2006-01-02T15:04:05.999999999Z": cannot parse'
        )
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError:
        raise errors.DecodeError(f'parsing time "{value}": out of range') from None
    nanos = int((fraction or "0").ljust(9, "0"))
    return moment.replace(microsecond=nanos // 1000), nanos


def decode_timestamp(value: Any, name: str = "timestamp") -> str:
    moment, nanos = parse_timestamp(value, name)
    return format_timestamp(moment, nanos)


def timestamp_key(value: str) -> tuple[datetime, int]:
    """Sort key for a canonical timestamp string."""
    return parse_timestamp(value)


def now_timestamp() -> str:
    return format_timestamp(datetime.now(UTC))


def parse_duration_ns(value: str) -> int | None:
    """Nanoseconds of a Go duration string (`1m30s`, `300ms`, `1.5s`), None when invalid."""
    text = value.strip()
    sign = 1
    if text[:1] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        return None
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _DURATION_UNIT_NS[match.group(2)]
        pos = match.end()
    return sign * round(total)


def format_duration(nanos: int) -> str:
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    seconds, frac = divmod(nanos, 1_000_000_000)
    if frac == 0:
        return f"{sign}{seconds}s"
    if frac % 1_000_000 == 0:
        return f"{sign}{seconds}.{frac // 1_000_000:03d}s"
    if frac % 1_000 == 0:
        return f"{sign}{seconds}.{frac // 1_000:06d}s"
    return f"{sign}{seconds}.{frac:09d}s"


def _decode_int(value: Any, field_: Field) -> int:
    if isinstance(value, bool):
        raise _type_error(value, field_)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        number = int(value.strip())
    else:
        raise _type_error(value, field_)
    bits = 64 if field_.kind == "int64" or field_.type in _INT64 else 32
    low, high = (0, 2**bits - 1) if field_.unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if not low <= number <= high:
        raise errors.DecodeError(f"value out of range for {field_.type} field {field_.name}")
    return number


def _decode_float(value: Any, field_: Field) -> float:
    if isinstance(value, bool):
        raise _type_error(value, field_)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:
            return special[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise _type_error(value, field_)


def decode_scalar(field_: Field, value: Any) -> Any:
    """One non-repeated, non-message value in canonical form (may be a zero value)."""
    kind = field_.kind
    if kind == "string":
        if not isinstance(value, str):
            raise _type_error(value, field_)
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise _type_error(value, field_)
    if kind in ("int", "int64"):
        return _decode_int(value, field_)
    if kind == "float":
        return _decode_float(value, field_)
    if kind == "hex":
        return decode_hex(value, field_) if value != "" else ""
    if kind == "bytes":
        return decode_bytes(value, field_) if value != "" else ""
    if kind == "enum":
        assert field_.enum is not None
        number = field_.enum.parse(value)
        if number is None:
            raise errors.DecodeError(
                f"invalid value for enum type: {value!r}".replace("'", '"')
                if isinstance(value, str)
                else f"invalid value for enum type: {value}"
            )
        return number if field_.enum.numeric else field_.enum.canonical[number]
    if kind == "timestamp":
        return decode_timestamp(value, field_.name)
    if kind == "duration":
        if not isinstance(value, str):
            raise _type_error(value, field_)
        nanos = parse_duration_ns(value)
        if nanos is None:
            raise errors.DecodeError(f'time: invalid duration "{value}"')
        return format_duration(nanos)
    if kind == "struct":
        if not isinstance(value, dict):
            raise _type_error(value, field_)
        return value
    if kind == "any":
        if not isinstance(value, dict):
            raise _type_error(value, field_)
        return value
    if kind == "value":
        return value
    if kind == "fieldmask":
        if isinstance(value, str):
            paths = [p for p in (s.strip() for s in value.split(",")) if p]
        elif isinstance(value, dict):
            raw = value.get("paths", [])
            if raw is None:
                raw = []
            if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
                raise _type_error(value, field_)
            paths = list(raw)
        else:
            raise _type_error(value, field_)
        return {"paths": paths} if paths else {}
    raise KeyError(kind)


def _drop_zero(field_: Field, value: Any) -> bool:
    """Whether a decoded single value is the proto3 zero value (not stored)."""
    kind = field_.kind
    if kind in ("message", "wrapper", "struct", "any", "value"):
        return False
    if kind == "enum":
        assert field_.enum is not None
        return bool(value == 0 or value == field_.enum.canonical.get(0))
    if kind == "fieldmask":
        return not value
    if kind in ("timestamp", "duration"):
        return False
    return value == "" or value is False or (value == 0 and not isinstance(value, bool))


def decode_value(field_: Field, value: Any) -> Any:
    """A field's JSON value in canonical form; `None` means unset."""
    if value is None:
        return None
    if field_.kind == "map":
        if not isinstance(value, dict):
            raise _type_error(value, field_)
        assert field_.map_value is not None
        out: dict[str, Any] = {}
        for key, item in value.items():
            decoded = _decode_single(field_.map_value, item)
            if decoded is None:
                decoded = zero_of(field_.map_value)
            out[str(key)] = decoded
        return out or None
    if field_.repeated:
        if not isinstance(value, list):
            raise _type_error(value, field_)
        items = []
        for item in value:
            decoded = _decode_single(field_, item)
            items.append(zero_of(field_) if decoded is None else decoded)
        return items or None
    decoded = _decode_single(field_, value)
    if decoded is None or _drop_zero(field_, decoded):
        return None
    return decoded


def zero_of(field_: Field) -> Any:
    kind = field_.kind
    if kind in ("message", "struct", "any", "wrapper"):
        return {}
    if kind in ("int", "int64"):
        return 0
    if kind == "float":
        return 0.0
    if kind == "bool":
        return False
    if kind == "enum":
        assert field_.enum is not None
        return 0 if field_.enum.numeric else field_.enum.canonical.get(0, "")
    return ""


def _decode_single(field_: Field, value: Any) -> Any:
    if value is None:
        return None
    kind = field_.kind
    if kind == "message":
        if not isinstance(value, dict):
            raise _type_error(value, field_)
        return decode_message(field_.message, value)
    if kind == "wrapper":
        inner = wrapper_inner(field_.type)
        if isinstance(value, dict):
            if field_.wrapper == "tts":
                # TTS's own wrappers unmarshal from the bare value only (FACTS §b).
                raise errors.DecodeError(
                    f"invalid value for {field_.type.removeprefix(PKG)} field {field_.name}: "
                    "expected a bare value, got an object"
                )
            value = value.get("value")
            if value is None:
                return {}
        decoded = decode_scalar(inner, value)
        return {} if _drop_zero(inner, decoded) else {"value": decoded}
    return decode_scalar(field_, value)


def decode_message(msg: Message, data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    by_json = msg.by_json
    for key, value in data.items():
        field_ = by_json.get(key)
        if field_ is None:
            continue  # unknown fields are ignored
        decoded = decode_value(field_, value)
        if decoded is not None:
            if field_.oneof:
                # The server's decoder keeps the last member of a oneof that a body sets.
                for other in msg.fields.values():
                    if other.oneof == field_.oneof and other.name != field_.name:
                        out.pop(other.name, None)
            out[field_.name] = decoded
    return out


# --- encoding ----------------------------------------------------------------------------


def _encode_scalar(field_: Field, value: Any) -> Any:
    if field_.kind == "int64":
        return str(value)
    if field_.kind == "float" and isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    return value


def _encode_single(field_: Field, value: Any) -> Any:
    kind = field_.kind
    if kind == "message":
        return encode_message(field_.message, value)
    if kind == "wrapper":
        inner = wrapper_inner(field_.type)
        return _encode_scalar(inner, value.get("value", zero_of(inner)))
    return _encode_scalar(field_, value)


def encode_message(msg: Message, data: dict[str, Any]) -> dict[str, Any]:
    """Canonical form -> TTS JSON. Empty sub-messages are omitted like every zero value, except
    a oneof's member."""
    out: dict[str, Any] = {}
    fields = msg.fields
    for key, value in data.items():
        field_ = fields.get(key)
        if field_ is None:
            continue
        kind = field_.kind
        if kind == "map":
            assert field_.map_value is not None
            mv = field_.map_value
            if mv.kind in ("string", "bool", "int", "float", "enum", "hex", "bytes"):
                encoded: Any = value
            else:
                encoded = {k: _encode_single(mv, v) for k, v in value.items()}
            if encoded:
                out[key] = encoded
        elif field_.repeated:
            if kind in ("string", "enum", "bool", "int", "hex", "bytes"):
                if value:
                    out[key] = value
            elif value:
                out[key] = [_encode_single(field_, v) for v in value]
        elif kind == "message":
            encoded = encode_message(field_.message, value)
            # A oneof member that is set is written even when empty (`"disabled": {}` is how
            # ADR is switched off).
            if encoded or field_.oneof:
                out[key] = encoded
        elif kind == "wrapper":
            out[key] = _encode_single(field_, value)
        elif kind == "int64":
            out[key] = str(value)
        else:
            out[key] = _encode_scalar(field_, value)
    return out
