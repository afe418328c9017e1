"""Gateway updates on the Identity Server (FACTS §e)."""

from __future__ import annotations

import httpx


async def test_gateway_eui_can_be_updated_and_stays_unique(client: httpx.AsyncClient) -> None:
    """FACTS §e: `ids.eui` is an allowed GatewayRegistry/Update path; EUIs stay unique."""
    for gateway_id, eui in (("gw-eui-a", "B827EBFFFE000001"), ("gw-eui-b", "B827EBFFFE000002")):
        response = await client.post(
            "/users/admin-user/gateways",
            json={
                "gateway": {
                    "ids": {"gateway_id": gateway_id, "eui": eui},
                    "frequency_plan_ids": ["EU_863_870_TTN"],
                }
            },
        )
        assert response.status_code == 200, response.text
    moved = await client.put(
        "/gateways/gw-eui-a",
        json={
            "gateway": {"ids": {"eui": "b827ebfffe0000aa"}},
            "field_mask": {"paths": ["ids.eui"]},
        },
    )
    assert moved.status_code == 200, moved.text
    got = (await client.get("/gateways/gw-eui-a")).json()
    assert got["ids"]["eui"] == "B827EBFFFE0000AA"
    taken = await client.put(
        "/gateways/gw-eui-a",
        json={
            "gateway": {"ids": {"eui": "B827EBFFFE000002"}},
            "field_mask": {"paths": ["ids.eui"]},
        },
    )
    assert taken.status_code == 409
    assert taken.json()["details"][0]["name"] == "gateway_eui_taken"
