"""One plan, two providers: the engine drives a TTS stack and a second provider through the
provider contract alone (what the Azure IoT Hub provider will plug into).

The second provider keeps its "cloud" in memory, with etag-like versions, provider-given labels,
its own kind order, a parent kind, and bulk creates; TTS runs against the in-process emulator.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from reconciler import engine
from reconciler.executor import Work, execute_plan
from reconciler.lease import Acquired, Lease, LeaseHeld, LeaseHolder, LeaseLost, utc_now
from reconciler.plan.model import (
    Endpoint,
    FieldChange,
    Plan,
    ResourceChange,
    ResourceResult,
    Step,
    TargetInfo,
)
from reconciler.plan.render import render_plan
from reconciler.planning import assemble, plan_target
from reconciler.provider import PlanOptions, Provider, ProviderContext
from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY
from reconciler.resources import (
    DesiredResource,
    DesiredState,
    LiveRecord,
    LiveResource,
    LiveState,
    ResourceKey,
)
from tests.core.support import KEYS, ROOT_URL, site

pytestmark = pytest.mark.asyncio


@dataclass
class HubTarget:
    """What a second provider's target document would hold."""

    name: str
    devices: dict[str, dict[str, Any]]  # device id -> tags; "edge-1" is the parent
    provider: str = "hub"
    prune: bool = False
    change_threshold: float = 0.3


@dataclass
class Cloud:
    """The second provider's server: records with etags, and the requests it received."""

    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    etags: dict[tuple[str, str], int] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    lease: str | None = None  # the apply lease's record (reconciler.lease)

    def put(self, kind: str, name: str, tags: dict[str, Any]) -> None:
        self.records[kind, name] = dict(tags)
        self.etags[kind, name] = self.etags.get((kind, name), 0) + 1


class HubProvider:
    name = "hub"
    kind_order = ("edge", "device")  # parents first
    replace_consequence = "devices reconnect"
    rotatable_kinds = ()  # nothing to rotate
    manifest_kinds = ("HubTarget",)

    def __init__(self, target: HubTarget, cloud: Cloud) -> None:
        self.target = target
        self.cloud = cloud

    def describe(self) -> TargetInfo:
        return TargetInfo(
            "hub", self.target.name, {"registry": Endpoint("REG", "Registry", "https://hub")}
        )

    def _key(self, kind: str, name: str) -> ResourceKey:
        return ResourceKey("hub", kind, (name,), label=f"hub {kind} {name}")

    def desired(self, project: Any) -> DesiredState:
        state = DesiredState(self.target.name, "owner", marker_label="tag owner")
        for name, tags in self.target.devices.items():
            kind = "edge" if name.startswith("edge") else "device"
            state.add(DesiredResource(self._key(kind, name), {**tags, "owner": self.target.name}))
        return state

    def digest_key(self) -> bytes:
        return b"hub"

    async def read(self, desired: DesiredState, *, prune: bool) -> LiveState:
        self.cloud.requests.append("query")  # one query answers for every device
        live = LiveState()
        for (kind, name), tags in self.cloud.records.items():
            key = self._key(kind, name)
            etag = f'"{self.cloud.etags[kind, name]}"'
            live.resources[key] = LiveResource(key, {"registry": LiveRecord(tags, etag)})
        return live

    def marker(self, live: LiveResource, ownership_key: str) -> str | None:
        return str(live.records["registry"].data.get(ownership_key) or "")

    def plan_resource(
        self,
        resource: DesiredResource,
        live: LiveResource | None,
        change: ResourceChange,
        options: PlanOptions,
    ) -> None:
        record = live.records["registry"] if live else None
        if record is None:
            change.action, change.reason = "create", "not found"
            change.steps.append(Step("registry", "bulk-create", sorted(resource.fields)))
            return
        changes = [
            FieldChange(path, record.data.get(path), value)
            for path, value in sorted(resource.fields.items())
            if record.data.get(path) != value
        ]
        if changes:
            change.action, change.reason = "update", "tags differ"
            change.steps.append(
                Step(
                    "registry",
                    "patch",
                    [c.path for c in changes],
                    changes,
                    live_version=record.version,
                )
            )

    def delete_steps(self, key: ResourceKey, live: LiveResource | None) -> list[Step]:
        return [Step("registry", "delete")]

    def depends_on(self, key: ResourceKey) -> ResourceKey | None:
        return self._key("edge", "edge-1") if key.kind == "device" else None

    def groups(self, kind: str, deletes: bool, changes: list[ResourceChange]) -> list[list[Any]]:
        creates = [c for c in changes if c.action == "create"]
        return ([creates] if creates else []) + [[c] for c in changes if c.action != "create"]

    async def execute(
        self, group: list[ResourceChange], desired: DesiredState, live: LiveState
    ) -> list[ResourceResult]:
        self.cloud.requests.append(f"{group[0].steps[0].operation} x{len(group)}")
        for change in group:
            self.cloud.put(change.key.kind, change.key.id, desired.resources[change.key].fields)
        return [ResourceResult(c.key, "done", c.action) for c in group]

    def estimate_seconds(self, changes: Sequence[ResourceChange]) -> float | None:
        return None

    # The lease: one record, compared and set in one step (as an etag-guarded write would).
    def _lease(self) -> Lease | None:
        record = self.cloud.lease
        return None if record is None else Lease.parse(record, "the hub's lease record")

    async def acquire_lease(self, holder: LeaseHolder, until: datetime) -> Acquired:
        found = self._lease()
        why = None if found is None or found.held_by(holder) else found.abandoned(utc_now())
        if found is not None and not found.held_by(holder) and why is None:
            raise LeaseHeld(f"hub {self.target.name!r}", found)
        self.cloud.lease = holder.record(until, 200)
        return Acquired(["the hub's lease record"], [(found, why)] if found and why else [])

    async def renew_lease(self, holder: LeaseHolder, until: datetime) -> None:
        found = self._lease()
        if found is None or not found.held_by(holder):
            raise LeaseLost("the hub's lease is gone")
        self.cloud.lease = holder.record(until, 200)

    async def release_lease(self, holder: LeaseHolder) -> None:
        found = self._lease()
        if found is not None and found.held_by(holder):
            self.cloud.lease = None

    async def find_leases(self) -> list[Lease]:
        found = self._lease()
        return [] if found is None else [found]

    async def break_lease(self, lease_id: str) -> list[Lease]:
        found = self._lease()
        if found is None or found.lease_id != lease_id:
            return []
        self.cloud.lease = None
        return [found]

    @property
    def requests(self) -> int:
        return len(self.cloud.requests)

    def take_warnings(self) -> list[str]:
        return []  # this cloud sends no warnings

    async def aclose(self) -> None:
        pass


async def test_one_plan_covers_a_tts_stack_and_a_second_provider(
    emulator_transport: httpx.ASGITransport, admin_api_key: str, tmp_path: Path
) -> None:
    cloud = Cloud()
    provider: Provider = HubProvider(HubTarget("hub-a", {}), cloud)  # satisfies the contract
    assert provider.name == "hub"

    def create_hub(target: HubTarget, context: ProviderContext) -> HubProvider:
        return HubProvider(target, cloud)

    options = engine.RunOptions(
        paths=[site(tmp_path)],
        providers={**REGISTRY, "hub": create_hub},
        manifest_kinds=MANIFEST_KINDS,
        url=ROOT_URL,
        environ={**KEYS, "TTS_API_KEY": admin_api_key},
        transport=emulator_transport,
    )
    loaded = engine.load(options)
    devices = {"edge-1": {"site": "north"}, "leaf-1": {"site": "north"}, "leaf-2": {}}
    loaded.project.add_target(HubTarget("hub-a", devices))

    session = engine.connect(loaded, options)
    try:
        run = await engine.make_plan(loaded, session, options)
        by_provider = {p: [c for c in run.plan.changes if c.key.provider == p] for p in run.live}
        assert len(by_provider["tts"]) == 7
        assert [str(c.key) for c in by_provider["hub"]] == [
            "hub edge edge-1",  # the provider's kind order: parents first
            "hub device leaf-1",
            "hub device leaf-2",
        ]
        text = Console(record=True, width=200, file=io.StringIO())
        for line in render_plan(run.plan):
            text.print(line)
        rendered = text.export_text()
        assert "+ hub device leaf-1" in rendered and "REG bulk-create" in rendered
        assert "IS create" in rendered  # TTS labels still come from its endpoints
        assert "https://hub" in rendered.splitlines()[1]  # both targets' URLs
        saved = Plan.from_json(json.loads(run.plan.dumps()))
        assert saved.to_json() == run.plan.to_json()

        report = await engine.apply_plan(run, session, options)
        assert not report.failed and len(report.results) == 10
        # One bulk request per kind for the creates, after the read.
        assert cloud.requests == ["query", "bulk-create x1", "bulk-create x2"]

        cloud.put("device", "leaf-1", {"owner": "hub-a", "site": "south"})  # out of band
        again = await engine.make_plan(loaded, session, options)
        (drift,) = again.plan.changes
        assert str(drift.key) == "hub device leaf-1"
        assert drift.steps[0].live_version == '"2"'  # the etag read, kept for the saved plan
        assert [(c.path, c.old, c.new) for c in drift.steps[0].changes] == [
            ("site", "south", "north")
        ]
    finally:
        await session.aclose()


class BrokenHubProvider(HubProvider):
    """A provider with a bug: executing leaf-1 raises, with a secret in the exception text."""

    async def execute(
        self, group: list[ResourceChange], desired: DesiredState, live: LiveState
    ) -> list[ResourceResult]:
        if any(c.key.id == "leaf-1" for c in group):
            raise RuntimeError("SharedAccessKey=c2VjcmV0LXZhbHVlLW5ldmVyLXByaW50ZWQ=")
        return await super().execute(group, desired, live)


async def test_a_provider_bug_fails_only_its_resources_and_never_prints_its_text() -> None:
    cloud = Cloud()
    devices = {"edge-1": {}, "leaf-1": {}, "leaf-2": {}}
    provider = BrokenHubProvider(HubTarget("hub-a", devices), cloud)
    desired = provider.desired(None)
    live = await provider.read(desired, prune=False)
    plan = assemble(Plan(stack="hub-a"), [plan_target(provider, desired, live, PlanOptions())])
    # One group per create, so the bug hits leaf-1 alone.
    provider.groups = lambda kind, deletes, changes: [[c] for c in changes]  # type: ignore[method-assign]

    report = await execute_plan(plan, [Work(provider, desired, live)])
    outcomes = {str(r.key): (r.outcome, r.error) for r in report.results}
    assert outcomes["hub device leaf-1"] == ("failed", "internal error (RuntimeError)")
    assert outcomes["hub edge edge-1"][0] == outcomes["hub device leaf-2"][0] == "done"
    assert "c2VjcmV0" not in repr(report)
