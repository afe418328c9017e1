"""Identity Server: one module per concern.

`accounts` (users, organizations), `entities` (the shared registry of applications and gateways,
with `applications` and `gateways` holding each kind's own rules), `collaborators`, `api_keys`,
and `access` (auth info, the any-right check of event streams).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.emulator.tts.identity import access, accounts, api_keys, collaborators, entities
from reconciler.emulator.tts.identity.access import require_entity_access

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Operation


def operations() -> list[Operation]:
    return [
        *access.operations(),
        *accounts.operations(),
        *entities.operations(),
        *collaborators.operations(),
        *api_keys.operations(),
    ]


__all__ = ["operations", "require_entity_access"]
