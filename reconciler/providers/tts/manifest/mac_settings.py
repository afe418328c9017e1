"""Device `mac_settings`: every field the Network Server accepts, built from the reference tables.

The field list is the Network Server's Set allow-list (`mac_settings.<name>` in
`NsEndDeviceRegistry/Set`, from the tables tools/gen_tables.py generates) in the schema's order,
and each field's value type follows its proto type (wrappers are bare values, as on the wire):
a new server field shows up here when the tables are regenerated, never by hand. Nested
messages (ADR modes, relay settings) become models the same way (`message_model`), oneofs
checked.

`adr` is the ADR setting (exactly one of `static`, `dynamic`, `disabled`). The deprecated
`use_adr` and `adr_margin` are still accepted and written as given (the server still takes
them; the loader warns), but never together with `adr`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, PlainValidator, WithJsonSchema, create_model, model_validator

from reconciler.manifest.common import ManifestModel
from reconciler.providers.tts import reference
from reconciler.providers.tts.manifest import types as t

MESSAGE = "ttn.lorawan.v3.MACSettings"
NS_SET_RPC = "NsEndDeviceRegistry/Set"
DEPRECATED_ADR = ("use_adr", "adr_margin")
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_NANOS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def ns_mac_settings() -> list[str]:
    """The top-level `mac_settings` fields the Network Server accepts, in schema order."""
    allowed = reference.rpc_field_masks()[NS_SET_RPC].allowed
    return [
        f["name"]
        for f in reference.messages()[MESSAGE]["fields"]
        if f"mac_settings.{f['name']}" in allowed
    ]


def parse_duration(value: object) -> str:
    """Seconds (a number) or a Go duration (`30s`, `1m30s`, `1.5s`) -> the server's JSON form
    (`90s`, `1.500s`), so a value compares equal to what the server returns."""
    if isinstance(value, bool):
        raise ValueError("a duration: seconds (30) or `30s`, `1m30s`")
    if isinstance(value, int | float):
        nanos = round(value * 10**9)
    elif isinstance(value, str) and value.strip():
        text, nanos, pos = value.strip(), 0, 0
        while pos < len(text):
            match = _DURATION.match(text, pos)
            if match is None:
                raise ValueError(f"`{value}` is not a duration (30s, 1m30s, 1.5s)")
            nanos += round(float(match.group(1)) * _NANOS[match.group(2)])
            pos = match.end()
    else:
        raise ValueError("a duration: seconds (30) or `30s`, `1m30s`")
    if nanos < 0:
        raise ValueError("a duration cannot be negative")
    seconds, frac = divmod(nanos, 10**9)
    if frac == 0:
        return f"{seconds}s"
    for digits, unit in ((3, 10**6), (6, 10**3), (9, 1)):
        if frac % unit == 0:
            return f"{seconds}.{frac // unit:0{digits}d}s"
    raise AssertionError("unreachable")


Duration = Annotated[
    str,
    PlainValidator(parse_duration),
    WithJsonSchema(
        {"type": ["number", "string"], "description": "Seconds, or a duration: 30s, 1m30s."}
    ),
]


def _zeroable_frequency(value: object) -> int:
    if value == 0 and not isinstance(value, bool):
        return 0
    return t.parse_frequency(value)


ZeroableFrequency = Annotated[
    int,
    PlainValidator(_zeroable_frequency),
    WithJsonSchema({"type": "integer", "minimum": 0, "description": "Hz (0: the default)."}),
]


def _uint32(rules: dict[str, Any]) -> Any:
    return Annotated[
        int,
        Field(ge=int(rules.get("uint32.gte", 0)), le=int(rules.get("uint32.lte", 2**32 - 1))),
    ]


# Value types by proto type where the manifest has its own rule; others follow the wrapped
# type (bool, float, uint32 with its limits, an enum by name).
_BY_PROTO_TYPE: dict[str, Any] = {
    "ttn.lorawan.v3.FrequencyValue": t.Frequency,
    "ttn.lorawan.v3.ZeroableFrequencyValue": ZeroableFrequency,
    "ttn.lorawan.v3.RxDelayValue": t.RxDelay,
    "ttn.lorawan.v3.DataRateIndexValue": t.DataRateIndex,
    "ttn.lorawan.v3.DataRateOffsetValue": t.DataRateOffset,
    "ttn.lorawan.v3.PingSlotPeriodValue": t.PingSlotPeriodicity,
    "ttn.lorawan.v3.DataRateIndex": t.DataRateIndex,
    "google.protobuf.Duration": Duration,
}


def value_type(spec: dict[str, Any]) -> Any:
    """The manifest type of one field of the reference schema (`messages.json` entry)."""
    type_name: str = spec["type"]
    rules: dict[str, Any] = spec["rules"]
    if spec["repeated"]:
        if type_name == "uint64":  # factory preset frequencies
            return Annotated[
                list[t.Frequency], Field(max_length=int(rules.get("repeated.max_items", 96)))
            ]
        if type_name in reference.messages():  # a relay's uplink forwarding rules
            item: Any = message_model(type_name)
            return Annotated[list[item], Field(max_length=rules.get("repeated.max_items"))]
        raise TypeError(f"no manifest type for repeated {type_name}")
    if type_name in _BY_PROTO_TYPE:
        return _BY_PROTO_TYPE[type_name]
    fields = reference.messages().get(type_name, {}).get("fields", [])
    if len(fields) == 1 and fields[0]["name"] == "value":  # a wrapper: the bare inner value
        return value_type({**fields[0], "repeated": False})
    if type_name in ("bool", "google.protobuf.BoolValue"):
        return bool
    if type_name in ("float", "double", "google.protobuf.FloatValue"):
        return float
    if type_name in ("uint32", "google.protobuf.UInt32Value"):
        return _uint32(rules)
    if type_name == "uint64" and "uint64.gte" in rules:  # a relay's second channel frequency
        return t.Frequency
    if type_name == "string":
        return Annotated[
            str, Field(max_length=rules.get("string.max_len"), pattern=rules.get("string.pattern"))
        ]
    if type_name == "bytes":  # base64, as the server writes it (a session key ID)
        return str
    enum = type_name.removeprefix("ttn.lorawan.v3.")
    if enum in reference.enums():
        return t.enum_value(enum, enum)
    if type_name in reference.messages():
        return message_model(type_name)
    raise TypeError(f"no manifest type for {type_name}")


def _oneofs(type_name: str) -> dict[str, tuple[str, ...]]:
    groups: dict[str, list[str]] = {}
    for spec in reference.messages()[type_name]["fields"]:
        if spec["oneof"]:
            groups.setdefault(spec["oneof"], []).append(spec["name"])
    return {name: tuple(members) for name, members in groups.items()}


def _choice_rule(type_name: str) -> Any:
    """A validator of the message's oneofs: at most one member each; exactly one when the
    message is nothing but that choice (an ADR mode, a relay mode, a channel steering mode)."""
    groups = _oneofs(type_name)
    field_count = len(reference.messages()[type_name]["fields"])

    def check(model: Any) -> Any:
        present = {n for n in model.model_fields_set if getattr(model, n) is not None}
        for members in groups.values():
            chosen = [name for name in members if name in present]
            quoted = [f"`{name}`" for name in members]
            names = ", ".join(quoted[:-1]) + " or " + quoted[-1]
            if len(members) == field_count and len(chosen) != 1:
                raise ValueError(f"needs exactly one of {names}")
            if len(chosen) > 1:
                raise ValueError(f"set at most one of {names} (they are one choice)")
        return model

    return model_validator(mode="after")(check)


def _dynamic_ranges(dynamic: Any) -> Any:
    """The Network Server refuses a dynamic ADR maximum below its minimum (data rate, transmit
    power, transmissions, and each data rate's override of the transmissions)."""
    pairs = [(dynamic, "", kind) for kind in ("data_rate_index", "tx_power_index", "nb_trans")]
    if dynamic.overrides is not None:
        for name in type(dynamic.overrides).model_fields:
            override = getattr(dynamic.overrides, name)
            if override is not None:
                pairs.append((override, f"overrides.{name}.", "nb_trans"))
    for holder, where, kind in pairs:
        low, high = getattr(holder, f"min_{kind}"), getattr(holder, f"max_{kind}")
        if low is not None and high is not None and high < low:
            raise ValueError(f"`{where}max_{kind}` ({high}) is below `min_{kind}` ({low})")
    return dynamic


# Rules across fields of one message, beyond what the schema's field rules say.
_MESSAGE_RULES = {"ttn.lorawan.v3.ADRSettings.DynamicMode": _dynamic_ranges}
_MODELS: dict[str, type[ManifestModel]] = {}


def message_model(type_name: str) -> type[ManifestModel]:
    """The manifest model of a message of the reference schema: its fields by their wire
    names and proto types, its oneofs checked; built once per message."""
    model = _MODELS.get(type_name)
    if model is not None:
        return model
    fields: dict[str, Any] = {}
    for spec in reference.messages()[type_name]["fields"]:
        if (type_name, spec["name"]) in reference.PATTERN_ON_EMPTY:  # required
            fields[spec["name"]] = (value_type(spec), ...)
        else:
            fields[spec["name"]] = (value_type(spec) | None, None)
    validators = {"_choice": _choice_rule(type_name)} if _oneofs(type_name) else {}
    if type_name in _MESSAGE_RULES:
        validators["_rule"] = model_validator(mode="after")(_MESSAGE_RULES[type_name])
    # `ttn.lorawan.v3.ADRSettings.DynamicMode` -> `ADRSettingsDynamicMode`
    name = type_name.removeprefix("ttn.lorawan.v3.").replace(".", "")
    model = create_model(name, __base__=ManifestModel, __validators__=validators, **fields)
    _MODELS[type_name] = model
    return model


# Adaptive data rate (`adr`): exactly one of `static`, `dynamic` (the network decides, with
# optional channel steering and per-data-rate overrides) and `disabled`.
AdrSettings = message_model("ttn.lorawan.v3.ADRSettings")
# Relays (`relay`, `desired_relay`): exactly one of `serving` (the device is a relay: second
# channel, CAD period, uplink forwarding rules and limits) and `served` (it uses a relay).
RelaySettings = message_model("ttn.lorawan.v3.RelaySettings")


def _mac_settings_base() -> type[ManifestModel]:
    specs = {s["name"]: s for s in reference.messages()[MESSAGE]["fields"]}
    fields = {name: (value_type(specs[name]) | None, None) for name in ns_mac_settings()}
    model: type[ManifestModel] = create_model(
        "MacSettingsFields",
        __base__=ManifestModel,
        **fields,  # type: ignore[call-overload]
    )
    return model


class MacSettings(_mac_settings_base()):  # type: ignore[misc]
    """TTS `mac_settings`: every field the Network Server accepts."""

    @model_validator(mode="before")
    @classmethod
    def _one_adr_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "adr" in data and set(DEPRECATED_ADR) & set(data):
            raise ValueError("set `adr`, not also the deprecated `use_adr`/`adr_margin`")
        return data
