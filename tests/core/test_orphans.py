"""Orphans (issue 9 finding 6): Network, Application and Join Server records of devices the
Identity Server no longer holds, in applications the stack owns.

The finding: `apply --prune` of a smaller tree while `apply` of a larger one runs deletes the
devices the larger run has just created on the Identity Server, and the larger run's later
Network, Application and Join Server writes re-create records there, invisible to every read
that starts from the Identity Server. Here that interleaving is driven step by step (a gate
holds the larger run's writes to those three servers), then plan, drift and prune must find the
orphans and remove them. The emulator's admin inventory (which the real API cannot list) is the
ground truth.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.providers.tts import orphans
from tests.cli_runner import CliRunner
from tests.conftest import ServedEmulator
from tests.core.support import DEVICES, KEYS, Engine, fleet_site, site

SMALL, LARGE = 12, 16  # the larger tree adds 4 devices; the smaller one prunes them
ADDED = [f"field-fleet/node-{i:05d}" for i in range(SMALL, LARGE)]
DEVICES_WITH_NEW_EUI = DEVICES.replace('dev_eui: "70B3D57ED0000001"', 'dev_eui: "70B3D57ED00000A1"')
DEVICE_CREATE = re.compile(r"/api/v3/applications/[^/]+/devices")


class Gate(httpx.AsyncBaseTransport):
    """Holds one run's Network, Application and Join Server writes until `release` is set, and
    sets `created` once `creations` Identity Server device creations have been answered."""

    def __init__(self, inner: httpx.AsyncBaseTransport, creations: int) -> None:
        self.inner = inner
        self.creations = creations
        self.created = asyncio.Event()
        self.release = asyncio.Event()
        self._count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "PUT" and path.startswith(
            ("/api/v3/ns/", "/api/v3/as/", "/api/v3/js/")
        ):
            await self.release.wait()
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and DEVICE_CREATE.fullmatch(path):
            self._count += 1
            if self._count >= self.creations:
                self.created.set()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def inventory(served: ServedEmulator) -> dict[str, list[str]]:
    response = httpx.get(
        f"{served.root_url}/_emulator/devices",
        headers={"Authorization": f"Bearer {served.api_key}"},
    )
    response.raise_for_status()
    found: dict[str, list[str]] = response.json()
    return found


async def interleave(served: ServedEmulator, small: Path, large: Path) -> None:
    """The finding's runs: the larger tree's apply registers its new devices on the Identity
    Server; the smaller tree's `apply --prune` then runs whole (and deletes them); then the
    larger apply goes on with the Network, Application and Join Servers. Both succeed."""
    gate = Gate(httpx.AsyncHTTPTransport(), creations=LARGE - SMALL)
    larger = Engine(gate, served.api_key, url=served.root_url)
    smaller = Engine(httpx.AsyncHTTPTransport(), served.api_key, url=served.root_url)
    larger_apply = asyncio.ensure_future(larger.apply([large]))
    await asyncio.wait_for(gate.created.wait(), 30)
    _run, pruned = await smaller.apply([small], prune=True)
    deleted = {"/".join(r.key.ids) for r in pruned.results if r.action == "delete"}
    assert deleted == set(ADDED)
    gate.release.set()
    _run, report = await asyncio.wait_for(larger_apply, 60)
    assert not report.failed and not pruned.failed


@pytest.mark.slow
@pytest.mark.asyncio
async def test_orphans_of_an_interleaved_prune_are_found_reported_and_pruned(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    small = fleet_site(tmp_path / "small", SMALL)
    large = fleet_site(tmp_path / "large", LARGE)
    base = Engine(httpx.AsyncHTTPTransport(), served_emulator.api_key, url=served_emulator.root_url)
    _run, report = await base.apply([small])
    assert not report.failed

    await interleave(served_emulator, small, large)
    found = inventory(served_emulator)
    # The finding, reproduced: records on the other registries, none on the Identity Server.
    assert not set(ADDED) & set(found["is"])
    assert set(ADDED) <= set(found["ns"]) & set(found["as"]) & set(found["js"])

    cli = CliRunner(
        {
            **KEYS,
            "TTS_API_KEY": served_emulator.api_key,
            "RECONCILER_TTS_URL": served_emulator.root_url,
        },
        tmp_path,
    )
    # plan shows them as owned but undeclared, kept without prune; drift counts them.
    shown = cli("plan", str(small))
    for device in ADDED:
        assert f"device {device}" in shown
    assert "an orphan: on the Network, Application and Join Servers, with no Identity" in shown
    assert "deleted with --prune" in shown
    cli("drift", str(small), expect=2)
    # With prune they are deleted where they are (no Identity Server request for them).
    planned = cli("plan", str(small), "--prune")
    assert "0 to create, 0 to update, 0 to replace, 4 to delete" in planned
    cli("apply", str(small), "--prune", "--auto-approve")
    found = inventory(served_emulator)
    for registry in ("is", "ns", "as", "js"):
        assert not set(ADDED) & set(found[registry]), registry
    assert len(found["ns"]) == SMALL
    cli("drift", str(small))  # exit 0: in sync


@pytest.mark.asyncio
async def test_a_declared_device_is_registered_anew_over_an_orphan(
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    """A declared device whose Identity Server record was deleted alone (the IS delete does not
    cascade) and whose EUI changed meanwhile: the Set RPCs would fail on the old EUIs or keep
    the old session and MAC state; the plan deletes the stale records first."""
    eng = Engine(emulator_transport, admin_api_key)
    paths = [site(tmp_path)]
    _run, report = await eng.apply(paths)
    assert not report.failed
    base = "http://emulator.test/api/v3"
    app = "field-sensors"
    # Out of band: a MAC setting the manifests do not manage, then the IS record alone deleted.
    response = await client.put(
        f"{base}/ns/applications/{app}/devices/otaa-103",
        json={
            "end_device": {"mac_settings": {"rx2_data_rate_index": 5}},
            "field_mask": {"paths": ["mac_settings.rx2_data_rate_index"]},
        },
    )
    assert response.status_code == 200, response.text
    response = await client.delete(f"{base}/applications/{app}/devices/otaa-103")
    assert response.status_code == 200
    changed = site(tmp_path, devices=DEVICES_WITH_NEW_EUI)

    run = await eng.plan([changed])
    change = next(c for c in run.plan.changes if str(c.key) == "device field-sensors/otaa-103")
    assert change.action == "create"
    assert [(s.endpoint, s.operation) for s in change.steps][:3] == [
        ("as", "delete"),
        ("ns", "delete"),
        ("js", "delete"),
    ]
    assert "orphan" in change.reason
    assert any("must join again" in w for w in change.warnings)

    _run, report = await eng.apply([changed])
    assert not report.failed, [r.error for r in report.failed]
    ns = (
        await client.get(
            f"{base}/ns/applications/{app}/devices/otaa-103",
            params={"field_mask": "ids,mac_settings"},
        )
    ).json()
    assert ns["ids"]["dev_eui"] == "70B3D57ED00000A1"
    assert "rx2_data_rate_index" not in (ns.get("mac_settings") or {})  # nothing stale kept
    assert not (await eng.plan([changed], prune=True)).plan.has_drift()


def test_history_names_devices_and_the_registries_that_may_hold_them() -> None:
    """What the event history says: each registry's latest event per device; a batch delete
    names its devices in its data (which the real server keeps ten minutes only)."""

    def ids(device: str, app: str = "app-1") -> dict[str, Any]:
        return {"device_id": device, "application_ids": {"application_id": app}}

    events = [
        {"name": "end_device.create", "identifiers": [{"device_ids": ids("a")}]},
        {"name": "js.end_device.create", "identifiers": [{"device_ids": ids("a")}]},
        {"name": "ns.end_device.create", "identifiers": [{"device_ids": ids("a")}]},
        {
            "name": "ns.end_device.batch.delete",
            "identifiers": [{"application_ids": {"application_id": "app-1"}}],
            "data": {"end_device_ids": [ids("a"), ids("b")]},
        },
        {"name": "as.end_device.update", "identifiers": [{"device_ids": ids("b")}]},
        {"name": "end_device.delete", "identifiers": [{"device_ids": ids("c")}]},
        {"name": "ns.end_device.create", "identifiers": [{"device_ids": ids("x", "other")}]},
        # A batch delete whose data expired names no device.
        {
            "name": "end_device.batch.delete",
            "identifiers": [{"application_ids": {"application_id": "app-1"}}],
        },
    ]
    states = orphans.last_states(events, "app-1")
    assert states == {
        "a": {"is": "present", "js": "present", "ns": "gone"},
        "b": {"ns": "gone", "as": "present"},
        "c": {"is": "gone"},
    }
    assert orphans.registries_to_probe(states["a"]) == ["as", "js"]
    assert orphans.registries_to_probe(states["b"]) == ["as", "js"]
    assert orphans.registries_to_probe(states["c"]) == ["ns", "as", "js"]
    assert orphans.orphan_reason("app-1", ["js", "ns"]).startswith(
        "an orphan: on the Network and Join Servers, with no Identity Server record"
    )


class RefuseEvents(httpx.AsyncBaseTransport):
    """Answers the event stream as a server would for a key without the right to it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v3/events":
            body = (
                b'{"code":7,"message":"error:pkg/auth/rights:no_application_rights","details":[]}'
            )
            return httpx.Response(
                403,
                headers={"Content-Type": "application/json"},
                stream=httpx.ByteStream(body),
            )
        return await self.inner.handle_async_request(request)


@pytest.mark.asyncio
async def test_an_unreadable_history_is_a_warning_not_a_failure(
    emulator_transport: httpx.ASGITransport, admin_api_key: str, tmp_path: Path
) -> None:
    paths = [site(tmp_path)]
    _run, report = await Engine(emulator_transport, admin_api_key).apply(paths)
    assert not report.failed
    run = await Engine(RefuseEvents(emulator_transport), admin_api_key).plan(paths)
    assert not run.plan.has_drift()
    assert any(
        "event history of application field-sensors could not be read" in w and "HTTP 403" in w
        for w in run.plan.warnings
    ), run.plan.warnings
