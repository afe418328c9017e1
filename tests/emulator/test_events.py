"""The event stream `POST /events` (FACTS §a "Events").

The stream never ends, and `httpx.ASGITransport` buffers whole responses, so streaming tests run
against the emulator served on loopback with a streaming client and a timeout; they read the
first messages and close. Errors raised before the stream starts are finite and also checked
in-process.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ServedEmulator
from tests.emulator.support import INVALID_ARGUMENT, TtsApi, expect_ok, new_eui

STREAM_TIMEOUT = httpx.Timeout(5.0)


def app_identifiers(app_id: str) -> list[dict[str, Any]]:
    return [{"application_ids": {"application_id": app_id}}]


def setup_app(served: ServedEmulator, app_id: str) -> None:
    with served.client() as client:
        expect_ok(
            client.post(
                f"/users/{served.user_id}/applications",
                json={"application": {"ids": {"application_id": app_id}}},
            )
        )


def json_messages(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Newline-delimited JSON messages of the default content type, until the read times out."""
    try:
        for line in response.iter_lines():
            if line.strip():
                yield json.loads(line)
    except httpx.ReadTimeout:
        return


def sse_messages(response: httpx.Response) -> Iterator[tuple[dict[str, Any], str]]:
    """Messages of the `text/event-stream` form: blank-line separated; each with its raw text."""
    buffer = ""
    for chunk in response.iter_text():
        buffer += chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            if block.strip():
                yield json.loads(block), block


def test_stream_starts_with_stream_start_json(served_emulator: ServedEmulator) -> None:
    """§a each message is `{"result": <Event>}` separated by a newline; the first event is
    `events.stream.start`."""
    setup_app(served_emulator, "app1")
    with (
        served_emulator.client() as client,
        client.stream(
            "POST",
            "/events",
            json={"identifiers": app_identifiers("app1")},
            headers={"Accept": "application/json"},
            timeout=STREAM_TIMEOUT,
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        first = next(json_messages(response))
    event = first["result"]
    assert event["name"] == "events.stream.start"
    assert event["time"].endswith("Z")
    assert {"application_ids": {"application_id": "app1"}} in event["identifiers"]


def test_stream_as_event_stream(served_emulator: ServedEmulator) -> None:
    """§a with `Accept: text/event-stream` the content type changes and the separator becomes a
    blank line (each message is still a JSON object, as the docs' Python example parses it)."""
    setup_app(served_emulator, "app1")
    with (
        served_emulator.client() as client,
        client.stream(
            "POST",
            "/events",
            json={"identifiers": app_identifiers("app1")},
            headers={"Accept": "text/event-stream"},
            timeout=STREAM_TIMEOUT,
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        message, raw = next(sse_messages(response))
    assert message["result"]["name"] == "events.stream.start"
    assert "\n" not in raw.strip()


def test_registry_events_arrive_live(served_emulator: ServedEmulator) -> None:
    """§a registry events: the IS emits `end_device.create`, the NS `ns.end_device.*`; events
    carry the device identifiers."""
    setup_app(served_emulator, "app1")
    dev_eui, join_eui = new_eui(), new_eui()

    def register_device() -> None:
        with served_emulator.client() as client:
            expect_ok(
                client.post(
                    "/applications/app1/devices",
                    json={
                        "end_device": {
                            "ids": {"device_id": "dev1", "dev_eui": dev_eui, "join_eui": join_eui}
                        }
                    },
                )
            )
            expect_ok(
                client.put(
                    "/ns/applications/app1/devices/dev1",
                    json={
                        "end_device": {
                            "ids": {"device_id": "dev1", "dev_eui": dev_eui, "join_eui": join_eui},
                            "supports_join": True,
                            "lorawan_version": "1.0.2",
                            "lorawan_phy_version": "1.0.2-b",
                            "frequency_plan_id": "EU_863_870_TTN",
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
            )

    writer = threading.Thread(target=register_device)
    names: list[str] = []
    events: list[dict[str, Any]] = []
    with (
        served_emulator.client() as client,
        client.stream(
            "POST",
            "/events",
            json={"identifiers": app_identifiers("app1")},
            timeout=STREAM_TIMEOUT,
        ) as response,
    ):
        assert response.status_code == 200
        deadline = time.monotonic() + 8
        for message in json_messages(response):
            if not names:
                writer.start()  # the stream is subscribed once its first message arrived
            event = message["result"]
            names.append(event["name"])
            events.append(event)
            if "end_device.create" in names and any(n.startswith("ns.end_device.") for n in names):
                break
            if time.monotonic() > deadline:
                break
    if writer.ident is not None:
        writer.join(10)
    assert names[0] == "events.stream.start"
    assert "end_device.create" in names, names
    assert any(n.startswith("ns.end_device.") for n in names), names
    create = next(e for e in events if e["name"] == "end_device.create")
    device_ids = [i["device_ids"] for i in create["identifiers"] if "device_ids" in i]
    assert device_ids and device_ids[0]["device_id"] == "dev1"
    assert device_ids[0]["application_ids"] == {"application_id": "app1"}


def stream_error(response: httpx.Response) -> dict[str, Any]:
    """A stream error arrives as `{"error": {...status...}}` (§a). Before any message is sent the
    gateway may also set the HTTP status from the code, so 200 and 400 are both acceptable."""
    assert response.status_code in (200, 400), (response.status_code, response.text)
    text = response.text.strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = json.loads(text.splitlines()[0])
    assert "error" in body, text
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("request_body", "name"),
    [
        ({}, "no_identifiers"),
        ({"identifiers": []}, "no_identifiers"),
        (
            {"identifiers": app_identifiers("app1"), "names": ["no.such.event"]},
            "unknown_event_name",
        ),
        (
            {"identifiers": app_identifiers("app1"), "names": ["/^zzz-nothing/"]},
            "no_matching_events",
        ),
    ],
)
async def test_stream_request_errors(
    tts: TtsApi, client: httpx.AsyncClient, request_body: dict[str, Any], name: str
) -> None:
    """§a no identifiers: `pkg/events/grpc:no_identifiers`; an unknown name is
    `unknown_event_name`, a regex matching nothing `no_matching_events`."""
    await tts.create_application("app1")
    # A wrongly accepted request would stream forever: bound it.
    response = await asyncio.wait_for(client.post("/events", json=request_body), timeout=5)
    error = stream_error(response)
    assert error["code"] == INVALID_ARGUMENT
    detail = error["details"][0]
    assert detail["name"] == name
    if name == "no_identifiers":
        assert detail["namespace"] == "pkg/events/grpc"


def test_update_and_delete_events(served_emulator: ServedEmulator) -> None:
    """§a the IS emits `end_device.update` (carrying the updated field-mask paths as data) and
    `end_device.delete`; event data is an `Any` with `@type` (§b)."""
    setup_app(served_emulator, "app1")
    with served_emulator.client() as client:
        expect_ok(
            client.post(
                "/applications/app1/devices", json={"end_device": {"ids": {"device_id": "dev1"}}}
            )
        )

    def change_device() -> None:
        with served_emulator.client() as client:
            expect_ok(
                client.put(
                    "/applications/app1/devices/dev1",
                    json={
                        "end_device": {"description": "changed"},
                        "field_mask": {"paths": ["description"]},
                    },
                )
            )
            expect_ok(client.delete("/applications/app1/devices/dev1"))

    writer = threading.Thread(target=change_device)
    events: dict[str, dict[str, Any]] = {}
    with (
        served_emulator.client() as client,
        client.stream(
            "POST",
            "/events",
            json={
                "identifiers": [
                    {
                        "device_ids": {
                            "device_id": "dev1",
                            "application_ids": {"application_id": "app1"},
                        }
                    }
                ]
            },
            timeout=STREAM_TIMEOUT,
        ) as response,
    ):
        deadline = time.monotonic() + 8
        for message in json_messages(response):
            if not events:
                writer.start()  # the stream is subscribed once its first message arrived
            events.setdefault(message["result"]["name"], message["result"])
            if "end_device.delete" in events or time.monotonic() > deadline:
                break
    if writer.ident is not None:
        writer.join(10)
    assert "end_device.update" in events, sorted(events)
    assert "end_device.delete" in events, sorted(events)
    update = events["end_device.update"]
    assert update["data"]["@type"].startswith("type.googleapis.com/")
    assert "description" in json.dumps(update["data"])
