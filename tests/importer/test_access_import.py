"""Import carries API keys (name, rights, expiry: secrets cannot be read) and collaborators of
applications and gateways: a plan on the result shows only adoption, and applying it to an empty
server recreates them, each new key's secret in a git-ignored file."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.providers.tts.importing.live import Selection
from tests.core.support import Engine
from tests.emulator.support import ADMIN_USER, expect_ok, make_api_key
from tests.importer.support import (
    admin_client,
    do_import,
    import_options,
    new_transport,
    only_adoption,
    validate,
)

pytestmark = pytest.mark.asyncio


async def make_user(client: httpx.AsyncClient, user: str) -> None:
    expect_ok(
        await client.post(
            "/users",
            json={
                "user": {
                    "ids": {"user_id": user},
                    "primary_email_address": f"{user}@example.com",
                    "password": "correct-horse-battery-staple-1",
                }
            },
        )
    )


async def access_state(client: httpx.AsyncClient) -> None:
    await make_user(client, "alice")
    expect_ok(
        await client.post(
            f"/users/{ADMIN_USER}/applications",
            json={"application": {"ids": {"application_id": "keyed-app"}}},
        )
    )
    expect_ok(
        await client.post(
            f"/users/{ADMIN_USER}/gateways",
            json={
                "gateway": {
                    "ids": {"gateway_id": "keyed-gw"},
                    "frequency_plan_ids": ["EU_863_870_TTN"],
                }
            },
        )
    )
    for path, body in (
        (
            "/applications/keyed-app/api-keys",
            {
                "name": "integration",
                "rights": ["RIGHT_APPLICATION_INFO"],
                "expires_at": "2099-01-01T00:00:00Z",
            },
        ),
        (
            "/applications/keyed-app/api-keys",
            {"name": "twice", "rights": ["RIGHT_APPLICATION_INFO"]},
        ),
        (
            "/applications/keyed-app/api-keys",
            {"name": "twice", "rights": ["RIGHT_APPLICATION_INFO"]},
        ),
        ("/gateways/keyed-gw/api-keys", {"name": "link key", "rights": ["RIGHT_GATEWAY_LINK"]}),
    ):
        expect_ok(await client.post(path, json=body))
    expect_ok(
        await client.put(
            "/applications/keyed-app/collaborators",
            json={
                "collaborator": {
                    "ids": {"user_ids": {"user_id": "alice"}},
                    "rights": ["RIGHT_APPLICATION_TRAFFIC_READ"],
                }
            },
        )
    )


async def keys(client: httpx.AsyncClient, path: str) -> list[tuple[str, list[str], Any]]:
    listed = expect_ok(await client.get(f"{path}/api-keys")).get("api_keys", [])
    return sorted((k["name"], k["rights"], k.get("expires_at")) for k in listed)


async def test_keys_and_collaborators_round_trip(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    await access_state(client)
    out = tmp_path / "imported"
    report = await do_import(
        import_options(
            out,
            emulator_transport,
            admin_api_key,
            selection=Selection(("keyed-app",), ("keyed-gw",)),
        )
    )
    assert report.counts["API key"] == 2
    text = (out / "import-report.txt").read_text()
    assert "shares its name with another key" in text
    application = (out / "applications/keyed-app/application.yaml").read_text()
    assert "name: 'integration'" in application
    assert "file: 'secrets/api-key.integration'" in application
    assert "user: 'alice'" in application
    assert (
        "file: 'secrets/gateway-keyed-gw.api-key.link-key'" in (out / "gateways.yaml").read_text()
    )

    environ = {"TTS_API_KEY": admin_api_key}
    validate(out, environ)
    source = Engine(emulator_transport, admin_api_key, environ_extra=environ)
    run = await source.plan([out])
    assert only_adoption(run.plan, "orchard-north") == []

    fresh_key = make_api_key()
    async with (
        new_transport(fresh_key) as fresh_transport,
        admin_client(fresh_transport, fresh_key) as fresh_client,
    ):
        await make_user(fresh_client, "alice")
        fresh = Engine(fresh_transport, fresh_key, environ_extra={"TTS_API_KEY": fresh_key})
        _run, applied = await fresh.apply([out])
        assert not applied.failed, applied.failed
        for path in ("/applications/keyed-app", "/gateways/keyed-gw"):
            assert await keys(fresh_client, path) == [
                k for k in await keys(client, path) if k[0] != "twice"
            ]
        collaborators = expect_ok(await fresh_client.get("/applications/keyed-app/collaborators"))[
            "collaborators"
        ]
        assert {
            "ids": {"user_ids": {"user_id": "alice"}},
            "rights": ["RIGHT_APPLICATION_TRAFFIC_READ"],
        } in collaborators
    sink = out / "applications/keyed-app/secrets/api-key.integration"
    assert stat.S_IMODE(os.stat(sink).st_mode) == 0o600
    assert "secrets/" in (out / ".gitignore").read_text()
