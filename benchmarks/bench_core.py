"""Core benchmarks: the accept fast path, scanning a large map, and accepting
a fragmented map run by run, each beside the baselines a user would write.

    python -m pytest benchmarks/bench_core.py --benchmark-json=.benchmarks/core.json
    python benchmarks/report.py .benchmarks/core.json

Test ids carry 'unaccepted', 'python', 'numpy' or 'bitarray' so the groups
can be compared; extra_info['ops'] is the number of operations per round.
"""
import random

import pytest

from baselines import NumpyRuns, available, np
from unaccepted import OpBatch, Table

MiB = 1 << 20
UNIT = 2 * MiB
UNITS_4TIB = 1 << 21        # 4 TiB at 2 MiB: td-shim's 256 KiB bitmap
BATCH = 4096


def _noop(a, b):
    pass


def fast_path_ops(length_units, seed=1):
    rng = random.Random(seed)
    return [rng.randrange(0, UNITS_4TIB - length_units) for _ in range(BATCH)]


# ---- accept fast path: the range is already accepted -------------------------

@pytest.mark.parametrize("length", [2, 512])
@pytest.mark.benchmark(group="accept-fast-path-batch")
def test_fast_path_batch_unaccepted(benchmark, length):
    table = Table(UNIT, 0, UNITS_4TIB // 8)
    firsts = fast_path_ops(length)
    # size ends 4 KiB short of the unit boundary: no guard unit
    batch = OpBatch(("accept", f * UNIT, length * UNIT - 4096) for f in firsts)
    benchmark.extra_info["ops"] = BATCH
    benchmark(table.run, batch, results=False)
    assert table.unaccepted_units == 0


@pytest.mark.parametrize("length", [2, 512])
@pytest.mark.benchmark(group="accept-fast-path-batch")
def test_fast_path_batch_baseline(benchmark, baseline, length):
    """The same accept_memory() ops, one Python call each."""
    bm = baseline(UNITS_4TIB)
    ops = [(f * UNIT, length * UNIT - 4096) for f in fast_path_ops(length)]
    benchmark.extra_info["ops"] = BATCH

    def run():
        for start, size in ops:
            bm.accept_memory(start, size, _noop)

    benchmark(run)


@pytest.mark.benchmark(group="accept-fast-path-single")
def test_fast_path_single_unaccepted(benchmark):
    table = Table(UNIT, 0, UNITS_4TIB // 8)
    benchmark.extra_info["ops"] = 1
    assert benchmark(table.accept, 1000 * UNIT, 2 * UNIT - 4096) == 0


@pytest.mark.benchmark(group="accept-fast-path-single")
def test_fast_path_single_baseline(benchmark, baseline):
    """accept_memory(start, size): address to units, then check-and-clear."""
    bm = baseline(UNITS_4TIB)
    benchmark.extra_info["ops"] = 1
    benchmark(bm.accept_memory, 1000 * UNIT, 2 * UNIT - 4096, _noop)


@pytest.mark.benchmark(group="accept-fast-path-single-units")
def test_fast_path_single_units_baseline(benchmark, baseline):
    """For reference only: check-and-clear given unit indices (no address
    arithmetic), which is less work than accept_memory()."""
    bm = baseline(UNITS_4TIB)
    benchmark.extra_info["ops"] = 1
    benchmark(bm.accept, 1000, 1002, _noop)


# ---- scanning a fully accepted 4 TiB map -----------------------------------

@pytest.mark.benchmark(group="scan-4TiB")
def test_scan_unaccepted(benchmark):
    table = Table(UNIT, 0, UNITS_4TIB // 8)
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["bitmap_bytes"] = UNITS_4TIB // 8
    found = benchmark(table.contains, 0, UNITS_4TIB * UNIT - 4096)
    assert found is False


@pytest.mark.benchmark(group="scan-4TiB")
def test_scan_baseline(benchmark, baseline):
    bm = baseline(UNITS_4TIB)
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["bitmap_bytes"] = UNITS_4TIB // 8
    assert benchmark(bm.any, 0, UNITS_4TIB) is False


# ---- accepting a fragmented map: every other unit unaccepted ---------------

def alternating_bitmap(units):
    return b"\x55" * (units // 8)


@pytest.mark.parametrize("runs", [1 << 20, 1 << 22, 1 << 24])
@pytest.mark.benchmark(group="accept-alternating")
def test_alternating_unaccepted(benchmark, runs):
    units = 2 * runs                           # 2^25 units = 64 TiB at 2 MiB
    table = Table(UNIT, 0, units // 8)
    pattern = alternating_bitmap(units)

    def arm():
        table.bitmap = pattern

    benchmark.extra_info["ops"] = runs
    result = benchmark.pedantic(lambda: table.accept_detailed(0, units * UNIT), setup=arm, rounds=5,
                                warmup_rounds=1)
    assert result.runs == runs and table.unaccepted_units == 0


@pytest.mark.parametrize("runs", [1 << 16, 1 << 20])
@pytest.mark.benchmark(group="accept-alternating")
def test_alternating_baseline(benchmark, baseline, runs):
    units = 2 * runs
    bm = baseline(units)
    count = [0]

    def visit(a, b):
        count[0] += 1

    def arm():
        bm.arm(0, units)
        if hasattr(bm, "a") and np is not None and isinstance(bm.a, np.ndarray):
            bm.a[1::2] = False
        elif hasattr(bm, "a"):
            bm.a[1::2] = 0
        else:
            bm.buf[1::2] = bytes(units // 2)
        count[0] = 0

    benchmark.extra_info["ops"] = runs
    benchmark.pedantic(lambda: bm.accept(0, units, visit), setup=arm, rounds=3)
    assert count[0] == runs


@pytest.mark.skipif(np is None, reason="numpy baseline not installed")
@pytest.mark.parametrize("runs", [1 << 20, 1 << 24])
@pytest.mark.benchmark(group="accept-alternating")
def test_alternating_numpy_vectorised(benchmark, runs):
    units = 2 * runs
    bm = NumpyRuns(units)

    def arm():
        bm.a[0::2] = True

    benchmark.extra_info["ops"] = runs
    got = benchmark.pedantic(bm.accept, args=(0, units), setup=arm, rounds=3)
    assert got == runs
