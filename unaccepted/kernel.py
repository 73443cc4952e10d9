"""Linux: kernel generations, the x86 EFI stub, the decompressor and early
boot up to init.

Every accept goes through the guest (the stub and the decompressor use the
guest's `linux-early` path, the kernel its `linux` path) and the table's
state lives in the C core (`Table`).  Python walks ranges, never pages.
docs/boot.md gives the upstream file and function for each rule.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar, cast

from .errors import (AcceptFailed, CallbackError, GuestHung, GuestPanic, GuestTerminated)
from .firmware import (UNACCEPTED_TABLE_GUID, AllocateType, EfiStatus, Firmware, Range,
                       SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID, SevMemoryAcceptanceProtocol,
                       guest_failure, _subtract, _union)
from .guest import TouchOutcome
from .memmap import MemoryMap, MemoryType
from .platform import Platform
from .table import Table
from .vm import MiB

_R = TypeVar("_R")      # what a guest call returns

PAGE = 4096
UNIT = 2 * MiB
MAX_ORDER_BYTES = 4 * MiB          # MAX_PAGE_ORDER 10
EFI_MMAP_NR_SLACK_SLOTS = 8        # drivers/firmware/efi/libstub/efistub.h
EFI_MEMORY_SP = 1 << 18
STRUCT_PAGE_BYTES = 64             # sizeof(struct page) on x86-64: 1.5625 % of RAM
LOAD_PHYSICAL_ADDR = 16 * MiB      # CONFIG_PHYSICAL_START
PHYSICAL_ALIGN = 2 * MiB           # CONFIG_PHYSICAL_ALIGN
# A distribution kernel and initrd (sizes of a typical x86-64 build; the
# decompressor accepts ALIGN(max(output_len, kernel_total_size), 2 MiB)).
KERNEL_FILE_BYTES = 14 * MiB       # bzImage as loaded by the boot loader
KERNEL_TOTAL_BYTES = 64 * MiB      # kernel_total_size: image + bss + brk
INITRD_BYTES = 64 * MiB

# e820 types (arch/x86/include/asm/e820/types.h)
E820_RAM, E820_RESERVED, E820_ACPI, E820_NVS, E820_UNUSABLE, E820_PMEM = 1, 2, 3, 4, 5, 7
E820_SOFT_RESERVED = 0xEFFFFFFF
E820_NAMES = {E820_RAM: "usable", E820_RESERVED: "reserved", E820_ACPI: "ACPI data",
              E820_NVS: "ACPI NVS", E820_UNUSABLE: "unusable", E820_PMEM: "persistent",
              E820_SOFT_RESERVED: "soft reserved"}


@dataclass(frozen=True)
class KernelProfile:
    """What a kernel generation does at boot (shared with the running-kernel
    model).  Versions are those of docs/boot.md's chronology."""

    name: str
    cc_guest: bool                 # SEV-SNP and TDX guest support (5.19)
    unaccepted: bool               # CONFIG_UNACCEPTED_MEMORY support (6.5) and enabled
    table_type: int                # the table's EFI memory type
    kexec_accepts_segments: bool   # kexec_core accepts destinations (6.15)


def _profile(name: str, cc: bool, unacc: bool, table: int = MemoryType.ACPI_RECLAIM,
             kexec: bool = False) -> KernelProfile:
    return KernelProfile(name, cc, unacc, int(table), kexec)


PROFILES: Dict[str, KernelProfile] = {p.name: p for p in (
    _profile("5.15", False, False),
    _profile("5.19", True, False),
    # 6.5 allocated the table as EFI_LOADER_DATA; e7761d827e99 (6.6) moved
    # it to EFI_ACPI_RECLAIM_MEMORY so that kexec and kdump keep it
    _profile("6.5", True, True, MemoryType.LOADER_DATA),
    _profile("6.6", True, True),
    _profile("6.11", True, True),
    _profile("6.12", True, True),
    _profile("6.15", True, True, kexec=True),
    _profile("mainline", True, True, kexec=True),
    _profile("mainline-noconfig", True, False, kexec=True),
)}


class BootFailure(Exception):
    """The boot stopped: phase, stable reason token and one line."""

    def __init__(self, phase: str, reason: str, message: str):
        super().__init__(f"{phase}: {reason}: {message}")
        self.phase = phase
        self.reason = reason
        self.message = message


E820 = List[Tuple[int, int, int]]   # (start, end, e820 type), sorted


def e820_merge(entries: Iterable[Tuple[int, int, int]]) -> E820:
    out: E820 = []
    for s, e, t in sorted(entries):
        if out and out[-1][1] == s and out[-1][2] == t:
            out[-1] = (out[-1][0], e, t)
        else:
            out.append((s, e, t))
    return out


def e820_bytes(e820: E820, etype: int, ram_ranges: Sequence[Range]) -> int:
    total = 0
    for s, e, t in e820:
        if t != etype:
            continue
        for a, b in ram_ranges:
            x, y = max(s, a), min(e, b)
            if x < y:
                total += y - x
    return total


def efi_to_e820_type(mtype: int, attribute: int) -> Optional[int]:
    """setup_e820()'s translation (drivers/firmware/efi/libstub/x86-stub.c);
    None = not reported.  Type 15 is handled by the caller."""
    if mtype in (MemoryType.RESERVED, MemoryType.RUNTIME_SERVICES_CODE,
                 MemoryType.RUNTIME_SERVICES_DATA, MemoryType.MMIO, MemoryType.MMIO_PORT_SPACE,
                 MemoryType.PAL_CODE):
        return E820_RESERVED
    if mtype == MemoryType.UNUSABLE:
        return E820_UNUSABLE
    if mtype == MemoryType.ACPI_RECLAIM:
        return E820_ACPI
    if mtype in (MemoryType.LOADER_CODE, MemoryType.LOADER_DATA, MemoryType.BOOT_SERVICES_CODE,
                 MemoryType.BOOT_SERVICES_DATA, MemoryType.CONVENTIONAL):
        return E820_SOFT_RESERVED if attribute & EFI_MEMORY_SP else E820_RAM
    if mtype == MemoryType.ACPI_NVS:
        return E820_NVS
    if mtype == MemoryType.PERSISTENT:
        return E820_PMEM
    return None


class Boot:
    """The kernel side of one boot: the table, the e820 map and what the
    stub, the decompressor and early boot did."""

    def __init__(self, platform: Platform, kernel: KernelProfile, *, eager: bool = False):
        self.platform = platform
        self.kernel = kernel
        self.eager = eager
        self.table: Optional[Table] = None
        self.table_range: Optional[Tuple[int, int]] = None
        self.e820: Optional[E820] = None
        self.type15_seen: List[Tuple[int, int]] = []   # type-15 RAM any loader read
        self.image: Optional[Tuple[int, int]] = None   # the decompressed kernel
        self.reserved: List[Tuple[int, int]] = []     # memblock_reserve()d ranges

    # ---- helpers ------------------------------------------------------------------
    def _guest_call(self, phase: str, fn: Callable[..., _R], *args: Any) -> _R:
        try:
            return fn(*args)
        except (GuestTerminated, GuestPanic, GuestHung, AcceptFailed, CallbackError) as exc:
            raise BootFailure(phase, *guest_failure(exc)) from exc

    def saw_map(self, mm: MemoryMap) -> None:
        self.type15_seen = _union(self.type15_seen,
                                  [(d.start, d.end) for d in mm.unaccepted])

    # ---- the EFI stub -----------------------------------------------------------------
    def efi_stub(self, fw: Firmware) -> None:
        """efi_stub_entry() from setup_unaccepted_memory() to setup_e820()."""
        p, k = self.platform, self.kernel
        with p.layer("stub"):
            if k.unaccepted:
                # setup_unaccepted_memory(): a missing protocol is silent
                status, proto = fw.locate_protocol(SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID)
                # (the interface behind this GUID is the acceptance protocol)
                if status == EfiStatus.SUCCESS and \
                        cast(SevMemoryAcceptanceProtocol, proto).allow_unaccepted_memory() \
                        != EfiStatus.SUCCESS:
                    p.say("efi: Memory acceptance protocol failed")
            # allocate_e820(): the pre-EBS map, then the table
            pre, _, _ = self._get_map(fw)
            self.saw_map(pre)
            if k.unaccepted:
                self._allocate_unaccepted_bitmap(fw, pre)
            final = self._exit_boot_services(fw)
            self.e820 = self.setup_e820(final)

    def _get_map(self, fw: Firmware, buffer_size: Optional[int] = None
                 ) -> Tuple[MemoryMap, int, int]:
        """efi_get_memory_map(): ask the size, allocate it plus slack slots
        (a map change of its own), read the map."""
        if buffer_size is None:
            status, _, _, need = fw.get_memory_map(0)
            buffer_size = need + EFI_MMAP_NR_SLACK_SLOTS * 48
            status, _ = fw.allocate_pool(MemoryType.LOADER_DATA, buffer_size)
            if status != EfiStatus.SUCCESS:
                raise BootFailure("stub", "out_of_resources",
                                  "cannot allocate the memory map buffer")
        status, mm, key, _ = fw.get_memory_map(buffer_size)
        if status != EfiStatus.SUCCESS:
            raise BootFailure("stub", "mmap_failed", f"GetMemoryMap: {status.name}")
        assert mm is not None         # EFI_SUCCESS comes with the map
        return mm, key, buffer_size

    def _allocate_unaccepted_bitmap(self, fw: Firmware, pre: MemoryMap) -> None:
        existing = fw.config_tables.get(UNACCEPTED_TABLE_GUID)
        if existing is not None:
            if getattr(existing, "version", None) != 1:
                raise BootFailure("stub", "table_version",
                                  "efi: Unknown version of unaccepted memory table")
            self.table = cast(Table, existing)   # a version-1 table installed before
            return
        table = Table.from_memory_map(pre)
        if table is None:
            return     # no type 15: no table, everything counts as accepted
        status, addr = fw.allocate_pool(self.kernel.table_type, 24 + table.size)
        if status != EfiStatus.SUCCESS:
            raise BootFailure("stub", "out_of_resources", "cannot allocate the unaccepted table")
        fw.install_configuration_table(UNACCEPTED_TABLE_GUID, table)
        self.table = table
        self.table_range = (addr, addr + 24 + table.size)

    def _exit_boot_services(self, fw: Firmware) -> MemoryMap:
        """efi_exit_boot_services(): a fresh map (with slack slots) and EBS
        with its key; on INVALID_PARAMETER read the map into the same buffer
        and retry once."""
        mm, key, buf = self._get_map(fw)
        status = fw.exit_boot_services(key)
        if status == EfiStatus.INVALID_PARAMETER:
            mm, key, _ = self._get_map(fw, buf)
            status = fw.exit_boot_services(key)
        if status != EfiStatus.SUCCESS:
            raise BootFailure("stub", "ebs_failed", "efi: exit_boot() failed!")
        return mm

    def setup_e820(self, final: MemoryMap) -> E820:
        """setup_e820(): the final map as e820; type 15 becomes RAM and goes
        through process_unaccepted_memory() (or is skipped without support)."""
        out: E820 = []
        for d in final:
            if d.type == MemoryType.UNACCEPTED:
                if self.kernel.unaccepted:
                    out.append((d.start, d.end, E820_RAM))
                continue
            t = efi_to_e820_type(d.type, d.attribute)
            if t is not None:
                out.append((d.start, d.end, t))
        table = self.table
        if self.kernel.unaccepted and table is not None:
            early = self.platform.path("linux-early")
            self._guest_call("stub", lambda: table.process_memory_map(final, accept=early))
        return e820_merge(out)

    # ---- the decompressor -----------------------------------------------------------
    def decompress(self, seed: int, avoid: Iterable[Range] = ()) -> None:
        """extract_kernel(): choose the output (KASLR over RAM, type-15 RAM
        counting as free), then accept it through the stub's accept_memory()
        when the table is there (no guard unit, no lock)."""
        p = self.platform
        with p.layer("decompressor"):
            need = -(-max(KERNEL_TOTAL_BYTES, KERNEL_FILE_BYTES) // PHYSICAL_ALIGN) * \
                PHYSICAL_ALIGN
            self.image = self._kaslr(need, seed, avoid)
            self.reserved.append(self.image)
            if p.guest is None or not self.kernel.cc_guest:
                return
            if self.table is not None and self.kernel.unaccepted:
                self._stub_accept(*self.image)
            elif p.accepted_bytes(*self.image) < self.image[1] - self.image[0]:
                # no table known: the image is written where e820 says RAM
                self._touch("decompressor", self._highest_unaccepted_page(*self.image))

    def _kaslr(self, need: int, seed: int, avoid: Iterable[Range]) -> Range:
        free = [(s, e) for s, e, t in self.e820 or () if t == E820_RAM]
        free = _subtract(free, list(avoid) + ([self.table_range] if self.table_range else []))
        slots: List[Tuple[int, int]] = []      # (first start, how many starts)
        for s, e in free:
            a = max(LOAD_PHYSICAL_ADDR, -(-s // PHYSICAL_ALIGN) * PHYSICAL_ALIGN)
            if e - a >= need:
                slots.append((a, (e - need - a) // PHYSICAL_ALIGN + 1))
        total = sum(n for _, n in slots)
        if not total:
            raise BootFailure("decompressor", "out_of_memory",
                              "no room to decompress the kernel")
        pick = random.Random(seed).randrange(total)
        for a, n in slots:
            if pick < n:
                start = a + pick * PHYSICAL_ALIGN
                return start, start + need
            pick -= n
        raise AssertionError("unreachable")

    def _stub_accept(self, start: int, end: int) -> None:
        """libstub accept_memory(): every run of set bits in the range."""
        t = self.table
        assert t is not None          # called when the table is there
        early = self.platform.path("linux-early")
        for a, b in t.unaccepted_ranges():
            x, y = max(a, start // UNIT * UNIT), min(b, -(-end // UNIT) * UNIT)
            if x < y:
                self._guest_call("decompressor", early, x, y, 0)
                t.mark((x - t.phys_base) // UNIT, (y - t.phys_base) // UNIT, False)

    # ---- early kernel ---------------------------------------------------------------
    def start_kernel(self) -> None:
        """From the kernel's entry to init: the table reservation, memblock
        allocations (which accept what they take), freeing memory to the
        buddy allocator (lazy: 4 MiB blocks stay unaccepted; eager:
        everything accepted, on all vCPUs)."""
        p, k = self.platform, self.kernel
        with p.layer("kernel"):
            if p.guest is not None and not k.cc_guest:
                self._no_cc_support()
            table = self.table if k.unaccepted else None
            assert self.e820 is not None      # the loader handed the kernel an e820 map
            ram = [(s, e) for s, e, t in self.e820 if t == E820_RAM]
            if table is None and p.guest is not None:
                self._touch_unaccepted_ram(ram)
            if table is not None:
                table.set_accept(p.path("linux"))
                if self.table_range:   # reserve_unaccepted()
                    a, b = self.table_range
                    self.reserved.append((a // PAGE * PAGE, -(-b // PAGE) * PAGE))
            # memblock: struct pages for all RAM, top-down from the end of RAM
            memmap = -(-sum(e - s for s, e in ram) // PAGE * STRUCT_PAGE_BYTES // UNIT) * UNIT
            free = _subtract(ram, self.reserved)
            alloc = self._top_down(free, memmap)
            self.reserved.extend(alloc)
            if table is not None:
                for a, b in alloc:
                    self._guest_call("kernel", table.accept, a, b - a, 0)
                self._free_to_buddy(table, _subtract(ram, self.reserved))

    def _top_down(self, free: Sequence[Range], size: int) -> List[Range]:
        out: List[Range] = []
        for s, e in reversed(free):
            if size <= 0:
                break
            take = min(size, e - s)
            out.append((e - take, e))
            size -= take
        return sorted(out)

    def _free_to_buddy(self, table: Table, free: Iterable[Range]) -> None:
        """memblock_free_all() and deferred init: naturally aligned chunks;
        a chunk touching unaccepted memory (guard unit included) is accepted
        at once unless it is a whole 4 MiB block in lazy mode."""
        p = self.platform
        for s, e in free:
            head = min(e, -(-s // MAX_ORDER_BYTES) * MAX_ORDER_BYTES)
            tail = max(head, e // MAX_ORDER_BYTES * MAX_ORDER_BYTES)
            for a, b in ((s, head), (tail, e)):
                if a < b:
                    self._guest_call("kernel", table.accept, a, b - a, 0)
        if self.eager:
            # accept_memory=eager: every block accepted as it is freed, the
            # deferred-init threads sharing the work across the vCPUs
            runs = table.unaccepted_ranges()
            total = sum(b - a for a, b in runs)
            share = -(-total // p.vcpus // UNIT) * UNIT or UNIT
            v, left = 0, share
            for a, b in runs:
                while a < b:
                    take = min(b - a, left)
                    self._guest_call("kernel", table.accept, a, take, v)
                    a += take
                    left -= take
                    if left == 0:
                        v, left = min(v + 1, p.vcpus - 1), share

    def _touch_unaccepted_ram(self, ram: Sequence[Range]) -> None:
        """A kernel that ignores the table takes all e820 RAM as accepted;
        memblock's first top-down allocation touches the highest page."""
        p = self.platform
        for s, e in reversed(ram):
            if p.accepted_bytes(s, e) < e - s:
                gpa = self._highest_unaccepted_page(s, e)
                self._touch("kernel", gpa)
                return

    def _highest_unaccepted_page(self, s: int, e: int) -> int:
        p = self.platform
        lo, hi = s, e          # binary search on the accepted count: O(log n) C calls
        while hi - lo > PAGE:
            mid = (lo + hi) // 2 // PAGE * PAGE
            if p.accepted_bytes(mid, hi) < hi - mid:
                lo = mid
            else:
                hi = mid
        return lo

    def _touch(self, phase: str, gpa: int) -> None:
        guest = self.platform.guest
        assert guest is not None      # a touch needs a confidential guest
        r = guest.touch(gpa, write=True)
        if not r.outcome.fatal:
            return
        if self.platform.vendor == "snp" and r.vector == 29:
            raise BootFailure(phase, f"vc_{r.error_code:#x}",
                              f"Unsupported exit-code {r.error_code:#x} in #VC exception "
                              f"(touch of unvalidated page {gpa:#x}); the guest terminates")
        if self.platform.vendor == "tdx":
            raise BootFailure(phase, "pending_page_access",
                              f"access to pending page {gpa:#x}: "
                              f"{guest.fatal.message if guest.fatal else r.outcome.name}")
        raise BootFailure(phase, r.outcome.name.lower(), f"touch of {gpa:#x}: {r.outcome.name}")

    def _no_cc_support(self) -> None:
        """A kernel without SNP / TDX guest support (before 5.19)."""
        p = self.platform
        if p.vendor == "snp":
            # It runs as an SEV-ES guest: set_memory_decrypted()/encrypted()
            # only flip the C-bit, with no Page State Change or PVALIDATE.
            # The host converts the page at each implicit access; the page
            # used private again is assigned but not validated: #VC 0x404,
            # which the handler has no case for.
            from .snp import PscOp, SnpGuest, msr_psc_request
            g = p.guest
            assert isinstance(g, SnpGuest)
            gpa = self.image[0] if self.image else LOAD_PHYSICAL_ADDR
            for op in (PscOp.SHARED, PscOp.PRIVATE):   # the host's implicit conversions
                g.psc_msr(msr_psc_request(gpa >> 12, op))
            self._touch("kernel", gpa)
            raise BootFailure("kernel", "vc_unsupported", "SEV-SNP guest without SNP support")
        raise BootFailure("decompressor", "ve_unhandled",
                          "#VE with no handler: TDX guest support arrived in Linux 5.19")


__all__ = ["Boot", "BootFailure", "E820_NAMES", "KernelProfile", "PROFILES", "e820_bytes",
           "efi_to_e820_type"]
