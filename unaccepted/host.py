"""The pluggable hypervisor (csrc/host.c, csrc/snp_kvm.c, csrc/tdx_kvm.c).

A host serves a confidential guest's exits.  `Host()` is KVM; a named
behaviour is KVM with one thing changed (`Host("psc-stall")`,
`Host("ghcb-error", ghcb_error=2)`, ...; see `BEHAVIORS`).  A host written
in Python subclasses Host and overrides any of

    snp_psc(exit)       a GHCB NAE Page State Change   (SnpPscExit)
    snp_psc_msr(exit)   an MSR-protocol Page State Change (SnpMsrExit)
    snp_npf(exit)       a nested page fault              (SnpNpfExit)
    tdx_exit(exit)      a TD exit for an EPT violation   (TdxEptExit)
    tdx_vmcall(exit)    a TDG.VP.VMCALL                  (TdxVmcallExit)

Each gets an exit object to inspect and answer; `exit.default()` does what
the host's named behaviour does with that exit (ua_host_behavior_*: KVM's
handler where the behaviour leaves the exit alone), so a subclass can start
from `Host("psc-stall")` and fall back to it.  The exits a subclass does not
override are served by its behaviour (KVM by default).  Raising
`NeverResume` leaves the vCPU in the host forever (the guest hangs); any other exception is re-raised to the caller of the guest
operation.  Such hosts are called back once per exit, with the GIL: slow,
for experiments.

Hosts are specifications: picklable, and each guest built from a config
gets its own C host object (`_bind`), so state such as map-gpa-stall's
countdown is per guest.
"""
from __future__ import annotations

import enum
import threading
import weakref
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, Callable, Dict, Generic, List, Optional, Tuple, TypeVar,
                    cast)

from ._core import ffi, lib
from .errors import CallbackError, InvalidArgument, check
from .validate import as_bool, as_int, as_u32, as_u64

if TYPE_CHECKING:
    from .guest import GuestBase

_R = TypeVar("_R")       # what an exit's default() / kvm() return

BEHAVIORS: Tuple[str, ...] = tuple(ffi.string(lib.ua_host_behavior_name(i)).decode()
                                   for i in range(lib.UA_HOST_BEHAVIOR_COUNT))


class HostAction(enum.IntEnum):
    """What a host did to serve an exit (ua_host_action)."""

    NOTHING = lib.UA_HOST_DID_NOTHING
    AUG_4K = lib.UA_HOST_DID_AUG_4K
    AUG_2M = lib.UA_HOST_DID_AUG_2M
    DEMOTE = lib.UA_HOST_DID_DEMOTE
    RELEASE_HP = lib.UA_HOST_DID_RELEASE_HP
    PSMASH = lib.UA_HOST_DID_PSMASH
    RMPUPDATE = lib.UA_HOST_DID_RMPUPDATE


class NeverResume(Exception):
    """Raised by a Python host: this exit never returns to the guest."""


class StopGuest(Exception):
    """Raised by a Python host (or by exit.default() when the behaviour
    does it): the host stops the guest (fatal kind TERMINATED)."""


_OPS = ("snp_psc", "snp_psc_msr", "snp_npf", "tdx_exit", "tdx_vmcall")


class Host:
    """A hypervisor: a named behaviour (KVM unless told otherwise) with its
    parameters, optionally with methods of a subclass called back."""

    # the specification, set once by __init__ (see __setattr__)
    behavior: str
    lazy_rmpupdate: bool
    npf_psmash: bool
    psc_max_entries: int
    psc_max_pages: int
    ghcb_error: int
    count: int

    def __init__(self, behavior: str = "kvm", *, lazy_rmpupdate: bool = False,
                 npf_psmash: bool = True, psc_max_entries: int = 0, psc_max_pages: int = 0,
                 ghcb_error: int = 0, count: int = 0) -> None:
        if behavior not in BEHAVIORS:
            raise InvalidArgument(f"unknown host behaviour {behavior!r}; known: "
                                  f"{', '.join(BEHAVIORS)}")
        values: Dict[str, object] = {
            "behavior": behavior,
            "lazy_rmpupdate": as_bool(lazy_rmpupdate, "lazy_rmpupdate"),
            "npf_psmash": as_bool(npf_psmash, "npf_psmash"),
            "psc_max_entries": as_u32(psc_max_entries, "psc_max_entries"),
            "psc_max_pages": as_u32(psc_max_pages, "psc_max_pages"),
            "ghcb_error": as_u32(ghcb_error, "ghcb_error"),
            "count": as_u32(count, "count")}
        for name, value in values.items():
            object.__setattr__(self, name, value)
        # check the combination now, not when a guest is built
        self._config_c()

    def __setattr__(self, name: str, value: object) -> None:
        # the behaviour and its parameters are a specification: configs hash
        # them, guests bind their own C host from them (a subclass may keep
        # state of its own in other attributes)
        if name == "behavior" or name in _DEFAULTS:
            raise AttributeError(f"{type(self).__name__}.{name} is fixed (make a new Host)")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        params = [f"{k}={v!r}" for k, v in self._params().items() if v != _DEFAULTS[k]]
        name = type(self).__name__
        return f"{name}({', '.join([repr(self.behavior)] + params)})"

    def __eq__(self, other: object) -> bool:
        return (type(self) is type(other) and isinstance(other, Host) and
                self.behavior == other.behavior and self._params() == other._params())

    def __hash__(self) -> int:
        return hash((type(self), self.behavior, tuple(self._params().items())))

    def _params(self) -> Dict[str, object]:
        return {k: getattr(self, k) for k in _DEFAULTS}

    def _config_c(self) -> Any:
        """The ua_host_config * (cffi cdata) of this specification."""
        cfg = ffi.new("ua_host_config *")
        lib.ua_host_config_default(cfg)
        cfg.behavior = BEHAVIORS.index(self.behavior)
        cfg.lazy_rmpupdate = self.lazy_rmpupdate
        cfg.npf_psmash = self.npf_psmash
        cfg.psc_max_entries = self.psc_max_entries
        cfg.psc_max_pages = self.psc_max_pages
        cfg.ghcb_error = self.ghcb_error
        cfg.count = self.count
        probe = ffi.new("ua_host **")
        check(lib.ua_host_create(cfg, ffi.NULL, ffi.NULL, probe), f"host {self!r}",
              cls=InvalidArgument)
        lib.ua_host_destroy(probe[0])
        return cfg

    def _overrides(self) -> List[str]:
        return [op for op in _OPS if getattr(type(self), op, None) is not getattr(Host, op, None)]

    def _bind(self) -> "BoundHost":
        """A C host object for one guest."""
        return BoundHost(self)


_DEFAULTS = {"lazy_rmpupdate": False, "npf_psmash": True, "psc_max_entries": 0,
             "psc_max_pages": 0, "ghcb_error": 0, "count": 0}


class BoundHost:
    """The C host object serving one guest, with the Python callbacks'
    pending exception (re-raised by the guest operation that ran them)."""

    def __init__(self, spec: Host) -> None:
        self.spec = spec
        # a weak reference to the guest it serves (no cycle)
        self._guest: Optional[weakref.ReferenceType[GuestBase]] = None
        self._pending = threading.local()   # a callback runs on the thread of its C call
        ops: Any = ffi.NULL           # ua_host_ops *
        overridden = spec._overrides()
        # the C host's context; whoever holds this BoundHost keeps the handle
        # too (take_handle), so the two do not form a cycle
        self._self_handle: Any = ffi.new_handle(self) if overridden else ffi.NULL
        if overridden:
            ops = ffi.new("ua_host_ops *")
            for op in overridden:
                setattr(ops, op, getattr(lib, f"_ua_py_host_{op}"))
        out = ffi.new("ua_host **")
        check(lib.ua_host_create(spec._config_c(), ops, self._self_handle, out), "host")
        self._handle: Any = ffi.gc(out[0], lib.ua_host_destroy)    # ua_host *

    @property
    def guest(self) -> Optional[GuestBase]:
        """The guest this host serves (None before it is built or once gone)."""
        return self._guest() if self._guest is not None else None

    @guest.setter
    def guest(self, guest: GuestBase) -> None:
        self._guest = weakref.ref(guest)

    def take_handle(self) -> Any:
        """Hand the C context handle to the owner (the guest)."""
        handle, self._self_handle = self._self_handle, None
        return handle

    def take_error(self) -> Optional[BaseException]:
        """The exception a callback raised during this thread's last C call."""
        err: Optional[BaseException] = getattr(self._pending, "error", None)
        self._pending.error = None
        return err

    def _fail(self, exc: BaseException) -> int:
        if isinstance(exc, NeverResume):
            return cast(int, lib.UA_E_GUEST_HUNG)
        if isinstance(exc, StopGuest):
            return cast(int, lib.UA_E_HOST)
        if getattr(self._pending, "error", None) is None:
            self._pending.error = exc
        return cast(int, lib.UA_E_CALLBACK)


def raise_host_error(bound: Optional[BoundHost], message: str) -> None:
    """Re-raise what a Python host's callback raised during a C call."""
    if bound is None:
        return
    err = bound.take_error()
    if err is not None:
        raise CallbackError(f"{message}: the host's callback raised {err!r}") from err


# ---- exits as a Python host sees them --------------------------------------------------

class _Exit(Generic[_R]):
    """An exit handed to a Python host.  default() does what the host's named
    behaviour does with it (ua_host_behavior_*), kvm() what KVM does
    (ua_host_kvm_*); both write the answer into the exit.  An exit is only
    valid during the callback: it points into the C call that made it."""

    __slots__ = ("_bound", "guest", "vcpu", "_live")
    _verb = ""
    _bound: BoundHost
    guest: Optional[GuestBase]
    vcpu: int
    _live: bool

    def __init__(self, bound: BoundHost, vcpu: int) -> None:
        self._bound = bound
        self.guest = bound.guest
        self.vcpu = vcpu
        self._live = True

    def _alive(self) -> None:
        if not self._live:
            raise InvalidArgument("this exit was answered already: keep values, not exits")

    def _args(self) -> Tuple[Any, ...]:
        raise NotImplementedError

    def _result(self) -> _R:
        raise NotImplementedError

    def _run(self, family: str) -> _R:
        self._alive()
        st = getattr(lib, f"ua_host_{family}_{self._verb}")(self._bound._handle, *self._args())
        if st == lib.UA_E_GUEST_HUNG:
            raise NeverResume()
        if st == lib.UA_E_HOST:
            raise StopGuest()
        check(st, f"{family} handler of {self._verb}")
        return self._result()

    def default(self) -> _R:
        return self._run("behavior")

    def kvm(self) -> _R:
        return self._run("kvm")


class SnpPscExit(_Exit[None]):
    """A GHCB NAE Page State Change: the scratch area's header (cur_entry,
    end_entry, reserved) and entries, and the answer (SW_EXITINFO1/2,
    entries_done, pages_done), all read and written in place."""

    __slots__ = ("_s", "_hdr", "_ent", "capacity", "_out")
    _verb = "snp_psc"
    _s: Any           # ua_snp *
    _hdr: Any         # uint64_t * (the header word), or NULL
    _ent: Any         # uint64_t[] (the entries)
    capacity: int
    _out: Any         # ua_snp_ghcb_result *

    def __init__(self, bound: BoundHost, s: Any, vcpu: int, hdr: Any, ent: Any, capacity: int,
                 out: Any) -> None:
        super().__init__(bound, vcpu)
        self._s, self._hdr, self._ent, self.capacity, self._out = s, hdr, ent, capacity, out

    def _args(self) -> Tuple[Any, ...]:
        return self._s, self.vcpu, self._hdr, self._ent, self.capacity, self._out

    def _result(self) -> None:
        return None

    def _word(self) -> int:
        self._alive()
        if self._hdr == ffi.NULL:
            raise InvalidArgument("the scratch area has no header")
        return cast(int, self._hdr[0])

    @property
    def cur_entry(self) -> int:
        return self._word() & 0xFFFF

    @property
    def end_entry(self) -> int:
        return (self._word() >> 16) & 0xFFFF

    @property
    def reserved(self) -> int:
        return self._word() >> 32

    def set_header(self, cur_entry: int, end_entry: int, reserved: int = 0) -> None:
        self._word()
        self._hdr[0] = (as_int(cur_entry, "cur_entry", 0, 1 << 16) |
                        as_int(end_entry, "end_entry", 0, 1 << 16) << 16 |
                        as_int(reserved, "reserved", 0, 1 << 32) << 32)

    def entry(self, i: int) -> int:
        self._alive()
        return cast(int, self._ent[as_int(i, "entry index", 0, self.capacity)])

    def set_entry(self, i: int, value: int) -> None:
        self._alive()
        self._ent[as_int(i, "entry index", 0, self.capacity)] = as_int(value, "entry")

    def __getattr__(self, name: str) -> int:
        # the answer so far: sw_exitinfo1, sw_exitinfo2, entries_done, pages_done
        if name in ("sw_exitinfo1", "sw_exitinfo2", "entries_done", "pages_done"):
            self._alive()
            return cast(int, getattr(self._out, name))
        raise AttributeError(name)

    def answer(self, *, sw_exitinfo1: Optional[int] = None, sw_exitinfo2: Optional[int] = None,
               entries_done: Optional[int] = None, pages_done: Optional[int] = None) -> None:
        self._alive()
        for name, v in (("sw_exitinfo1", sw_exitinfo1), ("sw_exitinfo2", sw_exitinfo2),
                        ("entries_done", entries_done), ("pages_done", pages_done)):
            if v is not None:
                setattr(self._out, name, as_int(v, name, 0, 1 << 64))


class SnpMsrExit(_Exit[int]):
    """A GHCB MSR-protocol Page State Change: `request`, and `response` to set."""

    __slots__ = ("_s", "request", "response", "_resp")
    _verb = "snp_psc_msr"
    _s: Any           # ua_snp *
    request: int
    response: Optional[int]
    _resp: Any        # uint64_t *

    def __init__(self, bound: BoundHost, s: Any, vcpu: int, request: int) -> None:
        super().__init__(bound, vcpu)
        self._s, self.request, self.response = s, request, None
        self._resp = ffi.new("uint64_t *")

    def _args(self) -> Tuple[Any, ...]:
        return self._s, self.vcpu, self.request, self._resp

    def _result(self) -> int:
        response: int = self._resp[0]
        self.response = response
        return response


class _ActionExit(_Exit[HostAction]):
    """An exit the host answers with what it did (HostAction) in `action`."""

    __slots__ = ("action", "_act")
    action: HostAction
    _act: Any         # uint32_t *

    def __init__(self, bound: BoundHost, vcpu: int) -> None:
        super().__init__(bound, vcpu)
        self.action = HostAction.NOTHING
        self._act = ffi.new("uint32_t *")

    def _result(self) -> HostAction:
        self.action = HostAction(self._act[0])
        return self.action


class SnpNpfExit(_ActionExit):
    """#VMEXIT(NPF) at `gpa` with `exitinfo1`; set `action` (HostAction)."""

    __slots__ = ("_s", "gpa", "exitinfo1")
    _verb = "snp_npf"
    _s: Any           # ua_snp *
    gpa: int
    exitinfo1: int

    def __init__(self, bound: BoundHost, s: Any, vcpu: int, gpa: int, exitinfo1: int) -> None:
        super().__init__(bound, vcpu)
        self._s, self.gpa, self.exitinfo1 = s, gpa, exitinfo1

    def _args(self) -> Tuple[Any, ...]:
        return self._s, self.vcpu, self.gpa, self.exitinfo1, self._act


class TdxEptExit(_ActionExit):
    """A TD exit for an EPT violation at `gpa` (extended exit qualification
    `eeq`, `exit_status`); set `action` (HostAction)."""

    __slots__ = ("_t", "gpa", "eeq", "exit_status")
    _verb = "tdx_exit"
    _t: Any           # ua_tdx *
    gpa: int
    eeq: int
    exit_status: int

    def __init__(self, bound: BoundHost, t: Any, vcpu: int, gpa: int, eeq: int,
                 exit_status: int) -> None:
        super().__init__(bound, vcpu)
        self._t, self.gpa, self.eeq, self.exit_status = t, gpa, eeq, exit_status

    def _args(self) -> Tuple[Any, ...]:
        return self._t, self.vcpu, self.gpa, self.eeq, self.exit_status, self._act


class TdxVmcallExit(_Exit[int]):
    """TDG.VP.VMCALL with r10..r13; answer(status, r11, chunks)."""

    __slots__ = ("_t", "r10", "r11", "r12", "r13", "_out")
    _verb = "tdx_vmcall"
    _t: Any           # ua_tdx *
    r10: int
    r11: int
    r12: int
    r13: int
    _out: Any         # ua_tdx_vmcall_result *

    def __init__(self, bound: BoundHost, t: Any, vcpu: int, r10: int, r11: int, r12: int,
                 r13: int, out: Any) -> None:
        super().__init__(bound, vcpu)
        self._t, self.r10, self.r11, self.r12, self.r13, self._out = t, r10, r11, r12, r13, out

    def _args(self) -> Tuple[Any, ...]:
        return self._t, self.vcpu, self.r10, self.r11, self.r12, self.r13, self._out

    def _result(self) -> int:
        return cast(int, self._out.r10)

    def answer(self, status: int, r11: int = 0, chunks: int = 0) -> None:
        self._alive()
        self._out.r10 = as_int(status, "status")
        self._out.r11 = as_int(r11, "r11")
        self._out.chunks = as_int(chunks, "chunks")


# ---- the trampolines C calls --------------------------------------------------------------
# Everything that can raise runs inside _run's try: a callback that fails
# returns UA_E_CALLBACK (error= covers anything that escapes), and the
# exception is re-raised by the guest operation on this thread.

def _run(ctx: Any, exit: _Exit[Any], method: str,
         finish: Optional[Callable[[Any], None]] = None) -> int:
    bound: BoundHost = ffi.from_handle(ctx)
    try:
        getattr(bound.spec, method)(exit)
        if finish is not None:
            finish(exit)
    except BaseException as exc:  # reported to the caller, never lost in C
        return bound._fail(exc)
    finally:
        exit._live = False
    return cast(int, lib.UA_OK)


@ffi.def_extern(error=lib.UA_E_CALLBACK)
def _ua_py_host_snp_psc(h: Any, s: Any, vcpu: int, hdr: Any, ent: Any, cap: int,
                        out: Any) -> int:
    ctx = lib.ua_host_ctx(h)
    return _run(ctx, SnpPscExit(ffi.from_handle(ctx), s, vcpu, hdr, ent, cap, out), "snp_psc")


@ffi.def_extern(error=lib.UA_E_CALLBACK)
def _ua_py_host_snp_psc_msr(h: Any, s: Any, vcpu: int, request: int, response: Any) -> int:
    def finish(exit: SnpMsrExit) -> None:
        value = lib.UA_SNP_GHCB_MSR_PSC_RESP if exit.response is None else exit.response
        response[0] = as_u64(value, "snp_psc_msr response")

    ctx = lib.ua_host_ctx(h)
    return _run(ctx, SnpMsrExit(ffi.from_handle(ctx), s, vcpu, request), "snp_psc_msr", finish)


def _answer_action(action: Any) -> Callable[[_ActionExit], None]:
    def finish(exit: _ActionExit) -> None:
        action[0] = int(HostAction(exit.action))
    return finish


@ffi.def_extern(error=lib.UA_E_CALLBACK)
def _ua_py_host_snp_npf(h: Any, s: Any, vcpu: int, gpa: int, exitinfo1: int,
                        action: Any) -> int:
    ctx = lib.ua_host_ctx(h)
    return _run(ctx, SnpNpfExit(ffi.from_handle(ctx), s, vcpu, gpa, exitinfo1), "snp_npf",
                _answer_action(action))


@ffi.def_extern(error=lib.UA_E_CALLBACK)
def _ua_py_host_tdx_exit(h: Any, t: Any, vcpu: int, gpa: int, eeq: int, exit_status: int,
                         action: Any) -> int:
    ctx = lib.ua_host_ctx(h)
    return _run(ctx, TdxEptExit(ffi.from_handle(ctx), t, vcpu, gpa, eeq, exit_status),
                "tdx_exit", _answer_action(action))


@ffi.def_extern(error=lib.UA_E_CALLBACK)
def _ua_py_host_tdx_vmcall(h: Any, t: Any, vcpu: int, r10: int, r11: int, r12: int, r13: int,
                           out: Any) -> int:
    # unanswered, a MapGPA looks like a RETRY without progress (Linux gives
    # up after three); other sub-functions are unsupported
    if r10 == 0 and r11 == lib.UA_TDX_VMCALL_MAP_GPA:
        out.r10, out.r11 = lib.UA_TDX_VMCALL_RETRY, r12
    else:
        out.r10 = lib.UA_TDX_VMCALL_SUBFUNC_UNSUPPORTED
    ctx = lib.ua_host_ctx(h)
    return _run(ctx, TdxVmcallExit(ffi.from_handle(ctx), t, vcpu, r10, r11, r12, r13, out),
                "tdx_vmcall")


__all__ = ["BEHAVIORS", "BoundHost", "Host", "HostAction", "NeverResume", "SnpMsrExit",
           "SnpNpfExit", "SnpPscExit", "StopGuest", "TdxEptExit", "TdxVmcallExit"]
