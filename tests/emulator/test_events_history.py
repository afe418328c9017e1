"""What `reconciler watch` relies on in the emulator, as the real server behaves: events say who
made the change (user agent, remote IP, API key ID); the history that `tail`/`after` replay is
short (kept `history_ttl_s`, at most `history_per_entity` per entity); webhooks and links
publish no events; `POST .../devices/filter` lists the devices updated since a moment in the
past; an admin can drop every open stream (fault injection)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import ServedEmulator
from tests.emulator.support import expect_ok
from tests.emulator.test_events import STREAM_TIMEOUT, app_identifiers, json_messages, setup_app


def _replayed(served: ServedEmulator, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The events a new stream replays (it is closed once the server goes quiet)."""
    with (
        served.client() as client,
        client.stream("POST", "/events", json=body, timeout=httpx.Timeout(1.0)) as response,
    ):
        assert response.status_code == 200
        return [m["result"] for m in json_messages(response)][1:]  # after events.stream.start


def _rename(client: httpx.Client, name: str, user_agent: str = "test-agent/1") -> None:
    expect_ok(
        client.put(
            "/applications/app1/devices/dev1",
            json={"end_device": {"name": name}, "field_mask": {"paths": ["name"]}},
            headers={"User-Agent": user_agent},
        )
    )


def _admin(served: ServedEmulator, **settings: Any) -> dict[str, Any]:
    answer = httpx.put(
        f"{served.root_url}/_emulator/events",
        json=settings,
        headers={"Authorization": f"Bearer {served.api_key}"},
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_events_name_who_made_the_change_and_history_is_capped(
    served_emulator: ServedEmulator,
) -> None:
    setup_app(served_emulator, "app1")
    with served_emulator.client() as client:
        expect_ok(
            client.post(
                "/applications/app1/devices", json={"end_device": {"ids": {"device_id": "dev1"}}}
            )
        )
        for index in range(5):
            _rename(client, f"name {index}")
    body = {"identifiers": app_identifiers("app1"), "tail": 100, "names": ["end_device.update"]}
    events = _replayed(served_emulator, body)
    assert [e["name"] for e in events] == ["end_device.update"] * 5
    first = events[0]
    assert first["user_agent"] == "test-agent/1"
    assert first["remote_ip"] == "127.0.0.1"
    key_id = served_emulator.api_key.split(".")[1]
    assert first["authentication"] == {
        "type": "Bearer",
        "token_type": "APIKey",
        "token_id": key_id,
    }
    assert first["data"]["paths"] == ["name"]

    # At most `history_per_entity` events per entity are kept.
    assert _admin(served_emulator, history_per_entity=2)["history_per_entity"] == 2
    assert len(_replayed(served_emulator, body)) == 2
    # Payloads older than `history_ttl_s` are gone.
    _admin(served_emulator, history_ttl_s=0)
    assert _replayed(served_emulator, body) == []


def test_webhooks_and_links_publish_no_events(served_emulator: ServedEmulator) -> None:
    setup_app(served_emulator, "app1")
    with served_emulator.client() as client:
        expect_ok(
            client.put(
                "/as/webhooks/app1/hook1",
                json={
                    "webhook": {
                        "ids": {
                            "webhook_id": "hook1",
                            "application_ids": {"application_id": "app1"},
                        },
                        "base_url": "https://example.com/",
                        "format": "json",
                    },
                    "field_mask": {"paths": ["base_url", "format"]},
                },
            )
        )
        expect_ok(
            client.put(
                "/as/applications/app1/link",
                json={
                    "link": {"default_formatters": {"up_formatter": "FORMATTER_CAYENNELPP"}},
                    "field_mask": {"paths": ["default_formatters"]},
                },
            )
        )
        expect_ok(client.delete("/as/webhooks/app1/hook1"))
        # The real server defines no such events: asking for one is an error.
        refused = client.post(
            "/events",
            json={"identifiers": app_identifiers("app1"), "names": ["as.webhook.update"]},
        )
        assert refused.status_code == 400
        assert json.loads(refused.text)["error"]["details"][0]["name"] == "unknown_event_name"
    body = {"identifiers": app_identifiers("app1"), "tail": 100}
    names = {e["name"] for e in _replayed(served_emulator, body)}
    assert names and not any("webhook" in n or "link" in n for n in names)


def test_device_filter_lists_devices_updated_since(served_emulator: ServedEmulator) -> None:
    setup_app(served_emulator, "app1")
    with served_emulator.client() as client:
        for device in ("dev1", "dev2"):
            expect_ok(
                client.post(
                    "/applications/app1/devices",
                    json={"end_device": {"ids": {"device_id": device}}},
                )
            )
        marker = datetime.now(UTC)
        _rename(client, "changed")

        def listed(since: datetime) -> Any:
            return client.post(
                "/applications/app1/devices/filter",
                json={
                    "field_mask": {"paths": ["name"]},
                    "filters": [{"updated_since": since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}],
                },
            )

        answer = listed(marker)
        assert answer.status_code == 200, answer.text
        assert [d["ids"]["device_id"] for d in answer.json()["end_devices"]] == ["dev1"]
        assert answer.json()["end_devices"][0]["name"] == "changed"
        assert answer.headers["X-Total-Count"] == "1"
        assert len(listed(marker - timedelta(hours=1)).json()["end_devices"]) == 2
        # The filter's rule: a moment in the past.
        future = listed(datetime.now(UTC) + timedelta(hours=1))
        assert future.status_code == 400
        assert future.json()["details"][0]["name"] == "validation"


def test_an_admin_drops_every_open_stream(served_emulator: ServedEmulator) -> None:
    setup_app(served_emulator, "app1")
    with (
        served_emulator.client() as client,
        client.stream(
            "POST",
            "/events",
            json={"identifiers": app_identifiers("app1")},
            timeout=STREAM_TIMEOUT,
        ) as response,
    ):
        lines = response.iter_lines()
        assert "events.stream.start" in next(lines)
        assert _admin(served_emulator, drop_streams=True)["open_streams"] == 0
        assert [line for line in lines if line.strip()] == []  # ended, not timed out
