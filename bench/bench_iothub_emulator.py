"""Twin reads and query pages per second of the IoT Hub emulator served by uvicorn on one core.

    .venv/bin/python bench/bench_iothub_emulator.py [--seconds 5] [--concurrency 8] [--devices 1000]

Starts `python -m reconciler emulator serve --api azure-iothub --port 0` pinned to CPU 0, creates
the devices with bulk requests (100 per request, with tags), then drives (1) `GET /twins/{id}` and
(2) pages of 100 twins of `SELECT * FROM devices` (walking `x-ms-continuation`) from concurrent
httpx clients pinned to the other CPUs, and prints one JSON object. The client is Python too and
shares the machine, so beside the observed rates it reports the server's capacity: requests per
second of the server's own CPU time. Targets: >= 1,000 twin GETs/s and >= 200 query pages/s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
from closed_loop import drive

ROOT = Path(__file__).resolve().parent.parent
API_VERSION = "2021-04-12"
TWIN_GET_TARGET = 1000
QUERY_PAGE_TARGET = 200
PAGE_SIZE = 100


def _token(connection_string: str, ttl: int = 3600) -> str:
    fields = dict(part.split("=", 1) for part in connection_string.split(";"))
    resource = quote_plus(fields["HostName"])
    expiry = str(int(time.time()) + ttl)
    key = base64.b64decode(fields["SharedAccessKey"])
    digest = hmac.digest(key, f"{resource}\n{expiry}".encode(), hashlib.sha256)
    sig = quote(base64.b64encode(digest).decode(), safe="")
    return (
        f"SharedAccessSignature sr={resource}&sig={sig}&se={expiry}"
        f"&skn={fields['SharedAccessKeyName']}"
    )


async def _measure(
    name: str,
    seconds: float,
    concurrency: int,
    server_pid: int,
    one: Callable[[], Awaitable[int]],
) -> dict[str, Any]:
    driven = await drive(one, seconds, concurrency, server_pid)
    server_cpu = driven.server_cpu_s
    return {
        "requests": driven.requests,
        "errors": driven.errors,
        "seconds": round(driven.seconds, 3),
        f"{name}_per_second": round(driven.requests / driven.seconds, 1),
        "server_cpu_seconds": round(server_cpu, 3),
        f"server_{name}_per_cpu_second": round(driven.requests / server_cpu, 1)
        if server_cpu > 0
        else None,
        "p50_ms": driven.p50_ms,
        "p99_ms": driven.p99_ms,
    }


async def _drive(
    url: str, connection_string: str, args: argparse.Namespace, server_pid: int
) -> dict[str, Any]:
    headers = {"Authorization": _token(connection_string)}
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    params = {"api-version": API_VERSION}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, params=params, limits=limits, timeout=30
    ) as client:
        for start in range(0, args.devices, 100):
            batch = [
                {
                    "id": f"bench-{index:06}",
                    "importMode": "create",
                    "status": "enabled",
                    "tags": {"fleet": "bench", "n": index},
                    "properties": {"desired": {"rate": index % 10}},
                }
                for index in range(start, min(start + 100, args.devices))
            ]
            (await client.post("/devices", json=batch)).raise_for_status()

        # Prebuilt requests: the client's URL handling would otherwise cost more CPU than the
        # server spends per request, and the client shares the machine.
        twin_request = client.build_request("GET", "/twins/bench-000500")
        query = {"query": "SELECT * FROM devices"}
        query_body = json.dumps(query).encode()

        async def twin_get() -> int:
            return (await client.send(twin_request)).status_code

        # Each query worker walks the result set page by page, starting over at the end.
        cursors: dict[int, str | None] = {}

        async def query_page() -> int:
            task = id(asyncio.current_task())
            page_headers = {"x-ms-max-item-count": str(PAGE_SIZE)}
            token = cursors.get(task)
            if token:
                page_headers["x-ms-continuation"] = token
            response = await client.post("/devices/query", content=query_body, headers=page_headers)
            cursors[task] = response.headers.get("x-ms-continuation")
            # Every page of the walk is full (devices are a multiple of 100); counting items
            # without parsing keeps the client's share of the CPU small.
            if response.status_code == 200 and response.content.count(b'"deviceId"') != PAGE_SIZE:
                return 0
            return response.status_code

        for _ in range(50):  # warm up
            await twin_get()
            await query_page()
        cursors.clear()
        twins = await _measure("twin_gets", args.seconds, args.concurrency, server_pid, twin_get)
        pages = await _measure(
            "query_pages", args.seconds, args.concurrency, server_pid, query_page
        )
    twin_rate = max(twins["twin_gets_per_second"], twins["server_twin_gets_per_cpu_second"] or 0)
    page_rate = max(
        pages["query_pages_per_second"], pages["server_query_pages_per_cpu_second"] or 0
    )
    return {
        "benchmark": "iothub_emulator",
        "server_cpus": [0],
        "devices": args.devices,
        "concurrency": args.concurrency,
        "page_size": PAGE_SIZE,
        "twin_gets": twins,
        "query_pages": pages,
        "targets": {
            "twin_gets_per_second": TWIN_GET_TARGET,
            "query_pages_per_second": QUERY_PAGE_TARGET,
        },
        "meets_targets": twin_rate >= TWIN_GET_TARGET
        and page_rate >= QUERY_PAGE_TARGET
        and twins["errors"] == 0
        and pages["errors"] == 0,
    }


READY = re.compile(r"ready at (?P<url>\S+) \(connection string (?P<cs>[^,)]+)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    if args.devices < PAGE_SIZE or args.devices % PAGE_SIZE:
        parser.error(f"--devices must be a multiple of {PAGE_SIZE}")
    command = [
        sys.executable,
        "-m",
        "reconciler",
        "emulator",
        "serve",
        "--api",
        "azure-iothub",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    os.sched_setaffinity(server.pid, {0})  # the server gets CPU 0 to itself
    try:
        assert server.stdout is not None
        ready = READY.search(server.stdout.readline())
        if ready is None:
            print(json.dumps({"error": "the emulator did not start"}))
            return 1
        others = (os.sched_getaffinity(0) - {0}) or {0}
        os.sched_setaffinity(0, others)
        result = asyncio.run(_drive(ready["url"], ready["cs"], args, server.pid))
        result["client_cpus"] = sorted(others)
        print(json.dumps(result))
        return 0 if result["meets_targets"] else 1
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
