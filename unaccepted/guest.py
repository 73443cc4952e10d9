"""One confidential guest, whatever the vendor (csrc/guest.c, ua_guest.h).

    guest = SnpConfig(64 << 30, vcpus=4, backing="4K", cost_profile="snp-epyc-kvm").build()
    guest = TdxConfig(64 << 30, host=Host("aug-4k")).build()
    path = guest.accept_path("linux")          # an accept primitive for Table
    path(4 << 30, 6 << 30)                     # or call it directly
    guest.touch(5 << 30).outcome               # TouchOutcome.SERVED
    guest.unaccept(4 << 30, 6 << 30)
    guest.fatal                                # None while the guest lives
    guest.path_stats("linux").exits

`SnpGuest` and `TdxGuest` implement the `Guest` protocol with identical names
and semantics; the vendor instructions stay available on each.  Configs are
frozen and picklable: ship one to a worker process or a cluster node and
call `.build()` there.
"""
from __future__ import annotations

import enum
import weakref
from dataclasses import dataclass, field, fields
from typing import (Any, Callable, Dict, List, Optional, Protocol, Tuple, Type, TypeVar, Union, cast,
                    runtime_checkable)

from ._core import ffi, lib
from .cost import Cost, CostProfile
from .errors import CallbackError, InvalidArgument, check
from .host import BoundHost, Host
from ._interrupt import new_flag, run_interruptible
from .validate import as_choice, as_int, as_u64, as_vcpu

# path calls this large run where Ctrl-C can stop them (unaccepted/_interrupt.py)
_LONG_PATH_CALL = 16 << 30
_touch = lib.ua_guest_touch_1
_TOUCH_WRITE: int = lib.UA_TOUCH_WRITE
_TOUCH_SHARED: int = lib.UA_TOUCH_SHARED
_TOUCH_USER: int = lib.UA_TOUCH_USER

_C = TypeVar("_C", bound="GuestConfig")

PATH_KINDS: Dict[str, int] = {"linux": lib.UA_PATH_LINUX, "linux-early": lib.UA_PATH_LINUX_EARLY,
                              "ovmf": lib.UA_PATH_OVMF, "ovmf-sec": lib.UA_PATH_OVMF_SEC}
BACKINGS: Dict[str, int] = {"2M": lib.UA_BACKING_2M, "4K": lib.UA_BACKING_4K}


class Vendor(enum.IntEnum):
    SNP = lib.UA_VENDOR_SNP
    TDX = lib.UA_VENDOR_TDX


class FatalKind(enum.IntEnum):
    TERMINATED = lib.UA_FATAL_TERMINATED
    PANIC = lib.UA_FATAL_PANIC
    HUNG = lib.UA_FATAL_HUNG


class TouchOutcome(enum.IntEnum):
    SERVED = lib.UA_TOUCH_SERVED
    SERVED_EXIT = lib.UA_TOUCH_SERVED_EXIT     # after the host served exits
    GUEST_FAULT = lib.UA_TOUCH_GUEST_FAULT     # a fault the guest survived (SIGBUS)
    TERMINATED = lib.UA_TOUCH_TERMINATED
    PANIC = lib.UA_TOUCH_PANIC
    HUNG = lib.UA_TOUCH_HUNG

    @property
    def fatal(self) -> bool:
        return self >= TouchOutcome.TERMINATED


@dataclass(frozen=True)
class TouchResult:
    outcome: TouchOutcome
    exits: int          # exits the host served for this access
    vector: int         # exception taken (SNP #VC 29, TDX #VE 20 / #DF 8), 0 if none
    error_code: int     # SNP #VC error code (0x404)
    detail: int         # SNP: last NPF's EXITINFO1; TDX: last exit's extended qualification


# what a plain served access returns (nothing to read back from C)
_SERVED = TouchResult(TouchOutcome.SERVED, 0, 0, 0, 0)


@dataclass(frozen=True)
class Fatal:
    """How the guest died (the first fatal event)."""

    kind: FatalKind
    vcpu: int
    gpa: int
    code: int           # SNP: the termination MSR value; TDX: the failing status
    reason_set: int     # SNP: GHCB termination reason set and code
    reason_code: int
    eax: int            # SNP: the failing PVALIDATE's code (255 for CF=1)
    fault: int          # SNP: the failing PVALIDATE's fault
    info: int           # SNP: the failing PSC's SW_EXITINFO2 / MSR response
    message: str


@dataclass(frozen=True)
class PathStats:
    """ua_path_stats: the common block for both vendors, then each vendor's."""

    calls: int
    failures: int
    bytes: int
    accept_4k: int
    accept_2m: int
    accept_1g: int
    fallbacks: int
    exits: int
    host_psmash: int
    host_rmpupdate: int
    host_aug_4k: int
    host_aug_2m: int
    host_demote: int
    host_release_hp: int
    psc_requests: int
    psc_exits: int
    msr_exits: int
    npf_exits: int
    cache_touch_4k: int
    executions: int
    success_2m: int
    success_4k: int
    already_accepted: int
    size_mismatch: int
    operand_invalid: int
    operand_busy: int
    other_status: int
    interrupts: int


def _cost_profile(value: object) -> Optional[CostProfile]:
    if value is None or isinstance(value, CostProfile):
        return value
    if isinstance(value, str):
        return CostProfile.builtin(value)
    raise InvalidArgument(f"cost_profile = {value!r} must be a profile name or a CostProfile")


@dataclass(frozen=True)
class GuestConfig:
    """What every vendor's config has: RAM, vCPUs, host backing, the cost
    profile (a built-in name or a CostProfile; None = no accounting) and
    the host (a Host; KVM by default)."""

    memory_bytes: int
    vcpus: int = 1
    backing: str = "2M"
    # hash=False: a CostProfile holds dicts
    cost_profile: Union[CostProfile, str, None] = field(default=None, hash=False)
    host: Host = Host()

    def __post_init__(self) -> None:
        as_u64(self.memory_bytes, "memory_bytes")
        as_int(self.vcpus, "vcpus", 1, lib.UA_MAX_VCPUS + 1)
        as_choice(self.backing, "backing", BACKINGS)
        _cost_profile(self.cost_profile)
        if not isinstance(self.host, Host):
            raise InvalidArgument(f"host = {self.host!r} must be a unaccepted.host.Host")


@runtime_checkable
class Guest(Protocol):
    """The vendor-neutral guest: SnpGuest and TdxGuest both implement it."""

    vendor: Vendor
    memory_bytes: int
    vcpus: int
    backing: str

    def accept_path(self, kind: str = "linux", **options: int) -> "AcceptPath": ...
    def unaccept(self, start: int, end: int, *, kind: str = "linux", vcpu: int = 0) -> None: ...
    def touch(self, gpa: int, *, write: bool = False, shared: bool = False, user: bool = False,
              vcpu: int = 0) -> TouchResult: ...
    def count_accepted(self, start: int = 0, end: Optional[int] = None) -> int: ...
    def path_stats(self, kind: str = "linux") -> PathStats: ...
    def reset_path_stats(self, kind: str = "linux") -> None: ...
    @property
    def fatal(self) -> Optional[Fatal]: ...
    def clear_fatal(self) -> None: ...
    @property
    def cost(self) -> Optional[Cost]: ...
    @property
    def host(self) -> Host: ...
    def set_host(self, host: Host) -> None: ...


class AcceptPath:
    """A guest accept path: an accept primitive for Table (`_c_accept`), or
    called directly with path(start, end, vcpu).  Owned by its guest."""

    def __init__(self, guest: "GuestBase", kind: str) -> None:
        self.guest = guest           # keeps the guest (and the path) alive
        self.kind = kind
        self._kind = PATH_KINDS[kind]
        fn, ctx = ffi.new("ua_accept_fn *"), ffi.new("void **")
        check(lib.ua_guest_accept_path(self.guest._guest, self._kind, fn, ctx))
        # the guest's path (ua_accept_fn, void *): options change in place
        self._fn: Any = fn[0]
        self._ctx: Any = ctx[0]

    def __repr__(self) -> str:
        return f"AcceptPath({self.guest!r}, {self.kind!r})"

    @property
    def _c_accept(self) -> Tuple[Any, Any]:
        return self._fn, self._ctx

    def take_error(self) -> Optional[BaseException]:
        return self.guest._bound.take_error()

    def __call__(self, start: int, end: int, vcpu: int = 0) -> None:
        """Accept [start, end) (4 KiB aligned) on vcpu; raises GuestTerminated /
        GuestPanic / GuestHung / AcceptFailed when the guest does not survive."""
        start, end = as_u64(start, "start"), as_u64(end, "end")
        vcpu = as_vcpu(vcpu, self.guest.vcpus)
        if end - start >= _LONG_PATH_CALL:
            run_interruptible(self.guest._cancel, self._accept, start, end, vcpu)
        else:
            self._accept(start, end, vcpu)

    def _accept(self, start: int, end: int, vcpu: int) -> None:
        st = self._fn(self._ctx, start, end, vcpu)
        self.guest._check(st, f"{self.kind} accept [{start:#x}, {end:#x})")

    accept = __call__

    def unaccept(self, start: int, end: int, vcpu: int = 0) -> None:
        self.guest.unaccept(start, end, kind=self.kind, vcpu=vcpu)

    @property
    def stats(self) -> PathStats:
        return self.guest.path_stats(self.kind)

    def reset_stats(self) -> None:
        self.guest.reset_path_stats(self.kind)


class GuestBase:
    """The Guest verbs over a ua_guest handle; vendors add their instructions."""

    vendor: Vendor

    def _create(self, config: GuestConfig, vendor_config: Any,
                cost: Optional[Cost] = None) -> None:
        """Build the C guest from a config (and a filled vendor config)."""
        self.config = config
        self.memory_bytes = config.memory_bytes
        self.vcpus = config.vcpus
        self.backing = config.backing
        profile = _cost_profile(config.cost_profile)
        self._bound = config.host._bind()
        self._host_ctx: Any = self._bound.take_handle()   # the guest keeps the C context
        cfg = ffi.new("ua_guest_config *")
        cfg.vendor = int(self.vendor)
        cfg.vcpus = config.vcpus
        cfg.memory_bytes = config.memory_bytes
        cfg.backing = BACKINGS[config.backing]
        c_profile = profile._to_c() if profile is not None else ffi.NULL
        cfg.cost_profile = c_profile
        cfg.host = self._bound._handle
        cfg.vendor_config = vendor_config
        out = ffi.new("ua_guest **")
        check(lib.ua_guest_create(cfg, out), f"{type(self).__name__}({config.memory_bytes:#x})")
        self._guest: Any = ffi.gc(out[0], lib.ua_guest_destroy)    # ua_guest *
        # the vendor machine (the vendor's instructions; _attach_cost below)
        self._handle: Any = (lib.ua_guest_snp(self._guest) if self.vendor == Vendor.SNP
                             else lib.ua_guest_tdx(self._guest))
        self._bound.guest = self
        # no reference cycles: a guest goes away (with its C state) as soon
        # as nothing uses it, not at some later garbage collection
        self._profile = profile       # counters of the guest's own, viewed on demand
        self._cost: Optional[Cost] = None   # a Cost the caller attached
        if cost is not None:
            self._attach_cost(cost)
        self._paths: weakref.WeakValueDictionary[str, AcceptPath] = weakref.WeakValueDictionary()
        slots = ffi.new("ua_touch_result[]", config.vcpus)
        self._touch_out: List[Any] = [slots + v for v in range(config.vcpus)]
        self._touch_slots = slots     # keeps the memory alive
        self._cancel: Any = new_flag()     # Ctrl-C: the paths read it between batches
        check(lib.ua_guest_set_cancel(self._guest, self._cancel))

    # ---- the Guest protocol ----------------------------------------------------
    def _check(self, status: int, message: str) -> None:
        if status == lib.UA_E_CALLBACK:
            err = self._bound.take_error()
            if err is not None:
                raise CallbackError(f"{message}: the host's callback raised {err!r}") from err
        check(status, message)

    def accept_path(self, kind: str = "linux", **options: int) -> AcceptPath:
        """The guest's accept path of this kind (one per kind).  Options
        (psc_max_entries, ovmf_buffer_bytes, hang_limit) replace the path's,
        resetting its statistics."""
        as_choice(kind, "accept path kind", PATH_KINDS)
        unknown = set(options) - {"psc_max_entries", "ovmf_buffer_bytes", "hang_limit"}
        if unknown:
            raise InvalidArgument(f"unknown path option(s): {', '.join(sorted(unknown))}; "
                                  "known: psc_max_entries, ovmf_buffer_bytes, hang_limit")
        if options:
            self.set_path_options(kind, **options)
        path = self._paths.get(kind)
        if path is None:
            path = self._paths[kind] = AcceptPath(self, kind)
        return path

    def set_path_options(self, kind: str = "linux", *, psc_max_entries: int = 0,
                         ovmf_buffer_bytes: int = 0, hang_limit: int = 0) -> None:
        o = ffi.new("ua_path_options *")
        o.kind = PATH_KINDS[as_choice(kind, "accept path kind", PATH_KINDS)]
        o.psc_max_entries = as_int(psc_max_entries, "psc_max_entries", 0, 1 << 32)
        o.ovmf_buffer_bytes = as_int(ovmf_buffer_bytes, "ovmf_buffer_bytes", 0, 1 << 32)
        o.hang_limit = as_int(hang_limit, "hang_limit", 0, 1 << 32)
        check(lib.ua_guest_set_path_options(self._guest, o), f"{kind} path options",
              cls=InvalidArgument)

    def unaccept(self, start: int, end: int, *, kind: str = "linux", vcpu: int = 0) -> None:
        """Give [start, end) back (SNP: PVALIDATE(0) then PSC shared; TDX:
        MapGPA shared then private); the pages are unaccepted afterwards."""
        k = PATH_KINDS[as_choice(kind, "accept path kind", PATH_KINDS)]
        st = lib.ua_guest_unaccept(self._guest, k, as_u64(start, "start"), as_u64(end, "end"),
                                   as_vcpu(vcpu, self.vcpus))
        self._check(st, f"{kind} unaccept [{start:#x}, {end:#x})")

    # positional-or-keyword on purpose: CPython calls a function without
    # keyword-only defaults on its fast path (this is a per-call hot path)
    def touch(self, gpa: int, write: bool = False, shared: bool = False, user: bool = False,
              vcpu: int = 0) -> TouchResult:
        """A load (or store) at gpa from vcpu, handled as Linux handles it."""
        flags = 0
        if write or shared or user:
            flags = ((_TOUCH_WRITE if write else 0) | (_TOUCH_SHARED if shared else 0) |
                     (_TOUCH_USER if user else 0))
        # the per-call fast path: one C call, nothing read back for a plain
        # served access; each vCPU has its own result slot (a vCPU is driven
        # by one thread at a time)
        if gpa.__class__ is not int or vcpu.__class__ is not int:
            gpa, vcpu = as_u64(gpa, "gpa"), as_vcpu(vcpu, self.vcpus)
        try:
            out = self._touch_out[vcpu]
            r: int = _touch(self._guest, vcpu, gpa, flags, out)
        except (TypeError, OverflowError, IndexError):
            as_u64(gpa, "gpa")
            as_vcpu(vcpu, self.vcpus)
            raise
        if r == 0:
            return _SERVED
        if r < 0:
            self._check(-r, f"touch {gpa:#x}")
        return TouchResult(TouchOutcome(out.outcome), out.exits, out.vector, out.error_code,
                           out.detail)

    def count_accepted(self, start: int = 0, end: Optional[int] = None) -> int:
        """4 KiB pages of [start, end) the guest has accepted."""
        end = self.memory_bytes if end is None else end
        out = ffi.new("uint64_t *")
        check(lib.ua_guest_count_accepted(self._guest, as_u64(start, "start"),
                                          as_u64(end, "end"), out), "count_accepted")
        return cast(int, out[0])

    def path_stats(self, kind: str = "linux") -> PathStats:
        out = ffi.new("ua_path_stats *")
        check(lib.ua_guest_path_stats_get(
            self._guest, PATH_KINDS[as_choice(kind, "accept path kind", PATH_KINDS)], out))
        return PathStats(*(getattr(out, f.name) for f in fields(PathStats)))

    def reset_path_stats(self, kind: str = "linux") -> None:
        check(lib.ua_guest_path_stats_reset(
            self._guest, PATH_KINDS[as_choice(kind, "accept path kind", PATH_KINDS)]))

    @property
    def fatal(self) -> Optional[Fatal]:
        f = ffi.new("ua_fatal *")
        check(lib.ua_guest_fatal_get(self._guest, f))
        if f.kind == lib.UA_FATAL_NONE:
            return None
        return Fatal(FatalKind(f.kind), f.vcpu, f.gpa, f.code, f.reason_set, f.reason_code,
                     f.eax, f.fault, f.info, ffi.string(f.message).decode())

    def clear_fatal(self) -> None:
        lib.ua_guest_fatal_clear(self._guest)

    @property
    def cost(self) -> Optional[Cost]:
        if self._cost is None and self._profile is not None:
            handle = lib.ua_guest_cost(self._guest)
            if handle != ffi.NULL:
                return Cost._borrow(handle, self._profile, self.vcpus, self)
        return self._cost

    @property
    def host(self) -> Host:
        return self._bound.spec

    def set_host(self, host: Host) -> None:
        """Serve this guest with another host from now on."""
        if not isinstance(host, Host):
            raise InvalidArgument(f"host = {host!r} must be a unaccepted.host.Host")
        bound = host._bind()
        check(self._machine("set_host")(self._handle, bound._handle), "set_host")
        bound.guest = self
        self._bound, self._host_ctx = bound, bound.take_handle()

    def set_cost(self, cost: Optional[Cost]) -> None:
        """Charge a Cost object (or None: no accounting) from now on."""
        if cost is None:
            check(self._machine("set_cost")(self._handle, ffi.NULL), "set_cost")
            self._cost = None
            self._profile = None
        else:
            self._attach_cost(cost)

    def _machine(self, verb: str) -> Callable[..., int]:
        """The vendor machine's C function for a verb both vendors share
        (ua_snp_<verb> / ua_tdx_<verb>)."""
        return cast(Callable[..., int], getattr(lib, f"ua_{self.vendor.name.lower()}_{verb}"))

    def _attach_cost(self, cost: Cost) -> None:
        handle = getattr(cost, "_handle", None) if cost is not None else ffi.NULL
        if handle is None:
            raise InvalidArgument(f"cost must be a Cost, got {cost!r}")
        check(self._machine("set_cost")(self._handle, handle), "set_cost")
        self._cost = cost


def make_config(cls: Type[_C], memory_bytes: Optional[int], config: object,
                kwargs: Dict[str, Any]) -> _C:
    """A vendor guest's config from either `config=` or keyword arguments."""
    if config is not None:
        if memory_bytes is not None or kwargs:
            raise InvalidArgument("pass either a config or the settings, not both")
        if not isinstance(config, cls):
            raise InvalidArgument(f"config = {config!r} must be a {cls.__name__}")
        return config
    if memory_bytes is None:
        raise InvalidArgument("memory_bytes is required")
    names = {f.name for f in fields(cls)}
    unknown = set(kwargs) - names
    if unknown:
        raise InvalidArgument(f"unknown {cls.__name__} setting(s): {', '.join(sorted(unknown))}")
    return cls(memory_bytes, **kwargs)


__all__ = ["AcceptPath", "BACKINGS", "Fatal", "FatalKind", "Guest", "GuestBase", "GuestConfig",
           "PATH_KINDS", "PathStats", "TouchOutcome", "TouchResult", "Vendor"]
