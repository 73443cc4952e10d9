"""Exceptions, mapped from the C core's ua_status codes.

Every exception derives from UnacceptedError.  Errors caused by bad input also
derive from ValueError, so callers that only know Python's conventions can
catch them (the pattern pynacl uses).  Outcomes the simulated guest does not
survive (termination, panic, fatal fault) derive from GuestDied.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple, Type


class UnacceptedError(Exception):
    """Base class of every error this package raises."""

    status: Optional[int] = None  # the ua_status code, when the error came from the C core
    # set by Table.run() on the error of a failing op: how many ops before it
    # took effect (declared only: absent unless set)
    completed: int


class InvalidArgument(UnacceptedError, ValueError):
    """An argument is outside its domain."""


class InvalidMemoryMap(InvalidArgument):
    """A memory map or one of its descriptors is malformed."""

    # declared only (absent unless set): the offending descriptor
    # (MemoryMap.validate) and the unreadable entry lines (memlog.parse_memmap)
    index: int
    bad_lines: Tuple[Tuple[int, str], ...]


class InvalidTable(InvalidArgument):
    """A serialized unaccepted-memory table is malformed."""


class UnknownTableVersion(InvalidTable):
    """The table's version is not 1."""


class InvalidUnitSize(InvalidArgument):
    """The unit size is not a power of two from 4096 to 2^31."""


class TableTooLarge(InvalidArgument):
    """The bitmap would exceed 256 MiB."""


class InvalidOp(InvalidArgument):
    """An operation in a batch or trace is unknown or malformed."""


class InvalidTrace(InvalidArgument):
    """A replay case is malformed (not JSON, missing fields, wrong types)."""


class CaseTooLarge(InvalidTrace):
    """A replay case would cost more than one case may (docs/trace-format.md)."""


class OutOfRange(InvalidArgument):
    """An address or size is past a limit."""


class Misaligned(InvalidArgument):
    """An address or size is not aligned as required."""


class InvalidState(UnacceptedError):
    """The operation is not allowed in the object's current state."""


class OutOfMemory(UnacceptedError, MemoryError):
    """The simulator could not allocate memory."""


class BufferTooSmall(UnacceptedError):
    """An output buffer was too small (internal; callers should not see it)."""


class AcceptFailed(UnacceptedError):
    """The accept primitive reported failure; the units stay unaccepted."""


class GuestDied(AcceptFailed):
    """The simulated guest did not survive (terminated, panicked, faulted)."""


class GuestTerminated(GuestDied):
    """An SNP guest asked the hypervisor to terminate it."""


class GuestPanic(GuestDied):
    """The guest kernel panicked."""


class ArchitecturalFault(GuestDied):
    """An unrecoverable architectural fault (#VC, #VE, #GP, ...)."""


class GuestHung(AcceptFailed):
    """The guest can never make progress: it re-executes an exit (an NPF, a
    Page State Change) that the host never resolves.  Real guests spin."""


class HostError(UnacceptedError):
    """The host refused or cannot serve the request."""


class CallbackError(UnacceptedError):
    """A user callback raised or returned an error."""


class Interrupted(UnacceptedError):
    """The caller's cancel flag stopped a C call between batches; what was
    done before it stays done (Ctrl-C raises KeyboardInterrupt instead)."""


# ua_status value -> exception class; kept in step with csrc/include/unaccepted.h
# (tests/test_errors.py checks every code the C core can return is mapped).
STATUS_EXCEPTIONS: Dict[int, Type[UnacceptedError]] = {
    1: InvalidArgument,
    2: OutOfMemory,
    3: OutOfRange,
    4: Misaligned,
    5: InvalidMemoryMap,
    6: InvalidMemoryMap,
    7: InvalidUnitSize,
    8: TableTooLarge,
    9: UnknownTableVersion,
    10: InvalidTable,
    11: BufferTooSmall,
    12: InvalidOp,
    13: InvalidState,
    14: InvalidArgument,
    32: AcceptFailed,
    33: GuestTerminated,
    34: GuestPanic,
    35: ArchitecturalFault,
    36: HostError,
    37: CallbackError,
    40: GuestHung,
    41: Interrupted,
}


def error_for(status: int, message: Optional[str] = None,
              cls: Optional[Type[UnacceptedError]] = None) -> UnacceptedError:
    """The exception for a non-zero ua_status, with the C core's text appended."""
    from ._core import ffi, lib

    text: str = ffi.string(lib.ua_strerror(status)).decode()
    exc_cls = cls or STATUS_EXCEPTIONS.get(status, UnacceptedError)
    exc = exc_cls(f"{message}: {text}" if message else text)
    exc.status = status
    return exc


def check(status: int, message: Optional[str] = None,
          cls: Optional[Type[UnacceptedError]] = None) -> None:
    """Raise the mapped exception when status is not UA_OK."""
    if status:
        raise error_for(status, message, cls)
