"""unaccepted: a simulator of UEFI unaccepted memory in confidential VMs.

The C core (unaccepted._core) holds the bitmap, the EFI table, the accept
path, the vendor models and the cost counters; this package is a thin layer
over it.
"""
from ._core import ffi as _ffi, lib as _lib
from .cost import Cost, CostProfile, Event
from .errors import (AcceptFailed, ArchitecturalFault, CallbackError, CaseTooLarge, GuestDied,
                     GuestHung, Interrupted,
                     GuestPanic, GuestTerminated, HostError, InvalidArgument, InvalidMemoryMap, InvalidOp,
                     InvalidState, InvalidTable, InvalidTrace, InvalidUnitSize, Misaligned,
                     OutOfMemory, OutOfRange, TableTooLarge, UnacceptedError,
                     UnknownTableVersion)
from .memmap import MemoryDescriptor, MemoryMap, MemoryType
from .primitives import Noop, PythonPrimitive, Recorder
from .table import AcceptResult, Op, OpBatch, OpResult, StubResult, Table, stub_build_table
from .host import Host, HostAction, NeverResume
from .guest import (AcceptPath, Fatal, FatalKind, Guest, GuestConfig, PathStats, TouchOutcome,
                    TouchResult, Vendor)
from .snp import SnpConfig, SnpGuest
from .tdx import TdxConfig, TdxGuest

__version__: str = _ffi.string(_lib.ua_version_string()).decode()

# The Python half and the C half must come from the same build.
if __version__ != "0.2.0":  # pragma: no cover - guards a stale extension
    raise ImportError(f"unaccepted: C core {__version__} does not match the package 0.2.0")

__all__ = [
    "AcceptFailed", "AcceptPath", "AcceptResult", "ArchitecturalFault", "CallbackError", "Cost",
    "CostProfile", "Event", "Fatal", "FatalKind", "Guest", "GuestConfig", "GuestDied",
    "GuestHung", "GuestPanic", "GuestTerminated", "Host", "HostAction", "HostError",
    "InvalidArgument", "InvalidMemoryMap", "InvalidOp", "InvalidState", "InvalidTable",
    "InvalidTrace", "InvalidUnitSize", "CaseTooLarge", "Interrupted", "MemoryDescriptor", "MemoryMap", "MemoryType",
    "Misaligned", "NeverResume", "Noop", "Op", "OpBatch", "OpResult", "OutOfMemory",
    "OutOfRange", "PathStats", "PythonPrimitive", "Recorder", "SnpConfig", "SnpGuest",
    "StubResult", "Table", "TableTooLarge", "TdxConfig", "TdxGuest", "TouchOutcome",
    "TouchResult", "UnacceptedError", "UnknownTableVersion", "Vendor", "stub_build_table",
]
