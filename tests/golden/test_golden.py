"""Golden plans: the CLI's plan JSON and plan/drift text for fixed scenarios, compared byte for
byte with the files under tests/golden/<case>/.

They pin what an operator sees, so refactors of the engine cannot change it by accident. The
harness uses only public interfaces: the CLI as a subprocess against the served emulator, and the
emulator's HTTP API for out-of-band changes. Values that differ from run to run (the emulator's
port, timestamps, the plan's creation time, digests keyed by the random API key, the time
estimate) are replaced by placeholders before comparing.

`RECONCILER_UPDATE_GOLDEN=1 pytest tests/golden` rewrites the files (review the diff!).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import CliRunner
from tests.conftest import ServedEmulator
from tests.core.support import DEVICES, KEYS, site

GOLDEN = Path(__file__).resolve().parent
UPDATE = os.environ.get("RECONCILER_UPDATE_GOLDEN") == "1"
HOST = "tts.example"

# Keys whose values change from run to run, wherever they appear in the plan JSON.
VOLATILE = {
    "created_at": "<created_at>",
    "desired_digest": "<digest>",
    "estimated_seconds": "<seconds>",
    "live_version": "<version>",
}
VERSION_MAPS = ("live_versions",)  # {endpoint: version} maps: versions replaced, keys kept

pytestmark = pytest.mark.slow


def normalise_json(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in VOLATILE and item is not None:
                out[key] = VOLATILE[key]
            elif key in VERSION_MAPS and isinstance(item, dict):
                out[key] = {k: (None if v is None else "<version>") for k, v in item.items()}
            else:
                out[key] = normalise_json(item)
        return out
    if isinstance(value, list):
        return [normalise_json(v) for v in value]
    return value


class Cli(CliRunner):
    def __init__(self, served: ServedEmulator, cwd: Path) -> None:
        self.served = served
        env = {**KEYS, "TTS_API_KEY": served.api_key, "RECONCILER_TTS_URL": served.root_url}
        super().__init__(env, cwd)

    def __call__(self, *args: str, expect: int = 0) -> str:
        result = self.run(*args, expect=expect)
        # The emulator's address appears as a URL and as the devices' server addresses.
        return re.sub(r"127\.0\.0\.1:\d+", HOST, result.stdout)

    def plan_json(self, *args: str) -> str:
        data = json.loads(self("plan", "manifests", "--format", "json", *args))
        return json.dumps(normalise_json(data), indent=2) + "\n"


def check(case: str, outputs: dict[str, str]) -> None:
    folder = GOLDEN / case
    if UPDATE:
        folder.mkdir(exist_ok=True)
        for name, text in outputs.items():
            (folder / name).write_text(text, encoding="utf-8")
    for name, text in outputs.items():
        expected = (folder / name).read_text(encoding="utf-8")
        assert text == expected, f"{case}/{name} differs from the golden file"


def test_fresh_create(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    site(tmp_path / "manifests")
    cli = Cli(served_emulator, tmp_path)
    check(
        "fresh_create",
        {"plan.json": cli.plan_json(), "plan.txt": cli("plan", "manifests")},
    )


def test_no_changes(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    site(tmp_path / "manifests")
    cli = Cli(served_emulator, tmp_path)
    cli("apply", "manifests", "--auto-approve")
    check(
        "no_changes",
        {
            "plan.json": cli.plan_json(),
            "plan.txt": cli("plan", "manifests"),
            "drift.txt": cli("drift", "manifests"),
        },
    )


def test_drift_on_every_registry(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    """Out-of-band changes on the Identity, Network, Application and Join Servers."""
    site(tmp_path / "manifests")
    cli = Cli(served_emulator, tmp_path)
    cli("apply", "manifests", "--auto-approve")
    device = "/applications/field-sensors/devices"
    ids = {
        "device_id": "otaa-103",
        "application_ids": {"application_id": "field-sensors"},
        "dev_eui": "70B3D57ED0000001",
        "join_eui": "70B3D57ED0000000",
    }
    class_c_ids = {**ids, "device_id": "class-c", "dev_eui": "70B3D57ED0000004"}
    changes: list[tuple[str, dict[str, Any]]] = [
        ("/applications/field-sensors", {"application": {"name": "Renamed in the Console"}}),
        (f"{device}/otaa-103", {"end_device": {"name": "Console name"}}),
        (
            f"/ns{device}/class-c",
            {"end_device": {"ids": class_c_ids, "mac_settings": {"rx2_data_rate_index": 1}}},
        ),
        (
            f"/as{device}/otaa-103",
            {"end_device": {"ids": ids, "formatters": {"up_formatter": "FORMATTER_NONE"}}},
        ),
        (
            f"/js{device}/otaa-103",
            {
                "end_device": {
                    "ids": ids,
                    "root_keys": {"app_key": {"key": "DEADBEEFDEADBEEFDEADBEEFDEADBEEF"}},
                }
            },
        ),
        (
            "/as/webhooks/field-sensors/ingest",
            {"webhook": {"base_url": "https://elsewhere.example.com/"}},
        ),
    ]
    masks = {
        "/applications/field-sensors": ["name"],
        f"{device}/otaa-103": ["name"],
        f"/ns{device}/class-c": ["mac_settings.rx2_data_rate_index"],
        f"/as{device}/otaa-103": ["formatters.up_formatter"],
        f"/js{device}/otaa-103": ["root_keys.app_key.key"],
        "/as/webhooks/field-sensors/ingest": ["base_url"],
    }
    with served_emulator.client() as client:
        for path, body in changes:
            body["field_mask"] = {"paths": masks[path]}
            client.put(path, json=body).raise_for_status()
    check(
        "drift_every_registry",
        {
            "plan.json": cli.plan_json(),
            "plan.txt": cli("plan", "manifests"),
            "drift.txt": cli("drift", "manifests", expect=2),
        },
    )


def test_prune_and_replace(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    """A device and a webhook leave the manifests (prune); a DevEUI changes (replace)."""
    manifests = site(tmp_path / "manifests")
    cli = Cli(served_emulator, tmp_path)
    cli("apply", "manifests", "--auto-approve")
    devices = DEVICES.split("---\n")
    kept = [d for d in devices if "id: abp-102" not in d]
    (manifests / "devices.yaml").write_text(
        "---\n".join(kept).replace('"70B3D57ED0000002"', '"70B3D57ED00000F2"')
    )
    application = (manifests / "application.yaml").read_text()
    webhooks = application.index("webhooks:")
    defaults = application.index("device_defaults:")
    (manifests / "application.yaml").write_text(application[:webhooks] + application[defaults:])
    check(
        "prune_replace",
        {
            "plan.json": cli.plan_json("--prune", "--allow-replace"),
            "plan.txt": cli("plan", "manifests", "--prune", "--allow-replace"),
            "plan_blocked.txt": cli("plan", "manifests", "--prune"),
        },
    )
