"""Hypothesis strategies for memory maps, unit sizes and accept operations.

    from unaccepted.testing.strategies import memory_maps, unit_sizes, ops
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from hypothesis import strategies as st

from ..memmap import MemoryDescriptor, MemoryMap, MemoryType

PAGE = 4096
MiB = 1 << 20

unit_sizes = st.sampled_from([4096, 64 << 10, 1 * MiB, 2 * MiB, 2 * MiB, 2 * MiB, 128 * MiB,
                              1 << 31])

_TYPES = st.sampled_from([MemoryType.CONVENTIONAL, MemoryType.UNACCEPTED,
                          MemoryType.UNACCEPTED, MemoryType.BOOT_SERVICES_DATA,
                          MemoryType.RESERVED, MemoryType.ACPI_RECLAIM])


@st.composite
def memory_maps(draw: st.DrawFn, max_descriptors: int = 8, base: Optional[int] = None,
                max_gap_pages: int = 4096, max_pages: int = 8192,
                limit: int = 1 << 52) -> MemoryMap:
    """Valid, non-overlapping maps in shuffled (firmware) order.  Sizes and
    gaps mix unit-aligned and unaligned values so every stub branch is hit."""
    n = draw(st.integers(0, max_descriptors))
    addr = draw(st.integers(0, 1 << 20)) * PAGE if base is None else base
    descs: List[MemoryDescriptor] = []
    for _ in range(n):
        gap = draw(st.one_of(st.just(0), st.integers(0, max_gap_pages),
                             st.sampled_from([511, 512, 513, 1024])))
        pages = draw(st.one_of(st.integers(1, max_pages),
                               st.sampled_from([1, 511, 512, 513, 1023, 1024, 1025, 2048])))
        start = addr + gap * PAGE
        if start + pages * PAGE > limit:
            break
        descs.append(MemoryDescriptor(int(draw(_TYPES)), start, pages))
        addr = start + pages * PAGE
    order = draw(st.permutations(descs)) if descs else []
    return MemoryMap(order)


def ops(memory_map: MemoryMap, unit_size: int,
        max_ops: int = 12) -> st.SearchStrategy[List[Tuple[str, int, int]]]:
    """Accept/contains ops aimed at and around the map's unaccepted memory."""
    lo = min((d.start for d in memory_map), default=0)
    hi = max((d.end for d in memory_map), default=0)
    span_lo = max(lo - 2 * unit_size, 0)
    span_hi = hi + 2 * unit_size
    starts = st.one_of(
        st.integers(span_lo, span_hi),
        st.integers(span_lo // unit_size, span_hi // unit_size).map(lambda k: k * unit_size),
        st.integers(span_lo // PAGE, span_hi // PAGE).map(lambda k: k * PAGE),
    )
    sizes = st.one_of(st.just(0), st.integers(1, 3 * unit_size),
                      st.sampled_from([PAGE, unit_size, 2 * unit_size, unit_size - PAGE]),
                      st.integers(0, span_hi - span_lo))
    op = st.tuples(st.sampled_from(["accept", "contains"]), starts, sizes)
    return st.lists(op, max_size=max_ops)
