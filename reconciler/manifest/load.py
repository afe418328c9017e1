"""`load_manifests`: files -> validated `Project`, with every problem located, in one run.

Order of work: discover and parse files (the loader), validate each document against its
`kind`'s model, then resolve across documents (owners, profiles and defaults into devices, CSV
fleets) and check what only the whole set can show (duplicates, dangling references).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.diagnostics import Diagnostic, Location, ManifestError
from reconciler.manifest import files
from reconciler.manifest import project as p
from reconciler.manifest.common import closest
from reconciler.manifest.documents import CsvRow, CsvTable, Document, YamlPath
from reconciler.manifest.extensions import ManifestKinds, Validated
from reconciler.manifest.secrets import SecretContext, SecretError
from reconciler.manifest.validate import (
    inline_secret_paths,
    inline_secret_warning,
    validation_diagnostics,
)
from reconciler.providers.tts.manifest import devices as dev
from reconciler.providers.tts.manifest import models as m
from reconciler.providers.tts.servers import DEFAULT_USER_AGENT

YAML_SUFFIXES = (".yaml", ".yml")
CsvLoader = Callable[[Path, files.ManifestTree], tuple[CsvTable | None, list[Diagnostic]]]
# Manifest fields that are TTS fields of the same name.
_APPLICATION_FIELDS = (
    "name",
    "description",
    "attributes",
    "network_server_address",
    "application_server_address",
    "join_server_address",
)
_GATEWAY_FIELDS = (
    "name",
    "description",
    "attributes",
    "frequency_plan_ids",
    "gateway_server_address",
    "status_public",
    "location_public",
)


@dataclass
class LoadResult:
    project: p.Project
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def summary(self) -> str:
        if self.has_errors:
            return f"{_count(len(self.errors), 'error')}, {_count(len(self.warnings), 'warning')}"
        counts = self.project.counts()
        names = [getattr(t, "stack", "") for t in self.project.targets]
        stack = ", ".join(dict.fromkeys(n for n in names if n)) or "(no stack)"
        parts = ", ".join(_count(n, kind.removesuffix("s")) for kind, n in counts.items())
        text = f"valid: stack {stack}: {parts} ({_count(len(self.files), 'file')})"
        if self.warnings:
            text += f", {_count(len(self.warnings), 'warning')}"
        return text

    def raise_for_errors(self) -> p.Project:
        """The project, or `ManifestError` carrying every diagnostic."""
        if self.has_errors:
            raise ManifestError(self.diagnostics)
        return self.project


def load_manifests(
    paths: Sequence[Path],
    *,
    environ: Mapping[str, str] | None = None,
    url_override: str | None = None,
    kinds: Sequence[ManifestKinds] = (),
) -> LoadResult:
    """Load, validate and resolve manifests. `environ` (default `os.environ`) resolves secret
    references; `url_override` (`--url`, else `RECONCILER_TTS_URL` in `environ`) puts all four
    servers at one root URL; `kinds` are the manifest kinds other providers bring (see
    `reconciler.manifest.extensions`)."""
    environ = os.environ if environ is None else environ
    run = _Run(environ, url_override or environ.get(p.URL_ENV) or None, kinds)
    return run.load(paths)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _sort_key(diagnostic: Diagnostic) -> tuple[str, int, int]:
    where = diagnostic.location
    return (where.file, where.line or 0, where.column or 0)


_Validated = Validated


class _Run:
    def __init__(
        self,
        environ: Mapping[str, str],
        url_override: str | None,
        kinds: Sequence[ManifestKinds] = (),
    ) -> None:
        self.environ = environ
        self.url_override = url_override
        self.diagnostics: list[Diagnostic] = []
        self.project = p.Project()
        self.extensions = list(kinds)
        # Every kind a document may have: the TTS kinds, then the providers' own.
        self.models: dict[str, type[BaseModel]] = dict(m.MODELS)
        for extension in self.extensions:
            self.models.update(extension.models)
        self.kinds = tuple(self.models)
        self.by_kind: dict[str, list[_Validated]] = {kind: [] for kind in self.kinds}
        # IDs of applications whose documents failed validation: references to them are not
        # reported again as undeclared.
        self.invalid_applications: set[str] = set()
        # A Stack document that failed validation: what depends on it (the default owner, the
        # presence of a Stack) is not reported again.
        self.invalid_stack = False
        # file -> [count, first document, first path]: one warning per file, not per secret.
        self.inline_secrets: dict[str, list[Any]] = {}
        # What file references may read: set from the command line paths by `load`.
        self.tree = files.ManifestTree(())

    # --- helpers ------------------------------------------------------------------------------

    def error(self, location: Location, message: str, code: str) -> None:
        self.diagnostics.append(Diagnostic(location, message, "error", code))

    def warn(self, location: Location, message: str, code: str) -> None:
        self.diagnostics.append(Diagnostic(location, message, "warning", code))

    def context(self, file: str, inline_source: str = "inline") -> dict[str, Any]:
        return {"secrets": self.secret_context(file, inline_source)}

    def secret_context(self, file: str, inline_source: str = "inline") -> SecretContext:
        return SecretContext(self.environ, Path(file).parent, inline_source, self.tree)

    def read_table(self, item: _Validated, path: YamlPath, name: str) -> CsvTable | None:
        from reconciler.manifest import loader

        return self.read_csv(item, path, name, loader.load_csv)

    # --- phases -------------------------------------------------------------------------------

    def load(self, paths: Sequence[Path]) -> LoadResult:
        from reconciler.manifest import loader

        found_files, found = loader.discover(list(paths))
        self.diagnostics.extend(found)
        self.tree = files.ManifestTree.of(paths)
        yaml_files = [f for f in found_files if f.suffix.lower() in YAML_SUFFIXES]
        all_documents: list[Document] = []
        for path in yaml_files:
            documents, problems = loader.load_yaml_file(path, self.tree)
            self.diagnostics.extend(problems)
            all_documents.extend(documents)
        # The Stack may widen what file references read: known before any is resolved.
        self.allow_files_from(all_documents)
        for document in all_documents:
            self.validate_document(document)
            # The validated model replaces the plain data (halving what a big file holds).
            document.data = None
        if not yaml_files and not self.diagnostics:
            self.error(
                Location(", ".join(str(x) for x in paths) or "."),
                "no manifest files (*.yaml, *.yml) found",
                "no-manifests",
            )
        else:
            self.resolve(loader.load_csv)
        for count, document, path in self.inline_secrets.values():
            self.diagnostics.append(
                inline_secret_warning(document.locate(path), str(path[-1]), count - 1)
            )
        self.diagnostics.sort(key=_sort_key)
        return LoadResult(self.project, self.diagnostics, yaml_files)

    def allow_files_from(self, documents: Sequence[Document]) -> None:
        """Add the first Stack document's `allow_files_from` directories to the tree. Entries
        of the wrong type are left to the Stack model's validation."""
        for document in documents:
            data = document.data
            if not isinstance(data, dict) or data.get("kind") != "Stack":
                continue
            entries = data.get("allow_files_from")
            if not isinstance(entries, list):
                return
            allowed: list[Path] = []
            for index, entry in enumerate(entries):
                if not isinstance(entry, str) or not entry:
                    continue
                problem = _allowed_directory(entry, Path(document.file).parent)
                if isinstance(problem, str):
                    where = document.locate(["allow_files_from", index])
                    self.error(where, problem, "file-access")
                else:
                    allowed.append(problem)
            self.tree.allow(allowed)
            return

    def validate_document(self, document: Document) -> None:
        data = document.data
        if data is None:
            return  # an empty document (e.g. a trailing `---`)
        if not isinstance(data, dict):
            self.error(
                document.locate([]),
                "a manifest document must be a mapping with a `kind`",
                "not-a-mapping",
            )
            return
        kind = data.get("kind")
        if kind is None:
            self.error(
                document.locate([]),
                f"missing `kind` (one of {', '.join(self.kinds)})",
                "missing-kind",
            )
            return
        model = self.models.get(kind) if isinstance(kind, str) else None
        if model is None:
            match = closest(str(kind), self.kinds)
            hint = f"; did you mean `{match}`?" if match else f" (one of {', '.join(self.kinds)})"
            self.error(document.locate(["kind"]), f"unknown kind `{kind}`{hint}", "unknown-kind")
            return
        try:
            validated = model.model_validate(data, context=self.context(document.file))
        except ValidationError as error:
            self.diagnostics.extend(validation_diagnostics(error, model, document.locate))
            if kind == "Application" and isinstance(data.get("id"), str):
                self.invalid_applications.add(data["id"])
            if kind == "Stack":
                self.invalid_stack = True
            return
        inline = inline_secret_paths(validated)
        if inline:
            found = self.inline_secrets.setdefault(document.file, [0, document, inline[0]])
            found[0] += len(inline)
        self.by_kind[kind].append(_Validated(validated, document))

    def resolve(self, load_csv: CsvLoader) -> None:
        self.resolve_stack()
        applications = self.resolve_applications()
        devices = _DeviceRegistry(self)
        for item in self.by_kind["Device"]:
            self.resolve_device(item, applications, devices)
        for item in self.by_kind["Fleet"]:
            self.resolve_fleet(item, applications, devices, load_csv)
        self.project.devices = devices.devices
        self.resolve_gateways()
        for extension in self.extensions:
            items = {kind: self.by_kind[kind] for kind in extension.models}
            extension.resolve(items, self)

    # --- stack --------------------------------------------------------------------------------

    def resolve_stack(self) -> None:
        stacks = self.by_kind["Stack"]
        if not stacks:
            if self.invalid_stack:
                return
            # A tree of other providers' targets only needs no Stack.
            tts_kinds = [k for k in m.KINDS if k != "Stack"]
            other_targets = any(self.by_kind[k] for e in self.extensions for k in e.models)
            if other_targets and not any(self.by_kind[k] for k in tts_kinds):
                return
            files = sorted({v.document.file for vs in self.by_kind.values() for v in vs})
            if files or not self.diagnostics:
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
        urls: dict[p.ServerRole, str] = {}
        for role in p.SERVER_ROLES:
            url = getattr(stack, f"{role}_server_url") or stack.url
            if url:
                urls[role] = url
        target = p.Target(
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
        )
        if self.url_override:
            target = target.with_url_override(self.url_override)
        missing = [role for role in p.SERVER_ROLES if role not in target.server_urls]
        if missing:
            roles = ", ".join(f"`{role}_server_url`" for role in missing)
            self.error(
                first.document.locate([]),
                f"no server URL: set `url` (all four servers) or {roles}, or pass --url",
                "missing-url",
            )
        self.project.target = target

    def owner_for(self, item: _Validated, owner: m.Owner | None, what: str) -> p.OwnerRef | None:
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

    # --- applications -------------------------------------------------------------------------

    def resolve_applications(self) -> dict[str, _AppInfo]:
        infos: dict[str, _AppInfo] = {}
        for item in self.by_kind["Application"]:
            app = item.model
            assert isinstance(app, m.Application)
            if app.id in infos:
                first = infos[app.id].item.document.locate(["id"])
                self.error(
                    item.document.locate(["id"]),
                    f"duplicate application `{app.id}` (first defined at {first})",
                    "duplicate-id",
                )
                continue
            owner = self.owner_for(item, app.owner, f"application `{app.id}`")
            infos[app.id] = _AppInfo(item, app)
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
            self.project.applications.append(
                p.Application(
                    application_id=app.id,
                    owner=owner,
                    fields=fields,
                    source=_lazy(item.document, []),
                    link=link,
                    webhooks=webhooks,
                    profiles=tuple(app.device_profiles),
                )
            )
        return infos

    def resolve_webhooks(self, item: _Validated, app: m.Application) -> list[p.Webhook]:
        webhooks: list[p.Webhook] = []
        seen: dict[str, int] = {}
        for index, hook in enumerate(app.webhooks):
            if hook.id in seen:
                first = item.document.locate(["webhooks", seen[hook.id], "id"])
                self.error(
                    item.document.locate(["webhooks", index, "id"]),
                    f"duplicate webhook `{hook.id}` in application `{app.id}` "
                    f"(first defined at {first})",
                    "duplicate-id",
                )
                continue
            seen[hook.id] = index
            fields: dict[str, Any] = {"base_url": hook.base_url, "format": hook.format}
            for name in hook.model_fields_set - {"id", "base_url", "format"}:
                value = getattr(hook, name)
                if name in m.WEBHOOK_MESSAGE_TYPES and value is not None:
                    # The message object itself enables the type, even with an empty path.
                    fields[name] = {"path": value.path}
                else:
                    fields[name] = value
            webhooks.append(
                p.Webhook(app.id, hook.id, fields, _lazy(item.document, ["webhooks", index]))
            )
        return webhooks

    # --- devices ------------------------------------------------------------------------------

    def layers_for(
        self,
        item: _Validated,
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

    def resolve_device(
        self, item: _Validated, applications: dict[str, _AppInfo], devices: _DeviceRegistry
    ) -> None:
        device = item.model
        assert isinstance(device, m.Device)
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
        devices.add(
            p.Device(
                application_id=device.application,
                device_id=device.id,
                fields=dev.to_fields(settings, supports_join),
                source=_lazy(document, []),
                profile=device.profile,
            ),
            lambda key: document.locate([key] if key in own else ["id"]),
        )

    def resolve_fleet(
        self,
        item: _Validated,
        applications: dict[str, _AppInfo],
        devices: _DeviceRegistry,
        load_csv: CsvLoader,
    ) -> None:
        fleet = item.model
        assert isinstance(fleet, m.Fleet)
        layers = self.layers_for(item, fleet.application, fleet.profile, applications)
        base_dir = Path(item.document.file).parent
        secrets: dict[str, tuple[CsvTable, CsvRow]] = {}
        for index, name in enumerate(fleet.secrets_csv or []):
            table = self.read_csv(item, ["secrets_csv", index], name, load_csv)
            if table is not None:
                self.index_secrets(table, secrets)
        if layers is None:
            return
        base, where = layers
        where = where.replace("the device", "the CSV row")
        used: set[str] = set()
        for index, name in enumerate(fleet.csv):
            table = self.read_csv(item, ["csv", index], name, load_csv)
            if table is None:
                continue
            self.check_fleet_header(table)
            context = SecretContext(self.environ, base_dir, f"csv:{table.file}", self.tree)
            for row in table.rows:
                self.resolve_row(fleet, table, row, context, base, where, secrets, used, devices)
        for device_id, (table, row) in secrets.items():
            if device_id not in used:
                self.warn(
                    table.locate(row, "id"),
                    f"secrets for device `{device_id}`, which is not in the fleet's CSV files",
                    "unused-secrets",
                )

    def read_csv(
        self,
        item: _Validated,
        path: YamlPath,
        name: str,
        load_csv: CsvLoader,
    ) -> CsvTable | None:
        base_dir = Path(item.document.file).parent
        try:
            self.tree.check(name, base_dir, files.CSV_FILE)
        except files.FileRefError as error:
            code = "no-file" if isinstance(error, files.FileMissing) else "file-access"
            self.error(item.document.locate(path), str(error), code)
            return None
        table, problems = load_csv(base_dir / name, self.tree)
        self.diagnostics.extend(problems)
        return table

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

    def index_secrets(self, table: CsvTable, secrets: dict[str, tuple[CsvTable, CsvRow]]) -> None:
        for index, column in enumerate(table.header, start=1):
            if column and column not in dev.CSV_SECRETS_COLUMNS:
                # Not quoted: without a header line, the "header" is a device's keys.
                self.error(
                    Location(table.file, table.header_line, index),
                    f"column {index} of the header is not allowed in a secrets CSV (allowed: "
                    "id, dev_eui, " + ", ".join(sorted(dev.SECRET_KEYS)) + "; is the header "
                    "line missing?)",
                    "csv-column",
                )
        for row in table.rows:
            device_id, problem = dev.csv_row_device_id(row.values)
            if device_id is None:
                if problem is None:
                    self.error(table.locate(row), "row has neither `id` nor `dev_eui`", "csv-row")
                else:
                    self.error(table.locate(row, problem[0]), problem[1], "csv-row")
                continue
            if device_id in secrets:
                first_table, first_row = secrets[device_id]
                self.error(
                    table.locate(row, "id"),
                    f"duplicate secrets for device `{device_id}` "
                    f"(first at {first_table.locate(first_row)})",
                    "duplicate-id",
                )
                continue
            secrets[device_id] = (table, row)

    def resolve_row(
        self,
        fleet: m.Fleet,
        table: CsvTable,
        row: CsvRow,
        context: SecretContext,
        base: dev.Settings,
        where: str,
        secrets: dict[str, tuple[CsvTable, CsvRow]],
        used: set[str],
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
        joined = secrets.get(device_id)
        if joined is not None:
            used.add(device_id)
            secret_table, secret_row = joined
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
            p.Device(
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
        for item in self.by_kind["Gateway"]:
            gateway = item.model
            assert isinstance(gateway, m.Gateway)
            if gateway.id in ids:
                first = ids[gateway.id].locate(["id"])
                self.error(
                    item.document.locate(["id"]),
                    f"duplicate gateway `{gateway.id}` (first defined at {first})",
                    "duplicate-id",
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
            if "location" in gateway.model_fields_set:
                # TTS keeps a gateway's location on its (first) antenna.
                location = gateway.location
                fields["antennas"] = (
                    [{"location": location.model_dump(exclude_unset=True)}] if location else None
                )
            self.project.gateways.append(
                p.Gateway(gateway.id, owner, fields, _lazy(item.document, []))
            )


@dataclass
class _AppInfo:
    item: _Validated
    app: m.Application


class _DeviceRegistry:
    """Collects devices and reports duplicate IDs and (JoinEUI, DevEUI) pairs."""

    ZERO_EUI = "0000000000000000"

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.devices: list[p.Device] = []
        self.ids: dict[tuple[str, str], p.Device] = {}
        self.euis: dict[tuple[str, str], p.Device] = {}

    def add(self, device: p.Device, locate: Callable[[str | None], Location]) -> None:
        key = (device.application_id, device.device_id)
        first = self.ids.get(key)
        if first is not None:
            self.run.error(
                locate("id"),
                f"duplicate device `{device.device_id}` in application `{device.application_id}`"
                f" (first defined at {first.location})",
                "duplicate-id",
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


def _allowed_directory(entry: str, base_dir: Path) -> Path | str:
    """The real directory an `allow_files_from` entry names, or why it cannot be allowed."""
    shown = files.shown_name(entry)
    try:
        real = Path(os.path.realpath(base_dir / entry, strict=True))
    except FileNotFoundError:
        return f"allowed directory `{shown}` does not exist"
    except (OSError, ValueError, RuntimeError) as error:
        return f"allowed directory `{shown}` cannot be read: {files.os_error_reason(error)}"
    if not real.is_dir():
        return f"allowed directory `{shown}` is not a directory"
    if real == Path(real.anchor) or files.is_pseudo_filesystem(str(real)):
        return f"allowed directory `{shown}` is a system directory: it may not be allowed"
    return real


def _lazy(document: Document, path: YamlPath) -> Callable[[], Location]:
    return lambda: document.locate(path)


def _owner_ref(owner: m.Owner | None) -> p.OwnerRef | None:
    return None if owner is None else p.OwnerRef(owner.kind, owner.id)


def _settings(model: BaseModel | None) -> dev.Settings:
    """A validated device-settings model as flat settings (only the fields it sets)."""
    if model is None:
        return {}
    return model.model_dump(exclude_unset=True, round_trip=False)


def _model_fields(model: BaseModel, names: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(model, name) for name in names if name in model.model_fields_set}


def _formatter_fields(formatters: m.Formatters | None, prefix: str) -> dict[str, Any]:
    if formatters is None:
        return {prefix: None}
    fields: dict[str, Any] = {}
    for name in formatters.model_fields_set:
        fields.update(dev.group_field(prefix, name, getattr(formatters, name)))
    return fields
