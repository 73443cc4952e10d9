"""The guest firmware: OVMF for SEV-SNP, TDVF for TDX, and their variants.

Python decides, the C guest does: every page the firmware accepts goes
through the guest's OVMF accept path (`ua_guest_accept_path(UA_PATH_OVMF)`),
so it is charged by the cost model and checked by the vendor model.

What is modelled (docs/boot.md cites the EDK2 sources for each rule):
- the hand-over from the VMM: SNP launch pages, the TD HOB QEMU builds;
- SEC / PEI acceptance: SNP validates every resource below 4 GiB (PEI,
  AmdSevSnpInitialize), TDX accepts every UNACCEPTED HOB below 4 GiB in SEC
  on all vCPUs (TdxHelperProcessTdHob);
- the UEFI memory map (GCD synthesis of type 15, merging, attributes, the
  MapKey) and the boot services a loader uses (GetMemoryMap, AllocatePages,
  AllocatePool, FreePages, LocateProtocol, InstallConfigurationTable,
  ExitBootServices);
- SNP's EDKII_MEMORY_ACCEPT_PROTOCOL and OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL
  and the accept-all at the first ExitBootServices (AmdSevDxe);
- the variants ovmf, ovmf-noprotocol, ovmf-eager, ovmf-partial[:SIZE] and
  the old-build behaviours of FIRMWARE_DEBUG.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .errors import (AcceptFailed, CallbackError, GuestHung, GuestPanic, GuestTerminated,
                     Misaligned)
from .memmap import MemoryDescriptor, MemoryMap, MemoryType
from .platform import Platform
from .vm import FOUR_GIB, GiB, MiB

PAGE = 4096
DESCRIPTOR_SIZE = 48            # EDK2's DescriptorSize (MdeModulePkg/Core/Dxe/Mem/Page.c)

EFI_ERROR = 1 << 63
EFI_MAX_MEMORY_TYPE = 16                   # after EfiUnacceptedMemoryType (15)
MEMORY_TYPE_OEM_RESERVED_MIN = 0x70000000


class EfiStatus(enum.IntEnum):
    """EFI_STATUS values (UEFI 2.10 appendix D)."""

    SUCCESS = 0
    INVALID_PARAMETER = EFI_ERROR | 2
    UNSUPPORTED = EFI_ERROR | 3
    BUFFER_TOO_SMALL = EFI_ERROR | 5
    OUT_OF_RESOURCES = EFI_ERROR | 9
    NOT_FOUND = EFI_ERROR | 14


class AllocateType(enum.IntEnum):
    ANY_PAGES = 0
    MAX_ADDRESS = 1
    ADDRESS = 2


# GUIDs (MdePkg/MdePkg.dec, OvmfPkg/OvmfPkg.dec, include/linux/efi.h)
MEMORY_ACCEPT_PROTOCOL_GUID = "38c74800-5590-4db4-a0f3-675d9b8e8026"
SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID = "c5a010fe-38a7-4531-8a4a-0500d2fd1649"
BEFORE_EXIT_BOOT_SERVICES_GUID = "8be0e274-3970-4b44-80c5-1ab9502f3bfc"
UNACCEPTED_TABLE_GUID = "d5d1de3c-105c-44f9-9ea9-bcef98120031"

# EFI_MEMORY_* attribute bits (UEFI 2.10 7.2)
ATTR_UC, ATTR_WC, ATTR_WT, ATTR_WB = 0x1, 0x2, 0x4, 0x8
ATTR_CACHE = ATTR_UC | ATTR_WC | ATTR_WT | ATTR_WB
ATTR_RUNTIME = 1 << 63
ATTR_INTERNAL_MASK = 0x0700000000000000   # EFI_MEMORY_INTERNAL_MASK (PI)

# HOB resource types (MdePkg/Include/Pi/PiHob.h)
HOB_SYSTEM_MEMORY = 0
HOB_UNACCEPTED = 7
HOB_ATTRS = 0x7                            # PRESENT | INITIALIZED | TESTED
# The resource attributes ValidateHobList knows (SecTdxHelper.c): PRESENT ..
# READ_ONLY_PROTECTABLE, PERSISTENT, PERSISTABLE and MORE_RELIABLE, bits 0..25
# (not ENCRYPTED 0x04000000, SPECIAL_PURPOSE, HOT_PLUGGABLE)
HOB_KNOWN_ATTRS = 0x03FFFFFF

# TDX SEC (OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c)
TDX_AP_STACK_PER_VCPU = 16 * 1024
TDX_MP_CHUNK = 32 * MiB

# A representative OVMF q35 memory map: what the firmware keeps at the top
# of low RAM by the time a loader runs, top-down (sizes from an
# OvmfPkgX64 boot with efi=debug, rounded; docs/boot.md).  The MEMFD
# (0x800000..0x1780000, OvmfPkg/Include/Fdf/MemFd.fdf.inc) holds the SEC
# scratch pages (ACPI NVS once PEI reserves them) and the decompressed
# firmware volumes (boot-services data).
FIRMWARE_TOP = (
    (MemoryType.ACPI_NVS, 0x80000),
    (MemoryType.RUNTIME_SERVICES_DATA, 0x140000),
    (MemoryType.RUNTIME_SERVICES_CODE, 0x80000),
    (MemoryType.BOOT_SERVICES_DATA, 0x1800000),
    (MemoryType.BOOT_SERVICES_CODE, 0x600000),
    (MemoryType.ACPI_RECLAIM, 0x20000),
    (MemoryType.ACPI_NVS, 0x4000),
)
MEMFD_SCRATCH = (0x800000, 0x820000)
MEMFD_VOLUMES = (0x820000, 0x1780000)
LEGACY_HOLE = (0xA0000, 0x100000)          # VGA / option ROM / BIOS shadow: not in the map
# Non-RAM entries q35 OVMF reports: PCIe ECAM (reserved) and the flash (runtime MMIO)
Q35_MMIO = ((0xB0000000, 0xC0000000, MemoryType.RESERVED, 0),
            (0xFFC00000, 0x100000000, MemoryType.MMIO, ATTR_RUNTIME | ATTR_UC))
SNP_IDENTITY_MAP_LIMIT = 512 * GiB        # old builds: no PML4 entries past 512 GiB

Range = Tuple[int, int]                   # [start, end)


class FirmwareFailure(Exception):
    """The firmware stopped the guest: reason is a stable token."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def guest_failure(exc: Exception) -> Tuple[str, str]:
    """A vendor model's exception -> (reason token, one-line message)."""
    if isinstance(exc, GuestTerminated):
        return "terminated", str(exc)
    if isinstance(exc, GuestPanic):
        return "panic", str(exc)
    if isinstance(exc, GuestHung):
        return "hung", str(exc)
    return "accept_failed", str(exc)


def _attr_for(mtype: int) -> int:
    if mtype in (MemoryType.RUNTIME_SERVICES_CODE, MemoryType.RUNTIME_SERVICES_DATA):
        return ATTR_RUNTIME | ATTR_CACHE
    if mtype == MemoryType.RESERVED:
        return 0
    return ATTR_CACHE


@dataclass
class Region:
    start: int
    end: int
    type: int
    attribute: int


class MemoryMapState:
    """The firmware's memory map: sorted, disjoint regions and the MapKey,
    which moves on every change (CoreAddRange / CoreAddMemoryDescriptor
    bump mMemoryMapKey)."""

    def __init__(self) -> None:
        self.regions: List[Region] = []
        self.key = 1

    def set(self, start: int, end: int, mtype: int, attribute: int) -> None:
        out: List[Region] = []
        for r in self.regions:
            if r.end <= start or r.start >= end:
                out.append(r)
                continue
            if r.start < start:
                out.append(Region(r.start, start, r.type, r.attribute))
            if r.end > end:
                out.append(Region(end, r.end, r.type, r.attribute))
        out.append(Region(start, end, int(mtype), attribute))
        out.sort(key=lambda r: r.start)
        merged: List[Region] = []
        for r in out:   # MergeMemoryMap: neighbours with the same type and attributes
            if merged and merged[-1].end == r.start and merged[-1].type == r.type and \
                    merged[-1].attribute == r.attribute:
                merged[-1] = Region(merged[-1].start, r.end, r.type, r.attribute)
            else:
                merged.append(r)
        self.regions = merged
        self.key += 1

    def of_type(self, mtype: int) -> List[Region]:
        return [r for r in self.regions if r.type == mtype]

    def find(self, addr: int) -> Optional[Region]:
        for r in self.regions:
            if r.start <= addr < r.end:
                return r
        return None

    def to_memory_map(self) -> MemoryMap:
        return MemoryMap(MemoryDescriptor(r.type, r.start, (r.end - r.start) // PAGE, 0,
                                          r.attribute) for r in self.regions)


@dataclass
class TdHob:
    """One EFI_HOB_RESOURCE_DESCRIPTOR of the TD HOB (QEMU hw/i386/tdvf-hob.c)."""

    start: int
    end: int
    type: int
    attribute: int = HOB_ATTRS


def qemu_td_hob(ram_ranges: Iterable[Range], added: Iterable[Range]) -> List[TdHob]:
    """QEMU's TdxRamEntries as resource HOBs: every RAM range UNACCEPTED,
    the TD_HOB / TEMP_MEM sections carved out as SYSTEM_MEMORY (ADDED),
    sorted by address (target/i386/kvm/tdx.c, tdx_accept_ram_range)."""
    hobs: List[TdHob] = []
    for s, e in ram_ranges:
        pos = s
        for a, b in sorted(added):
            if s <= a and b <= e:
                if pos < a:
                    hobs.append(TdHob(pos, a, HOB_UNACCEPTED))
                hobs.append(TdHob(a, b, HOB_SYSTEM_MEMORY))
                pos = b
        if pos < e:
            hobs.append(TdHob(pos, e, HOB_UNACCEPTED))
    return hobs


def validate_td_hob(hobs: List[TdHob]) -> Optional[str]:
    """ValidateHobList's checks that a resource list can fail: None when
    valid, else what is wrong (the TD then hangs in CpuDeadLoop).  It checks
    the type and the attribute bits only: a zero-length resource is
    harmless, a misaligned one fails later when SEC accepts it
    (TdAcceptPages: INVALID_PARAMETER), which hangs the TD just the same."""
    for i, h in enumerate(hobs):
        if not 0 <= h.type <= HOB_UNACCEPTED:
            return f"resource HOB {i}: resource type {h.type} outside 0..7"
        if h.attribute & ~HOB_KNOWN_ATTRS:
            return f"resource HOB {i}: unknown attribute bits {h.attribute:#x}"
    return None


class SevMemoryAcceptanceProtocol:
    """OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL: AllowUnacceptedMemory() clears
    the accept-all flag; idempotent, irrevocable, no checks (AmdSevDxe.c)."""

    def __init__(self, firmware: "Firmware"):
        self._fw = firmware
        self.calls = 0

    def allow_unaccepted_memory(self) -> EfiStatus:
        self.calls += 1
        self._fw.accept_all_at_ebs = False
        return EfiStatus.SUCCESS


class MemoryAcceptProtocol:
    """EDKII_MEMORY_ACCEPT_PROTOCOL: accepts, never re-types the map."""

    def __init__(self, firmware: "Firmware"):
        self._fw = firmware

    def accept_memory(self, start: int, size: int) -> EfiStatus:
        self._fw._accept(start, start + size, 0)
        return EfiStatus.SUCCESS


class Firmware:
    """OVMF / TDVF with its boot services, after SEC, PEI and DXE ran."""

    def __init__(self, platform: Platform, *, kernel_bytes: int = 0):
        self.platform = platform
        cfg = platform.config
        self.vendor = platform.vendor
        self.variant = cfg.firmware_variant
        self.debug = set(cfg.firmware_debug)
        self.kernel_bytes = kernel_bytes     # ovmf-partial: kernel + initrd from fw_cfg
        self.map = MemoryMapState()
        self.protocols: Dict[str, object] = {}
        self.config_tables: Dict[str, object] = {}
        self.accept_all_at_ebs = False
        self.before_ebs_event_open = False
        self.ebs_calls = 0
        self.before_ebs_signals = 0
        self.ebs_failed_signals = 0
        self.timer_enabled = True
        self.boot_services = True
        self.psc_buffer: Optional[int] = None
        self.td_hob: List[TdHob] = []
        # before-EBS notify functions, in registration order
        self._before_ebs: List[Callable[[], None]] = []

    # ---- SEC / PEI / DXE ----------------------------------------------------------
    def start(self) -> None:
        """Run the firmware up to the boot manager: pre-accept, build the
        map, install the protocols.  Raises FirmwareFailure."""
        p = self.platform
        with p.layer("firmware"):
            unaccepted = self._pre_accept() if p.guest is not None else []
            self._build_map(unaccepted)
            if self.vendor == "snp":
                # AmdSevDxe: both protocols on SNP (the acceptance one not in
                # ovmf-noprotocol: the protocol retired, nothing accepted at EBS)
                self.protocols[MEMORY_ACCEPT_PROTOCOL_GUID] = MemoryAcceptProtocol(self)
                if self.variant != "ovmf-noprotocol":
                    self.protocols[SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID] = \
                        SevMemoryAcceptanceProtocol(self)
                    self.accept_all_at_ebs = True
                    self.before_ebs_event_open = True
                    self._before_ebs.append(self._resolve_unaccepted_memory)
            elif self.vendor == "tdx":
                self.protocols[MEMORY_ACCEPT_PROTOCOL_GUID] = MemoryAcceptProtocol(self)

    def _accept(self, start: int, end: int, vcpu: int, kind: str = "ovmf") -> None:
        if start >= end:
            return
        if "snp-512g-crash" in self.debug and self.vendor == "snp" and \
                end > SNP_IDENTITY_MAP_LIMIT:
            raise FirmwareFailure(
                "firmware_crash", "#GP: PVALIDATE of an address past 512 GiB without an "
                "identity mapping (OVMF before edk2 c1dd400a13, stable202308)")
        try:
            self.platform.path(kind)(start, end, vcpu)
        except (GuestTerminated, GuestPanic, GuestHung, AcceptFailed, CallbackError) as exc:
            raise FirmwareFailure(*guest_failure(exc)) from exc
        except Misaligned as exc:   # TdAcceptPages: INVALID_PARAMETER; SEC dead-loops
            raise FirmwareFailure("hung", f"accept of a misaligned range failed ({exc}): "
                                          "SEC CpuDeadLoop") from exc

    def _budget_ranges(self) -> List[Tuple[int, int]]:
        """RAM the firmware accepts before hand-over, by variant."""
        ranges = [(s, e) for s, e in self.platform.ram_ranges]
        if self.variant == "ovmf-eager":
            return ranges
        if self.variant == "ovmf-partial":
            # edk2-staging TdxStartup / the SNP twin: SIZE plus kernel, setup
            # and initrd, walking RAM in address order
            partial = self.platform.config.partial_bytes
            assert partial is not None      # ovmf-partial always has a size
            budget = partial + self.kernel_bytes
            out: List[Range] = []
            for s, e in ranges:
                take = min(e - s, budget)
                if take > 0:
                    out.append((s, s + take))
                budget -= take
            return out
        return [(s, min(e, FOUR_GIB)) for s, e in ranges if s < FOUR_GIB]

    def _pre_accept(self) -> List[Tuple[int, int]]:
        """SEC/PEI acceptance; returns the RAM ranges left unaccepted (type 15)."""
        p = self.platform
        accept = self._budget_ranges()
        if self.vendor == "snp":
            self._snp_pei(accept)
        else:
            self._tdx_sec(accept)
        return _subtract(p.ram_ranges, accept)

    def _snp_pei(self, accept: Sequence[Range]) -> None:
        # SEC validates its range and PEI every SYSTEM_MEMORY resource below
        # 4 GiB (PlatformPei AmdSevSnpInitialize), skipping what the VMM
        # launched; on the BSP
        for s, e in _subtract(accept, self.platform.launch):
            self._accept(s, e, 0)

    def _tdx_sec(self, accept: Sequence[Range]) -> None:
        p = self.platform
        self.td_hob = qemu_td_hob(p.ram_ranges, p.launch)
        bad = validate_td_hob(self.td_hob)
        if bad:
            raise FirmwareFailure("hung", f"TD HOB rejected ({bad}): SEC CpuDeadLoop")
        pending = _intersect([(h.start, h.end) for h in self.td_hob
                              if h.type == HOB_UNACCEPTED], accept)
        n = p.vcpus
        if n > 1:
            # AcceptMemoryForAPsStack: whole HOBs until one is large enough
            stack = -(-n * TDX_AP_STACK_PER_VCPU // (2 * MiB)) * (2 * MiB)
            done: List[Range] = []
            for s, e in pending:
                if e - s >= stack:
                    end = s + stack if e - s > TDX_MP_CHUNK else e
                    self._accept(s, end, 0)
                    done.append((s, end))
                    break
                self._accept(s, e, 0)
                done.append((s, e))
            pending = _subtract(pending, done)
        for s, e in pending:
            self._tdx_accept_range(s, e, n)

    def _tdx_accept_range(self, s: int, e: int, n: int) -> None:
        """BspAcceptMemoryResourceRange / MpAcceptMemoryResourceRange."""
        if n == 1:
            self._accept(s, e, 0)          # the path cuts head / 2M middle / tail
            return
        head_end = min(e, -(-s // (2 * MiB)) * (2 * MiB))
        self._accept(s, head_end, 0)
        s = head_end
        if e - s <= TDX_MP_CHUNK:
            self._accept(s, e, 0)
            return
        total = e - s
        aligned_end = s + total - total % (2 * MiB)
        # 32 MiB chunks striped over the vCPUs, 2 MiB pages
        chunk, i = s, 0
        while chunk < aligned_end:
            self._accept(chunk, min(chunk + TDX_MP_CHUNK, aligned_end), i % n, "ovmf-sec")
            chunk += TDX_MP_CHUNK
            i += 1
        # the sub-2 MiB remainder on vCPU 0 with 4 KiB pages (edk2 b15f98e68f)
        self._accept(aligned_end, e, 0)

    def _build_map(self, unaccepted: List[Tuple[int, int]]) -> None:
        p = self.platform
        m = self.map
        unacc_attr = ATTR_CACHE if self.vendor == "snp" else 0
        for s, e in p.ram_ranges:
            m.set(s, e, MemoryType.CONVENTIONAL, ATTR_CACHE)
        if self.vendor == "tdx" and self.td_hob:
            # TDX PEI (BuildResourceDescriptorHobForUnacceptedMemory): a HOB
            # straddling 4 GiB stays UNACCEPTED whole, its low part included
            for h in self.td_hob:
                if h.type == HOB_UNACCEPTED and h.start < FOUR_GIB < h.end and \
                        self.variant == "ovmf":
                    unaccepted = _union(unaccepted, [(h.start, h.end)])
        for s, e in unaccepted:
            m.set(s, e, MemoryType.UNACCEPTED, unacc_attr)
        for a, b in (LEGACY_HOLE,):
            if _inside(p.ram_ranges, a, b):
                m.regions = [r for r in _cut(m.regions, a, b)]
        if _inside(p.ram_ranges, *MEMFD_SCRATCH):
            m.set(*MEMFD_SCRATCH, MemoryType.ACPI_NVS, ATTR_CACHE)
        if _inside(p.ram_ranges, *MEMFD_VOLUMES):
            m.set(*MEMFD_VOLUMES, MemoryType.BOOT_SERVICES_DATA, ATTR_CACHE)
        # the firmware's own data at the top of the highest accepted RAM below 4 GiB
        need = sum(size for _, size in FIRMWARE_TOP)
        top = max((r.end for r in m.of_type(MemoryType.CONVENTIONAL)
                   if r.end <= FOUR_GIB and r.end - max(r.start, MEMFD_VOLUMES[1]) >= need),
                  default=0)
        if top - need < MEMFD_VOLUMES[1]:
            raise FirmwareFailure("out_of_resources",
                                  f"{top // MiB} MiB of accepted low RAM is too little for "
                                  "the firmware")
        for mtype, size in FIRMWARE_TOP:
            m.set(top - size, top, mtype, _attr_for(mtype))
            top -= size
        if p.ram_ranges[0][0] == 0:
            for a, b, mtype, attr in Q35_MMIO:
                if not any(s < b and a < e for s, e in p.ram_ranges):
                    m.set(a, b, mtype, attr)
        m.key = 1

    # ---- boot services --------------------------------------------------------------
    def _require_boot_services(self) -> None:
        if not self.boot_services:
            raise FirmwareFailure("panic", "a boot service was called after ExitBootServices")

    def get_memory_map(self, buffer_size: Optional[int] = None
                       ) -> Tuple[EfiStatus, Optional[MemoryMap], int, int]:
        """GetMemoryMap(): (status, map, map_key, size the caller needs).
        With the pre-stable202511 size bug the size leaves out the
        unaccepted entries."""
        self._require_boot_services()
        mm = self.map.to_memory_map()
        size = len(mm) * DESCRIPTOR_SIZE
        reported = size
        if "mmap-size-bug" in self.debug:
            reported -= len(mm.unaccepted) * DESCRIPTOR_SIZE
        if buffer_size is not None and buffer_size < size:
            if "mmap-size-bug" in self.debug and buffer_size >= reported:
                raise FirmwareFailure(
                    "mmap_overrun", f"GetMemoryMap wrote {size} bytes into a {buffer_size}-byte "
                    "buffer (edk2 before f80a406aa9 left unaccepted entries out of the size)")
            return EfiStatus.BUFFER_TOO_SMALL, None, self.map.key, reported
        return EfiStatus.SUCCESS, mm, self.map.key, reported

    def allocate_pages(self, alloc_type: AllocateType, mem_type: int, pages: int,
                       address: int = 0) -> Tuple[EfiStatus, int]:
        """AllocatePages(): (status, address).  Never from unaccepted memory
        (MdeModulePkg/Core/Dxe/Mem/Page.c)."""
        self._require_boot_services()
        # CoreInternalAllocatePages: these types are never allocated; a
        # negative count is this simulator's (UINTN cannot be negative)
        if mem_type in (MemoryType.CONVENTIONAL, MemoryType.PERSISTENT, MemoryType.UNACCEPTED) \
                or EFI_MAX_MEMORY_TYPE <= mem_type < MEMORY_TYPE_OEM_RESERVED_MIN or pages < 0:
            return EfiStatus.INVALID_PARAMETER, 0
        size = pages * PAGE
        if alloc_type == AllocateType.ADDRESS:
            # a misaligned address or no pages: EFI_NOT_FOUND
            if address % PAGE or pages == 0:
                return EfiStatus.NOT_FOUND, 0
            r = self.map.find(address)
            if r is None or r.type != MemoryType.CONVENTIONAL or address + size > r.end:
                return EfiStatus.NOT_FOUND, 0
            self.map.set(address, address + size, mem_type, _attr_for(mem_type))
            return EfiStatus.SUCCESS, address
        if pages == 0:          # FindFreePages finds nothing for 0 pages
            return EfiStatus.OUT_OF_RESOURCES, 0
        limit = address if alloc_type == AllocateType.MAX_ADDRESS else 1 << 64
        for r in sorted(self.map.of_type(MemoryType.CONVENTIONAL), key=lambda r: -r.end):
            end = min(r.end, (limit + 1) // PAGE * PAGE)
            if end - r.start >= size:
                self.map.set(end - size, end, mem_type, _attr_for(mem_type))
                return EfiStatus.SUCCESS, end - size
        return EfiStatus.OUT_OF_RESOURCES, 0

    def allocate_pool(self, mem_type: int, size: int) -> Tuple[EfiStatus, int]:
        """AllocatePool(): whole pages here (type 15 -> INVALID_PARAMETER,
        edk2 96192ba5bd)."""
        if mem_type == MemoryType.UNACCEPTED or size <= 0:
            return EfiStatus.INVALID_PARAMETER, 0
        return self.allocate_pages(AllocateType.ANY_PAGES, mem_type, -(-size // PAGE))

    def free_pages(self, address: int, pages: int) -> EfiStatus:
        """FreePages() (Page.c CoreInternalFreePages, CoreConvertPagesEx)."""
        self._require_boot_services()
        r = self.map.find(address)
        if r is None:
            return EfiStatus.NOT_FOUND
        if address % PAGE:
            return EfiStatus.INVALID_PARAMETER
        # freeing free memory ("the pages to free have been freed") or past
        # the allocation: EFI_NOT_FOUND
        if address + pages * PAGE > r.end or \
                r.type in (MemoryType.UNACCEPTED, MemoryType.CONVENTIONAL):
            return EfiStatus.NOT_FOUND
        self.map.set(address, address + pages * PAGE, MemoryType.CONVENTIONAL, ATTR_CACHE)
        return EfiStatus.SUCCESS

    def locate_protocol(self, guid: str) -> Tuple[EfiStatus, Optional[object]]:
        """LocateProtocol(): (status, the interface; its type depends on guid)."""
        self._require_boot_services()
        proto = self.protocols.get(guid)
        return (EfiStatus.SUCCESS, proto) if proto is not None else (EfiStatus.NOT_FOUND, None)

    def install_configuration_table(self, guid: str, table: object) -> EfiStatus:
        self._require_boot_services()
        self.config_tables[guid] = table
        return EfiStatus.SUCCESS

    def exit_boot_services(self, map_key: int) -> EfiStatus:
        """ExitBootServices() (DxeMain.c CoreExitBootServices): signal the
        before-EBS group (first call only since stable202502), stop the
        timer, check the key."""
        self._require_boot_services()
        self.ebs_calls += 1
        if self.ebs_calls == 1 or "ebs-signal-every-call" in self.debug:
            self.before_ebs_signals += 1
            with self.platform.layer("firmware"):
                for notify in list(self._before_ebs):
                    notify()
        self.timer_enabled = False
        if map_key != self.map.key:
            self.ebs_failed_signals += 1
            return EfiStatus.INVALID_PARAMETER
        self.boot_services = False
        return EfiStatus.SUCCESS

    def _resolve_unaccepted_memory(self) -> None:
        """AmdSevDxe ResolveUnacceptedMemory: accept-all unless the OS opted
        in, then close the event (it runs at most once)."""
        if self.accept_all_at_ebs:
            # the GetMemorySpaceMap() copy comes from pool pages already
            # there; what changes the map is the PSC buffer (first accept)
            # and each range re-added as conventional memory
            for r in self.map.of_type(MemoryType.UNACCEPTED):
                start, end, attr = r.start, r.end, r.attribute
                if self.psc_buffer is None:
                    _, self.psc_buffer = self.allocate_pages(
                        AllocateType.ANY_PAGES, MemoryType.RESERVED, 1)
                self._accept(start, end, 0)   # the first error stops the loop
                self.map.set(start, end, MemoryType.CONVENTIONAL,
                             attr & ~(ATTR_INTERNAL_MASK | ATTR_RUNTIME))
            # only after accepting does it close its own event; an OS that
            # opted in leaves it open (it returns at once when signalled)
            self.before_ebs_event_open = False
            self._before_ebs.remove(self._resolve_unaccepted_memory)


# ---- range arithmetic over sorted, disjoint (start, end) lists --------------------------
def _subtract(ranges: Iterable[Range], minus: Sequence[Range]) -> List[Range]:
    out: List[Range] = []
    for s, e in ranges:
        pieces = [(s, e)]
        for a, b in minus:
            nxt: List[Range] = []
            for x, y in pieces:
                if b <= x or a >= y:
                    nxt.append((x, y))
                    continue
                if x < a:
                    nxt.append((x, a))
                if b < y:
                    nxt.append((b, y))
            pieces = nxt
        out.extend(pieces)
    return out


def _intersect(ranges: Iterable[Range], with_: Sequence[Range]) -> List[Range]:
    out: List[Range] = []
    for s, e in ranges:
        for a, b in with_:
            x, y = max(s, a), min(e, b)
            if x < y:
                out.append((x, y))
    return sorted(out)


def _union(ranges: Iterable[Range], more: Iterable[Range]) -> List[Range]:
    out: List[Range] = []
    for s, e in sorted(list(ranges) + list(more)):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _inside(ranges: Iterable[Range], a: int, b: int) -> bool:
    return any(s <= a and b <= e for s, e in ranges)


def _cut(regions: Iterable[Region], a: int, b: int) -> List[Region]:
    out: List[Region] = []
    for r in regions:
        if r.end <= a or r.start >= b:
            out.append(r)
            continue
        if r.start < a:
            out.append(Region(r.start, a, r.type, r.attribute))
        if b < r.end:
            out.append(Region(b, r.end, r.type, r.attribute))
    return out


__all__ = ["AllocateType", "EfiStatus", "Firmware", "FirmwareFailure", "MemoryMapState",
           "SevMemoryAcceptanceProtocol", "TdHob", "qemu_td_hob", "validate_td_hob"]
