"""A gateway's manifest `location` lives on its first antenna: writing it keeps the antennas
that the Console manages (gain, placement, attributes, further antennas)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from reconciler import engine
from reconciler.plan.model import ApplyReport, Plan
from tests.core.support import STACK, Engine, step_summary, write_manifests

pytestmark = pytest.mark.asyncio

GATEWAY = """
kind: Gateway
id: barn-gw
eui: "B827EBFFFE8B0001"
frequency_plan_ids: [EU_863_870_TTN]
location:
  latitude: {latitude}
  longitude: 4.8897
  altitude: 12
"""


def gateway_site(directory: Path, latitude: float) -> Path:
    return write_manifests(directory, stack=STACK, gateway=GATEWAY.format(latitude=latitude))


async def antennas(client: httpx.AsyncClient) -> list[dict[str, object]]:
    response = await client.get("/gateways/barn-gw", params={"field_mask": "antennas"})
    assert response.status_code == 200, response.text
    found: list[dict[str, object]] = response.json()["antennas"]
    return found


async def apply_saved(eng: Engine, saved: Plan) -> ApplyReport:
    """`apply --plan`: plan afresh, keep the saved changes that still hold, apply those."""
    options = engine.saved_plan_options(saved, eng.options([]))
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    try:
        run = await engine.make_plan(loaded, session, options)
        assert engine.review_saved_plan(run, saved) == []  # nothing stale
        return await engine.apply_plan(run, session, options)
    finally:
        await session.aclose()


@pytest.fixture
def eng(emulator_transport: httpx.ASGITransport, admin_api_key: str) -> Engine:
    return Engine(emulator_transport, admin_api_key)


async def test_location_change_keeps_console_antenna_gain_placement_and_second_antenna(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [gateway_site(tmp_path, 52.3741)]
    _, report = await eng.apply(paths)
    assert not report.failed, report.failed

    # The Console sets gain, placement and a second antenna (the field mask path is `antennas`).
    console_antennas = [
        {
            "gain": 3.5,
            "placement": "OUTDOOR",
            "attributes": {"mount": "mast"},
            "location": {"latitude": 52.3741, "longitude": 4.8897, "altitude": 12},
        },
        {"gain": 2, "placement": "INDOOR"},
    ]
    response = await client.put(
        "/gateways/barn-gw",
        json={
            "gateway": {"ids": {"gateway_id": "barn-gw"}, "antennas": console_antennas},
            "field_mask": {"paths": ["antennas"]},
        },
    )
    assert response.status_code == 200, response.text
    assert not (await eng.plan(paths)).plan.has_changes()

    paths = [gateway_site(tmp_path, 52.5)]
    run = await eng.plan(paths)
    assert step_summary(run) == {"gateway barn-gw": [("is", "update", ["antennas"])]}
    [field] = run.plan.changes[0].steps[0].changes
    # Only the first antenna's location differs between what is and what will be written.
    assert isinstance(field.old, list) and isinstance(field.new, list)
    assert field.new[0]["location"]["latitude"] == 52.5
    assert field.old[0]["location"]["latitude"] == 52.3741
    assert field.old[1:] == field.new[1:]
    assert {**field.old[0], "location": None} == {**field.new[0], "location": None}
    assert len(field.new) == 2

    report = await apply_saved(eng, Plan.from_json(json.loads(run.plan.dumps())))
    assert not report.failed, report.failed
    first, second = await antennas(client)
    assert first["gain"] == 3.5
    assert first["placement"] == "OUTDOOR"
    assert first["attributes"] == {"mount": "mast"}
    assert first["location"] == {"latitude": 52.5, "longitude": 4.8897, "altitude": 12}
    assert second == {"gain": 2, "placement": "INDOOR"}
    assert not (await eng.plan(paths)).plan.has_changes()


async def test_location_is_written_as_the_only_antenna_of_a_gateway_without_one(
    eng: Engine, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    paths = [gateway_site(tmp_path, 52.3741)]
    _, report = await eng.apply(paths)
    assert not report.failed, report.failed
    assert await antennas(client) == [
        {"location": {"latitude": 52.3741, "longitude": 4.8897, "altitude": 12}}
    ]
    assert not (await eng.plan(paths)).plan.has_changes()
