"""The resource kinds of The Things Stack provider and their keys (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from reconciler.resources import ResourceKey

PROVIDER = "tts"

# The kinds in creation order; deletes run in reverse (the Identity Server refuses to delete
# an application that still has devices). Organizations come first: applications and gateways
# may be created under one; API keys and collaborators need the entity they belong to.
ResourceKind = Literal[
    "organization",
    "application",
    "link",
    "webhook",
    "pubsub",
    "package_default",
    "device",
    "package_association",
    "gateway",
    "api_key",
    "collaborator",
]
KIND_ORDER: tuple[ResourceKind, ...] = get_args(ResourceKind)
# The device in each owned application that records the apply lease (reconciler.lease): never
# declared, planned, pruned or imported.
LEASE_DEVICE_ID = "reconciler-lease"


def application_key(application_id: str) -> ResourceKey:
    return ResourceKey(PROVIDER, "application", (application_id,))


def link_key(application_id: str) -> ResourceKey:
    return ResourceKey(PROVIDER, "link", (application_id,))


def webhook_key(application_id: str, webhook_id: str) -> ResourceKey:
    return ResourceKey(PROVIDER, "webhook", (application_id, webhook_id))


def pubsub_key(application_id: str, pub_sub_id: str) -> ResourceKey:
    return ResourceKey(PROVIDER, "pubsub", (application_id, pub_sub_id))


def package_default_key(application_id: str, f_port: int) -> ResourceKey:
    """An application's default package association on one FPort."""
    return ResourceKey(
        PROVIDER,
        "package_default",
        (application_id, str(f_port)),
        label=f"package default {application_id} FPort {f_port}",
    )


def package_association_key(application_id: str, device_id: str, f_port: int) -> ResourceKey:
    """A device's package association on one FPort."""
    return ResourceKey(
        PROVIDER,
        "package_association",
        (application_id, device_id, str(f_port)),
        label=f"package association {application_id}/{device_id} FPort {f_port}",
    )


def device_key(application_id: str, device_id: str) -> ResourceKey:
    return ResourceKey(PROVIDER, "device", (application_id, device_id))


def gateway_key(gateway_id: str) -> ResourceKey:
    return ResourceKey(PROVIDER, "gateway", (gateway_id,))


def organization_key(organization_id: str) -> ResourceKey:
    return ResourceKey(PROVIDER, "organization", (organization_id,))


def api_key_key(entity_kind: str, entity_id: str, name: str) -> ResourceKey:
    """An API key of an application, gateway or organization, by its name (the server picks
    its ID)."""
    return ResourceKey(PROVIDER, "api_key", (entity_kind, entity_id, name))


def collaborator_key(
    entity_kind: str, entity_id: str, member_kind: str, member_id: str
) -> ResourceKey:
    """`member_kind` (user or organization) `member_id` as a collaborator of an entity."""
    return ResourceKey(PROVIDER, "collaborator", (entity_kind, entity_id, member_kind, member_id))


def entity_key(entity_kind: str, entity_id: str) -> ResourceKey:
    """The application, gateway or organization an API key or collaborator belongs to."""
    return ResourceKey(PROVIDER, entity_kind, (entity_id,))


def entity_of(key: ResourceKey) -> ResourceKey:
    """The entity of an API key or collaborator key."""
    return entity_key(key.ids[0], key.ids[1])


def application_of(key: ResourceKey) -> str:
    """The application a key belongs to ("" when none)."""
    if key.kind in ("api_key", "collaborator"):
        return key.ids[1] if key.ids[0] == "application" else ""
    return "" if key.kind in ("gateway", "organization") else key.ids[0]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who an application or gateway is created under (`DesiredResource.extra["owner"]`)."""

    kind: Literal["user", "organization"]
    id: str


# Unique keys (reconciler.resources.KeyHolder): values the servers let only one entity hold.
ZERO_EUI = "0000000000000000"


def eui_pair(ids: dict[str, object]) -> str | None:
    """A device's (JoinEUI, DevEUI) pair, unique across the deployment on every registry; None
    without a DevEUI (such devices claim no pair). `ids` as the servers send them, or the
    desired `ids.*` fields under their bare names."""
    dev_eui = str(ids.get("dev_eui") or "").upper()
    if not dev_eui or dev_eui == ZERO_EUI:
        return None
    join_eui = str(ids.get("join_eui") or "").upper() or ZERO_EUI
    return f"EUI pair {join_eui}/{dev_eui}"


def gateway_eui(eui: object) -> str | None:
    """A gateway's EUI, unique among gateways (soft-deleted ones included)."""
    text = str(eui or "").upper()
    return f"gateway EUI {text}" if text and text != ZERO_EUI else None
