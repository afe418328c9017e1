"""Collaborators of applications, gateways and organizations as declared lists: create, update,
drift, prune (only in owned entities, never the owner), and the tool's own access is never
removed or reduced (the plan is refused)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.core.support import STACK, Engine, write_manifests

ORGANIZATION = """
kind: Organization
id: acme-farms
collaborators:
  - user: alice
    rights: [RIGHT_ORGANIZATION_INFO, RIGHT_APPLICATION_ALL]
"""

APPLICATION = """
kind: Application
id: orchard-app
collaborators:
  - user: alice
    rights: [RIGHT_APPLICATION_INFO]
  - organization: acme-farms
    rights: [RIGHT_APPLICATION_ALL]
"""

GATEWAY = """
kind: Gateway
id: barn-gw
eui: "B827EBFFFE8B0201"
frequency_plan_ids: [EU_863_870_TTN]
collaborators:
  - user: alice
    rights: [GATEWAY_INFO, GATEWAY_LINK]
"""


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key)


async def create_users(client: httpx.AsyncClient, *names: str) -> None:
    for name in names:
        user = {
            "ids": {"user_id": name},
            "primary_email_address": f"{name}@example.com",
            "password": "correct-horse-battery-staple-1",
        }
        response = await client.post("/users", json={"user": user})
        assert response.status_code == 200, response.text


async def collaborators(client: httpx.AsyncClient, path: str) -> dict[str, list[str]]:
    response = await client.get(f"{path}/collaborators")
    assert response.status_code == 200, response.text
    found: dict[str, list[str]] = {}
    for item in response.json().get("collaborators", []):
        ids: dict[str, Any] = item["ids"]
        kind = "user" if "user_ids" in ids else "organization"
        found[f"{kind}:{ids[f'{kind}_ids'][f'{kind}_id']}"] = sorted(item["rights"])
    return found


async def set_collaborator(
    client: httpx.AsyncClient, path: str, user: str, rights: list[str]
) -> None:
    response = await client.put(
        f"{path}/collaborators",
        json={"collaborator": {"ids": {"user_ids": {"user_id": user}}, "rights": rights}},
    )
    assert response.status_code == 200, response.text


def site(directory: Path, **files: str) -> list[Path]:
    base = {"stack": STACK, "org": ORGANIZATION, "application": APPLICATION, "gateway": GATEWAY}
    write_manifests(directory, **{**base, **files})
    return [directory]


@pytest.mark.asyncio
async def test_declared_collaborators_are_set_and_drift_is_repaired(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    await create_users(client, "alice")
    paths = site(tmp_path)
    run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    created = {str(c.key): c.action for c in run.plan.changes if c.key.kind == "collaborator"}
    assert created == {
        "collaborator organization/acme-farms/user/alice": "create",
        "collaborator application/orchard-app/user/alice": "create",
        "collaborator application/orchard-app/organization/acme-farms": "create",
        "collaborator gateway/barn-gw/user/alice": "create",
    }
    assert await collaborators(client, "/applications/orchard-app") == {
        "user:admin-user": ["RIGHT_APPLICATION_ALL"],  # the owner it was created under stays
        "user:alice": ["RIGHT_APPLICATION_INFO"],
        "organization:acme-farms": ["RIGHT_APPLICATION_ALL"],
    }
    assert (await collaborators(client, "/gateways/barn-gw"))["user:alice"] == [
        "RIGHT_GATEWAY_INFO",
        "RIGHT_GATEWAY_LINK",
    ]
    members = await collaborators(client, "/organizations/acme-farms")
    assert members["user:alice"] == ["RIGHT_APPLICATION_ALL", "RIGHT_ORGANIZATION_INFO"]
    again = await eng.plan(paths)
    assert not again.plan.changes and not again.plan.orphans

    await set_collaborator(client, "/gateways/barn-gw", "alice", ["RIGHT_GATEWAY_ALL"])
    drift = await eng.plan(paths)
    (change,) = drift.plan.changes
    assert str(change.key) == "collaborator gateway/barn-gw/user/alice"
    assert change.steps[0].changes[0].old == ["RIGHT_GATEWAY_ALL"]
    _run, report = await eng.apply(paths)
    assert not report.failed
    assert not (await eng.plan(paths)).plan.changes


@pytest.mark.asyncio
async def test_prune_removes_undeclared_collaborators_of_owned_entities(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    await create_users(client, "alice", "bob")
    paths = site(tmp_path)
    _run, report = await eng.apply(paths)
    assert not report.failed
    for path in ("/applications/orchard-app", "/gateways/barn-gw", "/organizations/acme-farms"):
        rights = {
            "/applications/orchard-app": ["RIGHT_APPLICATION_INFO"],
            "/gateways/barn-gw": ["RIGHT_GATEWAY_INFO"],
            "/organizations/acme-farms": ["RIGHT_ORGANIZATION_INFO"],
        }[path]
        await set_collaborator(client, path, "bob", rights)
    kept = await eng.plan(paths)
    assert sorted(str(o.key) for o in kept.plan.orphans) == [
        "collaborator application/orchard-app/user/bob",
        "collaborator gateway/barn-gw/user/bob",
        "collaborator organization/acme-farms/user/bob",
    ]
    # The same list, with the application's list no longer declared: left alone.
    site(tmp_path, application=APPLICATION.split("collaborators:", maxsplit=1)[0])
    _run, report = await eng.apply(paths, prune=True)
    assert not report.failed, report.failed
    assert "user:bob" in await collaborators(client, "/applications/orchard-app")
    assert "user:bob" not in await collaborators(client, "/gateways/barn-gw")  # plural route
    assert "user:bob" not in await collaborators(client, "/organizations/acme-farms")
    site(tmp_path)
    _run, report = await eng.apply(paths, prune=True)
    assert not report.failed, report.failed
    # The application's route is singular: /applications/{id}/collaborator/user/{id}.
    assert "user:bob" not in await collaborators(client, "/applications/orchard-app")


@pytest.mark.asyncio
async def test_the_tools_own_access_is_never_removed_or_reduced(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    await create_users(client, "alice")
    reduced = APPLICATION + "  - user: admin-user\n    rights: [RIGHT_APPLICATION_INFO]\n"
    paths = site(tmp_path)
    _run, report = await eng.apply(paths)
    assert not report.failed
    site(tmp_path, application=reduced)
    run = await eng.plan(paths)
    assert any(
        "collaborator application/orchard-app/user/admin-user" in b and "tool's own access" in b
        for b in run.plan.blocked
    ), run.plan.blocked
    # An application owned by the organization: the tool's user, added by hand, is not its
    # owner, so pruning it would remove the tool's access: refused.
    owned_by_org = APPLICATION.replace(
        "id: orchard-app", "id: org-app\nowner: {organization: acme-farms}"
    )
    site(tmp_path, application=owned_by_org)
    _run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    await set_collaborator(client, "/applications/org-app", "admin-user", ["RIGHT_APPLICATION_ALL"])
    run = await eng.plan(paths, prune=True)
    assert any(
        "collaborator application/org-app/user/admin-user" in b and "tool's own access" in b
        for b in run.plan.blocked
    ), run.plan.blocked


def test_collaborator_declarations_are_checked_where_they_are(tmp_path: Path) -> None:
    from reconciler.manifest.load import load_manifests
    from reconciler.providers.registry import MANIFEST_KINDS

    write_manifests(
        tmp_path,
        stack=STACK,
        org="""
kind: Organization
id: acme-farms
collaborators:
  - organization: other-org
    rights: [RIGHT_ORGANIZATION_INFO]
""",
        application="""
kind: Application
id: orchard-app
collaborators:
  - user: alice
    rights: [RIGHT_GATEWAY_INFO]
  - user: bob
    rights: [RIGHT_APPLICATION_INFO]
  - user: bob
    rights: [RIGHT_APPLICATION_ALL]
""",
        gateway="""
kind: Gateway
id: barn-gw
collaborators:
  - user: alice
    organization: acme-farms
    rights: [RIGHT_GATEWAY_INFO]
  - user: carol
    rights: [NOT_A_RIGHT]
""",
    )
    result = load_manifests([tmp_path], kinds=MANIFEST_KINDS, environ={})
    found = sorted((Path(d.location.file).name, d.location.line, d.message) for d in result.errors)
    text = "\n".join(map(str, found))
    assert any(
        f == "org.yaml" and line == 4 and "collaborators are users" in m for f, line, m in found
    ), text
    assert any(
        f == "application.yaml" and line == 5 and "is not a right of applications" in m
        for f, line, m in found
    ), text
    assert any(
        f == "application.yaml" and line == 8 and "duplicate collaborator user `bob`" in m
        for f, line, m in found
    ), text
    assert any(f == "gateway.yaml" and "exactly one of `user`" in m for f, _, m in found), text
    assert any(f == "gateway.yaml" and "unknown right" in m for f, _, m in found), text
