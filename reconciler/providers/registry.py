"""The registry of providers: `REGISTRY` maps a target's provider name to its factory, and
`MANIFEST_KINDS` lists the manifest kinds providers bring (TTS first: its kinds are listed and
resolved first, and the IoT Hub's LoRaWAN mirror reads its devices).

The CLI hands both to the engine. A new provider is a folder under reconciler/providers plus one
line in each table.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from reconciler.manifest.extensions import ManifestKinds
from reconciler.provider import Provider, ProviderContext, ProviderFactory
from reconciler.providers.iothub.manifest import IotHubKinds
from reconciler.providers.tts.manifest.kinds import TtsKinds

# The factories import their provider (HTTP client, planner, differ) when a run has a target of
# theirs: commands that only load manifests, and runs with one provider, do not pay for the rest.


def create_tts(target: Any, context: ProviderContext) -> Provider:
    from reconciler.providers.tts.provider import create

    return create(target, context)


def create_iothub(target: Any, context: ProviderContext) -> Provider:
    from reconciler.providers.iothub.provider import create

    return create(target, context)


REGISTRY: dict[str, ProviderFactory] = {
    "tts": create_tts,
    "iothub": create_iothub,
}

MANIFEST_KINDS: tuple[ManifestKinds, ...] = (TtsKinds(), IotHubKinds())


def schema_models() -> dict[str, type[BaseModel]]:
    """Every provider's manifest models, TTS first (`reconciler schema` writes their JSON
    Schemas)."""
    models: dict[str, Any] = {}
    for kinds in MANIFEST_KINDS:
        models.update(kinds.models)
    return models
