"""Per-SKU operation throttles with the hub's traffic shaping.

Each throttled operation class has a rate. Requests within the burst allowance run at once;
requests over it are queued and released at the limit rate; a request that would wait longer
than the backlog allows is refused with 429 ThrottlingBacklogTimeout, as the hub refuses
requests when its queue is full.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import Enum

from reconciler.providers.iothub.rules import throttle_rates


class OperationClass(Enum):
    IDENTITY = "CRUD"  # identity registry create, retrieve, list, update, delete
    TWIN_READ = "TwinRead"
    TWIN_UPDATE = "TwinUpdate"
    QUERY = "Query"


def rates(sku: str, units: int) -> dict[OperationClass, float]:
    """Operations per second for a hub of `units` units of `sku`: the provider paces by the same
    published throttles, so both read them from one table."""
    return {OperationClass[op.name]: rate for op, rate in throttle_rates(sku, units).items()}


@dataclass
class Shaper:
    """GCRA with a queue: `reserve` says how long to wait, or None when the backlog is full."""

    rate: float  # operations per second
    burst: float  # operations allowed at once
    backlog_s: float
    tat: float = 0.0  # theoretical arrival time of the next operation

    def reserve(self, cost: float = 1.0, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        interval = 1.0 / self.rate
        new_tat = max(self.tat, now) + cost * interval
        wait = new_tat - now - self.burst * interval
        if wait > self.backlog_s:
            return None
        self.tat = new_tat
        return max(0.0, wait)


class Throttles:
    def __init__(self, sku: str | None, units: int, backlog_s: float) -> None:
        self.sku = sku
        self.units = units
        self.backlog_s = backlog_s
        self.shapers: dict[OperationClass, Shaper] = {}
        if sku is not None:
            for operation, rate in rates(sku, units).items():
                # One second's whole operations may arrive at once (at least one).
                self.shapers[operation] = Shaper(rate, max(1.0, math.floor(rate)), backlog_s)

    def reserve(self, operation: OperationClass, cost: float = 1.0) -> float | None:
        shaper = self.shapers.get(operation)
        return 0.0 if shaper is None else shaper.reserve(cost)
