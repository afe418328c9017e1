"""Device GETs per second of the emulator served by uvicorn on one core.

    .venv/bin/python bench/bench_emulator.py [--seconds 5] [--concurrency 8] [--server-root DIR]
        [--registries is ns as js] [--latency-ms 0]

Starts `python -m reconciler emulator serve` in a subprocess pinned to CPU 0, registers one
application and one OTAA device in every registry through the API, then drives device GETs
(with the field masks a plan of such a device sends) of each registry in `--registries` in turn
for `--seconds` each, from a concurrent httpx client pinned to the other CPUs, and prints one
JSON object. Target: >= 1000/s. `server_cpu_us_per_get` is the server's CPU time per GET (user +
system), the figure that does not depend on how fast the client is; the top-level figures are
the first registry's, `registries` has each one's. `--latency-ms` injects latency (set after the
setup) as `bench_reconcile.py` does, to count what the sleep itself costs the server.
`--server-root` serves from another checkout of the repository (e.g. `git archive` of an older
commit), to compare two versions in one session. `app_cpu_us_per_get` is the CPU of that
checkout's app alone per GET (in process, no server): the least noisy figure.
`routing` is the in-process cost of finding the route of a device GET among the TTS API's
routes: the route tree the emulator uses against Starlette's one-by-one matching of the same
routes, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvloop
import yarl
from closed_loop import drive

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


# Run by `python -c` in the served checkout (its own `reconciler` package): the CPU of the app
# alone per device GET, called in process with a prebuilt ASGI scope, no socket, no HTTP server,
# no waiting; the minimum of 5 rounds. Served figures depend on how often the server wakes up
# for a lone request (each wake-up costs CPU); this one does not, so it compares two versions
# of the pipeline on a noisy machine.
_IN_PROCESS = """
import asyncio, json, sys, time
import httpx
from reconciler.emulator.tts import TTSConfig, create_app
from reconciler.emulator.tts.config import generate_api_key

registries, measured, ids, rounds, number = json.loads(sys.argv[1])
key = generate_api_key()[0]
app = create_app(TTSConfig(api_key=key))


async def main():
    auth = {"Authorization": "Bearer " + key}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, headers=auth) as client:
        base = "http://emulator/api/v3"
        await client.post(
            base + "/users/admin-user/applications",
            json={"application": {"ids": {"application_id": "bench-app"}}},
        )
        fields = registries["is"][0]
        response = await client.post(
            base + "/applications/bench-app/devices", json={"end_device": {"ids": ids, **fields}}
        )
        response.raise_for_status()
        for registry in ("ns", "as", "js"):
            fields = registries[registry][0]
            body = {
                "end_device": {"ids": ids, **fields},
                "field_mask": {"paths": sorted(fields) or ["ids.dev_eui"]},
            }
            url = base + "/" + registry + "/applications/bench-app/devices/bench-dev"
            (await client.put(url, json=body)).raise_for_status()
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    figures = {}
    for registry in measured:
        mask = registries[registry][1]
        prefix = "" if registry == "is" else "/" + registry
        path = "/api/v3" + prefix + "/applications/bench-app/devices/bench-dev"
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "server": ("127.0.0.1", 1885),
            "client": ("127.0.0.1", 40000), "scheme": "http", "root_path": "",
            "method": "GET", "path": path, "raw_path": path.encode(),
            "query_string": ("field_mask=" + mask).encode(),
            "headers": [
                (b"host", b"127.0.0.1:1885"), (b"accept", b"*/*"),
                (b"user-agent", b"bench"), (b"authorization", auth["Authorization"].encode()),
            ],
        }
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(number):
                await app(dict(scope), receive, send)
            best = min(best, (time.process_time() - started) / number)
            assert sent[0]["status"] == 200, sent[0]
            sent.clear()
        figures[registry] = round(best * 1e6, 1)
    print(json.dumps(figures))


asyncio.run(main())
"""


def _in_process_cost(root: Path, registries: list[str]) -> dict[str, float]:
    # The device is registered on all four (a registry's GET needs it there); the measured
    # ones are those asked for.
    argument = json.dumps([REGISTRIES, registries, IDS, 5, 2000])
    done = subprocess.run(
        [sys.executable, "-c", _IN_PROCESS, argument],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


IDS = {"device_id": "bench-dev", "dev_eui": "70B3D57ED0000001", "join_eui": "70B3D57ED0000000"}
SERVER = "tts.example.com"
# Per registry: the device record written at setup, and the field mask of the GET (what a plan
# of an OTAA device with a name, attributes and a root key reads; the IS mask is the one this
# benchmark has always used).
REGISTRIES: dict[str, tuple[dict[str, Any], str]] = {
    "is": (
        {
            "name": "bench",
            "attributes": {"site": "bench"},
            "network_server_address": SERVER,
            "application_server_address": SERVER,
            "join_server_address": SERVER,
        },
        "name,description,attributes",
    ),
    "ns": (
        {
            "frequency_plan_id": "EU_863_870_TTN",
            "lorawan_version": "MAC_V1_0_3",
            "lorawan_phy_version": "PHY_V1_0_3_REV_A",
            "supports_join": True,
        },
        "frequency_plan_id,lorawan_phy_version,lorawan_version,supports_join",
    ),
    "as": ({}, "ids"),
    "js": (
        {
            "network_server_address": SERVER,
            "application_server_address": SERVER,
            "root_keys": {"app_key": {"key": "0123456789ABCDEF0123456789ABCDEF"}},
        },
        "application_server_address,network_server_address,root_keys.app_key.key",
    ),
}


async def _set_up(client: httpx.AsyncClient) -> None:
    """The application and the device in every registry, as `reconciler apply` writes them."""
    response = await client.post(
        "/users/admin-user/applications",
        json={"application": {"ids": {"application_id": "bench-app"}}},
    )
    response.raise_for_status()
    fields = REGISTRIES["is"][0]
    response = await client.post(
        "/applications/bench-app/devices", json={"end_device": {"ids": IDS, **fields}}
    )
    response.raise_for_status()
    for registry in ("ns", "as", "js"):
        fields = REGISTRIES[registry][0]
        body = {
            "end_device": {"ids": IDS, **fields},
            "field_mask": {"paths": sorted(fields) or ["ids.dev_eui"]},
        }
        response = await client.put(
            f"/{registry}/applications/bench-app/devices/bench-dev", json=body
        )
        response.raise_for_status()


def _getter(
    client: httpx.AsyncClient, session: aiohttp.ClientSession | None, registry: str
) -> Callable[[], Awaitable[int]]:
    """A GET of the registry's device with its field mask, answering the status code."""
    prefix = "" if registry == "is" else f"/{registry}"
    path = f"{prefix}/applications/bench-app/devices/bench-dev"
    params = {"field_mask": REGISTRIES[registry][1]}
    # One prebuilt request (URL): the client's URL parsing would otherwise cost more CPU than
    # the server spends per request, and the client shares the machine.
    request = client.build_request("GET", path, params=params)
    if session is None:

        async def send_httpx() -> int:
            return (await client.send(request)).status_code

        return send_httpx
    url = yarl.URL(str(request.url), encoded=True)
    headers = {"Authorization": request.headers["authorization"]}

    async def send_aiohttp() -> int:
        async with session.get(url, headers=headers) as response:
            await response.read()
            return response.status

    return send_aiohttp


async def _drive_one(
    send: Callable[[], Awaitable[int]], seconds: float, concurrency: int, server_pid: int
) -> dict[str, object]:
    for _ in range(50):  # warm up
        assert await send() == 200

    driven = await drive(send, seconds, concurrency, server_pid)
    server_cpu = driven.server_cpu_s
    rate = driven.requests / driven.seconds
    # The Python client needs more CPU per request than the server and has only the other core,
    # so the observed rate is client-bound; the server's own capacity on its one core is
    # requests per second of server CPU time. The slower the client, the more often the server
    # wakes up for a lone request, and each wake-up costs CPU: compare figures of one client.
    capacity = driven.requests / server_cpu if server_cpu > 0 else float("inf")
    return {
        "seconds": round(driven.seconds, 3),
        "requests": driven.requests,
        "errors": driven.errors,
        "gets_per_second": round(rate, 1),
        "server_cpu_seconds": round(server_cpu, 3),
        "server_gets_per_cpu_second": round(capacity, 1),
        "server_cpu_us_per_get": round(1e6 * server_cpu / driven.requests, 1),
        "p50_ms": driven.p50_ms,
        "p99_ms": driven.p99_ms,
        "meets_target": max(rate, capacity) >= TARGET_PER_SECOND and driven.errors == 0,
    }


async def _drive(
    base: str,
    key: str,
    options: argparse.Namespace,
    server_pid: int,
) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}"}
    concurrency: int = options.concurrency
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base, headers=headers, limits=limits)
        )
        session = None
        if options.client == "aiohttp":
            connector = aiohttp.TCPConnector(limit=concurrency)
            session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
        await _set_up(client)
        if options.latency_ms:
            config = {"latency_ms": options.latency_ms}
            admin_url = base.removesuffix("/api/v3") + "/_emulator/config"
            (await client.put(admin_url, json=config)).raise_for_status()
        by_registry = {
            registry: await _drive_one(
                _getter(client, session, registry), options.seconds, concurrency, server_pid
            )
            for registry in options.registries
        }
    first = by_registry[options.registries[0]]
    return {
        "benchmark": "emulator_device_get",
        "server_cpus": [0],
        "concurrency": concurrency,
        "client": options.client,
        "latency_ms": options.latency_ms,
        "registry": options.registries[0],
        **first,
        "target_per_second": TARGET_PER_SECOND,
        "meets_target": all(figures["meets_target"] for figures in by_registry.values()),
        "registries": {
            registry: {
                name: figures[name]
                for name in ("requests", "errors", "server_cpu_us_per_get", "p50_ms", "p99_ms")
            }
            for registry, figures in by_registry.items()
        },
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
    parser.add_argument(
        "--registries",
        nargs="+",
        choices=sorted(REGISTRIES),
        default=["is", "ns", "as", "js"],
        help="Whose device GETs to drive, in turn (default: all four).",
    )
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="Injected latency (default: none)."
    )
    parser.add_argument(
        "--client",
        choices=["httpx", "aiohttp"],
        default="httpx",
        help="The driving client: httpx (the figures recorded so far) or aiohttp on uvloop, "
        "which needs less CPU per request and so keeps more requests in flight at the server.",
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
        loop_factory = uvloop.new_event_loop if args.client == "aiohttp" else None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(_drive(base, key, args, server.pid))
        result["client_cpus"] = sorted(others)
        result["server_root"] = str(args.server_root)
        result["routing"] = _routing_cost()
        result["app_cpu_us_per_get"] = _in_process_cost(args.server_root, args.registries)
        print(json.dumps(result))
        return 0 if result["meets_target"] else 1
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
