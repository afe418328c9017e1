"""IoT Hub documents -> the hub target and its devices, with every problem located.

Resolution: the `IotHub` document becomes the target; each `IotHubDevice` and each row of an
`IotHubFleet`'s CSV files becomes a device with the hub's `device_defaults` and its profile
merged in (device > profile > defaults; `tags` and `properties.desired` merged key by key,
nested). Then what only the whole set can show: duplicate device ids, a `parent` that is not
declared or not an IoT Edge device.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from pydantic import ValidationError

from reconciler.diagnostics import Diagnostic, Location, ManifestError
from reconciler.manifest.common import closest
from reconciler.manifest.documents import CsvRow, CsvTable, Document
from reconciler.manifest.extensions import ResolveContext, Validated
from reconciler.manifest.files import ManifestTree
from reconciler.manifest.fleet_secrets import FleetSecrets
from reconciler.manifest.secrets import SecretContext, SecretError, resolve, resolve_text
from reconciler.providers.iothub import models as m
from reconciler.providers.iothub import rules
from reconciler.resources import Secret

PROVIDER = "iothub"
URL_ENV = "RECONCILER_IOTHUB_URL"  # moves the hub's endpoint (the emulator in CI)

Settings = dict[str, Any]
LocationSource = Location | Callable[[], Location]


@dataclass(frozen=True)
class ConnectionString:
    host_name: str
    key_name: str
    key: Secret

    @classmethod
    def parse(cls, text: str) -> ConnectionString:
        """Raises ValueError naming what is wrong (never the key)."""
        parts: dict[str, str] = {}
        for part in text.strip().split(";"):
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError("is not a connection string (`Name=value;...` parts)")
            parts[name.strip()] = value.strip()
        missing = [
            k for k in ("HostName", "SharedAccessKeyName", "SharedAccessKey") if k not in parts
        ]
        if missing:
            raise ValueError(
                "is not a service connection string: it has no "
                + ", ".join(missing)
                + " (a policy's connection string, not a device's)"
            )
        problem = rules.key_problem(parts["SharedAccessKey"])
        if problem:
            raise ValueError(f"has a SharedAccessKey that {problem}")
        return cls(
            parts["HostName"], parts["SharedAccessKeyName"], Secret(parts["SharedAccessKey"])
        )


@dataclass(frozen=True)
class HubTarget:
    """Where and how to talk to one IoT Hub, and how managed devices are tagged."""

    provider: ClassVar[str] = PROVIDER
    stack: str  # the ownership tag's value
    ownership_key: str
    host_name: str
    connection_string: Mapping[str, str]  # {"env": NAME} or {"file": path}
    source: LocationSource
    base_dir: Path
    tree: ManifestTree | None = None
    ca_bundle: Path | None = None
    sku: str | None = None
    units: int = 1
    prune: bool = False
    change_threshold: float = 0.3
    url: str | None = None  # where requests go; None: https://<host_name>

    @property
    def location(self) -> Location:
        return self.source() if callable(self.source) else self.source

    @property
    def endpoint(self) -> str:
        return (self.url or f"https://{self.host_name}").rstrip("/")

    def resolve_connection_string(self, environ: Mapping[str, str]) -> ConnectionString:
        """Read the credentials now (validate never needs them); a problem is a located error."""
        context = SecretContext(environ=environ, base_dir=self.base_dir)
        if self.tree is not None:
            context.tree = self.tree
        try:
            text, source = resolve_text(dict(self.connection_string), context)
        except SecretError as error:
            self._error(str(error))
        try:
            parsed = ConnectionString.parse(text)
        except ValueError as error:
            self._error(f"the value from {source} {error}")
        if parsed.host_name.lower() != self.host_name.lower():
            self._error(
                f"the connection string from {source} is for {parsed.host_name}, "
                f"not host_name {self.host_name}"
            )
        return parsed

    def _error(self, message: str) -> NoReturn:
        raise ManifestError(
            [Diagnostic(self.location, f"connection_string: {message}", code="connection-string")]
        )


@dataclass
class HubModule:
    device_id: str
    module_id: str
    fields: dict[str, Any]
    source: LocationSource


@dataclass
class HubDevice:
    device_id: str
    fields: dict[str, Any]  # hub field path -> value (see `to_fields`)
    source: LocationSource
    modules: list[HubModule] = field(default_factory=list)
    profile: str | None = None

    @property
    def location(self) -> Location:
        return self.source() if callable(self.source) else self.source

    @property
    def is_edge(self) -> bool:
        return bool(self.fields.get("capabilities.iotEdge"))

    @property
    def parent(self) -> str | None:
        value = self.fields.get("parent")
        return value if isinstance(value, str) else None


@dataclass
class HubProject:
    """What the manifests declare for the hub."""

    target: HubTarget
    devices: list[HubDevice] = field(default_factory=list)


# --- settings: merge and map to hub field paths ----------------------------------------------


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, mappings merged key by key (a None value is kept: it removes
    the key on the hub)."""
    merged = dict(base)
    for key, value in over.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def settings_of(model: m.DeviceSettings | m.Module | None) -> Settings:
    """A validated model's settings (only what it sets), twin collections as plain maps."""
    if model is None:
        return {}
    settings: Settings = {}
    for name in model.model_fields_set:
        value = getattr(model, name)
        if name == "properties":
            if value is not None and "desired" in value.model_fields_set:
                settings["properties.desired"] = value.desired
        elif name == "capabilities":
            if value is not None and "iotEdge" in value.model_fields_set:
                settings["capabilities.iotEdge"] = value.iotEdge
        elif name in ("status", "statusReason", "authentication", "tags", "managedBy"):
            settings[name] = value
    return settings


def merge_settings(base: Settings, over: Settings) -> Settings:
    merged = dict(base)
    for key, value in over.items():
        current = merged.get(key)
        if (
            key in ("tags", "properties.desired")
            and isinstance(current, dict)
            and isinstance(value, dict)
        ):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def to_fields(settings: Settings) -> dict[str, Any]:
    """Settings -> hub field paths: `status`, `statusReason`, `authentication.type`,
    `authentication.symmetricKey.primaryKey` (a Secret), `authentication.x509Thumbprint.*`,
    `capabilities.iotEdge`, `managedBy`, `tags` and `properties.desired` (nested maps)."""
    fields: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "authentication":
            if value is None:
                continue
            auth: m.Authentication = value
            fields["authentication.type"] = auth.type
            if auth.symmetricKey is not None:
                fields["authentication.symmetricKey.primaryKey"] = auth.symmetricKey.primaryKey
                fields["authentication.symmetricKey.secondaryKey"] = auth.symmetricKey.secondaryKey
            if auth.x509Thumbprint is not None:
                thumbs = auth.x509Thumbprint
                fields["authentication.x509Thumbprint.primaryThumbprint"] = thumbs.primaryThumbprint
                fields["authentication.x509Thumbprint.secondaryThumbprint"] = (
                    thumbs.secondaryThumbprint
                )
        elif key in ("tags", "properties.desired"):
            if value is not None:
                fields[key] = value
        else:
            fields[key] = value
    return fields


# --- The Things Stack's devices mirrored (TTS -> hub) -----------------------------------------

# The integration's spellings of LoRaWAN and Regional Parameters versions, from TTS's enums.
LORAWAN_VERSIONS = {
    "MAC_V1_0": "1.0",
    "MAC_V1_0_1": "1.0.1",
    "MAC_V1_0_2": "1.0.2",
    "MAC_V1_0_3": "1.0.3",
    "MAC_V1_1": "1.1",
}
REGIONAL_PARAMETERS_VERSIONS = {
    "PHY_V1_0": "1.0",
    "PHY_V1_0_1": "1.0.1",
    "PHY_V1_0_2_REV_A": "1.0.2-a",
    "PHY_V1_0_2_REV_B": "1.0.2-b",
    "PHY_V1_0_3_REV_A": "1.0.3-a",
    "PHY_V1_1_REV_A": "1.1-a",
    "PHY_V1_1_REV_B": "1.1-b",
}
VERSION_IDENTIFIERS = {
    "version_ids.band_id": "bandId",
    "version_ids.brand_id": "brandId",
    "version_ids.model_id": "modelId",
    "version_ids.hardware_version": "hardwareVersion",
    "version_ids.firmware_version": "firmwareVersion",
}


def lorawan_tags(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The `tags.lorawan` document The Things Stack's IoT Hub integration uses for a device,
    from the device's TTS fields. Versions the integration does not list are left out; root
    keys (`appKey`, `nwkKey`) are never included: they stay on the Join Server."""
    tags: dict[str, Any] = {}
    for path, name in (("ids.dev_eui", "devEui"), ("ids.join_eui", "joinEui")):
        if isinstance(fields.get(path), str):
            tags[name] = fields[path]
    version = LORAWAN_VERSIONS.get(str(fields.get("lorawan_version")))
    if version:
        tags["lorawanVersion"] = version
    phy = REGIONAL_PARAMETERS_VERSIONS.get(str(fields.get("lorawan_phy_version")))
    if phy:
        tags["regionalParametersVersion"] = phy
    if isinstance(fields.get("frequency_plan_id"), str):
        tags["frequencyPlanId"] = fields["frequency_plan_id"]
    identifiers = {
        name: fields[path] for path, name in VERSION_IDENTIFIERS.items() if fields.get(path)
    }
    if identifiers:
        tags["versionIdentifiers"] = identifiers
    return tags


# --- CSV fleets ------------------------------------------------------------------------------

CSV_PLAIN_COLUMNS = (
    "id",
    "status",
    "statusReason",
    "authentication.type",
    "capabilities.iotEdge",
    "parent",
    "primaryKey",
    "secondaryKey",
    "primaryThumbprint",
    "secondaryThumbprint",
)
CSV_KEY_COLUMNS = ("primaryKey", "secondaryKey")
SECRETS_CSV_COLUMNS = ("id", *CSV_KEY_COLUMNS)
CSV_PREFIXES = ("tags.", "properties.desired.")


def csv_cell_value(text: str) -> Any:
    """A twin value from a CSV cell: JSON numbers, `true`/`false` and `null` are read as such
    (so `60` is the number 60); anything else is the text itself."""
    if text in ("true", "false", "null") or text[:1] in "-0123456789":
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if isinstance(value, bool | int | float) or value is None:
            return value
    return text


def _set_nested(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[path[-1]] = value


def parse_csv_row(
    values: Mapping[str, str],
    context: SecretContext,
    secret_keys: Mapping[str, Secret] | None = None,
) -> tuple[Settings, str | None, str | None, list[tuple[str, str]]]:
    """(settings, device id, parent, [(column, problem)]) of one fleet row; `secret_keys` are
    its keys from the fleet's secrets CSV (the row then has no key cells of its own)."""
    settings: Settings = {}
    errors: list[tuple[str, str]] = []
    device_id = values.get("id")
    if device_id is not None:
        try:
            rules.check_device_id(device_id)
        except ValueError as error:
            errors.append(("id", str(error)))
            device_id = None
    parent = values.get("parent")
    if parent is not None:
        try:
            rules.check_device_id(parent, "parent")
        except ValueError as error:
            errors.append(("parent", str(error)))
    status = values.get("status")
    if status is not None:
        if status not in rules.STATUSES:
            errors.append(("status", "status must be `enabled` or `disabled`"))
        else:
            settings["status"] = status
    reason = values.get("statusReason")
    if reason is not None:
        try:
            settings["statusReason"] = rules.check_status_reason(reason)
        except ValueError as error:
            errors.append(("statusReason", str(error)))
    edge = values.get("capabilities.iotEdge")
    if edge is not None:
        if edge.lower() not in ("true", "false"):
            errors.append(("capabilities.iotEdge", "capabilities.iotEdge must be true or false"))
        else:
            settings["capabilities.iotEdge"] = edge.lower() == "true"
    auth = _csv_authentication(values, context, errors, secret_keys or {})
    if auth is not None:
        settings["authentication"] = auth
    for prefix, key in (("tags.", "tags"), ("properties.desired.", "properties.desired")):
        document: dict[str, Any] = {}
        for column, text in values.items():
            if column.startswith(prefix):
                path = column[len(prefix) :].split(".")
                _set_nested(document, path, csv_cell_value(text))
        if document:
            problems = rules.twin_problems(document, key)
            for path, problem in problems:
                column = prefix + ".".join(path) if path else prefix.rstrip(".")
                errors.append((column if column in values else next(iter(values)), problem))
            settings[key] = document
    return settings, device_id, parent, errors


def resolve_key(text: str, context: SecretContext) -> Secret:
    """A symmetric key from a CSV cell (inline or a reference); ValueError says what is wrong
    with it (never the key)."""
    secret = resolve(text, context)
    problem = rules.key_problem(secret.reveal())
    if problem:
        raise ValueError(f"the symmetric key from {secret.source} {problem}")
    return secret


def _csv_authentication(
    values: Mapping[str, str],
    context: SecretContext,
    errors: list[tuple[str, str]],
    secret_keys: Mapping[str, Secret],
) -> m.Authentication | None:
    kind = values.get("authentication.type")
    keys = {c: values[c] for c in CSV_KEY_COLUMNS if c in values}
    thumbs = {c: values[c] for c in ("primaryThumbprint", "secondaryThumbprint") if c in values}
    if kind is None and not keys and not thumbs and not secret_keys:
        return None
    if kind is None:
        kind = "sas" if keys or secret_keys else "selfSigned"
    data: dict[str, Any] = {"type": kind}
    if secret_keys:
        data["symmetricKey"] = dict(secret_keys)
    elif keys:
        secrets: dict[str, Secret] = {}
        for column, text in keys.items():
            try:
                secrets[column] = resolve_key(text, context)
            except ValueError as error:  # SecretError included
                errors.append((column, str(error)))
        if len(secrets) != len(keys):
            return None
        data["symmetricKey"] = secrets
    if thumbs:
        data["x509Thumbprint"] = thumbs
    try:
        return m.Authentication.model_validate(data)
    except ValidationError as error:  # its first message only (never the input)
        messages = error.errors(include_input=False)
        text = messages[0]["msg"] if messages else "invalid authentication"
        column = "authentication.type" if "authentication.type" in values else next(iter(values))
        errors.append((column, str(text).removeprefix("Value error, ")))
        return None


# --- resolution ------------------------------------------------------------------------------


class IotHubKinds:
    """The `ManifestKinds` of the IoT Hub provider (reconciler.manifest.extensions)."""

    provider = PROVIDER
    models: Mapping[str, type[Any]] = m.MODELS

    def prepare(self, documents: Sequence[Document], run: ResolveContext) -> None:
        """Nothing to do before validation."""

    def resolve(self, items: Mapping[str, list[Validated]], run: ResolveContext) -> None:
        hubs = items.get("IotHub", [])
        devices = items.get("IotHubDevice", [])
        fleets = items.get("IotHubFleet", [])
        if not hubs:
            if devices or fleets:
                first = (devices or fleets)[0]
                run.error(
                    first.document.locate(["kind"]),
                    "no `kind: IotHub` document: one is needed to name the hub and its credentials",
                    "missing-hub",
                )
            return
        for extra in hubs[1:]:
            run.error(
                extra.document.locate(["kind"]),
                f"a second IotHub document (the first is at {hubs[0].document.locate([])}); "
                "one hub per manifest tree is supported",
                "duplicate-hub",
            )
        hub = hubs[0].model
        assert isinstance(hub, m.IotHub)
        target = self._target(hub, hubs[0].document, run)
        project = HubProject(target)
        registry = _Devices(run)
        for item in devices:
            self._device(item, hub, run, registry)
        for item in fleets:
            self._fleet(item, hub, run, registry)
        for index, mirror in enumerate(hub.lorawan_mirror):
            self._mirror(hubs[0], index, mirror, hub, run, registry)
        registry.check_parents()
        project.devices = registry.devices
        run.project.add_target(target)
        run.project.extensions[PROVIDER] = project
        run.project.extension_counts["iothub devices"] = len(project.devices)
        run.project.extension_counts["iothub modules"] = sum(
            len(d.modules) for d in project.devices
        )

    def _target(self, hub: m.IotHub, document: Document, run: ResolveContext) -> HubTarget:
        url = run.environ.get(URL_ENV) or None
        if url is not None:
            url = url.strip()
            if not url.startswith(("http://", "https://")):
                run.error(
                    document.locate(["host_name"]),
                    f"{URL_ENV} must be an http:// or https:// URL",
                    "invalid-url",
                )
                url = None
        return HubTarget(
            stack=hub.name,
            ownership_key=hub.ownership_tag,
            host_name=hub.host_name,
            connection_string=hub.connection_string.model_dump(exclude_none=True),
            source=lambda: document.locate([]),
            base_dir=Path(document.file).parent,
            tree=run.tree,
            ca_bundle=Path(document.file).parent / hub.ca_bundle if hub.ca_bundle else None,
            sku=hub.sku,
            units=hub.units,
            prune=hub.safety.prune,
            change_threshold=hub.safety.change_threshold,
            url=url,
        )

    def _layers(
        self,
        item: Validated,
        hub: m.IotHub,
        hub_name: str | None,
        profile: str | None,
        run: ResolveContext,
        profile_path: list[str | int] | None = None,
    ) -> Settings | None:
        if hub_name is not None and hub_name != hub.name:
            run.error(
                item.document.locate(["hub"]),
                f"hub `{hub_name}` is not declared (the IotHub document is `{hub.name}`)",
                "unknown-hub",
            )
            return None
        base = settings_of(hub.device_defaults)
        if profile is not None:
            settings = hub.device_profiles.get(profile)
            if settings is None:
                match = closest(profile, hub.device_profiles)
                hint = f"; did you mean `{match}`?" if match else ""
                run.error(
                    item.document.locate(profile_path or ["profile"]),
                    f"profile `{profile}` is not declared in the IotHub document's "
                    f"device_profiles{hint}",
                    "unknown-profile",
                )
                return None
            base = merge_settings(base, settings_of(settings))
        return base

    def _device(
        self, item: Validated, hub: m.IotHub, run: ResolveContext, registry: _Devices
    ) -> None:
        device = item.model
        assert isinstance(device, m.IotHubDevice)
        base = self._layers(item, hub, device.hub, device.profile, run)
        if base is None:
            return
        document = item.document
        fields = to_fields(merge_settings(base, settings_of(device)))
        if "parent" in device.model_fields_set:
            fields["parent"] = device.parent
        modules = []
        for index, module in enumerate(device.modules):
            module_fields = to_fields(settings_of(module))
            modules.append(
                HubModule(device.id, module.id, module_fields, _lazy(document, ["modules", index]))
            )
        registry.add(
            HubDevice(device.id, fields, _lazy(document, []), modules, device.profile),
            lambda key: document.locate([key] if key in device.model_fields_set else ["id"]),
        )

    def _mirror(
        self,
        item: Validated,
        index: int,
        mirror: m.LorawanMirror,
        hub: m.IotHub,
        run: ResolveContext,
        registry: _Devices,
    ) -> None:
        """One hub device per TTS device of the application: the same id, and the TTS
        integration's `lorawan` tags describing it (never its keys)."""
        where: list[str | int] = ["lorawan_mirror", index]
        document = item.document

        def at(_key: str = "") -> Location:
            return document.locate([*where, "application"])

        # The TTS provider's resolved data (see its manifest kinds, resolved before these).
        lorawan = run.project.extensions.get("tts")
        lorawan_devices = lorawan.devices if lorawan is not None else []
        applications = [a.application_id for a in lorawan.applications] if lorawan else []
        if mirror.application not in applications:
            match = closest(mirror.application, applications)
            hint = f"; did you mean `{match}`?" if match else ""
            run.error(
                at(),
                f"application `{mirror.application}` is not declared in the manifests{hint}",
                "unknown-application",
            )
            return
        base = self._layers(item, hub, None, mirror.profile, run, [*where, "profile"])
        if base is None:
            return
        for device in lorawan_devices:
            if device.application_id != mirror.application:
                continue
            own: Settings = {"tags": {"lorawan": lorawan_tags(device.fields)}}
            fields = to_fields(merge_settings(base, own))
            source = device.source
            registry.add(
                HubDevice(device.device_id, fields, source, [], mirror.profile),
                at,
            )

    def _fleet(
        self, item: Validated, hub: m.IotHub, run: ResolveContext, registry: _Devices
    ) -> None:
        fleet = item.model
        assert isinstance(fleet, m.IotHubFleet)
        base = self._layers(item, hub, fleet.hub, fleet.profile, run)
        secrets = None
        if fleet.secrets_csv is not None:
            secrets = FleetSecrets(run, SECRETS_CSV_COLUMNS, _secrets_row_id, "row has no `id`")
            secrets.read(item, "secrets_csv", fleet.secrets_csv)
        for index, name in enumerate(fleet.csv):
            table = run.read_table(item, ["csv", index], name)
            if table is None or base is None:
                continue
            if not self._check_header(table, run):
                continue
            context = run.secret_context(item.document.file, f"csv:{table.file}")
            for row in table.rows:
                keys = self._secret_keys(item, table, row, secrets, run)
                if keys is not None:
                    self._row(table, row, base, context, fleet.profile, run, registry, keys)
        if secrets is not None and base is not None:
            # A warning, as for a TTS fleet: a row left behind when a device leaves the fleet
            # is harmless, and a device without its row is an error of its own.
            for device_id, unused in secrets.unused():
                run.warn(
                    unused.table.locate(unused.row, "id"),
                    f"secrets for device `{device_id}`, which is not in the fleet's CSV files",
                    "unused-secrets",
                )

    def _secret_keys(
        self,
        item: Validated,
        table: CsvTable,
        row: CsvRow,
        secrets: FleetSecrets | None,
        run: ResolveContext,
    ) -> _RowKeys | None:
        """The row's keys from the fleet's secrets CSV ({} for none), or None when they are
        wrong (reported). The secrets row is taken by the id cell alone, so a row with other
        problems does not make its secrets look unused."""
        device_id = row.values.get("id")
        joined = secrets.take(device_id) if secrets is not None and device_id else None
        if joined is None:
            return _RowKeys({}, secrets is not None)
        cells = {c: joined.row.values[c] for c in CSV_KEY_COLUMNS if joined.row.values.get(c)}
        if not cells:
            return _RowKeys({}, False)  # an id-only row: the keys are left to the hub
        own = [c for c in CSV_KEY_COLUMNS if c in row.values]
        if own:
            run.error(
                table.locate(row, own[0]),
                f"device `{device_id}` has keys both in this row and in the secrets CSV (at "
                f"{joined.table.locate(joined.row)}): keep them in one place",
                "duplicate-secrets",
            )
            return None
        missing = [c for c in CSV_KEY_COLUMNS if c not in cells]
        if missing:
            run.error(
                joined.table.locate(joined.row, missing[0]),
                f"device `{device_id}`: `{missing[0]}` is empty: give both keys, or neither "
                "(the hub keeps or generates its own)",
                "invalid-csv-cell",
            )
            return None
        context = run.secret_context(item.document.file, f"file:{joined.table.file}")
        keys: dict[str, Secret] = {}
        for column, text in cells.items():
            try:
                keys[column] = resolve_key(text, context)
            except ValueError as error:  # SecretError included
                run.error(joined.table.locate(joined.row, column), str(error), "invalid-csv-cell")
        return _RowKeys(keys, False) if len(keys) == len(cells) else None

    def _check_header(self, table: CsvTable, run: ResolveContext) -> bool:
        if "id" not in table.header:
            run.error(Location(table.file, 1, 1), "the header has no `id` column", "csv-header")
            return False
        for column in table.header:
            if not column or column in CSV_PLAIN_COLUMNS or column.startswith(CSV_PREFIXES):
                continue
            match = closest(column, CSV_PLAIN_COLUMNS)
            hint = f"; did you mean `{match}`?" if match else ""
            run.warn(
                Location(table.file, 1, table.header.index(column) + 1, column),
                f"unknown column `{column}` is ignored{hint}",
                "csv-column",
            )
        # Key cells should be references; the first inline one is named (once per file).
        for row in table.rows:
            inline = [
                c for c in CSV_KEY_COLUMNS if c in row.values and not _is_reference(row.values[c])
            ]
            if inline:
                run.warn(
                    table.locate(row, inline[0]),
                    "key columns hold references (`env:NAME`, `file:path`); inline keys end up "
                    "in git",
                    "inline-secret",
                )
                break
        return True

    def _row(
        self,
        table: CsvTable,
        row: CsvRow,
        base: Settings,
        context: SecretContext,
        profile: str | None,
        run: ResolveContext,
        registry: _Devices,
        keys: _RowKeys,
    ) -> None:
        own, device_id, parent, errors = parse_csv_row(row.values, context, keys.keys)
        for column, message in errors:
            run.error(table.locate(row, column), message, "invalid-csv-cell")
        if errors:
            return
        if device_id is None:
            run.error(table.locate(row), "row has no `id`", "csv-row")
            return
        fields = to_fields(merge_settings(base, own))
        if (
            keys.row_missing
            and fields.get("authentication.type") == "sas"
            and "authentication.symmetricKey.primaryKey" not in fields
        ):
            run.error(
                table.locate(row, "id"),
                f"device `{device_id}` authenticates with sas and has no row in the fleet's "
                "secrets_csv: add its keys there (a row with empty key cells leaves them to "
                "the hub)",
                "missing-secrets",
            )
            return
        if parent is not None:
            fields["parent"] = parent
        registry.add(
            HubDevice(device_id, fields, table.locate(row), [], profile),
            lambda key: table.locate(row, key if key in row.values else "id"),
        )


@dataclass(frozen=True)
class _RowKeys:
    """A fleet row's keys from the fleet's secrets CSV."""

    keys: dict[str, Secret]
    row_missing: bool  # the fleet has a secrets CSV, without a row for this device


def _secrets_row_id(values: Mapping[str, str]) -> tuple[str | None, tuple[str, str] | None]:
    text = values.get("id")
    if not text:
        return None, None
    if not rules.DEVICE_ID.fullmatch(text):
        # Not quoted: read with the wrong separator, the id cell holds the whole row (keys).
        return None, ("id", f"the id is not a valid device id: {rules.ID_RULE}")
    return text, None


class _Devices:
    """Collects devices; reports duplicate ids and parents that are not edge devices."""

    def __init__(self, run: ResolveContext) -> None:
        self.run = run
        self.devices: list[HubDevice] = []
        self.by_id: dict[str, HubDevice] = {}
        self.locators: dict[str, Callable[[str], Location]] = {}

    def add(self, device: HubDevice, locate: Callable[[str], Location]) -> None:
        if device.device_id.startswith(rules.LEASE_DEVICE_PREFIX):
            # Any stack's: several stacks may share a hub, each with its own lease identity.
            self.run.error(
                locate("id"),
                f"the device ID `{device.device_id}` is reserved: device IDs starting with "
                f"`{rules.LEASE_DEVICE_PREFIX}` hold reconciler's apply lease on a hub",
                "reserved-id",
            )
            return
        first = self.by_id.get(device.device_id)
        if first is not None:
            self.run.error(
                locate("id"),
                f"duplicate device `{device.device_id}` (first defined at {first.location})",
                "duplicate-id",
            )
            return
        problem = self._auth_problem(device.fields)
        if problem:
            self.run.error(
                locate("authentication"),
                f"device `{device.device_id}`: {problem}",
                "invalid-device",
            )
            return
        self.by_id[device.device_id] = device
        self.locators[device.device_id] = locate
        self.devices.append(device)

    @staticmethod
    def _auth_problem(fields: dict[str, Any]) -> str | None:
        if fields.get("authentication.type") == "none":
            return (
                "authentication type `none` is for modules; a device needs sas, selfSigned "
                "or certificateAuthority"
            )
        return None

    def check_parents(self) -> None:
        for device in self.devices:
            parent = device.parent
            if parent is None:
                continue
            locate = self.locators[device.device_id]
            if device.is_edge:
                self.run.error(
                    locate("parent"),
                    f"device `{device.device_id}` is an IoT Edge device with a parent: nested "
                    "IoT Edge is not supported yet",
                    "nested-edge",
                )
                continue
            found = self.by_id.get(parent)
            if found is None:
                match = closest(parent, self.by_id)
                hint = f"; did you mean `{match}`?" if match else ""
                self.run.error(
                    locate("parent"),
                    f"parent `{parent}` of device `{device.device_id}` is not declared{hint}",
                    "unknown-parent",
                )
            elif not found.is_edge:
                self.run.error(
                    locate("parent"),
                    f"parent `{parent}` of device `{device.device_id}` is not an IoT Edge device "
                    f"(set capabilities.iotEdge: true on it, at {found.location})",
                    "parent-not-edge",
                )


def _is_reference(cell: str) -> bool:
    return cell.startswith(("env:", "file:"))


def _lazy(document: Document, path: list[str | int]) -> Callable[[], Location]:
    return lambda: document.locate(path)
