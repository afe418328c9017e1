"""Proactive pacing from TTS rate-limit headers, so a rate-limited server rarely says 429.

TTS limits each API key per RPC with GCRA and reports it on every response (FACTS §f):
`X-Rate-Limit-Limit` (per minute), `-Available` (requests left in the burst), `-Reset`
(seconds until the burst is full again) and `-Retry` (seconds to wait after a 429). There is no
Retry-After. The pacer mirrors the server's bucket per RPC: it learns the rate and the
remaining burst from responses and makes requests wait for a token before they are sent, so
concurrent workers share the budget instead of racing into 429s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    rate: float = 0.0  # tokens per second; 0 = unknown (no pacing)
    tokens: float = 0.0
    capacity: float = 0.0
    updated: float = field(default_factory=time.monotonic)
    blocked_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def refill(self, now: float) -> None:
        if self.rate > 0:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now


def _number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class RatePacer:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self.waited_seconds = 0.0

    def _bucket(self, rpc: str) -> _Bucket:
        bucket = self._buckets.get(rpc)
        if bucket is None:
            bucket = self._buckets[rpc] = _Bucket()
        return bucket

    async def acquire(self, rpc: str) -> None:
        """Wait until a request of this RPC may be sent without exceeding the learned limit."""
        bucket = self._bucket(rpc)
        if bucket.rate <= 0 and bucket.blocked_until <= time.monotonic():
            return
        async with bucket.lock:  # FIFO among waiters of one RPC
            while True:
                now = time.monotonic()
                if bucket.blocked_until > now:
                    delay = bucket.blocked_until - now
                else:
                    bucket.refill(now)
                    if bucket.rate <= 0 or bucket.tokens >= 1:
                        if bucket.rate > 0:
                            bucket.tokens -= 1
                        return
                    delay = (1 - bucket.tokens) / bucket.rate
                self.waited_seconds += delay
                await asyncio.sleep(delay)

    def observe(self, rpc: str, status: int, headers: Mapping[str, str]) -> None:
        """Learn from a response's X-Rate-Limit-* headers (absent when limiting is off)."""
        limit = _number(headers, "X-Rate-Limit-Limit")
        if limit is None or limit <= 0:
            return
        bucket = self._bucket(rpc)
        now = time.monotonic()
        bucket.refill(now)
        first = bucket.rate <= 0
        bucket.rate = limit / 60.0
        available = _number(headers, "X-Rate-Limit-Available")
        reset = _number(headers, "X-Rate-Limit-Reset")
        if available is not None:
            capacity = available + (reset or 0.0) * bucket.rate
            bucket.capacity = max(bucket.capacity, capacity, 1.0)
            # The server has not yet seen our in-flight requests, so its count can only be
            # higher than ours: keep the lower estimate.
            bucket.tokens = available if first else min(bucket.tokens, available)
        if status == 429:
            retry = _number(headers, "X-Rate-Limit-Retry") or 1.0 / bucket.rate
            bucket.blocked_until = max(bucket.blocked_until, now + retry)
            bucket.tokens = 0.0
