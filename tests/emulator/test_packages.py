"""Application packages: the ApplicationPackageRegistry routes as the real Application Server
serves them (routes and masks from api-definition.json; behaviour of lorawan-stack v3.32
pkg/applicationserver/io/packages: rights, implicit read paths, upsert, idempotent delete)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ServedEmulator
from tests.emulator.support import (
    INVALID_ARGUMENT,
    NOT_FOUND,
    PERMISSION_DENIED,
    TtsApi,
    expect_error,
    expect_ok,
)
from tests.emulator.test_events import app_identifiers, setup_app
from tests.emulator.test_events_history import _replayed

DEFAULTS = "/as/applications/app1/packages/associations"
DEVICE = "/as/applications/app1/devices/dev1/packages/associations"
LORA_CLOUD = "lora-cloud-device-management-v1"


@pytest.fixture
async def app1(tts: TtsApi) -> None:
    await tts.create_application("app1")


def default_body(**data: object) -> dict[str, object]:
    return {
        "default": {"package_name": LORA_CLOUD, "data": {"token": "tok-1", **data}},
        "field_mask": {"paths": ["package_name", "data"]},
    }


async def test_available_packages(client: httpx.AsyncClient, app1: None) -> None:
    listing = expect_ok(await client.get("/as/applications/app1/devices/any-device/packages"))
    assert listing["packages"] == [
        {"name": "alcsync-v1", "default_f_port": 202},
        {"name": LORA_CLOUD, "default_f_port": 199},
        {"name": "lora-cloud-geolocation-v3", "default_f_port": 197},
    ]


async def test_default_association_set_get_list_delete(
    client: httpx.AsyncClient, app1: None
) -> None:
    created = expect_ok(await client.put(f"{DEFAULTS}/199", json=default_body()))
    assert created["ids"] == {"application_ids": {"application_id": "app1"}, "f_port": 199}
    assert created["package_name"] == LORA_CLOUD
    assert created["data"] == {"token": "tok-1"}  # tokens come back as sent
    assert created["created_at"] and created["updated_at"]

    # An empty mask returns the identifiers, timestamps and package name, not the data.
    bare = expect_ok(await client.get(f"{DEFAULTS}/199"))
    assert bare["package_name"] == LORA_CLOUD and "data" not in bare
    full = expect_ok(await client.get(f"{DEFAULTS}/199", params={"field_mask": "data"}))
    assert full["data"] == {"token": "tok-1"}

    # Set upserts: only the masked paths change.
    body = {"default": {"data": {"token": "tok-2"}}, "field_mask": {"paths": ["data"]}}
    updated = expect_ok(await client.put(f"{DEFAULTS}/199", json=body))
    assert updated["package_name"] == LORA_CLOUD and updated["data"] == {"token": "tok-2"}
    assert updated["created_at"] == created["created_at"]

    second = {"default": {"package_name": "alcsync-v1"}, "field_mask": {"paths": ["package_name"]}}
    expect_ok(await client.put(f"{DEFAULTS}/202", json=second))
    listing = expect_ok(await client.get(DEFAULTS, params={"field_mask": "data"}))
    assert [d["ids"]["f_port"] for d in listing["defaults"]] == [199, 202]
    assert listing["defaults"][0]["data"] == {"token": "tok-2"}
    paged = await client.get(DEFAULTS, params={"limit": "1", "page": "2"})
    assert paged.headers["X-Total-Count"] == "2"
    assert [d["ids"]["f_port"] for d in expect_ok(paged)["defaults"]] == [202]

    expect_ok(await client.delete(f"{DEFAULTS}/199"))
    expect_ok(await client.delete(f"{DEFAULTS}/199"))  # idempotent
    expect_error(await client.get(f"{DEFAULTS}/199"), code=NOT_FOUND, name="not_found")
    assert [d["ids"]["f_port"] for d in expect_ok(await client.get(DEFAULTS))["defaults"]] == [202]


async def test_device_associations_are_per_device(client: httpx.AsyncClient, app1: None) -> None:
    body = {
        "association": {"package_name": "lora-cloud-geolocation-v3", "data": {"query": "GNSS"}},
        "field_mask": {"paths": ["package_name", "data"]},
    }
    # The device is not looked up: associations live on the Application Server alone.
    created = expect_ok(await client.put(f"{DEVICE}/197", json=body))
    assert created["ids"] == {
        "end_device_ids": {"application_ids": {"application_id": "app1"}, "device_id": "dev1"},
        "f_port": 197,
    }
    listing = expect_ok(await client.get(DEVICE, params={"field_mask": "data"}))
    assert [a["data"] for a in listing["associations"]] == [{"query": "GNSS"}]
    other = "/as/applications/app1/devices/dev2/packages/associations"
    assert expect_ok(await client.get(other)) == {}
    assert expect_ok(await client.get(DEFAULTS)) == {}
    expect_ok(await client.delete(f"{DEVICE}/197"))
    assert expect_ok(await client.get(DEVICE)) == {}


async def test_f_port_package_name_and_mask_validation(
    client: httpx.AsyncClient, app1: None
) -> None:
    # FPort: 1-255 (the proto's rule); not a number is the gateway's own decoding error.
    for f_port in ("0", "256"):
        expect_error(
            await client.put(f"{DEFAULTS}/{f_port}", json=default_body()),
            code=INVALID_ARGUMENT,
            name="validation",
        )
        expect_error(
            await client.get(f"{DEVICE}/{f_port}"), code=INVALID_ARGUMENT, name="validation"
        )
    expect_ok(await client.put(f"{DEFAULTS}/255", json=default_body()))
    bad = await client.put(f"{DEFAULTS}/abc", json=default_body())
    assert bad.status_code == 400 and "type mismatch" in bad.json()["message"]
    # The name is checked against its pattern only: an unknown package is stored.
    for name in ("Bad_Name", "ab", "x" * 37):
        body = {"default": {"package_name": name}, "field_mask": {"paths": ["package_name"]}}
        expect_error(
            await client.put(f"{DEFAULTS}/10", json=body), code=INVALID_ARGUMENT, name="validation"
        )
    unknown = {
        "default": {"package_name": "no-such-package"},
        "field_mask": {"paths": ["package_name"]},
    }
    expect_ok(await client.put(f"{DEFAULTS}/10", json=unknown))
    # Paths outside the allow-list, and the timestamps the registry refuses to set.
    wrong = {"default": {"package_name": LORA_CLOUD}, "field_mask": {"paths": ["name"]}}
    expect_error(
        await client.put(f"{DEFAULTS}/10", json=wrong),
        code=INVALID_ARGUMENT,
        name="field_mask_paths",
    )
    stamps = {"default": {}, "field_mask": {"paths": ["created_at"]}}
    expect_error(
        await client.put(f"{DEFAULTS}/10", json=stamps),
        code=INVALID_ARGUMENT,
        name="invalid_fieldmask",
    )
    expect_error(
        await client.get(f"{DEFAULTS}/10", params={"field_mask": "package"}),
        code=INVALID_ARGUMENT,
        name="field_mask_paths",
    )


async def test_rights(client: httpx.AsyncClient, tts: TtsApi, app1: None) -> None:
    expect_ok(await client.put(f"{DEFAULTS}/199", json=default_body()))
    reader = tts.client_for(
        await tts.create_application_api_key(
            "app1", ["RIGHT_APPLICATION_SETTINGS_BASIC", "RIGHT_APPLICATION_TRAFFIC_READ"]
        )
    )
    for response in (
        await reader.get(DEFAULTS),
        await reader.get(f"{DEFAULTS}/199"),
        await reader.put(f"{DEFAULTS}/199", json=default_body()),
        await reader.delete(f"{DEVICE}/199"),
        await reader.get("/as/applications/app1/devices/dev1/packages"),
    ):
        expect_error(response, code=PERMISSION_DENIED, name="insufficient_application_rights")
    packager = tts.client_for(
        await tts.create_application_api_key("app1", ["RIGHT_APPLICATION_SETTINGS_PACKAGES"])
    )
    got = expect_ok(await packager.get(f"{DEFAULTS}/199", params={"field_mask": "data"}))
    assert got["data"] == {"token": "tok-1"}
    expect_error(
        await packager.get("/as/applications/other-app/packages/associations"),
        code=PERMISSION_DENIED,
        name="no_application_rights",
    )


async def test_deleting_the_application_purges_its_associations(
    client: httpx.AsyncClient, tts: TtsApi, app1: None
) -> None:
    expect_ok(await client.put(f"{DEFAULTS}/199", json=default_body()))
    expect_ok(await client.delete("/applications/app1"))
    expect_ok(await client.delete("/applications/app1/purge"))
    await tts.create_application("app1")
    assert expect_ok(await client.get(DEFAULTS)) == {}


def test_associations_publish_no_events(served_emulator: ServedEmulator) -> None:
    """The real package registry publishes nothing on Set or Delete: the application's event
    history holds its creation only."""
    setup_app(served_emulator, "app1")
    with served_emulator.client() as client:
        expect_ok(client.put(f"{DEFAULTS}/199", json=default_body()))
        body = {
            "association": {"package_name": "alcsync-v1"},
            "field_mask": {"paths": ["package_name"]},
        }
        expect_ok(client.put(f"{DEVICE}/202", json=body))
        expect_ok(client.delete(f"{DEFAULTS}/199"))
        expect_ok(client.delete(f"{DEVICE}/202"))
    names = {
        e["name"]
        for e in _replayed(served_emulator, {"identifiers": app_identifiers("app1"), "tail": 100})
    }
    assert names and not any("package" in n for n in names), names
