"""Network Server Set of relay settings (`mac_settings.relay`, `.desired_relay`) and of dynamic
ADR's channel steering and per-data-rate overrides: stored as sent, masks in their oneof
spelling, a oneof's last member winning, and the server's refusals by name."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.emulator.support import (
    FREQUENCY_PLAN,
    INVALID_ARGUMENT,
    TtsApi,
    expect_error,
    expect_ok,
    iter_causes,
    new_dev_addr,
    new_eui,
    new_key,
)

SERVING = {
    "serving": {
        "second_channel": {
            "ack_offset": "RELAY_SECOND_CH_ACK_OFFSET_800",
            "data_rate_index": 3,
            "frequency": "868300000",
        },
        "default_channel_index": 1,
        "cad_periodicity": "RELAY_CAD_PERIODICITY_20_MILLISECONDS",
        "uplink_forwarding_rules": [
            {"device_id": "leaf-one", "limits": {"bucket_size": "RELAY_LIMIT_BUCKET_SIZE_4"}}
        ],
        "limits": {
            "reset_behavior": "RELAY_RESET_LIMIT_COUNTER_NO_RESET",
            "overall": {"bucket_size": "RELAY_LIMIT_BUCKET_SIZE_12", "reload_rate": 100},
        },
    }
}
SERVED = {
    "served": {
        "dynamic": {"smart_enable_level": "RELAY_SMART_ENABLE_LEVEL_32"},
        "backoff": 12,
        "serving_device_id": "relay-one",
    }
}
STEERED = {
    "dynamic": {
        "margin": 10.0,
        "channel_steering": {"lora_narrow": {}},
        "overrides": {"data_rate_2": {"min_nb_trans": 1, "max_nb_trans": 3}},
    }
}


@pytest.fixture
async def app1(tts: TtsApi) -> None:
    await tts.create_application("app1")


def otaa(device_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "ids": {"device_id": device_id, "dev_eui": new_eui(), "join_eui": new_eui()},
        "supports_join": True,
        "lorawan_version": "MAC_V1_0_4",
        "lorawan_phy_version": "RP002_V1_0_3",
        "frequency_plan_id": FREQUENCY_PLAN,
        **fields,
    }


BASE_PATHS = ["supports_join", "lorawan_version", "lorawan_phy_version", "frequency_plan_id"]


async def put(
    client: httpx.AsyncClient, device: dict[str, Any], paths: list[str]
) -> httpx.Response:
    return await client.put(
        f"/ns/applications/app1/devices/{device['ids']['device_id']}",
        json={"end_device": device, "field_mask": {"paths": paths}},
    )


async def mac_settings(client: httpx.AsyncClient, device_id: str, mask: str) -> Any:
    body = expect_ok(
        await client.get(f"/ns/applications/app1/devices/{device_id}", params={"field_mask": mask})
    )
    return body.get("mac_settings")


@pytest.mark.usefixtures("app1")
async def test_relay_and_steering_are_stored_and_read_back(client: httpx.AsyncClient) -> None:
    device = otaa(
        "relay-one",
        mac_settings={"relay": SERVING, "desired_relay": SERVED, "adr": STEERED},
    )
    paths = [*BASE_PATHS, "mac_settings.relay", "mac_settings.desired_relay", "mac_settings.adr"]
    expect_ok(await put(client, device, paths))
    stored = await mac_settings(client, "relay-one", "mac_settings")
    assert stored["relay"] == SERVING
    assert stored["desired_relay"] == SERVED
    assert stored["adr"] == STEERED
    # A mask in the oneof spelling reads one member's part.
    part = await mac_settings(client, "relay-one", "mac_settings.adr.mode.dynamic.channel_steering")
    assert part == {"adr": {"dynamic": {"channel_steering": {"lora_narrow": {}}}}}


@pytest.mark.usefixtures("app1")
async def test_a_part_of_another_oneof_member_replaces_the_member(
    client: httpx.AsyncClient,
) -> None:
    """Console-style masks name the oneof (`relay.mode.served.backoff`): setting inside another
    member replaces the member set before, as the server's SetFields does."""
    device = otaa("switcher", mac_settings={"relay": SERVING})
    expect_ok(await put(client, device, [*BASE_PATHS, "mac_settings.relay"]))
    change = {"ids": device["ids"], "mac_settings": {"relay": {"served": {"backoff": 4}}}}
    expect_ok(
        await put(
            client,
            change,
            ["mac_settings.relay.mode.served.backoff"],
        )
    )
    stored = await mac_settings(client, "switcher", "mac_settings.relay")
    assert stored == {"relay": {"served": {"backoff": 4}}}


@pytest.mark.usefixtures("app1")
async def test_two_members_of_a_oneof_in_one_body_keep_the_last(
    client: httpx.AsyncClient,
) -> None:
    """The server's JSON decoder sets a oneof once per member it reads: the last one stays."""
    device = otaa(
        "two-modes",
        mac_settings={"adr": {"static": {"data_rate_index": 5}, "disabled": {}}},
    )
    expect_ok(await put(client, device, [*BASE_PATHS, "mac_settings.adr"]))
    assert await mac_settings(client, "two-modes", "mac_settings.adr") == {"adr": {"disabled": {}}}


@pytest.mark.usefixtures("app1")
@pytest.mark.parametrize(
    ("settings", "field", "reason", "error_type"),
    [
        (
            {"relay": {"served": {"always": {}}}},
            "serving_device_id",
            'value does not match regex pattern "^[a-z0-9](?:[-]?[a-z0-9]){2,}$"',
            "ServedRelaySettingsValidationError",
        ),
        (
            {"desired_relay": {"served": {"backoff": 64, "serving_device_id": "relay-one"}}},
            "backoff",
            "value must be less than or equal to 63",
            "ServedRelaySettingsValidationError",
        ),
        (
            {"relay": {"serving": {"limits": {"overall": {"reload_rate": 127}}}}},
            "reload_rate",
            "value must be less than or equal to 126",
            "RelayForwardLimitsValidationError",
        ),
        (
            {"adr": {"dynamic": {"overrides": {"data_rate_1": {"max_nb_trans": 4}}}}},
            "max_nb_trans",
            "value must be less than or equal to 3",
            # a nested message's Go type: Outer_Inner
            "ADRSettings_DynamicMode_PerDataRateIndexOverrideValidationError",
        ),
    ],
)
async def test_field_rules_are_validation_errors(
    client: httpx.AsyncClient,
    settings: dict[str, Any],
    field: str,
    reason: str,
    error_type: str,
) -> None:
    device = otaa("ruled", mac_settings=settings)
    paths = [*BASE_PATHS, *(f"mac_settings.{name}" for name in settings)]
    response = await put(client, device, paths)
    detail = expect_error(response, code=INVALID_ARGUMENT, name="validation")
    leaf = list(iter_causes(detail))[-1]
    assert leaf["attributes"]["field"] == field, leaf
    assert leaf["attributes"]["reason"] == reason, leaf
    assert leaf["attributes"]["name"] == error_type, leaf


@pytest.mark.usefixtures("app1")
@pytest.mark.parametrize(
    ("dynamic", "field"),
    [
        ({"min_nb_trans": 3, "max_nb_trans": 2}, "mac_settings.adr.mode.dynamic.max_nb_trans"),
        (
            {"min_data_rate_index": 4, "max_data_rate_index": 2},
            "mac_settings.adr.mode.dynamic.max_data_rate_index.value",
        ),
        (
            {"overrides": {"data_rate_7": {"min_nb_trans": 3, "max_nb_trans": 1}}},
            "mac_settings.adr.mode.dynamic.overrides.data_rate_7.max_nb_trans",
        ),
    ],
)
async def test_dynamic_adr_maximum_below_minimum_is_refused(
    client: httpx.AsyncClient, dynamic: dict[str, Any], field: str
) -> None:
    device = otaa("ranged", mac_settings={"adr": {"dynamic": dynamic}})
    response = await put(client, device, [*BASE_PATHS, "mac_settings.adr"])
    expect_error(
        response,
        code=INVALID_ARGUMENT,
        namespace="pkg/networkserver",
        name="field_value",
        attributes={"field": field},
    )


@pytest.mark.usefixtures("app1")
async def test_multicast_groups_have_no_relay(client: httpx.AsyncClient) -> None:
    """A multicast device's relay leaves must be zero: a served mode is refused, naming the
    first non-zero leaf, with `field_not_zero` as the cause; an empty serving mode is zero."""
    ids = {"device_id": "lights", "dev_eui": new_eui(), "join_eui": new_eui()}
    group = {
        "ids": ids,
        "multicast": True,
        "supports_class_c": True,
        "lorawan_version": "MAC_V1_0_3",
        "lorawan_phy_version": "PHY_V1_0_3_REV_A",
        "frequency_plan_id": FREQUENCY_PLAN,
        "session": {"dev_addr": new_dev_addr(), "keys": {"f_nwk_s_int_key": {"key": new_key()}}},
    }
    paths = [
        "multicast",
        "supports_class_c",
        "lorawan_version",
        "lorawan_phy_version",
        "frequency_plan_id",
        "session.dev_addr",
        "session.keys.f_nwk_s_int_key.key",
    ]
    relayed = {**group, "mac_settings": {"desired_relay": SERVED}}
    response = await put(client, relayed, [*paths, "mac_settings.desired_relay"])
    field = "mac_settings.desired_relay.mode.served.backoff"
    detail = expect_error(
        response,
        code=INVALID_ARGUMENT,
        namespace="pkg/networkserver",
        name="field_value",
        attributes={"field": field},
    )
    assert detail["cause"]["name"] == "field_not_zero", detail
    assert detail["cause"]["attributes"] == {"name": field}, detail

    expect_ok(await put(client, group, paths))
    serving = {"ids": ids, "mac_settings": {"relay": {"serving": {}}}}
    expect_ok(await put(client, serving, ["mac_settings.relay"]))
    always = {"ids": ids, "mac_settings": {"relay": {"serving": {"default_channel_index": 1}}}}
    response = await put(client, always, ["mac_settings.relay"])
    expect_error(
        response,
        code=INVALID_ARGUMENT,
        name="field_value",
        attributes={"field": "mac_settings.relay.mode.serving.default_channel_index"},
    )
