"""A hub's devices and modules -> a manifest tree in the IoT Hub manifest language.

Files: `hub.yaml` (the IotHub target, with `device_defaults` holding the status, the IoT Edge
capability and the authentication type most devices share), `devices.csv` (an IotHubFleet of
the devices its columns can express) and `devices.yaml` (the fleet document and, as
IotHubDevice documents, the devices the CSV cannot hold: those with modules, lists or values a
CSV cell would read back differently). With secrets asked for, symmetric keys go to
git-ignored files: the fleet's in one `devices.secrets.csv` (its `secrets_csv`), those of the
YAML devices and of modules in `secrets/` files their documents reference; without, they
stay on the hub and are not declared (the plan then leaves them alone; a new hub generates
its own). X.509 thumbprints are fingerprints of public certificates, not secrets: they are
written inline, as the manifest language takes them. What the language cannot hold is
reported.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from reconciler.importer.output import OutputTree, csv_text, yaml_documents
from reconciler.importer.report import REPORT_FILE, ImportReport
from reconciler.providers.iothub import rules
from reconciler.providers.iothub.differ import same
from reconciler.providers.iothub.importing.live import DeviceRecord, HubSnapshot, TwinRecord
from reconciler.providers.iothub.manifest import CSV_PLAIN_COLUMNS, csv_cell_value
from reconciler.providers.iothub.models import DEFAULT_CONNECTION_ENV, DEFAULT_OWNERSHIP_TAG

HEADER = "# Written by `reconciler import`; edit freely.\n"
SECRETS_DIR = "secrets/"
FLEET_CSV = "devices.csv"
FLEET_SECRETS_CSV = "devices.secrets.csv"
KEY_NAMES = ("primaryKey", "secondaryKey")
THUMBPRINT_NAMES = ("primaryThumbprint", "secondaryThumbprint")
# A fleet CSV has a column per twin key path any of its devices uses: devices with keys of
# their own (a serial number as a tag key) would make it quadratic and past the loader's cell
# cap. The most used paths get columns, within these bounds; the other devices go to YAML.
MAX_FLEET_COLUMNS = 100
MAX_FLEET_CELLS = 1_000_000
# Authentication types whose identity carries nothing per device (so a default can hold it).
_PLAIN_AUTH = ("sas", "certificateAuthority")


@dataclass(frozen=True)
class BuildOptions:
    name: str  # the IotHub document's name: the ownership tag's value
    ownership_tag: str = DEFAULT_OWNERSHIP_TAG
    with_secrets: bool = False
    sku: str | None = None
    units: int | None = None


def build_tree(snapshot: HubSnapshot, options: BuildOptions) -> OutputTree:
    return _Builder(snapshot, options).build()


def secret_file(record: TwinRecord, key: str) -> str:
    """The file holding one key: ids percent-encoded (`%` included, and `/` between device and
    module, which no id contains), so every identity has its own file name."""
    name = quote(record.device_id, safe="")
    if record.module_id is not None:
        name += "%2F" + quote(record.module_id, safe="")
    return f"{SECRETS_DIR}{name}.{key}"


@dataclass
class _Device:
    record: DeviceRecord
    doc: dict[str, Any]  # IotHubDevice fields (without kind)
    flat: dict[str, Any] | None = None  # CSV column -> value, when the CSV can hold it


@dataclass
class _Defaults:
    status: str = "enabled"
    auth_type: str | None = "sas"
    values: dict[str, Any] = field(default_factory=dict)


class _Builder:
    def __init__(self, snapshot: HubSnapshot, options: BuildOptions) -> None:
        self.snapshot = snapshot
        self.options = options
        self.report: ImportReport = snapshot.report
        self.tree = OutputTree()
        for pattern in ("*.secrets.csv", SECRETS_DIR):
            self.tree.ignore(pattern)
        self.key_files: dict[str, str] = {}  # secrets/ path -> key, written unless in the CSV
        self.edge_of_scope: dict[str, str] = {}
        for device in snapshot.devices:
            scope = device.twin.get("deviceScope")
            if _edge(device.twin) and isinstance(scope, str) and scope:
                self.edge_of_scope[scope] = device.device_id

    def build(self) -> OutputTree:
        defaults = self._defaults()
        hub: dict[str, Any] = {
            "kind": "IotHub",
            "name": self.options.name,
            "host_name": self.snapshot.host_name,
            "connection_string": {"env": DEFAULT_CONNECTION_ENV},
        }
        if self.options.ownership_tag != DEFAULT_OWNERSHIP_TAG:
            hub["ownership_tag"] = self.options.ownership_tag
        if self.options.sku:
            hub["sku"] = self.options.sku
            hub["units"] = self.options.units or 1
        hub["device_defaults"] = defaults.values
        self.tree.add("hub.yaml", yaml_documents([hub], HEADER))
        devices = [self._device(record, defaults) for record in self.snapshot.devices]
        fleet = _bounded_fleet(devices)
        documents: list[dict[str, Any]] = []
        if fleet:
            secret_rows = self._fleet_secrets(fleet)
            self.tree.add(FLEET_CSV, self._fleet_csv(fleet))
            fleet_doc: dict[str, Any] = {"kind": "IotHubFleet", "csv": FLEET_CSV}
            if secret_rows:
                self.tree.add(FLEET_SECRETS_CSV, csv_text(["id", *KEY_NAMES], secret_rows))
                fleet_doc["secrets_csv"] = FLEET_SECRETS_CSV
            documents.append(fleet_doc)
        for path, key in self.key_files.items():
            self.tree.add(path, key + "\n")
        for device in devices:
            if device.flat is None:
                documents.append({"kind": "IotHubDevice", **device.doc})
        if documents:
            self.tree.add("devices.yaml", yaml_documents(documents, HEADER))
        self.report.count("device", len(devices))
        self.report.count("module", sum(len(d.record.modules) for d in devices))
        self.tree.add(REPORT_FILE, self.report.text())
        return self.tree

    # -- what most devices share --------------------------------------------------------------

    def _defaults(self) -> _Defaults:
        devices = self.snapshot.devices
        statuses = Counter(str(d.twin.get("status") or "enabled") for d in devices)
        status = statuses.most_common(1)[0][0] if statuses else "enabled"
        auths = Counter(
            str(d.twin.get("authenticationType"))
            for d in devices
            if d.twin.get("authenticationType") in _PLAIN_AUTH
            and not (self.options.with_secrets and d.twin.get("authenticationType") == "sas")
        )
        auth = auths.most_common(1)[0][0] if auths else None
        if any(not _declarable_authentication(d.twin) for d in devices):
            auth = None  # a device that cannot declare its own would inherit the default
        values: dict[str, Any] = {"status": status, "capabilities": {"iotEdge": False}}
        if auth is not None:
            values["authentication"] = {"type": auth}
        return _Defaults(status, auth, values)

    # -- one device ---------------------------------------------------------------------------

    def _device(self, record: DeviceRecord, defaults: _Defaults) -> _Device:
        twin = record.twin
        doc: dict[str, Any] = {"id": record.device_id}
        flat: dict[str, Any] = {"id": record.device_id}
        status = twin.get("status") or "enabled"
        if status != defaults.status:
            doc["status"] = flat["status"] = status
        reason = twin.get("statusReason")
        if isinstance(reason, str) and reason:
            doc["statusReason"] = flat["statusReason"] = reason
        auth = self._authentication(record)
        if auth is not None and auth != {"type": defaults.auth_type}:
            doc["authentication"] = auth
            flat.update(_flat_authentication(auth))
        if _edge(twin):
            doc["capabilities"] = {"iotEdge": True}
            flat["capabilities.iotEdge"] = True
        parent = self._parent(record)
        if parent is not None:
            doc["parent"] = flat["parent"] = parent
        tags = twin.get("tags")
        if isinstance(tags, dict) and isinstance(tags.get("lorawan"), dict):
            self.report.add(
                "The Things Stack integration's tags.lorawan (a LoRaWAN device mirrored into "
                "the hub): imported as a hub device; in a tree whose IotHub mirrors its TTS "
                "application (lorawan_mirror) remove it here, or it is declared twice",
                record.label,
            )
        csv_ok = not record.modules and _csv_text_ok(reason)
        for name, document in self._twin_documents(record):
            if name == "tags":
                doc["tags"] = document
            else:
                doc["properties"] = {"desired": document}
            cells = _flatten(document, name)
            if cells is None:
                csv_ok = False
            else:
                flat.update(cells)
        if record.modules:
            doc["modules"] = [self._module(module) for module in record.modules]
        return _Device(record, doc, flat if csv_ok else None)

    def _module(self, record: TwinRecord) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": record.module_id}
        managed_by = (record.identity or {}).get("managedBy")
        if isinstance(managed_by, str) and managed_by:
            doc["managedBy"] = managed_by
        auth = self._authentication(record)
        if auth is not None:
            doc["authentication"] = auth
        for name, document in self._twin_documents(record):
            if name == "tags":
                doc["tags"] = document
            else:
                doc["properties"] = {"desired": document}
        return doc

    def _authentication(self, record: TwinRecord) -> dict[str, Any] | None:
        kind = record.twin.get("authenticationType")
        if kind not in rules.AUTH_TYPES:
            self.report.add(
                f"authentication type {str(kind)[:40]!r}: not in the manifest language "
                "(left undeclared: the hub keeps it, a new hub creates sas)",
                record.label,
            )
            return None
        auth: dict[str, Any] = {"type": kind}
        if kind == "sas" and not self.options.with_secrets:
            self.report.add(
                "symmetric keys (they stay on the hub, undeclared; a new hub generates its "
                "own; --with-secrets writes them to git-ignored devices.secrets.csv and "
                "secrets/ files)",
                record.label,
            )
        elif kind == "sas":
            keys = _keys(record.identity)
            if keys is None:
                self.report.add(
                    "symmetric keys: not readable (left undeclared: the hub keeps them)",
                    record.label,
                )
            else:
                auth["symmetricKey"] = {}
                for name, value in zip(KEY_NAMES, keys, strict=True):
                    path = secret_file(record, name)
                    self.key_files[path] = value
                    auth["symmetricKey"][name] = {"file": path}
        elif kind == "selfSigned":
            thumbs = record.twin.get("x509Thumbprint")
            thumbs = thumbs if isinstance(thumbs, dict) else {}
            written = {
                name: str(thumbs[name]).upper()
                for name in THUMBPRINT_NAMES
                if isinstance(thumbs.get(name), str) and thumbs[name]
            }
            if "primaryThumbprint" not in written:
                self.report.add(
                    "selfSigned authentication without a primary thumbprint: not declared",
                    record.label,
                )
                return None
            auth["x509Thumbprint"] = written
        return auth

    def _parent(self, record: DeviceRecord) -> str | None:
        twin = record.twin
        if _edge(twin):
            parents = twin.get("parentScopes")
            if isinstance(parents, list) and any(isinstance(p, str) and p for p in parents):
                self.report.add(
                    "IoT Edge device under a parent IoT Edge device (nested IoT Edge): the "
                    "manifest language has no parent for an edge device; imported without it",
                    record.label,
                )
            return None
        scope = twin.get("deviceScope")
        if not isinstance(scope, str) or not scope:
            return None
        parent = self.edge_of_scope.get(scope)
        if parent is None:
            self.report.add(
                "device scope of no IoT Edge device on the hub: the parent is not declared",
                record.label,
            )
        return parent

    def _twin_documents(self, record: TwinRecord) -> Iterator[tuple[str, dict[str, Any]]]:
        """(`tags` | `properties.desired`, document) of the twin, without the ownership tag;
        a document the manifest rules refuse is reported, not declared."""
        tags = record.twin.get("tags")
        tags = dict(tags) if isinstance(tags, dict) else {}
        marker = tags.pop(self.options.ownership_tag, None)
        if marker not in (None, self.options.name):
            self.report.add(
                f"owned by another stack (twin tag {self.options.ownership_tag}): adopted by "
                f"`{self.options.name}` on the first apply (the plan warns)",
                record.label,
            )
        desired = record.twin.get("desired")
        for name, document in (("tags", tags), ("properties.desired", desired)):
            if not isinstance(document, dict) or not document:
                continue
            problems = rules.twin_problems(document, name)
            if problems:
                path, problem = problems[0]
                where = ".".join([name, *path])
                self.report.add(
                    f"{name} the manifest rules refuse ({where}: {problem}): not declared",
                    record.label,
                )
                continue
            yield name, document

    # -- the fleet CSV ------------------------------------------------------------------------

    def _fleet_secrets(self, fleet: list[_Device]) -> list[list[str]]:
        """The rows of the fleet's secrets CSV: the keys of its sas devices move there from
        their `secrets/` files (and their key columns leave the fleet CSV)."""
        rows: list[list[str]] = []
        if not self.options.with_secrets:
            return rows
        for device in fleet:
            assert device.flat is not None
            references = [device.flat.pop(name, None) for name in KEY_NAMES]
            if device.flat.get("authentication.type") == "sas" or any(references):
                keys = [
                    self.key_files.pop(secret_file(device.record, name), "") for name in KEY_NAMES
                ]
                rows.append([device.record.device_id, *keys])
        return rows

    def _fleet_csv(self, fleet: list[_Device]) -> str:
        used: set[str] = set()
        for device in fleet:
            assert device.flat is not None
            used.update(device.flat)
        plain = [c for c in CSV_PLAIN_COLUMNS if c in used]
        twin = sorted(c for c in used if c not in CSV_PLAIN_COLUMNS)
        header = plain + twin
        rows = []
        for device in fleet:
            assert device.flat is not None
            rows.append([_cell(device.flat.get(column)) for column in header])
        return csv_text(header, rows)


def _bounded_fleet(devices: list[_Device]) -> list[_Device]:
    """The devices for the fleet CSV: those whose columns are among the most used ones that fit
    the bounds (the others lose their `flat` form and are written as YAML)."""
    candidates = [d for d in devices if d.flat is not None]
    uses: Counter[str] = Counter()
    for device in candidates:
        assert device.flat is not None
        uses.update(c for c in device.flat if c not in CSV_PLAIN_COLUMNS)
    ranked = sorted(uses, key=lambda column: (-uses[column], column))
    room = MAX_FLEET_COLUMNS - len(CSV_PLAIN_COLUMNS)
    if candidates:
        room = min(room, MAX_FLEET_CELLS // len(candidates) - len(CSV_PLAIN_COLUMNS))
    columns = set(ranked[: max(0, room)])
    fleet = []
    for device in candidates:
        assert device.flat is not None
        if all(c in columns or c in CSV_PLAIN_COLUMNS for c in device.flat):
            fleet.append(device)
        else:
            device.flat = None
    return fleet


def _declarable_authentication(twin: Mapping[str, Any]) -> bool:
    kind = twin.get("authenticationType")
    if kind == "selfSigned":
        thumbs = twin.get("x509Thumbprint")
        return isinstance(thumbs, dict) and bool(thumbs.get("primaryThumbprint"))
    return kind in rules.AUTH_TYPES


def _edge(twin: Mapping[str, Any]) -> bool:
    capabilities = twin.get("capabilities")
    return isinstance(capabilities, dict) and capabilities.get("iotEdge") is True


def _keys(identity: Mapping[str, Any] | None) -> tuple[str, str] | None:
    auth = identity.get("authentication") if identity else None
    keys = auth.get("symmetricKey") if isinstance(auth, dict) else None
    if not isinstance(keys, dict):
        return None
    values = tuple(keys.get(name) for name in KEY_NAMES)
    if not all(isinstance(v, str) and v and rules.key_problem(v) is None for v in values):
        return None
    return str(values[0]), str(values[1])


def _flat_authentication(auth: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {"authentication.type": auth["type"]}
    for name, reference in (auth.get("symmetricKey") or {}).items():
        flat[name] = f"file:{reference['file']}"
    flat.update(auth.get("x509Thumbprint") or {})
    return flat


def _csv_text_ok(text: Any) -> bool:
    """A text cell reads back as the same text (cells are stripped; empty is absent; one that
    looks like JSON is read as a number, `true`, `false` or `null`)."""
    if text is None:
        return True
    return (
        isinstance(text, str)
        and bool(text)
        and text == text.strip()
        and csv_cell_value(text) == text
    )


def _flatten(document: Mapping[str, Any], prefix: str) -> dict[str, Any] | None:
    """`tags.a.b` columns of a twin document, or None when a CSV cannot hold it (lists,
    empty maps, text a cell would read back differently)."""
    cells: dict[str, Any] = {}
    for key, value in document.items():
        column = f"{prefix}.{key}"
        if isinstance(value, dict):
            if not value:
                return None
            nested = _flatten(value, column)
            if nested is None:
                return None
            cells.update(nested)
        elif isinstance(value, bool):
            cells[column] = value
        elif isinstance(value, int | float):
            if not same(csv_cell_value(json.dumps(value)), value):
                return None
            cells[column] = value
        elif isinstance(value, str):
            if not value or not _csv_text_ok(value):
                return None
            cells[column] = value
        else:
            return None
    return cells


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return str(value)
