"""The TTS emulator's configuration and the API key format (FACTS §f)."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass

from reconciler.emulator.config import EmulatorConfig

API_KEY_PATTERN = re.compile(r"^NNSXS\.[A-Z2-7]{39}\.[A-Z2-7]{52}$")


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def generate_api_key() -> tuple[str, str, str]:
    """A new key in the real format: (token, key ID, secret). ID 24 random bytes, secret 32."""
    key_id = _b32(secrets.token_bytes(24))
    secret = _b32(secrets.token_bytes(32))
    return f"NNSXS.{key_id}.{secret}", key_id, secret


@dataclass
class TTSConfig(EmulatorConfig):
    api_key: str | None = None  # the admin's key; generated (or kept from the state file) if None
    user_id: str = "admin-user"
    # Mean seconds between two uplinks of each device (None: no traffic); see traffic.py.
    traffic_interval: float | None = None
    # Tests: traffic time moves only by `emulator.traffic.advance(seconds)` (no serving loop).
    traffic_manual_clock: bool = False
