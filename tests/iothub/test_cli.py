"""The CLI against the served IoT Hub emulator, as an operator runs it: validate, plan, apply,
a second plan that is empty, out-of-band changes made with Microsoft's `azure-iot-hub` SDK seen
by `drift` (exit 2) and repaired by `apply`, the credentials file, and no key or connection
string in any output, saved plan or file but the credentials file."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.iot.hub.protocol.models import Twin, TwinProperties

from tests.cli_runner import CliRunner
from tests.conftest import serve_in_thread
from tests.iothub.support import DEVICES, HUB, connection_string, new_key, write_manifests
from tests.iothub_emulator.conftest import build_app, registry_manager

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served_hub() -> Iterator[tuple[str, str]]:
    key = new_key()
    with serve_in_thread(build_app(key)) as root_url:
        yield root_url, key


class Cli(CliRunner):
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        super().__init__({**env, "PATH": "/usr/bin:/bin", "NO_COLOR": "1", "COLUMNS": "300"}, cwd)


@pytest.mark.slow
def test_operator_workflow_with_sdk_changes_and_no_secret_anywhere(
    served_hub: tuple[str, str], tmp_path: Path
) -> None:
    root_url, owner_key = served_hub
    tree = write_manifests(tmp_path / "manifests", hub=HUB, devices=DEVICES)
    device_keys = {"SENSOR_2_PRIMARY": new_key(), "SENSOR_2_SECONDARY": new_key()}
    owner = connection_string(owner_key)
    cli = Cli(
        {
            "IOTHUB_CONNECTION_STRING": owner,
            "RECONCILER_IOTHUB_URL": root_url,
            **device_keys,
        },
        tmp_path,
    )
    assert "valid: stack plant-a: 5 iothub devices, 1 iothub module" in cli("validate", str(tree))
    out = cli("plan", str(tree), "--out", "plan.json", "--detailed-exitcode", expect=2)
    assert "+ edge device gateway-1" in out
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["targets"][0]["provider"] == "iothub"
    cli("apply", "--plan", "plan.json")
    assert "No changes" in cli("plan", str(tree), "--detailed-exitcode")

    # Out of band, with Microsoft's SDK: a desired property, a removed tag, and the
    # integration's lorawan tags and an undeclared desired key (both must survive); a device
    # disabled.
    with registry_manager(root_url, owner) as sdk:
        twin = sdk.get_twin("sensor-1")
        patch = Twin(
            tags={"site": None, "lorawan": {"devEui": "70B3D57ED0000001"}},
            properties=TwinProperties(desired={"interval": 5, "vendor": "x"}),
        )
        sdk.update_twin("sensor-1", patch, twin.etag)
        door = sdk.get_device("door-1")
        sdk.update_device_with_certificate_authority("door-1", door.etag, "disabled")

    out = cli("drift", str(tree), expect=2)
    assert "sensor-1" in out and "door-1" in out
    assert "properties.desired.interval: 5 -> 60" in out
    cli("apply", str(tree), "--auto-approve")
    assert "No changes" in cli("plan", str(tree), "--detailed-exitcode")
    cli("drift", str(tree))
    with registry_manager(root_url, owner) as sdk:
        twin = sdk.get_twin("sensor-1")
        assert twin.tags["lorawan"] == {"devEui": "70B3D57ED0000001"}
        assert twin.tags["site"] == "north"
        assert twin.properties.desired["vendor"] == "x"
        assert twin.properties.desired["interval"] == 60
        assert sdk.get_device("door-1").status == "enabled"
        generated = sdk.get_device("sensor-1").authentication.symmetric_key.primary_key

    # Credentials: to a 0600 file, never over an existing one.
    cli("credentials", str(tree), "--out", "creds.csv")
    creds = tmp_path / "creds.csv"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    lines = creds.read_text().splitlines()
    assert any(line.startswith("sensor-1,HostName=") and generated in line for line in lines)
    assert "exists" in cli("credentials", str(tree), "--out", "creds.csv", expect=1)
    cli("credentials", str(tree), "--out", "creds.csv", "--overwrite")

    everything = "\n".join(cli.outputs) + (tmp_path / "plan.json").read_text()
    for secret in (owner_key, generated, *device_keys.values()):
        assert secret not in everything, "a key appears in the output or the saved plan"
    assert "SharedAccessKey=" not in everything


def test_validate_reports_hub_rules_with_locations(tmp_path: Path) -> None:
    deep = "1"
    for level in range(12, 1, -1):
        deep = f"{{l{level}: {deep}}}"
    bad = """
    kind: IotHubDevice
    id: "bad id/with slash"
    ---
    kind: IotHubDevice
    id: rules
    statusReason: "{long}"
    authentication: {{type: selfSigned, x509Thumbprint: {{primaryThumbprint: "XYZ"}}}}
    tags: {{"a.b": 1}}
    ---
    kind: IotHubDevice
    id: deep
    properties: {{desired: {deep}}}
    ---
    kind: IotHubDevice
    id: leaf
    parent: not-declared
    ---
    kind: IotHubDevice
    id: leaf
    ---
    kind: IotHubDevice
    id: child
    parent: plain
    ---
    kind: IotHubDevice
    id: plain
    """.format(long="x" * 129, deep=deep)
    tree = write_manifests(tmp_path, hub=HUB, devices=bad)
    cli = Cli({}, tmp_path)
    out = cli("validate", str(tree), expect=1)
    for expected in (
        "devices.yaml:2:1: error: device id `bad id/with slash` is not valid",
        "devices.yaml:6:1: error: statusReason is longer than 128 characters",
        "devices.yaml:7:53: error: a thumbprint is the certificate's SHA-1 (40 hex digits)",
        "devices.yaml:8:1: error: tags[a.b]: key `a.b` has a character twins do not allow",
        "devices.yaml:12:14: error: properties.desired[l2]",
        "nested deeper than 10 levels",
        "devices.yaml:16:1: error: parent `not-declared` of device `leaf` is not declared",
        "devices.yaml:19:1: error: duplicate device `leaf`",
        "parent `plain` of device `child` is not an IoT Edge device",
    ):
        assert expected in out, (expected, out)
    assert "Traceback" not in out
