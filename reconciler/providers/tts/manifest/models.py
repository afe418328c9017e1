"""The manifest language: one pydantic model per document `kind`.

Documents: `Stack` (the target), `Application` (with webhooks, pub/subs, default formatters, device
defaults and named device profiles), `Device`, `Fleet` (devices from CSV) and `Gateway`.
Field names are The Things Stack's own (snake_case proto names) wherever a field maps to one;
device fields are flat (`dev_eui`, `app_key`, `rx1_delay` under `mac_settings`, ...) and are the
same names as the TTS CSV import columns, so a YAML device, a profile and a CSV row read alike.

Nothing is filled in for fields a document does not mention (no defaults on optional fields),
so `model_fields_set` tells "explicitly null" (clear it) from "not mentioned" (leave it alone).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from reconciler.manifest.common import FileList, ManifestModel, Safety, SecretReference
from reconciler.manifest.files import SCRIPT_FILE, SECRET_FILE, FileMissing, FileRefError
from reconciler.manifest.secrets import (
    Token,
    ca_bundle_inside_tree,
    context_of,
    credential_file_inside_tree,
)
from reconciler.providers.tts.manifest import types as t
from reconciler.providers.tts.manifest.mac_settings import Duration, MacSettings
from reconciler.providers.tts.manifest.packages import PackageAssociation
from reconciler.providers.tts.manifest.pubsubs import PubSub
from reconciler.providers.tts.manifest.types import AesKey, HeaderName, HeaderValue

KINDS = ("Stack", "Organization", "Application", "Device", "Fleet", "Gateway")
DEFAULT_OWNERSHIP_KEY = "managed-by"
WEBHOOK_MESSAGE_TYPES = t.APPLICATION_MESSAGE_TYPES


class ScriptFile:
    """A formatter script read from a file next to the manifest."""

    __slots__ = ("path", "text")

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text

    def __repr__(self) -> str:
        return f"ScriptFile({self.path!r}, {len(self.text)} chars)"


def _check_script(text: str) -> str:
    """The largest limit of any release here; the target's own limit is checked once the Stack
    document is known (reconciler.providers.tts.manifest.kinds)."""
    if len(text) > t.FORMATTER_PARAMETER_LARGEST:
        raise ValueError(
            f"formatter script is longer than {t.FORMATTER_PARAMETER_LARGEST} characters "
            f"({len(text)})"
        )
    return text


def _read_script(value: object, info: ValidationInfo) -> ScriptFile:
    name = t.max_len(4096, "script file")(value)
    context = context_of(info)
    try:
        text = context.tree.read_text(name, context.base_dir, SCRIPT_FILE)
    except FileRefError as error:
        raise ValueError(str(error)) from None
    return ScriptFile(name, _check_script(text))


ScriptParameter = Annotated[
    str,
    PlainValidator(lambda v: _check_script(t.max_len(t.FORMATTER_PARAMETER_LARGEST, "script")(v))),
    WithJsonSchema({"type": "string", "maxLength": t.FORMATTER_PARAMETER_LARGEST}),
]
ScriptPath = Annotated[
    ScriptFile,
    PlainValidator(_read_script),
    WithJsonSchema({"type": "string", "description": "File relative to the manifest."}),
]


class Account(ManifestModel):
    """A user or an organization: exactly one of `user`, `organization`."""

    # Who needs the account, for the error message.
    needed_by: ClassVar[str] = "an account"

    user: t.UserId | None = None
    organization: t.EntityId | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.user is None) == (self.organization is None):
            raise ValueError(f"{self.needed_by} needs exactly one of `user` or `organization`")
        return self

    @property
    def kind(self) -> Literal["user", "organization"]:
        return "user" if self.user is not None else "organization"

    @property
    def id(self) -> str:
        return self.user or self.organization or ""


class Owner(Account):
    """Who owns (creates) an application or gateway: exactly one of `user`, `organization`."""

    needed_by: ClassVar[str] = "owner"


Rights = Annotated[list[t.Right], Field(min_length=1)]


class Collaborator(Account):
    """A user or organization and the rights it holds on the entity."""

    needed_by: ClassVar[str] = "a collaborator"

    rights: Rights


def _sink_inside_tree(value: str | None, info: ValidationInfo) -> str | None:
    """A sink file is written by apply; it may not exist yet, but it may never be outside the
    manifest tree (or the Stack's `allow_files_from`)."""
    if value is None:
        return value
    context = context_of(info)
    try:
        context.tree.resolve(value, context.base_dir, SECRET_FILE)
    except FileMissing:
        pass
    except FileRefError as error:
        raise ValueError(str(error).replace("secret file", "sink file")) from None
    return value


class SecretSink(ManifestModel):
    """Where a new API key's secret goes (the server shows it once, at creation): a file
    (relative to this manifest, inside the manifest tree; written with mode 0600) or a command
    the Stack document names in `secret_commands` (given the secret on standard input)."""

    file: Annotated[str, Field(max_length=1024)] | None = None
    command: t.PlainId | None = None

    @model_validator(mode="after")
    def _one(self) -> SecretSink:
        if (self.file is None) == (self.command is None):
            raise ValueError("`deliver` needs exactly one of `file` or `command`")
        return self

    @field_validator("file")
    @classmethod
    def _inside_tree(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _sink_inside_tree(value, info)


class ApiKey(ManifestModel):
    """An API key of an application, gateway or organization, matched by `name` (the server
    picks its ID and shows its secret once, at creation: it goes to `deliver`, nowhere else)."""

    name: Annotated[str, Field(min_length=1, max_length=t.NAME_MAX)]
    rights: Rights
    expires_at: AwareDatetime | None = None
    rotate_after_days: int | None = Field(
        default=None,
        ge=1,
        le=36500,
        description="Rotate (create a new key, deliver it, delete the old one) once the key "
        "is older than this.",
    )
    deliver: SecretSink


class Formatters(ManifestModel):
    """Payload formatters (TTS `MessagePayloadFormatters`); a script inline or from a file."""

    up_formatter: t.Formatter | None = None
    up_formatter_parameter: ScriptParameter | None = None
    up_formatter_parameter_file: ScriptPath | None = None
    down_formatter: t.Formatter | None = None
    down_formatter_parameter: ScriptParameter | None = None
    down_formatter_parameter_file: ScriptPath | None = None

    @model_validator(mode="after")
    def _inline_or_file(self) -> Formatters:
        for side in ("up", "down"):
            inline = f"{side}_formatter_parameter"
            if inline in self.model_fields_set and f"{inline}_file" in self.model_fields_set:
                raise ValueError(f"set `{inline}` or `{inline}_file`, not both")
        return self


class Location(ManifestModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude: int | None = None
    accuracy: int | None = None
    source: t.LocationSource | None = None


class VersionIds(ManifestModel):
    """Device repository identifiers (TTS `version_ids`)."""

    brand_id: t.PlainId | None = None
    model_id: t.PlainId | None = None
    hardware_version: t.VersionField | None = None
    firmware_version: t.VersionField | None = None
    band_id: t.VersionField | None = None


class LoRaAllianceProfileIds(ManifestModel):
    vendor_id: t.HexUint32 | None = None
    vendor_profile_id: t.HexUint32 | None = None


class DeviceSettings(ManifestModel):
    """Device fields that application `device_defaults` and `device_profiles` may set too.

    Precedence when a device is resolved: device > its profile > application `device_defaults`.
    Mappings (`attributes`, `locations`, `mac_settings`, `version_ids`, `formatters`, ...) merge
    key by key under the same precedence; an explicit `null` at a higher level clears the value.
    """

    name: t.Name | None = None
    description: t.Description | None = None
    attributes: t.Attributes | None = None
    locations: dict[t.AttributeKey, Location] | None = None
    version_ids: VersionIds | None = None
    lora_alliance_profile_ids: LoRaAllianceProfileIds | None = None
    frequency_plan_id: t.FrequencyPlanId | None = None
    lorawan_version: t.MacVersion | None = None
    lorawan_phy_version: t.PhyVersion | None = None
    supports_join: bool | None = Field(
        default=None, description="OTAA (true) or ABP (false); derived from the keys if unset."
    )
    supports_class_b: bool | None = None
    supports_class_c: bool | None = None
    multicast: bool | None = Field(
        default=None,
        description="A multicast group: ABP, class B or C, no DevEUI needed; immutable.",
    )
    skip_payload_crypto_override: bool | None = Field(
        default=None, description="Overrides the application link's skip_payload_crypto."
    )
    resets_join_nonces: bool | None = None
    net_id: t.NetId | None = None
    join_eui: t.Eui | None = None
    app_key: AesKey | None = None
    nwk_key: AesKey | None = None
    app_s_key: AesKey | None = None
    f_nwk_s_int_key: AesKey | None = None
    s_nwk_s_int_key: AesKey | None = None
    nwk_s_enc_key: AesKey | None = None
    mac_settings: MacSettings | None = None
    formatters: Formatters | None = None
    network_server_address: t.ServerAddress | None = None
    application_server_address: t.ServerAddress | None = None
    join_server_address: t.ServerAddress | None = None


class Device(DeviceSettings):
    """One end device. `application` names its application; `profile` one of its profiles."""

    kind: Literal["Device"]
    application: t.EntityId
    profile: t.PlainId | None = None
    id: t.EntityId
    dev_eui: t.Eui | None = None
    dev_addr: t.DevAddr | None = None
    serial_number: t.SerialNumber | None = None
    claim_authentication_code: t.ClaimCode | None = Field(
        default=None, description="Claim authentication code: a secret, by reference."
    )
    packages: list[PackageAssociation] | None = Field(
        default=None,
        description="The device's application package associations by FPort (listed: all of "
        "them; they override the application's default association on the same FPort).",
    )


class Fleet(ManifestModel):
    """Devices of one application from CSV files in The Things Stack CSV import format."""

    kind: Literal["Fleet"]
    application: t.EntityId
    profile: t.PlainId | None = None
    csv: FileList = Field(description="CSV file(s), relative to this manifest.")
    secrets_csv: FileList | None = Field(
        default=None,
        description="CSV file(s) with key columns joined by device `id` (keep out of git).",
    )


def _message_path(value: object) -> object:
    return {"path": value} if isinstance(value, str) else value


class WebhookMessage(ManifestModel):
    path: Annotated[str, Field(max_length=t.WEBHOOK_PATH_MAX)] = ""


MessageSetting = Annotated[
    WebhookMessage,
    BeforeValidator(_message_path),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": t.WEBHOOK_PATH_MAX},
                {
                    "type": "object",
                    "properties": {"path": {"type": "string", "maxLength": t.WEBHOOK_PATH_MAX}},
                    "additionalProperties": False,
                },
            ],
            "description": "Path appended to base_url for this message type (enables it).",
        }
    ),
]


class Webhook(ManifestModel):
    id: t.PlainId
    base_url: t.Uri
    format: Literal["json", "protobuf"] = "json"
    headers: (
        Annotated[dict[HeaderName, HeaderValue], Field(max_length=t.WEBHOOK_HEADERS_MAX)] | None
    ) = None
    downlink_api_key: Token | None = None
    paused: bool | None = None
    uplink_message: MessageSetting | None = None
    uplink_normalized: MessageSetting | None = None
    join_accept: MessageSetting | None = None
    downlink_ack: MessageSetting | None = None
    downlink_nack: MessageSetting | None = None
    downlink_sent: MessageSetting | None = None
    downlink_failed: MessageSetting | None = None
    downlink_queued: MessageSetting | None = None
    downlink_queue_invalidated: MessageSetting | None = None
    location_solved: MessageSetting | None = None
    service_data: MessageSetting | None = None


class Application(ManifestModel):
    kind: Literal["Application"]
    id: t.EntityId
    name: t.Name | None = None
    description: t.Description | None = None
    attributes: t.Attributes | None = None
    owner: Owner | None = Field(default=None, description="Defaults to the Stack's `owner`.")
    network_server_address: t.ServerAddress | None = None
    application_server_address: t.ServerAddress | None = None
    join_server_address: t.ServerAddress | None = None
    default_formatters: Formatters | None = Field(
        default=None, description="Default payload formatters (the Application Server link)."
    )
    webhooks: list[Webhook] = Field(default_factory=list)
    pubsubs: list[PubSub] = Field(
        default_factory=list, description="Pub/sub integrations (MQTT, NATS, AWS IoT)."
    )
    packages: list[PackageAssociation] | None = Field(
        default=None,
        description="Default application package associations by FPort (every device uses "
        "them; listed: all of them).",
    )
    api_keys: list[ApiKey] | None = Field(
        default=None, description="The application's API keys (listed: all of them)."
    )
    collaborators: list[Collaborator] | None = Field(
        default=None, description="Who holds which rights (listed: all of them)."
    )
    device_defaults: DeviceSettings | None = None
    device_profiles: dict[t.PlainId, DeviceSettings] = Field(default_factory=dict)


class GatewayVersionIds(ManifestModel):
    """The gateway's device repository identifiers (TTS `GatewayVersionIdentifiers`)."""

    brand_id: t.PlainId | None = None
    model_id: t.PlainId | None = None
    hardware_version: t.VersionField | None = None
    firmware_version: t.VersionField | None = None
    runtime_version: t.VersionField | None = None


class Gateway(ManifestModel):
    kind: Literal["Gateway"]
    id: t.EntityId
    eui: t.Eui | None = None
    name: t.Name | None = None
    description: t.Description | None = None
    attributes: t.Attributes | None = None
    owner: Owner | None = Field(default=None, description="Defaults to the Stack's `owner`.")
    frequency_plan_ids: (
        Annotated[list[t.FrequencyPlanId], Field(min_length=1, max_length=t.FREQUENCY_PLAN_IDS_MAX)]
        | None
    ) = None
    gateway_server_address: t.GatewayServerAddress | None = None
    location: Location | None = None
    status_public: bool | None = None
    location_public: bool | None = None
    update_location_from_status: bool | None = None
    require_authenticated_connection: bool | None = None
    lbs_lns_secret: t.GatewaySecret | None = Field(
        default=None,
        description="LoRa Basics Station LNS key (a secret, by reference); reading and "
        "writing it needs RIGHT_GATEWAY_READ_SECRETS / RIGHT_GATEWAY_WRITE_SECRETS.",
    )
    target_cups_uri: t.Uri | None = None
    target_cups_key: t.GatewaySecret | None = Field(
        default=None, description="Key for the target CUPS server (a secret, by reference)."
    )
    auto_update: bool | None = None
    update_channel: t.UpdateChannel | None = None
    enforce_duty_cycle: bool | None = None
    schedule_downlink_late: bool | None = None
    schedule_anytime_delay: Duration | None = None
    disable_packet_broker_forwarding: bool | None = None
    version_ids: GatewayVersionIds | None = None
    administrative_contact: Owner | None = Field(
        default=None, description="`{user: id}` or `{organization: id}`."
    )
    technical_contact: Owner | None = None
    api_keys: list[ApiKey] | None = Field(
        default=None, description="The gateway's API keys (listed: all of them)."
    )
    collaborators: list[Collaborator] | None = Field(
        default=None, description="Who holds which rights (listed: all of them)."
    )


class Organization(ManifestModel):
    """An organization, created under a user; applications and gateways may name it as their
    `owner`."""

    kind: Literal["Organization"]
    id: t.EntityId
    name: t.Name | None = None
    description: t.Description | None = None
    attributes: t.Attributes | None = None
    owner: Owner | None = Field(
        default=None, description="The user it is created under; defaults to the Stack's owner."
    )
    collaborators: list[Collaborator] | None = Field(
        default=None, description="Members (users only) and their rights (listed: all of them)."
    )
    api_keys: list[ApiKey] | None = Field(
        default=None,
        description="The organization's API keys (listed: all of them); besides organization "
        "rights they may hold the application, gateway and client rights the organization has.",
    )


def _api_key_reference(value: object) -> object:
    if isinstance(value, str):
        for kind in ("env", "file"):
            if value.startswith(f"{kind}:"):
                return {kind: value[len(kind) + 1 :]}
        raise ValueError("the API key is never written inline: use `{env: NAME}` or `{file: path}`")
    return value


class Stack(ManifestModel):
    """The target: which Things Stack, how to reach it, and the ownership marker."""

    kind: Literal["Stack"]
    name: t.PlainId = Field(description="Written on every managed resource as the ownership mark.")
    ownership_key: t.AttributeKey = Field(
        default=DEFAULT_OWNERSHIP_KEY, description="Attribute key that carries the stack name."
    )
    url: t.HttpUrl | None = Field(
        default=None,
        description="Root URL of all four servers, e.g. https://eu1.cloud.thethings.network",
    )
    identity_server_url: t.HttpUrl | None = None
    network_server_url: t.HttpUrl | None = None
    application_server_url: t.HttpUrl | None = None
    join_server_url: t.HttpUrl | None = None
    api_key: Annotated[SecretReference, BeforeValidator(_api_key_reference)] = Field(
        default_factory=lambda: SecretReference(env="TTS_API_KEY")
    )
    ca_bundle: str | None = Field(default=None, description="PEM file, relative to this manifest.")
    allow_files_from: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Directories outside the manifest tree that file references may read "
        "from (relative to this manifest). Only the Stack document can widen what manifests "
        "may read.",
    )
    user_agent: str | None = None
    server_version: t.ServerVersion | None = Field(
        default=None,
        description="The Things Stack release the servers run (e.g. 3.35): limits that changed "
        "between releases follow it (formatter scripts: 40960 characters, 65536 since v3.35).",
    )
    owner: Owner | None = Field(
        default=None, description="Default owner of applications and gateways."
    )
    safety: Safety = Field(default_factory=Safety)
    secret_commands: dict[t.PlainId, Annotated[list[str], Field(min_length=1)]] = Field(
        default_factory=dict,
        description="Commands API key secrets may be delivered to (`deliver: {command: NAME}`), "
        "run without a shell with the secret on standard input. Only the Stack document names "
        "commands.",
    )

    @field_validator("api_key")
    @classmethod
    def _api_key_inside_tree(cls, value: SecretReference, info: ValidationInfo) -> SecretReference:
        credential_file_inside_tree(value.file, info)
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _ca_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        return ca_bundle_inside_tree(value, info)


MODELS: dict[str, type[ManifestModel]] = {
    "Stack": Stack,
    "Organization": Organization,
    "Application": Application,
    "Device": Device,
    "Fleet": Fleet,
    "Gateway": Gateway,
}


def model_for_kind(kind: str) -> type[ManifestModel] | None:
    return MODELS.get(kind)
