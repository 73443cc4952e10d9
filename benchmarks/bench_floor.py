"""The per-call floor of the hot Python entry points (issue 10).

    python -m pytest benchmarks/bench_floor.py --benchmark-only

Each group runs one call through the package (`unaccepted`), the same C
function called bare through cffi with the same arguments (`cffi-floor`:
the least any Python binding can cost), and where it applies bitarray doing
the same work (`bitarray`).  Target: every `unaccepted` entry point within
1.5x of its `cffi-floor` and faster than `bitarray`.
"""
import pytest

from unaccepted import OpBatch, Table
from unaccepted._core import ffi, lib
from unaccepted.snp import SnpGuest
from unaccepted.tdx import TdxGuest

from baselines import BitarrayBitmap


def _noop(first, last):
    pass

UNIT = 2 << 20
UNITS = 1 << 21                      # 4 TiB at 2 MiB units
START, SIZE = 1000 * UNIT, 2 * UNIT - 4096   # an accepted 2-unit range


@pytest.fixture(scope="module")
def table():
    return Table(UNIT, 0, UNITS // 8)


# ---- Table.contains ---------------------------------------------------------------------
@pytest.mark.benchmark(group="floor-contains")
def test_contains_unaccepted(benchmark, table):
    assert benchmark(table.contains, START, SIZE) is False


@pytest.mark.benchmark(group="floor-contains")
def test_contains_cffi_floor(benchmark, table):
    fn, handle = lib.ua_contains_unaccepted, table._handle
    assert benchmark(fn, handle, START, SIZE) == 0


@pytest.mark.benchmark(group="floor-contains")
def test_contains_bitarray(benchmark):
    bm = BitarrayBitmap(UNITS)

    def contains(start, size):
        first, last = bm.units(start, size)
        return bm.any(first, last)
    assert benchmark(contains, START, SIZE) is False


# ---- Table.accept (the range is accepted: the fast path) ---------------------------------
@pytest.mark.benchmark(group="floor-accept")
def test_accept_unaccepted(benchmark, table):
    assert benchmark(table.accept, START, SIZE) == 0


@pytest.mark.benchmark(group="floor-accept")
def test_accept_cffi_floor(benchmark, table):
    fn, handle = lib.ua_accept_memory_units, table._handle
    assert benchmark(fn, handle, START, SIZE, 0) == 0


@pytest.mark.benchmark(group="floor-accept")
def test_accept_bitarray(benchmark):
    bm = BitarrayBitmap(UNITS)
    benchmark(bm.accept_memory, START, SIZE, _noop)


# ---- Table.run (4096 ops in one call) ----------------------------------------------------
OPS = [("accept", (i * 7919 % UNITS) * UNIT, SIZE) for i in range(4096)]


@pytest.mark.benchmark(group="floor-run")
def test_run_unaccepted(benchmark, table):
    batch = OpBatch(OPS)
    assert benchmark(table.run, batch, results=False) == []


@pytest.mark.benchmark(group="floor-run")
def test_run_cffi_floor(benchmark, table):
    batch = OpBatch(OPS)
    cursor = ffi.new("size_t *")
    fn, handle = lib.ua_run_ops, table._handle

    def run():
        cursor[0] = 0
        return fn(handle, batch._ops, batch._n, ffi.NULL, cursor)
    assert benchmark(run) == 0


# ---- a vendor touch of accepted memory ---------------------------------------------------
GUESTS = {"snp": SnpGuest, "tdx": TdxGuest}


def _guest(vendor):
    g = GUESTS[vendor](64 << 20)
    g.accept_path("linux")(0, 4 << 20)
    return g


@pytest.mark.parametrize("vendor", ["snp", "tdx"])
@pytest.mark.benchmark(group="floor-touch")
def test_touch_unaccepted(benchmark, vendor):
    g = _guest(vendor)
    assert not benchmark(g.touch, 4096).outcome.fatal


@pytest.mark.parametrize("vendor", ["snp", "tdx"])
@pytest.mark.benchmark(group="floor-touch")
def test_touch_cffi_floor(benchmark, vendor):
    g = _guest(vendor)
    out = ffi.new("ua_touch_result *")
    fn, handle = lib.ua_guest_touch, g._guest
    assert benchmark(fn, handle, 0, 4096, 0, out) == 0
