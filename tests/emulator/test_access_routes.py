"""Organizations (update, list), organization collaborators, and the events of collaborator and
API key changes, as the real Identity Server has them (routes from api-definition.json:
`PUT /organizations/{id}`, `GET /organizations`, `/organizations/{id}/collaborators`, the plural
`DELETE /organizations/{id}/collaborators/user/{usr}`)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import ServedEmulator
from tests.emulator.support import (
    INVALID_ARGUMENT,
    NOT_FOUND,
    PERMISSION_DENIED,
    TtsApi,
    expect_error,
    expect_ok,
)


@pytest.mark.asyncio
async def test_organization_update_masks_and_list(client: httpx.AsyncClient, tts: TtsApi) -> None:
    await tts.create_organization("org-one")
    await tts.create_organization("org-two")
    updated = expect_ok(
        await client.put(
            "/organizations/org-one",
            json={
                "organization": {"name": "Org One", "attributes": {"site": "north"}},
                "field_mask": {"paths": ["name", "attributes"]},
            },
        )
    )
    assert updated["name"] == "Org One"
    got = expect_ok(await client.get("/organizations/org-one?field_mask=name,attributes"))
    assert got["attributes"] == {"site": "north"}
    # A path outside OrganizationRegistry/Update's allow-list is refused by the validator.
    expect_error(
        await client.put(
            "/organizations/org-one",
            json={"organization": {}, "field_mask": {"paths": ["secret_field"]}},
        ),
        code=INVALID_ARGUMENT,
        name="field_mask_paths",
    )
    # Validation of the masked fields (name <= 50 characters).
    expect_error(
        await client.put(
            "/organizations/org-one",
            json={"organization": {"name": "x" * 51}, "field_mask": {"paths": ["name"]}},
        ),
        code=INVALID_ARGUMENT,
        name="validation",
    )
    listed = await client.get("/organizations?field_mask=name&order=-organization_id&limit=1")
    body = expect_ok(listed)
    assert listed.headers["X-Total-Count"] == "2"
    assert [o["ids"]["organization_id"] for o in body["organizations"]] == ["org-two"]
    expect_ok(await client.delete("/organizations/org-two"))
    live = expect_ok(await client.get("/organizations"))
    assert [o["ids"]["organization_id"] for o in live["organizations"]] == ["org-one"]
    deleted = expect_ok(await client.get("/organizations?deleted=true"))
    assert [o["ids"]["organization_id"] for o in deleted["organizations"]] == ["org-two"]
    by_member = expect_ok(await client.get(f"/users/{tts.admin_user}/organizations"))
    assert [o["ids"]["organization_id"] for o in by_member["organizations"]] == ["org-one"]
    # Restore (within the window), then an admin's purge frees the ID.
    expect_ok(await client.post("/organizations/org-two/restore"))
    expect_ok(await client.get("/organizations/org-two"))
    expect_ok(await client.delete("/organizations/org-two"))
    expect_ok(await client.delete("/organizations/org-two/purge"))
    expect_error(
        await client.post("/organizations/org-two/restore"),
        code=NOT_FOUND,
        name="organization_not_found",
    )
    await tts.create_organization("org-two")


@pytest.mark.asyncio
async def test_organization_collaborators_are_users_with_rights(
    client: httpx.AsyncClient, tts: TtsApi
) -> None:
    await tts.create_organization("org-one")
    await tts.create_user("alice")
    member = {"ids": {"user_ids": {"user_id": "alice"}}, "rights": ["RIGHT_ORGANIZATION_INFO"]}
    expect_ok(
        await client.put("/organizations/org-one/collaborators", json={"collaborator": member})
    )
    got = expect_ok(await client.get("/organizations/org-one/collaborator/user/alice"))
    assert got["rights"] == ["RIGHT_ORGANIZATION_INFO"]
    listed = expect_ok(await client.get("/organizations/org-one/collaborators"))
    ids = sorted(c["ids"]["user_ids"]["user_id"] for c in listed["collaborators"])
    assert ids == ["admin-user", "alice"]
    # An organization cannot be a member of an organization.
    await tts.create_organization("org-two")
    nested = await client.put(
        "/organizations/org-one/collaborators",
        json={
            "collaborator": {
                "ids": {"organization_ids": {"organization_id": "org-two"}},
                "rights": ["RIGHT_ORGANIZATION_INFO"],
            }
        },
    )
    assert nested.status_code == 400, nested.text
    assert nested.json()["details"][0]["name"] == "nested_organizations"
    assert nested.json()["details"][0]["namespace"] == "pkg/identityserver"
    # The delete route is plural; the singular one does not exist.
    assert (await client.delete("/organizations/org-one/collaborator/user/alice")).status_code in (
        404,
        405,
    )
    expect_ok(await client.delete("/organizations/org-one/collaborators/user/alice"))
    expect_error(
        await client.get("/organizations/org-one/collaborator/user/alice"),
        code=NOT_FOUND,
        name="collaborator_not_found",
    )


@pytest.mark.asyncio
async def test_a_member_key_without_member_rights_is_refused(
    client: httpx.AsyncClient, tts: TtsApi
) -> None:
    await tts.create_organization("org-one")
    await tts.create_user("bob")
    expect_ok(
        await client.put(
            "/organizations/org-one/collaborators",
            json={
                "collaborator": {
                    "ids": {"user_ids": {"user_id": "bob"}},
                    "rights": ["RIGHT_ORGANIZATION_INFO"],
                }
            },
        )
    )
    bob_key = await tts.create_user_api_key("bob", ["RIGHT_ALL"])
    async with tts.client_for(bob_key) as bob:
        response = await bob.put(
            "/organizations/org-one",
            json={"organization": {"name": "mine"}, "field_mask": {"paths": ["name"]}},
        )
        expect_error(response, code=PERMISSION_DENIED, name="insufficient_organization_rights")
        listed = expect_ok(await bob.get("/organizations"))
        assert [o["ids"]["organization_id"] for o in listed["organizations"]] == ["org-one"]


def _history(served: ServedEmulator, identifiers: list[dict[str, Any]]) -> list[str]:
    """Names of the recent events of `identifiers` (the stream's `tail`), read until quiet."""
    names: list[str] = []
    with (
        served.client() as client,
        client.stream(
            "POST",
            "/events",
            json={"identifiers": identifiers, "tail": 100},
            timeout=httpx.Timeout(2.0),
        ) as response,
    ):
        assert response.status_code == 200
        deadline = time.monotonic() + 5
        try:
            for line in response.iter_lines():
                if line.strip():
                    names.append(json.loads(line)["result"]["name"])
                if time.monotonic() > deadline:
                    break
        except httpx.ReadTimeout:
            pass
    return names


def test_collaborator_removal_and_api_key_changes_publish_their_events(
    served_emulator: ServedEmulator,
) -> None:
    with served_emulator.client() as client:
        user = served_emulator.user_id
        expect_ok(
            client.post(
                f"/users/{user}/applications",
                json={"application": {"ids": {"application_id": "app1"}}},
            )
        )
        expect_ok(
            client.post(
                "/users",
                json={
                    "user": {
                        "ids": {"user_id": "carol"},
                        "primary_email_address": "carol@example.com",
                        "password": "correct-horse-battery-staple-1",
                    }
                },
            )
        )
        carol = {"ids": {"user_ids": {"user_id": "carol"}}}
        expect_ok(
            client.put(
                "/applications/app1/collaborators",
                json={"collaborator": {**carol, "rights": ["RIGHT_APPLICATION_INFO"]}},
            )
        )
        # Removing a collaborator by setting no rights.
        expect_ok(
            client.put(
                "/applications/app1/collaborators", json={"collaborator": {**carol, "rights": []}}
            )
        )
        key = expect_ok(
            client.post(
                "/applications/app1/api-keys",
                json={"name": "k", "rights": ["RIGHT_APPLICATION_INFO"]},
            )
        )
        expect_ok(
            client.put(
                f"/applications/app1/api-keys/{key['id']}",
                json={"api_key": {"name": "k2"}, "field_mask": {"paths": ["name"]}},
            )
        )
        expect_ok(client.delete(f"/applications/app1/api-keys/{key['id']}"))
    names = _history(served_emulator, [{"application_ids": {"application_id": "app1"}}])
    assert "application.collaborator.update" in names, names
    assert "application.collaborator.delete" in names, names
    for verb in ("create", "update", "delete"):
        assert f"application.api-key.{verb}" in names, names
