"""Continuous reconciliation (`reconciler watch`): notice live changes as they happen, report the
drift they make, and with `heal` repair it, as Argo CD's self-heal does.

Provider-neutral: a provider offers a `Watcher` (reconciler.provider) or none. Per target:

1. **Full sweep** at start and every `full_interval`: the provider's full read (as `plan`), the
   whole plan, drift reported and healed.
2. **Changes** from the provider's stream (a TTS event stream): the resources they name are
   re-read on the endpoints they name, planned, reported with what the server says about the
   change (its name, paths, who made it), and healed.
3. **Cheap sweep** every `interval`: the provider refreshes what its API can list by change
   time and what publishes no changes (TTS: webhooks, links); what differs is planned as in 2.
   A target without a watcher (an IoT Hub) is read in full at this interval instead.
4. **A lost stream** reconnects with backoff, asks for the changes since the last one seen (the
   server replays what it still keeps), and is followed by a cheap sweep; after an outage longer
   than the server keeps changes (`history`), by a full sweep.

Healing goes through the same planner (safety thresholds counted over every owned resource,
replacements refused, prune only as the target's own `safety.prune` says) and the same
executor as `apply`, under the same apply lease (a repair never runs in the middle of an
apply; one refused by a held lease is re-checked at the next sweep). It heals towards the
manifests as they are on disk: every `manifest_poll` seconds it looks whether any file of the
tree changed (a `git pull` of a GitOps checkout), and if so loads and validates it again; a
tree that does not load is reported and the last good one kept, a good one replaces the
targets and is healed towards with a full sweep (as a restart would). One worker does all
reading, planning and writing, so the cached live state is never changed by two things at
once. No printing here: `report` gets each line (the CLI prints them).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.diagnostics import ManifestError, ReconcilerError
from reconciler.engine import (
    Loaded,
    RunOptions,
    Session,
    Target,
    connect,
    hold_lease,
    load,
    plan_options,
)
from reconciler.executor import Work, execute_plan
from reconciler.lease import LeaseHeld
from reconciler.plan.model import Plan, ResourceChange
from reconciler.planning import ProviderPlan, assemble, plan_target
from reconciler.provider import LiveChange, StreamLost, Watcher
from reconciler.resources import LiveState, ResourceKey

# Replays reach back this far before the moment they must cover: the clocks of this machine and
# the server differ by a few seconds (repeating a change costs one re-read; missing one does
# not heal it).
REPLAY_OVERLAP = 30.0

# (what: drift|healed|failed|blocked|warning|info|error, line)
Report = Callable[[str, str], None]


@dataclass(frozen=True)
class WatchOptions:
    interval: float = 60.0  # seconds between cheap sweeps
    full_interval: float = 6 * 3600.0  # seconds between full sweeps
    heal: bool = False
    debounce: float = 0.2  # gather the changes of one burst (a Console save writes 2-4 records)
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    # How long the targets keep changes to replay after a lost stream (the real TTS: about 10
    # minutes); a longer outage is followed by a full sweep.
    history: float = 600.0
    # Seconds between looks at the manifest tree (file sizes and modification times).
    manifest_poll: float = 5.0


@dataclass
class Metrics:
    """Counts since the start (exported in the Prometheus text format by `metrics_text`)."""

    drift_found: int = 0
    healed: int = 0
    heal_failed: int = 0
    heal_blocked: int = 0
    changes_seen: int = 0
    stream_reconnects: int = 0
    cheap_sweeps: int = 0
    full_sweeps: int = 0
    reloads: int = 0
    errors: int = 0
    requests: int = 0  # updated from the providers' counters

    def summary(self) -> str:
        return (
            f"{self.drift_found} drift found, {self.healed} healed, {self.heal_failed} failed, "
            f"{self.heal_blocked} blocked; {self.changes_seen} changes seen, "
            f"{self.cheap_sweeps} cheap and {self.full_sweeps} full sweeps, "
            f"{self.reloads} manifest reloads, "
            f"{self.stream_reconnects} stream reconnects, {self.requests} requests, "
            f"{self.errors} errors"
        )


METRICS_HELP: dict[str, str] = {
    "drift_found": "Resources found differing from the manifests",
    "healed": "Drifted resources repaired",
    "heal_failed": "Repairs that failed",
    "heal_blocked": "Repairs a safety rule stopped",
    "changes_seen": "Live changes noticed (events and sweep findings)",
    "stream_reconnects": "Change streams lost and reconnected",
    "cheap_sweeps": "Cheap sweeps run",
    "full_sweeps": "Full sweeps run",
    "reloads": "Changed manifest trees loaded and healed towards",
    "errors": "Reads or writes that failed (retried at the next sweep)",
    "requests": "Requests sent to the targets",
}


def metrics_text(metrics: Metrics) -> str:
    """The Prometheus text exposition of `metrics` (counters `reconciler_watch_<name>_total`)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily

    class Collector:
        def collect(self) -> Any:
            for name, help_text in METRICS_HELP.items():
                family = CounterMetricFamily(f"reconciler_watch_{name}", help_text)
                family.add_metric([], getattr(metrics, name))
                yield family

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry).decode()


def tree_state(paths: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """What tells a changed manifest tree: each file's path, size and modification time.
    Hidden files and directories (`.git`) are left out: a fetch changes them, not the tree."""
    found: list[tuple[str, int, int]] = []

    def note(path: str) -> None:
        try:
            stat = os.stat(path)
        except OSError:
            return  # gone meanwhile: the next look sees the tree without it
        found.append((path, stat.st_size, stat.st_mtime_ns))

    for root in paths:
        if not root.is_dir():
            note(str(root))
            continue
        for directory, subdirectories, files in os.walk(root):
            subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    note(os.path.join(directory, name))
    return tuple(found)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _TargetWatch:
    target: Target
    live: LiveState = field(default_factory=LiveState)
    watcher: Watcher | None = None
    last_sweep: float = 0.0  # Unix time the last sweep (of either kind) started
    # The time of the last change the stream delivered (replayed from after a reconnect).
    after: str | None = None
    # Drift not healed because another run held the apply lease: re-checked at the next sweep.
    pending: set[ResourceKey] = field(default_factory=set)


class Watch:
    def __init__(
        self,
        loaded: Loaded,
        session: Session,
        run_options: RunOptions,
        options: WatchOptions,
        report: Report,
    ) -> None:
        self.loaded = loaded
        self.session = session
        self.run_options = run_options
        self.options = options
        self.report = report
        self.metrics = Metrics()
        self.targets = _watches(session)
        self.work: asyncio.Queue[tuple[str, _TargetWatch | None, list[LiveChange]]] = (
            asyncio.Queue()
        )
        self.tree = tree_state(run_options.paths)
        self._following: list[asyncio.Task[None]] = []
        self._earlier_requests = 0  # those of the sessions a reload replaced
        self._warned: set[str] = set()

    def count_requests(self) -> int:
        """Requests sent to the targets since the start (kept in the metrics)."""
        self.metrics.requests = self._earlier_requests + self.session.requests
        return self.metrics.requests

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> Metrics:
        """Watch until `stop` is set; the metrics at the end."""
        try:
            await self._start()
        except BaseException:
            await self._stop_following()  # the first full sweep failed: the run ends
            raise
        tasks = [asyncio.create_task(self._timers(stop))]
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                getting = asyncio.create_task(self.work.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    break
                items = [getting.result()]
                if items[0][0] == "changes":
                    # A burst (one Console save touches several registries) is one batch.
                    await asyncio.sleep(self.options.debounce)
                while not self.work.empty():
                    items.append(self.work.get_nowait())
                for kind, state, changes in _batched(items):
                    await self._handle(kind, state, changes)
        finally:
            stopping.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._stop_following()
        self.count_requests()
        return self.metrics

    async def _start(self) -> None:
        """A full sweep of every target, then their change streams."""
        try:
            for state in self.targets:
                # The stream starts after the full sweep and replays from before it, so a
                # change made while the sweep reads is not lost.
                state.after = _timestamp(time.time() - REPLAY_OVERLAP)
                await self._full_sweep(state)
        finally:
            self._following = [
                asyncio.create_task(self._follow(state))
                for state in self.targets
                if state.watcher is not None
            ]

    async def _stop_following(self) -> None:
        for task in self._following:
            task.cancel()
        await asyncio.gather(*self._following, return_exceptions=True)
        self._following = []

    async def _reload(self) -> None:
        """Load the manifest tree again if it changed; heal towards it when it is good."""
        tree = tree_state(self.run_options.paths)
        if tree == self.tree:
            return
        self.tree = tree
        try:
            loaded = load(self.run_options)
            session = connect(loaded, self.run_options)
        except ReconcilerError as error:
            self.metrics.errors += 1
            self.report(
                "error",
                f"the manifests changed but do not load ({error}); still healing towards the "
                "last good ones",
            )
            if isinstance(error, ManifestError):
                for diagnostic in error.diagnostics:
                    if diagnostic.severity == "error":
                        self.report("error", str(diagnostic))
            return
        for diagnostic in loaded.warnings:
            self.report("warning", str(diagnostic))
        await self._stop_following()
        replaced = self.session
        self._earlier_requests += replaced.requests
        self.loaded, self.session, self.targets = loaded, session, _watches(session)
        await replaced.aclose()
        self.metrics.reloads += 1
        self.report("info", "the manifests changed: loaded again; a full sweep heals towards them")
        await self._start()

    def _report_warnings(self, target: Target, more: Sequence[str] = ()) -> None:
        """The servers' warnings (X-Warning answers: a deprecated field, what will become an
        error) and the read's own, each the first time it comes."""
        for line in [*more, *target.provider.take_warnings()]:
            text = line.rsplit(" (", 1)[0] if line.endswith(" requests)") else line
            if text not in self._warned:
                self._warned.add(text)
                self.report("warning", f"{target.provider.name}: {line}")

    async def _handle(
        self, kind: str, state: _TargetWatch | None, changes: list[LiveChange]
    ) -> None:
        if kind == "reload":
            try:
                await self._reload()
            except ReconcilerError as error:
                self.metrics.errors += 1
                self.report("error", f"{error} (retried at the next sweep)")
            self.count_requests()
            return
        if state is None or state not in self.targets:
            return  # queued for targets a reload replaced
        try:
            if kind == "full":
                await self._full_sweep(state)
            elif kind == "sweep":
                await self._cheap_sweep(state)
            else:
                await self._changed(state, changes)
        except ReconcilerError as error:
            self.metrics.errors += 1
            self.report(
                "error", f"{state.target.provider.name}: {error} (retried at the next sweep)"
            )
        self.count_requests()

    async def _timers(self, stop: asyncio.Event) -> None:
        next_cheap = time.monotonic() + self.options.interval
        next_full = time.monotonic() + self.options.full_interval
        next_look = time.monotonic() + self.options.manifest_poll
        while not stop.is_set():
            await asyncio.sleep(max(0.0, min(next_cheap, next_full, next_look) - time.monotonic()))
            now = time.monotonic()
            if now >= next_look:
                next_look = now + self.options.manifest_poll
                if tree_state(self.run_options.paths) != self.tree:
                    self.work.put_nowait(("reload", None, []))
            if now >= next_full:
                next_full = now + self.options.full_interval
                next_cheap = now + self.options.interval
                for state in self.targets:
                    self.work.put_nowait(("full", state, []))
            elif now >= next_cheap:
                next_cheap = now + self.options.interval
                for state in self.targets:
                    self.work.put_nowait(("sweep" if state.watcher else "full", state, []))

    async def _follow(self, state: _TargetWatch) -> None:
        """Follow the target's change stream for ever: reconnect when lost, then sweep."""
        assert state.watcher is not None
        delay = self.options.reconnect_min
        lost_at: float | None = None  # when the stream was lost (None: connected)

        def connected() -> None:
            nonlocal delay, lost_at
            if lost_at is not None:
                self.report("info", f"{state.target.provider.name}: change stream reconnected")
            delay, lost_at = self.options.reconnect_min, None

        while True:
            try:
                changes = state.watcher.changes(state.target.desired, state.after, connected)
                async for change in changes:
                    if change.time:
                        state.after = change.time
                    self.work.put_nowait(("changes", state, [change]))
                reason = "the stream ended"
            except StreamLost as error:
                reason = str(error)
            self.metrics.stream_reconnects += 1
            if lost_at is None:
                lost_at = time.time()
                # Whatever came last is what the server replays from.
                state.after = state.after or _timestamp(lost_at - REPLAY_OVERLAP)
            self.report(
                "info",
                f"{state.target.provider.name}: change stream lost ({reason}); "
                f"reconnecting in {delay:.0f} s",
            )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(self.options.reconnect_max, delay * 2)
            # What the gap hid: replayed from `after` where the server still keeps it; the
            # sweep covers what it cannot replay.
            kind = "full" if time.time() - lost_at > self.options.history else "sweep"
            self.work.put_nowait((kind, state, []))

    # -- sweeps and changes -------------------------------------------------------------------

    async def _full_sweep(self, state: _TargetWatch) -> None:
        target = state.target
        state.last_sweep = time.time()
        self.metrics.full_sweeps += 1
        state.live = await target.provider.read(target.desired, prune=True)
        self._report_warnings(target, state.live.warnings)
        part = plan_target(target.provider, target.desired, state.live, self._plan_options(state))
        await self._act(state, part, {})
        self.count_requests()
        self.report("info", f"{target.provider.name}: full sweep: {self.metrics.summary()}")

    async def _cheap_sweep(self, state: _TargetWatch) -> None:
        assert state.watcher is not None
        since, state.last_sweep = state.last_sweep, time.time()
        self.metrics.cheap_sweeps += 1
        found = await state.watcher.sweep(state.target.desired, state.live, since)
        found += [LiveChange(key=key, source="sweep") for key in sorted(state.pending)]
        state.pending.clear()
        if found:
            await self._changed(state, found)

    async def _changed(self, state: _TargetWatch, changes: list[LiveChange]) -> None:
        target = state.target
        relevant = [
            c for c in changes if c.key in target.desired.resources or c.key in state.live.owned
        ]
        if not relevant:
            return
        self.metrics.changes_seen += len(relevant)
        unread = [c for c in relevant if not c.read]
        if unread and state.watcher is not None:
            await state.watcher.reread(target.desired, state.live, unread)
        why: dict[ResourceKey, list[LiveChange]] = {}
        for change in relevant:
            why.setdefault(change.key, []).append(change)
        part = plan_target(
            target.provider, target.desired, state.live, self._plan_options(state), only=set(why)
        )
        await self._act(state, part, why)

    def _plan_options(self, state: _TargetWatch) -> Any:
        return plan_options(state.target, self.run_options)

    async def _act(
        self, state: _TargetWatch, part: ProviderPlan, why: dict[ResourceKey, list[LiveChange]]
    ) -> None:
        """Report the drift in `part` and, with heal, repair it through the executor."""
        drifted = [r for r in part.resources if r.changed]
        for change in [*drifted, *part.orphans]:
            self.metrics.drift_found += 1
            self.report("drift", _drift_line(change, _cause(change, why.get(change.key, []))))
        if not drifted or not self.options.heal:
            return
        if part.blocked:
            self.metrics.heal_blocked += len(drifted)
            self.report("blocked", "not healed: " + "; ".join(part.blocked))
            return
        plan = Plan(stack=state.target.desired.stack, targets=[state.target.provider.describe()])
        assemble(plan, [ProviderPlan(resources=drifted)])
        work = Work(state.target.provider, state.target.desired, state.live)
        try:
            # The apply lease, as apply takes it: never a repair in the middle of an apply.
            async with hold_lease(self.session, self.run_options):
                applied = await execute_plan(plan, [work], parallelism=self.run_options.parallelism)
        except LeaseHeld as held:
            self._report_warnings(state.target)
            self.metrics.heal_blocked += len(drifted)
            # Checked again at the next sweep (a re-read: the apply may have repaired them).
            state.pending |= {change.key for change in drifted}
            self.report("blocked", f"not healed now: {held}")
            return
        self._report_warnings(state.target)
        healed: list[LiveChange] = []
        for result in applied.results:
            if result.outcome == "done":
                self.metrics.healed += 1
                self.report("healed", f"healed {result.key}")
            else:
                self.metrics.heal_failed += 1
                self.report("failed", f"not healed {result.key}: {result.error}")
        for change in drifted:
            healed.append(
                LiveChange(
                    key=change.key,
                    source="heal",
                    endpoints=frozenset(step.endpoint for step in change.steps),
                )
            )
        # The cache must hold what the servers hold now, not what they held before the repair.
        if state.watcher is not None:
            await state.watcher.reread(state.target.desired, state.live, healed)


def _watches(session: Session) -> list[_TargetWatch]:
    return [_TargetWatch(t, watcher=t.provider.watcher()) for t in session.targets]


def _batched(
    items: list[tuple[str, _TargetWatch | None, list[LiveChange]]],
) -> list[tuple[str, _TargetWatch | None, list[LiveChange]]]:
    """The queued work in order, the changes of each target gathered into its first batch and
    repeated sweeps of a target run once."""
    batches: list[tuple[str, _TargetWatch | None, list[LiveChange]]] = []
    for kind, state, changes in items:
        same = next((b for b in batches if b[0] == kind and b[1] is state), None)
        if same is None:
            batches.append((kind, state, list(changes)))
        else:
            same[2].extend(changes)
    return batches


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _cause(change: ResourceChange, seen: list[LiveChange]) -> LiveChange | None:
    """The latest change seen that explains the drift: on an endpoint the repair writes, with
    paths (when it names them) among those that differ. A replay after a reconnect also
    brings older changes of the resource."""
    endpoints = {step.endpoint for step in change.steps}
    paths = {c.path for step in change.steps for c in step.changes}
    for candidate in reversed(seen):
        on_endpoint = not candidate.endpoints or bool(candidate.endpoints & endpoints)
        on_paths = not candidate.paths or not paths or bool(set(candidate.paths) & paths)
        if on_endpoint and on_paths:
            return candidate
    return seen[-1] if seen else None


def _drift_line(change: ResourceChange, cause: LiveChange | None) -> str:
    if change.action == "delete":
        what = change.reason
    else:
        parts = []
        for step in change.steps:
            paths = sorted({c.path for c in step.changes}) or step.paths
            parts.append(f"{step.endpoint.upper()} {', '.join(paths) or step.operation}")
        what = f"{change.action}: " + "; ".join(parts) if parts else change.action
    line = f"drift {change.key}: {what}"
    if cause is not None and cause.source not in ("sweep", "heal"):
        detail = cause.source
        if cause.paths:
            detail += f" [{', '.join(cause.paths[:10])}]"
        if cause.actor:
            detail += f" by {cause.actor}"
        line += f" ({detail})"
    elif cause is not None:
        line += " (found by the sweep)"
    return line
