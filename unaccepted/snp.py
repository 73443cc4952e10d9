"""AMD SEV-SNP vendor model (csrc/snp_rmp.c, snp_cpu.c, snp_kvm.c, snp_guest.c).

    guest = SnpConfig(64 << 30, backing="4K", cost_profile="count").build()
    guest = SnpGuest(64 << 30, backing="4K", cost=Cost("count"))   # the same, shorter
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
from typing import TYPE_CHECKING, Any, Iterable, List, NoReturn, Optional, Tuple, Union, cast

from ._core import ffi, lib
from .errors import InvalidArgument, Misaligned, check
from .guest import GuestBase, GuestConfig, Vendor, make_config
from .validate import as_bool, as_int, as_u32, as_vcpu

if TYPE_CHECKING:
    from .cost import Cost
    from .host import HostAction

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


class PscCheck(enum.IntEnum):
    """Result of the Linux guest's check after a PSC VMGEXIT."""

    OK = 0
    ERROR = 1
    RESERVED = 2
    END_GREW = 3
    CUR_BACKWARDS = 4


# SW_EXITINFO2 codes of the NAE PSC and GHCB-level errors
PSC_ERROR_INVALID_HDR: int = lib.UA_SNP_PSC_ERROR_INVALID_HDR
PSC_ERROR_INVALID_ENTRY: int = lib.UA_SNP_PSC_ERROR_INVALID_ENTRY
PSC_ERROR_GENERIC: int = lib.UA_SNP_PSC_ERROR_GENERIC
GHCB_ERR_INVALID_SCRATCH_AREA: int = lib.UA_SNP_GHCB_ERR_INVALID_SCRATCH_AREA
PSC_MAX_ENTRIES: int = lib.UA_SNP_PSC_MAX_ENTRIES
LINUX_PSC_MAX_ENTRIES: int = lib.UA_SNP_LINUX_PSC_MAX_ENTRIES
MSR_PSC_REQ: int = lib.UA_SNP_GHCB_MSR_PSC_REQ
MSR_PSC_RESP: int = lib.UA_SNP_GHCB_MSR_PSC_RESP
MSR_PSC_RESP_ERROR: int = lib.UA_SNP_GHCB_MSR_PSC_RESP_ERROR
VC_PAGE_NOT_VALIDATED: int = lib.UA_SNP_VC_PAGE_NOT_VALIDATED
PFEC_RMP: int = lib.UA_SNP_PFEC_RMP
RMPADJUST_VMSA: int = lib.UA_SNP_RMPADJUST_VMSA

# Termination reasons (set, code)
TERM_GEN_REQ: Tuple[int, int] = (lib.UA_SNP_TERM_SET_GEN, lib.UA_SNP_TERM_GEN_REQ)
TERM_PSC: Tuple[int, int] = (lib.UA_SNP_TERM_SET_LINUX, lib.UA_SNP_TERM_PSC)
TERM_PVALIDATE: Tuple[int, int] = (lib.UA_SNP_TERM_SET_LINUX, lib.UA_SNP_TERM_PVALIDATE)
TERM_NOT_VMPL0: Tuple[int, int] = (lib.UA_SNP_TERM_SET_LINUX, lib.UA_SNP_TERM_NOT_VMPL0)


def term_msr(reason_set: int, code: int) -> int:
    """The GHCB MSR value of a termination request."""
    return cast(int, lib.UA_SNP_GHCB_MSR_TERM_REQ | (reason_set & 0xF) << 12 | (code & 0xFF) << 16)


def msr_psc_request(gfn: int, op: int) -> int:
    """GHCB MSR-protocol Page State Change request value."""
    return MSR_PSC_REQ | (gfn & ((1 << 40) - 1)) << 12 | (op & 0xF) << 52


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


def _instr(r: Any) -> InstrResult:
    """The InstrResult of a ua_snp_result * (cffi cdata)."""
    return InstrResult(r.eax, bool(r.cf), Fault(r.fault), r.error_code, r.exitinfo1, r.exitinfo2)


@dataclass(frozen=True)
class GhcbResult:
    sw_exitinfo1: int
    sw_exitinfo2: int
    entries_done: int
    pages_done: int


@dataclass(frozen=True)
class SnpStats:
    regions: int
    chunks_allocated: int
    split_regions: int
    bytes_allocated: int
    assigned_4k: int
    validated_4k: int


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


def psc_buffer(entries: Iterable[Union[PscEntry, int]], *, cur_entry: int = 0,
               end_entry: Optional[int] = None, reserved: int = 0,
               capacity: Optional[int] = None) -> bytearray:
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


def parse_psc_buffer(buf: Union[bytes, bytearray, memoryview]
                     ) -> Tuple[int, int, int, List[PscEntry]]:
    """(cur_entry, end_entry, reserved, entries) of a scratch area."""
    cur, end, rsvd = struct.unpack_from("<HHI", buf, 0)
    n = (len(buf) - 8) // 8
    return cur, end, rsvd, [PscEntry.decode(struct.unpack_from("<Q", buf, 8 + 8 * i)[0])
                            for i in range(n)]


def psc_guest_check(start_cur: int, start_end: int, buf: Union[bytes, bytearray, memoryview],
                    sw_exitinfo2: int = 0) -> PscCheck:
    """The Linux guest's check after a PSC VMGEXIT (vmgexit_psc)."""
    hdr = bytes(buf[:8])
    if len(hdr) < 8:
        raise InvalidArgument("a PSC header is 8 bytes")
    return PscCheck(lib.ua_snp_psc_guest_check(start_cur, start_end, hdr, sw_exitinfo2))


@dataclass(frozen=True)
class SnpConfig(GuestConfig):
    """An SEV-SNP guest: GuestConfig plus the ASID, the VMPL the kernel runs
    at, RMP-covered host memory above guest RAM (for remap attacks) and
    CPUID 8000_001F EBX[31] (COHERENCY_SFW_NO: no cache touch needed)."""

    asid: int = 1
    vmpl: int = 0
    spare_bytes: int = 0
    coherency_sfw_no: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.memory_bytes == 0 or self.memory_bytes % PAGE_2M:
            raise Misaligned(f"memory_bytes = {self.memory_bytes:#x} must be a non-zero "
                             "multiple of 2 MiB (the RMP's regions)")
        as_int(self.asid, "asid", 1, lib.UA_SNP_MAX_ASID + 1)
        as_int(self.vmpl, "vmpl", 0, lib.UA_SNP_MAX_VMPL + 1)
        if as_int(self.spare_bytes, "spare_bytes") % PAGE_2M:
            raise Misaligned(f"spare_bytes = {self.spare_bytes:#x} must be a multiple of 2 MiB")
        as_bool(self.coherency_sfw_no, "coherency_sfw_no")

    def build(self) -> "SnpGuest":
        return SnpGuest(config=self)


class SnpGuest(GuestBase):
    """An SEV-SNP guest: its RMP and NPT, the host serving it, the guest's
    instructions and accept paths.  Guest RAM is GPA [0, memory_bytes); the
    RMP also covers `spare_bytes` of host memory above it.

    SnpGuest(memory_bytes, **settings) takes SnpConfig's fields; `cost=` a
    Cost object to charge instead of counters of the guest's own."""

    vendor = Vendor.SNP

    def __init__(self, memory_bytes: Optional[int] = None, *, config: Optional[SnpConfig] = None,
                 cost: Optional[Cost] = None, **settings: Any) -> None:
        config = make_config(SnpConfig, memory_bytes, config, settings)
        cfg = ffi.new("ua_snp_config *")
        lib.ua_snp_config_default(cfg)
        cfg.spare_bytes = as_int(config.spare_bytes, "spare_bytes")
        cfg.asid = as_int(config.asid, "asid", 0, 1 << 32)
        cfg.vmpl = as_int(config.vmpl, "vmpl", 0, 1 << 32)
        cfg.coherency_sfw_no = bool(config.coherency_sfw_no)
        self._create(config, cfg, cost)
        self.spare_bytes = config.spare_bytes
        self.asid = config.asid
        self.vmpl = config.vmpl

    def __repr__(self) -> str:
        return (f"SnpGuest({self.memory_bytes:#x}, vcpus={self.vcpus}, backing={self.backing!r}, "
                f"asid={self.asid}, vmpl={self.vmpl}, host={self.host!r})")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a guest holds C state; pickle its config and build() it again")

    # ---- settings ----
    def set_coherency_sfw_no(self, on: bool) -> None:
        check(lib.ua_snp_set_coherency_sfw_no(self._handle, bool(on)))

    def stats(self) -> SnpStats:
        st = ffi.new("ua_snp_stats *")
        check(lib.ua_snp_stats_get(self._handle, st))
        return SnpStats(*(getattr(st, f.name) for f in fields(SnpStats)))

    def terminate(self, reason_set: int, code: int, vcpu: int = 0) -> int:
        """The guest writes a termination request; returns the MSR value."""
        return cast(int, lib.ua_snp_terminate(self._handle, vcpu, reason_set, code))

    # ---- host side ----
    def rmpupdate(self, spa: int, *, gpa: int = 0, asid: int = 0, assigned: bool = False,
                  page_size: int = PageSize.SIZE_4K, immutable: bool = False) -> RmpCode:
        st = ffi.new("ua_snp_rmp_state *")
        st.gpa = as_int(gpa, "gpa")
        st.asid = as_int(asid, "asid", 0, 1 << 32)
        st.assigned = bool(assigned)
        st.page_size = as_int(int(page_size), "page_size", 0, 256)
        st.immutable = bool(immutable)
        eax = ffi.new("uint32_t *")
        check(lib.ua_snp_rmpupdate(self._handle, as_int(spa, "spa"), st, eax), "rmpupdate")
        return RmpCode(eax[0])

    def make_private(self, spa: int, gpa: int, page_size: int = PageSize.SIZE_4K) -> RmpCode:
        """rmp_make_private(): assign to this guest (Validated = 0)."""
        return self.rmpupdate(spa, gpa=gpa, asid=self.asid, assigned=True, page_size=page_size)

    def make_shared(self, spa: int, page_size: int = PageSize.SIZE_4K) -> RmpCode:
        """rmp_make_shared(): back to the hypervisor."""
        return self.rmpupdate(spa, page_size=page_size)

    def psmash(self, spa: int) -> RmpCode:
        eax = ffi.new("uint32_t *")
        check(lib.ua_snp_psmash(self._handle, as_int(spa, "spa"), eax), "psmash")
        return RmpCode(eax[0])

    def set_in_use(self, spa: int, in_use: bool = True) -> None:
        check(lib.ua_snp_set_in_use(self._handle, as_int(spa, "spa"), bool(in_use)), "set_in_use")

    def launch_update(self, gpa: int, size: int) -> None:
        """SNP_LAUNCH_UPDATE: the pages start assigned and validated."""
        check(lib.ua_snp_launch_update(self._handle, as_int(gpa, "gpa"), as_int(size, "size")),
              f"launch_update({gpa:#x}, {size:#x})")

    def launch_finish(self) -> None:
        check(lib.ua_snp_launch_finish(self._handle))

    def set_memory_attributes(self, gpa: int, size: int, private: bool = True) -> None:
        """KVM_SET_MEMORY_ATTRIBUTES over [gpa, gpa+size): what QEMU does to
        all guest RAM at creation (private), so that a private access to a
        page nobody converted is faulted in from guest_memfd (assigned, not
        validated: #VC 0x404 on touch) rather than never resolved."""
        check(lib.ua_snp_set_memory_attributes(self._handle, as_int(gpa, "gpa"),
                                               as_int(size, "size"),
                                               as_bool(private, "private")),
              f"set_memory_attributes({gpa:#x}, {size:#x})")

    def npt_map(self, gpa: int, spa: int) -> None:
        """Point the nested page table's 4 KiB entry for gpa at spa."""
        check(lib.ua_snp_npt_map(self._handle, as_int(gpa, "gpa"), as_int(spa, "spa")), "npt_map")

    def npt_lookup(self, gpa: int) -> int:
        out = ffi.new("uint64_t *")
        check(lib.ua_snp_npt_lookup(self._handle, as_int(gpa, "gpa"), out), "npt_lookup")
        return cast(int, out[0])

    def host_write(self, spa: int) -> InstrResult:
        r = ffi.new("ua_snp_result *")
        check(lib.ua_snp_host_write(self._handle, as_int(spa, "spa"), r), "host_write")
        return _instr(r)

    def rmp(self, spa: int) -> RmpEntry:
        e = ffi.new("ua_snp_rmp_entry *")
        check(lib.ua_snp_rmp_read(self._handle, as_int(spa, "spa"), e), "rmp_read")
        return RmpEntry(e.entry_spa, e.gpa, e.asid, bool(e.assigned), PageSize(e.page_size),
                        bool(e.immutable), bool(e.validated), bool(e.vmsa), tuple(e.perm))

    def count(self, start: int = 0, end: Optional[int] = None) -> Tuple[int, int]:
        """(validated, assigned but not validated) 4 KiB pages of GPA [start, end)."""
        end = self.memory_bytes if end is None else end
        v, u = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        check(lib.ua_snp_count_gpa(self._handle, as_int(start, "start"), as_int(end, "end"), v, u),
              "count")
        return v[0], u[0]

    # ---- guest side ----
    def pvalidate(self, va: int, size: int = PageSize.SIZE_4K, validate: bool = True,
                  vcpu: int = 0) -> InstrResult:
        r = ffi.new("ua_snp_result *")
        check(lib.ua_snp_pvalidate(self._handle, as_vcpu(vcpu), as_int(va, "va"),
                                   as_u32(int(size), "size"), bool(validate), r),
              "pvalidate")
        return _instr(r)

    def rmpadjust(self, va: int, size: int = PageSize.SIZE_4K, *, target_vmpl: int = 1,
                  perms: int = 0, vmsa: bool = False, attrs: Optional[int] = None,
                  vcpu: int = 0) -> InstrResult:
        """RMPADJUST; `attrs` (raw RDX) overrides target_vmpl/perms/vmsa."""
        if attrs is None:
            attrs = (as_int(target_vmpl, "target_vmpl", 0, 256) |
                     as_int(int(perms), "perms", 0, 256) << 8 | (RMPADJUST_VMSA if vmsa else 0))
        r = ffi.new("ua_snp_result *")
        check(lib.ua_snp_rmpadjust(self._handle, as_vcpu(vcpu), as_int(va, "va"),
                                   as_u32(int(size), "size"), as_int(attrs, "attrs"), r),
              "rmpadjust")
        return _instr(r)

    def access(self, gpa: int, kind: Access = Access.READ, *, c_bit: bool = True,
               vcpu: int = 0) -> InstrResult:
        r = ffi.new("ua_snp_result *")
        check(lib.ua_snp_access(self._handle, as_vcpu(vcpu), as_int(gpa, "gpa"),
                                as_u32(int(kind), "kind"), bool(c_bit), r), "access")
        return _instr(r)

    def serve_npf(self, gpa: int, exitinfo1: int, *, vcpu: int = 0) -> HostAction:
        """Hand an NPF to the host as the CPU does; returns what it did."""
        from .host import HostAction
        action = ffi.new("uint32_t *")
        st = lib.ua_snp_serve_npf(self._handle, as_vcpu(vcpu), as_int(gpa, "gpa"),
                                  as_int(exitinfo1, "exitinfo1"), action)
        self._check(st, "NPF")
        return HostAction(action[0])

    def psc_msr(self, request: int, vcpu: int = 0) -> int:
        """GHCB MSR protocol: returns the response MSR value."""
        out = ffi.new("uint64_t *")
        self._check(lib.ua_snp_psc_msr(self._handle, as_vcpu(vcpu),
                                       as_int(request, "request"), out), "psc_msr")
        return cast(int, out[0])

    def psc_ghcb(self, buf: bytearray, vcpu: int = 0) -> GhcbResult:
        """One NAE Page State Change VMGEXIT on the scratch area `buf`
        (updated in place by the hypervisor)."""
        if not isinstance(buf, bytearray):
            raise InvalidArgument("the PSC scratch area must be a bytearray (it is written)")
        out = ffi.new("ua_snp_ghcb_result *")
        cbuf = ffi.from_buffer("uint8_t[]", buf, require_writable=True)
        self._check(lib.ua_snp_psc_ghcb(self._handle, as_vcpu(vcpu), cbuf,
                                        len(buf), out), "psc_ghcb")
        return GhcbResult(out.sw_exitinfo1, out.sw_exitinfo2, out.entries_done, out.pages_done)


__all__ = [
    "Access", "Fault", "GhcbResult", "InstrResult", "NpfBits", "PageSize", "Perm", "PscCheck",
    "PscEntry", "PscOp", "PvalidateCode", "RmpCode", "RmpEntry", "SnpConfig", "SnpGuest",
    "SnpStats", "msr_psc_request", "parse_psc_buffer", "psc_buffer", "psc_guest_check",
    "term_msr",
]
