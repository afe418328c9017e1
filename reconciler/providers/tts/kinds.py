"""The resource kinds of The Things Stack provider and their keys (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reconciler.resources import ResourceKey

PROVIDER = "tts"

ResourceKind = Literal["application", "link", "webhook", "pubsub", "device", "gateway"]
# Creation order of kinds; deletes run in reverse (the Identity Server refuses to delete an
# application that still has devices).
KIND_ORDER: tuple[ResourceKind, ...] = (
    "application",
    "link",
    "webhook",
    "pubsub",
    "device",
    "gateway",
)
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


def device_key(application_id: str, device_id: str) -> ResourceKey:
    return ResourceKey(PROVIDER, "device", (application_id, device_id))


def gateway_key(gateway_id: str) -> ResourceKey:
    return ResourceKey(PROVIDER, "gateway", (gateway_id,))


def application_of(key: ResourceKey) -> str:
    """The application a key belongs to ("" for gateways)."""
    return "" if key.kind == "gateway" else key.ids[0]


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
