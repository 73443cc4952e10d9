"""AMD SEV-SNP vendor model (csrc/snp.c, csrc/guest_snp.c).

    guest = SnpGuest(64 << 30, backing="4K", cost=Cost("count"))
    guest.launch_update(0, 2 << 20)              # SNP_LAUNCH_UPDATE: validated at launch
    r = guest.pvalidate(4 << 30, PageSize.SIZE_2M)   # -> InstrResult(fault=Fault.NPF, ...)
    path = guest.accept_path("linux")            # snp_accept_memory() as an accept primitive
    table.set_accept(path); table.accept(start, size)

Every instruction returns a frozen dataclass with the architectural outcome
(EAX, CF, the fault and its EXITINFO/error code); bad simulator arguments
(a vCPU out of range, an address past 2^52) raise the mapped exceptions.
Nothing here loops per page: whole ranges go to C in one call.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, fields
from typing import Iterable, List, Optional, Tuple

from ._core import ffi, lib
from .errors import InvalidArgument, check

PAGE_4K = 4096
PAGE_2M = 2 << 20
_PA_LIMIT = 1 << 52


class PageSize(enum.IntEnum):
    SIZE_4K = lib.UA_SNP_PAGE_4K
    SIZE_2M = lib.UA_SNP_PAGE_2M


class PvalidateCode(enum.IntEnum):
    """PVALIDATE / RMPADJUST return codes (EAX); FAIL_NOUPDATE is Linux's
    and EDK2's software code for EAX 0 with CF=1."""

    SUCCESS = lib.UA_SNP_PVALIDATE_SUCCESS
    FAIL_INPUT = lib.UA_SNP_FAIL_INPUT
    FAIL_PERMISSION = lib.UA_SNP_FAIL_PERMISSION
    FAIL_SIZEMISMATCH = lib.UA_SNP_FAIL_SIZEMISMATCH
    FAIL_NOUPDATE = lib.UA_SNP_PVALIDATE_FAIL_NOUPDATE


class RmpCode(enum.IntEnum):
    """RMPUPDATE / PSMASH return codes (EAX)."""

    SUCCESS = lib.UA_SNP_RMP_SUCCESS
    FAIL_INPUT = lib.UA_SNP_RMP_FAIL_INPUT
    FAIL_PERMISSION = lib.UA_SNP_RMP_FAIL_PERMISSION
    FAIL_INUSE = lib.UA_SNP_RMP_FAIL_INUSE
    FAIL_OVERLAP = lib.UA_SNP_RMP_FAIL_OVERLAP


class Fault(enum.IntEnum):
    NONE = lib.UA_SNP_FAULT_NONE
    GP = lib.UA_SNP_FAULT_GP
    PF = lib.UA_SNP_FAULT_PF
    NPF = lib.UA_SNP_FAULT_NPF
    VC = lib.UA_SNP_FAULT_VC


class NpfBits(enum.IntFlag):
    """#VMEXIT(NPF) EXITINFO1 bits."""

    PRESENT = lib.UA_SNP_NPF_PRESENT
    WRITE = lib.UA_SNP_NPF_WRITE
    USER = lib.UA_SNP_NPF_USER
    FETCH = lib.UA_SNP_NPF_FETCH
    RMP = lib.UA_SNP_NPF_RMP
    ENC = lib.UA_SNP_NPF_ENC
    SIZEM = lib.UA_SNP_NPF_SIZEM
    VMPL = lib.UA_SNP_NPF_VMPL


class Perm(enum.IntFlag):
    READ = lib.UA_SNP_PERM_READ
    WRITE = lib.UA_SNP_PERM_WRITE
    EXEC_USER = lib.UA_SNP_PERM_EXEC_USER
    EXEC_SUPER = lib.UA_SNP_PERM_EXEC_SUPER
    SSS = lib.UA_SNP_PERM_SSS
    ALL = lib.UA_SNP_PERM_ALL


class Access(enum.IntEnum):
    READ = lib.UA_SNP_ACCESS_READ
    WRITE = lib.UA_SNP_ACCESS_WRITE
    EXEC_USER = lib.UA_SNP_ACCESS_EXEC_USER
    EXEC_SUPER = lib.UA_SNP_ACCESS_EXEC_SUPER


class PscOp(enum.IntEnum):
    PRIVATE = lib.UA_SNP_PSC_OP_PRIVATE
    SHARED = lib.UA_SNP_PSC_OP_SHARED
    PSMASH = lib.UA_SNP_PSC_OP_PSMASH
    UNSMASH = lib.UA_SNP_PSC_OP_UNSMASH


class PscFault(enum.IntEnum):
    """Hypervisor misbehaviour on a GHCB NAE Page State Change."""

    NONE = lib.UA_SNP_PSCF_NONE
    ERROR = lib.UA_SNP_PSCF_ERROR
    RESERVED = lib.UA_SNP_PSCF_RESERVED
    END_GROW = lib.UA_SNP_PSCF_END_GROW
    REWIND = lib.UA_SNP_PSCF_REWIND
    STALL = lib.UA_SNP_PSCF_STALL


class MsrFault(enum.IntEnum):
    NONE = lib.UA_SNP_MSRF_NONE
    ERROR = lib.UA_SNP_MSRF_ERROR
    BAD_CODE = lib.UA_SNP_MSRF_BAD_CODE


class PscCheck(enum.IntEnum):
    """Result of the Linux guest's check after a PSC VMGEXIT."""

    OK = 0
    ERROR = 1
    RESERVED = 2
    END_GREW = 3
    CUR_BACKWARDS = 4


# SW_EXITINFO2 codes of the NAE PSC and GHCB-level errors
PSC_ERROR_INVALID_HDR = lib.UA_SNP_PSC_ERROR_INVALID_HDR
PSC_ERROR_INVALID_ENTRY = lib.UA_SNP_PSC_ERROR_INVALID_ENTRY
PSC_ERROR_GENERIC = lib.UA_SNP_PSC_ERROR_GENERIC
GHCB_ERR_INVALID_SCRATCH_AREA = lib.UA_SNP_GHCB_ERR_INVALID_SCRATCH_AREA
PSC_MAX_ENTRIES = lib.UA_SNP_PSC_MAX_ENTRIES
LINUX_PSC_MAX_ENTRIES = lib.UA_SNP_LINUX_PSC_MAX_ENTRIES
MSR_PSC_REQ = lib.UA_SNP_GHCB_MSR_PSC_REQ
MSR_PSC_RESP = lib.UA_SNP_GHCB_MSR_PSC_RESP
MSR_PSC_RESP_ERROR = lib.UA_SNP_GHCB_MSR_PSC_RESP_ERROR
VC_PAGE_NOT_VALIDATED = lib.UA_SNP_VC_PAGE_NOT_VALIDATED
PFEC_RMP = lib.UA_SNP_PFEC_RMP
RMPADJUST_VMSA = lib.UA_SNP_RMPADJUST_VMSA

# Termination reasons (set, code)
TERM_GEN_REQ = (lib.UA_SNP_TERM_SET_GEN, lib.UA_SNP_TERM_GEN_REQ)
TERM_PSC = (lib.UA_SNP_TERM_SET_LINUX, lib.UA_SNP_TERM_PSC)
TERM_PVALIDATE = (lib.UA_SNP_TERM_SET_LINUX, lib.UA_SNP_TERM_PVALIDATE)
TERM_NOT_VMPL0 = (lib.UA_SNP_TERM_SET_LINUX, lib.UA_SNP_TERM_NOT_VMPL0)


def term_msr(reason_set: int, code: int) -> int:
    """The GHCB MSR value of a termination request."""
    return lib.UA_SNP_GHCB_MSR_TERM_REQ | (reason_set & 0xF) << 12 | (code & 0xFF) << 16


def msr_psc_request(gfn: int, op: int) -> int:
    """GHCB MSR-protocol Page State Change request value."""
    return MSR_PSC_REQ | (gfn & ((1 << 40) - 1)) << 12 | (op & 0xF) << 52


_BACKING = {"2M": lib.UA_SNP_BACKING_2M, "4K": lib.UA_SNP_BACKING_4K}
_PATHS = {"linux": lib.UA_SNP_PATH_LINUX, "linux-early": lib.UA_SNP_PATH_LINUX_EARLY,
          "ovmf": lib.UA_SNP_PATH_OVMF}
_PATH_FNS = {"linux": "ua_snp_accept_linux", "linux-early": "ua_snp_accept_linux_early",
             "ovmf": "ua_snp_accept_ovmf"}
_UNACCEPT_FNS = {"linux": "ua_snp_unaccept_linux",
                 "linux-early": "ua_snp_unaccept_linux_early", "ovmf": "ua_snp_unaccept_ovmf"}


def _int(value, name, lo=0, hi=1 << 64):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value < hi:
        raise InvalidArgument(f"{name} = {value!r} must be an int in [{lo}, {hi})")
    return value


@dataclass(frozen=True)
class RmpEntry:
    """The logical RMP entry governing a 4 KiB SPA."""

    entry_spa: int
    gpa: int
    asid: int
    assigned: bool
    page_size: PageSize
    immutable: bool
    validated: bool
    vmsa: bool
    perm: Tuple[int, int, int, int]


@dataclass(frozen=True)
class InstrResult:
    """Outcome of PVALIDATE, RMPADJUST, a guest access or a host write."""

    eax: int
    cf: bool
    fault: Fault
    error_code: int
    exitinfo1: int
    exitinfo2: int

    @property
    def code(self) -> int:
        """EAX, or 255 (FAIL_NOUPDATE) for EAX 0 with CF=1, as Linux reports it."""
        if self.fault == Fault.NONE and self.eax == 0 and self.cf:
            return PvalidateCode.FAIL_NOUPDATE
        return self.eax

    @property
    def ok(self) -> bool:
        """Executed and changed state (no fault, EAX 0, CF 0)."""
        return self.fault == Fault.NONE and self.eax == 0 and not self.cf

    @property
    def npf_bits(self) -> NpfBits:
        return NpfBits(self.exitinfo1)


def _instr(r) -> InstrResult:
    return InstrResult(r.eax, bool(r.cf), Fault(r.fault), r.error_code, r.exitinfo1, r.exitinfo2)


@dataclass(frozen=True)
class TouchResult:
    """The last access of a Linux touch, and whether the process got SIGBUS."""

    access: InstrResult
    sigbus: bool


@dataclass(frozen=True)
class GhcbResult:
    sw_exitinfo1: int
    sw_exitinfo2: int
    entries_done: int
    pages_done: int


@dataclass(frozen=True)
class Termination:
    terminated: bool
    vcpu: int
    msr: int
    reason_set: int
    reason_code: int
    gpa: int
    eax: int
    fault: Fault
    sw_exitinfo2: int


@dataclass(frozen=True)
class HostPolicy:
    """How the modelled hypervisor serves the guest."""

    backing: str = "2M"               # "2M" or "4K"
    psc_max_entries: int = 0          # entries completed per NAE PSC exit (0 = all)
    psc_max_pages: int = 0            # 4 KiB pages completed per exit (0 = no limit)
    skip_rmpupdate: bool = False      # answer PSC success without RMPUPDATE (attack)
    psc_fault: PscFault = PscFault.NONE
    msr_fault: MsrFault = MsrFault.NONE
    npf_psmash: bool = True           # PSMASH and resume on an NPF with SIZEM (KVM)
    ghcb_error: int = 0               # 1-6: every NAE PSC fails with this GHCB_ERR_* code
    lazy_rmpupdate: bool = False      # PSC records the attribute; RMPUPDATE at the first NPF


@dataclass(frozen=True)
class SnpStats:
    regions: int
    chunks_allocated: int
    split_regions: int
    bytes_allocated: int
    assigned_4k: int
    validated_4k: int


@dataclass(frozen=True)
class PathStats:
    calls: int
    psc_requests: int
    psc_exits: int
    msr_exits: int
    pvalidate_2m: int
    pvalidate_4k: int
    fallbacks: int
    npf_exits: int
    psmash: int
    cache_touch_4k: int
    bytes: int


@dataclass(frozen=True)
class PscEntry:
    """One GHCB Page State Change entry (8 bytes on the wire)."""

    gfn: int
    op: int = PscOp.PRIVATE
    page_size: int = PageSize.SIZE_4K
    cur_page: int = 0
    reserved: int = 0

    def encode(self) -> int:
        return ((self.cur_page & 0xFFF) | (self.gfn & ((1 << 40) - 1)) << 12 |
                (self.op & 0xF) << 52 | (self.page_size & 1) << 56 | (self.reserved & 0x7F) << 57)

    @classmethod
    def decode(cls, v: int) -> "PscEntry":
        return cls(gfn=(v >> 12) & ((1 << 40) - 1), op=(v >> 52) & 0xF,
                   page_size=(v >> 56) & 1, cur_page=v & 0xFFF, reserved=v >> 57)


def psc_buffer(entries: Iterable[PscEntry], *, cur_entry: int = 0, end_entry: Optional[int] = None,
               reserved: int = 0, capacity: Optional[int] = None) -> bytearray:
    """A PSC scratch area: 8-byte header {u16 cur, u16 end (inclusive), u32
    reserved} then 8-byte entries (zero-padded to `capacity` entries)."""
    entries = list(entries)
    if end_entry is None:
        end_entry = len(entries) - 1
    n = max(len(entries), capacity or 0)
    buf = bytearray(8 + 8 * n)
    struct.pack_into("<HHI", buf, 0, cur_entry & 0xFFFF, end_entry & 0xFFFF, reserved)
    for i, e in enumerate(entries):
        struct.pack_into("<Q", buf, 8 + 8 * i, e.encode() if isinstance(e, PscEntry) else e)
    return buf


def parse_psc_buffer(buf) -> Tuple[int, int, int, List[PscEntry]]:
    """(cur_entry, end_entry, reserved, entries) of a scratch area."""
    cur, end, rsvd = struct.unpack_from("<HHI", buf, 0)
    n = (len(buf) - 8) // 8
    return cur, end, rsvd, [PscEntry.decode(struct.unpack_from("<Q", buf, 8 + 8 * i)[0])
                            for i in range(n)]


def psc_guest_check(start_cur: int, start_end: int, buf, sw_exitinfo2: int = 0) -> PscCheck:
    """The Linux guest's check after a PSC VMGEXIT (vmgexit_psc)."""
    hdr = bytes(buf[:8])
    if len(hdr) < 8:
        raise InvalidArgument("a PSC header is 8 bytes")
    return PscCheck(lib.ua_snp_psc_guest_check(start_cur, start_end, hdr, sw_exitinfo2))


def _cost_handle(cost):
    if cost is None:
        return ffi.NULL
    if hasattr(cost, "_handle"):
        return cost._handle
    if isinstance(cost, ffi.CData):
        return cost
    raise InvalidArgument(f"cost must be a Cost (or a ua_cost * cdata), got {cost!r}")


class SnpGuest:
    """An SEV-SNP guest: its RMP, NPT, the hypervisor model and the guest's
    instructions.  Guest RAM is GPA [0, memory_bytes); the RMP also covers
    `spare_bytes` of host memory above it (for remap attacks)."""

    def __init__(self, memory_bytes: int, *, backing: str = "2M", asid: int = 1, vmpl: int = 0,
                 nvcpus: int = 1, spare_bytes: int = 0, coherency_sfw_no: bool = False,
                 cost=None, **policy):
        cfg = ffi.new("ua_snp_config *")
        cfg.memory_bytes = _int(memory_bytes, "memory_bytes")
        cfg.spare_bytes = _int(spare_bytes, "spare_bytes")
        cfg.asid = _int(asid, "asid", 0, 1 << 32)
        cfg.vmpl = _int(vmpl, "vmpl", 0, 1 << 32)
        cfg.nvcpus = _int(nvcpus, "nvcpus", 0, 1 << 32)
        cfg.coherency_sfw_no = bool(coherency_sfw_no)
        out = ffi.new("ua_snp **")
        check(lib.ua_snp_create(cfg, out), f"SnpGuest({memory_bytes:#x})")
        self._handle = ffi.gc(out[0], lib.ua_snp_destroy)
        self.memory_bytes = memory_bytes
        self.spare_bytes = spare_bytes
        self.asid = asid
        self.vmpl = vmpl
        self.nvcpus = nvcpus
        self._cost = None
        unknown = set(policy) - {f.name for f in fields(HostPolicy)}
        if unknown:
            raise InvalidArgument(f"unknown host policy setting(s): {', '.join(sorted(unknown))}")
        self.set_policy(HostPolicy(backing=backing, **policy))
        if cost is not None:
            self.set_cost(cost)

    def __repr__(self):
        return (f"SnpGuest({self.memory_bytes:#x}, backing={self.policy.backing!r}, "
                f"asid={self.asid}, vmpl={self.vmpl}, nvcpus={self.nvcpus})")

    # ---- settings ----
    def set_cost(self, cost) -> None:
        check(lib.ua_snp_set_cost(self._handle, _cost_handle(cost)), "set_cost")
        self._cost = cost

    @property
    def cost(self):
        return self._cost

    @property
    def policy(self) -> HostPolicy:
        p = ffi.new("ua_snp_host_policy *")
        check(lib.ua_snp_host_policy_get(self._handle, p))
        return HostPolicy(backing="4K" if p.backing == lib.UA_SNP_BACKING_4K else "2M",
                          psc_max_entries=p.psc_max_entries, psc_max_pages=p.psc_max_pages,
                          skip_rmpupdate=bool(p.skip_rmpupdate), psc_fault=PscFault(p.psc_fault),
                          msr_fault=MsrFault(p.msr_fault), npf_psmash=bool(p.npf_psmash),
                          ghcb_error=p.ghcb_error, lazy_rmpupdate=bool(p.lazy_rmpupdate))

    def set_policy(self, policy: Optional[HostPolicy] = None, **changes) -> None:
        """Replace the host policy, or change some of its fields."""
        import dataclasses
        unknown = set(changes) - {f.name for f in fields(HostPolicy)}
        if unknown:
            raise InvalidArgument(f"unknown host policy setting(s): {', '.join(sorted(unknown))}")
        policy = dataclasses.replace(policy or self.policy, **changes)
        if policy.backing not in _BACKING:
            raise InvalidArgument(f"backing = {policy.backing!r} must be '2M' or '4K'")
        p = ffi.new("ua_snp_host_policy *")
        p.backing = _BACKING[policy.backing]
        p.psc_max_entries = _int(policy.psc_max_entries, "psc_max_entries", 0, 1 << 32)
        p.psc_max_pages = _int(policy.psc_max_pages, "psc_max_pages", 0, 1 << 32)
        p.skip_rmpupdate = bool(policy.skip_rmpupdate)
        p.psc_fault = PscFault(policy.psc_fault)
        p.msr_fault = MsrFault(policy.msr_fault)
        p.npf_psmash = bool(policy.npf_psmash)
        p.ghcb_error = _int(policy.ghcb_error, "ghcb_error", 0, 1 << 32)
        p.lazy_rmpupdate = bool(policy.lazy_rmpupdate)
        check(lib.ua_snp_set_host_policy(self._handle, p), "host policy")

    def set_coherency_sfw_no(self, on: bool) -> None:
        check(lib.ua_snp_set_coherency_sfw_no(self._handle, bool(on)))

    def stats(self) -> SnpStats:
        st = ffi.new("ua_snp_stats *")
        check(lib.ua_snp_stats_get(self._handle, st))
        return SnpStats(*(getattr(st, f.name) for f in fields(SnpStats)))

    @property
    def termination(self) -> Termination:
        t = ffi.new("ua_snp_termination *")
        check(lib.ua_snp_termination_get(self._handle, t))
        return Termination(bool(t.terminated), t.vcpu, t.msr, t.reason_set, t.reason_code, t.gpa,
                           t.eax, Fault(t.fault), t.sw_exitinfo2)

    def clear_termination(self) -> None:
        lib.ua_snp_termination_clear(self._handle)

    def terminate(self, reason_set: int, code: int, vcpu: int = 0) -> int:
        """The guest writes a termination request; returns the MSR value."""
        return lib.ua_snp_terminate(self._handle, vcpu, reason_set, code)

    # ---- host side ----
    def rmpupdate(self, spa: int, *, gpa: int = 0, asid: int = 0, assigned: bool = False,
                  page_size: int = PageSize.SIZE_4K, immutable: bool = False) -> RmpCode:
        st = ffi.new("ua_snp_rmp_state *")
        st.gpa = _int(gpa, "gpa")
        st.asid = _int(asid, "asid", 0, 1 << 32)
        st.assigned = bool(assigned)
        st.page_size = _int(int(page_size), "page_size", 0, 256)
        st.immutable = bool(immutable)
        eax = ffi.new("uint32_t *")
        check(lib.ua_snp_rmpupdate(self._handle, _int(spa, "spa"), st, eax), "rmpupdate")
        return RmpCode(eax[0])

    def make_private(self, spa: int, gpa: int, page_size: int = PageSize.SIZE_4K) -> RmpCode:
        """rmp_make_private(): assign to this guest (Validated = 0)."""
        return self.rmpupdate(spa, gpa=gpa, asid=self.asid, assigned=True, page_size=page_size)

    def make_shared(self, spa: int, page_size: int = PageSize.SIZE_4K) -> RmpCode:
        """rmp_make_shared(): back to the hypervisor."""
        return self.rmpupdate(spa, page_size=page_size)

    def psmash(self, spa: int) -> RmpCode:
        eax = ffi.new("uint32_t *")
        check(lib.ua_snp_psmash(self._handle, _int(spa, "spa"), eax), "psmash")
        return RmpCode(eax[0])

    def set_in_use(self, spa: int, in_use: bool = True) -> None:
        check(lib.ua_snp_set_in_use(self._handle, _int(spa, "spa"), bool(in_use)), "set_in_use")

    def launch_update(self, gpa: int, size: int) -> None:
        """SNP_LAUNCH_UPDATE: the pages start assigned and validated."""
        check(lib.ua_snp_launch_update(self._handle, _int(gpa, "gpa"), _int(size, "size")),
              f"launch_update({gpa:#x}, {size:#x})")

    def launch_finish(self) -> None:
        check(lib.ua_snp_launch_finish(self._handle))

    def npt_map(self, gpa: int, spa: int) -> None:
        """Point the nested page table's 4 KiB entry for gpa at spa."""
        check(lib.ua_snp_npt_map(self._handle, _int(gpa, "gpa"), _int(spa, "spa")), "npt_map")

    def npt_lookup(self, gpa: int) -> int:
        out = ffi.new("uint64_t *")
        check(lib.ua_snp_npt_lookup(self._handle, _int(gpa, "gpa"), out), "npt_lookup")
        return out[0]

    def host_write(self, spa: int) -> InstrResult:
        r = ffi.new("ua_snp_result *")
        check(lib.ua_snp_host_write(self._handle, _int(spa, "spa"), r), "host_write")
        return _instr(r)

    def rmp(self, spa: int) -> RmpEntry:
        e = ffi.new("ua_snp_rmp_entry *")
        check(lib.ua_snp_rmp_read(self._handle, _int(spa, "spa"), e), "rmp_read")
        return RmpEntry(e.entry_spa, e.gpa, e.asid, bool(e.assigned), PageSize(e.page_size),
                        bool(e.immutable), bool(e.validated), bool(e.vmsa), tuple(e.perm))

    def count(self, start: int = 0, end: Optional[int] = None) -> Tuple[int, int]:
        """(validated, assigned but not validated) 4 KiB pages of GPA [start, end)."""
        end = self.memory_bytes if end is None else end
        v, u = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        check(lib.ua_snp_count_gpa(self._handle, _int(start, "start"), _int(end, "end"), v, u),
              "count")
        return v[0], u[0]

    # ---- guest side ----
    def pvalidate(self, va: int, size: int = PageSize.SIZE_4K, validate: bool = True,
                  vcpu: int = 0) -> InstrResult:
        r = ffi.new("ua_snp_result *")
        check(lib.ua_snp_pvalidate(self._handle, _int(vcpu, "vcpu", 0, 1 << 32), _int(va, "va"),
                                   _int(int(size), "size", 0, 1 << 32), bool(validate), r),
              "pvalidate")
        return _instr(r)

    def rmpadjust(self, va: int, size: int = PageSize.SIZE_4K, *, target_vmpl: int = 1,
                  perms: int = 0, vmsa: bool = False, attrs: Optional[int] = None,
                  vcpu: int = 0) -> InstrResult:
        """RMPADJUST; `attrs` (raw RDX) overrides target_vmpl/perms/vmsa."""
        if attrs is None:
            attrs = (_int(target_vmpl, "target_vmpl", 0, 256) |
                     _int(int(perms), "perms", 0, 256) << 8 | (RMPADJUST_VMSA if vmsa else 0))
        r = ffi.new("ua_snp_result *")
        check(lib.ua_snp_rmpadjust(self._handle, _int(vcpu, "vcpu", 0, 1 << 32), _int(va, "va"),
                                   _int(int(size), "size", 0, 1 << 32), _int(attrs, "attrs"), r),
              "rmpadjust")
        return _instr(r)

    def access(self, gpa: int, kind: Access = Access.READ, *, c_bit: bool = True,
               vcpu: int = 0) -> InstrResult:
        r = ffi.new("ua_snp_result *")
        check(lib.ua_snp_access(self._handle, _int(vcpu, "vcpu", 0, 1 << 32), _int(gpa, "gpa"),
                                _int(int(kind), "kind", 0, 1 << 32), bool(c_bit), r), "access")
        return _instr(r)

    def linux_touch(self, gpa: int, kind: Access = Access.READ, *, user_mode: bool = False,
                    vcpu: int = 0) -> "TouchResult":
        """A Linux guest access with Linux's handling of the outcome: NPFs go to
        the host and the access retries (GuestHung if the host cannot fix
        them); #VC 0x404 terminates the guest in kernel mode (GuestTerminated,
        reason set 0, code 0) and sends SIGBUS in user mode (sigbus=True)."""
        r = ffi.new("ua_snp_result *")
        sigbus = ffi.new("uint32_t *")
        st = lib.ua_snp_guest_linux_touch(self._handle, _int(vcpu, "vcpu", 0, 1 << 32),
                                          _int(gpa, "gpa"), _int(int(kind), "kind", 0, 1 << 32),
                                          bool(user_mode), r, sigbus)
        check(st, f"Linux touch of {gpa:#x}")
        return TouchResult(_instr(r), bool(sigbus[0]))

    def psc_msr(self, request: int, vcpu: int = 0) -> int:
        """GHCB MSR protocol: returns the response MSR value."""
        out = ffi.new("uint64_t *")
        check(lib.ua_snp_psc_msr(self._handle, _int(vcpu, "vcpu", 0, 1 << 32),
                                 _int(request, "request"), out), "psc_msr")
        return out[0]

    def psc_ghcb(self, buf: bytearray, vcpu: int = 0) -> GhcbResult:
        """One NAE Page State Change VMGEXIT on the scratch area `buf`
        (updated in place by the hypervisor)."""
        if not isinstance(buf, bytearray):
            raise InvalidArgument("the PSC scratch area must be a bytearray (it is written)")
        out = ffi.new("ua_snp_ghcb_result *")
        cbuf = ffi.from_buffer("uint8_t[]", buf, require_writable=True)
        check(lib.ua_snp_psc_ghcb(self._handle, _int(vcpu, "vcpu", 0, 1 << 32), cbuf, len(buf),
                                  out), "psc_ghcb")
        return GhcbResult(out.sw_exitinfo1, out.sw_exitinfo2, out.entries_done, out.pages_done)

    def accept_path(self, kind: str = "linux", *, psc_max_entries: int = 0,
                    ovmf_buffer_bytes: int = 0, hang_limit: int = 0) -> "SnpAcceptPath":
        return SnpAcceptPath(self, kind, psc_max_entries=psc_max_entries,
                             ovmf_buffer_bytes=ovmf_buffer_bytes, hang_limit=hang_limit)


class SnpAcceptPath:
    """A guest accept path as an accept primitive for Table (`_c_accept`),
    or called directly with accept(start, end, vcpu)."""

    def __init__(self, guest: SnpGuest, kind: str = "linux", *, psc_max_entries: int = 0,
                 ovmf_buffer_bytes: int = 0, hang_limit: int = 0):
        if kind not in _PATHS:
            raise InvalidArgument(f"unknown SNP accept path {kind!r}; known: {', '.join(_PATHS)}")
        o = ffi.new("ua_snp_path_options *")
        o.kind = _PATHS[kind]
        o.psc_max_entries = _int(psc_max_entries, "psc_max_entries", 0, 1 << 32)
        o.ovmf_buffer_bytes = _int(ovmf_buffer_bytes, "ovmf_buffer_bytes", 0, 1 << 32)
        o.hang_limit = _int(hang_limit, "hang_limit", 0, 1 << 32)
        out = ffi.new("ua_snp_path **")
        check(lib.ua_snp_path_create(guest._handle, o, out), f"accept_path({kind!r})")
        self._handle = ffi.gc(out[0], lib.ua_snp_path_destroy)
        self.guest = guest          # keeps the model alive as long as the path
        self.kind = kind
        self._fn = getattr(lib, _PATH_FNS[kind])
        self._unfn = getattr(lib, _UNACCEPT_FNS[kind])

    def __repr__(self):
        return f"SnpAcceptPath({self.guest!r}, {self.kind!r})"

    @property
    def _c_accept(self):
        return self._fn, ffi.cast("void *", self._handle)

    def accept(self, start: int, end: int, vcpu: int = 0) -> None:
        """Run the path on [start, end) directly (no table)."""
        status = self._fn(ffi.cast("void *", self._handle), _int(start, "start"), _int(end, "end"),
                          _int(vcpu, "vcpu", 0, 1 << 32))
        check(status, f"{self.kind} accept [{start:#x}, {end:#x})")

    def unaccept(self, start: int, end: int, vcpu: int = 0) -> None:
        """Make [start, end) shared again: PVALIDATE(0) first, then PSC(SHARED)."""
        status = self._unfn(ffi.cast("void *", self._handle), _int(start, "start"),
                            _int(end, "end"), _int(vcpu, "vcpu", 0, 1 << 32))
        check(status, f"{self.kind} unaccept [{start:#x}, {end:#x})")

    def stats(self) -> PathStats:
        st = ffi.new("ua_snp_path_stats *")
        check(lib.ua_snp_path_stats_get(self._handle, st))
        return PathStats(*(getattr(st, f.name) for f in fields(PathStats)))

    def reset_stats(self) -> None:
        lib.ua_snp_path_stats_reset(self._handle)


__all__ = [
    "Access", "Fault", "GhcbResult", "HostPolicy", "InstrResult", "MsrFault", "NpfBits",
    "PageSize", "PathStats", "Perm", "PscCheck", "PscEntry", "PscFault", "PscOp",
    "PvalidateCode", "RmpCode", "RmpEntry", "SnpAcceptPath", "SnpGuest", "SnpStats",
    "Termination", "msr_psc_request", "parse_psc_buffer", "psc_buffer", "psc_guest_check",
    "term_msr",
]
