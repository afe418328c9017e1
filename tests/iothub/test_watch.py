"""The generic watch loop on a target without a change stream (an Azure IoT Hub): read in full
at every interval, its drift reported and healed through the executor of apply; in-process
against the IoT Hub emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from reconciler import engine
from reconciler.watch import Watch, WatchOptions, metrics_text
from tests.iothub.support import DEVICES, HUB, HubEngine, write_manifests


async def test_a_hub_is_swept_in_full_and_healed(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    tree = write_manifests(tmp_path, hub=HUB, devices=DEVICES)
    await hub_engine.apply([tree])
    options = hub_engine.options([tree])
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    lines: list[tuple[str, str]] = []
    watch = Watch(
        loaded,
        session,
        options,
        WatchOptions(interval=0.2, full_interval=3600, heal=True),
        lambda what, line: lines.append((what, line)),
    )
    assert session.targets[0].provider.watcher() is None
    stop = asyncio.Event()
    running = asyncio.create_task(watch.run(stop))
    try:
        while watch.metrics.full_sweeps < 1:
            await asyncio.sleep(0.05)
        response = await owner.patch(
            "/twins/sensor-1",
            json={"properties": {"desired": {"interval": 300}}},
            headers={"If-Match": '"*"'},
        )
        assert response.status_code == 200, response.text
        async with asyncio.timeout(10):
            while watch.metrics.healed < 1:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        metrics = await running
        await session.aclose()
    twin = (await owner.get("/twins/sensor-1")).json()
    assert twin["properties"]["desired"]["interval"] == 60
    drift = [line for what, line in lines if what == "drift"]
    assert drift and "device sensor-1" in drift[0] and "properties.desired.interval" in drift[0]
    assert metrics.drift_found == 1 and metrics.healed == 1 and metrics.heal_failed == 0
    assert metrics.full_sweeps >= 2 and metrics.cheap_sweeps == 0  # no watcher: full sweeps
    exposition = metrics_text(metrics)
    assert "reconciler_watch_healed_total 1.0" in exposition
    assert "# TYPE reconciler_watch_stream_reconnects_total counter" in exposition
