"""TDX model behaviour pinned to the numbers of the TDX module 1.5 source
(tdx_error_codes_defs.h, tdg_mem_page_accept.c, td_ept_violation.c) and Linux:
ACCEPT statuses, VIOLATION exits and their extended exit qualification,
#VE / #DF / pending exits, TD_CTLS controls, MapGPA, the build phase, bad
arguments, contents (zeroing) and host physical addresses, scale."""
import pytest

from unaccepted import (Cost, Event, FatalKind, GuestPanic, GuestTerminated, Host, HostAction,
                        HostError, InvalidArgument, InvalidState, OutOfRange, TouchOutcome)
from unaccepted.errors import Misaligned
from unaccepted.tdx import (AccessOutcome, Level, SeptState, TdxGuest, TdxStatus, VmcallStatus,
                            TDCS_CONFIG_FLAGS, TDCS_TD_CTLS)

K4, M2, G1 = 4096, 2 << 20, 1 << 30
SHARED = 1 << 51


def test_numeric_codes():
    assert TdxStatus.PAGE_ALREADY_ACCEPTED == 0x00000B0A00000000
    assert TdxStatus.PAGE_SIZE_MISMATCH == 0xC0000B0B00000000
    assert TdxStatus.OPERAND_INVALID == 0xC000010000000000
    assert TdxStatus.OPERAND_BUSY == 0x8000020000000000
    assert TdxStatus.GPA_RANGE_NOT_BLOCKED == 0xC0000B0600000000
    assert TdxStatus.TLB_TRACKING_NOT_DONE == 0xC0000B0800000000
    assert TdxStatus.EPT_ENTRY_STATE_INCORRECT == 0xC0000B0D00000000
    assert TdxStatus.HOST_PRIORITY_BUSY_TIMEOUT == 0x9000020500000000
    assert not TdxStatus.PAGE_ALREADY_ACCEPTED.is_error and TdxStatus.PAGE_SIZE_MISMATCH.is_error
    assert [SeptState.FREE, SeptState.PENDING, SeptState.MAPPED, SeptState.BLOCKED,
            SeptState.PENDING_BLOCKED, SeptState.REMOVED] == [0, 2, 4, 1, 3, 5]
    assert (SeptState.NL_MAPPED, SeptState.NL_BLOCKED) == (0x84, 0x81)
    assert TDCS_TD_CTLS == 0x1110000300000017 and TDCS_CONFIG_FLAGS == 0x1110000300000016


def test_accept_operand_checks():
    g = TdxGuest(4 * G1)
    assert g.accept(0, 2).rax == 0xC000010000000001            # 1 GiB in module 1.5
    assert g.accept(K4, 1).rax == 0xC000010000000001           # misaligned 2 MiB
    assert g.accept(rcx=M2 | 0x10).rax == 0xC000010000000001   # reserved bits 11:3
    assert g.accept(rcx=M2 | (1 << 55)).rax == 0xC000010000000001
    assert g.accept(SHARED | M2, 1).rax == 0xC000010000000001  # shared GPA
    assert g.accept(M2, 1, rax=6 | (1 << 16)).rax == 0xC000010000000000  # version, operand RAX
    with pytest.raises(InvalidArgument):
        g.accept(0, 0, rax=7)                                   # not the ACCEPT leaf
    with pytest.raises(InvalidArgument):
        g.accept(0, 0, vcpu=1)
    g48 = TdxGuest(G1, gpaw=48)
    assert g48.accept(1 << 47, 1).rax == 0xC000010000000001    # shared bit of GPAW 48


def test_violation_exit_and_reexecution():
    g = TdxGuest(G1, cost=Cost("count"))
    r = g.accept(M2, 1)
    assert r.exited and r.exit_reason == 48 and r.eeq_type == 1 and r.rax == 6
    # type 1 in 3:0; req 1 | err_level 1 << 3 | FREE << 6 | not a leaf << 14
    assert r.exit_qualification == 1 | ((1 | 1 << 3) << 32)
    assert r.gpa == M2
    assert g.serve_exit(r).name == "AUG_2M"
    assert g.state(M2) == SeptState.PENDING
    r = g.accept(M2, 1)
    assert r.rax == 0 and r.chunks_zeroed == 512
    assert g.accept(M2, 1).rax == 0x00000B0A00000001
    assert g.accept(M2 + 5 * K4, 0).rax == 0x00000B0A00000001   # carries the actual level
    c = g.cost.counts()
    assert c[Event.TDCALL_ACCEPT] == 4 and c[Event.TD_EXIT] == 1 and c[Event.ZERO_4K] == 512


def test_exit_info_for_blocked_and_pending_leaves():
    g = TdxGuest(G1)
    g.aug(0, 1)
    r = g.accept(3 * K4, 0)         # 4 KiB inside a 2 MiB PENDING leaf
    assert r.exit_qualification >> 32 == 0 | 1 << 3 | 2 << 6 | 1 << 14
    g.block(0, 1)
    r = g.accept(0, 1)
    assert (r.req_level, r.err_level, r.err_state, r.err_is_leaf) == (1, 1, 3, True)
    # the VMM does not undo its own blocking.  0.1 raised HostError; in 0.2
    # KVM leaves the exit unserved (the guest re-executes into it, and hangs
    # after hang_limit exits: docs/changes-0.2.md)
    assert g.serve_exit(r) == HostAction.NOTHING
    assert g.state(0, 1) == SeptState.PENDING_BLOCKED


def test_already_accepted_never_zeroes():
    g = TdxGuest(G1)
    g.accept_path("linux")(0, M2)
    g.access(K4, write=True)
    assert g.access(K4).data_nonzero
    assert g.accept(0, 1).status == TdxStatus.PAGE_ALREADY_ACCEPTED
    assert g.access(K4).data_nonzero
    assert g.count_nonzero(0, M2) == 1


def test_remove_aug_gives_fresh_zeroed_page():
    g = TdxGuest(G1, backing="4K")
    path = g.accept_path("linux")
    path(0, M2)
    g.access(9 * K4, write=True)
    hpa = g.entry(9 * K4).hpa
    assert g.remove(9 * K4).code == TdxStatus.GPA_RANGE_NOT_BLOCKED
    assert g.block(9 * K4).ok
    assert g.remove(9 * K4).code == TdxStatus.TLB_TRACKING_NOT_DONE
    g.track()
    res = g.remove(9 * K4)
    assert res.ok and res.hpa == hpa
    assert g.aug(9 * K4).ok
    e = g.entry(9 * K4)
    assert e.state == SeptState.PENDING and e.hpa != hpa and e.data_nonzero  # host garbage
    assert g.access(9 * K4).outcome == AccessOutcome.EXIT    # the guest sees it pending
    assert g.accept(9 * K4).rax == 0
    assert g.entry(9 * K4).hpa != hpa and not g.access(9 * K4).data_nonzero
    # the substituted page breaks PROMOTE's contiguity rule
    g.block(0, 1)
    g.track()
    assert g.promote(0, 1).code == TdxStatus.EPT_INVALID_PROMOTE_CONDITIONS


def test_demote_promote_round_trip():
    g = TdxGuest(G1)
    g.accept_path("linux")(0, M2)
    hpa = g.entry(0).hpa
    assert g.demote(0, 1).code == TdxStatus.GPA_RANGE_NOT_BLOCKED
    g.block(0, 1)
    assert g.demote(0, 1).code == TdxStatus.TLB_TRACKING_NOT_DONE
    g.track()
    assert g.demote(0, 1).ok
    assert g.count_states(0, M2) == {SeptState.MAPPED: 512}
    assert g.entry(5 * K4).hpa == hpa + 5 * K4
    assert g.accept(5 * K4).rax == 0x00000B0A00000000
    assert g.accept(0, 1).rax == 0xC0000B0B00000001          # split: size mismatch
    assert g.promote(0, 1).code == TdxStatus.GPA_RANGE_NOT_BLOCKED
    g.block(0, 1)
    g.track()
    assert g.promote(0, 1).ok
    e = g.entry(0)
    # model choice (docs/tdx.md): PROMOTE yields an unblocked leaf
    assert (e.state, e.level, e.hpa) == (SeptState.MAPPED, 1, hpa)


def test_pending_touch_ve_and_df():
    g = TdxGuest(G1, pending_ve_disable=False, initial="pending", cost=Cost("count"))
    r = g.access(3 * K4 + 8)
    assert (r.outcome, r.vector, r.exit_reason) == (AccessOutcome.VE, 20, 48)
    r = g.access(5 * K4, write=True)
    assert (r.outcome, r.vector) == (AccessOutcome.DF, 8)
    ve = g.veinfo_get()
    assert ve.status == 0 and ve.valid == 0xFFFFFFFF and ve.exit_reason == 48
    assert ve.gpa == 3 * K4 + 8 and ve.exit_qualification == 1
    assert g.veinfo_get().status == 0xC000070400000000
    assert g.access(5 * K4, write=True).outcome == AccessOutcome.VE
    assert g.cost.counts()[Event.VE] == 3


def test_pending_touch_with_ve_disabled_exits_type_6():
    g = TdxGuest(G1, initial="pending", cost=Cost("count"))
    r = g.access(0)
    assert r.outcome == AccessOutcome.EXIT and r.eeq_type == 6 and r.exit_reason == 48
    with pytest.raises(HostError):      # KVM: guest access before accept -> VM stops
        g.serve_exit(r)
    assert g.cost.counts()[Event.TD_EXIT] == 1


@pytest.mark.parametrize("write", [False, True])
def test_free_touch_plain_exit_then_aug_then_pending(write):
    g = TdxGuest(G1, backing="4K", pending_ve_disable=False)
    r = g.access(7 * K4, write)
    assert r.outcome == AccessOutcome.EXIT and r.eeq_type == 0 and r.state == SeptState.FREE
    assert r.exit_qualification == (2 if write else 1) and r.extended_exit_qualification == 0
    assert g.serve_exit(r).name == "AUG_4K"
    assert g.access(7 * K4, write).outcome == AccessOutcome.VE
    assert g.veinfo_get().exit_qualification == (2 if write else 1)
    g2 = TdxGuest(G1)                       # 2 MiB backing: the VMM maps 2 MiB
    assert g2.serve_exit(g2.access(7 * K4, write)).name == "AUG_2M"
    r = g2.access(7 * K4, write)
    assert r.eeq_type == 6 and r.extended_exit_qualification == 6


def test_td_ctls_controls():
    g = TdxGuest(G1, pending_ve_disable=False)
    assert g.vm_rd(TDCS_TD_CTLS) == (0, 0)
    # model choice (docs/tdx.md): NOT_WRITABLE without FLEXIBLE_PENDING_VE
    assert g.vm_wr(TDCS_TD_CTLS, 1, 1)[0] == 0xC0000C0100000000      # not flexible
    g2 = TdxGuest(G1, pending_ve_disable=False, flexible_pending_ve=True, initial="pending")
    assert g2.vm_rd(TDCS_CONFIG_FLAGS) == (0, 2)
    assert g2.access(0).outcome == AccessOutcome.VE
    assert g2.vm_wr(TDCS_TD_CTLS, 1, 1) == (0, 0)
    assert g2.pending_ve_disable
    assert g2.access(K4).outcome == AccessOutcome.EXIT
    # model choice (docs/tdx.md): VALUE_NOT_VALID for bits other than bit 0
    assert g2.vm_wr(TDCS_TD_CTLS, 2, 2)[0] == 0xC0000C0300000000     # unmodelled bit
    assert g2.vm_wr(TDCS_CONFIG_FLAGS, 0, 1)[0] == 0xC0000C0100000000
    assert g2.vm_rd(0x1234)[0] == 0xC0000C0000000000


def test_map_gpa_statuses():
    g = TdxGuest(G1)
    assert g.tdvmcall(0, 0x10001, SHARED | 0x800, K4).r10 == VmcallStatus.ALIGN_ERROR
    assert g.tdvmcall(0, 0x10001, SHARED, 0).r10 == VmcallStatus.INVALID_OPERAND
    assert g.tdvmcall(0, 0x10001, SHARED - K4, 2 * K4).r10 == VmcallStatus.INVALID_OPERAND
    assert g.tdvmcall(0, 0x10001, SHARED | G1, K4).r10 == VmcallStatus.INVALID_OPERAND
    assert g.tdvmcall(0, 0x10002, 0, K4).r10 == VmcallStatus.SUBFUNC_UNSUPPORTED
    assert g.tdvmcall(1, 0x10001, 0, K4).r10 == VmcallStatus.SUBFUNC_UNSUPPORTED
    r = g.tdvmcall(0, 0x10001, SHARED, 8 * M2)
    assert (r.r10, r.chunks) == (0, 8)


def test_map_gpa_checks_the_range_before_the_alignment():
    # KVM tdx_map_gpa: an empty, wrapping, past-GPAW or shared-bit-crossing
    # range is INVALID_OPERAND even when GPA or size is misaligned too
    g = TdxGuest(G1)
    assert g.tdvmcall(0, 0x10001, SHARED | 0x800, 0).r10 == VmcallStatus.INVALID_OPERAND
    assert g.tdvmcall(0, 0x10001, SHARED - K4, K4 + 0x800).r10 == VmcallStatus.INVALID_OPERAND
    assert g.tdvmcall(0, 0x10001, 2 * SHARED - 0x800, K4).r10 == VmcallStatus.INVALID_OPERAND
    assert g.tdvmcall(0, 0x10001, SHARED | 0x800, K4).r10 == VmcallStatus.ALIGN_ERROR


def test_map_gpa_chunks_are_2m_long_from_the_start():
    # KVM (TDX_MAP_GPA_MAX_LEN): each step converts 2 MiB from where the last
    # stopped, whatever the alignment; RETRY's R11 is start + k * 2 MiB
    g = TdxGuest(G1)
    r = g.tdvmcall(0, 0x10001, SHARED | K4, 4 * M2)
    assert (r.r10, r.chunks) == (0, 4)
    assert g.entry(K4).shared and g.entry(4 * M2).shared and not g.entry(4 * M2 + K4).shared
    g.set_interrupts(0, after=1)
    r = g.tdvmcall(0, 0x10001, 8 * M2 + 3 * K4, 2 * M2 + K4)
    assert (r.r10, r.r11, r.chunks) == (1, 8 * M2 + 3 * K4 + M2, 1)
    r = g.tdvmcall(0, 0x10001, 8 * M2 + 3 * K4 + M2, M2 + K4)
    assert (r.r10, r.chunks) == (0, 2)


def test_map_gpa_retry_and_conversion_order():
    g = TdxGuest(G1, cost=Cost("count"))
    g.accept_path("linux")(0, 8 * M2)
    g.set_interrupts(0, after=2)
    r = g.tdvmcall(0, 0x10001, SHARED | M2, 4 * M2)
    assert r.r10 == VmcallStatus.RETRY and r.r11 == SHARED | 3 * M2 and r.chunks == 2
    g.set_interrupts(0, after=1, period=1)
    assert g.map_gpa(M2, 5 * M2, shared=True) == VmcallStatus.SUCCESS
    g.set_interrupts(0)
    # private -> shared: the VMM removed the private pages
    assert g.count_states(M2, 5 * M2) == {SeptState.FREE: 4 * 512}
    assert g.entry(M2).shared and not g.entry(0).shared
    assert g.access(SHARED | 2 * M2).outcome == AccessOutcome.OK
    assert g.access(SHARED).outcome == AccessOutcome.EXIT
    # shared -> private: accepting before MapGPA gets no help from the VMM.
    # docs/changes-0.2.md: KVM refusing the exit (UA_E_HOST) stops the TD,
    # fatal kind TERMINATED, and the path reports that death (0.1: HostError)
    path = g.accept_path("linux")
    with pytest.raises(GuestTerminated):
        path(M2, 2 * M2)
    assert g.fatal.kind == FatalKind.TERMINATED
    assert g.map_gpa(M2, 5 * M2, shared=False) == VmcallStatus.SUCCESS
    g.clear_fatal()     # a dead guest runs no further accepts (docs/changes-0.2.md)
    g.accept_path("linux")(M2, 5 * M2)
    assert g.count_states(0, 8 * M2) == {SeptState.MAPPED: 8 * 512}
    assert g.count_nonzero(0, 8 * M2) == 0


def test_map_gpa_partial_region_splits():
    g = TdxGuest(G1)
    g.accept_path("linux")(0, M2)
    g.map_gpa(4 * K4, 8 * K4, shared=True)
    assert g.entry(0, 1).state == SeptState.NL_MAPPED
    assert g.count_states(0, M2) == {SeptState.MAPPED: 508, SeptState.FREE: 4}


def test_build_phase_add_and_finalize():
    g = TdxGuest(G1, finalized=False)
    assert not g.finalized
    with pytest.raises(InvalidState):
        g.accept(0, 0)
    assert g.aug(M2, 1).ok                 # AUG runs before finalize (see below)
    assert g.state(M2) == SeptState.PENDING
    assert g.add(0x800000 + K4, data_nonzero=True).ok
    assert g.add(0x800000 + K4).code == TdxStatus.EPT_ENTRY_STATE_INCORRECT
    assert g.add(M2, 1).code == TdxStatus.OPERAND_INVALID
    assert g.finalize().ok and g.finalized
    assert g.add(0x800000).code == TdxStatus.OP_STATE_INCORRECT
    r = g.access(0x800000 + K4)
    assert r.outcome == AccessOutcome.OK and r.data_nonzero       # launch data, accepted
    path = g.accept_path("linux")
    path(0, 0x800000)
    path(0xA00000, G1)
    # the launch page's 2 MiB holds a 4 KiB table: Linux accepts the other
    # 511 pages one by one and would panic on the ADDed one
    with pytest.raises(GuestPanic):
        path(0x800000, 0xA00000)
    assert g.state(0x800000 + K4) == SeptState.MAPPED


def test_importing_remove_leaves_removed():
    g = TdxGuest(G1)
    g.aug(0, 1)
    g.block(0, 1)
    g.track()
    g.set_importing(True)
    assert g.remove(0, 1).ok
    assert g.state(0) == SeptState.REMOVED
    assert g.accept(0, 1).rax == 0xC0000B0B00000001     # the REMOVED quirk
    assert g.aug(0, 1).ok


def test_bad_arguments_are_typed():
    g = TdxGuest(G1)
    with pytest.raises(OutOfRange):
        g.aug(G1, 0)
    with pytest.raises(OutOfRange):
        g.entry(G1)
    with pytest.raises(InvalidArgument):
        g.aug(0, vcpu=5)
    with pytest.raises(InvalidArgument):
        g.entry(0, level=4)
    with pytest.raises(InvalidState):
        g.entry(0, level=0)             # no 4 KiB table in a FREE 2 MiB entry
    with pytest.raises(InvalidState):
        g.set_lock(0, 0)
    with pytest.raises(Misaligned):
        g.count_states(1, K4)
    with pytest.raises(OutOfRange):
        g.access(1 << 60)
    with pytest.raises(InvalidArgument):
        g.accept(-1, 0)
    with pytest.raises(InvalidArgument):
        g.accept(0, 0, vcpu=-1)
    with pytest.raises(InvalidArgument):
        g.entry(0, level=1 << 40)
    with pytest.raises(Misaligned):
        g.accept(0x10, 0)                   # not expressible as GPA | level
    assert g.accept(0, 9).rax == 0xC000010000000001      # level 9 sets reserved bit 3
    with pytest.raises(InvalidArgument):
        g.set_interrupts(0, after=-1)
    with pytest.raises(InvalidArgument):
        TdxGuest(G1, backing="1G")
    with pytest.raises(InvalidArgument):
        TdxGuest(G1, gpaw=40)
    with pytest.raises(Misaligned):
        TdxGuest(G1 + 1)
    with pytest.raises(OutOfRange):
        TdxGuest((1 << 51) + M2)            # RAM past the shared bit
    path = g.accept_path("linux")
    with pytest.raises(Misaligned):
        path(1, K4)
    with pytest.raises(InvalidArgument):
        path(0, K4, vcpu=3)
    # a range past the guest's RAM is a bad argument, as on SNP
    # (docs/changes-0.2.md; 0.1 ran the ACCEPT and the VMM refused it)
    with pytest.raises(OutOfRange):
        path(G1, G1 + M2)
    assert g.fatal is None
    # nothing above changed the SEPT
    assert g.count_states() == {SeptState.FREE: G1 // K4}


def test_unaligned_memory_size_last_region():
    g = TdxGuest(M2 + 16 * K4)
    path = g.accept_path("linux")
    path(0, M2 + 16 * K4)
    assert g.count_states() == {SeptState.MAPPED: 512 + 16}
    assert path.stats.host_aug_4k == 16     # the last region cannot take a 2 MiB page


def test_large_guests_are_sparse():
    g = TdxGuest(64 << 40)
    assert g.memory_usage < 1 << 20
    g.accept_path("linux")((64 << 40) - 4 * M2, 64 << 40)
    assert g.count_states((64 << 40) - 4 * M2, 64 << 40) == {SeptState.MAPPED: 2048}
    assert g.memory_usage < 1 << 20
    g2 = TdxGuest(256 * G1)
    g2.accept_path("linux")(0, 256 * G1)
    regions = 256 * G1 // M2
    assert g2.memory_usage <= 16 * regions + (1 << 16)


def test_launch_pages_start_mapped():
    g = TdxGuest(G1, launch=[(0x800000, 0x820000)], cost=Cost("count"))
    assert g.finalized
    assert g.count_states(0x800000, 0x820000) == {SeptState.MAPPED: 32}
    assert g.count_states() == {SeptState.MAPPED: 32, SeptState.FREE: G1 // K4 - 32}
    assert g.touch(0x800000 + 5 * K4).outcome == TouchOutcome.SERVED
    assert g.access(0x800000 + 5 * K4).data_nonzero           # measured launch data
    # the implicit SEPT.ADD is a model choice (docs/tdx.md): ADD adds its table
    assert g.cost.counts()[Event.SEAMCALL] == 32 + 1 + 1      # ADDs, SEPT.ADD, FINALIZE
    with pytest.raises(InvalidArgument):
        TdxGuest(G1, launch=[(0, K4), (0, K4)])                 # ADD twice


def test_linux_sept_ve_policy():
    assert TdxGuest(G1).linux_disable_sept_ve() == ""
    with pytest.raises(GuestPanic, match="SEPT #VE has to be disabled"):
        TdxGuest(G1, pending_ve_disable=False).linux_disable_sept_ve()
    dbg = TdxGuest(G1, pending_ve_disable=False, debug=True)
    assert dbg.linux_disable_sept_ve() == "TD misconfiguration: SEPT #VE has to be disabled"
    flex = TdxGuest(G1, pending_ve_disable=False, flexible_pending_ve=True)
    assert not flex.pending_ve_disable
    assert flex.linux_disable_sept_ve() == ""
    assert flex.pending_ve_disable


def test_linux_sept_ve_policy_keeps_ve_for_flexible_debug_td():
    # arch/x86/coco/tdx/tdx.c disable_sept_ve(): with FLEXIBLE_PENDING_VE a
    # DEBUG TD keeps SEPT #VEs enabled ("for splats"); no TDG.VM.WR, no message
    dbg = TdxGuest(G1, pending_ve_disable=False, flexible_pending_ve=True, debug=True,
                   cost=Cost("count"))
    assert dbg.linux_disable_sept_ve() == ""
    assert dbg.cost.counts()[Event.TDCALL_OTHER] == 2     # VM.RD of CONFIG_FLAGS, TD_CTLS
    assert not dbg.pending_ve_disable
    # one already disabled by firmware stays disabled
    pre = TdxGuest(G1, pending_ve_disable=True, flexible_pending_ve=True, debug=True)
    assert pre.linux_disable_sept_ve() == ""
    assert pre.pending_ve_disable


def test_linux_touch_of_unaccepted_memory_is_fatal():
    g = TdxGuest(G1, pending_ve_disable=False)
    g.accept_path("linux")(0, M2)
    assert g.touch(K4, write=True).outcome == TouchOutcome.SERVED
    # docs/changes-0.2.md: touch returns the outcome (fatal ones are also in
    # guest.fatal) instead of raising GuestPanic / HostError
    r = g.touch(3 * M2)                # FREE: the VMM AUGs, then the #VE
    assert r.outcome == TouchOutcome.PANIC and r.vector == 20 and r.exits == 1
    assert g.fatal.kind == FatalKind.PANIC
    assert "Unexpected EPT-violation on private memory" in g.fatal.message
    g2 = TdxGuest(G1)
    r = g2.touch(3 * M2)
    assert r.outcome == TouchOutcome.TERMINATED
    assert g2.fatal.kind == FatalKind.TERMINATED and "before accepting" in g2.fatal.message


def test_docs_example_runs():
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "docs" / "tdx.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "docs/tdx.md", "exec"), {})


def test_map_gpa_no_progress_retries():
    g = TdxGuest(G1, cost=Cost("count"))
    g.set_host(Host("map-gpa-stall", count=2))
    r = g.tdvmcall(0, 0x10001, SHARED | M2, M2)
    assert (r.r10, r.r11, r.chunks) == (1, SHARED | M2, 0)
    # Linux re-issues; one more stall, then progress
    assert g.map_gpa(M2, 2 * M2, shared=True) == VmcallStatus.SUCCESS
    assert g.cost.counts()[Event.TDVMCALL] == 3
    # three RETRYs in a row without progress: Linux gives up
    g.set_host(Host("map-gpa-stall", count=3))
    with pytest.raises(HostError):
        g.map_gpa(4 * M2, 5 * M2, shared=True)
    assert not g.entry(4 * M2).shared
    g.set_host(Host("map-gpa-stall", count=0))
    assert g.map_gpa(4 * M2, 5 * M2, shared=True) == VmcallStatus.SUCCESS


def test_other_tdcalls_are_charged_to_their_vcpu():
    from unaccepted import Cost, Event, TdxGuest

    cost = Cost("tdx-spr-kvm", vcpus=2)
    g = TdxGuest(1 << 30, vcpus=2, cost=cost)
    g.vm_rd(0x1110000300000017, vcpu=1)                  # TDCS_TD_CTLS
    g.vm_wr(0x1110000300000016, 0, vcpu=1)               # CONFIG_FLAGS: not writable
    g.veinfo_get(vcpu=0)
    assert cost.counts(1) == {Event.TDCALL_OTHER: 2}
    assert cost.counts(0) == {Event.TDCALL_OTHER: 1}
    assert cost.cycles(1) == 600
