"""Planner CPU per device, in-process (no network, no server load in the figure), as JSON.

    .venv/bin/python bench/bench_planner.py [--devices 1000] [--runs 5] [--freeze] [--create]
        [--profile]

Applies N OTAA devices (bench_reconcile's manifests) into the in-process emulator through
httpx.ASGITransport, reads the live state once, then times `reconciler.planning.plan_target`
alone `--runs` times (the plan must be empty), under the collector policy of
`engine.make_plan` (`young_collections_only`). `--create` plans the N devices against an empty
live state instead (every device created; no emulator). Each run's plan is dropped before the
next, as a CLI run holds one plan: a plan kept alive makes the next run's collections scan it
too. `--freeze` calls gc.freeze() first, as the CLI does after reading; `--profile` prints the
top functions of one more pass. `gc_collections` counts the collector's passes per run, by
generation (young, middle, full).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
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
from reconciler.engine import RunOptions, young_collections_only
from reconciler.planning import plan_target
from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY
from reconciler.resources import LiveState


def _options(manifests: Path, key: str, **kwargs: Any) -> RunOptions:
    return RunOptions(
        paths=[manifests],
        providers=REGISTRY,
        manifest_kinds=MANIFEST_KINDS,
        url="http://emulator.test",
        environ={"TTS_API_KEY": key},
        **kwargs,
    )


async def live_state(manifests: Path, key: str) -> tuple[Any, Any, Any]:
    app = create_app(TTSConfig(api_key=key, user_id="admin-user", seed=1))
    # The history read's stream ends sooner than the client's half second of quiet.
    app.state.emulator.faults.event_stream_idle_s = 0.02
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        options = _options(manifests, key, transport=httpx.ASGITransport(app=app))
        loaded = engine.load(options)
        session = engine.connect(loaded, options)
        try:
            run = await engine.make_plan(loaded, session, options)
            report = await engine.apply_plan(run, session, options)
            assert not report.failed, report.failed[:3]
            target = session.targets[0]
            live = await target.provider.read(target.desired, prune=False)
            return target, live, engine.plan_options(target, options)
        finally:
            await session.aclose()


def nothing_live(manifests: Path, key: str) -> tuple[Any, Any, Any]:
    """The target and plan options of the manifests, and an empty live state."""
    options = _options(manifests, key)
    session = engine.connect(engine.load(options), options)
    target = session.targets[0]
    return target, LiveState(), engine.plan_options(target, options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--freeze", action="store_true")
    parser.add_argument("--create", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    manifests = Path(tempfile.mkdtemp(prefix="bench-planner-")) / "manifests"
    bench_reconcile.write_manifests(manifests, list(range(args.devices)))
    if args.create:
        target, live, options = nothing_live(manifests, generate_api_key()[0])
    else:
        target, live, options = asyncio.run(live_state(manifests, generate_api_key()[0]))
    expected = "create" if args.create else "no-op"
    if args.freeze:
        gc.freeze()
    runs = []
    collections = []
    for _ in range(args.runs):
        before = [g["collections"] for g in gc.get_stats()]
        started = time.process_time()
        with young_collections_only():
            part = plan_target(target.provider, target.desired, live, options)
        runs.append(round(1e6 * (time.process_time() - started) / args.devices, 1))
        collections.append(
            [g["collections"] - b for g, b in zip(gc.get_stats(), before, strict=True)]
        )
        devices = [r for r in part.resources if r.key.kind == "device"]
        assert all(r.action == expected for r in devices), f"not every device is {expected}"
        del part
    figures = {
        "devices": args.devices,
        "freeze": args.freeze,
        "plan": expected,
        "us_per_device": runs,
    }
    print(json.dumps({**figures, "gc_collections": collections}))
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        plan_target(target.provider, target.desired, live, options)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
