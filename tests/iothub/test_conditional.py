"""Etags make writes conditional: a device changed between the read and the write is refused
by the hub (412). A live apply reads it again, plans it again and applies that; `apply --plan`
reports it as stale and applies nothing for it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from reconciler import engine
from reconciler.plan.model import Plan
from tests.iothub.support import DEVICES, HUB, HubEngine, write_manifests


class Interfering(httpx.AsyncBaseTransport):
    """Runs `before` once, just before the first request that `matches` reaches the hub (as
    another tool writing in the same instant)."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        matches: Callable[[httpx.Request], bool],
        before: Callable[[httpx.AsyncBaseTransport], object],
    ) -> None:
        self.inner = inner
        self.matches = matches
        self.before = before
        self.fired = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.fired and self.matches(request):
            self.fired = True
            await self.before(self.inner)  # type: ignore[misc]
        return await self.inner.handle_async_request(request)


async def _change_interval(owner: httpx.AsyncClient) -> None:
    response = await owner.patch(
        "/twins/sensor-1",
        json={"properties": {"desired": {"interval": 999, "theirs": 1}}},
        headers={"If-Match": '"*"'},
    )
    assert response.status_code == 200


def _first_twin_patch(request: httpx.Request) -> bool:
    return request.method == "PATCH" and request.url.path == "/twins/sensor-1"


async def _drift(tree: Path, hub_engine: HubEngine, owner: httpx.AsyncClient) -> None:
    await hub_engine.apply([tree])
    response = await owner.patch(
        "/twins/sensor-1",
        json={"properties": {"desired": {"interval": 5}}},
        headers={"If-Match": '"*"'},
    )
    assert response.status_code == 200


async def test_a_live_apply_replans_a_resource_the_hub_refuses_with_412(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    tree = write_manifests(tmp_path, hub=HUB, devices=DEVICES)
    await _drift(tree, hub_engine, owner)
    interfering = Interfering(
        hub_engine.transport, _first_twin_patch, lambda _inner: _change_interval(owner)
    )
    hub_engine.transport = interfering
    _, report = await hub_engine.apply([tree])
    assert interfering.fired
    assert [(str(r.key), r.outcome) for r in report.results] == [("device sensor-1", "done")]
    desired = (await owner.get("/twins/sensor-1")).json()["properties"]["desired"]
    assert desired["interval"] == 60  # applied after reading it again
    assert desired["theirs"] == 1  # the other writer's key is kept


async def test_a_saved_plan_is_refused_by_the_hub_when_the_device_changed_since(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    tree = write_manifests(tmp_path, hub=HUB, devices=DEVICES)
    await _drift(tree, hub_engine, owner)
    saved = Plan.from_json(json.loads((await hub_engine.plan([tree])).plan.dumps()))
    interfering = Interfering(
        hub_engine.transport, _first_twin_patch, lambda _inner: _change_interval(owner)
    )
    hub_engine.transport = interfering
    options = engine.saved_plan_options(saved, hub_engine.options([tree]))
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    try:
        run = await engine.make_plan(loaded, session, options)
        assert engine.review_saved_plan(run, saved) == []  # unchanged when re-checked
        report = await engine.apply_plan(run, session, options)
    finally:
        await session.aclose()
    assert interfering.fired
    (result,) = report.results
    assert result.outcome == "skipped"
    assert "changed on the hub since the plan (412 PreconditionFailed)" in result.error
    desired = (await owner.get("/twins/sensor-1")).json()["properties"]["desired"]
    assert desired["interval"] == 999  # nothing applied on the strength of a stale plan
