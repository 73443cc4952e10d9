"""Intel TDX model (csrc/tdx_sept.c, tdx_module.c, tdx_kvm.c, tdx_guest.c):
Secure EPT, host SEAMCALLs, guest TDCALLs, #VE / TD exits, MapGPA, the host
and the guest accept paths.

    guest = TdxConfig(1 << 30, backing="4K").build()    # or TdxGuest(1 << 30, backing="4K")
    r = guest.accept(0x200000, Level.L2M)      # one TDCALL execution
    r.exited, r.req_level, r.err_state          # -> True, 1, SeptState.FREE
    guest.serve_exit(r)                         # the host (KVM) AUGs
    guest.accept(0x200000, Level.L2M).status    # -> TdxStatus.PAGE_SIZE_MISMATCH
    path = guest.accept_path("linux")           # for Table(accept=path)

Architectural values (status words, states, levels, exit qualifications)
are the TDX module's numbers; simulator errors raise the package's
exceptions (unaccepted.errors).  No method loops over pages in Python.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, NoReturn, Optional, Tuple, Union, cast

from ._core import ffi, lib
from .errors import InvalidArgument, Misaligned, check
from .guest import GuestBase, GuestConfig, Vendor, make_config
from .host import HostAction
from .validate import as_int, as_u32, as_u64, as_vcpu

if TYPE_CHECKING:
    from .cost import Cost

U64 = 1 << 64
PAGE_4K = 4096
PAGE_2M = 2 << 20
PAGE_1G = 1 << 30


class Level(enum.IntEnum):
    """SEPT / ACCEPT level (RCX bits 2:0)."""

    L4K = lib.UA_TDX_LEVEL_4K
    L2M = lib.UA_TDX_LEVEL_2M
    L1G = lib.UA_TDX_LEVEL_1G

    @property
    def size(self) -> int:
        return PAGE_4K << (9 * int(self))


class SeptState(enum.IntEnum):
    """Public SEPT entry states (TDX module sept_state_lookup)."""

    FREE = lib.UA_TDX_SEPT_FREE
    BLOCKED = lib.UA_TDX_SEPT_BLOCKED
    PENDING = lib.UA_TDX_SEPT_PENDING
    PENDING_BLOCKED = lib.UA_TDX_SEPT_PENDING_BLOCKED
    MAPPED = lib.UA_TDX_SEPT_MAPPED
    REMOVED = lib.UA_TDX_SEPT_REMOVED
    BLOCKEDW = lib.UA_TDX_SEPT_BLOCKEDW
    EXPORTED_BLOCKEDW = lib.UA_TDX_SEPT_EXPORTED_BLOCKEDW
    EXPORTED_DIRTY = lib.UA_TDX_SEPT_EXPORTED_DIRTY
    EXPORTED_DIRTY_BLOCKEDW = lib.UA_TDX_SEPT_EXPORTED_DIRTY_BLOCKEDW
    PENDING_BLOCKEDW = lib.UA_TDX_SEPT_PENDING_BLOCKEDW
    PENDING_EXPORTED_BLOCKEDW = lib.UA_TDX_SEPT_PENDING_EXPORTED_BLOCKEDW
    PENDING_EXPORTED_DIRTY = lib.UA_TDX_SEPT_PENDING_EXPORTED_DIRTY
    PENDING_EXPORTED_DIRTY_BLOCKEDW = lib.UA_TDX_SEPT_PENDING_EXPORTED_DIRTY_BLOCKEDW
    NL_BLOCKED = lib.UA_TDX_SEPT_NL_BLOCKED
    NL_MAPPED = lib.UA_TDX_SEPT_NL_MAPPED


class TdxStatus(enum.IntEnum):
    """TDX status words without their operand id / level (bits 31:0)."""

    SUCCESS = lib.UA_TDX_SUCCESS
    OPERAND_INVALID = lib.UA_TDX_OPERAND_INVALID
    OPERAND_BUSY = lib.UA_TDX_OPERAND_BUSY
    OPERAND_BUSY_HOST_PRIORITY = lib.UA_TDX_OPERAND_BUSY_HOST_PRIORITY
    HOST_PRIORITY_BUSY_TIMEOUT = lib.UA_TDX_HOST_PRIORITY_BUSY_TIMEOUT
    INTERRUPTED_RESUMABLE = lib.UA_TDX_INTERRUPTED_RESUMABLE
    OP_STATE_INCORRECT = lib.UA_TDX_OP_STATE_INCORRECT
    NO_VALID_VE_INFO = lib.UA_TDX_NO_VALID_VE_INFO
    EPT_WALK_FAILED = lib.UA_TDX_EPT_WALK_FAILED
    EPT_ENTRY_FREE = lib.UA_TDX_EPT_ENTRY_FREE
    EPT_ENTRY_NOT_FREE = lib.UA_TDX_EPT_ENTRY_NOT_FREE
    EPT_ENTRY_NOT_LEAF = lib.UA_TDX_EPT_ENTRY_NOT_LEAF
    GPA_RANGE_NOT_BLOCKED = lib.UA_TDX_GPA_RANGE_NOT_BLOCKED
    GPA_RANGE_ALREADY_BLOCKED = lib.UA_TDX_GPA_RANGE_ALREADY_BLOCKED
    TLB_TRACKING_NOT_DONE = lib.UA_TDX_TLB_TRACKING_NOT_DONE
    EPT_INVALID_PROMOTE_CONDITIONS = lib.UA_TDX_EPT_INVALID_PROMOTE_CONDITIONS
    PAGE_ALREADY_ACCEPTED = lib.UA_TDX_PAGE_ALREADY_ACCEPTED
    PAGE_SIZE_MISMATCH = lib.UA_TDX_PAGE_SIZE_MISMATCH
    GPA_RANGE_BLOCKED = lib.UA_TDX_GPA_RANGE_BLOCKED
    EPT_ENTRY_STATE_INCORRECT = lib.UA_TDX_EPT_ENTRY_STATE_INCORRECT
    METADATA_FIELD_ID_INCORRECT = lib.UA_TDX_METADATA_FIELD_ID_INCORRECT
    METADATA_FIELD_NOT_WRITABLE = lib.UA_TDX_METADATA_FIELD_NOT_WRITABLE
    METADATA_FIELD_VALUE_NOT_VALID = lib.UA_TDX_METADATA_FIELD_VALUE_NOT_VALID

    @classmethod
    def of(cls, word: int) -> "TdxStatus | None":
        """The status class of a 64-bit status word (None if unknown)."""
        try:
            return cls(word & lib.UA_TDX_STATUS_CLASS_MASK)
        except ValueError:
            return None

    @property
    def is_error(self) -> bool:
        return bool(self.value >> 63)


class VmcallStatus(enum.IntEnum):
    """TDG.VP.VMCALL status in R10."""

    SUCCESS = lib.UA_TDX_VMCALL_SUCCESS
    RETRY = lib.UA_TDX_VMCALL_RETRY
    INVALID_OPERAND = lib.UA_TDX_VMCALL_INVALID_OPERAND
    ALIGN_ERROR = lib.UA_TDX_VMCALL_ALIGN_ERROR
    SUBFUNC_UNSUPPORTED = lib.UA_TDX_VMCALL_SUBFUNC_UNSUPPORTED


class AccessOutcome(enum.IntEnum):
    OK = lib.UA_TDX_ACCESS_OK
    VE = lib.UA_TDX_ACCESS_VE
    DF = lib.UA_TDX_ACCESS_DF
    EXIT = lib.UA_TDX_ACCESS_EXIT


TDCS_CONFIG_FLAGS: int = lib.UA_TDX_TDCS_CONFIG_FLAGS
TDCS_TD_CTLS: int = lib.UA_TDX_TDCS_TD_CTLS
EXIT_REASON_EPT_VIOLATION: int = lib.UA_TDX_EXIT_REASON_EPT_VIOLATION
EEQ_TYPE_ACCEPT: int = lib.UA_TDX_EEQ_TYPE_ACCEPT
EEQ_TYPE_PENDING_EPT_VIOLATION: int = lib.UA_TDX_EEQ_TYPE_PENDING_EPT_VIOLATION
VECTOR_VE: int = lib.UA_TDX_VECTOR_VE
VECTOR_DF: int = lib.UA_TDX_VECTOR_DF
MAP_GPA: int = lib.UA_TDX_VMCALL_MAP_GPA
ACCEPT_RAX: int = lib.UA_TDX_TDCALL_MEM_PAGE_ACCEPT




def page_info(gpa: int, level: int = 0) -> int:
    """RCX for ACCEPT and the host SEAMCALLs: GPA | level.  A level above 7
    sets reserved bits (the model answers OPERAND_INVALID); pass a raw RCX
    for other malformed operands."""
    if as_u64(gpa, "gpa") % PAGE_4K:
        raise Misaligned(f"gpa = {gpa:#x} is not 4 KiB aligned (pass a raw RCX to test that)")
    return gpa | as_int(level, "level (RCX bits 11:0)", 0, PAGE_4K)


@dataclass(frozen=True)
class TdcallResult:
    """One execution of TDG.MEM.PAGE.ACCEPT."""

    rax: int
    exited: bool
    interrupted: bool
    exit_reason: int
    eeq_type: int
    exit_qualification: int
    exit_status: int
    gpa: int
    chunks_zeroed: int
    accept_counter: int

    @property
    def returned(self) -> bool:
        """The TDCALL returned to the guest with a status in RAX."""
        return not (self.exited or self.interrupted)

    @property
    def status(self) -> Optional[TdxStatus]:
        return TdxStatus.of(self.rax) if self.returned else None

    @property
    def operand(self) -> int:
        """Bits 31:0 of RAX: the operand id, or the level of ACCEPT answers."""
        return self.rax & 0xFFFFFFFF

    # extended exit qualification of an ACCEPT exit (bits 63:32)
    @property
    def _info(self) -> int:
        return self.exit_qualification >> 32

    @property
    def req_level(self) -> int:
        return self._info & 7

    @property
    def err_level(self) -> int:
        return (self._info >> 3) & 7

    @property
    def err_state(self) -> int:
        return (self._info >> 6) & 0xFF

    @property
    def err_is_leaf(self) -> bool:
        return bool((self._info >> 14) & 1)


@dataclass(frozen=True)
class HostResult:
    status: int   # the 64-bit TDX status word (RAX)
    hpa: int
    level: int
    state: int

    @property
    def code(self) -> Optional[TdxStatus]:
        return TdxStatus.of(self.status)

    @property
    def operand(self) -> int:
        return self.status & 0xFFFFFFFF

    @property
    def ok(self) -> bool:
        return self.status == 0


@dataclass(frozen=True)
class EntryInfo:
    state: SeptState
    level: int
    is_leaf: bool
    locked: bool
    host_priority: bool
    accept_counter: int
    shared: bool
    data_nonzero: bool
    hpa: int


@dataclass(frozen=True)
class AccessResult:
    outcome: AccessOutcome
    vector: int
    exit_reason: int
    eeq_type: int
    exit_qualification: int           # bit 0 read, bit 1 write
    extended_exit_qualification: int  # exits: EEQ (type in 3:0), what the VMM reads
    state: int
    data_nonzero: bool
    gpa: int = 0   # the address accessed (what the VMM sees with an exit)


@dataclass(frozen=True)
class VeInfo:
    status: int
    exit_reason: int
    valid: int
    exit_qualification: int
    gla: int
    gpa: int


@dataclass(frozen=True)
class VmcallResult:
    rax: int
    r10: int
    r11: int
    chunks: int

    @property
    def status(self) -> Optional[VmcallStatus]:
        try:
            return VmcallStatus(self.r10)
        except ValueError:
            return None


def _access_result(out: Any, gpa: int) -> AccessResult:
    """The AccessResult of a ua_tdx_access_result * (cffi cdata)."""
    return AccessResult(AccessOutcome(out.outcome), out.vector, out.exit_reason, out.eeq_type,
                        out.exit_qualification, out.extended_exit_qualification, out.state,
                        bool(out.data_nonzero), gpa)


_INITIAL: Dict[str, int] = {"free": lib.UA_TDX_INIT_FREE, "pending": lib.UA_TDX_INIT_PENDING}


@dataclass(frozen=True)
class TdxConfig(GuestConfig):
    """A TD: GuestConfig plus the TD's settings.

    initial: "free" (the host AUGs on demand, through ACCEPT exits) or
    "pending" (pre-AUGed at the backing level).  pending_ve_disable sets
    ATTRIBUTES.SEPT_VE_DISABLE (TD_CTLS.PENDING_VE_DISABLE at start);
    flexible_pending_ve lets the guest change it with TDG.VM.WR; debug sets
    ATTRIBUTES.DEBUG.  accept_1g models a module that takes 1 GiB ACCEPT
    operands.  finalized=False starts in the build phase (TDH.MEM.PAGE.ADD
    allowed, call finalize()).  launch: ((start, end), ...) ranges
    TDH.MEM.PAGE.ADDed (MAPPED, already accepted) before TDH.MR.FINALIZE."""

    initial: str = "free"
    pending_ve_disable: bool = True
    flexible_pending_ve: bool = False
    accept_1g: bool = False
    gpaw: int = 52
    hp_busy_limit: int = 0
    finalized: bool = True
    debug: bool = False
    launch: Tuple[Tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.initial not in _INITIAL:
            raise InvalidArgument(f"initial = {self.initial!r}; use 'free' or 'pending'")
        if self.gpaw not in (48, 52):
            raise InvalidArgument(f"gpaw = {self.gpaw!r}; use 48 or 52")
        as_u32(self.hp_busy_limit, "hp_busy_limit")
        object.__setattr__(self, "launch", tuple((as_u64(a, "launch start"),
                                                  as_u64(b, "launch end"))
                                                 for a, b in self.launch))

    def build(self) -> "TdxGuest":
        return TdxGuest(config=self)


class TdxGuest(GuestBase):
    """A TD: its Secure EPT, the host that drives it and the guest that runs
    in it.  `memory_bytes` of private RAM at GPA 0.  TdxGuest(memory_bytes,
    **settings) takes TdxConfig's fields; `cost=` a Cost object to charge
    instead of counters of the guest's own."""

    vendor = Vendor.TDX

    def __init__(self, memory_bytes: Optional[int] = None, *, config: Optional[TdxConfig] = None,
                 cost: Optional[Cost] = None, **settings: Any) -> None:
        if "launch" in settings:
            settings["launch"] = tuple(tuple(r) for r in settings["launch"])
        config = make_config(TdxConfig, memory_bytes, config, settings)
        cfg = ffi.new("ua_tdx_config *")
        lib.ua_tdx_config_default(cfg)
        cfg.initial = _INITIAL[config.initial]
        cfg.gpaw = config.gpaw
        cfg.accept_1g = bool(config.accept_1g)
        cfg.attributes = ((lib.UA_TDX_ATTR_SEPT_VE_DISABLE if config.pending_ve_disable else 0)
                          | (lib.UA_TDX_ATTR_DEBUG if config.debug else 0))
        cfg.config_flags = (lib.UA_TDX_CONFIG_FLEXIBLE_PENDING_VE if config.flexible_pending_ve
                            else 0)
        cfg.hp_busy_limit = config.hp_busy_limit
        cfg.finalized = bool(config.finalized) and not config.launch
        self._create(config, cfg, cost)
        self.initial = config.initial
        self.gpaw = config.gpaw
        self.shared_bit = 1 << (config.gpaw - 1)
        for start, end in config.launch:
            res = self.add_range(start, end, data_nonzero=True)
            if not res.ok:
                raise InvalidArgument(f"launch range [{start:#x}, {end:#x}): TDH.MEM.PAGE.ADD "
                                      f"failed with {res.status:#x}")
        if config.launch and config.finalized:
            self.finalize()

    def __repr__(self) -> str:
        return (f"TdxGuest({self.memory_bytes:#x}, vcpus={self.vcpus}, backing={self.backing!r}, "
                f"initial={self.initial!r}, host={self.host!r})")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a guest holds C state; pickle its config and build() it again")

    # ---- configuration -------------------------------------------------------
    @property
    def finalized(self) -> bool:
        return bool(lib.ua_tdx_is_finalized(self._handle))

    @property
    def memory_usage(self) -> int:
        """Bytes of simulator memory held by the SEPT model."""
        return cast(int, lib.ua_tdx_memory_usage(self._handle))

    def set_importing(self, importing: bool = True) -> None:
        lib.ua_tdx_set_importing(self._handle, bool(importing))

    def set_interrupts(self, vcpu: int = 0, after: int = 0, period: int = 0) -> None:
        """An interrupt arrives after `after` more interruptible work units
        (4 KiB chunks of a 2 MiB ACCEPT, 2 MiB chunks of MapGPA), then every
        `period` units; after=0 disarms."""
        check(lib.ua_tdx_set_interrupts(self._handle, as_vcpu(vcpu), as_u32(after, "after"),
                                        as_u32(period, "period")))

    # ---- host ----------------------------------------------------------------
    def _host_call(self, fn: Callable[..., int], vcpu: int, *args: Any,
                   what: Optional[str] = None) -> HostResult:
        """A host SEAMCALL fn(t, vcpu, *args, out)."""
        out = ffi.new("ua_tdx_host_result *")
        check(fn(self._handle, as_vcpu(vcpu), *args, out), what)
        return HostResult(out.status, out.hpa, out.level, out.state)

    def _host(self, fn: Callable[..., int], gpa: int, level: int, vcpu: int, raw: Optional[int],
              *extra: Any, what: Optional[str] = None) -> HostResult:
        pi = as_u64(raw, "page_info") if raw is not None else page_info(gpa, level)
        return self._host_call(fn, vcpu, pi, *extra, what=what or f"{fn.__name__}({pi:#x})")

    def add(self, gpa: int, level: int = 0, *, data_nonzero: bool = False, vcpu: int = 0,
            raw: Optional[int] = None) -> HostResult:
        """TDH.MEM.PAGE.ADD (build phase only)."""
        return self._host(lib.ua_tdx_host_add, gpa, level, vcpu, raw, bool(data_nonzero),
                          what="TDH.MEM.PAGE.ADD")

    def add_range(self, start: int, end: int, *, data_nonzero: bool = False,
                  vcpu: int = 0) -> HostResult:
        """TDH.MEM.PAGE.ADD of every 4 KiB page of [start, end) (stops at the
        first failure, whose result is returned)."""
        out = ffi.new("ua_tdx_host_result *")
        check(lib.ua_tdx_host_add_range(self._handle, as_vcpu(vcpu), as_u64(start, "start"),
                                        as_u64(end, "end"), bool(data_nonzero), out, ffi.NULL),
              "add_range")
        return HostResult(out.status, out.hpa, out.level, out.state)

    def finalize(self, vcpu: int = 0) -> HostResult:
        """TDH.MR.FINALIZE."""
        return self._host_call(lib.ua_tdx_host_finalize, vcpu)

    def aug(self, gpa: int, level: int = 0, *, vcpu: int = 0,
            raw: Optional[int] = None) -> HostResult:
        return self._host(lib.ua_tdx_host_aug, gpa, level, vcpu, raw)

    def block(self, gpa: int, level: int = 0, *, vcpu: int = 0,
              raw: Optional[int] = None) -> HostResult:
        return self._host(lib.ua_tdx_host_block, gpa, level, vcpu, raw)

    def track(self, vcpu: int = 0) -> HostResult:
        return self._host_call(lib.ua_tdx_host_track, vcpu)

    def remove(self, gpa: int, level: int = 0, *, vcpu: int = 0,
               raw: Optional[int] = None) -> HostResult:
        return self._host(lib.ua_tdx_host_remove, gpa, level, vcpu, raw)

    def unblock(self, gpa: int, level: int = 0, *, vcpu: int = 0,
                raw: Optional[int] = None) -> HostResult:
        return self._host(lib.ua_tdx_host_unblock, gpa, level, vcpu, raw)

    def demote(self, gpa: int, level: int = 1, *, vcpu: int = 0,
               raw: Optional[int] = None) -> HostResult:
        return self._host(lib.ua_tdx_host_demote, gpa, level, vcpu, raw)

    def promote(self, gpa: int, level: int = 1, *, vcpu: int = 0,
                raw: Optional[int] = None) -> HostResult:
        return self._host(lib.ua_tdx_host_promote, gpa, level, vcpu, raw)

    def set_lock(self, gpa: int, level: int = 0, locked: bool = True) -> None:
        """Hold (or release) the SEPT entry lock, as a concurrent SEAMCALL would."""
        check(lib.ua_tdx_host_set_lock(self._handle, page_info(gpa, level), bool(locked)))

    def set_host_priority(self, gpa: int, level: int = 0, on: bool = True) -> None:
        check(lib.ua_tdx_host_set_priority(self._handle, page_info(gpa, level), bool(on)))

    # ---- inspection ------------------------------------------------------------
    def entry(self, gpa: int, level: Optional[int] = None) -> EntryInfo:
        """The SEPT entry at `level` covering gpa, or (level None) the entry
        the walk ends at."""
        out = ffi.new("ua_tdx_entry_info *")
        if level is not None and (isinstance(level, bool) or level not in (0, 1, 2)):
            raise InvalidArgument(f"level = {level!r} must be 0, 1, 2 or None")
        check(lib.ua_tdx_entry(self._handle, as_u64(gpa, "gpa"), -1 if level is None else level,
                               out), f"entry({gpa:#x}, {level})")
        try:
            state = SeptState(out.state)
        except ValueError:  # pragma: no cover - the model only produces known states
            state = out.state
        return EntryInfo(state, out.level, bool(out.is_leaf), bool(out.locked),
                         bool(out.host_priority), out.accept_counter, bool(out.shared),
                         bool(out.data_nonzero), out.hpa)

    def state(self, gpa: int, level: Optional[int] = None) -> SeptState:
        return self.entry(gpa, level).state

    def _count(self, fn: Callable[..., int], ctype: str, start: int, end: Optional[int],
               what: str) -> Any:
        """fn(t, start, end, buf) over [start, end) (end None: all of RAM)."""
        end = self.memory_bytes if end is None else end
        buf = ffi.new(ctype)
        check(fn(self._handle, as_u64(start, "start"), as_u64(end, "end"), buf), what)
        return buf

    def count_states(self, start: int = 0, end: Optional[int] = None) -> Dict[SeptState, int]:
        """4 KiB pages of [start, end) by the state of their governing leaf."""
        buf = self._count(lib.ua_tdx_count_states, "uint64_t[6]", start, end, "count_states")
        return {SeptState(i): buf[i] for i in range(6) if buf[i]}

    def count_nonzero(self, start: int = 0, end: Optional[int] = None) -> int:
        return cast(int, self._count(lib.ua_tdx_count_nonzero, "uint64_t *", start, end,
                                     "count_nonzero")[0])

    # ---- guest -----------------------------------------------------------------
    def accept(self, gpa: int = 0, level: int = 0, *, vcpu: int = 0, rax: int = ACCEPT_RAX,
               rcx: Optional[int] = None) -> TdcallResult:
        """One execution of TDG.MEM.PAGE.ACCEPT (RCX = gpa | level unless
        rcx is given).  An exit is not served: see serve_exit()."""
        rcx = page_info(gpa, level) if rcx is None else as_u64(rcx, "rcx")
        out = ffi.new("ua_tdx_tdcall_result *")
        check(lib.ua_tdx_tdcall_accept(self._handle, as_vcpu(vcpu), as_u64(rax, "rax"), rcx, out),
              "TDG.MEM.PAGE.ACCEPT")
        return TdcallResult(out.rax, bool(out.exited), bool(out.interrupted), out.exit_reason,
                            out.eeq_type, out.exit_qualification, out.exit_status, out.gpa,
                            out.chunks_zeroed, out.accept_counter)

    def serve_exit(self, result: Union[TdcallResult, AccessResult], *,
                   vcpu: int = 0) -> HostAction:
        """Hand an exit (a TdcallResult or an AccessResult with its gpa) to
        the host; returns what it did (HostAction.NOTHING: left unserved).
        Raises HostError when the host stops the TD."""
        gpa = getattr(result, "gpa", 0)
        eeq = getattr(result, "extended_exit_qualification", result.exit_qualification)
        action = ffi.new("uint32_t *")
        self._check(lib.ua_tdx_serve_exit(self._handle, as_vcpu(vcpu), gpa, eeq,
                                          getattr(result, "exit_status", 0), action),
                    "the host stopped the TD")
        return HostAction(action[0])

    def access(self, gpa: int, write: bool = False, *, vcpu: int = 0) -> AccessResult:
        """A guest load or store (the shared bit in gpa selects the shared EPT)."""
        out = ffi.new("ua_tdx_access_result *")
        check(lib.ua_tdx_guest_access(self._handle, as_vcpu(vcpu), as_u64(gpa, "gpa"), bool(write),
                                      out), f"access({gpa:#x})")
        return _access_result(out, gpa)

    def veinfo_get(self, vcpu: int = 0) -> VeInfo:
        out = ffi.new("ua_tdx_veinfo *")
        check(lib.ua_tdx_tdcall_veinfo_get(self._handle, as_vcpu(vcpu), out))
        return VeInfo(out.status, out.exit_reason, out.valid, out.exit_qualification, out.gla,
                      out.gpa)

    def vm_rd(self, field: int, *, vcpu: int = 0) -> Tuple[int, int]:
        """TDG.VM.RD: (status, value)."""
        st, val = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        check(lib.ua_tdx_tdcall_vm_rd(self._handle, as_vcpu(vcpu), as_u64(field, "field"), st, val))
        return st[0], val[0]

    def vm_wr(self, field: int, value: int, mask: int = U64 - 1, *,
              vcpu: int = 0) -> Tuple[int, int]:
        """TDG.VM.WR: (status, old value)."""
        st, old = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        check(lib.ua_tdx_tdcall_vm_wr(self._handle, as_vcpu(vcpu), as_u64(field, "field"),
                                      as_u64(value, "value"), as_u64(mask, "mask"), st, old))
        return st[0], old[0]

    @property
    def pending_ve_disable(self) -> bool:
        return bool(self.vm_rd(TDCS_TD_CTLS)[1] & lib.UA_TDX_TD_CTLS_PENDING_VE_DISABLE)

    def tdvmcall(self, r10: int, r11: int, r12: int, r13: int, *, vcpu: int = 0) -> VmcallResult:
        out = ffi.new("ua_tdx_vmcall_result *")
        self._check(lib.ua_tdx_tdvmcall(self._handle, as_vcpu(vcpu), as_u64(r10, "r10"),
                                        as_u64(r11, "r11"), as_u64(r12, "r12"), as_u64(r13, "r13"),
                                        out), "TDG.VP.VMCALL")
        return VmcallResult(out.rax, out.r10, out.r11, out.chunks)

    def map_gpa(self, start: int, end: int, shared: bool, *, vcpu: int = 0) -> VmcallStatus:
        """Linux's MapGPA loop over [start, end) (private addresses).  Raises
        HostError when the host fails it; returns the final R10 status."""
        r10 = ffi.new("uint64_t *")
        st = lib.ua_tdx_linux_map_gpa(self._handle, as_vcpu(vcpu), as_u64(start, "start"),
                                      as_u64(end, "end"), bool(shared), r10)
        self._check(st, f"MapGPA [{start:#x}, {end:#x}) -> R10 = {r10[0]:#x}")
        return VmcallStatus(r10[0])

    def linux_disable_sept_ve(self, *, vcpu: int = 0) -> str:
        """Linux's disable_sept_ve() at boot.  Returns the warning printed
        ("" if none); raises GuestPanic for a misconfigured non-debug TD."""
        msg = ffi.new("const char **")
        st = lib.ua_tdx_linux_disable_sept_ve(self._handle, as_vcpu(vcpu), msg)
        text: str = ffi.string(msg[0]).decode()
        check(st, text or "disable_sept_ve")
        return text



__all__ = ["AccessOutcome", "AccessResult", "EntryInfo", "HostResult", "Level", "SeptState",
           "TdcallResult", "TdxConfig", "TdxGuest", "TdxStatus", "VeInfo", "VmcallResult",
           "VmcallStatus", "page_info"]
