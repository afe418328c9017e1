"""A local emulator of The Things Stack HTTP API v3 (for tests, CI and demos).

from reconciler.emulator import EmulatorConfig, create_app
app = create_app(EmulatorConfig())   # Starlette; API under /api/v3, admin under /_emulator
"""

from reconciler.emulator.tts.app import create_app
from reconciler.emulator.tts.config import EmulatorConfig

__all__ = ["EmulatorConfig", "create_app"]
