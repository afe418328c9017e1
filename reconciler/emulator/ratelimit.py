"""GCRA rate limiting per token, RPC and entity, with TTS's headers (FACTS §f)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class Decision:
    allowed: bool
    limit: int
    available: int
    reset_s: int
    retry_s: int

    def headers(self) -> dict[str, str]:
        return {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Available": str(self.available),
            "X-Rate-Limit-Reset": str(self.reset_s),
            "X-Rate-Limit-Retry": str(self.retry_s),
        }


class RateLimiter:
    """Generic cell rate algorithm: one theoretical arrival time per key."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self.interval = 60.0 / per_minute
        self._tat: dict[str, float] = {}

    def take(self, key: str, now: float | None = None) -> Decision:
        now = time.monotonic() if now is None else now
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + self.interval
        allow_at = new_tat - self.burst * self.interval
        if now < allow_at:
            used_tat = tat
            available = max(0, int((now - (used_tat - self.burst * self.interval)) / self.interval))
            return Decision(
                allowed=False,
                limit=self.burst,
                available=available,
                reset_s=math.ceil(used_tat - now),
                retry_s=max(1, math.ceil(allow_at - now)),
            )
        self._tat[key] = new_tat
        available = max(0, int((now - allow_at) / self.interval + 1e-9))
        return Decision(
            allowed=True,
            limit=self.burst,
            available=min(available, self.burst - 1),
            reset_s=math.ceil(new_tat - now),
            retry_s=0,
        )
