"""`reconciler import` from a live server: the round-trip contract on a varied state."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.providers.tts.importing.live import Selection
from reconciler.providers.tts.importing.manifests import env_name
from tests.core.support import Engine
from tests.emulator.support import ADMIN_USER, make_api_key
from tests.importer.support import (
    PUBSUB_PASSWORD,
    UP_SCRIPT,
    WEBHOOK_HEADERS,
    admin_client,
    build_varied_state,
    device_records,
    do_import,
    entity,
    env_template,
    import_options,
    new_transport,
    only_adoption,
    validate,
    varied_devices,
)

pytestmark = pytest.mark.asyncio

STACK = "orchard-north"


def fill_secrets(out: Path) -> dict[str, str]:
    """The operator's step: fill the env template's webhook header values."""
    values = {
        "WEBHOOK_ORCHARD_INGEST_AUTHORIZATION": WEBHOOK_HEADERS["Authorization"],
        "WEBHOOK_ORCHARD_INGEST_X_SITE": WEBHOOK_HEADERS["X-Site"],
        "PUBSUB_ORCHARD_BROKER_PASSWORD": PUBSUB_PASSWORD,
    }
    assert set(values) <= set(env_template(out))
    return values


async def test_live_import_round_trip(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    await build_varied_state(client, ADMIN_USER)
    before = await device_records(client, "orchard")
    out = tmp_path / "imported"
    report = await do_import(import_options(out, emulator_transport, admin_api_key))
    assert report.counts == {
        "application": 2,
        "device": 9,
        "webhook": 1,
        "pub/sub": 1,
        "gateway": 2,
    }

    # Secrets are not in the manifests; they are in git-ignored files.
    texts = {p: p.read_text() for p in out.rglob("*") if p.is_file()}
    manifests = "".join(
        t
        for p, t in texts.items()
        if p.suffix in (".yaml", ".csv") and not p.name.endswith(".secrets.csv")
    )
    for secret in (
        "2B7E151628AED2A6ABF7158809CF4F3C",
        "F0E0D0C0B0A090807060504030201000",
        "11223344556677889900AABBCCDDEEFF",
        "s3cr3t-token",
        PUBSUB_PASSWORD,
    ):
        assert secret not in manifests
    assert "s3cr3t-token" not in "".join(texts.values())
    assert PUBSUB_PASSWORD not in "".join(texts.values())
    gitignore = (out / ".gitignore").read_text()
    assert "*.secrets.csv" in gitignore and "secrets/" in gitignore
    assert (out / "applications/orchard/formatters/link.up.js").read_text() == UP_SCRIPT

    environ = {"TTS_API_KEY": admin_api_key, **fill_secrets(out)}
    # Keys were readable: only the webhook headers and the pub/sub password are references.
    assert len(env_template(out)) == 3
    validate(out, environ)

    source = Engine(emulator_transport, admin_api_key, environ_extra=environ)
    run = await source.plan([out])
    assert only_adoption(run.plan, STACK) == []
    adopted = sorted(str(c.key) for c in run.plan.resources if c.adopt)
    assert len(adopted) == 2 + 9 + 2, adopted
    assert run.plan.changes == [c for c in run.plan.changes if c.adopt]
    # Nothing was written to the server by import (and nothing by plan).
    assert await device_records(client, "orchard") == before

    fresh_key = make_api_key()
    async with new_transport(fresh_key) as fresh_transport:
        fresh = Engine(
            fresh_transport, fresh_key, environ_extra={**environ, "TTS_API_KEY": fresh_key}
        )
        _, applied = await fresh.apply([out])
        assert not applied.failed, applied.failed
        async with admin_client(fresh_transport, fresh_key) as fresh_client:
            assert await device_records(fresh_client, "orchard") == before
            for path, mask in [
                ("/applications/orchard", "name,description,attributes"),
                ("/applications/empty-app", "name,description,attributes"),
                ("/as/applications/orchard/link", "default_formatters"),
                (
                    "/as/webhooks/orchard/ingest",
                    "base_url,format,headers,uplink_message,join_accept,paused",
                ),
                ("/as/pubsub/orchard/broker", "uplink_message,downlink_push,join_accept"),
                (
                    "/gateways/gw-barn",
                    "ids,name,frequency_plan_ids,gateway_server_address,antennas,status_public,location_public,attributes",
                ),
                (
                    "/gateways/gw-dual",
                    "ids,name,frequency_plan_ids,gateway_server_address,antennas,status_public,location_public,attributes",
                ),
            ]:
                assert await entity(fresh_client, path, mask) == await entity(client, path, mask), (
                    path
                )


async def test_without_read_keys_right_keys_are_env_references(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    await build_varied_state(client, ADMIN_USER)
    rights = [
        "RIGHT_APPLICATION_INFO",
        "RIGHT_APPLICATION_DEVICES_READ",
        "RIGHT_APPLICATION_SETTINGS_BASIC",
        "RIGHT_APPLICATION_TRAFFIC_READ",
    ]
    created = await client.post(
        "/applications/orchard/api-keys", json={"name": "no keys", "rights": rights}
    )
    assert created.status_code == 200, created.text
    weak_key = created.json()["key"]
    out = tmp_path / "imported"
    report = await do_import(
        import_options(
            out,
            emulator_transport,
            weak_key,
            selection=Selection(("orchard",)),
            owner="user:admin-user",  # an application key belongs to no user
        )
    )
    assert any("lacks RIGHT_APPLICATION_DEVICES_READ_KEYS" in line for line in report.lines())
    # The operator fills in the keys the import could not read, by the names it lists.
    keys: dict[str, str] = {}
    for device in varied_devices():
        device_id = device["ids"]["device_id"]
        held = {
            **device.get("root_keys", {}),
            **(device.get("session") or {}).get("keys", {}),
        }
        for key, value in held.items():
            keys[env_name("TTS", "orchard", device_id, key)] = value["key"]
    names = set(env_template(out))
    assert names == set(keys) | {
        "WEBHOOK_ORCHARD_INGEST_AUTHORIZATION",
        "WEBHOOK_ORCHARD_INGEST_X_SITE",
        "PUBSUB_ORCHARD_BROKER_PASSWORD",
    }
    tree = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert not any(value in tree for value in keys.values())
    environ = {"TTS_API_KEY": weak_key, **keys, **fill_secrets(out)}
    validate(out, environ)
    run = await Engine(emulator_transport, weak_key, environ_extra=environ).plan([out])
    assert only_adoption(run.plan, STACK) == []
    before = await device_records(client, "orchard")
    fresh_key = make_api_key()
    async with new_transport(fresh_key) as fresh_transport:
        fresh = Engine(
            fresh_transport, fresh_key, environ_extra={**environ, "TTS_API_KEY": fresh_key}
        )
        _, applied = await fresh.apply([out])
        assert not applied.failed, applied.failed
        async with admin_client(fresh_transport, fresh_key) as fresh_client:
            assert await device_records(fresh_client, "orchard") == before


async def test_what_manifests_cannot_hold_is_reported(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    """Unmodelled device and gateway settings, an eleventh attribute and another stack's
    ownership marker are listed in the report (and its file), not dropped silently."""
    await build_varied_state(client, ADMIN_USER)
    ids = {"device_id": "class-c", "dev_eui": "70B3D57ED0000004", "join_eui": "70B3D57ED0000000"}
    updated = await client.put(
        "/ns/applications/orchard/devices/class-c",
        json={
            "end_device": {"ids": ids, "max_frequency": "870000000"},
            "field_mask": {"paths": ["max_frequency"]},
        },
    )
    assert updated.status_code == 200, updated.text
    attributes = {f"key-{i:02d}": "v" for i in range(9)} | {"managed-by": "other-stack"}
    updated = await client.put(
        "/applications/orchard/devices/otaa-11",
        json={"end_device": {"attributes": attributes}, "field_mask": {"paths": ["attributes"]}},
    )
    assert updated.status_code == 200, updated.text
    updated = await client.put(
        "/gateways/gw-barn",
        json={
            "gateway": {"downlink_path_constraint": "DOWNLINK_PATH_CONSTRAINT_NEVER"},
            "field_mask": {"paths": ["downlink_path_constraint"]},
        },
    )
    assert updated.status_code == 200, updated.text
    half = await client.post(
        "/applications/orchard/devices",
        json={"end_device": {"ids": {"device_id": "half-done", "dev_eui": "70B3D57ED00000FF"}}},
    )
    assert half.status_code == 200, half.text
    out = tmp_path / "imported"
    report = await do_import(import_options(out, emulator_transport, admin_api_key))
    lines = report.lines()
    assert report.counts["device"] == 9
    expected = [
        "device not imported: not registered on the Network Server (a partial registration; "
        "complete or delete it, then import again): 1 resource: orchard/half-done",
        "device field `max_frequency`: not in the manifest language: 1 resource: orchard/class-c",
        "gateway field `downlink_path_constraint`: not in the manifest language: "
        "1 resource: gw-barn",
        "owned by another stack (attribute managed-by): the first apply takes it over: "
        "1 resource: orchard/otaa-11",
    ]
    for line in expected:
        assert line in lines, lines
        assert line in (out / "import-report.txt").read_text()
    # The creator as contact is what a new server sets too: not reported.
    assert not any("contact" in line for line in lines), lines
    validate(out, {"TTS_API_KEY": admin_api_key, **fill_secrets(out)})
