"""`reconciler import` of organizations: the ones owning an imported application or gateway and
the ones chosen with `--organization`, with their members and API keys (by name, rights and
expiry: a key's secret cannot be read back, so none is written and the report says so). A plan
on the imported tree against the same server shows only adoption; applying it to an empty
server recreates the organizations, their members and keys, and the ownership."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

from reconciler.importer.output import ImportFailure
from reconciler.providers.tts.importing.live import Selection
from tests.cli_runner import CliRunner
from tests.conftest import ServedEmulator
from tests.core.support import Engine
from tests.emulator.support import ADMIN_USER, expect_ok, make_api_key
from tests.importer.support import (
    admin_client,
    do_import,
    import_options,
    new_transport,
    only_adoption,
    validate,
)

ORG_KEY = {
    "name": "ops",
    "rights": ["RIGHT_APPLICATION_TRAFFIC_READ", "RIGHT_ORGANIZATION_INFO"],
    "expires_at": "2099-01-01T00:00:00Z",
}
ALICE_RIGHTS = ["RIGHT_APPLICATION_ALL", "RIGHT_ORGANIZATION_INFO"]


async def make_user(client: httpx.AsyncClient, user: str) -> None:
    expect_ok(
        await client.post(
            "/users",
            json={
                "user": {
                    "ids": {"user_id": user},
                    "primary_email_address": f"{user}@example.com",
                    "password": "correct-horse-battery-staple-1",
                }
            },
        )
    )


async def make_org(client: httpx.AsyncClient, org_id: str, **fields: Any) -> None:
    body = {"organization": {"ids": {"organization_id": org_id}, **fields}}
    expect_ok(await client.post(f"/users/{ADMIN_USER}/organizations", json=body))


async def org_state(client: httpx.AsyncClient) -> None:
    """coop-org (a member, an API key) owns coop-app and coop-gw; own-app belongs to the admin
    user, with coop-org as a mere collaborator; solo-org owns nothing."""
    await make_user(client, "alice")
    await make_org(
        client,
        "coop-org",
        name="Cooperative",
        description="Growers sharing the network",
        attributes={"region": "north"},
    )
    await make_org(client, "solo-org", name="Solo")
    member = {"ids": {"user_ids": {"user_id": "alice"}}, "rights": ALICE_RIGHTS}
    expect_ok(
        await client.put("/organizations/coop-org/collaborators", json={"collaborator": member})
    )
    expect_ok(await client.post("/organizations/coop-org/api-keys", json=ORG_KEY))
    expect_ok(
        await client.post(
            "/organizations/coop-org/applications",
            json={"application": {"ids": {"application_id": "coop-app"}, "name": "Coop app"}},
        )
    )
    expect_ok(
        await client.post(
            "/organizations/coop-org/gateways",
            json={
                "gateway": {
                    "ids": {"gateway_id": "coop-gw"},
                    "frequency_plan_ids": ["EU_863_870_TTN"],
                }
            },
        )
    )
    expect_ok(
        await client.post(
            f"/users/{ADMIN_USER}/applications",
            json={"application": {"ids": {"application_id": "own-app"}}},
        )
    )
    guest = {
        "ids": {"organization_ids": {"organization_id": "coop-org"}},
        "rights": ["RIGHT_APPLICATION_INFO"],
    }
    expect_ok(await client.put("/applications/own-app/collaborators", json={"collaborator": guest}))


def documents(path: Path) -> dict[str, dict[str, Any]]:
    return {doc["id"]: doc for doc in YAML(typ="safe").load_all(path.read_text())}


async def org_view(client: httpx.AsyncClient, org_id: str) -> dict[str, Any]:
    """What the round trip must keep of an organization."""
    org = expect_ok(
        await client.get(f"/organizations/{org_id}", params={"field_mask": "name,description"})
    )
    keys = expect_ok(await client.get(f"/organizations/{org_id}/api-keys")).get("api_keys", [])
    members = expect_ok(await client.get(f"/organizations/{org_id}/collaborators"))
    apps = expect_ok(await client.get(f"/organizations/{org_id}/applications"))
    gateways = expect_ok(await client.get(f"/organizations/{org_id}/gateways"))
    return {
        "name": org.get("name"),
        "description": org.get("description"),
        "keys": sorted((k["name"], sorted(k["rights"]), k.get("expires_at")) for k in keys),
        "members": sorted(
            (m["ids"]["user_ids"]["user_id"], sorted(m["rights"]))
            for m in members.get("collaborators", [])
        ),
        "applications": [a["ids"]["application_id"] for a in apps.get("applications", [])],
        "gateways": [g["ids"]["gateway_id"] for g in gateways.get("gateways", [])],
    }


@pytest.mark.asyncio
async def test_organizations_round_trip(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    await org_state(client)
    out = tmp_path / "imported"
    report = await do_import(
        import_options(
            out,
            emulator_transport,
            admin_api_key,
            selection=Selection(
                ("coop-app", "own-app"), ("coop-gw",), organization_ids=("solo-org",)
            ),
        )
    )
    assert report.counts["organization"] == 2
    organizations = documents(out / "organizations.yaml")
    assert sorted(organizations) == ["coop-org", "solo-org"]
    coop = organizations["coop-org"]
    assert coop["name"] == "Cooperative"
    assert coop["attributes"] == {"region": "north"}
    assert "owner" not in coop  # the Stack's owner (the API key's user) created it
    # Its creator is the owner, not a listed member.
    assert coop["collaborators"] == [{"user": "alice", "rights": ALICE_RIGHTS}]
    assert coop["api_keys"] == [
        {**ORG_KEY, "deliver": {"file": "secrets/organization-coop-org.api-key.ops"}}
    ]
    assert "api_keys" not in organizations["solo-org"]
    applications = {
        app_id: documents(out / f"applications/{app_id}/application.yaml")[app_id]
        for app_id in ("coop-app", "own-app")
    }
    assert applications["coop-app"]["owner"] == {"organization": "coop-org"}
    assert "owner" not in applications["own-app"]  # coop-org only collaborates on it
    assert documents(out / "gateways.yaml")["coop-gw"]["owner"] == {"organization": "coop-org"}
    text = (out / "import-report.txt").read_text()
    assert "API key secrets: a key's secret cannot be read back, so none was written" in text
    assert "administrative_contact" not in text  # the owning organization's contacts
    assert not (out / "secrets").exists()

    environ = {"TTS_API_KEY": admin_api_key}
    validate(out, environ)
    run = await Engine(emulator_transport, admin_api_key, environ_extra=environ).plan([out])
    assert only_adoption(run.plan, "orchard-north") == []
    adopted = sorted(str(c.key) for c in run.plan.changes)
    assert "organization coop-org" in adopted and "organization solo-org" in adopted

    fresh_key = make_api_key()
    async with (
        new_transport(fresh_key) as fresh_transport,
        admin_client(fresh_transport, fresh_key) as fresh_client,
    ):
        await make_user(fresh_client, "alice")
        fresh = Engine(fresh_transport, fresh_key, environ_extra={"TTS_API_KEY": fresh_key})
        _run, applied = await fresh.apply([out])
        assert not applied.failed, applied.failed
        for org_id in ("coop-org", "solo-org"):
            assert await org_view(fresh_client, org_id) == await org_view(client, org_id)
        assert not (await fresh.plan([out])).plan.changes
    sink = out / "secrets/organization-coop-org.api-key.ops"
    assert stat.S_IMODE(os.stat(sink).st_mode) == 0o600


@pytest.mark.asyncio
async def test_all_imports_every_organization(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    await org_state(client)
    out = tmp_path / "imported"
    await do_import(
        import_options(out, emulator_transport, admin_api_key, selection=Selection(everything=True))
    )
    assert sorted(documents(out / "organizations.yaml")) == ["coop-org", "solo-org"]
    environ = {"TTS_API_KEY": admin_api_key}
    run = await Engine(emulator_transport, admin_api_key, environ_extra=environ).plan([out])
    assert only_adoption(run.plan, "orchard-north") == []


@pytest.mark.asyncio
async def test_a_member_with_rights_no_manifest_can_give_leaves_the_members_unmanaged(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    await make_user(client, "bob")
    await make_org(client, "wide-org")
    member = {"ids": {"user_ids": {"user_id": "bob"}}, "rights": ["RIGHT_ALL"]}
    expect_ok(
        await client.put("/organizations/wide-org/collaborators", json={"collaborator": member})
    )
    out = tmp_path / "imported"
    await do_import(
        import_options(
            out,
            emulator_transport,
            admin_api_key,
            selection=Selection(organization_ids=("wide-org",)),
        )
    )
    assert "collaborators" not in documents(out / "organizations.yaml")["wide-org"]
    assert (
        "bob hold rights a manifest cannot give a member" in (out / "import-report.txt").read_text()
    )
    environ = {"TTS_API_KEY": admin_api_key}
    run = await Engine(emulator_transport, admin_api_key, environ_extra=environ).plan(
        [out], prune=True
    )
    assert only_adoption(run.plan, "orchard-north") == []


@pytest.mark.asyncio
async def test_an_owning_organization_the_key_cannot_read_is_reported(
    tmp_path: Path,
    client: httpx.AsyncClient,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
) -> None:
    """A key of a user who collaborates on an application (without every right) but is no
    member of the organization owning it: the application is imported under the Stack's owner,
    the report says why, and the plan still shows only adoption."""
    await make_user(client, "carol")
    await make_org(client, "closed-org")
    expect_ok(
        await client.post(
            "/organizations/closed-org/applications",
            json={"application": {"ids": {"application_id": "closed-app"}}},
        )
    )
    held = [
        "RIGHT_APPLICATION_INFO",
        "RIGHT_APPLICATION_SETTINGS_BASIC",
        "RIGHT_APPLICATION_SETTINGS_API_KEYS",
        "RIGHT_APPLICATION_SETTINGS_COLLABORATORS",
        "RIGHT_APPLICATION_DEVICES_READ",
        "RIGHT_APPLICATION_TRAFFIC_READ",
        "RIGHT_APPLICATION_SETTINGS_PACKAGES",
    ]
    carol = {"ids": {"user_ids": {"user_id": "carol"}}, "rights": held}
    expect_ok(
        await client.put("/applications/closed-app/collaborators", json={"collaborator": carol})
    )
    carol_key = expect_ok(
        await client.post("/users/carol/api-keys", json={"name": "ci", "rights": ["RIGHT_ALL"]})
    )["key"]
    out = tmp_path / "imported"
    await do_import(
        import_options(out, emulator_transport, carol_key, selection=Selection(("closed-app",)))
    )
    assert not (out / "organizations.yaml").exists()
    app = documents(out / "applications/closed-app/application.yaml")["closed-app"]
    assert "owner" not in app
    assert (
        "owned by organization `closed-org`, which the API key cannot read: written under the "
        "Stack's owner" in (out / "import-report.txt").read_text()
    )
    environ = {"TTS_API_KEY": carol_key}
    validate(out, environ)
    run = await Engine(emulator_transport, carol_key, environ_extra=environ).plan([out])
    assert only_adoption(run.plan, "orchard-north") == []


@pytest.mark.asyncio
async def test_an_organization_that_does_not_exist_fails_and_writes_nothing(
    tmp_path: Path, emulator_transport: httpx.ASGITransport, admin_api_key: str
) -> None:
    out = tmp_path / "imported"
    with pytest.raises(ImportFailure, match="organization `no-such-org`: not found"):
        await do_import(
            import_options(
                out,
                emulator_transport,
                admin_api_key,
                selection=Selection(organization_ids=("no-such-org",)),
            )
        )
    assert not out.exists()


@pytest.mark.slow
def test_import_organization_through_the_cli(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    with served_emulator.client() as client:
        body = {"organization": {"ids": {"organization_id": "cli-org"}, "name": "CLI org"}}
        expect_ok(client.post(f"/users/{ADMIN_USER}/organizations", json=body))
        created = expect_ok(client.post("/organizations/cli-org/api-keys", json=ORG_KEY))
    cli = CliRunner({"TTS_API_KEY": served_emulator.api_key}, tmp_path)
    url = served_emulator.root_url
    cli("import", "--url", url, "--organization", "cli-org", "--out", "imported")
    assert "imported 1 organization, 1 API key into imported" in cli.stdout
    assert "not imported: API key secrets: a key's secret cannot be read back" in cli.stderr
    text = cli("plan", "imported", "--url", url, "--detailed-exitcode", expect=2)
    assert "~ organization cli-org  (adopt)" in text
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete" in text
    cli.run("import", "--url", url, "--organization", "nope", "--out", "other", expect=1)
    assert "organization `nope`: not found" in cli.stderr
    assert not (tmp_path / "other").exists()
    everything = "\n".join(cli.outputs)
    assert created["key"].split(".")[2] not in everything
    assert created["key"].split(".")[2] not in "".join(
        p.read_text() for p in (tmp_path / "imported").rglob("*") if p.is_file()
    )
