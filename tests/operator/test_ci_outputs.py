"""CI outputs: GitHub Actions annotations and step summaries (detected from the runner's
environment), JSON diagnostics elsewhere, and JUnit XML for drift."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reconciler.ci import annotation
from tests.conftest import ServedEmulator
from tests.core.support import KEYS, site
from tests.operator.golden_files import check_golden
from tests.operator.support import Cli

FLEET = """
kind: Fleet
application: field-sensors
csv: fleet.csv
"""


def broken_site(tmp_path: Path) -> Path:
    """Manifests with errors in YAML (a bad EUI, an unknown key) and in a CSV (a bad EUI, a
    long row), and a warning (an inline secret)."""
    manifests = site(tmp_path / "manifests", fleet=FLEET)
    devices = manifests / "devices.yaml"
    text = devices.read_text()
    text = text.replace('dev_eui: "70B3D57ED0000002"', 'dev_eui: "70B3D57ED00000XY"')
    text = text.replace("name: OTAA 1.0.3", "nmae: OTAA 1.0.3")
    text = text.replace("{env: CLASS_C_APP_KEY}", f'"{KEYS["CLASS_C_APP_KEY"]}"')
    devices.write_text(text)
    (manifests / "fleet.csv").write_text(
        "id;dev_eui;app_key\n"
        "n-1;70B3D57ED00001ZZ;env:OTAA_103_APP_KEY\n"
        "n-2;70B3D57ED0000102;env:OTAA_103_APP_KEY;extra,with:colon%\n"
    )
    return manifests


def test_validate_annotations_and_step_summary_golden(tmp_path: Path) -> None:
    broken_site(tmp_path)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    cli = Cli.offline(tmp_path, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    cli("validate", "manifests", expect=1)
    annotations = [line for line in cli.stderr.splitlines() if line.startswith("::")]
    check_golden("validate.annotations.txt", "\n".join(annotations) + "\n")
    assert any(a.startswith("::error file=manifests/fleet.csv,line=2,col=2") for a in annotations)
    assert any(a.startswith("::error file=manifests/devices.yaml,") for a in annotations)
    # The summary is appended to what earlier steps wrote.
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    check_golden("validate.summary.md", text.removeprefix("earlier step\n"))
    # The usual located diagnostics are still on stderr for the log.
    assert "manifests/devices.yaml:" in cli.stderr


def test_no_annotations_outside_github_actions_and_json_diagnostics(tmp_path: Path) -> None:
    broken_site(tmp_path)
    cli = Cli.offline(tmp_path)
    cli("validate", "manifests", expect=1)
    assert "::error" not in cli.stdout + cli.stderr
    cli("validate", "manifests", "--format", "json", expect=1)
    data = json.loads(cli.stdout)
    assert data["valid"] is False and data["errors"] == len(
        [d for d in data["diagnostics"] if d["severity"] == "error"]
    )
    found = {(Path(d["file"]).name, d["line"], d["code"]) for d in data["diagnostics"]}
    assert ("fleet.csv", 3, "csv-extra-cells") in found
    assert KEYS["CLASS_C_APP_KEY"] not in cli.stdout
    site(tmp_path / "good")
    cli("validate", "good", "--format", "json")
    assert json.loads(cli.stdout)["valid"] is True


def test_an_annotation_cannot_be_broken_out_of() -> None:
    line = annotation("error", "bad\n::warning::injected 100%", file="a,b:c.yaml", line=3)
    assert line == "::error file=a%2Cb%3Ac.yaml,line=3::bad%0A::warning::injected 100%25"
    assert "\n" not in line


@pytest.mark.slow
def test_plan_annotations_and_summary_and_drift_junit(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    manifests = site(tmp_path / "manifests")
    summary = tmp_path / "summary.md"
    cli = Cli(served_emulator, tmp_path, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    cli("apply", "manifests", "--auto-approve")
    devices = manifests / "devices.yaml"
    devices.write_text(devices.read_text().replace("name: OTAA 1.0.3", "name: Renamed"))
    cli("plan", "manifests")
    assert (
        "::notice file=manifests/devices.yaml,line=1,col=1,title=reconciler plan::"
        "update device field-sensors/otaa-103: fields differ"
    ) in cli.stderr.splitlines()
    assert "### reconciler plan for stack <code>site-a</code>" in summary.read_text()

    cli("drift", "manifests", "--junit", "drift.xml", expect=2)
    suite = ET.parse(tmp_path / "drift.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "1" and suite.get("tests") == "7"
    (failed,) = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed.get("name") == "device field-sensors/otaa-103"
    failure = failed.find("failure")
    assert failure is not None and 'name: "OTAA 1.0.3" -> "Renamed"' in (failure.text or "")
    cli("apply", "manifests", "--auto-approve")
    cli("drift", "manifests", "--junit", "drift.xml")
    suite = ET.parse(tmp_path / "drift.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
