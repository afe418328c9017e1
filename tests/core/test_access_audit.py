"""Every request the tool sends for organizations, API keys and collaborators would be accepted
by the real TTS: routes, field masks and bodies checked against ../shared (the request audit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.core.support import STACK, Engine, write_manifests
from tests.core.test_request_audit import Recorder, audit
from tests.shared_data import needs_shared

pytestmark = [pytest.mark.asyncio, needs_shared]

MANIFESTS = {
    "stack": STACK,
    "org": """
kind: Organization
id: acme-farms
name: Acme
collaborators:
  - user: alice
    rights: [RIGHT_ORGANIZATION_INFO]
""",
    "application": """
kind: Application
id: orchard-app
owner: {organization: acme-farms}
api_keys:
  - name: integration
    rights: [RIGHT_APPLICATION_INFO]
    deliver: {file: secrets/app.key}
collaborators:
  - user: alice
    rights: [RIGHT_APPLICATION_INFO]
""",
    "gateway": """
kind: Gateway
id: barn-gw
frequency_plan_ids: [EU_863_870_TTN]
api_keys:
  - name: link
    rights: [RIGHT_GATEWAY_LINK]
    deliver: {file: secrets/gw.key}
collaborators:
  - user: alice
    rights: [RIGHT_GATEWAY_INFO]
""",
}


async def test_access_requests_match_the_real_routes_and_masks(
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
    tmp_path: Path,
    emulator_app: Any,
) -> None:
    recorder = Recorder(emulator_transport)
    eng = Engine(recorder, admin_api_key)
    async with httpx.AsyncClient(
        transport=emulator_transport,
        base_url="http://emulator.test/api/v3",
        headers={"Authorization": f"Bearer {admin_api_key}"},
    ) as client:
        for user in ("alice", "bob"):
            response = await client.post(
                "/users",
                json={
                    "user": {
                        "ids": {"user_id": user},
                        "primary_email_address": f"{user}@example.com",
                        "password": "correct-horse-battery-staple-1",
                    }
                },
            )
            assert response.status_code == 200
        paths = [write_manifests(tmp_path, **MANIFESTS)]
        _run, report = await eng.apply(paths)
        assert not report.failed, report.failed
        # Updates: names, rights, expiry; a rotation; extra keys and collaborators to prune.
        changed = {
            "org": MANIFESTS["org"].replace("name: Acme", "name: Acme farms"),
            "application": MANIFESTS["application"]
            .replace(
                "rights: [RIGHT_APPLICATION_INFO]\n    deliver",
                "rights: [RIGHT_APPLICATION_INFO, RIGHT_APPLICATION_TRAFFIC_READ]\n"
                "    expires_at: 2099-01-01T00:00:00Z\n    deliver",
            )
            .replace("rights: [RIGHT_APPLICATION_INFO]\n", "rights: [RIGHT_APPLICATION_ALL]\n"),
            "gateway": MANIFESTS["gateway"].replace(
                "    deliver: {file: secrets/gw.key}",
                "    rotate_after_days: 1\n    deliver: {file: secrets/gw.key}",
            ),
        }
        write_manifests(tmp_path, **changed)
        store = emulator_app.state.emulator.store
        for key_id, record in list(store.api_keys.items()):
            if record["entity"] == "gateway":
                record["api_key"]["created_at"] = "2000-01-01T00:00:00Z"
                store.api_keys.put(key_id, record)
        for path, right in (
            ("/applications/orchard-app", "RIGHT_APPLICATION_INFO"),
            ("/gateways/barn-gw", "RIGHT_GATEWAY_INFO"),
            ("/organizations/acme-farms", "RIGHT_ORGANIZATION_INFO"),
        ):
            member = {"ids": {"user_ids": {"user_id": "bob"}}, "rights": [right]}
            response = await client.put(f"{path}/collaborators", json={"collaborator": member})
            assert response.status_code == 200
            if not path.startswith("/organizations"):
                response = await client.post(
                    f"{path}/api-keys", json={"name": "console", "rights": [right]}
                )
                assert response.status_code == 200
        _run, report = await eng.apply(paths, prune=True)
        assert not report.failed, report.failed
        # Everything leaves the manifests: deletes of owned entities, keys and collaborators.
        for name in ("org", "application", "gateway"):
            (tmp_path / f"{name}.yaml").unlink()
        _run, report = await eng.apply(paths, prune=True)
        assert not report.failed, report.failed

    problems, seen = audit(recorder.requests)
    assert not problems, "\n".join(sorted(set(problems)))
    assert {
        "OrganizationRegistry/Create",
        "OrganizationRegistry/Update",
        "OrganizationRegistry/List",
        "OrganizationRegistry/Delete",
        "OrganizationAccess/ListCollaborators",
        "OrganizationAccess/SetCollaborator",
        "OrganizationAccess/DeleteCollaborator",
        "ApplicationAccess/CreateAPIKey",
        "ApplicationAccess/UpdateAPIKey",
        "ApplicationAccess/DeleteAPIKey",
        "ApplicationAccess/ListAPIKeys",
        "ApplicationAccess/SetCollaborator",
        "ApplicationAccess/DeleteCollaborator",
        "GatewayAccess/CreateAPIKey",
        "GatewayAccess/DeleteAPIKey",
        "GatewayAccess/SetCollaborator",
        "GatewayAccess/DeleteCollaborator",
        "ApplicationRegistry/Create",
    } <= seen, sorted(seen)
