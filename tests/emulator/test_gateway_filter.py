"""`POST /gateways/filter`: the GatewayRegistry List RPC with its request in the body (field mask,
order, paging, `collaborator`, `deleted`) plus `filters: [{"updated_since": ts}]`, as the
reference API defines it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.emulator.support import (
    INVALID_ARGUMENT,
    TtsApi,
    expect_error,
    expect_ok,
)

pytestmark = pytest.mark.asyncio


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ids(answer: httpx.Response) -> list[str]:
    return [g["ids"]["gateway_id"] for g in expect_ok(answer).get("gateways", [])]


async def test_updated_since_lists_the_gateways_changed_after_it(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    earlier = await tts.create_gateway("gtw-old")
    await asyncio.sleep(0.01)
    await tts.create_gateway("gtw-new", name="New")
    since = datetime.fromisoformat(earlier["updated_at"]) + timedelta(microseconds=1)
    answer = await client.post(
        "/gateways/filter",
        json={"field_mask": {"paths": ["name"]}, "filters": [{"updated_since": _stamp(since)}]},
    )
    [gateway] = expect_ok(answer)["gateways"]
    assert gateway["ids"]["gateway_id"] == "gtw-new" and gateway["name"] == "New"
    assert "frequency_plan_ids" not in gateway  # only what the mask asks for
    assert answer.headers["X-Total-Count"] == "1"

    # An update moves a gateway into the window; without filters it is the plain list.
    update = await client.put(
        "/gateways/gtw-old",
        json={"gateway": {"name": "Renamed"}, "field_mask": {"paths": ["name"]}},
    )
    expect_ok(update)
    filtered = await client.post(
        "/gateways/filter", json={"filters": [{"updated_since": _stamp(since)}]}
    )
    assert _ids(filtered) == ["gtw-new", "gtw-old"]
    everything = await client.post("/gateways/filter", json={"order": "-gateway_id", "limit": 1})
    assert _ids(everything) == ["gtw-old"] and everything.headers["X-Total-Count"] == "2"


async def test_deleted_and_collaborator_select_as_the_list_does(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    await tts.create_user("bob")
    await tts.create_gateway("gtw-admin")
    await tts.create_gateway("gtw-bob", user="bob")
    await tts.create_gateway("gtw-gone")
    expect_ok(await client.delete("/gateways/gtw-gone"))
    assert _ids(await client.post("/gateways/filter", json={"deleted": True})) == ["gtw-gone"]
    mine = await client.post(
        "/gateways/filter", json={"collaborator": {"user_ids": {"user_id": "bob"}}}
    )
    assert _ids(mine) == ["gtw-bob"]
    bob = tts.client_for(await tts.create_user_api_key("bob", ["RIGHT_ALL"]))
    assert _ids(await bob.post("/gateways/filter", json={})) == ["gtw-bob"]


async def test_a_bad_request_is_refused_as_the_list_refuses_it(client: httpx.AsyncClient) -> None:
    future = _stamp(datetime.now(UTC) + timedelta(hours=1))
    for body in (
        {"filters": [{"updated_since": future}]},  # must be in the past
        {"limit": 1001},
        {"order": "frequency_plan_ids"},
    ):
        answer = await client.post("/gateways/filter", json=body)
        expect_error(answer, code=INVALID_ARGUMENT, namespace="pkg/errors", name="validation")
    not_allowed = await client.post(
        "/gateways/filter", json={"field_mask": {"paths": ["no_such_field"]}}
    )
    assert not_allowed.status_code == 400, not_allowed.text
