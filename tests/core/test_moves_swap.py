"""Devices swapping EUIs in one plan (a cycle of EUI reassignments). The Identity Server keeps a
(JoinEUI, DevEUI) pair unique across the deployment and frees it when the device holding it is
deleted, and an EUI change is a replacement (delete, then register): so the cycle is applied
by running the deletion half of every replacement in it first, then the registrations. The
plan says so, with the risk: a deletion that fails leaves the other devices of the cycle
unregistered until the next apply. Gateways change their EUI by an update and keep it when
deleted: a cycle of gateway EUI changes is blocked with the way out in two applies."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.plan.render import render_plan
from tests.core.support import STACK, Engine, write_manifests

pytestmark = pytest.mark.asyncio

APP = """
kind: Application
id: app-a
name: app-a
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  lorawan_version: 1.0.3
  lorawan_phy_version: 1.0.3-a
  join_eui: "70B3D57ED0000000"
"""

EUIS = {"north": "70B3D57ED00000A1", "south": "70B3D57ED00000B2", "east": "70B3D57ED00000C3"}


def pair(dev_eui: str) -> str:
    return f"EUI pair 70B3D57ED0000000/{dev_eui}"


def tree(directory: Path, euis: dict[str, str]) -> Path:
    devices = "---\n".join(
        f'kind: Device\napplication: app-a\nid: {name}\ndev_eui: "{eui}"\n'
        "app_key: {env: OTAA_103_APP_KEY}\n"
        for name, eui in euis.items()
    )
    return write_manifests(directory, stack=STACK, application=APP, devices=devices)


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key)


async def registered_euis(client: httpx.AsyncClient, names: list[str]) -> dict[str, set[str]]:
    """device -> the DevEUIs its records hold on each registry that has one."""
    found: dict[str, set[str]] = {}
    for name in names:
        for server in ("", "/ns", "/as", "/js"):
            response = await client.get(
                f"{server}/applications/app-a/devices/{name}", params={"field_mask": "ids"}
            )
            assert response.status_code == 200, (name, server, response.text)
            found.setdefault(name, set()).add(response.json()["ids"]["dev_eui"])
    return found


@pytest.mark.parametrize(
    "after",
    [
        # Two devices swap their EUIs.
        {"north": EUIS["south"], "south": EUIS["north"], "east": EUIS["east"]},
        # A cycle of three.
        {"north": EUIS["south"], "south": EUIS["east"], "east": EUIS["north"]},
    ],
    ids=["swap", "cycle-of-three"],
)
async def test_a_cycle_of_eui_reassignments_is_ordered_not_blocked(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path, after: dict[str, str]
) -> None:
    _run, report = await eng.apply([tree(tmp_path, EUIS)])
    assert not report.failed, report.failed
    paths = [tree(tmp_path, after)]
    moved = [name for name in EUIS if after[name] != EUIS[name]]

    run = await eng.plan(paths, allow_replace=True)
    assert not run.plan.blocked, run.plan.blocked
    changes = {c.key.id: c for c in run.plan.changes}
    assert sorted(changes) == sorted(moved)
    for name in moved:
        change = changes[name]
        holder = next(n for n in EUIS if EUIS[n] == after[name])
        assert change.action == "replace"
        assert change.claims == [pair(after[name])]
        assert change.releases == [pair(EUIS[name])]
        assert (
            f"{pair(after[name])} is freed first by the replacement (deleted first, registered "
            f"again later) of device app-a/{holder}" in change.reason
        ), change.reason
        (warning,) = change.warnings
        assert warning == (
            f"deleted before any registration (it frees {pair(EUIS[name])}) and registered "
            f"again only after device app-a/{holder} is deleted (it holds {pair(after[name])}): "
            "if that deletion fails, this one stays unregistered until the next apply"
        )
    text = "\n".join(line.plain for line in render_plan(run.plan))
    assert "registered again only after device app-a/" in text
    # Without --allow-replace it is blocked as every replacement is (sessions are lost).
    assert any("--allow-replace" in b for b in (await eng.plan(paths)).plan.blocked)

    run, report = await eng.apply(paths, allow_replace=True)
    assert not report.failed, [r.error for r in report.failed]
    assert sorted(r.key.id for r in report.results) == sorted(moved)  # one result each
    assert {r.outcome for r in report.results} == {"done"}
    assert await registered_euis(client, list(EUIS)) == {n: {e} for n, e in after.items()}
    assert not (await eng.plan(paths)).plan.has_changes()


class FailingDelete(httpx.AsyncBaseTransport):
    """The emulator, with the Identity Server's DELETE of one device failing as a server
    outage would (503): the other requests reach the emulator unchanged."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str) -> None:
        self.inner = inner
        self.path = path

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE" and request.url.path.endswith(self.path):
            return httpx.Response(503, json={"code": 14, "message": "unavailable"})
        return await self.inner.handle_async_request(request)


async def test_a_failed_deletion_in_a_swap_is_reported_and_the_next_apply_converges(
    eng: Engine,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    """The risk the plan states: `south` cannot be deleted, so `north` (deleted already) is not
    registered again; both say so, nothing else is touched, and the next apply finishes it."""
    await eng.apply([tree(tmp_path, EUIS)])
    swapped = {"north": EUIS["south"], "south": EUIS["north"], "east": EUIS["east"]}
    paths = [tree(tmp_path, swapped)]
    failing = Engine(
        FailingDelete(emulator_transport, "/applications/app-a/devices/south"), admin_api_key
    )
    _run, report = await failing.apply(paths, allow_replace=True, retries=0)
    outcomes = {r.key.id: (r.outcome, r.error) for r in report.results}
    assert outcomes["south"][0] == "failed"
    assert outcomes["north"] == (
        "failed",
        f"deleted, but not registered again: device app-a/south (holding {pair(EUIS['south'])}) "
        "was not deleted; the next apply registers it",
    )
    missing = await client.get("/applications/app-a/devices/north")
    assert missing.status_code == 404

    run = await eng.plan(paths, allow_replace=True)
    assert not run.plan.blocked, run.plan.blocked
    _run, report = await eng.apply(paths, allow_replace=True)
    assert not report.failed, [r.error for r in report.failed]
    assert await registered_euis(client, list(EUIS)) == {n: {e} for n, e in swapped.items()}


GATEWAY = """
kind: Gateway
id: {id}
eui: {eui}
frequency_plan_ids: [EU_863_870_TTN]
"""
GATEWAY_EUIS = {"gw-1": '"B827EBFFFE000001"', "gw-2": '"B827EBFFFE000002"'}


def gateways(directory: Path, euis: dict[str, str]) -> Path:
    files = {name: GATEWAY.format(id=name, eui=eui) for name, eui in euis.items()}
    return write_manifests(directory, stack=STACK, **files)


async def gateway_euis(client: httpx.AsyncClient) -> dict[str, str | None]:
    found = {}
    for name in GATEWAY_EUIS:
        response = await client.get(f"/gateways/{name}", params={"field_mask": "ids"})
        assert response.status_code == 200, response.text
        found[name] = response.json()["ids"].get("eui")
    return found


async def test_gateways_swapping_euis_are_blocked_with_the_two_step_way_out(
    eng: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A gateway's EUI changes by an update, and deleting a gateway keeps its EUI reserved: a
    cycle of gateway EUI changes cannot be applied in one go (unblocked, both updates failed
    with gateway_eui_taken). The plan says how to get there in two steps, and a chain (one
    gateway takes the EUI another gives up) is ordered."""
    await eng.apply([gateways(tmp_path, GATEWAY_EUIS)])
    swapped = {"gw-1": GATEWAY_EUIS["gw-2"], "gw-2": GATEWAY_EUIS["gw-1"]}
    run = await eng.plan([gateways(tmp_path, swapped)])
    assert run.plan.blocked == [
        f"gateway {a} needs gateway EUI B827EBFFFE00000{b[-1]}, held by "
        f"gateway {b}, which takes another EUI in this plan, in a cycle of EUI changes: the "
        "Identity Server keeps a gateway EUI unique and a deleted gateway keeps its EUI, so "
        f"apply in two steps: first remove the EUI of gateway {b} (`eui: null`) or give it one "
        "no gateway holds, then the EUIs you want"
        for a, b in (("gw-1", "gw-2"), ("gw-2", "gw-1"))
    ]
    # The way out: first one gateway gives its EUI up, then the rest is a chain, ordered.
    first = {"gw-1": GATEWAY_EUIS["gw-1"], "gw-2": "null"}
    run, report = await eng.apply([gateways(tmp_path, first)])
    assert not run.plan.blocked and not report.failed
    run = await eng.plan([gateways(tmp_path, swapped)])
    assert not run.plan.blocked, run.plan.blocked
    changes = {c.key.id: c for c in run.plan.changes}
    assert changes["gw-1"].releases == ["gateway EUI B827EBFFFE000001"]
    assert "gateway EUI B827EBFFFE000001 is given up first by gateway gw-1" in (
        changes["gw-2"].reason
    )
    for _attempt in range(3):  # ordered, not lucky: the update giving the EUI up goes first
        _run, report = await eng.apply([gateways(tmp_path, swapped)])
        assert not report.failed, [r.error for r in report.failed]
        assert await gateway_euis(client) == {
            "gw-1": "B827EBFFFE000002",
            "gw-2": "B827EBFFFE000001",
        }
        await eng.apply([gateways(tmp_path, first)])
