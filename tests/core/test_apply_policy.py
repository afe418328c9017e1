"""The apply policy (engine): saved-plan options, stack mismatch, blocked plans, confirmation."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import engine
from reconciler.engine import (
    ApprovalNeeded,
    PlanBlocked,
    PlanRun,
    PlanStackMismatch,
    RunOptions,
    needs_confirmation,
)
from reconciler.plan.model import Plan, ResourceChange
from reconciler.providers.tts.kinds import device_key


def plan_with_change(**kwargs: object) -> Plan:
    plan = Plan(stack="site-a", **kwargs)  # type: ignore[arg-type]
    plan.resources.append(ResourceChange(device_key("app", "dev"), "update"))
    return plan


def test_a_blocked_plan_is_refused_even_with_auto_approve() -> None:
    plan = plan_with_change(blocked=["1 replacement(s) need --allow-replace"])
    with pytest.raises(PlanBlocked, match="apply blocked: 1 replacement"):
        needs_confirmation(plan, saved=False, auto_approve=True, interactive=True)


def test_confirmation_rules() -> None:
    plan = plan_with_change()
    assert needs_confirmation(plan, saved=False, auto_approve=False, interactive=True)
    assert not needs_confirmation(plan, saved=True, auto_approve=False, interactive=False)
    assert not needs_confirmation(plan, saved=False, auto_approve=True, interactive=False)
    with pytest.raises(ApprovalNeeded, match="--auto-approve"):
        needs_confirmation(plan, saved=False, auto_approve=False, interactive=False)


def test_saved_plan_options_override_the_command_line() -> None:
    saved = Plan(
        stack="site-a",
        manifests=["planned/"],
        options={"prune": True, "allow_replace": True, "rotate_keys": False},
    )
    given = RunOptions(paths=[], prune=False, allow_replace=False, rotate_keys=True, force=True)
    options = engine.saved_plan_options(saved, given)
    assert (options.prune, options.allow_replace, options.rotate_keys) == (True, True, False)
    assert options.paths == [Path("planned/")]
    assert options.force  # not part of what the plan means
    explicit = engine.saved_plan_options(saved, RunOptions(paths=[Path("here")]))
    assert explicit.paths == [Path("here")]


def test_a_saved_plan_for_another_stack_is_refused() -> None:
    fresh = PlanRun(plan_with_change(), loaded=None, live={}, requests=0)  # type: ignore[arg-type]
    with pytest.raises(PlanStackMismatch, match="the plan is for stack 'site-b'"):
        engine.review_saved_plan(fresh, Plan(stack="site-b"))
