"""The apply lease on Azure IoT Hub (reconciler.providers.iothub.lease), against the in-process
IoT Hub emulator: the lease identity is created only-if-absent and replaced, renewed and deleted
only with If-Match on its etag, so every step is atomic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import engine
from reconciler.lease import LeaseHeld, LeaseKeeper
from reconciler.manifest.load import load_manifests
from reconciler.providers.iothub.rules import lease_device_id
from reconciler.providers.registry import MANIFEST_KINDS
from tests.iothub.support import DEVICES, HUB, HubEngine, new_key, owner_client, write_manifests
from tests.iothub_emulator.conftest import build_app

pytestmark = pytest.mark.asyncio

LEASE_ID = lease_device_id("plant-a")


@pytest.fixture
def hub_key() -> str:
    return new_key()


@pytest.fixture
async def hub_transport(hub_key: str) -> AsyncIterator[httpx.ASGITransport]:
    app = build_app(hub_key)
    async with app.router.lifespan_context(app):
        yield httpx.ASGITransport(app=app)


@pytest.fixture
def hub(hub_transport: httpx.ASGITransport, hub_key: str) -> HubEngine:
    return HubEngine(hub_transport, hub_key)


@pytest.fixture
async def owner(
    hub_transport: httpx.ASGITransport, hub_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in owner_client(hub_transport, hub_key):
        yield client


async def lease_identity(owner: httpx.AsyncClient) -> dict[str, Any] | None:
    response = await owner.get(f"/devices/{LEASE_ID}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def keeper(hub: HubEngine, paths: list[Path], **kwargs: Any) -> tuple[engine.Session, LeaseKeeper]:
    options = hub.options(paths)
    session = engine.connect(engine.load(options), options)
    return session, LeaseKeeper([t.provider for t in session.targets], **kwargs)


async def test_a_second_apply_is_refused_and_the_identity_goes_with_the_lease(
    hub: HubEngine, owner: httpx.AsyncClient, hub_key: str, tmp_path: Path
) -> None:
    paths = [write_manifests(tmp_path, hub=HUB, devices=DEVICES)]
    session, first = keeper(hub, paths)
    await first.acquire()
    try:
        identity = await lease_identity(owner)
        assert identity is not None and identity["status"] == "disabled"
        assert first.holder.lease_id in identity["statusReason"]
        assert len(identity["statusReason"]) <= 128
        with pytest.raises(LeaseHeld) as refused:
            await hub.apply_leased(paths)
        text = str(refused.value)
        assert text.startswith("IoT Hub 'plant-a' is locked by another apply: ")
        assert f"(lease id {first.holder.lease_id}) on device identity {LEASE_ID}" in text
        assert hub_key not in text
        # The apply's own plan never shows the lease identity, even with prune.
        run = await hub.plan(paths, prune=True, force=True)
        assert LEASE_ID not in run.plan.dumps()
    finally:
        await first.release()
        await session.aclose()
    assert await lease_identity(owner) is None
    run, report = await hub.apply_leased(paths, prune=True, force=True)
    assert not report.failed and run.plan.changes
    assert await lease_identity(owner) is None  # released: the hub holds nothing extra
    again = await hub.plan(paths, prune=True)
    assert not again.plan.has_changes() and not again.plan.has_drift()


async def test_two_concurrent_acquires_one_wins(hub: HubEngine, tmp_path: Path) -> None:
    paths = [write_manifests(tmp_path, hub=HUB, devices=DEVICES)]
    runs = [keeper(hub, paths) for _ in range(4)]
    outcomes = await asyncio.gather(*(k.acquire() for _s, k in runs), return_exceptions=True)
    try:
        assert sum(o is None for o in outcomes) == 1, outcomes
        assert all(isinstance(o, LeaseHeld) for o in outcomes if o is not None)
    finally:
        for session, held in runs:
            await held.release()
            await session.aclose()


async def test_an_expired_lease_is_taken_over_and_the_old_holder_learns_it(
    hub: HubEngine, owner: httpx.AsyncClient, tmp_path: Path
) -> None:
    paths = [write_manifests(tmp_path, hub=HUB, devices=DEVICES)]
    crashed_session, crashed = keeper(hub, paths, ttl=-60)
    await crashed.acquire()
    notes: list[str] = []
    session, second = keeper(hub, paths, note=notes.append)
    await second.acquire()
    try:
        (note,) = notes
        assert note.startswith("took over a lease of plant-a (expired): ")
        assert crashed.holder.lease_id in note
        await crashed.renew()  # If-Match on the etag it wrote: 412, and the lease is another's
        assert crashed.lost is not None and second.holder.lease_id in crashed.lost
        await crashed.release()  # leaves the new holder's lease alone
        identity = await lease_identity(owner)
        assert identity is not None and second.holder.lease_id in identity["statusReason"]
        await second.renew()
        assert second.lost is None
    finally:
        await second.release()
        await session.aclose()
        await crashed_session.aclose()
    assert await lease_identity(owner) is None


async def test_force_unlock_and_cancellation(
    hub: HubEngine, owner: httpx.AsyncClient, tmp_path: Path
) -> None:
    paths = [write_manifests(tmp_path, hub=HUB, devices=DEVICES)]
    session, stuck = keeper(hub, paths)
    await stuck.acquire()
    try:
        removed, others = await engine.force_unlock(session, "0123456789ab")
        assert not removed and [lease.lease_id for lease in others] == [stuck.holder.lease_id]
        removed, _ = await engine.force_unlock(session, stuck.holder.lease_id)
        assert [lease.where for lease in removed] == [f"device identity {LEASE_ID}"]
    finally:
        await session.aclose()
    assert await lease_identity(owner) is None

    started = asyncio.Event()

    async def hold_forever() -> None:
        options = hub.options(paths)
        session = engine.connect(engine.load(options), options)
        try:
            async with engine.hold_lease(session, options):
                started.set()
                await asyncio.sleep(3600)
        finally:
            await session.aclose()

    task = asyncio.ensure_future(hold_forever())
    await asyncio.wait_for(started.wait(), 10)
    assert await lease_identity(owner) is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await lease_identity(owner) is None


async def test_lease_device_ids_are_valid_for_any_stack_name() -> None:
    assert lease_device_id("plant-a") == "reconciler-lease.plant-a"
    odd = lease_device_id("plant a/ü" * 20)
    assert odd.startswith("reconciler-lease.") and len(odd) <= 128 and " " not in odd


async def test_a_device_named_like_a_lease_identity_is_a_located_error(tmp_path: Path) -> None:
    """A manifest device `reconciler-lease.<stack>` would be the lease identity: applied, it
    would hold the lease for good (or be deleted by a release). Refused wherever it is declared,
    for any stack's name (several stacks may share a hub), before any request."""
    devices = f"kind: IotHubDevice\nid: sensor-1\n---\nkind: IotHubDevice\nid: {LEASE_ID}\n"
    tree = write_manifests(tmp_path / "docs", hub=HUB, devices=devices)
    fleet = write_manifests(tmp_path / "fleet", hub=HUB, fleet="kind: IotHubFleet\ncsv: f.csv\n")
    (fleet / "f.csv").write_text("id\nok-1\nreconciler-lease.other-stack\n", encoding="utf-8")
    for where, path in (("devices.yaml:5:1", tree), ("f.csv:3:1", fleet)):
        result = load_manifests([path], environ={}, kinds=MANIFEST_KINDS)
        errors = [d for d in result.diagnostics if d.severity == "error"]
        assert len(errors) == 1, errors
        assert str(errors[0].location).endswith(where), str(errors[0].location)
        assert "is reserved" in errors[0].message and "apply lease" in errors[0].message


async def test_plan_warns_of_a_running_apply_on_the_hub(hub: HubEngine, tmp_path: Path) -> None:
    paths = [write_manifests(tmp_path, hub=HUB, devices=DEVICES)]
    assert (await hub.plan(paths, look_for_leases=True)).plan.warnings == []
    session, running = keeper(hub, paths)
    await running.acquire()
    try:
        run = await hub.plan(paths, look_for_leases=True)
    finally:
        await running.release()
        await session.aclose()
    (warning,) = run.plan.warnings
    assert warning.startswith("another apply is running on plant-a: ")
    assert f"(lease id {running.holder.lease_id}) on device identity {LEASE_ID}" in warning
