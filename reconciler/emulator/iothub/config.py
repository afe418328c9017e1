"""IoT Hub emulator settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from reconciler.emulator.iothub.sas import decode_key
from reconciler.emulator.iothub.throttle import SKUS

HUB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{1,48}[A-Za-z0-9])?")


@dataclass
class IotHubConfig:
    hub_name: str = "myhub"
    # The iothubowner primary key; generated (and kept in the state file) when omitted.
    shared_access_key: str | None = None
    state_path: Path | None = None
    sku: str | None = None  # None: no throttling
    units: int = 1
    throttle_backlog_s: float = 10.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    # A GET right after a create answers 404 for this long (0: off).
    visibility_delay_ms: float = 0.0
    seed: int | None = None

    @property
    def host_name(self) -> str:
        return f"{self.hub_name}.azure-devices.net"

    def validate(self) -> None:
        if not HUB_NAME.fullmatch(self.hub_name):
            raise ValueError(
                "the hub name must be 3-50 letters, digits and hyphens, "
                "starting and ending with a letter or digit"
            )
        if self.shared_access_key is not None:
            raw = decode_key(self.shared_access_key)
            if raw is None or not 16 <= len(raw) <= 64:
                raise ValueError("the shared access key must be base64 of 16 to 64 bytes")
        if self.sku is not None and self.sku not in SKUS:
            raise ValueError(f"unknown SKU {self.sku!r}: one of {', '.join(SKUS)}")
        if not 1 <= self.units <= 200:
            raise ValueError("units must be between 1 and 200")
        for name in ("fail_rate", "drop_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name.replace('_', '-')} must be between 0 and 1")
        for name in ("latency_ms", "jitter_ms", "visibility_delay_ms", "throttle_backlog_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name.replace('_', '-')} must not be negative")
