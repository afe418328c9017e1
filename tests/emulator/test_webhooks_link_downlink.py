"""Application webhooks, the application link and the downlink queue (FACTS §a, AS routes)."""

from __future__ import annotations

import httpx
import pytest

from tests.emulator.support import (
    INVALID_ARGUMENT,
    NOT_FOUND,
    PERMISSION_DENIED,
    TtsApi,
    expect_error,
    expect_ok,
)

JS_FORMATTER = "function decodeUplink(input) { return {data: {bytes: input.bytes}}; }"


@pytest.fixture
async def app1(tts: TtsApi) -> None:
    await tts.create_application("app1")


def webhook_body(**fields: object) -> dict[str, object]:
    webhook = {
        "base_url": "https://example.com/hooks",
        "format": "json",
        "uplink_message": {"path": "/up"},
        "headers": {"Authorization": "Bearer secret-value"},
        **fields,
    }
    return {"webhook": webhook, "field_mask": {"paths": sorted(webhook)}}


# ---------------------------------------------------------------------------------------------
# Webhooks


async def test_webhook_set_get_list_delete(client: httpx.AsyncClient, app1: None) -> None:
    """§a ApplicationWebhookRegistry: PUT upsert, Get with mask, List with `X-Total-Count`,
    POST binding, idempotent Delete."""
    created = expect_ok(await client.put("/as/webhooks/app1/hook1", json=webhook_body()))
    assert created["ids"] == {"webhook_id": "hook1", "application_ids": {"application_id": "app1"}}
    assert created["base_url"] == "https://example.com/hooks"

    got = expect_ok(
        await client.get(
            "/as/webhooks/app1/hook1",
            params={"field_mask": "base_url,format,uplink_message,headers"},
        )
    )
    assert got["format"] == "json"
    assert got["uplink_message"] == {"path": "/up"}
    assert got["headers"] == {"Authorization": "Bearer secret-value"}
    assert got["created_at"] and got["updated_at"]

    body = webhook_body(base_url="https://example.org/second")
    body["webhook"]["ids"] = {"webhook_id": "hook2"}  # type: ignore[index]
    expect_ok(await client.post("/as/webhooks/app1", json=body))

    listed = await client.get("/as/webhooks/app1", params={"field_mask": "base_url"})
    hooks = expect_ok(listed)["webhooks"]
    assert sorted((h["ids"]["webhook_id"], h["base_url"]) for h in hooks) == [
        ("hook1", "https://example.com/hooks"),
        ("hook2", "https://example.org/second"),
    ]
    assert listed.headers["X-Total-Count"] == "2"

    assert expect_ok(await client.delete("/as/webhooks/app1/hook1")) == {}
    assert expect_ok(await client.delete("/as/webhooks/app1/hook1")) == {}
    assert expect_ok(await client.delete("/as/webhooks/app1/never-existed")) == {}
    expect_error(
        await client.get("/as/webhooks/app1/hook1"),
        code=NOT_FOUND,
        namespace="pkg/redis",
        name="not_found",
    )


async def test_webhook_upsert_changes_only_masked_fields(
    client: httpx.AsyncClient, app1: None
) -> None:
    """§a Set upserts: an existing webhook keeps fields outside the mask."""
    expect_ok(await client.put("/as/webhooks/app1/hook1", json=webhook_body()))
    expect_ok(
        await client.put(
            "/as/webhooks/app1/hook1",
            json={
                "webhook": {"paused": True, "base_url": "https://ignored.example.com"},
                "field_mask": {"paths": ["paused"]},
            },
        )
    )
    got = expect_ok(
        await client.get("/as/webhooks/app1/hook1", params={"field_mask": "paused,base_url"})
    )
    assert got["paused"] is True
    assert got["base_url"] == "https://example.com/hooks"


async def test_webhook_field_mask_message_encoding(client: httpx.AsyncClient, app1: None) -> None:
    """§b a field mask inside a message is written as `{"paths": [...]}`; input also takes a
    comma string."""
    body = webhook_body(field_mask="up.uplink_message.decoded_payload,up.uplink_message.f_port")
    expect_ok(await client.put("/as/webhooks/app1/hook1", json=body))
    got = expect_ok(
        await client.get("/as/webhooks/app1/hook1", params={"field_mask": "field_mask"})
    )
    assert got["field_mask"] == {
        "paths": ["up.uplink_message.decoded_payload", "up.uplink_message.f_port"]
    }


async def test_webhook_rights(tts: TtsApi, app1: None) -> None:
    """§a Get/List need TRAFFIC_READ; Set/Delete need SETTINGS_BASIC + TRAFFIC_READ +
    TRAFFIC_DOWN_WRITE."""
    reader = tts.client_for(
        await tts.create_application_api_key("app1", ["RIGHT_APPLICATION_TRAFFIC_READ"])
    )
    expect_ok(await reader.get("/as/webhooks/app1"))
    expect_error(
        await reader.put("/as/webhooks/app1/hook1", json=webhook_body()),
        code=PERMISSION_DENIED,
        namespace="pkg/auth/rights",
        name="insufficient_application_rights",
    )
    writer = tts.client_for(
        await tts.create_application_api_key(
            "app1",
            [
                "RIGHT_APPLICATION_SETTINGS_BASIC",
                "RIGHT_APPLICATION_TRAFFIC_READ",
                "RIGHT_APPLICATION_TRAFFIC_DOWN_WRITE",
            ],
        )
    )
    expect_ok(await writer.put("/as/webhooks/app1/hook1", json=webhook_body()))
    expect_ok(await writer.delete("/as/webhooks/app1/hook1"))


async def test_webhook_formats(client: httpx.AsyncClient) -> None:
    """§a `GET /as/webhook-formats`: formats `json` and `protobuf`."""
    formats = expect_ok(await client.get("/as/webhook-formats"))["formats"]
    assert {"json", "protobuf"} <= set(formats)


# ---------------------------------------------------------------------------------------------
# Link


async def test_link_lifecycle(client: httpx.AsyncClient, app1: None) -> None:
    """§a link: 404 before any set; PUT upserts (formatter without prefix in, canonical out);
    GET; DELETE; 404 again."""
    response = await client.get("/as/applications/app1/link")
    assert response.status_code == 404, response.text
    assert response.json()["code"] == NOT_FOUND

    link = {
        "link": {
            "default_formatters": {
                "up_formatter": "JAVASCRIPT",
                "up_formatter_parameter": JS_FORMATTER,
                "down_formatter": "FORMATTER_CAYENNELPP",
            },
            "skip_payload_crypto": True,
        },
        "field_mask": {"paths": ["default_formatters", "skip_payload_crypto"]},
    }
    expect_ok(await client.put("/as/applications/app1/link", json=link))
    got = expect_ok(
        await client.get(
            "/as/applications/app1/link",
            params={"field_mask": "default_formatters,skip_payload_crypto"},
        )
    )
    assert got["default_formatters"] == {
        "up_formatter": "FORMATTER_JAVASCRIPT",
        "up_formatter_parameter": JS_FORMATTER,
        "down_formatter": "FORMATTER_CAYENNELPP",
    }
    assert got["skip_payload_crypto"] is True

    expect_ok(await client.delete("/as/applications/app1/link"))
    assert (await client.get("/as/applications/app1/link")).status_code == 404


async def test_link_deprecated_paths_warn(client: httpx.AsyncClient, app1: None) -> None:
    """§a `api_key`, `network_server_address`, `tls` are allowed but dropped, with
    `X-Warning: field X is deprecated`."""
    response = await client.put(
        "/as/applications/app1/link",
        json={
            "link": {"network_server_address": "ns.example.com", "skip_payload_crypto": True},
            "field_mask": {"paths": ["network_server_address", "skip_payload_crypto"]},
        },
    )
    expect_ok(response)
    assert "field network_server_address is deprecated" in response.headers.get("X-Warning", "")
    got = expect_ok(
        await client.get(
            "/as/applications/app1/link",
            params={"field_mask": "network_server_address,skip_payload_crypto"},
        )
    )
    assert "network_server_address" not in got
    assert got["skip_payload_crypto"] is True


async def test_link_needs_settings_basic(tts: TtsApi, app1: None) -> None:
    """§a/§f link Get/Set need `RIGHT_APPLICATION_SETTINGS_BASIC`."""
    reader = tts.client_for(
        await tts.create_application_api_key("app1", ["RIGHT_APPLICATION_INFO"])
    )
    response = await reader.put(
        "/as/applications/app1/link",
        json={
            "link": {"skip_payload_crypto": True},
            "field_mask": {"paths": ["skip_payload_crypto"]},
        },
    )
    expect_error(
        response,
        code=PERMISSION_DENIED,
        namespace="pkg/auth/rights",
        name="insufficient_application_rights",
        attributes={"missing": ["RIGHT_APPLICATION_SETTINGS_BASIC"]},
    )


async def test_link_formatter_parameter_limit(client: httpx.AsyncClient, app1: None) -> None:
    """§a formatter parameter strings may be at most 40960 chars."""
    link = {
        "link": {
            "default_formatters": {
                "up_formatter": "FORMATTER_JAVASCRIPT",
                "up_formatter_parameter": "x" * 40961,
            }
        },
        "field_mask": {"paths": ["default_formatters"]},
    }
    response = await client.put("/as/applications/app1/link", json=link)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == INVALID_ARGUMENT


# ---------------------------------------------------------------------------------------------
# Downlink queue


async def test_downlink_queue_push_replace_list(
    tts: TtsApi, client: httpx.AsyncClient, app1: None
) -> None:
    """AppAs DownlinkQueuePush/Replace/List (api-definition.json): push appends, replace
    replaces, list returns `{"downlinks": [...]}` (empty list omitted, §b)."""
    await tts.register_abp_device("app1", "dev1")
    base = "/as/applications/app1/devices/dev1"
    first = {"downlinks": [{"frm_payload": "vu8=", "f_port": 42}]}
    assert expect_ok(await client.post(f"{base}/down/push", json=first)) == {}
    second = {"downlinks": [{"frm_payload": "AQID", "f_port": 7, "confirmed": True}]}
    expect_ok(await client.post(f"{base}/down/push", json=second))

    queue = expect_ok(await client.get(f"{base}/down"))["downlinks"]
    assert [(d["f_port"], d["frm_payload"]) for d in queue] == [(42, "vu8="), (7, "AQID")]
    assert queue[1]["confirmed"] is True

    expect_ok(
        await client.post(
            f"{base}/down/replace", json={"downlinks": [{"frm_payload": "/w==", "f_port": 1}]}
        )
    )
    queue = expect_ok(await client.get(f"{base}/down"))["downlinks"]
    assert [(d["f_port"], d["frm_payload"]) for d in queue] == [(1, "/w==")]

    expect_ok(await client.post(f"{base}/down/replace", json={"downlinks": []}))
    assert expect_ok(await client.get(f"{base}/down")).get("downlinks", []) == []


async def test_downlink_push_to_unknown_device_is_404(
    client: httpx.AsyncClient, app1: None
) -> None:
    """§d a missing device in an application you can access returns 404."""
    response = await client.post(
        "/as/applications/app1/devices/ghost/down/push",
        json={"downlinks": [{"frm_payload": "vu8=", "f_port": 42}]},
    )
    assert response.status_code == 404, response.text
    assert response.json()["code"] == NOT_FOUND


async def test_downlink_push_malformed_json(
    tts: TtsApi, client: httpx.AsyncClient, app1: None
) -> None:
    """§b the docs' trailing-comma body is a decode error: 400, code 3, empty details."""
    await tts.register_abp_device("app1", "dev1")
    response = await client.post(
        "/as/applications/app1/devices/dev1/down/push",
        content=b'{"downlinks": [{"frm_payload": "vu8=", "f_port": 42,}]}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == INVALID_ARGUMENT
    assert body["details"] == []
    assert "downlinks" not in expect_ok(await client.get("/as/applications/app1/devices/dev1/down"))
