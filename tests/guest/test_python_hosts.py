"""Hosts written in Python: what a callback can do wrong is reported to the
caller that ran it, typed, and never turns into a wrong answer."""
import pytest

from unaccepted import (CallbackError, CostProfile, FatalKind, GuestTerminated, Host, HostError,
                        InvalidArgument, Misaligned, SnpConfig, Table, TdxConfig, TouchOutcome)
from unaccepted.host import HostAction, StopGuest

M2 = 2 << 20
MEM = 64 << 20


class BadAction(Host):
    def tdx_exit(self, exit):
        exit.action = "aug"                      # not a HostAction


class BadResponse(Host):
    def snp_psc_msr(self, exit):
        exit.response = -1                       # not a u64


class Raises(Host):
    fail = True

    def tdx_exit(self, exit):
        if Raises.fail:
            Raises.fail = False
            raise RuntimeError("boom")
        exit.default()


class Keeps(Host):
    kept = []

    def snp_psc(self, exit):
        Keeps.kept.append(exit)
        exit.default()


class Silent(Host):
    def tdx_vmcall(self, exit):
        pass                                     # never answers


class Delegate(Host):
    def tdx_exit(self, exit):
        exit.default()


def test_a_bad_answer_is_a_callback_error_not_a_success():
    g = TdxConfig(MEM, host=BadAction()).build()
    with pytest.raises(CallbackError) as e:
        g.accept_path("linux")(0, M2)
    assert isinstance(e.value.__cause__, ValueError)
    assert g.fatal is None and g.count_accepted() == 0
    s = SnpConfig(MEM, host=BadResponse()).build()
    with pytest.raises(CallbackError) as e:
        s.accept_path("linux-early")(0, 4096)
    assert isinstance(e.value.__cause__, InvalidArgument)
    assert s.fatal is None and s.count_accepted() == 0


def test_the_error_reaches_a_table_caller_once():
    g = TdxConfig(MEM, host=Raises()).build()
    t = Table(size=MEM // M2 // 8)
    t.mark(0, MEM // M2)
    t.set_accept(g.accept_path("linux"))
    with pytest.raises(CallbackError) as e:
        t.accept(0, M2)
    assert isinstance(e.value.__cause__, RuntimeError)
    # nothing stale is left behind for the next, successful operations
    assert t.accept(4 * M2, M2) == 2
    assert g.touch(4 * M2).outcome == TouchOutcome.SERVED


def test_an_exit_is_only_valid_during_its_callback():
    Keeps.kept.clear()
    g = SnpConfig(MEM, host=Keeps()).build()
    g.accept_path("linux")(0, M2)
    (exit,) = Keeps.kept
    for use in (lambda: exit.cur_entry, lambda: exit.entry(0), lambda: exit.set_entry(0, 1),
                lambda: exit.answer(sw_exitinfo2=1), exit.default, lambda: exit.sw_exitinfo2):
        with pytest.raises(InvalidArgument, match="answered already"):
            use()


def test_a_delegating_host_stops_the_guest_as_kvm_does():
    # KVM stops a TD whose ACCEPT faults on a GPA it holds as shared (its
    # memory-fault exit); a Python host that delegates does the same
    for host in (Host(), Delegate()):
        g = TdxConfig(MEM, host=host).build()
        g.map_gpa(0, M2, shared=True)
        with pytest.raises(GuestTerminated):
            g.accept_path("linux")(0, M2)
        assert g.fatal.kind == FatalKind.TERMINATED

    class Stops(Host):
        def tdx_exit(self, exit):
            raise StopGuest()

    g = TdxConfig(MEM, host=Stops()).build()
    with pytest.raises(GuestTerminated):
        g.accept_path("linux")(0, M2)


def test_an_unanswered_map_gpa_makes_no_progress():
    # Linux's MapGPA loop gives up after 3 RETRYs without progress
    # (arch/x86/coco/tdx/tdx.c tdx_map_gpa)
    g = TdxConfig(MEM, host=Silent()).build()
    with pytest.raises(HostError):
        g.map_gpa(0, M2, shared=True)


def test_configs_are_validated_hashable_and_hosts_fixed():
    with pytest.raises(Misaligned):
        SnpConfig((3 << 20) | 4096)
    with pytest.raises(InvalidArgument, match="asid"):
        SnpConfig(MEM, asid=0)
    with pytest.raises(InvalidArgument, match="vmpl"):
        SnpConfig(MEM, vmpl=9)
    cfg = SnpConfig(MEM, cost_profile=CostProfile.builtin("count"))
    assert hash(cfg) == hash(SnpConfig(MEM, cost_profile=CostProfile.builtin("count")))
    h = Host("map-gpa-stall", count=2)
    with pytest.raises(AttributeError):
        h.count = 5
    with pytest.raises(AttributeError):
        h.behavior = "kvm"
    assert h == Host("map-gpa-stall", count=2)


def test_unknown_path_options_are_named():
    g = SnpConfig(MEM).build()
    with pytest.raises(InvalidArgument, match="hang"):
        g.accept_path("linux", hang=5)
    assert g.accept_path("linux", hang_limit=5).stats.calls == 0


def test_host_actions_round_trip():
    assert {a.name for a in HostAction} >= {"NOTHING", "AUG_4K", "PSMASH"}
