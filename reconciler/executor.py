"""Hop 5, the provider-neutral half: run a plan's changes through their providers.

Concurrently across resources (at most `parallelism` groups at once per provider), each
resource's steps in order (the provider's `execute`), kinds in the provider's order: creates and
updates first, parents before children, then deletes in reverse kind order; a deletion that frees
a unique key another change claims (a device's EUI pair, when a device moves) runs before all of
them, and so does the deletion half of such a replacement (devices swapping EUIs: both are
deleted, then both registered). One failing resource never stops the others, and what was done
stays done; a change whose parent failed to be created, or whose unique key was not freed, is
skipped (a replacement already deleted then fails). After `should_stop()` names a reason (an
interrupt, or the apply lease lost) no new group is started (the ones in flight finish their
steps, and a replacement deleted first is registered again) and the rest is reported as skipped,
with that reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from reconciler.plan.model import ApplyReport, Plan, ResourceChange, ResourceResult
from reconciler.provider import ProgressCallback, Provider
from reconciler.resources import DesiredState, LiveState, ResourceKey

# Why an apply starts no more changes: the user interrupted it, or the run does not hold the
# apply lease (a renewal found it removed or taken over, or a first apply could not take it):
# another run may be writing now.
StopReason = Literal["interrupted", "lease lost"]

SKIPPED_BECAUSE: dict[StopReason, str] = {
    "interrupted": "not started: interrupted",
    "lease lost": (
        "not started: the apply lease was lost (removed or taken over by another run) or, in a "
        "first apply, could not be taken, so no more changes were started"
    ),
}


@dataclass
class Work:
    """What one provider needs to apply its share of a plan."""

    provider: Provider
    desired: DesiredState
    live: LiveState


async def execute_plan(
    plan: Plan,
    work: Sequence[Work],
    *,
    parallelism: int = 16,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], StopReason | None] = lambda: None,
) -> ApplyReport:
    report = ApplyReport()
    changes = plan.changes
    total = len(changes)
    done = 0

    def finished(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress("apply", done, total)

    for item in work:
        mine = [c for c in changes if c.key.provider == item.provider.name]
        if mine:
            await _execute_provider(item, mine, report, max(1, parallelism), should_stop, finished)
    return report


async def _execute_provider(
    work: Work,
    changes: list[ResourceChange],
    report: ApplyReport,
    parallelism: int,
    should_stop: Callable[[], StopReason | None],
    finished: Callable[[int], None],
) -> None:
    provider = work.provider
    semaphore = asyncio.Semaphore(parallelism)
    not_created: set[ResourceKey] = set()
    # unique key -> the holder whose deletion (or update giving it up) failed, and that action
    not_freed: dict[str, tuple[ResourceKey, str]] = {}
    # Replacements whose deletion half ran first (it frees a key another change claims, as in
    # an EUI swap): their registration half is in flight, so it runs even after a stop.
    deleted_first: set[ResourceKey] = set()

    def skip_reason(change: ResourceChange) -> str:
        stop = None if change.key in deleted_first else should_stop()
        if stop == "interrupted":
            report.interrupted = True
        elif stop == "lease lost":
            report.lease_lost = True
        if stop is not None:
            return SKIPPED_BECAUSE[stop]
        parent = provider.depends_on(change.key)
        if parent is not None and parent in not_created and change.action != "delete":
            return f"not started: {parent} was not created"
        for unique in change.claims:
            if unique in not_freed:
                holder, action = not_freed[unique]
                done = "deleted" if action in ("delete", "replace") else "changed"
                return f"not started: {holder} (holding {unique}) was not {done}"
        return ""

    def result_of_skip(change: ResourceChange, reason: str) -> ResourceResult:
        if change.key in deleted_first:  # deleted already: not registered is a failure
            reason = reason.replace("not started:", "deleted, but not registered again:", 1)
            return ResourceResult(
                change.key, "failed", change.action, f"{reason}; the next apply registers it"
            )
        return ResourceResult(change.key, "skipped", change.action, reason)

    async def run(group: list[ResourceChange], deletion_half: bool = False) -> None:
        async with semaphore:
            reason = skip_reason(group[0])
            if reason:
                results = [result_of_skip(c, reason) for c in group]
            else:
                results = await _execute_group(provider, group, work)
            reported = 0
            for change, result in zip(group, results, strict=True):
                if deletion_half and result.outcome == "done":
                    deleted_first.add(change.key)  # reported with its registration half
                    continue
                reported += 1
                report.results.append(result)
                if result.outcome == "failed" and change.action in ("create", "replace"):
                    not_created.add(change.key)
                if result.outcome != "done":
                    not_freed.update(dict.fromkeys(change.releases, (change.key, change.action)))
        finished(reported)

    upserts = [c for c in changes if c.action != "delete"]
    claimed = {unique for c in upserts for unique in c.claims}
    freeing = [c for c in changes if c.action == "delete" and claimed.intersection(c.releases)]
    first = {id(c) for c in freeing}
    deletes = [c for c in changes if c.action == "delete" and id(c) not in first]
    # A replacement that frees a key another change claims: its deletion half runs with the
    # freeing deletions, its registration half in its place among the upserts.
    halves = [
        _split_replacement(c)
        for c in upserts
        if c.action == "replace" and claimed.intersection(c.releases)
    ]
    registering = {id(whole): rest for whole, _deletion, rest in halves}
    upserts = [registering.get(id(c), c) for c in upserts]
    for kind in reversed(provider.kind_order):
        of_kind = [c for c in freeing if c.key.kind == kind]
        await asyncio.gather(*(run(g) for g in provider.groups(kind, True, of_kind)))
        halves_of_kind = [
            [deletion] for _whole, deletion, _rest in halves if deletion.key.kind == kind
        ]
        await asyncio.gather(*(run(g, deletion_half=True) for g in halves_of_kind))
    # A replacement whose deletion half failed (or never started) is reported as such: its
    # registration half does not run.
    pending = {id(rest) for _whole, _deletion, rest in halves}
    upserts = [c for c in upserts if id(c) not in pending or c.key in deleted_first]
    for kind in provider.kind_order:
        of_kind = [c for c in upserts if c.key.kind == kind]
        for wave in _waves(of_kind):
            await asyncio.gather(*(run(g) for g in provider.groups(kind, False, wave)))
    for kind in reversed(provider.kind_order):
        of_kind = [c for c in deletes if c.key.kind == kind]
        await asyncio.gather(*(run(g) for g in provider.groups(kind, True, of_kind)))


def _waves(changes: list[ResourceChange]) -> list[list[ResourceChange]]:
    """`changes` in waves: one that claims a key another of them gives up by an update (a
    gateway's old EUI) waits for that update. Without such keys, one wave; a cycle (which the
    plan blocks) runs as one wave too."""
    waves: list[list[ResourceChange]] = []
    pending = changes
    while pending:
        given_up = {u: c.key for c in pending if c.action == "update" for u in c.releases}
        wave = [
            c for c in pending if not any(given_up.get(u, c.key) != c.key for u in c.claims)
        ] or pending
        waves.append(wave)
        started = {id(c) for c in wave}
        pending = [c for c in pending if id(c) not in started]
    return waves


def _split_replacement(
    change: ResourceChange,
) -> tuple[ResourceChange, ResourceChange, ResourceChange]:
    """(the replacement, its deletion half, its registration half): a replacement's steps are
    its deletions, then its registrations."""
    deletions = 0
    while deletions < len(change.steps) and change.steps[deletions].operation == "delete":
        deletions += 1
    return (
        change,
        replace(change, steps=change.steps[:deletions]),
        replace(change, steps=change.steps[deletions:]),
    )


async def _execute_group(
    provider: Provider, group: list[ResourceChange], work: Work
) -> list[ResourceResult]:
    try:
        return await provider.execute(group, work.desired, work.live)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        # A bug in the provider, not an answer of the server: isolate it to these resources.
        # Its text could hold data (even a secret), so only its type is reported.
        return [
            ResourceResult(c.key, "failed", c.action, f"internal error ({type(error).__name__})")
            for c in group
        ]
