"""The official The Things Stack JavaScript SDK (npm `ttn-lw` 3.8.1, the library the Console is
built on) as a second real client of the served emulator: `checks.js` makes the calls a Console
user makes (applications, devices across the four registries, webhooks, pub/subs, gateways,
DevAddr generation, JoinEUI prefixes, frequency plans, the admin user listing).

`make test` installs the SDK from package-lock.json into node_modules here (once). Without
node, or without the installed SDK, the test skips with the reason; under CI (`CI=true`) that
is a failure, so a CI job cannot pass without running it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ServedEmulator
from tests.shared_data import under_ci

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent


def node_or_skip() -> str:
    node = shutil.which("node")
    reason = ""
    if node is None:
        reason = "node is not installed (the JavaScript SDK checks need node 18+)"
    elif not (HERE / "node_modules" / "ttn-lw").is_dir():
        reason = "the SDK is not installed: `make test` (or `npm ci` in tests/emulator/js_sdk)"
    if reason:
        if under_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    assert node is not None
    return node


def test_the_official_sdk_passes_every_check(served_emulator: ServedEmulator) -> None:
    node = node_or_skip()
    done = subprocess.run(
        [
            node,
            str(HERE / "checks.js"),
            served_emulator.base_url,
            served_emulator.api_key,
            served_emulator.user_id,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=HERE,
    )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failed = [f"{r['name']}: {r.get('error')}" for r in results if not r["ok"]]
    assert not failed, "\n".join(failed) + done.stderr[-2000:]
    assert len(results) >= 19 and done.returncode == 0, done.stdout + done.stderr
