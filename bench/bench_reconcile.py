"""Reconcile benchmark: plan and apply N OTAA devices against the served emulator, as JSON.

    .venv/bin/python bench/bench_reconcile.py [--devices 1000 [10000 ...]] [--latency-ms 20]
        [--rate-limit 6000:300] [--parallelism 16] [--sequential-sample 200] [--profile]
        [--compare-with DIR [--compare-rounds 3]]

For each size, in a temporary directory: manifests in the project's language (a Stack, one
Application, a Fleet CSV of N OTAA LoRaWAN 1.0.3 devices with their AppKeys in a secrets CSV),
and `python -m reconciler emulator serve` with injected latency and a rate limit, pinned to
CPU 0. Four workloads then run in order, each in a fresh client interpreter pinned to CPU 1 (so
peak RSS and CPU are the client's own, per workload), driving the engine in-process
(engine.load / make_client / make_plan / apply_plan):

1. `create`: apply everything into the empty emulator;
2. `plan_no_changes`: plan again (must find no change);
3. `drift_1pct`: 1% of the devices are changed out of band through the API before the window
   (IS `name`; NS `lorawan_version` + `lorawan_phy_version`, rate limit and latency lifted for
   the setup), then plan (drift detection) and apply (repair), reported as phases;
4. `prune_10pct`: 10% of the devices leave the manifests; apply with prune and force.

Requests are counted by the emulator (`/_emulator/stats`, reset before each workload) and
cross-checked with the client's own count and a recorder the client calls before each request.
The recording also keeps a random sample of the requests, which the child replays one at a time
with a plain synchronous httpx client after the window (the sequential baseline). See
`lower_bound_formula` and `sequential_method` in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import importlib
import json
import os
import platform
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reconciler.emulator.tts.config import generate_api_key

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "bench-app"
JOIN_EUI = "70B3D57ED0001A2B"
SERVER_CPU, CLIENT_CPU = 0, 1
TARGETS = {
    "honest_lower_bound_ratio_max": 1.15,
    "plan_cpu_per_request_vs_floor_max": 1.5,
    "planner_us_per_device_max": 50.0,
    "peak_rss_mb_max_at_10000": 250.0,
}
PLAN_WORKLOADS = ("plan_no_changes",)

LOWER_BOUND_FORMULA = (
    "lower_bound_s = sum over the workload's dependent phases (plan, then apply) of "
    "max(latency_term, rate_term); latency_term = requests * latency_s / parallelism (at most "
    "`parallelism` requests in flight, each held for the injected latency); rate_term = "
    "max over rate-limit buckets b of (max(0, n_b - burst) * 60 / per_minute + latency_s), "
    "where a bucket is what the emulator keys GCRA on: RPC + the entity IDs in the path + the "
    "API key's ID (here: method + concrete path, one key), n_b its requests in the phase; GCRA "
    "lets `burst` requests through at once, then one per 60/per_minute s. Ignored (so the "
    "bound is optimistic): server processing time, the dependency chain (reads before writes, "
    "IS create before JS/NS/AS), client CPU."
)
HONEST_LOWER_BOUND_FORMULA = (
    "honest_lower_bound_s = sum over phases of (max(service_term, rate_term, server_term) + "
    "sequential_round_trips * latency_s + planner_s): server_term is the emulator's CPU time "
    "in the phase (measured from /proc in the same run): it is one process on one core, so it "
    "cannot answer the phase's requests in less time than the CPU it spends on them, whatever "
    "the latency and the limit allow; service_term = latency_term + server_term / parallelism "
    "(a request holds its slot for the latency and for the server's work on it); the round "
    "trips that cannot overlap (a plan: the application GET, then its rights, read alongside "
    "its link and webhooks, after which the device reads start while the device list pages "
    "are read; under prune first the owned applications, gateways and organizations "
    "listings, read together; an apply: an application create, its link and webhooks, and "
    "the longest chain of one resource's steps) and the planner's CPU measured in the same "
    "run (plan_target, timed in the child). honest_lower_bound_without_server_s is the same "
    "with latency_term for service_term and without server_term (the bound before server "
    "capacity was counted). Still ignored: client CPU outside the planner, queueing "
    "(requests that reach a busy process wait; see floor_paced_bound_s), and time the "
    "processes wait for a core (reported per phase as *_runqueue_wait_s)."
)
FLOOR_PACED_BOUND_FORMULA = (
    "floor_paced_bound_s: the honest bound of the plan phase with the floor's mean hold time "
    "per request (floor wall_s * parallelism / floor requests: latency, the server's work, "
    "its queueing at this parallelism and the machine's wake-ups, as the fastest client met "
    "them in the same run) for the injected latency and the server's work; the apply phases "
    "keep their honest bound. What no client could beat against this emulator on this "
    "machine at this parallelism, measured rather than assumed."
)
FLOOR_METHOD = (
    "after the window, the same process sends min(3000, the plan's requests) GETs three times "
    "over (the median of each figure counts), cycling over "
    "the device GETs of the recorded sample, with aiohttp's ClientSession directly (no pacing, "
    "retries, response checks or planning) and `parallelism` workers against the same "
    "emulator; floor.cpu_us_per_request is its process CPU per GET, and "
    "plan_cpu_per_request_vs_floor = the plan phase's client CPU per request / that floor. "
    "Neither side pays one-time imports (aiohttp is imported before the window, as the floor "
    "finds it imported) or the benchmark's request recorder (it counts between phases)."
)
SEQUENTIAL_METHOD = (
    "after the measured window, a uniform random sample (reservoir over every request the "
    "workload sent, retries included) is replayed one request at a time with a synchronous "
    "httpx.Client (one keep-alive connection, as a sequential CLI sends them) against the same "
    "emulator, with fresh rate-limit buckets; sequential_s = mean replay time per request * the "
    "workload's request count; speedup_vs_sequential = sequential_s / wall_s. GETs and PUTs "
    "(field-mask sets of the values just written) replay idempotently; POST creates and DELETEs "
    "replay as sent and are answered 409/404 after the same latency, authentication and "
    "validation."
)
RATE_LIMIT_MODEL = (
    "The emulator (reconciler/emulator/tts/app.py) keys one GCRA bucket per "
    "`grpc:method:/ttn.lorawan.v3.<RPC>:<entity IDs in the path joined by '.'>:<API key ID>`, "
    "as TTS does (FACTS §f): per-device RPCs (GET/PUT/DELETE .../devices/{device_id}) get one "
    "bucket per device, so they never bind here; RPCs addressed to the application "
    "(POST /applications/{app}/devices = CreateEndDevice, GET .../devices = ListEndDevices, "
    "rights, link, webhooks) share one bucket per application. X-Rate-Limit-Limit reports "
    "the burst (RateLimiter.take returns limit=burst), not the per-minute rate; the two are "
    "equal only when the burst is left at its default (= per_minute)."
)


# --- manifests ---------------------------------------------------------------------------------

STACK = """\
kind: Stack
name: bench-stack
url: https://tts.example.com
api_key: {env: TTS_API_KEY}
owner: {user: admin-user}
"""

APPLICATION = f"""\
kind: Application
id: {APP_ID}
name: Reconcile benchmark
default_formatters:
  up_formatter: FORMATTER_CAYENNELPP
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  join_eui: "{JOIN_EUI}"
  attributes:
    site: bench
"""

FLEET = f"""\
kind: Fleet
application: {APP_ID}
csv: fleet.csv
secrets_csv: fleet.secrets.csv
"""


def device_id(index: int) -> str:
    return f"dev-{index:06d}"


def dev_eui(index: int) -> str:
    return f"0004A30B{index:08X}"


def app_key(index: int) -> str:
    return hashlib.md5(f"bench-{index}".encode(), usedforsecurity=False).hexdigest().upper()


def write_manifests(root: Path, indexes: list[int]) -> Path:
    root.mkdir(parents=True)
    (root / "stack.yaml").write_text(STACK)
    (root / "application.yaml").write_text(APPLICATION)
    (root / "fleet.yaml").write_text(FLEET)
    with (root / "fleet.csv").open("w") as fleet, (root / "fleet.secrets.csv").open("w") as keys:
        fleet.write("id;dev_eui;name;lorawan_version;lorawan_phy_version\n")
        keys.write("id;app_key\n")
        for i in indexes:
            fleet.write(f"{device_id(i)};{dev_eui(i)};Probe {i};1.0.3;1.0.3-a\n")
            keys.write(f"{device_id(i)};{app_key(i)}\n")
    return root


def pruned_indexes(devices: int, fraction: float) -> list[int]:
    """Every k-th device leaves the manifests (k = 1/fraction)."""
    step = max(1, round(1 / fraction))
    return [i for i in range(devices) if i % step != step - 1]


def drifted_indexes(devices: int, fraction: float) -> list[int]:
    step = max(1, round(1 / fraction))
    return list(range(0, devices, step))


# --- the client child: one workload in a fresh interpreter ---------------------------------------


@dataclass
class Recorded:
    method: str
    url: str
    content: bytes
    content_type: str | None


@dataclass
class Recorder:
    """Counts every request per rate-limit bucket and keeps a uniform sample (reservoir); the
    client calls `observe` before each attempt (TTSClient.observer).

    `observe` only appends to a list: the counting and sampling run in `snapshot`, which the
    benchmark calls outside the measured phases, so the client's CPU per request does not
    include the recorder's (the floor has none; counting inline cost about 1 us a request)."""

    sample_size: int
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    count: int = 0
    sample: list[Recorded] = field(default_factory=list)
    # hash(method, path) -> requests; names only for buckets seen twice (keeps memory flat).
    buckets: Counter[int] = field(default_factory=Counter)
    bucket_names: dict[int, str] = field(default_factory=dict)
    pending: list[tuple[str, str, bytes | None]] = field(default_factory=list)

    def observe(self, method: str, url: str, body: bytes | None) -> None:
        self.pending.append((method, url, body))

    def _settle(self) -> None:
        pending, self.pending = self.pending, []
        for method, url, body in pending:
            self._count(method, url, body)

    def _count(self, method: str, url: str, body: bytes | None) -> None:
        self.count += 1
        path = url.split("?", 1)[0]
        bucket = hash((method, path))
        self.buckets[bucket] += 1
        if self.buckets[bucket] == 2:
            self.bucket_names[bucket] = f"{method} {path.split('/api/v3', 1)[-1]}"
        if len(self.sample) < self.sample_size:
            self.sample.append(self._record(method, url, body))
        else:
            slot = self.rng.randrange(self.count)
            if slot < self.sample_size:
                self.sample[slot] = self._record(method, url, body)

    @staticmethod
    def _record(method: str, url: str, body: bytes | None) -> Recorded:
        return Recorded(method, url, body or b"", "application/json" if body else None)

    def snapshot(self) -> tuple[int, Counter[int]]:
        self._settle()
        return self.count, Counter(self.buckets)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runqueue_wait_s(pid: int | str) -> float:
    """Seconds the process's main thread (the event loop) was ready to run but waited for a
    core (the second field of /proc/PID/schedstat): time the machine, not the process, cost."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _admin(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _phase_bound(
    requests: int, buckets: Counter[int], spec: dict[str, Any]
) -> tuple[float, float, float]:
    latency = spec["latency_ms"] / 1000
    latency_term = requests * latency / spec["parallelism"]
    rate_term = 0.0
    limit = spec["rate_limit"]
    if limit is not None and buckets:
        per_minute, burst = limit
        busiest = max(buckets.values())
        rate_term = max(0, busiest - burst) * 60 / per_minute + latency
    return max(latency_term, rate_term), latency_term, rate_term


def _plan_round_trips(prune: bool) -> int:
    """Round trips a plan makes one after the other before its device reads can fan out: the
    application GET, then its rights (read alongside its link and webhooks; the device reads
    start when the rights answer, while the Identity Server's list pages are read); with prune
    first the owned applications, gateways and organizations listings (read together)."""
    return 2 + (1 if prune else 0)


def _apply_round_trips(plan: Any) -> int:
    """Round trips an apply cannot overlap: an application create, then its link and
    webhooks, then the longest chain of one resource's steps (a device: IS, JS, NS, AS)."""
    kinds = {c.key.kind for c in plan.changes if c.action != "delete"}
    chain = max((len(c.steps) for c in plan.changes), default=0)
    return int("application" in kinds) + int(bool(kinds & {"link", "webhook"})) + chain


FLOOR_REPEATS = 3


def _floor(
    urls: list[str], key: str, parallelism: int, requests: int, emulator_pid: int
) -> dict[str, Any]:
    """Client CPU per GET of the fastest client this machine has here: aiohttp's ClientSession
    directly (no pacing, retries, JSON models or planning), the same GETs, the same emulator,
    the same parallelism, measured in the same process as the workload. Run FLOOR_REPEATS
    times on one warm session; the median of each figure is the floor (one run's figure moved
    by a third between workloads of one size)."""
    import aiohttp

    async def run() -> tuple[list[float], list[float], list[float], Counter[int]]:
        statuses: Counter[int] = Counter()
        headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        connector = aiohttp.TCPConnector(limit=parallelism)
        cpus: list[float] = []
        walls: list[float] = []
        servers: list[float] = []
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            async with session.get(urls[0]) as response:  # connect outside the timing
                await response.read()

            async def worker(queue: list[str]) -> None:
                while queue:
                    async with session.get(queue.pop()) as response:
                        await response.read()
                        statuses[response.status] += 1

            for _ in range(FLOOR_REPEATS):
                queue = [urls[i % len(urls)] for i in range(requests)]
                server = _proc_cpu_seconds(emulator_pid)
                cpu, wall = time.process_time(), time.perf_counter()
                await asyncio.gather(*(worker(queue) for _ in range(parallelism)))
                cpus.append(time.process_time() - cpu)
                walls.append(time.perf_counter() - wall)
                servers.append(_proc_cpu_seconds(emulator_pid) - server)
        return cpus, walls, servers, statuses

    cpus, walls, servers, statuses = asyncio.run(run())
    return {
        "client": f"aiohttp {aiohttp.__version__} ClientSession, {parallelism} workers",
        "requests": requests,
        "repeats": FLOOR_REPEATS,
        "distinct_urls": len(set(urls)),
        "cpu_us_per_request": round(1e6 * statistics.median(cpus) / requests, 1),
        "cpu_us_per_request_runs": [round(1e6 * c / requests, 1) for c in cpus],
        "wall_s": round(statistics.median(walls), 3),
        "wall_s_runs": [round(w, 3) for w in walls],
        "emulator_cpu_s": round(statistics.median(servers), 3),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def _emulator_figures(admin: httpx.Client) -> dict[str, Any]:
    stats = admin.get("/_emulator/stats").raise_for_status().json()
    by_status: Counter[str] = Counter()
    for statuses in stats["rpcs"].values():
        by_status.update({k: int(v) for k, v in statuses.items()})
    return {"total": stats["total"], "by_status": dict(by_status), "rpcs": stats["rpcs"]}


def _replay(
    sample: list[Recorded], key: str, user_agent: str, rate_limit: list[int] | None, url: str
) -> dict[str, Any]:
    """Send the sampled requests one at a time, as a sequential client would."""
    with _admin(url, key) as admin:  # fresh buckets: the window may have drained some
        admin.put("/_emulator/config", json={"rate_limit": rate_limit}).raise_for_status()
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    headers["User-Agent"] = user_agent
    statuses: Counter[int] = Counter()
    waits = 0
    with httpx.Client(headers=headers, timeout=30) as client:
        if sample:  # connect outside the timing, as a CLI that already talked to the server
            client.get(sample[0].url.split("/api/v3")[0] + "/api/v3/auth_info")
        started = time.perf_counter()
        for item in sample:
            extra = {"content-type": item.content_type} if item.content_type else {}
            while True:
                response = client.request(
                    item.method, item.url, content=item.content or None, headers=extra
                )
                if response.status_code != 429:
                    break
                waits += 1
                time.sleep(float(response.headers.get("X-Rate-Limit-Retry", "1")))
            statuses[response.status_code] += 1
        seconds = time.perf_counter() - started
    return {
        "sampled_requests": len(sample),
        "seconds": round(seconds, 3),
        "mean_ms_per_request": round(1000 * seconds / len(sample), 3) if sample else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "waited_for_429": waits,
    }


def client_main(spec: dict[str, Any]) -> dict[str, Any]:
    """In the child: run one workload, return its figures."""
    if hasattr(os, "sched_setaffinity") and CLIENT_CPU in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {CLIENT_CPU})
    started_imports = time.perf_counter()
    from reconciler import engine
    from reconciler.engine import RunOptions
    from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY
    from reconciler.providers.tts.manifest.project import tts_project

    # The production HTTP stack is imported on the first request (so `validate` never pays
    # for it): a one-time cost of ~0.1 s of CPU, counted here with the other imports and by
    # bench_cli.py, not in the plan's CPU per request (it would add ~40 us a request at 1,000
    # devices and ~4 at 10,000; the floor, measured later in this process, never pays it).
    importlib.import_module("aiohttp")
    imports_s = time.perf_counter() - started_imports
    url, key, devices = spec["url"], spec["api_key"], spec["devices"]
    parallelism = spec["parallelism"]
    recorder = Recorder(spec["sequential_sample"])
    options = RunOptions(
        paths=[Path(spec["manifests"])],
        providers=REGISTRY,
        manifest_kinds=MANIFEST_KINDS,
        url=url,
        prune=spec["prune"],
        force=spec["force"],
        parallelism=parallelism,
        environ={"TTS_API_KEY": key},
        freeze_live_state=True,  # as the CLI's plan, apply and drift do
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    loaded = engine.load(options)
    target = tts_project(loaded.project).target
    load_s, load_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rss_after_load = _peak_rss_mb()

    admin = _admin(url, key)
    admin.put("/_emulator/config", json={"rate_limit": spec["rate_limit"]}).raise_for_status()
    admin.delete("/_emulator/stats").raise_for_status()
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()

    phases: list[dict[str, Any]] = []
    outcome: dict[str, Any] = {}
    # Time spent in the cyclic garbage collector (the client's own CPU, not the HTTP stack's):
    # process CPU time, as the wall clock also counts waits for a core on a loaded machine.
    # A few hundred collections per 10,000 devices: the clock reads cost milliseconds.
    gc_time = [0.0, 0.0]  # total, start of the collection running

    def gc_timer(stage: str, _info: dict[str, Any]) -> None:
        if stage == "start":
            gc_time[1] = time.process_time()
        else:
            gc_time[0] += time.process_time() - gc_time[1]

    gc.callbacks.append(gc_timer)

    def gc_collections() -> list[int]:
        return [generation["collections"] for generation in gc.get_stats()]

    Started = tuple[float, float, float, int, Counter[int], float, tuple[float, float], list[int]]

    def mark(name: str, started: Started, round_trips: int, planner_s: float = 0.0) -> None:
        # The clocks first: what follows (the recorder's counting) is not the phase's.
        elapsed = time.perf_counter() - started[0]
        cpu_s = time.process_time() - started[1]
        emulator_cpu_s = _proc_cpu_seconds(spec["emulator_pid"]) - started[2]
        waits = (_runqueue_wait_s("self"), _runqueue_wait_s(spec["emulator_pid"]))
        collections = gc_collections()
        _, _, _, count0, buckets0, gc0, waits0, collections0 = started
        count, buckets = recorder.snapshot()
        phase_buckets = buckets - buckets0
        requests = count - count0
        server_term = emulator_cpu_s
        bound, latency_term, rate_term = _phase_bound(requests, phase_buckets, spec)
        chain_s = round_trips * spec["latency_ms"] / 1000
        honest_without_server = bound + chain_s + planner_s
        # A request holds its slot for the latency and for the server's work on it (the
        # emulator sleeps, then serves it): the slots are busy for both, summed.
        service_term = latency_term + server_term / spec["parallelism"]
        honest = max(service_term, rate_term, server_term) + chain_s + planner_s
        busiest = phase_buckets.most_common(1)
        emulator_wait = waits[1] - waits0[1]
        # Little's law: the requests on the wire on average (= parallelism when the executor
        # keeps every slot busy with a request, less when the client's own work or a barrier
        # holds slots without one).
        latency_s = clients[0].stats.latency_total - latency0[0] if clients else 0.0
        phases.append(
            {
                "phase": name,
                "wall_s": round(elapsed, 3),
                "requests": requests,
                "cpu_s": round(cpu_s, 3),
                "cpu_us_per_device": round(1e6 * cpu_s / devices, 1),
                "emulator_cpu_s": round(server_term, 3),
                # How busy the emulator's one core was, and with its waits for that core: near
                # 1, the server (as this machine let it run) is what the phase waited for.
                "emulator_cpu_utilisation": round(server_term / elapsed, 3),
                "emulator_busy_or_waiting_share": round((server_term + emulator_wait) / elapsed, 3),
                "mean_requests_in_flight": round(latency_s / elapsed, 1),
                "mean_latency_ms": round(1000 * latency_s / requests, 2) if requests else None,
                # wall = requests * mean latency / mean in flight, so the ratio to the latency
                # bound is the product of these two: the answers' slowness (the server and the
                # machine) and the slots not holding a request (the client's scheduling).
                "latency_factor": round(latency_s / requests / (spec["latency_ms"] / 1000), 2)
                if requests and spec["latency_ms"]
                else None,
                "in_flight_factor": round(spec["parallelism"] * elapsed / latency_s, 2)
                if latency_s
                else None,
                # How busy the client's one core was: near 1, its own CPU delays the answers
                # it has to read (the event loop cannot take them sooner).
                "client_cpu_utilisation": round(cpu_s / elapsed, 3),
                "gc_s": round(gc_time[0] - gc0, 3),
                "gc_collections_by_generation": [
                    now - before for now, before in zip(collections, collections0, strict=True)
                ],
                # Ready to run but waiting for a core (other processes on the machine had it).
                "client_runqueue_wait_s": round(waits[0] - waits0[0], 3),
                "emulator_runqueue_wait_s": round(emulator_wait, 3),
                "lower_bound_s": round(bound, 3),
                "latency_term_s": round(latency_term, 3),
                "rate_term_s": round(rate_term, 3),
                "busiest_bucket": {
                    "bucket": recorder.bucket_names.get(busiest[0][0], "(one request each)"),
                    "requests": busiest[0][1],
                }
                if busiest
                else None,
                "lower_bound_ratio": round(elapsed / bound, 3) if bound else None,
                "sequential_round_trips": round_trips,
                "planner_s": round(planner_s, 4),
                "planner_us_per_device": round(1e6 * planner_s / devices, 1),
                "server_term_s": round(server_term, 3),
                "service_term_s": round(service_term, 3),
                "honest_lower_bound_without_server_s": round(honest_without_server, 3),
                "honest_lower_bound_without_server_ratio": round(elapsed / honest_without_server, 3)
                if honest_without_server
                else None,
                "honest_lower_bound_s": round(honest, 3),
                "honest_lower_bound_ratio": round(elapsed / honest, 3) if honest else None,
                "cpu_us_per_request": round(1e6 * cpu_s / requests, 1) if requests else None,
            }
        )

    def begin() -> Started:
        count, buckets = recorder.snapshot()
        latency0[0] = clients[0].stats.latency_total if clients else 0.0
        waits = (_runqueue_wait_s("self"), _runqueue_wait_s(spec["emulator_pid"]))
        emulator_cpu_s = _proc_cpu_seconds(spec["emulator_pid"])
        collections = gc_collections()
        # The clocks last: what came before is not the phase's.
        return (
            time.perf_counter(),
            time.process_time(),
            emulator_cpu_s,
            count,
            buckets,
            gc_time[0],
            waits,
            collections,
        )

    clients: list[Any] = []  # the run's TTS client, once connected
    latency0 = [0.0]  # its summed request latency when the phase began

    # The planner's own CPU (diff, actions, safety), measured in the run.
    planner_cpu = [0.0]
    plan_target = engine.plan_target

    def timed_plan_target(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return plan_target(*args, **kwargs)
        finally:
            planner_cpu[0] += time.process_time() - started

    engine.plan_target = timed_plan_target  # type: ignore[assignment]

    async def workload() -> Any:
        session = engine.connect(loaded, options)
        gc.freeze()  # as the CLI does once the desired state is built (cli._prepare)
        client = session.provider("tts").client  # type: ignore[attr-defined]
        clients.append(client)
        client.observer = recorder.observe  # the production transport, observed
        try:
            start = begin()
            run = await engine.make_plan(loaded, session, options)
            mark("plan", start, _plan_round_trips(bool(spec["prune"])), planner_cpu[0])
            summary = run.plan.summary()
            outcome["plan_summary"] = {k: v for k, v in summary.items() if v}
            outcome["planned_changes"] = len(run.plan.changes)
            outcome["blocked"] = run.plan.blocked
            if spec["apply"] and run.plan.changes:
                start = begin()
                report = await engine.apply_plan(run, session, options)
                mark("apply", start, _apply_round_trips(run.plan))
                outcome["apply_counts"] = report.counts()
                outcome["apply_failures"] = [
                    f"{r.key}: {r.error}" for r in report.failed[:3]
                ]  # server errors name the resource, never a secret
            return client
        finally:
            await session.aclose()

    window_cpu, window_wall = time.process_time(), time.perf_counter()
    emu_cpu0 = _proc_cpu_seconds(spec["emulator_pid"])
    if profiler is not None:
        profiler.enable()
    client = asyncio.run(workload())
    recorder.snapshot()  # count anything sent after the last phase
    if profiler is not None:
        profiler.disable()
    wall_s = time.perf_counter() - window_wall
    cpu_s = time.process_time() - window_cpu
    emulator_cpu_s = _proc_cpu_seconds(spec["emulator_pid"]) - emu_cpu0
    emulator = _emulator_figures(admin)
    admin.close()

    lower_bound = sum(p["lower_bound_s"] for p in phases)
    honest_bound = sum(p["honest_lower_bound_s"] for p in phases)
    honest_without_server = sum(p["honest_lower_bound_without_server_s"] for p in phases)
    figures: dict[str, Any] = {
        "workload": spec["workload"],
        "devices": devices,
        "wall_s": round(wall_s, 3),
        "requests": emulator["total"],
        "requests_per_device": round(emulator["total"] / devices, 3),
        "http_429": emulator["by_status"].get("429", 0),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "cpu_us_per_device": round(1e6 * cpu_s / devices, 1),
        "lower_bound_s": round(lower_bound, 3),
        "lower_bound_ratio": round(wall_s / lower_bound, 3) if lower_bound else None,
        "honest_lower_bound_s": round(honest_bound, 3),
        "honest_lower_bound_ratio": round(wall_s / honest_bound, 3) if honest_bound else None,
        "honest_lower_bound_without_server_s": round(honest_without_server, 3),
        "honest_lower_bound_without_server_ratio": round(wall_s / honest_without_server, 3)
        if honest_without_server
        else None,
        "client_requests": client.stats.requests,
        "recorded_requests": recorder.count,
        "client_retries": client.stats.retries,
        "client_unanswered_by_cause": dict(getattr(client.stats, "unanswered", {})),
        "client_rate_limited": client.stats.rate_limited,
        "client_by_status": {str(k): v for k, v in sorted(client.stats.by_status.items())},
        "client_mean_latency_ms": round(1000 * (client.stats.mean_latency or 0), 2),
        "pacer_wait_s_summed_over_waiters": round(client.pacer.waited_seconds, 3),
        "client_cpu_s": round(cpu_s, 3),
        "emulator_cpu_s": round(emulator_cpu_s, 3),
        "emulator_cpu_utilisation": round(emulator_cpu_s / wall_s, 3) if wall_s else None,
        "emulator_by_status": emulator["by_status"],
        "emulator_requests_by_rpc": {
            rpc: sum(statuses.values()) for rpc, statuses in emulator["rpcs"].items()
        },
        "phases": phases,
        "load_s": round(load_s, 3),
        "load_cpu_s": round(load_cpu, 3),
        "rss_after_load_mb": round(rss_after_load, 1),
        "import_s": round(imports_s, 3),
        **outcome,
    }
    if profiler is not None:
        figures["profile"] = _profile_tables(profiler, spec["profile"])
        return figures
    gets = [r.url for r in recorder.sample if r.method == "GET" and "/devices/" in r.url]
    plan_phase = next((p for p in phases if p["phase"] == "plan"), None)
    if gets and plan_phase and plan_phase["requests"] >= 100:
        floor = _floor(
            gets, key, parallelism, min(3000, plan_phase["requests"]), spec["emulator_pid"]
        )
        figures["floor"] = floor
        per_request = plan_phase["cpu_us_per_request"]
        figures["plan_cpu_per_request_vs_floor"] = round(
            per_request / floor["cpu_us_per_request"], 2
        )
        hold_s = floor["wall_s"] * parallelism / floor["requests"]
        floor["hold_ms_per_request"] = round(1000 * hold_s, 2)
        # The fastest client's own wall time against the honest bound of its requests (latency
        # and the server's work per slot, or the server's CPU): what this emulator and machine
        # let any client reach at this parallelism.
        floor_bound = max(
            (floor["requests"] * spec["latency_ms"] / 1000 + floor["emulator_cpu_s"]) / parallelism,
            floor["emulator_cpu_s"],
        )
        floor["honest_lower_bound_ratio"] = round(floor["wall_s"] / floor_bound, 3)
        paced = 0.0
        for phase in phases:
            if phase["phase"] == "plan":
                phase["floor_paced_bound_s"] = round(
                    max(phase["requests"] * hold_s / parallelism, phase["rate_term_s"])
                    + phase["sequential_round_trips"] * spec["latency_ms"] / 1000
                    + phase["planner_s"],
                    3,
                )
                phase["floor_paced_bound_ratio"] = round(
                    phase["wall_s"] / phase["floor_paced_bound_s"], 3
                )
                paced += phase["floor_paced_bound_s"]
            else:
                paced += phase["honest_lower_bound_s"]
        figures["floor_paced_bound_s"] = round(paced, 3)
        figures["floor_paced_bound_ratio"] = round(wall_s / paced, 3)
    replay = _replay(
        recorder.sample,
        key,
        target.user_agent if target else "reconciler-bench",
        spec["rate_limit"],
        url,
    )
    mean = replay["mean_ms_per_request"]
    sequential_s = mean / 1000 * emulator["total"] if mean else None
    figures["sequential"] = {**replay, "extrapolated_s": round(sequential_s or 0, 3)}
    figures["speedup_vs_sequential"] = round(sequential_s / wall_s, 2) if sequential_s else None
    return figures


def _profile_tables(profiler: Any, path: str) -> dict[str, Any]:
    import io
    import pstats

    profiler.dump_stats(path)
    tables: dict[str, Any] = {"pstats_file": path}
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(order).print_stats(15)
        tables[order] = [line for line in out.getvalue().splitlines() if line.strip()][-16:]
    return tables


# --- the parent: generate, serve, run the workloads ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _parse_rate_limit(text: str) -> list[int] | None:
    if text.lower() in {"", "none", "off"}:
        return None
    per_minute, _, burst = text.partition(":")
    return [int(per_minute), int(burst or per_minute)]


class Emulator:
    def __init__(
        self, latency_ms: float, rate_limit: list[int] | None, jitter_ms: float = 0.0
    ) -> None:
        self.port, self.api_key = _free_port(), generate_api_key()[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.rate_limit = rate_limit
        self.latency_ms = latency_ms
        command = [
            sys.executable, "-m", "reconciler", "emulator", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--api-key", self.api_key,
            "--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms),
        ]  # fmt: skip
        if rate_limit:
            command += ["--rate-limit", f"{rate_limit[0]}:{rate_limit[1]}"]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.pinned = False
        if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(self.process.pid, {SERVER_CPU})
            self.pinned = True
        assert self.process.stdout is not None
        if not self.process.stdout.readline():
            raise SystemExit("the emulator did not start")
        self.admin = _admin(self.url, self.api_key)

    def configure(self, **settings: Any) -> None:
        self.admin.put("/_emulator/config", json=settings).raise_for_status()

    def stop(self) -> None:
        self.admin.close()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def drift_out_of_band(emulator: Emulator, indexes: list[int]) -> None:
    """Change devices as a Console user would: IS name, NS MAC/PHY version (both managed)."""
    emulator.configure(rate_limit=None, latency_ms=0)
    api = httpx.Client(
        base_url=emulator.url + "/api/v3",
        headers={"Authorization": f"Bearer {emulator.api_key}", "User-Agent": "console/1.0"},
        timeout=30,
    )
    with api:
        for i in indexes:
            path = f"/applications/{APP_ID}/devices/{device_id(i)}"
            api.put(
                path,
                json={
                    "end_device": {"name": "renamed in the Console"},
                    "field_mask": {"paths": ["name"]},
                },
            ).raise_for_status()
            ids = {
                "device_id": device_id(i),
                "application_ids": {"application_id": APP_ID},
                "dev_eui": dev_eui(i),
                "join_eui": JOIN_EUI,
            }
            api.put(
                "/ns" + path,
                json={
                    "end_device": {
                        "ids": ids,
                        "lorawan_version": "MAC_V1_0_2",
                        "lorawan_phy_version": "PHY_V1_0_2_REV_B",
                    },
                    "field_mask": {"paths": ["lorawan_version", "lorawan_phy_version"]},
                },
            ).raise_for_status()
    emulator.configure(rate_limit=emulator.rate_limit, latency_ms=emulator.latency_ms)


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    command = [sys.executable, __file__, "--client", json.dumps(spec)]
    env = dict(os.environ)
    if spec.get("code"):  # another checkout's `reconciler` (a `git archive` of a commit)
        env["PYTHONPATH"] = spec["code"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=timeout, cwd=ROOT, env=env
        )
    except subprocess.TimeoutExpired:
        return {"workload": spec["workload"], "devices": spec["devices"], "failed": "timeout"}
    if done.returncode != 0:
        return {
            "workload": spec["workload"],
            "devices": spec["devices"],
            "failed": f"exit {done.returncode}",
            "stderr": done.stderr[-3000:],
        }
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def check(figures: dict[str, Any], expect: dict[str, Any]) -> None:
    """Record whether the workload did what it must (not a target: a correctness check)."""
    problems = []
    if figures.get("failed"):
        problems.append(figures["failed"])
    for name, value in expect.items():
        if figures.get(name) != value:
            problems.append(f"{name}: want {value}, got {figures.get(name)}")
    counts = figures.get("apply_counts") or {}
    if counts.get("failed") or counts.get("skipped"):
        problems.append(f"apply: {counts}")
    if figures.get("client_requests") not in (None, figures.get("requests")):
        problems.append("the client's and the emulator's request counts differ")
    figures["correct"] = not problems
    if problems:
        figures["problems"] = problems


def run_size(devices: int, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    started = time.perf_counter()
    base = scratch / f"n{devices}"
    full = write_manifests(base / "full", list(range(devices)))
    kept = pruned_indexes(devices, args.prune_fraction)
    pruned = write_manifests(base / "pruned", kept)
    drifted = drifted_indexes(devices, args.drift_fraction)
    generate_s = time.perf_counter() - started
    emulator = Emulator(args.latency_ms, args.rate_limit, args.jitter_ms)
    results: list[dict[str, Any]] = []
    size_started = time.perf_counter()
    try:
        common = {
            "url": emulator.url,
            "api_key": emulator.api_key,
            "emulator_pid": emulator.process.pid,
            "devices": devices,
            "parallelism": args.parallelism,
            # The bound's latency: the mean of latency + uniform(0, jitter).
            "latency_ms": args.latency_ms + args.jitter_ms / 2,
            "rate_limit": args.rate_limit,
            "sequential_sample": args.sequential_sample,
            "prune": False,
            "force": False,
            "apply": True,
        }
        workloads: list[tuple[str, Path, dict[str, Any], dict[str, Any]]] = [
            ("create", full, {}, {"planned_changes": devices + 2}),
            ("plan_no_changes", full, {"apply": False}, {"planned_changes": 0}),
            ("drift_1pct", full, {}, {"planned_changes": len(drifted)}),
            (
                "prune_10pct",
                pruned,
                {"prune": True, "force": True},
                {"planned_changes": devices - len(kept)},
            ),
        ]
        for name, manifests, overrides, expect in workloads:
            if name != "create" and name not in args.workloads:
                continue
            if name == "drift_1pct":
                drift_out_of_band(emulator, drifted)
            spec = {**common, **overrides, "workload": name, "manifests": str(manifests)}
            figures = run_child(spec, args.workload_timeout)
            check(figures, expect)
            results.append(figures)
            print(
                f"# {devices} devices: {name}: {figures.get('wall_s')} s, honest-bound ratio "
                f"{figures.get('honest_lower_bound_ratio')} "
                f"(without server term {figures.get('honest_lower_bound_without_server_ratio')}, "
                f"floor-paced {figures.get('floor_paced_bound_ratio')})",
                file=sys.stderr,
                flush=True,
            )
            if name == "plan_no_changes" and args.profile and devices == min(args.devices):
                profile_spec = {**spec, "profile": str(Path(args.profile_out).resolve())}
                profiled = run_child(profile_spec, args.workload_timeout)
                results.append(
                    {
                        "workload": "plan_no_changes (cProfile; figures inflated by profiling)",
                        "devices": devices,
                        "wall_s": profiled.get("wall_s"),
                        "cpu_us_per_device": profiled.get("cpu_us_per_device"),
                        "profile": profiled.get("profile") or profiled,
                    }
                )
        comparison = compare(args, {**common, "apply": False}, full) if args.compare_with else None
    finally:
        emulator.stop()
    return {
        "devices": devices,
        "generate_s": round(generate_s, 3),
        "emulator_pinned_cpu": SERVER_CPU if emulator.pinned else None,
        "size_wall_s": round(time.perf_counter() - size_started, 1),
        "workloads": results,
        **({"comparison": comparison} if comparison else {}),
    }


COMPARED = (
    "wall_s",
    "honest_lower_bound_ratio",
    "floor_paced_bound_ratio",
    "plan_cpu_per_request_vs_floor",
    "cpu_us_per_device",
    "peak_rss_mb",
)


def compare(args: argparse.Namespace, common: dict[str, Any], manifests: Path) -> dict[str, Any]:
    """plan_no_changes with this code and with the code at --compare-with, alternated
    --compare-rounds times against the same emulator (the same devices, the same machine
    minute by minute): before/after figures that one machine's drift does not decide."""
    runs: dict[str, list[dict[str, Any]]] = {"this": [], "other": []}
    spec = {**common, "workload": "plan_no_changes", "manifests": str(manifests)}
    for _ in range(args.compare_rounds):
        for label, code in (("this", None), ("other", str(args.compare_with.resolve()))):
            figures = run_child({**spec, "code": code}, args.workload_timeout)
            check(figures, {"planned_changes": 0})
            plan = next((p for p in figures.get("phases", []) if p["phase"] == "plan"), {})
            runs[label].append(
                {
                    **{k: figures.get(k) for k in COMPARED},
                    "planner_us_per_device": plan.get("planner_us_per_device"),
                    "mean_requests_in_flight": plan.get("mean_requests_in_flight"),
                    "latency_factor": plan.get("latency_factor"),
                    "correct": figures["correct"],
                }
            )
    ratios = [
        round(this["wall_s"] / other["wall_s"], 3)
        for this, other in zip(runs["this"], runs["other"], strict=True)
        if this.get("wall_s") and other.get("wall_s")
    ]
    return {
        "workload": "plan_no_changes",
        "other_code": str(args.compare_with),
        "rounds": args.compare_rounds,
        "wall_this_over_other": ratios,
        **runs,
    }


def targets_met(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    verdict: dict[str, Any] = {}
    for size in sizes:
        for w in size["workloads"]:
            if "profile" in w:
                continue
            name = f"{w['workload']}@{size['devices']}"
            ratio = w.get("honest_lower_bound_ratio")
            verdict[f"{name}: honest_lower_bound_ratio <= 1.15"] = (
                ratio is not None and ratio <= TARGETS["honest_lower_bound_ratio_max"]
            )
            for phase in w.get("phases") or []:
                if phase["phase"] == "plan" and w["workload"] in ("plan_no_changes", "drift_1pct"):
                    verdict[f"{name}: planner_us_per_device <= 50"] = (
                        phase["planner_us_per_device"] <= TARGETS["planner_us_per_device_max"]
                    )
            if "plan_cpu_per_request_vs_floor" in w:
                verdict[f"{name}: plan cpu per request <= 1.5 x floor"] = (
                    w["plan_cpu_per_request_vs_floor"]
                    <= TARGETS["plan_cpu_per_request_vs_floor_max"]
                )
            if size["devices"] >= 10_000:
                verdict[f"{name}: peak_rss_mb <= 250"] = (
                    w.get("peak_rss_mb", 1e9) <= TARGETS["peak_rss_mb_max_at_10000"]
                )
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1000], help="sizes to run")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="injected latency")
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        help="random extra latency, uniform in [0, JITTER] per request (a real server's answers "
        "vary; the bound uses the mean latency)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_parse_rate_limit,
        default=[6000, 300],
        help="PER_MINUTE[:BURST] per token + RPC + entity (GCRA), or 'none'",
    )
    parser.add_argument("--parallelism", type=int, default=16, help="RunOptions.parallelism")
    parser.add_argument(
        "--workloads",
        nargs="+",
        default=["create", "plan_no_changes", "drift_1pct", "prune_10pct"],
        help="run these only (create always runs: the others need its devices)",
    )
    parser.add_argument("--drift-fraction", type=float, default=0.01)
    parser.add_argument("--prune-fraction", type=float, default=0.10)
    parser.add_argument(
        "--sequential-sample", type=int, default=200, help="requests replayed one at a time"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile plan_no_changes (smallest size)"
    )
    parser.add_argument("--profile-out", default="bench-reconcile-plan.pstats")
    parser.add_argument("--workload-timeout", type=float, default=900.0)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--compare-with",
        type=Path,
        help="a checkout of other code (e.g. `git archive REV | tar -x -C DIR`): after the "
        "workloads, plan_no_changes alternates between this code and that one",
    )
    parser.add_argument("--compare-rounds", type=int, default=3)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client_main(json.loads(args.client))))
        return 0

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as scratch:
        sizes = [run_size(n, args, Path(scratch)) for n in args.devices]
    report = {
        "benchmark": "reconcile",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "settings": {
            "latency_ms": args.latency_ms,
            "jitter_ms": args.jitter_ms,
            "rate_limit": None
            if args.rate_limit is None
            else {"per_minute": args.rate_limit[0], "burst": args.rate_limit[1]},
            "parallelism": args.parallelism,
            "drift_fraction": args.drift_fraction,
            "prune_fraction": args.prune_fraction,
            "sequential_sample": args.sequential_sample,
            "emulator_cpu": SERVER_CPU,
            "client_cpu": CLIENT_CPU,
        },
        "rate_limit_model": RATE_LIMIT_MODEL,
        "lower_bound_formula": LOWER_BOUND_FORMULA,
        "honest_lower_bound_formula": HONEST_LOWER_BOUND_FORMULA,
        "floor_paced_bound_formula": FLOOR_PACED_BOUND_FORMULA,
        "floor_method": FLOOR_METHOD,
        "sequential_method": SEQUENTIAL_METHOD,
        "sizes": sizes,
        "targets": TARGETS,
        "targets_met": targets_met(sizes),
        "total_wall_s": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0 if all(w.get("correct", True) for s in sizes for w in s["workloads"]) else 1


if __name__ == "__main__":
    sys.exit(main())
