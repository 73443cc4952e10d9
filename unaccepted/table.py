"""The EFI unaccepted-memory table and the kernel's accept path, over the C core.

    table, accepted = stub_build_table(memory_map)      # what the EFI stub does
    table.accept(start, size)                            # accept_memory()
    table.contains(start, size)                          # range_contains_unaccepted_memory()
    table.run(OpBatch([...]))                            # many ops in one C call
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, List, NamedTuple, NoReturn, Optional, Sequence, Tuple, Union, overload

from ._core import ffi, lib
from .errors import InvalidMemoryMap, InvalidOp, InvalidTable, check, error_for
from .memmap import MemoryMap
from .primitives import AcceptCallable, Primitive, as_primitive, raise_callback_error
from ._interrupt import new_flag, run_interruptible
from .validate import as_bool, as_instance, as_u32, as_u64, is_int

DEFAULT_UNIT_SIZE: int = lib.UA_DEFAULT_UNIT_SIZE
_accept_units = lib.ua_accept_memory_units
_contains = lib.ua_contains_unaccepted
HEADER_SIZE: int = lib.UA_TABLE_HEADER_SIZE
MAX_BITMAP_BYTES: int = lib.UA_MAX_BITMAP_BYTES
AcceptArg = Union[Primitive, AcceptCallable, None]
Range = Tuple[int, int]
U64 = 1 << 64
# calls this large run where Ctrl-C can stop them (unaccepted/_interrupt.py)
_LONG_ACCEPT = 1 << 36          # bytes: 64 GiB
_LONG_BATCH = 1 << 14           # ops


def _u64(value: object, name: str) -> int:
    return as_u64(value, name, exc=InvalidOp)


def _bad_range(start: object, size: object, vcpu: object) -> NoReturn:
    """The typed error for arguments the fast paths' C call refused."""
    _u64(start, "start")
    _u64(size, "size")
    raise InvalidOp(f"vcpu = {vcpu!r} is not a u32")


def _unit(unit_size: object) -> int:
    if not is_int(unit_size) or not 0 < unit_size < 1 << 32:
        raise error_for(lib.UA_E_UNIT_SIZE, f"unit_size = {unit_size!r}")
    return unit_size


class AcceptResult(NamedTuple):
    runs: int    # calls made to the accept primitive
    units: int   # units accepted
    waits: int   # times the caller waited for another accepter


class OpResult(NamedTuple):
    kind: str
    contains: Optional[bool]
    runs: int
    units: int


@dataclass(frozen=True)
class Op:
    kind: str          # "accept" or "contains"
    start: int
    size: int
    vcpu: int = 0


_KINDS = {"accept": lib.UA_OP_ACCEPT, "contains": lib.UA_OP_CONTAINS}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}


class OpBatch:
    """Operations packed once into a C array, to be run many times."""

    def __init__(self, ops: Iterable[Union["Op", Tuple[Any, ...]]]) -> None:
        ops = list(ops)
        self._n = len(ops)
        self._ops = ffi.new("ua_op[]", max(self._n, 1))
        for i, op in enumerate(ops):
            if isinstance(op, Op):
                kind, start, size, vcpu = op.kind, op.start, op.size, op.vcpu
            else:
                if isinstance(op, (str, bytes)) or not isinstance(op, (tuple, list)) or \
                        not 3 <= len(op) <= 4:
                    raise InvalidOp(f"op {i}: {op!r} is not an Op or a (kind, start, size"
                                    "[, vcpu]) tuple")
                kind, start, size, vcpu = (tuple(op) + (0,))[:4]
            if not isinstance(kind, str) or kind not in _KINDS:
                raise InvalidOp(f"op {i}: unknown kind {kind!r} (expected accept or contains)")
            c = self._ops[i]
            c.kind = _KINDS[kind]
            c.start = _u64(start, f"op {i}: start")
            c.size = _u64(size, f"op {i}: size")
            c.vcpu = as_u32(vcpu, "vcpu", exc=InvalidOp, where=f"op {i}: ")

    def __len__(self) -> int:
        return self._n


class Table:
    """LINUX_EFI_UNACCEPTED_MEM_TABLE plus the accept path that owns it.

    Bit i set = unit i unaccepted.  Addresses outside
    [phys_base, coverage_end) count as accepted."""

    def __init__(self, unit_size: int = DEFAULT_UNIT_SIZE, phys_base: int = 0, size: int = 0,
                 *, accept: AcceptArg = None) -> None:
        out = ffi.new("ua_table **")
        as_u32(unit_size, "unit_size")
        as_u64(phys_base, "phys_base")
        as_u64(size, "size")
        check(lib.ua_table_create(unit_size, phys_base, size, out),
              f"table(unit_size={unit_size:#x}, phys_base={phys_base:#x}, size={size})")
        self._adopt(out[0])
        self.set_accept(accept)

    @classmethod
    def _wrap(cls, handle: Any, accept: AcceptArg = None) -> "Table":
        self = cls.__new__(cls)
        self._adopt(handle)
        self.set_accept(accept)
        return self

    def _adopt(self, handle: Any) -> None:
        self._handle = ffi.gc(handle, lib.ua_table_destroy)
        self._cancel = new_flag()     # Ctrl-C: read by the core between runs and ops
        lib.ua_table_set_cancel(self._handle, self._cancel)
        info = ffi.new("ua_table_info *")
        check(lib.ua_table_info_get(self._handle, info))
        self.version: int = info.version
        self.unit_size: int = info.unit_size
        self.phys_base: int = info.phys_base
        self.size: int = info.size
        self.nbits: int = info.nbits
        self.coverage_end: int = info.coverage_end

    def __repr__(self) -> str:
        return (f"Table(unit_size={self.unit_size:#x}, phys_base={self.phys_base:#x}, "
                f"size={self.size}, unaccepted_units={self.unaccepted_units})")

    # ---- construction from a memory map ------------------------------------
    @classmethod
    def from_memory_map(cls, memory_map: MemoryMap, unit_size: int = DEFAULT_UNIT_SIZE,
                        *, accept: AcceptArg = None) -> Optional["Table"]:
        """allocate_unaccepted_bitmap(): an empty table sized from the map's
        type-15 descriptors, or None when there are none."""
        as_instance(memory_map, "memory_map", MemoryMap, InvalidMemoryMap).validate()
        arr, n = memory_map._c_array()
        out = ffi.new("ua_table **")
        check(lib.ua_table_from_memmap(arr, n, _unit(unit_size), out),
              f"cannot size a table with unit_size = {unit_size:#x}")
        if out[0] == ffi.NULL:
            return None
        return cls._wrap(out[0], accept)

    def process_memory_map(self, memory_map: MemoryMap, *, accept: AcceptArg = None,
                           vcpu: int = 0) -> List[Range]:
        """process_unaccepted_memory() for every type-15 descriptor, in map
        order.  Returns the ranges accepted at once, in the stub's order."""
        as_instance(memory_map, "memory_map", MemoryMap, InvalidMemoryMap).validate()
        arr, n = memory_map._c_array()
        prim = None if accept is None else as_primitive(accept)
        fn, ctx = prim._c_accept if prim is not None else (ffi.NULL, ffi.NULL)
        cap = 4 * len(memory_map.unaccepted)
        out = ffi.new("ua_range[]", max(cap, 1))
        n_out = ffi.new("size_t *")
        status = lib.ua_table_process_memmap(self._handle, arr, n, fn, ctx, vcpu, out, cap,
                                             n_out)
        if status:
            raise_callback_error(prim, status, "stub accept failed")
            check(status, "process_unaccepted_memory failed")
        return [(out[i].start, out[i].end) for i in range(n_out[0])]

    def process_range(self, start: int, end: int, *, accept: AcceptArg = None,
                      vcpu: int = 0) -> List[Range]:
        prim = None if accept is None else as_primitive(accept)
        fn, ctx = prim._c_accept if prim is not None else (ffi.NULL, ffi.NULL)
        out = ffi.new("ua_range[]", 4)
        n_out = ffi.new("size_t *")
        status = lib.ua_table_process_range(self._handle, _u64(start, "start"),
                                            _u64(end, "end"), fn, ctx, vcpu, out, 4, n_out)
        if status:
            raise_callback_error(prim, status, "stub accept failed")
            check(status, f"process_unaccepted_memory({start:#x}, {end:#x})")
        return [(out[i].start, out[i].end) for i in range(n_out[0])]

    # ---- binary form --------------------------------------------------------
    def to_bytes(self) -> bytes:
        n = lib.ua_table_serialized_size(self._handle)
        buf = ffi.new("uint8_t[]", n)
        check(lib.ua_table_serialize(self._handle, buf, n, ffi.NULL))
        return bytes(ffi.buffer(buf, n))

    @classmethod
    def parse(cls, data: bytes, *, accept: AcceptArg = None, exact: bool = True) -> "Table":
        """A table from its binary form; rejects an unknown version.  Bytes
        after the bitmap are an error unless exact=False (a table read out
        of a larger memory image)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidTable(f"data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        out = ffi.new("ua_table **")
        check(lib.ua_table_parse(data, len(data), out),
              f"cannot parse a {len(data)}-byte unaccepted-memory table")
        table = cls._wrap(out[0], accept)
        used = HEADER_SIZE + table.size
        if as_bool(exact, "exact") and len(data) > used:
            raise InvalidTable(f"{len(data) - used} byte(s) after the {used}-byte table "
                               "(pass exact=False to ignore them)")
        return table

    @property
    def bitmap(self) -> bytes:
        buf = ffi.new("uint8_t[]", max(self.size, 1))
        check(lib.ua_table_bitmap_read(self._handle, 0, self.size, buf))
        return bytes(ffi.buffer(buf, self.size))

    @bitmap.setter
    def bitmap(self, data: bytes) -> None:
        data = bytes(data)
        if len(data) != self.size:
            raise error_for(lib.UA_E_RANGE, f"bitmap must be {self.size} bytes, got {len(data)}")
        check(lib.ua_table_bitmap_write(self._handle, data, len(data)), "bitmap write")

    @property
    def unaccepted_units(self) -> int:
        return int(lib.ua_table_count_unaccepted(self._handle))

    def mark(self, first: int, last: int, unaccepted: bool = True) -> None:
        """Set (unaccepted) or clear units [first, last) without accepting."""
        check(lib.ua_table_mark(self._handle, _u64(first, "first"), _u64(last, "last"),
                                1 if unaccepted else 0),
              f"mark units [{first}, {last}) of {self.nbits}")

    def unaccepted_ranges(self) -> List[Range]:
        """[start, end) byte ranges the table still marks unaccepted (one C
        scan; the list has one entry per run)."""
        return _runs(self)

    # ---- the accept path ------------------------------------------------
    def set_accept(self, accept: AcceptArg) -> None:
        """Install arch_accept_memory(): None (no-op), a primitive object, or
        a Python callable fn(start, end, vcpu)."""
        prim = as_primitive(accept)
        fn, ctx = prim._c_accept
        check(lib.ua_table_set_accept(self._handle, fn, ctx), "cannot change the primitive")
        self._accept = prim

    @property
    def accept_primitive(self) -> Primitive:
        return self._accept

    def accept(self, start: int, size: int, vcpu: int = 0) -> int:
        """accept_memory(start, size) as mainline Linux does it; returns the
        number of units accepted.  One C call: this is the per-call fast path."""
        # cffi takes a bool for an int: refuse it as every other entry point
        # does.  Everything else is checked by the C call itself; messages are
        # formatted only on an error.
        if start is True or start is False or size is True or size is False:
            _bad_range(start, size, vcpu)
        try:
            if size < _LONG_ACCEPT:
                n: int = _accept_units(self._handle, start, size, vcpu)
            else:
                done: int = run_interruptible(self._cancel, self._accept_units, start, size,
                                              vcpu)
                return done
        except (TypeError, OverflowError):
            _bad_range(start, size, vcpu)
        if n < 0:
            raise_callback_error(self._accept, -n, "accept_memory")
            check(-n, f"accept_memory({start:#x}, {size:#x})")
        return n

    def _accept_units(self, start: int, size: int, vcpu: int) -> int:
        n: int = _accept_units(self._handle, start, size, vcpu)
        if n < 0:
            raise_callback_error(self._accept, -n, "accept_memory")
            check(-n, f"accept_memory({start:#x}, {size:#x})")
        return n

    def accept_detailed(self, start: int, size: int, vcpu: int = 0) -> AcceptResult:
        """accept_memory(start, size), reporting runs, units and waits."""
        res = ffi.new("ua_accept_result *")
        status = lib.ua_accept_memory(self._handle, _u64(start, "start"), _u64(size, "size"),
                                      vcpu, res)
        if status:
            raise_callback_error(self._accept, status, "accept_memory")
            check(status, f"accept_memory({start:#x}, {size:#x})")
        return AcceptResult(res.runs, res.units, res.waits)

    def contains(self, start: int, size: int) -> bool:
        """range_contains_unaccepted_memory(start, size), Linux's answer."""
        if start is True or start is False or size is True or size is False:
            _bad_range(start, size, 0)
        try:
            r: int = _contains(self._handle, start, size)
        except (TypeError, OverflowError):
            _bad_range(start, size, 0)
        if r < 0:
            check(-r, f"range_contains_unaccepted_memory({start:#x}, {size:#x})")
        return r == 1

    def run(self, batch: Union["OpBatch", Iterable[Union["Op", Tuple[Any, ...]]]], *,
            results: bool = True) -> Sequence[OpResult]:
        """Run an OpBatch (or an iterable of Op / (kind, start, size[, vcpu]))
        in one C call.  Stops at the first failing op and raises; the ops
        before it have taken effect (exc.completed says how many)."""
        if not isinstance(batch, OpBatch):
            batch = OpBatch(batch)
        if batch._n >= _LONG_BATCH:
            out: Sequence[OpResult] = run_interruptible(self._cancel, self._run, batch,
                                                        results)
            return out
        return self._run(batch, results)

    def _run(self, batch: "OpBatch", results: bool) -> Sequence["OpResult"]:
        cursor = ffi.new("size_t *")
        # results of this call only (a batch may run on several threads)
        res = ffi.new("ua_op_result[]", batch._n) if results and batch._n else ffi.NULL
        status = lib.ua_run_ops(self._handle, batch._ops, batch._n, res, cursor)
        if status:
            raise_callback_error(self._accept, status, f"op {cursor[0]}")
            exc = error_for(status, f"op {cursor[0]}")
            exc.completed = cursor[0]
            raise exc
        if not results:
            return []
        return OpResults(batch, res)


class OpResults(Sequence[OpResult]):
    """The results of one Table.run, read from the C array on demand: no
    per-op Python work unless an op's result is looked at."""

    __slots__ = ("_batch", "_res")

    def __init__(self, batch: OpBatch, res: Any) -> None:
        self._batch = batch
        self._res = res

    def __len__(self) -> int:
        return self._batch._n

    def _one(self, i: int) -> OpResult:
        r = self._res[i]
        kind = _KIND_NAMES[self._batch._ops[i].kind]
        return OpResult(kind, bool(r.contains) if kind == "contains" else None, r.runs, r.units)

    @overload
    def __getitem__(self, i: int) -> OpResult: ...

    @overload
    def __getitem__(self, i: slice) -> List[OpResult]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[OpResult, List[OpResult]]:
        if isinstance(i, slice):
            return [self._one(k) for k in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"op result {i} of {n}")
        return self._one(i % n)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None   # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"OpResults({list(self)!r})"


def _runs(table: Table) -> List[Range]:
    words = lib.ua_table_words(table._handle)
    pos = ffi.new("uint64_t *", 0)
    a = ffi.new("uint64_t *")
    b = ffi.new("uint64_t *")
    out = []
    while lib.ua_bitmap_next_run(words, table.nbits, pos, table.nbits, a, b):
        out.append((table.phys_base + a[0] * table.unit_size,
                    table.phys_base + b[0] * table.unit_size))
    return out


class StubResult(NamedTuple):
    table: Optional[Table]
    accepted: List[Range]   # ranges the stub accepted at once, in its order


def stub_build_table(memory_map: MemoryMap, *, unit_size: int = DEFAULT_UNIT_SIZE,
                     final_map: Optional[MemoryMap] = None, accept: AcceptArg = None,
                     vcpu: int = 0) -> StubResult:
    """The EFI stub's two steps: size the table from `memory_map` (pre
    ExitBootServices), then process every type-15 descriptor of `final_map`
    (post ExitBootServices; defaults to the same map).  `accept` receives the
    ranges accepted at once."""
    table = Table.from_memory_map(memory_map, unit_size)
    if table is None:
        return StubResult(None, [])
    accepted = table.process_memory_map(final_map if final_map is not None else memory_map,
                                        accept=accept, vcpu=vcpu)
    return StubResult(table, accepted)
