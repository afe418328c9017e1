"""A plan reads the declared devices' registries while the Identity Server lists the devices,
not after: the listing's pages (the first holds up to a thousand devices) would otherwise be
round trips no device read overlaps."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import build_emulator_app, end_streams_when_idle
from tests.core.support import ROOT_URL, Engine, fleet_site, site

DEVICES = 12
PARALLELISM = 8
LIST_PATH = "/api/v3/applications/field-fleet/devices"


class Timeline(httpx.AsyncBaseTransport):
    """Notes when each request is sent and when its answer arrives, in order."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.events: list[tuple[str, str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.events.append(("sent", request.method, request.url.path))
        response = await self.inner.handle_async_request(request)
        self.events.append(("answered", request.method, request.url.path))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def first(self, what: str, method: str, prefix: str) -> int:
        return next(
            i
            for i, (w, m, path) in enumerate(self.events)
            if w == what and m == method and path.startswith(prefix)
        )


async def test_device_reads_start_before_the_listing_answers(
    admin_api_key: str, tmp_path: Path
) -> None:
    app = build_emulator_app(admin_api_key, latency_ms=5)  # every answer takes a while
    async with app.router.lifespan_context(app):
        end_streams_when_idle(app)
        tree = fleet_site(tmp_path, DEVICES)
        await Engine(httpx.ASGITransport(app=app), admin_api_key).apply([tree])
        timeline = Timeline(httpx.ASGITransport(app=app))
        run = await Engine(timeline, admin_api_key).plan([tree], parallelism=PARALLELISM)

    assert run.plan.changes == []
    listed = timeline.first("answered", "GET", LIST_PATH)
    reads = [e for e in timeline.events if e[0] == "sent" and "/devices/node-" in e[2]]
    assert len(reads) == 3 * DEVICES  # one read per device and registry, none repeated
    # Every slot the listing leaves free is reading a device before the listing answers.
    early = [e for e in timeline.events[:listed] if e in reads]
    assert len(early) >= min(3 * DEVICES, PARALLELISM - 1), early


async def test_records_left_without_the_identity_server_are_found_first(
    admin_api_key: str, tmp_path: Path
) -> None:
    """A declared device the Identity Server lacks is still read everywhere else: the records
    left there (here: the Identity Server record deleted alone; for the ABP device, a Join
    Server record written alone) are deleted before it is registered anew."""
    app = build_emulator_app(admin_api_key)
    async with app.router.lifespan_context(app):
        end_streams_when_idle(app)
        tree = site(tmp_path)
        eng = Engine(httpx.ASGITransport(app=app), admin_api_key)
        await eng.apply([tree])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=f"{ROOT_URL}/api/v3",
            headers={"Authorization": f"Bearer {admin_api_key}"},
        ) as api:
            for device_id in ("otaa-103", "abp-102"):
                response = await api.delete(f"/applications/field-sensors/devices/{device_id}")
                assert response.status_code == 200, response.text
            response = await api.put(
                "/js/applications/field-sensors/devices/abp-102",
                json={
                    "end_device": {
                        "ids": {
                            "device_id": "abp-102",
                            "application_ids": {"application_id": "field-sensors"},
                            "dev_eui": "70B3D57ED0000003",
                            "join_eui": "0000000000000000",
                        }
                    },
                    "field_mask": {"paths": []},
                },
            )
            assert response.status_code == 200, response.text
        run = await eng.plan([tree])

    reasons = {str(c.key): (c.action, c.reason) for c in run.plan.changes}
    assert reasons == {
        "device field-sensors/otaa-103": (
            "create",
            "not registered on the Identity Server, but records remain on AS, NS, JS (an "
            "orphan): they are deleted first, then the device is registered anew",
        ),
        "device field-sensors/abp-102": (
            "create",
            "not registered on the Identity Server, but records remain on AS, NS, JS (an "
            "orphan): they are deleted first, then the device is registered anew",
        ),
    }
