"""Planning from desired and live state (pure; live records shaped as the server writes them)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

from reconciler.plan.model import Plan
from reconciler.plan.render import render_plan
from reconciler.planning import assemble, plan_target
from reconciler.provider import PlanOptions
from reconciler.providers.tts import schema
from reconciler.providers.tts.kinds import Owner, application_key, device_key
from reconciler.providers.tts.planner import TTSDiffer, compare_field, record
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


# Field values as the manifests hold them and as a server may return them, for
# test_a_field_is_unchanged_exactly_when_its_normal_forms_are_equal: equal plain values, other
# spellings, other types (a number sent as a string, a bool as a number), cleared and missing
# values, secrets in either case of hex.
COMPARED_VALUES: list[tuple[str, Any, Any]] = [
    ("name", "Node 1", "Node 1"),
    ("name", "Node 1", "Node 2"),
    ("name", "", None),
    ("name", None, ""),
    ("name", None, "Node 1"),
    ("frequency_plan_id", "EU_863_870_TTN", "EU_863_870_TTN"),
    ("lorawan_version", "MAC_V1_0_3", "MAC_V1_0_3"),
    ("lorawan_version", "MAC_V1_0_3", "1.0.3"),
    ("lorawan_version", "MAC_V1_0_3", 3),
    ("lorawan_version", "MAC_V1_0_3", "MAC_V1_0_2"),
    ("supports_join", True, True),
    ("supports_join", True, 1),
    ("supports_join", False, None),
    ("supports_join", True, False),
    ("mac_settings.resets_f_cnt", True, True),
    ("mac_settings.resets_f_cnt", False, True),
    ("mac_settings.resets_f_cnt", False, None),
    ("mac_settings.rx1_delay", "RX_DELAY_5", "RX_DELAY_5"),
    ("mac_settings.rx1_delay", 5, "RX_DELAY_5"),
    ("mac_settings.rx1_delay", 5, 5),
    ("mac_settings.rx1_delay", 5, "RX_DELAY_6"),
    ("mac_settings.rx1_delay", None, "RX_DELAY_5"),
    ("net_id", "000013", "000013"),
    ("net_id", "000013", "ABMT"),
    ("root_keys.app_key.key", Secret(APP_KEY), APP_KEY),
    ("root_keys.app_key.key", Secret(APP_KEY), APP_KEY.lower()),
    ("root_keys.app_key.key", Secret(APP_KEY), "F" * 32),
    ("root_keys.app_key.key", Secret(APP_KEY), None),
]


def test_a_field_is_unchanged_exactly_when_its_normal_forms_are_equal() -> None:
    """The planner decides most fields from the value as read (no normalising); the decision
    must be the one the normal forms give, for every spelling a server may return."""
    for path, desired, raw in COMPARED_VALUES:
        ftype = schema.field_type(schema.END_DEVICE, path)
        plain = desired.reveal() if isinstance(desired, Secret) else desired
        want = schema.zero_value(ftype) if plain is None else schema.normalize(ftype, plain)
        have = schema.normalize(ftype, raw)
        live: dict[str, Any] = {}
        if raw is not None:
            schema.set_path(live, path, raw)
        found = compare_field(schema.END_DEVICE, path, desired, live)
        assert (found is None) == (want == have), (path, desired, raw)
        if found is not None and isinstance(desired, Secret):
            assert found.sensitive and found.old is None and found.new is None


def test_merged_attributes_are_compared_key_by_key() -> None:
    live = {"attributes": {"managed-by": STACK, "site": "a", "console-note": "x"}}
    unchanged = [
        {"managed-by": STACK},
        {"managed-by": STACK, "site": "a"},
        {"managed-by": STACK, "absent": None},
    ]
    for desired in unchanged:
        assert compare_field(schema.END_DEVICE, "attributes", desired, live) is None, desired
    changed = [
        ({"site": "b"}, {"site": "a"}, {"site": "b"}),
        ({"site": None}, {"site": "a"}, {"site": None}),
        ({"new": "1"}, {"new": None}, {"new": "1"}),
        ({"site": Secret("a")}, None, None),  # a secret value: never shown, compared as set
    ]
    for desired, old, new in changed[:3]:
        found = compare_field(schema.END_DEVICE, "attributes", desired, live)
        assert found is not None and (found.old, found.new) == (old, new), desired
    secret = compare_field(schema.END_DEVICE, "attributes", changed[3][0], live)
    assert secret is None  # the revealed value equals the live one
    assert compare_field(schema.END_DEVICE, "attributes", {"site": "a"}, {}) is not None


def test_devices_of_one_signature_are_each_planned_on_their_own_records() -> None:
    """A fleet shares one field signature (compiled once, on the first device): every later
    device is still compared field by field, its immutable paths on every registry."""
    keys = [device_key("sensors", f"node-{i}") for i in range(5)]

    def desired_device(index: int, **overrides: Any) -> DesiredResource:
        resource = otaa_device(**overrides)
        return DesiredResource(keys[index], resource.fields, extra=resource.extra)

    def live_of(index: int, **records: dict[str, Any]) -> LiveResource:
        found = live_device(**{**IN_SYNC, **records})
        return LiveResource(keys[index], found.records, secrets_readable=True)

    as_record = {**IN_SYNC["as"], "ids": {"dev_eui": "70B3D57ED00000FF"}}
    lowered = {"root_keys": {"app_key": {"key": APP_KEY.lower()}}}
    live = LiveState(
        resources={
            keys[0]: live_of(0),
            keys[1]: live_of(1, **{"is": {**IN_SYNC["is"], "name": "Renamed"}}),
            keys[2]: live_of(2, **{"as": as_record}),  # another EUI on one registry only
            keys[3]: live_of(3, js=lowered),  # the same key in lower case
            keys[4]: live_of(4, js={"root_keys": {"app_key": {"key": "F" * 32}}}),
        },
        owned=set(keys),
    )
    desired = desired_with(*(desired_device(i) for i in range(5)))
    plan = plan_for(desired, live, PlanOptions(allow_replace=True, force=True))
    actions = {c.key: c.action for c in plan.resources}
    assert actions == {
        keys[0]: "no-op",
        keys[1]: "update",
        keys[2]: "replace",
        keys[3]: "no-op",
        keys[4]: "update",
    }
    by_key = {c.key: c for c in plan.resources}
    (renamed,) = by_key[keys[1]].steps
    assert (renamed.endpoint, renamed.paths) == ("is", ["name"])
    assert "ids.dev_eui" in by_key[keys[2]].reason
    (rekeyed,) = by_key[keys[4]].steps
    assert rekeyed.endpoint == "js" and rekeyed.changes[0].sensitive
