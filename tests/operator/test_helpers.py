"""What users expect around the core: version, shell completion, a starter tree, the example
GitHub Actions workflow (its commands run as written against the emulator) and the pre-commit
hook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler import __version__
from tests.conftest import ServedEmulator
from tests.operator.support import ROOT, Cli

BIN = Path(sys.executable).parent
APP_KEY = "000102030405060708090A0B0C0D0E0F"


def test_version_command() -> None:
    result = subprocess.run(
        [BIN / "reconciler", "version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith(f"reconciler {__version__} (Python 3.")


def test_completion_script_and_a_completion_request(tmp_path: Path) -> None:
    cli = Cli.offline(tmp_path)
    script = cli("completion", "bash")
    assert "_RECONCILER_COMPLETE=complete_bash" in script
    # What the script does on <TAB>: the shell asks the program itself.
    env = {**os.environ, "_RECONCILER_COMPLETE": "complete_bash", "COMP_WORDS": "reconciler pl"}
    env["COMP_CWORD"] = "1"
    result = subprocess.run(
        [BIN / "reconciler"], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["plan"]
    cli("completion", "tcsh", expect=2)


def test_init_writes_a_valid_starter_tree_and_a_gitignore_for_secrets(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("build/\n.env")  # no final newline
    cli = Cli.offline(tmp_path, EXAMPLE_SENSOR_01_APP_KEY=APP_KEY)
    cli("init", "--stack", "demo", "--owner", "user:admin-user")
    gitignore = (tmp_path / ".gitignore").read_text().splitlines()
    assert gitignore[:2] == ["build/", ".env"]
    assert "*.secrets.csv" in gitignore and gitignore.count(".env") == 1
    assert "valid: stack demo: 1 application, 0 webhooks, 1 device" in cli("validate", "manifests")
    before = (tmp_path / "manifests" / "stack.yaml").read_text()
    message = cli("init", expect=1)
    assert "exists and is not empty: nothing was written" in message
    assert (tmp_path / "manifests" / "stack.yaml").read_text() == before
    assert "is not user:ID" in cli("init", "elsewhere", "--owner", "admin", expect=2)


def run_steps(workflow: dict, job: str) -> list[str]:  # type: ignore[type-arg]
    return [
        step["run"]
        for step in workflow["jobs"][job]["steps"]
        if str(step.get("run", "")).startswith("reconciler ")
    ]


@pytest.mark.slow
def test_the_example_workflow_commands_run_as_written(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    workflow = YAML(typ="safe").load((ROOT / "examples/github-actions/reconciler.yml").read_text())
    init = Cli.offline(tmp_path)
    init("init", "--stack", "ci-demo", "--owner", f"user:{served_emulator.user_id}")
    summary = tmp_path / "summary.md"
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "TTS_API_KEY": served_emulator.api_key,
        "EXAMPLE_SENSOR_01_APP_KEY": APP_KEY,
        "RECONCILER_TTS_URL": served_emulator.root_url,  # the emulator instead of the cloud
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    ran = []
    for job in ("plan", "apply", "drift"):
        for command in run_steps(workflow, job):
            result = subprocess.run(
                command, shell=True, executable="/bin/bash", cwd=tmp_path, env=env,
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert result.returncode == 0, (command, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr
            ran.append(command)
    assert len(ran) == 5
    assert (tmp_path / "plan.md").read_text().startswith("### reconciler plan for stack")
    assert "2 to create" in (tmp_path / "plan.md").read_text()
    assert 'failures="0"' in (tmp_path / "drift.xml").read_text()
    assert "### reconciler validate" in summary.read_text()


def test_the_pre_commit_hook_validates_a_tree(tmp_path: Path) -> None:
    (hook,) = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "reconciler-validate" and hook["pass_filenames"] is False
    Cli.offline(tmp_path)("init", "--owner", "user:admin-user")
    command = [*hook["entry"].split(), *hook["args"]]
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "EXAMPLE_SENSOR_01_APP_KEY": APP_KEY}
    ok = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    del env["EXAMPLE_SENSOR_01_APP_KEY"]
    unset = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert unset.returncode == 1 and "EXAMPLE_SENSOR_01_APP_KEY" in unset.stderr
