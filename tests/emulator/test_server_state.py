"""State kept in SQLite survives a restart; concurrent writes are neither lost nor torn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ASGI_BASE_URL, build_emulator_app
from tests.emulator.support import make_api_key, new_eui, new_key


@contextlib.asynccontextmanager
async def running(api_key: str, state: Path | None) -> AsyncIterator[httpx.AsyncClient]:
    app: Any = build_emulator_app(api_key, state_path=state)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url=ASGI_BASE_URL,
            headers={"Authorization": f"Bearer {api_key}"},
        ) as client:
            yield client


async def test_state_file_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    api_key = make_api_key()
    dev_eui, app_key = new_eui(), new_key()
    async with running(api_key, state) as client:
        created = await client.post(
            "/users/admin-user/applications",
            json={"application": {"ids": {"application_id": "kept"}, "name": "Kept"}},
        )
        assert created.status_code == 200, created.text
        key = await client.post(
            "/applications/kept/api-keys",
            json={"name": "ci", "rights": ["RIGHT_APPLICATION_ALL"]},
        )
        app_token = key.json()["key"]
        ids = {"device_id": "dev1", "dev_eui": dev_eui, "join_eui": "70B3D57ED0000000"}
        assert (
            await client.post("/applications/kept/devices", json={"end_device": {"ids": ids}})
        ).status_code == 200
        js = await client.put(
            "/js/applications/kept/devices/dev1",
            json={
                "end_device": {"ids": ids, "root_keys": {"app_key": {"key": app_key}}},
                "field_mask": {"paths": ["root_keys.app_key.key"]},
            },
        )
        assert js.status_code == 200, js.text

    async with running(api_key, state) as client:
        app = await client.get("/applications/kept", params={"field_mask": "name"})
        assert app.json()["name"] == "Kept"
        device = await client.get("/applications/kept/devices/dev1")
        assert device.json()["ids"]["dev_eui"] == dev_eui
        keys = await client.get(
            "/js/applications/kept/devices/dev1", params={"field_mask": "root_keys.app_key.key"}
        )
        assert keys.json()["root_keys"]["app_key"]["key"] == app_key
        # Keys made in the first run still authenticate.
        other = await client.get(
            "/applications/kept", headers={"Authorization": f"Bearer {app_token}"}
        )
        assert other.status_code == 200, other.text
        # The EUI pair stays taken across the restart.
        duplicate = await client.post(
            "/applications/kept/devices",
            json={"end_device": {"ids": {**ids, "device_id": "dev2"}}},
        )
        assert duplicate.status_code == 409, duplicate.text


async def test_memory_state_is_not_shared_between_apps() -> None:
    api_key = make_api_key()
    async with running(api_key, None) as client:
        response = await client.post(
            "/users/admin-user/applications",
            json={"application": {"ids": {"application_id": "only-here"}}},
        )
        assert response.status_code == 200
    async with running(api_key, None) as client:
        assert (await client.get("/applications/only-here")).status_code == 404


async def test_concurrent_updates_are_all_applied(tmp_path: Path) -> None:
    api_key = make_api_key()
    async with running(api_key, tmp_path / "state.sqlite") as client:
        await client.post(
            "/users/admin-user/applications",
            json={"application": {"ids": {"application_id": "busy"}}},
        )
        creates = [
            client.post(
                "/applications/busy/devices",
                json={"end_device": {"ids": {"device_id": f"dev-{i}"}, "name": f"n{i}"}},
            )
            for i in range(40)
        ]
        assert {r.status_code for r in await asyncio.gather(*creates)} == {200}
        # Interleaved updates of different attributes of one device: none may be lost.
        updates = [
            client.put(
                "/applications/busy/devices/dev-0",
                json={
                    "end_device": {"description": f"d{i}"} if i % 2 else {"name": f"name-{i}"},
                    "field_mask": {"paths": ["description" if i % 2 else "name"]},
                },
            )
            for i in range(20)
        ]
        assert {r.status_code for r in await asyncio.gather(*updates)} == {200}
        listed = await client.get("/applications/busy/devices", params={"limit": 1000})
        assert listed.headers["X-Total-Count"] == "40"
        device = (
            await client.get(
                "/applications/busy/devices/dev-0", params={"field_mask": "name,description"}
            )
        ).json()
        assert device["name"].startswith("name-")
        assert device["description"].startswith("d")
