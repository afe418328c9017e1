"""Application pub/subs (MQTT, NATS, AWS IoT) through the engine against the emulator:
validate, plan with credentials masked, apply, drift, prune of owned pub/subs only."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from reconciler.manifest.load import load_manifests
from reconciler.plan.render import render_plan
from reconciler.providers.registry import MANIFEST_KINDS
from tests.core.support import STACK, Engine, step_summary, write_manifests

SECRETS = {
    "MQTT_PASSWORD": "mqtt-broker-password-1",
    "NATS_URL": "nats://ingest:nats-secret-2@nats.example.com:4222",
    "MQTT_CLIENT_KEY": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----",
    "AWS_SECRET": "aws-secret-access-key-value-3",
}

APPLICATION = """
kind: Application
id: orchard-bus
pubsubs:
  - id: broker
    format: json
    base_topic: orchard/north
    mqtt:
      server_url: mqtts://broker.example.com:8883
      username: orchard
      password: {env: MQTT_PASSWORD}
      tls_client_key: {env: MQTT_CLIENT_KEY}
      publish_qos: AT_LEAST_ONCE
    uplink_message: up
    downlink_push: {topic: down/push}
  - id: stream
    nats:
      server_url: {env: NATS_URL}
    join_accept: joins
  - id: cloud
    format: protobuf
    aws_iot:
      region: eu-west-1
      access_key: {access_key_id: AKIAIOSFODNN7EXAMPLE, secret_access_key: {env: AWS_SECRET}}
    uplink_message: up
"""


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key, environ_extra=dict(SECRETS))


def site(directory: Path, application: str = APPLICATION) -> Path:
    return write_manifests(directory, stack=STACK, application=application)


def assert_no_secret(text: str) -> None:
    for value in SECRETS.values():
        assert value not in text
    assert "nats-secret-2" not in text


async def test_apply_then_plan_is_empty_and_credentials_never_shown(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    summary = step_summary(run)
    assert [s[:2] for s in summary["pubsub orchard-bus/broker"]] == [("as", "set")]
    rendered = "\n".join(str(line) for line in render_plan(run.plan, full=True))
    assert "(sensitive)" in rendered
    assert_no_secret(rendered)
    assert_no_secret(run.plan.dumps())

    broker = (await client.get("/as/pubsub/orchard-bus/broker")).json()
    assert broker["mqtt"]["password"] == SECRETS["MQTT_PASSWORD"]
    assert broker["base_topic"] == "orchard/north"
    assert broker["downlink_push"] == {"topic": "down/push"}
    stream = (await client.get("/as/pubsub/orchard-bus/stream")).json()
    assert stream["nats"]["server_url"] == SECRETS["NATS_URL"]
    cloud = (await client.get("/as/pubsub/orchard-bus/cloud")).json()
    assert cloud["aws_iot"]["region"] == "eu-west-1"
    assert cloud["format"] == "protobuf"

    again, _ = await eng.apply(paths)
    assert again.plan.changes == [], [str(c.key) for c in again.plan.changes]


async def test_drift_of_a_credential_is_masked_and_repaired(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    _, report = await eng.apply(paths)
    assert not report.failed
    # Someone edits the broker in the Console: a new password, another topic.
    console = {
        "pubsub": {
            "mqtt": {"password": "console-typed-password"},
            "uplink_message": {"topic": "x"},
        },
        "field_mask": {"paths": ["provider.mqtt.password", "uplink_message"]},
    }
    response = await client.put("/as/pubsub/orchard-bus/broker", json=console)
    assert response.status_code == 200, response.text

    run = await eng.plan(paths)
    [change] = run.plan.changes
    assert str(change.key) == "pubsub orchard-bus/broker"
    fields = {c.path: c for s in change.steps for c in s.changes}
    assert fields["mqtt.password"].sensitive
    assert fields["uplink_message"].new == {"topic": "up"}
    rendered = "\n".join(str(line) for line in render_plan(run.plan))
    assert "console-typed-password" not in rendered
    assert "console-typed-password" not in run.plan.dumps()
    assert_no_secret(rendered)

    _, report = await eng.apply(paths)
    assert not report.failed
    broker = (await client.get("/as/pubsub/orchard-bus/broker")).json()
    assert broker["mqtt"]["password"] == SECRETS["MQTT_PASSWORD"]
    assert broker["mqtt"]["username"] == "orchard"  # the mask named only the drifted fields
    assert (await eng.plan(paths)).plan.changes == []


async def test_prune_deletes_owned_pubsubs_only(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    _, report = await eng.apply(paths)
    assert not report.failed
    # An application nobody owns, with its own pub/sub: never touched.
    response = await client.post(
        "/users/admin-user/applications",
        json={"application": {"ids": {"application_id": "someone-else"}}},
    )
    assert response.status_code == 200, response.text
    foreign = {
        "pubsub": {"nats": {"server_url": "nats://other.example.com:4222"}},
        "field_mask": {"paths": ["provider.nats.server_url"]},
    }
    assert (await client.put("/as/pubsub/someone-else/theirs", json=foreign)).status_code == 200

    fewer = APPLICATION.split("  - id: stream", maxsplit=1)[0]
    paths = [site(tmp_path, fewer)]
    run = await eng.plan(paths)
    assert run.plan.changes == []
    assert {str(c.key) for c in run.plan.orphans} == {
        "pubsub orchard-bus/stream",
        "pubsub orchard-bus/cloud",
    }
    run, report = await eng.apply(paths, prune=True)
    assert not report.failed
    listing = (await client.get("/as/pubsub/orchard-bus", params={"field_mask": "ids"})).json()
    assert [p["ids"]["pub_sub_id"] for p in listing["pubsubs"]] == ["broker"]
    theirs = await client.get("/as/pubsub/someone-else/theirs")
    assert theirs.status_code == 200


def test_validation_errors_are_located(tmp_path: Path) -> None:
    broken = """
    kind: Application
    id: orchard-bus
    pubsubs:
      - id: two-providers
        mqtt: {server_url: "mqtt://a.example.com"}
        nats: {server_url: "nats://b.example.com"}
      - id: no-provider
        uplink_message: up
      - id: bad-region
        aws_iot: {region: mars-north-1}
    """
    write_manifests(tmp_path, stack=STACK, application=textwrap.dedent(broken))
    result = load_manifests([tmp_path], environ=SECRETS, kinds=MANIFEST_KINDS)
    messages = [
        f"{d.location.line}: {d.message}" for d in result.diagnostics if d.severity == "error"
    ]
    text = "\n".join(messages)
    assert "exactly one provider" in text
    assert any(m.startswith("4:") for m in messages), messages  # the first pub/sub
    assert any(m.startswith("7:") for m in messages), messages  # the second
    assert any(m.startswith("10:") and "eu-west-1" in m for m in messages), messages


def test_duplicate_pubsub_ids_are_located(tmp_path: Path) -> None:
    twice = """
    kind: Application
    id: orchard-bus
    pubsubs:
      - id: stream
        nats: {server_url: {env: NATS_URL}}
      - id: stream
        nats: {server_url: {env: NATS_URL}}
    """
    write_manifests(tmp_path, stack=STACK, application=textwrap.dedent(twice))
    result = load_manifests([tmp_path], environ=SECRETS, kinds=MANIFEST_KINDS)
    [problem] = [d for d in result.diagnostics if d.severity == "error"]
    assert problem.location.line == 6
    assert "duplicate pub/sub `stream` in application `orchard-bus`" in problem.message
    assert "nats-secret-2" not in problem.message
