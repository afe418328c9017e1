"""The CLI as an operator runs it, against the served emulator: exit codes, saved plans, drift,
and no secret in any output or file."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import CliRunner
from tests.conftest import ServedEmulator
from tests.core.support import KEYS, site

ROOT = Path(__file__).resolve().parents[2]


class Cli(CliRunner):
    def __init__(self, served: ServedEmulator, cwd: Path) -> None:
        env = {**KEYS, "TTS_API_KEY": served.api_key, "RECONCILER_TTS_URL": served.root_url}
        super().__init__(env, cwd)


def secret_forms(value: str) -> list[str]:
    forms = [value, value.lower()]
    if len(value) == 32:
        raw = bytes.fromhex(value)
        forms += [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    return forms


@pytest.mark.slow
def test_operator_workflow_exit_codes_and_no_secret_anywhere(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    manifests = site(tmp_path / "manifests")
    cli = Cli(served_emulator, tmp_path)
    plan_file = tmp_path / "plan.json"

    assert "valid" in cli("validate", "manifests")
    text = cli("plan", "manifests", "--out", str(plan_file), "--full")
    assert "(sensitive)" in text
    cli("plan", "manifests", "--detailed-exitcode", expect=2)
    saved = json.loads(plan_file.read_text())
    assert saved["format_version"] == 3
    cli("plan", "manifests", "--format", "json")
    as_json = json.loads(cli.stdout)
    assert as_json["summary"]["create"] == saved["summary"]["create"] > 0

    applied = cli("apply", "--plan", str(plan_file))
    assert "0 failed, 0 skipped" in applied
    cli("plan", "manifests", "--detailed-exitcode", expect=0)
    cli("drift", "manifests", expect=0)

    # A stale saved plan: planned, then the device changes on the server before apply.
    (manifests / "devices.yaml").write_text(
        (manifests / "devices.yaml").read_text().replace("name: OTAA 1.0.3", "name: Renamed")
    )
    cli("plan", "manifests", "--out", str(plan_file))
    # Out of band (a Console user): a root key on the Join Server and a name on the IS.
    with served_emulator.client() as client:
        ids = {
            "device_id": "otaa-103",
            "application_ids": {"application_id": "field-sensors"},
            "dev_eui": "70B3D57ED0000001",
            "join_eui": "70B3D57ED0000000",
        }
        client.put(
            "/js/applications/field-sensors/devices/otaa-103",
            json={
                "end_device": {
                    "ids": ids,
                    "root_keys": {"app_key": {"key": "DEADBEEFDEADBEEFDEADBEEFDEADBEEF"}},
                },
                "field_mask": {"paths": ["root_keys.app_key.key"]},
            },
        ).raise_for_status()
        client.put(
            "/applications/field-sensors/devices/otaa-103",
            json={"end_device": {"name": "Console name"}, "field_mask": {"paths": ["name"]}},
        ).raise_for_status()
    stale = cli("apply", "--plan", str(plan_file), expect=1)
    assert "stale   device field-sensors/otaa-103" in stale
    assert "since the plan" in stale

    drift = cli("drift", "manifests", expect=2)
    assert "device field-sensors/otaa-103" in drift
    assert "root_keys.app_key.key: (sensitive, changed)" in drift
    assert 'name: "Console name" -> "Renamed"' in drift
    cli("drift", "manifests", "--format", "json", expect=2)
    drift_json = json.loads(cli.stdout)
    (change,) = [r for r in drift_json["resources"] if r["action"] != "no-op"]
    assert {s["endpoint"] for s in change["steps"]} == {"is", "js"}

    cli("apply", "manifests", "--auto-approve")
    cli("drift", "manifests", expect=0)

    # Errors: a wrong key is a clean message naming the server, exit 1.
    wrong = Cli(served_emulator, tmp_path)
    wrong.env["TTS_API_KEY"] = served_emulator.api_key[:-4] + "AAAA"
    message = wrong("plan", "manifests", expect=1)
    assert "Identity Server" in message and "HTTP 401" in message
    cli.outputs += wrong.outputs
    # Not on a terminal and no --auto-approve: refuses instead of waiting for input.
    (manifests / "devices.yaml").write_text(
        (manifests / "devices.yaml").read_text().replace("name: Renamed", "name: Again")
    )
    refused = cli("apply", "manifests", expect=1)
    assert "--auto-approve" in refused

    everything = "\n".join(cli.outputs) + plan_file.read_text()
    secrets = [*KEYS.values(), served_emulator.api_key, "DEADBEEFDEADBEEFDEADBEEFDEADBEEF"]
    for secret in secrets:
        for form in secret_forms(secret):
            assert form not in everything, "a secret value appears in the output"
    assert "top-secret-webhook-token" not in everything


@pytest.mark.slow
def test_manifest_errors_exit_1_with_locations(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    manifests = site(tmp_path / "manifests")
    (manifests / "devices.yaml").write_text(
        (manifests / "devices.yaml")
        .read_text()
        .replace('dev_eui: "70B3D57ED0000002"', "dev_eui: nope")
    )
    cli = Cli(served_emulator, tmp_path)
    for command in ("validate", "plan", "apply", "drift"):
        out = cli(command, "manifests", expect=1)
        assert "devices.yaml:" in out and "dev_eui" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plna"], "No such command 'plna'. Did you mean 'plan'?"),
        (["plan", "--bogus"], "No such option: --bogus"),
        (["apply", "--parallelism", "0"], "Invalid value for '--parallelism'"),
        (["plan", "--format", "yaml"], "'yaml' is not one of 'text', 'json'"),
        ([], "Usage:"),
    ],
)
def test_usage_errors_print_clicks_message_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    output = result.stdout + result.stderr
    assert message in output
    assert "internal error" not in output and "Traceback" not in output


def test_a_version_1_saved_plan_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    old = {
        "format_version": 1,
        "stack": "site-a",
        "target": {"identity": "https://eu1.cloud.thethings.network"},
        "resources": [{"kind": "device", "application_id": "app", "id": "dev", "action": "create"}],
    }
    (tmp_path / "old-plan.json").write_text(json.dumps(old))
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--plan", "old-plan.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "format_version 1" in result.stderr
    assert "run `reconciler plan --out` again" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
