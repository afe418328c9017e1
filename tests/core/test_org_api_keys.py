"""Organization API keys, managed as application and gateway keys are: by name, rights (the
organization's own and the application, gateway and client rights it holds) and expiry; the
secret only to the key's sink; rights updated in place; undeclared keys pruned in an owned
organization; the emulator's routes publish `organization.api-key.*` events."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.manifest.load import load_manifests
from reconciler.plan.markdown import render_markdown
from reconciler.plan.render import render_plan
from reconciler.providers.registry import MANIFEST_KINDS
from tests.core.support import STACK, Engine, write_manifests
from tests.core.test_request_audit import Recorder, audit
from tests.shared_data import needs_shared

ORGANIZATION = """
kind: Organization
id: acme-farms
name: Acme farms
api_keys:
  - name: fleet-ops
    rights: [RIGHT_ORGANIZATION_INFO, RIGHT_APPLICATION_ALL]
    deliver: {file: secrets/acme-fleet-ops.key}
"""


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key)


async def keys_of(client: httpx.AsyncClient, org: str) -> list[dict[str, Any]]:
    response = await client.get(f"/organizations/{org}/api-keys")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json().get("api_keys", [])
    return found


def event_names(emulator_app: Any, org: str) -> list[str]:
    bus = emulator_app.state.emulator.events
    kept = bus.entities.get(next(k for k in bus.entities if org in k), [])
    return [event["name"] for _, event in kept]


def every_output(run: Any) -> str:
    plan = run.plan
    text = "\n".join(line.plain for line in render_plan(plan, full=True))
    return "\n".join([text, plan.dumps(), render_markdown(plan)])


@pytest.mark.asyncio
async def test_an_organization_key_is_created_delivered_updated_and_pruned(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient, emulator_app: Any
) -> None:
    paths = [write_manifests(tmp_path, stack=STACK, org=ORGANIZATION)]
    run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    change = next(c for c in run.plan.changes if c.key.kind == "api_key")
    assert str(change.key) == "api_key organization/acme-farms/fleet-ops"
    assert change.action == "create"
    order = [str(c.key) for c in run.plan.changes]
    assert order.index("organization acme-farms") < order.index(str(change.key))

    sink = tmp_path / "secrets" / "acme-fleet-ops.key"
    assert stat.S_IMODE(os.stat(sink).st_mode) == 0o600
    secret = sink.read_text().strip()
    info = await client.get("/auth_info", headers={"Authorization": f"Bearer {secret}"})
    assert info.status_code == 200, info.text
    held = info.json()["api_key"]
    assert held["entity_ids"] == {"organization_ids": {"organization_id": "acme-farms"}}
    assert sorted(held["api_key"]["rights"]) == ["RIGHT_APPLICATION_ALL", "RIGHT_ORGANIZATION_INFO"]
    assert secret.split(".")[2] not in every_output(run)
    assert "organization.api-key.create" in event_names(emulator_app, "acme-farms")
    assert not (await eng.plan(paths)).plan.changes

    # Rights changed in the manifests: updated in place, the same key (and secret) stays.
    (before,) = await keys_of(client, "acme-farms")
    (tmp_path / "org.yaml").write_text(
        ORGANIZATION.replace("RIGHT_APPLICATION_ALL", "RIGHT_GATEWAY_ALL").lstrip()
    )
    run = await eng.plan(paths)
    (change,) = run.plan.changes
    assert change.action == "update"
    assert [(s.operation, s.paths) for s in change.steps] == [("update", ["rights"])]
    _run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    (after,) = await keys_of(client, "acme-farms")
    assert after["id"] == before["id"]
    assert sorted(after["rights"]) == ["RIGHT_GATEWAY_ALL", "RIGHT_ORGANIZATION_INFO"]
    assert "organization.api-key.update" in event_names(emulator_app, "acme-farms")

    # A key added by hand to the owned organization is an orphan, deleted with --prune.
    response = await client.post(
        "/organizations/acme-farms/api-keys",
        json={"name": "console", "rights": ["RIGHT_ORGANIZATION_INFO"]},
    )
    assert response.status_code == 200, response.text
    run = await eng.plan(paths)
    assert [str(o.key) for o in run.plan.orphans] == ["api_key organization/acme-farms/console"]
    _run, report = await eng.apply(paths, prune=True)
    assert not report.failed, report.failed
    assert [k["name"] for k in await keys_of(client, "acme-farms")] == ["fleet-ops"]
    assert "organization.api-key.delete" in event_names(emulator_app, "acme-farms")


def test_an_organization_key_may_hold_only_rights_an_organization_can_hold(
    tmp_path: Path,
) -> None:
    write_manifests(
        tmp_path,
        stack=STACK,
        org=ORGANIZATION.replace("RIGHT_APPLICATION_ALL", "RIGHT_USER_INFO"),
    )
    result = load_manifests([tmp_path], kinds=MANIFEST_KINDS, environ={})
    found = [(Path(d.location.file).name, d.location.line, d.message) for d in result.errors]
    assert found == [
        (
            "org.yaml",
            6,
            "RIGHT_USER_INFO is not a right of organizations (expected RIGHT_ORGANIZATION_* or "
            "RIGHT_APPLICATION_* or RIGHT_GATEWAY_* or RIGHT_CLIENT_*)",
        )
    ], json.dumps(found)


@needs_shared
@pytest.mark.asyncio
async def test_organization_key_requests_match_the_real_routes(
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
    tmp_path: Path,
    client: httpx.AsyncClient,
) -> None:
    """Create, update in place, rotate now, prune and delete: every request the real server
    would accept (the request audit over ../shared)."""
    recorder = Recorder(emulator_transport)
    eng = Engine(recorder, admin_api_key)
    paths = [write_manifests(tmp_path, stack=STACK, org=ORGANIZATION)]
    for step in (
        {},
        {"org": ORGANIZATION.replace("RIGHT_APPLICATION_ALL", "RIGHT_GATEWAY_ALL")},
        {"rotate": ("api_key/organization/acme-farms/fleet-ops",)},
        # An empty list: every key of the owned organization is pruned.
        {"org": ORGANIZATION.split("api_keys:", maxsplit=1)[0] + "api_keys: []\n", "prune": True},
    ):
        if "org" in step:
            write_manifests(tmp_path, org=str(step["org"]))
        options = {k: v for k, v in step.items() if k != "org"}
        _run, report = await eng.apply(paths, **options)
        assert not report.failed, report.failed
    assert await keys_of(client, "acme-farms") == []
    problems, seen = audit(recorder.requests)
    assert not problems, "\n".join(sorted(set(problems)))
    assert {
        "OrganizationAccess/CreateAPIKey",
        "OrganizationAccess/UpdateAPIKey",
        "OrganizationAccess/ListAPIKeys",
        "OrganizationAccess/DeleteAPIKey",
    } <= seen
