"""The manifest fuzzer in `make test`: a few hundred seeded cases in-process, a sample through
the real CLI (see `manifest_fuzz` for what is mutated and checked; `bench/fuzz_manifests.py`
runs the large campaign)."""

from __future__ import annotations

import resource
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzz.manifest_fuzz import (
    Outcome,
    run_case,
    run_cli_case,
    scratch_directory,
    secret_values,
)

IN_PROCESS_CASES = 250
CLI_CASES = 4
# Peak RSS of the whole test process after the cases: no case may blow memory up (the example
# tree is ~50 KB; the YAML and file caps are what keep hostile cases small).
MAX_PEAK_RSS_MIB = 1024


def failures(outcomes: list[Outcome]) -> list[str]:
    return [
        f"seed {o.seed} {o.mutations}: internal={o.internal_error} hang={o.hang} "
        f"leaks={o.leaks} outside_reads={o.outside_reads} harness={o.harness_error}"
        for o in outcomes
        if not o.ok
    ]


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=scratch_directory()) as directory:
        yield Path(directory)


def test_fuzzed_trees_validate_cleanly_in_process(scratch: Path) -> None:
    secrets = secret_values()
    outcomes = [run_case(seed, scratch / "case", secrets) for seed in range(IN_PROCESS_CASES)]
    assert failures(outcomes) == []
    assert {o.exit_code for o in outcomes} <= {0, 1}
    assert any(o.exit_code == 1 for o in outcomes) and any(o.exit_code == 0 for o in outcomes)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert peak_mib < MAX_PEAK_RSS_MIB


@pytest.mark.slow
def test_fuzzed_trees_through_the_real_cli(scratch: Path) -> None:
    secrets = secret_values()
    # Seeds past the in-process range, so the CLI sees other trees.
    outcomes = [
        run_cli_case(seed, scratch / "case", secrets) for seed in range(10_000, 10_000 + CLI_CASES)
    ]
    assert failures(outcomes) == []
    assert {o.exit_code for o in outcomes} <= {0, 1}
