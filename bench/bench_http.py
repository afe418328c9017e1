"""Client CPU per GET of the HTTP stacks the TTS client could sit on, in one run, as JSON.

    .venv/bin/python bench/bench_http.py [--requests 3000] [--parallelism 16] [--rounds 3]

Serves the emulator (`reconciler emulator serve`, pinned to CPU 0), creates one application
and 200 devices, then, in this process pinned to CPU 1, sends the same Identity Server device
GETs (with a field mask, as a plan's reads) through each stack in turn, `parallelism` at a
time, and reports the process CPU per GET: httpx with its default transport (httpcore), httpx
over aiohttp (`httpx-aiohttp`, if installed), aiohttp's ClientSession directly, and the
product's TTSClient (aiohttp underneath, plus pacing, retries, the response contract). Rounds
alternate the stacks, so machine noise hits them alike; the figures are per-round ranges.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from reconciler.emulator.tts.config import generate_api_key

ROOT = Path(__file__).resolve().parent.parent
APP = "bench-http"
DEVICES = 200
MASK = "attributes,name"


def serve(port: int, key: str) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "reconciler", "emulator", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--api-key", key,
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(process.pid, {0})
        os.sched_setaffinity(0, {1})
    assert process.stdout is not None
    if not process.stdout.readline():
        raise SystemExit("the emulator did not start")
    return process


def populate(root: str, key: str) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=root + "/api/v3", headers=headers, timeout=30) as api:
        api.post(
            "/users/admin-user/applications", json={"application": {"ids": {"application_id": APP}}}
        ).raise_for_status()
        paths = []
        for i in range(DEVICES):
            device = {
                "ids": {
                    "device_id": f"dev-{i:04d}",
                    "application_ids": {"application_id": APP},
                    "dev_eui": f"0004A30B{i:08X}",
                    "join_eui": "70B3D57ED0001A2B",
                },
                "name": f"Device {i}",
                "attributes": {"site": "bench", "managed-by": "bench"},
            }
            api.post(f"/applications/{APP}/devices", json={"end_device": device}).raise_for_status()
            paths.append(f"/applications/{APP}/devices/dev-{i:04d}")
    return paths


async def drive(
    send: Callable[[str], Awaitable[None]], paths: list[str], total: int, p: int
) -> None:
    queue = [paths[i % len(paths)] for i in range(total)]

    async def worker() -> None:
        while queue:
            await send(queue.pop())

    await asyncio.gather(*(worker() for _ in range(p)))


async def measure(name: str, root: str, key: str, paths: list[str], args: Any) -> float | None:
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    params = {"field_mask": MASK}
    closers: list[Callable[[], Awaitable[Any]]] = []
    send: Callable[[str], Awaitable[None]]
    if name == "httpx (httpcore)":
        limits = httpx.Limits(max_connections=args.parallelism)
        hx = httpx.AsyncClient(base_url=root + "/api/v3", headers=headers, limits=limits)
        closers.append(hx.aclose)

        async def send(path: str) -> None:
            (await hx.get(path, params=params)).raise_for_status()

    elif name == "httpx + httpx-aiohttp":
        try:
            from httpx_aiohttp import AiohttpTransport
        except ImportError:
            return None
        ha = httpx.AsyncClient(
            base_url=root + "/api/v3", headers=headers, transport=AiohttpTransport()
        )
        closers.append(ha.aclose)

        async def send(path: str) -> None:
            (await ha.get(path, params=params)).raise_for_status()

    elif name == "aiohttp ClientSession":
        import aiohttp

        session = aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(limit=args.parallelism)
        )
        closers.append(session.close)
        base = root + "/api/v3"

        async def send(path: str) -> None:
            async with session.get(base + path, params=params) as response:
                await response.read()
                response.raise_for_status()

    else:
        from reconciler.providers.tts.client import ServerURLs, TTSClient

        client = TTSClient(ServerURLs.single(root), key, max_connections=args.parallelism)
        closers.append(client.aclose)

        async def send(path: str) -> None:
            await client.get_json("is", path, params=params)

    try:
        await send(paths[0])  # connect outside the timing
        cpu = time.process_time()
        await drive(send, paths, args.requests, args.parallelism)
        return 1e6 * (time.process_time() - cpu) / args.requests
    finally:
        for close in closers:
            await close()


STACKS = ("httpx (httpcore)", "httpx + httpx-aiohttp", "aiohttp ClientSession", "TTSClient")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    key = generate_api_key()[0]
    process = serve(port, key)
    root = f"http://127.0.0.1:{port}"
    try:
        paths = populate(root, key)
        rounds: dict[str, list[float]] = {name: [] for name in STACKS}
        for _ in range(args.rounds):
            for name in STACKS:
                value = asyncio.run(measure(name, root, key, paths, args))
                if value is not None:
                    rounds[name].append(round(value, 1))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)
    aiohttp_mean = sum(rounds["aiohttp ClientSession"]) / len(rounds["aiohttp ClientSession"])
    report = {
        "benchmark": "http client CPU per GET",
        "python": platform.python_version(),
        "requests_per_round": args.requests,
        "parallelism": args.parallelism,
        "cpu_us_per_get": {
            name: {
                "rounds": values,
                "range": [min(values), max(values)] if values else None,
                "vs_aiohttp": round(sum(values) / len(values) / aiohttp_mean, 2)
                if values
                else None,
            }
            for name, values in rounds.items()
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
