"""Diagnostics say each thing once, where it is: no follow-on errors of a broken Stack document,
short CSV rows reported like long ones, warnings printed once, estimates rounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.manifest.load import load_manifests
from reconciler.providers.registry import MANIFEST_KINDS
from tests.conftest import ServedEmulator
from tests.core.support import KEYS, STACK, site
from tests.operator.support import Cli


def test_one_bad_field_in_the_stack_is_one_error_in_its_file(tmp_path: Path) -> None:
    manifests = site(tmp_path / "m")
    (manifests / "stack.yaml").write_text(STACK.lstrip() + "safety: {prune: maybe}\n")
    result = load_manifests([manifests], environ=KEYS, kinds=MANIFEST_KINDS)
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert len(errors) == 1, [str(d) for d in errors]
    (error,) = errors
    assert error.location.file.endswith("stack.yaml")
    assert error.location.path == "safety.prune"


FLEET_APP = """
kind: Application
id: csv-fleet
name: CSV fleet
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  lorawan_version: 1.0.3
  lorawan_phy_version: 1.0.3-a
  join_eui: "70B3D57ED0000000"
---
kind: Fleet
application: csv-fleet
csv: fleet.csv
"""


def test_a_row_with_too_few_cells_is_reported_like_one_with_too_many(tmp_path: Path) -> None:
    manifests = site(tmp_path / "m", fleet=FLEET_APP)
    (manifests / "fleet.csv").write_text(
        "id;dev_eui;name;app_key\n"
        "n-1;70B3D57ED0000101;One;env:OTAA_103_APP_KEY\n"
        "n-2;70B3D57ED0000102\n"
        "n-3;70B3D57ED0000103;Three;env:OTAA_103_APP_KEY;extra\n"
    )
    result = load_manifests([manifests], environ=KEYS, kinds=MANIFEST_KINDS)
    found = {
        (d.location.line, d.code, d.severity)
        for d in result.diagnostics
        if d.code.startswith("csv-")
    }
    # Too many cannot be placed (an error); too few are read as empty (spreadsheets drop
    # trailing empty cells), but never silently.
    assert found == {(3, "csv-missing-cells", "warning"), (4, "csv-extra-cells", "error")}


@pytest.mark.slow
def test_a_warning_prints_once_and_the_estimate_is_rounded(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    site(tmp_path / "manifests")
    devices = tmp_path / "manifests" / "devices.yaml"
    # An inline secret is accepted with a warning.
    devices.write_text(
        devices.read_text().replace("{env: OTAA_103_APP_KEY}", f'"{KEYS["OTAA_103_APP_KEY"]}"')
    )
    cli = Cli(served_emulator, tmp_path)
    output = cli("plan", "manifests")
    assert output.count("inline") == 1, output
    assert "devices.yaml" in cli.stderr and "inline" in cli.stderr
    cli("plan", "manifests", "--format", "json")
    plan = json.loads(cli.stdout)
    assert [d["code"] for d in plan["diagnostics"]] == ["inline-secret"]
    assert plan["estimated_seconds"] == round(plan["estimated_seconds"], 1)
    assert plan["warnings"] == []
