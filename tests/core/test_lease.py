"""The apply lease on The Things Stack (reconciler.lease, reconciler.providers.tts.lease), against
the in-process emulator: two applies at once, waiting with a timeout, taking over an expired
lease, release after failures and cancellation, force-unlock, and the lease device never showing
up as a resource."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import engine
from reconciler.diagnostics import ManifestError, ReconcilerError
from reconciler.lease import Acquired, Lease, LeaseHeld, LeaseHolder, LeaseKeeper, utc_now
from reconciler.plan.model import ApplyReport
from reconciler.plan.render import render_report
from reconciler.providers.tts.importing.live import Selection
from reconciler.providers.tts.importing.run import ImportOptions, run_import
from reconciler.providers.tts.kinds import LEASE_DEVICE_ID
from tests.conftest import build_emulator_app, end_streams_when_idle
from tests.core.support import DEVICES, ROOT_URL, Engine, fleet_site, site
from tests.core.test_two_providers import Cloud, HubProvider, HubTarget

pytestmark = pytest.mark.asyncio

APP = "field-sensors"
SECOND_APP = """
kind: Application
id: spare-sensors
name: Spare
"""


@pytest.fixture
async def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key)


@asynccontextmanager
async def holding(
    eng: Engine, paths: list[Path], notes: list[str] | None = None, **kwargs: Any
) -> AsyncIterator[LeaseKeeper]:
    """A run that holds the stack's lease for the block (and reads nothing else)."""
    options = eng.options(paths, **kwargs)
    session = engine.connect(engine.load(options), options)
    try:
        note = notes.append if notes is not None else (lambda _text: None)
        async with engine.hold_lease(session, options, note) as keeper:
            assert keeper is not None
            yield keeper
    finally:
        await session.aclose()


async def lease_device(client: httpx.AsyncClient, app: str = APP) -> dict[str, Any] | None:
    response = await client.get(
        f"/applications/{app}/devices/{LEASE_DEVICE_ID}", params={"field_mask": "description"}
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_a_second_apply_is_refused_naming_the_holder(
    eng: Engine, client: httpx.AsyncClient, admin_api_key: str, tmp_path: Path
) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    async with holding(eng, paths) as first:
        record = await lease_device(client)
        assert record is not None and first.holder.lease_id in record["description"]
        with pytest.raises(LeaseHeld) as refused:
            await eng.apply_leased(paths)
    text = str(refused.value)
    holder = first.holder
    for part in (
        f"stack 'site-a' is locked by another apply: {holder.user}@{holder.host}",
        f"(pid {holder.pid}) since {holder.since.strftime('%Y-%m-%dT%H:%M:%SZ')}, lease until ",
        f"(lease id {holder.lease_id}) on device {LEASE_DEVICE_ID} in application {APP}",
        f"`reconciler force-unlock {holder.lease_id}`",
        "--lock-timeout",
    ):
        assert part in text, text
    assert admin_api_key not in text
    # Released at the end of the block: nothing stays behind, and the next apply runs.
    assert await lease_device(client) is None
    _run, report = await eng.apply_leased(paths)
    assert not report.failed


async def test_two_concurrent_applies_one_runs_one_is_refused(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The finding this guards against: `apply --prune` of a smaller tree while `apply` of a
    larger one runs. With the lease, exactly one of them runs."""
    larger = [site(tmp_path / "larger", extra=SECOND_APP)]
    await eng.apply(larger)  # the stack owns both applications now
    (tmp_path / "larger" / "devices.yaml").write_text(
        (tmp_path / "larger" / "devices.yaml").read_text() + "---\n" + more_devices(20)
    )
    smaller = [site(tmp_path / "smaller", devices="")]
    outcomes = await asyncio.gather(
        eng.apply_leased(larger),
        eng.apply_leased(smaller, prune=True, force=True),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, LeaseHeld)]
    ran = [o for o in outcomes if isinstance(o, tuple)]
    assert len(refused) == 1 and len(ran) == 1, outcomes
    assert not ran[0][1].failed
    assert await lease_device(client) is None
    assert await lease_device(client, "spare-sensors") is None


def more_devices(count: int) -> str:
    return "---\n".join(
        f'kind: Device\napplication: {APP}\nid: extra-{i:03d}\ndev_eui: "70B3D57ED01{i:05X}"\n'
        "app_key: {env: OTAA_103_APP_KEY}\n"
        for i in range(count)
    )


async def test_plan_warns_of_a_running_apply_without_taking_the_lease(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A plan read while an apply writes may show that apply's half-done work: it says so
    (once per lease, though on TTS the lease has a record in each owned application), and
    leaves the lease as it was."""
    paths = [site(tmp_path, extra=SECOND_APP)]
    await eng.apply(paths)
    assert (await eng.plan(paths, look_for_leases=True)).plan.warnings == []
    async with holding(eng, paths) as running:
        before = await lease_device(client)
        run = await eng.plan(paths, look_for_leases=True)
        assert await lease_device(client) == before  # not taken, not renewed
    (warning,) = [w for w in run.plan.warnings if "lease" in w]
    assert warning.startswith(
        f"another apply is running on site-a: {running.holder.user}@{running.holder.host} "
    )
    assert f"(lease id {running.holder.lease_id}) on device {LEASE_DEVICE_ID}" in warning
    assert "it may show that run's half-done changes" in warning
    assert run.plan.to_json()["warnings"][0] == warning

    # A lease its run left behind (it expired) is named as such.
    options = eng.options(paths)
    session = engine.connect(engine.load(options), options)
    crashed = LeaseKeeper([t.provider for t in session.targets], ttl=-60)
    await crashed.acquire()
    await session.aclose()
    (warning,) = (await eng.plan(paths, look_for_leases=True)).plan.warnings
    assert warning.startswith("an apply of site-a left its lease behind (expired): ")
    assert crashed.holder.lease_id in warning


async def first_apply(eng: Engine, paths: list[Path]) -> ApplyReport | LeaseHeld:
    """An apply as the CLI runs it, returning its report (or the refusal)."""
    options = eng.options(paths)
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    try:
        async with engine.hold_lease(session, options) as keeper:
            run = await engine.make_plan(loaded, session, options)
            return await engine.apply_plan(run, session, options, lease=keeper)
    except LeaseHeld as held:
        return held
    finally:
        await session.aclose()


async def test_two_first_applies_one_runs_the_other_starts_nothing(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A stack that owns nothing yet has nowhere to hold its lease before it writes: once its
    first application is created, the lease device in it (create-only) decides. Unguarded,
    both runs wrote all the way through."""
    paths = [site(tmp_path, extra=SECOND_APP)]
    outcomes = await asyncio.gather(first_apply(eng, paths), first_apply(eng, paths))
    reports = [o for o in outcomes if isinstance(o, ApplyReport)]
    ran = [r for r in reports if not r.lease_lost]
    assert len(ran) == 1, outcomes
    assert not ran[0].failed and not ran[0].skipped
    (stopped,) = [o for o in outcomes if o is not ran[0]]
    if isinstance(stopped, ApplyReport):  # it planned too: it stopped once the other held it
        # Only the creation both sent first (answered 409 by a record with the stack's marker,
        # counted as done); nothing after it.
        started = [str(r.key) for r in stopped.results if r.outcome != "skipped"]
        assert started == [f"application {APP}"], started
        assert len(stopped.skipped) == len(ran[0].results) - 1
        assert {r.error for r in stopped.skipped} == {
            "not started: the apply lease was lost (removed or taken over by another run) or, "
            "in a first apply, could not be taken, so no more changes were started"
        }
    assert not (await eng.plan(paths)).plan.has_changes()
    assert await lease_device(client) is None
    assert await lease_device(client, "spare-sensors") is None


async def test_a_first_apply_holds_the_lease_in_the_application_it_created(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """From its first creation on, a first apply holds the lease: another apply is refused."""
    paths = [site(tmp_path, extra=SECOND_APP)]
    options = eng.options(paths)
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    try:
        async with engine.hold_lease(session, options) as keeper:
            assert keeper is not None
            run = await engine.make_plan(loaded, session, options)
            first = [c for c in run.plan.changes if str(c.key) == f"application {APP}"]
            creation = replace(run.plan, resources=first)
            await engine.apply_plan(replace(run, plan=creation), session, options, lease=keeper)
            record = await lease_device(client)
            assert record is not None and keeper.holder.lease_id in record["description"]
            with pytest.raises(LeaseHeld):
                await eng.apply_leased(paths)
    finally:
        await session.aclose()


async def test_lock_timeout_waits_for_the_holder_then_runs(eng: Engine, tmp_path: Path) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    notes: list[str] = []
    async with holding(eng, paths) as first:
        waiting = asyncio.ensure_future(
            eng.apply_leased(paths, notes.append, lock_timeout=30, lease_poll=0.05)
        )
        await asyncio.sleep(0.3)
        assert not waiting.done()
    _run, report = await asyncio.wait_for(waiting, 10)
    assert not report.failed
    assert len(notes) == 1 and notes[0].startswith("waiting up to 30 s for the lease")
    assert first.holder.lease_id in notes[0]


async def test_lock_timeout_gives_up_with_the_holder_named(eng: Engine, tmp_path: Path) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    async with holding(eng, paths) as first:
        with pytest.raises(LeaseHeld, match=r"after waiting \d+ s: .*" + first.holder.lease_id):
            await eng.apply_leased(paths, lock_timeout=0.3, lease_poll=0.05)


async def test_an_expired_lease_of_a_crashed_run_is_taken_over_with_a_note(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    options = eng.options(paths)
    session = engine.connect(engine.load(options), options)
    crashed = LeaseKeeper([t.provider for t in session.targets], ttl=-60)  # expired at once
    await crashed.acquire()
    await session.aclose()  # the run dies: nothing releases its lease
    record = await lease_device(client)
    assert record is not None and crashed.holder.lease_id in record["description"]

    notes: list[str] = []
    _run, report = await eng.apply_leased(paths, notes.append)
    assert not report.failed
    (note,) = notes
    assert note.startswith("took over a lease of site-a (expired): ")
    assert crashed.holder.lease_id in note and "may have crashed" in note
    assert await lease_device(client) is None


async def test_the_lease_of_a_killed_process_on_this_host_is_taken_over_at_once(
    eng: Engine, tmp_path: Path
) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # its process id is free now (SIGKILL leaves the same)
    killed = replace(LeaseHolder.this_process(), pid=ended.pid)
    options = eng.options(paths)
    session = engine.connect(engine.load(options), options)
    await LeaseKeeper([t.provider for t in session.targets], holder=killed).acquire()
    await session.aclose()

    notes: list[str] = []
    _run, report = await eng.apply_leased(paths, notes.append)
    assert not report.failed
    (note,) = notes
    assert f"(its process {ended.pid} on this host has ended)" in note
    # On another host the same record is only taken over when it expires.
    elsewhere = replace(killed, host="elsewhere")
    lease = Lease.parse(elsewhere.record(utc_now() + timedelta(minutes=5), 200), "here")
    assert lease.abandoned(utc_now()) is None


async def test_renewal_notices_a_lease_taken_over(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A run whose lease expired (and was taken by another) learns it at its next renewal."""
    paths = [site(tmp_path)]
    await eng.apply(paths)
    async with holding(eng, paths, lease_ttl=-60) as slow, holding(eng, paths) as quick:
        await slow.renew()
        assert slow.lost is not None and quick.holder.lease_id in slow.lost
        record = await lease_device(client)
        # The slow run's release left the other run's lease alone.
        assert record is not None and quick.holder.lease_id in record["description"]


async def test_a_lease_lost_during_apply_stops_new_changes(
    admin_api_key: str, tmp_path: Path
) -> None:
    """Someone force-unlocks (or takes over) a running apply's lease: its next renewal notices,
    and no further change starts (as the CLI wires `should_stop`)."""
    app = build_emulator_app(admin_api_key, latency_ms=5)  # an apply that lasts a while
    async with app.router.lifespan_context(app):
        # The event stream the plan reads its history from ends sooner than the client's
        # half second of quiet.
        end_streams_when_idle(app)
        await apply_and_lose_the_lease(
            Engine(httpx.ASGITransport(app=app), admin_api_key), tmp_path
        )


async def apply_and_lose_the_lease(eng: Engine, tmp_path: Path) -> None:
    tree = fleet_site(tmp_path, 1)
    await eng.apply([tree])
    fleet_site(tmp_path, 100)
    options = eng.options([tree], lease_ttl=0.3, parallelism=1)  # renewed every 0.1 s
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    try:
        async with engine.hold_lease(session, options) as keeper:
            assert keeper is not None
            run = await engine.make_plan(loaded, session, options)

            async def unlock_soon() -> None:
                await asyncio.sleep(0.05)
                other = engine.connect(loaded, options)
                try:
                    await engine.force_unlock(other, keeper.holder.lease_id)
                finally:
                    await other.aclose()

            unlocking = asyncio.ensure_future(unlock_soon())
            report = await engine.apply_plan(run, session, options, lease=keeper)
            await unlocking
    finally:
        await session.aclose()
    assert keeper.lost is not None and "it was removed" in keeper.lost
    assert report.skipped and not report.failed
    assert len(report.results) == 99
    # Said as what it is: skipped because the lease was lost, not "interrupted" (no one
    # pressed Ctrl-C, and the advice differs: another run may be applying now).
    assert report.lease_lost and not report.interrupted
    reasons = {r.error for r in report.skipped}
    assert reasons == {
        "not started: the apply lease was lost (removed or taken over by another run) or, in a "
        "first apply, could not be taken, so no more changes were started"
    }, reasons
    assert report.to_json()["lease_lost"] is True
    summary = render_report(report)[-1].plain
    assert "Interrupted" not in summary
    assert summary.endswith(
        "Stopped: the apply lease was lost; another run may be applying now. Run plan once it "
        "has ended, then apply again for the rest."
    ), summary


async def holding_lease_forever(eng: Engine, paths: list[Path], started: asyncio.Event) -> None:
    async with holding(eng, paths):
        started.set()
        await asyncio.sleep(3600)


class UnwritableHub(HubProvider):
    """A second target whose lease record cannot be written (say, the key lacks the right)."""

    async def acquire_lease(self, holder: LeaseHolder, until: datetime) -> Acquired:
        raise ReconcilerError("hub 'hub-a': PUT /lease: HTTP 401 Unauthorized")


async def test_a_lease_that_cannot_be_written_fails_the_apply_and_takes_none(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    options = eng.options(paths)
    session = engine.connect(engine.load(options), options)
    providers = [session.targets[0].provider, UnwritableHub(HubTarget("hub-a", {}), Cloud())]
    try:
        with pytest.raises(ReconcilerError) as error:
            await LeaseKeeper(providers).acquire()
    finally:
        await session.aclose()
    assert str(error.value) == (
        "cannot take the apply lease: hub 'hub-a': PUT /lease: HTTP 401 Unauthorized "
        "(`apply --no-lock` applies without it, unguarded)"
    )
    assert await lease_device(client) is None  # the TTS lease taken first was given back


async def test_failure_and_cancellation_release_the_lease(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    with pytest.raises(RuntimeError, match="boom"):
        async with holding(eng, paths):
            assert await lease_device(client) is not None
            raise RuntimeError("boom")
    assert await lease_device(client) is None

    # Ctrl-C twice in the CLI cancels the running task: the lease goes all the same.
    started = asyncio.Event()
    task = asyncio.ensure_future(holding_lease_forever(eng, paths, started))
    await asyncio.wait_for(started.wait(), 10)
    assert await lease_device(client) is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await lease_device(client) is None


async def test_force_unlock_removes_only_the_named_lease(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    paths = [site(tmp_path, extra=SECOND_APP)]
    await eng.apply(paths)
    options = eng.options(paths)
    session = engine.connect(engine.load(options), options)
    stuck = LeaseKeeper([t.provider for t in session.targets])
    await stuck.acquire()
    try:
        removed, others = await engine.force_unlock(session, "0123456789ab")
        assert removed == [] and [lease.lease_id for lease in others] == [stuck.holder.lease_id] * 2
        removed, _others = await engine.force_unlock(session, stuck.holder.lease_id)
        assert sorted(lease.where for lease in removed) == [
            f"device {LEASE_DEVICE_ID} in application {APP}",
            f"device {LEASE_DEVICE_ID} in application spare-sensors",
        ]
    finally:
        await session.aclose()
    assert await lease_device(client) is None
    _run, report = await eng.apply_leased(paths)
    assert not report.failed


async def test_a_hand_edited_lease_never_expires_and_force_unlock_removes_it(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    paths = [site(tmp_path)]
    await eng.apply(paths)
    response = await client.post(
        f"/applications/{APP}/devices",
        json={
            "end_device": {
                "ids": {"device_id": LEASE_DEVICE_ID, "application_ids": {"application_id": APP}},
                "description": "someone was here",
            }
        },
    )
    assert response.status_code == 200, response.text
    with pytest.raises(LeaseHeld, match="an unreadable lease record") as refused:
        await eng.apply_leased(paths)
    options = eng.options(paths)
    session = engine.connect(engine.load(options), options)
    try:
        removed, _ = await engine.force_unlock(session, refused.value.lease.lease_id)
    finally:
        await session.aclose()
    assert len(removed) == 1


async def test_the_lease_is_never_planned_drifted_pruned_or_imported(
    eng: Engine, emulator_transport: httpx.ASGITransport, admin_api_key: str, tmp_path: Path
) -> None:
    paths = [site(tmp_path / "tree")]
    await eng.apply(paths)
    async with holding(eng, paths):
        run = await eng.plan(paths, prune=True, force=True)
        assert not run.plan.has_changes() and not run.plan.has_drift()
        assert LEASE_DEVICE_ID not in run.plan.dumps()
        out = tmp_path / "imported"
        await run_import(
            ImportOptions(
                out=out,
                url=ROOT_URL,
                environ={"TTS_API_KEY": admin_api_key},
                transport=emulator_transport,
                stack="site-a",
                selection=Selection((APP,), ()),
            )
        )
        written = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
        assert "otaa-103" in written and LEASE_DEVICE_ID not in written


async def test_pruning_an_application_removes_the_lease_it_holds_first(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The Identity Server refuses to delete an application that holds a device."""
    tree = site(tmp_path, extra=SECOND_APP)
    await eng.apply([tree])
    (tree / "extra.yaml").unlink()
    _run, report = await eng.apply_leased([tree], prune=True, force=True)
    assert not report.failed, report.failed
    assert {str(r.key) for r in report.results} == {"application spare-sensors"}
    response = await client.get("/applications/spare-sensors")
    assert response.status_code == 404


async def test_a_device_id_reserved_for_the_lease_is_a_located_error(
    eng: Engine, tmp_path: Path
) -> None:
    tree = site(tmp_path, devices=DEVICES.replace("id: otaa-103", f"id: {LEASE_DEVICE_ID}"))
    with pytest.raises(ManifestError) as error:
        engine.load(eng.options([tree]))
    (diagnostic,) = error.value.diagnostics
    assert str(diagnostic.location).endswith("devices.yaml:3:1"), str(diagnostic)
    assert f"`{LEASE_DEVICE_ID}` is reserved" in diagnostic.message


async def test_the_record_fits_and_parses_back() -> None:
    holder = LeaseHolder("u" * 80, "h" * 200, 4_294_967_295, utc_now(), "0123456789ab")
    until = utc_now()
    for limit in (128, 200):
        record = holder.record(until, limit)
        assert len(record) <= limit
        lease = Lease.parse(record, "here")
        assert lease.held_by(holder) and lease.until == until
