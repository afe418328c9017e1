"""The apply lease through the command line, against a served TTS emulator: the refusal a second
apply prints, `--lock-timeout`, `force-unlock`, and Ctrl-C releasing the lease."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import engine
from reconciler.engine import RunOptions
from reconciler.lease import LeaseKeeper
from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY
from reconciler.providers.tts.kinds import LEASE_DEVICE_ID
from tests.cli_runner import CliRunner
from tests.conftest import ADMIN_USER, ServedEmulator, build_emulator_app, serve_in_thread
from tests.core.support import KEYS, fleet_site, site
from tests.emulator.support import make_api_key

pytestmark = pytest.mark.slow


class Cli(CliRunner):
    def __init__(self, served: ServedEmulator, cwd: Path) -> None:
        env = {**KEYS, "TTS_API_KEY": served.api_key, "RECONCILER_TTS_URL": served.root_url}
        super().__init__(env, cwd)


def take_lease(served: ServedEmulator, tree: Path) -> LeaseKeeper:
    """Another process holding the stack's lease (taken over HTTP from this one, and left on
    the server as a running apply leaves it)."""
    options = RunOptions(
        paths=[tree],
        providers=REGISTRY,
        manifest_kinds=MANIFEST_KINDS,
        environ={**KEYS, "TTS_API_KEY": served.api_key},
        url=served.root_url,
    )
    session = engine.connect(engine.load(options), options)
    keeper = LeaseKeeper([t.provider for t in session.targets], ttl=600)

    async def take() -> None:
        await keeper.acquire()
        await session.aclose()

    asyncio.run(take())
    return keeper


def test_refusal_lock_timeout_and_force_unlock(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    tree = site(tmp_path / "manifests")
    cli = Cli(served_emulator, tmp_path)
    cli("apply", "manifests", "--auto-approve")
    other = take_lease(served_emulator, tree)
    lease_id = other.holder.lease_id

    cli("apply", "manifests", "--auto-approve", expect=1)
    assert cli.stdout == ""  # refused before planning
    assert re.search(
        r"^error: stack 'site-a' is locked by another apply: \S+@\S+ \(pid \d+\) since "
        r"\S+Z, lease until \S+Z \(lease id " + lease_id + r"\) on device reconciler-lease in "
        r"application field-sensors\. Wait for it \(--lock-timeout SECONDS\), or if that run is "
        r"dead, `reconciler force-unlock " + lease_id + "`",
        cli.stderr,
    ), cli.stderr
    cli("apply", "manifests", "--auto-approve", "--lock-timeout", "1", expect=1)
    assert "note: waiting up to 1 s for the lease" in cli.stderr
    assert "after waiting 1 s" in cli.stderr
    # plan reads only: it takes no lease, but says that an apply holds one.
    out = cli("plan", "manifests", "--detailed-exitcode")
    assert re.search(
        r"Warning: another apply is running on site-a: \S+@\S+ \(pid \d+\) .*\(lease id "
        + lease_id
        + r"\) on device reconciler-lease in application field-sensors\. The live state was "
        r"read while it writes: it may show that run's half-done changes",
        " ".join(out.split()),
    ), out
    # drift too (that apply's half-done work would read as drift), leaving the lease held.
    (warning,) = json.loads(cli("drift", "manifests", "--format", "json"))["warnings"]
    assert warning.startswith("another apply is running on site-a: ")
    assert f"(lease id {lease_id})" in warning and "half-done changes" in warning
    out = " ".join(cli("drift", "manifests").split())
    assert f"Warning: {' '.join(warning.split())}" in out and "In sync:" in out
    out = cli("apply", "manifests", "--auto-approve", "--no-lock")
    assert "Nothing to apply." in out and f"(lease id {lease_id})" in out
    devices = tree / "devices.yaml"
    devices.write_text(devices.read_text().replace("name: OTAA 1.0.3", "name: Renamed"))
    cli("plan", "manifests", "--out", "plan.json")
    cli("apply", "--plan", "plan.json", expect=1)  # a saved plan takes the lease too
    assert f"(lease id {lease_id})" in cli.stderr and cli.stdout == ""

    cli("force-unlock", "0123456789ab", "manifests", expect=1)
    assert "no lease with id 0123456789ab on the targets (found: " in cli.stderr
    assert lease_id in cli.stderr
    out = cli("force-unlock", lease_id, "manifests")
    assert (
        out.startswith("Removed ") and f"(lease id {lease_id}) on device {LEASE_DEVICE_ID}" in out
    )
    # Taking the lease changes nothing the saved plan was made from: it applies, none stale.
    assert "Apply: 1 done, 0 failed, 0 skipped" in cli("apply", "--plan", "plan.json")
    with served_emulator.client() as client:
        lease = client.get(f"/applications/field-sensors/devices/{LEASE_DEVICE_ID}")
        assert lease.status_code == 404  # released


@pytest.fixture
def slow_emulator() -> Iterator[ServedEmulator]:
    """An emulator that answers after 20 ms, so an apply of a fleet lasts a few seconds."""
    api_key = make_api_key()
    app = build_emulator_app(api_key, latency_ms=20)
    with serve_in_thread(app) as root_url:
        yield ServedEmulator(root_url=root_url, api_key=api_key, user_id=ADMIN_USER, app=app)


def test_ctrl_c_during_apply_releases_the_lease(
    slow_emulator: ServedEmulator, tmp_path: Path
) -> None:
    cli = Cli(slow_emulator, tmp_path)
    fleet_site(tmp_path / "manifests", 1)  # the stack comes to own the application
    cli("apply", "manifests", "--auto-approve")
    fleet_site(tmp_path / "manifests", 40)

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "apply",
            "manifests",
            "--auto-approve",
            "--parallelism",
            "1",
        ],
        cwd=tmp_path,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lease_path = f"/applications/field-fleet/devices/{LEASE_DEVICE_ID}"
    with slow_emulator.client() as client:
        deadline = time.monotonic() + 60
        while client.get(lease_path).status_code != 200:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        while len(client.get("/applications/field-fleet/devices").json()["end_devices"]) < 3:
            time.sleep(0.05)  # the writes have started (beside node-00000 and the lease)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, (stdout, stderr)
        assert "Interrupted: no new changes are started" in stderr
        assert "Traceback" not in stderr and "internal error" not in stderr
        assert client.get(lease_path).status_code == 404
