"""The apply policy (engine): saved-plan options, stack mismatch, blocked plans, confirmation."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import engine
from reconciler.diagnostics import UsageError
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


def test_a_saved_plan_applies_the_options_it_was_planned_with() -> None:
    saved = Plan(
        stack="site-a",
        manifests=["planned/"],
        options={"prune": True, "allow_replace": True, "rotate_keys": False},
    )
    given = RunOptions(paths=[], force=True)
    options = engine.saved_plan_options(saved, given)
    assert (options.prune, options.allow_replace, options.rotate_keys) == (True, True, False)
    assert options.paths == [Path("planned/")]
    assert options.force  # not part of what the plan means
    assert options.saved_plan
    explicit = engine.saved_plan_options(saved, RunOptions(paths=[Path("here")]))
    assert explicit.paths == [Path("here")]
    # The same values given again are no contradiction.
    same = RunOptions(paths=[], prune=True, allow_replace=True)
    assert engine.saved_plan_options(saved, same).prune is True


@pytest.mark.parametrize(
    ("given", "flag"),
    [
        (RunOptions(paths=[], prune=False), "--prune/--no-prune"),
        (RunOptions(paths=[], rotate_keys=True), "--rotate-keys"),
        (RunOptions(paths=[], targets=("device/app/*",)), "--target"),
        (RunOptions(paths=[], rotate=("api_key/gateway/gw/link",)), "--rotate"),
    ],
)
def test_an_option_the_saved_plan_was_not_planned_with_is_a_usage_error(
    given: RunOptions, flag: str
) -> None:
    # Applying the saved plan would silently not do what the command line asks.
    saved = Plan(stack="site-a", manifests=["planned/"], options={"prune": True})
    with pytest.raises(UsageError, match=f"apply --plan: {flag} differs from the saved plan"):
        engine.saved_plan_options(saved, given)


def test_a_saved_plan_for_another_stack_is_refused() -> None:
    fresh = PlanRun(plan_with_change(), loaded=None, live={}, requests=0)  # type: ignore[arg-type]
    with pytest.raises(PlanStackMismatch, match="the plan is for stack 'site-b'"):
        engine.review_saved_plan(fresh, Plan(stack="site-b"))
