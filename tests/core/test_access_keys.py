"""Gateway and application API keys: declared by name, rights and expiry; the secret goes only to
its sink (a 0600 file, or a command the Stack names), never to a plan, output or log; rights
updated in place; rotation; duplicates refused; prune of keys in owned entities only."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.plan.markdown import render_markdown
from reconciler.plan.render import render_plan, render_report
from tests.core.support import STACK, Engine, write_manifests

GATEWAY = """
kind: Gateway
id: barn-gw
eui: "B827EBFFFE8B0101"
frequency_plan_ids: [EU_863_870_TTN]
api_keys:
  - name: link
    rights: [RIGHT_GATEWAY_LINK]
    deliver: {{file: secrets/barn-gw.key}}
{extra}
"""

APPLICATION = """
kind: Application
id: ingest-app
api_keys:
  - name: integration
    rights: [APPLICATION_TRAFFIC_READ, RIGHT_APPLICATION_INFO]
    expires_at: 2099-01-01T00:00:00Z
    deliver: {command: store-secret}
"""

WRITE_STDIN = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.stdin.read())"
STACK_WITH_COMMAND = (
    STACK
    + f"""
secret_commands:
  store-secret: [{sys.executable}, -c, "{WRITE_STDIN}", {{out}}]
  failing: [{sys.executable}, -c, "import sys; sys.stdin.read(); sys.exit(3)"]
"""
)


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key)


def site(directory: Path, extra: str = "", **more: str) -> list[Path]:
    out = directory / "command-output.txt"
    write_manifests(
        directory,
        stack=STACK_WITH_COMMAND.replace("{out}", str(out)),
        gateway=GATEWAY.format(extra=extra),
        **more,
    )
    return [directory]


async def keys_of(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    response = await client.get(f"{path}/api-keys")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json().get("api_keys", [])
    return found


async def auth_info(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/auth_info", headers={"Authorization": f"Bearer {token}"})


def every_output(run: Any) -> str:
    """What a user or CI log could see of a plan: text, full text, JSON and Markdown."""
    plan = run.plan
    text = "\n".join(line.plain for line in render_plan(plan))
    full = "\n".join(line.plain for line in render_plan(plan, full=True))
    return "\n".join([text, full, plan.dumps(), render_markdown(plan)])


@pytest.mark.asyncio
async def test_link_key_goes_to_a_0600_file_and_nowhere_else(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = site(tmp_path)
    logged: list[str] = []
    eng.environ_extra = {}
    run, report = await eng.apply(
        paths, request_log=lambda *entry: logged.append(" ".join(map(str, entry)))
    )
    assert not report.failed, report.failed
    change = next(c for c in run.plan.changes if c.key.kind == "api_key")
    assert change.action == "create"
    assert "secrets/barn-gw.key (mode 0600)" in change.reason
    sink = tmp_path / "secrets" / "barn-gw.key"
    assert stat.S_IMODE(os.stat(sink).st_mode) == 0o600
    secret = sink.read_text().strip()
    info = await auth_info(client, secret)
    assert info.status_code == 200, info.text
    assert info.json()["api_key"]["api_key"]["rights"] == ["RIGHT_GATEWAY_LINK"]
    # The secret (and its secret part) appears in no output, plan or request log.
    outputs = every_output(run) + "\n".join(line.plain for line in render_report(report))
    outputs += "\n".join(logged)
    for part in (secret, secret.split(".")[2]):
        assert part not in outputs
    assert "(sensitive)" in every_output(run)
    again = await eng.plan(paths)
    assert not again.plan.changes
    saved = again.plan.dumps()
    assert secret.split(".")[2] not in saved


@pytest.mark.asyncio
async def test_rights_and_expiry_are_updated_in_place(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = site(tmp_path)
    _run, report = await eng.apply(paths)
    assert not report.failed
    (before,) = await keys_of(client, "/gateways/barn-gw")
    (tmp_path / "gateway.yaml").write_text(
        (tmp_path / "gateway.yaml")
        .read_text()
        .replace("[RIGHT_GATEWAY_LINK]", "[RIGHT_GATEWAY_LINK, GATEWAY_INFO]")
        .replace("    deliver:", "    expires_at: 2098-06-01T12:00:00+02:00\n    deliver:")
    )
    run = await eng.plan(paths)
    (change,) = [c for c in run.plan.changes if c.key.kind == "api_key"]
    assert change.action == "update"
    assert [(s.operation, s.paths) for s in change.steps] == [("update", ["rights", "expires_at"])]
    assert change.steps[0].changes[1].new == "2098-06-01T10:00:00Z"
    _run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    (after,) = await keys_of(client, "/gateways/barn-gw")
    assert after["id"] == before["id"]
    assert sorted(after["rights"]) == ["RIGHT_GATEWAY_INFO", "RIGHT_GATEWAY_LINK"]
    assert after["expires_at"].startswith("2098-06-01T10:00:00")
    assert not (await eng.plan(paths)).plan.changes


@pytest.mark.asyncio
async def test_rotation_leaves_exactly_one_key_with_the_name(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient, emulator_app: Any
) -> None:
    paths = site(tmp_path)
    _run, report = await eng.apply(paths)
    assert not report.failed
    sink = tmp_path / "secrets" / "barn-gw.key"
    old_secret = sink.read_text().strip()
    (old,) = await keys_of(client, "/gateways/barn-gw")
    (tmp_path / "gateway.yaml").write_text(
        (tmp_path / "gateway.yaml")
        .read_text()
        .replace("    deliver:", "    rotate_after_days: 30\n    deliver:")
    )
    assert not (await eng.plan(paths)).plan.changes  # a new key is not due
    # Forty days pass (the emulator's record of the key is aged).
    store = emulator_app.state.emulator.store
    stored = store.api_keys.get(old["id"])
    stored["api_key"]["created_at"] = "2000-01-01T00:00:00Z"
    store.api_keys.put(old["id"], stored)
    run = await eng.plan(paths)
    (change,) = [c for c in run.plan.changes if c.key.kind == "api_key"]
    assert change.action == "update"
    assert change.reason.startswith("rotate: the key is")
    assert [s.operation for s in change.steps] == ["create", "delete"]
    assert old["id"] in change.reason
    _run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    keys = await keys_of(client, "/gateways/barn-gw")
    assert [k["name"] for k in keys] == ["link"]
    assert keys[0]["id"] != old["id"]
    new_secret = sink.read_text().strip()
    assert new_secret != old_secret
    assert stat.S_IMODE(os.stat(sink).st_mode) == 0o600
    assert (await auth_info(client, new_secret)).status_code == 200
    assert (await auth_info(client, old_secret)).status_code == 401
    assert not (await eng.plan(paths)).plan.changes


@pytest.mark.asyncio
async def test_duplicate_names_on_the_server_are_refused(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = site(tmp_path)
    _run, report = await eng.apply(paths)
    assert not report.failed
    response = await client.post(
        "/gateways/barn-gw/api-keys", json={"name": "link", "rights": ["RIGHT_GATEWAY_INFO"]}
    )
    assert response.status_code == 200
    run = await eng.plan(paths)
    assert any("2 API keys are named 'link'" in b for b in run.plan.blocked), run.plan.blocked


@pytest.mark.asyncio
async def test_command_sink_and_a_failing_sink_leaves_no_key(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = site(tmp_path, application=APPLICATION)
    _run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    delivered = (tmp_path / "command-output.txt").read_text().strip()
    info = await auth_info(client, delivered)
    assert info.status_code == 200
    assert info.json()["api_key"]["api_key"]["expires_at"].startswith("2099-01-01")
    (tmp_path / "application.yaml").write_text(
        APPLICATION.replace("integration", "second").replace("store-secret", "failing")
        + "  - name: integration\n    rights: [APPLICATION_TRAFFIC_READ, RIGHT_APPLICATION_INFO]\n"
        "    expires_at: 2099-01-01T00:00:00Z\n    deliver: {command: store-secret}\n"
    )
    _run, report = await eng.apply(paths)
    (failed,) = report.failed
    assert "sink command failing exited with status 3" in failed.error
    assert "was deleted again" in failed.error
    names = sorted(k["name"] for k in await keys_of(client, "/applications/ingest-app"))
    assert names == ["integration"]


@pytest.mark.asyncio
async def test_prune_removes_undeclared_keys_of_owned_entities_only(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = site(tmp_path)
    _run, report = await eng.apply(paths)
    assert not report.failed
    for path in ("/gateways/barn-gw", "/users/admin-user"):
        rights = "RIGHT_GATEWAY_INFO" if path.startswith("/gateways") else "RIGHT_USER_INFO"
        response = await client.post(
            f"{path}/api-keys", json={"name": "console", "rights": [rights]}
        )
        assert response.status_code == 200
    run = await eng.plan(paths)
    assert [str(o.key) for o in run.plan.orphans] == ["api_key gateway/barn-gw/console"]
    _run, report = await eng.apply(paths, prune=True)
    assert not report.failed, report.failed
    assert [k["name"] for k in await keys_of(client, "/gateways/barn-gw")] == ["link"]
    assert "console" in [k["name"] for k in await keys_of(client, "/users/admin-user")]
    # Without a declared list, the gateway's keys are not managed at all.
    (tmp_path / "gateway.yaml").write_text(
        (tmp_path / "gateway.yaml").read_text().split("api_keys:")[0]
    )
    run = await eng.plan(paths, prune=True)
    assert not run.plan.changes


def test_key_declarations_are_checked_where_they_are(tmp_path: Path) -> None:
    from reconciler.manifest.load import load_manifests
    from reconciler.providers.registry import MANIFEST_KINDS

    write_manifests(
        tmp_path,
        stack=STACK,
        outside="""
kind: Gateway
id: gw-one
api_keys:
  - name: link
    rights: [RIGHT_GATEWAY_LINK]
    deliver: {file: ../../outside.key}
""",
        wrong="""
kind: Gateway
id: gw-two
api_keys:
  - name: link
    rights: [RIGHT_APPLICATION_INFO]
    deliver: {file: secrets/link.key}
  - name: link
    rights: [RIGHT_GATEWAY_LINK]
    deliver: {file: secrets/link2.key}
  - name: other
    rights: [RIGHT_GATEWAY_LINK]
    deliver: {command: nowhere}
""",
    )
    result = load_manifests([tmp_path], kinds=MANIFEST_KINDS, environ={})
    found = sorted((Path(d.location.file).name, d.location.line, d.message) for d in result.errors)
    text = json.dumps(found)
    assert ("outside.yaml", 6) in [(f, line) for f, line, _ in found], text
    assert any("outside the manifest tree" in m for _, _, m in found), text
    wrong = [(line, m) for f, line, m in found if f == "wrong.yaml"]
    assert any(line == 5 and "is not a right of gateways" in m for line, m in wrong), text
    assert any(line == 7 and "duplicate API key name `link`" in m for line, m in wrong), text
    assert any(line == 12 and "`secret_commands`" in m for line, m in wrong), text


def test_a_keys_plan_digest_does_not_depend_on_where_the_tree_lies(tmp_path: Path) -> None:
    """A plan saved in one CI job is applied in another, whose checkout may lie elsewhere."""
    from reconciler.manifest.load import load_manifests
    from reconciler.planning import desired_digest
    from reconciler.providers.registry import MANIFEST_KINDS
    from reconciler.providers.tts.desired import api_key_resource
    from reconciler.providers.tts.manifest.project import tts_project

    digests = []
    for where in ("one", "two/deeper"):
        tree = site(tmp_path / where)
        result = load_manifests(tree, kinds=MANIFEST_KINDS, environ={})
        assert not result.has_errors, result.diagnostics
        (key,) = tts_project(result.project).api_keys()
        digests.append(desired_digest(api_key_resource(key), b"k"))
    assert digests[0] == digests[1]


@pytest.mark.asyncio
async def test_a_right_the_tools_key_lacks_is_named_in_the_plan(
    emulator_transport: httpx.ASGITransport, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    """The server refuses to grant a right the caller does not hold: the plan says so first."""
    user = {
        "ids": {"user_id": "field-tech"},
        "primary_email_address": "field-tech@example.com",
        "password": "correct-horse-battery-staple-1",
    }
    assert (await client.post("/users", json={"user": user})).status_code == 200
    response = await client.post(
        "/users/admin-user/gateways",
        json={
            "gateway": {"ids": {"gateway_id": "barn-gw"}, "frequency_plan_ids": ["EU_863_870_TTN"]}
        },
    )
    assert response.status_code == 200
    held = ["RIGHT_GATEWAY_INFO", "RIGHT_GATEWAY_SETTINGS_BASIC", "RIGHT_GATEWAY_SETTINGS_API_KEYS"]
    member = {"ids": {"user_ids": {"user_id": "field-tech"}}, "rights": held}
    response = await client.put("/gateways/barn-gw/collaborators", json={"collaborator": member})
    assert response.status_code == 200
    response = await client.post(
        "/users/field-tech/api-keys", json={"name": "ci", "rights": ["RIGHT_ALL"]}
    )
    operator_key = response.json()["key"]
    write_manifests(
        tmp_path,
        stack=STACK.replace("admin-user", "field-tech"),
        gateway=GATEWAY.format(extra="").replace('eui: "B827EBFFFE8B0101"\n', ""),
    )
    run = await Engine(emulator_transport, operator_key).plan([tmp_path])
    assert any(
        "gateway barn-gw: the tool's API key lacks RIGHT_GATEWAY_LINK" in w
        for w in run.plan.warnings
    ), run.plan.warnings
    _run, report = await Engine(emulator_transport, operator_key).apply([tmp_path])
    (failed,) = report.failed
    assert "insufficient_gateway_rights" in failed.error
