"""A device moved to another application, through the CLI against the served emulator: the plan
says what frees its EUIs (or blocks with the remedy), and one apply of the saved plan moves it
(`apply --format json` reports it as one document)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServedEmulator
from tests.core.support import STACK, write_manifests
from tests.core.test_moves import APP, DEVICE
from tests.operator.support import Cli

pytestmark = pytest.mark.slow


def test_device_move_through_the_cli(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    apps = {f"app_{a}": APP.format(app=a) for a in ("app-a", "app-b")}
    write_manifests(manifests, stack=STACK, device=DEVICE.format(app="app-a"), **apps)
    cli = Cli(served_emulator, tmp_path)
    cli("apply", "manifests", "--auto-approve")
    write_manifests(manifests, device=DEVICE.format(app="app-b"))
    blocked = cli("apply", "manifests", "--auto-approve", expect=1)
    assert "Blocked: device app-b/mover needs EUI pair 70B3D57ED0000000/70B3D57ED00000A1" in (
        blocked
    )
    assert "apply with --prune to delete it first" in blocked
    plan = cli("plan", "manifests", "--prune")
    assert "EUI pair 70B3D57ED0000000/70B3D57ED00000A1 is freed first by deleting device " in plan
    # Reviewed as a saved plan, then applied from it.
    cli("plan", "manifests", "--prune", "--out", "move.json")
    cli("apply", "--plan", "move.json", "--format", "json")
    document = json.loads(cli.stdout)
    report = document["report"]
    assert report["summary"] == {"done": 2, "failed": 0, "skipped": 0, "stale": 0}
    assert report["warnings"] == []
    assert {(r["label"], r["action"]) for r in report["results"]} == {
        ("device app-b/mover", "create"),
        ("device app-a/mover", "delete"),
    }
    planned = {r["label"]: r for r in document["plan"]["resources"]}
    assert planned["device app-a/mover"]["releases"] == [
        "EUI pair 70B3D57ED0000000/70B3D57ED00000A1"
    ]
    cli("plan", "manifests", "--prune", "--detailed-exitcode")


def test_drift_full_shows_long_values_whole(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    described = APP.format(app="app-d") + "description: " + "managed text " * 10 + "\n"
    write_manifests(manifests, stack=STACK, app=described)
    cli = Cli(served_emulator, tmp_path)
    cli("apply", "manifests", "--auto-approve")
    console_text = "edited in the Console, " * 6
    changed = httpx.put(
        f"{served_emulator.root_url}/api/v3/applications/app-d",
        headers={"Authorization": f"Bearer {served_emulator.api_key}"},
        json={
            "application": {"description": console_text},
            "field_mask": {"paths": ["description"]},
        },
        timeout=10,
    )
    assert changed.status_code == 200, changed.text
    cut = cli("drift", "manifests", expect=2)
    assert console_text.strip() not in cut
    assert "characters; --full)" in cut
    whole = cli("drift", "manifests", "--full", expect=2)
    assert json.dumps(console_text) in whole
    assert "--full)" not in whole
