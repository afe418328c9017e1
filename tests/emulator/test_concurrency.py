"""Concurrent requests through one ASGI app leave consistent state: no lost updates, exactly one
winner per unique key (FACTS §d uniqueness rules under contention)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.emulator.support import (
    FREQUENCY_PLAN,
    TtsApi,
    error_name,
    expect_ok,
    new_eui,
)

DEVICES = 50


async def test_concurrent_updates_to_different_devices_all_persist(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """50 devices, each updated at once on two disjoint paths (`attributes` and `description`):
    every update is kept."""
    await tts.create_application("app1")
    await asyncio.gather(
        *(tts.create_end_device("app1", f"dev-{index:02d}") for index in range(DEVICES))
    )

    async def update(index: int, path: str) -> httpx.Response:
        value = {"attributes": {f"key-{index:02d}": f"value-{index}"}, "description": f"d{index}"}
        return await client.put(
            f"/applications/app1/devices/dev-{index:02d}",
            json={"end_device": {path: value[path]}, "field_mask": {"paths": [path]}},
        )

    responses = await asyncio.gather(
        *(update(index, path) for index in range(DEVICES) for path in ("attributes", "description"))
    )
    assert [r.status_code for r in responses] == [200] * (2 * DEVICES)

    listed = expect_ok(
        await client.get(
            "/applications/app1/devices", params={"field_mask": "attributes,description"}
        )
    )["end_devices"]
    assert len(listed) == DEVICES
    for device in listed:
        index = int(device["ids"]["device_id"].split("-")[1])
        assert device["attributes"] == {f"key-{index:02d}": f"value-{index}"}, device
        assert device["description"] == f"d{index}", device


async def test_concurrent_ns_updates_on_one_device_disjoint_paths(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """Concurrent NS Sets on one device with disjoint masks: none is lost."""
    await tts.create_application("app1")
    ids = await tts.register_otaa_device("app1", "dev1")
    device_ids = {k: ids[k] for k in ("device_id", "dev_eui", "join_eui")}
    settings = {
        "supports_class_c": ("supports_class_c", True),
        "rx1_delay": ("mac_settings.rx1_delay", 3),
        "rx2_data_rate_index": ("mac_settings.rx2_data_rate_index", 2),
        "class_c_timeout": ("mac_settings.class_c_timeout", "30s"),
        "resets_f_cnt": ("mac_settings.resets_f_cnt", True),
    }

    async def set_one(name: str) -> httpx.Response:
        path, value = settings[name]
        body: dict[str, object] = {"ids": device_ids}
        if path.startswith("mac_settings."):
            body["mac_settings"] = {name: value}
        else:
            body[name] = value
        return await client.put(
            "/ns/applications/app1/devices/dev1",
            json={"end_device": body, "field_mask": {"paths": [path]}},
        )

    responses = await asyncio.gather(*(set_one(name) for name in settings))
    assert [r.status_code for r in responses] == [200] * len(settings), [r.text for r in responses]
    got = expect_ok(
        await client.get(
            "/ns/applications/app1/devices/dev1",
            params={"field_mask": "supports_class_c,mac_settings,frequency_plan_id"},
        )
    )
    assert got["supports_class_c"] is True
    assert got["frequency_plan_id"] == FREQUENCY_PLAN
    assert got["mac_settings"] == {
        "rx1_delay": 3,
        "rx2_data_rate_index": 2,
        "class_c_timeout": "30s",
        "resets_f_cnt": True,
    }


async def test_concurrent_creates_of_same_device_id(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """20 concurrent IS creates of one device ID: exactly one 200, the rest 409 `id_taken`."""
    await tts.create_application("app1")
    responses = await asyncio.gather(
        *(
            client.post(
                "/applications/app1/devices",
                json={"end_device": {"ids": {"device_id": "same"}, "name": f"attempt-{index}"}},
            )
            for index in range(20)
        )
    )
    assert Counter(r.status_code for r in responses) == {200: 1, 409: 19}
    assert {error_name(r) for r in responses if r.status_code == 409} == {"pkg/util/store:id_taken"}
    winner = next(r.json() for r in responses if r.status_code == 200)
    got = expect_ok(
        await client.get("/applications/app1/devices/same", params={"field_mask": "name"})
    )
    assert got["name"] == winner["name"]


async def test_concurrent_ns_creates_with_same_euis(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """20 NS Sets creating different device IDs with one (JoinEUI, DevEUI): one wins, the rest
    get `pkg/internal/registry:end_device_euis_taken` (409)."""
    await tts.create_application("app1")
    dev_eui, join_eui = new_eui(), new_eui()

    async def create(index: int) -> httpx.Response:
        return await client.put(
            f"/ns/applications/app1/devices/dev-{index}",
            json={
                "end_device": {
                    "ids": {"device_id": f"dev-{index}", "dev_eui": dev_eui, "join_eui": join_eui},
                    "supports_join": True,
                    "lorawan_version": "MAC_V1_0_2",
                    "lorawan_phy_version": "PHY_V1_0_2_REV_B",
                    "frequency_plan_id": FREQUENCY_PLAN,
                },
                "field_mask": {
                    "paths": [
                        "supports_join",
                        "lorawan_version",
                        "lorawan_phy_version",
                        "frequency_plan_id",
                    ]
                },
            },
        )

    responses = await asyncio.gather(*(create(index) for index in range(20)))
    assert Counter(r.status_code for r in responses) == {200: 1, 409: 19}
    assert {error_name(r) for r in responses if r.status_code == 409} == {
        "pkg/internal/registry:end_device_euis_taken"
    }


async def test_concurrent_is_creates_with_same_euis(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """IS: concurrent creates of distinct IDs sharing EUIs: one 200, the rest 409
    `end_device_euis_taken`."""
    await tts.create_application("app1")
    dev_eui, join_eui = new_eui(), new_eui()
    responses = await asyncio.gather(
        *(
            client.post(
                "/applications/app1/devices",
                json={
                    "end_device": {
                        "ids": {
                            "device_id": f"dev-{index}",
                            "dev_eui": dev_eui,
                            "join_eui": join_eui,
                        }
                    }
                },
            )
            for index in range(20)
        )
    )
    assert Counter(r.status_code for r in responses) == {200: 1, 409: 19}
    assert {error_name(r) for r in responses if r.status_code == 409} == {
        "pkg/identityserver:end_device_euis_taken"
    }


async def test_concurrent_creates_of_distinct_entities(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """Many distinct creates at once: all succeed, counts add up, API key IDs are unique."""
    await tts.create_application("app1")
    created = await asyncio.gather(
        *(
            client.post(
                "/applications/app1/devices",
                json={"end_device": {"ids": {"device_id": f"dev-{i}"}}},
            )
            for i in range(60)
        ),
        *(
            client.post(
                "/applications/app1/api-keys",
                json={"name": f"k{i}", "rights": ["RIGHT_APPLICATION_INFO"]},
            )
            for i in range(20)
        ),
    )
    assert [r.status_code for r in created] == [200] * 80
    listed = await client.get("/applications/app1/devices", params={"limit": 1000})
    assert len(expect_ok(listed)["end_devices"]) == 60
    assert listed.headers["X-Total-Count"] == "60"
    key_ids = {r.json()["id"] for r in created[60:]}
    assert len(key_ids) == 20
    keys = expect_ok(await client.get("/applications/app1/api-keys"))["api_keys"]
    assert {k["id"] for k in keys} == key_ids
