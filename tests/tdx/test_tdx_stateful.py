"""Hypothesis state machine mixing host SEAMCALLs (AUG, BLOCK, TRACK, REMOVE,
UNBLOCK, DEMOTE, PROMOTE), guest operations (ACCEPT at each level, touches,
MapGPA, the accept paths, unaccept), the host's named behaviours and
interrupts.  After every step the C model must
agree with the reference model, and the invariants of the TDX module's
Secure EPT state rules (tdx_1.5 sept_state_lookup, tdh_mem_page_*.c,
tdg_mem_page_accept.c) must hold:

  * a page becomes guest-accessible (MAPPED) only through the guest's ACCEPT
    (never through a host operation alone);
  * while a page stays MAPPED/BLOCKED its host page never changes: the host's
    only way to swap it is REMOVE + AUG, which leaves it PENDING;
  * pages are zero right after a successful ACCEPT;
  * PAGE_ALREADY_ACCEPTED changes nothing, in particular it never zeroes.
"""
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from _tdx_both import K4, M2, Both, Err
from unaccepted import Host

REGIONS = 4
MEM = REGIONS * M2
PAGES = [0, 1, 5, 511]
gpas = st.builds(lambda r, i: r * M2 + i * K4, st.integers(0, REGIONS - 1), st.sampled_from(PAGES))
regions = st.integers(0, REGIONS - 1).map(lambda r: r * M2)
SAMPLES = [r * M2 + i * K4 for r in range(REGIONS) for i in PAGES]
ACCESSIBLE = (4, 1)   # MAPPED, BLOCKED (a blocked mapped page keeps its host page)
ACCEPTING = {"accept", "accept_serviced", "linux", "ovmf"}
# the TDX host behaviours; 0.1's VMM policies AUG_REQUESTED / AUG_4K are kvm / aug-4k
HOSTS = ["kvm", "aug-4k", "never-resolve", "map-gpa-refuse"]


class TdxMachine(RuleBasedStateMachine):
    @initialize(backing=st.sampled_from(["2M", "4K"]), initial=st.sampled_from(["free", "pending"]),
                host=st.sampled_from(["kvm", "aug-4k"]), ve_disable=st.booleans())
    def setup(self, backing, initial, host, ve_disable):
        self.b = Both(MEM, backing=backing, initial=initial, host=Host(host),
                      pending_ve_disable=ve_disable)
        self.hpa = {}
        self.rule = "init"
        self._remember()

    def _remember(self):
        self.prev = {g: self.b.c.entry(g) for g in SAMPLES}

    def same(self, pair):
        return self.b.same(pair, self.rule)

    # ---- host ----------------------------------------------------------------
    @rule(g=gpas, level=st.sampled_from([0, 1]), op=st.sampled_from(
        ["aug", "block", "remove", "unblock"]))
    def host_op(self, g, level, op):
        self.rule = op
        pi = (g - g % M2) | 1 if level else g
        self.same(getattr(self.b, op)(0, raw=pi))

    @rule(g=regions, op=st.sampled_from(["demote", "promote"]))
    def split_merge(self, g, op):
        self.rule = op
        self.same(getattr(self.b, op)(0, raw=g | 1))

    @rule()
    def track(self):
        self.rule = "track"
        self.same(self.b.track())

    @rule(g=gpas, level=st.sampled_from([0, 1]), locked=st.booleans(), hp=st.booleans())
    def contention(self, g, level, locked, hp):
        self.rule = "contention"
        e = self.b.c.entry(g - g % M2 if level else g, None)
        if level == 0 and e.level != 0:
            return
        base = g - g % M2 if level else g
        self.same(self.b.set_lock(base, level, locked))
        self.same(self.b.set_host_priority(base, level, hp))

    @rule(name=st.sampled_from(HOSTS))
    def host(self, name):
        self.rule = "host"
        self.b.set_host(Host(name))

    @rule(n=st.integers(0, 4))
    def map_gpa_stalls(self, n):
        self.rule = "stalls"
        self.b.set_host(Host("map-gpa-stall", count=n))

    # ---- guest ----------------------------------------------------------------
    @rule(g=gpas, level=st.sampled_from([0, 1, 2]))
    def accept(self, g, level):
        self.rule = "accept"
        base = g - g % (K4 << 9 * level) if level < 2 else 0
        before = self.b.c.count_nonzero(0, MEM)
        r = self.same(self.b.accept(rcx=base | level))
        if r.rax == 0 and not r.exited and not r.interrupted:
            size = K4 << 9 * level
            assert self.b.c.count_nonzero(base, base + size) == 0
        if r.rax >> 32 == 0xB0A and not r.exited:
            assert self.b.c.count_nonzero(0, MEM) == before

    @rule(g=gpas, level=st.sampled_from([0, 1]))
    def accept_serviced(self, g, level):
        """Execute, let the host serve exits, re-execute (at most 4 times)."""
        self.rule = "accept_serviced"
        base = g - g % (K4 << 9 * level)
        for _ in range(4):
            r = self.same(self.b.accept(rcx=base | level))
            if not r.exited:
                break
            a = self.same(self.b.serve_exit(r))
            if isinstance(a, Err):
                break

    @rule(g=gpas, write=st.booleans())
    def touch(self, g, write):
        self.rule = "touch"
        self.same(self.b.access(g, write))

    @rule(g=gpas, write=st.booleans())
    def linux_touch(self, g, write):
        self.rule = "linux_touch"
        self.same(self.b.touch(g, write=write))

    @rule()
    def veinfo(self):
        self.rule = "veinfo"
        self.same(self.b.veinfo_get())

    @rule(start=regions, pages=st.integers(1, 700), shared=st.booleans())
    def map_gpa(self, start, pages, shared):
        self.rule = "map_gpa"
        end = min(start + pages * K4, MEM)
        s = self.b.c.shared_bit if shared else 0
        self.same(self.b.tdvmcall(0, 0x10001, start | s, end - start))

    @rule(start=regions, n=st.integers(1, REGIONS), kind=st.sampled_from(["linux", "ovmf"]))
    def accept_path(self, start, n, kind):
        self.rule = kind
        end = min(start + n * M2, MEM)
        # a guest that dies (or is dead) dies the same way in both models; the
        # fatal record and the path statistics are compared by the invariant
        self.same(self.b.path(kind, start, end))

    @rule(start=regions, pages=st.integers(1, 700))
    def unaccept(self, start, pages):
        self.rule = "unaccept"
        end = min(start + pages * K4, MEM)
        self.same(self.b.run(lambda g: g.unaccept(start, end)))

    @rule()
    def clear_fatal(self):
        self.rule = "clear_fatal"
        self.b.clear_fatal()

    @rule(after=st.integers(0, 600), period=st.integers(0, 300))
    def interrupts(self, after, period):
        self.rule = "interrupts"
        self.b.set_interrupts(0, after, period)

    # ---- invariants -------------------------------------------------------------
    @invariant()
    def models_agree_and_invariants_hold(self):
        if not hasattr(self, "b"):
            return
        self.b.check_same(0, MEM, SAMPLES)
        for g in SAMPLES:
            before, now = self.prev[g], self.b.c.entry(g)
            was = before.state in ACCESSIBLE and before.is_leaf
            is_ = now.state in ACCESSIBLE and now.is_leaf
            # BLOCKED -> MAPPED is the host unblocking the same page (UNBLOCK,
            # or DEMOTE/PROMOTE of a blocked entry, also inside MapGPA)
            if now.state == 4 and not was:
                assert self.rule in ACCEPTING, (self.rule, hex(g), before, now)
                self.hpa[g] = now.hpa
            if was and is_:
                assert now.hpa == before.hpa, (self.rule, hex(g), before, now)
            if is_ and g in self.hpa:
                assert now.hpa == self.hpa[g], (self.rule, hex(g))
        self._remember()


TdxMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=40, deadline=None)
TestTdxMachine = TdxMachine.TestCase


@pytest.mark.slow
class TestTdxMachineExhaustive(TdxMachine.TestCase):
    """The same machine, five times longer: CI runs it (`-m slow` selects
    it, `-m "not slow"` is the day-to-day subset)."""

    settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# ---- the core's reusable acceptance machine with the TDX Linux path below ----
from unaccepted import Recorder, Table                           # noqa: E402
from unaccepted.tdx import SeptState, TdxGuest                   # noqa: E402
from unaccepted.testing.stateful import AcceptanceMachine        # noqa: E402


class _TdxTableAdapter:
    """A Table whose primitive is a Recorder forwarding to the TDX model's
    Linux path.  `mark` re-marks units unaccepted the way a real guest could
    see it happen: the memory went to shared and back (MapGPA), so the host
    removed the private pages and they must be accepted again."""

    def __init__(self, unit_size, phys_base, size):
        self.unit = unit_size
        self.base = phys_base
        end = phys_base + size * 8 * unit_size
        mem = max(-(-end // M2) * M2, M2)
        self.guest = TdxGuest(mem, backing="4K" if unit_size < M2 else "2M")
        self.path = self.guest.accept_path("linux")
        self.rec = Recorder(self.path)
        self.table = Table(unit_size, phys_base, size, accept=self.rec)
        self.accepted = set()

    def accept(self, start, size):
        before = len(self.rec)
        self.table.accept(start, size)
        ranges = self.rec.ranges(before)
        for s, e in ranges:
            self.accepted.update(range(s // K4, e // K4))
        return ranges

    def contains(self, start, size):
        return self.table.contains(start, size)

    def mark(self, first, last):
        self.table.mark(first, last)
        if first < last:
            s, e = self.base + first * self.unit, self.base + last * self.unit
            self.guest.map_gpa(s, e, shared=True)
            self.guest.map_gpa(s, e, shared=False)
            self.accepted.difference_update(range(s // K4, e // K4))

    @property
    def bitmap(self):
        return self.table.bitmap


class TdxAcceptanceMachine(AcceptanceMachine):
    def make_implementation(self, unit_size, phys_base, size):
        return _TdxTableAdapter(unit_size, phys_base, size)

    @invariant()
    def tdx_pages_match_accepted_units(self):
        if not hasattr(self, "impl"):
            return
        g = self.impl.guest
        assert g.count_states().get(SeptState.MAPPED, 0) == len(self.impl.accepted)
        assert self.impl.path.stats.failures == 0


TdxAcceptanceMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25,
                                                  deadline=None)
TestTdxAcceptanceMachine = TdxAcceptanceMachine.TestCase
