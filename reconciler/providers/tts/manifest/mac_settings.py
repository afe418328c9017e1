"""Device `mac_settings`: every field the Network Server accepts, built from the reference tables.

The field list is the Network Server's Set allow-list (`mac_settings.<name>` in
`NsEndDeviceRegistry/Set`, from the tables tools/gen_tables.py generates) in the schema's order,
and each field's value type follows its proto type (wrappers are bare values, as on the wire):
a new server field shows up here when the tables are regenerated, never by hand. Two are not
modelled yet: the relay settings (`relay`, `desired_relay`: serving/served modes, channels and
forwarding rules of LoRaWAN relays); import reports them.

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
UNMODELLED = ("relay", "desired_relay")
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
    enum = type_name.removeprefix("ttn.lorawan.v3.")
    if enum in reference.enums():
        return t.enum_value(enum, enum)
    raise TypeError(f"no manifest type for {type_name}")


def _fields_of(message: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        spec["name"]: (value_type(spec) | None, None)
        for spec in reference.messages()[message]["fields"]
        if spec["name"] not in skip
    }


# ADR modes (ADRSettings.StaticMode/DynamicMode/DisabledMode). Dynamic mode's channel steering
# and per-data-rate overrides are not modelled (import reports them).
AdrStatic = create_model(
    "AdrStatic", __base__=ManifestModel, **_fields_of("ttn.lorawan.v3.ADRSettings.StaticMode")
)
AdrDynamic = create_model(
    "AdrDynamic",
    __base__=ManifestModel,
    **_fields_of("ttn.lorawan.v3.ADRSettings.DynamicMode", ("channel_steering", "overrides")),
)


class AdrDisabled(ManifestModel):
    pass


class AdrSettings(ManifestModel):
    """Adaptive data rate: exactly one of `static`, `dynamic` (the network decides) and
    `disabled`."""

    static: AdrStatic | None = None
    dynamic: AdrDynamic | None = None
    disabled: AdrDisabled | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> AdrSettings:
        if len(self.model_fields_set & {"static", "dynamic", "disabled"}) != 1:
            raise ValueError("`adr` needs exactly one of `static`, `dynamic` or `disabled`")
        return self


_BY_PROTO_TYPE["ttn.lorawan.v3.ADRSettings"] = AdrSettings


def _mac_settings_base() -> type[ManifestModel]:
    specs = {s["name"]: s for s in reference.messages()[MESSAGE]["fields"]}
    fields = {
        name: (value_type(specs[name]) | None, None)
        for name in ns_mac_settings()
        if name not in UNMODELLED
    }
    model: type[ManifestModel] = create_model(
        "MacSettingsFields",
        __base__=ManifestModel,
        **fields,  # type: ignore[call-overload]
    )
    return model


class MacSettings(_mac_settings_base()):  # type: ignore[misc]
    """TTS `mac_settings`: every field the Network Server accepts, relays excepted."""

    @model_validator(mode="before")
    @classmethod
    def _one_adr_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "adr" in data and set(DEPRECATED_ADR) & set(data):
            raise ValueError("set `adr`, not also the deprecated `use_adr`/`adr_margin`")
        return data
