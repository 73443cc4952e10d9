"""Architectural facts of the SEV-SNP model, with the expected values
written out from AMD APM vol. 2 section 15.36, the GHCB specification and
Linux's SEV headers, not taken from code."""
import pytest

from unaccepted import Cost
from unaccepted.errors import InvalidArgument, Misaligned, OutOfRange
from unaccepted.snp import (Access, Fault, NpfBits, PageSize, PscEntry, PscOp, PvalidateCode,
                            RmpCode, SnpGuest, msr_psc_request, psc_buffer, term_msr)

M2, K4 = 2 << 20, 4096
ASID = 7


def guest(**kw):
    kw.setdefault("asid", ASID)
    return SnpGuest(16 << 20, **kw)


def test_numeric_constants():
    from unaccepted._core import lib
    assert lib.UA_SNP_NPF_RMP == 1 << 31
    assert lib.UA_SNP_NPF_ENC == 1 << 34
    assert lib.UA_SNP_NPF_SIZEM == 1 << 35
    assert lib.UA_SNP_NPF_VMPL == 1 << 36
    assert lib.UA_SNP_VC_PAGE_NOT_VALIDATED == 0x404
    assert lib.UA_SNP_GHCB_MSR_PSC_REQ == 0x014 and lib.UA_SNP_GHCB_MSR_PSC_RESP == 0x015
    assert lib.UA_SNP_GHCB_MSR_PSC_RESP_ERROR == (1 << 63) | 0x015
    assert lib.UA_SNP_VMGEXIT_PSC == 0x80000010
    assert lib.UA_SNP_PSC_ERROR_INVALID_HDR == (1 << 32) | 1
    assert lib.UA_SNP_PSC_ERROR_INVALID_ENTRY == (1 << 32) | 2
    assert lib.UA_SNP_PSC_ERROR_GENERIC == 0x100 << 32
    assert lib.UA_SNP_PSC_MAX_ENTRIES == 253 == (2032 - 8) // 8
    assert lib.UA_SNP_LINUX_PSC_MAX_ENTRIES == 64
    assert [int(c) for c in RmpCode] == [0, 1, 2, 3, 4]
    # Linux arch/x86/include/asm/sev.h: PVALIDATE FAIL_INPUT 1, FAIL_SIZEMISMATCH
    # 6, and 255 is Linux's own code for CF=1 (PVALIDATE_FAIL_NOUPDATE)
    assert [int(c) for c in PvalidateCode] == [0, 1, 2, 6, 255]
    assert term_msr(1, 1) == 0x100 | 1 << 12 | 1 << 16 == 0x11100
    assert term_msr(1, 2) == 0x21100
    assert term_msr(0, 0) == 0x100
    assert msr_psc_request(0x12345, 1) == 0x014 | 0x12345 << 12 | 1 << 52


def test_initial_state_is_hypervisor_owned_zero_rmp():
    g = guest()
    for spa in (0, 5 * K4, 8 << 20):
        e = g.rmp(spa)
        assert (e.assigned, e.validated, e.asid, e.page_size, e.perm) == (False, False, 0, 0,
                                                                          (0, 0, 0, 0))
    assert g.count() == (0, 0)


def test_launch_update_pages_start_validated():
    g = guest()
    g.launch_update(0, M2 + 3 * K4)
    e = g.rmp(0)
    assert e.assigned and e.validated and e.page_size == PageSize.SIZE_2M and e.asid == ASID
    e = g.rmp(M2 + 2 * K4)
    assert e.validated and e.page_size == PageSize.SIZE_4K and e.gpa == M2 + 2 * K4
    assert not g.rmp(M2 + 3 * K4).assigned
    assert g.count() == (512 + 3, 0)
    assert g.access(0).fault == Fault.NONE
    assert g.access(M2 + 3 * K4).fault == Fault.NPF   # unassigned: never launched
    g.launch_finish()
    with pytest.raises(Exception):
        g.launch_update(4 * M2, K4)


def test_choice_rmpupdate_unchanged_clears_validated():
    # model choice (docs/snp.md, RMPUPDATE): an RMPUPDATE that changes no field
    # still clears Validated and resets the VMPL permissions
    g = guest()
    assert g.make_private(0, 0) == RmpCode.SUCCESS
    assert g.pvalidate(0).ok
    assert g.rmpadjust(0, target_vmpl=1, perms=3).ok
    e = g.rmp(0)
    assert e.validated and e.perm == (31, 3, 0, 0)
    # same fields again: still cleared (the conservative reading of APM vol. 2 section 15.36.6)
    assert g.make_private(0, 0) == RmpCode.SUCCESS
    e = g.rmp(0)
    assert not e.validated and e.perm == (31, 0, 0, 0) and e.assigned


def test_rmpupdate_codes():
    g = guest(spare_bytes=0)
    assert g.rmpupdate(8, gpa=0, asid=ASID, assigned=True) == RmpCode.FAIL_INPUT
    assert g.rmpupdate(K4, page_size=1) == RmpCode.FAIL_INPUT          # misaligned for 2M
    assert g.rmpupdate(16 << 20) == RmpCode.FAIL_INPUT                  # outside the RMP
    # model choice (docs/snp.md †): the two FAIL_INPUT ownership rules, the
    # check order and a deterministic FAIL_OVERLAP
    assert g.rmpupdate(0, asid=3) == RmpCode.FAIL_INPUT                 # hv-owned with ASID
    g.set_in_use(K4)
    assert g.make_private(K4, K4) == RmpCode.FAIL_INUSE
    assert g.rmpupdate(0, assigned=True, immutable=True) == RmpCode.SUCCESS   # firmware page
    assert g.make_private(0, 0) == RmpCode.FAIL_PERMISSION              # immutable refuses
    assert g.make_private(M2, M2, PageSize.SIZE_2M) == RmpCode.SUCCESS
    assert g.make_private(M2 + K4, M2 + K4) == RmpCode.FAIL_OVERLAP     # inside an assigned 2M
    assert g.psmash(M2) == RmpCode.SUCCESS
    assert g.make_private(M2 + K4, M2 + K4) == RmpCode.SUCCESS
    assert g.make_private(M2, M2, PageSize.SIZE_2M) == RmpCode.FAIL_OVERLAP   # 4K entries assigned
    with pytest.raises(OutOfRange):
        g.rmpupdate(1 << 52)


def test_psmash_copies_every_field_including_validated():
    g = guest()
    g.make_private(M2, M2, PageSize.SIZE_2M)
    assert g.pvalidate(M2, PageSize.SIZE_2M).ok
    assert g.rmpadjust(M2, PageSize.SIZE_2M, target_vmpl=2, perms=1).ok
    assert g.psmash(M2) == RmpCode.SUCCESS
    for i in (0, 1, 511):
        e = g.rmp(M2 + i * K4)
        assert (e.page_size, e.gpa, e.validated, e.asid, e.perm, e.entry_spa) == \
            (0, M2 + i * K4, True, ASID, (31, 0, 1, 0), M2 + i * K4)
    assert g.psmash(M2) == RmpCode.FAIL_INPUT      # already 4K entries (choice, docs/snp.md †)
    assert g.psmash(M2 + K4) == RmpCode.FAIL_INPUT  # not 2M aligned


def test_pvalidate_outcomes_and_order():
    g = guest()
    # unassigned -> NPF(RMP), never a return code
    r = g.pvalidate(M2, PageSize.SIZE_2M)
    assert r.fault == Fault.NPF and r.npf_bits & NpfBits.RMP and not r.npf_bits & NpfBits.SIZEM
    # bad input before any RMP check
    assert g.pvalidate(M2 + K4, PageSize.SIZE_2M).eax == PvalidateCode.FAIL_INPUT
    assert g.pvalidate(M2 + 1).eax == PvalidateCode.FAIL_INPUT
    assert g.pvalidate(M2, 2).eax == PvalidateCode.FAIL_INPUT
    # unmapped VA -> #PF
    assert g.pvalidate(16 << 20).fault == Fault.PF
    # 2M entry, 4K request -> NPF with SIZEM
    g.make_private(M2, M2, PageSize.SIZE_2M)
    r = g.pvalidate(M2 + K4)
    assert r.fault == Fault.NPF and r.npf_bits & NpfBits.SIZEM and r.npf_bits & NpfBits.RMP
    assert r.exitinfo1 & (1 << 35)
    # success then CF=1 (Linux's 255)
    assert g.pvalidate(M2, PageSize.SIZE_2M).ok
    r = g.pvalidate(M2, PageSize.SIZE_2M)
    assert (r.eax, r.cf, r.fault, r.code) == (0, True, Fault.NONE, 255)
    # rescind then validate again
    assert g.pvalidate(M2, PageSize.SIZE_2M, validate=False).ok
    assert not g.rmp(M2).validated
    # 4K entries, 2M request -> FAIL_SIZEMISMATCH (6)
    g.make_private(2 * M2, 2 * M2)
    assert g.pvalidate(2 * M2, PageSize.SIZE_2M).eax == 6
    # wrong ASID, wrong GPA, immutable -> NPF
    g.rmpupdate(3 * M2, gpa=3 * M2, asid=ASID + 1, assigned=True)
    g.rmpupdate(3 * M2 + K4, gpa=0, asid=ASID, assigned=True)
    g.rmpupdate(3 * M2 + 2 * K4, gpa=3 * M2 + 2 * K4, asid=ASID, assigned=True, immutable=True)
    for a in (3 * M2, 3 * M2 + K4, 3 * M2 + 2 * K4):
        assert g.pvalidate(a).fault == Fault.NPF
    # VMPL != 0 -> #GP first, before the input checks (model choice after
    # VeriSMo, not confirmed in the APM: docs/snp.md, Modelling decisions)
    assert SnpGuest(16 << 20, vmpl=1).pvalidate(1, 5).fault == Fault.GP


def test_rmpadjust_rules():
    g = guest()
    g.make_private(0, 0)
    assert g.rmpadjust(0, target_vmpl=1, perms=1).fault == Fault.VC     # not validated
    assert g.rmpadjust(0, target_vmpl=1, perms=1).error_code == 0x404
    g.pvalidate(0)
    assert g.rmpadjust(0, target_vmpl=0, perms=1).eax == PvalidateCode.FAIL_PERMISSION
    assert g.rmpadjust(0, target_vmpl=4, perms=1).eax == PvalidateCode.FAIL_INPUT
    assert g.rmpadjust(0, target_vmpl=1, perms=2).eax == PvalidateCode.FAIL_INPUT  # W without R
    assert g.rmpadjust(K4, PageSize.SIZE_2M, target_vmpl=1, perms=1).eax == 1      # misaligned
    assert g.rmpadjust(0, PageSize.SIZE_2M, target_vmpl=1, perms=1).eax == 6       # 4K entries
    assert g.rmpadjust(0, target_vmpl=3, perms=0x1F, vmsa=True).ok
    e = g.rmp(0)
    assert e.vmsa and e.perm == (31, 0, 0, 31)
    # VMPL1 may only hand out what it holds, to VMPL2/3
    v1 = SnpGuest(16 << 20, asid=ASID, vmpl=1)
    v1.launch_update(0, K4)
    assert v1.rmpadjust(0, target_vmpl=2, perms=1).eax == PvalidateCode.FAIL_PERMISSION  # holds 0
    assert v1.rmpadjust(0, target_vmpl=1, perms=0).eax == PvalidateCode.FAIL_PERMISSION
    assert v1.rmpadjust(0, target_vmpl=2, perms=0).ok


def test_rmpadjust_npf_conditions_are_pvalidates():
    """VeriSMo's RMPADJUST model: RMPADJUST has the same NPF conditions as
    PVALIDATE, and for PVALIDATE (docs/snp.md) an entry that is immutable,
    unassigned, of another ASID or of another GPA gives NPF(RMP), and only
    an entry that passes those checks but is 2M under a 4K request gives
    NPF(RMP|SIZEM).  A SIZEM would
    make KVM PSMASH an entry that is not the guest's to fix."""
    g = guest()
    rmp_enc_p = (1 << 31) | (1 << 34) | 1
    g.rmpupdate(M2, page_size=1)                                              # unassigned
    g.rmpupdate(2 * M2, gpa=2 * M2, asid=ASID + 1, assigned=True, page_size=1)   # other ASID
    g.rmpupdate(3 * M2, gpa=5 * M2, asid=ASID, assigned=True, page_size=1)       # other GPA
    g.rmpupdate(4 * M2, gpa=4 * M2, asid=ASID, assigned=True, page_size=1,
                immutable=True)                                               # immutable
    for base in (M2, 2 * M2, 3 * M2, 4 * M2):
        for va in (base, base + K4):
            pv = g.pvalidate(va)
            ra = g.rmpadjust(va, target_vmpl=1, perms=1)
            assert (pv.fault, pv.exitinfo1) == (Fault.NPF, rmp_enc_p), hex(va)
            assert (ra.fault, ra.exitinfo1) == (Fault.NPF, rmp_enc_p), hex(va)
    # ours, 2M entry, 4K request: both add SIZEM
    g.make_private(6 * M2, 6 * M2, PageSize.SIZE_2M)
    assert g.pvalidate(6 * M2, PageSize.SIZE_2M).ok
    for r in (g.pvalidate(6 * M2 + K4), g.rmpadjust(6 * M2 + K4, target_vmpl=1, perms=1)):
        assert (r.fault, r.exitinfo1) == (Fault.NPF, rmp_enc_p | (1 << 35))


def test_access_checks():
    g = guest(spare_bytes=M2)
    r = g.access(0)                       # unassigned, private access
    assert r.fault == Fault.NPF and r.exitinfo1 & (1 << 31) and r.exitinfo1 & (1 << 34)
    g.make_private(0, 0)
    r = g.access(0, Access.WRITE)
    assert (r.fault, r.error_code, r.exitinfo2) == (Fault.VC, 0x404, 0)
    g.pvalidate(0)
    assert g.access(0, Access.WRITE).fault == Fault.NONE
    assert g.access(0, Access.EXEC_SUPER).fault == Fault.NONE
    # shared (C=0) write to an assigned page -> NPF(RMP) without ENC
    r = g.access(0, Access.WRITE, c_bit=False)
    assert r.fault == Fault.NPF and r.exitinfo1 & (1 << 31) and not r.exitinfo1 & (1 << 34)
    assert g.access(0, Access.READ, c_bit=False).fault == Fault.NONE
    # VMPL check: a VMPL1 kernel on a page VMPL0 never granted -> NPF with VMPL bit
    v1 = SnpGuest(16 << 20, asid=ASID, vmpl=1)
    v1.launch_update(0, K4)
    r = v1.access(0)
    assert r.fault == Fault.NPF and r.exitinfo1 & (1 << 36)
    # host write to an assigned page -> host #PF with PFEC bit 31
    r = g.host_write(0)
    assert r.fault == Fault.PF and r.error_code & (1 << 31)
    assert g.host_write(K4).fault == Fault.NONE


def test_cost_charged_to_issuing_vcpu():
    c = Cost("count", vcpus=4)
    g = SnpGuest(16 << 20, vcpus=4, cost=c)
    g.make_private(0, 0)                  # host-initiated: nobody is charged
    g.pvalidate(0, vcpu=2)
    g.pvalidate(M2, PageSize.SIZE_2M, vcpu=3)        # NPF
    from collections import Counter
    from unaccepted import Event
    counts2, counts3 = Counter(c.counts(2)), Counter(c.counts(3))
    assert counts2[Event.PVALIDATE_4K] == 1 and counts2[Event.NPF_EXIT] == 0
    assert counts3[Event.PVALIDATE_2M] == 1 and counts3[Event.NPF_EXIT] == 1
    assert Counter(c.counts(0))[Event.RMPUPDATE_4K] == 0
    assert sum(c.counts().values()) == 3


def test_bad_arguments_never_crash():
    g = guest()
    with pytest.raises(InvalidArgument):
        g.pvalidate(0, vcpu=1)
    with pytest.raises(InvalidArgument):
        g.access(0, 9)
    with pytest.raises(OutOfRange):
        g.access(1 << 60)
    with pytest.raises(Misaligned):
        SnpGuest(3 << 20)
    with pytest.raises(OutOfRange):
        SnpGuest(1 << 53)
    with pytest.raises(InvalidArgument):
        SnpGuest(M2, asid=0)
    with pytest.raises(InvalidArgument):
        SnpGuest(M2, asid=1024)
    with pytest.raises(OutOfRange):
        g.npt_map(16 << 20, 0)
    with pytest.raises(Misaligned):
        g.npt_map(1, 0)
    assert g.pvalidate((1 << 64) - 4096).fault == Fault.PF
    assert g.pvalidate((1 << 64) - 1).eax == 1
    assert g.rmpadjust(0, attrs=(1 << 64) - 1).eax == 1
    assert g.psmash((1 << 52) - M2) == RmpCode.FAIL_INPUT
    buf = psc_buffer([PscEntry(0, PscOp.PRIVATE)])
    with pytest.raises(InvalidArgument):
        g.psc_ghcb(buf, vcpu=5)


def test_big_guests_are_sparse():
    g = SnpGuest(64 << 40)                # 64 TiB: only the chunk directory exists
    st = g.stats()
    assert st.regions == (64 << 40) // M2 and st.chunks_allocated == 0
    assert st.bytes_allocated < 1 << 20
    assert g.make_private((64 << 40) - M2, (64 << 40) - M2, PageSize.SIZE_2M) == 0
    assert g.pvalidate((64 << 40) - M2, PageSize.SIZE_2M).ok
    st = g.stats()
    assert st.chunks_allocated == 1 and st.validated_4k == 512


def test_compact_4k_storage_expands_only_for_entries_off_the_pattern():
    g = guest()
    g.make_private(M2, M2)                        # pattern: GPA == SPA, our ASID
    g.make_private(M2 + K4, M2 + K4)
    small = g.stats().bytes_allocated
    assert g.make_private(M2 + 2 * K4, 5 * M2) == RmpCode.SUCCESS   # off the pattern
    assert g.rmpupdate(M2 + 3 * K4, gpa=M2 + 3 * K4, asid=ASID + 1, assigned=True) == 0
    assert g.stats().bytes_allocated == small + 4096              # 512 full 8-byte entries
    got = [(g.rmp(M2 + i * K4).gpa, g.rmp(M2 + i * K4).asid) for i in range(5)]
    assert got == [(M2, ASID), (M2 + K4, ASID), (5 * M2, ASID), (M2 + 3 * K4, ASID + 1), (0, 0)]
    assert g.pvalidate(M2 + K4).ok and g.rmp(M2 + K4).validated
    # PSMASH of a hypervisor-owned 2M entry keeps its (consecutive) GPAs compactly
    g.rmpupdate(2 * M2, page_size=1)
    before = g.stats().bytes_allocated
    g.psmash(2 * M2)
    assert g.rmp(2 * M2 + 3 * K4).gpa == 3 * K4
    assert g.stats().bytes_allocated - before < 1024
