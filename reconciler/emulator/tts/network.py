"""Network Server end-device registry: MAC settings, versions, ABP sessions (FACTS §d)."""

from __future__ import annotations

import copy
from functools import cache
from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.codec import Field, message, zero_of
from reconciler.emulator.tts.common import (
    field_value,
    mask_from_body,
    not_found,
    output,
    require_app,
)
from reconciler.emulator.tts.devices import device_key
from reconciler.emulator.tts.fieldmask import check_allowed, delete_path, get_path, merge, set_path
from reconciler.emulator.tts.registry import (
    READ_KEYS,
    TRAFFIC_READ,
    WRITE,
    DeviceRegistry,
    apply_ids_on_create,
    touches,
)
from reconciler.providers.tts import reference
from reconciler.providers.tts.lorawan_versions import is_valid_pair

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call, Operation

NS = "pkg/networkserver"
MAC_ORDER = ["MAC_V1_0", "MAC_V1_0_1", "MAC_V1_0_2", "MAC_V1_0_3", "MAC_V1_0_4", "MAC_V1_1"]

PHY_ORDER = [
    "PHY_V1_0",
    "PHY_V1_0_1",
    "PHY_V1_0_2_REV_A",
    "PHY_V1_0_2_REV_B",
    "PHY_V1_1_REV_A",
    "PHY_V1_1_REV_B",
    "PHY_V1_0_3_REV_A",
    "RP002_V1_0_0",
    "RP002_V1_0_1",
    "RP002_V1_0_2",
    "RP002_V1_0_3",
    "RP002_V1_0_4",
]
# The first PHY version that defines each band (older ones don't know it).
BAND_FIRST_PHY = {
    "EU_863_870": "PHY_V1_0",
    "US_902_928": "PHY_V1_0",
    "CN_779_787": "PHY_V1_0",
    "EU_433": "PHY_V1_0",
    "AU_915_928": "PHY_V1_0_1",
    "CN_470_510": "PHY_V1_0_1",
    "AS_923": "PHY_V1_0_2_REV_A",
    "KR_920_923": "PHY_V1_0_2_REV_A",
    "IN_865_867": "PHY_V1_0_2_REV_B",
    "RU_864_870": "PHY_V1_0_3_REV_A",
    "AS_923_2": "RP002_V1_0_2",
    "AS_923_3": "RP002_V1_0_2",
    "AS_923_4": "RP002_V1_0_3",
    "ISM_2400": "RP002_V1_0_0",
    "MA_869_870_DRAFT": "PHY_V1_0_2_REV_A",
}
SESSION_KEYS = ("f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key")
KEY_PATHS = tuple(
    f"{session}.keys.{key}.key"
    for session in ("session", "pending_session")
    for key in SESSION_KEYS
)
WRITE_KEY_PATHS = (
    *(f"session.keys.{key}.key" for key in SESSION_KEYS),
    "session.keys.session_key_id",
)
_TRIGGERS = ("supports_join", "multicast", "session", "lorawan_version", "supports_class_b", "ids")


RELAY_ROOTS = ("mac_settings.relay", "mac_settings.desired_relay")
END_DEVICE = "ttn.lorawan.v3.EndDevice"


@cache
def multicast_zero_leaves() -> tuple[tuple[str, str], ...]:
    """(mask path, JSON path) of the relay leaves a multicast device must leave zero: the
    Network Server's Set allow-list leaves under the relay settings, in sorted order (the
    order the server checks them in), plus scheduled downlinks."""
    allowed = reference.rpc_field_masks()["NsEndDeviceRegistry/Set"].allowed
    under = sorted(p for p in allowed if p.startswith(tuple(f"{r}." for r in RELAY_ROOTS)))
    leaves = [p for p in under if not any(q.startswith(p + ".") for q in under)]
    leaves.append("mac_settings.schedule_downlinks.value")
    return tuple((p, reference.wire_path(END_DEVICE, p)) for p in leaves)


def _field_at(wire: str) -> Field | None:
    msg = message("EndDevice")
    found: Field | None = None
    for part in wire.split("."):
        found = msg.fields.get(part)
        if found is None:
            return None
        if found.kind == "message" and not found.repeated:
            msg = found.message
    return found


def _is_zero(device: dict[str, Any], wire: str) -> bool:
    """The server's "zero": absent; a set message or wrapper is not zero even when empty."""
    if wire.endswith(".value"):  # a wrapper's value: set at all is not zero
        return get_path(device, wire.removesuffix(".value")) is None
    value = get_path(device, wire)
    field_ = _field_at(wire)
    if value is None or field_ is None:
        return value is None
    if field_.repeated:
        return not value
    if field_.kind in ("message", "wrapper"):
        return False
    return bool(value == zero_of(field_))


# Dynamic ADR limits the server keeps in order (a maximum below its minimum is refused).
_DYNAMIC_PAIRS = (
    ("min_data_rate_index", "max_data_rate_index", "max_data_rate_index.value"),
    ("min_tx_power_index", "max_tx_power_index", "max_tx_power_index"),
    ("min_nb_trans", "max_nb_trans", "max_nb_trans"),
)


def _check_dynamic_adr(device: dict[str, Any]) -> None:
    dynamic = get_path(device, "mac_settings.adr.dynamic")
    if not isinstance(dynamic, dict):
        return
    base = "mac_settings.adr.mode.dynamic"
    checks = [(dynamic, low, high, f"{base}.{field}") for low, high, field in _DYNAMIC_PAIRS]
    overrides = dynamic.get("overrides") or {}
    for index in range(16):  # the server checks data rates 0 to 15 in order
        override = overrides.get(f"data_rate_{index}")
        if isinstance(override, dict):
            where = f"{base}.overrides.data_rate_{index}.max_nb_trans"
            checks.append((override, "min_nb_trans", "max_nb_trans", where))
    for holder, low_name, high_name, where in checks:
        low, high = _wrapped(holder.get(low_name)), _wrapped(holder.get(high_name))
        if low is not None and high is not None and high < low:
            raise field_value(NS, where)


def _wrapped(value: Any) -> Any:
    return value.get("value", 0) if isinstance(value, dict) else value


def _phy_rank(phy: str) -> int:
    return PHY_ORDER.index(phy) if phy in PHY_ORDER else -1


class NetworkServer(DeviceRegistry):
    component = "ns"
    service = "NsEndDeviceRegistry"
    table_name = "ns_devices"
    namespace = NS
    read_only_namespace = "pkg/networkserver/redis"
    read_key_paths = KEY_PATHS
    write_key_paths = WRITE_KEY_PATHS

    def read_rights(self, paths: list[str]) -> list[str]:
        needed = super().read_rights(paths)
        queued = ("queued_application_downlinks", "session.queued_application_downlinks")
        if any(p.startswith(queued) for p in paths):
            needed.append(TRAFFIC_READ)
        return needed

    def prepare(
        self,
        call: Call,
        existing: dict[str, Any] | None,
        device: dict[str, Any],
        paths: list[str],
    ) -> dict[str, Any]:
        create = existing is None
        merged: dict[str, Any] = existing if existing is not None else {}
        if create:
            apply_ids_on_create(merged, device)
        else:
            for name in ("supports_join", "multicast"):
                if name in paths and bool(device.get(name)) != bool(merged.get(name)):
                    raise field_value(NS, name)
        written = [p for p in paths if p != "ids" and not p.startswith("ids.")]
        for path in written:
            # Setting inside one member of a oneof replaces the member set before.
            for sibling in reference.oneof_siblings(END_DEVICE, path):
                delete_path(merged, sibling)
        merge(merged, device, written)
        touched = set(paths)
        if (
            create
            or "frequency_plan_id" in touched
            or "version_ids" in touched
            or any(p.startswith(("lorawan_", "version_ids.")) for p in touched)
        ):
            self._check_band(merged)
        if create or any(p.split(".")[0] in _TRIGGERS for p in touched):
            self._check_activation(merged)
        class_b_paths = ("supports_class_b", "mac_settings.ping_slot_periodicity")
        if (
            merged.get("supports_class_b")
            and not get_path(merged, "mac_settings.ping_slot_periodicity")
            and (create or touches(paths, class_b_paths))
        ):
            raise field_value(NS, "mac_settings.ping_slot_periodicity")
        if merged.get("multicast") and (create or touches(paths, ("multicast", *RELAY_ROOTS))):
            # A multicast group has no relay: each relay leaf must be zero.
            for mask, wire in multicast_zero_leaves():
                if not _is_zero(merged, wire):
                    not_zero = errors.TTSError(
                        NS,
                        "field_not_zero",
                        "field `{name}` is not zero",
                        errors.INVALID_ARGUMENT,
                        {"name": mask},
                    )
                    raise field_value(NS, mask, cause=not_zero)
        if touches(paths, ("mac_settings.adr",)):
            _check_dynamic_adr(merged)
        return merged

    def created(self, call: Call, key: str) -> None:
        call.emu.traffic.track(key)

    def _check_band(self, device: dict[str, Any]) -> None:
        plan = device.get("frequency_plan_id")
        if not plan:
            raise field_value(NS, "frequency_plan_id")
        band = reference.frequency_plans().get(plan)
        if band is None:
            raise not_found(
                "pkg/frequencyplans", "not_found", "frequency plan `{id}` not found", id=plan
            )
        mac = device.get("lorawan_version")
        if not mac:
            raise field_value(NS, "lorawan_version")
        phy = device.get("lorawan_phy_version")
        if not phy:
            raise field_value(NS, "lorawan_phy_version")
        if not is_valid_pair(mac, phy):
            raise field_value(NS, "lorawan_phy_version")
        first = BAND_FIRST_PHY.get(band)
        if first is not None and _phy_rank(phy) < _phy_rank(first):
            raise field_value(NS, "lorawan_phy_version")
        band_id = get_path(device, "version_ids.band_id")
        if band_id and band_id != band:
            raise field_value(NS, "version_ids.band_id")

    def _check_activation(self, device: dict[str, Any]) -> None:
        ids = device["ids"]
        mac = device.get("lorawan_version", "")
        mac_rank = MAC_ORDER.index(mac) if mac in MAC_ORDER else -1
        session = device.get("session")
        if device.get("supports_join"):
            if not ids.get("dev_eui"):
                raise field_value(NS, "ids.dev_eui")
            if not ids.get("join_eui"):
                raise field_value(NS, "ids.join_eui")
            if session is not None and not get_path(device, "session.keys.session_key_id"):
                raise field_value(NS, "session.keys.session_key_id")
            return
        needs_dev_eui = not device.get("multicast") and mac_rank >= MAC_ORDER.index("MAC_V1_0_4")
        if needs_dev_eui and not ids.get("dev_eui"):
            raise field_value(NS, "ids.dev_eui")
        if not get_path(device, "session.dev_addr"):
            raise field_value(NS, "session.dev_addr")
        if not get_path(device, "session.keys.f_nwk_s_int_key.key"):
            raise field_value(NS, "session.keys.f_nwk_s_int_key.key")
        if get_path(device, "session.keys.session_key_id"):
            raise field_value(NS, "session.keys.session_key_id")
        keys = device["session"].setdefault("keys", {})
        if mac == "MAC_V1_1":
            for name in ("s_nwk_s_int_key", "nwk_s_enc_key"):
                if not get_path(keys, f"{name}.key"):
                    raise field_value(NS, f"session.keys.{name}.key")
        else:
            # LoRaWAN 1.0.x has one network session key: the NS copies it (FACTS §g).
            for name in ("s_nwk_s_int_key", "nwk_s_enc_key"):
                keys[name] = copy.deepcopy(keys["f_nwk_s_int_key"])
        ids["dev_addr"] = device["session"]["dev_addr"]
        device.setdefault(
            "mac_state",
            {"lorawan_version": mac, "device_class": "CLASS_A", "current_parameters": {}},
        )

    def reset(self, call: Call) -> dict[str, Any]:
        """ResetFactoryDefaults: wipe MAC state and session; ABP gets a fresh MAC state."""
        app_id, dev_id = call.params["app"], call.params["dev"]
        paths = mask_from_body(call.body)
        check_allowed(f"{self.service}/ResetFactoryDefaults", paths)
        needed = [WRITE, *([READ_KEYS] if touches(paths, self.read_key_paths) else [])]
        require_app(call, app_id, *needed)
        key = device_key(app_id, dev_id)
        device = self.table(call).get(key)
        if device is None:
            raise self.get_not_found()
        call.before_write()
        device = copy.deepcopy(device)
        for name in ("mac_state", "pending_mac_state", "pending_session", "session"):
            device.pop(name, None)
        if not device.get("supports_join"):
            previous = self.table(call).get(key) or {}
            if previous.get("session"):
                device["session"] = copy.deepcopy(previous["session"])
                for name in (
                    "last_f_cnt_up",
                    "last_n_f_cnt_down",
                    "last_conf_f_cnt_down",
                    "started_at",
                ):
                    device["session"].pop(name, None)
            set_path(device, "mac_state", {"lorawan_version": device.get("lorawan_version", "")})
        self.table(call).put(key, device)
        return output("EndDevice", device, paths)

    def operations(self) -> list[Operation]:
        from reconciler.emulator.tts.app import Operation

        return [
            *super().operations(),
            Operation(
                "PATCH",
                "/ns/applications/{app}/devices/{dev}",
                f"{self.service}/ResetFactoryDefaults",
                self.reset,
                write=True,
                body=True,
            ),
        ]


REGISTRY = NetworkServer()


def operations() -> list[Operation]:
    return REGISTRY.operations()


__all__ = ["REGISTRY", "errors", "operations"]
