"""unaccepted: a simulator of UEFI unaccepted memory in confidential VMs.

The C core (unaccepted._core) holds the bitmap, the EFI table, the accept
path, the vendor models and the cost counters; this package is a thin layer
over it.
"""
from ._core import ffi as _ffi, lib as _lib
from .cost import Cost, CostProfile, Event
from .errors import (AcceptFailed, ArchitecturalFault, CallbackError, GuestDied, GuestHung,
                     GuestPanic, GuestTerminated, HostError, InvalidArgument, InvalidMemoryMap, InvalidOp,
                     InvalidState, InvalidTable, InvalidTrace, InvalidUnitSize, Misaligned,
                     OutOfMemory, OutOfRange, TableTooLarge, UnacceptedError,
                     UnknownTableVersion)
from .memmap import MemoryDescriptor, MemoryMap, MemoryType
from .primitives import Noop, PythonPrimitive, Recorder
from .table import AcceptResult, Op, OpBatch, OpResult, StubResult, Table, stub_build_table
from .snp import SnpAcceptPath, SnpGuest
from .tdx import TdxAcceptPath, TdxGuest

__version__ = _ffi.string(_lib.ua_version_string()).decode()

# The Python half and the C half must come from the same build.
if __version__ != "0.1.0":  # pragma: no cover - guards a stale extension
    raise ImportError(f"unaccepted: C core {__version__} does not match the package 0.1.0")

__all__ = [
    "AcceptFailed", "AcceptResult", "ArchitecturalFault", "CallbackError", "Cost",
    "CostProfile", "Event", "GuestDied", "GuestHung", "GuestPanic", "GuestTerminated", "HostError",
    "InvalidArgument", "InvalidMemoryMap", "InvalidOp", "InvalidState", "InvalidTable",
    "InvalidTrace", "InvalidUnitSize", "MemoryDescriptor", "MemoryMap", "MemoryType",
    "Misaligned", "Noop", "Op", "OpBatch", "OpResult", "OutOfMemory", "OutOfRange",
    "PythonPrimitive", "Recorder", "SnpAcceptPath", "SnpGuest", "StubResult", "Table", "TableTooLarge", "TdxAcceptPath",
    "TdxGuest", "UnacceptedError",
    "UnknownTableVersion", "stub_build_table",
]
