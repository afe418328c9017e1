"""`reconciler import` as an operator runs it (served emulator, subprocess): the workflow,
bad input (clear error naming where, exit 1, no output directory), keys without the right to
read them, and Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    HoldLaterRequests,
    ServedEmulator,
    build_emulator_app,
    serve_in_thread,
)
from tests.emulator.support import ADMIN_USER, expect_ok, make_api_key
from tests.importer.support import (
    PUBSUB_PASSWORD,
    WEBHOOK_HEADERS,
    build_varied_state,
    plain_otaa,
    register,
)

pytestmark = pytest.mark.slow
SECRETS = ["2B7E151628AED2A6ABF7158809CF4F3C", "11223344556677889900AABBCCDDEEFF", "s3cr3t-token"]


@pytest.fixture(scope="module")
def served() -> Iterator[ServedEmulator]:
    api_key = make_api_key()
    with serve_in_thread(build_emulator_app(api_key)) as root_url:
        served = ServedEmulator(root_url=root_url, api_key=api_key, user_id=ADMIN_USER)

        async def seed() -> None:
            async with httpx.AsyncClient(
                base_url=served.base_url, headers={"Authorization": f"Bearer {api_key}"}
            ) as client:
                await build_varied_state(client, ADMIN_USER)

        asyncio.run(seed())
        yield served


def cli(
    served: ServedEmulator,
    cwd: Path,
    *args: str,
    expect: int = 0,
    key: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env={
            "TTS_API_KEY": key or served.api_key,
            "RECONCILER_TTS_URL": served.root_url,
            "PATH": "/usr/bin:/bin",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == expect, (args, result.returncode, output)
    assert "Traceback" not in output and "internal error" not in output
    for secret in SECRETS:
        assert secret not in output
    return output


def no_output(tmp_path: Path) -> None:
    """Neither the output directory nor a staging directory was left behind."""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "inputs") == []


def test_import_validate_plan_apply(served: ServedEmulator, tmp_path: Path) -> None:
    text = cli(served, tmp_path, "import", "--all", "--stack", "orchard-north", "--out", "out")
    assert "imported 2 applications, 9 devices, 1 webhook, 1 pub/sub, 2 gateways into out" in text
    secrets = {
        "WEBHOOK_ORCHARD_INGEST_AUTHORIZATION": WEBHOOK_HEADERS["Authorization"],
        "WEBHOOK_ORCHARD_INGEST_X_SITE": WEBHOOK_HEADERS["X-Site"],
        "PUBSUB_ORCHARD_BROKER_PASSWORD": PUBSUB_PASSWORD,
    }
    assert "valid: stack orchard-north" in cli(served, tmp_path, "validate", "out", env=secrets)
    plan = cli(served, tmp_path, "plan", "out", "--detailed-exitcode", expect=2, env=secrets)
    assert "(adopt)" in plan and "0 to create" in plan and "0 to delete" in plan
    cli(served, tmp_path, "apply", "out", "--auto-approve", env=secrets)
    cli(served, tmp_path, "plan", "out", "--detailed-exitcode", env=secrets)
    # A second import into the same directory needs --overwrite; the .gitignore is kept.
    gitignore = tmp_path / "out" / ".gitignore"
    gitignore.write_text("*.log\n" + gitignore.read_text())
    again = cli(served, tmp_path, "import", "--application", "orchard", "--out", "out", expect=1)
    assert "not empty; pass --overwrite" in again
    cli(served, tmp_path, "import", "--application", "orchard", "--out", "out", "--overwrite")
    assert gitignore.read_text().startswith("*.log\n") and "*.secrets.csv" in gitignore.read_text()
    assert not (tmp_path / "out" / "gateways.yaml").exists()


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        (
            "stream.json",
            '{"ids": {"device_id": "a", "dev_eui": "70B3D57ED0000001"}}\n{"ids": {"device_id": \n',
            "stream.json:3:1: not valid JSON (Expecting value) in the value that starts at line 2",
        ),
        (
            "array.json",
            '[{"ids": {"device_id": "a"}}, 12]',
            "array.json:1:31: expected an EndDevice object",
        ),
        (
            "columns.csv",
            "id;deveui;app_key\na;70B3D57ED0000001;00\n",
            "columns.csv:1:2: unknown column `deveui`",
        ),
        ("cells.csv", "id,dev_eui\ndev-a,70B3D57ED00000\n", "cells.csv:2:2"),
    ],
)
def test_bad_files(
    served: ServedEmulator, tmp_path: Path, name: str, content: str, where: str
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / name).write_text(content)
    text = cli(
        served,
        tmp_path,
        "import",
        "--from-file",
        f"inputs/{name}",
        "--application",
        "orchard",
        "--owner",
        "user:admin-user",
        "--out",
        "out",
        expect=1,
    )
    assert where in text, text
    no_output(tmp_path)


def test_unknown_application_and_key_without_rights(served: ServedEmulator, tmp_path: Path) -> None:
    text = cli(served, tmp_path, "import", "--application", "no-such-app", "--out", "out", expect=1)
    assert "application `no-such-app`: not found on the Identity Server" in text
    no_output(tmp_path)
    with httpx.Client(
        base_url=served.base_url, headers={"Authorization": f"Bearer {served.api_key}"}
    ) as admin:
        body = expect_ok(
            admin.post(
                f"/users/{ADMIN_USER}/api-keys",
                json={"name": "weak", "rights": ["RIGHT_USER_INFO"]},
            )
        )
    text = cli(
        served,
        tmp_path,
        "import",
        "--application",
        "orchard",
        "--out",
        "out",
        expect=1,
        key=body["key"],
    )
    assert "application `orchard`: the API key lacks the rights to read it" in text
    no_output(tmp_path)


def test_interrupt_leaves_no_output(tmp_path: Path) -> None:
    api_key = make_api_key()
    # The Join Server reads after the first wait until the interrupt has been sent, so it
    # lands while the import is reading, however loaded the machine.
    gate = HoldLaterRequests(
        build_emulator_app(api_key),
        lambda method, path: method == "GET" and path.startswith("/api/v3/js/applications/"),
    )
    with serve_in_thread(gate) as root_url:
        served = ServedEmulator(root_url=root_url, api_key=api_key, user_id=ADMIN_USER)

        async def seed() -> None:
            async with httpx.AsyncClient(
                base_url=served.base_url, headers={"Authorization": f"Bearer {api_key}"}
            ) as client:
                expect_ok(
                    await client.post(
                        f"/users/{ADMIN_USER}/applications",
                        json={"application": {"ids": {"application_id": "slow"}}},
                    )
                )
                for index in range(1, 41):
                    await register(client, "slow", plain_otaa(index))

        asyncio.run(seed())
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "import",
                "--application",
                "slow",
                "--out",
                "out",
                "--parallelism",
                "1",
            ],
            cwd=tmp_path,
            env={"TTS_API_KEY": api_key, "RECONCILER_TTS_URL": root_url, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            if not gate.first_answered.wait(60):
                raise AssertionError(process.communicate(timeout=30))
            assert process.poll() is None, process.communicate()
            os.kill(process.pid, signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
        finally:
            gate.release.set()
    assert process.returncode == 130, stderr
    assert "interrupted: nothing was written" in stderr
    assert "Traceback" not in stderr
    no_output(tmp_path)
