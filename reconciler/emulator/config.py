"""What every emulated API is configured with: injected faults, the state file, the random seed.

An API's own configuration extends `EmulatorConfig` (e.g. `reconciler.emulator.tts.TTSConfig`
adds the admin API key and user).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class EmulatorConfig:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limit: tuple[int, int] | None = None  # (per minute, burst)
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    state_path: Path | None = None
    seed: int | None = None

    def check(self) -> None:
        """ValueError naming the option when a value is out of range."""
        for name in ("fail_rate", "drop_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("--latency-ms and --jitter-ms must not be negative")


def parse_rate_limit(text: str) -> tuple[int, int]:
    """`PER_MINUTE[:BURST]` (burst defaults to per-minute, as TTS's `max-burst` does)."""
    per_minute_text, _, burst_text = text.partition(":")
    try:
        per_minute = int(per_minute_text)
        burst = int(burst_text) if burst_text else per_minute
    except ValueError:
        raise ValueError(f"invalid rate limit {text!r}: want PER_MINUTE[:BURST]") from None
    if per_minute <= 0 or burst <= 0:
        raise ValueError(f"invalid rate limit {text!r}: values must be positive")
    return per_minute, burst
