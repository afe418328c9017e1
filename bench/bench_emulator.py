"""Device GETs per second of the emulator served by uvicorn on one core.

    .venv/bin/python bench/bench_emulator.py [--seconds 5] [--concurrency 8] [--server-root DIR]

Starts `python -m reconciler emulator serve` in a subprocess pinned to CPU 0, registers one
application and device through the API, then drives IS device GETs (with a field mask) from a
concurrent httpx client pinned to the other CPUs, and prints one JSON object. Target: >= 1000/s.
`server_cpu_us_per_get` is the server's CPU time per GET (user + system), the figure that does
not depend on how fast the client is. `--server-root` serves from another checkout of the
repository (e.g. `git archive` of an older commit), to compare two versions in one session.
`routing` is the in-process cost of finding the route of a device GET among the TTS API's
routes: the route tree the emulator uses against Starlette's one-by-one matching of the same
routes, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path

import httpx

from reconciler.emulator.tts.config import generate_api_key

ROOT = Path(__file__).resolve().parent.parent
TARGET_PER_SECOND = 1000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _routing_cost() -> dict[str, object]:
    from starlette.routing import Match

    from reconciler.emulator.routing import RouteTree
    from reconciler.emulator.tts import TTSConfig, create_app

    tree = create_app(TTSConfig()).router.routes[0]
    assert isinstance(tree, RouteTree)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v3/applications/bench-app/devices/bench-dev",
        "root_path": "",
        "path_params": {},
    }

    def one_by_one() -> None:
        for route in tree.routes:
            if route.matches(scope)[0] is Match.FULL:
                return

    def in_tree() -> None:
        tree.matches(scope)

    number = 5000
    cost = {
        name: min(timeit.repeat(function, timer=time.process_time, number=number, repeat=5))
        / number
        * 1e6
        for name, function in (("tree", in_tree), ("one_by_one", one_by_one))
    }
    return {
        "routes": len(tree.routes),
        "tree_us": round(cost["tree"], 2),
        "one_by_one_us": round(cost["one_by_one"], 2),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(
    base: str, key: str, seconds: float, concurrency: int, server_pid: int
) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:
        setup = [
            client.post(
                "/users/admin-user/applications",
                json={"application": {"ids": {"application_id": "bench-app"}}},
            ),
        ]
        for response in [await request for request in setup]:
            response.raise_for_status()
        device = {
            "ids": {
                "device_id": "bench-dev",
                "dev_eui": "70B3D57ED0000001",
                "join_eui": "70B3D57ED0000000",
            },
            "name": "bench",
        }
        response = await client.post("/applications/bench-app/devices", json={"end_device": device})
        response.raise_for_status()
        path = "/applications/bench-app/devices/bench-dev"
        params = {"field_mask": "name,description,attributes"}
        for _ in range(50):  # warm up
            (await client.get(path, params=params)).raise_for_status()

        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds

        # One prebuilt request: the client's URL parsing would otherwise cost more CPU than the
        # server spends per request, and the client shares the machine.
        request = client.build_request("GET", path, params=params)

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                result = await client.send(request)
                latencies.append(time.perf_counter() - started)
                if result.status_code != 200:
                    errors += 1

        cpu_before = _cpu_seconds(server_pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        server_cpu = _cpu_seconds(server_pid) - cpu_before
    latencies.sort()
    rate = len(latencies) / elapsed
    # The Python client needs more CPU per request than the server and has only the other core,
    # so the observed rate is client-bound; the server's own capacity on its one core is
    # requests per second of server CPU time.
    capacity = len(latencies) / server_cpu if server_cpu > 0 else float("inf")
    return {
        "benchmark": "emulator_device_get",
        "server_cpus": [0],
        "seconds": round(elapsed, 3),
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "gets_per_second": round(rate, 1),
        "server_cpu_seconds": round(server_cpu, 3),
        "server_gets_per_cpu_second": round(capacity, 1),
        "server_cpu_us_per_get": round(1e6 * server_cpu / len(latencies), 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "target_per_second": TARGET_PER_SECOND,
        "meets_target": max(rate, capacity) >= TARGET_PER_SECOND and errors == 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--server-root",
        type=Path,
        default=ROOT,
        help="Checkout whose `reconciler` package serves (default: this one).",
    )
    args = parser.parse_args()
    port, key = _free_port(), generate_api_key()[0]
    command = [
        sys.executable,
        "-m",
        "reconciler",
        "emulator",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-key",
        key,
    ]
    # `python -m` puts the working directory first on sys.path: the server runs that checkout.
    server = subprocess.Popen(command, cwd=args.server_root, stdout=subprocess.PIPE, text=True)
    os.sched_setaffinity(server.pid, {0})  # the server gets CPU 0 to itself
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        if not ready:
            print(json.dumps({"error": "the emulator did not start"}))
            return 1
        others = (os.sched_getaffinity(0) - {0}) or {0}
        os.sched_setaffinity(0, others)
        base = f"http://127.0.0.1:{port}/api/v3"
        result = asyncio.run(_drive(base, key, args.seconds, args.concurrency, server.pid))
        result["client_cpus"] = sorted(others)
        result["server_root"] = str(args.server_root)
        result["routing"] = _routing_cost()
        print(json.dumps(result))
        return 0 if result["meets_target"] else 1
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
