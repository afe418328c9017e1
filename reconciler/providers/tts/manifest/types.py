"""Scalar value rules of the manifest language, in one place.

Each rule is a plain function `parse_x(value) -> normal form` that raises `ValueError` with a
message that never quotes the value (secrets use the same functions). The pydantic field types
below wrap them for YAML documents; the CSV path calls them directly per cell (fast, no models).
Limits and patterns come from the server's own tables (`reconciler.providers.tts.reference`).
Normal forms follow `reconciler.providers.tts.schema`: canonical enum names, ints for
the numeric enums (`RxDelay`, `DataRateIndex`), upper-case hex for EUIs/DevAddr/keys.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from functools import cache
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator, WithJsonSchema

from reconciler.manifest.common import closest
from reconciler.manifest.secrets import reference_schema, secret_validator
from reconciler.providers.tts import reference
from reconciler.resources import Secret

ID_REGEX = reference.ID_PATTERN.pattern
USER_ID_REGEX = reference.USER_ID_PATTERN.pattern
_HEX16 = re.compile(r"^[0-9A-Fa-f]{16}$")
_HEX8 = re.compile(r"^[0-9A-Fa-f]{8}$")
_HEX32 = re.compile(r"^[0-9A-Fa-f]{32}$")


def field_rules(message: str, field: str) -> dict[str, Any]:
    for spec in reference.messages()[f"ttn.lorawan.v3.{message}"]["fields"]:
        if spec["name"] == field:
            rules: dict[str, Any] = spec["rules"]
            return rules
    raise KeyError(f"{message}.{field}")


# The payload formatter script limit is a proto rule of the reference tables' release (v3.32:
# 40960 characters); releases that changed it since, by version. The HTTP API has no version
# route (api-definition.json lists none), so the Stack document's `server_version` says which
# release a target runs.
FORMATTER_PARAMETER_MAX = int(
    field_rules("MessagePayloadFormatters", "up_formatter_parameter")["string.max_len"]
)
FORMATTER_LIMITS_SINCE: tuple[tuple[tuple[int, ...], int], ...] = (((3, 35), 65536),)
FORMATTER_PARAMETER_LARGEST = max(
    FORMATTER_PARAMETER_MAX, *(limit for _, limit in FORMATTER_LIMITS_SINCE)
)


def formatter_limit(version: tuple[int, ...] | None) -> int:
    """The longest formatter script a server of `version` takes (None: the tables' release)."""
    limit = FORMATTER_PARAMETER_MAX
    for since, value in FORMATTER_LIMITS_SINCE:
        if version is not None and version >= since:
            limit = value
    return limit


def parse_server_version(value: object) -> tuple[int, ...]:
    text = str(value).strip().removeprefix("v") if isinstance(value, str | float) else ""
    parts = text.split(".")
    if not (2 <= len(parts) <= 3) or not all(p.isdigit() for p in parts):
        raise ValueError("a The Things Stack version such as 3.35 or v3.35.1")
    return tuple(int(p) for p in parts)


ServerVersion = Annotated[
    tuple[int, ...],
    PlainValidator(parse_server_version),
    WithJsonSchema(
        {
            "type": ["string", "number"],
            "pattern": "^v?[0-9]+\\.[0-9]+(\\.[0-9]+)?$",
            "description": "The Things Stack release the target runs (e.g. 3.35).",
        }
    ),
]


SERVER_ADDRESS_REGEX: str = field_rules("Application", "network_server_address")["string.pattern"]
GATEWAY_SERVER_ADDRESS_REGEX: str = field_rules("Gateway", "gateway_server_address")[
    "string.pattern"
]
_SERVER_ADDRESS = re.compile(SERVER_ADDRESS_REGEX)
_GATEWAY_SERVER_ADDRESS = re.compile(GATEWAY_SERVER_ADDRESS_REGEX)

NAME_MAX = 50
DESCRIPTION_MAX = 2000
ATTRIBUTES_MAX = 10
ATTRIBUTE_VALUE_MAX = 200
WEBHOOK_HEADERS_MAX = 50
WEBHOOK_HEADER_KEY_MAX = 64
WEBHOOK_HEADER_VALUE_MAX = 4096
WEBHOOK_PATH_MAX = 64
VERSION_FIELD_MAX = 32
FREQUENCY_PLAN_IDS_MAX = 8
FACTORY_PRESET_FREQUENCIES_MAX = 96
MIN_FREQUENCY_HZ = 100_000


def _hint(word: str, choices: Iterable[str]) -> str:
    match = closest(word, choices)
    return f"; did you mean `{match}`?" if match else ""


def _need_str(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what} must be a string")
    if isinstance(value, int | float):
        # YAML reads unquoted digits as numbers (and drops leading zeros).
        raise ValueError(f"{what} must be a string: quote it in YAML")
    raise ValueError(f"{what} must be a string")


# --- identifiers ------------------------------------------------------------------------------


def _check_id(value: object, what: str, pattern: re.Pattern[str], rule: str) -> str:
    text = _need_str(value, what)
    if len(text) > reference.ID_MAX_LEN:
        raise ValueError(f"{what} is longer than {reference.ID_MAX_LEN} characters")
    if not pattern.match(text):
        raise ValueError(f"{what} `{text}` is not valid: {rule}")
    if text in reference.id_blocklist():
        raise ValueError(f"{what} `{text}` is reserved by The Things Stack (ID blocklist)")
    return text


_ID_RULE = (
    "use 3-36 lowercase letters, digits and single dashes, not starting or ending with a dash"
)


def parse_id(value: object, what: str = "ID") -> str:
    """Application, device, gateway, organization and webhook IDs (the servers' ID pattern)."""
    return _check_id(value, what, reference.ID_PATTERN, _ID_RULE)


def parse_plain_id(value: object, what: str = "ID") -> str:
    """IDs that are not registered in the IS (brand/model IDs, webhook IDs, profile names)."""
    text = _need_str(value, what)
    if len(text) > reference.ID_MAX_LEN or not reference.ID_PATTERN.match(text):
        raise ValueError(f"{what} `{text}` is not valid: {_ID_RULE}")
    return text


def parse_user_id(value: object) -> str:
    return _check_id(value, "user ID", reference.USER_ID_PATTERN, _ID_RULE.replace("3-36", "2-36"))


def parse_attribute_key(value: object) -> str:
    text = _need_str(value, "attribute key")
    if len(text) > reference.ID_MAX_LEN or not reference.ID_PATTERN.match(text):
        raise ValueError(f"attribute key `{text}` is not valid: {_ID_RULE}")
    return text


# --- bytes ------------------------------------------------------------------------------------


def parse_eui(value: object, what: str = "EUI") -> str:
    text = _need_str(value, what)
    if not _HEX16.match(text):
        raise ValueError(f"{what} must be 16 hex digits (8 bytes)")
    return text.upper()


def parse_dev_addr(value: object) -> str:
    text = _need_str(value, "DevAddr")
    if not _HEX8.match(text):
        raise ValueError("DevAddr must be 8 hex digits (4 bytes)")
    return text.upper()


def parse_aes_key(value: object) -> str:
    """A 16-byte AES key; the message never repeats the value (keys are secrets)."""
    text = _need_str(value, "key")
    if not _HEX32.match(text):
        raise ValueError("key must be 32 hex digits (16 bytes)")
    return text.upper()


# --- enums ------------------------------------------------------------------------------------


_ENUM_CACHE: dict[tuple[str, object], str] = {}


def _enum_name(enum: str, value: object, what: str) -> str:
    # Fleets repeat the same few spellings thousands of times.
    key = (enum, value)
    if type(value) is str:
        cached = _ENUM_CACHE.get(key)
        if cached is not None:
            return cached
    name = _enum_lookup(enum, value, what)
    if type(value) is str and len(_ENUM_CACHE) < 10_000:
        _ENUM_CACHE[key] = name
    return name


def _enum_lookup(enum: str, value: object, what: str) -> str:
    spec = reference.enum(enum)
    if isinstance(value, float):
        value = repr(value)  # YAML reads `1.0`/`1.1` as floats
    name = spec.canonical_name(value)
    if name is None and isinstance(value, str):
        name = spec.canonical_name(value.upper()) or spec.canonical_name(value.lower())
    if name is None or name.endswith("_UNKNOWN"):
        choices = sorted(n for n in spec.canonical.values() if not n.endswith("_UNKNOWN"))
        shown = ", ".join(choices)
        hint = _hint(value, [*spec.values, *spec.aliases]) if isinstance(value, str) else ""
        raise ValueError(f"unknown {what}{hint} (one of {shown})")
    return name


def parse_mac_version(value: object) -> str:
    return _enum_name("MACVersion", value, "LoRaWAN version")


def parse_phy_version(value: object) -> str:
    return _enum_name("PHYVersion", value, "LoRaWAN PHY version")


def _numeric_enum(enum: str, prefix: str, value: object, what: str) -> int:
    spec = reference.enum(enum)
    number = spec.parse(value)
    if number is None and isinstance(value, str) and value.strip().isdigit():
        number = spec.parse(int(value))
    if number is None:
        top = max(spec.canonical)
        raise ValueError(f"{what} must be 0-{top} or {prefix}0-{prefix}{top}")
    return number


def parse_rx_delay(value: object) -> int:
    return _numeric_enum("RxDelay", "RX_DELAY_", value, "rx1_delay")


def parse_data_rate_index(value: object) -> int:
    return _numeric_enum("DataRateIndex", "DATA_RATE_", value, "data rate index")


def parse_data_rate_offset(value: object) -> int:
    return _numeric_enum("DataRateOffset", "DATA_RATE_OFFSET_", value, "data rate offset")


def parse_ping_slot_periodicity(value: object) -> str:
    return _enum_name("PingSlotPeriod", value, "ping slot periodicity")


def parse_formatter(value: object) -> str:
    return _enum_name("PayloadFormatter", value, "payload formatter")


def parse_mqtt_qos(value: object) -> str:
    return _enum_name("ApplicationPubSub.MQTTProvider.QoS", value, "MQTT QoS")


def parse_right(value: object) -> str:
    return _enum_name("Right", value, "right")


def parse_location_source(value: object) -> str:
    return _enum_name("LocationSource", value, "location source")


# --- other scalars ----------------------------------------------------------------------------


def parse_frequency_plan_id(value: object) -> str:
    text = _need_str(value, "frequency plan ID")
    if text not in reference.frequency_plans():
        raise ValueError(
            f"unknown frequency plan `{text}`{_hint(text, reference.frequency_plans())}"
        )
    return text


def parse_frequency(value: object, what: str = "frequency") -> int:
    """uint64 Hz; TTS accepts a number or a decimal string."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number of Hz")
    if value < MIN_FREQUENCY_HZ:
        raise ValueError(f"{what} must be at least {MIN_FREQUENCY_HZ} Hz")
    return value


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def parse_bool(value: object, what: str = "value") -> bool:
    """YAML gives bools; CSV cells give text (`true`/`false`, as the TTS CSV importer)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError(f"{what} must be true or false")


def parse_uint32(value: object, what: str = "value") -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ValueError(f"{what} must be a whole number from 0 to {2**32 - 1}")
    return value


def parse_hex_uint32(value: object, what: str) -> int:
    """`vendor_id`/`vendor_profile_id` are hex in the TTS device CSV format."""
    if isinstance(value, int) and not isinstance(value, bool):
        return parse_uint32(value, what)
    text = _need_str(value, what).removeprefix("0x")
    try:
        return parse_uint32(int(text, 16), what)
    except ValueError:
        raise ValueError(f"{what} must be a hex number (up to 8 digits)") from None


def max_len(limit: int, what: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = _need_str(value, what)
        if len(text) > limit:
            raise ValueError(f"{what} is longer than {limit} characters ({len(text)})")
        return text

    return parse


parse_name = max_len(NAME_MAX, "name")
parse_description = max_len(DESCRIPTION_MAX, "description")
parse_version_field = max_len(VERSION_FIELD_MAX, "version field")


def parse_server_address(value: object) -> str:
    text = _need_str(value, "server address")
    if not _SERVER_ADDRESS.match(text):
        raise ValueError("server address must be a host name with an optional :port")
    return text


def parse_gateway_server_address(value: object) -> str:
    text = _need_str(value, "gateway server address")
    if not _GATEWAY_SERVER_ADDRESS.match(text):
        raise ValueError(
            "gateway server address must be a host name with an optional scheme:// and :port"
        )
    return text


_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?#]+[^\s]*$")


def parse_uri(value: object, what: str = "URL") -> str:
    text = _need_str(value, what)
    if not _URL.match(text):
        raise ValueError(f"{what} must be an absolute URI (scheme://host/...)")
    return text


def parse_http_url(value: object, what: str = "URL") -> str:
    text = parse_uri(value, what)
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"{what} must start with http:// or https://")
    return text.rstrip("/")


# --- pydantic field types ---------------------------------------------------------------------


@cache
def _string_schema(pattern: str | None, max_length: int | None, description: str) -> Any:
    schema: dict[str, Any] = {"type": "string", "description": description}
    if pattern:
        schema["pattern"] = pattern
    if max_length:
        schema["maxLength"] = max_length
    return schema


def _field(
    parse: Callable[[object], Any], json_schema: dict[str, Any]
) -> tuple[PlainValidator, WithJsonSchema]:
    return PlainValidator(parse), WithJsonSchema(json_schema)


def _enum_schema(enum: str, description: str, extra: Iterable[str] = ()) -> dict[str, Any]:
    spec = reference.enum(enum)
    names = [n for n in [*spec.values, *spec.aliases, *extra] if not n.lower().endswith("unknown")]
    return {"type": "string", "enum": sorted(set(names)), "description": description}


def _numeric_enum_schema(enum: str, prefix: str, description: str) -> dict[str, Any]:
    top = max(reference.enum(enum).canonical)
    return {
        "description": description,
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": top},
            {"type": "string", "pattern": f"^{prefix}([0-9]|1[0-5])$"},
        ],
    }


ID_DESCRIPTION = (
    "An ID: lower-case letters and digits, single dashes between them, 3-36 characters."
)
EntityId = Annotated[
    str,
    *_field(
        parse_id,
        _string_schema(
            ID_REGEX,
            reference.ID_MAX_LEN,
            ID_DESCRIPTION,
        ),
    ),
]
PlainId = Annotated[
    str,
    *_field(parse_plain_id, _string_schema(ID_REGEX, reference.ID_MAX_LEN, "An identifier.")),
]
UserId = Annotated[
    str, *_field(parse_user_id, _string_schema(USER_ID_REGEX, reference.ID_MAX_LEN, "A user ID."))
]
Eui = Annotated[
    str, *_field(parse_eui, _string_schema("^[0-9A-Fa-f]{16}$", None, "8 bytes as 16 hex digits."))
]
DevAddr = Annotated[
    str,
    *_field(parse_dev_addr, _string_schema("^[0-9A-Fa-f]{8}$", None, "4 bytes as 8 hex digits.")),
]
MacVersion = Annotated[
    str,
    *_field(
        parse_mac_version,
        {
            "anyOf": [
                _enum_schema("MACVersion", "LoRaWAN version, any TTS spelling."),
                {"type": "number", "enum": [1.0, 1.1]},
            ]
        },
    ),
]
PhyVersion = Annotated[
    str,
    *_field(
        parse_phy_version,
        {
            "anyOf": [
                _enum_schema("PHYVersion", "Regional Parameters version, any TTS spelling."),
                {"type": "number", "enum": [1.0]},
            ]
        },
    ),
]
FrequencyPlanId = Annotated[
    str,
    *_field(
        parse_frequency_plan_id,
        {
            "type": "string",
            "enum": sorted(reference.frequency_plans()),
            "description": "A frequency plan ID known to The Things Stack.",
        },
    ),
]
Frequency = Annotated[
    int,
    *_field(
        parse_frequency,
        {"type": "integer", "minimum": MIN_FREQUENCY_HZ, "description": "Frequency in Hz."},
    ),
]
RxDelay = Annotated[
    int, *_field(parse_rx_delay, _numeric_enum_schema("RxDelay", "RX_DELAY_", "Seconds (0-15)."))
]
DataRateIndex = Annotated[
    int,
    *_field(
        parse_data_rate_index, _numeric_enum_schema("DataRateIndex", "DATA_RATE_", "Data rate.")
    ),
]
DataRateOffset = Annotated[
    int,
    *_field(
        parse_data_rate_offset,
        _numeric_enum_schema("DataRateOffset", "DATA_RATE_OFFSET_", "Data rate offset."),
    ),
]


def enum_value(enum: str, what: str) -> Any:
    """A value of a named enum of the reference tables, by any spelling the server reads,
    normalised to the name it writes."""
    return Annotated[
        str, *_field(lambda v: _enum_name(enum, v, what), _enum_schema(enum, f"{what}."))
    ]


PingSlotPeriodicity = Annotated[
    str,
    *_field(
        parse_ping_slot_periodicity,
        _enum_schema("PingSlotPeriod", "Class B ping slot period (PING_EVERY_1S .. 128S)."),
    ),
]
Formatter = Annotated[
    str,
    *_field(
        parse_formatter,
        _enum_schema(
            "PayloadFormatter",
            "Payload formatter type.",
            extra=["javascript", "cayennelpp", "repository", "grpc_service", "none"],
        ),
    ),
]
MqttQoS = Annotated[
    str,
    *_field(
        parse_mqtt_qos,
        _enum_schema("ApplicationPubSub.MQTTProvider.QoS", "MQTT quality of service."),
    ),
]
LocationSource = Annotated[
    str, *_field(parse_location_source, _enum_schema("LocationSource", "Location source."))
]
Name = Annotated[str, *_field(parse_name, _string_schema(None, NAME_MAX, "Name."))]
Right = Annotated[
    str,
    *_field(
        parse_right,
        _enum_schema("Right", "A right, e.g. RIGHT_GATEWAY_LINK (or without the RIGHT_ prefix)."),
    ),
]
Description = Annotated[
    str, *_field(parse_description, _string_schema(None, DESCRIPTION_MAX, "Description."))
]
VersionField = Annotated[
    str, *_field(parse_version_field, _string_schema(None, VERSION_FIELD_MAX, "Version field."))
]
ServerAddress = Annotated[
    str,
    *_field(
        parse_server_address,
        _string_schema(SERVER_ADDRESS_REGEX, None, "host[:port] of a TTS server."),
    ),
]
GatewayServerAddress = Annotated[
    str,
    *_field(
        parse_gateway_server_address,
        _string_schema(
            GATEWAY_SERVER_ADDRESS_REGEX, None, "[scheme://]host[:port] of the Gateway Server."
        ),
    ),
]
HttpUrl = Annotated[
    str,
    *_field(
        parse_http_url,
        {"type": "string", "format": "uri", "pattern": "^https?://", "description": "Root URL."},
    ),
]
Uri = Annotated[
    str, *_field(parse_uri, {"type": "string", "format": "uri", "description": "Absolute URI."})
]
HexUint32 = Annotated[
    int,
    *_field(
        lambda v: parse_hex_uint32(v, "value"),
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^[0-9A-Fa-f]{1,8}$"},
            ]
        },
    ),
]


def _parse_attribute_value(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    text = _need_str(value, "attribute value")
    if len(text) > ATTRIBUTE_VALUE_MAX:
        raise ValueError(f"attribute value is longer than {ATTRIBUTE_VALUE_MAX} characters")
    return text


def _check_attribute_count(value: dict[str, str]) -> dict[str, str]:
    if len(value) > ATTRIBUTES_MAX:
        raise ValueError(f"at most {ATTRIBUTES_MAX} attributes are allowed ({len(value)})")
    return value


AttributeKey = Annotated[
    str,
    *_field(parse_attribute_key, _string_schema(ID_REGEX, reference.ID_MAX_LEN, "Attribute key.")),
]
AttributeValue = Annotated[
    str,
    *_field(
        _parse_attribute_value,
        {"type": ["string", "number"], "maxLength": ATTRIBUTE_VALUE_MAX},
    ),
]
Attributes = Annotated[
    dict[AttributeKey, AttributeValue],
    AfterValidator(_check_attribute_count),
    Field(json_schema_extra={"maxProperties": ATTRIBUTES_MAX}),
]


def _header_value(text: str) -> str:
    if len(text) > WEBHOOK_HEADER_VALUE_MAX:
        raise ValueError(f"header value is longer than {WEBHOOK_HEADER_VALUE_MAX} characters")
    # A line break would end the header and start another one (header injection); other
    # control characters are refused by HTTP servers. Tab is allowed inside a value.
    for index, char in enumerate(text):
        if char in "\r\n":
            raise ValueError(f"header value contains a line break (at character {index + 1})")
        if (char < " " and char != "\t") or char == "\x7f":
            raise ValueError(
                f"header value contains a control character (at character {index + 1})"
            )
    return text


# A 16-byte AES key (root or session key), normalised to upper-case hex.
AesKey = Annotated[
    Secret,
    PlainValidator(secret_validator(parse_aes_key)),
    WithJsonSchema(reference_schema({"type": "string", "pattern": "^[0-9A-Fa-f]{32}$"})),
]
# An HTTP field name is a token (RFC 9110 section 5.1): no spaces, colons or line breaks.
HeaderName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=WEBHOOK_HEADER_KEY_MAX,
        pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
    ),
]
_CLAIM_CODE_PATTERN = re.compile(
    field_rules("EndDeviceAuthenticationCode", "value")["string.pattern"]
)


def _claim_code(text: str) -> str:
    if not _CLAIM_CODE_PATTERN.match(text):
        raise ValueError("a claim authentication code is 1-32 letters and digits")
    return text


ClaimCode = Annotated[
    Secret,
    PlainValidator(secret_validator(_claim_code)),
    WithJsonSchema(reference_schema({"type": "string", "pattern": _CLAIM_CODE_PATTERN.pattern})),
]
_SERIAL = field_rules("EndDevice", "serial_number")
SerialNumber = Annotated[
    str, Field(max_length=int(_SERIAL["string.max_len"]), pattern=_SERIAL["string.pattern"])
]


def parse_net_id(value: object) -> str:
    text = _need_str(value, "NetID")
    if not re.fullmatch(r"[0-9A-Fa-f]{6}", text):
        raise ValueError("NetID must be 6 hex digits (3 bytes)")
    return text.upper()


NetId = Annotated[str, *_field(parse_net_id, {"type": "string", "pattern": "^[0-9A-Fa-f]{6}$"})]
_GATEWAY_SECRET_MAX = int(field_rules("Secret", "value")["bytes.max_len"])


def _gateway_secret(text: str) -> str:
    """Text (an LNS or CUPS key) -> the base64 the server's JSON uses for the bytes."""
    raw = text.strip().encode()
    if not raw:
        raise ValueError("secret is empty")
    if len(raw) > _GATEWAY_SECRET_MAX:
        raise ValueError(f"longer than {_GATEWAY_SECRET_MAX} bytes")
    return base64.b64encode(raw).decode()


# A gateway secret (LNS key, CUPS key): text, sent as the base64 of its bytes.
GatewaySecret = Annotated[
    Secret,
    PlainValidator(secret_validator(_gateway_secret)),
    WithJsonSchema(reference_schema({"type": "string", "minLength": 1})),
]
UpdateChannel = Annotated[
    str, Field(max_length=int(field_rules("Gateway", "update_channel")["string.max_len"]))
]
# A webhook header value: inline is normal for plain headers, a reference for secret ones.
HeaderValue = Annotated[
    Secret,
    PlainValidator(secret_validator(_header_value)),
    WithJsonSchema(reference_schema({"type": "string", "maxLength": WEBHOOK_HEADER_VALUE_MAX})),
]


# The application messages a webhook or pub/sub sends on (each its own path or topic), in the
# order of the server's schema; pub/subs also take downlinks (push, replace) before them.
APPLICATION_MESSAGE_TYPES = (
    "uplink_message",
    "uplink_normalized",
    "join_accept",
    "downlink_ack",
    "downlink_nack",
    "downlink_sent",
    "downlink_failed",
    "downlink_queued",
    "downlink_queue_invalidated",
    "location_solved",
    "service_data",
)
