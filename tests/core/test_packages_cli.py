"""Package associations through the CLI against the served emulator: validate, plan (saved,
Markdown, JSON), apply -v, a Console token change found by drift and repaired, import; no
output, saved plan or imported file holds a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_runner import CliRunner
from tests.conftest import ServedEmulator
from tests.core.support import STACK, write_manifests
from tests.core.test_packages import APPLICATION, DEFAULTS, SECRETS


@pytest.mark.slow
def test_tokens_never_leave_the_references(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    write_manifests(tmp_path / "manifests", stack=STACK, application=APPLICATION)
    cli = CliRunner(
        {
            "TTS_API_KEY": served_emulator.api_key,
            "RECONCILER_TTS_URL": served_emulator.root_url,
            **SECRETS,
        },
        tmp_path,
    )
    plan_file = tmp_path / "plan.json"
    assert "package association" in cli("validate", "manifests")
    text = cli("plan", "manifests", "--out", str(plan_file), "--full")
    assert "(sensitive)" in text and "package default tracker-app FPort 199" in text
    saved = [plan_file.read_text()]
    cli("plan", "manifests", "--format", "markdown")
    cli("apply", "--plan", str(plan_file), "-v")
    cli("drift", "manifests", expect=0)

    with served_emulator.client() as client:
        console = {
            "default": {"data": {"token": "console-typed-token"}},
            "field_mask": {"paths": ["data"]},
        }
        assert client.put(f"{DEFAULTS}/199", json=console).status_code == 200
    drift = cli("drift", "manifests", "--format", "json", expect=2)
    assert "package default tracker-app FPort 199" in drift
    cli("apply", "manifests", "--auto-approve", "-v")
    cli("drift", "manifests", expect=0)

    cli("import", "--application", "tracker-app", "--out", "imported")
    imported = [p.read_text() for p in (tmp_path / "imported").rglob("*") if p.is_file()]

    everything = "\n".join(cli.outputs + saved + imported)
    for token in (*SECRETS.values(), "console-typed-token"):
        assert token not in everything
