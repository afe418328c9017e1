"""Saved plans: one consistent report (done, failed, skipped, stale) on one stream, and a plan
refused up front when applied to other manifests or another target."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ServedEmulator
from tests.core.support import site
from tests.operator.support import Cli

pytestmark = pytest.mark.slow


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_stale_changes_are_counted_in_one_report_on_stdout(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    manifests = site(tmp_path / "manifests")
    devices = manifests / "devices.yaml"
    cli = Cli(served_emulator, tmp_path)
    cli("apply", "manifests", "--auto-approve")

    # Fully stale: the one planned change is edited again before apply.
    edit(devices, "name: OTAA 1.0.3", "name: First")
    cli("plan", "manifests", "--out", "plan.json")
    edit(devices, "name: First", "name: Second")
    cli("apply", "--plan", "plan.json", expect=1)
    assert "No changes" not in cli.stdout
    assert "stale   device field-sensors/otaa-103: manifests changed since the plan" in cli.stdout
    assert "Apply: 0 done, 0 failed, 0 skipped, 1 stale." in cli.stdout
    assert "otaa-103" not in cli.stderr

    # Partly stale: two planned changes, one edited again.
    edit(devices, "id: otaa-11\n", "id: otaa-11\nname: Eleven\n")
    cli("plan", "manifests", "--out", "plan.json")
    edit(devices, "name: Eleven", "name: Twelve")
    cli("apply", "--plan", "plan.json", expect=1)
    assert "Apply: 1 done, 0 failed, 0 skipped, 1 stale." in cli.stdout
    assert "stale   device field-sensors/otaa-11: manifests changed since the plan" in cli.stdout


def test_a_plan_for_other_manifests_or_another_target_is_refused_up_front(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    site(tmp_path / "manifests")
    site(tmp_path / "other")
    cli = Cli(served_emulator, tmp_path)
    cli("plan", "manifests", "--out", "plan.json")
    message = cli("apply", "other", "--plan", "plan.json", expect=1)
    assert "the plan was made from the manifests manifests, not other" in message

    elsewhere = Cli(served_emulator, tmp_path, RECONCILER_TTS_URL="http://127.0.0.1:9")
    message = elsewhere("apply", "--plan", "plan.json", expect=1)
    assert "the plan was made for tts target site-a at" in message
    assert "http://127.0.0.1:9" in message
    # Refused before any request: the unreachable server is never asked.
    assert "no response" not in message and "connect" not in message.lower()
    # Nothing was applied.
    cli("plan", "manifests", "--detailed-exitcode", expect=2)
