"""Renames and moves in one apply (issue 12, defect 3): a device moved to another application
keeps its EUI pair, so its deletion must run before its creation; an application or gateway
ID that was soft-deleted stays reserved, so it is planned as a restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import engine
from reconciler.plan.markdown import render_markdown
from reconciler.plan.render import render_plan
from tests.core.support import STACK, Engine, write_manifests

pytestmark = pytest.mark.asyncio

APP = """
kind: Application
id: {app}
name: {app}
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  lorawan_version: 1.0.3
  lorawan_phy_version: 1.0.3-a
  join_eui: "70B3D57ED0000000"
"""

DEVICE = """
kind: Device
application: {app}
id: mover
dev_eui: "70B3D57ED00000A1"
app_key: {{env: OTAA_103_APP_KEY}}
"""

GATEWAY = """
kind: Gateway
id: {gateway}
eui: "B827EBFFFE000001"
frequency_plan_ids: [EU_863_870_TTN]
"""


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key)


def tree(directory: Path, device_app: str, apps: tuple[str, ...] = ("app-a", "app-b")) -> Path:
    files = {f"app_{a}": APP.format(app=a) for a in apps}
    return write_manifests(directory, stack=STACK, device=DEVICE.format(app=device_app), **files)


async def test_device_moved_between_applications_in_one_apply(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    _run, report = await eng.apply([tree(tmp_path, "app-a")])
    assert not report.failed, report.failed
    moved = [tree(tmp_path, "app-b")]
    run = await eng.plan(moved, prune=True)
    changes = {str(c.key): c for c in run.plan.changes}
    create = changes["device app-b/mover"]
    delete = changes["device app-a/mover"]
    assert (create.action, delete.action) == ("create", "delete")
    assert create.claims == delete.releases == ["EUI pair 70B3D57ED0000000/70B3D57ED00000A1"]
    assert "freed first by deleting device app-a/mover" in create.reason
    assert not run.plan.blocked
    _run, report = await eng.apply(moved, prune=True)
    assert not report.failed, [r.error for r in report.failed]
    assert (await client.get("/applications/app-a/devices/mover")).status_code == 404
    for server in ("", "/ns", "/as", "/js"):
        found = await client.get(f"{server}/applications/app-b/devices/mover")
        assert found.status_code == 200, (server, found.text)
    assert not (await eng.plan(moved, prune=True)).plan.has_changes()


async def test_device_move_without_prune_is_blocked_with_the_remedy(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    await eng.apply([tree(tmp_path, "app-a")])
    run = await eng.plan([tree(tmp_path, "app-b")])
    assert run.plan.blocked == [
        "device app-b/mover needs EUI pair 70B3D57ED0000000/70B3D57ED00000A1, held by device "
        "app-a/mover, which this stack owns and the manifests no longer declare: apply with "
        "--prune to delete it first (in the same apply)"
    ]
    with pytest.raises(engine.PlanBlocked):
        engine.needs_confirmation(run.plan, saved=False, auto_approve=True, interactive=False)


async def test_device_needing_the_euis_of_an_unmanaged_device_is_blocked(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    await eng.apply([tree(tmp_path, "app-a", apps=("app-a",))])
    squatter = await client.post(
        "/applications/app-a/devices",
        json={
            "end_device": {
                "ids": {
                    "device_id": "squatter",
                    "dev_eui": "70B3D57ED00000B2",
                    "join_eui": "70B3D57ED0000000",
                }
            }
        },
    )
    assert squatter.status_code == 200, squatter.text
    (tmp_path / "device.yaml").write_text(
        DEVICE.format(app="app-a").replace("mover", "second").replace("A1", "B2"),
        encoding="utf-8",
    )
    run = await eng.plan([tmp_path])
    assert run.plan.blocked == [
        "device app-a/second needs EUI pair 70B3D57ED0000000/70B3D57ED00000B2, held by device "
        "app-a/squatter, which this stack does not manage: free it there first, or change the "
        "manifests"
    ]


async def soft_delete(client: httpx.AsyncClient, path: str) -> None:
    response = await client.delete(path)
    assert response.status_code == 200, response.text


async def test_soft_deleted_application_and_gateway_are_restored(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [
        write_manifests(
            tmp_path,
            stack=STACK,
            app=APP.format(app="app-a").replace("name: app-a", "name: First"),
            gateway=GATEWAY.format(gateway="gw-1"),
        )
    ]
    _run, report = await eng.apply(paths)
    assert not report.failed
    await soft_delete(client, "/applications/app-a")
    await soft_delete(client, "/gateways/gw-1")
    (tmp_path / "app.yaml").write_text(APP.format(app="app-a"), encoding="utf-8")
    run = await eng.plan(paths)
    changes = {str(c.key): c for c in run.plan.changes}
    app, gateway = changes["application app-a"], changes["gateway gw-1"]
    for change in (app, gateway):
        assert change.action == "create"
        assert change.restore
        assert "soft-deleted at 20" in change.reason and "keeps its ID reserved" in change.reason
        assert change.steps[0].operation == "restore"
        assert change.to_json()["restore"] is True
    # Restored as it was, then the fields that differ are updated.
    assert [(s.operation, s.paths) for s in app.steps] == [("restore", []), ("update", ["name"])]
    assert app.reason.endswith(": restored, then updated where the manifests differ")
    assert [s.operation for s in gateway.steps] == ["restore"]
    assert gateway.reason.endswith(": restored")
    assert run.plan.summary()["restore"] == 2
    # Visible as a restore in every rendering.
    text = [line.plain for line in render_plan(run.plan)]
    assert any(line.startswith("  + application app-a  (restore)  # soft-deleted") for line in text)
    assert "      IS restore" in text
    assert "; 2 restored." in text[-1]
    markdown = render_markdown(run.plan)
    assert "| + create (restore) | <code>gateway gw-1</code> |" in markdown
    assert "2 restored." in markdown
    _run, report = await eng.apply(paths)
    assert not report.failed, [r.error for r in report.failed]
    app_now = await client.get("/applications/app-a", params={"field_mask": "name"})
    assert app_now.json()["name"] == "app-a"
    assert (await client.get("/gateways/gw-1")).status_code == 200
    assert not (await eng.plan(paths)).plan.has_changes()


async def test_soft_deleted_unowned_application_is_restored_and_adopted(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/users/admin-user/applications",
        json={"application": {"ids": {"application_id": "app-a"}, "attributes": {"room": "7"}}},
    )
    assert created.status_code == 200, created.text
    await soft_delete(client, "/applications/app-a")
    paths = [write_manifests(tmp_path, stack=STACK, app=APP.format(app="app-a"))]
    run = await eng.plan(paths)
    change = run.plan.changes[0]
    assert change.restore and change.adopt
    assert [s.operation for s in change.steps] == ["restore", "update"]
    _run, report = await eng.apply(paths)
    assert not report.failed, [r.error for r in report.failed]
    now = await client.get("/applications/app-a", params={"field_mask": "attributes"})
    # The Console's attribute survives; the stack's marker is added.
    assert now.json()["attributes"] == {"room": "7", "managed-by": "site-a"}


async def test_gateway_needing_the_eui_of_a_soft_deleted_gateway_is_blocked(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [write_manifests(tmp_path, stack=STACK, gateway=GATEWAY.format(gateway="gw-old"))]
    await eng.apply(paths)
    await soft_delete(client, "/gateways/gw-old")
    write_manifests(tmp_path, gateway=GATEWAY.format(gateway="gw-new"))
    run = await eng.plan(paths)
    assert run.plan.blocked == [
        "gateway gw-new needs gateway EUI B827EBFFFE000001, held by gateway gw-old, "
        "soft-deleted, which keeps its EUI reserved: an admin can purge it "
        "(DELETE /api/v3/gateways/gw-old/purge), or declare it again under its own ID (it is "
        "then restored)"
    ]


async def test_application_deleted_beyond_the_restore_window_is_blocked_with_the_remedy(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient, emulator_app: Any
) -> None:
    paths = [write_manifests(tmp_path, stack=STACK, app=APP.format(app="app-a"))]
    await eng.apply(paths)
    await soft_delete(client, "/applications/app-a")
    # Two days pass (the emulator's clock cannot be moved: its record is aged instead).
    table = emulator_app.state.emulator.store.applications
    record = table.get("app-a")
    record["application"]["deleted_at"] = "2020-01-01T00:00:00Z"
    table.put("app-a", record)
    run = await eng.plan(paths)
    assert run.plan.blocked == [
        "application app-a cannot be created: application app-a was deleted at "
        "2020-01-01T00:00:00Z, more than 24 hours ago (the servers' default restore window), "
        "and its ID stays reserved: an admin can purge it (DELETE "
        "/api/v3/applications/app-a/purge) to free the ID, or declare it under another ID"
    ]
    assert not run.plan.changes[0].restore
