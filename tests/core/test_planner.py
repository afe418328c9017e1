"""Planning from desired and live state (pure; live records shaped as the server writes them)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

from reconciler.plan.model import Plan
from reconciler.plan.render import render_plan
from reconciler.planning import assemble, plan_target
from reconciler.provider import PlanOptions
from reconciler.providers.tts.kinds import Owner, application_key, device_key
from reconciler.providers.tts.planner import TTSDiffer, record
from reconciler.resources import DesiredResource, DesiredState, LiveResource, LiveState, Secret

APP_KEY = "0123456789ABCDEF0123456789ABCDEF"
STACK = "site-a"
DEVICE = device_key("sensors", "node-1")


def otaa_device(**overrides: Any) -> DesiredResource:
    fields: dict[str, Any] = {
        "ids.dev_eui": "70B3D57ED0000001",
        "ids.join_eui": "70B3D57ED0000000",
        "name": "Node 1",
        "attributes": {"managed-by": STACK},
        "frequency_plan_id": "EU_863_870_TTN",
        "lorawan_version": "MAC_V1_0_3",
        "lorawan_phy_version": "PHY_V1_0_3_REV_A",
        "supports_join": True,
        "root_keys.app_key.key": Secret(APP_KEY),
        "formatters.up_formatter": "FORMATTER_CAYENNELPP",
    }
    fields.update(overrides)
    return DesiredResource(DEVICE, fields, extra={"otaa": True})


def desired_with(*resources: DesiredResource) -> DesiredState:
    state = DesiredState(
        stack=STACK, ownership_key="managed-by", marker_label="attribute managed-by"
    )
    for resource in resources:
        state.add(resource)
    return state


def live_device(*, keys_readable: bool = True, **records: dict[str, Any]) -> LiveResource:
    ids = {
        "device_id": "node-1",
        "application_ids": {"application_id": "sensors"},
        "dev_eui": "70B3D57ED0000001",
        "join_eui": "70B3D57ED0000000",
    }
    return LiveResource(
        DEVICE,
        {
            server: record({"ids": ids, "updated_at": "2026-01-01T00:00:00Z", **data})
            for server, data in records.items()
        },
        secrets_readable=keys_readable,
    )


IN_SYNC = {
    "is": {"name": "Node 1", "attributes": {"managed-by": STACK, "console-note": "x"}},
    "js": {"root_keys": {"app_key": {"key": APP_KEY}}},
    "ns": {
        "frequency_plan_id": "EU_863_870_TTN",
        "lorawan_version": "MAC_V1_0_3",
        "lorawan_phy_version": "PHY_V1_0_3_REV_A",
        "supports_join": True,
    },
    "as": {"formatters": {"up_formatter": "FORMATTER_CAYENNELPP"}},
}


def plan_for(desired: DesiredState, live: LiveState, options: PlanOptions | None = None) -> Plan:
    part = plan_target(TTSDiffer(), desired, live, options or PlanOptions())
    return assemble(Plan(stack=desired.stack), [part])


def test_new_device_is_created_on_all_four_registries_in_order() -> None:
    plan = plan_for(desired_with(otaa_device()), LiveState())
    (change,) = plan.changes
    assert change.action == "create"
    assert [(s.endpoint, s.operation) for s in change.steps] == [
        ("is", "create"),
        ("js", "set"),
        ("ns", "set"),
        ("as", "set"),
    ]
    js = change.steps[1]
    assert js.paths == ["root_keys.app_key.key"]
    assert js.changes[0].sensitive


def test_in_sync_device_is_a_no_op_and_foreign_attributes_are_ignored() -> None:
    live = LiveState(resources={DEVICE: live_device(**IN_SYNC)}, owned={DEVICE})
    plan = plan_for(desired_with(otaa_device()), live)
    assert not plan.has_changes()


def test_other_spellings_on_the_server_are_not_changes() -> None:
    records = {**IN_SYNC, "ns": {**IN_SYNC["ns"], "lorawan_version": "MAC_V1_0_3"}}
    desired = otaa_device(lorawan_phy_version="PHY_V1_0_3_REV_A")
    live = LiveState(resources={DEVICE: live_device(**records)}, owned={DEVICE})
    assert not plan_for(desired_with(desired), live).has_changes()


def test_one_changed_field_is_one_step_on_its_registry() -> None:
    records = {**IN_SYNC, "ns": {**IN_SYNC["ns"], "lorawan_phy_version": "PHY_V1_0_2_REV_B"}}
    live = LiveState(resources={DEVICE: live_device(**records)}, owned={DEVICE})
    (change,) = plan_for(desired_with(otaa_device()), live).changes
    assert change.action == "update"
    (step,) = change.steps
    assert (step.endpoint, step.operation, step.paths) == ("ns", "set", ["lorawan_phy_version"])
    assert (step.changes[0].old, step.changes[0].new) == ("PHY_V1_0_2_REV_B", "PHY_V1_0_3_REV_A")
    assert step.live_version == "2026-01-01T00:00:00Z"


def test_changed_key_is_sensitive_and_never_in_the_plan() -> None:
    other = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
    records = {**IN_SYNC, "js": {"root_keys": {"app_key": {"key": other}}}}
    live = LiveState(resources={DEVICE: live_device(**records)}, owned={DEVICE})
    plan = plan_for(desired_with(otaa_device()), live)
    (change,) = plan.changes
    assert change.steps[0].changes[0].sensitive
    text = plan.dumps()
    console = Console(record=True, width=200)
    for line in render_plan(plan):
        console.print(line)
    rendered = console.export_text()
    for secret in (APP_KEY, other):
        assert secret not in text and secret.lower() not in text
        assert secret not in rendered
    assert "(sensitive, changed)" in rendered


def test_partial_registration_is_completed() -> None:
    records = {k: v for k, v in IN_SYNC.items() if k in ("is", "js")}
    live = LiveState(resources={DEVICE: live_device(**records)}, owned={DEVICE})
    (change,) = plan_for(desired_with(otaa_device()), live).changes
    assert change.action == "update"
    assert "partial registration" in change.reason
    assert [(s.endpoint, s.operation) for s in change.steps] == [("ns", "set"), ("as", "set")]


def test_immutable_change_is_a_replace_blocked_without_allow_replace() -> None:
    desired = otaa_device(**{"ids.dev_eui": "70B3D57ED00000FF"})
    live = LiveState(resources={DEVICE: live_device(**IN_SYNC)}, owned={DEVICE})
    plan = plan_for(desired_with(desired), live)
    (change,) = plan.changes
    assert change.action == "replace"
    assert "rejoin" in change.reason
    ops = [(s.endpoint, s.operation) for s in change.steps]
    assert ops[:4] == [("as", "delete"), ("ns", "delete"), ("js", "delete"), ("is", "delete")]
    assert ops[4:] == [("is", "create"), ("js", "set"), ("ns", "set"), ("as", "set")]
    assert plan.blocked
    allowed = plan_for(desired_with(desired), live, PlanOptions(allow_replace=True))
    assert not allowed.blocked


def test_unreadable_keys_are_left_alone_unless_rotating() -> None:
    records = {k: v for k, v in IN_SYNC.items() if k != "js"} | {"js": {}}
    live = LiveState(
        resources={DEVICE: live_device(keys_readable=False, **records)}, owned={DEVICE}
    )
    plan = plan_for(desired_with(otaa_device()), live)
    assert not plan.has_changes()
    assert any("cannot be verified" in w for w in plan.warnings)
    rotating = plan_for(desired_with(otaa_device()), live, PlanOptions(rotate_keys=True))
    (change,) = rotating.changes
    assert change.steps[0].changes[0].unverifiable


def test_unowned_existing_device_is_adopted() -> None:
    records = {**IN_SYNC, "is": {"name": "Node 1"}}
    live = LiveState(resources={DEVICE: live_device(**records)})
    (change,) = plan_for(desired_with(otaa_device()), live).changes
    assert change.adopt and change.action == "update"
    (step,) = change.steps
    assert step.paths == ["attributes"]
    assert step.changes[0].new == {"managed-by": STACK}


def test_prune_deletes_only_owned_undeclared_resources_in_reverse_order() -> None:
    gone = device_key("sensors", "node-2")
    foreign = device_key("sensors", "node-3")
    live = LiveState(
        resources={
            gone: LiveResource(gone, {"is": record({"attributes": {"managed-by": STACK}})}),
            foreign: LiveResource(foreign, {"is": record({})}),
        },
        owned={gone},
    )
    plan = plan_for(desired_with(), live, PlanOptions(prune=True))
    (change,) = plan.changes
    assert change.key == gone and change.action == "delete"
    assert plan_for(desired_with(), live).changes == []


def test_threshold_blocks_mass_deletes_unless_forced() -> None:
    keys = [device_key("sensors", f"node-{i}") for i in range(20)]
    live = LiveState(
        resources={k: LiveResource(k, {"is": record({})}) for k in keys}, owned=set(keys)
    )
    plan = plan_for(desired_with(), live, PlanOptions(prune=True))
    assert any("would be deleted" in b for b in plan.blocked)
    forced = plan_for(desired_with(), live, PlanOptions(prune=True, force=True))
    assert not forced.blocked


def test_application_is_created_under_its_owner_and_plan_round_trips() -> None:
    app = DesiredResource(
        application_key("sensors"),
        {"name": "Sensors", "attributes": {"managed-by": STACK}},
        extra={"owner": Owner("user", "admin-user")},
    )
    plan = plan_for(desired_with(app), LiveState())
    again = Plan.from_json(json.loads(plan.dumps()))
    assert again.to_json() == plan.to_json()
    assert again.changes[0].steps[0].operation == "create"
