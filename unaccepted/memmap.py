"""EFI memory types, descriptors and memory maps: binary, JSON, validation.

The binary form is the array GetMemoryMap() returns: EFI_MEMORY_DESCRIPTOR
entries (40 bytes of fields) at a stride of DescriptorSize (48 in EDK2),
DescriptorVersion 1.  Validation runs in the C core (ua_memmap_check), which
also guards every C entry point that takes a map.
"""
from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union, overload

from ._core import ffi, lib
from .errors import InvalidMemoryMap
from .validate import as_int

PAGE_SIZE = 4096
DESCRIPTOR_SIZE: int = lib.UA_EFI_DESCRIPTOR_SIZE      # 48, EDK2's DescriptorSize
DESCRIPTOR_VERSION: int = lib.UA_EFI_DESCRIPTOR_VERSION
_FIELDS = struct.Struct("<I4xQQQQ")               # 40 bytes
U32 = 1 << 32
U64 = 1 << 64


class MemoryType(enum.IntEnum):
    """EFI_MEMORY_TYPE values (UEFI 2.10 table 7.5, plus type 15 from 2.9)."""

    RESERVED = 0
    LOADER_CODE = 1
    LOADER_DATA = 2
    BOOT_SERVICES_CODE = 3
    BOOT_SERVICES_DATA = 4
    RUNTIME_SERVICES_CODE = 5
    RUNTIME_SERVICES_DATA = 6
    CONVENTIONAL = 7
    UNUSABLE = 8
    ACPI_RECLAIM = 9
    ACPI_NVS = 10
    MMIO = 11
    MMIO_PORT_SPACE = 12
    PAL_CODE = 13
    PERSISTENT = 14
    UNACCEPTED = 15   # EfiUnacceptedMemoryType


def _check_int(value: object, field: str, index: int, lo: int = 0, hi: int = U64) -> None:
    as_int(value, field, lo, hi, exc=InvalidMemoryMap, where=f"descriptor {index}: ")


@dataclass(frozen=True)
class MemoryDescriptor:
    """One EFI_MEMORY_DESCRIPTOR.  `type` is an int (a MemoryType or any u32)."""

    type: int
    start: int
    pages: int
    virt_start: int = 0
    attribute: int = 0

    @property
    def end(self) -> int:
        return self.start + self.pages * PAGE_SIZE

    @property
    def size(self) -> int:
        return self.pages * PAGE_SIZE

    @property
    def is_unaccepted(self) -> bool:
        return self.type == MemoryType.UNACCEPTED

    def _check_fields(self, index: int) -> None:
        _check_int(self.type, "type", index, hi=U32)
        _check_int(self.start, "start", index)
        _check_int(self.pages, "pages", index)
        _check_int(self.virt_start, "virt_start", index)
        _check_int(self.attribute, "attribute", index)

    def to_dict(self) -> Dict[str, int]:
        d = {"type": int(self.type), "start": self.start, "pages": self.pages}
        if self.virt_start:
            d["virt_start"] = self.virt_start
        if self.attribute:
            d["attribute"] = self.attribute
        return d


class MemoryMap(Sequence[MemoryDescriptor]):
    """An ordered EFI memory map (firmware order is kept; nothing is sorted)."""

    def __init__(self, descriptors: Iterable[MemoryDescriptor] = ()) -> None:
        descs: List[MemoryDescriptor] = []
        for i, d in enumerate(descriptors):
            if not isinstance(d, MemoryDescriptor):
                raise InvalidMemoryMap(
                    f"descriptor {i}: expected a MemoryDescriptor, got {type(d).__name__}")
            d._check_fields(i)
            descs.append(d)
        self._descs = tuple(descs)

    @overload
    def __getitem__(self, i: int) -> MemoryDescriptor: ...
    @overload
    def __getitem__(self, i: slice) -> Tuple[MemoryDescriptor, ...]: ...

    def __getitem__(self, i: Union[int, slice]
                    ) -> Union[MemoryDescriptor, Tuple[MemoryDescriptor, ...]]:
        return self._descs[i]

    def __len__(self) -> int:
        return len(self._descs)

    def __iter__(self) -> Iterator[MemoryDescriptor]:
        return iter(self._descs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemoryMap) and self._descs == other._descs

    def __repr__(self) -> str:
        return f"MemoryMap({list(self._descs)!r})"

    @property
    def unaccepted(self) -> Tuple[MemoryDescriptor, ...]:
        return tuple(d for d in self._descs if d.is_unaccepted)

    @property
    def unaccepted_bytes(self) -> int:
        return sum(d.size for d in self.unaccepted)

    # ---- validation -------------------------------------------------------
    def validate(self, limit: int | None = None) -> "MemoryMap":
        """Raise InvalidMemoryMap naming the descriptor, field and value.

        Checks: 4 KiB-aligned start, at least one page, end below 2^64 (and at
        or below `limit` when given), no two descriptors overlapping.  `limit`
        is a positive address (None: 2^64)."""
        if limit is not None:
            as_int(limit, "limit", 1, U64 + 1, exc=InvalidMemoryMap)
        arr, n = self._c_array()
        bad = ffi.new("size_t *")
        other = ffi.new("size_t *")
        status = lib.ua_memmap_check(arr, n, 0 if limit is None or limit == U64 else limit,
                                     bad, other)
        if status:
            raise self._error(status, bad[0], other[0], limit)
        return self

    def _error(self, status: int, bad: int, other: int,
               limit: Optional[int]) -> InvalidMemoryMap:
        d = self._descs[bad] if bad < len(self._descs) else None
        if status == lib.UA_E_ALIGN:
            assert d is not None      # the C check names a descriptor of this map
            msg = f"descriptor {bad}: start = {d.start:#x} is not 4 KiB aligned"
        elif status == lib.UA_E_EMPTY:
            msg = f"descriptor {bad}: pages = 0 (a descriptor needs at least one page)"
        elif status == lib.UA_E_RANGE:
            assert d is not None
            top = f"{limit:#x}" if limit else "2^64"
            msg = (f"descriptor {bad}: end = start + pages * 4096 = {d.end:#x} "
                   f"is past {top}")
        elif status == lib.UA_E_OVERLAP:
            assert d is not None
            o = self._descs[other]
            msg = (f"descriptor {bad}: [{d.start:#x}, {d.end:#x}) overlaps "
                   f"descriptor {other} [{o.start:#x}, {o.end:#x})")
        else:
            msg = f"memory map rejected: {ffi.string(lib.ua_strerror(status)).decode()}"
        exc = InvalidMemoryMap(msg)
        exc.status = status
        exc.index = bad
        return exc

    def _c_array(self) -> Tuple[Any, int]:
        """(ua_mem_desc[] cffi cdata, number of descriptors)."""
        n = len(self._descs)
        arr = ffi.new("ua_mem_desc[]", max(n, 1))
        buf = ffi.buffer(arr)
        stride = ffi.sizeof("ua_mem_desc")
        for i, d in enumerate(self._descs):
            _FIELDS.pack_into(buf, i * stride, int(d.type), d.start, d.virt_start, d.pages,
                              d.attribute)
        return arr, n

    # ---- binary -----------------------------------------------------------
    def to_bytes(self, descriptor_size: int = DESCRIPTOR_SIZE) -> bytes:
        """The GetMemoryMap() buffer: descriptors at a stride of descriptor_size."""
        if descriptor_size < _FIELDS.size or descriptor_size % 8:
            raise InvalidMemoryMap(
                f"descriptor_size = {descriptor_size} must be a multiple of 8 and >= 40")
        out = bytearray(descriptor_size * len(self._descs))
        for i, d in enumerate(self._descs):
            _FIELDS.pack_into(out, i * descriptor_size, int(d.type), d.start, d.virt_start,
                              d.pages, d.attribute)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, descriptor_size: int = DESCRIPTOR_SIZE,
                   descriptor_version: int = DESCRIPTOR_VERSION) -> "MemoryMap":
        if descriptor_version != DESCRIPTOR_VERSION:
            raise InvalidMemoryMap(
                f"descriptor_version = {descriptor_version} is not {DESCRIPTOR_VERSION}")
        if descriptor_size < _FIELDS.size or descriptor_size % 8:
            raise InvalidMemoryMap(
                f"descriptor_size = {descriptor_size} must be a multiple of 8 and >= 40")
        if len(data) % descriptor_size:
            raise InvalidMemoryMap(
                f"map size = {len(data)} bytes is not a multiple of "
                f"descriptor_size = {descriptor_size}")
        descs: List[MemoryDescriptor] = []
        for off in range(0, len(data), descriptor_size):
            t, start, virt, pages, attr = _FIELDS.unpack_from(data, off)
            descs.append(MemoryDescriptor(t, start, pages, virt, attr))
        return cls(descs)

    # ---- JSON -------------------------------------------------------------
    def to_json_obj(self) -> List[Dict[str, int]]:
        return [d.to_dict() for d in self._descs]

    def to_json(self) -> str:
        return json.dumps(self.to_json_obj())

    @classmethod
    def from_json_obj(cls, obj: object) -> "MemoryMap":
        if not isinstance(obj, list):
            raise InvalidMemoryMap(f"memory map must be a list, got {type(obj).__name__}")
        descs: List[MemoryDescriptor] = []
        for i, item in enumerate(obj):
            if not isinstance(item, dict):
                raise InvalidMemoryMap(
                    f"descriptor {i}: must be an object, got {type(item).__name__}")
            for field in ("type", "start", "pages"):
                if field not in item:
                    raise InvalidMemoryMap(f"descriptor {i}: missing field {field!r}")
            d = MemoryDescriptor(item["type"], item["start"], item["pages"],
                                 item.get("virt_start", 0), item.get("attribute", 0))
            d._check_fields(i)
            descs.append(d)
        return cls(descs)

    @classmethod
    def from_json(cls, text: str) -> "MemoryMap":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidMemoryMap(f"memory map is not valid JSON: {e}") from None
        return cls.from_json_obj(obj)
