"""The Guest contract: the same calls, run against both vendors through the
vendor-neutral interface.  Where the architectures differ the expected
value is per vendor and cites its source."""
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from unaccepted import (FatalKind, Guest, GuestDied, GuestHung, GuestPanic, GuestTerminated,
                        Host, HostError, InvalidArgument, SnpConfig, Table, TdxConfig,
                        TouchOutcome, Vendor)
from unaccepted.snp import PSC_ERROR_GENERIC

K4, M2, G1 = 4096, 2 << 20, 1 << 30
MEM = 256 << 20
CONFIGS = {"snp": SnpConfig, "tdx": TdxConfig}


@pytest.fixture(params=["snp", "tdx"])
def vendor(request):
    return request.param


def build(vendor, **kw):
    kw.setdefault("memory_bytes", MEM)
    return CONFIGS[vendor](**kw).build()


class RefuseEverything(Host):
    """A hypervisor that refuses every page-state change (SNP) and never maps
    a page (TDX): module level, so configs holding it pickle."""

    def snp_psc(self, exit):
        exit.answer(sw_exitinfo2=PSC_ERROR_GENERIC)

    def snp_psc_msr(self, exit):
        exit.response = (1 << 63) | 0x015

    def tdx_exit(self, exit):
        pass  # leave the EPT violation unserved


def test_both_vendors_implement_the_protocol(vendor):
    g = build(vendor)
    assert isinstance(g, Guest)
    assert g.vendor == {"snp": Vendor.SNP, "tdx": Vendor.TDX}[vendor]
    assert (g.memory_bytes, g.vcpus, g.backing) == (MEM, 1, "2M")
    assert g.fatal is None and g.cost is None and g.host == Host()
    assert g.count_accepted() == 0


@pytest.mark.parametrize("kind", ["linux", "linux-early", "ovmf"])
@pytest.mark.parametrize("backing", ["2M", "4K"])
def test_accept_then_touch(vendor, kind, backing):
    g = build(vendor, backing=backing, cost_profile="count")
    path = g.accept_path(kind)
    path(4 * M2, 8 * M2 + 3 * K4)                 # 2 MiB-aligned middle, 4 KiB tail
    assert g.count_accepted() == (4 * M2 + 3 * K4) // K4
    assert g.count_accepted(0, 4 * M2) == 0
    st = path.stats
    assert (st.calls, st.failures, st.bytes) == (1, 0, 4 * M2 + 3 * K4)
    assert st.accept_4k >= 3 and st.exits > 0
    assert g.cost.seconds() > 0
    assert g.touch(5 * M2).outcome == TouchOutcome.SERVED
    assert g.touch(5 * M2, write=True, vcpu=0).outcome == TouchOutcome.SERVED
    assert g.fatal is None


def test_table_drives_the_path(vendor):
    g = build(vendor)
    t = Table(size=MEM // M2 // 8)
    t.mark(0, MEM // M2)
    t.set_accept(g.accept_path("linux"))
    assert t.accept(8 * M2, M2) == 2              # the unit and the guard unit
    assert g.count_accepted() == 2 * M2 // K4


def test_touch_before_accept_is_fatal(vendor):
    # SNP: a private access to memory the host never assigned takes an NPF
    # that KVM cannot resolve (the page was never made private), so the vCPU
    # spins (AMD APM vol. 2 sec. 15.36.10, RMP checks on guest accesses).
    # TDX: KVM AUGs the page at the first EPT violation, then the access to a
    # PENDING page exits with EEQ type 6 and KVM stops the TD (TDX module
    # td_ept_violation / KVM's memory-fault exit).
    g = build(vendor)
    r = g.touch(10 * M2)
    expected, kind = {"snp": (TouchOutcome.HUNG, FatalKind.HUNG),
                      "tdx": (TouchOutcome.TERMINATED, FatalKind.TERMINATED)}[vendor]
    assert r.outcome == expected and r.outcome.fatal and r.exits >= 1
    assert g.fatal.kind == kind and g.fatal.gpa == 10 * M2
    # a dead guest runs nothing more
    with pytest.raises(GuestDied if vendor == "tdx" else GuestHung):
        g.accept_path("linux")(0, M2)
    g.clear_fatal()
    assert g.fatal is None


def test_unaccept_then_touch_and_accept_again(vendor):
    g = build(vendor)
    path = g.accept_path("linux")
    path(0, 4 * M2)
    g.unaccept(M2, 3 * M2)
    assert g.count_accepted() == 2 * M2 // K4
    assert g.touch(0).outcome == TouchOutcome.SERVED
    path(M2, 3 * M2)                              # unaccepted again: accepting works
    assert g.count_accepted() == 4 * M2 // K4
    assert g.touch(2 * M2).outcome == TouchOutcome.SERVED
    assert g.fatal is None


def test_touch_after_unaccept_is_fatal(vendor):
    g = build(vendor)
    g.accept_path("linux")(0, 2 * M2)
    g.unaccept(0, 2 * M2)
    assert g.touch(M2).outcome.fatal
    assert g.fatal is not None


def test_double_accept_linux(vendor):
    # SNP: PVALIDATE of a validated page returns CF=1 (FAIL_NOUPDATE) and
    # Linux terminates with GHCB_TERM_PVALIDATE (set 1, code 2;
    # arch/x86/coco/sev/core.c pvalidate_pages).  TDX: ACCEPT answers
    # PAGE_ALREADY_ACCEPTED, tdx_accept_memory() fails at every size and
    # arch_accept_memory() panics "TDX: Failed to accept memory"
    # (arch/x86/coco/tdx/tdx-shared.c).
    g = build(vendor)
    path = g.accept_path("linux")
    path(0, M2)
    with pytest.raises({"snp": GuestTerminated, "tdx": GuestPanic}[vendor]):
        path(0, M2)
    f = g.fatal
    if vendor == "snp":
        assert (f.kind, f.reason_set, f.reason_code, f.eax) == (FatalKind.TERMINATED, 1, 2, 255)
    else:
        assert (f.kind, f.message) == (FatalKind.PANIC, "TDX: Failed to accept memory")
    assert path.stats.failures == 1


def test_double_accept_ovmf(vendor):
    # SNP OVMF: BasePvalidate treats CF=1 as a failure and the guest asks to
    # be terminated with the general reason (set 0, code 0;
    # OvmfPkg/Library/BaseMemEncryptSevLib SnpPageStateChangeInternal.c).
    # TDX OVMF: TdAcceptPages skips pages that report PAGE_ALREADY_ACCEPTED
    # (MdePkg/Library/TdxLib/AcceptPages.c).
    g = build(vendor)
    path = g.accept_path("ovmf")
    path(0, 2 * M2)
    if vendor == "snp":
        with pytest.raises(GuestTerminated):
            path(0, 2 * M2)
        assert (g.fatal.reason_set, g.fatal.reason_code) == (0, 0)
    else:
        path(0, 2 * M2)
        assert g.fatal is None and g.path_stats("ovmf").already_accepted > 0


def test_host_that_never_resolves_hangs_the_guest(vendor):
    g = build(vendor, host=Host("never-resolve"))
    with pytest.raises(GuestHung):
        g.accept_path("linux")(0, M2)
    assert g.fatal.kind == FatalKind.HUNG


def test_python_host_that_refuses_everything(vendor):
    # SNP: Linux checks SW_EXITINFO2 after every Page State Change and
    # terminates with GHCB_TERM_PSC (set 1, code 1; arch/x86/coco/sev/core.c
    # vmgexit_psc / __set_pages_state).  TDX: an ACCEPT whose EPT violation
    # is never served re-executes forever: the guest hangs.
    g = build(vendor, host=RefuseEverything())
    expected = {"snp": GuestTerminated, "tdx": GuestHung}[vendor]
    with pytest.raises(expected):
        g.accept_path("linux")(0, M2)
    if vendor == "snp":
        assert (g.fatal.reason_set, g.fatal.reason_code) == (1, 1)
        assert g.fatal.info == PSC_ERROR_GENERIC
    else:
        assert g.fatal.kind == FatalKind.HUNG
    assert g.count_accepted() == 0


def test_python_host_that_delegates_behaves_like_kvm(vendor):
    class Passthrough(Host):
        calls = 0

        def snp_psc(self, exit):
            Passthrough.calls += 1
            exit.default()

        def tdx_exit(self, exit):
            Passthrough.calls += 1
            exit.default()

    a, b = build(vendor, backing="4K"), build(vendor, backing="4K", host=Passthrough())
    for g in (a, b):
        g.accept_path("linux")(0, 2 * M2)
    assert a.count_accepted() == b.count_accepted() == 2 * M2 // K4
    assert a.path_stats() == b.path_stats()
    assert Passthrough.calls > 0


def test_stats_reset_and_options(vendor):
    g = build(vendor)
    path = g.accept_path("linux")
    path(0, M2)
    assert path.stats.calls == 1
    path.reset_stats()
    assert path.stats.calls == 0 and g.path_stats("linux") == path.stats
    assert g.accept_path("linux") is path            # one path per kind
    g.accept_path("linux", hang_limit=5)             # options replace the path
    assert g.accept_path("linux").stats.calls == 0


def test_bad_arguments_name_what_is_wrong_and_change_nothing(vendor):
    g = build(vendor)
    with pytest.raises(InvalidArgument, match="accept path kind"):
        g.accept_path("grub")
    with pytest.raises(InvalidArgument, match="vcpu"):
        g.accept_path("linux")(0, M2, vcpu=1)
    with pytest.raises(InvalidArgument, match="vcpu"):
        g.touch(0, vcpu=5)
    with pytest.raises(InvalidArgument, match="memory_bytes"):
        CONFIGS[vendor](memory_bytes=-1)
    with pytest.raises(InvalidArgument, match="backing"):
        CONFIGS[vendor](MEM, backing="1G")
    with pytest.raises(InvalidArgument, match="host"):
        CONFIGS[vendor](MEM, host="kvm")
    assert g.count_accepted() == 0 and g.fatal is None
    assert g.path_stats().calls == 0


def test_configs_pickle_and_rebuild(vendor):
    cfg = CONFIGS[vendor](MEM, vcpus=2, backing="4K", cost_profile="count",
                          host=Host("never-resolve"))
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and hash(again) == hash(cfg)
    g = again.build()
    assert (g.vcpus, g.backing, g.host) == (2, "4K", Host("never-resolve"))
    custom = pickle.loads(pickle.dumps(CONFIGS[vendor](MEM, host=RefuseEverything())))
    assert type(custom.host) is RefuseEverything
    with pytest.raises(TypeError, match="config"):
        pickle.dumps(g)


def _accept_in_worker(cfg):
    g = cfg.build()
    g.accept_path("linux")(0, 4 * M2)
    return g.count_accepted(), g.path_stats().calls


def test_config_ships_to_a_worker_process(vendor):
    cfg = CONFIGS[vendor](MEM, backing="4K")
    with ProcessPoolExecutor(max_workers=1) as pool:
        assert pool.submit(_accept_in_worker, cfg).result(timeout=60) == (4 * M2 // K4, 1)


def test_each_guest_binds_its_own_host():
    # Linux's MapGPA loop re-issues on RETRY and gives up after 3 answers
    # without progress (arch/x86/coco/tdx/tdx.c tdx_map_gpa); map-gpa-stall
    # counts its RETRYs per guest, so two guests built from one Host each
    # see all three.
    host = Host("map-gpa-stall", count=3)
    a, b = build("tdx", host=host), build("tdx", host=host)
    for g in (a, b):
        with pytest.raises(HostError):
            g.map_gpa(0, M2, shared=True)
        g.map_gpa(0, M2, shared=True)            # the stalls are used up


def test_a_guest_goes_away_when_unused(vendor):
    # no reference cycles between a guest, its paths, its counters and its
    # host: its C state (hundreds of MB for a large guest) is freed at once,
    # not by a later garbage collection in the middle of someone's timing
    import gc
    import weakref

    class Passthrough(Host):
        def tdx_exit(self, exit):
            exit.default()

        def snp_psc(self, exit):
            exit.default()

    gc.disable()
    try:
        g = build(vendor, cost_profile="count", host=Passthrough())
        path, cost = g.accept_path("linux"), g.cost
        path(0, M2)
        assert cost.counts()
        gone = weakref.ref(g)
        del g, path, cost
        assert gone() is None
    finally:
        gc.enable()


# ---- touch: the per-call fast path keeps the contract (issue 10) -------------------------
@pytest.mark.parametrize("bad", [dict(gpa=True), dict(gpa=-1), dict(gpa="0x1000"),
                                 dict(gpa=1 << 64), dict(gpa=K4, vcpu=2),
                                 dict(gpa=K4, vcpu=True), dict(gpa=K4, vcpu=-1),
                                 dict(gpa=K4, vcpu=1.0)])
def test_touch_bad_arguments_are_typed_errors_and_change_nothing(vendor, bad):
    g = build(vendor, vcpus=2)
    g.accept_path("linux")(0, M2)
    before = g.count_accepted()
    with pytest.raises(InvalidArgument):
        g.touch(**bad)
    assert g.count_accepted() == before and g.fatal is None


def test_touch_results_per_vcpu_and_outcome(vendor):
    g = build(vendor, vcpus=2)
    g.accept_path("linux")(0, M2)
    served = g.touch(K4, vcpu=1)
    assert (served.outcome, served.exits, served.vector) == (TouchOutcome.SERVED, 0, 0)
    assert g.touch(K4, True, vcpu=0) == served          # positional write flag works too
    dead = g.touch(8 * M2, write=True)                   # never accepted: fatal for both
    assert dead.outcome.fatal and dead.exits >= 1
    assert g.touch(K4, vcpu=1) == served                 # vCPU 1's slot untouched by vCPU 0
