"""Application pub/subs (MQTT, NATS, AWS IoT): the ApplicationPubSubRegistry routes as the real
Application Server serves them (routes and masks from api-definition.json)."""

from __future__ import annotations

import httpx
import pytest

from tests.emulator.support import (
    INVALID_ARGUMENT,
    PERMISSION_DENIED,
    TtsApi,
    expect_error,
    expect_ok,
)


@pytest.fixture
async def app1(tts: TtsApi) -> None:
    await tts.create_application("app1")


def mqtt_body(**fields: object) -> dict[str, object]:
    pubsub = {
        "format": "json",
        "base_topic": "orchard",
        "mqtt": {
            "server_url": "mqtts://broker.example.com:8883",
            "username": "ttn",
            "password": "broker-password",
            "publish_qos": "AT_LEAST_ONCE",
        },
        "uplink_message": {"topic": "up"},
        **fields,
    }
    paths = [
        "format",
        "base_topic",
        "provider.mqtt.server_url",
        "provider.mqtt.username",
        "provider.mqtt.password",
        "provider.mqtt.publish_qos",
        "uplink_message",
    ]
    return {"pubsub": pubsub, "field_mask": {"paths": paths}}


async def test_pubsub_set_get_list_delete(client: httpx.AsyncClient, app1: None) -> None:
    created = expect_ok(await client.put("/as/pubsub/app1/broker", json=mqtt_body()))
    assert created["ids"] == {"pub_sub_id": "broker", "application_ids": {"application_id": "app1"}}
    # The credentials come back in clear, as the real server returns them.
    assert created["mqtt"]["password"] == "broker-password"

    got = expect_ok(
        await client.get("/as/pubsub/app1/broker", params={"field_mask": "uplink_message"})
    )
    # format, provider and base_topic are returned whatever the mask names.
    assert got["format"] == "json" and got["base_topic"] == "orchard"
    assert got["mqtt"]["server_url"] == "mqtts://broker.example.com:8883"
    assert got["uplink_message"] == {"topic": "up"}
    assert "join_accept" not in got

    listing = expect_ok(await client.get("/as/pubsub/app1", params={"field_mask": "ids"}))
    assert [p["ids"]["pub_sub_id"] for p in listing["pubsubs"]] == ["broker"]

    formats = expect_ok(await client.get("/as/pubsub-formats"))
    assert formats["formats"] == {"json": "JSON", "protobuf": "Protocol Buffers"}

    expect_ok(await client.delete("/as/pubsub/app1/broker"))
    expect_ok(await client.delete("/as/pubsub/app1/broker"))  # idempotent
    assert expect_ok(await client.get("/as/pubsub/app1")) == {}


async def test_provider_is_a_oneof(client: httpx.AsyncClient, app1: None) -> None:
    """Masks name the oneof (`provider.nats`); its JSON member sits in the pub/sub, and setting
    one provider replaces the other."""
    expect_ok(await client.put("/as/pubsub/app1/bus", json=mqtt_body()))
    body = {
        "pubsub": {"nats": {"server_url": "nats://user:pass@nats.example.com:4222"}},
        "field_mask": {"paths": ["provider.nats.server_url"]},
    }
    switched = expect_ok(await client.put("/as/pubsub/app1/bus", json=body))
    assert switched["nats"] == {"server_url": "nats://user:pass@nats.example.com:4222"}
    assert "mqtt" not in switched
    # The mask's wire spelling is not a path of the RPC.
    bad = {"pubsub": body["pubsub"], "field_mask": {"paths": ["nats.server_url"]}}
    expect_error(
        await client.put("/as/pubsub/app1/bus", json=bad),
        code=INVALID_ARGUMENT,
        name="field_mask_paths",
    )


async def test_pubsub_validation_and_rights(
    client: httpx.AsyncClient, tts: TtsApi, app1: None
) -> None:
    bad_url = mqtt_body()
    bad_url["pubsub"]["mqtt"]["server_url"] = "not a url"  # type: ignore[index]
    expect_error(
        await client.put("/as/pubsub/app1/broker", json=bad_url),
        code=INVALID_ARGUMENT,
        name="validation",
    )
    bad_id = mqtt_body()
    expect_error(
        await client.put("/as/pubsub/app1/Bad_ID", json=bad_id),
        code=INVALID_ARGUMENT,
        name="validation",
    )
    reader = tts.client_for(
        await tts.create_application_api_key("app1", ["RIGHT_APPLICATION_TRAFFIC_READ"])
    )
    expect_error(
        await reader.put("/as/pubsub/app1/broker", json=mqtt_body()),
        code=PERMISSION_DENIED,
        name="insufficient_application_rights",
    )
    assert expect_ok(await reader.get("/as/pubsub/app1")) == {}
