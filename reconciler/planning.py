"""Hop 4, the provider-neutral half: desired + live state -> resource changes (pure).

Kinds are walked in the provider's order; each declared resource gets a keyed digest, its live
versions and the provider's diff; a live resource the manifests declare that does not carry
this stack's marker is adopted; with prune, owned resources the manifests no longer declare are
deleted (kinds in reverse). Safety: replacements need `allow_replace`, and updating or deleting
more than a fraction of a kind's owned resources needs `force`.

Unique keys (values only one resource may hold at a time, such as a device's EUI pair): a change
that claims one held by another live resource is ordered after the deletion that frees it (the
deletion, or replacement, lists it in `releases`, and the executor runs such deletions, and the
deletion half of such replacements, first: devices swapping EUIs are all deleted, then all
registered); when no planned deletion frees it (prune is off, `--target` leaves the holder out,
the holder is not managed, or its deletion keeps the value reserved), the plan is blocked with
what would free it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.plan.model import Plan, ResourceChange
from reconciler.provider import Differ, PlanOptions
from reconciler.resources import (
    DesiredResource,
    DesiredState,
    LiveResource,
    LiveState,
    ResourceKey,
    Secret,
)


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


@dataclass
class ProviderPlan:
    """One provider's share of a plan."""

    resources: list[ResourceChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    orphans: list[ResourceChange] = field(default_factory=list)
    matched: set[str] = field(default_factory=set)  # the target patterns that matched

    @property
    def write_requests(self) -> int:
        return sum(len(r.steps) for r in self.resources)


def plan_target(
    differ: Differ,
    desired: DesiredState,
    live: LiveState,
    options: PlanOptions,
    only: Collection[ResourceKey] | None = None,
) -> ProviderPlan:
    """`only`: plan just these resources (declared, or owned and undeclared), with the safety
    thresholds still counted over every owned resource (`reconciler watch` after a change)."""
    result = ProviderPlan(warnings=list(live.warnings))
    by_kind = desired.by_kind()
    for kind in differ.kind_order:
        for resource in by_kind.get(kind, ()):
            if only is None or resource.key in only:
                result.resources.append(_plan_resource(differ, desired, live, resource, options))
    undeclared = _plan_prune(differ, desired, live, prune=options.prune)
    untargeted: set[ResourceKey] = set()
    if only is not None:
        undeclared = [r for r in undeclared if r.key in only]
    if options.targets:
        result.matched = {p for r in [*result.resources, *undeclared] for p in _matches(r, options)}
        untargeted = {r.key for r in [*result.resources, *undeclared] if not _matches(r, options)}
        result.resources = [r for r in result.resources if _matches(r, options)]
        undeclared = [r for r in undeclared if _matches(r, options)]
    if options.prune:
        result.resources.extend(undeclared)
    else:
        # Shown (and counted as drift), never deleted without prune.
        result.orphans.extend(undeclared)
    result.blocked = _safety(differ, live, result.resources, options)
    result.blocked += _order_unique_keys(result, live, untargeted)
    result.blocked += _unrestorable(result, live)
    for change in result.resources:
        if change.refused:
            result.blocked.extend(f"{change.key}: {reason}" for reason in change.refused)
    for change in result.resources:
        if change.warnings:
            result.warnings.extend(f"{change.key}: {w}" for w in change.warnings)
    return result


def target_name(change: ResourceChange) -> str:
    """What `--target` patterns match: `kind/id` (ids outermost first, joined by `/`)."""
    return change.key.address


def _matches(change: ResourceChange, options: PlanOptions) -> list[str]:
    name = target_name(change)
    return [p for p in options.targets if fnmatch.fnmatchcase(name, p)]


def assemble(plan: Plan, parts: Sequence[ProviderPlan]) -> Plan:
    """Put the providers' shares into `plan` (in provider order)."""
    for part in parts:
        plan.resources.extend(part.resources)
        plan.warnings.extend(part.warnings)
        plan.blocked.extend(part.blocked)
        plan.orphans.extend(part.orphans)
        plan.write_requests += part.write_requests
    return plan


def _plan_resource(
    differ: Differ,
    desired: DesiredState,
    live_state: LiveState,
    resource: DesiredResource,
    options: PlanOptions,
) -> ResourceChange:
    live = live_state.get(resource.key)
    change = ResourceChange(
        key=resource.key,
        action="no-op",
        location=str(resource.location) if resource.location else None,
        fingerprints=_Fingerprints(resource, options.digest_key, live),
    )
    differ.plan_resource(resource, live, change, options)
    marker = differ.marker(live, desired.ownership_key) if live is not None else None
    if marker is not None and marker != desired.stack:
        if marker:
            change.warnings.append(
                f"owned by stack {marker!r} ({desired.marker_label}); this stack would take it over"
            )
        change.adopt = True
        if change.action == "no-op":
            change.action = "update"
        if not change.reason:
            change.reason = "adopt an existing resource the manifests declare"
    return change


class _Fingerprints:
    """A change's fingerprints, computed when first read: the desired digest (none for a
    deletion of an undeclared resource) and the live versions as read (none when nothing was
    found). The records are taken now, as the resource's records may be replaced while
    applying."""

    __slots__ = ("_digest_key", "_records", "_resource")

    def __init__(
        self, resource: DesiredResource | None, digest_key: bytes, live: LiveResource | None
    ) -> None:
        self._resource = resource
        self._digest_key = digest_key
        self._records = dict(live.records) if live is not None else None

    def desired_digest(self) -> str:
        if self._resource is None:
            return ""
        return desired_digest(self._resource, self._digest_key)

    def live_versions(self) -> dict[str, str | None]:
        if self._records is None:
            return {}
        return {endpoint: record.version for endpoint, record in self._records.items()}


def _plan_prune(
    differ: Differ, desired: DesiredState, live_state: LiveState, *, prune: bool
) -> list[ResourceChange]:
    """Deletes of the owned resources the manifests do not declare (applied only with prune)."""
    undeclared = sorted(k for k in live_state.owned if k not in desired.resources)
    deletes: list[ResourceChange] = []
    for kind in reversed(differ.kind_order):
        for key in (k for k in undeclared if k.kind == kind):
            live = live_state.get(key)
            # A resource that cannot carry the marker is owned through its parent (whose list
            # of them the manifests define): it was added outside the manifests, not by us.
            marked = live is not None and differ.marker(live, desired.ownership_key) is not None
            if live is not None and live.owned_because:
                reason = live.owned_because
            elif marked:
                reason = "owned by this stack and no longer in the manifests"
            else:
                reason = (
                    f"not in the manifests; it carries no ownership marker, but the manifests "
                    f"list every {kind} of {'/'.join(key.ids[:-1])}, which this stack owns"
                )
            deletes.append(
                ResourceChange(
                    key=key,
                    action="delete",
                    reason=f"{reason} (--prune)" if prune else f"{reason}: deleted with --prune",
                    fingerprints=_Fingerprints(None, b"", live) if live else None,
                    steps=differ.delete_steps(key, live),
                    refused=[live.protected] if live is not None and live.protected else [],
                )
            )
    return deletes


def _order_unique_keys(
    result: ProviderPlan, live: LiveState, untargeted: set[ResourceKey]
) -> list[str]:
    """Mark the deletions that free a unique key a change claims (the executor runs them
    first); say what would free the others (those block the plan)."""
    claiming = [c for c in result.resources if c.claims and c.action != "delete"]
    if not claiming:
        return []  # nothing to order or block (and no replacement frees a key)
    planned = {c.key: c for c in result.resources}
    orphans = {c.key for c in result.orphans}
    blocked: list[str] = []
    for change in claiming:
        for unique in change.claims:
            holder = live.unique_keys.get(unique)
            if holder is None or holder.key == change.key:
                continue
            releaser = planned.get(holder.key)
            frees = releaser is not None and releaser.action in ("delete", "replace")
            if releaser is not None and frees and holder.freed_by_delete:
                if unique not in releaser.releases:
                    releaser.releases.append(unique)
                how = (
                    "deleting"
                    if releaser.action == "delete"
                    else "the replacement (deleted first, registered again later) of"
                )
                change.reason += f"; {unique} is freed first by {how} {holder.key}"
                continue
            gives_up = releaser is not None and unique in releaser.releases
            if releaser is not None and releaser.action == "update" and gives_up:
                # A gateway changing its EUI frees the old one once its update is done: the
                # executor runs it first. In a cycle (gateways exchanging EUIs) no update can
                # go first, and deleting a gateway keeps its EUI reserved.
                if not _in_cycle(change, planned, live):
                    change.reason += f"; {unique} is given up first by {holder.key}"
                    continue
                problem = (
                    "which takes another EUI in this plan, in a cycle of EUI changes: the "
                    "Identity Server keeps a gateway EUI unique and a deleted gateway keeps its "
                    f"EUI, so apply in two steps: first remove the EUI of {holder.key} "
                    "(`eui: null`) or give it one no gateway holds, then the EUIs you want"
                )
            elif not holder.freed_by_delete:
                problem = holder.note
            elif holder.key in orphans:
                problem = (
                    "which this stack owns and the manifests no longer declare: apply with "
                    "--prune to delete it first (in the same apply)"
                )
            elif holder.key in untargeted:
                name = "/".join((holder.key.kind, *holder.key.ids))
                problem = f"which --target leaves out: add --target {name} to delete it first"
            elif releaser is not None:
                problem = (
                    f"which is also changed ({releaser.action}) in this plan: apply that change "
                    "first, on its own (--target), then this one"
                )
            elif holder.key in live.owned or holder.key in planned:
                problem = "which the manifests keep: free it there first, or change the manifests"
            else:
                problem = (
                    "which this stack does not manage: free it there first, or change the manifests"
                )
            blocked.append(f"{change.key} needs {unique}, held by {holder.key}, {problem}")
    _warn_of_swaps(result, live)
    return blocked


def _in_cycle(
    change: ResourceChange, planned: dict[ResourceKey, ResourceChange], live: LiveState
) -> bool:
    """Whether following the keys `change` claims to their holders' changes (updates that give
    them up and claim others) leads back to `change`."""
    seen: set[ResourceKey] = set()
    current = change
    while current.claims:
        holder = live.unique_keys.get(current.claims[0])
        if holder is None or holder.key in seen:
            return False
        if holder.key == change.key:
            return True
        seen.add(holder.key)
        following = planned.get(holder.key)
        if following is None or following.action != "update":
            return False
        current = following
    return False


def _warn_of_swaps(result: ProviderPlan, live: LiveState) -> None:
    """A replacement deleted first (it frees a key another change claims) that itself claims a
    key another deletion frees, as two devices swapping EUIs do: it is registered again only
    once that deletion is done, so a failed deletion leaves it unregistered until the next
    apply. Said on the change, as the risk it is."""
    planned = {c.key: c for c in result.resources}
    for change in result.resources:
        if change.action != "replace" or not change.releases:
            continue
        for unique in change.claims:
            holder = live.unique_keys.get(unique)
            releaser = planned.get(holder.key) if holder is not None else None
            if holder is None or releaser is None or unique not in releaser.releases:
                continue
            change.warnings.append(
                f"deleted before any registration (it frees {', '.join(change.releases)}) and "
                f"registered again only after {holder.key} is deleted (it holds {unique}): if "
                "that deletion fails, this one stays unregistered until the next apply"
            )


def _unrestorable(result: ProviderPlan, live: LiveState) -> list[str]:
    """Creations of IDs that a soft-deleted resource still reserves and that cannot be
    restored (the reason says what would free the ID)."""
    blocked = []
    for change in result.resources:
        if change.action != "create":
            continue
        found = live.get(change.key)
        if found is not None and found.unrestorable:
            blocked.append(f"{change.key} cannot be created: {found.unrestorable}")
    return blocked


def _safety(
    differ: Differ, live: LiveState, resources: list[ResourceChange], options: PlanOptions
) -> list[str]:
    blocked: list[str] = []
    if not options.allow_replace:
        replaces = [str(r.key) for r in resources if r.action == "replace"]
        if replaces:
            blocked.append(
                f"{len(replaces)} replacement(s) need --allow-replace "
                f"({differ.replace_consequence}): {', '.join(replaces[:5])}"
                + (" ..." if len(replaces) > 5 else "")
            )
    if options.force:
        return blocked
    owned_of_kind = Counter(k.kind for k in live.owned)
    touched_of: Counter[tuple[str, str]] = Counter()  # (kind, "update" or "delete")
    for r in resources:
        if r.action not in ("update", "replace", "delete") or r.key not in live.owned:
            continue
        # Completing a partial registration only adds what is missing.
        if all(step.registers for step in r.steps):
            continue
        touched_of[r.key.kind, "delete" if r.action == "delete" else "update"] += 1
    for kind in differ.kind_order:
        owned = owned_of_kind[kind]
        if owned < options.min_owned_for_threshold:
            continue
        for action in ("update", "delete"):
            touched = touched_of[kind, action]
            fraction = touched / owned
            if fraction > options.max_change_fraction:
                verb = "updated" if action == "update" else "deleted"
                blocked.append(
                    f"{touched} of {owned} owned {kind}s would be {verb} "
                    f"({fraction:.1%} > {options.max_change_fraction:.1%} threshold); "
                    "use --force to apply"
                )
    return blocked
