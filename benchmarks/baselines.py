"""What a user would write without this package: the same bitmap operations
in pure Python (bytearray, one byte per unit), numpy and bitarray.

Each class offers the operations the benchmarks compare:
  arm(first, last)            mark units unaccepted
  accept(first, last, fn)     call fn(run_first, run_last) per run of set
                              units inside [first, last), then clear them
  any(first, last)            any unaccepted unit in [first, last)?
  count(first, last)          how many unaccepted units in [first, last)
  accept_memory(start, size, fn)
                              the kernel's accept_memory(): byte range to
                              units (page widening, guard unit, clamp), then
                              accept -- the same operation Table.accept does
"""
from __future__ import annotations

try:
    import numpy as np
except ImportError:  # pragma: no cover - optional extra
    np = None
try:
    from bitarray import bitarray
except ImportError:  # pragma: no cover - optional extra
    bitarray = None


PAGE = 4096


class LinuxSemantics:
    """accept_memory(start, size) over unit-index operations."""

    unit_size = 2 << 20
    phys_base = 0

    def units(self, start, size):
        unit = self.unit_size
        end = (start + size + PAGE - 1) & ~(PAGE - 1)
        start &= ~(PAGE - 1)
        if end < self.phys_base:
            return 0, 0
        start = max(start, self.phys_base) - self.phys_base
        end -= self.phys_base
        if end % unit == 0:
            end += unit
        end = min(end, self.nbits * unit)
        return start // unit, -(-end // unit)

    def accept_memory(self, start, size, fn):
        first, last = self.units(start, size)
        if first < last:
            self.accept(first, last, fn)


class PythonBitmap(LinuxSemantics):
    name = "python"

    def __init__(self, nbits):
        self.nbits = nbits
        self.buf = bytearray(nbits)

    def arm(self, first, last):
        self.buf[first:last] = b"\x01" * (last - first)

    def any(self, first, last):
        return self.buf.find(1, first, last) != -1

    def count(self, first, last):
        return self.buf.count(1, first, last)

    def accept(self, first, last, fn):
        buf = self.buf
        pos = buf.find(1, first, last)
        while pos != -1:
            end = buf.find(0, pos, last)
            if end == -1:
                end = last
            fn(pos, end)
            buf[pos:end] = bytes(end - pos)
            pos = buf.find(1, end, last)


class NumpyBitmap(LinuxSemantics):
    name = "numpy"

    def __init__(self, nbits):
        self.nbits = nbits
        self.a = np.zeros(nbits, dtype=bool)

    def arm(self, first, last):
        self.a[first:last] = True

    def any(self, first, last):
        return bool(self.a[first:last].any())

    def count(self, first, last):
        return int(np.count_nonzero(self.a[first:last]))

    def accept(self, first, last, fn):
        seg = self.a[first:last]
        if not seg.any():
            return
        padded = np.concatenate(([False], seg, [False])).view(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        for s, e in zip(edges[0::2], edges[1::2]):
            fn(first + int(s), first + int(e))
        seg[:] = False


class NumpyRuns(NumpyBitmap):
    """numpy with a vectorised 'callback': runs are computed but not visited
    one by one (the fastest numpy can go when the primitive is a no-op)."""

    name = "numpy-vectorised"

    def accept(self, first, last, fn=None):
        seg = self.a[first:last]
        if not seg.any():
            return 0
        padded = np.concatenate(([False], seg, [False])).view(np.int8)
        runs = len(np.flatnonzero(np.diff(padded))) // 2
        seg[:] = False
        return runs


class BitarrayBitmap(LinuxSemantics):
    name = "bitarray"

    def __init__(self, nbits):
        self.nbits = nbits
        self.a = bitarray(nbits, endian="little")
        self.a.setall(0)

    def arm(self, first, last):
        self.a[first:last] = 1

    def any(self, first, last):
        return self.a.find(1, first, last) != -1

    def count(self, first, last):
        return self.a.count(1, first, last)

    def accept(self, first, last, fn):
        a = self.a
        pos = a.find(1, first, last)
        while pos != -1:
            end = a.find(0, pos, last)
            if end == -1:
                end = last
            fn(pos, end)
            a[pos:end] = 0
            pos = a.find(1, end, last)


def available():
    out = [PythonBitmap]
    if np is not None:
        out.append(NumpyBitmap)
    if bitarray is not None:
        out.append(BitarrayBitmap)
    return out
