"""The closed loop the emulator benchmarks drive a served emulator with: `concurrency` workers,
each sending its next request when the last one is answered, for `seconds`; the server's CPU
read from /proc around it."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Driven:
    requests: int
    errors: int  # answers other than 200
    seconds: float
    server_cpu_s: float
    p50_ms: float
    p99_ms: float


async def drive(
    send: Callable[[], Awaitable[int]], seconds: float, concurrency: int, server_pid: int
) -> Driven:
    """`send` one request and return its status, over and over from `concurrency` workers."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status = await send()
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors += 1

    cpu_before = cpu_seconds(server_pid)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    server_cpu = cpu_seconds(server_pid) - cpu_before
    latencies.sort()
    return Driven(
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        server_cpu_s=server_cpu,
        p50_ms=round(statistics.median(latencies) * 1000, 2),
        p99_ms=round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 2),
    )
