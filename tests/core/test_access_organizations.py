"""Organizations as a manifest kind: validate, plan, apply, drift and prune against the emulator;
applications and gateways created under a declared organization."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.manifest.load import load_manifests
from reconciler.plan.render import render_plan
from reconciler.providers.registry import MANIFEST_KINDS
from tests.core.support import STACK, Engine, step_summary, write_manifests

ORGANIZATION = """
kind: Organization
id: acme-farms
name: Acme farms
description: Orchards in the north
attributes: {region: north}
"""

OWNED_GATEWAY = """
kind: Gateway
id: acme-gw
eui: "B827EBFFFE8B0A01"
frequency_plan_ids: [EU_863_870_TTN]
owner: {organization: acme-farms}
"""


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key)


def _text(run: object) -> str:
    return "\n".join(line.plain for line in render_plan(run.plan))  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_organization_lifecycle_with_an_owned_gateway(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [write_manifests(tmp_path, stack=STACK, org=ORGANIZATION, gateway=OWNED_GATEWAY)]
    run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    summary = step_summary(run)
    assert summary["organization acme-farms"] == [
        ("is", "create", ["attributes", "description", "name"])
    ]
    # The gateway is created under the organization, after it.
    order = [str(c.key) for c in run.plan.changes]
    assert order.index("organization acme-farms") < order.index("gateway acme-gw")
    org = (await client.get("/organizations/acme-farms?field_mask=name,attributes")).json()
    assert org["name"] == "Acme farms"
    assert org["attributes"] == {"region": "north", "managed-by": "site-a"}
    by_org = (await client.get("/organizations/acme-farms/gateways")).json()
    assert [g["ids"]["gateway_id"] for g in by_org["gateways"]] == ["acme-gw"]

    again = await eng.plan(paths)
    assert not again.plan.changes

    # Drift: renamed in the Console, repaired by apply.
    response = await client.put(
        "/organizations/acme-farms",
        json={"organization": {"name": "Console name"}, "field_mask": {"paths": ["name"]}},
    )
    assert response.status_code == 200, response.text
    drift = await eng.plan(paths)
    change = next(c for c in drift.plan.changes if c.key.kind == "organization")
    assert change.action == "update"
    assert [(s.operation, s.paths) for s in change.steps] == [("update", ["name"])]
    _run, report = await eng.apply(paths)
    assert not report.failed

    # Prune: the organization leaves the manifests (with its gateway); the delete is soft.
    write_manifests(tmp_path, org="", gateway="")
    (tmp_path / "org.yaml").unlink()
    (tmp_path / "gateway.yaml").unlink()
    kept = await eng.plan(paths)
    assert {str(o.key) for o in kept.plan.orphans} == {"organization acme-farms", "gateway acme-gw"}
    pruned = await eng.plan(paths, prune=True)
    org_delete = next(c for c in pruned.plan.changes if c.key.kind == "organization")
    assert "the ID stays reserved" in org_delete.steps[0].verb
    assert "the ID stays reserved until an admin purges it" in _text(pruned)
    order = [str(c.key) for c in pruned.plan.changes]
    assert order.index("gateway acme-gw") < order.index("organization acme-farms")
    _run, report = await eng.apply(paths, prune=True)
    assert not report.failed, report.failed
    gone = await client.get("/organizations/acme-farms")
    assert gone.status_code == 404
    # Reserved: creating it again is refused until an admin purges it.
    again_create = await client.post(
        "/users/admin-user/organizations",
        json={"organization": {"ids": {"organization_id": "acme-farms"}}},
    )
    assert again_create.status_code == 409

    # Declared again: restored (its ID is reserved), then as declared.
    write_manifests(tmp_path, org=ORGANIZATION)
    back = await eng.plan(paths)
    (restore,) = [c for c in back.plan.changes if c.key.kind == "organization"]
    assert restore.restore
    assert restore.steps[0].operation == "restore"
    _run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    org = (await client.get("/organizations/acme-farms?field_mask=name")).json()
    assert org["name"] == "Acme farms"
    assert not (await eng.plan(paths)).plan.changes


@pytest.mark.asyncio
async def test_prune_spares_organizations_this_stack_does_not_own(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/users/admin-user/organizations",
        json={"organization": {"ids": {"organization_id": "someone-else"}}},
    )
    assert response.status_code == 200
    paths = [write_manifests(tmp_path, stack=STACK, org=ORGANIZATION)]
    _run, report = await eng.apply(paths)
    assert not report.failed
    run = await eng.plan(paths, prune=True)
    assert not run.plan.changes
    assert (await client.get("/organizations/someone-else")).status_code == 200


def test_organization_errors_are_located(tmp_path: Path) -> None:
    write_manifests(
        tmp_path,
        stack=STACK,
        org=ORGANIZATION + "owner: {organization: other}\n",
        zdup=ORGANIZATION.replace("name: Acme farms", "name: again"),
        bad="kind: Organization\nid: Bad_ID\nname: x\n",
    )
    result = load_manifests([tmp_path], kinds=MANIFEST_KINDS, environ={})
    messages = sorted(f"{d.location.file}:{d.location.line}: {d.message}" for d in result.errors)
    assert any(
        "org.yaml:6: organization `acme-farms` must be created under a user" in m for m in messages
    ), messages
    assert any("duplicate organization `acme-farms`" in m for m in messages), messages
    assert any("bad.yaml:2:" in m for m in messages), messages
