"""The Things Stack HTTP API v3, emulated.

from reconciler.emulator.tts import TTSConfig, create_app
app = create_app(TTSConfig())   # Starlette; API under /api/v3, admin under /_emulator
"""

from reconciler.emulator.tts.app import create_app, served
from reconciler.emulator.tts.config import TTSConfig

__all__ = ["TTSConfig", "create_app", "served"]
