"""The README's table of `bench_reconcile.py` results, from their JSON files, as Markdown.

    .venv/bin/python bench/summarize_reconcile.py bench/results/FILE.json [...]

One row per size, parallelism and workload; the plan phase's figures where a column is about
reads. Reading the figures off the JSON by hand is how tables went stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

NAMES = {
    "create": "create",
    "plan_no_changes": "plan, no changes",
    "drift_1pct": "drift 1% + repair",
    "prune_10pct": "prune 10%",
}
HEADER = (
    "| devices | parallelism | workload | wall s | requests | wall ÷ honest bound | "
    "wall ÷ floor-paced bound | floor's own ÷ honest bound | latency factor (plan) | "
    "requests in flight (plan) | plan client CPU µs/request (floor) | ratio to floor | "
    "planner µs/device | peak RSS MB | waiting for a core s, client / emulator |"
)


def _plan(workload: dict[str, Any]) -> dict[str, Any]:
    return next((p for p in workload.get("phases", []) if p["phase"] == "plan"), {})


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def rows(document: dict[str, Any]) -> list[str]:
    parallelism = document["settings"]["parallelism"]
    found = []
    for size in document["sizes"]:
        for w in size["workloads"]:
            if w.get("workload") not in NAMES:
                continue
            plan = _plan(w)
            floor = w.get("floor") or {}
            waits = [
                sum(p.get(f"{who}_runqueue_wait_s", 0.0) for p in w.get("phases", []))
                for who in ("client", "emulator")
            ]
            reads = plan.get("requests", 0) >= 100
            per_request = plan.get("cpu_us_per_request") if reads else None
            found.append(
                "| "
                + " | ".join(
                    [
                        _fmt(size["devices"]),
                        _fmt(parallelism),
                        NAMES[w["workload"]],
                        _fmt(w.get("wall_s"), 1 if (w.get("wall_s") or 0) >= 10 else 2),
                        _fmt(w.get("requests")),
                        _fmt(w.get("honest_lower_bound_ratio")),
                        _fmt(w.get("floor_paced_bound_ratio")),
                        _fmt(floor.get("honest_lower_bound_ratio")),
                        _fmt(plan.get("latency_factor") if reads else None),
                        _fmt(plan.get("mean_requests_in_flight") if reads else None, 1),
                        f"{_fmt(per_request, 0)} ({_fmt(floor.get('cpu_us_per_request'), 0)})"
                        if per_request
                        else "– (no reads)",
                        _fmt(w.get("plan_cpu_per_request_vs_floor")),
                        _fmt(plan.get("planner_us_per_device"), 0),
                        _fmt(w.get("peak_rss_mb"), 0),
                        f"{waits[0]:.1f} / {waits[1]:.1f}",
                    ]
                )
                + " |"
            )
    return found


def main() -> int:
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for name in sys.argv[1:]:
        lines.extend(rows(json.loads(Path(name).read_text())))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
