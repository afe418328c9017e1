"""CPU cost of the TTS emulator's emulated traffic for a fleet, in-process, as JSON.

    .venv/bin/python bench/bench_traffic.py [--devices 10000] [--interval 600] [--minutes 10]
                                            [--real-seconds 30] [--state]

Applies N OTAA devices (bench_reconcile's manifests) into the in-process emulator through
httpx.ASGITransport. Then two figures:

* `manual`: the manual clock moved through `--minutes` of traffic in one-second steps (every
  device joins once, then sends about one uplink per `--interval` seconds): process CPU per
  uplink and per simulated second, i.e. the share of one core the traffic costs at that rate.
* `served`: the serving loop (real clock) runs `--real-seconds` with the same fleet and rate:
  process CPU over that wall time (the loop's own waking and sleeping included).

`--state` keeps the emulator's state in a temporary SQLite file (every record written is
committed), as `emulator serve --state` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_reconcile

from reconciler import engine
from reconciler.emulator.tts import TTSConfig, create_app
from reconciler.emulator.tts.config import generate_api_key
from reconciler.engine import RunOptions
from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY


async def populated(app: Any, manifests: Path, key: str) -> None:
    options = RunOptions(
        paths=[manifests],
        providers=REGISTRY,
        manifest_kinds=MANIFEST_KINDS,
        url="http://emulator.test",
        environ={"TTS_API_KEY": key},
        transport=httpx.ASGITransport(app=app),
        parallelism=64,
    )
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    try:
        run = await engine.make_plan(loaded, session, options)
        report = await engine.apply_plan(run, session, options)
        assert not report.failed, report.failed[:3]
    finally:
        await session.aclose()


def build(args: argparse.Namespace, key: str, manual: bool, state: Path | None) -> Any:
    return create_app(
        TTSConfig(
            api_key=key,
            user_id="admin-user",
            seed=1,
            state_path=state,
            traffic_manual_clock=manual,
        )
    )


async def manual_run(
    args: argparse.Namespace, manifests: Path, state: Path | None
) -> dict[str, Any]:
    key = generate_api_key()[0]
    app = build(args, key, True, state)
    emulator = app.state.emulator
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        await populated(app, manifests, key)
        emulator.traffic.set_interval(args.interval)
        started = time.process_time()
        for _ in range(args.minutes * 60):
            emulator.traffic.advance(1)
        cpu = time.process_time() - started
    counts = emulator.traffic.snapshot()
    sent = counts["joins"] + counts["uplinks"]
    return {
        "simulated_s": args.minutes * 60,
        "joins": counts["joins"],
        "uplinks": counts["uplinks"],
        "cpu_s": round(cpu, 2),
        "us_per_uplink": round(1e6 * cpu / max(1, sent), 1),
        "core_share_pct": round(100 * cpu / (args.minutes * 60), 2),
    }


async def served_run(
    args: argparse.Namespace, manifests: Path, state: Path | None
) -> dict[str, Any]:
    key = generate_api_key()[0]
    app = build(args, key, False, state)
    emulator = app.state.emulator
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        await populated(app, manifests, key)
        emulator.traffic.set_interval(args.interval)
        started_cpu, started = time.process_time(), time.monotonic()
        await asyncio.sleep(args.real_seconds)
        cpu, wall = time.process_time() - started_cpu, time.monotonic() - started
    counts = emulator.traffic.snapshot()
    return {
        "wall_s": round(wall, 1),
        "joins": counts["joins"],
        "uplinks": counts["uplinks"],
        "cpu_s": round(cpu, 2),
        "core_share_pct": round(100 * cpu / wall, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=600.0)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--real-seconds", type=float, default=30.0)
    parser.add_argument("--state", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-traffic-"))
    manifests = bench_reconcile.write_manifests(scratch / "manifests", list(range(args.devices)))
    result: dict[str, Any] = {
        "devices": args.devices,
        "interval_s": args.interval,
        "state": "sqlite" if args.state else "memory",
    }
    result["manual"] = asyncio.run(
        manual_run(args, manifests, scratch / "manual.sqlite" if args.state else None)
    )
    if args.real_seconds > 0:
        result["served"] = asyncio.run(
            served_run(args, manifests, scratch / "served.sqlite" if args.state else None)
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
