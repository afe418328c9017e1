"""`--rotate ADDRESS`: rotate a declared API key now (a leaked key), whatever its age, as
Terraform's `-replace` does: planned visibly (create a new key, deliver it, delete the old one),
carried by a saved plan, leaving exactly one key with the name; an address that names no
declared key is a usage error (exit 2). No output or saved plan holds a secret."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.diagnostics import UsageError
from reconciler.plan.markdown import render_markdown
from reconciler.plan.render import render_plan
from tests.cli_runner import CliRunner
from tests.conftest import ServedEmulator
from tests.core.support import STACK, Engine, write_manifests

GATEWAY = """
kind: Gateway
id: rot-gw
frequency_plan_ids: [EU_863_870_TTN]
api_keys:
  - name: link
    rights: [RIGHT_GATEWAY_LINK]
    deliver: {file: secrets/rot-gw.key}
  - name: status
    rights: [RIGHT_GATEWAY_STATUS_READ]
    deliver: {file: secrets/rot-gw-status.key}
"""

ORGANIZATION = """
kind: Organization
id: rot-org
api_keys:
  - name: ops
    rights: [RIGHT_ORGANIZATION_INFO]
    rotate_after_days: 365
    deliver: {file: secrets/rot-org-ops.key}
"""

LINK = "api_key/gateway/rot-gw/link"


def keys_named(keys: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [k for k in keys if k["name"] == name]


@pytest.mark.slow
def test_rotate_now_through_a_saved_plan(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    manifests = write_manifests(tmp_path / "manifests", stack=STACK, gateway=GATEWAY)
    cli = CliRunner(
        {"TTS_API_KEY": served_emulator.api_key, "RECONCILER_TTS_URL": served_emulator.root_url},
        tmp_path,
    )
    cli("apply", "manifests", "--auto-approve")
    sink = manifests / "secrets" / "rot-gw.key"
    first = sink.read_text().strip()
    status_secret = (manifests / "secrets" / "rot-gw-status.key").read_text().strip()
    with served_emulator.client() as client:
        before = client.get("/gateways/rot-gw/api-keys").json()["api_keys"]
    (old,) = keys_named(before, "link")

    plan_file = tmp_path / "plan.json"
    text = cli("plan", "manifests", "--rotate", LINK, "--out", str(plan_file))
    assert f"rotate: {LINK} (--rotate; nothing else is rotated)" in text
    assert "~ api_key gateway/rot-gw/link" in text
    assert "rotate now (--rotate): a new key is created and its secret goes to" in text
    assert f"then the old key {old['id']} is deleted" in text
    saved = json.loads(plan_file.read_text())
    assert saved["options"]["rotate"] == [LINK]
    (change,) = [r for r in saved["resources"] if r["action"] != "no-op"]
    assert [s["operation"] for s in change["steps"]] == ["create", "delete"]
    shown = cli("show", str(plan_file))
    assert "rotate now (--rotate)" in shown

    # The saved plan carries the rotation: apply needs no --rotate of its own.
    cli("apply", "--plan", str(plan_file), "-v")
    second = sink.read_text().strip()
    assert second != first
    assert stat.S_IMODE(os.stat(sink).st_mode) == 0o600
    with served_emulator.client() as client:
        after = client.get("/gateways/rot-gw/api-keys").json()["api_keys"]
        (new,) = keys_named(after, "link")
        assert new["id"] != old["id"]
        assert keys_named(after, "status") == keys_named(before, "status")  # untouched
        assert (
            client.get("/auth_info", headers={"Authorization": f"Bearer {first}"}).status_code
            == 401
        )
        assert (
            client.get("/auth_info", headers={"Authorization": f"Bearer {second}"}).status_code
            == 200
        )
    assert "No changes" in cli("plan", "manifests")

    # Without a saved plan: apply --rotate rotates again.
    cli("apply", "manifests", "--rotate", LINK, "--auto-approve")
    third = sink.read_text().strip()
    assert third not in (first, second)
    with served_emulator.client() as client:
        assert (
            len(keys_named(client.get("/gateways/rot-gw/api-keys").json()["api_keys"], "link")) == 1
        )

    everything = "\n".join([*cli.outputs, plan_file.read_text()])
    for secret in (first, second, third, status_secret):
        assert secret.split(".")[2] not in everything
        assert secret.split(".")[2].lower() not in everything


@pytest.mark.slow
def test_an_address_that_names_no_declared_key_is_a_usage_error(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    write_manifests(tmp_path / "manifests", stack=STACK, gateway=GATEWAY)
    cli = CliRunner(
        {"TTS_API_KEY": served_emulator.api_key, "RECONCILER_TTS_URL": served_emulator.root_url},
        tmp_path,
    )
    cli.run(
        "apply", "manifests", "--rotate", "api_key/gateway/rot-gw/lnk", "--auto-approve", expect=2
    )
    assert (
        "--rotate api_key/gateway/rot-gw/lnk: names no API key the manifests declare; did you "
        "mean api_key/gateway/rot-gw/link?" in cli.stderr
    )
    cli.run("plan", "manifests", "--rotate", "link", expect=2)
    assert "'link' is not an address such as api_key/gateway/GATEWAY_ID/NAME" in cli.stderr
    # Nothing was written: the gateway does not exist.
    with served_emulator.client() as client:
        assert client.get("/gateways/rot-gw").status_code == 404


@pytest.mark.asyncio
async def test_rotate_addresses_are_checked_before_anything_is_read(
    emulator_transport: httpx.ASGITransport, admin_api_key: str, tmp_path: Path
) -> None:
    paths = [write_manifests(tmp_path, stack=STACK, gateway=GATEWAY)]
    eng = Engine(emulator_transport, admin_api_key)
    with pytest.raises(UsageError, match="--rotate gateway/rot-gw: names no API key"):
        await eng.plan(paths, rotate=("gateway/rot-gw",))
    # A --target that leaves the key out would leave the rotation out silently: refused.
    with pytest.raises(UsageError, match=f"--rotate {LINK}: --target leaves it out"):
        await eng.plan(paths, rotate=(LINK,), targets=("gateway/rot-gw",))
    run = await eng.plan(paths, rotate=(LINK,), targets=("api_key/gateway/rot-gw/*",))
    assert [str(c.key) for c in run.plan.changes] == [
        "api_key gateway/rot-gw/link",
        "api_key gateway/rot-gw/status",
    ]


@pytest.mark.asyncio
async def test_rotating_an_organization_key_in_process(
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
    tmp_path: Path,
    client: httpx.AsyncClient,
) -> None:
    eng = Engine(emulator_transport, admin_api_key)
    paths = [write_manifests(tmp_path, stack=STACK, org=ORGANIZATION)]
    _run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    sink = tmp_path / "secrets" / "rot-org-ops.key"
    first = sink.read_text().strip()
    (old,) = (await client.get("/organizations/rot-org/api-keys")).json()["api_keys"]

    address = "api_key/organization/rot-org/ops"
    run = await eng.plan(paths, rotate=(address,))
    (change,) = run.plan.changes
    assert change.action == "update"
    assert change.reason.startswith("rotate now (--rotate)")
    assert [s.operation for s in change.steps] == ["create", "delete"]
    assert run.plan.options["rotate"] == [address]
    outputs = "\n".join(
        [
            "\n".join(line.plain for line in render_plan(run.plan, full=True)),
            run.plan.dumps(),
            render_markdown(run.plan),
        ]
    )
    _run, report = await eng.apply(paths, rotate=(address,))
    assert not report.failed, report.failed
    second = sink.read_text().strip()
    (new,) = (await client.get("/organizations/rot-org/api-keys")).json()["api_keys"]
    assert new["name"] == "ops" and new["id"] != old["id"]
    for secret in (first, second):
        assert secret.split(".")[2] not in outputs
    assert not (await eng.plan(paths)).plan.changes

    with pytest.raises(UsageError, match="names no API key the manifests declare"):
        await eng.plan(paths, rotate=("api_key/organization/rot-org/other",))
