"""Runs the five hops: load manifests -> desired resources -> live state -> plan -> apply.

The engine knows providers only through the contract in `reconciler.provider` and the registry
of factories its caller passes in `RunOptions.providers`. No printing here: results and typed
errors go back to the CLI, which renders them.
"""

from __future__ import annotations

import asyncio
import fnmatch
import gc
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import __version__
from reconciler.diagnostics import Diagnostic, ReconcilerError, UsageError
from reconciler.executor import StopReason, Work, execute_plan
from reconciler.lease import DEFAULT_TTL, Lease, LeaseKeeper, Note, utc_now
from reconciler.manifest.common import closest
from reconciler.manifest.load import load_manifests
from reconciler.manifest.project import Project
from reconciler.plan.model import ApplyReport, Plan, ResourceChange, ResourceResult
from reconciler.planning import assemble, plan_target
from reconciler.provider import (
    PlanOptions,
    ProgressCallback,
    Provider,
    ProviderContext,
    ProviderFactory,
    RequestLog,
)
from reconciler.resources import DesiredState, LiveState
from reconciler.transport import HttpLimits

if TYPE_CHECKING:
    import httpx


@dataclass
class RunOptions:
    paths: Sequence[Path]
    # Provider name -> factory (the CLI passes `reconciler.providers.registry.REGISTRY`).
    providers: Mapping[str, ProviderFactory] = field(default_factory=dict)
    url: str | None = None  # `--url`: moves the target's endpoints (the emulator in CI)
    prune: bool | None = None  # None: the target's own safety setting
    allow_replace: bool = False
    rotate_keys: bool = False
    force: bool = False
    targets: tuple[str, ...] = ()  # `--target KIND/ID` globs: plan and apply only these
    rotate: tuple[str, ...] = ()  # `--rotate ADDRESS`: rotate these declared keys now
    parallelism: int = 16
    retries: int = 8  # tries per request on transient failures
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    limits: HttpLimits = field(default_factory=HttpLimits)  # deadlines and caps per run
    transport: httpx.AsyncBaseTransport | None = None  # tests: in-process emulator
    progress: ProgressCallback | None = None
    request_log: RequestLog | None = None  # `--verbose`
    # Every provider's manifest kinds, TTS first (the CLI passes
    # `reconciler.providers.registry.MANIFEST_KINDS`).
    manifest_kinds: Sequence[Any] = ()
    # `apply --plan`: providers refuse (rather than retry) a write the server finds stale.
    saved_plan: bool = False
    # The apply lease (reconciler.lease): `--lock/--no-lock`, `--lock-timeout` (seconds to wait
    # for another run's lease), how long a lease lasts unrenewed, how often a waiting run looks.
    lock: bool = True
    lock_timeout: float = 0.0
    lease_ttl: float = DEFAULT_TTL
    lease_poll: float = 5.0
    # `plan`, `drift` and `apply --no-lock` take no lease: they look for another run's lease
    # instead and warn (a state read while an apply writes may show its half-done work).
    look_for_leases: bool = False
    # One run per process (the CLI's plan, apply and drift): once read, the live state lives
    # until the process exits, so it is moved out of the garbage collector's sight as the CLI
    # does with the manifests. Not for long-running callers (`watch`), whose old live states
    # must stay collectable.
    freeze_live_state: bool = False


@contextmanager
def young_collections_only() -> Iterator[None]:
    """No full (oldest-generation) collections inside: for building objects that are all
    kept, such as a live state that is frozen right after it is read (`freeze_live_state`) or
    a plan (make_plan). A full collection there rescans everything built so far and frees
    nothing (records and plans stay; the HTTP stack and the planner leave no cyclic garbage):
    5-7 of them per 10,000-device read (`gc_collections_by_generation` in
    bench/bench_reconcile.py), 2 with this, both outside the read. Young collections still
    run, so short-lived cycles are freed as before."""
    young, middle, oldest = gc.get_threshold()
    gc.set_threshold(young, middle, 1 << 30)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, oldest)


@dataclass
class Loaded:
    project: Project
    warnings: list[Diagnostic]


@dataclass
class Target:
    """One target of the run: its provider and what the manifests want there."""

    provider: Provider
    desired: DesiredState
    settings: Any  # the target document (prune and threshold defaults)


@dataclass
class Session:
    """The providers of one run, connected; close with `aclose`."""

    targets: list[Target]

    @property
    def requests(self) -> int:
        return sum(t.provider.requests for t in self.targets)

    def provider(self, name: str) -> Provider:
        for target in self.targets:
            if target.provider.name == name:
                return target.provider
        raise KeyError(name)

    async def aclose(self) -> None:
        for target in self.targets:
            await target.provider.aclose()


@dataclass
class PlanRun:
    plan: Plan
    loaded: Loaded
    live: dict[str, LiveState]  # provider name -> live state
    requests: int
    desired: dict[str, DesiredState] = field(default_factory=dict)  # provider name -> desired


def load(options: RunOptions) -> Loaded:
    result = load_manifests(
        options.paths,
        environ=options.environ,
        url_override=options.url,
        kinds=options.manifest_kinds,
    )
    project = result.raise_for_errors()
    if not project.targets:
        raise ReconcilerError(
            "no target in the manifests: a Stack (The Things Stack) or IotHub document names "
            "what to manage"
        )
    return Loaded(
        project=project,
        warnings=[d for d in result.diagnostics if d.severity == "warning"],
    )


def connect(loaded: Loaded, options: RunOptions) -> Session:
    """One provider per target the manifests declare, with its desired state (hop 2)."""
    context = ProviderContext(
        environ=options.environ,
        parallelism=options.parallelism,
        retries=options.retries,
        limits=options.limits,
        transport=options.transport,
        progress=options.progress,
        request_log=options.request_log,
        extra={"saved_plan": options.saved_plan},
    )
    targets: list[Target] = []
    for settings in loaded.project.targets:
        factory = options.providers.get(settings.provider)
        if factory is None:
            raise ReconcilerError(f"no provider {settings.provider!r} in this build of reconciler")
        provider = factory(settings, context)
        targets.append(Target(provider, provider.desired(loaded.project), settings))
    return Session(targets)


def plan_options(target: Target, options: RunOptions) -> PlanOptions:
    settings = target.settings
    return PlanOptions(
        prune=settings.prune if options.prune is None else options.prune,
        allow_replace=options.allow_replace,
        rotate_keys=options.rotate_keys,
        force=options.force,
        max_change_fraction=settings.change_threshold,
        digest_key=target.provider.digest_key(),
        targets=options.targets,
        rotate=frozenset(options.rotate),
    )


def check_rotations(session: Session, options: RunOptions) -> None:
    """Each `--rotate` address must name a declared resource that its provider can rotate
    (an API key), and one that `--target` keeps: otherwise the rotation would silently not
    happen. Raises UsageError (before anything is read or written)."""
    for address in options.rotate:
        rotatable = [
            key.address
            for target in session.targets
            for kind in target.provider.rotatable_kinds
            for key in (r.key for r in target.desired.of_kind(kind))
        ]
        if address not in rotatable:
            match = closest(address, rotatable)
            hint = f"; did you mean {match}?" if match else ""
            examples = "" if hint or not rotatable else f" (declared: {', '.join(rotatable[:3])})"
            raise UsageError(
                f"--rotate {address}: names no API key the manifests declare{hint}{examples}"
            )
        if options.targets and not any(fnmatch.fnmatchcase(address, p) for p in options.targets):
            raise UsageError(
                f"--rotate {address}: --target leaves it out, so it would not be rotated; add "
                f"--target {address}"
            )


async def make_plan(loaded: Loaded, session: Session, options: RunOptions) -> PlanRun:
    check_rotations(session, options)
    before = session.requests
    parts = []
    live: dict[str, LiveState] = {}
    prunes = []
    # Looked for while the live state is read (a few requests beside many).
    looking = asyncio.ensure_future(lease_warnings(session)) if options.look_for_leases else None
    try:
        for target in session.targets:
            popts = plan_options(target, options)
            prunes.append(popts.prune)
            name = target.provider.name
            # Owned resources the manifests no longer declare are always read: without prune
            # the plan shows them (and drift counts them) instead of deleting them.
            if options.freeze_live_state:
                with young_collections_only():
                    live[name] = await target.provider.read(target.desired, prune=True)
            else:
                live[name] = await target.provider.read(target.desired, prune=True)
            if options.freeze_live_state:
                # Measured at 10,000 devices: the planner 94-96 us per device without, 33-47
                # with (`bench/bench_planner.py --devices 10000`): full collections rescanned
                # the records.
                gc.freeze()
            # The planner keeps all it builds (the plan) and makes no cyclic garbage: a full
            # collection while it runs rescans the plan built so far and frees nothing. At
            # 10,000 devices a plan of creates ran 3-4 of them (`bench/bench_planner.py
            # --create`: 67-78 us per device; 25-44 without them, and the one full collection
            # that may follow later costs 15-19 either way).
            with young_collections_only():
                parts.append(plan_target(target.provider, target.desired, live[name], popts))
        lease_notes = await looking if looking is not None else []
    finally:
        if looking is not None:
            looking.cancel()
    plan = Plan(
        stack=", ".join(dict.fromkeys(t.desired.stack for t in session.targets)),
        targets=[t.provider.describe() for t in session.targets],
        manifests=[str(p) for p in options.paths],
        options={
            "prune": any(prunes),
            "allow_replace": options.allow_replace,
            "rotate_keys": options.rotate_keys,
        },
    )
    if options.targets:  # only then: plans without targets read as before
        plan.options["targets"] = list(options.targets)
    if options.rotate:  # likewise
        plan.options["rotate"] = list(options.rotate)
    unmatched = [p for p in options.targets if not any(p in part.matched for part in parts)]
    if unmatched:
        raise ReconcilerError(
            f"--target {', '.join(unmatched)} matches no resource the manifests declare or the "
            "stack owns (a target is KIND/ID, e.g. device/my-app/sensor-*)"
        )
    assemble(plan, parts)
    plan.warnings[:0] = lease_notes
    plan.created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    plan.tool_version = __version__
    estimate = estimate_seconds(plan, session)
    # A tenth of a second is all an estimate can claim.
    plan.estimated_seconds = None if estimate is None else round(estimate, 1)
    plan.diagnostics = [warning.to_json() for warning in loaded.warnings]
    desired = {t.provider.name: t.desired for t in session.targets}
    return PlanRun(plan, loaded, live, session.requests - before, desired)


async def lease_warnings(session: Session) -> list[str]:
    """What a run that takes no lease says about the apply leases on its targets: another
    apply running now (this read may show its half-done work), or a lease a run left behind.
    One warning per lease (on TTS a lease has a record in each owned application)."""
    warnings: list[str] = []
    now = utc_now()
    for target in session.targets:
        name = target.provider.describe().name
        try:
            leases = await target.provider.find_leases()
        except ReconcilerError as error:
            warnings.append(f"could not look for another apply's lease on {name}: {error}")
            continue
        seen: set[str] = set()
        for lease in leases:
            if lease.lease_id in seen:
                continue
            seen.add(lease.lease_id)
            why = lease.abandoned(now)
            if why is None:
                warnings.append(
                    f"another apply is running on {name}: {lease.describe()}. The live state "
                    "was read while it writes: it may show that run's half-done changes and be "
                    "out of date once it ends (read it again then)"
                )
            else:
                warnings.append(
                    f"an apply of {name} left its lease behind ({why}): {lease.describe()}. "
                    "That run may have stopped half-way; the next apply takes the lease over"
                )
    return warnings


def estimate_seconds(plan: Plan, session: Session) -> float | None:
    """The providers' estimates for their writes, one after the other (apply runs the
    providers in turn)."""
    if plan.write_requests == 0:
        return 0.0
    estimates = [
        t.provider.estimate_seconds([c for c in plan.changes if c.key.provider == t.provider.name])
        for t in session.targets
    ]
    known = [e for e in estimates if e is not None]
    return sum(known) if known else None


async def apply_plan(
    run: PlanRun,
    session: Session,
    options: RunOptions,
    *,
    lease: LeaseKeeper | None = None,
    interrupted: Callable[[], bool] = lambda: False,
) -> ApplyReport:
    """Apply the plan under `lease` (None: `--no-lock`), starting no more changes once
    `interrupted()` or the lease is lost.

    A target whose lease found no place (a TTS stack that owns no application yet: its first
    apply) is guarded from its first creations on: the creations up to the first application
    (organizations first) run alone, then the renewal takes the lease in that application.
    The lease record is create-only, so of two first applies exactly one gets it and goes on;
    the other starts nothing more. (The application's creation alone does not decide: a create
    answered 409 by a record carrying this stack's marker counts as this run's earlier attempt
    whose answer was lost.) A first creation that fails stops the run as well."""
    work = [
        Work(t.provider, t.desired, run.live.get(t.provider.name) or LiveState())
        for t in session.targets
    ]
    should_stop = _stop_reason(interrupted, lease)
    report = ApplyReport()
    changes = run.plan.changes
    first = _first_creations(changes, lease)
    if lease is not None and first:
        opened = await execute_plan(
            replace(run.plan, resources=first), work, should_stop=should_stop
        )
        report.results.extend(opened.results)
        report.interrupted = opened.interrupted
        failed_first = [r for r in opened.results if r.outcome == "failed"]
        if failed_first and lease.lost is None:
            failed = failed_first[0]
            lease.lost = (
                f"{failed.key} could not be created ({failed.error}): in the "
                "first apply of a stack (it owns nothing yet to hold the apply lease on) that "
                "first creation is what keeps a second first apply out, and another apply of "
                "the stack may be running"
            )
        elif all(r.outcome == "done" for r in opened.results):
            await lease.renew()  # takes the lease in the application just created, or loses it
        changes = [c for c in changes if all(c is not f for f in first)]
    rest = await execute_plan(
        replace(run.plan, resources=changes),
        work,
        parallelism=options.parallelism,
        progress=options.progress,
        should_stop=should_stop,
    )
    report.results.extend(rest.results)
    report.interrupted = report.interrupted or rest.interrupted
    report.lease_lost = rest.lease_lost  # changes were skipped for it
    # Reads left theirs in the plan (`read` takes them), so these were drawn while applying.
    report.warnings = [w for t in session.targets for w in t.provider.take_warnings()]
    return report


def _first_creations(
    changes: list[ResourceChange], lease: LeaseKeeper | None
) -> list[ResourceChange]:
    """For each target whose lease found no place: its creations in the plan's order (parents
    first) up to the first of the kind that gives the lease a place (TTS: an application, with
    the organizations before it); none when no creation gives it one."""
    if lease is None:
        return []
    first = []
    for provider, placed_by in lease.without_place.items():
        mine = [c for c in changes if c.key.provider == provider and c.action == "create"]
        places = [i for i, c in enumerate(mine) if c.key.kind == placed_by]
        if places:
            first.extend(mine[: places[0] + 1])
    return first


def _stop_reason(
    interrupted: Callable[[], bool], lease: LeaseKeeper | None
) -> Callable[[], StopReason | None]:
    """`execute_plan`'s `should_stop` for a run under `lease`: an interrupt, or the lease lost
    (or not taken)."""

    def check() -> StopReason | None:
        if interrupted():
            return "interrupted"
        if lease is not None and lease.lost is not None:
            return "lease lost"
        return None

    return check


@asynccontextmanager
async def hold_lease(
    session: Session, options: RunOptions, note: Note = lambda _text: None
) -> AsyncIterator[LeaseKeeper | None]:
    """The apply lease of every target for the duration of the block (None with `--no-lock`):
    taken before anything is read (so the plan is made from a state no other apply changes),
    renewed in the background, released at the end, after a failure or an interrupt too.
    Raises LeaseHeld when another run holds it beyond `lock_timeout`."""
    if not options.lock:
        yield None
        return
    keeper = LeaseKeeper(
        [t.provider for t in session.targets],
        ttl=options.lease_ttl,
        timeout=options.lock_timeout,
        poll=options.lease_poll,
        note=note,
    )
    await keeper.acquire()
    try:
        yield keeper
    finally:
        await keeper.release()


async def force_unlock(session: Session, lease_id: str) -> tuple[list[Lease], list[Lease]]:
    """Remove lease `lease_id` from every target, whoever holds it: (removed, the leases found
    that have another id)."""
    removed: list[Lease] = []
    others: list[Lease] = []
    for target in session.targets:
        broken = await target.provider.break_lease(lease_id)
        removed += broken
        if not broken:
            others += await target.provider.find_leases()
    return removed, others


# -- the apply policy -------------------------------------------------------------------------


class ApplyRefused(ReconcilerError):
    """Apply does not start: the plan cannot or may not be applied as it is."""


class PlanStackMismatch(ApplyRefused):
    """A saved plan made for other manifests or another target."""


class PlanBlocked(ApplyRefused):
    """A safety check stops the plan (`--allow-replace`, `--force`)."""


class ApprovalNeeded(ApplyRefused):
    """Nobody can confirm the changes: not on a terminal, no `--auto-approve`, no saved plan."""


def saved_plan_options(saved: Plan, options: RunOptions) -> RunOptions:
    """The saved plan's options decide what it meant; the manifests default to the ones it was
    planned from. Raises UsageError when the command line gives one of those options another
    value: applying the plan would silently not do what the command line asks."""
    planned: dict[str, Any] = {
        "prune": bool(saved.options.get("prune", False)),
        "allow_replace": bool(saved.options.get("allow_replace", False)),
        "rotate_keys": bool(saved.options.get("rotate_keys", False)),
        "targets": tuple(saved.options.get("targets", ())),
        "rotate": tuple(saved.options.get("rotate", ())),
    }
    given: dict[str, Any] = {
        # An option left at its default says nothing; prune's default is None (the target's
        # own setting), so --no-prune against a pruning plan is a difference too.
        "prune": options.prune,
        "allow_replace": options.allow_replace or None,
        "rotate_keys": options.rotate_keys or None,
        "targets": options.targets or None,
        "rotate": options.rotate or None,
    }
    for name, value in given.items():
        if value is not None and value != planned[name]:
            flag = _SAVED_PLAN_FLAGS[name]
            there = _describe_option(planned[name])
            raise UsageError(
                f"apply --plan: {flag} differs from the saved plan ({there} there); a saved plan "
                f"is applied with the options it was planned with: plan again with {flag}, or "
                f"leave {flag} out"
            )
    return replace(
        options,
        paths=list(options.paths) or [Path(p) for p in saved.manifests],
        saved_plan=True,
        **planned,
    )


_SAVED_PLAN_FLAGS = {
    "prune": "--prune/--no-prune",
    "allow_replace": "--allow-replace",
    "rotate_keys": "--rotate-keys",
    "targets": "--target",
    "rotate": "--rotate",
}


def _describe_option(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return ", ".join(value) if value else "none"


def review_saved_plan(run: PlanRun, saved: Plan) -> list[ResourceResult]:
    """Narrow the fresh plan in `run` to the saved plan's changes that still hold; the others
    come back as stale results. Raises PlanStackMismatch."""
    if saved.stack != run.plan.stack:
        raise PlanStackMismatch(
            f"the plan is for stack {saved.stack!r}, the manifests for {run.plan.stack!r}"
        )
    run.plan, stale = check_saved_plan(saved, run.plan)
    return stale


def needs_confirmation(plan: Plan, *, saved: bool, auto_approve: bool, interactive: bool) -> bool:
    """Whether to ask before applying `plan` (which has changes): never for a reviewed saved
    plan or with `--auto-approve`; on a terminal otherwise. Raises PlanBlocked when a safety
    check stops it, ApprovalNeeded when it needs a person and none can answer."""
    if plan.blocked:
        raise PlanBlocked("apply blocked: " + "; ".join(plan.blocked))
    if saved or auto_approve:
        return False
    if not interactive:
        raise ApprovalNeeded(
            "not on a terminal: pass --auto-approve, or apply a saved plan with --plan"
        )
    return True


def check_saved_plan_scope(saved: Plan, session: Session, options: RunOptions) -> None:
    """Refuse, before reading anything, a saved plan made for other manifests or another
    target: its resources would be checked against the wrong desired state or server."""
    here = sorted(os.path.normpath(p) for p in map(str, options.paths))
    planned = sorted(os.path.normpath(p) for p in saved.manifests)
    if here != planned:
        raise PlanStackMismatch(
            f"the plan was made from the manifests {', '.join(planned)}, not "
            f"{', '.join(here)}: apply it without paths, or plan again"
        )
    now = {t.provider.name: t.provider.describe() for t in session.targets}
    for target in saved.targets:
        current = now.get(target.provider)
        planned_urls = sorted({e.url for e in target.endpoints.values()})
        current_urls = sorted({e.url for e in current.endpoints.values()}) if current else []
        if current is None or current.name != target.name or planned_urls != current_urls:
            where = f"{target.name} at {', '.join(planned_urls)}"
            found = f"{current.name} at {', '.join(current_urls)}" if current else "no such target"
            raise PlanStackMismatch(
                f"the plan was made for {target.provider} target {where}; the manifests and "
                f"--url now point at {found}: plan again for this target"
            )


def check_saved_plan(saved: Plan, fresh: Plan) -> tuple[Plan, list[ResourceResult]]:
    """Keep the saved plan's changes whose resources still look as they did when planned.

    A resource whose manifests or live versions changed since the plan is skipped and reported,
    never applied on the strength of a plan that no longer describes it. A live version is what
    the provider says stands for the resource as planned (a timestamp, an etag, or a keyed
    digest of the managed fields where a server rewrites its records by itself, as network
    traffic does), so a busy device is not stale while nothing the plan manages changed.
    """
    fresh_by_key = {r.key: r for r in fresh.resources}
    kept: list[ResourceChange] = []
    stale: list[ResourceResult] = []
    for change in saved.changes:
        now = fresh_by_key.get(change.key)
        reason = ""
        if now is None:
            reason = "no longer planned (manifests or live state changed since the plan)"
        elif now.desired_digest != change.desired_digest:
            reason = "manifests changed since the plan"
        elif _versions(now) != _versions(change):
            planned, current = _versions(change), _versions(now)
            changed = sorted(e for e in {*planned, *current} if planned.get(e) != current.get(e))
            reason = f"changed on the server since the plan (endpoint {', '.join(changed)})"
        elif now.action != change.action or [s.to_json() for s in now.steps] != [
            s.to_json() for s in change.steps
        ]:
            reason = "the changes needed differ from the plan"
        if reason or now is None:
            stale.append(ResourceResult(change.key, "stale", change.action, reason))
        else:
            kept.append(now)
    return replace(fresh, resources=kept), stale


def _versions(change: ResourceChange) -> dict[str, Any]:
    return {k: v for k, v in change.live_versions.items() if v}
