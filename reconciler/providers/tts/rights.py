"""Rights of The Things Stack (the `Right` enum): names, the `*_ALL` bundles, and which rights
apply to which entity. Shared by the manifests (validation), the planner (does the tool's key
hold what it grants?) and the emulator (rights checks)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from reconciler.providers.tts import reference

BUNDLES = {
    "RIGHT_USER_ALL": "RIGHT_USER_",
    "RIGHT_APPLICATION_ALL": "RIGHT_APPLICATION_",
    "RIGHT_GATEWAY_ALL": "RIGHT_GATEWAY_",
    "RIGHT_ORGANIZATION_ALL": "RIGHT_ORGANIZATION_",
    "RIGHT_CLIENT_ALL": "RIGHT_CLIENT_",
}
# The rights an API key or a collaborator of an entity may hold. An organization's members
# also act on the applications and gateways the organization collaborates on.
PREFIXES_OF_ENTITY: dict[str, tuple[str, ...]] = {
    "application": ("RIGHT_APPLICATION_",),
    "gateway": ("RIGHT_GATEWAY_",),
    "organization": (
        "RIGHT_ORGANIZATION_",
        "RIGHT_APPLICATION_",
        "RIGHT_GATEWAY_",
        "RIGHT_CLIENT_",
    ),
    "user": ("RIGHT_USER_",),
}


@cache
def all_rights() -> frozenset[str]:
    return frozenset(
        name for name in reference.enum("Right").canonical.values() if name.startswith("RIGHT_")
    )


def canonical(name: object) -> str | None:
    """`RIGHT_GATEWAY_LINK` for any spelling the server accepts (`GATEWAY_LINK`, a number)."""
    found = reference.enum("Right").canonical_name(name)
    return found if found in all_rights() else None


def expand(rights: Iterable[str]) -> frozenset[str]:
    """Rights with the `*_ALL` bundles expanded (RIGHT_ALL implies every right)."""
    return _expand(frozenset(rights))


@cache
def _expand(rights: frozenset[str]) -> frozenset[str]:
    # Cached: the emulator expands the caller's rights on every request, and a deployment has
    # only a handful of distinct right sets.
    out: set[str] = set(rights)
    if "RIGHT_ALL" in out:
        return all_rights()
    for bundle, prefix in BUNDLES.items():
        if bundle in out:
            out.update(r for r in all_rights() if r.startswith(prefix))
    return frozenset(out)


def applies_to(right: str, entity_kind: str) -> bool:
    """Whether a key or collaborator of an `entity_kind` may hold `right`."""
    return right.startswith(PREFIXES_OF_ENTITY[entity_kind])


def of_entity(entity_kind: str) -> frozenset[str]:
    """Every right an entity kind's keys and collaborators may hold."""
    return frozenset(r for r in all_rights() if applies_to(r, entity_kind))
