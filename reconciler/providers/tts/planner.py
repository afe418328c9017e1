"""Plan TTS changes: desired resources + live state -> per-resource actions and per-server steps.

Pure code: no network. The provider reads the live state and executes the steps.

Diff semantics: the manifests are authoritative for the fields they set; other fields are never
compared or written; `None` clears a field. Values are compared in normal form (see
reconciler.providers.tts.schema). `attributes` maps are merged key by key (keys the manifests do
not name are left alone, so Console-added attributes survive); other maps are compared whole.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.plan.model import FieldChange, Operation, Plan, ResourceChange, Step
from reconciler.providers.tts import devices, schema
from reconciler.providers.tts.client import Server
from reconciler.resources import (
    KIND_ORDER,
    DesiredResource,
    DesiredState,
    ResourceKey,
    ResourceKind,
    Secret,
    is_sensitive,
    reveal,
)

MERGED_MAPS = frozenset({"attributes"})

MESSAGE_OF_KIND: dict[ResourceKind, str] = {
    "application": schema.APPLICATION,
    "link": schema.APPLICATION_LINK,
    "webhook": schema.WEBHOOK,
    "device": schema.END_DEVICE,
    "gateway": schema.GATEWAY,
}
# The registry that holds each non-device kind.
SERVER_OF_KIND: dict[ResourceKind, Server] = {
    "application": "is",
    "link": "as",
    "webhook": "as",
    "gateway": "is",
}


@dataclass
class LiveRecord:
    """One resource as one server returned it (raw JSON, masked to the managed paths)."""

    data: dict[str, Any]

    @property
    def version(self) -> str | None:
        value = self.data.get("updated_at")
        return str(value) if value else None


@dataclass
class LiveResource:
    key: ResourceKey
    records: dict[Server, LiveRecord] = field(default_factory=dict)
    keys_readable: bool = True

    def attribute(self, name: str) -> str | None:
        record = self.records.get("is")
        if record is None:
            return None
        value = (record.data.get("attributes") or {}).get(name)
        return str(value) if value is not None else None


@dataclass
class LiveState:
    resources: dict[ResourceKey, LiveResource] = field(default_factory=dict)
    # Live resources carrying this stack's ownership marker (prune candidates are those of them
    # the manifests no longer declare).
    owned: set[ResourceKey] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def get(self, key: ResourceKey) -> LiveResource | None:
        return self.resources.get(key)


@dataclass(frozen=True)
class PlanOptions:
    prune: bool = False
    allow_replace: bool = False
    rotate_keys: bool = False
    force: bool = False
    max_change_fraction: float = 0.3
    min_owned_for_threshold: int = 10
    digest_key: bytes = b""


def desired_digest(resource: DesiredResource, key: bytes) -> str:
    """A keyed fingerprint of the desired fields (secrets by fingerprint only)."""

    def encode(value: Any) -> Any:
        if isinstance(value, Secret):
            return {"secret": value.fingerprint(key)}
        if isinstance(value, dict):
            return {k: encode(v) for k, v in sorted(value.items())}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return value

    text = json.dumps(
        {"fields": encode(resource.fields), "extra": encode(resource.extra)},
        sort_keys=True,
        default=str,
    )
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def _desired_normal(message: str, path: str, value: Any) -> Any:
    """Normal form of a desired value (None -> the type's zero value, i.e. cleared)."""
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
    live = schema.live_value(message, live_data, path)
    sensitive = is_sensitive(desired)
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


class Planner:
    """Builds the plan for one stack from desired and live state."""

    def __init__(self, desired: DesiredState, live: LiveState, options: PlanOptions) -> None:
        self.desired = desired
        self.live = live
        self.options = options

    def plan(self, *, target: dict[str, str], manifests: list[str]) -> Plan:
        plan = Plan(
            stack=self.desired.stack,
            target=target,
            manifests=manifests,
            options={
                "prune": self.options.prune,
                "allow_replace": self.options.allow_replace,
                "rotate_keys": self.options.rotate_keys,
            },
            warnings=list(self.live.warnings),
        )
        changes: list[ResourceChange] = []
        for kind in KIND_ORDER:
            for resource in self.desired.of_kind(kind):
                changes.append(self._plan_resource(resource))
        deletes = self._plan_prune() if self.options.prune else []
        plan.resources = changes + deletes
        plan.blocked = self._safety(plan)
        plan.write_requests = sum(len(r.steps) for r in plan.resources)
        for change in plan.resources:
            plan.warnings.extend(f"{change.key}: {w}" for w in change.warnings)
        return plan

    # -- per resource -----------------------------------------------------------------------

    def _plan_resource(self, resource: DesiredResource) -> ResourceChange:
        live = self.live.get(resource.key)
        change = ResourceChange(
            key=resource.key,
            action="no-op",
            location=str(resource.location) if resource.location else None,
            desired_digest=desired_digest(resource, self.options.digest_key),
        )
        if live is not None:
            change.live_versions = {s: r.version for s, r in live.records.items()}
        if resource.key.kind == "device":
            self._plan_device(resource, live, change)
        else:
            self._plan_single(resource, live, change)
        if (
            resource.key.kind in ("application", "device", "gateway")
            and live
            and "is" in live.records
        ):
            owner = live.attribute(self.desired.ownership_key)
            if owner != self.desired.stack:
                if owner:
                    change.warnings.append(
                        f"owned by stack {owner!r} (attribute {self.desired.ownership_key}); "
                        "this stack would take it over"
                    )
                change.adopt = True
                if change.action == "no-op":
                    change.action = "update"
                if not change.reason:
                    change.reason = "adopt an existing resource the manifests declare"
        return change

    def _plan_single(
        self, resource: DesiredResource, live: LiveResource | None, change: ResourceChange
    ) -> None:
        kind = resource.key.kind
        server = SERVER_OF_KIND[kind]
        message = MESSAGE_OF_KIND[kind]
        record = live.records.get(server) if live else None
        if record is None:
            change.action = "create"
            change.reason = "not found"
            operation: Operation = "create" if kind in ("application", "gateway") else "set"
            change.steps.append(
                Step(
                    server=server,
                    operation=operation,
                    paths=sorted(resource.fields),
                    changes=[
                        _creation_change(path, value)
                        for path, value in sorted(resource.fields.items())
                    ],
                    registers=True,
                )
            )
            return
        field_changes = [
            c
            for path, value in sorted(resource.fields.items())
            if (c := compare_field(message, path, value, record.data)) is not None
        ]
        if field_changes:
            change.action = "update"
            change.reason = "fields differ"
            update_op: Operation = "update" if kind in ("application", "gateway") else "set"
            change.steps.append(
                Step(
                    server=server,
                    operation=update_op,
                    paths=[c.path for c in field_changes],
                    changes=field_changes,
                    live_version=record.version,
                )
            )

    def _plan_device(
        self, resource: DesiredResource, live: LiveResource | None, change: ResourceChange
    ) -> None:
        otaa = bool(resource.extra.get("otaa", resource.fields.get("supports_join", False)))
        registries = devices.registries(otaa=otaa)
        split = devices.split_paths(resource.fields, otaa=otaa)
        present = {s for s in registries if live is not None and s in live.records}
        keys_readable = live.keys_readable if live else True

        if not present:
            change.action = "create"
            change.reason = "not registered"
            change.steps = [
                self._device_create_step(resource, server, split[server]) for server in registries
            ]
            return

        replace_reasons = self._immutable_changes(resource, live)
        if replace_reasons:
            change.action = "replace"
            change.reason = (
                f"immutable field(s) changed ({', '.join(replace_reasons)}): the device is "
                "deleted and registered again; its session is lost and it must rejoin"
            )
            assert live is not None
            for server in devices.DELETE_ORDER:
                if server in live.records:
                    change.steps.append(
                        Step(server, "delete", live_version=live.records[server].version)
                    )
            change.steps.extend(
                self._device_create_step(resource, server, split[server]) for server in registries
            )
            return

        assert live is not None
        missing = [s for s in registries if s not in present]
        steps: list[Step] = []
        for server in registries:
            paths = split[server]
            if server in missing:
                steps.append(self._device_create_step(resource, server, paths))
                continue
            record = live.records[server]
            field_changes: list[FieldChange] = []
            for path in paths:
                if server not in devices.compared_servers(path):
                    continue
                value = resource.fields[path]
                if devices.is_key_path(path) and not keys_readable:
                    if self.options.rotate_keys:
                        field_changes.append(FieldChange(path, sensitive=True, unverifiable=True))
                    continue
                found = compare_field(schema.END_DEVICE, path, value, record.data)
                if found is not None:
                    field_changes.append(found)
            if field_changes:
                device_op: Operation = "update" if server == "is" else "set"
                steps.append(
                    Step(
                        server,
                        device_op,
                        paths=[c.path for c in field_changes],
                        changes=field_changes,
                        live_version=record.version,
                    )
                )
        if not keys_readable and any(devices.is_key_path(p) for p in resource.fields):
            change.warnings.append(
                "keys cannot be verified: the API key lacks RIGHT_APPLICATION_DEVICES_READ_KEYS"
                + (
                    "; rewriting them (--rotate-keys)"
                    if self.options.rotate_keys
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
        change.steps = steps

    def _device_create_step(
        self, resource: DesiredResource, server: Server, paths: list[str]
    ) -> Step:
        create_op: Operation = "create" if server == "is" else "set"
        return Step(
            server,
            create_op,
            paths=paths,
            changes=[_creation_change(p, resource.fields[p]) for p in paths],
            registers=True,
        )

    def _immutable_changes(self, resource: DesiredResource, live: LiveResource | None) -> list[str]:
        if live is None:
            return []
        found = []
        for path in sorted(devices.IMMUTABLE_PATHS):
            if path not in resource.fields:
                continue
            for server in devices.get_servers(path) or ("ns",):
                record = live.records.get(server)
                if record is None:
                    continue
                want = _desired_normal(schema.END_DEVICE, path, resource.fields[path])
                have = schema.live_value(schema.END_DEVICE, record.data, path)
                # An unset live EUI (e.g. an ABP device registered without a JoinEUI) is not a
                # change of identity.
                if have in ("", None) and path.startswith("ids."):
                    continue
                if want != have:
                    found.append(path)
                    break
        return found

    # -- prune ------------------------------------------------------------------------------

    def _plan_prune(self) -> list[ResourceChange]:
        undeclared = sorted(k for k in self.live.owned if k not in self.desired.resources)
        deletes: list[ResourceChange] = []
        for kind in reversed(KIND_ORDER):
            for key in (k for k in undeclared if k.kind == kind):
                live = self.live.get(key)
                versions: dict[str, str | None] = (
                    {s: r.version for s, r in live.records.items()} if live else {}
                )
                change = ResourceChange(
                    key=key,
                    action="delete",
                    reason="owned by this stack and no longer in the manifests (--prune)",
                    live_versions=versions,
                )
                order: Iterable[Server] = (
                    self._device_delete_order(live) if kind == "device" else (SERVER_OF_KIND[kind],)
                )
                for server in order:
                    record = live.records.get(server) if live else None
                    change.steps.append(
                        Step(server, "delete", live_version=record.version if record else None)
                    )
                deletes.append(change)
        return deletes

    @staticmethod
    def _device_delete_order(live: LiveResource | None) -> list[Server]:
        """AS, NS, JS, then IS, as the official CLI deletes (FACTS §c). Registries not read are
        included (a 404 there means already gone); the Join Server only when both EUIs are
        known, as the CLI does."""
        ids = (live.records["is"].data.get("ids") or {}) if live and "is" in live.records else {}
        both_euis = bool(ids.get("dev_eui")) and bool(ids.get("join_eui"))
        return [s for s in devices.DELETE_ORDER if s != "js" or both_euis]

    # -- safety -----------------------------------------------------------------------------

    def _safety(self, plan: Plan) -> list[str]:
        blocked: list[str] = []
        if not self.options.allow_replace:
            replaces = [str(r.key) for r in plan.resources if r.action == "replace"]
            if replaces:
                blocked.append(
                    f"{len(replaces)} replacement(s) need --allow-replace "
                    f"(devices lose their session): {', '.join(replaces[:5])}"
                    + (" ..." if len(replaces) > 5 else "")
                )
        if self.options.force:
            return blocked
        for kind in KIND_ORDER:
            owned = sum(1 for k in self.live.owned if k.kind == kind)
            if owned < self.options.min_owned_for_threshold:
                continue
            for action in ("update", "delete"):
                touched = sum(
                    1
                    for r in plan.resources
                    if r.key.kind == kind
                    and r.key in self.live.owned
                    and (r.action == action or (action == "update" and r.action == "replace"))
                    # Completing a partial registration only adds what is missing.
                    and not all(step.registers for step in r.steps)
                )
                fraction = touched / owned
                if fraction > self.options.max_change_fraction:
                    verb = "updated" if action == "update" else "deleted"
                    blocked.append(
                        f"{touched} of {owned} owned {kind}s would be {verb} "
                        f"({fraction:.1%} > {self.options.max_change_fraction:.1%} threshold); "
                        "use --force to apply"
                    )
        return blocked


def _creation_change(path: str, value: Any) -> FieldChange:
    if is_sensitive(value):
        return FieldChange(path, sensitive=True)
    return FieldChange(path, None, _display(value))
