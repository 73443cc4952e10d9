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

from typing import List, Protocol, Tuple

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from .reference import RefTable


class Implementation(Protocol):
    """What AcceptanceMachine drives: accept() returns the (start, end)
    ranges handed to the primitive, in order."""

    def accept(self, start: int, size: int) -> List[Tuple[int, int]]: ...
    def contains(self, start: int, size: int) -> bool: ...
    def mark(self, first: int, last: int) -> object: ...
    @property
    def bitmap(self) -> bytes: ...


class _CoreAdapter:
    """Our Table behind the machine's interface (records primitive calls)."""

    def __init__(self, unit_size: int, phys_base: int, size: int) -> None:
        from ..primitives import Recorder
        from ..table import Table

        self.table = Table(unit_size, phys_base, size)
        self.rec = Recorder()
        self.table.set_accept(self.rec)

    def accept(self, start: int, size: int) -> List[Tuple[int, int]]:
        before = len(self.rec)
        self.table.accept(start, size)
        return self.rec.ranges(before)

    def contains(self, start: int, size: int) -> bool:
        return self.table.contains(start, size)

    def mark(self, first: int, last: int) -> None:
        self.table.mark(first, last)

    @property
    def bitmap(self) -> bytes:
        return self.table.bitmap


class AcceptanceMachine(RuleBasedStateMachine):
    """Compare an implementation with the reference model step by step."""

    def make_implementation(self, unit_size: int, phys_base: int, size: int) -> Implementation:
        return _CoreAdapter(unit_size, phys_base, size)

    @initialize(unit_shift=st.integers(12, 28), base_units=st.integers(0, 64),
                size=st.integers(0, 16))
    def setup(self, unit_shift: int, base_units: int, size: int) -> None:
        self.unit = 1 << unit_shift
        self.base = base_units * self.unit
        self.size = size
        self.impl = self.make_implementation(self.unit, self.base, size)
        self.ref = RefTable(self.unit, self.base, size)
        self.span = (self.size * 8 + 4) * self.unit

    def _addr(self, data: st.DataObject) -> int:
        return data.draw(st.one_of(
            st.integers(max(self.base - 2 * self.unit, 0), self.base + self.span),
            st.integers(0, self.span // self.unit).map(lambda k: self.base + k * self.unit)))

    @rule(data=st.data())
    def mark(self, data: st.DataObject) -> None:
        nbits = self.size * 8
        first = data.draw(st.integers(0, nbits))
        last = data.draw(st.integers(first, nbits))
        self.impl.mark(first, last)
        self.ref.bits.update(range(first, last))

    def _size(self, data: st.DataObject) -> int:
        u = self.unit
        return data.draw(st.one_of(st.integers(0, 5 * u), st.integers(0, 5).map(lambda k: k * u),
                                   st.integers(1, 5 * u // 4096).map(lambda k: k * 4096)))

    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        start, size = self._addr(data), self._size(data)
        assert self.impl.accept(start, size) == self.ref.accept(start, size)

    @rule(data=st.data())
    def contains(self, data: st.DataObject) -> None:
        start, size = self._addr(data), self._size(data)
        assert self.impl.contains(start, size) == self.ref.contains(start, size)

    @invariant()
    def same_bitmap(self) -> None:
        if hasattr(self, "impl"):
            assert self.impl.bitmap == self.ref.bitmap_bytes()
