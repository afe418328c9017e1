"""Plans show what a reviewer must check: the EUIs of new devices, the old and new identifier of
a replacement, and long values in full when asked (identifiers are not secrets)."""

from __future__ import annotations

from rich.console import Console

from reconciler.plan.model import Plan
from reconciler.plan.render import render_plan
from reconciler.provider import PlanOptions
from reconciler.resources import LiveState
from tests.core.test_planner import (
    DEVICE,
    IN_SYNC,
    desired_with,
    live_device,
    otaa_device,
    plan_for,
)


def text_of(plan: Plan, **kwargs: object) -> str:
    console = Console(record=True, width=1000, color_system=None)
    for line in render_plan(plan, **kwargs):  # type: ignore[arg-type]
        console.print(line)
    return console.export_text()


def test_a_new_device_shows_its_euis() -> None:
    plan = plan_for(desired_with(otaa_device()), LiveState())
    text = text_of(plan)
    assert 'ids.dev_eui: "70B3D57ED0000001"' in text
    assert 'ids.join_eui: "70B3D57ED0000000"' in text
    # Shown, never sent in a field mask (identifiers are implicit in every request).
    (change,) = plan.changes
    assert all(not p.startswith("ids.") for s in change.steps for p in s.paths)


def test_a_replacement_names_the_old_and_new_identifier() -> None:
    live = LiveState(resources={DEVICE: live_device(**IN_SYNC)}, owned={DEVICE})
    desired = desired_with(otaa_device(**{"ids.dev_eui": "70B3D57ED00000F2"}))
    plan = plan_for(desired, live, PlanOptions(allow_replace=True))
    (change,) = plan.changes
    assert change.action == "replace"
    assert '"70B3D57ED0000001" -> "70B3D57ED00000F2"' in text_of(plan)


def test_long_values_are_cut_with_a_way_to_see_them() -> None:
    long_name = "N" * 300
    plan = plan_for(desired_with(otaa_device(name=long_name)), LiveState())
    short = text_of(plan)
    assert long_name not in short
    assert "--full" in short  # the cut says how to see the rest
    assert long_name in text_of(plan, full=True)
    assert long_name in plan.dumps()
