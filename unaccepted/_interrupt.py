"""Ctrl-C through long C calls.

Python runs its signal handlers in the main thread, between bytecodes, so a
long C call made from the main thread would hold Ctrl-C back until it
returns.  The C core instead reads a cancel flag the caller owns between
batches (`ua_table_set_cancel`, `ua_guest_set_cancel`).  A call expected to
be long runs in a worker thread while the main thread waits.  Ctrl-C lands
in the main thread: it sets the flag, waits for the worker to stop at its
next batch boundary (what was done stays done and consistent), and raises
KeyboardInterrupt.  Short calls run directly: the thread costs tens of
microseconds.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, List, Tuple

from ._core import ffi


def new_flag() -> Any:
    """An `int` cell the C core reads (owned by the Python object that
    installs it, so it lives as long as the table or guest)."""
    return ffi.new("int *")


def run_interruptible(flag: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) (which makes a C call reading `flag`), stoppable by Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)       # signals reach the main thread only
    box: List[Tuple[bool, Any]] = []

    def target() -> None:
        try:
            box.append((True, fn(*args)))
        except BaseException as exc:   # handed to the caller below
            box.append((False, exc))

    worker = threading.Thread(target=target, name="unaccepted-long-call", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
    except KeyboardInterrupt:
        flag[0] = 1
        worker.join()
        flag[0] = 0
        raise
    ok, value = box[0]
    if ok:
        return value
    raise value
