"""End-device field paths the manifest language can express, and the way from TTS records
(server responses, export files) to them in normal form.

The paths are derived from the manifest models through
`reconciler.providers.tts.manifest.devices.to_fields` (the loader's own mapping), so import
writes exactly what the loader reads back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel

from reconciler.providers.tts import devices, reference, schema
from reconciler.providers.tts.manifest import devices as dev
from reconciler.providers.tts.manifest import models as m
from reconciler.providers.tts.manifest.mac_settings import MacSettings

# Manifest groups whose keys are sub-fields of a TTS message (the others, `attributes` and
# `locations`, are maps taken whole).
GROUP_MODELS: dict[str, type[BaseModel]] = {
    "mac_settings": MacSettings,
    "version_ids": m.VersionIds,
    "lora_alliance_profile_ids": m.LoRaAllianceProfileIds,
    "formatters": m.Formatters,
}
_NOT_DEVICE_FIELDS = frozenset({"kind", "application", "profile"})

# Device fields that are server state (counters, nonces, MAC state, timestamps), not
# configuration: never imported; reported (top-level name) when an export file carries them.
STATE_FIELDS = frozenset(
    {
        "activated_at",
        "battery_percentage",
        "downlink_margin",
        "last_dev_nonce",
        "last_dev_status_received_at",
        "last_join_nonce",
        "last_rj_count_0",
        "last_rj_count_1",
        "last_seen_at",
        "mac_state",
        "pending_mac_state",
        "pending_session",
        "power_state",
        "used_dev_nonces",
    }
)
# Bookkeeping every record carries: never imported, never reported.
SILENT_FIELDS = frozenset({"ids", "created_at", "updated_at"})


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a TTS path goes in a device document: `key`, or `key.sub` for groups."""

    key: str
    sub: str | None = None


@cache
def device_slots() -> dict[str, Slot]:
    """TTS end-device path -> manifest slot, for every path a device document can set."""
    slots: dict[str, Slot] = {}
    for name in m.Device.model_fields:
        if name in _NOT_DEVICE_FIELDS:
            continue
        group = GROUP_MODELS.get(name)
        if group is None:
            ((path, _),) = dev.to_fields({name: None}, None).items()
            slots[path] = Slot(name)
            continue
        for sub in group.model_fields:
            if sub.endswith("_file"):
                continue  # the script text is imported as `..._parameter`
            ((path, _),) = dev.to_fields({name: {sub: None}}, None).items()
            slots[path] = Slot(name, sub)
    return slots


KEY_PATHS = tuple(p for p in device_slots() if devices.is_key_path(p))
SESSION_PATHS = frozenset(p for p in device_slots() if p.startswith("session."))


@cache
def live_read_paths() -> tuple[str, ...]:
    """Paths to read from the servers: whole top-level fields where a manifest group or an
    unmodelled field lives (so unmodelled sub-fields are seen and reported), and exact paths for
    keys and the ABP session (whose other parts are state)."""
    tops = {path.split(".", 1)[0] for path in device_slots()} - {"ids", "root_keys", "session"}
    settable = {
        path
        for path, (_get, sets) in reference.device_field_ownership().items()
        if "." not in path and sets
    }
    extras = settable - STATE_FIELDS - SILENT_FIELDS - {"root_keys", "session"}
    paths = (tops | extras | set(KEY_PATHS) | SESSION_PATHS) - SILENT_FIELDS
    return tuple(sorted(p for p in paths if devices.get_servers(p)))


@cache
def slot_ancestors() -> frozenset[str]:
    """Paths of the messages that hold a manifest path (`mac_settings`, `root_keys`, ...)."""
    return frozenset(
        ".".join(parts[:end])
        for parts in (path.split(".") for path in device_slots())
        for end in range(1, len(parts))
    )


def leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, raw value) for each field of an EndDevice JSON object, descending into messages
    down to the manifest's paths; maps, lists and unknown fields are leaves. An empty message
    is a leaf unless it holds manifest paths (which it sets to nothing, as the manifest's
    absent keys do): it can be a setting by itself (a oneof's `{"always": {}}`), and a message
    walked into yields nothing to report."""
    slots = device_slots()
    for name, raw in data.items():
        path = prefix + name
        try:
            ftype = schema.field_type(schema.END_DEVICE, path)
        except schema.UnknownPath:
            yield path, raw
            continue
        if (
            ftype.kind == "message"
            and ftype.map_value is None
            and not ftype.repeated
            and isinstance(raw, Mapping)
            and path not in slots
            and (raw or path in slot_ancestors())
        ):
            yield from leaves(raw, path + ".")
        else:
            yield path, raw


def normal(path: str, raw: Any) -> Any:
    """Normal form of a raw value at `path`; raises schema.InvalidValue / UnknownPath."""
    return schema.normalize(schema.field_type(schema.END_DEVICE, path), raw)


def is_zero(path: str, value: Any) -> bool:
    return bool(value == schema.zero_value(schema.field_type(schema.END_DEVICE, path)))


def unrepresented_label(path: str, *, otaa: bool) -> str | None:
    """How the report names a path the manifests cannot hold; None for silent bookkeeping."""
    top = path.split(".", 1)[0]
    if top in SILENT_FIELDS:
        return None
    if top == "session" and otaa:
        return "device state not imported: an OTAA session (made by the join; kept by the server)"
    if top in STATE_FIELDS:
        return f"device state not imported: `{top}`"
    if top == "session" and path not in device_slots():
        return f"device state not imported: `{path}` (ABP session counters)"
    return f"device field `{path}`: not in the manifest language"
