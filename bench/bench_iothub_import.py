"""IoT Hub import benchmark: `reconciler import --iothub` of N devices against the served IoT
Hub emulator, beside `plan` with no changes on the same hub, as JSON.

    .venv/bin/python bench/bench_iothub_import.py [--devices 10000] [--latency-ms 20]
        [--sku S1] [--units 100] [--parallelism 16] [--repeats 2] [--with-secrets]

The hub is filled by applying bench_iothub.py's tree (a CSV fleet, two tags and two desired
properties per device) in the emulator started as that benchmark starts it (latency, the SKU's
throttles, pinned to CPU 0). Then, per round, each in a fresh client interpreter pinned to CPU 1:
`plan` of the original tree (no changes), the import into a new directory, and loading and
validating the imported tree; then `plan` of the imported tree, which must find no change (the
devices carry the original tree's ownership tag, and the import takes its name from it). With
`--with-secrets` a second import also reads every device's keys (one identity GET per device,
paced to the SKU's identity-operation rate), against its lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_iothub import HOST, Hub, pinned, write_tree  # noqa: E402

from reconciler.providers.iothub.rules import OperationClass, throttle_rates  # noqa: E402

CLIENT_CPU = 1
TARGETS = {"import_to_plan_ratio_max": 1.2, "validate_s_max": 3.0, "peak_rss_mb_max": 300.0}


def client_main(spec: dict[str, Any]) -> dict[str, Any]:
    connection = f"HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={spec['key']}"
    environ = {"IOTHUB_CONNECTION_STRING": connection, "RECONCILER_IOTHUB_URL": spec["url"]}
    figures: dict[str, Any] = {}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if spec["action"] == "import":
        from reconciler.providers.iothub.importing.run import HubImportOptions, run_import

        options = HubImportOptions(
            out=Path(spec["out"]),
            with_secrets=spec["with_secrets"],
            sku=spec["sku"],
            units=spec["units"],
            parallelism=spec["parallelism"],
            environ=environ,
        )
        report = asyncio.run(run_import(options))
        figures["summary"] = report.summary()
    elif spec["action"] == "validate":
        from reconciler.manifest.load import load_manifests
        from reconciler.providers.registry import MANIFEST_KINDS

        result = load_manifests([Path(spec["tree"])], kinds=MANIFEST_KINDS, environ=environ)
        figures["errors"] = sum(1 for d in result.diagnostics if d.severity == "error")
    else:
        from reconciler import engine
        from reconciler.engine import RunOptions
        from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY

        options_ = RunOptions(
            paths=[Path(spec["tree"])],
            providers=REGISTRY,
            manifest_kinds=MANIFEST_KINDS,
            environ=environ,
            parallelism=spec["parallelism"],
        )

        async def plan() -> int:
            loaded = engine.load(options_)
            session = engine.connect(loaded, options_)
            try:
                run = await engine.make_plan(loaded, session, options_)
                if spec["action"] == "apply":
                    report = await engine.apply_plan(run, session, options_)
                    if report.failed:
                        raise SystemExit(f"{len(report.failed)} devices failed")
                return len(run.plan.changes)
            finally:
                await session.aclose()

        figures["changes"] = asyncio.run(plan())
    figures.update(
        wall_s=time.perf_counter() - wall0,
        cpu_s=time.process_time() - cpu0,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    return figures


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    import subprocess

    command = pinned([sys.executable, __file__, "--client", json.dumps(spec)], CLIENT_CPU)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"client failed:\n{result.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in data.items()}


def secrets_lower_bound(devices: int, latency: float, sku: str, units: int, workers: int) -> float:
    """Identity GETs: the larger of the latency bound over the workers and the identity
    operations' throttle bound (beyond one second's burst), plus the query pages."""
    rate = throttle_rates(sku, units)[OperationClass.IDENTITY]
    gets = max(devices / workers * latency, max(0.0, devices - max(1.0, rate)) / rate)
    return gets + (2 + -(-devices // 1000)) * latency


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--sku", default="S1")
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--with-secrets", action="store_true")
    parser.add_argument("--client")
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client_main(json.loads(args.client))))
        return 0
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    base = {"key": key, "parallelism": args.parallelism, "sku": args.sku, "units": args.units}
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-iothub-import-") as tmp:
        tree = Path(tmp) / "manifests"
        write_tree(tree, list(range(args.devices)), args.sku, args.units)
        hub = Hub(key, args.latency_ms, args.sku, args.units)
        base["url"] = hub.url
        try:
            hub.configure(sku=None, latency_ms=0)  # filling the hub is not measured
            fill = run_child({**base, "action": "apply", "tree": str(tree)})
            hub.configure(**hub.settings)
            for number in range(args.repeats):
                out = Path(tmp) / f"imported-{number}"
                plan = run_child({**base, "action": "plan", "tree": str(tree)})
                imported = run_child(
                    {**base, "action": "import", "out": str(out), "with_secrets": False}
                )
                validated = run_child({**base, "action": "validate", "tree": str(out)})
                replan = run_child({**base, "action": "plan", "tree": str(out)})
                result: dict[str, Any] = {
                    "round": number + 1,
                    "plan": plan,
                    "import": imported,
                    "import_to_plan_ratio": round(imported["wall_s"] / plan["wall_s"], 3),
                    "validate_imported": validated,
                    "plan_imported": replan,
                }
                if args.with_secrets:
                    keyed = run_child(
                        {**base, "action": "import", "out": f"{out}-keys", "with_secrets": True}
                    )
                    bound = secrets_lower_bound(
                        args.devices,
                        args.latency_ms / 1000,
                        args.sku,
                        args.units,
                        args.parallelism,
                    )
                    result["import_with_secrets"] = keyed
                    result["import_with_secrets_lower_bound_s"] = round(bound, 3)
                    result["import_with_secrets_bound_ratio"] = round(keyed["wall_s"] / bound, 3)
                rounds.append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)
        finally:
            hub.stop()
    print(
        json.dumps(
            {
                "benchmark": "iothub_import",
                "settings": {
                    "devices": args.devices,
                    "latency_ms": args.latency_ms,
                    "sku": args.sku,
                    "units": args.units,
                    "parallelism": args.parallelism,
                },
                "targets": TARGETS,
                "fill": fill,
                "rounds": rounds,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
