"""A reusable Hypothesis state machine for accept-path implementations.

It drives an implementation and the pure-Python reference model with the same
accept / contains / mark steps and checks that they agree after every step.
Test our Table, or your own implementation with the same three methods:

    from hypothesis.stateful import run_state_machine_as_test
    from unaccepted.testing.stateful import AcceptanceMachine

    class MyMachine(AcceptanceMachine):
        def make_implementation(self, unit_size, phys_base, size):
            return MyTable(unit_size, phys_base, size)   # accept/contains/mark/bitmap

    TestMine = MyMachine.TestCase

The implementation must offer accept(start, size) -> list of (start, end)
ranges handed to its primitive, contains(start, size) -> bool,
mark(first, last) and a `bitmap` bytes property.
"""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from .reference import RefTable



class _CoreAdapter:
    """Our Table behind the machine's interface (records primitive calls)."""

    def __init__(self, unit_size, phys_base, size):
        from ..primitives import Recorder
        from ..table import Table

        self.table = Table(unit_size, phys_base, size)
        self.rec = Recorder()
        self.table.set_accept(self.rec)

    def accept(self, start, size):
        before = len(self.rec)
        self.table.accept(start, size)
        return self.rec.ranges(before)

    def contains(self, start, size):
        return self.table.contains(start, size)

    def mark(self, first, last):
        self.table.mark(first, last)

    @property
    def bitmap(self):
        return self.table.bitmap


class AcceptanceMachine(RuleBasedStateMachine):
    """Compare an implementation with the reference model step by step."""

    def make_implementation(self, unit_size, phys_base, size):
        return _CoreAdapter(unit_size, phys_base, size)

    @initialize(unit_shift=st.integers(12, 28), base_units=st.integers(0, 64),
                size=st.integers(0, 16))
    def setup(self, unit_shift, base_units, size):
        self.unit = 1 << unit_shift
        self.base = base_units * self.unit
        self.size = size
        self.impl = self.make_implementation(self.unit, self.base, size)
        self.ref = RefTable(self.unit, self.base, size)
        self.span = (self.size * 8 + 4) * self.unit

    def _addr(self, data):
        return data.draw(st.one_of(
            st.integers(max(self.base - 2 * self.unit, 0), self.base + self.span),
            st.integers(0, self.span // self.unit).map(lambda k: self.base + k * self.unit)))

    @rule(data=st.data())
    def mark(self, data):
        nbits = self.size * 8
        first = data.draw(st.integers(0, nbits))
        last = data.draw(st.integers(first, nbits))
        self.impl.mark(first, last)
        self.ref.bits.update(range(first, last))

    def _size(self, data):
        u = self.unit
        return data.draw(st.one_of(st.integers(0, 5 * u), st.integers(0, 5).map(lambda k: k * u),
                                   st.integers(1, 5 * u // 4096).map(lambda k: k * 4096)))

    @rule(data=st.data())
    def accept(self, data):
        start, size = self._addr(data), self._size(data)
        assert self.impl.accept(start, size) == self.ref.accept(start, size)

    @rule(data=st.data())
    def contains(self, data):
        start, size = self._addr(data), self._size(data)
        assert self.impl.contains(start, size) == self.ref.contains(start, size)

    @invariant()
    def same_bitmap(self):
        if hasattr(self, "impl"):
            assert self.impl.bitmap == self.ref.bitmap_bytes()
