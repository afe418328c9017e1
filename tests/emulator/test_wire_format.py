"""The TTS JSON wire format as the emulator speaks it (FACTS §b)."""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx
import pytest

from tests.emulator.support import (
    FREQUENCY_PLAN,
    INVALID_ARGUMENT,
    TtsApi,
    expect_decode_error,
    expect_ok,
    new_eui,
    new_key,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$")

NS_OTAA_PATHS = ["supports_join", "lorawan_version", "lorawan_phy_version", "frequency_plan_id"]


@pytest.fixture
async def otaa(tts: TtsApi) -> dict[str, str]:
    """`app1/dev1`, registered OTAA in all four registries."""
    await tts.create_application("app1")
    return await tts.register_otaa_device("app1", "dev1")


def ns_device(ids: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {
        "ids": {
            "device_id": ids["device_id"],
            "dev_eui": ids["dev_eui"],
            "join_eui": ids["join_eui"],
        },
        **fields,
    }


async def ns_set(
    client: httpx.AsyncClient, ids: dict[str, str], paths: list[str], **fields: Any
) -> httpx.Response:
    return await client.put(
        f"/ns/applications/app1/devices/{ids['device_id']}",
        json={"end_device": ns_device(ids, **fields), "field_mask": {"paths": paths}},
    )


async def ns_get(client: httpx.AsyncClient, device_id: str, mask: str) -> dict[str, Any]:
    return expect_ok(
        await client.get(f"/ns/applications/app1/devices/{device_id}", params={"field_mask": mask})
    )


def expect_invalid_length(response: httpx.Response) -> None:
    """§b a hex/base64 field of the wrong length gives `pkg/types:invalid_length` (400). The
    decoder reports it, so it may come as plain decoder text or as ErrorDetails."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == INVALID_ARGUMENT
    if body["details"]:
        names = {(d.get("namespace"), d.get("name")) for d in body["details"]}
        assert ("pkg/types", "invalid_length") in names, body
    else:
        assert "invalid_length" in body["message"], body


# ---------------------------------------------------------------------------------------------
# Zero values, always-returned fields, projection


async def test_zero_values_are_omitted_even_when_masked(
    tts: TtsApi, client: httpx.AsyncClient, otaa: dict[str, str]
) -> None:
    """§b empty strings, false, empty maps and enum 0 are dropped even when the mask names them."""
    expect_ok(
        await client.put(
            "/applications/app1/devices/dev1",
            json={
                "end_device": {"name": "", "description": "", "attributes": {}},
                "field_mask": {"paths": ["name", "description", "attributes"]},
            },
        )
    )
    got = expect_ok(
        await client.get(
            "/applications/app1/devices/dev1", params={"field_mask": "name,description,attributes"}
        )
    )
    assert set(got) == {"ids", "created_at", "updated_at"}

    expect_ok(await ns_set(client, otaa, ["supports_class_c"], supports_class_c=False))
    ns = await ns_get(client, "dev1", "supports_class_c,supports_class_b,multicast")
    assert set(ns) == {"ids", "created_at", "updated_at"}


async def test_ids_and_timestamps_always_returned(
    client: httpx.AsyncClient, otaa: dict[str, str]
) -> None:
    """§b `ids`, `created_at`, `updated_at` come back with any mask; NS/AS/JS add them too."""
    got = expect_ok(
        await client.get("/applications/app1/devices/dev1", params={"field_mask": "name"})
    )
    assert {"ids", "created_at", "updated_at"} <= set(got)
    assert TIMESTAMP.match(got["created_at"]) and TIMESTAMP.match(got["updated_at"])
    for registry, mask in (
        ("ns", "frequency_plan_id"),
        ("as", "formatters"),
        ("js", "root_keys.root_key_id"),
    ):
        reply = expect_ok(
            await client.get(
                f"/{registry}/applications/app1/devices/dev1", params={"field_mask": mask}
            )
        )
        assert reply["ids"]["device_id"] == "dev1", registry
        assert reply["ids"]["dev_eui"] == otaa["dev_eui"], registry
        assert reply["ids"]["application_ids"] == {"application_id": "app1"}, registry
        assert TIMESTAMP.match(reply["created_at"]), registry
        assert TIMESTAMP.match(reply["updated_at"]), registry


async def test_is_get_without_mask_returns_only_ids_and_timestamps(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§b IS Get/List with no field mask returns only `ids`, `created_at`, `updated_at`."""
    await tts.create_application("app1")
    await tts.create_end_device(
        "app1", "dev1", name="n", description="d", attributes={"key": "value"}
    )
    got = expect_ok(await client.get("/applications/app1/devices/dev1"))
    assert set(got) == {"ids", "created_at", "updated_at"}
    listed = expect_ok(await client.get("/applications/app1/devices"))["end_devices"]
    assert set(listed[0]) == {"ids", "created_at", "updated_at"}


async def test_parent_path_returns_subtree_leaf_path_returns_leaf(
    client: httpx.AsyncClient, otaa: dict[str, str]
) -> None:
    """§b a parent path returns the whole subtree; `a.b` returns only that leaf nested in `a`."""
    expect_ok(
        await ns_set(
            client,
            otaa,
            [
                "mac_settings.rx1_delay",
                "mac_settings.rx2_data_rate_index",
                "mac_settings.supports_32_bit_f_cnt",
            ],
            mac_settings={"rx1_delay": 5, "rx2_data_rate_index": 3, "supports_32_bit_f_cnt": True},
        )
    )
    whole = await ns_get(client, "dev1", "mac_settings")
    assert whole["mac_settings"] == {
        "rx1_delay": 5,
        "rx2_data_rate_index": 3,
        "supports_32_bit_f_cnt": True,
    }
    leaf = await ns_get(client, "dev1", "mac_settings.rx1_delay")
    assert leaf["mac_settings"] == {"rx1_delay": 5}
    assert "frequency_plan_id" not in leaf


# ---------------------------------------------------------------------------------------------
# Enums

MAC_SPELLINGS = [
    ("1.0.2", "MAC_V1_0_2"),
    ("V1_0_2", "MAC_V1_0_2"),
    ("MAC_V1_0_2", "MAC_V1_0_2"),
    (3, "MAC_V1_0_2"),
    ("3", "MAC_V1_0_2"),
    ("1.0", "MAC_V1_0"),
    ("1.0.0", "MAC_V1_0"),
    ("1.0.1", "MAC_V1_0_1"),
    ("1.0.3", "MAC_V1_0_3"),
    (5, "MAC_V1_0_3"),
    ("1.0.4", "MAC_V1_0_4"),
    (6, "MAC_V1_0_4"),
    ("1.1", "MAC_V1_1"),
    ("1.1.0", "MAC_V1_1"),
    (4, "MAC_V1_1"),
]
# A PHY version that fits each MAC version (so the NS accepts the pair).
PHY_FOR_MAC = {
    "MAC_V1_0": "PHY_V1_0",
    "MAC_V1_0_1": "PHY_V1_0_1",
    "MAC_V1_0_2": "PHY_V1_0_2_REV_B",
    "MAC_V1_0_3": "PHY_V1_0_3_REV_A",
    "MAC_V1_0_4": "RP002_V1_0_1",
    "MAC_V1_1": "PHY_V1_1_REV_B",
}
PHY_SPELLINGS = [
    ("TS001_V1_0", "PHY_V1_0", "MAC_V1_0"),
    ("1.0", "PHY_V1_0", "MAC_V1_0"),
    ("1.0.0", "PHY_V1_0", "MAC_V1_0"),
    ("TS001_V1_0_1", "PHY_V1_0_1", "MAC_V1_0_1"),
    ("1.0.1", "PHY_V1_0_1", "MAC_V1_0_1"),
    ("RP001_V1_0_2", "PHY_V1_0_2_REV_A", "MAC_V1_0_2"),
    ("1.0.2", "PHY_V1_0_2_REV_A", "MAC_V1_0_2"),
    ("1.0.2-a", "PHY_V1_0_2_REV_A", "MAC_V1_0_2"),
    ("1.0.2-b", "PHY_V1_0_2_REV_B", "MAC_V1_0_2"),
    ("RP001_V1_0_2_REV_B", "PHY_V1_0_2_REV_B", "MAC_V1_0_2"),
    ("V1_0_2_REV_B", "PHY_V1_0_2_REV_B", "MAC_V1_0_2"),
    (4, "PHY_V1_0_2_REV_B", "MAC_V1_0_2"),
    ("1.0.3-a", "PHY_V1_0_3_REV_A", "MAC_V1_0_3"),
    ("RP001_V1_0_3_REV_A", "PHY_V1_0_3_REV_A", "MAC_V1_0_3"),
    ("RP001_V1_1_REV_A", "PHY_V1_1_REV_A", "MAC_V1_1"),
    ("1.1-a", "PHY_V1_1_REV_A", "MAC_V1_1"),
    ("1.1.0-a", "PHY_V1_1_REV_A", "MAC_V1_1"),
    ("RP001_V1_1_REV_B", "PHY_V1_1_REV_B", "MAC_V1_1"),
    ("1.1-b", "PHY_V1_1_REV_B", "MAC_V1_1"),
    ("1.1.0-b", "PHY_V1_1_REV_B", "MAC_V1_1"),
    ("RP002_V1_0_0", "RP002_V1_0_0", "MAC_V1_0_4"),
    ("RP002_V1_0_3", "RP002_V1_0_3", "MAC_V1_0_4"),
    (12, "RP002_V1_0_4", "MAC_V1_0_4"),
]


@pytest.mark.parametrize(("spelling", "canonical"), MAC_SPELLINGS)
async def test_mac_version_aliases_in_canonical_out(
    client: httpx.AsyncClient, otaa: dict[str, str], spelling: object, canonical: str
) -> None:
    """§b MACVersion input: canonical name, `V1_0_2`, `1.0.2`, number or numeric string;
    output: the canonical `MAC_V...` name."""
    response = await ns_set(
        client,
        otaa,
        ["lorawan_version", "lorawan_phy_version"],
        lorawan_version=spelling,
        lorawan_phy_version=PHY_FOR_MAC[canonical],
    )
    assert expect_ok(response)["lorawan_version"] == canonical
    assert (await ns_get(client, "dev1", "lorawan_version"))["lorawan_version"] == canonical


@pytest.mark.parametrize(("spelling", "canonical", "mac"), PHY_SPELLINGS)
async def test_phy_version_aliases_in_canonical_out(
    client: httpx.AsyncClient, otaa: dict[str, str], spelling: object, canonical: str, mac: str
) -> None:
    """§b PHYVersion: `TS001_*`, `RP001_*` and short aliases in; the first name per number out."""
    response = await ns_set(
        client,
        otaa,
        ["lorawan_version", "lorawan_phy_version"],
        lorawan_version=mac,
        lorawan_phy_version=spelling,
    )
    assert expect_ok(response)["lorawan_phy_version"] == canonical
    stored = await ns_get(client, "dev1", "lorawan_phy_version")
    assert stored["lorawan_phy_version"] == canonical


@pytest.mark.parametrize("spelling", ["mac_v1_0_2", "1.0.9", "MAC_V9", "RP002-1.0.3"])
async def test_unknown_enum_spelling_is_a_decode_error(
    client: httpx.AsyncClient, otaa: dict[str, str], spelling: str
) -> None:
    """§b matching is case-sensitive; an unknown enum string is a decode error:
    400 `{"code": 3, "message": ..., "details": []}`."""
    field = "lorawan_phy_version" if spelling.startswith("RP002") else "lorawan_version"
    expect_decode_error(await ns_set(client, otaa, [field], **{field: spelling}))


async def test_class_enum_alias(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§b `Class`: `CLASS_A/B/C` out, `A/B/C` accepted in (NS `mac_state.device_class`)."""
    await tts.create_application("app1")
    abp = await tts.register_abp_device("app1", "dev1")
    response = await client.put(
        "/ns/applications/app1/devices/dev1",
        json={
            "end_device": {
                "ids": {"device_id": "dev1", "dev_eui": abp["dev_eui"]},
                "mac_state": {"device_class": "C"},
            },
            "field_mask": {"paths": ["mac_state.device_class"]},
        },
    )
    expect_ok(response)
    got = await ns_get(client, "dev1", "mac_state.device_class")
    assert got["mac_state"]["device_class"] == "CLASS_C"


@pytest.mark.parametrize("spelling", ["JAVASCRIPT", "FORMATTER_JAVASCRIPT", 3])
async def test_formatter_enum_without_prefix(
    client: httpx.AsyncClient, otaa: dict[str, str], spelling: object
) -> None:
    """§a/§b formatter enum input also accepts names without the `FORMATTER_` prefix."""
    response = await client.put(
        "/as/applications/app1/devices/dev1",
        json={
            "end_device": {
                "ids": {
                    "device_id": "dev1",
                    "dev_eui": otaa["dev_eui"],
                    "join_eui": otaa["join_eui"],
                },
                "formatters": {
                    "up_formatter": spelling,
                    "up_formatter_parameter": "function decodeUplink(input) { return {}; }",
                },
            },
            "field_mask": {"paths": ["formatters"]},
        },
    )
    assert expect_ok(response)["formatters"]["up_formatter"] == "FORMATTER_JAVASCRIPT"
    got = expect_ok(
        await client.get(
            "/as/applications/app1/devices/dev1", params={"field_mask": "formatters.up_formatter"}
        )
    )
    assert got["formatters"] == {"up_formatter": "FORMATTER_JAVASCRIPT"}


@pytest.mark.parametrize(
    ("rx1_delay", "rx2_dr"), [(5, 3), ("RX_DELAY_5", "DATA_RATE_3"), ("5", "3")]
)
async def test_numeric_enums_are_written_as_numbers(
    client: httpx.AsyncClient, otaa: dict[str, str], rx1_delay: object, rx2_dr: object
) -> None:
    """§b `RxDelay` and `DataRateIndex` are written as numbers; input accepts name, number or
    numeric string."""
    expect_ok(
        await ns_set(
            client,
            otaa,
            ["mac_settings.rx1_delay", "mac_settings.rx2_data_rate_index"],
            mac_settings={"rx1_delay": rx1_delay, "rx2_data_rate_index": rx2_dr},
        )
    )
    got = await ns_get(client, "dev1", "mac_settings.rx1_delay,mac_settings.rx2_data_rate_index")
    assert got["mac_settings"] == {"rx1_delay": 5, "rx2_data_rate_index": 3}


# ---------------------------------------------------------------------------------------------
# Wrappers


@pytest.mark.parametrize(
    "mac_settings",
    [
        {"rx1_delay": {"value": 3}},
        {"rx2_data_rate_index": {"value": 3}},
        {"supports_32_bit_f_cnt": {"value": True}},
        {"rx2_frequency": {"value": "869525000"}},
    ],
)
async def test_tts_wrapper_as_object_is_a_decode_error(
    client: httpx.AsyncClient, otaa: dict[str, str], mac_settings: dict[str, Any]
) -> None:
    """§b TTS's own wrappers take ONLY the bare value; `{"value": 3}` is a decode error (400,
    plain gRPC status with empty details)."""
    paths = [f"mac_settings.{name}" for name in mac_settings]
    expect_decode_error(await ns_set(client, otaa, paths, mac_settings=mac_settings))


@pytest.mark.parametrize("value", [True, {"value": True}])
async def test_google_wrapper_accepts_bare_or_object_and_writes_bare(
    client: httpx.AsyncClient, otaa: dict[str, str], value: object
) -> None:
    """§b Google WKT wrappers (`skip_payload_crypto_override`: BoolValue) accept the bare value or
    `{"value": x}` and are written bare."""
    response = await client.put(
        "/as/applications/app1/devices/dev1",
        json={
            "end_device": {
                "ids": {
                    "device_id": "dev1",
                    "dev_eui": otaa["dev_eui"],
                    "join_eui": otaa["join_eui"],
                },
                "skip_payload_crypto_override": value,
            },
            "field_mask": {"paths": ["skip_payload_crypto_override"]},
        },
    )
    expect_ok(response)
    got = expect_ok(
        await client.get(
            "/as/applications/app1/devices/dev1",
            params={"field_mask": "skip_payload_crypto_override"},
        )
    )
    assert got["skip_payload_crypto_override"] is True


# ---------------------------------------------------------------------------------------------
# Bytes


async def test_hex_bytes_upper_out_lower_and_base64_in(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§b EUIs and keys: written upper-case hex; input hex in either case, or base64 (standard
    or URL alphabet, padding optional) decided by length."""
    await tts.create_application("app1")
    raw_dev_eui = bytes.fromhex("70B3D57ED0000A0B")
    raw_join_eui = bytes.fromhex("FFFEFDFCFBFAF9F8")  # base64 has `/`, urlsafe `_`
    raw_key = bytes.fromhex("000102030405060708090A0B0C0D0EFF")
    created = await tts.create_end_device(
        "app1",
        "dev1",
        dev_eui=base64.b64encode(raw_dev_eui).decode().rstrip("="),
        join_eui=base64.urlsafe_b64encode(raw_join_eui).decode(),
    )
    assert created["ids"]["dev_eui"] == "70B3D57ED0000A0B"
    assert created["ids"]["join_eui"] == "FFFEFDFCFBFAF9F8"

    response = await client.put(
        "/js/applications/app1/devices/dev1",
        json={
            "end_device": {
                "ids": {
                    "device_id": "dev1",
                    "dev_eui": "70b3d57ed0000a0b",
                    "join_eui": "fffefdfcfbfaf9f8",
                },
                "root_keys": {
                    "app_key": {"key": raw_key.hex()},
                    "nwk_key": {"key": base64.b64encode(raw_key).decode()},
                },
            },
            "field_mask": {"paths": ["root_keys.app_key.key", "root_keys.nwk_key.key"]},
        },
    )
    expect_ok(response)
    got = expect_ok(
        await client.get("/js/applications/app1/devices/dev1", params={"field_mask": "root_keys"})
    )
    assert got["ids"]["dev_eui"] == "70B3D57ED0000A0B"
    assert got["root_keys"]["app_key"]["key"] == "000102030405060708090A0B0C0D0EFF"
    assert got["root_keys"]["nwk_key"]["key"] == "000102030405060708090A0B0C0D0EFF"


@pytest.mark.parametrize("bad_eui", ["70B3D57ED0000A0", "70B3D57ED0000A0B00", "ABC"])
async def test_wrong_length_eui_is_invalid_length(
    tts: TtsApi, client: httpx.AsyncClient, bad_eui: str
) -> None:
    """§b any length that is neither hex nor base64 of 8 bytes gives `pkg/types:invalid_length`."""
    await tts.create_application("app1")
    response = await client.post(
        "/applications/app1/devices",
        json={"end_device": {"ids": {"device_id": "dev1", "dev_eui": bad_eui}}},
    )
    expect_invalid_length(response)


async def test_wrong_length_key_is_invalid_length(
    client: httpx.AsyncClient, otaa: dict[str, str]
) -> None:
    """§b/§d `KeyEnvelope.key` is 16 bytes; 30 hex chars give `invalid_length`."""
    response = await client.put(
        "/js/applications/app1/devices/dev1",
        json={
            "end_device": {
                "ids": {
                    "device_id": "dev1",
                    "dev_eui": otaa["dev_eui"],
                    "join_eui": otaa["join_eui"],
                },
                "root_keys": {"app_key": {"key": new_key()[:30]}},
            },
            "field_mask": {"paths": ["root_keys.app_key.key"]},
        },
    )
    expect_invalid_length(response)


# ---------------------------------------------------------------------------------------------
# Numbers, timestamps, durations


@pytest.mark.parametrize("as_strings", [False, True])
async def test_uint64_written_as_strings(
    client: httpx.AsyncClient, otaa: dict[str, str], as_strings: bool
) -> None:
    """§b uint64 (`factory_preset_frequencies`, `rx2_frequency`) is written as a quoted decimal;
    input accepts a number or a string."""
    frequencies = [868100000, 868300000, 868500000]
    sent: list[Any] = [str(f) for f in frequencies] if as_strings else frequencies
    expect_ok(
        await ns_set(
            client,
            otaa,
            ["mac_settings.factory_preset_frequencies", "mac_settings.rx2_frequency"],
            mac_settings={
                "factory_preset_frequencies": sent,
                "rx2_frequency": "869525000" if as_strings else 869525000,
            },
        )
    )
    got = await ns_get(
        client, "dev1", "mac_settings.factory_preset_frequencies,mac_settings.rx2_frequency"
    )
    assert got["mac_settings"] == {
        "factory_preset_frequencies": ["868100000", "868300000", "868500000"],
        "rx2_frequency": "869525000",
    }


@pytest.mark.parametrize(
    ("sent", "written"),
    [
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05.120Z", "2024-01-02T03:04:05.120Z"),
        ("2024-01-02T03:04:05.123456Z", "2024-01-02T03:04:05.123456Z"),
    ],
)
async def test_timestamps_utc_with_z(
    tts: TtsApi, client: httpx.AsyncClient, sent: str, written: str
) -> None:
    """§b timestamps are RFC 3339 UTC with a literal `Z`, fraction trimmed to 0/3/6/9 digits."""
    await tts.create_application("app1")
    await tts.create_end_device("app1", "dev1")
    expect_ok(
        await client.put(
            "/applications/app1/devices/dev1",
            json={"end_device": {"activated_at": sent}, "field_mask": {"paths": ["activated_at"]}},
        )
    )
    got = expect_ok(
        await client.get("/applications/app1/devices/dev1", params={"field_mask": "activated_at"})
    )
    assert got["activated_at"] == written


@pytest.mark.parametrize("sent", ["2024-01-02T05:04:05+02:00", "2024-01-02 03:04:05Z", "yesterday"])
async def test_timestamp_without_z_is_rejected(
    tts: TtsApi, client: httpx.AsyncClient, sent: str
) -> None:
    """§b the input must end in `Z` (layout `...999999999Z`): an offset is a decode error."""
    await tts.create_application("app1")
    await tts.create_end_device("app1", "dev1")
    response = await client.put(
        "/applications/app1/devices/dev1",
        json={"end_device": {"activated_at": sent}, "field_mask": {"paths": ["activated_at"]}},
    )
    expect_decode_error(response)


@pytest.mark.parametrize(
    ("sent", "written"), [("90s", "90s"), ("1m30s", "90s"), ("1500ms", "1.500s")]
)
async def test_durations(
    client: httpx.AsyncClient, otaa: dict[str, str], sent: str, written: str
) -> None:
    """§b durations are written as seconds with an `s` suffix; input accepts Go durations."""
    expect_ok(
        await ns_set(
            client, otaa, ["mac_settings.class_c_timeout"], mac_settings={"class_c_timeout": sent}
        )
    )
    got = await ns_get(client, "dev1", "mac_settings.class_c_timeout")
    assert got["mac_settings"]["class_c_timeout"] == written


# ---------------------------------------------------------------------------------------------
# Field names, unknown fields, malformed bodies


async def test_camel_case_input_snake_case_output(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§b input accepts lowerCamelCase names; output is always the proto snake_case name."""
    await tts.create_application("app1")
    dev_eui, join_eui = new_eui(), new_eui()
    created = expect_ok(
        await client.post(
            "/applications/app1/devices",
            json={
                "endDevice": {
                    "ids": {"deviceId": "dev1", "devEui": dev_eui, "joinEui": join_eui},
                    "networkServerAddress": "ns.example.com",
                }
            },
        )
    )
    assert created["ids"]["device_id"] == "dev1"
    response = await client.put(
        "/ns/applications/app1/devices/dev1",
        json={
            "endDevice": {
                "ids": {"deviceId": "dev1", "devEui": dev_eui, "joinEui": join_eui},
                "supportsJoin": True,
                "lorawanVersion": "MAC_V1_0_2",
                "lorawanPhyVersion": "PHY_V1_0_2_REV_B",
                "frequencyPlanId": FREQUENCY_PLAN,
            },
            "fieldMask": {
                "paths": [
                    "supports_join",
                    "lorawan_version",
                    "lorawan_phy_version",
                    "frequency_plan_id",
                ]
            },
        },
    )
    expect_ok(response)
    got = await ns_get(client, "dev1", "supports_join,frequency_plan_id")
    assert got["supports_join"] is True
    assert got["frequency_plan_id"] == FREQUENCY_PLAN
    is_dev = expect_ok(
        await client.get(
            "/applications/app1/devices/dev1", params={"field_mask": "network_server_address"}
        )
    )
    assert is_dev["network_server_address"] == "ns.example.com"
    assert "networkServerAddress" not in is_dev


async def test_unknown_fields_are_ignored(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§b unknown fields in the input are silently ignored."""
    await tts.create_application("app1")
    response = await client.post(
        "/applications/app1/devices",
        json={
            "end_device": {"ids": {"device_id": "dev1"}, "name": "x", "no_such_field": {"a": 1}},
            "bogus": True,
        },
    )
    expect_ok(response)


@pytest.mark.parametrize(
    "body",
    [b'{"end_device": {"ids": {"device_id": "dev1"}},}', b"{not json", b'{"end_device": []}'],
)
async def test_malformed_body_is_plain_400(
    tts: TtsApi, client: httpx.AsyncClient, body: bytes
) -> None:
    """§b a body that fails to decode gives 400 `{"code": 3, "message": ..., "details": []}`."""
    await tts.create_application("app1")
    response = await client.post(
        "/applications/app1/devices", content=body, headers={"Content-Type": "application/json"}
    )
    expect_decode_error(response)


# ---------------------------------------------------------------------------------------------
# Field-mask encodings


async def test_field_mask_query_forms(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a `?field_mask=a,b` and `?field_mask.paths=a&field_mask.paths=b` are equivalent."""
    await tts.create_application("app1")
    await tts.create_end_device("app1", "dev1", name="n", description="d", attributes={"k1x": "v"})
    comma = expect_ok(
        await client.get(
            "/applications/app1/devices/dev1", params={"field_mask": "name,description"}
        )
    )
    repeated = expect_ok(
        await client.get(
            "/applications/app1/devices/dev1",
            params=[("field_mask.paths", "name"), ("field_mask.paths", "description")],
        )
    )
    assert comma == repeated
    assert (comma["name"], comma["description"]) == ("n", "d")
    assert "attributes" not in comma


@pytest.mark.parametrize("mask", [{"paths": ["name", "description"]}, "name,description"])
async def test_body_field_mask_forms(tts: TtsApi, client: httpx.AsyncClient, mask: object) -> None:
    """§a body mask as `{"paths": [...]}` or as the string `"a,b"`."""
    await tts.create_application("app1")
    await tts.create_end_device("app1", "dev1", name="old", attributes={"keep": "me"})
    response = await client.put(
        "/applications/app1/devices/dev1",
        json={
            "end_device": {"name": "new", "description": "desc", "attributes": {"x": "y"}},
            "field_mask": mask,
        },
    )
    expect_ok(response)
    got = expect_ok(
        await client.get(
            "/applications/app1/devices/dev1",
            params={"field_mask": "name,description,attributes"},
        )
    )
    assert (got["name"], got["description"], got["attributes"]) == ("new", "desc", {"keep": "me"})


async def test_maps_roundtrip(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§b `attributes` is a string map; `locations` maps names to Location."""
    await tts.create_application("app1")
    location = {"latitude": 52.1, "longitude": 4.3, "altitude": 10, "source": "SOURCE_REGISTRY"}
    await tts.create_end_device(
        "app1", "dev1", attributes={"site": "north", "floor": "2"}, locations={"user": location}
    )
    got = expect_ok(
        await client.get(
            "/applications/app1/devices/dev1", params={"field_mask": "attributes,locations"}
        )
    )
    assert got["attributes"] == {"site": "north", "floor": "2"}
    assert got["locations"] == {"user": location}


@pytest.mark.parametrize(
    ("path", "end_device"),
    [
        ("session.dev_addr", {"session": {"dev_addr": "260B0"}}),  # 6 would be base64
        (
            "session.keys.f_nwk_s_int_key.key",
            {"session": {"keys": {"f_nwk_s_int_key": {"key": "00"}}}},
        ),
    ],
)
async def test_wrong_length_dev_addr_and_session_key(
    client: httpx.AsyncClient, otaa: dict[str, str], path: str, end_device: dict[str, Any]
) -> None:
    """§b a DevAddr is 8 hex chars, a key 32: other lengths give `invalid_length`."""
    expect_invalid_length(await ns_set(client, otaa, [path], **end_device))


async def test_net_id_length_and_struct_roundtrip(
    client: httpx.AsyncClient, otaa: dict[str, str]
) -> None:
    """§b a NetID is 6 hex chars (or 4 base64); `google.protobuf.Struct` (`provisioning_data`) is
    plain JSON."""
    ids = {k: otaa[k] for k in ("device_id", "dev_eui", "join_eui")}
    url = "/js/applications/app1/devices/dev1"
    bad = await client.put(
        url,
        json={"end_device": {"ids": ids, "net_id": "00130"}, "field_mask": {"paths": ["net_id"]}},
    )
    expect_invalid_length(bad)
    data = {"serial": "abc", "batch": 7, "nested": {"ok": True, "list": [1, "two"]}}
    expect_ok(
        await client.put(
            url,
            json={
                "end_device": {"ids": ids, "provisioning_data": data, "net_id": "000013"},
                "field_mask": {"paths": ["provisioning_data", "net_id"]},
            },
        )
    )
    got = expect_ok(await client.get(url, params={"field_mask": "provisioning_data,net_id"}))
    assert got["provisioning_data"] == data
    assert got["net_id"] == "000013"
