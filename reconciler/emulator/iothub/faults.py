"""The platform's injected faults plus what only a hub does: SKU throttles with traffic
shaping and the moment after a create when a GET still answers 404.

All of it is adjustable at run time through `PUT /_emulator/config` (`sku`, `units`,
`throttle_backlog_s`, `visibility_delay_ms` beside the platform's settings).
"""

from __future__ import annotations

from typing import Any

from reconciler.emulator.faults import Faults
from reconciler.emulator.iothub.config import IotHubConfig
from reconciler.emulator.iothub.throttle import Throttles
from reconciler.providers.iothub.rules import SKUS

_HUB_SETTINGS = ("sku", "units", "throttle_backlog_s", "visibility_delay_ms")


class HubFaults(Faults):
    def __init__(self, config: IotHubConfig) -> None:
        super().__init__(config)
        self.throttles = Throttles(config.sku, config.units, config.throttle_backlog_s)
        self.visibility_delay_s = config.visibility_delay_ms / 1000

    def snapshot(self) -> dict[str, Any]:
        snapshot = super().snapshot()
        for name in ("rate_limit", "event_stream_idle_s"):  # TTS's, not a hub's
            snapshot.pop(name, None)
        throttles = self.throttles
        snapshot.update(
            sku=throttles.sku,
            units=throttles.units,
            throttle_backlog_s=throttles.backlog_s,
            visibility_delay_ms=self.visibility_delay_s * 1000,
        )
        return snapshot

    def update(self, settings: Any) -> None:
        """Validate the hub's settings, let the platform apply its own (nothing applied when
        either is invalid), then apply the hub's."""
        if not isinstance(settings, dict):
            raise ValueError("want a JSON object")
        for name in ("rate_limit", "event_stream_idle_s"):
            if name in settings:
                raise ValueError(f"{name} is not a setting of the IoT Hub emulator")
        throttles = self.throttles
        sku = settings.get("sku", throttles.sku)
        if sku is not None and sku not in SKUS:
            raise ValueError(f"sku must be null or one of {', '.join(SKUS)}")
        units = settings.get("units", throttles.units)
        if isinstance(units, bool) or not isinstance(units, int) or not 1 <= units <= 200:
            raise ValueError("units must be an integer from 1 to 200")
        durations: dict[str, float] = {}
        for name in ("throttle_backlog_s", "visibility_delay_ms"):
            if name in settings:
                value = settings[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"{name} must be a number of at least 0")
                durations[name] = float(value)
        super().update({k: v for k, v in settings.items() if k not in _HUB_SETTINGS})
        if "visibility_delay_ms" in durations:
            self.visibility_delay_s = durations["visibility_delay_ms"] / 1000
        if {"sku", "units", "throttle_backlog_s"} & set(settings):
            backlog = durations.get("throttle_backlog_s", throttles.backlog_s)
            self.throttles = Throttles(sku, units, backlog)
