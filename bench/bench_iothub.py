"""IoT Hub reconcile benchmark: N devices with tags and desired properties against the served
IoT Hub emulator, as JSON.

    .venv/bin/python bench/bench_iothub.py [--devices 10000] [--latency-ms 20] [--sku S1]
        [--units 100] [--parallelism 16]

In a temporary directory: an `IotHub` document (with the same SKU and units, so the client
paces itself to them) and an `IotHubFleet` CSV of N devices, each with two tags and two desired
properties; `python -m reconciler emulator serve --api azure-iothub` with injected latency and
the SKU's throttles (queueing, 429 when the backlog is full), pinned to CPU 0. Four workloads
then run in order, each in a fresh client interpreter pinned to CPU 1 (peak RSS and CPU are the
client's own), driving the engine in-process:

1. `create`: apply everything into the empty hub;
2. `plan_no_changes`: plan again (must find no change);
3. `drift_1pct`: 1% of the twins get a changed desired property out of band (throttles lifted
   for the setup), then plan (drift) and apply (repair);
4. `prune_10pct`: 10% of the devices leave the manifests; apply with prune and force;
5. `plan_1_unit`: the plan of 2. on a hub of one unit (20 queries a minute), where the query
   throttle, not latency or CPU, sets the bound.

Requests are counted by the emulator (`/_emulator/stats`, reset before each workload). The lower
bound of a workload is the sum over its phases (read, then write) of the larger of the latency
bound (sequential query pages; writes spread over the parallel workers) and the throttle bound
(per operation class: the cost beyond one second's burst, at the class's rate).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.providers.iothub.client import API_VERSION, sas_token  # noqa: E402
from reconciler.providers.iothub.rules import OperationClass, throttle_rates  # noqa: E402

HUB_NAME = "benchhub"
HOST = f"{HUB_NAME}.azure-devices.net"
SERVER_CPU, CLIENT_CPU = 0, 1
QUERY_PAGE = 1000
BULK = 100
TARGETS = {
    "plan_requests_per_device_max": 0.02,
    "create_requests_per_device_max": 0.011,
    "lower_bound_ratio_max": 1.2,
    "plan_cpu_us_per_device_max": 150.0,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(command: list[str], cpu: int) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu), *command] if taskset else command


def write_tree(root: Path, ids: list[int], sku: str, units: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "hub.yaml").write_text(
        f"kind: IotHub\nname: bench\nhost_name: {HOST}\nsku: {sku}\nunits: {units}\n"
        "device_defaults: {status: enabled}\n"
    )
    (root / "fleet.yaml").write_text("kind: IotHubFleet\ncsv: devices.csv\n")
    rows = ["id;tags.site;tags.rack.row;properties.desired.interval;properties.desired.mode"]
    rows += [f"dev-{i:06d};site-{i % 7};{i % 40};{60 + i % 5};eco" for i in ids]
    (root / "devices.csv").write_text("\n".join(rows) + "\n")


class Hub:
    def __init__(self, key: str, latency_ms: float, sku: str, units: int) -> None:
        self.key = key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "reconciler", "emulator", "serve", "--api", "azure-iothub",
            "--port", str(self.port), "--hub-name", HUB_NAME, "--shared-access-key", key,
            "--latency-ms", str(latency_ms), "--sku", sku, "--units", str(units),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            pinned(command, SERVER_CPU), cwd=ROOT, stdout=subprocess.DEVNULL
        )
        self.settings = {"latency_ms": latency_ms, "sku": sku, "units": units}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("the IoT Hub emulator did not start")

    def client(self) -> httpx.Client:
        token = sas_token(HOST, "iothubowner", self.key, int(time.time()) + 7200)
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": token},
            params={"api-version": API_VERSION},
            timeout=60,
        )

    def configure(self, **settings: Any) -> None:
        with self.client() as client:
            client.put("/_emulator/config", json=settings).raise_for_status()

    def stats(self, reset: bool = False) -> dict[str, Any]:
        with self.client() as client:
            if reset:
                client.delete("/_emulator/stats").raise_for_status()
                return {}
            data: dict[str, Any] = client.get("/_emulator/stats").json()
            return data

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- the client side (a fresh interpreter per workload) --------------------------------------


def client_main(spec: dict[str, Any]) -> dict[str, Any]:
    from reconciler import engine
    from reconciler.engine import RunOptions
    from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY

    connection = f"HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={spec['key']}"
    options = RunOptions(
        paths=[Path(spec["tree"])],
        providers=REGISTRY,
        manifest_kinds=MANIFEST_KINDS,
        environ={"IOTHUB_CONNECTION_STRING": connection, "RECONCILER_IOTHUB_URL": spec["url"]},
        parallelism=spec["parallelism"],
        prune=spec["prune"],
        force=spec["prune"],
    )
    phases: list[dict[str, Any]] = []

    async def run() -> None:
        loaded = engine.load(options)
        session = engine.connect(loaded, options)
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            before = session.requests
            planned = await engine.make_plan(loaded, session, options)
            phases.append(
                {
                    "phase": "plan",
                    "wall_s": time.perf_counter() - wall,
                    "cpu_s": time.process_time() - cpu,
                    "requests": session.requests - before,
                    "changes": len(planned.plan.changes),
                }
            )
            if spec["apply"] and planned.plan.has_changes():
                cpu, wall = time.process_time(), time.perf_counter()
                before = session.requests
                report = await engine.apply_plan(planned, session, options)
                phases.append(
                    {
                        "phase": "apply",
                        "wall_s": time.perf_counter() - wall,
                        "cpu_s": time.process_time() - cpu,
                        "requests": session.requests - before,
                        "failed": len(report.failed),
                        "writes": planned.plan.write_requests,
                    }
                )
        finally:
            await session.aclose()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    asyncio.run(run())
    return {
        "phases": phases,
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": time.process_time() - cpu0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    command = pinned([sys.executable, __file__, "--client", json.dumps(spec)], CLIENT_CPU)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"client failed:\n{result.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


# -- lower bounds --------------------------------------------------------------------------------


def bound(
    costs: dict[OperationClass, float],
    sequential: float,
    parallel: float,
    latency: float,
    rates: dict[OperationClass, float],
    parallelism: int,
) -> float:
    """The larger of the latency bound (sequential requests one after the other; the others
    over the workers) and the throttle bound (per class: cost beyond one second's burst)."""
    latency_bound = (sequential + parallel / parallelism) * latency
    throttle_bound = max(
        (max(0.0, cost - max(1.0, rates[op])) / rates[op] for op, cost in costs.items() if cost),
        default=0.0,
    )
    return max(latency_bound, throttle_bound)


def lower_bounds(
    workload: str,
    devices: int,
    hub_devices: int,
    changed: int,
    latency: float,
    rates: dict[OperationClass, float],
    parallelism: int,
) -> float:
    pages = max(1, -(-hub_devices // QUERY_PAGE))
    read = bound({OperationClass.QUERY: pages}, pages, 0, latency, rates, parallelism)
    if workload == "create":
        batches = -(-devices // BULK)
        write = bound({OperationClass.IDENTITY: devices}, 0, batches, latency, rates, parallelism)
        return read + write
    if workload == "plan_no_changes":
        return read
    if workload == "drift_1pct":
        write = bound(
            {OperationClass.TWIN_UPDATE: changed}, 0, changed, latency, rates, parallelism
        )
        return read + write
    batches = -(-changed // BULK)
    write = bound({OperationClass.IDENTITY: changed}, 0, batches, latency, rates, parallelism)
    return read + write


def drift_out_of_band(hub: Hub, ids: list[int]) -> None:
    hub.configure(sku=None, latency_ms=0)
    with hub.client() as client:
        for i in ids:
            response = client.patch(
                f"/twins/dev-{i:06d}",
                json={"properties": {"desired": {"interval": 1}}},
                headers={"If-Match": '"*"'},
            )
            response.raise_for_status()
    hub.configure(**hub.settings)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--sku", default="S1")
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--client")
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client_main(json.loads(args.client))))
        return 0
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    devices = args.devices
    rates = throttle_rates(args.sku, args.units)
    latency = args.latency_ms / 1000
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-iothub-") as tmp:
        tree = Path(tmp) / "manifests"
        all_ids = list(range(devices))
        write_tree(tree, all_ids, args.sku, args.units)
        hub = Hub(key, args.latency_ms, args.sku, args.units)
        try:
            drifted = all_ids[::100]
            pruned = set(all_ids[5::10])
            workloads = ("create", "plan_no_changes", "drift_1pct", "prune_10pct", "plan_1_unit")
            for workload in workloads:
                if workload == "drift_1pct":
                    drift_out_of_band(hub, drifted)
                kept = [i for i in all_ids if i not in pruned]
                if workload == "prune_10pct":
                    write_tree(tree, kept, args.sku, args.units)
                if workload == "plan_1_unit":
                    # The same plan on a hub of one unit: the query throttle (20/min) binds.
                    hub.settings["units"] = 1
                    hub.configure(**hub.settings)
                    write_tree(tree, kept, args.sku, 1)
                hub.stats(reset=True)
                emulator_cpu = hub.cpu_seconds()
                spec = {
                    "tree": str(tree), "key": key, "url": hub.url,
                    "parallelism": args.parallelism, "prune": workload == "prune_10pct",
                    "apply": workload not in ("plan_no_changes", "plan_1_unit"),
                }  # fmt: skip
                figures = run_child(spec)
                stats = hub.stats()
                throttled = sum(
                    count
                    for statuses in stats["rpcs"].values()
                    for status, count in statuses.items()
                    if status == "429"
                )
                changed = {"drift_1pct": len(drifted), "prune_10pct": len(pruned)}.get(workload, 0)
                if workload == "plan_1_unit":
                    one = throttle_rates(args.sku, 1)
                    lower = lower_bounds(
                        "plan_no_changes", devices, len(kept), 0, latency, one, args.parallelism
                    )
                else:
                    lower = lower_bounds(
                        workload, devices, devices, changed, latency, rates, args.parallelism
                    )
                plan_phase = figures["phases"][0]
                results.append(
                    {
                        "workload": workload,
                        "devices": devices,
                        "wall_s": round(figures["wall_s"], 3),
                        "requests": stats["total"],
                        "requests_per_device": round(stats["total"] / devices, 4),
                        "requests_by_operation": {
                            op: sum(s.values()) for op, s in stats["rpcs"].items()
                        },
                        "throttled_429": throttled,
                        "peak_rss_mb": round(figures["peak_rss_mb"], 1),
                        "client_cpu_s": round(figures["cpu_s"], 3),
                        "plan_cpu_us_per_device": round(1e6 * plan_phase["cpu_s"] / devices, 1),
                        "emulator_cpu_s": round(hub.cpu_seconds() - emulator_cpu, 3),
                        "phases": [
                            {k: round(v, 3) if isinstance(v, float) else v for k, v in p.items()}
                            for p in figures["phases"]
                        ],
                        "lower_bound_s": round(lower, 3),
                        "lower_bound_ratio": round(
                            sum(p["wall_s"] for p in figures["phases"]) / lower, 3
                        )
                        if lower
                        else None,
                    }
                )
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        finally:
            hub.stop()
    print(
        json.dumps(
            {
                "benchmark": "iothub_reconcile",
                "settings": {
                    "devices": devices,
                    "latency_ms": args.latency_ms,
                    "sku": args.sku,
                    "units": args.units,
                    "parallelism": args.parallelism,
                    "rates_per_s": {op.name.lower(): round(r, 3) for op, r in rates.items()},
                },
                "targets": TARGETS,
                "lower_bound_formula": (
                    "sum over phases (read, then write) of max(latency bound, throttle bound); "
                    "latency bound = (sequential requests + parallel requests / parallelism) x "
                    "latency; throttle bound = max over operation classes of (cost - one "
                    "second's burst) / rate"
                ),
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
