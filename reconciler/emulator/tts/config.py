"""Emulator configuration and the API key format (FACTS §f)."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

API_KEY_PATTERN = re.compile(r"^NNSXS\.[A-Z2-7]{39}\.[A-Z2-7]{52}$")


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def generate_api_key() -> tuple[str, str, str]:
    """A new key in the real format: (token, key ID, secret). ID 24 random bytes, secret 32."""
    key_id = _b32(secrets.token_bytes(24))
    secret = _b32(secrets.token_bytes(32))
    return f"NNSXS.{key_id}.{secret}", key_id, secret


@dataclass
class EmulatorConfig:
    api_key: str | None = None
    user_id: str = "admin-user"
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limit: tuple[int, int] | None = None  # (per minute, burst)
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    state_path: Path | None = None
    seed: int | None = None


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
