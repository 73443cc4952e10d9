"""Ctrl-C through long C calls (issue 9): the core stops between batches at
the caller's cancel flag, what was done stays done and consistent, and
KeyboardInterrupt reaches the caller."""
import _thread
import threading

import pytest

from unaccepted import Interrupted, PythonPrimitive, Recorder, Table
from unaccepted._core import ffi, lib
from unaccepted.tdx import TdxGuest

MiB, GiB = 1 << 20, 1 << 30


def interrupt_main_after(seconds):
    t = threading.Timer(seconds, _thread.interrupt_main)
    t.start()
    return t


def test_a_cancel_flag_stops_accept_memory_between_runs():
    t = Table(2 * MiB, 0, 4)
    t.mark(0, 32)
    t.accept(4 * MiB, 2 * MiB)               # units 2-3 (the guard): runs [0,2) and [4,32)
    seen = []

    def primitive(start, end, vcpu):
        seen.append((start, end))
        t._cancel[0] = 1                     # the caller asks to stop after this run
    t.set_accept(PythonPrimitive(primitive))
    with pytest.raises(Interrupted):
        t.accept(0, 64 * MiB)
    t._cancel[0] = 0
    assert seen == [(0, 4 * MiB)]
    assert t.unaccepted_ranges() == [(8 * MiB, 64 * MiB)]    # the finished run is accepted


def test_a_cancel_flag_stops_a_batch_between_ops_and_it_resumes():
    t = Table(2 * MiB, 0, 4)
    t.mark(0, 32)
    rec = Recorder()
    t.set_accept(rec)
    t._cancel[0] = 1
    with pytest.raises(Interrupted) as exc:
        t.run([("accept", 0, MiB), ("accept", 8 * MiB, MiB)])
    assert exc.value.completed == 0 and len(rec) == 0 and t.unaccepted_units == 32
    t._cancel[0] = 0
    t.run([("accept", 0, MiB)])
    assert rec.ranges() == [(0, 2 * MiB)]         # [0, 1 MiB): one unit, no guard


def test_ctrl_c_stops_a_long_batch_and_the_table_stays_consistent():
    t = Table(2 * MiB, 0, 1 << 16)           # 2^19 units
    t.mark(0, 1 << 19)
    rec = Recorder()
    t.set_accept(rec)
    ops = [("accept", i * 8 * MiB, 2 * MiB) for i in range(1 << 17)]   # 2^17 runs
    timer = interrupt_main_after(0.05)
    try:
        with pytest.raises(KeyboardInterrupt):
            for _ in range(200):             # a long, stoppable job
                t.run(ops)
    finally:
        timer.cancel()
    # every range the primitive saw is cleared, and nothing else
    done = sum((e - s) // (2 * MiB) for s, e in rec.ranges())
    assert t.unaccepted_units == (1 << 19) - done
    assert t._cancel[0] == 0                 # ready for the next call


def test_ctrl_c_stops_a_long_guest_accept_between_batches():
    # TDX, 4 KiB backing: each 4 KiB page takes an exit; 128 GiB is seconds
    g = TdxGuest(128 * GiB, backing="4K")
    path = g.accept_path("ovmf")
    timer = interrupt_main_after(0.2)
    try:
        with pytest.raises(KeyboardInterrupt):
            path(0, 128 * GiB)
    finally:
        timer.cancel()
    done = g.count_accepted()
    assert 0 < done < 128 * GiB // 4096      # stopped part-way, the rest untouched
    assert g.fatal is None                   # an interrupt is not a failure
    assert path.stats.failures == 0
    path(0, 128 * MiB)                       # OVMF tolerates the accepted part; alive
    assert g.count_accepted(0, 128 * MiB) == 128 * MiB // 4096


def test_the_guest_flag_is_a_status_for_c_callers():
    g = TdxGuest(64 * MiB)
    flag = ffi.new("int *", 1)
    assert lib.ua_guest_set_cancel(g._guest, flag) == 0
    fn, ctx = g.accept_path("linux")._c_accept
    assert fn(ctx, 0, 2 * MiB, 0) == lib.UA_E_INTERRUPTED
    assert g.count_accepted() == 0 and g.fatal is None
    flag[0] = 0
    assert fn(ctx, 0, 2 * MiB, 0) == 0
    lib.ua_guest_set_cancel(g._guest, g._cancel)
