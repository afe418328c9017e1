"""The per-registry split of end-device paths, checked against the real server's allow-lists
(read here straight from ../shared, independently of the generated tables)."""

from __future__ import annotations

import json

from reconciler.providers.tts import devices
from tests.shared_data import TTS_REFERENCE_DIR as REFERENCE
from tests.shared_data import needs_shared

pytestmark = needs_shared

RPC = {
    "is": "/ttn.lorawan.v3.EndDeviceRegistry/Update",
    "ns": "/ttn.lorawan.v3.NsEndDeviceRegistry/Set",
    "as": "/ttn.lorawan.v3.AsEndDeviceRegistry/Set",
    "js": "/ttn.lorawan.v3.JsEndDeviceRegistry/Set",
}
MANAGED = [
    "name",
    "description",
    "attributes",
    "locations",
    "version_ids.brand_id",
    "version_ids.model_id",
    "network_server_address",
    "application_server_address",
    "join_server_address",
    "frequency_plan_id",
    "lorawan_version",
    "lorawan_phy_version",
    "supports_join",
    "supports_class_b",
    "supports_class_c",
    "mac_settings.rx1_delay",
    "mac_settings.rx2_data_rate_index",
    "mac_settings.rx2_frequency",
    "mac_settings.supports_32_bit_f_cnt",
    "mac_settings.factory_preset_frequencies",
    "mac_settings.resets_f_cnt",
    "mac_settings.ping_slot_periodicity",
    "root_keys.app_key.key",
    "root_keys.nwk_key.key",
    "session.dev_addr",
    "session.keys.app_s_key.key",
    "session.keys.f_nwk_s_int_key.key",
    "session.keys.s_nwk_s_int_key.key",
    "session.keys.nwk_s_enc_key.key",
    "formatters.up_formatter",
    "formatters.up_formatter_parameter",
]


def allowed() -> dict[str, set[str]]:
    data = json.loads((REFERENCE / "rpc-field-mask-paths.server.json").read_text())
    return {server: set(data["rpcs"][rpc]["allowed"]) for server, rpc in RPC.items()}


def test_every_split_path_is_allowed_by_its_registry() -> None:
    lists = allowed()
    for otaa in (True, False):
        split = devices.split_paths(MANAGED, otaa=otaa)
        for server, paths in split.items():
            for path in paths:
                assert path in lists[server], f"{path} is not allowed in {RPC[server]}"


def test_every_managed_path_reaches_a_registry_that_owns_it() -> None:
    entity_map = json.loads((REFERENCE / "device-entity-map.json").read_text())

    def set_side(path: str) -> set[str]:
        node = entity_map
        for part in path.split("."):
            node = node[part]
        pair = node["_root"] if isinstance(node, dict) else node
        side = pair[1]
        return set() if side == "read_only" else {side} if isinstance(side, str) else set(side)

    split = devices.split_paths(MANAGED, otaa=True)
    for path in MANAGED:
        receivers = {server for server, paths in split.items() if path in paths}
        assert receivers, path
        assert receivers <= set_side(path), path


def test_ownership_follows_facts_c() -> None:
    assert devices.set_servers("name") == ("is",)
    assert devices.set_servers("version_ids.brand_id") == ("is", "ns", "as")
    assert devices.set_servers("network_server_address") == ("is", "js")
    assert devices.set_servers("session.dev_addr") == ("ns", "as")
    assert devices.set_servers("session.keys.app_s_key.key") == ("as",)
    assert devices.set_servers("root_keys.app_key.key") == ("js",)
    # AS Set accepts only the session leaves, never `session` as a whole (FACTS §e).
    assert "as" not in devices.set_servers("session")


def test_join_server_only_for_otaa_and_ids_never_split() -> None:
    split = devices.split_paths(["root_keys.app_key.key", "ids.dev_eui", "name"], otaa=False)
    assert split["js"] == []
    assert all("ids.dev_eui" not in paths for paths in split.values())
    assert devices.registries(otaa=False) == ("is", "ns", "as")
