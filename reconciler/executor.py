"""Hop 5, the provider-neutral half: run a plan's changes through their providers.

Concurrently across resources (at most `parallelism` groups at once per provider), each
resource's steps in order (the provider's `execute`), kinds in the provider's order: creates and
updates first, parents before children, then deletes in reverse kind order; a deletion that frees
a unique key another change claims (a device's EUI pair, when a device moves) runs before all of
them. One failing resource never stops the others, and what was done stays done; a change whose
parent failed to be created, or whose unique key was not freed, is skipped. After
`should_stop()` names a reason (an interrupt, or the apply lease lost) no new group is started
(the ones in flight finish their steps) and the rest is reported as skipped, with that reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from reconciler.plan.model import ApplyReport, Plan, ResourceChange, ResourceResult
from reconciler.provider import ProgressCallback, Provider
from reconciler.resources import DesiredState, LiveState, ResourceKey

# Why an apply starts no more changes: the user interrupted it, or a renewal found the apply
# lease removed or taken over (another run may be writing now).
StopReason = Literal["interrupted", "lease lost"]

SKIPPED_BECAUSE: dict[StopReason, str] = {
    "interrupted": "not started: interrupted",
    "lease lost": (
        "not started: the apply lease was lost (removed or taken over by another run), so no "
        "more changes were started"
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
    not_freed: dict[str, ResourceKey] = {}  # unique key -> the holder whose deletion failed

    def skip_reason(change: ResourceChange) -> str:
        stop = should_stop()
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
                return f"not started: {not_freed[unique]} (holding {unique}) was not deleted"
        return ""

    async def run(group: list[ResourceChange]) -> None:
        async with semaphore:
            reason = skip_reason(group[0])
            if reason:
                results = [ResourceResult(c.key, "skipped", c.action, reason) for c in group]
            else:
                results = await _execute_group(provider, group, work)
            report.results.extend(results)
            for change, result in zip(group, results, strict=True):
                if result.outcome == "failed" and change.action in ("create", "replace"):
                    not_created.add(change.key)
                if result.outcome != "done":
                    not_freed.update(dict.fromkeys(change.releases, change.key))
        finished(len(group))

    upserts = [c for c in changes if c.action != "delete"]
    claimed = {unique for c in upserts for unique in c.claims}
    freeing = [c for c in changes if c.action == "delete" and claimed.intersection(c.releases)]
    first = {id(c) for c in freeing}
    deletes = [c for c in changes if c.action == "delete" and id(c) not in first]
    for kind in reversed(provider.kind_order):
        of_kind = [c for c in freeing if c.key.kind == kind]
        await asyncio.gather(*(run(g) for g in provider.groups(kind, True, of_kind)))
    for kind in provider.kind_order:
        of_kind = [c for c in upserts if c.key.kind == kind]
        await asyncio.gather(*(run(g) for g in provider.groups(kind, False, of_kind)))
    for kind in reversed(provider.kind_order):
        of_kind = [c for c in deletes if c.key.kind == kind]
        await asyncio.gather(*(run(g) for g in provider.groups(kind, True, of_kind)))


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
