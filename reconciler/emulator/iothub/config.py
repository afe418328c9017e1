"""IoT Hub emulator settings (beside the platform's faults, state file and seed)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.iothub.sas import decode_key
from reconciler.providers.iothub.rules import SKUS

HUB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{1,48}[A-Za-z0-9])")


@dataclass
class IotHubConfig(EmulatorConfig):
    hub_name: str = "myhub"
    # The iothubowner primary key; generated (and kept in the state file) when omitted.
    shared_access_key: str | None = None
    sku: str | None = None  # None: no throttling
    units: int = 1
    throttle_backlog_s: float = 10.0
    # A GET right after a create answers 404 for this long (0: off).
    visibility_delay_ms: float = 0.0

    @property
    def host_name(self) -> str:
        return f"{self.hub_name}.azure-devices.net"

    def check(self) -> None:
        super().check()
        if not HUB_NAME.fullmatch(self.hub_name):
            raise ValueError(
                "--hub-name must be 3-50 letters, digits and hyphens, "
                "starting and ending with a letter or digit"
            )
        if self.shared_access_key is not None:
            raw = decode_key(self.shared_access_key)
            if raw is None or not 16 <= len(raw) <= 64:
                raise ValueError("--shared-access-key must be base64 of 16 to 64 bytes")
        if self.rate_limit is not None:
            raise ValueError(
                "--rate-limit is TTS's limiter; the IoT Hub emulator uses --sku/--units"
            )
        if self.sku is not None and self.sku not in SKUS:
            raise ValueError(f"--sku {self.sku!r} is not one of {', '.join(SKUS)}")
        if not 1 <= self.units <= 200:
            raise ValueError("--units must be between 1 and 200")
        if self.throttle_backlog_s < 0 or self.visibility_delay_ms < 0:
            raise ValueError("the throttle backlog and the visibility delay must not be negative")
