"""The two seeds meet: a tree with a Things Stack and an IoT Hub, where the hub mirrors an
application's LoRaWAN devices as The Things Stack's own IoT Hub integration does (TTS is the
source of truth): one apply registers the device on TTS and its twin on the hub, one plan and
one drift cover both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from reconciler import engine
from reconciler.engine import RunOptions
from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY
from tests.core.support import APPLICATION, DEVICES, KEYS, ROOT_URL, STACK
from tests.iothub.support import HUB, connection_string, write_manifests

MIRROR = (
    HUB
    + """
lorawan_mirror:
  - application: field-sensors
    profile: probe
"""
)


class Router(httpx.AsyncBaseTransport):
    """Requests to the TTS emulator's host go to it, the rest to the hub emulator."""

    def __init__(self, tts: httpx.AsyncBaseTransport, hub: httpx.AsyncBaseTransport) -> None:
        self.tts = tts
        self.hub = hub

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = self.tts if request.url.host == "emulator.test" else self.hub
        return await target.handle_async_request(request)


async def _run(options: RunOptions, *, apply: bool) -> Any:
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    try:
        run = await engine.make_plan(loaded, session, options)
        report = await engine.apply_plan(run, session, options) if apply else None
        return run, report
    finally:
        await session.aclose()


async def test_one_apply_registers_on_tts_and_mirrors_into_the_hub(
    tmp_path: Path,
    emulator_transport: httpx.ASGITransport,
    admin_api_key: str,
    hub_transport: httpx.ASGITransport,
    hub_key: str,
    owner: httpx.AsyncClient,
) -> None:
    tree = write_manifests(
        tmp_path, stack=STACK, application=APPLICATION, devices=DEVICES, hub=MIRROR
    )
    options = RunOptions(
        paths=[tree],
        providers=REGISTRY,
        manifest_kinds=MANIFEST_KINDS,
        url=ROOT_URL,
        environ={
            **KEYS,
            "TTS_API_KEY": admin_api_key,
            "IOTHUB_CONNECTION_STRING": connection_string(hub_key),
            "RECONCILER_IOTHUB_URL": "https://myhub.azure-devices.net",
        },
        transport=Router(emulator_transport, hub_transport),
    )
    run, report = await _run(options, apply=True)
    assert {t.provider for t in run.plan.targets} == {"tts", "iothub"}
    created = {(c.key.provider, c.key.kind, c.key.id) for c in run.plan.changes}
    assert ("tts", "device", "otaa-103") in created
    assert ("iothub", "device", "otaa-103") in created
    assert not report.failed, [r.error for r in report.failed]

    twin = (await owner.get("/twins/otaa-103")).json()
    assert twin["tags"]["lorawan"] == {
        "devEui": "70B3D57ED0000001",
        "joinEui": "70B3D57ED0000000",
        "lorawanVersion": "1.0.3",
        "regionalParametersVersion": "1.0.3-a",
        "frequencyPlanId": "EU_863_870_TTN",
    }
    assert twin["properties"]["desired"]["interval"] == 60  # the mirror's profile
    text = str(twin)
    for key in KEYS.values():  # root and session keys stay on TTS
        assert key not in text and key.lower() not in text

    again, _ = await _run(options, apply=False)
    assert not again.plan.has_changes()

    # Drift covers both: a twin tag changed on the hub shows up in the same plan.
    response = await owner.patch(
        "/twins/otaa-103",
        json={"tags": {"lorawan": {"frequencyPlanId": "US_902_928_FSB_2"}}},
        headers={"If-Match": '"*"'},
    )
    assert response.status_code == 200
    drift, _ = await _run(options, apply=False)
    assert [(str(c.key), c.steps[0].paths) for c in drift.plan.changes] == [
        ("device otaa-103", ["tags.lorawan.frequencyPlanId"])
    ]
