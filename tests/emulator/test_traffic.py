"""Emulated traffic (`traffic_interval`): joins, uplinks and what they leave in the registries.

In process, on the manual clock: `emulator.traffic.advance(seconds)` sends what comes due, so
every test is deterministic under the fixture's seed. The expectations are the real servers'
server-managed fields (FACTS §h) and the Application Server's downlink queue rule.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import build_emulator_app
from tests.emulator.support import FAILED_PRECONDITION, TtsApi, expect_error, expect_ok

CONFIG = "http://emulator.test/_emulator/config"
NS_TRAFFIC_FIELDS = (
    "session,pending_session,mac_state,pending_mac_state,battery_percentage,downlink_margin,"
    "last_dev_status_received_at"
)


@pytest.fixture
def emulator_config() -> dict[str, Any]:
    return {"traffic_manual_clock": True}


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def enable(client: httpx.AsyncClient, seconds: float | str | None) -> dict[str, Any]:
    response = await client.request("PUT", CONFIG, json={"traffic_interval": seconds})
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()
    return config


async def get(client: httpx.AsyncClient, path: str, mask: str) -> dict[str, Any]:
    return expect_ok(await client.get(path, params={"field_mask": mask}))


async def is_record(client: httpx.AsyncClient, dev: str) -> dict[str, Any]:
    return await get(client, f"/applications/app1/devices/{dev}", "last_seen_at,activated_at")


async def ns_record(client: httpx.AsyncClient, dev: str) -> dict[str, Any]:
    return await get(client, f"/ns/applications/app1/devices/{dev}", NS_TRAFFIC_FIELDS)


async def as_record(client: httpx.AsyncClient, dev: str) -> dict[str, Any]:
    return await get(client, f"/as/applications/app1/devices/{dev}", "session,pending_session")


async def js_record(client: httpx.AsyncClient, dev: str) -> dict[str, Any]:
    return await get(
        client,
        f"/js/applications/app1/devices/{dev}",
        "last_join_nonce,last_dev_nonce,used_dev_nonces",
    )


async def push(client: httpx.AsyncClient, dev: str) -> httpx.Response:
    return await client.post(
        f"/as/applications/app1/devices/{dev}/down/push",
        json={"downlinks": [{"frm_payload": "vu8=", "f_port": 42}]},
    )


def traffic(app: Any) -> Any:
    return app.state.emulator.traffic


async def test_traffic_is_off_by_default(
    emulator_app: Any, tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_application("app1")
    await tts.register_otaa_device("app1", "dev1")
    before = await ns_record(client, "dev1")
    assert traffic(emulator_app).advance(3600) == 0
    assert await ns_record(client, "dev1") == before
    config = expect_ok(await client.get(CONFIG))
    assert config["traffic_interval"] is None


async def test_otaa_device_joins_once_then_sends_uplinks(
    emulator_app: Any, tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_application("app1")
    await tts.register_otaa_device("app1", "dev1")
    is_before = expect_ok(await client.get("/applications/app1/devices/dev1"))
    ns_before = await ns_record(client, "dev1")
    assert (await enable(client, 2))["traffic_interval"] == 2

    # Every device comes due within one interval of traffic being switched on: a join.
    traffic(emulator_app).advance(2)
    joined = await js_record(client, "dev1")
    assert joined["last_join_nonce"] == 1
    assert len(joined["used_dev_nonces"]) == 1  # LoRaWAN 1.0.2 DevNonces are random
    ns = await ns_record(client, "dev1")
    pending = ns["pending_session"]
    assert pending["dev_addr"][:2] in ("26", "27")
    assert pending["keys"]["session_key_id"]
    assert "session" not in ns
    assert instant(ns["updated_at"]) > instant(ns_before["updated_at"])
    assert (await as_record(client, "dev1"))["pending_session"]["dev_addr"] == pending["dev_addr"]

    # The next uplinks confirm the session and count frames; no second join.
    updated_at = ns["updated_at"]
    for _ in range(3):
        traffic(emulator_app).advance(3)
        ns = await ns_record(client, "dev1")
        assert instant(ns["updated_at"]) > instant(updated_at)
        updated_at = ns["updated_at"]
    assert ns["session"]["dev_addr"] == pending["dev_addr"]
    assert ns["ids"]["dev_addr"] == pending["dev_addr"]
    assert ns["session"]["last_f_cnt_up"] == 2
    assert ns["mac_state"]["lorawan_version"] == "MAC_V1_0_2"
    assert "pending_session" not in ns and "pending_mac_state" not in ns
    assert 0 < ns["battery_percentage"] <= 1 and ns["last_dev_status_received_at"]
    application = await as_record(client, "dev1")
    assert application["session"]["dev_addr"] == pending["dev_addr"]
    assert application["session"]["keys"]["app_s_key"]["key"]
    assert (await js_record(client, "dev1"))["last_join_nonce"] == 1

    # The Identity Server: last_seen_at and activated_at, updated_at as it was.
    identity = expect_ok(
        await client.get(
            "/applications/app1/devices/dev1", params={"field_mask": "last_seen_at,activated_at"}
        )
    )
    assert identity["updated_at"] == is_before["updated_at"]
    assert instant(identity["activated_at"]) <= instant(identity["last_seen_at"])
    activated = identity["activated_at"]
    traffic(emulator_app).advance(3)
    again = await is_record(client, "dev1")
    assert again["activated_at"] == activated
    assert instant(again["last_seen_at"]) > instant(identity["last_seen_at"])
    assert again["updated_at"] == is_before["updated_at"]


async def test_abp_device_sends_uplinks_on_its_session(
    emulator_app: Any, tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_application("app1")
    ids = await tts.register_abp_device("app1", "abp1")
    await enable(client, 10)
    counts = []
    for _ in range(4):
        traffic(emulator_app).advance(15)
        counts.append((await ns_record(client, "abp1"))["session"]["last_f_cnt_up"])
    assert counts == [0, 1, 2, 3]
    ns = await ns_record(client, "abp1")
    assert ns["session"]["dev_addr"] == ids["dev_addr"]
    assert ns["session"]["keys"]["f_nwk_s_int_key"]["key"] == ids["f_nwk_s_int_key"]
    assert ns["session"]["started_at"] and "mac_state" in ns
    assert (await as_record(client, "abp1"))["session"]["dev_addr"] == ids["dev_addr"]
    assert (await is_record(client, "abp1"))["last_seen_at"]
    assert traffic(emulator_app).snapshot()["joins"] == 0


async def test_downlink_push_needs_a_session(
    emulator_app: Any, tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """The real AS refuses a push for a device without (pending) session: 400
    `no_device_session` (FailedPrecondition); after the join it is accepted."""
    await tts.create_application("app1")
    await tts.register_otaa_device("app1", "dev1")
    expect_error(
        await push(client, "dev1"),
        code=FAILED_PRECONDITION,
        name="no_device_session",
        namespace="pkg/applicationserver",
        message="no device session; check device activation",
    )
    await enable(client, 2)
    traffic(emulator_app).advance(2)
    assert expect_ok(await push(client, "dev1")) == {}
    queue = expect_ok(await client.get("/as/applications/app1/devices/dev1/down"))["downlinks"]
    assert [(d["f_port"], d["frm_payload"]) for d in queue] == [(42, "vu8=")]


async def test_application_server_registered_after_the_join_restores_the_session(
    emulator_app: Any, tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_application("app1")
    ids = await tts.register_otaa_device("app1", "dev1")
    expect_ok(await client.delete("/as/applications/app1/devices/dev1"))
    await enable(client, 2)
    traffic(emulator_app).advance(2)  # the join; no AS record to take the session
    device_ids = {k: ids[k] for k in ("device_id", "dev_eui", "join_eui")}
    await tts.set_device("as", "app1", "dev1", {"ids": device_ids}, ["ids.device_id"])
    assert (await push(client, "dev1")).status_code == 400
    traffic(emulator_app).advance(3)
    session = (await as_record(client, "dev1"))["session"]
    assert session["dev_addr"] == (await ns_record(client, "dev1"))["session"]["dev_addr"]
    assert expect_ok(await push(client, "dev1")) == {}


async def test_traffic_events_on_the_stream(
    emulator_app: Any, tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_application("app1")
    await tts.register_otaa_device("app1", "dev1")
    await tts.register_abp_device("app1", "abp1")
    await enable(client, 2)
    for _ in range(3):
        traffic(emulator_app).advance(2)
    response = await client.request("PUT", CONFIG, json={"event_stream_idle_s": 0.05})
    assert response.status_code == 200
    names: list[str] = []
    async with client.stream(
        "POST",
        "/events",
        json={
            "identifiers": [{"application_ids": {"application_id": "app1"}}],
            "tail": 100,
            "names": ["/^(ns|as|js)\\.(up|join)\\./"],
        },
    ) as stream:
        async for line in stream.aiter_lines():
            if line.strip():
                names.append(json.loads(line)["result"]["name"])
    joins = [
        "ns.up.join.receive",
        "js.join.accept",
        "ns.up.join.process",
        "ns.up.join.accept.forward",
        "as.up.join.receive",
        "as.up.join.forward",
    ]
    data = [
        "ns.up.data.receive",
        "ns.up.data.process",
        "ns.up.data.forward",
        "as.up.data.receive",
        "as.up.data.forward",
    ]
    assert names[0] == "events.stream.start"
    body = names[1:]
    assert body.count("js.join.accept") == 1
    uplinks = traffic(emulator_app).snapshot()["uplinks"]
    assert uplinks >= 3
    assert sorted(body) == sorted(joins + data * uplinks)


async def test_join_without_root_keys_is_rejected_and_retried(
    emulator_app: Any, tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_application("app1")
    ids = await tts.register_otaa_device("app1", "dev1")
    expect_ok(await client.delete("/js/applications/app1/devices/dev1"))
    await enable(client, 2)
    traffic(emulator_app).advance(2)
    assert "pending_session" not in await ns_record(client, "dev1")
    assert traffic(emulator_app).snapshot()["join_rejects"] == 1
    await tts.set_device(
        "js",
        "app1",
        "dev1",
        {
            "ids": {k: ids[k] for k in ("device_id", "dev_eui", "join_eui")},
            "root_keys": {"app_key": {"key": ids["app_key"]}},
        },
        ["root_keys.app_key.key"],
    )
    traffic(emulator_app).advance(3)
    assert (await ns_record(client, "dev1"))["pending_session"]["dev_addr"]


async def test_new_and_deleted_devices_join_and_leave_the_schedule(
    emulator_app: Any, tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_application("app1")
    await enable(client, 2)
    await tts.register_abp_device("app1", "abp1")
    assert traffic(emulator_app).snapshot()["devices"] == 1
    traffic(emulator_app).advance(3)
    assert (await ns_record(client, "abp1"))["session"]["last_f_cnt_up"] == 0
    expect_ok(await client.delete("/ns/applications/app1/devices/abp1"))
    traffic(emulator_app).advance(3)
    assert traffic(emulator_app).snapshot()["devices"] == 0


async def test_traffic_interval_setting_is_validated(client: httpx.AsyncClient) -> None:
    for bad in (-1, "soon", [2], True):
        response = await client.request("PUT", CONFIG, json={"traffic_interval": bad})
        assert response.status_code == 400, (bad, response.text)
    assert (await enable(client, 0))["traffic_interval"] is None
    assert (await enable(client, "30"))["traffic_interval"] == 30


async def test_same_seed_same_traffic() -> None:
    """Two emulators with one seed and one fleet send the same joins (DevAddrs, nonces)."""
    results = []
    for _ in range(2):
        app = build_emulator_app(None, seed=7, traffic_manual_clock=True, traffic_interval=60)
        transport = httpx.ASGITransport(app=app)
        emulator = app.state.emulator
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://emulator.test/api/v3",
            headers={"Authorization": f"Bearer {emulator.api_key}"},
        ) as client:
            api = TtsApi(
                client,
                admin_user="admin-user",
                admin_key=emulator.api_key,
                client_factory=lambda token: client,
            )
            await api.create_application("app1")
            for index in range(5):
                await api.register_otaa_device(
                    "app1",
                    f"dev{index}",
                    dev_eui=f"70B3D57E000000{index:02X}",
                    join_eui="70B3D57E00000000",
                    app_key=f"{index:032X}",
                )
            emulator.traffic.advance(120)
            results.append(
                [(await ns_record(client, f"dev{i}"))["pending_session"] for i in range(5)]
            )
        emulator.close()
    assert results[0] == results[1]
    assert len({session["dev_addr"] for session in results[0]}) == 5


def test_served_emulator_sends_traffic_in_real_time() -> None:
    """Served (the app's lifespan starts the scheduler): uplinks arrive without a manual clock,
    and switching traffic off at run time stops them."""
    import time

    from tests.conftest import serve_in_thread
    from tests.emulator.support import make_api_key, new_dev_addr, new_eui, new_key

    api_key = make_api_key()
    app = build_emulator_app(api_key, traffic_interval=0.2)
    with (
        serve_in_thread(app) as root_url,
        httpx.Client(
            base_url=root_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
        ) as client,
    ):
        expect_ok(
            client.post(
                "/api/v3/users/admin-user/applications",
                json={"application": {"ids": {"application_id": "app1"}}},
            )
        )
        ids = {"device_id": "abp1", "dev_eui": new_eui()}
        expect_ok(
            client.post("/api/v3/applications/app1/devices", json={"end_device": {"ids": ids}})
        )
        dev_addr = new_dev_addr()
        expect_ok(
            client.put(
                "/api/v3/ns/applications/app1/devices/abp1",
                json={
                    "end_device": {
                        "ids": ids,
                        "lorawan_version": "MAC_V1_0_2",
                        "lorawan_phy_version": "PHY_V1_0_2_REV_B",
                        "frequency_plan_id": "EU_863_870_TTN",
                        "session": {
                            "dev_addr": dev_addr,
                            "keys": {"f_nwk_s_int_key": {"key": new_key()}},
                        },
                    },
                    "field_mask": {
                        "paths": [
                            "lorawan_version",
                            "lorawan_phy_version",
                            "frequency_plan_id",
                            "session.dev_addr",
                            "session.keys.f_nwk_s_int_key.key",
                        ]
                    },
                },
            )
        )

        def f_cnt() -> int:
            record = expect_ok(
                client.get(
                    "/api/v3/ns/applications/app1/devices/abp1",
                    params={"field_mask": "session.last_f_cnt_up,session.started_at"},
                )
            )
            session = record.get("session", {})
            return int(session.get("last_f_cnt_up", -1 if "started_at" not in session else 0))

        deadline = time.monotonic() + 10
        while f_cnt() < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f_cnt() >= 2
        assert client.put("/_emulator/config", json={"traffic_interval": None}).status_code == 200
        stopped = f_cnt()
        time.sleep(0.6)
        assert f_cnt() == stopped
        summary = expect_ok(client.get("/_emulator/traffic"))
        assert summary["traffic_interval"] is None and summary["uplinks"] >= 3
