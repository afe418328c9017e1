"""`reconciler import` from a live server: the round-trip contract on a varied state."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.core.support import Engine
from tests.emulator.support import ADMIN_USER, make_api_key
from tests.importer.support import (
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
)

pytestmark = pytest.mark.asyncio

STACK = "orchard-north"


def fill_secrets(out: Path) -> dict[str, str]:
    """The operator's step: fill the env template's webhook header values."""
    values = {
        "WEBHOOK_ORCHARD_INGEST_AUTHORIZATION": WEBHOOK_HEADERS["Authorization"],
        "WEBHOOK_ORCHARD_INGEST_X_SITE": WEBHOOK_HEADERS["X-Site"],
    }
    assert sorted(env_template(out)) == sorted(values)
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
    assert report.counts == {"application": 2, "device": 6, "webhook": 1, "gateway": 2}

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
    ):
        assert secret not in manifests
    assert "s3cr3t-token" not in "".join(texts.values())
    gitignore = (out / ".gitignore").read_text()
    assert "*.secrets.csv" in gitignore and "secrets/" in gitignore
    assert (out / "applications/orchard/formatters/link.up.js").read_text() == UP_SCRIPT

    environ = {"TTS_API_KEY": admin_api_key, **fill_secrets(out)}
    validate(out, environ)

    source = Engine(emulator_transport, admin_api_key, environ_extra=environ)
    run = await source.plan([out])
    assert only_adoption(run.plan, STACK) == []
    adopted = sorted(str(c.key) for c in run.plan.resources if c.adopt)
    assert len(adopted) == 2 + 6 + 2, adopted
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
