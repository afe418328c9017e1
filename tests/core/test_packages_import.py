"""`reconciler import` of application package associations: default associations on the
application, a device's own associations on its Device document, tokens as `{env: ...}`
references (never written), and the round trip (only adoption on the same server; an apply to
an empty server recreates the associations)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.providers.tts.importing.live import Selection
from tests.core.support import Engine
from tests.core.test_packages import DEFAULTS, DEVICE, SECRETS, site
from tests.emulator.support import make_api_key
from tests.importer.support import (
    admin_client,
    do_import,
    env_template,
    import_options,
    new_transport,
    only_adoption,
    validate,
)

pytestmark = pytest.mark.asyncio

DEFAULT_TOKEN = "PACKAGE_TRACKER_APP_199_TOKEN"
DEVICE_TOKEN = "PACKAGE_TRACKER_APP_TRACKER_1_197_TOKEN"


async def associations(client: httpx.AsyncClient) -> list[object]:
    found: list[object] = []
    for path in (DEFAULTS, DEVICE):
        listing = (await client.get(path, params={"field_mask": "package_name,data"})).json()
        for item in listing.get("defaults", listing.get("associations", [])):
            found.append((item["ids"], item["package_name"], item.get("data")))
    return found


async def apply_source(tmp_path: Path, transport: httpx.ASGITransport, api_key: str) -> None:
    """The tree the tests import from, applied into the emulator."""
    _, report = await Engine(transport, api_key, environ_extra=dict(SECRETS)).apply(
        [site(tmp_path / "source")]
    )
    assert not report.failed


async def test_import_writes_associations_with_tokens_by_reference(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    await apply_source(tmp_path, emulator_transport, admin_api_key)
    before = await associations(client)
    assert len(before) == 3

    out = tmp_path / "imported"
    options = import_options(
        out, emulator_transport, admin_api_key, selection=Selection(("tracker-app",), ())
    )
    imported = await do_import(options)
    assert imported.counts["package association"] == 3
    texts = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    for token in SECRETS.values():
        assert token not in texts
    assert {DEFAULT_TOKEN, DEVICE_TOKEN} <= set(env_template(out))
    application = (out / "applications/tracker-app/application.yaml").read_text().replace("'", "")
    assert "package_name: lora-cloud-device-management-v1" in application
    assert f"token:\n        env: {DEFAULT_TOKEN}" in application
    assert "threshold: 8" in application
    devices = (out / "applications/tracker-app/devices.yaml").read_text().replace("'", "")
    assert "kind: Device" in devices and "lora-cloud-geolocation-v3" in devices

    environ = {
        "TTS_API_KEY": admin_api_key,
        DEFAULT_TOKEN: SECRETS["LORA_CLOUD_TOKEN"],
        DEVICE_TOKEN: SECRETS["GEO_TOKEN"],
    }
    validate(out, environ)
    again = Engine(emulator_transport, admin_api_key, environ_extra=environ)
    run = await again.plan([out])
    assert only_adoption(run.plan, "orchard-north") == []
    assert not [c for c in run.plan.changes if c.key.kind.startswith("package")]

    fresh_key = make_api_key()
    async with new_transport(fresh_key) as fresh_transport:
        fresh = Engine(
            fresh_transport, fresh_key, environ_extra={**environ, "TTS_API_KEY": fresh_key}
        )
        _, applied = await fresh.apply([out])
        assert not applied.failed, applied.failed
        async with admin_client(fresh_transport, fresh_key) as fresh_client:
            assert await associations(fresh_client) == before


async def test_without_the_packages_right_associations_are_reported(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    await apply_source(tmp_path, emulator_transport, admin_api_key)
    rights = [
        "RIGHT_APPLICATION_INFO",
        "RIGHT_APPLICATION_SETTINGS_BASIC",
        "RIGHT_APPLICATION_DEVICES_READ",
        "RIGHT_APPLICATION_TRAFFIC_READ",
    ]
    response = await client.post(
        "/applications/tracker-app/api-keys", json={"name": "no-packages", "rights": rights}
    )
    assert response.status_code == 200, response.text
    out = tmp_path / "imported"
    options = import_options(
        out,
        emulator_transport,
        response.json()["key"],
        selection=Selection(("tracker-app",), ()),
        owner="user:admin-user",
    )
    imported = await do_import(options)
    assert "package association" not in imported.counts
    assert "lacks RIGHT_APPLICATION_SETTINGS_PACKAGES" in imported.text()
    assert "packages" not in (out / "applications/tracker-app/application.yaml").read_text()


async def test_device_associations_can_be_skipped_and_the_report_says_so(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    await apply_source(tmp_path, emulator_transport, admin_api_key)
    out = tmp_path / "imported"
    options = import_options(
        out,
        emulator_transport,
        admin_api_key,
        selection=Selection(("tracker-app",), ()),
        device_packages=False,
    )
    imported = await do_import(options)
    assert imported.counts["package association"] == 2  # the application's defaults
    assert "own package associations not read (--no-device-packages)" in imported.text()
    assert DEVICE_TOKEN not in env_template(out)
    assert "lora-cloud-geolocation-v3" not in "".join(p.read_text() for p in out.rglob("*.yaml"))
