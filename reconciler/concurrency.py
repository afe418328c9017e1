"""Running coroutines together so that none outlives a failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any


async def gather_or_cancel(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    """Their results, in order; the first failure cancels the rest and is raised as it is.
    `asyncio.gather` alone leaves the others running, and `asyncio.TaskGroup` wraps the error in
    an ExceptionGroup, which callers matching typed errors would not catch."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
