"""`--target KIND/ID` (repeatable, globs on the ids): plan and apply a subset; nothing else is
changed or pruned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ServedEmulator
from tests.core.support import site
from tests.operator.support import Cli

pytestmark = pytest.mark.slow


def test_target_plans_and_applies_only_what_it_matches(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    manifests = site(tmp_path / "manifests")
    cli = Cli(served_emulator, tmp_path)
    cli("apply", "manifests", "--auto-approve")
    devices = manifests / "devices.yaml"
    text = devices.read_text().replace("name: OTAA 1.0.3", "name: One")
    text = text.replace("id: otaa-11\n", "id: otaa-11\nname: Eleven\n")
    devices.write_text("---\n".join(p for p in text.split("---\n") if "id: abp-102" not in p))
    app = manifests / "application.yaml"
    app.write_text(app.read_text().replace("name: Field sensors", "name: Field sensors v2"))

    cli("plan", "manifests", "--prune", "--target", "device/*/otaa-1*", "--format", "json")
    planned = json.loads(cli.stdout)
    assert sorted(r["label"] for r in planned["resources"] if r["action"] != "no-op") == [
        "device field-sensors/otaa-103",
        "device field-sensors/otaa-11",
    ]
    assert planned["options"]["targets"] == ["device/*/otaa-1*"]

    # Repeatable; --prune deletes nothing outside the targets.
    out = cli(
        "apply", "manifests", "--auto-approve", "--prune",
        "--target", "device/field-sensors/otaa-103", "--target", "application/field-sensors",
    )  # fmt: skip
    assert "only: device/field-sensors/otaa-103, application/field-sensors" in out
    assert "Apply: 2 done, 0 failed, 0 skipped, 0 stale." in out

    cli("plan", "manifests", "--prune", "--format", "json")
    left = {r["label"]: r["action"] for r in json.loads(cli.stdout)["resources"]}
    assert left["device field-sensors/otaa-11"] == "update"
    assert left["device field-sensors/abp-102"] == "delete"
    assert left["device field-sensors/otaa-103"] == "no-op"
    assert left["application field-sensors"] == "no-op"

    # A saved plan keeps its targets.
    cli("plan", "manifests", "--prune", "--target", "device/*/abp-*", "--out", "plan.json")
    out = cli("apply", "--plan", "plan.json")
    assert "Apply: 1 done, 0 failed, 0 skipped, 0 stale." in out
    cli("plan", "manifests", "--prune", "--format", "json")
    left = {r["label"]: r["action"] for r in json.loads(cli.stdout)["resources"]}
    assert "device field-sensors/abp-102" not in left
    assert left["device field-sensors/otaa-11"] == "update"


def test_a_target_that_matches_nothing_or_is_not_kind_id_is_refused(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    site(tmp_path / "manifests")
    cli = Cli(served_emulator, tmp_path)
    message = cli("plan", "manifests", "--target", "device/field-sensors/nope-*", expect=1)
    assert "--target device/field-sensors/nope-* matches no resource" in message
    message = cli("plan", "manifests", "--target", "otaa-103", expect=2)
    assert "is not KIND/ID" in message
