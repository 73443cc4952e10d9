"""The guest accept paths (Linux tdx_accept_memory, OVMF TdAcceptPages):
instruction / exit / AUG counts for 2 MiB and 4 KiB host backing, panics,
OVMF's tolerance rules, resumable 2 MiB accepts, cost accounting, the core
table driving the Linux path, and concurrent vCPUs.

Expected counts are derived by hand from Linux
arch/x86/coco/tdx/tdx-shared.c:tdx_accept_memory(), EDK2
MdePkg/Library/TdxLib/AcceptPages.c:TdAcceptPages() and the TDX module's
tdg_mem_page_accept.c (see the comment at each)."""
import threading

import pytest

from unaccepted import Cost, Event, FatalKind, GuestHung, GuestPanic, Host, Table
from unaccepted.errors import AcceptFailed, GuestDied
from unaccepted.tdx import SeptState, TdxGuest

K4, M2, G1 = 4096, 2 << 20, 1 << 30


def test_linux_2m_backing_counts():
    g = TdxGuest(4 * G1, cost=Cost("count"))
    path = g.accept_path("linux")
    path(0, 2 * G1)
    s = path.stats
    # 1 GiB tries at 0 and 1 GiB (OPERAND_INVALID in module 1.5); one 2 MiB
    # ACCEPT per unit, each exiting once (FREE) for a 2 MiB AUG, then re-executed
    assert (s.accept_1g, s.accept_2m, s.accept_4k) == (2, 1024, 0)
    assert s.operand_invalid == 2
    assert (s.exits, s.host_aug_2m, s.host_aug_4k, s.success_2m) == (1024, 1024, 0, 1024)
    assert s.executions == 2 + 2 * 1024
    counts = g.cost.counts()
    assert counts[Event.TDCALL_ACCEPT] == s.executions
    assert counts[Event.TD_EXIT] == 1024
    assert counts[Event.AUG_2M] == 1024
    assert counts[Event.ZERO_4K] == 1024 * 512
    assert counts[Event.ACCEPT_CALL] == 1          # one arch_accept_memory() call
    assert Event.AUG_4K not in counts
    assert g.count_states(0, 2 * G1) == {SeptState.MAPPED: 2 * G1 // K4}
    assert g.count_states(2 * G1, 4 * G1) == {SeptState.FREE: 2 * G1 // K4}


def test_linux_4k_backing_counts():
    g = TdxGuest(2 * G1, backing="4K", cost=Cost("count"))
    path = g.accept_path("linux")
    path(0, G1)
    s = path.stats
    units = G1 // M2
    # per 2 MiB: the 2 MiB ACCEPT exits (FREE 2 MiB entry), the VMM maps the
    # first 4 KiB page, the re-execution answers SIZE_MISMATCH; then 512
    # 4 KiB ACCEPTs: the first page is already PENDING, the 511 others each
    # exit once for a 4 KiB AUG and re-execute.
    assert (s.accept_1g, s.accept_2m, s.accept_4k) == (1, units, 512 * units)
    assert s.size_mismatch == units and s.success_4k == 512 * units
    assert s.exits == 512 * units and s.host_aug_4k == 512 * units and s.host_aug_2m == 0
    assert s.executions == 1 + units * (2 + 1 + 2 * 511)
    c = g.cost.counts()
    assert c[Event.TD_EXIT] == 512 * units and c[Event.AUG_4K] == 512 * units
    assert c[Event.ZERO_4K] == 512 * units
    # every 2 MiB region got its 4 KiB table: one TDH.MEM.SEPT.ADD each
    assert c[Event.SEAMCALL] == units
    assert g.entry(0, 1).state == SeptState.NL_MAPPED
    assert g.count_states(0, G1) == {SeptState.MAPPED: G1 // K4}


def test_linux_prefaulted_pending_has_no_exits():
    g = TdxGuest(G1, initial="pending")
    path = g.accept_path("linux")
    path(0, G1)
    s = path.stats
    assert (s.exits, s.accept_2m, s.executions) == (0, 512, 513)


def test_linux_prefaulted_4k_pending():
    g = TdxGuest(64 * M2, backing="4K", initial="pending")
    path = g.accept_path("linux")
    path(0, 64 * M2)
    s = path.stats
    assert (s.exits, s.accept_2m, s.size_mismatch, s.accept_4k) == (0, 64, 64, 64 * 512)


def test_choice_1g_capable_module_still_mismatches():
    # model choice (docs/tdx.md, Modelling choices): the host never maps 1 GiB
    # leaves, so guest RAM's 1 GiB entries are always NL_MAPPED; given that
    # state, SIZE_MISMATCH | 2 is tdg_mem_page_accept's answer
    g = TdxGuest(2 * G1, accept_1g=True)
    r = g.accept(0, 2)
    assert r.rax == 0xC0000B0B00000002          # non-leaf at 1 GiB: SIZE_MISMATCH | 2
    path = g.accept_path("linux")
    path(0, G1)
    assert path.stats.size_mismatch == 1 and path.stats.operand_invalid == 0


def test_linux_panics_on_double_accept():
    g = TdxGuest(G1)
    path = g.accept_path("linux")
    path(0, 4 * M2)
    with pytest.raises(GuestPanic):
        path(2 * M2, 4 * M2)
    assert g.fatal.message == "TDX: Failed to accept memory"
    s = path.stats
    # the 2 MiB try and the 4 KiB try both got PAGE_ALREADY_ACCEPTED
    assert s.already_accepted == 2 and s.failures == 1


def test_linux_panics_on_busy_4k():
    g = TdxGuest(G1, backing="4K")
    g.aug(5 * K4)
    g.set_lock(5 * K4, 0)
    path = g.accept_path("linux")
    with pytest.raises(GuestPanic):
        path(0, M2)
    assert path.stats.operand_busy == 1
    assert g.count_states(0, 5 * K4) == {SeptState.MAPPED: 5}


def test_ovmf_tolerates_already_accepted():
    g = TdxGuest(G1)
    path = g.accept_path("ovmf")
    path(0, 8 * M2)
    path(0, 8 * M2)
    s = path.stats
    assert s.already_accepted == 8 and s.failures == 0
    assert g.fatal is None


def test_ovmf_exactly_2m_is_512_small_pages():
    # TdxMemoryAccept takes the 2 MiB middle only when more than 2 MiB remain
    g = TdxGuest(G1)
    path = g.accept_path("ovmf")
    path(0, M2)
    s = path.stats
    assert (s.accept_2m, s.accept_4k) == (0, 512)
    # the 4 KiB accepts of a FREE region make the VMM map 4 KiB pages
    assert s.host_aug_4k == 512
    path(M2, 3 * M2 + 8 * K4)
    s = path.stats
    assert (s.accept_2m, s.accept_4k) == (2, 512 + 8)   # middle 4 MiB, tail 32 KiB


def test_ovmf_sec_takes_every_aligned_2m_with_a_2m_page():
    # OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c BspApAcceptMemoryResourceRange:
    # each vCPU's 32 MiB chunks go to TdAcceptPages with PcdTdxAcceptPageSize
    # (2 MiB), the last 2 MiB included (no "more than 2 MiB left" rule there)
    g = TdxGuest(G1)
    path = g.accept_path("ovmf-sec")
    path(0, M2)
    assert (path.stats.accept_2m, path.stats.accept_4k) == (1, 0)
    path(M2 + 8 * K4, 3 * M2 + 8 * K4)           # unaligned: 4 KiB around one 2 MiB
    s = path.stats
    assert (s.accept_2m, s.accept_4k) == (2, 512)
    assert g.accept_path("ovmf").stats.calls == 0   # its own path and statistics


def test_ovmf_size_mismatch_falls_back_to_512():
    g = TdxGuest(G1, backing="4K")
    path = g.accept_path("ovmf")
    path(0, 4 * M2)
    s = path.stats
    assert s.size_mismatch == 4 and s.accept_2m == 4 and s.accept_4k == 2048
    assert g.count_states(0, 4 * M2) == {SeptState.MAPPED: 2048}


def test_ovmf_retries_operand_busy_three_times():
    g = TdxGuest(G1, backing="4K")
    g.aug(M2 + 3 * K4)
    g.set_lock(M2 + 3 * K4, 0)
    path = g.accept_path("ovmf")
    with pytest.raises(AcceptFailed) as e:
        path(0, 4 * M2)
    s = path.stats
    # one try plus 3 retries of the same page, then EFI_INVALID_PARAMETER
    assert s.operand_busy == 4
    assert g.state(M2 + 3 * K4) == SeptState.PENDING
    # 0.1 kept a "TdAcceptPages: failed ..." message on the path; in 0.2 only
    # a guest's death is recorded (guest.fatal), and TdAcceptPages returns
    # EFI_INVALID_PARAMETER to its caller: AcceptFailed, the guest lives
    assert not isinstance(e.value, GuestDied) and g.fatal is None


def test_host_priority_timeout_exit():
    g = TdxGuest(G1, backing="4K", hp_busy_limit=2)
    g.aug(7 * K4)
    g.set_host_priority(7 * K4, 0)
    r = g.accept(7 * K4)
    assert r.rax == 0x8000020000000001          # converted to plain OPERAND_BUSY
    r = g.accept(7 * K4)
    assert r.exited and r.exit_status == 0x9000020500000000
    assert r.rax == 6                           # RAX untouched by the exit
    g.serve_exit(r)
    assert not g.entry(7 * K4).host_priority
    assert g.accept(7 * K4).rax == 0
    # OVMF rides through the host-priority timeout with one retry
    g2 = TdxGuest(G1, backing="4K", hp_busy_limit=2)
    g2.aug(7 * K4)
    g2.set_host_priority(7 * K4, 0)
    path = g2.accept_path("ovmf")
    path(0, 4 * M2)
    s = path.stats
    assert s.operand_busy == 1 and s.host_release_hp == 1


def test_resumable_2m_accept_direct():
    # when the interrupt "arrives" (after n chunks) is a model choice; stopping
    # with the counter kept and resuming from it is tdg_mem_page_accept's loop
    g = TdxGuest(G1, initial="pending", cost=Cost("count"))
    g.set_interrupts(0, after=3)
    r = g.accept(M2, 1)
    assert r.interrupted and not r.exited and r.rax == 6 and r.accept_counter == 3
    assert r.chunks_zeroed == 3
    e = g.entry(M2, 1)
    assert e.state == SeptState.PENDING and e.accept_counter == 3
    assert g.access(M2).outcome.name == "EXIT"   # still pending: not readable
    r = g.accept(M2, 1)
    assert r.rax == 0 and r.chunks_zeroed == 509
    assert g.cost.counts()[Event.ZERO_4K] == 512
    assert g.entry(M2, 1).accept_counter == 0


def test_resumable_2m_accept_through_linux_path():
    g = TdxGuest(G1, initial="pending", cost=Cost("count"))
    g.set_interrupts(0, after=100, period=100)
    path = g.accept_path("linux")
    path(0, 8 * M2)
    s = path.stats
    # 4096 chunks with an interrupt every 100: the check after chunk k stops a
    # 2 MiB accept unless k is its last chunk; chunk 4096 is not a multiple of 100
    assert s.interrupts == 4096 // 100
    assert g.cost.counts()[Event.ZERO_4K] == 8 * 512  # no chunk zeroed twice
    assert g.count_states(0, 8 * M2) == {SeptState.MAPPED: 4096}


def test_choice_demote_of_partly_accepted_2m_forgets_the_counter():
    # model choice (docs/tdx.md, Modelling choices): the children of a partly
    # accepted 2 MiB leaf are all PENDING and are zeroed again when accepted
    g = TdxGuest(G1, initial="pending")
    g.set_interrupts(0, after=10)
    assert g.accept(0, 1).interrupted
    r = g.accept(5 * K4, 0)        # 4 KiB request inside a PENDING 2 MiB leaf
    assert r.exited and (r.req_level, r.err_level, r.err_state, r.err_is_leaf) == (0, 1, 2, True)
    assert g.serve_exit(r).name == "DEMOTE"
    assert g.entry(0, 1).state == SeptState.NL_MAPPED
    assert g.accept(5 * K4, 0).rax == 0
    assert g.count_states(0, M2) == {SeptState.PENDING: 511, SeptState.MAPPED: 1}


def test_vmm_refuse_policy():
    g = TdxGuest(G1, host=Host("never-resolve"))
    path = g.accept_path("linux")
    # docs/changes-0.2.md: an ACCEPT exit the host never serves now hangs the
    # guest after hang_limit exits (GuestHung, fatal kind HUNG), where 0.1's
    # VMM_REFUSE raised HostError
    with pytest.raises(GuestHung):
        path(0, M2)
    assert g.fatal.kind == FatalKind.HUNG and "host" in g.fatal.message
    # a dead guest runs no further accepts (docs/changes-0.2.md): revive it
    g.clear_fatal()
    g.set_host(Host("aug-4k"))
    path(0, M2)
    assert path.stats.host_aug_4k == 512


def test_table_accept_memory_drives_linux_path():
    g = TdxGuest(G1, cost=Cost("count"))
    path = g.accept_path("linux")
    t = Table(M2, 0, G1 // M2 // 8, accept=path)
    t.mark(0, G1 // M2)
    res = t.accept_detailed(0, 4 * M2)
    # the guard unit: an end on a unit boundary extends by one unit
    assert res.units == 5 and res.runs == 1
    assert g.count_states(0, 8 * M2) == {SeptState.MAPPED: 5 * 512, SeptState.FREE: 3 * 512}
    assert path.stats.calls == 1 and path.stats.success_2m == 5
    # the table never asks twice for an accepted unit, so no panic
    t.accept(0, 2 * M2)
    assert path.stats.calls == 1
    # OVMF path as primitive too
    t2 = Table(M2, 0, G1 // M2 // 8, accept=g.accept_path("ovmf"))
    t2.mark(8, 16)
    t2.accept(8 * M2, 6 * M2)
    assert g.count_states(8 * M2, 16 * M2) == {SeptState.MAPPED: 7 * 512, SeptState.FREE: 512}


def test_table_failure_leaves_units_unaccepted():
    g = TdxGuest(G1)
    path = g.accept_path("linux")
    g.accept_path("linux")(2 * M2, 3 * M2)   # someone accepted unit 2 behind the table's back
    t = Table(M2, 0, G1 // M2 // 8, accept=path)
    t.mark(0, 8)
    with pytest.raises(GuestPanic):
        t.accept(0, 4 * M2)
    assert t.unaccepted_units == 8


def test_concurrent_vcpus_disjoint_ranges():
    g = TdxGuest(16 * G1, vcpus=4, backing="4K", cost=Cost("count", vcpus=4))
    path = g.accept_path("linux")
    errors = []

    def run(v):
        try:
            path(v * 4 * G1, (v + 1) * 4 * G1 - 64 * M2, v)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(v,)) for v in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    per = (4 * G1 - 64 * M2) // K4
    assert g.count_states() == {SeptState.MAPPED: 4 * per, SeptState.FREE: 4 * 64 * 512}
    for v in range(4):
        assert g.cost.counts(v)[Event.AUG_4K] == per
    assert path.stats.success_4k == 4 * per


def test_concurrent_table_accepts():
    g = TdxGuest(8 * G1, vcpus=2)
    path = g.accept_path("linux")
    t = Table(M2, 0, 8 * G1 // M2 // 8, accept=path)
    t.mark(0, 8 * G1 // M2)

    def run(v):
        for k in range(v, 1024, 2):
            t.accept(k * 8 * M2, 8 * M2, v)

    threads = [threading.Thread(target=run, args=(v,)) for v in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert t.unaccepted_units == 0
    assert g.count_states() == {SeptState.MAPPED: 8 * G1 // K4}
    assert path.stats.failures == 0


@pytest.mark.parametrize("backing", ["2M", "4K"])
def test_prefaulted_guest_with_partial_last_region(backing):
    from _tdx_both import Both
    mem = 3 * M2 + 40 * K4
    b = Both(mem, backing=backing, initial="pending")
    b.check_same(0, mem, [0, 3 * M2, 3 * M2 + 39 * K4])
    assert b.path("linux", 0, mem) == (True, True)
    b.check_same(0, mem, [0, 3 * M2, 3 * M2 + 39 * K4])
    assert b.c.path_stats("linux").exits == 0
    assert b.c.count_states() == {SeptState.MAPPED: mem // K4}
    assert b.c.entry(3 * M2, 1).state == SeptState.NL_MAPPED
    assert (b.c.entry(0, 1).state == SeptState.MAPPED) == (backing == "2M")
