"""Plan TTS changes: one resource's desired fields + live records -> action and per-server steps.

Pure code: no network. The generic planner (reconciler.planning) calls it per resource; the
provider reads the live state and executes the steps.

Diff semantics: the manifests are authoritative for the fields they set; other fields are never
compared or written; `None` clears a field. Values are compared in normal form (see
reconciler.providers.tts.schema). `attributes` maps are merged key by key (keys the manifests do
not name are left alone, so Console-added attributes survive); other maps are compared whole.
A gateway's `antennas` hold only the manifest's location, which goes into the first antenna read
from the server (see antennas_with_location).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache, partial
from typing import Any

from reconciler.plan.model import FieldChange, ResourceChange, Step
from reconciler.provider import PlanOptions
from reconciler.providers.tts import access, devices, packages, schema
from reconciler.providers.tts.kinds import KIND_ORDER, PROVIDER, ResourceKind, eui_pair, gateway_eui
from reconciler.providers.tts.servers import Server
from reconciler.resources import (
    DesiredResource,
    LiveRecord,
    LiveResource,
    ResourceKey,
    Secret,
    is_sensitive,
    reveal,
)

MERGED_MAPS = frozenset({"attributes"})
# The gateway field that holds the manifest's `location`: [{"location": ...}], or None to clear it.
ANTENNAS = "antennas"
# A gateway's secrets (LNS and CUPS keys): read only with RIGHT_GATEWAY_READ_SECRETS.
GATEWAY_SECRET_PATHS = frozenset({"lbs_lns_secret.value", "target_cups_key.value"})
# A device's identifiers besides its ID: shown when it is registered (never secret).
IDENTIFIER_PATHS = frozenset({"ids.dev_eui", "ids.join_eui"})

MESSAGE_OF_KIND: dict[str, str] = {
    "application": schema.APPLICATION,
    "link": schema.APPLICATION_LINK,
    "webhook": schema.WEBHOOK,
    "pubsub": schema.PUBSUB,
    "package_default": schema.PACKAGE_DEFAULT,
    "package_association": schema.PACKAGE_ASSOCIATION,
    "device": schema.END_DEVICE,
    "gateway": schema.GATEWAY,
    "organization": schema.ORGANIZATION,
}
# The registry that holds each non-device kind.
SERVER_OF_KIND: dict[str, Server] = {
    "organization": "is",
    "application": "is",
    "link": "as",
    "webhook": "as",
    "pubsub": "as",
    "package_default": "as",
    "package_association": "as",
    "gateway": "is",
    "api_key": "is",
    "collaborator": "is",
}
# Kinds that carry attributes on the Identity Server, hence the ownership marker; links,
# webhooks, pub/subs, package associations, API keys and collaborators are owned through
# their entity.
MARKED_KINDS = frozenset({"organization", "application", "device", "gateway"})
# Identity Server entities: created under an owner, updated with a field mask.
ENTITY_KINDS = frozenset({"organization", "application", "gateway"})


def record(data: dict[str, Any]) -> LiveRecord:
    """An Identity Server record as the server returned it; its version is its `updated_at`,
    which traffic never moves there (`last_seen_at` and `activated_at` leave it alone)."""
    value = data.get("updated_at")
    return LiveRecord(data, str(value) if value else None)


# What a server stamps on every record it returns: never part of what a plan manages.
_SERVER_STAMPS = frozenset({"ids", "created_at", "updated_at"})


def managed_record(data: dict[str, Any], digest_key: bytes) -> LiveRecord:
    """A Network, Application or Join Server record (read with the managed fields' mask); its
    version is a keyed digest of those fields as read. Not `updated_at`: those servers store a
    device on every join and uplink (session, MAC state, nonces), so on a live network their
    `updated_at` moves all the time while nothing a plan manages changed. Keyed, as the read
    may hold session or root keys. Computed on first read of the version (see LiveRecord)."""
    return LiveRecord(data, version_of=_digester(digest_key))


@lru_cache(maxsize=4)
def _digester(digest_key: bytes) -> partial[str]:
    """One per run's key, shared by its records (not one more object per read)."""
    return partial(_managed_digest, digest_key)


def _managed_digest(digest_key: bytes, data: dict[str, Any]) -> str:
    managed = {k: v for k, v in data.items() if k not in _SERVER_STAMPS}
    text = json.dumps(managed, sort_keys=True, separators=(",", ":"), default=str)
    return "fields:" + hmac.new(digest_key, text.encode(), hashlib.sha256).hexdigest()[:32]


# Normal forms of scalar values by (message, path, value): a fleet's devices share most values
# (frequency plan, versions, flags), so each is normalised once per run, not once per device.
# Bounded, filled first come first served (unique values such as EUIs gain nothing from it).
_NORMAL_CACHE: dict[tuple[str, str, str, Any], Any] = {}
_NORMAL_CACHE_SIZE = 4096
_SCALARS = (str, int, float, bool, type(None))


def _cached(side: str, message: str, path: str, value: Any, compute: Any) -> Any:
    if type(value) not in _SCALARS:
        return compute()
    key = (side, message, path, value)
    found = _NORMAL_CACHE.get(key, _NORMAL_CACHE)
    if found is _NORMAL_CACHE:
        found = compute()
        if len(_NORMAL_CACHE) < _NORMAL_CACHE_SIZE:
            _NORMAL_CACHE[key] = found
    return found


def _raw(data: Mapping[str, Any], path: str) -> Any:
    """schema.get_path, without splitting a path that has no dot (most of them), and splitting
    a dotted one once per run."""
    if "." not in path:
        return data.get(path, schema.MISSING)
    parts = _PATH_PARTS.get(path)
    if parts is None:
        parts = _PATH_PARTS[path] = tuple(path.split("."))
    current: Any = data
    for part in parts:
        if type(current) is not dict:
            return schema.get_path(data, path)  # another Mapping: the general case
        current = current.get(part, schema.MISSING)
        if current is schema.MISSING:
            return current
    return current


# Dotted paths split into their parts: managed paths are a fixed, small set.
_PATH_PARTS: dict[str, tuple[str, ...]] = {}


def _live_normal(message: str, data: Mapping[str, Any], path: str, raw: Any = None) -> Any:
    """schema.live_value, with scalar values normalised once per run."""
    if raw is None:
        raw = _raw(data, path)
    raw = None if raw is schema.MISSING else raw
    return _cached(
        "live", message, path, raw, lambda: schema.normalize(schema.field_type(message, path), raw)
    )


def _desired_normal(message: str, path: str, value: Any) -> Any:
    """Normal form of a desired value (None -> the type's zero value, i.e. cleared)."""
    return _cached(
        "desired", message, path, value, lambda: _desired_normal_uncached(message, path, value)
    )


def _desired_normal_uncached(message: str, path: str, value: Any) -> Any:
    ftype = schema.field_type(message, path)
    if value is None:
        return schema.zero_value(ftype)
    if ftype.map_value is not None and isinstance(value, dict):
        return {k: schema.normalize(ftype.map_value, reveal(v)) for k, v in value.items()}
    return schema.normalize(ftype, reveal(value))


def _display(value: Any) -> Any:
    return None if value in ("", [], {}, None) else value


def compare_field(
    message: str, path: str, desired: Any, live_data: Mapping[str, Any]
) -> FieldChange | None:
    """The change needed to bring one live field to the desired value, or None if equal."""
    if message == schema.GATEWAY and path == ANTENNAS:
        desired = antennas_with_location(desired, live_data.get(ANTENNAS))
    raw = _raw(live_data, path)
    if _same_as_read(message, path, desired, raw):
        return None
    if path not in MERGED_MAPS and raw is not schema.MISSING and raw is not None:
        want = _desired_normal(message, path, desired)
        # The server answers in the normal form (and normalising is idempotent): an equal raw
        # value needs no normalising, which is most fields of most devices.
        if raw == want and type(raw) is type(want):
            return None
    live = _live_normal(message, live_data, path, raw)
    sensitive = is_sensitive(desired) or packages.live_data_holds_secret(message, path, raw)
    if path in MERGED_MAPS and isinstance(desired, dict):
        live_map = live or {}
        changed = {
            k: v
            for k, v in desired.items()
            if (None if v is None else _desired_normal_scalar(v)) != live_map.get(k)
        }
        if not changed:
            return None
        old = {k: live_map.get(k) for k in changed}
        new = {k: (None if v is None else _desired_normal_scalar(v)) for k, v in changed.items()}
        return FieldChange(path, old, new, sensitive=sensitive)
    want = _desired_normal(message, path, desired)
    if want == live:
        return None
    if sensitive:
        return FieldChange(path, sensitive=True)
    return FieldChange(path, _display(live), _display(want))


# Plain JSON scalars: two equal values of one of these types have the same normal form.
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def _same_as_read(message: str, path: str, desired: Any, raw: Any) -> bool:
    """Whether the desired value certainly has the normal form of the live value as read,
    decided without normalising either: equal plain values of one type (normalising is a
    function of the value and its field type), a secret equal to the text read, a merged
    string map whose every desired key reads the same. False means "compare in normal form",
    not "different"."""
    kind = type(desired)
    if kind is type(raw) and kind in _PLAIN_TYPES:
        return bool(raw == desired)
    if kind is Secret:
        return type(raw) is str and raw == desired.reveal()
    if kind is dict and type(raw) is dict and path in MERGED_MAPS and _string_map(message, path):
        for key, value in desired.items():
            if value is None:
                if key in raw:
                    return False
            elif type(value) is not str or type(raw.get(key)) is not str or raw[key] != value:
                return False
        return True
    return False


@cache
def _string_map(message: str, path: str) -> bool:
    """A map of plain strings (normalising its values changes nothing)."""
    value = schema.field_type(message, path).map_value
    return value is not None and value.kind == "string" and not value.repeated


def _desired_normal_scalar(value: Any) -> Any:
    return value.reveal() if isinstance(value, Secret) else value


def merged_map(desired: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    """Live map with the desired keys applied (None removes a key)."""
    merged = dict(live)
    for k, v in desired.items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    return merged


def antennas_with_location(desired: Any, live: Any) -> list[dict[str, Any]]:
    """The live antenna list with the first antenna's location replaced by the desired one.

    The field mask path is the whole `antennas` list: writing only the manifest's location
    would wipe the gain, placement and further antennas set in the Console. A gateway without
    an antenna gets one that holds just the location.
    """
    location = desired[0].get("location") if desired else None
    merged = [dict(antenna) for antenna in live or []]
    if not merged:
        return [{"location": location}] if location is not None else []
    if location is None:
        merged[0].pop("location", None)
    else:
        merged[0]["location"] = location
    return merged


class TTSDiffer:
    """The per-resource diff of The Things Stack (the pure half of the provider contract)."""

    name = PROVIDER
    kind_order: tuple[ResourceKind, ...] = KIND_ORDER
    replace_consequence = "devices lose their session"
    rotatable_kinds: tuple[ResourceKind, ...] = ("api_key",)

    def marker(self, live: LiveResource, ownership_key: str) -> str | None:
        # A soft-deleted resource keeps its attributes, so its marker too.
        record = live.records.get("is") or live.deleted.get("is")
        if live.key.kind not in MARKED_KINDS or record is None:
            return None
        value = (record.data.get("attributes") or {}).get(ownership_key)
        return str(value) if value is not None else ""

    def plan_resource(
        self,
        resource: DesiredResource,
        live: LiveResource | None,
        change: ResourceChange,
        options: PlanOptions,
    ) -> None:
        match resource.key.kind:
            case "device":
                self._plan_device(resource, live, change, options)
            case "api_key":
                rotate_now = resource.key.address in options.rotate
                access.plan_api_key(resource, live, change, rotate_now=rotate_now)
            case "collaborator":
                access.plan_collaborator(resource, live, change)
            case _:
                self._plan_single(resource, live, change, options)
        if change.steps:  # without steps, nothing is claimed or given up
            change.claims = self._claims(resource, change)
            change.releases = self._given_up(resource, change)

    @staticmethod
    def _claims(resource: DesiredResource, change: ResourceChange) -> list[str]:
        """The unique keys a registration on the Identity Server takes: a device's EUI pair, a
        gateway's EUI (a restored gateway has its EUI already), and the new EUI of a gateway
        whose EUI changes (an update)."""
        registers = any(s.endpoint == "is" and s.operation == "create" for s in change.steps)
        new_eui = any(
            s.endpoint == "is" and s.operation == "update" and "ids.eui" in s.paths
            for s in change.steps
        )
        if not registers and not (new_eui and resource.key.kind == "gateway"):
            return []
        fields = resource.fields
        if resource.key.kind == "device":
            unique = eui_pair(
                {"dev_eui": fields.get("ids.dev_eui"), "join_eui": fields.get("ids.join_eui")}
            )
        elif resource.key.kind == "gateway":
            unique = gateway_eui(fields.get("ids.eui"))
        else:
            unique = None
        return [unique] if unique else []

    @staticmethod
    def _given_up(resource: DesiredResource, change: ResourceChange) -> list[str]:
        """The unique key an update frees: a gateway's old EUI when its EUI changes (another
        gateway may take it once this update is done)."""
        if resource.key.kind != "gateway" or change.action != "update":
            return []
        for step in change.steps:
            for field_change in step.changes:
                if step.endpoint == "is" and field_change.path == "ids.eui":
                    old = gateway_eui(field_change.old)
                    return [old] if old else []
        return []

    def _plan_single(
        self,
        resource: DesiredResource,
        live: LiveResource | None,
        change: ResourceChange,
        options: PlanOptions,
    ) -> None:
        kind = resource.key.kind
        server = SERVER_OF_KIND[kind]
        message = MESSAGE_OF_KIND[kind]
        record = live.records.get(server) if live else None
        deleted = live.deleted.get(server) if live else None
        if record is None and deleted is not None and not (live and live.unrestorable):
            # The ID stays reserved after a soft delete: a create would fail (`id_taken`).
            change.action = "create"
            change.restore = True
            when = deleted.data.get("deleted_at") or "an unknown time"
            change.reason = f"soft-deleted at {when}, which keeps its ID reserved: restored"
            change.steps.append(_step(server, "restore", live_version=deleted.version))
            record = deleted
        elif record is None:
            change.action = "create"
            change.reason = (
                "not found"
                if deleted is None
                else "soft-deleted, which keeps its ID reserved, and not restorable"
            )
            change.steps.append(
                _step(
                    server,
                    "create" if kind in ENTITY_KINDS else "set",
                    paths=sorted(resource.fields),
                    changes=[
                        _creation_change(path, value)
                        for path, value in sorted(resource.fields.items())
                    ],
                    registers=True,
                )
            )
            return
        secrets_readable = live.secrets_readable if live else True
        field_changes: list[FieldChange] = []
        unverifiable = False
        for path, value in sorted(resource.fields.items()):
            if path in GATEWAY_SECRET_PATHS and kind == "gateway" and not secrets_readable:
                unverifiable = True
                if options.rotate_keys:
                    field_changes.append(FieldChange(path, sensitive=True, unverifiable=True))
                continue
            found = compare_field(message, path, value, record.data)
            if found is not None:
                field_changes.append(found)
        if unverifiable:
            change.warnings.append(
                "gateway secrets cannot be verified: the API key lacks "
                "RIGHT_GATEWAY_READ_SECRETS"
                + (
                    "; rewriting them (--rotate-keys)"
                    if options.rotate_keys
                    else "; they are set on create only (use --rotate-keys to rewrite them)"
                )
            )
        if field_changes:
            if change.restore:
                change.reason += ", then updated where the manifests differ"
            else:
                change.action = "update"
                change.reason = "fields differ"
            change.steps.append(
                _step(
                    server,
                    "update" if kind in ENTITY_KINDS else "set",
                    paths=[c.path for c in field_changes],
                    changes=field_changes,
                    live_version=record.version,
                )
            )

    def _plan_device(
        self,
        resource: DesiredResource,
        live: LiveResource | None,
        change: ResourceChange,
        options: PlanOptions,
    ) -> None:
        fields = resource.fields
        otaa = bool(resource.extra.get("otaa", fields.get("supports_join", False)))
        registries = devices.registries(otaa=otaa)
        shape = _device_shape(fields, otaa)
        split = shape.split

        if live is None or "is" not in live.records:
            change.action = "create"
            change.reason = "not registered"
            change.steps = [
                self._device_create_step(resource, server, split[server]) for server in registries
            ]
            stale = [s for s in devices.DELETE_ORDER if live is not None and s in live.records]
            if stale:
                # Records without an Identity Server record (an orphan): registering on top of
                # them would keep their session and MAC state (the Set RPCs upsert) or fail on
                # other EUIs, so they go first.
                names = ", ".join(s.upper() for s in stale)
                change.reason = (
                    f"not registered on the Identity Server, but records remain on {names} "
                    "(an orphan): they are deleted first, then the device is registered anew"
                )
                change.warnings.append(
                    f"its stale records on {names} are deleted before it is registered: their "
                    "session and MAC state are not carried over (the device must join again)"
                )
                assert live is not None
                change.steps = [
                    _step(s, "delete", live_version=live.records[s].version) for s in stale
                ] + change.steps
            return

        records = live.records
        immutable = (
            []
            if _immutable_unchanged(shape, fields, records)
            else _immutable_changes(shape, fields, records)
        )
        if immutable:
            change.action = "replace"
            changed = ", ".join(
                f"{c.path}: {json.dumps(c.old)} -> {json.dumps(c.new)}" for c in immutable
            )
            change.reason = (
                f"immutable field(s) changed ({changed}): the device is "
                "deleted and registered again; its session is lost and it must rejoin"
            )
            for server in devices.DELETE_ORDER:
                if server in records:
                    change.steps.append(
                        _step(server, "delete", live_version=records[server].version)
                    )
            change.steps.extend(
                self._device_create_step(resource, server, split[server]) for server in registries
            )
            return

        keys_readable = live.secrets_readable
        missing = [s for s in registries if s not in records]
        steps: list[Step] = []
        for server in registries:
            if server in missing:
                steps.append(self._device_create_step(resource, server, split[server]))
                continue
            record = records[server]
            data = record.data
            field_changes: list[FieldChange] = []
            for path, dotted, key_path in shape.compared[server]:
                value = fields[path]
                if key_path and not keys_readable:
                    if options.rotate_keys:
                        field_changes.append(FieldChange(path, sensitive=True, unverifiable=True))
                    continue
                raw = _raw(data, path) if dotted else data.get(path, schema.MISSING)
                # Most fields of most devices: an equal plain value (see _same_as_read), tested
                # here without a call.
                value_type = type(value)
                if value_type is type(raw) and value_type in _PLAIN_TYPES:
                    if raw == value:
                        continue
                elif _same_as_read(schema.END_DEVICE, path, value, raw):
                    continue  # a key or the attributes, as read
                found = compare_field(schema.END_DEVICE, path, value, data)
                if found is not None:
                    field_changes.append(found)
            if field_changes:
                steps.append(
                    _step(
                        server,
                        "update" if server == "is" else "set",
                        paths=[c.path for c in field_changes],
                        changes=field_changes,
                        live_version=record.version,
                    )
                )
        if not keys_readable and shape.has_key_paths:
            change.warnings.append(
                "keys cannot be verified: the API key lacks RIGHT_APPLICATION_DEVICES_READ_KEYS"
                + (
                    "; rewriting them (--rotate-keys)"
                    if options.rotate_keys
                    else "; they are set on create only (use --rotate-keys to rewrite them)"
                )
            )
        if missing:
            change.action = "update"
            names = ", ".join(s.upper() for s in missing)
            change.reason = f"partial registration: missing on {names}; completing it"
        elif steps:
            change.action = "update"
            change.reason = "fields differ"
        if steps:
            change.steps = steps

    def _device_create_step(
        self, resource: DesiredResource, server: Server, paths: list[str]
    ) -> Step:
        # The Identity Server registration also shows the device's EUIs, which reviewers must
        # check; they are implicit in every request's `ids`, never in a field mask.
        shown = sorted(IDENTIFIER_PATHS & set(resource.fields)) if server == "is" else []
        return _step(
            server,
            "create" if server == "is" else "set",
            paths=list(paths),  # the split is shared by the devices of one field signature
            changes=[_creation_change(p, resource.fields[p]) for p in [*shown, *paths]],
            registers=True,
        )

    def delete_steps(self, key: ResourceKey, live: LiveResource | None) -> list[Step]:
        if key.kind in ("organization", "api_key", "collaborator"):
            found = live.records.get("is") if live else None
            return [access.delete_step(key.kind, found.version if found else None)]
        order: Iterable[Server] = (
            self._device_delete_order(live) if key.kind == "device" else (SERVER_OF_KIND[key.kind],)
        )
        steps = []
        for server in order:
            found = live.records.get(server) if live else None
            steps.append(_step(server, "delete", live_version=found.version if found else None))
        return steps

    @staticmethod
    def _device_delete_order(live: LiveResource | None) -> list[Server]:
        """AS, NS, JS, then IS, as the official CLI deletes. Registries not read are included
        (a 404 there means already gone); the Join Server only when both EUIs are known, as the
        CLI does. An orphan (records without an Identity Server record, all registries read)
        is deleted where its records are."""
        if live is not None and live.records and "is" not in live.records:
            return [s for s in devices.DELETE_ORDER if s in live.records]
        ids = (live.records["is"].data.get("ids") or {}) if live and "is" in live.records else {}
        both_euis = bool(ids.get("dev_eui")) and bool(ids.get("join_eui"))
        return [s for s in devices.DELETE_ORDER if s != "js" or both_euis]


# Immutable paths and the registries that return them (read once, not per device).
_IMMUTABLE_SERVERS: tuple[tuple[str, tuple[Server, ...]], ...] = tuple(
    (path, devices.get_servers(path) or ("ns",)) for path in sorted(devices.IMMUTABLE_PATHS)
)


@dataclass(frozen=True, slots=True)
class _DeviceShape:
    """What the devices of one field signature (field names, OTAA) share: a fleet has one."""

    # Managed paths per registry (sorted).
    split: dict[Server, list[str]]
    # Per registry, the paths compared there: (path, dotted, a key path needing READ_KEYS).
    compared: dict[Server, tuple[tuple[str, bool, bool], ...]]
    # The immutable paths the manifests set, with the registries that return them.
    immutable: tuple[tuple[str, tuple[Server, ...]], ...]
    # The same, per registry, each path with its first part and the rest ("" for none).
    immutable_reads: tuple[tuple[Server, tuple[tuple[str, str, str], ...]], ...]
    has_key_paths: bool


def _device_shape(fields: Mapping[str, Any], otaa: bool) -> _DeviceShape:
    signature = (tuple(fields), otaa)
    shape = _SHAPES.get(signature)
    if shape is None:
        split = devices.split_paths(fields, otaa=otaa)
        compared = {
            server: tuple(
                (path, "." in path, devices.is_key_path(path))
                for path in paths
                if server in devices.compared_servers(path)
            )
            for server, paths in split.items()
        }
        immutable = tuple((p, servers) for p, servers in _IMMUTABLE_SERVERS if p in fields)
        immutable_reads = tuple(
            (server, tuple((p, *_first_and_rest(p)) for p, on in immutable if server in on))
            for server in devices.CREATE_ORDER
            if any(server in on for _, on in immutable)
        )
        has_key_paths = any(devices.is_key_path(p) for p in fields)
        shape = _DeviceShape(split, compared, immutable, immutable_reads, has_key_paths)
        if len(_SHAPES) < _SHAPES_SIZE:
            _SHAPES[signature] = shape
    return shape


_SHAPES: dict[tuple[tuple[str, ...], bool], _DeviceShape] = {}
_SHAPES_SIZE = 256


def _first_and_rest(path: str) -> tuple[str, str]:
    first, _, rest = path.partition(".")
    return first, rest


def _immutable_unchanged(
    shape: _DeviceShape, fields: Mapping[str, Any], records: Mapping[str, LiveRecord]
) -> bool:
    """Whether every immutable path reads as the desired plain value on every registry that
    returns it (see _same_as_read): the check of nearly every device, registry by registry
    (the `ids` of a record read once for both EUIs). False: see _immutable_changes."""
    for server, reads in shape.immutable_reads:
        record = records.get(server)
        if record is None:
            continue
        data = record.data
        for path, first, rest in reads:
            raw = data.get(first, schema.MISSING)
            if rest:
                if type(raw) is not dict or "." in rest:
                    raw = _raw(data, path)
                else:
                    raw = raw.get(rest, schema.MISSING)
            value = fields[path]
            value_type = type(value)
            if value_type is not type(raw) or value_type not in _PLAIN_TYPES or raw != value:
                return False
    return True


def _immutable_changes(
    shape: _DeviceShape, fields: Mapping[str, Any], records: Mapping[str, LiveRecord]
) -> list[FieldChange]:
    found: list[FieldChange] = []
    for path, servers in shape.immutable:
        value = fields[path]
        value_type = type(value)
        want: Any = _NOT_YET
        for server in servers:
            record = records.get(server)
            if record is None:
                continue
            raw = _raw(record.data, path)
            if value_type is type(raw) and value_type in _PLAIN_TYPES and raw == value:
                continue  # the same value (see _same_as_read)
            if want is _NOT_YET:
                want = _desired_normal(schema.END_DEVICE, path, value)
            if raw == want and type(raw) is type(want):
                continue  # in the normal form already: the same value
            have = _live_normal(schema.END_DEVICE, record.data, path, raw)
            # An unset live EUI (e.g. an ABP device registered without a JoinEUI) is not a
            # change of identity.
            if have in ("", None) and path.startswith("ids."):
                continue
            if want != have:
                found.append(FieldChange(path, _display(have), _display(want)))
                break
    return found


_NOT_YET: Any = object()


def _step(server: Server, operation: str, **kwargs: Any) -> Step:
    # A `set` that registers the device on a server reads as `register` in the plan text.
    verb = "register" if operation == "set" and kwargs.get("registers") else operation
    return Step(server, operation, verb=verb, **kwargs)


def _creation_change(path: str, value: Any) -> FieldChange:
    if is_sensitive(value):
        return FieldChange(path, sensitive=True)
    return FieldChange(path, None, _display(value))
