"""Application packages by FPort through the engine against the emulator: an application's
default associations and a device's own, with tokens by reference; validate (located errors),
plan with tokens masked, apply, drift, prune of owned associations only, request audit."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from reconciler.manifest.load import load_manifests
from reconciler.plan.render import render_plan
from reconciler.providers.registry import MANIFEST_KINDS
from tests.core.support import STACK, Engine, step_summary, write_manifests
from tests.core.test_request_audit import Recorder, audit
from tests.shared_data import needs_shared

SECRETS = {
    "LORA_CLOUD_TOKEN": "AQEA-lora-cloud-token-1",
    "GEO_TOKEN": "AQEA-geolocation-token-2",
}

APPLICATION = """
kind: Application
id: tracker-app
packages:
  - f_port: 199
    package_name: lora-cloud-device-management-v1
    data: {token: {env: LORA_CLOUD_TOKEN}, server_url: "https://mgs.loracloud.com"}
  - f_port: 202
    package_name: alcsync-v1
    data: {threshold: 8}
---
kind: Device
application: tracker-app
id: tracker-1
dev_eui: "70B3D57ED00000A1"
join_eui: "70B3D57ED0000000"
app_key: "00112233445566778899AABBCCDDEEFF"
lorawan_version: 1.0.3
lorawan_phy_version: 1.0.3-a
frequency_plan_id: EU_863_870_TTN
packages:
  - f_port: 197
    package_name: lora-cloud-geolocation-v3
    data: {token: {env: GEO_TOKEN}, query: TOARSSI, multi_frame: true}
"""
DEFAULTS = "/as/applications/tracker-app/packages/associations"
DEVICE = "/as/applications/tracker-app/devices/tracker-1/packages/associations"


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key, environ_extra=dict(SECRETS))


def site(directory: Path, application: str = APPLICATION) -> Path:
    return write_manifests(directory, stack=STACK, application=application)


def assert_no_secret(text: str) -> None:
    for value in SECRETS.values():
        assert value not in text


async def test_apply_creates_default_and_device_associations_tokens_masked(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    run, report = await eng.apply(paths)
    assert not report.failed, report.failed
    summary = step_summary(run)
    assert [s[:2] for s in summary["package default tracker-app FPort 199"]] == [("as", "set")]
    assert [s[:2] for s in summary["package association tracker-app/tracker-1 FPort 197"]] == [
        ("as", "set")
    ]
    rendered = "\n".join(str(line) for line in render_plan(run.plan, full=True))
    assert "(sensitive)" in rendered
    assert "alcsync-v1" in rendered and "threshold" in rendered  # no secret: shown
    assert_no_secret(rendered)
    assert_no_secret(run.plan.dumps())

    default = (await client.get(f"{DEFAULTS}/199", params={"field_mask": "data"})).json()
    assert default["package_name"] == "lora-cloud-device-management-v1"
    assert default["data"] == {
        "token": SECRETS["LORA_CLOUD_TOKEN"],
        "server_url": "https://mgs.loracloud.com",
    }
    own = (await client.get(f"{DEVICE}/197", params={"field_mask": "data"})).json()
    assert own["data"]["token"] == SECRETS["GEO_TOKEN"] and own["data"]["multi_frame"] is True

    again, _ = await eng.apply(paths)
    assert again.plan.changes == [], [str(c.key) for c in again.plan.changes]


async def test_drift_of_a_token_is_masked_and_repaired(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    _, report = await eng.apply(paths)
    assert not report.failed
    console = {
        "default": {"data": {"token": "console-typed-token"}},
        "field_mask": {"paths": ["data"]},
    }
    assert (await client.put(f"{DEFAULTS}/199", json=console)).status_code == 200
    renamed = {
        "default": {"package_name": "lora-cloud-geolocation-v3"},
        "field_mask": {"paths": ["package_name"]},
    }
    assert (await client.put(f"{DEFAULTS}/202", json=renamed)).status_code == 200

    run = await eng.plan(paths)
    changes = {str(c.key): c for c in run.plan.changes}
    assert set(changes) == {
        "package default tracker-app FPort 199",
        "package default tracker-app FPort 202",
    }
    [data] = [c for s in changes["package default tracker-app FPort 199"].steps for c in s.changes]
    assert data.path == "data" and data.sensitive
    [name] = [c for s in changes["package default tracker-app FPort 202"].steps for c in s.changes]
    assert (name.old, name.new) == ("lora-cloud-geolocation-v3", "alcsync-v1")
    rendered = "\n".join(str(line) for line in render_plan(run.plan))
    assert "console-typed-token" not in rendered and "console-typed-token" not in run.plan.dumps()
    assert_no_secret(rendered)

    _, report = await eng.apply(paths)
    assert not report.failed
    default = (await client.get(f"{DEFAULTS}/199", params={"field_mask": "data"})).json()
    assert default["data"]["token"] == SECRETS["LORA_CLOUD_TOKEN"]
    assert (await eng.plan(paths)).plan.changes == []


async def test_a_changed_token_is_an_update_without_showing_either(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    _, report = await eng.apply(paths)
    assert not report.failed
    eng.environ_extra = {**SECRETS, "GEO_TOKEN": "AQEA-rotated-token-3"}
    run, report = await eng.apply(paths)
    assert not report.failed
    [change] = run.plan.changes
    assert str(change.key) == "package association tracker-app/tracker-1 FPort 197"
    assert change.action == "update"
    assert "AQEA-rotated-token-3" not in run.plan.dumps()
    own = (await client.get(f"{DEVICE}/197", params={"field_mask": "data"})).json()
    assert own["data"]["token"] == "AQEA-rotated-token-3"


async def test_prune_deletes_owned_associations_only(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [site(tmp_path)]
    _, report = await eng.apply(paths)
    assert not report.failed
    # A Console-added association on a device whose list the manifest does not declare, and an
    # application nobody owns: never touched.
    extra = {
        "association": {"package_name": "alcsync-v1"},
        "field_mask": {"paths": ["package_name"]},
    }
    other_device = "/as/applications/tracker-app/devices/unlisted/packages/associations/202"
    assert (await client.put(other_device, json=extra)).status_code == 200
    response = await client.post(
        "/users/admin-user/applications",
        json={"application": {"ids": {"application_id": "someone-else"}}},
    )
    assert response.status_code == 200, response.text
    theirs = "/as/applications/someone-else/packages/associations/199"
    foreign = {"default": {"package_name": "alcsync-v1"}, "field_mask": {"paths": ["package_name"]}}
    assert (await client.put(theirs, json=foreign)).status_code == 200

    fewer = APPLICATION.replace(
        "  - f_port: 202\n    package_name: alcsync-v1\n    data: {threshold: 8}\n", ""
    ).replace(
        "packages:\n  - f_port: 197\n    package_name: lora-cloud-geolocation-v3\n"
        "    data: {token: {env: GEO_TOKEN}, query: TOARSSI, multi_frame: true}\n",
        "packages: []\n",
    )
    paths = [site(tmp_path, fewer)]
    run = await eng.plan(paths)
    assert run.plan.changes == []
    assert {str(c.key) for c in run.plan.orphans} == {
        "package default tracker-app FPort 202",
        "package association tracker-app/tracker-1 FPort 197",
    }
    run, report = await eng.apply(paths, prune=True)
    assert not report.failed
    listing = (await client.get(DEFAULTS)).json()
    assert [d["ids"]["f_port"] for d in listing["defaults"]] == [199]
    assert (await client.get(DEVICE)).json() == {}
    assert (await client.get(other_device)).status_code == 200
    assert (await client.get(theirs)).status_code == 200
    assert (await eng.plan(paths, prune=True)).plan.changes == []


@needs_shared
async def test_requests_match_the_real_routes_and_masks(
    emulator_transport: httpx.ASGITransport, admin_api_key: str, tmp_path: Path
) -> None:
    recorder = Recorder(emulator_transport)
    eng = Engine(recorder, admin_api_key, environ_extra=dict(SECRETS))
    paths = [site(tmp_path)]
    _, report = await eng.apply(paths)
    assert not report.failed
    changed = APPLICATION.replace("threshold: 8", "threshold: 9").replace(
        "f_port: 197", "f_port: 198"
    )
    paths = [site(tmp_path, changed)]
    _, report = await eng.apply(paths, prune=True, force=True)
    assert not report.failed
    problems, rpcs = audit(recorder.requests)
    assert problems == []
    assert {
        "ApplicationPackageRegistry/ListDefaultAssociations",
        "ApplicationPackageRegistry/SetDefaultAssociation",
        "ApplicationPackageRegistry/ListAssociations",
        "ApplicationPackageRegistry/SetAssociation",
        "ApplicationPackageRegistry/DeleteAssociation",
    } <= rpcs


def test_validation_errors_are_located(tmp_path: Path) -> None:
    broken = """
    kind: Application
    id: tracker-app
    packages:
      - f_port: 0
        package_name: alcsync-v1
      - f_port: 199
        package_name: Not_A_Name
      - f_port: 10
        package_name: lora-cloud-geolocation-v3
        data: {token: {env: UNSET_TOKEN}}
      - f_port: 11
        package_name: lora-cloud-geolocation-v3
        data: {nested: {inner: {env: GEO_TOKEN}}}
    """
    write_manifests(tmp_path, stack=STACK, application=textwrap.dedent(broken))
    result = load_manifests([tmp_path], environ=SECRETS, kinds=MANIFEST_KINDS)
    errors = {d.location.line: d.message for d in result.diagnostics if d.severity == "error"}
    assert "greater than or equal to 1" in errors[4], errors
    assert "pattern" in errors[7], errors
    assert "UNSET_TOKEN" in errors[10] and "is not set" in errors[10], errors
    assert "top-level" in errors[13], errors
    assert all(v not in str(result.diagnostics) for v in SECRETS.values())


def test_duplicate_f_ports_and_unknown_packages_are_located(tmp_path: Path) -> None:
    twice = """
    kind: Application
    id: tracker-app
    packages:
      - f_port: 12
        package_name: my-own-package
      - f_port: 12
        package_name: alcsync-v1
    """
    write_manifests(tmp_path, stack=STACK, application=textwrap.dedent(twice))
    result = load_manifests([tmp_path], environ=SECRETS, kinds=MANIFEST_KINDS)
    [error] = [d for d in result.diagnostics if d.severity == "error"]
    assert error.location.line == 6
    assert "duplicate package association on FPort 12 in application `tracker-app`" in (
        error.message
    )
    [warning] = [d for d in result.diagnostics if d.severity == "warning"]
    assert warning.location.line == 5
    assert "`my-own-package` is not one The Things Stack runs" in warning.message


def test_an_inline_token_is_warned_about(tmp_path: Path) -> None:
    inline = APPLICATION.replace("{env: LORA_CLOUD_TOKEN}", "written-in-git")
    site(tmp_path, inline)
    result = load_manifests([tmp_path], environ=SECRETS, kinds=MANIFEST_KINDS)
    assert not result.has_errors, result.diagnostics
    [warning] = [d for d in result.diagnostics if d.code == "inline-secret"]
    assert "data.token" in warning.message or "token" in warning.message
    assert "written-in-git" not in warning.message
    assert "2 package associations" in result.summary() or "package association" in result.summary()


async def test_a_console_token_is_never_shown_where_the_manifest_has_none(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    """The alcsync default's manifest `data` holds no secret, but a token typed in the Console
    does: the change of `data` must not show the live value."""
    paths = [site(tmp_path)]
    _, report = await eng.apply(paths)
    assert not report.failed
    console = {
        "default": {"data": {"threshold": 8, "token": "console-typed-token"}},
        "field_mask": {"paths": ["data"]},
    }
    assert (await client.put(f"{DEFAULTS}/202", json=console)).status_code == 200
    run = await eng.plan(paths)
    [change] = run.plan.changes
    [data] = [c for s in change.steps for c in s.changes]
    assert data.path == "data" and data.sensitive
    rendered = "\n".join(str(line) for line in render_plan(run.plan, full=True))
    assert "console-typed-token" not in rendered
    assert "console-typed-token" not in run.plan.dumps()
