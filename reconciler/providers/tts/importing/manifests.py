"""Imported records -> a manifest tree in the documented manifest language.

Per application: `applications/<id>/application.yaml` (the application, its link formatters
with scripts as `.js` files, webhooks with header values by reference, `device_defaults`
holding what all its devices share and `device_profiles` for groups that share settings the
CSV cannot hold), `devices.yaml` (Fleet documents and the devices only YAML can express),
CSV fleets in The Things Stack CSV format with their keys in `*.secrets.csv` beside them.
Gateways go to `gateways.yaml`, organizations to `organizations.yaml`, the target to
`stack.yaml`. Secrets never go into manifests:
keys to git-ignored `*.secrets.csv` and `secrets/` files, webhook header values to the
`secrets.env` template (empty values), keys that could not be read to env references.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.importer.output import OutputTree, csv_text, yaml_documents
from reconciler.importer.report import REPORT_FILE, ImportReport
from reconciler.providers.tts import lorawan_versions
from reconciler.providers.tts.desired import server_address
from reconciler.providers.tts.importing import fields as f
from reconciler.providers.tts.importing import records as r
from reconciler.providers.tts.manifest import devices as dev
from reconciler.providers.tts.manifest import models as m

SECRETS_ENV = "secrets.env"
MAX_ATTRIBUTES = 10  # the server's limit; the ownership marker takes one
HEADER = "# Written by `reconciler import`; edit freely.\n"

# (flat key, sub key) -> TTS CSV column, for the device values the CSV format can hold.
CSV_SLOTS: dict[tuple[str, str | None], str] = {
    (column.group or column.key, column.key if column.group else None): name
    for name, column in dev.CSV_COLUMNS.items()
    if name != "app_eui" and column.parse is not None
}
# Per-device by nature: never lifted into device_defaults (a default name would also name
# every device added later).
_NOT_LIFTED = frozenset({"id", "dev_eui", "dev_addr", "name", "description", *dev.SECRET_KEYS})
# A device secret that is no CSV column: written to a `secrets/` file of a YAML device.
CLAIM_CODE = "claim_authentication_code"
_ADDRESS_KEYS = ("network_server_address", "application_server_address", "join_server_address")

Item = tuple[str, str | None]  # (flat key, sub key of a group or map)


@dataclass(frozen=True)
class BuildOptions:
    stack: str
    url: str  # root URL of the four servers (also what devices' addresses default to)
    owner: tuple[str, str]  # ("user" | "organization", id)
    ownership_key: str = m.DEFAULT_OWNERSHIP_KEY


def build_tree(snapshot: r.Snapshot, options: BuildOptions) -> OutputTree:
    return _Builder(snapshot, options).build()


def env_name(*parts: str) -> str:
    """An environment variable name from IDs (`field-sensors`, `ingest` -> FIELD_SENSORS_...)."""
    return re.sub(r"[^A-Z0-9]+", "_", "_".join(parts).upper()).strip("_")


@dataclass
class _Device:
    record: r.DeviceRecord
    items: dict[Item, Any]
    keys: dict[str, Any]  # key column -> hex value, or an `env:NAME` reference


class _Builder:
    def __init__(self, snapshot: r.Snapshot, options: BuildOptions) -> None:
        self.snapshot = snapshot
        self.options = options
        self.report: ImportReport = snapshot.report
        self.tree = OutputTree()
        self.env: list[tuple[str, str]] = []  # (name, what it is for)
        self.keys_noted = False  # the report's note on API key secrets, once
        self.host = server_address(options.url)
        for pattern in ("*.secrets.csv", "secrets/", SECRETS_ENV):
            self.tree.ignore(pattern)

    def build(self) -> OutputTree:
        kind, owner_id = self.options.owner
        stack = {
            "kind": "Stack",
            "name": self.options.stack,
            "url": self.options.url,
            "api_key": {"env": "TTS_API_KEY"},
            "owner": {kind: owner_id},
        }
        if self.options.ownership_key != m.DEFAULT_OWNERSHIP_KEY:
            stack["ownership_key"] = self.options.ownership_key
        self.tree.add("stack.yaml", yaml_documents([stack], HEADER))
        if self.snapshot.organizations:
            docs = [self.organization(o) for o in self.snapshot.organizations]
            self.tree.add("organizations.yaml", yaml_documents(docs, HEADER))
        for app in self.snapshot.applications:
            self.application(app)
        if self.snapshot.gateways:
            docs = [self.gateway(g) for g in self.snapshot.gateways]
            self.tree.add("gateways.yaml", yaml_documents(docs, HEADER))
        if self.env:
            lines = [
                "# Secrets the manifests reference: fill in the values, then",
                "# `set -a; . ./secrets.env; set +a` (this file is git-ignored).",
            ]
            for name, what in self.env:
                lines += [f"# {what}", f"{name}="]
            self.tree.add(SECRETS_ENV, "\n".join(lines) + "\n")
        self.tree.add(REPORT_FILE, self.report.text())
        return self.tree

    def entity_fields(
        self, doc: dict[str, Any], paths: Iterable[str], fields: Mapping[str, Any], entity_id: str
    ) -> None:
        """Write into `doc` the `paths` of an entity's `fields` that hold something; its
        attributes go through `attributes`, which reports those a manifest cannot hold."""
        for path in paths:
            value = fields.get(path)
            if path == "attributes":
                value = self.attributes(value or {}, entity_id)
            if value not in (None, "", [], {}, False):
                doc[path] = value

    # -- applications ------------------------------------------------------------------------

    def application(self, app: r.ApplicationRecord) -> None:
        base = f"applications/{app.application_id}"
        doc: dict[str, Any] = {"kind": "Application", "id": app.application_id}
        self.entity_fields(doc, r.APPLICATION_PATHS, app.fields, app.application_id)
        if app.owner_organization:
            doc["owner"] = {"organization": app.owner_organization}
        if app.link:
            formatters: dict[str, Any] = {}
            for path, value in app.link.items():
                name = path.removeprefix("default_formatters.")
                formatters.update(self.script(base, "link", name, value))
            doc["default_formatters"] = formatters
        if app.webhooks:
            doc["webhooks"] = [self.webhook(app.application_id, w) for w in app.webhooks]
        if app.pubsubs:
            doc["pubsubs"] = [self.pubsub(app.application_id, p) for p in app.pubsubs]
        if app.packages:
            doc["packages"] = [self.package(app.application_id, None, p) for p in app.packages]
        self.access(doc, app.access, "")
        documents = self.devices(app, base, doc)
        self.tree.add(f"{base}/application.yaml", yaml_documents([doc], HEADER))
        if documents:
            self.tree.add(f"{base}/devices.yaml", yaml_documents(documents, HEADER))

    def attributes(self, attributes: Mapping[str, str], name: str) -> dict[str, str]:
        """Attributes without the ownership marker (the tool writes it), within the limit."""
        result = dict(attributes)
        owner = result.pop(self.options.ownership_key, None)
        if owner is not None and owner != self.options.stack:
            self.report.add(
                f"owned by another stack (attribute {self.options.ownership_key}): the first "
                "apply takes it over",
                name,
            )
        while len(result) > MAX_ATTRIBUTES - 1:
            dropped = sorted(result)[-1]
            del result[dropped]
            self.report.add(
                f"attribute `{dropped}` left out: {MAX_ATTRIBUTES} attributes leave no room for "
                "the ownership marker",
                name,
            )
        return result

    def variable(self, purpose: str, *parts: str) -> str:
        """A new environment variable for one secret, listed in the template. IDs that differ
        only in punctuation would give the same name: a suffix keeps them apart."""
        name = base = env_name(*parts)
        taken = {used for used, _ in self.env}
        suffix = 2
        while name in taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        self.env.append((name, purpose))
        return name

    def script(self, base: str, owner: str, name: str, value: Any) -> dict[str, Any]:
        """A formatter setting; a script parameter goes to a `.js` file beside the manifest."""
        if name.endswith("_parameter"):
            side = name.removesuffix("_formatter_parameter")
            path = f"formatters/{owner}.{side}.js"
            self.tree.add(f"{base}/{path}", str(value))
            return {f"{name}_file": path}
        return {name: value}

    def webhook(self, app_id: str, hook: r.WebhookRecord) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": hook.webhook_id, "base_url": hook.base_url}
        if hook.format != "json":
            doc["format"] = hook.format
        if hook.headers:
            headers = {}
            for header in sorted(hook.headers):
                name = self.variable(
                    f"webhook {app_id}/{hook.webhook_id}: header {header}",
                    "WEBHOOK",
                    app_id,
                    hook.webhook_id,
                    header,
                )
                headers[header] = {"env": name}
            doc["headers"] = headers
        if hook.downlink_api_key:
            name = self.variable(
                f"webhook {app_id}/{hook.webhook_id}: downlink API key",
                "WEBHOOK",
                app_id,
                hook.webhook_id,
                "DOWNLINK_API_KEY",
            )
            doc["downlink_api_key"] = {"env": name}
        if hook.paused:
            doc["paused"] = True
        for message, path in hook.messages.items():
            doc[message] = path
        return doc

    def pubsub(self, app_id: str, pubsub: r.PubSubRecord) -> dict[str, Any]:
        """The pub/sub entry with each credential as an `{env: ...}` reference."""
        doc = pubsub.document
        for keys, what in pubsub.secrets:
            name = self.variable(
                f"pub/sub {app_id}/{pubsub.pub_sub_id}: {what}",
                "PUBSUB",
                app_id,
                pubsub.pub_sub_id,
                *keys[1:],
            )
            node = doc
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = {"env": name}
        return doc

    def package(
        self, app_id: str, device_id: str | None, package: r.PackageRecord
    ) -> dict[str, Any]:
        """A package association with its token as an `{env: ...}` reference."""
        doc: dict[str, Any] = {"f_port": package.f_port, "package_name": package.package_name}
        data: dict[str, Any] | None = None if package.data is None else dict(package.data)
        owner = app_id if device_id is None else f"{app_id}/{device_id}"
        for key in package.secrets:
            parts = [app_id] if device_id is None else [app_id, device_id]
            name = self.variable(
                f"package association {owner} FPort {package.f_port}: data.{key}",
                "PACKAGE",
                *parts,
                str(package.f_port),
                key,
            )
            data = data or {}
            data[key] = {"env": name}
        if data is not None:
            doc["data"] = data
        return doc

    # -- devices -----------------------------------------------------------------------------

    def devices(
        self, app: r.ApplicationRecord, base: str, app_doc: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if not app.devices:
            return []
        devices = [self.device(app, record) for record in app.devices]
        unread = [d.record.name for d in devices if not d.record.keys_read]
        if unread:
            self.report.note(
                f"application {app.application_id}: the root and session keys of "
                f"{len(unread)} device(s) were not read ({self.snapshot.keys_missing_reason}); "
                f"the manifests reference them as environment variables (listed in "
                f"{SECRETS_ENV})"
            )
        defaults = _shared(devices)
        for device in devices:
            for item in defaults:
                del device.items[item]
        groups: dict[str, list[_Device]] = {}
        for device in devices:
            groups.setdefault(_signature(device), []).append(device)
        documents: list[dict[str, Any]] = []
        profiles: dict[str, dict[str, Any]] = {}
        yaml_devices: list[_Device] = []
        for signature, grouped in groups.items():
            # A device with its own package associations or a claim code needs a Device
            # document (CSV has no column for them).
            yaml_devices.extend(m for m in grouped if _needs_document(m))
            members = [m for m in grouped if not _needs_document(m)]
            if not members:
                continue
            if signature and len(members) < 2:
                yaml_devices.extend(members)
                continue
            profile = None
            if signature:
                profile = f"imported-{len(profiles) + 1}"
                shared = {i: v for i, v in members[0].items.items() if i not in CSV_SLOTS}
                profiles[profile] = self.settings(base, f"profile-{profile}", shared)
                for member in members:
                    for item in shared:
                        del member.items[item]
            documents.append(self.fleet(app.application_id, base, profile, members))
        for device in yaml_devices:
            documents.append(self.yaml_device(app.application_id, base, device))
        if defaults:
            app_doc["device_defaults"] = self.settings(base, "device-defaults", defaults)
        if profiles:
            app_doc["device_profiles"] = profiles
        return documents

    def device(self, app: r.ApplicationRecord, record: r.DeviceRecord) -> _Device:
        slots = f.device_slots()
        items: dict[Item, Any] = {}
        keys: dict[str, Any] = {}
        for path, value in record.fields.items():
            slot = slots[path]
            if slot.key in dev.SECRET_KEYS or slot.key == CLAIM_CODE:
                keys[slot.key] = value
            elif slot.key == "attributes":
                for name, text in self.attributes(value, record.name).items():
                    items[("attributes", name)] = text
            elif slot.key == "locations":
                for name, location in value.items():
                    items[("locations", name)] = {"latitude": 0.0, "longitude": 0.0, **location}
            elif slot.key in f.GROUP_MODELS:
                items[(slot.key, slot.sub)] = value
            elif slot.key not in _ADDRESS_KEYS:
                items[(slot.key, None)] = value
        self.addresses(app, record, items)
        if not record.keys_read:
            for key in _expected_keys(record):
                name = self.variable(
                    f"device {record.name}: {key}",
                    "TTS",
                    record.application_id,
                    record.device_id,
                    key,
                )
                keys[key] = f"env:{name}"
        settings = _unflatten(items) | {k: True for k in keys}
        if dev.derive_supports_join(settings) == items.get(("supports_join", None)):
            items.pop(("supports_join", None), None)
        return _Device(record, items, keys)

    def addresses(
        self, app: r.ApplicationRecord, record: r.DeviceRecord, items: dict[Item, Any]
    ) -> None:
        """Server addresses as the plan will see them: the loader fills a missing one from the
        application, else the Stack's host (the Join Server's for OTAA only), so one equal to
        that is left out, and an empty one is written as null."""
        for key in _ADDRESS_KEYS:
            live = record.fields.get(key, "")
            if key == "join_server_address" and not record.otaa:
                if live:
                    items[(key, None)] = live
                continue
            filled = app.fields.get(key) or self.host
            if live != filled:
                items[(key, None)] = live or None

    def settings(self, base: str, owner: str, items: Mapping[Item, Any]) -> dict[str, Any]:
        settings = _unflatten(items)
        formatters = settings.get("formatters")
        if formatters:
            converted: dict[str, Any] = {}
            for name, value in formatters.items():
                converted.update(self.script(base, owner, name, value))
            settings["formatters"] = converted
        return settings

    def fleet(
        self, app_id: str, base: str, profile: str | None, members: list[_Device]
    ) -> dict[str, Any]:
        stem = "devices" if profile is None else f"devices-{profile}"
        columns = ["id"] + [
            column
            for slot, column in CSV_SLOTS.items()
            if column != "id" and any(slot in d.items for d in members)
        ]
        slot_of = {column: slot for slot, column in CSV_SLOTS.items()}
        rows = []
        for member in members:
            row = [member.record.device_id]
            for column in columns[1:]:
                value = member.items.get(slot_of[column])
                row.append(_cell(column, value))
            rows.append(row)
        self.tree.add(f"{base}/{stem}.csv", csv_text(columns, rows))
        doc: dict[str, Any] = {"kind": "Fleet", "application": app_id}
        if profile is not None:
            doc["profile"] = profile
        doc["csv"] = f"{stem}.csv"
        key_columns = [k for k in sorted(dev.SECRET_KEYS) if any(k in d.keys for d in members)]
        if key_columns:
            secret_rows = [
                [d.record.device_id, *(str(d.keys.get(k, "")) for k in key_columns)]
                for d in members
            ]
            self.tree.add(f"{base}/{stem}.secrets.csv", csv_text(["id", *key_columns], secret_rows))
            doc["secrets_csv"] = f"{stem}.secrets.csv"
        return doc

    def yaml_device(self, app_id: str, base: str, device: _Device) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": "Device", "application": app_id}
        doc["id"] = device.record.device_id
        doc.update(self.settings(base, f"device-{device.record.device_id}", device.items))
        for key, value in sorted(device.keys.items()):
            text = str(value)
            if text.startswith("env:"):
                doc[key] = {"env": text.removeprefix("env:")}
            else:
                path = f"secrets/{device.record.device_id}.{key}"
                self.tree.add(f"{base}/{path}", text + "\n")
                doc[key] = {"file": path}
        if device.record.packages:
            doc["packages"] = [
                self.package(app_id, device.record.device_id, p) for p in device.record.packages
            ]
        return doc

    # -- gateways ----------------------------------------------------------------------------

    def gateway(self, gateway: r.GatewayRecord) -> dict[str, Any]:
        fields = gateway.fields
        doc: dict[str, Any] = {"kind": "Gateway", "id": gateway.gateway_id}
        if "ids.eui" in fields:
            doc["eui"] = fields["ids.eui"]
        self.entity_fields(doc, r.GATEWAY_PATHS, fields, gateway.gateway_id)
        if "location" in fields:
            doc["location"] = {"latitude": 0.0, "longitude": 0.0, **fields["location"]}
        for contact in r.CONTACTS:
            for kind in ("user", "organization"):
                held = (fields.get(contact) or {}).get(f"{kind}_ids") or {}
                if held.get(f"{kind}_id"):
                    doc[contact] = {kind: held[f"{kind}_id"]}
        if gateway.owner_organization:
            doc["owner"] = {"organization": gateway.owner_organization}
        self.access(doc, gateway.access, f"gateway-{gateway.gateway_id}.")
        return doc

    # -- organizations -----------------------------------------------------------------------

    def organization(self, org: r.OrganizationRecord) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": "Organization", "id": org.organization_id}
        self.entity_fields(doc, r.ORGANIZATION_PATHS, org.fields, org.organization_id)
        stack_owner = self.options.owner
        if org.owner_user and ("user", org.owner_user) != stack_owner:
            doc["owner"] = {"user": org.owner_user}
        elif not org.owner_user and stack_owner[0] != "user":
            self.report.add(
                "organization has no member with every right to create it under on a new "
                "server, and the Stack's owner is an organization: set its `owner: {user: "
                "...}`",
                org.organization_id,
            )
        self.access(doc, org.access, f"organization-{org.organization_id}.")
        return doc

    def access(self, doc: dict[str, Any], access: r.AccessRecord, prefix: str) -> None:
        """API keys and collaborators, as the lists they are on the server. A key's secret
        cannot be read back: the declaration names a git-ignored file under `secrets/` beside
        the manifest, which only receives a secret when apply creates the key (on a server that
        lacks it, or when it is rotated); the report says so once."""
        if access.api_keys:
            keys = []
            for key in access.api_keys:
                file = f"secrets/{prefix}api-key.{_file_part(key['name'])}"
                keys.append({**key, "deliver": {"file": file}})
            doc["api_keys"] = keys
            if not self.keys_noted:
                self.keys_noted = True
                self.report.note(
                    "API key secrets: a key's secret cannot be read back, so none was written; "
                    "the keys are declared by name, rights and expiry, and each key's `deliver` "
                    "file (under secrets/) receives a secret only when apply creates the key: "
                    "on a server that lacks it, or when it is rotated (rotate_after_days, "
                    "--rotate)"
                )
        if access.collaborators:
            doc["collaborators"] = [
                {kind: member_id, "rights": rights}
                for kind, member_id, rights in access.collaborators
            ]


def _file_part(name: str) -> str:
    """A key name as part of a file name (letters, digits, `-`, `_`, `.` only)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "key"


def _expected_keys(record: r.DeviceRecord) -> list[str]:
    """The keys a device of its kind needs (to reference them when they could not be read)."""
    version = str(record.fields.get("lorawan_version") or "")
    is_1_1 = bool(version) and lorawan_versions.is_lorawan_1_1(version)
    if record.otaa:
        return ["app_key", "nwk_key"] if is_1_1 else ["app_key"]
    keys = ["app_s_key", "f_nwk_s_int_key"]
    return [*keys, "s_nwk_s_int_key", "nwk_s_enc_key"] if is_1_1 else keys


def _needs_document(device: _Device) -> bool:
    return bool(device.record.packages) or CLAIM_CODE in device.keys


def _shared(devices: list[_Device]) -> dict[Item, Any]:
    """Items every device has with the same value (the application's device_defaults)."""
    first = devices[0].items
    shared = {
        item: value
        for item, value in first.items()
        if item[0] not in _NOT_LIFTED
        and all(item in d.items and d.items[item] == value for d in devices[1:])
    }
    return shared


def _signature(device: _Device) -> str:
    """What a device sets beyond the CSV columns: devices alike share a profile."""
    extra = {f"{k}.{s}": v for (k, s), v in device.items.items() if (k, s) not in CSV_SLOTS}
    return json.dumps(extra, sort_keys=True) if extra else ""


def _unflatten(items: Mapping[Item, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for (key, sub), value in sorted(items.items(), key=lambda kv: _order(kv[0])):
        if sub is None:
            result[key] = value
        else:
            result.setdefault(key, {})[sub] = value
    return result


# Identity first (as the Console shows a device), then the manifest models' field order.
_FIELD_ORDER = {
    name: index
    for index, name in enumerate(
        dict.fromkeys(["dev_eui", "join_eui", "dev_addr", "name", *m.Device.model_fields])
    )
}


def _order(item: Item) -> tuple[int, str]:
    return _FIELD_ORDER.get(item[0], len(_FIELD_ORDER)), item[1] or ""


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if column in ("vendor_id", "vendor_profile_id"):
        return f"{int(value):X}"
    return str(value)
