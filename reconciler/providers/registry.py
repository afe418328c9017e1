"""The registry of providers: `REGISTRY` maps a target's provider name to its factory.

The CLI hands it to the engine. A new provider is a folder under reconciler/providers plus one
line in this table.
"""

from __future__ import annotations

from reconciler.provider import ProviderFactory
from reconciler.providers.tts.provider import create as create_tts

REGISTRY: dict[str, ProviderFactory] = {
    "tts": create_tts,
}
