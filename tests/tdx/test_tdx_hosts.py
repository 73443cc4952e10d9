"""The TDX host behaviours, plugged in through Host objects (csrc/host.c,
csrc/tdx_kvm.c), and hosts written in Python: what the guest sees
architecturally.  Each test cites the primary source its expected values
follow; the model's own choices are named as such (docs/tdx.md)."""
import pytest

from unaccepted import (CallbackError, Cost, Event, FatalKind, GuestHung, Host, HostAction,
                        HostError, NeverResume, TouchOutcome)
from unaccepted.errors import AcceptFailed, GuestDied
from unaccepted.tdx import Level, SeptState, TdxConfig, TdxGuest, TdxStatus, VmcallStatus

K4, M2, G1 = 4096, 2 << 20, 1 << 30
SHARED = 1 << 51
MAP_GPA = 0x10001


# ---- kvm -------------------------------------------------------------------------------

def test_kvm_is_the_default_host_and_augs_at_the_accepted_level():
    # TDX module tdg_mem_page_accept.c: ACCEPT of a FREE entry ends in an
    # EPT-violation TD exit whose extended exit qualification carries the
    # requested level; KVM (arch/x86/kvm/vmx/tdx.c, tdx_handle_ept_violation)
    # maps the GPA with TDH.MEM.PAGE.AUG and resumes the vCPU, which
    # re-executes the TDCALL.  The model's KVM AUGs at the requested level
    # capped by the backing (a modelling choice, docs/tdx.md "Host backing").
    g = TdxGuest(G1)
    assert g.host == Host() and g.host.behavior == "kvm"
    r = g.accept(M2, Level.L2M)
    assert r.exited and r.req_level == 1 and r.err_state == SeptState.FREE
    assert g.serve_exit(r) == HostAction.AUG_2M
    assert g.accept(M2, Level.L2M).rax == 0
    g4 = TdxGuest(G1, backing="4K", host=Host("kvm"))
    r = g4.accept(M2, Level.L2M)
    assert g4.serve_exit(r) == HostAction.AUG_4K     # 4 KiB backing caps the AUG
    assert g4.accept(M2, Level.L2M).status == TdxStatus.PAGE_SIZE_MISMATCH


def test_kvm_linux_path_one_exit_per_2m():
    # Linux arch/x86/coco/tdx/tdx-shared.c tdx_accept_memory / try_accept_one:
    # a 2 MiB-aligned 2 MiB chunk is accepted with one 2 MiB TDCALL; with the
    # model's KVM and 2 MiB backing it exits once, is AUGed and re-executed
    g = TdxConfig(G1, host=Host()).build()
    path = g.accept_path("linux")
    path(0, 8 * M2)
    s = path.stats
    assert (s.accept_2m, s.exits, s.host_aug_2m, s.host_aug_4k, s.success_2m) == (8, 8, 8, 0, 8)
    assert g.fatal is None and g.count_accepted() == 8 * 512


# ---- aug-4k ------------------------------------------------------------------------------

def test_aug_4k_with_2m_backing_falls_back_to_512_small_accepts():
    # TDX module tdg_mem_page_accept.c: a 2 MiB request whose walk finds a
    # non-leaf 2 MiB entry (the 4 KiB page table KVM had to add for its
    # 4 KiB AUG) answers PAGE_SIZE_MISMATCH | 1.  Linux tdx-shared.c
    # try_accept_one fails that size and tdx_accept_memory goes on at 4 KiB:
    # 512 ACCEPTs, of which the first finds its page already PENDING and the
    # 511 others each exit once for a 4 KiB AUG.
    g = TdxGuest(G1, backing="2M", host=Host("aug-4k"), cost=Cost("count"))
    r = g.accept(4 * M2, Level.L2M)
    assert r.exited and g.serve_exit(r) == HostAction.AUG_4K
    assert g.accept(4 * M2, Level.L2M).rax == 0xC0000B0B00000001
    assert g.entry(4 * M2, 1).state == SeptState.NL_MAPPED
    path = g.accept_path("linux")
    path(0, 2 * M2)
    s = path.stats
    assert (s.accept_2m, s.size_mismatch) == (2, 2)
    assert (s.accept_4k, s.success_4k) == (2 * 512, 2 * 512)
    assert (s.exits, s.host_aug_4k, s.host_aug_2m) == (2 * 512, 2 * 512, 0)
    assert g.count_states(0, 2 * M2) == {SeptState.MAPPED: 1024}
    assert g.cost.counts()[Event.AUG_4K] == 1 + 2 * 512     # the direct exit above too
    assert Event.AUG_2M not in g.cost.counts()


def test_aug_4k_ovmf_size_mismatch_goes_to_4k():
    # EDK2 MdePkg/Library/TdxLib/AcceptPages.c TdAcceptPages: a 2 MiB page
    # answered PAGE_SIZE_MISMATCH is accepted again as 512 x 4 KiB
    g = TdxGuest(G1, host=Host("aug-4k"))
    path = g.accept_path("ovmf")
    path(0, 4 * M2)                     # more than 2 MiB: four 2 MiB pages
    s = path.stats
    assert (s.accept_2m, s.size_mismatch, s.accept_4k) == (4, 4, 4 * 512)
    assert s.host_aug_4k == 4 * 512 and g.fatal is None


# ---- never-resolve -------------------------------------------------------------------------

def test_never_resolve_hangs_the_linux_accept():
    # TDX module tdg_mem_page_accept.c: the EPT-violation TD exit leaves RIP
    # on the TDCALL, so when the host resumes without mapping the page the
    # guest re-executes into the same exit.  Linux tdx-shared.c
    # try_accept_one has no way out of that: the vCPU never progresses
    # (docs/changes-0.2.md: GuestHung after hang_limit exits, fatal HUNG).
    g = TdxGuest(G1, host=Host("never-resolve"))
    path = g.accept_path("linux")
    with pytest.raises(GuestHung):
        path(2 * M2, 4 * M2)
    f = g.fatal
    assert f.kind == FatalKind.HUNG and f.gpa == 2 * M2 and f.vcpu == 0
    s = path.stats
    assert s.exits == s.executions == 1000 and s.failures == 1   # the default hang_limit
    assert g.count_accepted() == 0
    # a dead guest runs no further accepts
    with pytest.raises(GuestHung):
        path(8 * M2, 9 * M2)
    assert path.stats.calls == 1


def test_never_resolve_hang_limit_and_other_paths():
    g = TdxGuest(G1, host=Host("never-resolve"))
    path = g.accept_path("ovmf", hang_limit=7)
    with pytest.raises(GuestHung):
        path(0, M2)
    assert path.stats.exits == 7 and g.fatal.kind == FatalKind.HUNG
    # the host leaves every exit unserved: serve_exit reports NOTHING
    g.clear_fatal()
    r = g.accept(3 * M2, Level.L2M)
    assert r.exited and g.serve_exit(r) == HostAction.NOTHING
    assert g.state(3 * M2, 1) == SeptState.FREE


def test_never_resolve_touch_hangs():
    # a plain EPT violation (EEQ type 0) on FREE private memory: KVM would
    # AUG; a host that never does leaves the access spinning
    g = TdxGuest(G1, host=Host("never-resolve"))
    r = g.touch(5 * M2)
    assert r.outcome == TouchOutcome.HUNG and r.outcome.fatal and r.exits == 1
    assert g.fatal.kind == FatalKind.HUNG and g.fatal.gpa == 5 * M2


def test_never_resolve_still_lets_the_host_priority_holder_finish():
    # a HOST_PRIORITY_BUSY_TIMEOUT exit is no EPT violation: the host
    # SEAMCALL holding priority finishes and releases it (TDX module
    # tdg_mem_page_accept.c: the guest's lock attempt met host priority),
    # as 0.1's VMM_REFUSE served it
    g = TdxGuest(G1, backing="4K", hp_busy_limit=2, host=Host("never-resolve"))
    g.aug(7 * K4)
    g.set_host_priority(7 * K4, 0)
    assert g.accept(7 * K4).rax == 0x8000020000000001
    r = g.accept(7 * K4)
    assert r.exited and r.exit_status == TdxStatus.HOST_PRIORITY_BUSY_TIMEOUT
    assert g.serve_exit(r) == HostAction.RELEASE_HP
    assert not g.entry(7 * K4).host_priority
    assert g.accept(7 * K4).rax == 0


# ---- map-gpa-stall / map-gpa-refuse ---------------------------------------------------------

def test_map_gpa_stall_exhausts_linux_retries():
    # Linux arch/x86/coco/tdx/tdx.c tdx_map_gpa: re-issue MapGPA on RETRY from
    # the GPA in R11, give up after 3 RETRYs in a row without progress.
    # KVM (arch/x86/kvm/vmx/tdx.c tdx_map_gpa) always converts something
    # before a RETRY; map-gpa-stall answers RETRY at the requested start.
    g = TdxGuest(G1, host=Host("map-gpa-stall", count=3), cost=Cost("count"))
    with pytest.raises(HostError):
        g.map_gpa(M2, 2 * M2, shared=True)
    assert not g.entry(M2).shared and g.fatal is None
    assert g.cost.counts()[Event.TDVMCALL] == 3
    assert g.map_gpa(M2, 2 * M2, shared=True) == VmcallStatus.SUCCESS   # stalls used up
    assert g.entry(M2).shared
    # fewer stalls than Linux tolerates: it gets through
    g.set_host(Host("map-gpa-stall", count=2))
    r = g.tdvmcall(0, MAP_GPA, SHARED | 4 * M2, M2)
    assert (r.r10, r.r11, r.chunks) == (VmcallStatus.RETRY, SHARED | 4 * M2, 0)
    assert g.map_gpa(4 * M2, 5 * M2, shared=True) == VmcallStatus.SUCCESS
    assert g.cost.counts()[Event.TDVMCALL] == 3 + 1 + 1 + 2


def test_map_gpa_stall_checks_arguments_first():
    # KVM tdx_map_gpa checks the range and alignment before doing anything;
    # the stalling host keeps those answers and its RETRYs for good requests
    g = TdxGuest(G1, host=Host("map-gpa-stall", count=1))
    assert g.tdvmcall(0, MAP_GPA, SHARED | 0x800, K4).r10 == VmcallStatus.ALIGN_ERROR
    assert g.tdvmcall(0, MAP_GPA, SHARED, K4).r10 == VmcallStatus.RETRY
    assert g.tdvmcall(0, MAP_GPA, SHARED, K4).r10 == VmcallStatus.SUCCESS


def test_map_gpa_refuse():
    # TDG.VP.VMCALL<MapGPA> answered TDG.VP.VMCALL_INVALID_OPERAND (the GHCI
    # status KVM tdx_map_gpa uses for requests it rejects): Linux
    # tdx_map_gpa fails the conversion without retrying
    g = TdxGuest(G1, host=Host("map-gpa-refuse"), cost=Cost("count"))
    r = g.tdvmcall(0, MAP_GPA, SHARED | M2, M2)
    assert (r.r10, r.chunks) == (VmcallStatus.INVALID_OPERAND, 0)
    with pytest.raises(HostError):
        g.map_gpa(M2, 2 * M2, shared=True)
    assert g.cost.counts()[Event.TDVMCALL] == 2
    assert not g.entry(M2).shared
    # other sub-functions are still KVM's
    assert g.tdvmcall(0, 0x10002, 0, K4).r10 == VmcallStatus.SUBFUNC_UNSUPPORTED
    # EPT violations are still served by KVM: accepting works
    g.accept_path("linux")(0, M2)
    assert g.count_accepted() == 512


# ---- hosts written in Python -----------------------------------------------------------------

class NeverAugs(Host):
    """A hypervisor that sees every EPT violation and maps nothing."""

    calls = 0

    def tdx_exit(self, exit):
        type(self).calls += 1       # exit.action stays HostAction.NOTHING


class Stuck(Host):
    def tdx_exit(self, exit):
        raise NeverResume()


class Broken(Host):
    def tdx_exit(self, exit):
        raise ValueError("bug in the host")


def test_python_host_that_never_augs_hangs_the_guest():
    # as never-resolve: tdg_mem_page_accept.c re-executes into the same exit
    # (RIP not advanced), Linux try_accept_one never progresses
    NeverAugs.calls = 0
    g = TdxGuest(G1, host=NeverAugs())
    path = g.accept_path("linux", hang_limit=20)
    with pytest.raises(GuestHung):
        path(0, M2)
    assert g.fatal.kind == FatalKind.HUNG and g.fatal.gpa == 0
    assert NeverAugs.calls == 20 == path.stats.exits
    assert g.count_accepted() == 0


def test_python_host_never_resume_hangs_at_once():
    # NeverResume: the host keeps the vCPU forever, so the first exit hangs
    g = TdxGuest(G1, host=Stuck())
    path = g.accept_path("linux")
    with pytest.raises(GuestHung):
        path(0, M2)
    assert g.fatal.kind == FatalKind.HUNG and path.stats.exits == 1
    g.clear_fatal()
    r = g.touch(3 * M2)
    assert r.outcome == TouchOutcome.HUNG and g.fatal.kind == FatalKind.HUNG


def test_python_host_error_is_re_raised_to_the_caller():
    g = TdxGuest(G1, host=Broken())
    path = g.accept_path("linux")
    with pytest.raises(CallbackError) as e:
        path(0, M2)
    assert isinstance(e.value.__cause__, ValueError)
    assert str(e.value.__cause__) == "bug in the host"
    assert not isinstance(e.value, (AcceptFailed, GuestDied))
    assert g.fatal is None                   # a simulator error, not a death
    assert path.stats.failures == 1
    with pytest.raises(CallbackError) as e:
        g.serve_exit(g.accept(4 * M2, Level.L2M))
    assert isinstance(e.value.__cause__, ValueError)
    with pytest.raises(CallbackError):
        g.touch(3 * M2)
    # the guest is fine with a working host
    g.set_host(Host())
    path(0, M2)
    assert g.count_accepted() == 512


def test_python_host_that_delegates_sees_every_exit():
    class Counting(Host):
        actions = []

        def tdx_exit(self, exit):
            Counting.actions.append((exit.gpa, exit.default()))

    Counting.actions = []
    g = TdxGuest(G1, backing="4K", host=Counting())
    g.accept_path("linux")(0, M2)
    acts = [a for _, a in Counting.actions]
    assert acts == [HostAction.AUG_4K] * 512
    assert g.path_stats().host_aug_4k == 512 and g.count_accepted() == 512


# ---- the reference model understands the same hosts ----------------------------------------

@pytest.mark.parametrize("backing", ["2M", "4K"])
@pytest.mark.parametrize("host", [Host(), Host("aug-4k"), Host("never-resolve"),
                                  Host("map-gpa-stall", count=3), Host("map-gpa-refuse")])
def test_reference_model_serves_the_same_hosts(host, backing):
    # the same calls on the C model and unaccepted.testing.tdx_reference
    from _tdx_both import Both
    b = Both(16 * M2, backing=backing, host=host)
    steps = [
        lambda g: g.accept_path("linux", hang_limit=9)(0, 2 * M2 + 8 * K4),
        lambda g: g.clear_fatal(),
        lambda g: g.accept_path("ovmf", hang_limit=9)(3 * M2 - 4 * K4, 6 * M2),
        lambda g: g.clear_fatal(),
        lambda g: g.touch(7 * M2 + 3 * K4, write=True),
        lambda g: g.clear_fatal(),
        lambda g: g.map_gpa(8 * M2, 9 * M2, shared=True),
        lambda g: g.map_gpa(8 * M2, 9 * M2, shared=True),
        lambda g: g.unaccept(0, M2),
        lambda g: g.serve_exit(g.accept(10 * M2, 1)),
        lambda g: g.accept(10 * M2, 1),
    ]
    for i, step in enumerate(steps):
        b.same(b.run(step), (host, i))
        b.check_same(0, 16 * M2, [0, 2 * M2, 3 * M2 - 4 * K4, 7 * M2 + 3 * K4, 8 * M2, 10 * M2])
