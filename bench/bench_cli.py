"""CLI overhead: process start to exit of short commands, as JSON.

    .venv/bin/python bench/bench_cli.py [--runs 7] [--commands version,help,validate,plan]
        [--root DIR] [--before DIR]

Runs the installed `reconciler` entry point (a fresh interpreter each time, as a user or a CI
job does) several times per command and reports the wall time and the CPU time (user +
system, from `getrusage` of the children) of each run as min, median and max:

* `version`: `reconciler version`;
* `help`: `reconciler --help`;
* `validate`: `reconciler validate` of a tree with only a Stack document;
* `plan`: `reconciler plan` of that tree against a served TTS emulator (so the only request
  is the first page of the owned applications: a plan with nothing to read).

`python -c pass` is measured in the same rounds as the floor no command can go below. The
target is a wall time of at most 0.5 s for the plan; on a shared machine wall time grows with
the load (each process waits for a core), so the CPU time and the load average
(`os.getloadavg`, before and after) are reported with it. Commands are interleaved in each
round so that all see the same load. `--root` runs the `reconciler` package of another
checkout (e.g. a `git archive` of an earlier commit, through PYTHONPATH) with this one's
interpreter and packages; `--before DIR` also runs that checkout's commands in the same rounds
(interleaved) and reports them under `before`, with the ratios of the medians (this run over
`before`). The emulator always runs from this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.emulator.tts.config import generate_api_key

ROOT = Path(__file__).resolve().parent.parent
TARGET_PLAN_SECONDS = 0.5
SERVE = (sys.executable, "-m", "reconciler", "emulator", "serve")
COMMANDS = ("version", "help", "validate", "plan")
STACK = """\
kind: Stack
name: bench-cli
url: https://tts.example.com
api_key: {env: TTS_API_KEY}
owner: {user: admin-user}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{command} failed ({done.returncode}): {done.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--commands", default=",".join(COMMANDS))
    parser.add_argument(
        "--root", type=Path, default=None, help="Checkout whose `reconciler` package runs."
    )
    parser.add_argument(
        "--before", type=Path, default=None, help="Another checkout, measured in the same rounds."
    )
    args = parser.parse_args()
    wanted = args.commands.split(",")
    entry = shutil.which("reconciler", path=str(Path(sys.executable).parent))
    if entry is None:
        raise SystemExit("the `reconciler` entry point is not installed beside this Python")
    port, key = _free_port(), generate_api_key()[0]
    server = subprocess.Popen(
        [*SERVE, "--port", str(port), "--api-key", key],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        if not server.stdout.readline():
            print(json.dumps({"error": "the emulator did not start"}))
            return 1
        with tempfile.TemporaryDirectory() as tree:
            Path(tree, "stack.yaml").write_text(STACK)
            env = {**os.environ, "TTS_API_KEY": key, "NO_COLOR": "1"}
            envs = {"": env}
            if args.root is not None:
                env["PYTHONPATH"] = str(args.root.resolve())
            if args.before is not None:
                envs["before "] = {**env, "PYTHONPATH": str(args.before.resolve())}
            commands = {
                "floor": [sys.executable, "-c", "pass"],
                "version": [entry, "version"],
                "help": [entry, "--help"],
                "validate": [entry, "validate", tree],
                "plan": [entry, "plan", "--url", f"http://127.0.0.1:{port}", tree],
            }
            names = ["floor", *(prefix + name for name in wanted for prefix in envs)]
            for name in names:  # once each, unmeasured: the file system cache is warm after
                prefix, _, command = name.rpartition(" ")
                _timed(commands[command], envs[prefix and prefix + " "])
            load_before = os.getloadavg()[0]
            walls: dict[str, list[float]] = {name: [] for name in names}
            cpus: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(args.runs):
                for name in names:
                    prefix, _, command = name.rpartition(" ")
                    wall, cpu = _timed(commands[command], envs[prefix and prefix + " "])
                    walls[name].append(wall)
                    cpus[name].append(cpu)
            load_after = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait(10)
    results = {
        name: {"wall_s": _summary(walls[name]), "cpu_s": _summary(cpus[name])} for name in names
    }
    plan_median = statistics.median(walls["plan"]) if "plan" in walls else None
    ratios = {
        name: {
            "wall": round(statistics.median(walls[name]) / statistics.median(walls[old]), 2),
            "cpu": round(statistics.median(cpus[name]) / statistics.median(cpus[old]), 2),
        }
        for name in wanted
        if (old := "before " + name) in walls
    }
    print(
        json.dumps(
            {
                "runs": args.runs,
                "root": str(args.root or ROOT),
                "before": str(args.before) if args.before else None,
                "median_ratio_to_before": ratios or None,
                "cpus": os.cpu_count(),
                "load_average": [round(load_before, 2), round(load_after, 2)],
                "commands": results,
                "target_plan_wall_s": TARGET_PLAN_SECONDS,
                "meets_target": plan_median is not None and plan_median <= TARGET_PLAN_SECONDS,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
