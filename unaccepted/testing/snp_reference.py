"""Pure-Python reference model of an SEV-SNP guest (docs/snp.md; AMD APM
vol. 2 section 15.36, the GHCB specification rev. 2, VeriSMo's RMP model,
KVM's Page State Change and NPF handling, the Linux and EDK2 accept paths).

`SnpGuest` here has the API of `unaccepted.snp.SnpGuest` - the same
constructor (SnpConfig's fields, `host=Host(...)`), method names,
signatures, result types (InstrResult, RmpEntry, GhcbResult, Fatal,
PathStats, TouchResult) and exceptions - so a test can drive the C model
and this one with the same calls and compare the answers with `==`:

    from unaccepted import Host, snp
    from unaccepted.testing import snp_reference as ref
    for cls in (snp.SnpGuest, ref.SnpGuest):
        g = cls(64 << 20, host=Host("psc-stall"))
        ...

It is written independently of the C sources and as plainly as possible:
every 2 MiB SPA region is absent (never written: 512 zero 4 KiB entries),
one 2 MiB Entry, or a list of 512 4 KiB Entries; entries are frozen
dataclasses; each instruction is a straight-line list of the checks in the
documented order; the host's named behaviours and Python Host subclasses
are served by the same rules (`unaccepted.host`); the accept paths follow
Linux's snp_accept_memory() / early_set_pages_state() and EDK2's
InternalSetPageState() as docs/snp.md describes them.

Not modelled: cost accounting (`cost` must be None), simulator memory
statistics (`stats()`), threads.  Of a Host only its specification is read
(the behaviour's name, its options and the methods a subclass overrides);
every rule is evaluated here, none by the C core.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Type, Union, cast

from ..errors import (CallbackError, GuestHung, GuestPanic, GuestTerminated, InvalidArgument,
                      InvalidOp, InvalidState, Misaligned, OutOfRange, UnacceptedError)
from ..guest import (PATH_KINDS, Fatal, FatalKind, PathStats, TouchOutcome, TouchResult, Vendor,
                     make_config)
from ..host import Host, HostAction, NeverResume
from ..snp import Fault, GhcbResult, InstrResult, PageSize, RmpCode, RmpEntry, SnpConfig
from ..validate import as_choice, as_int, as_u64

K4 = 4096
M2 = 2 << 20
PA_LIMIT = 1 << 52
MAX_ASID = 1023
GFN_MASK = (1 << 40) - 1

# fault kinds (ua_snp_fault)
NONE, GP, PF, NPF, VC = 0, 1, 2, 3, 4

# NPF EXITINFO1 bits (APM vol. 2 section 15.36.10; bits 0-4 as the #PF error code)
P, W, U, FETCH = 1, 2, 4, 16
RMP, ENC, SIZEM, VMPL = 1 << 31, 1 << 34, 1 << 35, 1 << 36
PFEC_RMP = 1 << 31
VC_NOT_VALIDATED = 0x404
VECTOR_GP, VECTOR_PF, VECTOR_VC = 13, 14, 29

# RMPUPDATE / PSMASH / PVALIDATE / RMPADJUST codes (EAX)
OK, FAIL_INPUT, FAIL_PERMISSION, FAIL_INUSE, FAIL_OVERLAP = 0, 1, 2, 3, 4
FAIL_SIZEMISMATCH = 6
PVALIDATE_FAIL_NOUPDATE = 255        # Linux's and EDK2's code for CF=1

READ, WRITE, EXEC_USER, EXEC_SUPER = 0, 1, 2, 3

# GHCB specification rev. 2: Page State Change
MSR_PSC_REQ, MSR_PSC_RESP = 0x014, 0x015
MSR_PSC_RESP_ERROR = 1 << 63 | 0x015     # KVM's generic failure
OP_PRIVATE, OP_SHARED, OP_PSMASH, OP_UNSMASH = 1, 2, 3, 4
PSC_MAX_ENTRIES = 253                    # (2032 - 8) / 8
LINUX_PSC_MAX_ENTRIES = 64               # Linux VMGEXIT_PSC_MAX_ENTRY
PSC_ERROR_INVALID_HDR = 1 << 32 | 1
PSC_ERROR_INVALID_ENTRY = 1 << 32 | 2
PSC_ERROR_GENERIC = 0x100 << 32
GHCB_EXITINFO1_ERROR = 2
GHCB_ERR_INVALID_SCRATCH_AREA = 3
MSR_TERM_REQ = 0x100

# termination reasons (set, code): Linux GHCB_TERM_*, EDK2's general request
TERM_GEN = (0, 0)
TERM_LINUX_PSC = (1, 1)
TERM_LINUX_PVALIDATE = (1, 2)
TERM_LINUX_NOT_VMPL0 = (1, 3)

# the model's limits (docs/snp.md): exits without progress, NPFs per touch
DEFAULT_HANG_LIMIT = 1000
TOUCH_NPF_LIMIT = 8
OVMF_DXE_BUFFER_BYTES = 4096
OVMF_MAX_BUFFER_BYTES = 16384

# outcomes of a guest operation (the ua_status values the C model returns)
_OK, _TERMINATED, _PANIC, _CALLBACK, _HUNG = 0, 33, 34, 37, 40
_FAILED = -1                             # a PVALIDATE that did not succeed
_FATAL_STATUS = {FatalKind.TERMINATED: _TERMINATED, FatalKind.PANIC: _PANIC,
                 FatalKind.HUNG: _HUNG}
_STATUS_ERROR: Dict[int, Type[UnacceptedError]] = {
    _TERMINATED: GuestTerminated, _PANIC: GuestPanic, _HUNG: GuestHung, _CALLBACK: CallbackError}
_STAT_FIELDS = tuple(f.name for f in fields(PathStats))


@dataclass(frozen=True)
class Entry:
    """One RMP entry (logical fields)."""

    assigned: bool = False
    page_size: int = 0
    immutable: bool = False
    validated: bool = False
    vmsa: bool = False
    gpa: int = 0
    asid: int = 0
    perm: Tuple[int, int, int, int] = (0, 0, 0, 0)


ZERO = Entry()
Region = Union[Entry, List[Entry]]   # an Entry = one 2 MiB entry


def term_msr(reason_set: int, code: int) -> int:
    """GHCB MSR value of a termination request."""
    return MSR_TERM_REQ | (reason_set & 0xF) << 12 | (code & 0xFF) << 16


def _hdr(cur: int, end: int, rsvd: int) -> int:
    return (cur & 0xFFFF) | (end & 0xFFFF) << 16 | (rsvd & 0xFFFFFFFF) << 32


def _pv_failed(r: InstrResult) -> bool:
    return r.fault != NONE or r.eax != 0 or r.cf


def _pv_code(r: InstrResult) -> int:
    return PVALIDATE_FAIL_NOUPDATE if r.cf and not r.eax else r.eax


def _entries_per_fill(buffer_bytes: int) -> int:
    """EDK2's PSC buffer: as many 8-byte entries as fit after the 8-byte
    header, rounded down to a multiple of 253 (one GHCB) and then of 510 (an
    SVSM PVALIDATE call) where those multiples are not zero."""
    n = (buffer_bytes - 8) // 8
    for unit in (PSC_MAX_ENTRIES, 510):
        if n // unit:
            n = n // unit * unit
    return n


class _Answer:
    """What a host writes back for a NAE Page State Change."""

    def __init__(self) -> None:
        self.sw_exitinfo1 = self.sw_exitinfo2 = self.entries_done = self.pages_done = 0


class _Scratch:
    """The PSC scratch area as the host sees it: the header word (None when
    the area cannot hold one) and the entries, capacity of them readable."""

    def __init__(self, hdr: Optional[int], ent: List[int], capacity: int) -> None:
        self.hdr, self.ent, self.capacity = hdr, ent, capacity


# ---- exits as a Python Host subclass sees them (the API of unaccepted.host) ----------

class _Exit:
    def __init__(self, guest: "SnpGuest", vcpu: int) -> None:
        self.guest = guest
        self.vcpu = vcpu


class SnpPscExit(_Exit):
    def __init__(self, guest: "SnpGuest", vcpu: int, scratch: _Scratch, out: _Answer) -> None:
        super().__init__(guest, vcpu)
        self._sc, self._out, self.capacity = scratch, out, scratch.capacity

    def _word(self) -> int:
        if self._sc.hdr is None:
            raise InvalidArgument("the scratch area has no header")
        return self._sc.hdr

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
        self._sc.hdr = (as_int(cur_entry, "cur_entry", 0, 1 << 16) |
                        as_int(end_entry, "end_entry", 0, 1 << 16) << 16 |
                        as_int(reserved, "reserved", 0, 1 << 32) << 32)

    def entry(self, i: int) -> int:
        return self._sc.ent[as_int(i, "entry index", 0, self.capacity)]

    def set_entry(self, i: int, value: int) -> None:
        self._sc.ent[as_int(i, "entry index", 0, self.capacity)] = as_int(value, "entry")

    def __getattr__(self, name: str) -> int:
        if name in ("sw_exitinfo1", "sw_exitinfo2", "entries_done", "pages_done"):
            return cast(int, getattr(self._out, name))
        raise AttributeError(name)

    def answer(self, *, sw_exitinfo1: Optional[int] = None, sw_exitinfo2: Optional[int] = None,
               entries_done: Optional[int] = None, pages_done: Optional[int] = None) -> None:
        for name, v in (("sw_exitinfo1", sw_exitinfo1), ("sw_exitinfo2", sw_exitinfo2),
                        ("entries_done", entries_done), ("pages_done", pages_done)):
            if v is not None:
                setattr(self._out, name, as_int(v, name, 0, 1 << 64))

    def default(self) -> None:
        _resumes(self.guest._behaviour_psc(self.vcpu, self._sc, self._out))

    def kvm(self) -> None:
        self.guest._kvm_psc(self.vcpu, self._sc, self._out, convert=True)


def _resumes(status: int) -> None:
    """exit.default() as the C model's: a behaviour that never resumes the
    vCPU raises NeverResume in the Python host."""
    if status == _HUNG:
        raise NeverResume()


class SnpMsrExit(_Exit):
    def __init__(self, guest: "SnpGuest", vcpu: int, request: int) -> None:
        super().__init__(guest, vcpu)
        self.request = request
        self.response: Optional[int] = None

    def default(self) -> int:
        st, self.response = self.guest._behaviour_msr(self.vcpu, self.request)
        _resumes(st)
        return self.response

    def kvm(self) -> int:
        self.response = self.guest._kvm_psc_msr(self.vcpu, self.request)
        return self.response


class SnpNpfExit(_Exit):
    def __init__(self, guest: "SnpGuest", vcpu: int, gpa: int, exitinfo1: int) -> None:
        super().__init__(guest, vcpu)
        self.gpa, self.exitinfo1, self.action = gpa, exitinfo1, HostAction.NOTHING

    def default(self) -> HostAction:
        st, action = self.guest._behaviour_npf(self.vcpu, self.gpa, self.exitinfo1)
        _resumes(st)
        self.action = HostAction(action)
        return self.action

    def kvm(self) -> HostAction:
        self.action = HostAction(self.guest._kvm_npf(self.vcpu, self.gpa, self.exitinfo1))
        return self.action


class AcceptPath:
    """One guest accept path of the reference guest (the API of
    unaccepted.guest.AcceptPath, without the C entry point)."""

    def __init__(self, guest: "SnpGuest", kind: str) -> None:
        self.guest = guest
        self.kind = kind
        self.configure()

    def configure(self, psc_max_entries: int = 0, ovmf_buffer_bytes: int = 0,
                  hang_limit: int = 0) -> None:
        psc_max_entries = as_int(psc_max_entries, "psc_max_entries", 0, 1 << 32)
        ovmf_buffer_bytes = as_int(ovmf_buffer_bytes, "ovmf_buffer_bytes", 0, 1 << 32)
        hang_limit = as_int(hang_limit, "hang_limit", 0, 1 << 32)
        psc_max_entries = psc_max_entries or LINUX_PSC_MAX_ENTRIES
        ovmf_buffer_bytes = ovmf_buffer_bytes or OVMF_DXE_BUFFER_BYTES
        if psc_max_entries > PSC_MAX_ENTRIES:
            raise InvalidArgument(f"psc_max_entries = {psc_max_entries} is past "
                                  f"{PSC_MAX_ENTRIES}")
        if not 16 <= ovmf_buffer_bytes <= OVMF_MAX_BUFFER_BYTES:
            raise InvalidArgument(f"ovmf_buffer_bytes = {ovmf_buffer_bytes} must be in "
                                  f"[16, {OVMF_MAX_BUFFER_BYTES}]")
        self.psc_max_entries = psc_max_entries
        self.fill = _entries_per_fill(ovmf_buffer_bytes)
        self.hang_limit = hang_limit or DEFAULT_HANG_LIMIT
        self.reset_stats()

    def __repr__(self) -> str:
        return f"AcceptPath({self.guest!r}, {self.kind!r})"

    def __call__(self, start: int, end: int, vcpu: int = 0) -> None:
        st = self.guest._run_path(self, start, end, vcpu, True)
        self.guest._check(st, f"{self.kind} accept [{start:#x}, {end:#x})")

    accept = __call__

    def unaccept(self, start: int, end: int, vcpu: int = 0) -> None:
        self.guest.unaccept(start, end, kind=self.kind, vcpu=vcpu)

    @property
    def stats(self) -> PathStats:
        return PathStats(**self._totals)

    def reset_stats(self) -> None:
        self._totals: Dict[str, int] = dict.fromkeys(_STAT_FIELDS, 0)


class SnpGuest:
    """An SEV-SNP guest in pure Python: RMP, NPT, in-use marks, the host
    serving it (a unaccepted.host.Host), the guest's instructions, its accept
    paths and Linux's handling of a touch.  Same API as
    unaccepted.snp.SnpGuest, minus cost accounting and memory statistics."""

    vendor = Vendor.SNP

    def __init__(self, memory_bytes: Optional[int] = None, *,
                 config: Optional[SnpConfig] = None, cost: object = None,
                 **settings: Any) -> None:
        config = make_config(SnpConfig, memory_bytes, config, settings)
        if cost is not None or config.cost_profile is not None:
            raise InvalidArgument("the reference model has no cost model")
        mem = config.memory_bytes
        spare = as_u64(config.spare_bytes, "spare_bytes")
        if mem == 0 or mem % M2 or spare % M2:
            raise Misaligned(f"memory_bytes {mem:#x} and spare_bytes {spare:#x} must be "
                             f"multiples of 2 MiB (memory not 0)")
        if mem > PA_LIMIT or spare > PA_LIMIT - mem:
            raise OutOfRange("guest RAM and spare SPAs must end at or below 2^52")
        if not 1 <= as_int(config.asid, "asid", 0, 1 << 32) <= MAX_ASID:
            raise InvalidArgument(f"asid = {config.asid} must be in [1, {MAX_ASID}]")
        if as_int(config.vmpl, "vmpl", 0, 1 << 32) > 3:
            raise InvalidArgument(f"vmpl = {config.vmpl} must be in [0, 3]")
        self.config = config
        self.memory_bytes = mem
        self.spare_bytes = spare
        self.vcpus = config.vcpus
        self.backing = config.backing
        self.asid = config.asid
        self.vmpl = config.vmpl
        self.coherency_sfw_no = bool(config.coherency_sfw_no)
        self._host = config.host
        self.regions: Dict[int, Region] = {}     # SPA region -> its entries
        self.npt: Dict[int, int] = {}            # gfn -> spfn (identity otherwise)
        self.in_use: Set[int] = set()            # 4 KiB SPAs (running VMSA/VMCB)
        self.private_gfns: Set[int] = set()      # lazy host: the private memory attribute
        self.launch_finished = False
        self._fatal: Optional[Fatal] = None
        self._error: Optional[BaseException] = None   # a Python host's exception
        self._paths: Dict[str, AcceptPath] = {}

    def __repr__(self) -> str:
        return (f"ref.SnpGuest({self.memory_bytes:#x}, vcpus={self.vcpus}, "
                f"backing={self.backing!r}, asid={self.asid}, vmpl={self.vmpl}, "
                f"host={self._host!r})")

    @property
    def rmp_end(self) -> int:
        return self.memory_bytes + self.spare_bytes

    @property
    def guest_pages(self) -> int:
        return self.memory_bytes // K4

    # ---- settings --------------------------------------------------------------
    @property
    def host(self) -> Host:
        return self._host

    def set_host(self, host: Host) -> None:
        if not isinstance(host, Host):
            raise InvalidArgument(f"host = {host!r} must be a unaccepted.host.Host")
        self._host = host

    @property
    def cost(self) -> None:
        return None

    def set_cost(self, cost: object) -> None:
        if cost is not None:
            raise InvalidArgument("the reference model has no cost model")

    def set_coherency_sfw_no(self, on: bool) -> None:
        self.coherency_sfw_no = bool(on)

    # ---- the fatal record ---------------------------------------------------------
    @property
    def fatal(self) -> Optional[Fatal]:
        return self._fatal

    def clear_fatal(self) -> None:
        self._fatal = None

    def _record(self, fatal: Fatal) -> int:
        if self._fatal is None:          # the first fatal event wins
            self._fatal = fatal
        return _FATAL_STATUS[fatal.kind]

    def _terminate(self, vcpu: int, reason: Tuple[int, int], gpa: int = 0, eax: int = 0,
                   fault: int = 0, info: int = 0) -> int:
        rset, rcode = reason
        return self._record(Fatal(FatalKind.TERMINATED, vcpu, gpa, term_msr(rset, rcode),
                                  rset & 0xF, rcode & 0xFF, eax, int(fault), info, ""))

    def _hang(self, vcpu: int, gpa: int, why: str) -> int:
        return self._record(Fatal(FatalKind.HUNG, vcpu, gpa, 0, 0, 0, 0, 0, 0, why))

    def terminate(self, reason_set: int, code: int, vcpu: int = 0) -> int:
        """The guest writes a termination request; returns the MSR value."""
        self._terminate(vcpu, (reason_set, code))
        return term_msr(reason_set, code)

    def _check(self, status: int, message: str) -> None:
        err, self._error = self._error, None
        if err is not None:
            raise CallbackError(f"{message}: the host's callback raised {err!r}") from err
        if status:
            exc = _STATUS_ERROR[status](message)
            exc.status = status
            raise exc

    def _vcpu(self, vcpu: object) -> int:
        vcpu = as_int(vcpu, "vcpu", 0, 1 << 32)
        if vcpu >= self.vcpus:
            raise InvalidArgument(f"vcpu {vcpu} out of range (the guest has {self.vcpus})")
        return vcpu

    # ---- lookups -------------------------------------------------------------------
    def region(self, spa: int) -> Region:
        return self.regions.get(spa // M2, [ZERO] * 512)

    def governing(self, spa: int) -> Tuple[Entry, bool]:
        """The entry that governs the 4 KiB page at spa, and whether it is 2M."""
        rg = self.regions.get(spa // M2)
        if rg is None:
            return ZERO, False
        if isinstance(rg, Entry):
            return rg, True
        return rg[(spa % M2) // K4], False

    def translate(self, gpa: int) -> int:
        page = gpa // K4
        return self.npt.get(page, page) * K4 + gpa % K4

    def _remapped(self, gfn: int, n: int) -> bool:
        return any(gfn <= g < gfn + n for g in self.npt)

    def rmp(self, spa: int) -> RmpEntry:
        """The logical RMP entry governing a 4 KiB SPA."""
        spa = as_u64(spa, "spa")
        if spa >= self.rmp_end:
            raise OutOfRange(f"spa {spa:#x} is outside the RMP")
        spa -= spa % K4
        e, big = self.governing(spa)
        return RmpEntry(spa - spa % M2 if big else spa, e.gpa, e.asid, e.assigned,
                        PageSize(e.page_size), e.immutable, e.validated, e.vmsa, e.perm)

    def count(self, start: int = 0, end: Optional[int] = None) -> Tuple[int, int]:
        """(validated, assigned but not validated) 4 KiB pages of GPA [start,
        end): pages whose governing entry is this guest's, for this GPA, and
        not Immutable."""
        end = self.memory_bytes if end is None else end
        start, end = as_u64(start, "start"), as_u64(end, "end")
        self._check_range(start, end)
        v = u = 0
        for gpa in range(start, end, K4):
            spa = self.translate(gpa)
            e, big = self.governing(spa)
            if not self._owner_fault(e, big, gpa, spa):
                v += e.validated
                u += not e.validated
        return v, u

    def count_accepted(self, start: int = 0, end: Optional[int] = None) -> int:
        return self.count(start, end)[0]

    def validated_spas_for(self, gpa: int) -> List[int]:
        """Every SPA page whose entry says: assigned to us, this GPA, validated."""
        out = []
        for r, rg in self.regions.items():
            base = r * M2
            if isinstance(rg, Entry):
                off = gpa - rg.gpa
                if rg.assigned and rg.validated and rg.asid == self.asid and 0 <= off < M2:
                    out.append(base + off - off % K4)
            else:
                for i, e in enumerate(rg):
                    if (e.assigned and e.validated and e.asid == self.asid
                            and e.gpa == gpa - gpa % K4):
                        out.append(base + i * K4)
        return out

    def _check_range(self, start: int, end: int) -> None:
        if (start | end) % K4:
            raise Misaligned(f"[{start:#x}, {end:#x}) is not 4 KiB aligned")
        if start > end or end > self.memory_bytes:
            raise OutOfRange(f"[{start:#x}, {end:#x}) is not inside guest RAM")

    # ---- host instructions and configuration --------------------------------------------
    def rmpupdate(self, spa: int, *, gpa: int = 0, asid: int = 0, assigned: bool = False,
                  page_size: int = PageSize.SIZE_4K, immutable: bool = False) -> RmpCode:
        spa, gpa = as_u64(spa, "spa"), as_u64(gpa, "gpa")
        asid = as_int(asid, "asid", 0, 1 << 32)
        page_size = as_int(int(page_size), "page_size", 0, 256)
        if spa >= PA_LIMIT:
            raise OutOfRange(f"spa {spa:#x} is past 2^52")
        return RmpCode(self._rmpupdate(spa, gpa, asid, bool(assigned), page_size,
                                       bool(immutable)))

    def _rmpupdate(self, spa: int, gpa: int, asid: int, assigned: bool, page_size: int,
                   immutable: bool) -> int:
        # 1. FAIL_INPUT: operands
        if page_size > 1:
            return FAIL_INPUT
        size = M2 if page_size else K4
        if spa % size or spa >= self.rmp_end or gpa % size or gpa >= PA_LIMIT or asid > MAX_ASID:
            return FAIL_INPUT
        if not assigned and (asid or immutable):
            return FAIL_INPUT
        if assigned and asid == 0 and not immutable:
            return FAIL_INPUT             # ASID 0 + assigned is the AMD-SP's, immutable
        # 2. FAIL_INUSE
        if any(spa <= u < spa + size for u in self.in_use):
            return FAIL_INUSE
        new = Entry(assigned, page_size, immutable, False, False, gpa, asid, (31, 0, 0, 0))
        r = spa // M2
        rg = self.regions.get(r)
        if page_size:
            # 3./4. over the region's current entries
            if isinstance(rg, Entry):
                if rg.immutable:
                    return FAIL_PERMISSION
            elif rg is not None:
                if any(e.immutable for e in rg):
                    return FAIL_PERMISSION
                if any(e.assigned for e in rg):
                    return FAIL_OVERLAP
            self.regions[r] = new
            return OK
        if isinstance(rg, Entry):
            if rg.immutable:
                return FAIL_PERMISSION
            if rg.assigned:
                return FAIL_OVERLAP       # the host must PSMASH first
            rg = self._smashed(rg)        # 4 KiB inside an unassigned 2 MiB entry: split
        elif rg is None:
            rg = [ZERO] * 512
        elif rg[(spa % M2) // K4].immutable:
            return FAIL_PERMISSION
        rg[(spa % M2) // K4] = new
        self.regions[r] = rg
        return OK

    @staticmethod
    def _smashed(e: Entry) -> List[Entry]:
        return [replace(e, page_size=0, gpa=e.gpa + i * K4) for i in range(512)]

    def make_private(self, spa: int, gpa: int, page_size: int = PageSize.SIZE_4K) -> RmpCode:
        return self.rmpupdate(spa, gpa=gpa, asid=self.asid, assigned=True, page_size=page_size)

    def make_shared(self, spa: int, page_size: int = PageSize.SIZE_4K) -> RmpCode:
        return self.rmpupdate(spa, page_size=page_size)

    def psmash(self, spa: int) -> RmpCode:
        spa = as_u64(spa, "spa")
        if spa >= PA_LIMIT:
            raise OutOfRange(f"spa {spa:#x} is past 2^52")
        return RmpCode(self._psmash(spa))

    def _psmash(self, spa: int) -> int:
        if spa % M2 or spa >= self.rmp_end:
            return FAIL_INPUT
        rg = self.regions.get(spa // M2)
        if not isinstance(rg, Entry):
            return FAIL_INPUT             # nothing to smash
        if any(spa <= u < spa + M2 for u in self.in_use):
            return FAIL_INUSE
        self.regions[spa // M2] = self._smashed(rg)
        return OK

    def set_in_use(self, spa: int, in_use: bool = True) -> None:
        spa = as_u64(spa, "spa")
        if spa % K4:
            raise Misaligned(f"spa {spa:#x} is not 4 KiB aligned")
        if spa >= self.rmp_end:
            raise OutOfRange(f"spa {spa:#x} is outside the RMP")
        if in_use:
            self.in_use.add(spa)
        else:
            self.in_use.discard(spa)

    def npt_map(self, gpa: int, spa: int) -> None:
        gpa, spa = as_u64(gpa, "gpa"), as_u64(spa, "spa")
        if (gpa | spa) % K4:
            raise Misaligned("npt_map takes 4 KiB-aligned addresses")
        if gpa >= self.memory_bytes or spa >= self.rmp_end:
            raise OutOfRange(f"npt_map({gpa:#x}, {spa:#x}) is out of range")
        if gpa == spa:
            self.npt.pop(gpa // K4, None)
        else:
            self.npt[gpa // K4] = spa // K4

    def npt_lookup(self, gpa: int) -> int:
        gpa = as_u64(gpa, "gpa")
        if gpa >= self.memory_bytes:
            raise OutOfRange(f"gpa {gpa:#x} is outside guest RAM")
        return self.translate(gpa)

    def launch_update(self, gpa: int, size: int) -> None:
        """SNP_LAUNCH_UPDATE: all-or-nothing, every page hypervisor-owned first;
        the pages become assigned and validated (2 MiB entries for whole
        regions with 2M backing)."""
        gpa, size = as_u64(gpa, "gpa"), as_u64(size, "size")
        if (gpa | size) % K4:
            raise Misaligned("launch_update takes 4 KiB-aligned addresses")
        if size == 0:
            return
        if gpa >= self.memory_bytes or size > self.memory_bytes - gpa:
            raise OutOfRange(f"launch_update({gpa:#x}, {size:#x}) is past guest RAM")
        if self.launch_finished:
            raise InvalidState("SNP_LAUNCH_FINISH already ran")
        end = gpa + size
        for a in range(gpa, end, K4):
            spa = self.translate(a)
            if self.governing(spa)[0].assigned or spa in self.in_use:
                raise InvalidState(f"page {a:#x} is already assigned or in use")
        a = gpa
        while a < end:
            whole = (a % M2 == 0 and end - a >= M2 and self.backing == "2M"
                     and not self._remapped(a // K4, 512))
            spa = self.translate(a)
            rc = self._rmpupdate(spa, a, self.asid, True, int(whole), False)
            if rc != OK:
                raise InvalidState(f"RMPUPDATE of {spa:#x} failed with {rc}")
            e, big = self.governing(spa)
            self._set(spa, big, replace(e, validated=True))
            a += M2 if whole else K4

    def launch_finish(self) -> None:
        self.launch_finished = True

    def host_write(self, spa: int) -> InstrResult:
        spa = as_u64(spa, "spa")
        if spa >= PA_LIMIT:
            raise OutOfRange(f"spa {spa:#x} is past 2^52")
        if spa < self.rmp_end and self.governing(spa - spa % K4)[0].assigned:
            return InstrResult(0, False, Fault.PF, PFEC_RMP | P | W, 0, spa)
        return InstrResult(0, False, Fault.NONE, 0, 0, 0)

    def _set(self, spa: int, big: bool, entry: Entry) -> None:
        r = spa // M2
        if big:
            self.regions[r] = entry
        else:
            rg = self.regions.get(r)
            if rg is None:
                rg = self.regions[r] = [ZERO] * 512
            assert isinstance(rg, list)     # not big: the region holds 4 KiB entries
            rg[(spa % M2) // K4] = entry

    # ---- guest instructions -------------------------------------------------------
    def _owner_fault(self, e: Entry, big: bool, gpa: int, spa: int) -> bool:
        """Assigned to this ASID, for this GPA, not Immutable - else an RMP fault."""
        egpa = e.gpa + ((spa % M2) - (spa % K4) if big else 0)
        return (not e.assigned or e.asid != self.asid or egpa != gpa - gpa % K4
                or e.immutable)

    def _remapped_2m(self, va: int) -> bool:
        """A 4 KiB page of the 2 MiB GPA range at va is remapped in the NPT,
        so the NPT cannot map that range as one 2 MiB page."""
        return self._remapped(va // K4, 512)

    def pvalidate(self, va: int, size: int = PageSize.SIZE_4K, validate: bool = True,
                  vcpu: int = 0) -> InstrResult:
        vcpu, va = self._vcpu(vcpu), as_u64(va, "va")
        size = as_int(int(size), "size", 0, 1 << 32)
        if self.vmpl != 0:
            return InstrResult(0, False, Fault.GP, 0, 0, 0)
        if size > 1 or va % (M2 if size else K4):
            return InstrResult(FAIL_INPUT, False, Fault.NONE, 0, 0, 0)
        if va >= self.memory_bytes:
            return InstrResult(0, False, Fault.PF, 0, 0, va)
        return self._pvalidate(va, size, bool(validate))

    def _pvalidate(self, va: int, size: int, validate: bool) -> InstrResult:
        spa = self.translate(va)
        e, big = self.governing(spa)
        if self._owner_fault(e, big, va, spa):
            return InstrResult(0, False, Fault.NPF, 0, RMP | ENC | P, va)
        if size == 0 and big:
            return InstrResult(0, False, Fault.NPF, 0, RMP | ENC | P | SIZEM, va)
        if size == 1 and (not big or spa % M2 or self._remapped_2m(va)):
            return InstrResult(FAIL_SIZEMISMATCH, False, Fault.NONE, 0, 0, 0)
        if e.validated == validate:
            return InstrResult(0, True, Fault.NONE, 0, 0, 0)
        self._set(spa, big, replace(e, validated=validate))
        return InstrResult(0, False, Fault.NONE, 0, 0, 0)

    def rmpadjust(self, va: int, size: int = PageSize.SIZE_4K, *, target_vmpl: int = 1,
                  perms: int = 0, vmsa: bool = False, attrs: Optional[int] = None,
                  vcpu: int = 0) -> InstrResult:
        """RMPADJUST; `attrs` (raw RDX) overrides target_vmpl/perms/vmsa."""
        if attrs is None:
            attrs = (as_int(target_vmpl, "target_vmpl", 0, 256) |
                     as_int(int(perms), "perms", 0, 256) << 8 | (0x10000 if vmsa else 0))
        vcpu, va = self._vcpu(vcpu), as_u64(va, "va")
        size, attrs = as_int(int(size), "size", 0, 1 << 32), as_u64(attrs, "attrs")
        target, perms, vmsa = attrs & 0xFF, (attrs >> 8) & 0xFF, bool(attrs & 0x10000)
        if (size > 1 or va % (M2 if size else K4) or attrs & ~0x1FFFF or perms & ~0x1F
                or target > 3 or (perms & 2 and not perms & 1)):
            return InstrResult(FAIL_INPUT, False, Fault.NONE, 0, 0, 0)
        if va >= self.memory_bytes:
            return InstrResult(0, False, Fault.PF, 0, 0, va)
        if target <= self.vmpl:
            return InstrResult(FAIL_PERMISSION, False, Fault.NONE, 0, 0, 0)
        spa = self.translate(va)
        e, big = self.governing(spa)
        if self._owner_fault(e, big, va, spa):          # the same NPFs as PVALIDATE
            return InstrResult(0, False, Fault.NPF, 0, RMP | ENC | P, va)
        if size == 0 and big:
            return InstrResult(0, False, Fault.NPF, 0, RMP | ENC | P | SIZEM, va)
        if not e.validated:
            return InstrResult(0, False, Fault.VC, VC_NOT_VALIDATED, 0, va)
        if size == 1 and (not big or spa % M2 or self._remapped_2m(va)):
            return InstrResult(FAIL_SIZEMISMATCH, False, Fault.NONE, 0, 0, 0)
        if perms & ~e.perm[self.vmpl]:
            return InstrResult(FAIL_PERMISSION, False, Fault.NONE, 0, 0, 0)
        perm = list(e.perm)
        perm[target] = perms
        self._set(spa, big, replace(e, perm=(perm[0], perm[1], perm[2], perm[3]),
                                    vmsa=vmsa if self.vmpl == 0 else e.vmsa))
        return InstrResult(0, False, Fault.NONE, 0, 0, 0)

    def access(self, gpa: int, kind: int = READ, *, c_bit: bool = True,
               vcpu: int = 0) -> InstrResult:
        vcpu, gpa = self._vcpu(vcpu), as_u64(gpa, "gpa")
        kind = as_int(int(kind), "kind", 0, 1 << 32)
        if kind > EXEC_SUPER:
            raise InvalidArgument(f"access kind {kind} is unknown")
        if gpa >= PA_LIMIT:
            raise OutOfRange(f"gpa {gpa:#x} is past 2^52")
        acc = {READ: 0, WRITE: W, EXEC_USER: FETCH | U, EXEC_SUPER: FETCH}[kind]
        private = bool(c_bit) or kind in (EXEC_USER, EXEC_SUPER)
        if gpa >= self.memory_bytes:                     # no NPT mapping
            return InstrResult(0, False, Fault.NPF, 0, acc | (ENC if private else 0), gpa)
        spa = self.translate(gpa)
        e, big = self.governing(spa - spa % K4)
        if not private:
            if kind == WRITE and e.assigned:
                return InstrResult(0, False, Fault.NPF, 0, RMP | P | acc, gpa)
            return InstrResult(0, False, Fault.NONE, 0, 0, 0)
        if self._owner_fault(e, big, gpa, spa):
            return InstrResult(0, False, Fault.NPF, 0, RMP | ENC | P | acc, gpa)
        if not e.validated:
            return InstrResult(0, False, Fault.VC, VC_NOT_VALIDATED, 0, gpa)
        need = {READ: 1, WRITE: 2, EXEC_USER: 4, EXEC_SUPER: 8}[kind]
        if not e.perm[self.vmpl] & need:
            return InstrResult(0, False, Fault.NPF, 0, RMP | ENC | P | acc | VMPL, gpa)
        return InstrResult(0, False, Fault.NONE, 0, 0, 0)

    # ---- the host: KVM ------------------------------------------------------------------
    # KVM converts a page only when its state changes (it tracks memory
    # attributes); 4 KiB inside an assigned 2 MiB entry is PSMASHed first.
    # With lazy_rmpupdate a conversion to private only sets the attribute,
    # and the page is assigned at the guest's first NPF on it.
    def _set_attr(self, gfn: int, n: int, private: bool) -> None:
        pages = range(gfn, gfn + n)
        if private:
            self.private_gfns.update(pages)
        else:
            self.private_gfns.difference_update(pages)

    def _host_set_4k(self, gfn: int, private: bool) -> bool:
        if self._host.lazy_rmpupdate:
            self._set_attr(gfn, 1, private)
            if private:
                return True
        gpa = gfn * K4
        spa = self.translate(gpa)
        cur, big = self.governing(spa)
        if private and not self._owner_fault(cur, big, gpa, spa):
            return True                   # already this guest's page
        if not private and not cur.assigned:
            return True                   # already the host's
        if big and cur.assigned and self._psmash(spa - spa % M2) != OK:
            return False
        if private:
            return self._rmpupdate(spa, gpa, self.asid, True, 0, False) == OK
        return self._rmpupdate(spa, 0, 0, False, 0, False) == OK

    def _host_set_run(self, gfn: int, n: int, private: bool) -> bool:
        return all(self._host_set_4k(g, private) for g in range(gfn, gfn + n))

    def _host_set_2m(self, gfn: int, private: bool) -> bool:
        """A whole 2 MiB entry: one 2 MiB RMPUPDATE when the backing is 2M and
        the region holds no 4 KiB entries and is not remapped."""
        if self._host.lazy_rmpupdate:
            self._set_attr(gfn, 512, private)
            if private:
                return True
        spa = gfn * K4
        rg = self.regions.get(spa // M2)
        if self.backing == "2M" and not self._remapped(gfn, 512) and not isinstance(rg, list):
            if private and isinstance(rg, Entry) and not self._owner_fault(rg, True, spa, spa):
                return True
            if not private and (rg is None or not rg.assigned):
                return True
            if private:
                return self._rmpupdate(spa, spa, self.asid, True, 1, False) == OK
            return self._rmpupdate(spa, 0, 0, False, 1, False) == OK
        return self._host_set_run(gfn, 512, private)

    @staticmethod
    def _header_error(sc: _Scratch, out: _Answer) -> bool:
        """KVM's checks of the header before any entry is read."""
        if sc.hdr is not None and (sc.hdr >> 16) & 0xFFFF >= PSC_MAX_ENTRIES:
            out.sw_exitinfo2 = PSC_ERROR_INVALID_HDR
            return True
        if sc.hdr is None or (sc.hdr >> 16) & 0xFFFF >= sc.capacity:
            out.sw_exitinfo1 = GHCB_EXITINFO1_ERROR          # the area cannot hold it
            out.sw_exitinfo2 = GHCB_ERR_INVALID_SCRATCH_AREA
            return True
        return False

    def _kvm_psc(self, vcpu: int, sc: _Scratch, out: _Answer, convert: bool = True) -> int:
        """KVM's NAE Page State Change: entries from cur_entry to end_entry,
        at most psc_max_entries entries and psc_max_pages pages per exit
        (psc-partial), cur_page advancing; a 2 MiB entry started earlier is
        finished as 4 KiB pages; PSMASH/UNSMASH hints complete at once.  An
        error stops the walk at the failing entry."""
        if self._header_error(sc, out):
            return _OK
        assert sc.hdr is not None                     # _header_error checked it
        h = self._host
        left_e = h.psc_max_entries or float("inf")
        left_p = h.psc_max_pages or float("inf")
        cur, end, rsvd = sc.hdr & 0xFFFF, (sc.hdr >> 16) & 0xFFFF, sc.hdr >> 32
        while cur <= end and left_e and left_p:
            x = sc.ent[cur]
            cur_page, gfn, op = x & 0xFFF, (x >> 12) & GFN_MASK, (x >> 52) & 0xF
            npages = 512 if (x >> 56) & 1 else 1
            if not OP_PRIVATE <= op <= OP_UNSMASH or cur_page > npages or gfn % npages:
                out.sw_exitinfo2 = PSC_ERROR_INVALID_ENTRY
                break
            convert_op = op in (OP_PRIVATE, OP_SHARED)
            if convert_op and gfn + npages > self.guest_pages:
                out.sw_exitinfo2 = PSC_ERROR_GENERIC
                break
            if convert_op:
                todo = int(min(npages - cur_page, left_p))
                if todo and convert:
                    private = op == OP_PRIVATE
                    if npages == 512 and cur_page == 0 and todo == 512:
                        ok = self._host_set_2m(gfn, private)
                    else:
                        ok = self._host_set_run(gfn + cur_page, todo, private)
                    if not ok:
                        out.sw_exitinfo2 = PSC_ERROR_GENERIC
                        break
                left_p -= todo
                out.pages_done += todo
            else:
                todo = npages - cur_page
            cur_page += todo
            sc.ent[cur] = (x & ~0xFFF) | cur_page
            if cur_page < npages:
                break
            cur += 1
            left_e -= 1
            out.entries_done += 1
        sc.hdr = _hdr(cur, end, rsvd)
        return _OK

    def _msr_decode(self, req: int) -> Optional[Tuple[int, bool]]:
        """(gfn, private) of a well-formed MSR-protocol request, else None."""
        gfn, op = (req >> 12) & GFN_MASK, (req >> 52) & 0xF
        if req >> 56 or op not in (OP_PRIVATE, OP_SHARED) or gfn >= self.guest_pages:
            return None
        return gfn, op == OP_PRIVATE

    def _kvm_psc_msr(self, vcpu: int, req: int) -> int:
        d = self._msr_decode(req)
        if d is None or not self._host_set_4k(*d):
            return MSR_PSC_RESP_ERROR
        return MSR_PSC_RESP

    def _kvm_npf(self, vcpu: int, gpa: int, exitinfo1: int) -> int:
        """KVM at an NPF: lazy mode maps a private, unassigned page at the
        largest level the backing and the attributes (all 512 pages private)
        allow; an NPF with SIZEM is fixed by PSMASH; nothing else is."""
        h = self._host
        gfn = gpa // K4
        if (h.lazy_rmpupdate and not exitinfo1 & SIZEM and gfn < self.guest_pages
                and gfn in self.private_gfns):
            spa = self.translate(gpa - gpa % K4)
            if self.governing(spa)[0].assigned:
                return HostAction.NOTHING      # someone else's page: not a missing mapping
            g2 = gfn - gfn % 512
            if (self.backing == "2M" and not self._remapped(g2, 512)
                    and all(g in self.private_gfns for g in range(g2, g2 + 512))
                    and self._rmpupdate(g2 * K4, g2 * K4, self.asid, True, 1, False) == OK):
                return HostAction.RMPUPDATE
            if self._rmpupdate(spa, gpa - gpa % K4, self.asid, True, 0, False) == OK:
                return HostAction.RMPUPDATE
            return HostAction.NOTHING
        if exitinfo1 & SIZEM and h.npf_psmash:
            spa = self.translate(gpa)
            if self._psmash(spa - spa % M2) == OK:
                return HostAction.PSMASH
        return HostAction.NOTHING

    # ---- the host: its behaviour, or a Python Host subclass ------------------------------
    def _callback(self, method: str, exit: _Exit) -> int:
        try:
            getattr(self._host, method)(exit)
        except NeverResume:
            return _HUNG
        except BaseException as exc:  # reported to the caller, like the C model
            if self._error is None:
                self._error = exc
            return _CALLBACK
        return _OK

    def _psc_exit(self, vcpu: int, sc: _Scratch) -> Tuple[int, _Answer]:
        out = _Answer()
        if "snp_psc" in self._host._overrides():
            return self._callback("snp_psc", SnpPscExit(self, vcpu, sc, out)), out
        return self._behaviour_psc(vcpu, sc, out), out

    def _behaviour_psc(self, vcpu: int, sc: _Scratch, out: _Answer) -> int:
        """What the host's named behaviour does with a NAE PSC."""
        b = self._host.behavior
        if b in ("psc-stall", "never-resolve"):       # nothing done, success reported
            self._header_error(sc, out)
        elif b == "psc-rewind":                       # nothing done, cur_entry = 0
            if not self._header_error(sc, out):
                assert sc.hdr is not None
                sc.hdr = _hdr(0, (sc.hdr >> 16) & 0xFFFF, sc.hdr >> 32)
        elif b == "ghcb-error":                       # refused before the area is read
            out.sw_exitinfo1 = GHCB_EXITINFO1_ERROR
            out.sw_exitinfo2 = self._host.ghcb_error
        elif b == "skip-rmpupdate":                   # walked and reported, never converted
            self._kvm_psc(vcpu, sc, out, convert=False)
        elif b in ("psc-error", "psc-reserved", "psc-end-grow"):   # work done, answer spoiled
            if not self._header_error(sc, out):
                self._kvm_psc(vcpu, sc, out)
                assert sc.hdr is not None
                cur, end, rsvd = sc.hdr & 0xFFFF, (sc.hdr >> 16) & 0xFFFF, sc.hdr >> 32
                if b == "psc-error":
                    out.sw_exitinfo2 = PSC_ERROR_GENERIC
                elif b == "psc-reserved":
                    sc.hdr = _hdr(cur, end, rsvd | 1)
                else:
                    sc.hdr = _hdr(cur, end + 1, rsvd)
        else:                                         # KVM (psc-partial: with its limits)
            self._kvm_psc(vcpu, sc, out)
        return _OK

    def _msr_exit(self, vcpu: int, req: int) -> Tuple[int, int]:
        if "snp_psc_msr" in self._host._overrides():
            exit = SnpMsrExit(self, vcpu, req)
            st = self._callback("snp_psc_msr", exit)
            return st, (MSR_PSC_RESP if exit.response is None else exit.response)
        return self._behaviour_msr(vcpu, req)

    def _behaviour_msr(self, vcpu: int, req: int) -> Tuple[int, int]:
        """What the host's named behaviour does with an MSR-protocol PSC."""
        b = self._host.behavior
        if b == "msr-error":
            return _OK, MSR_PSC_RESP_ERROR
        if b == "msr-bad-code":                       # GHCBInfo 0x000 for a valid request
            return _OK, 0 if self._msr_decode(req) else MSR_PSC_RESP_ERROR
        if b == "skip-rmpupdate":
            return _OK, MSR_PSC_RESP if self._msr_decode(req) else MSR_PSC_RESP_ERROR
        if b == "never-resolve":                      # the vCPU never comes back
            return _HUNG, 0
        return _OK, self._kvm_psc_msr(vcpu, req)

    def _npf_exit(self, vcpu: int, gpa: int, exitinfo1: int) -> Tuple[int, int]:
        if "snp_npf" in self._host._overrides():
            exit = SnpNpfExit(self, vcpu, gpa, exitinfo1)
            st = self._callback("snp_npf", exit)
            return st, int(exit.action)
        return self._behaviour_npf(vcpu, gpa, exitinfo1)

    def _behaviour_npf(self, vcpu: int, gpa: int, exitinfo1: int) -> Tuple[int, int]:
        """What the host's named behaviour does with an NPF."""
        if self._host.behavior == "never-resolve":
            return _OK, HostAction.NOTHING
        return _OK, self._kvm_npf(vcpu, gpa, exitinfo1)

    # ---- exits the guest takes directly ---------------------------------------------------
    def psc_msr(self, request: int, vcpu: int = 0) -> int:
        """GHCB MSR protocol: returns the response MSR value."""
        vcpu, request = self._vcpu(vcpu), as_u64(request, "request")
        if request & 0xFFF != MSR_PSC_REQ:
            raise InvalidOp(f"{request:#x} is not a Page State Change request")
        st, resp = self._msr_exit(vcpu, request)
        self._check(st, "psc_msr")
        return resp

    def psc_ghcb(self, buf: bytearray, vcpu: int = 0) -> GhcbResult:
        """One NAE Page State Change VMGEXIT on the scratch area `buf`."""
        if not isinstance(buf, bytearray):
            raise InvalidArgument("the PSC scratch area must be a bytearray (it is written)")
        vcpu = self._vcpu(vcpu)
        n = len(buf)
        cap = min((n - 8) // 8, PSC_MAX_ENTRIES) if n >= 8 else 0
        hdr = int.from_bytes(buf[:8], "little") if n >= 8 else None
        ent = [int.from_bytes(buf[8 + 8 * i:16 + 8 * i], "little") for i in range(cap)]
        sc = _Scratch(hdr, ent, cap)
        st, out = self._psc_exit(vcpu, sc)
        if sc.hdr is not None:
            buf[:8] = sc.hdr.to_bytes(8, "little")
        for i in range(cap):
            buf[8 + 8 * i:16 + 8 * i] = sc.ent[i].to_bytes(8, "little")
        self._check(st, "psc_ghcb")
        return GhcbResult(out.sw_exitinfo1, out.sw_exitinfo2, out.entries_done, out.pages_done)

    def serve_npf(self, gpa: int, exitinfo1: int, *, vcpu: int = 0) -> HostAction:
        vcpu, gpa, exitinfo1 = self._vcpu(vcpu), as_u64(gpa, "gpa"), as_u64(exitinfo1, "exitinfo1")
        st, action = self._npf_exit(vcpu, gpa, exitinfo1)
        self._check(st, "NPF")
        return HostAction(action)

    # ---- Linux's handling of a touch --------------------------------------------------
    def touch(self, gpa: int, *, write: bool = False, shared: bool = False, user: bool = False,
              vcpu: int = 0) -> TouchResult:
        """A load or store at gpa: an NPF goes to the host, which may fix it
        (the access is retried, at most TOUCH_NPF_LIMIT times) or not (the
        guest hangs); #VC 0x404 has no handler in Linux: SIGBUS in user mode,
        termination (set 0, code 0) in the kernel."""
        vcpu, gpa = self._vcpu(vcpu), as_u64(gpa, "gpa")
        exits = detail = 0
        for tries in itertools.count():
            r = self.access(gpa, WRITE if write else READ, c_bit=not shared, vcpu=vcpu)
            if r.fault == NONE:
                outcome = TouchOutcome.SERVED_EXIT if exits else TouchOutcome.SERVED
                return TouchResult(outcome, exits, 0, 0, detail)
            if r.fault == NPF:
                detail = r.exitinfo1
                st, action = self._npf_exit(vcpu, gpa, r.exitinfo1)
                if st not in (_OK, _HUNG):
                    self._check(st, f"touch {gpa:#x}")
                exits += 1
                if st == _HUNG or action == HostAction.NOTHING or tries >= TOUCH_NPF_LIMIT:
                    self._hang(vcpu, gpa, "access: nested page fault the host never resolves")
                    return TouchResult(TouchOutcome.HUNG, exits, 0, 0, detail)
                continue
            vector = {VC: VECTOR_VC, GP: VECTOR_GP}.get(int(r.fault), VECTOR_PF)
            if r.fault == VC and r.error_code == VC_NOT_VALIDATED:
                if user:                                   # SIGBUS to the process
                    return TouchResult(TouchOutcome.GUEST_FAULT, exits, vector, r.error_code,
                                       detail)
                self._terminate(vcpu, TERM_GEN, gpa, 0, VC, 0)
                return TouchResult(TouchOutcome.TERMINATED, exits, vector, r.error_code, detail)
            self._record(Fatal(FatalKind.PANIC, vcpu, gpa, r.error_code, 0, 0, 0, 0, 0,
                               "unhandled exception on a memory access"))
            return TouchResult(TouchOutcome.PANIC, exits, vector, r.error_code, detail)
        raise AssertionError("unreachable")

    # ---- accept paths ---------------------------------------------------------------------
    def accept_path(self, kind: str = "linux", **options: int) -> AcceptPath:
        """The guest's accept path of this kind (one per kind); options
        (psc_max_entries, ovmf_buffer_bytes, hang_limit) replace the path's and
        reset its statistics."""
        as_choice(kind, "accept path kind", PATH_KINDS)
        if options:
            self.set_path_options(kind, **options)
        if kind not in self._paths:
            self._paths[kind] = AcceptPath(self, kind)
        return self._paths[kind]

    def set_path_options(self, kind: str = "linux", *, psc_max_entries: int = 0,
                         ovmf_buffer_bytes: int = 0, hang_limit: int = 0) -> None:
        as_choice(kind, "accept path kind", PATH_KINDS)
        path = self._paths.get(kind) or AcceptPath(self, kind)
        path.configure(psc_max_entries, ovmf_buffer_bytes, hang_limit)
        self._paths[kind] = path

    def unaccept(self, start: int, end: int, *, kind: str = "linux", vcpu: int = 0) -> None:
        path = self.accept_path(kind)
        st = self._run_path(path, start, end, vcpu, False)
        self._check(st, f"{kind} unaccept [{start:#x}, {end:#x})")

    def path_stats(self, kind: str = "linux") -> PathStats:
        return self.accept_path(kind).stats

    def reset_path_stats(self, kind: str = "linux") -> None:
        self.accept_path(kind).reset_stats()

    def _run_path(self, path: AcceptPath, start: object, end: object, vcpu: object,
                  private: bool) -> int:
        vcpu = as_int(vcpu, "vcpu", 0, self.vcpus)
        start, end = as_u64(start, "start"), as_u64(end, "end")
        self._check_range(start, end)
        if self._fatal is not None:                    # a dead guest runs nothing
            return _FATAL_STATUS[self._fatal.kind]
        if start == end:
            return _OK
        c = dict.fromkeys(_STAT_FIELDS, 0)
        c["calls"] = 1
        if self.vmpl != 0:    # no SVSM: Linux stops with NOT_VMPL0, OVMF's SEC refuses to run
            reason = TERM_GEN if path.kind == "ovmf" else TERM_LINUX_NOT_VMPL0
            rc = self._terminate(vcpu, reason, start)
        elif path.kind == "linux-early":
            rc = self._early_set_state(path, c, start, end, vcpu, private)
        else:
            rc = self._desc_set_state(path, c, start, end, vcpu, private, path.kind == "ovmf")
        c["exits"] = c["psc_exits"] + c["msr_exits"] + c["npf_exits"]
        c["failures"] = int(rc != _OK)
        for k, v in c.items():
            path._totals[k] += v
        return rc

    def _guest_pvalidate(self, path: AcceptPath, c: Dict[str, int], vcpu: int, gpa: int,
                         size: int, validate: bool) -> Tuple[int, InstrResult]:
        """PVALIDATE as the guest executes it: an NPF goes to the host and the
        instruction is re-executed once the host fixed the cause; if it
        cannot (or keeps failing), the guest would spin: hung."""
        for tries in itertools.count():
            r = self._pvalidate(gpa, size, validate)
            c["accept_2m" if size else "accept_4k"] += 1
            if r.fault != NPF:
                return _OK, r
            c["npf_exits"] += 1
            st, action = self._npf_exit(vcpu, gpa, r.exitinfo1)
            if action == HostAction.PSMASH:
                c["host_psmash"] += 1
            elif action == HostAction.RMPUPDATE:
                c["host_rmpupdate"] += 1
            if st == _HUNG or (st == _OK and tries + 1 >= path.hang_limit):
                return self._hang(vcpu, gpa,
                                  "PVALIDATE: nested page fault the host never resolves"), r
            if st:
                return st, r
        raise AssertionError("unreachable")

    def _validate_entry(self, path: AcceptPath, c: Dict[str, int], vcpu: int, gpa: int,
                        big: int, validate: bool) -> Tuple[int, Optional[InstrResult], int]:
        """PVALIDATE one PSC entry; a 2 MiB PVALIDATE answered
        FAIL_SIZEMISMATCH is redone as 512 x 4 KiB (Linux pval_pages(),
        EDK2 BasePvalidate()).  (status, the failing result, its address)."""
        st, r = self._guest_pvalidate(path, c, vcpu, gpa, 1 if big else 0, validate)
        if st:
            return st, r, gpa
        if big and r.fault == NONE and r.eax == FAIL_SIZEMISMATCH:
            c["fallbacks"] += 1
            for a in range(gpa, gpa + M2, K4):
                st, r = self._guest_pvalidate(path, c, vcpu, a, 0, validate)
                if st:
                    return st, r, a
                if _pv_failed(r):
                    return _FAILED, r, a
            return _OK, None, gpa
        return (_FAILED if _pv_failed(r) else _OK), r, gpa

    def _validate_all(self, path: AcceptPath, c: Dict[str, int], vcpu: int,
                      entries: Sequence[int], validate: bool, reason: Tuple[int, int]) -> int:
        for x in entries:
            gpa = ((x >> 12) & GFN_MASK) * K4
            st, r, bad = self._validate_entry(path, c, vcpu, gpa, (x >> 56) & 1, validate)
            if st == _FAILED:
                assert r is not None                  # a failure comes with its result
                return self._terminate(vcpu, reason, bad, _pv_code(r), int(r.fault), 0)
            if st:
                return st
        return _OK

    def _psc_issue(self, path: AcceptPath, c: Dict[str, int], vcpu: int, buf: List[int], n: int,
                   pos_cap: int, linux_checks: bool, reason: Tuple[int, int], first: int) -> int:
        """Issue one descriptor (buf[0..n-1]) until cur_entry passes end_entry.
        After each exit the guest checks the status and SW_EXITINFO2, and
        Linux (vmgexit_psc) also the header against the values it started
        with: reserved word clear, end_entry not grown, cur_entry not below
        its start (0).  hang_limit exits in a row without progress: hung."""
        hdr = (n - 1) << 16
        end0 = n - 1

        def pos(h: int) -> int:
            cur = h & 0xFFFF
            return cur << 12 | (buf[cur] & 0xFFF if cur < pos_cap else 0)

        stuck = 0
        while hdr & 0xFFFF <= (hdr >> 16) & 0xFFFF:
            before = pos(hdr)
            sc = _Scratch(hdr, buf, PSC_MAX_ENTRIES)
            st, out = self._psc_exit(vcpu, sc)
            assert sc.hdr is not None                 # a host cannot remove the header
            hdr = sc.hdr
            c["psc_exits"] += 1
            if st == _HUNG:
                return self._hang(vcpu, first, "Page State Change: the host never returns")
            if st:
                return st
            if (out.sw_exitinfo1 & 0xFFFFFFFF or out.sw_exitinfo2 or
                    (linux_checks and (hdr >> 32 or (hdr >> 16) & 0xFFFF > end0))):
                return self._terminate(vcpu, reason, first, 0, 0,
                                       out.sw_exitinfo2 or out.sw_exitinfo1)
            if pos(hdr) == before:
                stuck += 1
                if stuck >= path.hang_limit:
                    return self._hang(vcpu, first,
                                      "Page State Change: the host makes no progress")
            else:
                stuck = 0
        return _OK

    def _desc_set_state(self, path: AcceptPath, c: Dict[str, int], start: int, end: int,
                        vcpu: int, private: bool, edk2: bool) -> int:
        """Linux set_pages_state() / EDK2 InternalSetPageState(): descriptors
        of up to psc_max_entries (Linux) or one buffer fill (EDK2) entries,
        2 MiB where the address is 2 MiB aligned with 2 MiB left; to shared:
        rescind first; then the PSC (EDK2: batches of <= 253, status checks
        only); to private: then PVALIDATE and the cache touch."""
        op = OP_PRIVATE if private else OP_SHARED
        limit = path.fill if edk2 else path.psc_max_entries
        t_psc = TERM_GEN if edk2 else TERM_LINUX_PSC
        t_pval = TERM_GEN if edk2 else TERM_LINUX_PVALIDATE
        a = start
        while a < end:
            first = a
            entries: List[int] = []
            while a < end and len(entries) < limit:
                big = a % M2 == 0 and end - a >= M2
                entries.append((a // K4) << 12 | op << 52 | int(big) << 56)
                a += M2 if big else K4
            n = len(entries)
            c["psc_requests"] += 1
            if not private:      # "validation must be rescinded before changing to shared"
                rc = self._validate_all(path, c, vcpu, entries, False, t_pval)
                if rc:
                    return rc
            if edk2:
                for i in range(0, n, PSC_MAX_ENTRIES):
                    batch = entries[i:i + PSC_MAX_ENTRIES]
                    ghcb = batch + [0] * (PSC_MAX_ENTRIES - len(batch))
                    rc = self._psc_issue(path, c, vcpu, ghcb, len(batch), PSC_MAX_ENTRIES,
                                         False, t_psc, first)
                    if rc:
                        return rc
            else:
                # the descriptor the host updates is the one PVALIDATE then reads
                entries += [0] * (PSC_MAX_ENTRIES - n)
                rc = self._psc_issue(path, c, vcpu, entries, n, n, True, t_psc, first)
                if rc:
                    return rc
                del entries[n:]
            if private:
                rc = self._validate_all(path, c, vcpu, entries, True, t_pval)
                if rc:
                    return rc
                if not self.coherency_sfw_no:
                    c["cache_touch_4k"] += (a - first) // K4
            c["bytes"] += a - first
        return _OK

    def _early_set_state(self, path: AcceptPath, c: Dict[str, int], start: int, end: int,
                         vcpu: int, private: bool) -> int:
        """Linux early_set_pages_state(): per 4 KiB page one MSR-protocol PSC
        and one 4 KiB PVALIDATE (rescinded before the PSC to shared)."""
        op = OP_PRIVATE if private else OP_SHARED
        for a in range(start, end, K4):
            page = [(a // K4) << 12]
            if not private:
                rc = self._validate_all(path, c, vcpu, page, False, TERM_LINUX_PVALIDATE)
                if rc:
                    return rc
            st, resp = self._msr_exit(vcpu, MSR_PSC_REQ | (a // K4) << 12 | op << 52)
            c["msr_exits"] += 1
            if st == _HUNG:
                return self._hang(vcpu, a, "Page State Change (MSR): the host never returns")
            if st:
                return st
            if resp & 0xFFF != MSR_PSC_RESP or resp >> 32:
                return self._terminate(vcpu, TERM_LINUX_PSC, a, 0, 0, resp)
            if private:
                rc = self._validate_all(path, c, vcpu, page, True, TERM_LINUX_PVALIDATE)
                if rc:
                    return rc
                if not self.coherency_sfw_no:
                    c["cache_touch_4k"] += 1
            c["bytes"] += K4
        return _OK


__all__ = ["AcceptPath", "Entry", "SnpGuest", "SnpMsrExit", "SnpNpfExit", "SnpPscExit",
           "ZERO", "term_msr"]
