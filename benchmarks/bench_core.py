"""Core benchmarks: the accept fast path, scanning a large map, and accepting
a fragmented map run by run, each beside the baselines a user would write.

    python -m pytest benchmarks/bench_core.py --benchmark-json=.benchmarks/core.json
    python benchmarks/report.py .benchmarks/core.json

Test ids carry 'unaccepted', 'python', 'numpy' or 'bitarray' so the groups
can be compared; extra_info['ops'] is the number of operations per round.
The C baselines (cbench.py: benchmarks/c/fast_path.c and scan.c, compiled
at first use) carry 'bare-c' (the same Linux bitmap work as a plain C loop),
'vectorised' (the same words scanned or counted with vector registers) and
'memory-bandwidth' (a read loop over the same words).

Maps are written once before they are read (`touch`): a fresh bitmap maps
the kernel's shared zero page, and scanning it reads the same 4 KiB over and
over from the L1 cache.
"""
import random

import pytest

import cbench
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


def touch(table):
    """Write every page of the bitmap once, leaving it all accepted."""
    table.mark(0, table.nbits, True)
    table.mark(0, table.nbits, False)
    return table


def touched_table(units):
    return touch(Table(UNIT, 0, units // 8))


def touch_baseline(bm):
    if isinstance(getattr(bm, "buf", None), bytearray):
        bm.buf[:] = bytes(len(bm.buf))
    elif np is not None and isinstance(getattr(bm, "a", None), np.ndarray):
        bm.a[:] = False
    else:                              # bitarray: setall(0) wrote it already
        bm.a.setall(0)
    return bm


@pytest.fixture(scope="module")
def clib():
    lib = cbench.load()
    if lib is None:
        pytest.skip("needs a C compiler for the C baselines")
    return lib


def fast_path_batch(kind, length):
    # size ends 4 KiB short of the unit boundary: no guard unit
    return OpBatch((kind, f * UNIT, length * UNIT - 4096) for f in fast_path_ops(length))


# ---- accept fast path: the range is already accepted -------------------------

@pytest.mark.parametrize("length", [2, 512])
@pytest.mark.benchmark(group="accept-fast-path-batch")
def test_fast_path_batch_unaccepted(benchmark, length):
    table = touched_table(UNITS_4TIB)
    batch = fast_path_batch("accept", length)
    benchmark.extra_info["ops"] = BATCH
    benchmark(table.run, batch, results=False)
    assert table.unaccepted_units == 0


def _bare(clib, fn, table, batch):
    words, ops = cbench.words_of(table), cbench.ops_of(batch)
    shift = table.unit_size.bit_length() - 1
    return lambda: fn(words, table.nbits, table.phys_base, shift, ops, len(batch))


@pytest.mark.parametrize("length", [2, 512])
@pytest.mark.benchmark(group="accept-fast-path-batch")
def test_fast_path_batch_bare_c(benchmark, clib, length):
    """The same ops and bitmap words through a plain C loop doing Linux's
    arithmetic and the any-bit test, one cffi call per batch (the target:
    Table.run within 1.3x)."""
    table = touched_table(UNITS_4TIB)
    batch = fast_path_batch("accept", length)
    benchmark.extra_info["ops"] = BATCH
    assert benchmark(_bare(clib, clib.bare_accept_ops, table, batch)) == 0


@pytest.mark.parametrize("length", [2, 512])
@pytest.mark.benchmark(group="contains-fast-path-batch")
def test_contains_batch_unaccepted(benchmark, length):
    table = touched_table(UNITS_4TIB)
    batch = fast_path_batch("contains", length)
    benchmark.extra_info["ops"] = BATCH
    benchmark(table.run, batch, results=False)


@pytest.mark.parametrize("length", [2, 512])
@pytest.mark.benchmark(group="contains-fast-path-batch")
def test_contains_batch_bare_c(benchmark, clib, length):
    table = touched_table(UNITS_4TIB)
    batch = fast_path_batch("contains", length)
    benchmark.extra_info["ops"] = BATCH
    assert benchmark(_bare(clib, clib.bare_contains_ops, table, batch)) == 0


@pytest.mark.parametrize("length", [2, 512])
@pytest.mark.benchmark(group="accept-fast-path-batch")
def test_fast_path_batch_baseline(benchmark, baseline, length):
    """The same accept_memory() ops, one Python call each."""
    bm = touch_baseline(baseline(UNITS_4TIB))
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


# ---- scanning and counting a fully accepted map -----------------------------

@pytest.mark.benchmark(group="scan-4TiB")
def test_scan_unaccepted(benchmark):
    table = touched_table(UNITS_4TIB)
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["bitmap_bytes"] = UNITS_4TIB // 8
    found = benchmark(table.contains, 0, UNITS_4TIB * UNIT - 4096)
    assert found is False


@pytest.mark.benchmark(group="scan-4TiB")
def test_scan_baseline(benchmark, baseline):
    bm = touch_baseline(baseline(UNITS_4TIB))
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["bitmap_bytes"] = UNITS_4TIB // 8
    assert benchmark(bm.any, 0, UNITS_4TIB) is False


@pytest.mark.benchmark(group="scan-4TiB")
def test_scan_vectorised(benchmark, clib):
    """The same words OR-ed with 128-bit vectors and plain loads (what any
    x86-64 build may use): the target is >= 50 % of its speed."""
    table = touched_table(UNITS_4TIB)
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["bitmap_bytes"] = UNITS_4TIB // 8
    assert benchmark(clib.vec_any, cbench.words_of(table), UNITS_4TIB // 64) == 0


@pytest.mark.benchmark(group="scan-4TiB")
def test_scan_vectorised_avx2(benchmark, clib):
    if not clib.have_avx2():
        pytest.skip("the CPU has no AVX2")
    table = touched_table(UNITS_4TIB)
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["bitmap_bytes"] = UNITS_4TIB // 8
    assert benchmark(clib.vec_any_avx2, cbench.words_of(table), UNITS_4TIB // 64) == 0


@pytest.mark.benchmark(group="count-4TiB")
def test_count_unaccepted(benchmark):
    table = touched_table(UNITS_4TIB)
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["bitmap_bytes"] = UNITS_4TIB // 8
    assert benchmark(lambda: table.unaccepted_units) == 0


@pytest.mark.benchmark(group="count-4TiB")
def test_count_baseline(benchmark, baseline):
    bm = touch_baseline(baseline(UNITS_4TIB))
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["bitmap_bytes"] = UNITS_4TIB // 8
    assert benchmark(bm.count, 0, UNITS_4TIB) == 0


@pytest.mark.benchmark(group="count-4TiB")
def test_count_vectorised(benchmark, clib):
    """A 128-bit SWAR population count (SSE2 on x86-64)."""
    table = touched_table(UNITS_4TIB)
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["bitmap_bytes"] = UNITS_4TIB // 8
    assert benchmark(clib.vec_count, cbench.words_of(table), UNITS_4TIB // 64) == 0


@pytest.mark.benchmark(group="count-4TiB")
def test_count_vectorised_avx512(benchmark, clib):
    """VPOPCNTQ over 512-bit vectors, where the CPU has it."""
    if not clib.have_avx512_popcnt():
        pytest.skip("the CPU has no AVX-512 VPOPCNTDQ")
    table = touched_table(UNITS_4TIB)
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["bitmap_bytes"] = UNITS_4TIB // 8
    assert benchmark(clib.vec_count_avx512, cbench.words_of(table), UNITS_4TIB // 64) == 0


UNITS_BIG = 1 << 30                 # a 128 MiB bitmap: larger than the caches


@pytest.fixture(scope="module")
def big_table():
    return touched_table(UNITS_BIG)


def _big(benchmark):
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["bitmap_bytes"] = UNITS_BIG // 8


@pytest.mark.benchmark(group="scan-128MiB")
def test_big_scan_unaccepted(benchmark, big_table):
    _big(benchmark)
    found = benchmark.pedantic(big_table.contains, args=(0, UNITS_BIG * UNIT - 4096), rounds=9)
    assert found is False


@pytest.mark.benchmark(group="scan-128MiB")
def test_big_scan_memory_bandwidth(benchmark, clib, big_table):
    """Every word of the same bitmap OR-ed together, no early exit: the read
    bandwidth of this machine (the target: the scan at >= 80 % of it)."""
    _big(benchmark)
    words = cbench.words_of(big_table)
    assert benchmark.pedantic(clib.mem_read, args=(words, UNITS_BIG // 64), rounds=9) == 0


@pytest.mark.benchmark(group="count-128MiB")
def test_big_count_unaccepted(benchmark, big_table):
    _big(benchmark)
    assert benchmark.pedantic(lambda: big_table.unaccepted_units, rounds=9) == 0


@pytest.mark.benchmark(group="count-128MiB")
def test_big_count_memory_bandwidth(benchmark, clib, big_table):
    _big(benchmark)
    words = cbench.words_of(big_table)
    assert benchmark.pedantic(clib.mem_read, args=(words, UNITS_BIG // 64), rounds=9) == 0


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
