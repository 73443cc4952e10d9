"""Page State Change (hypervisor side and guest checks) and the three SNP
accept paths: exit/PVALIDATE/fallback counts for 2M vs 4K backing, partial
completion, termination encodings, hangs, and the core table driving them.

0.2 (docs/changes-0.2.md): host misbehaviour is a `Host` (named behaviour),
the termination record is `guest.fatal`, a path's statistics are the
`path.stats` property (pvalidate_4k/2m -> accept_4k/2m, psmash ->
host_psmash), and a hang is recorded as a fatal HUNG."""
import threading
from collections import Counter

import pytest

from unaccepted import Cost, Event, FatalKind, Host, Table
from unaccepted.errors import (GuestHung, GuestTerminated, InvalidArgument, Misaligned,
                               OutOfRange)
from unaccepted.snp import (MSR_PSC_RESP, Access, MSR_PSC_RESP_ERROR, PSC_ERROR_GENERIC,
                            PSC_ERROR_INVALID_ENTRY, PSC_ERROR_INVALID_HDR, Fault, PageSize,
                            PscCheck, PscEntry, PscOp, SnpGuest, msr_psc_request,
                            parse_psc_buffer, psc_buffer, psc_guest_check)
from unaccepted.testing import snp_reference as ref

K4, M2, G1 = 4096, 2 << 20, 1 << 30


def counts(cost):
    return Counter({k: v for k, v in cost.counts().items() if v})


# ---------------------------------------------------------------- hypervisor
def test_ghcb_psc_processes_all_entries_and_marks_cur_page():
    g = SnpGuest(8 << 20, asid=3)
    buf = psc_buffer([PscEntry(0, PscOp.PRIVATE, 1), PscEntry(M2 // K4 + 5, PscOp.PRIVATE, 0),
                      PscEntry(M2 // K4 + 6, PscOp.SHARED, 0)])
    r = g.psc_ghcb(buf)
    assert (r.sw_exitinfo1, r.sw_exitinfo2, r.entries_done, r.pages_done) == (0, 0, 3, 514)
    cur, end, rsvd, ents = parse_psc_buffer(buf)
    assert (cur, end, rsvd) == (3, 2, 0)
    assert [e.cur_page for e in ents] == [512, 1, 1]
    e = g.rmp(0)
    assert e.assigned and e.page_size == 1 and e.asid == 3 and not e.validated
    assert g.rmp(M2 + 5 * K4).assigned and not g.rmp(M2 + 6 * K4).assigned


def test_ghcb_psc_errors():
    g = SnpGuest(8 << 20)
    buf = psc_buffer([PscEntry(0)], end_entry=253, capacity=253)
    assert g.psc_ghcb(buf).sw_exitinfo2 == PSC_ERROR_INVALID_HDR == (1 << 32) | 1
    for bad in (PscEntry(0, PscOp.PRIVATE, 0, cur_page=2), PscEntry(1, PscOp.PRIVATE, 1),
                PscEntry(0, 0), PscEntry(0, 5), PscEntry(0, PscOp.PRIVATE, 1, cur_page=513)):
        buf = psc_buffer([bad])
        assert g.psc_ghcb(buf).sw_exitinfo2 == PSC_ERROR_INVALID_ENTRY, bad
        assert parse_psc_buffer(buf)[0] == 0          # cur_entry stays at the bad entry
    # model choices (docs/snp.md †): unknown ops (0, 5) rejected as INVALID_ENTRY
    # above; a page past the guest is GENERIC; a short scratch area is a
    # GHCB-level INVALID_SCRATCH_AREA (KVM answers INVALID_HDR)
    buf = psc_buffer([PscEntry((8 << 20) // K4)])     # past the guest
    assert g.psc_ghcb(buf).sw_exitinfo2 == PSC_ERROR_GENERIC == 0x100 << 32
    r = g.psc_ghcb(bytearray(4))                       # scratch area too small
    assert (r.sw_exitinfo1, r.sw_exitinfo2) == (2, 3)
    r = g.psc_ghcb(psc_buffer([PscEntry(0)] * 3, end_entry=5))   # end beyond the buffer
    assert (r.sw_exitinfo1, r.sw_exitinfo2) == (2, 3)
    # immutable page: the host's RMPUPDATE fails -> generic error
    g.rmpupdate(0, assigned=True, immutable=True)
    assert g.psc_ghcb(psc_buffer([PscEntry(0)])).sw_exitinfo2 == PSC_ERROR_GENERIC


def test_ghcb_psc_hints_are_noops_and_cur_greater_than_end_is_success():
    g = SnpGuest(8 << 20)
    buf = psc_buffer([PscEntry(0, PscOp.PSMASH, 1), PscEntry(512, PscOp.UNSMASH, 1)])
    r = g.psc_ghcb(buf)
    assert (r.sw_exitinfo2, r.entries_done, r.pages_done) == (0, 2, 0)
    assert not g.rmp(0).assigned
    r = g.psc_ghcb(psc_buffer([PscEntry(0)], cur_entry=1, end_entry=0))
    assert (r.sw_exitinfo2, r.entries_done) == (0, 0)


def test_partial_completion_entries_and_pages():
    g = SnpGuest(16 << 20, host=Host("psc-partial", psc_max_entries=2))
    buf = psc_buffer([PscEntry(i) for i in range(5)])
    exits = 0
    while parse_psc_buffer(buf)[0] <= parse_psc_buffer(buf)[1]:
        assert g.psc_ghcb(buf).entries_done <= 2
        exits += 1
    assert exits == 3
    # a 2M entry completed over several exits: cur_page advances, finished as 4K pages
    g = SnpGuest(16 << 20, host=Host("psc-partial", psc_max_pages=200))
    buf = psc_buffer([PscEntry(512, PscOp.PRIVATE, 1)])
    r = g.psc_ghcb(buf)
    assert (r.entries_done, r.pages_done) == (0, 200)
    assert parse_psc_buffer(buf)[3][0].cur_page == 200
    g.psc_ghcb(buf)
    g.psc_ghcb(buf)
    assert parse_psc_buffer(buf)[0] == 1 and parse_psc_buffer(buf)[3][0].cur_page == 512
    e = g.rmp(M2 + 300 * K4)
    assert e.assigned and e.page_size == 0      # done as 4K entries (KVM)


def test_msr_protocol():
    g = SnpGuest(8 << 20, asid=4)
    assert g.psc_msr(msr_psc_request(3, PscOp.PRIVATE)) == MSR_PSC_RESP == 0x015
    e = g.rmp(3 * K4)
    assert e.assigned and e.page_size == 0 and e.gpa == 3 * K4 and e.asid == 4
    assert g.psc_msr(msr_psc_request(3, PscOp.SHARED)) == 0x015
    assert not g.rmp(3 * K4).assigned
    assert g.psc_msr(msr_psc_request(3, 3)) == MSR_PSC_RESP_ERROR == (1 << 63) | 0x015
    # past the guest: the error response is a model choice (docs/snp.md †)
    assert g.psc_msr(msr_psc_request((8 << 20) // K4, 1)) == MSR_PSC_RESP_ERROR
    with pytest.raises(InvalidArgument):
        g.psc_msr(0x100)            # not a PSC request
    # an assigned 2M entry: the host PSMASHes, then updates the 4K page
    g.make_private(M2, M2, PageSize.SIZE_2M)
    assert g.psc_msr(msr_psc_request(M2 // K4 + 1, PscOp.SHARED)) == 0x015
    assert g.rmp(M2).assigned and g.rmp(M2).page_size == 0 and not g.rmp(M2 + K4).assigned


def test_guest_check():
    hdr = psc_buffer([PscEntry(0)] * 4, cur_entry=4, end_entry=3)
    assert psc_guest_check(0, 3, hdr) == PscCheck.OK
    assert psc_guest_check(0, 3, hdr, sw_exitinfo2=PSC_ERROR_GENERIC) == PscCheck.ERROR
    assert psc_guest_check(0, 3, psc_buffer([], cur_entry=4, end_entry=3, reserved=1)) == \
        PscCheck.RESERVED
    assert psc_guest_check(0, 3, psc_buffer([], cur_entry=1, end_entry=4)) == PscCheck.END_GREW
    assert psc_guest_check(2, 3, psc_buffer([], cur_entry=1, end_entry=3)) == \
        PscCheck.CUR_BACKWARDS


# ---------------------------------------------------------------- Linux path
@pytest.mark.parametrize("backing", ["2M", "4K"])
def test_linux_counts_2m_vs_4k_backing(backing):
    cost = Cost("count")
    g = SnpGuest(2 * G1, backing=backing, cost=cost)
    p = g.accept_path("linux")
    p.accept(G1, 2 * G1)
    st, c = p.stats, counts(cost)
    assert st.psc_requests == st.psc_exits == 512 // 64 == c[Event.VMGEXIT_PSC]
    assert st.accept_2m == 512 == c[Event.PVALIDATE_2M]
    if backing == "2M":
        assert (st.accept_4k, st.fallbacks) == (0, 0)
        assert c[Event.RMPUPDATE_2M] == 512 and c[Event.RMPUPDATE_4K] == 0
    else:
        assert (st.accept_4k, st.fallbacks) == (512 * 512, 512)
        assert c[Event.RMPUPDATE_4K] == 512 * 512 and c[Event.RMPUPDATE_2M] == 0
    assert st.cache_touch_4k == c[Event.CACHE_TOUCH_4K] == G1 // K4
    assert c[Event.ACCEPT_CALL] == 1 and c[Event.NPF_EXIT] == 0
    assert g.count(G1, 2 * G1) == (G1 // K4, 0) and g.count(0, G1) == (0, 0)
    assert g.access(G1 + 12345).fault == Fault.NONE
    assert g.access(G1 - K4).fault == Fault.NPF


def test_linux_unaligned_range_uses_4k_entries():
    g = SnpGuest(16 << 20)
    p = g.accept_path("linux")
    p.accept(K4, 2 * M2 + 2 * K4)       # 511 x 4K, one 2M, 2 x 4K = 514 entries
    st = p.stats
    assert st.psc_requests == 9 and st.accept_2m == 1 and st.accept_4k == 513
    assert g.rmp(M2).page_size == 1 and g.rmp(K4).page_size == 0
    assert g.count() == ((2 * M2 + K4) // K4, 0)


def test_linux_partial_psc_reissues():
    g = SnpGuest(G1, host=Host("psc-partial", psc_max_entries=5))
    p = g.accept_path("linux")
    p.accept(0, 128 << 20)                           # 64 entries in one descriptor
    assert p.stats.psc_requests == 1 and p.stats.psc_exits == 13     # ceil(64 / 5)
    assert g.count() == ((128 << 20) // K4, 0)


def test_linux_coherency_switch():
    g = SnpGuest(64 << 20, coherency_sfw_no=True)
    p = g.accept_path("linux")
    p.accept(0, 64 << 20)
    assert p.stats.cache_touch_4k == 0


@pytest.mark.parametrize("fault", ["psc-error", "psc-reserved", "psc-end-grow"])
def test_linux_terminates_on_bad_psc(fault):
    g = SnpGuest(64 << 20, host=Host(fault))
    p = g.accept_path("linux")
    with pytest.raises(GuestTerminated):
        p.accept(0, 8 << 20)
    t = g.fatal
    assert t.kind == FatalKind.TERMINATED and (t.reason_set, t.reason_code) == (1, 1)
    assert t.code == 0x11100
    assert g.count(0, 8 << 20)[0] == 0
    with pytest.raises(GuestTerminated):         # a dead guest accepts nothing more
        p.accept(16 << 20, 18 << 20)


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("kind, term", [("linux", (1, 1)), ("ovmf", (0, 0))])
def test_ghcb_level_errors_terminate(code, kind, term):
    g = SnpGuest(64 << 20, host=Host("ghcb-error", ghcb_error=code))
    r = g.psc_ghcb(psc_buffer([PscEntry(0)]))
    assert (r.sw_exitinfo1, r.sw_exitinfo2) == (2, code)
    with pytest.raises(GuestTerminated):
        g.accept_path(kind).accept(0, M2)
    t = g.fatal
    assert (t.reason_set, t.reason_code) == term


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6])
def test_ghcb_level_error_wins_over_psc_content_errors(code):
    """GHCB specification rev. 2, as KVM (arch/x86/kvm/svm/sev.c) implements
    it: GHCB-level input errors are reported *instead* of a PSC
    result (SW_EXITINFO1 = 2, SW_EXITINFO2 = GHCB_ERR_*).  The hypervisor
    validates the GHCB before it reads the scratch area, so a bad header,
    a bad entry or a short scratch area never masks the GHCB-level error."""
    g = SnpGuest(8 << 20, host=Host("ghcb-error", ghcb_error=code))
    for buf in (psc_buffer([PscEntry(0)], end_entry=253, capacity=253),   # INVALID_HDR
                psc_buffer([PscEntry(0, 0)]),                              # INVALID_ENTRY
                psc_buffer([PscEntry(0)] * 3, end_entry=5),                # end past the buffer
                bytearray(4)):                                             # no header at all
        r = g.psc_ghcb(buf)
        assert (r.sw_exitinfo1, r.sw_exitinfo2, r.entries_done, r.pages_done) == (2, code, 0, 0)
    assert not g.rmp(0).assigned


def test_policy_validation():
    with pytest.raises(InvalidArgument):
        Host("ghcb-error", ghcb_error=7)
    with pytest.raises(InvalidArgument):
        SnpGuest(M2, backing="1G")
    with pytest.raises(InvalidArgument):
        SnpGuest(M2, psc_max=3)
    # 0.2: each knob belongs to its named behaviour (docs/changes-0.2.md), so
    # 0.1's combination of partial completion and a GHCB error is refused
    with pytest.raises(InvalidArgument):
        Host("ghcb-error", ghcb_error=2, psc_max_entries=3)
    g = SnpGuest(M2, host=Host("psc-partial", psc_max_entries=3))
    assert g.host.psc_max_entries == 3 and g.host.behavior == "psc-partial"
    g.set_host(Host("ghcb-error", ghcb_error=2))
    assert g.host.ghcb_error == 2


@pytest.mark.parametrize("fault", ["psc-rewind", "psc-stall"])
def test_linux_spins_on_a_hypervisor_that_never_progresses(fault):
    # reporting the spin as GuestHung after hang_limit exits is a model choice
    # (docs/snp.md †); Linux itself would loop
    g = SnpGuest(64 << 20, host=Host(fault))
    p = g.accept_path("linux", hang_limit=50)
    with pytest.raises(GuestHung):
        p.accept(0, 8 << 20)
    # 0.2: the hang is recorded in the fatal record (was: no termination)
    assert p.stats.psc_exits == 50 and g.fatal.kind == FatalKind.HUNG


def test_linux_double_validation_terminates_with_pvalidate_reason():
    g = SnpGuest(64 << 20)
    g.launch_update(4 << 20, M2)                      # already validated at launch
    p = g.accept_path("linux")
    with pytest.raises(GuestTerminated):
        p.accept(0, 8 << 20)
    t = g.fatal
    assert (t.reason_set, t.reason_code, t.code, t.eax, t.gpa) == (1, 2, 0x21100, 255, 4 << 20)


def test_skipped_rmpupdate_makes_pvalidate_npf_and_the_guest_hangs():
    """Attack (c) of docs/snp.md: a hypervisor that answers PSC without RMPUPDATE."""
    cost = Cost("count")
    g = SnpGuest(64 << 20, host=Host("skip-rmpupdate"), cost=cost)
    p = g.accept_path("linux", hang_limit=5)
    with pytest.raises(GuestHung):
        p.accept(0, 4 << 20)
    # the PVALIDATE re-executes into the same NPF until hang_limit of them
    assert p.stats.npf_exits == 5 and counts(cost)[Event.NPF_EXIT] == 5
    # 0.2: the hang is recorded in the fatal record (was: no termination)
    assert g.count() == (0, 0) and g.fatal.kind == FatalKind.HUNG


def test_npf_sizem_is_resolved_by_psmash():
    g = SnpGuest(64 << 20)
    g.make_private(M2, M2, PageSize.SIZE_2M)          # host already backs 2M privately
    g.set_host(Host("skip-rmpupdate"))                # and ignores the PSC
    p = g.accept_path("linux")
    p.accept(M2 + K4, M2 + 3 * K4)                    # 4K PVALIDATEs on a 2M entry
    st = p.stats
    assert (st.npf_exits, st.host_psmash, st.accept_4k) == (1, 1, 3)
    assert g.rmp(M2).page_size == 0 and g.count(M2, 2 * M2) == (2, 510)
    g2 = SnpGuest(64 << 20, host=Host(npf_psmash=False))
    g2.make_private(M2, M2, PageSize.SIZE_2M)
    g2.set_host(Host("skip-rmpupdate", npf_psmash=False))
    with pytest.raises(GuestHung):
        g2.accept_path("linux").accept(M2 + K4, M2 + 2 * K4)


def test_vmpl_nonzero_linux_terminates_not_vmpl0():
    g = SnpGuest(64 << 20, vmpl=2)
    with pytest.raises(GuestTerminated):
        g.accept_path("linux").accept(0, M2)
    assert (g.fatal.reason_set, g.fatal.reason_code) == (1, 3)


# ---------------------------------------------------------------- early path
def test_early_path_one_msr_exit_per_page():
    cost = Cost("count")
    g = SnpGuest(64 << 20, cost=cost)
    p = g.accept_path("linux-early")
    p.accept(M2, 2 * M2 + 8 * K4)
    st, c = p.stats, counts(cost)
    n = (M2 + 8 * K4) // K4
    assert st.msr_exits == c[Event.VMGEXIT_PSC_MSR] == n
    assert st.accept_4k == c[Event.PVALIDATE_4K] == n and st.accept_2m == 0
    assert c[Event.RMPUPDATE_4K] == n and c[Event.VMGEXIT_PSC] == 0
    assert g.count() == (n, 0) and g.rmp(M2).page_size == 0


@pytest.mark.parametrize("fault", ["msr-error", "msr-bad-code"])
def test_early_path_terminates_on_bad_msr_answer(fault):
    g = SnpGuest(64 << 20, host=Host(fault))
    with pytest.raises(GuestTerminated):
        g.accept_path("linux-early").accept(0, 2 * K4)
    t = g.fatal
    assert (t.reason_set, t.reason_code, t.code) == (1, 1, 0x11100)


# ---------------------------------------------------------------- OVMF path
@pytest.mark.parametrize("buf_bytes, per_fill", [(4096, 506), (1024, 127)])
def test_ovmf_fill_and_exit_counts(buf_bytes, per_fill):
    g = SnpGuest(8 * G1)
    p = g.accept_path("ovmf", ovmf_buffer_bytes=buf_bytes)
    p.accept(4 * G1, 8 * G1)                          # 2048 2M entries
    st = p.stats
    fills = -(-2048 // per_fill)
    exits = sum(-(-min(per_fill, 2048 - i) // 253) for i in range(0, 2048, per_fill))
    assert (st.psc_requests, st.psc_exits) == (fills, exits)
    assert st.accept_2m == 2048 and g.count(4 * G1, 8 * G1) == (4 * G1 // K4, 0)


def test_ovmf_sec_path_uses_the_sec_work_buffer():
    # OvmfPkg/Sec/AmdSev.c: SEC validates with the 1024-byte
    # SevEsWorkArea->WorkBuffer, 127 entries per fill
    g = SnpGuest(8 * G1)
    p = g.accept_path("ovmf-sec")
    p.accept(4 * G1, 8 * G1)
    assert p.stats.psc_requests == -(-2048 // 127)


def test_ovmf_4k_backing_falls_back():
    g = SnpGuest(G1, backing="4K")
    p = g.accept_path("ovmf")
    p.accept(0, 8 << 20)
    st = p.stats
    assert (st.accept_2m, st.fallbacks, st.accept_4k) == (4, 4, 2048)


def test_ovmf_terminates_with_general_reason_on_cf1():
    g = SnpGuest(64 << 20)
    g.launch_update(0, K4)
    with pytest.raises(GuestTerminated):
        g.accept_path("ovmf").accept(0, M2)
    t = g.fatal
    assert (t.reason_set, t.reason_code, t.code, t.eax) == (0, 0, 0x100, 255)


def test_ovmf_ignores_reserved_word_but_linux_does_not():
    g = SnpGuest(64 << 20, host=Host("psc-reserved"))
    g.accept_path("ovmf").accept(0, 8 << 20)
    assert g.count(0, 8 << 20) == ((8 << 20) // K4, 0)
    with pytest.raises(GuestTerminated):
        g.accept_path("linux").accept(8 << 20, 16 << 20)


def test_ovmf_end_grow_runs_into_an_invalid_entry():
    g = SnpGuest(64 << 20, host=Host("psc-end-grow"))
    with pytest.raises(GuestTerminated):
        g.accept_path("ovmf").accept(0, 8 << 20)
    t = g.fatal
    assert (t.reason_set, t.reason_code, t.info) == (0, 0, PSC_ERROR_INVALID_ENTRY)


# ---------------------------------------------------------------- arguments
def test_path_arguments():
    g = SnpGuest(64 << 20)
    p = g.accept_path("linux")
    with pytest.raises(Misaligned):
        p.accept(1, M2)
    with pytest.raises(OutOfRange):
        p.accept(0, 128 << 20)
    with pytest.raises(OutOfRange):
        p.accept(M2, 0)
    with pytest.raises(InvalidArgument):
        p.accept(0, M2, vcpu=1)
    with pytest.raises(InvalidArgument):
        g.accept_path("bios")
    with pytest.raises(InvalidArgument):
        g.accept_path("linux", psc_max_entries=254)
    p.accept(M2, M2)                                   # empty: nothing happens
    assert p.stats.calls == 0


# ---------------------------------------------------------------- the core table
def test_table_accept_memory_drives_linux_path():
    cost = Cost("count")
    g = SnpGuest(G1, cost=cost)
    t = Table(size=(G1 // M2) // 8)
    t.mark(4, G1 // M2)                                # [8 MiB, 1 GiB) unaccepted
    t.set_accept(g.accept_path("linux"))
    res = t.accept_detailed(8 << 20, 4 << 20)          # end aligned -> guard unit: 3 units
    assert res.units == 3 and res.runs == 1
    assert g.count() == (3 * 512, 0)
    t.accept(0, G1)                                    # everything else
    assert g.count() == ((G1 - (8 << 20)) // K4, 0) and t.unaccepted_units == 0
    t.accept(0, G1)                                    # nothing left: never re-validated
    assert g.fatal is None
    assert counts(cost)[Event.ACCEPT_CALL] == 2


def test_table_reports_termination():
    g = SnpGuest(64 << 20)
    g.launch_update(2 * M2, K4)
    t = Table(size=4)
    t.mark(0, 32)
    t.set_accept(g.accept_path("linux"))
    with pytest.raises(GuestTerminated):
        t.accept(0, 8 << 20)
    assert t.contains(2 * M2, K4)                     # the failed run stays unaccepted


def test_threads_accept_disjoint_halves_through_the_table():
    size = 16 * G1
    cost = Cost("count", vcpus=2)
    g = SnpGuest(size, backing="4K", vcpus=2, cost=cost)
    t = Table(size=(size // M2) // 8)
    t.mark(0, size // M2)
    t.set_accept(g.accept_path("linux"))
    errors = []

    def run(v):
        try:
            for i in range(v, 64, 2):                  # interleaved 256 MiB slices
                t.accept(i * (size // 64), size // 64 - M2, vcpu=v)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    th = [threading.Thread(target=run, args=(v,)) for v in (0, 1)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    assert not errors
    t.accept(0, size)
    assert t.unaccepted_units == 0 and g.count() == (size // K4, 0)
    assert g.fatal is None
    assert cost.counts(0).get(Event.PVALIDATE_4K, 0) > 0 and \
        cost.counts(1).get(Event.PVALIDATE_4K, 0) > 0


# ---------------------------------------------------------------- lazy host (fault-in)
@pytest.mark.parametrize("backing, npf_per_2m", [("4K", 512), ("2M", 1)])
def test_lazy_rmpupdate_costs_one_npf_per_mapping(backing, npf_per_2m):
    """QEMU commit 4cdc489 (docs/sources.md #S28): with 4 KiB-only
    guest_memfd and no pre-faulting, every
    validated 4 KiB page takes an NPF exit: 1024 extra exits per 4 MiB."""
    cost = Cost("count")
    g = SnpGuest(G1, backing=backing, host=Host(lazy_rmpupdate=True), cost=cost)
    p = g.accept_path("linux")
    p.accept(0, 4 << 20)
    c = counts(cost)
    assert p.stats.npf_exits == c[Event.NPF_EXIT] == 2 * npf_per_2m
    assert c[Event.RMPUPDATE_4K if backing == "4K" else Event.RMPUPDATE_2M] == \
        (1024 if backing == "4K" else 2)
    assert g.count(0, 4 << 20) == (1024, 0)
    # the PSC alone assigns nothing
    buf = psc_buffer([PscEntry((16 << 20) // K4, PscOp.PRIVATE, 1)])
    g.psc_ghcb(buf)
    assert not g.rmp(16 << 20).assigned
    assert g.pvalidate(16 << 20, PageSize.SIZE_2M).fault == Fault.NPF


def test_lazy_early_path_and_double_accept():
    g = SnpGuest(64 << 20, host=Host(lazy_rmpupdate=True))
    p = g.accept_path("linux-early")
    p.accept(0, 8 * K4)
    assert p.stats.npf_exits == 8 and g.count() == (8, 0)
    with pytest.raises(GuestTerminated):     # attribute already private: CF=1
        g.accept_path("linux").accept(0, M2)
    assert g.fatal.code == 0x21100


def test_lazy_fault_in_only_for_private_attribute():
    g = SnpGuest(64 << 20, host=Host("skip-rmpupdate", lazy_rmpupdate=True))
    with pytest.raises(GuestHung):            # PSC ignored: no attribute, no fault-in
        g.accept_path("linux", hang_limit=3).accept(0, M2)
    assert g.count() == (0, 0)


# ------------------------------------------------ unaccept (Linux __set_pages_state())
@pytest.mark.parametrize("kind", ["linux", "linux-early", "ovmf"])
@pytest.mark.parametrize("backing", ["2M", "4K"])
def test_unaccept_rescinds_then_makes_shared(kind, backing):
    cost = Cost("count")
    g = SnpGuest(64 << 20, backing=backing, cost=cost)
    p = g.accept_path(kind)
    p.accept(M2, 4 * M2 + 3 * K4)
    p.reset_stats()
    p.unaccept(M2, 4 * M2 + 3 * K4)
    assert g.count() == (0, 0)
    e = g.rmp(2 * M2)
    assert not e.assigned and not e.validated
    assert g.access(2 * M2).fault == Fault.NPF                      # private access: gone
    assert g.access(2 * M2, Access.WRITE, c_bit=False).fault == Fault.NONE   # shared write ok
    st = p.stats
    assert st.cache_touch_4k == 0 and st.bytes == 3 * M2 + 3 * K4
    p.accept(M2, 4 * M2 + 3 * K4)                                   # and back: no CF=1
    assert g.count() == ((3 * M2 + 3 * K4) // K4, 0) and g.fatal is None


def test_unaccept_of_unvalidated_memory_terminates_with_cf1():
    g = SnpGuest(64 << 20)
    g.make_private(0, 0, PageSize.SIZE_2M)                         # assigned, never validated
    with pytest.raises(GuestTerminated):
        g.accept_path("linux").unaccept(0, M2)
    t = g.fatal
    assert (t.reason_set, t.reason_code, t.eax) == (1, 2, 255)


# ---------------------------------------------------------------- one path per kind (0.2)
@pytest.mark.parametrize("model", [SnpGuest, ref.SnpGuest], ids=["c", "reference"])
def test_accept_path_is_the_guests_one_path_of_its_kind(model):
    """0.2 (docs/changes-0.2.md): accept_path(kind) returns the guest's one
    path of that kind; options replace the path and reset its statistics,
    and a reference to it taken before stays valid."""
    g = model(64 << 20)
    p = g.accept_path("linux")
    assert g.accept_path("linux") is p and g.accept_path("ovmf") is not p
    p.accept(0, M2)
    assert p.stats.calls == 1 and g.path_stats("linux") == p.stats
    q = g.accept_path("linux", psc_max_entries=1)
    assert q is p and p.stats.calls == 0             # replaced: statistics reset
    p.accept(M2, 4 * M2)                              # the old reference runs the new path
    # 3 x 2 MiB entries, one per descriptor
    assert (p.stats.calls, p.stats.psc_exits, p.stats.psc_requests) == (1, 3, 3)
    g.reset_path_stats("linux")
    assert p.stats.calls == 0 and g.count() == (4 * M2 // K4, 0)
