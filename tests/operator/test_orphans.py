"""Owned resources that left the manifests are visible without --prune: the plan shows them
(kept, deleted with --prune), drift counts them (exit 2), and a webhook added in the Console is
not called "owned by this stack"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ServedEmulator
from tests.core.support import site
from tests.operator.support import Cli

pytestmark = pytest.mark.slow


def test_orphans_are_shown_by_plan_and_counted_by_drift(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    manifests = site(tmp_path / "manifests")
    cli = Cli(served_emulator, tmp_path)
    cli("apply", "manifests", "--auto-approve")
    # A device leaves the manifests; a webhook is added in the Console.
    devices = manifests / "devices.yaml"
    devices.write_text(devices.read_text().split("---\n", 1)[1])
    with served_emulator.client() as client:
        client.post(
            "/as/webhooks/field-sensors",
            json={
                "webhook": {
                    "ids": {
                        "webhook_id": "console-hook",
                        "application_ids": {"application_id": "field-sensors"},
                    },
                    "base_url": "https://console.example.com/",
                    "format": "json",
                },
                "field_mask": {"paths": ["base_url", "format"]},
            },
        ).raise_for_status()

    plan = cli("plan", "manifests", "--detailed-exitcode")  # nothing to apply without --prune
    assert "The live state matches" not in plan
    assert "Owned, not in the manifests (kept; deleted with --prune):" in plan
    assert (
        "? device field-sensors/otaa-103  # owned by this stack and no longer in the "
        "manifests: deleted with --prune" in plan
    )
    hook_line = next(line for line in plan.splitlines() if "console-hook" in line)
    assert "owned by this stack" not in hook_line
    assert "carries no ownership marker" in hook_line

    drift = cli("drift", "manifests", expect=2)
    assert "In sync" not in drift
    assert "2 owned resource(s) are not in them" in drift
    cli("drift", "manifests", "--format", "json", expect=2)
    orphans = json.loads(cli.stdout)["orphans"]
    assert sorted(o["label"] for o in orphans) == [
        "device field-sensors/otaa-103",
        "webhook field-sensors/console-hook",
    ]

    # Nothing is deleted without --prune; with it, both go.
    cli("apply", "manifests", "--auto-approve")
    cli("drift", "manifests", expect=2)
    cli("apply", "manifests", "--auto-approve", "--prune")
    cli("drift", "manifests", expect=0)
