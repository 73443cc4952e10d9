"""Accept primitives: what the table calls for each run of unaccepted units.

Anything with a `_c_accept` property returning `(fn, ctx)` cffi cdata (a
`ua_accept_fn` and its context) can be used: the vendor models' accept paths,
the Recorder, the no-op.  A plain Python callable `fn(start, end, vcpu)` is
wrapped in PythonPrimitive; it runs with the GIL, so keep it off hot paths.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional, Protocol, Tuple, Union, runtime_checkable

from ._core import ffi, lib
from .errors import CallbackError, InvalidArgument, check

AcceptCallable = Callable[[int, int, int], object]


@runtime_checkable
class Primitive(Protocol):
    """An accept primitive: `_c_accept` is a (ua_accept_fn, ctx) cdata pair."""

    @property
    def _c_accept(self) -> Tuple[Any, Any]: ...


class Noop:
    """Bookkeeping only: accepting does nothing but clear bits."""

    @property
    def _c_accept(self) -> Tuple[Any, Any]:
        return lib.ua_accept_noop, ffi.NULL

    def __repr__(self) -> str:
        return "Noop()"


class Recorder:
    """Remembers every range handed to it, then forwards to `next` (if any).

    Thread-safe; records are kept in call order."""

    def __init__(self, next: Union[Primitive, AcceptCallable, None] = None) -> None:
        self._next: Optional[Primitive] = None if next is None else as_primitive(next)
        fn, ctx = self._next._c_accept if self._next is not None else (ffi.NULL, ffi.NULL)
        out = ffi.new("ua_recorder **")
        check(lib.ua_recorder_create(fn, ctx, out), "cannot create recorder")
        self._handle = ffi.gc(out[0], lib.ua_recorder_destroy)

    @property
    def _c_accept(self) -> Tuple[Any, Any]:
        return lib.ua_recorder_accept, ffi.cast("void *", self._handle)

    def __len__(self) -> int:
        return int(lib.ua_recorder_count(self._handle))

    def ranges(self, first: int = 0, count: Optional[int] = None) -> List[Tuple[int, int]]:
        """Recorded [start, end) ranges as (start, end) tuples."""
        total = len(self)
        if count is None:
            count = max(total - first, 0)
        if count == 0:
            return []
        buf = ffi.new("ua_range[]", count)
        check(lib.ua_recorder_get(self._handle, first, count, buf), "recorder range")
        return [(r.start, r.end) for r in buf]

    def clear(self) -> None:
        lib.ua_recorder_reset(self._handle)


class PythonPrimitive:
    """Wraps `fn(start, end, vcpu)`.  Returning None/True/0 means success;
    False or a non-zero int means failure; anything else (a string, ...) is
    a CallbackError, never a success; an exception is re-raised by the
    caller of accept (wrapped in CallbackError) on the thread that called."""

    def __init__(self, fn: AcceptCallable) -> None:
        if not callable(fn):
            raise InvalidArgument(f"accept primitive must be callable, got {type(fn).__name__}")
        self.fn = fn
        self._pending = threading.local()   # per thread: a vCPU gets its own error
        self._self_handle = ffi.new_handle(self)

    @property
    def error(self) -> Optional[BaseException]:
        err: Optional[BaseException] = getattr(self._pending, "error", None)
        return err

    @error.setter
    def error(self, exc: Optional[BaseException]) -> None:
        self._pending.error = exc

    @property
    def _c_accept(self) -> Tuple[Any, Any]:
        return lib._ua_py_accept, self._self_handle

    def take_error(self) -> Optional[BaseException]:
        err, self.error = self.error, None
        return err


@ffi.def_extern(error=lib.UA_E_CALLBACK)
def _ua_py_accept(ctx: Any, start: int, end: int, vcpu: int) -> int:
    prim: PythonPrimitive = ffi.from_handle(ctx)
    try:
        rc = prim.fn(start, end, vcpu)
        if rc is None or rc is True:
            return int(lib.UA_OK)
        if rc is False:
            return int(lib.UA_E_ACCEPT_FAILED)
        if not isinstance(rc, int):
            raise TypeError(f"an accept callback returns None, a bool or a status int, "
                            f"not {rc!r}")
        return rc if 0 <= rc < 64 else int(lib.UA_E_ACCEPT_FAILED)
    except BaseException as exc:  # reported to the caller, never lost in C
        prim.error = exc
        return int(lib.UA_E_CALLBACK)


def as_primitive(obj: object) -> Primitive:
    """Normalise None / callable / primitive object to a primitive object."""
    if obj is None:
        return Noop()
    if isinstance(obj, Primitive):
        return obj
    if callable(obj):
        return PythonPrimitive(obj)
    raise InvalidArgument(f"not an accept primitive (None, a callable fn(start, end, vcpu) "
                          f"or an object with _c_accept): {obj!r}")


def raise_callback_error(prim: object, status: int, message: str) -> None:
    """Re-raise a Python callback's exception after a failed C call: an
    accept callback's, or that of the host behind a guest's accept path."""
    if status != lib.UA_E_CALLBACK:
        return
    take = getattr(prim, "take_error", None)
    if take is not None:
        err = take()
        if err is not None:
            raise CallbackError(f"{message}: the callback raised {err!r}") from err
    if isinstance(prim, Recorder) and prim._next is not None:
        raise_callback_error(prim._next, status, message)
