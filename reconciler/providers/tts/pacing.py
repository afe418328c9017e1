"""Proactive pacing from TTS rate-limit headers, so a rate-limited server rarely says 429.

TTS limits each API key per RPC and entity with GCRA and reports the bucket on every
response: `X-Rate-Limit-Limit` (the bucket's capacity: requests allowed at once from a full
bucket), `-Available` (requests left now), `-Reset` (whole seconds until the bucket is full
again) and `-Retry` (seconds to wait after a 429). There is no Retry-After.

The pacer mirrors the server's buckets, keyed as the server keys them (the method and the
concrete path: RPC and entity). A bucket is only tracked once it is under pressure (half used,
or a 429), so reading 10,000 devices, each its own bucket, costs nothing. Under pressure the
refill rate follows from GCRA: `Reset` is the time the used part takes to drain, so
rate = (Limit - Available) / Reset, accurate once much of the bucket is used. Requests then wait
for a token before they are sent, so concurrent workers share the budget instead of racing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    capacity: float
    rate: float = 0.0  # tokens per second; 0 = not known yet
    tokens: float = 0.0
    in_flight: int = 0
    updated: float = field(default_factory=time.monotonic)
    blocked_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def refill(self, now: float) -> None:
        if self.rate > 0:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now


def _number(headers: Mapping[str, str], name: str) -> float | None:
    """A header's finite, non-negative number; None when absent or not one (`inf`, `nan`,
    `-1`, text): a server's nonsense never turns into an endless or negative wait."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


class DeadlineReached(Exception):
    """A wait for a token would end after the run's deadline."""


@dataclass(frozen=True)
class RateProfile:
    """What was learned of the server's limit: bucket capacity and refill rate."""

    capacity: float
    per_second: float


class RatePacer:
    def __init__(self, *, max_wait: float = 60.0) -> None:
        self.max_wait = max_wait  # upper bound on any one wait the server's headers ask for
        self._buckets: dict[str, _Bucket] = {}
        self.waited_seconds = 0.0
        self.profile: RateProfile | None = None

    async def acquire(self, key: str, deadline: float | None = None) -> None:
        """Wait until a request to this bucket may be sent without exceeding the limit; raise
        DeadlineReached instead of waiting past `deadline` (time.monotonic())."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return
        async with bucket.lock:  # FIFO among waiters of one bucket
            while True:
                now = time.monotonic()
                if bucket.blocked_until > now:
                    delay = bucket.blocked_until - now
                else:
                    bucket.refill(now)
                    if bucket.rate <= 0 or bucket.tokens >= 1:
                        bucket.tokens -= 1
                        bucket.in_flight += 1
                        return
                    delay = (1 - bucket.tokens) / bucket.rate
                delay = min(delay, self.max_wait)
                if deadline is not None and now + delay > deadline:
                    raise DeadlineReached
                self.waited_seconds += delay
                await asyncio.sleep(delay)

    def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        """Learn from a response's X-Rate-Limit-* headers (absent when limiting is off)."""
        bucket = self._buckets.get(key)
        if bucket is not None and bucket.in_flight > 0:
            bucket.in_flight -= 1
        capacity = _number(headers, "X-Rate-Limit-Limit")
        available = _number(headers, "X-Rate-Limit-Available")
        if capacity is None or capacity <= 0 or available is None:
            return
        reset = _number(headers, "X-Rate-Limit-Reset") or 0.0
        used = capacity - available
        pressured = status == 429 or used >= capacity / 2
        if bucket is None:
            if not pressured:
                return
            bucket = self._buckets[key] = _Bucket(capacity=capacity, tokens=available)
        now = time.monotonic()
        bucket.refill(now)
        bucket.capacity = capacity
        if reset > 0 and used >= capacity / 2:
            # Reset is rounded up to whole seconds: the drain time is in (reset - 1, reset].
            bucket.rate = used / max(reset - 0.5, 0.5)
            self.profile = RateProfile(capacity, bucket.rate)
        # The server's count, less our requests it has not seen yet, corrects any drift of the
        # local estimate (either way).
        bucket.tokens = available - bucket.in_flight
        if status == 429:
            retry = min(_number(headers, "X-Rate-Limit-Retry") or 1.0, self.max_wait)
            bucket.blocked_until = max(bucket.blocked_until, now + retry)
            bucket.tokens = min(bucket.tokens, 0.0)
        elif not pressured and bucket.in_flight == 0:
            del self._buckets[key]  # recovered: stop tracking it
