"""Pure-Python reference model of the TDX Secure EPT, the host SEAMCALLs,
TDG.MEM.PAGE.ACCEPT, guest accesses, MapGPA, the host's named behaviours
and the guest accept paths.

It restates the rules of the TDX module 1.5 source (intel/tdx-module branch
tdx_1.5: tdg_mem_page_accept.c, td_ept_violation.c, tdh_mem_page_*.c,
sept_state_lookup), of KVM's exit handling and of the guest algorithms
(Linux tdx_accept_memory, OVMF TdAcceptPages) plus the modelling choices
documented in docs/tdx.md, in the plainest form: a dict of 2 MiB entries,
each optionally holding a list of 512 4 KiB entries.  It is an oracle for
the C model (unaccepted.tdx), never a fast path, and shares none of its
code: it only speaks the same interface.

`RefTdx` takes TdxGuest's settings (vcpus=, backing="2M"/"4K", initial=,
host=Host(...), ...) and has TdxGuest's method names and signatures, so a
test drives both with the same calls.  Results are plain dataclasses with
the C results' field names (host physical addresses are not modelled:
`hpa` is None); simulator errors raise the package's exceptions
(unaccepted.errors) with the C core's status code.  The host is any object
with `behavior` and `count` (a unaccepted.host.Host); the TDX behaviours
are understood: kvm, aug-4k, never-resolve, map-gpa-stall, map-gpa-refuse.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import (TYPE_CHECKING, Any, Callable, Dict, List, NoReturn, Optional, Sequence, Set,
                    Tuple, Union)

from ..errors import STATUS_EXCEPTIONS, InvalidArgument, Misaligned, UnacceptedError

if TYPE_CHECKING:
    from ..host import Host

K4, M2, G1 = 4096, 2 << 20, 1 << 30
SIZES = {0: K4, 1: M2, 2: G1}
U64 = 1 << 64

# public state values
FREE, BLOCKED, PENDING, PENDING_BLOCKED, MAPPED, REMOVED = 0, 1, 2, 3, 4, 5
NL_BLOCKED, NL_MAPPED = 0x81, 0x84
LEAF_STATES = {MAPPED, BLOCKED, PENDING, PENDING_BLOCKED}
BLOCKED_STATES = {BLOCKED, PENDING_BLOCKED, NL_BLOCKED}

# status words
SUCCESS = 0
OPERAND_INVALID = 0xC000010000000000
OPERAND_BUSY = 0x8000020000000000
HOST_PRIORITY_BUSY_TIMEOUT = 0x9000020500000000
OP_STATE_INCORRECT = 0xC000060800000000
NO_VALID_VE_INFO = 0xC000070400000000
EPT_WALK_FAILED = 0xC0000B0000000000
GPA_RANGE_NOT_BLOCKED = 0xC0000B0600000000
GPA_RANGE_ALREADY_BLOCKED = 0x00000B0700000000
TLB_TRACKING_NOT_DONE = 0xC0000B0800000000
EPT_INVALID_PROMOTE_CONDITIONS = 0xC0000B0900000000
PAGE_ALREADY_ACCEPTED = 0x00000B0A00000000
PAGE_SIZE_MISMATCH = 0xC0000B0B00000000
EPT_ENTRY_STATE_INCORRECT = 0xC0000B0D00000000
METADATA_FIELD_ID_INCORRECT = 0xC0000C0000000000
METADATA_FIELD_NOT_WRITABLE = 0xC0000C0100000000
METADATA_FIELD_VALUE_NOT_VALID = 0xC0000C0300000000
CLASS_MASK = 0xFFFFFFFF00000000
RCX = 1
SEPT_TREE = 146   # the operand id RANGE.UNBLOCK gives TLB_TRACKING_NOT_DONE

TD_CTLS = 0x1110000300000017
CONFIG_FLAGS = 0x1110000300000016
ATTR_SEPT_VE_DISABLE = 1 << 28
ATTR_DEBUG = 1

ACCEPT_LEAF = 6
EXIT_REASON_EPT_VIOLATION = 48
EEQ_ACCEPT, EEQ_PENDING = 1, 6
VECTOR_DF, VECTOR_VE = 8, 20
MAP_GPA = 0x10001
VMCALL_SUCCESS, VMCALL_RETRY = 0, 1
VMCALL_INVALID_OPERAND = 0x8000000000000000
VMCALL_ALIGN_ERROR = 0x8000000000000002
VMCALL_SUBFUNC_UNSUPPORTED = 0x8000000000000003

# access outcomes
OK, VE, DF, EXIT = 0, 1, 2, 3

# ua_status codes of the simulator errors this model raises
E_INVAL, E_RANGE, E_ALIGN, E_STATE, E_VCPU = 1, 3, 4, 13, 14
E_ACCEPT_FAILED, E_TERMINATED, E_PANIC, E_HOST, E_HUNG = 32, 33, 34, 36, 40

MSG_LINUX = "TDX: Failed to accept memory"
MSG_HUNG = "TDX: the host never resolves an accept exit"
MSG_STOPPED = "KVM stopped the TD while serving an accept exit"
MSG_SEPT_VE = "TD misconfiguration: SEPT #VE has to be disabled"

DEFAULT_HANG_LIMIT = 1000   # exits in a row without progress: the guest is hung
TOUCH_EXIT_LIMIT = 4        # exits one touch may take before it counts as hung
OVMF_MAX_RETRIES = 3
MAP_GPA_MAX_RETRIES = 3     # Linux tdx_map_gpa: RETRYs in a row without progress


class HostAction(enum.IntEnum):
    NOTHING = 0
    AUG_4K = 1
    AUG_2M = 2
    DEMOTE = 3
    RELEASE_HP = 4


class FatalKind(enum.IntEnum):
    TERMINATED = 1
    PANIC = 2
    HUNG = 3


class TouchOutcome(enum.IntEnum):
    SERVED = 0
    SERVED_EXIT = 1
    GUEST_FAULT = 2
    TERMINATED = 3
    PANIC = 4
    HUNG = 5


def fail(status: int, message: str = "") -> UnacceptedError:
    """The package's exception for a ua_status, as the C model raises it."""
    exc = STATUS_EXCEPTIONS.get(status, UnacceptedError)(message or f"status {status}")
    exc.status = status
    return exc


# ---- results: the C results' fields --------------------------------------------------

@dataclass(frozen=True)
class HostResult:
    status: int
    hpa: Optional[int]
    level: int
    state: int

    @property
    def code(self) -> int:
        return self.status & CLASS_MASK

    @property
    def ok(self) -> bool:
        return self.status == 0


@dataclass(frozen=True)
class TdcallResult:
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
        return not (self.exited or self.interrupted)

    @property
    def status(self) -> Optional[int]:
        return self.rax & CLASS_MASK if self.returned else None

    @property
    def req_level(self) -> int:
        return (self.exit_qualification >> 32) & 7

    @property
    def err_level(self) -> int:
        return (self.exit_qualification >> 35) & 7

    @property
    def err_state(self) -> int:
        return (self.exit_qualification >> 38) & 0xFF

    @property
    def err_is_leaf(self) -> bool:
        return bool((self.exit_qualification >> 46) & 1)


@dataclass(frozen=True)
class AccessResult:
    outcome: int
    vector: int
    exit_reason: int
    eeq_type: int
    exit_qualification: int
    extended_exit_qualification: int
    state: int
    data_nonzero: bool
    gpa: int = 0


@dataclass(frozen=True)
class EntryInfo:
    state: int
    level: int
    is_leaf: bool
    locked: bool
    host_priority: bool
    accept_counter: int
    shared: bool
    data_nonzero: bool
    hpa: Optional[int] = None


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


@dataclass(frozen=True)
class TouchResult:
    outcome: TouchOutcome
    exits: int
    vector: int
    error_code: int
    detail: int


@dataclass(frozen=True)
class Fatal:
    kind: FatalKind
    vcpu: int
    gpa: int
    code: int
    reason_set: int = 0
    reason_code: int = 0
    eax: int = 0
    fault: int = 0
    info: int = 0
    message: str = ""


@dataclass
class PathStats:
    """ua_path_stats (the fields a TDX path fills; the SNP ones stay 0)."""

    calls: int = 0
    failures: int = 0
    bytes: int = 0
    accept_4k: int = 0
    accept_2m: int = 0
    accept_1g: int = 0
    fallbacks: int = 0
    exits: int = 0
    host_psmash: int = 0
    host_rmpupdate: int = 0
    host_aug_4k: int = 0
    host_aug_2m: int = 0
    host_demote: int = 0
    host_release_hp: int = 0
    psc_requests: int = 0
    psc_exits: int = 0
    msr_exits: int = 0
    npf_exits: int = 0
    cache_touch_4k: int = 0
    executions: int = 0
    success_2m: int = 0
    success_4k: int = 0
    already_accepted: int = 0
    size_mismatch: int = 0
    operand_invalid: int = 0
    operand_busy: int = 0
    other_status: int = 0
    interrupts: int = 0


# ---- the Secure EPT ----------------------------------------------------------------------

@dataclass
class Entry:
    state: int = FREE
    locked: bool = False
    hp: bool = False
    counter: int = 0            # accept counter (2 MiB PENDING leaves)
    blocked_epoch: Optional[int] = None
    used: bool = False          # 4 KiB: its original host page was given back by REMOVE
    moved: bool = False         # 4 KiB: mapped to a fresh host page (not the region's)


@dataclass
class Region:
    entry: Entry = field(default_factory=Entry)
    children: Optional[List[Entry]] = None   # 512 entries when non-leaf


_Answer = Tuple[int, int, int]              # a SEAMCALL's (status, level, state)
_Target = Tuple[int, int, Region, Entry]    # (gpa, level, region, entry) it acts on


def eeq_accept(req: int, err_level: int, state: int, leaf: bool) -> int:
    return 1 | ((req | err_level << 3 | state << 6 | int(leaf) << 14) << 32)


def _int(value: object, name: str, lo: int = 0, hi: int = U64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value < hi:
        raise InvalidArgument(f"{name} = {value!r} must be an int in [{lo}, {hi})")
    return value


_HOSTS = ("kvm", "aug-4k", "never-resolve", "map-gpa-stall", "map-gpa-refuse")
_PATH_KINDS = ("linux", "linux-early", "ovmf")


class RefAcceptPath:
    """An accept path of a RefTdx: path(start, end, vcpu), stats, reset_stats()."""

    def __init__(self, guest: "RefTdx", kind: str) -> None:
        self.guest = guest
        self.kind = kind

    def __call__(self, start: int, end: int, vcpu: int = 0) -> None:
        self.guest._accept(self.kind, start, end, vcpu)

    accept = __call__

    def unaccept(self, start: int, end: int, vcpu: int = 0) -> None:
        self.guest.unaccept(start, end, kind=self.kind, vcpu=vcpu)

    @property
    def stats(self) -> PathStats:
        return self.guest.path_stats(self.kind)

    def reset_stats(self) -> None:
        self.guest.reset_path_stats(self.kind)


class RefTdx:
    """Same rules as the C model, same interface as unaccepted.tdx.TdxGuest."""

    def __init__(self, memory_bytes: int, *, vcpus: int = 1, backing: str = "2M",
                 initial: str = "free", host: Optional[Host] = None, gpaw: int = 52,
                 accept_1g: bool = False, finalized: bool = True, pending_ve_disable: bool = True,
                 flexible_pending_ve: bool = False, hp_busy_limit: int = 0, debug: bool = False,
                 launch: Sequence[Tuple[int, int]] = ()) -> None:
        _int(memory_bytes, "memory_bytes")
        _int(vcpus, "vcpus", 1, 1025)
        if backing not in ("2M", "4K"):
            raise InvalidArgument(f"backing = {backing!r}")
        if initial not in ("free", "pending"):
            raise InvalidArgument(f"initial = {initial!r}")
        if gpaw not in (48, 52):
            raise InvalidArgument(f"gpaw = {gpaw!r}")
        if memory_bytes == 0 or memory_bytes % K4:
            raise fail(E_ALIGN, f"memory_bytes = {memory_bytes:#x}")
        if memory_bytes > 1 << (gpaw - 1):
            raise fail(E_RANGE, f"memory_bytes = {memory_bytes:#x} reaches the shared bit")
        self.memory_bytes = self.mem = memory_bytes
        self.vcpus = vcpus
        self.backing = backing
        self.backing_level = 1 if backing == "2M" else 0
        self.initial = initial
        self.gpaw = gpaw
        self.shared_bit = 1 << (gpaw - 1)
        self.accept_1g = accept_1g
        self.finalized = bool(finalized) and not launch
        self.debug = debug
        self.attributes = (ATTR_SEPT_VE_DISABLE if pending_ve_disable else 0) | \
            (ATTR_DEBUG if debug else 0)
        self.td_ctls = 1 if pending_ve_disable else 0
        self.config_flags = 2 if flexible_pending_ve else 0
        self.hp_busy_limit = _int(hp_busy_limit, "hp_busy_limit", 0, 1 << 32)
        self.importing = False
        self.epoch = 1
        self.nregions = -(-memory_bytes // M2)
        self.regions: Dict[int, Region] = {}
        self.nonzero: Set[int] = set()   # 4 KiB page numbers holding non-zero data
        self.shared: Set[int] = set()    # 4 KiB page numbers shared in the VMM's view
        self.hp_busy = [0] * vcpus
        self.irq = [[0, 0] for _ in range(vcpus)]   # countdown, period
        self.ve: List[Optional[VeInfo]] = [None] * vcpus
        self._fatal: Optional[Fatal] = None
        self._stats = {k: PathStats() for k in _PATH_KINDS}
        self._hang_limit = {k: DEFAULT_HANG_LIMIT for k in _PATH_KINDS}
        self._paths: Dict[str, RefAcceptPath] = {}
        self.set_host(host)
        if initial == "pending":
            # the VMM pre-AUGed all RAM at the backing level; a last region that
            # is only partly RAM gets 4 KiB pages up to the end of RAM
            for idx in range(self.nregions):
                pages = min(512, (memory_bytes - idx * M2) // K4)
                if pages == 512 and self.backing_level == 1:
                    self.regions[idx] = Region(Entry(PENDING))
                else:
                    self.regions[idx] = Region(Entry(NL_MAPPED), [
                        Entry(PENDING if i < pages else FREE) for i in range(512)])
            self.nonzero = set(range(memory_bytes // K4))
        for start, end in launch:
            res = self.add_range(start, end, data_nonzero=True)
            if not res.ok:
                raise InvalidArgument(f"launch range [{start:#x}, {end:#x}): ADD failed")
        if launch and finalized:
            self.finalize()

    def __repr__(self) -> str:
        return (f"RefTdx({self.mem:#x}, vcpus={self.vcpus}, backing={self.backing!r}, "
                f"initial={self.initial!r}, host={self._host_name!r})")

    # ---- configuration ------------------------------------------------------------
    @property
    def host(self) -> Optional[Host]:
        return self._host

    def set_host(self, host: Optional[Host]) -> None:
        """Serve the TD with this host from now on (None: KVM).  Like a guest
        binding a Host, map-gpa-stall's countdown starts afresh."""
        name = "kvm" if host is None else getattr(host, "behavior", None)
        if name not in _HOSTS:
            raise InvalidArgument(f"the reference models the TDX hosts {_HOSTS}, not {host!r}")
        overrides = getattr(host, "_overrides", None)
        if overrides is not None and overrides():
            raise InvalidArgument("the reference does not run Python host callbacks")
        self._host = host
        self._host_name = name
        self._stalls = getattr(host, "count", 0) if name == "map-gpa-stall" else 0

    def set_importing(self, importing: bool = True) -> None:
        self.importing = bool(importing)

    def set_interrupts(self, vcpu: int = 0, after: int = 0, period: int = 0) -> None:
        self._vcpu(vcpu)
        self.irq[vcpu] = [_int(after, "after", 0, 1 << 32),
                          _int(period, "period", 0, 1 << 32) if after else 0]

    @property
    def fatal(self) -> Optional[Fatal]:
        return self._fatal

    def clear_fatal(self) -> None:
        self._fatal = None

    def _record_fatal(self, kind: FatalKind, vcpu: int, gpa: int, code: int, message: str) -> int:
        """The first fatal event wins; returns the status of this one."""
        if self._fatal is None:
            self._fatal = Fatal(FatalKind(kind), vcpu, gpa, code, message=message)
        return {FatalKind.TERMINATED: E_TERMINATED, FatalKind.PANIC: E_PANIC,
                FatalKind.HUNG: E_HUNG}[kind]

    # ---- helpers ---------------------------------------------------------------
    def _vcpu(self, vcpu: object) -> int:
        vcpu = _int(vcpu, "vcpu", 0, 1 << 32)
        if vcpu >= self.vcpus:
            raise fail(E_VCPU, f"vcpu {vcpu}")
        return vcpu

    def region(self, idx: int) -> Region:
        if idx not in self.regions:
            self.regions[idx] = Region()
        return self.regions[idx]

    def decode(self, pi: int, max_level: int) -> Optional[Tuple[int, int]]:
        level = pi & 7
        gpa = pi & ~0xFFF & ((1 << 52) - 1)
        if pi & 0xFF8 or pi >> 52 or level > max_level or gpa % SIZES[level]:
            return None
        if gpa >= self.shared_bit:
            return None
        return gpa, level

    def irq_units(self, vcpu: int, remaining: int) -> Tuple[int, bool]:
        cd, period = self.irq[vcpu]
        if not cd:
            return remaining, False
        if cd < remaining:
            self.irq[vcpu][0] = period
            return cd, True
        self.irq[vcpu][0] = period if remaining >= cd else cd - remaining
        return remaining, False

    def _tracked(self, e: Entry) -> bool:
        return e.blocked_epoch is None or e.blocked_epoch != self.epoch

    def _host_target(self, pi: int, max_level: int
                     ) -> Tuple[Optional[Tuple[int, int]], Optional[_Answer]]:
        d = self.decode(pi, max_level)
        if d is None:
            return None, (OPERAND_INVALID | RCX, 0, 0)
        gpa, level = d
        if gpa + SIZES[level] > self.mem:
            raise fail(E_RANGE, f"page_info {pi:#x} past guest RAM")
        return d, None

    def _walk4k(self, gpa: int) -> Tuple[Optional[Entry], Optional[_Answer]]:
        r = self.region(gpa // M2)
        if r.entry.state not in (NL_MAPPED, NL_BLOCKED):
            return None, (EPT_WALK_FAILED | RCX, 1, r.entry.state)
        assert r.children is not None                # a non-leaf has its 512 entries
        return r.children[(gpa % M2) // K4], None

    def _add_table(self, r: Region) -> None:
        r.entry = Entry(NL_MAPPED, r.entry.locked, r.entry.hp)
        r.children = [Entry() for _ in range(512)]

    @staticmethod
    def _pi(gpa: int, level: int, raw: Optional[int]) -> int:
        """RCX from (gpa, level) or a raw value, checked as TdxGuest checks it."""
        if raw is not None:
            return _int(raw, "page_info")
        if _int(gpa, "gpa") % K4:
            raise Misaligned(f"gpa = {gpa:#x} is not 4 KiB aligned")
        return gpa | _int(level, "level (RCX bits 11:0)", 0, K4)

    # ---- host SEAMCALLs ------------------------------------------------------------
    def _seamcall(self, fn: Callable[..., _Answer], gpa: int, level: int, vcpu: int,
                  raw: Optional[int], *extra: Any) -> HostResult:
        pi = self._pi(gpa, level, raw)
        self._vcpu(vcpu)
        status, lvl, state = fn(pi, *extra)
        return HostResult(status, None, lvl, state)

    def add(self, gpa: int, level: int = 0, *, data_nonzero: bool = False, vcpu: int = 0,
            raw: Optional[int] = None) -> HostResult:
        return self._seamcall(self._add, gpa, level, vcpu, raw, bool(data_nonzero))

    def aug(self, gpa: int, level: int = 0, *, vcpu: int = 0,
            raw: Optional[int] = None) -> HostResult:
        return self._seamcall(self._aug, gpa, level, vcpu, raw)

    def block(self, gpa: int, level: int = 0, *, vcpu: int = 0,
              raw: Optional[int] = None) -> HostResult:
        return self._seamcall(self._block, gpa, level, vcpu, raw)

    def remove(self, gpa: int, level: int = 0, *, vcpu: int = 0,
               raw: Optional[int] = None) -> HostResult:
        return self._seamcall(self._remove, gpa, level, vcpu, raw)

    def unblock(self, gpa: int, level: int = 0, *, vcpu: int = 0,
                raw: Optional[int] = None) -> HostResult:
        return self._seamcall(self._unblock, gpa, level, vcpu, raw)

    def demote(self, gpa: int, level: int = 1, *, vcpu: int = 0,
               raw: Optional[int] = None) -> HostResult:
        return self._seamcall(self._demote, gpa, level, vcpu, raw)

    def promote(self, gpa: int, level: int = 1, *, vcpu: int = 0,
                raw: Optional[int] = None) -> HostResult:
        return self._seamcall(self._promote, gpa, level, vcpu, raw)

    def track(self, vcpu: int = 0) -> HostResult:
        self._vcpu(vcpu)
        self.epoch += 1
        return HostResult(SUCCESS, None, 0, 0)

    def finalize(self, vcpu: int = 0) -> HostResult:
        self._vcpu(vcpu)
        if self.finalized:
            return HostResult(OP_STATE_INCORRECT, None, 0, 0)
        self.finalized = True
        return HostResult(SUCCESS, None, 0, 0)

    def add_range(self, start: int, end: int, *, data_nonzero: bool = False,
                  vcpu: int = 0) -> HostResult:
        self._vcpu(vcpu)
        if (start | end) % K4:
            raise fail(E_ALIGN, "add_range")
        if start > end or end > self.mem:
            raise fail(E_RANGE, "add_range")
        res = HostResult(SUCCESS, None, 0, 0)
        for a in range(start, end, K4):
            res = self.add(a, data_nonzero=data_nonzero, vcpu=vcpu)
            if not res.ok:
                break
        return res

    def _knob(self, gpa: int, level: int, attr: str, on: bool) -> None:
        """The contention knobs: an entry's lock or host-priority bit."""
        pi = self._pi(gpa, level, None)
        d = self.decode(pi, 1)
        if d is None:
            raise fail(E_INVAL, f"page_info {pi:#x}")
        gpa, level = d
        if gpa >= self.mem:
            raise fail(E_RANGE, f"gpa {gpa:#x}")
        r = self.region(gpa // M2)
        if level == 1:
            setattr(r.entry, attr, bool(on))
            return
        if r.entry.state not in (NL_MAPPED, NL_BLOCKED):
            raise fail(E_STATE, f"no 4 KiB entry at {gpa:#x}")
        assert r.children is not None
        setattr(r.children[(gpa % M2) // K4], attr, bool(on))

    def set_lock(self, gpa: int, level: int = 0, locked: bool = True) -> None:
        self._knob(gpa, level, "locked", locked)

    def set_host_priority(self, gpa: int, level: int = 0, on: bool = True) -> None:
        self._knob(gpa, level, "hp", on)

    # allowed-from states of the page_info SEAMCALLs at (4 KiB, 2 MiB)
    _FREE_REMOVED = {FREE, REMOVED}
    _BLOCKABLE = ({MAPPED, PENDING}, {NL_MAPPED, MAPPED, PENDING})
    _NON_LEAF = {NL_MAPPED, NL_BLOCKED}

    def _enter(self, pi: int, allowed: Tuple[Set[int], Set[int]], *, max_level: int = 2,
               min_level: int = 0, at_1g: Optional[_Answer] = None, add_table: bool = False,
               warn_blocked: bool = False, needs: bool = False,
               tlb_operand: int = RCX) -> Tuple[Optional[_Target], Optional[_Answer]]:
        """The common part of the SEAMCALLs that take page_info: decode, range,
        walk to the entry at the requested level, lock, allowed-from state
        and (needs) blocked-and-tracked, TLB_TRACKING_NOT_DONE carrying
        tlb_operand.  ((gpa, level, region, entry), None)
        or (None, the answer).  at_1g: the answer at level 2 (None raises
        InvalidState, 1 GiB blocking being unmodelled)."""
        if min_level and (pi & 7) < min_level and not (pi & 0xFF8 or pi >> 52):
            return None, (OPERAND_INVALID | RCX, 0, 0)
        d, err = self._host_target(pi, max_level)
        if err:
            return None, err
        assert d is not None
        gpa, level = d
        if level == 2:
            if at_1g is None:
                raise fail(E_STATE, "1 GiB blocking is not modelled")
            return None, at_1g
        r = self.region(gpa // M2)
        e: Optional[Entry] = r.entry
        if level == 0:
            if add_table and r.entry.state == FREE:
                self._add_table(r)
            e, err = self._walk4k(gpa)
            if err:
                return None, err
        assert e is not None
        if e.locked:
            return None, (OPERAND_BUSY | RCX, 0, 0)
        if e.state not in allowed[level]:
            code = GPA_RANGE_ALREADY_BLOCKED if warn_blocked and e.state in BLOCKED_STATES \
                else EPT_ENTRY_STATE_INCORRECT
            return None, (code | RCX, level, e.state)
        need = self._needs(e, tlb_operand) if needs else None
        if need:
            return None, ((need, level, e.state) if need >> 32 == GPA_RANGE_NOT_BLOCKED >> 32
                          else (need, 0, 0))
        return (gpa, level, r, e), None

    def _add(self, pi: int, data_nonzero: bool = False) -> _Answer:
        if self.finalized:
            return (OP_STATE_INCORRECT, 0, 0)
        ref, err = self._enter(pi, ({FREE}, set()), max_level=0, add_table=True)
        if err:
            return err
        assert ref is not None
        gpa, _, _, e = ref
        e.state, e.moved = MAPPED, e.used
        page = gpa // K4
        (self.nonzero.add if data_nonzero else self.nonzero.discard)(page)
        self.shared.discard(page)
        return (SUCCESS, 0, 0)

    def _aug(self, pi: int) -> _Answer:
        # allowed before and after finalize (no op-state check here)
        ref, err = self._enter(pi, (self._FREE_REMOVED, self._FREE_REMOVED), max_level=1,
                               add_table=True)
        if err:
            return err
        assert ref is not None
        gpa, level, r, e = ref
        if level == 1:
            r.entry = Entry(PENDING, False, r.entry.hp)
            r.children = None
            first = gpa // K4
            self.nonzero.update(range(first, first + 512))
            self.shared.difference_update(range(first, first + 512))
            return (SUCCESS, 0, 0)
        e.state, e.moved = PENDING, e.used
        self.nonzero.add(gpa // K4)
        self.shared.discard(gpa // K4)
        return (SUCCESS, 0, 0)

    def _block(self, pi: int) -> _Answer:
        ref, err = self._enter(pi, self._BLOCKABLE, warn_blocked=True)
        if err:
            return err
        assert ref is not None
        e = ref[3]
        e.state = {NL_MAPPED: NL_BLOCKED, MAPPED: BLOCKED, PENDING: PENDING_BLOCKED}[e.state]
        e.blocked_epoch = self.epoch
        return (SUCCESS, 0, 0)

    def _needs(self, e: Entry, tlb_operand: int = RCX) -> Optional[int]:
        """Blocked-and-tracked requirement of a running TD."""
        if not self.finalized:
            return None
        if e.state not in BLOCKED_STATES:
            return GPA_RANGE_NOT_BLOCKED | RCX
        if not self._tracked(e):
            return TLB_TRACKING_NOT_DONE | tlb_operand
        return None

    _NOT_LEAF_1G = (EPT_ENTRY_STATE_INCORRECT | RCX, 2, NL_MAPPED)

    def _remove(self, pi: int) -> _Answer:
        ref, err = self._enter(pi, (LEAF_STATES, LEAF_STATES), at_1g=self._NOT_LEAF_1G,
                               needs=True)
        if err:
            return err
        assert ref is not None
        _, level, r, e = ref
        new = REMOVED if self.importing else FREE
        if level == 1:
            r.entry = Entry(new, False, False)
            r.children = None
        else:
            e.state, e.counter, e.blocked_epoch, e.hp, e.used, e.moved = \
                new, 0, None, False, True, False
        return (SUCCESS, 0, 0)

    def _unblock(self, pi: int) -> _Answer:
        # every allowed state is blocked: "needs" checks the tracking, which
        # UNBLOCK reports against the SEPT tree rather than RCX
        ref, err = self._enter(pi, (BLOCKED_STATES, BLOCKED_STATES), at_1g=self._NOT_LEAF_1G,
                               needs=True, tlb_operand=SEPT_TREE)
        if err:
            return err
        assert ref is not None
        e = ref[3]
        e.state = {NL_BLOCKED: NL_MAPPED, BLOCKED: MAPPED, PENDING_BLOCKED: PENDING}[e.state]
        e.blocked_epoch = None
        return (SUCCESS, 0, 0)

    def _demote(self, pi: int) -> _Answer:
        ref, err = self._enter(pi, (set(), LEAF_STATES), min_level=1, at_1g=self._NOT_LEAF_1G,
                               needs=True)
        if err:
            return err
        assert ref is not None
        _, _, r, e = ref
        child = MAPPED if e.state in (MAPPED, BLOCKED) else PENDING
        r.children = [Entry(child) for _ in range(512)]
        r.entry = Entry(NL_MAPPED)
        return (SUCCESS, 0, 0)

    def _promote(self, pi: int) -> _Answer:
        ref, err = self._enter(pi, (set(), self._NON_LEAF), min_level=1,
                               at_1g=(EPT_INVALID_PROMOTE_CONDITIONS | RCX, 0, 0), needs=True)
        if err:
            return err
        assert ref is not None
        _, _, r, e = ref
        assert r.children is not None                # a non-leaf has its 512 entries
        # contiguity: a page given back by REMOVE and re-added breaks it
        first = r.children[0].state
        ok = first in (MAPPED, PENDING) and all(
            c.state == first and not c.locked and not c.moved
            for c in r.children)
        if not ok:
            return (EPT_INVALID_PROMOTE_CONDITIONS | RCX, 0, 0)
        r.entry = Entry(first, e.locked, e.hp)
        r.children = None
        return (SUCCESS, 0, 0)

    # ---- guest TDCALLs -------------------------------------------------------------
    def _lock(self, vcpu: int, e: Entry, gpa: int, out: Dict[str, Any]) -> bool:
        if e.locked:
            self.hp_busy[vcpu] = 0
            out["rax"] = OPERAND_BUSY | RCX
            return True
        if e.hp:
            self.hp_busy[vcpu] += 1
            if self.hp_busy_limit and self.hp_busy[vcpu] >= self.hp_busy_limit:
                self.hp_busy[vcpu] = 0
                out.update(exited=True, exit_status=HOST_PRIORITY_BUSY_TIMEOUT, gpa=gpa)
                return True
            out["rax"] = OPERAND_BUSY | RCX
            return True
        self.hp_busy[vcpu] = 0
        return False

    def accept(self, gpa: int = 0, level: int = 0, *, vcpu: int = 0, rax: int = ACCEPT_LEAF,
               rcx: Optional[int] = None) -> TdcallResult:
        """One execution of TDG.MEM.PAGE.ACCEPT; an exit is not served."""
        rcx = self._pi(gpa, level, None) if rcx is None else _int(rcx, "rcx")
        _int(rax, "rax")
        self._vcpu(vcpu)
        if rax & 0xFFFF != ACCEPT_LEAF:
            raise fail(E_INVAL, "not the ACCEPT leaf")
        if not self.finalized:
            raise fail(E_STATE, "the TD is not finalized")
        out = self._accept_once(rcx, vcpu, rax)
        return TdcallResult(out["rax"], out["exited"], out["interrupted"], out["exit_reason"],
                            out["eeq"] & 0xF, out["eeq"], out["exit_status"], out["gpa"],
                            out["chunks_zeroed"], out["accept_counter"])

    def _accept_once(self, rcx: int, vcpu: int, rax: int) -> Dict[str, Any]:
        out: Dict[str, Any] = dict(rax=rax, exited=False, interrupted=False, exit_reason=0,
                                   eeq=0, exit_status=0, gpa=0, chunks_zeroed=0,
                                   accept_counter=0)

        def exit_(gpa: int, req: int, lvl: int, state: int, leaf: bool) -> Dict[str, Any]:
            out.update(exited=True, exit_reason=EXIT_REASON_EPT_VIOLATION,
                       eeq=eeq_accept(req, lvl, state, leaf), gpa=gpa)
            return out

        if rax >> 16:
            out["rax"] = OPERAND_INVALID
            return out
        d = self.decode(rcx, 2 if self.accept_1g else 1)
        if d is None:
            out["rax"] = OPERAND_INVALID | RCX
            return out
        gpa, req = d
        if gpa >= self.nregions * M2:
            return exit_(gpa, req, max(req, 1), FREE, False)
        if req == 2:
            out["rax"] = PAGE_SIZE_MISMATCH | 2
            return out
        r = self.region(gpa // M2)
        e = r.entry
        if req == 1:
            if self._lock(vcpu, e, gpa, out):
                return out
            if e.state != FREE and e.state not in LEAF_STATES:
                out["rax"] = PAGE_SIZE_MISMATCH | 1
                return out
            if e.state == MAPPED:
                out["rax"] = PAGE_ALREADY_ACCEPTED | 1
                return out
            if e.state != PENDING:
                return exit_(gpa, 1, 1, e.state, e.state in LEAF_STATES)
            n, intr = self.irq_units(vcpu, 512 - e.counter)
            out["chunks_zeroed"] = n
            if intr:
                e.counter += n
                out.update(interrupted=True, accept_counter=e.counter)
                return out
            e.counter, e.state = 0, MAPPED
            first = gpa // K4
            self.nonzero.difference_update(range(first, first + 512))
            out["rax"] = SUCCESS
            return out
        if e.state != NL_MAPPED:
            if e.state == MAPPED:
                out["rax"] = PAGE_ALREADY_ACCEPTED | 1
                return out
            return exit_(gpa, 0, 1, e.state, e.state in LEAF_STATES)
        assert r.children is not None                # NL_MAPPED: 512 entries
        c = r.children[(gpa % M2) // K4]
        if self._lock(vcpu, c, gpa, out):
            return out
        if c.state == REMOVED:
            out["rax"] = PAGE_SIZE_MISMATCH | 0
        elif c.state == MAPPED:
            out["rax"] = PAGE_ALREADY_ACCEPTED | 0
        elif c.state != PENDING:
            return exit_(gpa, 0, 0, c.state, c.state in LEAF_STATES)
        else:
            c.state = MAPPED
            self.nonzero.discard(gpa // K4)
            out.update(rax=SUCCESS, chunks_zeroed=1)
        return out

    def leaf_state(self, pa: int) -> int:
        r = self.region(pa // M2)
        if r.entry.state == NL_MAPPED:
            assert r.children is not None
            return r.children[(pa % M2) // K4].state
        return r.entry.state

    def access(self, gpa: int, write: bool = False, *, vcpu: int = 0) -> AccessResult:
        """A guest load or store (the shared bit in gpa selects the shared EPT)."""
        _int(gpa, "gpa")
        self._vcpu(vcpu)
        if not self.finalized:
            raise fail(E_STATE, "the TD is not finalized")
        if gpa >= self.shared_bit << 1:
            raise fail(E_RANGE, f"gpa {gpa:#x} beyond GPAW")
        qual = 2 if write else 1
        pa = gpa & ~self.shared_bit

        def exit_(eeq_type: int = 0, state: int = 0) -> AccessResult:
            return AccessResult(EXIT, 0, EXIT_REASON_EPT_VIOLATION, eeq_type, qual,
                                eeq_type, state, False, gpa)

        if pa >= self.mem:
            return exit_()
        if gpa & self.shared_bit:
            if pa // K4 in self.shared:
                return AccessResult(OK, 0, 0, 0, 0, 0, 0, False, gpa)
            return exit_()
        s = self.leaf_state(pa)
        if s == MAPPED:
            if write:
                self.nonzero.add(pa // K4)
                return AccessResult(OK, 0, 0, 0, 0, 0, s, False, gpa)
            return AccessResult(OK, 0, 0, 0, 0, 0, s, pa // K4 in self.nonzero, gpa)
        if s == PENDING and not self.td_ctls & 1:
            if self.ve[vcpu] is not None:
                return AccessResult(DF, VECTOR_DF, 0, 0, 0, 0, s, False, gpa)
            self.ve[vcpu] = VeInfo(SUCCESS, EXIT_REASON_EPT_VIOLATION, 0xFFFFFFFF, qual, gpa, gpa)
            return AccessResult(VE, VECTOR_VE, EXIT_REASON_EPT_VIOLATION, 0, qual, 0, s, False,
                                gpa)
        return exit_(EEQ_PENDING if s == PENDING else 0, s)

    def veinfo_get(self, vcpu: int = 0) -> VeInfo:
        self._vcpu(vcpu)
        v, self.ve[vcpu] = self.ve[vcpu], None
        return VeInfo(NO_VALID_VE_INFO, 0, 0, 0, 0, 0) if v is None else v

    def vm_rd(self, field: int, *, vcpu: int = 0) -> Tuple[int, int]:
        self._vcpu(vcpu)
        if field == CONFIG_FLAGS:
            return SUCCESS, self.config_flags
        if field == TD_CTLS:
            return SUCCESS, self.td_ctls
        return METADATA_FIELD_ID_INCORRECT, 0

    def vm_wr(self, field: int, value: int, mask: int = U64 - 1, *,
              vcpu: int = 0) -> Tuple[int, int]:
        self._vcpu(vcpu)
        if field == TD_CTLS:
            if not self.config_flags & 2:
                return METADATA_FIELD_NOT_WRITABLE, 0
            if value & mask & ~1:
                return METADATA_FIELD_VALUE_NOT_VALID, 0
            old = self.td_ctls
            self.td_ctls = (self.td_ctls & ~(mask & 1)) | (value & mask & 1)
            return SUCCESS, old
        if field == CONFIG_FLAGS:
            return METADATA_FIELD_NOT_WRITABLE, 0
        return METADATA_FIELD_ID_INCORRECT, 0

    @property
    def pending_ve_disable(self) -> bool:
        return bool(self.td_ctls & 1)

    # ---- TDG.VP.VMCALL: the host's MapGPA --------------------------------------------
    def tdvmcall(self, r10: int, r11: int, r12: int, r13: int, *, vcpu: int = 0) -> VmcallResult:
        self._vcpu(vcpu)
        if not self.finalized:
            raise fail(E_STATE, "the TD is not finalized")
        r10, r11, chunks = self._host_vmcall(r10, r11, r12, r13, vcpu)
        return VmcallResult(SUCCESS, r10, r11, chunks)

    def _map_gpa_check(self, gpa: int, size: int) -> Optional[int]:
        """KVM checks the range before the alignment; None if well formed."""
        s = self.shared_bit
        end = gpa + size
        if size == 0 or end >= U64 or end > s << 1 or (gpa ^ (end - 1)) & s:
            return VMCALL_INVALID_OPERAND
        if (gpa | size) % K4:
            return VMCALL_ALIGN_ERROR
        return None

    def _host_vmcall(self, r10: int, r11: int, r12: int, r13: int,
                     vcpu: int) -> Tuple[int, int, int]:
        """(r10, r11, chunks): the host's answer."""
        is_map_gpa = r10 == 0 and r11 == MAP_GPA
        if self._host_name == "map-gpa-refuse" and is_map_gpa:
            return (VMCALL_INVALID_OPERAND, 0, 0)
        if self._host_name == "map-gpa-stall" and is_map_gpa and \
                self._map_gpa_check(r12, r13) is None and self._stalls:
            self._stalls -= 1
            return (VMCALL_RETRY, r12, 0)
        return self._kvm_vmcall(r10, r11, r12, r13, vcpu)

    def _zap(self, a: int, b: int) -> None:
        """The VMM drops private pages behind [a, b) (within one region)."""
        idx = a // M2
        r = self.region(idx)
        i0, i1 = (a % M2) // K4, (a % M2) // K4 + (b - a) // K4
        new = REMOVED if self.importing else FREE
        if r.entry.state in LEAF_STATES and not r.entry.locked:
            if i0 == 0 and i1 == 512:
                r.entry = Entry(new)
                r.children = None
                return
            child = MAPPED if r.entry.state in (MAPPED, BLOCKED) else PENDING
            r.children = [Entry(child) for _ in range(512)]
            r.entry = Entry(NL_MAPPED)
        if r.entry.state in (NL_MAPPED, NL_BLOCKED):
            assert r.children is not None
            for c in r.children[i0:i1]:
                if c.state in LEAF_STATES and not c.locked:
                    c.state, c.counter, c.blocked_epoch, c.hp = new, 0, None, False
                    c.used, c.moved = True, False

    def _kvm_vmcall(self, r10: int, r11: int, r12: int, r13: int,
                    vcpu: int) -> Tuple[int, int, int]:
        if r10 != 0 or r11 != MAP_GPA:
            return (VMCALL_SUBFUNC_UNSUPPORTED, 0, 0)
        gpa, size, s = r12, r13, self.shared_bit
        bad = self._map_gpa_check(gpa, size)
        if bad is not None:
            return (bad, 0, 0)
        end = gpa + size
        to_shared = bool(gpa & s)
        a, e = gpa & ~s, end - (s if to_shared else 0)
        if e > self.mem:
            return (VMCALL_INVALID_OPERAND, 0, 0)
        chunks = 0
        while a < e:
            cend = min(e, a + M2)          # 2 MiB from a, not 2 MiB-aligned
            b = a
            while b < cend:
                rend = min(cend, (b // M2 + 1) * M2)
                if to_shared:
                    self._zap(b, rend)
                    self.shared.update(range(b // K4, rend // K4))
                else:
                    self.shared.difference_update(range(b // K4, rend // K4))
                b = rend
            chunks += 1
            a = cend
            fired = False
            if self.irq[vcpu][0]:
                self.irq[vcpu][0] -= 1
                if self.irq[vcpu][0] == 0:
                    self.irq[vcpu][0] = self.irq[vcpu][1]
                    fired = True
            if a < e and fired:
                return (VMCALL_RETRY, a | (s if to_shared else 0), chunks)
        return (VMCALL_SUCCESS, 0, chunks)

    def _linux_map_gpa(self, start: int, end: int, shared: bool, vcpu: int) -> Tuple[bool, int]:
        """Linux's tdx_map_gpa loop: (ok, last R10)."""
        if start >= end:
            raise fail(E_RANGE, "MapGPA of an empty range")
        if shared:                             # the size first: no wrap at the top of RAM
            size = end - start
            start |= self.shared_bit
            end = start + size
        retries, r10 = 0, VMCALL_RETRY
        while retries < MAP_GPA_MAX_RETRIES:
            r = self.tdvmcall(0, MAP_GPA, start, end - start, vcpu=vcpu)
            r10 = r.r10
            if r10 != VMCALL_RETRY:
                break
            if not start <= r.r11 < end:       # the resume address must be in range
                r10 = VMCALL_INVALID_OPERAND
                break
            if r.r11 == start:                 # a retry without forward progress
                retries += 1
                continue
            start, retries = r.r11, 0
        return r10 == VMCALL_SUCCESS, r10

    def map_gpa(self, start: int, end: int, shared: bool, *, vcpu: int = 0) -> int:
        """Linux's MapGPA loop over [start, end); HostError when it gives up."""
        self._vcpu(vcpu)
        ok, r10 = self._linux_map_gpa(start, end, shared, vcpu)
        if not ok:
            raise fail(E_HOST, f"MapGPA -> R10 = {r10:#x}")
        return r10

    # ---- the host: TD exits -------------------------------------------------------
    def serve_exit(self, result: Union[TdcallResult, AccessResult], *,
                   vcpu: int = 0) -> HostAction:
        """Hand an exit (a TdcallResult or an AccessResult with its gpa) to the
        host; HostError when the host stops the TD."""
        self._vcpu(vcpu)
        eeq = getattr(result, "extended_exit_qualification", result.exit_qualification)
        return self._host_exit(vcpu, getattr(result, "gpa", 0), eeq,
                               getattr(result, "exit_status", 0))

    def _host_exit(self, vcpu: int, gpa: int, eeq: int, exit_status: int) -> HostAction:
        name = self._host_name
        if name == "never-resolve" and exit_status != HOST_PRIORITY_BUSY_TIMEOUT:
            return HostAction.NOTHING    # the vCPU re-enters into the same violation
        return self._kvm_exit(vcpu, gpa, eeq, exit_status, 0 if name == "aug-4k" else 1)

    def _kvm_exit(self, vcpu: int, gpa: int, eeq: int, exit_status: int,
                  max_level: int) -> HostAction:
        """KVM: AUG at the level asked for (capped by the backing and
        max_level), split a PENDING 2 MiB leaf for a 4 KiB accept, release the
        host priority; NOTHING while the page is blocked; HostError where KVM
        stops the TD."""
        pa = gpa & ~self.shared_bit
        if exit_status == HOST_PRIORITY_BUSY_TIMEOUT:
            if pa >= self.mem:
                raise fail(E_HOST, "host-priority exit past guest RAM")
            r = self.region(pa // M2)
            r.entry.hp = False
            if r.children:
                r.children[(pa % M2) // K4].hp = False
            return HostAction.RELEASE_HP
        if gpa & self.shared_bit or pa >= self.mem or pa // K4 in self.shared:
            raise fail(E_HOST, f"KVM cannot map {gpa:#x}")
        r = self.region(pa // M2)
        typ = eeq & 0xF
        if typ == EEQ_ACCEPT:
            info = eeq >> 32
            req, lvl, state = info & 7, (info >> 3) & 7, (info >> 6) & 0xFF
        elif typ == 0:
            req = self.backing_level
            lvl = 0 if r.entry.state == NL_MAPPED else 1
            if lvl == 0:
                assert r.children is not None
                state = r.children[(pa % M2) // K4].state
            else:
                state = r.entry.state
        else:
            raise fail(E_HOST, "guest access before accept: KVM stops the TD")
        if state in (FREE, REMOVED):
            target = min(req, self.backing_level, max_level, 1)
            base = pa - pa % M2
            region_shared = any(p in self.shared for p in range(base // K4, base // K4 + 512))
            if target == 1 and (base + M2 > self.mem or r.entry.state not in (FREE, REMOVED)
                                or region_shared):
                target = 0
            addr = base if target == 1 else pa - pa % K4
            if self._aug(addr | target)[0]:
                raise fail(E_HOST, "AUG failed")
            return HostAction.AUG_2M if target == 1 else HostAction.AUG_4K
        if state == PENDING and lvl == 1 and req < lvl:
            base = pa - pa % M2
            if self._block(base | 1)[0]:
                raise fail(E_HOST, "BLOCK failed")
            self.epoch += 1
            if self._demote(base | 1)[0]:
                raise fail(E_HOST, "DEMOTE failed")
            return HostAction.DEMOTE
        return HostAction.NOTHING

    # ---- the guest: accept paths -------------------------------------------------------
    def accept_path(self, kind: str = "linux", **options: int) -> RefAcceptPath:
        """The TD's accept path of this kind; options (hang_limit) replace
        the path's, resetting its statistics."""
        if kind not in _PATH_KINDS:
            raise InvalidArgument(f"accept path kind = {kind!r}")
        if options:
            unknown = set(options) - {"hang_limit", "psc_max_entries", "ovmf_buffer_bytes"}
            if unknown or options.get("psc_max_entries") or options.get("ovmf_buffer_bytes"):
                raise InvalidArgument(f"TDX path options {options!r}")
            self._hang_limit[kind] = options.get("hang_limit", 0) or DEFAULT_HANG_LIMIT
            self._stats[kind] = PathStats()
        return self._paths.setdefault(kind, RefAcceptPath(self, kind))

    def path_stats(self, kind: str = "linux") -> PathStats:
        return PathStats(**{f.name: getattr(self._stats[kind], f.name)
                            for f in fields(PathStats)})

    def reset_path_stats(self, kind: str = "linux") -> None:
        self._stats[kind] = PathStats()

    def _path_enter(self, kind: str, start: int, end: int, vcpu: int) -> PathStats:
        _int(start, "start")
        _int(end, "end")
        _int(vcpu, "vcpu", 0, self.vcpus)
        if (start | end) % K4:
            raise fail(E_ALIGN, f"[{start:#x}, {end:#x})")
        if start > end or end > self.memory_bytes:
            raise fail(E_RANGE, f"[{start:#x}, {end:#x})")
        if self._fatal is not None:          # a dead guest runs nothing
            raise fail({FatalKind.TERMINATED: E_TERMINATED, FatalKind.PANIC: E_PANIC,
                        FatalKind.HUNG: E_HUNG}[self._fatal.kind], "the guest is dead")
        s = self._stats[kind]
        if start < end:                      # an empty call is not counted (as on SNP)
            s.calls += 1
        return s

    def _path_fail(self, s: PathStats, vcpu: int, status: int, gpa: int, code: int) -> NoReturn:
        """A failed call records how the guest died and raises that status."""
        s.failures += 1
        if status == E_PANIC:
            status = self._record_fatal(FatalKind.PANIC, vcpu, gpa, code, MSG_LINUX)
        elif status == E_HUNG:
            status = self._record_fatal(FatalKind.HUNG, vcpu, gpa, code, MSG_HUNG)
        elif status == E_HOST:
            status = self._record_fatal(FatalKind.TERMINATED, vcpu, gpa, code, MSG_STOPPED)
        raise fail(status, "accept")

    def _accept(self, kind: str, start: int, end: int, vcpu: int) -> None:
        s = self._path_enter(kind, start, end, vcpu)
        if kind == "ovmf":
            self._accept_ovmf(s, start, end, vcpu)
        else:
            self._accept_linux(s, start, end, vcpu, self._hang_limit[kind])
        s.bytes += end - start

    def _execute(self, rcx: int, vcpu: int, s: PathStats,
                 hang_limit: int = DEFAULT_HANG_LIMIT) -> int:
        """One ACCEPT instruction as the guest sees it: executions until it
        returns its status.  Raises _Stop(status) when the host never serves
        the exit (hung) or stops the TD."""
        lvl = rcx & 7
        if lvl == 2:
            s.accept_1g += 1
        elif lvl == 1:
            s.accept_2m += 1
        else:
            s.accept_4k += 1
        exits = 0   # of this one instruction: hang_limit of them is no progress
        while True:
            r = self._accept_once(rcx, vcpu, ACCEPT_LEAF)
            s.executions += 1
            if r["interrupted"]:
                s.interrupts += 1
                continue
            if r["exited"]:
                s.exits += 1
                try:
                    act = self._host_exit(vcpu, r["gpa"], r["eeq"], r["exit_status"])
                except UnacceptedError as e:
                    assert e.status is not None      # fail() sets it
                    raise _Stop(e.status) from None
                if act != HostAction.NOTHING:
                    name = {HostAction.AUG_4K: "host_aug_4k", HostAction.AUG_2M: "host_aug_2m",
                            HostAction.DEMOTE: "host_demote",
                            HostAction.RELEASE_HP: "host_release_hp"}[act]
                    setattr(s, name, getattr(s, name) + 1)
                exits += 1
                if exits >= hang_limit:
                    raise _Stop(E_HUNG)
                continue
            rax: int = r["rax"]
            cls = rax & CLASS_MASK
            if rax == SUCCESS:
                if lvl == 1:
                    s.success_2m += 1
                elif lvl == 0:
                    s.success_4k += 1
            elif cls == PAGE_ALREADY_ACCEPTED:
                s.already_accepted += 1
            elif cls == PAGE_SIZE_MISMATCH:
                s.size_mismatch += 1
            elif cls == OPERAND_INVALID:
                s.operand_invalid += 1
            elif cls == OPERAND_BUSY:
                s.operand_busy += 1
            else:
                s.other_status += 1
            return rax

    def _accept_linux(self, s: PathStats, start: int, end: int, vcpu: int,
                      hang_limit: int) -> None:
        """tdx_accept_memory(): per position 1 GiB, 2 MiB, 4 KiB (sizes the
        position is aligned to and that fit); any non-zero status fails that
        size; failing at every size, arch_accept_memory() panics."""
        while start < end:
            last = 0
            for lvl in (2, 1, 0):
                size = SIZES[lvl]
                if start % size or end - start < size:
                    continue
                try:
                    rax = self._execute(start | lvl, vcpu, s, hang_limit)
                except _Stop as stop:
                    self._path_fail(s, vcpu, stop.status, start, 0)
                if rax == SUCCESS:
                    start += size
                    break
                last = rax
                if lvl:                       # a big accept redone smaller
                    s.fallbacks += 1
            else:
                self._path_fail(s, vcpu, E_PANIC, start, last)

    def _td_accept_pages(self, start: int, npages: int, lvl: int, vcpu: int,
                         s: PathStats) -> Optional[Tuple[int, int]]:
        """TdAcceptPages: None, or (status, the failing page)."""
        size = SIZES[lvl]
        if start & 0xFFF0000000000FFF:       # EFI_INVALID_PARAMETER: bits 63:52 / 11:0
            return E_ACCEPT_FAILED, start
        for k in range(npages):
            addr = start + k * size
            retried = 0
            while True:
                try:
                    rax = self._execute(addr | lvl, vcpu, s, self._hang_limit["ovmf"])
                except _Stop as stop:
                    return stop.status, addr
                m = rax & ~0xFFFF
                if rax == 0 or m == PAGE_ALREADY_ACCEPTED:
                    break
                if m == PAGE_SIZE_MISMATCH and lvl > 0:
                    s.fallbacks += 1
                    bad = self._td_accept_pages(addr, 512, lvl - 1, vcpu, s)
                    if bad:
                        return bad
                    break
                if m == OPERAND_BUSY:
                    retried += 1
                    if retried <= OVMF_MAX_RETRIES:
                        continue
                return E_ACCEPT_FAILED, addr
        return None

    def _accept_ovmf(self, s: PathStats, start: int, end: int, vcpu: int) -> None:
        """TdxMemoryAccept: an unaligned head in 4 KiB pages, the 2 MiB-aligned
        middle in 2 MiB pages only when more than 2 MiB remain, a 4 KiB tail."""
        size = end - start
        head = min((-start) % M2, size)
        rest = size - head
        middle = rest - rest % M2 if rest > M2 else 0
        for nbytes, lvl in ((head, 0), (middle, 1), (rest - middle, 0)):
            if nbytes:
                bad = self._td_accept_pages(start, nbytes // SIZES[lvl], lvl, vcpu, s)
                if bad:
                    self._path_fail(s, vcpu, bad[0], bad[1], 0)
            start += nbytes

    def unaccept(self, start: int, end: int, *, kind: str = "linux", vcpu: int = 0) -> None:
        """Linux's set_memory_decrypted() and back: MapGPA to shared (KVM
        removes the private pages), then to private; the pages are FREE."""
        if kind not in _PATH_KINDS:
            raise InvalidArgument(f"accept path kind = {kind!r}")
        s = self._path_enter(kind, start, end, vcpu)
        if start == end:
            return
        try:
            ok, r10 = self._linux_map_gpa(start, end, True, vcpu)
            if ok:
                ok, r10 = self._linux_map_gpa(start, end, False, vcpu)
        except UnacceptedError:
            s.failures += 1
            raise
        if not ok:   # Linux: set_memory_decrypted() fails, the pages leak, the guest lives
            s.failures += 1
            raise fail(E_HOST, f"unaccept: MapGPA -> R10 = {r10:#x}")
        s.bytes += end - start

    # ---- the guest: Linux's handling of a touch and of SEPT #VE ---------------------
    def touch(self, gpa: int, *, write: bool = False, shared: bool = False, user: bool = False,
              vcpu: int = 0) -> TouchResult:
        """A Linux kernel load or store: plain EPT violations are served by the
        host and the access retried; a #VE on private memory panics; a
        pending-page exit makes KVM stop the TD."""
        _int(gpa, "gpa")
        _int(vcpu, "vcpu", 0, self.vcpus)
        if shared:
            gpa |= self.shared_bit
        exits, detail = 0, 0
        while True:
            a = self.access(gpa, write, vcpu=vcpu)
            if a.outcome == OK:
                outcome = TouchOutcome.SERVED_EXIT if exits else TouchOutcome.SERVED
                return TouchResult(outcome, exits, 0, 0, detail)
            if a.outcome in (VE, DF):
                self._record_fatal(FatalKind.PANIC, vcpu, gpa, a.exit_qualification,
                                   "Unexpected EPT-violation on private memory."
                                   if a.outcome == VE else "double fault")
                return TouchResult(TouchOutcome.PANIC, exits, a.vector, 0, detail)
            detail = a.extended_exit_qualification
            if a.eeq_type == EEQ_PENDING:
                self._record_fatal(FatalKind.TERMINATED, vcpu, gpa, detail,
                                   "KVM: guest access before accepting (memory fault exit)")
                return TouchResult(TouchOutcome.TERMINATED, exits, 0, 0, detail)
            try:
                act = self._host_exit(vcpu, gpa, detail, 0)
            except UnacceptedError as e:
                if e.status != E_HOST:
                    raise
                exits += 1
                self._record_fatal(FatalKind.TERMINATED, vcpu, gpa, detail,
                                   "the host stopped the TD at an EPT violation")
                return TouchResult(TouchOutcome.TERMINATED, exits, 0, 0, detail)
            exits += 1
            if act == HostAction.NOTHING or exits >= TOUCH_EXIT_LIMIT:
                self._record_fatal(FatalKind.HUNG, vcpu, gpa, detail,
                                   "access: an EPT violation the host never resolves")
                return TouchResult(TouchOutcome.HUNG, exits, 0, 0, detail)

    def linux_disable_sept_ve(self, *, vcpu: int = 0) -> str:
        """Linux's disable_sept_ve(): the warning printed ("" if none);
        GuestPanic for a misconfigured non-debug TD."""
        self._vcpu(vcpu)
        if not self.config_flags & 2:
            if self.attributes & ATTR_SEPT_VE_DISABLE:
                return ""
            if self.attributes & ATTR_DEBUG:
                return MSG_SEPT_VE
            raise fail(E_PANIC, MSG_SEPT_VE)
        if self.td_ctls & 1 or self.attributes & ATTR_DEBUG:
            return ""
        self.vm_wr(TD_CTLS, 1, 1, vcpu=vcpu)
        return ""

    # ---- inspection ----------------------------------------------------------------
    def entry(self, gpa: int, level: Optional[int] = None) -> EntryInfo:
        """The entry at level covering gpa, or (None) the one the walk ends at."""
        _int(gpa, "gpa")
        if level is not None and (isinstance(level, bool) or level not in (0, 1, 2)):
            raise InvalidArgument(f"level = {level!r} must be 0, 1, 2 or None")
        if gpa >= self.mem:
            raise fail(E_RANGE, f"gpa {gpa:#x}")
        if level == 2:
            return EntryInfo(NL_MAPPED, 2, False, False, False, 0, False, False)
        r = self.region(gpa // M2)
        page = gpa // K4
        shared = page in self.shared
        nl = r.entry.state in (NL_MAPPED, NL_BLOCKED)
        if level == 1 or (level is None and not nl):
            e, lvl = r.entry, 1
            counter = e.counter
        elif not nl:
            raise fail(E_STATE, f"no 4 KiB entry at {gpa:#x}")
        else:
            assert r.children is not None
            e, lvl, counter = r.children[(gpa % M2) // K4], 0, 0
        leaf = e.state in LEAF_STATES
        return EntryInfo(e.state, lvl, leaf, e.locked, e.hp, counter, shared,
                         leaf and page in self.nonzero)

    def state(self, gpa: int, level: Optional[int] = None) -> int:
        return self.entry(gpa, level).state

    def _governing(self, pa: int) -> int:
        """State of the leaf that governs the 4 KiB page at pa."""
        r = self.region(pa // M2)
        if r.entry.state in (NL_MAPPED, NL_BLOCKED):
            assert r.children is not None
            return r.children[(pa % M2) // K4].state
        return r.entry.state

    def _range(self, start: int, end: Optional[int]) -> range:
        end = self.mem if end is None else end
        if (start | end) % K4:
            raise fail(E_ALIGN, f"[{start:#x}, {end:#x})")
        if start > end or end > self.mem:
            raise fail(E_RANGE, f"[{start:#x}, {end:#x})")
        return range(start, end, K4)

    def count_states(self, start: int = 0, end: Optional[int] = None) -> Dict[int, int]:
        """4 KiB pages of [start, end) by the state of their governing leaf."""
        counts: Dict[int, int] = {}
        for pa in self._range(start, end):
            s = self._governing(pa)
            counts[s] = counts.get(s, 0) + 1
        return counts

    def count_nonzero(self, start: int = 0, end: Optional[int] = None) -> int:
        return sum(1 for pa in self._range(start, end)
                   if self._governing(pa) == MAPPED and pa // K4 in self.nonzero)

    def count_accepted(self, start: int = 0, end: Optional[int] = None) -> int:
        return self.count_states(start, end).get(MAPPED, 0)


class _Stop(Exception):
    """An ACCEPT that never returns: the host never serves it or stops the TD."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


__all__ = ["AccessResult", "EntryInfo", "Fatal", "FatalKind", "HostAction", "HostResult",
           "PathStats", "RefAcceptPath", "RefTdx", "TdcallResult", "TouchOutcome", "TouchResult",
           "VeInfo", "VmcallResult", "fail"]
