"""Pure-Python reference model of the EFI stub's table and the kernel's
accept path (docs/fidelity.md; Linux
drivers/firmware/efi/libstub/unaccepted_memory.c and
drivers/firmware/efi/unaccepted_memory.c).

Deliberately simple: the bitmap is a Python set of unit indices, addresses
are unbounded ints, and every step is written in the order the kernel does
it.  Use it as an oracle, never on a hot path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Set, Tuple

PAGE = 4096
UNACCEPTED = 15
MAX_BITMAP_BYTES = 256 << 20

Range = Tuple[int, int]


def round_down(x: int, a: int) -> int:
    return x - x % a


def round_up(x: int, a: int) -> int:
    return round_down(x + a - 1, a)


@dataclass
class RefTable:
    unit_size: int
    phys_base: int
    size: int                      # bitmap bytes
    bits: Set[int] = field(default_factory=set)
    version: int = 1

    @property
    def nbits(self) -> int:
        return self.size * 8

    @property
    def coverage(self) -> int:     # bytes of memory the bitmap covers
        return self.nbits * self.unit_size

    def bitmap_bytes(self) -> bytes:
        out = bytearray(self.size)
        for b in self.bits:
            out[b // 8] |= 1 << (b % 8)
        return bytes(out)

    # ---- EFI stub ---------------------------------------------------------
    def process(self, start: int, end: int) -> List[Range]:
        """process_unaccepted_memory(start, end): returns the ranges accepted
        at once, in order, and marks the rest."""
        u = self.unit_size
        accepted: List[Range] = []
        if end - start < 2 * u:
            accepted.append((start, end))
            return accepted
        if start % u:
            accepted.append((start, round_up(start, u)))
            start = round_up(start, u)
        if end % u:
            accepted.append((round_down(end, u), end))
            end = round_down(end, u)
        if start < self.phys_base:
            accepted.append((start, min(self.phys_base, end)))
            start = self.phys_base
        if end < self.phys_base:
            return accepted
        s, e = start - self.phys_base, end - self.phys_base
        if e > self.coverage:
            # The kernel accepts from the bitmap's end; when the remainder lies
            # wholly past it, only the remainder (docs/fidelity.md).
            accepted.append((self.phys_base + max(s, self.coverage), self.phys_base + e))
            e = self.coverage
        for bit in range(s // u, e // u):
            self.bits.add(bit)
        return accepted

    # ---- kernel -----------------------------------------------------------
    def accept(self, start: int, size: int) -> List[Range]:
        """accept_memory(start, size): the ranges handed to the primitive."""
        u = self.unit_size
        end = round_up(start + size, PAGE)
        start = round_down(start, PAGE)
        if start < self.phys_base:
            start = self.phys_base
        if end < self.phys_base:
            return []
        start -= self.phys_base
        end -= self.phys_base
        if end % u == 0:
            end += u
        end = min(end, self.coverage)
        first, last = start // u, -(-end // u)
        runs: List[Range] = []
        bit = first
        while bit < last:
            if bit in self.bits:
                run_start = bit
                while bit < last and bit in self.bits:
                    bit += 1
                runs.append((self.phys_base + run_start * u, self.phys_base + bit * u))
            else:
                bit += 1
        for s, e in runs:
            for b in range((s - self.phys_base) // u, (e - self.phys_base) // u):
                self.bits.discard(b)
        return runs

    def contains(self, start: int, size: int) -> bool:
        """range_contains_unaccepted_memory(start, size), Linux's loop."""
        u = self.unit_size
        end = start + size
        if start < self.phys_base:
            start = self.phys_base
        if end < self.phys_base:
            return False
        start -= self.phys_base
        end -= self.phys_base
        if end % u == 0:
            end += u
        end = min(end, self.coverage)
        while start < end:
            if start // u in self.bits:
                return True
            start += u
        return False


def ref_table_from_map(descs: Sequence[Tuple[int, int, int]], unit_size: int) -> Optional[RefTable]:
    """allocate_unaccepted_bitmap() over (type, start, pages) descriptors."""
    unacc = [(s, s + p * PAGE) for t, s, p in descs if t == UNACCEPTED]
    if not unacc:
        return None
    lo = min(s for s, _ in unacc)
    hi = max(e for _, e in unacc)
    phys_base = round_down(lo, unit_size)
    end = round_up(hi, unit_size)
    size = -(-(end - phys_base) // (unit_size * 8))
    return RefTable(unit_size, phys_base, size)


def ref_stub(descs: Sequence[Tuple[int, int, int]], unit_size: int
             ) -> Tuple[Optional[RefTable], List[Range]]:
    """The stub's two steps over one map: (table or None, accepted ranges)."""
    table = ref_table_from_map(descs, unit_size)
    if table is None:
        return None, []
    accepted: List[Range] = []
    for t, s, p in descs:
        if t == UNACCEPTED:
            accepted += table.process(s, s + p * PAGE)
    return table, accepted
