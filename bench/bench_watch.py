"""Watch benchmark: `reconciler watch --heal` on a fleet under emulated traffic, as JSON.

    .venv/bin/python bench/bench_watch.py [--devices 10000] [--traffic-interval 600]
        [--idle-seconds 120] [--interval 30] [--latency-ms 20]

In a temporary directory: the fleet of bench_reconcile.py (a Stack, one Application, N OTAA
devices from CSV), the emulator served (`reconciler emulator serve`, pinned to CPU 0) with
emulated traffic (every device joins, then one uplink per `--traffic-interval` seconds), and
`apply`. Then `reconciler watch --heal --metrics-port` (pinned to CPU 1) runs:

1. `initial_full_sweep`: the requests and seconds of the first full sweep.
2. `idle`: `--idle-seconds` of nothing but traffic and the watcher's cheap sweeps every
   `--interval` seconds: the watcher's CPU (share of one core, from /proc), the requests it
   sent, per cheap sweep, and per 1,000 devices.
3. `heal`: one out-of-band change at a time (IS name, NS MAC and PHY versions, JS root key)
   through the API, as a Console user: the seconds from the change to the `healed` line and
   the requests the watcher sent for it (its re-read, the apply lease, its write, the re-reads
   of what it wrote), without the cheap sweeps that ran meanwhile.
4. `requests_per_hour`: at steady state with the defaults (a cheap sweep a minute, a full
   sweep every 6 hours, no drift), from the measured costs, against a scheduled full `drift`
   every hour.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_reconcile as fleet

ROOT = fleet.ROOT
TARGETS = {
    "heal_requests_max": 10,
    "heal_seconds_max": 5.0,
    "idle_cpu_share_max": 0.02,
    "cheap_sweep_requests_per_1000_devices_max": 1.0,
}
DEFAULT_INTERVAL = 60.0
DEFAULT_FULL_INTERVAL = 6 * 3600.0


class Watcher:
    """`reconciler watch` as a subprocess; its lines queued as they come."""

    def __init__(self, manifests: Path, emulator: fleet.Emulator, interval: float) -> None:
        env = {
            **os.environ,
            "TTS_API_KEY": emulator.api_key,
            "RECONCILER_TTS_URL": emulator.url,
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            sys.executable, "-m", "reconciler", "watch", str(manifests), "--heal",
            "--interval", f"{interval:g}s", "--full-interval", "6h", "--metrics-port", "0",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(self.process.pid, {fleet.CLIENT_CPU})
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        for stream in (self.process.stdout, self.process.stderr):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()
        self.metrics_url = ""

    def _pump(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self.log.append(line.rstrip())
            self.lines.put(line.rstrip())

    def wait_for(self, pattern: str, timeout: float) -> tuple[str, float]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if "metrics at " in line:
                self.metrics_url = line.split("metrics at ", 1)[1].strip()
            if regex.search(line):
                return line, time.monotonic()
        raise SystemExit(f"no line matching {pattern!r}:\n" + "\n".join(self.log[-20:]))

    def metrics(self) -> dict[str, float]:
        text = httpx.get(self.metrics_url, timeout=10).text
        values: dict[str, float] = {}
        for row in text.splitlines():
            if row.startswith("reconciler_watch_") and "_total " in row:
                name, value = row.split()
                values[name.removeprefix("reconciler_watch_").removesuffix("_total")] = float(value)
        return values

    def settled(self, quiet: float = 2.0) -> dict[str, float]:
        """The metrics once no request was sent for `quiet` seconds."""
        last = self.metrics()
        while True:
            time.sleep(quiet)
            now = self.metrics()
            if now["requests"] == last["requests"]:
                return now
            last = now

    def cpu_seconds(self) -> float:
        return fleet._proc_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _api(emulator: fleet.Emulator) -> httpx.Client:
    return httpx.Client(
        base_url=emulator.url + "/api/v3",
        headers={"Authorization": f"Bearer {emulator.api_key}", "User-Agent": "console/1.0"},
        timeout=30,
    )


def _ids(index: int) -> dict[str, Any]:
    return {
        "device_id": fleet.device_id(index),
        "application_ids": {"application_id": fleet.APP_ID},
        "dev_eui": fleet.dev_eui(index),
        "join_eui": fleet.JOIN_EUI,
    }


def out_of_band_changes(index: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, path, body) of one change per registry to device `index`."""
    dev = fleet.device_id(index)
    base = f"/applications/{fleet.APP_ID}/devices/{dev}"
    return [
        ("is_name", base, {"end_device": {"name": "renamed"}, "field_mask": {"paths": ["name"]}}),
        (
            "ns_mac_version",
            f"/ns{base}",
            {
                "end_device": {"ids": _ids(index), "lorawan_version": "MAC_V1_0_2",
                               "lorawan_phy_version": "PHY_V1_0_2_REV_B"},
                "field_mask": {"paths": ["lorawan_version", "lorawan_phy_version"]},
            },
        ),
        (
            "js_root_key",
            f"/js{base}",
            {
                "end_device": {"ids": _ids(index), "root_keys": {"app_key": {"key": "0" * 32}}},
                "field_mask": {"paths": ["root_keys.app_key.key"]},
            },
        ),
    ]  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "devices": args.devices,
        "traffic_interval_s": args.traffic_interval,
        "latency_ms": args.latency_ms,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        manifests = fleet.write_manifests(Path(tmp) / "manifests", list(range(args.devices)))
        emulator = fleet.Emulator(args.latency_ms, None)
        watcher: Watcher | None = None
        try:
            env = {
                **os.environ,
                "TTS_API_KEY": emulator.api_key,
                "RECONCILER_TTS_URL": emulator.url,
            }
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "reconciler", "apply", str(manifests), "--auto-approve"],
                cwd=ROOT, env=env, check=True, capture_output=True, text=True,
            )  # fmt: skip
            result["apply_seconds"] = round(time.monotonic() - started, 1)
            emulator.configure(traffic_interval=args.traffic_interval)

            started = time.monotonic()
            watcher = Watcher(manifests, emulator, args.interval)
            line, swept_at = watcher.wait_for("full sweep", 1800)
            full = int(re.findall(r"(\d+) requests", line)[0])
            first = watcher.settled()
            result["initial_full_sweep"] = {
                "seconds": round(swept_at - started, 1),
                "requests": full,
                "requests_per_device": round(full / args.devices, 2),
                "drift_found": int(first["drift_found"]),
                # At start the stream replays the last 30 s of registry events (here: the
                # apply's), each re-read once.
                "startup_replay_requests": int(first["requests"]) - full,
            }

            before, cpu_before, wall_before = (
                watcher.metrics(),
                watcher.cpu_seconds(),
                time.monotonic(),
            )
            time.sleep(args.idle_seconds)
            after, cpu_after, wall_after = (
                watcher.metrics(),
                watcher.cpu_seconds(),
                time.monotonic(),
            )
            sweeps = after["cheap_sweeps"] - before["cheap_sweeps"]
            requests = after["requests"] - before["requests"]
            per_sweep = requests / sweeps if sweeps else None
            traffic = emulator.admin.get("/_emulator/traffic").json()
            result["idle"] = {
                "seconds": round(wall_after - wall_before, 1),
                "cpu_share_of_one_core": round(
                    (cpu_after - cpu_before) / (wall_after - wall_before), 4
                ),
                "cheap_sweeps": int(sweeps),
                "requests": int(requests),
                "requests_per_cheap_sweep": per_sweep,
                "cheap_sweep_requests_per_1000_devices": (
                    round(per_sweep * 1000 / args.devices, 3) if per_sweep is not None else None
                ),
                "drift_found": int(after["drift_found"] - before["drift_found"]),
                "traffic": traffic,
            }

            heals = []
            with _api(emulator) as api:
                for name, path, body in out_of_band_changes(args.devices // 2):
                    base = watcher.settled()
                    started = time.monotonic()
                    answer = api.put(path, json=body)
                    answer.raise_for_status()
                    _, healed_at = watcher.wait_for(r"healed device", 60)
                    done = watcher.settled()
                    sweeps = done["cheap_sweeps"] - base["cheap_sweeps"]
                    total = done["requests"] - base["requests"]
                    heals.append({
                        "change": name,
                        "seconds_to_healed": round(healed_at - started, 3),
                        # without the cheap sweeps that ran meanwhile
                        "requests": int(total - sweeps * (per_sweep or 0)),
                        "cheap_sweeps_meanwhile": int(sweeps),
                        "healed": int(done["healed"] - base["healed"]),
                    })  # fmt: skip
            result["heal"] = heals

            cheap = per_sweep or 0.0
            result["requests_per_hour"] = {
                "watch_defaults": round(
                    3600 / DEFAULT_INTERVAL * cheap + 3600 / DEFAULT_FULL_INTERVAL * full
                ),
                "watch_with_hourly_full_sweep": round(3600 / DEFAULT_INTERVAL * cheap + full),
                "hourly_drift": full,
                "formula": "3600/interval x requests per cheap sweep + 3600/full_interval x "
                "requests of a full sweep (measured above); drift hourly = one full read "
                "an hour; no drift in between (each healed change adds its heal requests)",
            }
            result["targets"] = TARGETS
            result["load_average_end"] = os.getloadavg()
        finally:
            if watcher is not None:
                watcher.stop()
                result["watch_log_tail"] = watcher.log[-3:]
            emulator.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--traffic-interval", type=float, default=600.0)
    parser.add_argument("--idle-seconds", type=float, default=120.0)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
