"""The collector policy while a live state that will be frozen is read."""

from __future__ import annotations

import gc
from contextlib import AbstractContextManager, nullcontext

import pytest

from reconciler.engine import young_collections_only


def full_collections_while_keeping(policy: AbstractContextManager[None]) -> int:
    """Full collections while objects accumulate as a live state does (kept, not garbage)."""
    gc.collect()
    # A full collection runs once the survivors since the last one exceed a quarter of the
    # oldest generation: keep well over that.
    count = len(gc.get_objects(generation=2)) // 2 + 50_000
    before = gc.get_stats()[2]["collections"]
    with policy:
        kept = [{"record": [i]} for i in range(count)]
    after = gc.get_stats()[2]["collections"]
    del kept
    return after - before


def test_no_full_collection_while_reading() -> None:
    thresholds = gc.get_threshold()
    assert full_collections_while_keeping(nullcontext()) > 0  # what the policy avoids
    assert full_collections_while_keeping(young_collections_only()) == 0
    assert gc.get_threshold() == thresholds


def test_thresholds_restored_when_the_read_fails() -> None:
    thresholds = gc.get_threshold()
    with pytest.raises(RuntimeError), young_collections_only():
        raise RuntimeError("read failed")
    assert gc.get_threshold() == thresholds
