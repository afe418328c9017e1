"""Import benchmark: `reconciler import` of N OTAA devices against `plan` with no changes on the
same fleet, from the served emulator, as JSON.

    .venv/bin/python bench/bench_import.py [--devices 10000] [--latency-ms 20]
        [--rate-limit 6000:300] [--parallelism 16] [--repeats 2] [--no-check-plan]
        [--no-device-packages]

The fleet, the manifests and the emulator are those of `bench/bench_reconcile.py` (one
application, a Fleet CSV of N OTAA LoRaWAN 1.0.3 devices with their AppKeys in a secrets CSV;
`reconciler emulator serve` pinned to CPU 0). The fleet is created with the latency and rate
limit lifted, then restored; each measured run is a fresh client interpreter pinned to CPU 1
(so peak RSS and CPU are the run's own). Runs alternate `plan` (no changes) and `import`
(read + build + write the tree), `--repeats` times each, so both see the same machine load;
`ratio` is import wall time / plan wall time of the same round. Then the written tree is
loaded and validated (timed, in a fresh interpreter) and, unless `--no-check-plan`, planned
against the same server: it must show no changes (the fleet is already owned by the stack).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The fleet, manifests and emulator of the reconcile benchmark.
import bench_reconcile as fleet

TARGETS = {"ratio_max": 1.2, "peak_rss_mb_max": 300.0, "load_validate_s_max": 3.0}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One measured run in this (fresh) interpreter."""
    if hasattr(os, "sched_setaffinity") and fleet.CLIENT_CPU in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {fleet.CLIENT_CPU})
    from reconciler import engine
    from reconciler.engine import RunOptions
    from reconciler.manifest.load import load_manifests
    from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY
    from reconciler.providers.tts.importing.live import Selection
    from reconciler.providers.tts.importing.run import ImportOptions, run_import

    environ = {"TTS_API_KEY": spec["api_key"]}
    figures: dict[str, Any] = {"run": spec["run"]}
    if spec["run"] == "seed":
        figures["wall_s"] = round(seed(spec), 1)
        return figures
    started, cpu = time.perf_counter(), time.process_time()
    if spec["run"] == "plan":
        options = RunOptions(
            paths=[Path(spec["manifests"])],
            providers=REGISTRY,
            manifest_kinds=MANIFEST_KINDS,
            url=spec["url"],
            parallelism=spec["parallelism"],
            environ=environ,
        )

        async def plan() -> Any:
            loaded = engine.load(options)
            session = engine.connect(loaded, options)
            try:
                run = await engine.make_plan(loaded, session, options)
                return run, session.requests
            finally:
                await session.aclose()

        run, requests = asyncio.run(plan())
        figures["changes"] = len(run.plan.changes)
        figures["adoptions"] = sum(1 for c in run.plan.changes if c.adopt)
        figures["requests"] = requests
    elif spec["run"] == "import":
        report = asyncio.run(
            run_import(
                ImportOptions(
                    out=Path(spec["out"]),
                    stack="bench-stack",
                    url=spec["url"],
                    selection=Selection((fleet.APP_ID,)),
                    overwrite=True,
                    device_packages=spec["device_packages"],
                    parallelism=spec["parallelism"],
                    environ=environ,
                )
            )
        )
        figures["counts"] = report.counts
        figures["report_lines"] = len(report.lines())
    else:  # load + validate the written tree
        result = load_manifests([Path(spec["out"])], environ=environ, kinds=MANIFEST_KINDS)
        figures["valid"] = not result.has_errors
        figures["summary"] = result.summary()
    figures["wall_s"] = round(time.perf_counter() - started, 3)
    figures["cpu_s"] = round(time.process_time() - cpu, 3)
    figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return figures


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        cwd=fleet.ROOT,
        timeout=1800,
    )
    if done.returncode != 0:
        return {
            "run": spec["run"],
            "failed": f"exit {done.returncode}",
            "stderr": done.stderr[-2000:],
        }
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def seed(spec: dict[str, Any]) -> float:
    """Create the fleet with reconciler itself (the caller lifts latency and rate limit)."""
    from reconciler import engine
    from reconciler.engine import RunOptions
    from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY

    started = time.perf_counter()
    options = RunOptions(
        paths=[Path(spec["manifests"])],
        providers=REGISTRY,
        manifest_kinds=MANIFEST_KINDS,
        url=spec["url"],
        parallelism=spec["parallelism"],
        environ={"TTS_API_KEY": spec["api_key"]},
    )

    async def create() -> None:
        loaded = engine.load(options)
        session = engine.connect(loaded, options)
        try:
            run = await engine.make_plan(loaded, session, options)
            report = await engine.apply_plan(run, session, options)
            if report.failed:
                raise SystemExit(f"seeding failed: {report.failed[0]}")
        finally:
            await session.aclose()

    asyncio.run(create())
    return time.perf_counter() - started


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return fleet._peak_rss_mb()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rate-limit", type=fleet._parse_rate_limit, default="6000:300")
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-check-plan", action="store_true")
    # Import without listing each device's package associations (one request per device).
    parser.add_argument("--no-device-packages", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-import-") as scratch:
        manifests = fleet.write_manifests(Path(scratch) / "manifests", list(range(args.devices)))
        out = Path(scratch) / "imported"
        emulator = fleet.Emulator(args.latency_ms, args.rate_limit)
        try:
            common = {
                "url": emulator.url,
                "api_key": emulator.api_key,
                "parallelism": args.parallelism,
                "manifests": str(manifests),
                "out": str(out),
                "device_packages": not args.no_device_packages,
            }
            # Seeded in a child too, so no measured run inherits a large parent.
            emulator.configure(rate_limit=None, latency_ms=0)
            seeded = run_child({**common, "run": "seed"})
            emulator.configure(rate_limit=emulator.rate_limit, latency_ms=emulator.latency_ms)
            if "failed" in seeded:
                raise SystemExit(f"seeding failed: {seeded}")
            rounds = []
            for _ in range(args.repeats):
                plan = run_child({**common, "run": "plan"})
                imported = run_child({**common, "run": "import"})
                ratio = (
                    round(imported["wall_s"] / plan["wall_s"], 3)
                    if "wall_s" in plan and "wall_s" in imported
                    else None
                )
                rounds.append({"plan": plan, "import": imported, "ratio": ratio})
                print(
                    f"# round: plan {plan.get('wall_s')} s, import {imported.get('wall_s')} s, "
                    f"ratio {ratio}",
                    file=sys.stderr,
                    flush=True,
                )
            loaded = run_child({**common, "run": "validate"})
            check = None
            if not args.no_check_plan:
                check = run_child({**common, "run": "plan", "manifests": str(out)})
        finally:
            emulator.stop()
    ratios = [r["ratio"] for r in rounds if r["ratio"] is not None]
    rss = [r["import"].get("peak_rss_mb", 0) for r in rounds]
    result = {
        "devices": args.devices,
        "latency_ms": args.latency_ms,
        "rate_limit": args.rate_limit,
        "parallelism": args.parallelism,
        "device_packages": not args.no_device_packages,
        "emulator_pinned_cpu": fleet.SERVER_CPU if emulator.pinned else None,
        "seed_s": seeded.get("wall_s"),
        "rounds": rounds,
        "load_validate": loaded,
        "plan_on_import": check,
        "summary": {
            "ratio_range": [min(ratios), max(ratios)] if ratios else None,
            "import_peak_rss_mb_max": max(rss) if rss else None,
            "load_validate_s": loaded.get("wall_s"),
            "plan_on_import_changes": check.get("changes") if check else None,
        },
        "targets": TARGETS,
        "targets_met": {
            "ratio": bool(ratios) and max(ratios) <= TARGETS["ratio_max"],
            "memory": bool(rss) and max(rss) <= TARGETS["peak_rss_mb_max"],
            "load_validate": loaded.get("valid") is True
            and loaded.get("wall_s", 1e9) <= TARGETS["load_validate_s_max"],
            "round_trip": check is None or check.get("changes") == 0,
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
