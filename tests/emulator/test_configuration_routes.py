"""Routes the official JavaScript SDK and the Console call besides the registries (routes from
api-definition.json): the admin user listing, frequency plans, DevAddr generation, JoinEUI
prefixes and webhook templates."""

from __future__ import annotations

import httpx

from tests.emulator.support import (
    ADMIN_USER,
    NOT_FOUND,
    PERMISSION_DENIED,
    TtsApi,
    expect_error,
    expect_ok,
)


async def test_users_are_listed_for_admins_only(client: httpx.AsyncClient, tts: TtsApi) -> None:
    await tts.create_user("field-tech")
    response = await client.get("/users", params={"field_mask": "name", "order": "-user_id"})
    listing = expect_ok(response)
    assert [u["ids"]["user_id"] for u in listing["users"]] == ["field-tech", ADMIN_USER]
    assert response.headers["X-Total-Count"] == "2"
    key = await tts.create_user_api_key("field-tech", ["RIGHT_USER_ALL"])
    expect_error(
        await tts.client_for(key).get("/users"), code=PERMISSION_DENIED, name="permission_denied"
    )


async def test_frequency_plans_filter_by_band(client: httpx.AsyncClient) -> None:
    plans = expect_ok(await client.get("/configuration/frequency-plans"))["frequency_plans"]
    assert {"id": "EU_863_870_TTN", "band_id": "EU_863_870"} in plans
    us = expect_ok(
        await client.get("/configuration/frequency-plans", params={"band_id": "US_902_928"})
    )["frequency_plans"]
    assert us and all(p["band_id"] == "US_902_928" for p in us)


async def test_dev_addr_is_generated_in_the_netid_prefix(client: httpx.AsyncClient) -> None:
    addrs = {expect_ok(await client.get("/ns/dev_addr"))["dev_addr"] for _ in range(20)}
    assert len(addrs) > 1
    for addr in addrs:
        assert len(addr) == 8 and int(addr, 16) >> 25 == 0x26 >> 1


async def test_join_eui_prefixes_and_no_webhook_templates(client: httpx.AsyncClient) -> None:
    assert expect_ok(await client.get("/js/join_eui_prefixes")) == {"prefixes": [{}]}
    assert expect_ok(await client.get("/as/webhook-templates")) == {}
    expect_error(
        await client.get("/as/webhook-templates/tago"), code=NOT_FOUND, name="template_not_found"
    )


async def test_only_the_user_listing_needs_a_credential(tts: TtsApi) -> None:
    anonymous = tts.client_for(None)
    for path in ("/ns/dev_addr", "/configuration/frequency-plans", "/js/join_eui_prefixes"):
        expect_ok(await anonymous.get(path))
    assert (await anonymous.get("/users")).status_code == 401
