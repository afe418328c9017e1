"""API keys through the CLI against the served emulator: plan (saved), apply, drift, a rotation
applied from a saved plan; no output, saved plan or request log holds a key's secret, and the
sink file is 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.cli_runner import CliRunner
from tests.conftest import ServedEmulator
from tests.core.support import STACK, write_manifests

GATEWAY = """
kind: Gateway
id: cli-gw
frequency_plan_ids: [EU_863_870_TTN]
api_keys:
  - name: link
    rights: [RIGHT_GATEWAY_LINK]
    deliver: {file: secrets/cli-gw.key}
"""


@pytest.mark.slow
def test_key_secret_is_in_the_sink_only(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    manifests = write_manifests(tmp_path / "manifests", stack=STACK, gateway=GATEWAY)
    cli = CliRunner(
        {"TTS_API_KEY": served_emulator.api_key, "RECONCILER_TTS_URL": served_emulator.root_url},
        tmp_path,
    )
    plan_file = tmp_path / "plan.json"
    cli("validate", "manifests")
    assert "(sensitive)" in cli("plan", "manifests", "--out", str(plan_file), "--full")
    saved = [plan_file.read_text()]
    cli("apply", "--plan", str(plan_file), "-v")
    sink = manifests / "secrets" / "cli-gw.key"
    assert stat.S_IMODE(os.stat(sink).st_mode) == 0o600
    first = sink.read_text().strip()
    cli("drift", "manifests", expect=0)
    cli("plan", "manifests", "--format", "markdown")

    # Rotation (the key is due at once), planned, saved, applied.
    (manifests / "gateway.yaml").write_text(
        GATEWAY.replace("    deliver:", "    rotate_after_days: 1\n    deliver:")
    )
    with served_emulator.client() as client:
        (key,) = client.get("/gateways/cli-gw/api-keys").json()["api_keys"]
    # Time passes: the key's age comes from its created_at, which only the store can move.
    app = served_emulator.app
    store = app.state.emulator.store
    record = store.api_keys.get(key["id"])
    record["api_key"]["created_at"] = "2000-01-01T00:00:00Z"
    store.api_keys.put(key["id"], record)
    text = cli("plan", "manifests", "--out", str(plan_file))
    assert "rotate: the key is" in text
    saved.append(plan_file.read_text())
    cli("apply", "--plan", str(plan_file), "-v")
    second = sink.read_text().strip()
    assert second != first
    with served_emulator.client() as client:
        keys = client.get("/gateways/cli-gw/api-keys").json()["api_keys"]
    assert [k["name"] for k in keys] == ["link"]
    cli("drift", "manifests", "--format", "json", expect=0)

    everything = "\n".join(cli.outputs + saved)
    for secret in (first, second):
        assert secret.split(".")[2] not in everything
        assert secret.split(".")[2].lower() not in everything
