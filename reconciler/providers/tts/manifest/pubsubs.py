"""Application pub/subs in the manifest language: MQTT, NATS or AWS IoT, with topics per message.

Field names and limits are the server's (`ApplicationPubSub` in the reference tables). The
credentials a pub/sub carries (the MQTT password and TLS client key, a NATS URL, which holds its
user and password, AWS secret keys and session tokens) are secrets: given by reference, never
printed, compared by fingerprint. The server returns them in clear to anyone who may read the
application's traffic, so the tool never shows a live value of these fields either.
"""

from __future__ import annotations

import base64
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainValidator, WithJsonSchema, model_validator

from reconciler.manifest.common import ManifestModel
from reconciler.manifest.secrets import reference_schema, secret_validator
from reconciler.providers.tts.manifest import types as t
from reconciler.providers.tts.manifest.types import HeaderName, HeaderValue
from reconciler.resources import Secret

PUBSUB = "ApplicationPubSub"
MQTT = "ApplicationPubSub.MQTTProvider"
AWS_IOT = "ApplicationPubSub.AWSIoTProvider"
PROVIDERS = ("mqtt", "nats", "aws_iot")
# The message types a pub/sub publishes (or, for downlinks, subscribes to), in schema order.
PUBSUB_MESSAGE_TYPES = ("downlink_push", "downlink_replace", *t.APPLICATION_MESSAGE_TYPES)


def _max(message: str, field: str, kind: str = "string") -> int:
    return int(t.field_rules(message, field)[f"{kind}.max_len"])


def _text(message: str, field: str) -> Any:
    return Annotated[str, Field(max_length=_max(message, field))]


TOPIC_MAX = _max(f"{PUBSUB}.Message", "topic")
BASE_TOPIC_MAX = _max(PUBSUB, "base_topic")
TLS_MAX = _max(MQTT, "tls_ca", "bytes")


def _limited_secret(what: str, limit: int) -> Any:
    def check(text: str) -> str:
        if not text:
            raise ValueError(f"{what} is empty")
        if len(text) > limit:
            raise ValueError(f"{what} is longer than {limit} characters")
        return text

    return Annotated[
        Secret,
        PlainValidator(secret_validator(check)),
        WithJsonSchema(reference_schema({"type": "string", "maxLength": limit})),
    ]


def _pem_base64(text: str) -> str:
    """PEM text -> the base64 the server's JSON uses for these bytes fields."""
    raw = text.strip().encode() + b"\n"
    if len(raw) > TLS_MAX:
        raise ValueError(f"longer than {TLS_MAX} bytes")
    if not text.lstrip().startswith("-----BEGIN "):
        raise ValueError("not PEM text (-----BEGIN ...)")
    return base64.b64encode(raw).decode()


def _pem(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("PEM text expected")
    return _pem_base64(value)


def _url_secret(text: str) -> str:
    return t.parse_uri(text.strip(), "server URL")


Password = _limited_secret("password", _max(MQTT, "password"))
# A TLS client key: PEM text from a file (or the environment), sent as base64.
PemKey = Annotated[
    Secret,
    PlainValidator(secret_validator(_pem_base64)),
    WithJsonSchema(reference_schema({"type": "string", "description": "PEM private key."})),
]
PemText = Annotated[
    str,
    PlainValidator(_pem),
    WithJsonSchema({"type": "string", "description": "PEM certificate(s), inline."}),
]
UrlSecret = Annotated[
    Secret,
    PlainValidator(secret_validator(_url_secret)),
    WithJsonSchema(reference_schema({"type": "string", "format": "uri"})),
]
AwsRegion = Literal[tuple(t.field_rules(AWS_IOT, "region")["string.in"])]  # type: ignore[valid-type]


def _message_topic(value: object) -> object:
    return {"topic": value} if isinstance(value, str) else value


class PubSubMessage(ManifestModel):
    topic: Annotated[str, Field(max_length=TOPIC_MAX)] = ""


TopicSetting = Annotated[
    PubSubMessage,
    BeforeValidator(_message_topic),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": TOPIC_MAX},
                {
                    "type": "object",
                    "properties": {"topic": {"type": "string", "maxLength": TOPIC_MAX}},
                    "additionalProperties": False,
                },
            ],
            "description": "Topic under base_topic for this message type (enables it).",
        }
    ),
]


class MqttProvider(ManifestModel):
    server_url: t.Uri = Field(description="mqtt://host:1883 or mqtts://host:8883")
    client_id: _text(MQTT, "client_id") | None = None  # type: ignore[valid-type]
    username: _text(MQTT, "username") | None = None  # type: ignore[valid-type]
    password: Password | None = None  # type: ignore[valid-type]
    subscribe_qos: t.MqttQoS | None = None
    publish_qos: t.MqttQoS | None = None
    use_tls: bool | None = None
    tls_ca: PemText | None = None
    tls_client_cert: PemText | None = None
    tls_client_key: PemKey | None = None
    headers: dict[HeaderName, HeaderValue] | None = None


class NatsProvider(ManifestModel):
    server_url: UrlSecret = Field(
        description="nats://user:password@host:4222: it holds credentials, so by reference."
    )


_ACCESS_KEY_ID = t.field_rules(f"{AWS_IOT}.AccessKey", "access_key_id")


class AwsAccessKey(ManifestModel):
    access_key_id: Annotated[
        str,
        Field(
            min_length=int(_ACCESS_KEY_ID["string.min_len"]),
            max_length=int(_ACCESS_KEY_ID["string.max_len"]),
            pattern=_ACCESS_KEY_ID["string.pattern"],
        ),
    ]
    secret_access_key: _limited_secret(  # type: ignore[valid-type]
        "secret access key", _max(f"{AWS_IOT}.AccessKey", "secret_access_key")
    )
    session_token: (
        _limited_secret(  # type: ignore[valid-type]
            "session token", _max(f"{AWS_IOT}.AccessKey", "session_token")
        )
        | None
    ) = None


def _duration(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return f"{value}s"
    if isinstance(value, str) and value.endswith("s") and value[:-1].isdigit():
        return value
    raise ValueError("a duration in seconds (3600 or `3600s`)")


class AwsAssumeRole(ManifestModel):
    arn: Annotated[
        str, Field(pattern=t.field_rules(f"{AWS_IOT}.AssumeRole", "arn")["string.pattern"])
    ]
    external_id: (
        Annotated[
            str,
            Field(
                max_length=_max(f"{AWS_IOT}.AssumeRole", "external_id"),
                pattern=t.field_rules(f"{AWS_IOT}.AssumeRole", "external_id")["string.pattern"],
            ),
        ]
        | None
    ) = None
    session_duration: (
        Annotated[str, PlainValidator(_duration), WithJsonSchema({"type": ["integer", "string"]})]
        | None
    ) = None


class AwsIotProvider(ManifestModel):
    region: AwsRegion  # type: ignore[valid-type]
    access_key: AwsAccessKey | None = None
    assume_role: AwsAssumeRole | None = None
    endpoint_address: (
        Annotated[
            str,
            Field(
                max_length=_max(AWS_IOT, "endpoint_address"),
                pattern=t.field_rules(AWS_IOT, "endpoint_address")["string.pattern"],
            ),
        ]
        | None
    ) = None


class PubSub(ManifestModel):
    """One pub/sub integration of an application: exactly one of `mqtt`, `nats`, `aws_iot`."""

    id: t.PlainId
    format: Literal["json", "protobuf"] = "json"
    base_topic: Annotated[str, Field(max_length=BASE_TOPIC_MAX)] | None = None
    mqtt: MqttProvider | None = None
    nats: NatsProvider | None = None
    aws_iot: AwsIotProvider | None = None
    downlink_push: TopicSetting | None = None
    downlink_replace: TopicSetting | None = None
    uplink_message: TopicSetting | None = None
    uplink_normalized: TopicSetting | None = None
    join_accept: TopicSetting | None = None
    downlink_ack: TopicSetting | None = None
    downlink_nack: TopicSetting | None = None
    downlink_sent: TopicSetting | None = None
    downlink_failed: TopicSetting | None = None
    downlink_queued: TopicSetting | None = None
    downlink_queue_invalidated: TopicSetting | None = None
    location_solved: TopicSetting | None = None
    service_data: TopicSetting | None = None

    @model_validator(mode="after")
    def _one_provider(self) -> PubSub:
        chosen = [p for p in PROVIDERS if getattr(self, p) is not None]
        if len(chosen) != 1:
            raise ValueError("a pub/sub needs exactly one provider: `mqtt`, `nats` or `aws_iot`")
        return self

    @property
    def provider(self) -> str:
        return next(p for p in PROVIDERS if getattr(self, p) is not None)


def pubsub_fields(pubsub: PubSub) -> dict[str, Any]:
    """The pub/sub's managed fields as ApplicationPubSub JSON paths (`mqtt.password`): every
    field the manifest sets, the provider's leaves one by one (so a Console-set field the
    manifest does not name is left alone)."""
    fields: dict[str, Any] = {"format": pubsub.format}
    for name in sorted(pubsub.model_fields_set - {"id", "format", *PROVIDERS}):
        value = getattr(pubsub, name)
        if name in PUBSUB_MESSAGE_TYPES and value is not None:
            fields[name] = {"topic": value.topic}  # the message object enables the type
        else:
            fields[name] = value
    provider = pubsub.provider
    _leaves(getattr(pubsub, provider), provider, fields)
    return fields


def _leaves(model: ManifestModel, prefix: str, fields: dict[str, Any]) -> None:
    for name in sorted(model.model_fields_set):
        value = getattr(model, name)
        if isinstance(value, ManifestModel):
            _leaves(value, f"{prefix}.{name}", fields)
        else:
            fields[f"{prefix}.{name}"] = value


def model_of(annotation: Any) -> type[ManifestModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, ManifestModel):
            return candidate
    return None


def _is_secret(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        return _is_secret(typing.get_args(annotation)[0])
    if annotation is Secret:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return False


def secret_paths(model: type[ManifestModel] = PubSub, prefix: str = "") -> tuple[str, ...]:
    """The JSON paths of the pub/sub fields the language takes by reference (credentials), read
    from the models: `mqtt.password`, `nats.server_url`, ... (`mqtt.headers` values too)."""
    found: list[str] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = model_of(info.annotation)
        if nested is not None and nested is not PubSubMessage:
            found.extend(secret_paths(nested, path + "."))
        elif _is_secret(info.annotation) or name == "headers":
            found.append(path)
    return tuple(found)
