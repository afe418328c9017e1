"""Injected cloud behaviour, adjustable at run time: latency, jitter, failures, drops, rate limit.

An API's request pipeline calls, in this order: `await faults.delay()`; `faults.limiter.take(key)`
when a limiter is set (the API chooses the bucket key and renders the refusal); the handler, with
`faults.fail_now()` checked after validation and before a write is applied (answer 503); and
after a write is applied, `faults.drop_now()` (return `DroppingResponse()` or answer 503) to lose
the response of a change that did happen.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reconciler.emulator.config import EmulatorConfig, parse_rate_limit
from reconciler.emulator.ratelimit import RateLimiter

_RATES = ("fail_rate", "drop_rate")
_DURATIONS = ("latency_ms", "jitter_ms")


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised after a write was applied to lose its response (fault injection).

    Under uvicorn the connection closes mid-response; in process (httpx.ASGITransport) the
    exception reaches the client as the transport error a real dropped connection gives."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class DroppingResponse(Response):
    """Sends the status line and headers, then loses the connection before the body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
            }
        )
        raise DroppedConnection("connection dropped after the write was applied")


@dataclass(frozen=True)
class Setting:
    """A run-time setting an API adds to `PUT /_emulator/config` (e.g. TTS traffic)."""

    read: Callable[[], Any]  # the value `GET /_emulator/config` shows
    parse: Callable[[Any], Any]  # the JSON value -> what `apply` takes; ValueError if invalid
    apply: Callable[[Any], None]


class Faults:
    def __init__(self, config: EmulatorConfig) -> None:
        self.rng = random.Random(config.seed)
        self.latency_ms = config.latency_ms
        self.jitter_ms = config.jitter_ms
        self.fail_rate = config.fail_rate
        self.drop_rate = config.drop_rate
        # Streamed responses (e.g. TTS event streams) end after this many idle seconds.
        self.event_stream_idle_s: float | None = None
        self.limiter: RateLimiter | None = None
        self.set_rate_limit(config.rate_limit)
        self.settings: dict[str, Setting] = {}  # the API's own, by name

    def add_setting(self, name: str, setting: Setting) -> None:
        self.settings[name] = setting

    def set_rate_limit(self, value: tuple[int, int] | None) -> None:
        self.limiter = RateLimiter(*value) if value else None

    def snapshot(self) -> dict[str, Any]:
        limiter = self.limiter
        return {
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "rate_limit": None
            if limiter is None
            else {"per_minute": limiter.per_minute, "burst": limiter.burst},
            "fail_rate": self.fail_rate,
            "drop_rate": self.drop_rate,
            "event_stream_idle_s": self.event_stream_idle_s,
            **{name: setting.read() for name, setting in self.settings.items()},
        }

    def update(self, settings: Any) -> None:
        """Apply a `PUT /_emulator/config` body; ValueError (nothing applied) when invalid."""
        if not isinstance(settings, dict):
            raise ValueError("want a JSON object")
        known = {*_RATES, *_DURATIONS, "rate_limit", "event_stream_idle_s", *self.settings}
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        updates: dict[str, Any] = {}
        try:
            for name in (*_DURATIONS, *_RATES):
                if name in settings:
                    value = float(settings[name])
                    if value < 0 or (name in _RATES and value > 1):
                        raise ValueError(f"{name} out of range")
                    updates[name] = value
            if "rate_limit" in settings:
                rate_limit = _rate_limit_setting(settings["rate_limit"])
            if "event_stream_idle_s" in settings:
                idle = settings["event_stream_idle_s"]
                updates["event_stream_idle_s"] = None if idle is None else float(idle)
            own = {
                name: setting.parse(settings[name])
                for name, setting in self.settings.items()
                if name in settings
            }
        except (KeyError, TypeError) as error:
            raise ValueError(f"invalid setting: {error}") from None
        for name, value in updates.items():
            setattr(self, name, value)
        if "rate_limit" in settings:
            self.set_rate_limit(rate_limit)
        for name, value in own.items():
            self.settings[name].apply(value)

    async def delay(self) -> None:
        if self.latency_ms <= 0 and self.jitter_ms <= 0:
            return
        extra = self.rng.uniform(0, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        await asyncio.sleep(max(0.0, self.latency_ms + extra) / 1000)

    def fail_now(self) -> bool:
        """Whether this write fails before it is applied (`fail_rate`)."""
        return self.fail_rate > 0 and self.rng.random() < self.fail_rate

    def drop_now(self) -> bool:
        """Whether this applied write loses its response (`drop_rate`)."""
        return self.drop_rate > 0 and self.rng.random() < self.drop_rate


def _rate_limit_setting(value: Any) -> tuple[int, int] | None:
    if value is None or value is False or value == "":
        return None
    if isinstance(value, str):
        return parse_rate_limit(value)
    if isinstance(value, dict):
        per_minute = int(value["per_minute"])
        return per_minute, int(value.get("burst") or per_minute)
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError("rate_limit: want null, PER_MINUTE[:BURST] or {per_minute, burst}")
