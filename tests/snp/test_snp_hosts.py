"""The SEV-SNP host behaviours of ua_host.h through `Host` objects, and
hosts written in Python (`Host` subclasses), on the C model and on the
pure-Python reference with the same calls: each yields the outcome the
architecture and the guests' sources dictate - the termination request
(GHCB MSR 0x100 | set << 12 | code << 16) or a hang.

Sources cited below:
  [GHCB]  AMD "SEV-ES Guest-Hypervisor Communication Block Standardization"
          (pub. 56421) rev. 2: Page State Change by NAE event (header,
          cur_entry/end_entry, errors in SW_EXITINFO2; SW_EXITINFO1[31:0] = 2
          for GHCB-level errors) and by MSR protocol (request 0x014,
          response 0x015 with the error in GHCBData[63:32]); termination
          request 0x100 with the reason set and code.
  [LINUX] Linux arch/x86/coco/sev/: vmgexit_psc() (re-issues while
          cur_entry <= end_entry; fails on ret or SW_EXITINFO2, a set
          reserved word, end_entry grown or cur_entry below its start, both
          captured once before the loop), __set_pages_state() /
          early_set_pages_state() (a failure -> sev_es_terminate(
          SEV_TERM_SET_LINUX = 1, GHCB_TERM_PSC = 1)), verify_exception_info()
          (SW_EXITINFO1 = 2 is an error); arch/x86/include/asm/sev-common.h.
  [EDK2]  tianocore/edk2 OvmfPkg/Library/BaseMemEncryptSevLib/X64/
          SnpPageStateChangeInternal.c: checks only the VMGEXIT status and
          SwExitInfo2, no reserved-word or progress check; terminates with
          GHCB_TERMINATE_GHCB / GHCB_TERMINATE_GHCB_GENERAL (set 0, code 0).
  [APM]   AMD64 APM vol. 2 section 15.36: PVALIDATE of a page whose RMP entry
          is not assigned to the guest -> #NPF (Tables 15-39/15-40); a 4 KiB
          PVALIDATE on a 2 MiB entry -> #NPF with SIZEM.
  [KVM]   Linux arch/x86/kvm/svm/sev.c: the NAE PSC handler (may complete
          part and resume), sev_handle_rmp_fault() (PSMASH on a SIZEM NPF);
          guest_memfd: private pages are mapped at the first fault.
  [QEMU]  QEMU commit 4cdc489 "i386/kvm: Prefault memory on page state
          change" (docs/sources.md #S28): without pre-faulting, one NPF exit
          per validated mapping.
Hangs are reported as GuestHung after hang_limit exits without progress
(a model choice, docs/snp.md); the real guest spins."""
import pytest

from unaccepted import FatalKind, Host, HostAction, NeverResume, TouchOutcome
from unaccepted.errors import (CallbackError, GuestHung, GuestTerminated, InvalidArgument,
                               Misaligned, OutOfRange)
from unaccepted.snp import SnpGuest
from unaccepted.snp import (MSR_PSC_RESP, MSR_PSC_RESP_ERROR, PSC_ERROR_GENERIC,
                            PSC_ERROR_INVALID_ENTRY, NpfBits, PageSize, PscEntry, PscOp,
                            SnpGuest, msr_psc_request, psc_buffer, term_msr)
from unaccepted.testing import snp_reference as ref

K4, M2 = 4096, 2 << 20
MEM = 32 << 20
END = 8 << 20                   # [0, END): four 2 MiB PSC entries
PAGES = END // K4
TERM_PSC = (1, 1)               # SEV_TERM_SET_LINUX, GHCB_TERM_PSC  [LINUX]
TERM_GENERAL = (0, 0)           # EDK2's GHCB_TERMINATE_GHCB(_GENERAL)  [EDK2]
KINDS = ("linux", "linux-early", "ovmf")

both_models = pytest.mark.parametrize("model", [SnpGuest, ref.SnpGuest], ids=["c", "reference"])


def accept(g, kind, start=0, end=END, **options):
    g.accept_path(kind, **options).accept(start, end)


def assert_terminated(g, reason, gpa=0, info=None):
    f = g.fatal
    assert f is not None and f.kind == FatalKind.TERMINATED, f
    assert (f.reason_set, f.reason_code, f.code, f.gpa) == (*reason, term_msr(*reason), gpa)
    if info is not None:
        assert f.info == info


def assert_served(g, kind):
    """The path completed: every page validated, the guest alive."""
    accept(g, kind)
    assert g.fatal is None and g.count(0, END) == (PAGES, 0)


def assert_hung(g, kind, **options):
    with pytest.raises(GuestHung):
        accept(g, kind, **options)
    assert g.fatal.kind == FatalKind.HUNG and g.count(0, END)[0] == 0


# ---------------------------------------------------------------- KVM (the default)
@both_models
@pytest.mark.parametrize("host", [Host(), Host("aug-4k"), Host("map-gpa-refuse"),
                                  Host("map-gpa-stall", count=3)], ids=repr)
@pytest.mark.parametrize("kind", KINDS)
def test_kvm_and_tdx_only_behaviours_serve_every_snp_path(model, host, kind):
    # [KVM] serves every exit; the TDX behaviours change only TDX exits
    # (ua_host.h), so an SNP guest sees KVM
    g = model(MEM, host=host)
    assert g.host == host
    assert_served(g, kind)


# ---------------------------------------------------------------- psc-partial
@both_models
@pytest.mark.parametrize("kind", ["linux", "ovmf"])
def test_psc_partial_entries_is_reissued_until_done(model, kind):
    # [GHCB] the hypervisor may resume the guest before processing every
    # entry; [LINUX] vmgexit_psc() and [EDK2] re-issue while cur_entry <= end_entry
    g = model(MEM, host=Host("psc-partial", psc_max_entries=1))
    assert_served(g, kind)
    st = g.path_stats(kind)
    assert (st.psc_requests, st.psc_exits, st.accept_2m, st.fallbacks) == (1, 4, 4, 0)


@both_models
def test_psc_partial_pages_finishes_a_2m_entry_as_4k_pages(model):
    # [GHCB] cur_page records the pages done of a 2 MiB entry; [KVM] finishes
    # a 2 MiB entry started earlier page by page, so the 2 MiB PVALIDATE
    # answers FAIL_SIZEMISMATCH and Linux falls back to 512 x 4 KiB
    g = model(MEM, host=Host("psc-partial", psc_max_pages=100))
    accept(g, "linux", 0, M2)
    st = g.path_stats("linux")
    assert (st.psc_exits, st.accept_2m, st.fallbacks, st.accept_4k) == (6, 1, 1, 512)
    assert g.fatal is None and g.count(0, M2) == (512, 0)
    assert g.rmp(0).page_size == PageSize.SIZE_4K


# ---------------------------------------------------------------- answers Linux refuses
@both_models
def test_psc_error_terminates_linux_and_ovmf(model):
    # [LINUX] vmgexit_psc(): SW_EXITINFO2 != 0 -> sev_es_terminate(1, GHCB_TERM_PSC)
    g = model(MEM, host=Host("psc-error"))
    with pytest.raises(GuestTerminated):
        accept(g, "linux")
    assert_terminated(g, TERM_PSC, 0, PSC_ERROR_GENERIC)
    assert g.count(0, END) == (0, PAGES)       # the host did the work, nothing validated
    # [EDK2] PageStateChange() checks SwExitInfo2 -> general termination
    g = model(MEM, host=Host("psc-error"))
    with pytest.raises(GuestTerminated):
        accept(g, "ovmf")
    assert_terminated(g, TERM_GENERAL, 0, PSC_ERROR_GENERIC)
    # the MSR protocol is not the NAE event: the early path is unaffected
    assert_served(model(MEM, host=Host("psc-error")), "linux-early")


@both_models
def test_psc_reserved_terminates_linux_but_not_ovmf(model):
    # [LINUX] vmgexit_psc(): "Reserved bit is set in the PSC header" -> terminate
    g = model(MEM, host=Host("psc-reserved"))
    with pytest.raises(GuestTerminated):
        accept(g, "linux")
    assert_terminated(g, TERM_PSC, 0, 0)
    # [EDK2] never looks at the reserved word
    assert_served(model(MEM, host=Host("psc-reserved")), "ovmf")


@both_models
def test_psc_end_grow_terminates_linux_and_ovmf(model):
    # [LINUX] vmgexit_psc(): end_entry above the value it started with ->
    # "PSC processing going backward" -> terminate
    g = model(MEM, host=Host("psc-end-grow"))
    with pytest.raises(GuestTerminated):
        accept(g, "linux")
    assert_terminated(g, TERM_PSC)
    # [EDK2] has no such check: the grown end names an empty entry, which
    # the host rejects as INVALID_ENTRY [GHCB] -> general termination
    g = model(MEM, host=Host("psc-end-grow"))
    with pytest.raises(GuestTerminated):
        accept(g, "ovmf")
    assert_terminated(g, TERM_GENERAL, 0, PSC_ERROR_INVALID_ENTRY)


@both_models
@pytest.mark.parametrize("behavior", ["psc-rewind", "psc-stall"])
@pytest.mark.parametrize("kind", ["linux", "ovmf"])
def test_psc_without_progress_hangs(model, behavior, kind):
    # [LINUX] captures cur_entry once (0), so a rewind to 0 is never "below
    # the start", and a stall is never an error: it re-issues forever;
    # [EDK2] has no progress check at all
    g = model(MEM, host=Host(behavior))
    assert_hung(g, kind, hang_limit=20)
    assert g.path_stats(kind).psc_exits == 20
    assert "no progress" in g.fatal.message
    # the MSR protocol is unaffected
    assert_served(model(MEM, host=Host(behavior)), "linux-early")


@both_models
@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6])
def test_ghcb_error_terminates_the_nae_paths(model, code):
    # [GHCB] SW_EXITINFO1[31:0] = 2: the GHCB itself was refused, the code in
    # SW_EXITINFO2; [LINUX] verify_exception_info() -> ES_VMM_ERROR ->
    # vmgexit_psc() fails -> terminate(1, GHCB_TERM_PSC)
    g = model(MEM, host=Host("ghcb-error", ghcb_error=code))
    r = g.psc_ghcb(psc_buffer([PscEntry(0)]))
    assert (r.sw_exitinfo1, r.sw_exitinfo2, r.entries_done) == (2, code, 0)
    with pytest.raises(GuestTerminated):
        accept(g, "linux")
    assert_terminated(g, TERM_PSC, 0, code)
    g = model(MEM, host=Host("ghcb-error", ghcb_error=code))
    with pytest.raises(GuestTerminated):
        accept(g, "ovmf")
    assert_terminated(g, TERM_GENERAL, 0, code)
    assert_served(model(MEM, host=Host("ghcb-error", ghcb_error=code)), "linux-early")


@both_models
@pytest.mark.parametrize("behavior, response", [("msr-error", MSR_PSC_RESP_ERROR),
                                                ("msr-bad-code", 0)])
def test_bad_msr_answers_terminate_the_early_path(model, behavior, response):
    # [GHCB] MSR protocol: the response code must be 0x015 and GHCBData[63:32]
    # zero; [LINUX] early_set_pages_state(): otherwise terminate(1, GHCB_TERM_PSC)
    g = model(MEM, host=Host(behavior))
    assert g.psc_msr(msr_psc_request(5, PscOp.PRIVATE)) == response
    with pytest.raises(GuestTerminated):
        accept(g, "linux-early", 2 * K4, 4 * K4)
    assert_terminated(g, TERM_PSC, 2 * K4, response)
    # the NAE event is unaffected
    assert_served(model(MEM, host=Host(behavior)), "linux")


# ---------------------------------------------------------------- hosts that lie or never answer
@both_models
@pytest.mark.parametrize("kind", KINDS)
def test_skip_rmpupdate_leaves_pvalidate_an_npf_nobody_fixes(model, kind):
    # Attack (c) of docs/snp.md: success answered, no RMPUPDATE; [APM] the
    # PVALIDATE then takes #NPF (page not assigned to the guest), which the
    # host cannot fix: the guest re-executes forever, never validates
    g = model(MEM, host=Host("skip-rmpupdate"))
    assert g.psc_msr(msr_psc_request(5, PscOp.PRIVATE)) == MSR_PSC_RESP
    assert not g.rmp(5 * K4).assigned
    assert_hung(g, kind, hang_limit=3)
    assert g.count() == (0, 0) and g.fatal.gpa == 0
    assert "PVALIDATE" in g.fatal.message and g.path_stats(kind).npf_exits >= 1


@both_models
def test_never_resolve_hangs_at_every_exit(model):
    # NAE PSC: no progress [LINUX] -> the guest spins
    g = model(MEM, host=Host("never-resolve"))
    assert_hung(g, "linux", hang_limit=10)
    # MSR protocol: [GHCB] the guest waits in VMGEXIT for the response; a
    # host that never resumes the vCPU hangs it, with nothing to retry
    g = model(MEM, host=Host("never-resolve"))
    assert_hung(g, "linux-early")
    assert "MSR" in g.fatal.message and g.path_stats("linux-early").msr_exits == 1
    g = model(MEM, host=Host("never-resolve"))
    with pytest.raises(GuestHung):
        g.psc_msr(msr_psc_request(5, PscOp.PRIVATE))
    assert g.fatal is None                      # a bare exit, not a guest path
    # NPF: [KVM] would PSMASH a 2 MiB entry on SIZEM; this host leaves it
    g.make_private(M2, M2, PageSize.SIZE_2M)
    sizem = NpfBits.RMP | NpfBits.ENC | NpfBits.PRESENT | NpfBits.SIZEM
    assert g.serve_npf(M2 + K4, sizem) == HostAction.NOTHING
    assert g.rmp(M2).page_size == PageSize.SIZE_2M
    g.set_host(Host())
    assert g.serve_npf(M2 + K4, sizem) == HostAction.PSMASH


@both_models
def test_never_resolve_npf_hangs_a_touch_that_kvm_would_fault_in(model):
    # [KVM] guest_memfd: the first access to a private page maps it; here the
    # PSC recorded "private" and the page is never mapped
    g = model(MEM, host=Host(lazy_rmpupdate=True))
    g.psc_ghcb(psc_buffer([PscEntry(2 * M2 // K4, PscOp.PRIVATE, 1)]))
    assert not g.rmp(2 * M2).assigned
    g.set_host(Host("never-resolve", lazy_rmpupdate=True))
    r = g.touch(2 * M2)
    assert (r.outcome, r.exits) == (TouchOutcome.HUNG, 1)
    assert g.fatal.kind == FatalKind.HUNG
    # KVM maps it; the access then finds the page not validated: #VC 0x404,
    # which Linux does not handle -> terminate(0, 0) ([LINUX] vc-handle.c)
    g.clear_fatal()
    g.set_host(Host(lazy_rmpupdate=True))
    r = g.touch(2 * M2)
    assert (r.outcome, r.exits, r.vector, r.error_code) == (TouchOutcome.TERMINATED, 1, 29,
                                                            0x404)
    assert_terminated(g, TERM_GENERAL, 2 * M2)
    assert g.rmp(2 * M2).assigned and g.rmp(2 * M2).page_size == PageSize.SIZE_2M


# ---------------------------------------------------------------- KVM options
@both_models
@pytest.mark.parametrize("backing, npfs", [("2M", 4), ("4K", PAGES)])
def test_lazy_rmpupdate_maps_at_the_first_npf(model, backing, npfs):
    # [QEMU]/[KVM]: the PSC only records the private attribute; each
    # PVALIDATE of an unmapped page exits (NPF) and the host maps it at the
    # largest size the backing allows, then the PVALIDATE re-executes
    g = model(MEM, backing=backing, host=Host(lazy_rmpupdate=True))
    assert_served(g, "linux")
    st = g.path_stats("linux")
    assert (st.npf_exits, st.host_rmpupdate, st.psc_exits) == (npfs, npfs, 1)


@both_models
def test_npf_psmash_resolves_a_4k_pvalidate_on_a_2m_entry(model):
    # [APM] a 4 KiB PVALIDATE on a 2 MiB RMP entry -> #NPF with SIZEM;
    # [KVM] sev_handle_rmp_fault() PSMASHes and the guest re-executes
    g = model(MEM)
    g.make_private(M2, M2, PageSize.SIZE_2M)    # backed 2 MiB already
    g.set_host(Host("skip-rmpupdate"))          # the PSC changes nothing
    accept(g, "linux", M2 + K4, M2 + 3 * K4)
    st = g.path_stats("linux")
    assert (st.npf_exits, st.host_psmash, st.accept_4k) == (1, 1, 3)
    assert g.count(M2, 2 * M2) == (2, 510) and g.fatal is None
    # without the PSMASH nothing fixes the fault: the guest spins
    g = model(MEM)
    g.make_private(M2, M2, PageSize.SIZE_2M)
    g.set_host(Host("skip-rmpupdate", npf_psmash=False))
    with pytest.raises(GuestHung):
        accept(g, "linux", M2 + K4, M2 + 2 * K4)
    assert g.rmp(M2).page_size == PageSize.SIZE_2M


def test_host_options_belong_to_their_behaviour():
    with pytest.raises(InvalidArgument):
        Host("psc-partial")                     # needs a limit
    with pytest.raises(InvalidArgument):
        Host("ghcb-error")                      # needs its code (1-6)
    with pytest.raises(InvalidArgument):
        Host("psc-stall", psc_max_entries=2)
    with pytest.raises(InvalidArgument):
        Host("no-such-host")


# ---------------------------------------------------------------- hosts written in Python
class RefusingHost(Host):
    """Refuses every Page State Change: does nothing, answers
    SW_EXITINFO2 = PSC_ERROR_GENERIC."""

    def snp_psc(self, exit):
        exit.answer(sw_exitinfo2=PSC_ERROR_GENERIC)


class RewindingHost(Host):
    """Does what KVM does, then moves cur_entry back to 0."""

    def snp_psc(self, exit):
        exit.default()
        exit.set_header(0, exit.end_entry, exit.reserved)


class GrowingHost(Host):
    """Does what KVM does, then raises end_entry by one."""

    def snp_psc(self, exit):
        exit.default()
        exit.set_header(exit.cur_entry, exit.end_entry + 1, exit.reserved)


class MsrRefusingHost(Host):
    def snp_psc_msr(self, exit):
        exit.response = MSR_PSC_RESP_ERROR


class CountingNpfHost(Host):
    """KVM, counting the NPFs it serves."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.npfs = []

    def snp_npf(self, exit):
        self.npfs.append((exit.gpa, exit.default()))


class StuckHost(Host):
    def snp_psc(self, exit):
        raise NeverResume()


class BrokenHost(Host):
    def snp_psc(self, exit):
        raise RuntimeError("host bug")


@both_models
def test_python_host_refusing_every_psc_terminates_linux(model):
    # [LINUX] vmgexit_psc(): SW_EXITINFO2 != 0 -> sev_es_terminate(
    # SEV_TERM_SET_LINUX = 1, GHCB_TERM_PSC = 1), MSR 0x11100
    g = model(MEM, host=RefusingHost())
    with pytest.raises(GuestTerminated):
        accept(g, "linux")
    assert_terminated(g, TERM_PSC, 0, PSC_ERROR_GENERIC)
    assert g.fatal.code == 0x11100
    assert g.count() == (0, 0) and not g.rmp(0).assigned     # nothing converted
    g = model(MEM, host=RefusingHost())
    with pytest.raises(GuestTerminated):
        accept(g, "ovmf")
    assert_terminated(g, TERM_GENERAL, 0, PSC_ERROR_GENERIC)   # [EDK2]
    assert_served(model(MEM, host=RefusingHost()), "linux-early")   # MSR: KVM's answer


@both_models
def test_python_host_rewinding_cur_entry_makes_linux_spin(model):
    # [LINUX] cur_entry and end_entry are captured once; a rewind to 0 is not
    # below the start, so vmgexit_psc() re-issues forever: hung
    g = model(MEM, host=RewindingHost())
    assert_hung(g, "linux", hang_limit=10)
    assert g.count(0, END) == (0, PAGES)       # converted, never validated


@both_models
def test_python_host_growing_end_entry_terminates_linux(model):
    # [LINUX] vmgexit_psc(): end_entry above its start value -> terminate(1, 1)
    g = model(MEM, host=GrowingHost())
    with pytest.raises(GuestTerminated):
        accept(g, "linux")
    assert_terminated(g, TERM_PSC, 0, 0)


@both_models
def test_python_host_refusing_msr_psc_terminates_the_early_path(model):
    # [LINUX] early_set_pages_state(): GHCBData[63:32] != 0 -> terminate(1, 1)
    g = model(MEM, host=MsrRefusingHost())
    with pytest.raises(GuestTerminated):
        accept(g, "linux-early")
    assert_terminated(g, TERM_PSC, 0, MSR_PSC_RESP_ERROR)


@both_models
def test_python_host_sees_every_npf(model):
    # [KVM] with guest_memfd's lazy mapping every 2 MiB entry's PVALIDATE
    # exits once and is mapped (2M backing)
    host = CountingNpfHost(lazy_rmpupdate=True)
    g = model(MEM, host=host)
    assert_served(g, "linux")
    assert host.npfs == [(a, HostAction.RMPUPDATE) for a in range(0, END, M2)]


@both_models
def test_python_host_that_never_resumes_or_raises(model):
    g = model(MEM, host=StuckHost())
    assert_hung(g, "linux")
    assert "never returns" in g.fatal.message
    g = model(MEM, host=BrokenHost())
    with pytest.raises(CallbackError) as exc:
        accept(g, "linux")
    assert isinstance(exc.value.__cause__, RuntimeError)
    assert g.fatal is None                      # a simulator failure, not the guest's


class KvmPscHost(Host):
    """Its NAE Page State Change handler is KVM's, whatever its behaviour."""

    def snp_psc(self, exit):
        exit.kvm()


class BehaviourPscHost(Host):
    """Its NAE Page State Change handler falls back to its behaviour."""

    def snp_psc(self, exit):
        exit.default()


@both_models
def test_python_host_replaces_only_the_handlers_it_defines(model):
    # ua_host.h: the user's entries win over the behaviour's, the others stay
    # the behaviour's: a host on skip-rmpupdate whose NAE handler is KVM's
    # converts pages there, while the MSR protocol still does not ([APM]
    # PVALIDATE -> #NPF nobody fixes -> hung)
    assert_served(model(MEM, host=KvmPscHost("skip-rmpupdate")), "linux")
    assert_hung(model(MEM, host=KvmPscHost("skip-rmpupdate")), "linux-early", hang_limit=3)
    # exit.default() is the behaviour's handling (ua_host_behavior_snp_psc):
    # skip-rmpupdate's, so nothing is converted and PVALIDATE hangs
    assert_hung(model(MEM, host=BehaviourPscHost("skip-rmpupdate")), "linux", hang_limit=3)
    assert_served(model(MEM, host=BehaviourPscHost("kvm")), "linux")


# ------------------------------------------------ guest_memfd attributes (QEMU's default)
def test_private_by_default_ram_faults_in_unvalidated_and_touch_gets_vc_0x404():
    # [QEMU] kvm_set_phys_mem() marks every guest_memfd slot private
    # (KVM_SET_MEMORY_ATTRIBUTES); [KVM] a private GFN is faulted in from
    # guest_memfd at the first NPF (RMP assigned, Validated clear); [APM]
    # 15.36.10: an access to an assigned, unvalidated page -> #VC with
    # error code 0x404 (PAGE_NOT_VALIDATED); [LINUX] no #VC case for it:
    # the guest terminates.
    g = SnpGuest(MEM)
    r = g.touch(M2 + K4, write=True)
    assert r.outcome == TouchOutcome.HUNG            # shared attribute: the NPF is never fixed
    g = SnpGuest(MEM)
    g.set_memory_attributes(0, MEM)
    r = g.touch(M2 + K4, write=True)
    assert (r.outcome, r.vector, r.error_code) == (TouchOutcome.TERMINATED, 29, 0x404)
    e = g.rmp(M2)
    assert e.assigned and not e.validated


def test_memory_attributes_bad_arguments_leave_state_alone():
    g = SnpGuest(MEM)
    with pytest.raises(Misaligned):
        g.set_memory_attributes(K4 // 2, K4)
    with pytest.raises(OutOfRange):
        g.set_memory_attributes(0, MEM + M2)
    with pytest.raises(InvalidArgument):
        g.set_memory_attributes(0, K4, private="yes")
    assert g.touch(M2, write=True).outcome == TouchOutcome.HUNG   # nothing became private
