"""The provider contract: what a provider (The Things Stack, Azure IoT Hub, ...) contributes to
each hop, so the engine, the plan and the executor never need to know which one they drive.

A provider manages the resources of one *target* (a TTS stack, an IoT Hub) through the
endpoints that target exposes (TTS: the Identity, Network, Application and Join Servers; an
IoT Hub: its registry and twin APIs). The engine builds one provider per target the manifests
declare, from the registry of factories the caller hands it (`{name: factory}`, see
`reconciler.providers.registry.REGISTRY`), so one tree may hold several targets and one plan
covers all of them.

Per hop, a provider contributes:

1. **Manifests**: its manifest kinds (`manifest_kinds`) and their validation. The manifest
   machinery (files, YAML positions, CSV, secret references, diagnostics, schemas) is shared;
   each target document names its provider (`Target.provider`).
2. **Desired resources** (`desired`): the validated project -> `DesiredState`, keyed by
   `ResourceKey(provider, kind, ids, label)` with provider field paths in normal form, the
   ownership marker added where the provider keeps it.
3. **Live reads** (`read`): the live records of what the manifests declare, and with `prune`
   of everything carrying this stack's marker, per endpoint, each with its opaque version
   (a TTS timestamp, an IoT Hub etag), as few requests as the API allows.
4. **Per-resource diff** (`plan_resource`, `delete_steps`, `marker`): the generic planner
   (`reconciler.planning`) walks kinds in `kind_order`, computes digests, adoption, prune and the
   safety thresholds; the provider fills in the action and the steps of one resource (one
   request per step, to one of its endpoints, with field changes and the version it was planned
   against), and says which marker a live resource carries.
5. **Ordered execution** (`groups`, `execute`, `depends_on`): the generic executor
   (`reconciler.executor`) runs creates and updates kind by kind in `kind_order`, deletes in
   reverse, with bounded parallelism, interruption and failure isolation; the provider executes
   one group of changes (a single change, or a batch its API writes in one request) and
   returns one result per change. A change whose `depends_on` key failed to be created is
   skipped.
6. **Estimates and close** (`estimate_seconds`, `aclose`): how long the writes should take
   (from what the reads measured: latency, learned rate limits), and releasing connections.
7. **The apply lease** (`acquire_lease`, `renew_lease`, `release_lease`, `find_leases`,
   `break_lease`): a record on the target, on something the stack owns, that keeps a second
   apply from interleaving with a running one (see `reconciler.lease`, which holds the record's
   text and the keeper that drives these). The provider chooses where it lives and writes it as
   atomically as its API allows; the lease never shows up as a resource (plan, drift, prune,
   import).
8. **Continuous reconciliation** (`watcher`, optional): what `reconciler watch`
   (`reconciler.watch`) needs between full reads: a stream of changes as the target publishes
   them, a cheap sweep of what changed since a moment, and re-reads of single resources. A
   provider whose target publishes no changes returns None and is swept in full.

Errors: a provider raises `ReconcilerError` (with a message fit to print: no secret values)
for what stops a run, and reports per-resource failures as `ResourceResult`s; any other
exception is a bug, reported without its text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.diagnostics import ReconcilerError
from reconciler.lease import Acquired, Lease, LeaseHolder
from reconciler.plan.model import ResourceChange, ResourceResult, Step, TargetInfo
from reconciler.resources import (
    DesiredResource,
    DesiredState,
    LiveResource,
    LiveState,
    ResourceKey,
)

if TYPE_CHECKING:
    import httpx

    from reconciler.transport import HttpLimits

ProgressCallback = Callable[[str, int, int], None]  # (phase, done, total)
RequestLog = Callable[[str, str, str, int | None, float], None]


@dataclass(frozen=True)
class PlanOptions:
    prune: bool = False
    allow_replace: bool = False
    rotate_keys: bool = False
    force: bool = False
    max_change_fraction: float = 0.3
    min_owned_for_threshold: int = 10
    # Keys the desired-state digests in saved plans (derived from the target's credentials, so
    # a digest reveals nothing to whoever reads the plan).
    digest_key: bytes = b""
    # `--target KIND/ID` patterns (globs on `kind/id/...`): plan only the resources they match,
    # and delete (prune) none of the others. Empty: everything.
    targets: tuple[str, ...] = ()
    # `--rotate ADDRESS`: the resources (`ResourceKey.address`) to rotate now, whatever their
    # age; each is one the provider lists in `rotatable_kinds`.
    rotate: frozenset[str] = frozenset()


class Differ(Protocol):
    """The pure part of a provider (hop 4): no network, no clock."""

    @property
    def name(self) -> str:
        """The registry name, also `ResourceKey.provider` of its resources."""

    @property
    def kind_order(self) -> Sequence[str]:
        """Creation order of its kinds (parents first); deletes run in reverse."""

    @property
    def rotatable_kinds(self) -> Sequence[str]:
        """Kinds whose credentials `--rotate` may renew now (empty: none)."""

    @property
    def replace_consequence(self) -> str:
        """What a replacement costs, for the safety message (`devices lose their session`)."""

    def marker(self, live: LiveResource, ownership_key: str) -> str | None:
        """The ownership marker a live resource carries ("" when unmarked), or None when the
        resource cannot carry one (it is then owned through its parent)."""

    def plan_resource(
        self,
        resource: DesiredResource,
        live: LiveResource | None,
        change: ResourceChange,
        options: PlanOptions,
    ) -> None:
        """Fill in `change` (action, reason, steps, warnings) to bring `live` to `resource`.
        `change` arrives as a no-op with key, location, digest and live versions set."""

    def delete_steps(self, key: ResourceKey, live: LiveResource | None) -> list[Step]:
        """The steps that delete an owned resource the manifests no longer declare."""


@dataclass(frozen=True)
class LiveChange:
    """A change of a live resource a provider noticed: from its event stream, or a sweep."""

    key: ResourceKey
    source: str  # the event's name (`ns.end_device.update`) or the sweep (`sweep`)
    # The endpoints whose records changed (to re-read); empty: all of them.
    endpoints: frozenset[str] = frozenset()
    time: str = ""  # the server's time of the change, when it says
    paths: tuple[str, ...] = ()  # the changed field paths, when the server says
    actor: str = ""  # who made it, as the server says (user agent, remote IP)
    # The sweep that found it has refreshed the live record already.
    read: bool = False


class StreamLost(ReconcilerError):
    """The change stream ended or failed; the watcher reconnects (and sweeps the gap)."""


class Watcher(Protocol):
    """A provider's part of continuous reconciliation (`reconciler.watch`)."""

    def changes(
        self, desired: DesiredState, after: str | None, connected: Callable[[], None]
    ) -> AsyncIterator[LiveChange]:
        """The target's changes of the declared resources as it publishes them, from `after`
        (the `time` of the last change seen: the target replays what it still keeps) or from
        now; `connected()` once the target has accepted the subscription. Raises StreamLost
        when the stream ends or fails."""

    async def sweep(self, desired: DesiredState, live: LiveState, since: float) -> list[LiveChange]:
        """The cheap sweep: refresh in `live` what changed since `since` (Unix time) where the
        target can say so, and what publishes no changes; return what differs from before."""

    async def reread(
        self, desired: DesiredState, live: LiveState, changes: list[LiveChange]
    ) -> None:
        """Refresh in `live` the records these changes name (and only those)."""


class Provider(Differ, Protocol):
    """A provider bound to one target, with its connections (see the module docstring)."""

    @property
    def manifest_kinds(self) -> Sequence[str]:
        """The manifest `kind`s this provider's documents use."""

    def describe(self) -> TargetInfo:
        """The target's name and endpoints (labels, titles, URLs) for the plan."""

    def desired(self, project: Any) -> DesiredState:
        """Hop 2: the validated project -> this target's desired resources (pure)."""

    def digest_key(self) -> bytes:
        """A key only the target's credentials give (keys the digests in saved plans)."""

    async def read(self, desired: DesiredState, *, prune: bool) -> LiveState:
        """Hop 3: live records of the declared resources (and with `prune`, of owned ones)."""

    def depends_on(self, key: ResourceKey) -> ResourceKey | None:
        """The resource that must exist before `key` can be created or updated."""

    def groups(self, kind: str, deletes: bool, changes: list[ResourceChange]) -> list[list[Any]]:
        """Split one phase's changes of `kind` into groups that `execute` takes at once (bulk
        APIs); without batching, one change per group."""

    async def execute(
        self, group: list[ResourceChange], desired: DesiredState, live: LiveState
    ) -> list[ResourceResult]:
        """Hop 5: carry out a group of changes (each change's steps in order); one result per
        change. What was done stays done; a failure names the endpoint, never a secret."""

    def estimate_seconds(self, changes: Sequence[ResourceChange]) -> float | None:
        """How long writing these changes should take, or None when nothing is known."""

    async def acquire_lease(self, holder: LeaseHolder, until: datetime) -> Acquired:
        """Record `holder`'s lease until `until`, replacing an expired one of another run.
        Raises `LeaseHeld` (having undone its own partial records) when another run holds an
        unexpired (or unreadable) lease."""

    async def renew_lease(self, holder: LeaseHolder, until: datetime) -> None:
        """Extend `holder`'s lease; raises `LeaseLost` when it is gone or another run's now."""

    async def release_lease(self, holder: LeaseHolder) -> None:
        """Remove `holder`'s lease records; never another run's."""

    async def find_leases(self) -> list[Lease]:
        """The lease records on the target now, whoever holds them."""

    async def break_lease(self, lease_id: str) -> list[Lease]:
        """`force-unlock`: remove the records of lease `lease_id`, whoever holds it; the ones
        removed."""

    @property
    def requests(self) -> int:
        """Requests sent so far (for statistics)."""

    def take_warnings(self) -> list[str]:
        """The servers' warnings about requests sent since the last call (a deprecated field,
        what will become an error), one line each with the request that first drew it and how
        many did; then forgets them. `read` puts those of the reads into the live state; the
        engine collects those of the writes after apply."""

    def watcher(self) -> Watcher | None:
        """Its part of continuous reconciliation, or None when the target publishes no
        changes (then `watch` sweeps it in full)."""

    async def aclose(self) -> None:
        """Close connections."""


@dataclass
class ProviderContext:
    """What the engine gives every provider factory (from the command line and environment)."""

    environ: Mapping[str, str]
    parallelism: int = 16
    retries: int = 8  # tries per request on transient failures
    limits: HttpLimits | None = None  # deadlines and caps per run (None: the defaults)
    transport: httpx.AsyncBaseTransport | None = None  # tests: an in-process emulator
    progress: ProgressCallback | None = None
    # `--verbose`: (endpoint label, method, path, status or None, seconds) after each request.
    request_log: RequestLog | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# A provider's factory: (its target as the manifests declare it, context) -> provider.
ProviderFactory = Callable[[Any, ProviderContext], Provider]
