"""`plan --format markdown` and `reconciler show`: a plan for a pull-request comment, rendered
from the plan data, within a size budget, with untrusted manifest text made inert."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reconciler.plan.markdown import render_markdown
from reconciler.plan.model import Plan
from reconciler.resources import LiveState
from tests.conftest import ServedEmulator
from tests.core.support import site
from tests.core.test_planner import desired_with, otaa_device, plan_for
from tests.operator.golden_files import check_golden
from tests.operator.support import Cli, host_neutral

NEW_DEVICE = """
---
kind: Device
application: field-sensors
id: otaa-new
dev_eui: "70B3D57ED0000009"
app_key: {env: OTAA_103_APP_KEY}
"""


def changed_site(served: ServedEmulator, tmp_path: Path) -> Cli:
    """Applied, then edited: one creation, updates, one replacement and one deletion."""
    manifests = site(tmp_path / "manifests")
    cli = Cli(served, tmp_path)
    cli("apply", "manifests", "--auto-approve")
    devices = manifests / "devices.yaml"
    text = devices.read_text()
    text = text.replace('dev_eui: "70B3D57ED0000002"', 'dev_eui: "70B3D57ED00000F2"')
    text = text.replace("name: OTAA 1.0.3", "name: Renamed | <b>@team</b>")
    kept = [part for part in text.split("---\n") if "id: abp-102" not in part]
    devices.write_text("---\n".join(kept) + NEW_DEVICE)
    app = manifests / "application.yaml"
    app.write_text(app.read_text().replace("name: Field sensors", "name: Field sensors v2"))
    return cli


def normalised_plan(text: str) -> str:
    return host_neutral(text)


@pytest.mark.slow
def test_markdown_plan_golden_and_show_renders_the_saved_plan_alike(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    cli = changed_site(served_emulator, tmp_path)
    args = ("--prune", "--allow-replace")
    markdown = cli("plan", "manifests", *args, "--format", "markdown", "--out", "plan.json")
    assert cli.stderr == ""
    check_golden("plan.md", normalised_plan(markdown))
    # Untrusted text from the manifests is inert: escaped in <code> outside fenced blocks (no
    # markup, no mention); inside them literal text, which GitHub neither renders nor links.
    outside = re.sub(r"\n```\n.*?\n```\n", "\n", markdown, flags=re.S)
    assert "<b>" not in outside and "@team" not in outside.replace("&lt;b&gt;@team", "")
    assert "<code>" in outside

    # The saved plan renders the same in every format.
    assert cli("show", "plan.json", "--format", "markdown") == markdown
    shown_text = cli("show", "plan.json")
    assert shown_text == cli("plan", "manifests", *args)
    assert json.loads(cli("show", "plan.json", "--format", "json")) == json.loads(
        (tmp_path / "plan.json").read_text()
    )


def test_a_large_plan_stays_within_the_comment_limit_and_says_what_it_left_out() -> None:
    desired = desired_with(
        *[otaa_device(name=f"Node {i}", **{"ids.dev_eui": f"70B3D57E{i:08X}"}) for i in range(1)]
    )
    plan = plan_for(desired, LiveState())
    many = Plan(stack="site-a", resources=plan.resources * 3000)
    text = render_markdown(many)
    assert len(text) <= 65_536
    assert "3000 to create" in text
    assert "more resource(s) not listed (size limit)" in text
    small = render_markdown(many, max_chars=5_000)
    assert len(small) <= 5_000
    assert "Details of 3000 more resource(s) left out" in small


def test_show_refuses_what_is_not_a_plan(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("[1, 2]")
    cli = Cli.offline(tmp_path)
    message = cli("show", "x.json", expect=1)
    assert "x.json" in message and "not a JSON object" in message
    message = cli("show", "missing.json", expect=1)
    assert "no such plan file" in message
    # Nested deeper than the JSON decoder can go: one clear line, not a RecursionError.
    (tmp_path / "deep.json").write_text("[" * 100_000)
    message = cli("show", "deep.json", expect=1)
    assert "deep.json: not a reconciler plan (JSON nested too deeply)" in message
