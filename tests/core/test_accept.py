"""accept_memory / range_contains_unaccepted_memory: mainline semantics against
the reference model, the primitive contract, the batch API and threads."""
import threading
import time

import pytest
from hypothesis import given, strategies as st

from unaccepted import (AcceptFailed, CallbackError, GuestPanic, InvalidOp, InvalidState,
                        MemoryDescriptor as D, MemoryMap, Op, OpBatch, OpResult, OutOfRange,
                        Recorder,
                        Table, stub_build_table)
from unaccepted.testing.reference import RefTable, ref_stub
from unaccepted.testing.strategies import memory_maps, ops, unit_sizes

MiB, GiB = 1 << 20, 1 << 30


@st.composite
def cases(draw):
    mm = draw(memory_maps())
    unit = draw(unit_sizes)
    return mm, unit, draw(ops(mm, unit))


@given(cases())
def test_ops_match_reference(case):
    mm, unit, op_list = case
    table, _ = stub_build_table(mm, unit_size=unit)
    ref, _ = ref_stub([(d.type, d.start, d.pages) for d in mm], unit)
    if table is None:
        return
    rec = Recorder()
    table.set_accept(rec)
    for kind, start, size in op_list:
        if kind == "accept":
            before = len(rec)
            res = table.accept_detailed(start, size)
            got = rec.ranges(before)
            assert got == ref.accept(start, size)
            assert res.runs == len(got)
            assert res.units == sum(e - s for s, e in got) // unit
        else:
            assert table.contains(start, size) == ref.contains(start, size)
        assert table.bitmap == ref.bitmap_bytes()


@given(cases())
def test_batch_equals_single_calls(case):
    mm, unit, op_list = case
    a, _ = stub_build_table(mm, unit_size=unit)
    b, _ = stub_build_table(mm, unit_size=unit)
    if a is None:
        return
    ra, rb = Recorder(), Recorder()
    a.set_accept(ra)
    b.set_accept(rb)
    results = a.run(OpBatch(op_list))
    singles = [b.accept_detailed(s, n).runs if k == "accept" else b.contains(s, n)
               for k, s, n in op_list]
    assert [r.runs if r.kind == "accept" else r.contains for r in results] == singles
    assert ra.ranges() == rb.ranges() and a.bitmap == b.bitmap


TOP, HALF, PAGE = 1 << 64, 1 << 63, 4096


@st.composite
def high_cases(draw):
    """Tables and ops at the top of the address space, where the core
    switches from 64-bit to exact 128-bit arithmetic (ends at or above
    2^63) and where start + size reaches 2^64 (an error)."""
    unit = draw(unit_sizes)
    size = draw(st.integers(1, 8))
    cov = size * 8 * unit
    highest = TOP - cov - PAGE                         # phys_base + coverage < 2^64
    anchor = draw(st.sampled_from([HALF - cov // 2, HALF - cov, HALF, highest]))
    base = anchor + draw(st.integers(-2 * cov // PAGE, 2 * cov // PAGE)) * PAGE
    base = min(max(base, 0), highest)
    bits = draw(st.one_of(st.just(set(range(size * 8))), st.sets(st.integers(0, size * 8 - 1))))
    points = st.sampled_from([base, base + cov, HALF, TOP - PAGE, TOP - 1])
    near = st.integers(-3 * unit, 3 * unit)
    # unit boundaries of the table (guard units), pages around them, anything
    starts = st.one_of(
        st.builds(lambda k, d: min(max(base + k * unit + d, 0), TOP - 1),
                  st.integers(-2, size * 8 + 2), st.sampled_from([0, 0, -PAGE, PAGE, -1, 1])),
        st.integers(max(base - 2 * unit, 0), min(base + cov + 2 * unit, TOP - 1)),
        st.builds(lambda p, d: min(max(p + d, 0), TOP - 1), points, near))
    sizes = st.one_of(st.just(0), st.integers(1, 3 * unit), st.integers(0, 2 * cov),
                      st.integers(0, size * 8 + 2).map(lambda k: k * unit),
                      st.sampled_from([PAGE, unit, unit - PAGE, HALF, TOP - 1]))
    op = st.tuples(st.sampled_from(["accept", "contains"]), starts, sizes)
    return unit, base, size, bits, draw(st.lists(op, max_size=10))


@given(high_cases())
def test_ops_at_the_top_of_the_address_space_match_reference(case):
    unit, base, size, bits, op_list = case
    table = Table(unit, base, size)
    for b in bits:
        table.mark(b, b + 1)
    ref = RefTable(unit, base, size, set(bits))
    batch_table = Table(unit, base, size)
    batch_table.bitmap = table.bitmap
    rec, batch_rec = Recorder(), Recorder()
    table.set_accept(rec)
    batch_table.set_accept(batch_rec)
    in_range = []
    for kind, start, n in op_list:
        if start + n >= TOP:                           # the end is not representable
            with pytest.raises(OutOfRange):
                table.accept_detailed(start, n) if kind == "accept" else table.contains(start, n)
            continue
        in_range.append((kind, start, n))
        if kind == "accept":
            before = len(rec)
            table.accept_detailed(start, n)
            assert rec.ranges(before) == ref.accept(start, n)
        else:
            assert table.contains(start, n) == ref.contains(start, n)
        assert table.bitmap == ref.bitmap_bytes()
    # the batch entry point (its inline fast path and its full path) agrees
    results = batch_table.run(OpBatch(in_range))
    expected = [ref_answer for ref_answer in _replay(unit, base, size, bits, in_range)]
    assert [r.runs if r.kind == "accept" else r.contains for r in results] == expected
    assert batch_rec.ranges() == rec.ranges() and batch_table.bitmap == table.bitmap


def _replay(unit, base, size, bits, op_list):
    ref = RefTable(unit, base, size, set(bits))
    for kind, start, n in op_list:
        yield len(ref.accept(start, n)) if kind == "accept" else ref.contains(start, n)


def full_table(units=64, unit=2 * MiB, base=4 * GiB):
    t = Table(unit, base, (units + 7) // 8)
    t.mark(0, units)
    return t


def test_guard_unit_and_page_widening():
    t = full_table()
    rec = Recorder()
    t.set_accept(rec)
    base = 4 * GiB
    t.accept_detailed(base, 2 * MiB)                   # ends on a unit boundary: +1 guard unit
    assert rec.ranges() == [(base, base + 4 * MiB)]
    t.accept_detailed(base + 5 * MiB - 1, 1)           # widened to one page, end not unit aligned
    assert rec.ranges(1) == [(base + 4 * MiB, base + 6 * MiB)]
    # an unaligned caller whose page-aligned end is unit aligned gets the guard
    # (the 2026 fix: widen first, then test the end)
    t.accept_detailed(base + 8 * MiB - 100, 50)
    assert rec.ranges(2) == [(base + 6 * MiB, base + 10 * MiB)]


def test_contains_uses_linux_stepping_and_no_widening():
    t = full_table(units=8)
    base = 4 * GiB
    t.accept_detailed(base, 2 * MiB - 4096)            # accepts unit 0 only (end not aligned)
    assert not t.contains(base + 1 * MiB, 1 * MiB - 4096)
    # [1 MiB, 2.5 MiB): Linux tests bits at offsets 1 MiB only (1 + 2 > 2.5),
    # so it misses unit 1 even though the range reaches into it.
    assert not t.contains(base + 1 * MiB, 1536 * 1024)
    assert t.contains(base + 1 * MiB, 2 * MiB + 512 * 1024)
    # end exactly on the boundary: the guard unit makes it true
    assert t.contains(base + 1 * MiB, 1 * MiB)


def test_range_ending_at_phys_base():
    t = full_table(units=8)
    base = 4 * GiB
    # end == phys_base is not "below" it: the guard unit 0 is considered
    assert t.contains(base - 4096, 4096)
    rec = Recorder()
    t.set_accept(rec)
    t.accept_detailed(base - 4096, 4096)
    assert rec.ranges() == [(base, base + 2 * MiB)]
    assert not t.contains(base - 8192, 4096)
    assert t.accept_detailed(base - 8192, 4096).runs == 0


def test_size_zero():
    t = full_table(units=8)
    base = 4 * GiB
    # Linux rounds the empty range's end up to whole units: the unit holding
    # `start` is accepted even for size 0.
    assert t.accept_detailed(base + 4096, 0).units == 1
    assert not t.contains(base + 4096, 0)
    assert t.contains(base + 2 * MiB, 0)               # unit aligned: guard unit
    assert t.accept_detailed(base + 2 * MiB, 0).units == 1
    assert not t.contains(base + 2 * MiB, 0)


def test_primitive_failure_leaves_bits_set_and_reports():
    t = full_table(units=8)
    t.mark(2, 3, unaccepted=False)                     # runs [0,2) and [3,8)
    seen = []

    def flaky(start, end, vcpu):
        seen.append((start, end))
        return len(seen) == 1                          # second run fails

    t.set_accept(flaky)
    with pytest.raises(AcceptFailed):
        t.accept_detailed(4 * GiB, 16 * MiB)
    assert t.bitmap == bytes([0b11111000])              # first run cleared, rest kept
    assert len(seen) == 2


def test_primitive_can_report_a_typed_death():
    t = full_table(units=8)
    t.set_accept(lambda s, e, v: 34)                   # UA_E_GUEST_PANIC
    with pytest.raises(GuestPanic):
        t.accept_detailed(4 * GiB, 4096)
    assert t.unaccepted_units == 8


def test_callback_exception_is_not_lost():
    t = full_table(units=8)

    def boom(start, end, vcpu):
        raise RuntimeError("injected")

    t.set_accept(boom)
    with pytest.raises(CallbackError) as exc:
        t.accept_detailed(4 * GiB, 4096)
    assert isinstance(exc.value.__cause__, RuntimeError)
    assert t.unaccepted_units == 8


def test_bits_clear_only_after_the_primitive_returns():
    t = full_table(units=8)
    observed = []
    t.set_accept(lambda s, e, v: observed.append(t.contains(s, 4096)))
    t.accept_detailed(4 * GiB, 4096)
    assert observed == [True] and not t.contains(4 * GiB, 4096)


def test_vcpu_is_passed_through():
    t = full_table(units=8)
    got = []
    t.set_accept(lambda s, e, v: got.append(v))
    t.accept_detailed(4 * GiB, 4096, vcpu=7)
    t.run([Op("accept", 4 * GiB + 6 * MiB, 4096, vcpu=3)])
    assert got == [7, 3]


def test_bad_ops():
    t = full_table(units=8)
    with pytest.raises(InvalidOp, match="unknown kind"):
        OpBatch([("evict", 0, 1)])
    with pytest.raises(InvalidOp, match="start"):
        t.accept_detailed(-1, 1)
    with pytest.raises(InvalidOp, match="size"):
        t.contains(0, 1.5)
    with pytest.raises(OutOfRange):
        t.accept_detailed((1 << 64) - 4096, 8192)


def test_batch_stops_at_the_failing_op_and_can_resume():
    t = full_table(units=8)
    calls = []

    def prim(s, e, v):
        calls.append(s)
        return len(calls) != 2

    t.set_accept(prim)
    batch = OpBatch([("accept", 4 * GiB, 4096), ("accept", 4 * GiB + 4 * MiB, 4096),
                     ("contains", 4 * GiB, 4096)])
    with pytest.raises(AcceptFailed) as exc:
        t.run(batch)
    assert exc.value.completed == 1


def test_no_table_primitive_swap_while_accepting():
    t = full_table(units=8)
    errors = []

    def prim(s, e, v):
        try:
            t.set_accept(None)
        except InvalidState as exc:
            errors.append(exc)

    t.set_accept(prim)
    t.accept_detailed(4 * GiB, 4096)
    assert len(errors) == 1


# ---- threads ----------------------------------------------------------------

def test_disjoint_callers_run_in_parallel():
    t = full_table(units=64)
    both_inside = threading.Barrier(2, timeout=10)

    def prim(s, e, v):
        both_inside.wait()                 # deadlocks unless both are inside at once

    t.set_accept(prim)
    results = []
    threads = [threading.Thread(target=lambda v=v: results.append(
        t.accept_detailed(4 * GiB + v * 32 * MiB, 4 * MiB - 4096, vcpu=v))) for v in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results) == 2 and all(r.units == 2 for r in results)


def test_caller_touching_a_unit_in_flight_waits():
    t = full_table(units=8, unit=2 * MiB)
    base = 4 * GiB
    inside = threading.Event()
    release = threading.Event()
    order = []

    def prim(s, e, v):
        order.append((v, s, e))
        if v == 0:
            inside.set()
            assert release.wait(10)

    t.set_accept(prim)
    a = threading.Thread(target=lambda: t.accept_detailed(base, 1 * MiB, vcpu=0))      # unit 0
    a.start()
    assert inside.wait(10)
    res = []
    # byte-disjoint from A's request but in the same unit: must wait
    b = threading.Thread(target=lambda: res.append(t.accept_detailed(base + 1536 * 1024, 4096, vcpu=1)))
    b.start()
    time.sleep(0.2)
    assert order == [(0, base, base + 2 * MiB)]          # B has not accepted anything
    release.set()
    a.join()
    b.join()
    assert res[0].waits >= 1 and res[0].runs == 0        # unit 0 was done by A
    assert order == [(0, base, base + 2 * MiB)]


@pytest.mark.parametrize("unit", [4096, 2 * MiB, 128 * MiB])
def test_many_threads_never_accept_a_unit_twice(unit):
    units = 4096
    t = Table(unit, 0, units // 8)
    t.mark(0, units)
    rec = Recorder()
    t.set_accept(rec)
    import random

    def worker(seed):
        rng = random.Random(seed)
        ops = []
        for _ in range(400):
            start = rng.randrange(0, units * unit)
            ops.append(("accept", start, rng.randrange(0, 6 * unit)))
        t.run(ops)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.accept_detailed(0, units * unit)                 # sweep whatever is left
    seen = set()
    for s, e in rec.ranges():
        for k in range(s // unit, e // unit):
            assert k not in seen, f"unit {k} accepted twice"
            seen.add(k)
    assert seen == set(range(units)) and t.unaccepted_units == 0


def test_accept_fast_call_returns_units_and_checks_arguments():
    t = full_table(units=8)
    assert t.accept(4 * GiB, 2 * MiB) == 2              # unit 0 + guard unit 1
    assert t.accept(4 * GiB, 2 * MiB) == 0
    with pytest.raises(InvalidOp, match="start"):
        t.accept(-5, 1)
    with pytest.raises(InvalidOp, match="size"):
        t.accept(0, 2.0)
    with pytest.raises(InvalidOp, match="vcpu"):
        t.accept(0, 1, vcpu=1 << 32)
    with pytest.raises(OutOfRange):
        t.accept((1 << 64) - 1, 1)
    t.set_accept(lambda s, e, v: False)
    with pytest.raises(AcceptFailed):
        t.accept(4 * GiB + 8 * MiB, 4096)
    assert t.unaccepted_units == 6


def test_a_callback_answer_that_is_not_a_status_is_an_error_not_a_success():
    # issue 9: a string used to read as success and the units were marked
    from unaccepted import CallbackError, Table
    t = Table(size=8)
    t.mark(0, 64)
    t.set_accept(lambda start, end, vcpu: "done")
    with pytest.raises(CallbackError) as e:
        t.accept(0, 4096)
    assert isinstance(e.value.__cause__, TypeError)
    assert t.unaccepted_units == 64                 # nothing claimed accepted


def test_a_recorder_keeps_only_what_was_accepted():
    # the next primitive refused the range: the recorder does not claim it
    from unaccepted import AcceptFailed, Recorder, Table
    rec = Recorder(next=lambda start, end, vcpu: False)
    t = Table(size=8)
    t.mark(0, 64)
    t.set_accept(rec)
    with pytest.raises(AcceptFailed):
        t.accept(0, 4096)
    assert len(rec) == 0 and rec.ranges() == []
    ok = Recorder(next=lambda start, end, vcpu: None)
    t.set_accept(ok)
    t.accept(0, 4096)
    assert ok.ranges() == [(0, 2 << 20)]           # one unit (no guard: the end is not unit-aligned)


def test_a_callback_that_accepts_its_own_range_gets_an_error_not_a_deadlock():
    # issue 9: it waited for itself forever and Ctrl-C could not stop it
    from unaccepted import CallbackError, InvalidState, Table
    t = Table(size=8)
    t.mark(0, 64)

    def reenter(start, end, vcpu):
        t.accept(start, end - start)

    t.set_accept(reenter)
    with pytest.raises(CallbackError) as e:
        t.accept(0, 4096)
    assert isinstance(e.value.__cause__, InvalidState)
    assert t.unaccepted_units == 64
    # another range is fine from inside a callback (no overlap, no wait)
    seen = []

    def other(start, end, vcpu):
        if start == 0:
            t.accept(32 << 20, 4096)
        seen.append(start)

    t.set_accept(other)
    t.accept(0, 4096)
    assert seen == [32 << 20, 0]


def test_mark_refuses_while_an_accept_runs():
    from unaccepted import CallbackError, InvalidState, Table
    t = Table(size=8)
    t.mark(0, 64)
    t.set_accept(lambda start, end, vcpu: t.mark(40, 41, True))
    with pytest.raises(CallbackError) as e:
        t.accept(0, 4096)
    assert isinstance(e.value.__cause__, InvalidState)
    assert t.unaccepted_units == 64


def test_run_results_are_per_call_and_read_on_demand():
    # issue 10: results are a view of this call's C array (no per-op Python
    # work unless looked at); two runs of one batch keep their own results
    from unaccepted.table import OpResults
    t = Table(2 * MiB, 0, 1)
    t.mark(0, 8)
    batch = OpBatch([("contains", 0, 4096), ("accept", 0, 4096), ("contains", 0, 4096)])
    first = t.run(batch)
    second = t.run(batch)
    assert isinstance(first, OpResults) and len(first) == 3
    assert first == [OpResult("contains", True, 0, 0), OpResult("accept", None, 1, 1),
                     OpResult("contains", False, 0, 0)]
    assert second[0] == OpResult("contains", False, 0, 0) and second[1].runs == 0
    assert first[-1] == first[2] and first[1:] == list(first)[1:]
    with pytest.raises(IndexError):
        first[3]
    assert t.run(batch, results=False) == []
