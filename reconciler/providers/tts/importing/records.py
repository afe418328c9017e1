"""Imported resources as TTS field paths in normal form (`reconciler.providers.tts.schema`),
built from server responses or export files; what does not fit is added to the report."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.importer.report import ImportReport
from reconciler.manifest.common import ManifestModel
from reconciler.providers.tts import devices, rights, schema
from reconciler.providers.tts.access import normal_rights, normal_timestamp
from reconciler.providers.tts.importing import fields as f
from reconciler.providers.tts.kinds import entity_of
from reconciler.providers.tts.manifest import models as m
from reconciler.providers.tts.manifest import packages as pk
from reconciler.providers.tts.manifest import pubsubs as ps
from reconciler.providers.tts.servers import SERVER_NAMES, Server
from reconciler.resources import LiveState, ResourceKey


@dataclass
class DeviceRecord:
    application_id: str
    device_id: str
    fields: dict[str, Any]  # device slot path -> normal form (zero values left out)
    otaa: bool
    keys_read: bool = True  # False: the API key could not read the root/session keys
    packages: list[PackageRecord] = field(default_factory=list)  # its own associations

    @property
    def name(self) -> str:
        return f"{self.application_id}/{self.device_id}"


@dataclass
class WebhookRecord:
    webhook_id: str
    base_url: str
    format: str
    headers: dict[str, str]
    downlink_api_key: str
    paused: bool
    messages: dict[str, str]  # enabled message type -> path


@dataclass
class PubSubRecord:
    pub_sub_id: str
    document: dict[str, Any]  # the manifest's pub/sub entry, credentials left out
    # Where each credential goes in `document` (keys, outermost first), and what it is.
    secrets: list[tuple[tuple[str, ...], str]] = field(default_factory=list)


@dataclass
class AccessRecord:
    """An entity's API keys (name, rights, expiry: never a secret) and collaborators."""

    api_keys: list[dict[str, Any]] = field(default_factory=list)
    collaborators: list[tuple[str, str, list[str]]] = field(default_factory=list)


@dataclass
class PackageRecord:
    """A package association as the manifest writes it; `secrets` are the `data` keys whose
    values are left out (written as references for the user to fill in)."""

    f_port: int
    package_name: str
    data: dict[str, Any] | None = None
    secrets: list[str] = field(default_factory=list)


@dataclass
class ApplicationRecord:
    application_id: str
    fields: dict[str, Any]  # name, description, attributes, server addresses (normal form)
    link: dict[str, Any]  # default_formatters.* (normal form)
    webhooks: list[WebhookRecord] = field(default_factory=list)
    pubsubs: list[PubSubRecord] = field(default_factory=list)
    packages: list[PackageRecord] = field(default_factory=list)  # default associations
    devices: list[DeviceRecord] = field(default_factory=list)
    keys_readable: bool = True
    access: AccessRecord = field(default_factory=AccessRecord)
    owner_organization: str | None = None  # created under this organization (imported too)


@dataclass
class GatewayRecord:
    gateway_id: str
    fields: dict[str, Any]  # gateway paths (normal form), `location` for the first antenna's
    access: AccessRecord = field(default_factory=AccessRecord)
    owner_organization: str | None = None  # created under this organization (imported too)


@dataclass
class OrganizationRecord:
    organization_id: str
    fields: dict[str, Any]  # name, description, attributes (normal form)
    access: AccessRecord  # its API keys and members (the owner left out)
    owner_user: str | None  # the member it is created under on a new server


@dataclass
class Snapshot:
    applications: list[ApplicationRecord] = field(default_factory=list)
    gateways: list[GatewayRecord] = field(default_factory=list)
    organizations: list[OrganizationRecord] = field(default_factory=list)
    owner: tuple[str, str] | None = None  # ("user" | "organization", id)
    report: ImportReport = field(default_factory=ImportReport)
    # Why a device's keys may be missing (said in the report).
    keys_missing_reason: str = "the API key lacks RIGHT_APPLICATION_DEVICES_READ_KEYS"


# -- devices ----------------------------------------------------------------------------------

SERVER_ORDER: tuple[Server, ...] = devices.CREATE_ORDER


def package_record(data: Mapping[str, Any]) -> PackageRecord:
    """A package association (default or a device's) as listed by the Application Server.
    Its token is never copied: the server returns it in clear, but it goes to the manifests as
    a reference."""
    f_port = int((data.get("ids") or {}).get("f_port") or 0)
    record = PackageRecord(f_port, str(data.get("package_name") or ""))
    values = data.get("data")
    if isinstance(values, Mapping) and values:
        record.data = {}
        for key, value in values.items():
            if key in pk.SECRET_DATA_KEYS:
                record.secrets.append(str(key))
            else:
                record.data[str(key)] = value
    return record


def device_record(
    application_id: str,
    device_id: str,
    sources: Iterable[tuple[Server | None, Mapping[str, Any]]],
    report: ImportReport,
    *,
    keys_read: bool = True,
) -> DeviceRecord:
    """One device from its records (per registry when read live, `None` for a file's single
    object). A path is taken from a registry the planner compares it on, so the import reads
    what the plan will compare."""
    slots = f.device_slots()
    seen: dict[str, dict[Server | None, Any]] = {}
    others: list[str] = []
    servers: list[Server] = []
    for server, data in sources:
        if server is not None:
            servers.append(server)
        for path, raw in f.leaves(data):
            if path not in slots:
                others.append(path)
                continue
            if (
                server is not None
                and not path.startswith("ids.")
                and server not in devices.compared_servers(path)
            ):
                continue
            value = f.normal(path, raw)
            seen.setdefault(path, {}).setdefault(server, value)
    found: dict[str, Any] = {}
    for path, by_server in seen.items():
        if not path.startswith("ids."):
            for server in servers:  # a registry that omits the field holds its zero value
                if server not in by_server and server in devices.compared_servers(path):
                    by_server[server] = f.normal(path, None)
        distinct = {json.dumps(v, sort_keys=True) for v in by_server.values()}
        value = next(iter(by_server.values()))
        if len(distinct) > 1:
            first = next(iter(by_server))
            report.add(
                f"device field `{path}` differs between registries: imported the "
                f"{SERVER_NAMES[first] if first else 'first'} value",
                f"{application_id}/{device_id}",
            )
        if not f.is_zero(path, value):
            found[path] = value
    # OTAA: says so, or has root keys, or (an export without keys) a JoinEUI and no session.
    otaa = (
        found.get("supports_join") is True
        or any(p.startswith("root_keys.") for p in found)
        or ("ids.join_eui" in found and "session.dev_addr" not in found)
    )
    name = f"{application_id}/{device_id}"
    if otaa:
        for path in [p for p in found if p in f.SESSION_PATHS]:
            del found[path]
            others.append(path)
    found.pop("ids.device_id", None)
    for path in dict.fromkeys(others):
        label = f.unrepresented_label(path, otaa=otaa)
        if label is not None:
            report.add(label, name)
    return DeviceRecord(application_id, device_id, found, otaa, keys_read)


# -- applications, links, webhooks, gateways ----------------------------------------------------

APPLICATION_PATHS = (
    "name",
    "description",
    "attributes",
    "network_server_address",
    "application_server_address",
    "join_server_address",
)
CONTACTS = ("administrative_contact", "technical_contact")
APPLICATION_EXTRAS = (*CONTACTS, "contact_info")
LINK_PATHS = tuple(f"default_formatters.{n}" for n in m.Formatters.model_fields if "file" not in n)
LINK_EXTRAS = ("skip_payload_crypto",)
GATEWAY_PATHS = (
    "name",
    "description",
    "attributes",
    "frequency_plan_ids",
    "gateway_server_address",
    "status_public",
    "location_public",
    "antennas",
    "update_location_from_status",
    "require_authenticated_connection",
    "target_cups_uri",
    "auto_update",
    "update_channel",
    "enforce_duty_cycle",
    "schedule_downlink_late",
    "schedule_anytime_delay",
    "disable_packet_broker_forwarding",
    "version_ids",
)
# Gateway settings the manifest language lacks. Secrets (LNS and CUPS keys, claim code) are not
# read; contacts other than the owner are imported (the server makes the creator both).
GATEWAY_EXTRAS = ("contact_info", "downlink_path_constraint", "lrfhss")
WEBHOOK_EXTRAS = ("field_mask", "template_ids", "template_fields")
WEBHOOK_READ_PATHS = (
    "ids",
    "base_url",
    "format",
    "headers",
    "downlink_api_key",
    "paused",
    *m.WEBHOOK_MESSAGE_TYPES,
    *WEBHOOK_EXTRAS,
)


def values(
    message: str,
    data: Mapping[str, Any],
    paths: Iterable[str],
    extras: Iterable[str],
    report: ImportReport,
    kind: str,
    name: str,
    owner: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Non-zero normal-form values at `paths`; non-zero `extras` are reported, except contacts
    that name the owner (the server makes the creator both contacts, so a new server would get
    the same ones)."""
    result: dict[str, Any] = {}
    for path in paths:
        value = schema.live_value(message, data, path)
        if value != schema.zero_value(schema.field_type(message, path)):
            result[path] = value
    owner_contact = {f"{owner[0]}_ids": {f"{owner[0]}_id": owner[1]}} if owner else None
    for path in extras:
        value = schema.live_value(message, data, path)
        if path in CONTACTS and value == owner_contact:
            continue
        if value != schema.zero_value(schema.field_type(message, path)):
            report.add(f"{kind} field `{path}`: not in the manifest language", name)
    return result


def webhook_record(
    data: Mapping[str, Any], application_id: str, report: ImportReport
) -> WebhookRecord:
    webhook_id = str((data.get("ids") or {}).get("webhook_id", ""))
    name = f"{application_id}/{webhook_id}"
    for path in WEBHOOK_EXTRAS:
        value = schema.live_value(schema.WEBHOOK, data, path)
        if value != schema.zero_value(schema.field_type(schema.WEBHOOK, path)):
            report.add(f"webhook field `{path}`: not in the manifest language", name)
    messages = {}
    for message in m.WEBHOOK_MESSAGE_TYPES:
        setting = data.get(message)
        if isinstance(setting, Mapping):
            messages[message] = str(setting.get("path") or "")
    fmt = str(data.get("format") or "json")
    return WebhookRecord(
        webhook_id=webhook_id,
        base_url=str(data.get("base_url") or ""),
        format=fmt,
        headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
        downlink_api_key=str(data.get("downlink_api_key") or ""),
        paused=bool(data.get("paused")),
        messages=messages,
    )


PUBSUB_READ_PATHS = ("ids", "format", "base_topic", "provider", *ps.PUBSUB_MESSAGE_TYPES)
PUBSUB_SECRET_PATHS = frozenset(ps.secret_paths())
# TLS certificates: PEM text in the manifest, base64 bytes on the wire.
PUBSUB_PEM_PATHS = frozenset({"mqtt.tls_ca", "mqtt.tls_client_cert"})


def pubsub_record(
    data: Mapping[str, Any], application_id: str, report: ImportReport
) -> PubSubRecord:
    """A pub/sub as the manifest writes it. Credentials are never copied: the server returns
    them in clear, but they go to the manifests as references for the user to fill in."""
    pub_sub_id = str((data.get("ids") or {}).get("pub_sub_id", ""))
    record = PubSubRecord(pub_sub_id, {"id": pub_sub_id})
    name = f"{application_id}/{pub_sub_id}"
    doc = record.document
    fmt = str(data.get("format") or "json")
    if fmt != "json":
        doc["format"] = fmt
    if data.get("base_topic"):
        doc["base_topic"] = str(data["base_topic"])
    for provider in ps.PROVIDERS:
        value = data.get(provider)
        if isinstance(value, Mapping):
            model = ps.PubSub.model_fields[provider].annotation
            nested = ps.model_of(model)
            assert nested is not None
            doc[provider] = _pubsub_part(value, nested, (provider,), record, report, name)
    for message in ps.PUBSUB_MESSAGE_TYPES:
        setting = data.get(message)
        if isinstance(setting, Mapping):
            doc[message] = str(setting.get("topic") or "")
    return record


def _pubsub_part(
    value: Mapping[str, Any],
    model: type[ManifestModel],
    keys: tuple[str, ...],
    record: PubSubRecord,
    report: ImportReport,
    name: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = ".".join((*keys, key))
        if key not in model.model_fields:
            report.add(f"pub/sub field `{path}`: not in the manifest language", name)
            continue
        if path in PUBSUB_SECRET_PATHS:
            if isinstance(item, Mapping):  # MQTT headers: each value by reference
                out[key] = {}
                for header in sorted(item):
                    record.secrets.append(((*keys, key, str(header)), f"{path} {header}"))
            else:
                record.secrets.append(((*keys, key), path))
            continue
        nested = ps.model_of(model.model_fields[key].annotation)
        if nested is not None and isinstance(item, Mapping):
            out[key] = _pubsub_part(item, nested, (*keys, key), record, report, name)
        elif path in PUBSUB_PEM_PATHS:
            try:
                out[key] = base64.b64decode(str(item), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                report.add(f"pub/sub field `{path}`: not PEM text, left out", name)
        else:
            out[key] = item
    return out


def gateway_record(
    data: Mapping[str, Any], report: ImportReport, owner: tuple[str, str] | None = None
) -> GatewayRecord:
    ids = data.get("ids") or {}
    gateway_id = str(ids.get("gateway_id", ""))
    found = values(
        schema.GATEWAY, data, GATEWAY_PATHS, GATEWAY_EXTRAS, report, "gateway", gateway_id, owner
    )
    eui = schema.live_value(schema.GATEWAY, data, "ids.eui")
    if eui:
        found["ids.eui"] = eui
    owner_contact = {f"{owner[0]}_ids": {f"{owner[0]}_id": owner[1]}} if owner else None
    for contact in CONTACTS:
        value = schema.live_value(schema.GATEWAY, data, contact)
        if value and value != owner_contact:
            found[contact] = value
    antennas = found.pop("antennas", [])
    if antennas:
        first = dict(antennas[0])
        location = first.pop("location", None)
        if location:
            found["location"] = location
        if first or len(antennas) > 1:
            report.add(
                "gateway antennas beyond the first antenna's location: not in the manifest "
                "language",
                gateway_id,
            )
    return GatewayRecord(gateway_id, found)


def access_record(live: LiveState, entity: ResourceKey, report: ImportReport) -> AccessRecord:
    """The API keys (by name; a key without a name, or a name two keys share, cannot be
    declared and is reported) and collaborators the provider read for an entity."""
    found = AccessRecord()
    for key, resource in sorted(live.resources.items()):
        if key.kind not in ("api_key", "collaborator") or entity_of(key) != entity:
            continue
        record = resource.records.get("is")
        if record is None:
            continue
        if key.kind == "collaborator":
            rights = normal_rights(record.data.get("rights"))
            found.collaborators.append((key.ids[2], key.ids[3], rights))
            continue
        items = record.data.get("api_keys") or []
        name = key.id
        if not name or len(items) != 1:
            ids = ", ".join(sorted(str(i.get("id")) for i in items))
            why = "has no name" if not name else f"shares its name with another key ({ids})"
            report.add(
                f"API key {why}: not imported (keys are declared and matched by name)",
                f"{entity.kind} {entity.id}",
            )
            continue
        item = items[0]
        api_key: dict[str, Any] = {"name": name, "rights": normal_rights(item.get("rights"))}
        if item.get("expires_at"):
            api_key["expires_at"] = normal_timestamp(item["expires_at"])
        found.api_keys.append(api_key)
    return found


# -- organizations ------------------------------------------------------------------------------

ORGANIZATION_PATHS = ("name", "description", "attributes")
ORGANIZATION_EXTRAS = (*CONTACTS, "contact_info")


def owning_organization(
    access: AccessRecord, entity_kind: str, caller: tuple[str, str] | None
) -> str | None:
    """The organization an application or gateway was created under, as far as its
    collaborators show it: creating one under an organization makes the organization its only
    collaborator with every right (`RIGHT_<ENTITY>_ALL`), while one created under the API key's
    user has that user as such a collaborator (then it stays under the Stack's owner)."""
    full = rights.expand([f"RIGHT_{entity_kind.upper()}_ALL"])
    holders = [
        (kind, member)
        for kind, member, granted in access.collaborators
        if rights.expand(granted) >= full
    ]
    if caller in holders:
        return None
    return next((member for kind, member in holders if kind == "organization"), None)


def organization_record(
    data: Mapping[str, Any],
    access: AccessRecord,
    report: ImportReport,
    caller: tuple[str, str] | None,
) -> OrganizationRecord:
    """An organization as the manifests declare it. Its owner (the user it is created under)
    is the API key's user when a member, else the member holding every right; the owner is not
    listed among the members, as the owner stays whatever the list says. A member whose rights
    an organization's collaborator cannot hold in the manifests (`RIGHT_ALL`, user rights)
    makes the whole list undeclared: a list is all of them, and a partial one would remove the
    others."""
    org_id = str((data.get("ids") or {}).get("organization_id", ""))
    members = [(m, g) for kind, m, g in access.collaborators if kind == "user"]
    holders = [m for m, g in members if rights.expand(g) >= rights.expand(["RIGHT_ALL"])]
    holders += [m for m, g in members if "RIGHT_ORGANIZATION_ALL" in rights.expand(g)]
    owner_user = caller[1] if caller and caller[0] == "user" and caller[1] in holders else None
    owner_user = owner_user or next(iter(holders), None)
    fields = values(
        schema.ORGANIZATION,
        data,
        ORGANIZATION_PATHS,
        ORGANIZATION_EXTRAS,
        report,
        "organization",
        org_id,
        ("user", owner_user) if owner_user else caller,
    )
    listed = [(kind, m, g) for kind, m, g in access.collaborators if m != owner_user]
    undeclarable = sorted(
        m for _, m, g in listed if not all(rights.applies_to(x, "organization") for x in g)
    )
    if undeclarable:
        report.add(
            "organization members not imported as a list: "
            f"{', '.join(undeclarable)} hold rights a manifest cannot give a member (RIGHT_ALL "
            "or user rights); the members are left unmanaged",
            org_id,
        )
        listed = []
    return OrganizationRecord(org_id, fields, AccessRecord(access.api_keys, listed), owner_user)
