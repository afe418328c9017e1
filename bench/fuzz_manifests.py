"""The large manifest fuzz campaign: thousands of mutated example trees, totals as JSON.

    .venv/bin/python bench/fuzz_manifests.py [--cases 10000] [--first-seed 0] [--cli-every 500]
    make fuzz FUZZ_CASES=10000

Each case is `tests/fuzz/manifest_fuzz.py`'s: the example tree mutated by seed, validated
in-process under an alarm with an audit hook on `open`; every `--cli-every`th seed also goes
through the real CLI (`python -m reconciler validate`). Prints the counts of internal errors,
leaks (secrets or foreign file content in any output), reads outside the tree and hangs, the
exit codes, time per case and peak RSS, and the seeds of any failing case (replay one with
`--first-seed S --cases 1`). Exit code 1 if any case failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz.manifest_fuzz import (  # the repository root is on the path now
    Outcome,
    run_case,
    run_cli_case,
    scratch_directory,
    secret_values,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--cli-every", type=int, default=500)
    args = parser.parse_args()
    secrets = secret_values()
    outcomes: list[Outcome] = []
    cli_outcomes: list[Outcome] = []
    mutation_counts: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=scratch_directory()) as directory:
        workdir = Path(directory) / "case"
        for seed in range(args.first_seed, args.first_seed + args.cases):
            outcome = run_case(seed, workdir, secrets)
            outcomes.append(outcome)
            mutation_counts.update(m.split(maxsplit=1)[0] for m in outcome.mutations)
            if args.cli_every and seed % args.cli_every == 0:
                cli_outcomes.append(run_cli_case(seed, workdir, secrets))
    seconds = time.perf_counter() - start
    everything = outcomes + cli_outcomes
    failed = [o for o in everything if not o.ok]
    report = {
        "cases": len(outcomes),
        "cli_cases": len(cli_outcomes),
        "first_seed": args.first_seed,
        "seconds": round(seconds, 1),
        "internal_errors": sum(1 for o in everything if o.internal_error),
        "leaks": sum(1 for o in everything if o.leaks),
        "reads_outside_the_tree": sum(1 for o in everything if o.outside_reads),
        "hangs": sum(1 for o in everything if o.hang),
        "harness_errors": sum(1 for o in everything if o.harness_error),
        "exit_codes": dict(collections.Counter(str(o.exit_code) for o in everything)),
        "slowest_case_seconds": round(max(o.seconds for o in everything), 2),
        "mean_case_ms": round(1000 * sum(o.seconds for o in outcomes) / len(outcomes), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "mutations": dict(mutation_counts),
        "failures": [
            {
                "seed": o.seed,
                "mutations": o.mutations,
                "internal_error": o.internal_error,
                "hang": o.hang,
                "leaks": o.leaks,
                "outside_reads": o.outside_reads[:5],
                "harness_error": o.harness_error,
            }
            for o in failed[:20]
        ],
    }
    print(json.dumps(report, indent=2))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
