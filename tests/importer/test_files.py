"""`reconciler import --from-file`: the Console's JSON import format (stream, array, template
form, lorawan-stack-migrate output) and The Things Stack CSV format, with the round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.providers.tts.importing.live import Selection
from tests.core.support import Engine
from tests.emulator.support import ADMIN_USER, expect_ok, make_api_key
from tests.importer.support import (
    admin_client,
    device_records,
    do_import,
    env_template,
    import_options,
    new_transport,
    only_adoption,
    register,
    validate,
    varied_devices,
)

pytestmark = pytest.mark.asyncio

STACK = "orchard-north"


async def seed(client: httpx.AsyncClient, devices: list[dict[str, Any]]) -> None:
    """The same devices registered through the API (as the Console's import would)."""
    app = {"ids": {"application_id": "orchard"}}
    expect_ok(await client.post(f"/users/{ADMIN_USER}/applications", json={"application": app}))
    for device in devices:
        await register(client, "orchard", device)


async def round_trip(source: httpx.ASGITransport, api_key: str, file: Path, tmp_path: Path) -> Any:
    """Import `file`, validate, plan against `source` (only adoption), apply to a fresh emulator
    and compare every device record on all four registries."""
    out = tmp_path / "imported"
    options = import_options(
        out, source, api_key, selection=Selection(("orchard",)), owner="user:admin-user"
    )
    options.from_file = file
    report = await do_import(options)
    environ = {"TTS_API_KEY": api_key}
    validate(out, environ)
    run = await Engine(source, api_key, environ_extra=environ).plan([out])
    assert only_adoption(run.plan, STACK) == []
    async with admin_client(source, api_key) as client:
        before = await device_records(client, "orchard")
    fresh_key = make_api_key()
    async with new_transport(fresh_key) as fresh_transport:
        fresh = Engine(fresh_transport, fresh_key, environ_extra={"TTS_API_KEY": fresh_key})
        _, applied = await fresh.apply([out])
        assert not applied.failed, applied.failed
        async with admin_client(fresh_transport, fresh_key) as fresh_client:
            assert await device_records(fresh_client, "orchard") == before
    return report


@pytest.mark.parametrize("layout", ["ndjson", "array", "template", "pretty-stream"])
async def test_json_file_round_trip(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
    layout: str,
) -> None:
    devices = varied_devices()
    await seed(client, devices)
    file = tmp_path / "devices.json"
    match layout:
        case "ndjson":
            text = "".join(json.dumps(d) + "\n" for d in devices)
        case "array":
            text = json.dumps(devices, indent=2)
        case "template":
            text = "".join(
                json.dumps({"end_device": d, "field_mask": {"paths": sorted(d)}}) + "\n"
                for d in devices
            )
        case _:
            text = "\n".join(json.dumps(d, indent=2) for d in devices)
    file.write_text(text)
    report = await round_trip(emulator_transport, admin_api_key, file, tmp_path)
    assert report.counts["device"] == len(devices)


async def test_migrate_output_state_is_reported_not_imported(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    """lorawan-stack-migrate writes whole devices: MAC state, an OTAA session, timestamps and
    MAC settings the manifest language lacks. They are reported, the rest round-trips."""
    devices = varied_devices()
    await seed(client, devices)
    exported = []
    for device in devices:
        extra: dict[str, Any] = {"created_at": "2024-01-01T00:00:00Z"}
        if device.get("supports_join"):
            extra["session"] = {
                "dev_addr": "27000001",
                "keys": {"f_nwk_s_int_key": {"key": "00112233445566778899AABBCCDDEEFF"}},
                "last_f_cnt_up": 12,
            }
            extra["mac_state"] = {"current_parameters": {"rx1_delay": 1}}
            extra["max_frequency"] = "870000000"
        exported.append({**device, **extra})
    file = tmp_path / "migrated.json"
    file.write_text("".join(json.dumps(d) + "\n" for d in exported))
    report = await round_trip(emulator_transport, admin_api_key, file, tmp_path)
    lines = "\n".join(report.lines())
    assert "`mac_state`" in lines
    assert "an OTAA session" in lines
    assert "device field `max_frequency`: not in the manifest language" in lines
    assert "created_at" not in lines


async def test_empty_settings_are_reported_not_dropped(
    tmp_path: Path, emulator_transport: httpx.ASGITransport, admin_api_key: str
) -> None:
    """A setting that is an empty object (a relay mode's `{"always": {}}`, an empty state
    message) outside the manifest language gets its report line like any other value."""
    device = varied_devices()[0]
    device["mac_state"] = {"current_parameters": {"relay": {"served": {"always": {}}}}}
    device["pending_mac_state"] = {}
    file = tmp_path / "empty-settings.json"
    file.write_text(json.dumps(device) + "\n")
    options = import_options(
        tmp_path / "imported",
        emulator_transport,
        admin_api_key,
        selection=Selection(("orchard",)),
        owner="user:admin-user",
    )
    options.from_file = file
    lines = "\n".join((await do_import(options)).lines())
    assert "device state not imported: `mac_state`" in lines
    assert "device state not imported: `pending_mac_state`" in lines


CSV_DEVICES = [
    {
        "id": "csv-otaa-1",
        "dev_eui": "70B3D57EF0000001",
        "join_eui": "70B3D57ED0000000",
        "name": "CSV one",
        "frequency_plan_id": "EU_863_870_TTN",
        "lorawan_version": "MAC_V1_0_3",
        "lorawan_phy_version": "PHY_V1_0_3_REV_A",
        "app_key": "0102030405060708090A0B0C0D0E0F10",
        "brand_id": "acme",
        "model_id": "probe-3",
        "rx1_delay": "5",
        "supports_class_c": "true",
    },
    {
        "id": "csv-otaa-11",
        "dev_eui": "70B3D57EF0000002",
        "join_eui": "70B3D57ED0000000",
        "frequency_plan_id": "EU_863_870_TTN",
        "lorawan_version": "1.1",
        "lorawan_phy_version": "1.1-b",
        "app_key": "1102030405060708090A0B0C0D0E0F10",
        "nwk_key": "2102030405060708090A0B0C0D0E0F10",
    },
    {
        "id": "csv-abp",
        "dev_eui": "70B3D57EF0000003",
        "frequency_plan_id": "EU_863_870_TTN",
        "lorawan_version": "1.0.2",
        "lorawan_phy_version": "1.0.2-b",
        "dev_addr": "260B0009",
        "app_s_key": "3102030405060708090A0B0C0D0E0F10",
        "f_nwk_s_int_key": "4102030405060708090A0B0C0D0E0F10",
        "supports_32_bit_f_cnt": "true",
    },
]
CSV_VERSIONS = {
    "1.1": "MAC_V1_1",
    "1.1-b": "PHY_V1_1_REV_B",
    "1.0.2": "MAC_V1_0_2",
    "1.0.2-b": "PHY_V1_0_2_REV_B",
}


def api_device(row: dict[str, str]) -> dict[str, Any]:
    """The EndDevice the Console makes of one CSV row."""
    ids = {"device_id": row["id"], "dev_eui": row["dev_eui"]}
    if "join_eui" in row:
        ids["join_eui"] = row["join_eui"]
    device: dict[str, Any] = {
        "ids": ids,
        "frequency_plan_id": row["frequency_plan_id"],
        "lorawan_version": CSV_VERSIONS.get(row["lorawan_version"], row["lorawan_version"]),
        "lorawan_phy_version": CSV_VERSIONS.get(
            row["lorawan_phy_version"], row["lorawan_phy_version"]
        ),
    }
    if "name" in row:
        device["name"] = row["name"]
    if "app_key" in row:
        device["supports_join"] = True
        device["root_keys"] = {"app_key": {"key": row["app_key"]}}
        if "nwk_key" in row:
            device["root_keys"]["nwk_key"] = {"key": row["nwk_key"]}
    else:
        device["session"] = {
            "dev_addr": row["dev_addr"],
            "keys": {
                "app_s_key": {"key": row["app_s_key"]},
                "f_nwk_s_int_key": {"key": row["f_nwk_s_int_key"]},
            },
        }
    if "brand_id" in row:
        device["version_ids"] = {"brand_id": row["brand_id"], "model_id": row["model_id"]}
    mac: dict[str, Any] = {}
    if "rx1_delay" in row:
        mac["rx1_delay"] = int(row["rx1_delay"])
    if "supports_32_bit_f_cnt" in row:
        mac["supports_32_bit_f_cnt"] = True
    if mac:
        device["mac_settings"] = mac
    if row.get("supports_class_c") == "true":
        device["supports_class_c"] = True
    return device


async def test_csv_file_round_trip(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    await seed(client, [api_device(row) for row in CSV_DEVICES])
    columns = list(dict.fromkeys(c for row in CSV_DEVICES for c in row))
    lines = [";".join(columns)] + [";".join(row.get(c, "") for c in columns) for row in CSV_DEVICES]
    file = tmp_path / "devices.csv"
    file.write_text("\n".join(lines) + "\n")
    report = await round_trip(emulator_transport, admin_api_key, file, tmp_path)
    assert report.counts["device"] == 3


async def test_json_without_keys_references_env_vars(
    tmp_path: Path, emulator_transport: httpx.ASGITransport, admin_api_key: str
) -> None:
    """An export without keys (the Console's, without RIGHT_APPLICATION_DEVICES_READ_KEYS):
    the manifests reference environment variables for them, listed in the env template."""
    devices = []
    for device in varied_devices()[:3]:
        stripped = {k: v for k, v in device.items() if k not in ("root_keys", "supports_join")}
        devices.append(stripped)
    file = tmp_path / "no-keys.json"
    file.write_text("".join(json.dumps(d) + "\n" for d in devices))
    out = tmp_path / "imported"
    options = import_options(
        out,
        emulator_transport,
        admin_api_key,
        selection=Selection(("orchard",)),
        owner="user:admin-user",
    )
    options.from_file = file
    report = await do_import(options)
    assert any("were not read (the file holds no keys for them)" in line for line in report.lines())
    names = env_template(out)
    assert names == [f"TTS_ORCHARD_NODE_{i}_APP_KEY" for i in range(1, 4)]
    environ = {"TTS_API_KEY": admin_api_key} | {name: f"{i:032X}" for i, name in enumerate(names)}
    validate(out, environ)
