"""Fault injection: failures before a write, and writes whose response is lost."""

from __future__ import annotations

import httpx

from tests.emulator.support import TtsApi

CONFIG = "http://emulator.test/_emulator/config"


async def test_fail_rate_rejects_writes_without_applying_them(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_application("app1")
    await client.put(CONFIG, json={"fail_rate": 1})
    response = await client.post(
        "/applications/app1/devices", json={"end_device": {"ids": {"device_id": "dev1"}}}
    )
    assert response.status_code == 503
    assert response.json()["code"] == 14
    # Reads are not affected, and the write did not happen.
    assert (await client.get("/applications/app1/devices/dev1")).status_code == 404
    await client.put(CONFIG, json={"fail_rate": 0})
    created = await client.post(
        "/applications/app1/devices", json={"end_device": {"ids": {"device_id": "dev1"}}}
    )
    assert created.status_code == 200


async def test_drop_rate_applies_writes_then_loses_the_response(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_application("app1")
    await client.put(CONFIG, json={"drop_rate": 1})
    outcomes = set()
    for index in range(12):
        try:
            response = await client.post(
                "/applications/app1/devices",
                json={"end_device": {"ids": {"device_id": f"dev-{index}"}}},
            )
            assert response.status_code == 503, response.text
            outcomes.add("503")
        except httpx.TransportError:
            outcomes.add("dropped")
    assert outcomes == {"503", "dropped"}  # both ambiguous failures occur (seeded RNG)
    await client.put(CONFIG, json={"drop_rate": 0})
    listed = await client.get("/applications/app1/devices")
    assert listed.headers["X-Total-Count"] == "12"  # every write was applied
    retry = await client.post(
        "/applications/app1/devices", json={"end_device": {"ids": {"device_id": "dev-0"}}}
    )
    assert retry.status_code == 409  # a blind retry meets its own earlier write


def test_dropped_response_over_tcp_is_a_transport_error() -> None:
    from tests.conftest import build_emulator_app, serve_in_thread
    from tests.emulator.support import make_api_key

    api_key = make_api_key()
    app = build_emulator_app(api_key, drop_rate=1.0)
    headers = {"Authorization": f"Bearer {api_key}"}
    with (
        serve_in_thread(app) as root,
        httpx.Client(base_url=f"{root}/api/v3", headers=headers, timeout=5) as client,
    ):
        outcomes = set()
        for index in range(10):
            try:
                response = client.post(
                    "/users/admin-user/applications",
                    json={"application": {"ids": {"application_id": f"app-{index}"}}},
                )
                outcomes.add(response.status_code)
            except httpx.TransportError:
                outcomes.add("dropped")
        assert outcomes == {503, "dropped"}
        listed = client.get("/applications")
        assert listed.headers["X-Total-Count"] == "10"
