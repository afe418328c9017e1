"""The TTS manifest kinds (`Stack`, `Application`, `Device`, `Fleet`, `Gateway`) as a
`ManifestKinds` extension of the loader: how their validated documents resolve into the stack's
`Target`, applications with their webhooks and link, devices (application defaults, profiles,
CSV fleets) and gateways, and the checks only the whole set can show (duplicate IDs and EUIs,
undeclared applications and profiles, a missing Stack).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from reconciler.diagnostics import Location
from reconciler.manifest.common import closest
from reconciler.manifest.documents import CsvRow, CsvTable, Document, YamlPath
from reconciler.manifest.extensions import ResolveContext, Validated
from reconciler.manifest.fleet_secrets import FleetSecrets
from reconciler.manifest.secrets import SecretContext, SecretError
from reconciler.providers.tts import rights as r
from reconciler.providers.tts.kinds import LEASE_DEVICE_ID, PROVIDER
from reconciler.providers.tts.manifest import devices as dev
from reconciler.providers.tts.manifest import models as m
from reconciler.providers.tts.manifest import types as t
from reconciler.providers.tts.manifest.mac_settings import DEPRECATED_ADR
from reconciler.providers.tts.manifest.packages import KNOWN_PACKAGES, association_fields
from reconciler.providers.tts.manifest.packages import PackageAssociation as PackageModel
from reconciler.providers.tts.manifest.project import (
    SERVER_ROLES,
    ApiKey,
    Application,
    Collaborator,
    Device,
    Gateway,
    Organization,
    OwnerRef,
    PackageAssociation,
    PubSub,
    ServerRole,
    Target,
    TtsProject,
    Webhook,
)
from reconciler.providers.tts.manifest.pubsubs import pubsub_fields
from reconciler.providers.tts.servers import DEFAULT_USER_AGENT, URL_ENV
from reconciler.sinks import CommandSink, FileSink, Sink

# Manifest fields that are TTS fields of the same name.
_APPLICATION_FIELDS = (
    "name",
    "description",
    "attributes",
    "network_server_address",
    "application_server_address",
    "join_server_address",
)
_ORGANIZATION_FIELDS = ("name", "description", "attributes")
_GATEWAY_FIELDS = (
    "name",
    "description",
    "attributes",
    "frequency_plan_ids",
    "gateway_server_address",
    "status_public",
    "location_public",
    "update_location_from_status",
    "require_authenticated_connection",
    "target_cups_uri",
    "auto_update",
    "update_channel",
    "enforce_duty_cycle",
    "schedule_downlink_late",
    "schedule_anytime_delay",
    "disable_packet_broker_forwarding",
)
# Gateway secrets: the manifest field -> the TTS path of the secret's bytes.
GATEWAY_SECRETS = {
    "lbs_lns_secret": "lbs_lns_secret.value",
    "target_cups_key": "target_cups_key.value",
}
GATEWAY_CONTACTS = ("administrative_contact", "technical_contact")


class TtsKinds:
    """The `ManifestKinds` of The Things Stack provider (reconciler.manifest.extensions)."""

    provider = PROVIDER
    models: Mapping[str, type[Any]] = m.MODELS

    def prepare(self, documents: Sequence[Document], run: ResolveContext) -> None:
        """The first Stack document's `allow_files_from` widens what file references read:
        known before any is resolved."""
        for document in documents:
            data = document.data
            if isinstance(data, dict) and data.get("kind") == "Stack":
                run.allow_directories(document, "allow_files_from")
                return

    def resolve(self, items: Mapping[str, list[Validated]], run: ResolveContext) -> None:
        resolution = _Resolution(items, run)
        resolution.resolve()
        project = resolution.project
        run.project.extensions[PROVIDER] = project
        if project.target is not None:
            run.project.add_target(project.target)
            run.project.extension_counts.update(project.counts())
        else:
            run.project.fallback_counts = project.counts()


class _Resolution:
    def __init__(self, items: Mapping[str, list[Validated]], run: ResolveContext) -> None:
        self.run = run
        self.environ = run.environ
        self.tree = run.tree
        self.validated = items
        self.project = TtsProject()
        # Url of all four servers from `--url`, else from the environment (the emulator in CI).
        self.url_override = run.url_override or run.environ.get(URL_ENV) or None
        # IDs of applications whose documents failed validation: references to them are not
        # reported again as undeclared.
        self.invalid_applications = {
            data["id"]
            for data in run.rejected.get("Application", [])
            if isinstance(data.get("id"), str)
        }
        # A Stack document that failed validation: what depends on it (the default owner, the
        # presence of a Stack) is not reported again.
        self.invalid_stack = bool(run.rejected.get("Stack"))

    def error(self, location: Location, message: str, code: str) -> None:
        self.run.error(location, message, code)

    def duplicate(self, location: Location, what: str, first: object, why: str = "") -> None:
        """A second declaration of something that must be unique: located, naming the first."""
        self.error(location, f"duplicate {what} (first defined at {first}){why}", "duplicate-id")

    def warn(self, location: Location, message: str, code: str) -> None:
        self.run.warn(location, message, code)

    def resolve(self) -> None:
        self.resolve_stack()
        self.check_formatter_scripts()
        self.resolve_organizations()
        applications = self.resolve_applications()
        devices = _DeviceRegistry(self)
        # Each device's model is dropped once it became a resource, so that the models and
        # the resources of a large tree are not all in memory at once (nothing after this
        # reads the validated devices).
        pending = self.validated["Device"]
        pending.reverse()
        while pending:
            self.resolve_device(pending.pop(), applications, devices)
        for item in self.validated["Fleet"]:
            self.resolve_fleet(item, applications, devices)
        self.project.devices = devices.devices
        self.resolve_gateways()

    # --- stack --------------------------------------------------------------------------------

    def check_formatter_scripts(self) -> None:
        """Formatter scripts within the target release's limit (the models allow the largest
        any release takes): located at the script."""
        stacks = self.validated["Stack"]
        stack = stacks[0].model if stacks else None
        version = stack.server_version if isinstance(stack, m.Stack) else None
        limit = t.formatter_limit(version)
        if version is None:
            why = (
                "the limit of The Things Stack before v3.35; a newer server takes 65536: set "
                "the Stack's `server_version`"
            )
        else:
            why = "the limit of The Things Stack v" + ".".join(map(str, version))
        places: list[tuple[Validated, YamlPath, m.Formatters | None]] = []
        for item in self.validated["Application"]:
            app = item.model
            assert isinstance(app, m.Application)
            places.append((item, ["default_formatters"], app.default_formatters))
            if app.device_defaults is not None:
                places.append(
                    (item, ["device_defaults", "formatters"], app.device_defaults.formatters)
                )
            for name, profile in app.device_profiles.items():
                places.append((item, ["device_profiles", name, "formatters"], profile.formatters))
        for item in self.validated["Device"]:
            device = item.model
            assert isinstance(device, m.Device)
            places.append((item, ["formatters"], device.formatters))
        for item, path, formatters in places:
            if formatters is None:
                continue
            for name in sorted(formatters.model_fields_set):
                value = getattr(formatters, name)
                text = value.text if isinstance(value, m.ScriptFile) else value
                if "parameter" in name and isinstance(text, str) and len(text) > limit:
                    self.error(
                        item.document.locate([*path, name]),
                        f"formatter script is longer than {limit} characters ({len(text)}): {why}",
                        "script-too-long",
                    )

    def resolve_stack(self) -> None:
        stacks = self.validated["Stack"]
        if not stacks:
            if self.invalid_stack:
                return
            # A tree of other providers' targets only needs no Stack.
            other_targets = any(v for k, v in self.run.validated.items() if k not in m.MODELS)
            if other_targets and not any(self.validated[k] for k in m.KINDS):
                return
            files = sorted({v.document.file for vs in self.run.validated.values() for v in vs})
            if files or not self.run.diagnostics:
                self.error(
                    Location(files[0] if files else "."),
                    "no `kind: Stack` document: one is needed to name the stack and its servers",
                    "missing-stack",
                )
            return
        first = stacks[0]
        for extra in stacks[1:]:
            self.error(
                extra.document.locate(["kind"]),
                f"a second Stack document (the first is at {first.document.locate([])})",
                "duplicate-stack",
            )
        stack = first.model
        assert isinstance(stack, m.Stack)
        urls: dict[ServerRole, str] = {}
        for role in SERVER_ROLES:
            url = getattr(stack, f"{role}_server_url") or stack.url
            if url:
                urls[role] = url
        target = Target(
            stack=stack.name,
            ownership_key=stack.ownership_key,
            server_urls=urls,
            api_key=stack.api_key.model_dump(exclude_none=True),
            ca_bundle=Path(stack.ca_bundle) if stack.ca_bundle else None,
            tree=self.tree,
            api_key_source=_lazy(first.document, ["api_key"]),
            user_agent=stack.user_agent or DEFAULT_USER_AGENT,
            default_owner=_owner_ref(stack.owner),
            prune=stack.safety.prune,
            change_threshold=stack.safety.change_threshold,
            source=_lazy(first.document, []),
            base_dir=Path(first.document.file).parent,
            secret_commands={k: tuple(v) for k, v in stack.secret_commands.items()},
        )
        if self.url_override:
            target = target.with_url_override(self.url_override)
        missing = [role for role in SERVER_ROLES if role not in target.server_urls]
        if missing:
            roles = ", ".join(f"`{role}_server_url`" for role in missing)
            self.error(
                first.document.locate([]),
                f"no server URL: set `url` (all four servers) or {roles}, or pass --url",
                "missing-url",
            )
        self.project.target = target

    def owner_for(self, item: Validated, owner: m.Owner | None, what: str) -> OwnerRef | None:
        ref = _owner_ref(owner)
        if ref is None and self.project.target is not None:
            ref = self.project.target.default_owner
        if ref is None and not self.invalid_stack:
            self.error(
                item.document.locate(["id"]),
                f"{what} has no owner: set `owner` here or on the Stack document",
                "missing-owner",
            )
        return ref

    # --- organizations ------------------------------------------------------------------------

    def resolve_organizations(self) -> None:
        seen: dict[str, Document] = {}
        for item in self.validated["Organization"]:
            org = item.model
            assert isinstance(org, m.Organization)
            if org.id in seen:
                self.duplicate(
                    item.document.locate(["id"]),
                    f"organization `{org.id}`",
                    seen[org.id].locate(["id"]),
                )
                continue
            seen[org.id] = item.document
            owner = self.owner_for(item, org.owner, f"organization `{org.id}`")
            if owner is not None and owner.kind != "user":
                at = ["owner"] if org.owner is not None else ["id"]
                self.error(
                    item.document.locate(at),
                    f"organization `{org.id}` must be created under a user, not under "
                    f"{owner}: set `owner: {{user: ...}}`",
                    "invalid-owner",
                )
                continue
            if owner is None:
                continue
            self.project.organizations.append(
                Organization(
                    org.id,
                    owner,
                    _model_fields(org, _ORGANIZATION_FIELDS),
                    _lazy(item.document, []),
                    self.resolve_collaborators(item, org.collaborators, "organization", org.id),
                    self.resolve_api_keys(item, org.api_keys, "organization", org.id),
                )
            )

    # --- API keys and collaborators -----------------------------------------------------------

    def check_rights(
        self, item: Validated, at: list[str | int], granted: Sequence[str], entity_kind: str
    ) -> tuple[str, ...] | None:
        """Sorted unique rights, or None after reporting one that does not apply."""
        ok = True
        for index, right in enumerate(granted):
            if not r.applies_to(right, entity_kind):
                prefixes = " or ".join(f"{p}*" for p in r.PREFIXES_OF_ENTITY[entity_kind])
                self.error(
                    item.document.locate([*at, "rights", index]),
                    f"{right} is not a right of {entity_kind}s (expected {prefixes})",
                    "invalid-right",
                )
                ok = False
        return tuple(sorted(set(granted))) if ok else None

    def resolve_collaborators(
        self,
        item: Validated,
        declared: list[m.Collaborator] | None,
        entity_kind: Literal["application", "gateway", "organization"],
        entity_id: str,
    ) -> list[Collaborator] | None:
        if declared is None:
            return None
        found: list[Collaborator] = []
        seen: dict[tuple[str, str], int] = {}
        for index, collaborator in enumerate(declared):
            at: list[str | int] = ["collaborators", index]
            member = (collaborator.kind, collaborator.id)
            if entity_kind == "organization" and collaborator.kind != "user":
                self.error(
                    item.document.locate([*at, "organization"]),
                    "an organization's collaborators are users (its members)",
                    "invalid-collaborator",
                )
                continue
            if member in seen:
                self.duplicate(
                    item.document.locate(at),
                    f"collaborator {collaborator.kind} `{collaborator.id}`",
                    item.document.locate(["collaborators", seen[member]]),
                )
                continue
            seen[member] = index
            granted = self.check_rights(item, at, collaborator.rights, entity_kind)
            if granted is None:
                continue
            found.append(
                Collaborator(
                    entity_kind,
                    entity_id,
                    OwnerRef(collaborator.kind, collaborator.id),
                    granted,
                    _lazy(item.document, at),
                )
            )
        return found

    def resolve_api_keys(
        self,
        item: Validated,
        declared: list[m.ApiKey] | None,
        entity_kind: Literal["application", "gateway", "organization"],
        entity_id: str,
    ) -> list[ApiKey] | None:
        if declared is None:
            return None
        found: list[ApiKey] = []
        seen: dict[str, int] = {}
        base_dir = Path(item.document.file).parent
        target = self.project.target
        for index, key in enumerate(declared):
            at: list[str | int] = ["api_keys", index]
            if key.name in seen:
                self.duplicate(
                    item.document.locate([*at, "name"]),
                    f"API key name `{key.name}` in {entity_kind} `{entity_id}`",
                    item.document.locate(["api_keys", seen[key.name], "name"]),
                    ": keys are matched by name",
                )
                continue
            seen[key.name] = index
            granted = self.check_rights(item, at, key.rights, entity_kind)
            sink: Sink
            if key.deliver.file is not None:
                path = os.path.normpath(os.path.join(os.path.realpath(base_dir), key.deliver.file))
                sink = FileSink(path, key.deliver.file, self.tree.roots)
            else:
                name = key.deliver.command or ""
                commands = target.secret_commands if target is not None else {}
                if name not in commands:
                    if not self.invalid_stack:
                        match = closest(name, commands)
                        hint = f"; did you mean `{match}`?" if match else ""
                        self.error(
                            item.document.locate([*at, "deliver", "command"]),
                            f"command `{name}` is not in the Stack document's "
                            f"`secret_commands`{hint}",
                            "unknown-command",
                        )
                    continue
                sink = CommandSink(name, commands[name])
            if granted is None:
                continue
            expires = None
            if key.expires_at is not None:
                expires = key.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            found.append(
                ApiKey(
                    entity_kind,
                    entity_id,
                    key.name,
                    granted,
                    sink,
                    _lazy(item.document, at),
                    expires,
                    key.rotate_after_days,
                )
            )
        return found

    # --- applications -------------------------------------------------------------------------

    def resolve_applications(self) -> dict[str, _AppInfo]:
        infos: dict[str, _AppInfo] = {}
        for item in self.validated["Application"]:
            app = item.model
            assert isinstance(app, m.Application)
            if app.id in infos:
                self.duplicate(
                    item.document.locate(["id"]),
                    f"application `{app.id}`",
                    infos[app.id].item.document.locate(["id"]),
                )
                continue
            owner = self.owner_for(item, app.owner, f"application `{app.id}`")
            infos[app.id] = _AppInfo(item, app)
            self.warn_deprecated_adr(item, ["device_defaults"], app.device_defaults)
            for name, profile in app.device_profiles.items():
                self.warn_deprecated_adr(item, ["device_profiles", name], profile)
            if owner is None:
                continue
            fields = _model_fields(
                app,
                _APPLICATION_FIELDS,
            )
            link = None
            if "default_formatters" in app.model_fields_set:
                link = _formatter_fields(app.default_formatters, "default_formatters")
            webhooks = self.resolve_webhooks(item, app)
            pubsubs = self.resolve_pubsubs(item, app)
            packages = None
            if app.packages is not None:
                packages = self.resolve_packages(item, app.packages, app.id, None)
            self.project.applications.append(
                Application(
                    application_id=app.id,
                    owner=owner,
                    fields=fields,
                    source=_lazy(item.document, []),
                    link=link,
                    webhooks=webhooks,
                    pubsubs=pubsubs,
                    packages=packages,
                    profiles=tuple(app.device_profiles),
                    api_keys=self.resolve_api_keys(item, app.api_keys, "application", app.id),
                    collaborators=self.resolve_collaborators(
                        item, app.collaborators, "application", app.id
                    ),
                )
            )
        return infos

    def unique_ids(
        self, item: Validated, app: m.Application, key: str, what: str, ids: Sequence[str]
    ) -> list[int]:
        """Indexes of the list items whose ID is the first of its kind; the others are
        located errors."""
        seen: dict[str, int] = {}
        kept: list[int] = []
        for index, item_id in enumerate(ids):
            if item_id in seen:
                self.duplicate(
                    item.document.locate([key, index, "id"]),
                    f"{what} `{item_id}` in application `{app.id}`",
                    item.document.locate([key, seen[item_id], "id"]),
                )
                continue
            seen[item_id] = index
            kept.append(index)
        return kept

    def resolve_pubsubs(self, item: Validated, app: m.Application) -> list[PubSub]:
        ids = [p.id for p in app.pubsubs]
        return [
            PubSub(
                app.id,
                app.pubsubs[index].id,
                pubsub_fields(app.pubsubs[index]),
                _lazy(item.document, ["pubsubs", index]),
            )
            for index in self.unique_ids(item, app, "pubsubs", "pub/sub", ids)
        ]

    def resolve_packages(
        self,
        item: Validated,
        declared: Sequence[PackageModel],
        app_id: str,
        device_id: str | None,
    ) -> list[PackageAssociation]:
        """Package associations by FPort (one per FPort; a package the server does not run
        is stored by it but never used: a warning)."""
        owner = f"device `{app_id}/{device_id}`" if device_id else f"application `{app_id}`"
        seen: dict[int, int] = {}
        found: list[PackageAssociation] = []
        for index, association in enumerate(declared):
            at: YamlPath = ["packages", index]
            if association.f_port in seen:
                self.duplicate(
                    item.document.locate([*at, "f_port"]),
                    f"package association on FPort {association.f_port} in {owner}",
                    item.document.locate(["packages", seen[association.f_port], "f_port"]),
                )
                continue
            seen[association.f_port] = index
            if association.package_name not in KNOWN_PACKAGES:
                known = ", ".join(sorted(KNOWN_PACKAGES))
                self.warn(
                    item.document.locate([*at, "package_name"]),
                    f"package `{association.package_name}` is not one The Things Stack runs "
                    f"({known}): the Application Server stores the association, but no "
                    "package handles its messages",
                    "unknown-package",
                )
            found.append(
                PackageAssociation(
                    app_id,
                    device_id,
                    association.f_port,
                    association_fields(association),
                    _lazy(item.document, at),
                )
            )
        return found

    def resolve_webhooks(self, item: Validated, app: m.Application) -> list[Webhook]:
        webhooks: list[Webhook] = []
        ids = [h.id for h in app.webhooks]
        for index in self.unique_ids(item, app, "webhooks", "webhook", ids):
            hook = app.webhooks[index]
            fields: dict[str, Any] = {"base_url": hook.base_url, "format": hook.format}
            for name in hook.model_fields_set - {"id", "base_url", "format"}:
                value = getattr(hook, name)
                if name in m.WEBHOOK_MESSAGE_TYPES and value is not None:
                    # The message object itself enables the type, even with an empty path.
                    fields[name] = {"path": value.path}
                else:
                    fields[name] = value
            webhooks.append(
                Webhook(app.id, hook.id, fields, _lazy(item.document, ["webhooks", index]))
            )
        return webhooks

    # --- devices ------------------------------------------------------------------------------

    def layers_for(
        self,
        item: Validated,
        application: str,
        profile: str | None,
        applications: dict[str, _AppInfo],
    ) -> tuple[dev.Settings, str] | None:
        """Application defaults merged with the profile, and where values may come from."""
        info = applications.get(application)
        if info is None:
            if application in self.invalid_applications:
                return None  # already reported where the application is declared
            match = closest(application, applications)
            hint = f"; did you mean `{match}`?" if match else ""
            self.error(
                item.document.locate(["application"]),
                f"application `{application}` is not declared in the manifests{hint}",
                "unknown-application",
            )
            return None
        base = _settings(info.app.device_defaults)
        where = "the device or the application's device_defaults"
        if profile is not None:
            settings = info.app.device_profiles.get(profile)
            if settings is None:
                match = closest(profile, info.app.device_profiles)
                hint = f"; did you mean `{match}`?" if match else ""
                self.error(
                    item.document.locate(["profile"]),
                    f"profile `{profile}` is not declared in application `{application}`{hint}",
                    "unknown-profile",
                )
                return None
            base = dev.merge(base, _settings(settings))
            where = f"the device, its profile `{profile}` or the application's device_defaults"
        return base, where

    def warn_deprecated_adr(
        self, item: Validated, path: YamlPath, settings: m.DeviceSettings | None
    ) -> None:
        mac = settings.mac_settings if settings is not None else None
        if mac is None:
            return
        for name in sorted(mac.model_fields_set & set(DEPRECATED_ADR)):
            self.warn(
                item.document.locate([*path, "mac_settings", name]),
                f"`mac_settings.{name}` is deprecated: set `adr` instead "
                "(`{dynamic: {margin: ...}}` or `{disabled: {}}`)",
                "deprecated-field",
            )

    def resolve_device(
        self, item: Validated, applications: dict[str, _AppInfo], devices: _DeviceRegistry
    ) -> None:
        device = item.model
        assert isinstance(device, m.Device)
        self.warn_deprecated_adr(item, [], device)
        layers = self.layers_for(item, device.application, device.profile, applications)
        if layers is None:
            return
        base, where = layers
        own = _settings(device)
        settings = dev.merge(base, own)
        supports_join = dev.derive_supports_join(settings)
        problems = dev.check(settings, supports_join, where)
        document = item.document
        for key, message in problems:
            if key is not None and key in own:
                at = document.locate([key])
            else:
                # About the device as a whole: point at its id, without a misleading path.
                at = dataclasses.replace(document.locate(["id"]), path=None)
            self.error(at, f"device `{device.id}`: {message}", "invalid-device")
        if problems:
            return
        packages = None
        if device.packages is not None:
            packages = self.resolve_packages(item, device.packages, device.application, device.id)
        devices.add(
            Device(
                application_id=device.application,
                device_id=device.id,
                fields=dev.to_fields(settings, supports_join),
                source=_lazy(document, []),
                profile=device.profile,
                packages=packages,
            ),
            lambda key: document.locate([key] if key in own else ["id"]),
        )

    def resolve_fleet(
        self,
        item: Validated,
        applications: dict[str, _AppInfo],
        devices: _DeviceRegistry,
    ) -> None:
        fleet = item.model
        assert isinstance(fleet, m.Fleet)
        layers = self.layers_for(item, fleet.application, fleet.profile, applications)
        base_dir = Path(item.document.file).parent
        secrets = FleetSecrets(
            self.run,
            dev.CSV_SECRETS_COLUMNS,
            dev.csv_row_device_id,
            "row has neither `id` nor `dev_eui`",
        )
        secrets.read(item, "secrets_csv", fleet.secrets_csv)
        if layers is None:
            return
        base, where = layers
        where = where.replace("the device", "the CSV row")
        for index, name in enumerate(fleet.csv):
            table = self.run.read_table(item, ["csv", index], name)
            if table is None:
                continue
            self.check_fleet_header(table)
            context = SecretContext(self.environ, base_dir, f"csv:{table.file}", self.tree)
            for row in table.rows:
                self.resolve_row(fleet, table, row, context, base, where, secrets, devices)
        for device_id, unused in secrets.unused():
            self.warn(
                unused.table.locate(unused.row, "id"),
                f"secrets for device `{device_id}`, which is not in the fleet's CSV files",
                "unused-secrets",
            )

    def check_fleet_header(self, table: CsvTable) -> None:
        known = [c for c in table.header if c in dev.CSV_COLUMNS]
        if not known:
            self.error(
                Location(table.file, 1, 1),
                "the header has no known column (The Things Stack CSV format: id, dev_eui, "
                "join_eui, app_key, ...)",
                "csv-header",
            )
        for index, column in enumerate(table.header, start=1):
            if column in dev.CSV_COLUMNS or not column:
                continue
            if column in dev.CSV_STATE_COLUMNS:
                message = f"column `{column}` is device state, not configuration: ignored"
                where = Location(table.file, table.header_line, index, column)
            else:
                # An unknown header is not quoted: without a header line it is the first
                # row's data, keys included.
                match = closest(column, dev.CSV_COLUMNS)
                hint = f"; did you mean `{match}`?" if match else ""
                message = f"column {index} of the header is not a known column: ignored{hint}"
                where = Location(table.file, table.header_line, index)
            self.warn(where, message, "csv-column")
        inline_keys = [c for c in table.header if c in dev.SECRET_KEYS]
        if inline_keys and not table.file.endswith(".secrets.csv"):
            columns = ", ".join(f"`{c}`" for c in inline_keys)
            self.warn(
                Location(table.file, 1, table.header.index(inline_keys[0]) + 1, inline_keys[0]),
                f"keys ({columns}) are in the fleet CSV: keep them in a git-ignored "
                "*.secrets.csv (`secrets_csv`) or reference env vars (`env:NAME` cells)",
                "inline-secret",
            )

    def resolve_row(
        self,
        fleet: m.Fleet,
        table: CsvTable,
        row: CsvRow,
        context: SecretContext,
        base: dev.Settings,
        where: str,
        secrets: FleetSecrets,
        devices: _DeviceRegistry,
    ) -> None:
        own, errors = dev.parse_csv_row(row.values, context)
        for column, message in errors:
            self.error(table.locate(row, column), message, "invalid-csv-cell")
        device_id = own.get("id")
        if device_id is None:
            if not errors:
                self.error(table.locate(row), "row has neither `id` nor `dev_eui`", "csv-row")
            return
        joined = secrets.take(device_id)
        if joined is not None:
            secret_table, secret_row = joined.table, joined.row
            secret_context = SecretContext(
                self.environ, context.base_dir, f"file:{secret_table.file}", self.tree
            )
            keys = {k: v for k, v in secret_row.values.items() if k in dev.SECRET_KEYS and v}
            for column, text in keys.items():
                try:
                    own[column] = dev.parse_secret_cell(text, secret_context)
                except (ValueError, SecretError) as error:
                    self.error(
                        secret_table.locate(secret_row, column), str(error), "invalid-csv-cell"
                    )
                    errors.append((column, str(error)))
        if errors:
            return  # the cells are reported; checking the device as a whole would only repeat
        settings = dev.merge(base, own)
        supports_join = dev.derive_supports_join(settings)
        problems = dev.check(settings, supports_join, where)

        def locate(key: str | None) -> Location:
            column = key if key in row.values else None
            return table.locate(row, column)

        for key, message in problems:
            self.error(locate(key), f"device `{device_id}`: {message}", "invalid-device")
        if problems:
            return
        devices.add(
            Device(
                application_id=fleet.application,
                device_id=device_id,
                fields=dev.to_fields(settings, supports_join),
                source=table.locate(row),
                profile=fleet.profile,
            ),
            locate,
        )

    # --- gateways -----------------------------------------------------------------------------

    def resolve_gateways(self) -> None:
        ids: dict[str, Document] = {}
        euis: dict[str, Document] = {}
        for item in self.validated["Gateway"]:
            gateway = item.model
            assert isinstance(gateway, m.Gateway)
            if gateway.id in ids:
                self.duplicate(
                    item.document.locate(["id"]),
                    f"gateway `{gateway.id}`",
                    ids[gateway.id].locate(["id"]),
                )
                continue
            ids[gateway.id] = item.document
            if gateway.eui is not None:
                if gateway.eui in euis:
                    self.error(
                        item.document.locate(["eui"]),
                        f"gateway EUI {gateway.eui} is already used by the gateway at "
                        f"{euis[gateway.eui].locate(['eui'])}",
                        "duplicate-eui",
                    )
                    continue
                euis[gateway.eui] = item.document
            owner = self.owner_for(item, gateway.owner, f"gateway `{gateway.id}`")
            if owner is None:
                continue
            fields = _model_fields(
                gateway,
                _GATEWAY_FIELDS,
            )
            if "eui" in gateway.model_fields_set:
                fields["ids.eui"] = gateway.eui
            for name, path in GATEWAY_SECRETS.items():
                if name in gateway.model_fields_set:
                    fields[path] = getattr(gateway, name)
            for name in GATEWAY_CONTACTS:
                if name in gateway.model_fields_set:
                    contact = getattr(gateway, name)
                    fields[name] = (
                        None
                        if contact is None
                        else {f"{contact.kind}_ids": {f"{contact.kind}_id": contact.id}}
                    )
            if "version_ids" in gateway.model_fields_set:
                version_ids = gateway.version_ids
                fields["version_ids"] = (
                    None if version_ids is None else version_ids.model_dump(exclude_unset=True)
                )
            if "location" in gateway.model_fields_set:
                # TTS keeps a gateway's location on its (first) antenna.
                location = gateway.location
                fields["antennas"] = (
                    [{"location": location.model_dump(exclude_unset=True)}] if location else None
                )
            self.project.gateways.append(
                Gateway(
                    gateway.id,
                    owner,
                    fields,
                    _lazy(item.document, []),
                    self.resolve_api_keys(item, gateway.api_keys, "gateway", gateway.id),
                    self.resolve_collaborators(item, gateway.collaborators, "gateway", gateway.id),
                )
            )


@dataclass
class _AppInfo:
    item: Validated
    app: m.Application


class _DeviceRegistry:
    """Collects devices and reports duplicate IDs and (JoinEUI, DevEUI) pairs."""

    ZERO_EUI = "0000000000000000"

    def __init__(self, run: _Resolution) -> None:
        self.run = run
        self.devices: list[Device] = []
        self.ids: dict[tuple[str, str], Device] = {}
        self.euis: dict[tuple[str, str], Device] = {}

    def add(self, device: Device, locate: Callable[[str | None], Location]) -> None:
        key = (device.application_id, device.device_id)
        if device.device_id == LEASE_DEVICE_ID:
            self.run.error(
                locate("id"),
                f"the device ID `{LEASE_DEVICE_ID}` is reserved: reconciler records the apply "
                "lease under it",
                "reserved-id",
            )
            return
        first = self.ids.get(key)
        if first is not None:
            self.run.duplicate(
                locate("id"),
                f"device `{device.device_id}` in application `{device.application_id}`",
                first.location,
            )
            return
        dev_eui = device.dev_eui
        if dev_eui is not None:
            pair = (device.join_eui or self.ZERO_EUI, dev_eui)
            holder = self.euis.get(pair)
            if holder is not None:
                self.run.error(
                    locate("dev_eui"),
                    f"JoinEUI {pair[0]} / DevEUI {pair[1]} is already used by device "
                    f"`{holder.application_id}/{holder.device_id}` ({holder.location})",
                    "duplicate-eui",
                )
                return
            self.euis[pair] = device
        self.ids[key] = device
        self.devices.append(device)


def _lazy(document: Document, path: YamlPath) -> Callable[[], Location]:
    return lambda: document.locate(path)


def _owner_ref(owner: m.Owner | None) -> OwnerRef | None:
    return None if owner is None else OwnerRef(owner.kind, owner.id)


def _settings(model: BaseModel | None) -> dev.Settings:
    """A validated device-settings model as flat settings (only the fields it sets)."""
    if model is None:
        return {}
    # A device's package associations are resources of their own, not device settings.
    return model.model_dump(exclude_unset=True, round_trip=False, exclude={"packages"})


def _model_fields(model: BaseModel, names: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(model, name) for name in names if name in model.model_fields_set}


def _formatter_fields(formatters: m.Formatters | None, prefix: str) -> dict[str, Any]:
    if formatters is None:
        return {prefix: None}
    fields: dict[str, Any] = {}
    for name in formatters.model_fields_set:
        fields.update(dev.group_field(prefix, name, getattr(formatters, name)))
    return fields
