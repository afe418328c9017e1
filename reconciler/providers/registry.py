"""The registry of providers: `REGISTRY` maps a target's provider name to its factory, and
`MANIFEST_KINDS` lists the manifest kinds providers bring beyond the TTS ones.

The CLI hands both to the engine. A new provider is a folder under reconciler/providers plus one
line in each table.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from reconciler.manifest.extensions import ManifestKinds
from reconciler.provider import ProviderFactory
from reconciler.providers.iothub.manifest import IotHubKinds
from reconciler.providers.iothub.provider import create as create_iothub
from reconciler.providers.tts.manifest.models import MODELS as TTS_MODELS
from reconciler.providers.tts.provider import create as create_tts

REGISTRY: dict[str, ProviderFactory] = {
    "tts": create_tts,
    "iothub": create_iothub,
}

MANIFEST_KINDS: tuple[ManifestKinds, ...] = (IotHubKinds(),)


def schema_models() -> dict[str, type[BaseModel]]:
    """Every provider's manifest models, TTS first (`reconciler schema` writes their JSON
    Schemas)."""
    models: dict[str, Any] = dict(TTS_MODELS)
    for kinds in MANIFEST_KINDS:
        models.update(kinds.models)
    return models
