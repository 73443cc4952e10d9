"""unaccepted.firmware: the OVMF / TDVF model, one test per item of the
firmware checklist (items 29-36, the boot loaders, are tested elsewhere).

Every expected value is worked out by hand from the rule the comment cites
(EDK2 paths are relative to tianocore/edk2, QEMU paths to qemu/qemu); none
is copied from the code under test.  Sizes are kept small (16 GiB or less)
except where the rule needs more (the 512 GiB items).
"""
import struct

import pytest

from unaccepted.boot import boot
from unaccepted.firmware import (DESCRIPTOR_SIZE, MEMORY_ACCEPT_PROTOCOL_GUID,
                                 SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID, AllocateType, EfiStatus,
                                 Firmware, FirmwareFailure, TdHob, qemu_td_hob, validate_td_hob)
from unaccepted.guest import FatalKind
from unaccepted.host import Host
from unaccepted.kernel import INITRD_BYTES, KERNEL_FILE_BYTES
from unaccepted.memmap import DESCRIPTOR_VERSION, MemoryMap, MemoryType
from unaccepted.platform import Platform
from unaccepted.snp import PSC_ERROR_GENERIC
from unaccepted.tdx import TdxGuest
from unaccepted.vm import BootConfig

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
PAGE = 4096
FOUR_GIB = 4 * GiB
UNACCEPTED = MemoryType.UNACCEPTED

# EFI_MEMORY_* attribute bits (UEFI 2.10 section 7.2, EFI_BOOT_SERVICES.GetMemoryMap())
EFI_MEMORY_UC, EFI_MEMORY_WC, EFI_MEMORY_WT, EFI_MEMORY_WB = 0x1, 0x2, 0x4, 0x8
EFI_MEMORY_RUNTIME = 1 << 63
# EFI_STATUS codes (UEFI 2.10 appendix D: high bit set plus the error number)
EFI_INVALID_PARAMETER = (1 << 63) | 2
EFI_BUFFER_TOO_SMALL = (1 << 63) | 5
EFI_OUT_OF_RESOURCES = (1 << 63) | 9
EFI_NOT_FOUND = (1 << 63) | 14
# PI spec vol. 3 / MdePkg/Include/Pi/PiHob.h
EFI_RESOURCE_SYSTEM_MEMORY = 0
EFI_RESOURCE_MEMORY_UNACCEPTED = 7
TDVF_HOB_ATTRS = 0x1 | 0x2 | 0x4        # PRESENT | INITIALIZED | TESTED (QEMU tdvf-hob.c)

# The VMM's launch pages: OVMF's MEMFD scratch area (SEC page tables, GHCB /
# TD HOB, work area, mailbox, temp RAM), OvmfPkg/Include/Fdf/OvmfPkgDefines.fdf.inc,
# which SNP_LAUNCH_UPDATE / TDH.MEM.PAGE.ADD put in before the guest runs.
LAUNCH = (0x800000, 0x820000)

# q35 with 16 GiB: 2 GiB low, 14 GiB from 4 GiB (QEMU hw/i386/pc_q35.c)
Q35_16G = dict(ram=16 * GiB)
# A small layout with RAM on both sides of 4 GiB, for per-page checks
SMALL = dict(ram=512 * MiB, ram_ranges=((0, 256 * MiB), (FOUR_GIB, FOUR_GIB + 256 * MiB)))


def start(vendor, kernel_bytes=0, **config):
    p = Platform(BootConfig(vendor=vendor, **config))
    fw = Firmware(p, kernel_bytes=kernel_bytes)
    fw.start()
    return p, fw


def current_map(fw):
    st, mm, key, _ = fw.get_memory_map(None)
    assert st == EfiStatus.SUCCESS
    return mm, key


def spans(mm, mtype):
    return [(d.start, d.end) for d in mm if d.type == mtype]


def pages(nbytes):
    return nbytes // PAGE


def accepted(p, start, end):
    """4 KiB pages of [start, end) the guest has accepted."""
    return p.guest.count_accepted(start, end)


def per_vcpu(p, label):
    return [{e.label: n for e, n in p.guest.cost.counts(v).items()}.get(label, 0)
            for v in range(p.vcpus)]


def memory_accept(fw):
    return fw.protocols[MEMORY_ACCEPT_PROTOCOL_GUID]


# ---- 1. type 15 in GetMemoryMap ------------------------------------------------------------
@pytest.mark.parametrize("vendor", ["snp", "tdx"])
def test_01_type15_descriptor_format(vendor):
    # UEFI 2.9 EFI_MEMORY_TYPE: EfiUnacceptedMemoryType = 15.  EDK2
    # MdeModulePkg/Core/Dxe/Mem/Page.c CoreGetMemoryMap: DescriptorSize =
    # sizeof (EFI_MEMORY_DESCRIPTOR) (40) rounded up past a multiple of 8 = 48,
    # DescriptorVersion = EFI_MEMORY_DESCRIPTOR_VERSION (1), VirtualStart 0,
    # NumberOfPages in EFI_PAGE_SIZE (4 KiB) units; a too-small buffer gives
    # EFI_BUFFER_TOO_SMALL and the size needed.
    assert UNACCEPTED == 15
    assert DESCRIPTOR_SIZE == 48 and DESCRIPTOR_VERSION == 1
    p, fw = start(vendor, **Q35_16G)
    st, none, _, need = fw.get_memory_map(0)
    assert st == EFI_BUFFER_TOO_SMALL and none is None
    st, mm, _, size = fw.get_memory_map(need)
    assert st == EfiStatus.SUCCESS and size == need == len(mm) * 48
    # q35 16 GiB: everything from 4 GiB (14 GiB) is unaccepted
    assert spans(mm, UNACCEPTED) == [(FOUR_GIB, FOUR_GIB + 14 * GiB)]
    assert all(d.virt_start == 0 for d in mm)
    raw = mm.to_bytes(48)
    assert len(raw) == size
    # EFI_MEMORY_DESCRIPTOR: UINT32 Type, pad, PhysicalStart, VirtualStart,
    # NumberOfPages, Attribute, at a stride of DescriptorSize
    i = [d.type for d in mm].index(UNACCEPTED)
    t, start_, virt, npages, _attr = struct.unpack_from("<I4xQQQQ", raw, i * 48)
    assert (t, start_, virt, npages) == (15, FOUR_GIB, 0, 14 * GiB // 4096)
    assert MemoryMap.from_bytes(raw, 48, 1) == mm


# ---- 2. allocations never come from (or accept) unaccepted memory ------------------------------
def test_02_allocate_pages_and_pool_never_touch_unaccepted():
    # MdeModulePkg/Core/Dxe/Mem/Page.c CoreInternalAllocatePages:
    # MemoryType == EfiUnacceptedMemoryType -> EFI_INVALID_PARAMETER; Pool.c
    # CoreAllocatePool likewise (edk2 96192ba5bd); FindFreePages searches free
    # (conventional) memory only, so AllocateAddress inside type 15 is
    # EFI_NOT_FOUND and a request larger than the free memory is
    # EFI_OUT_OF_RESOURCES; nothing in the allocator accepts memory.
    p, fw = start("snp", **Q35_16G)
    mm, key = current_map(fw)
    before = accepted(p, 0, p.memory_bytes)
    calls = p.guest.path_stats("ovmf").calls
    assert fw.allocate_pages(AllocateType.ANY_PAGES, UNACCEPTED, 1)[0] == EFI_INVALID_PARAMETER
    assert fw.allocate_pages(AllocateType.ADDRESS, UNACCEPTED, 1, FOUR_GIB)[0] == \
        EFI_INVALID_PARAMETER
    assert fw.allocate_pool(UNACCEPTED, 64)[0] == EFI_INVALID_PARAMETER
    for addr in (FOUR_GIB, FOUR_GIB + 5 * GiB):
        assert fw.allocate_pages(AllocateType.ADDRESS, MemoryType.LOADER_DATA, 16, addr)[0] == \
            EFI_NOT_FOUND
    # less than 2 GiB is free (conventional) memory; 14 GiB of type 15 do not count
    free = sum(e - s for s, e in spans(mm, MemoryType.CONVENTIONAL))
    assert free < 2 * GiB
    assert fw.allocate_pages(AllocateType.ANY_PAGES, MemoryType.LOADER_DATA,
                             pages(free) + 1)[0] == EFI_OUT_OF_RESOURCES
    assert fw.allocate_pool(MemoryType.LOADER_DATA, free + PAGE)[0] == EFI_OUT_OF_RESOURCES
    assert fw.get_memory_map(None)[2] == key          # failures change nothing
    # a large successful allocation still comes from conventional memory only
    st, addr = fw.allocate_pages(AllocateType.ANY_PAGES, MemoryType.LOADER_DATA, pages(GiB))
    assert st == EfiStatus.SUCCESS and addr + GiB <= 2 * GiB
    assert accepted(p, 0, p.memory_bytes) == before
    assert p.guest.path_stats("ovmf").calls == calls
    mm, _ = current_map(fw)
    assert spans(mm, UNACCEPTED) == [(FOUR_GIB, FOUR_GIB + 14 * GiB)]


# ---- 3. merging and attributes of type 15 -------------------------------------------------------
@pytest.mark.parametrize("vendor,attribute", [
    # SNP: OVMF's RAM resource HOBs carry UC|WC|WT|WB capabilities; the map
    # attribute is the capabilities minus RP/XP/RO (Page.c, OvmfPkg/PlatformPei)
    ("snp", EFI_MEMORY_UC | EFI_MEMORY_WC | EFI_MEMORY_WT | EFI_MEMORY_WB),
    # TDX: QEMU hw/i386/tdvf-hob.c gives the HOBs PRESENT|INITIALIZED|TESTED
    # (0x7) only: no cacheability capability, attribute 0
    ("tdx", 0),
])
def test_03_unaccepted_entries_merged_with_capability_attributes(vendor, attribute):
    # Page.c MergeMemoryMap (MergeMemoryMapDescriptor): adjacent descriptors
    # of the same type and attribute are one.  Two adjacent RAM ranges above
    # 4 GiB make one type-15 entry; a gap keeps the third one apart.
    ranges = ((0, 256 * MiB), (FOUR_GIB, 5 * GiB), (5 * GiB, 6 * GiB),
              (7 * GiB, 7 * GiB + 64 * MiB))
    p, fw = start(vendor, ram=256 * MiB + 2 * GiB + 64 * MiB, ram_ranges=ranges)
    mm, _ = current_map(fw)
    assert spans(mm, UNACCEPTED) == [(FOUR_GIB, 6 * GiB), (7 * GiB, 7 * GiB + 64 * MiB)]
    assert [d.attribute for d in mm.unaccepted] == [attribute, attribute]


# ---- 4. MapKey ----------------------------------------------------------------------------------
def test_04_map_key_moves_on_every_map_change_including_the_firmwares_own_at_ebs():
    # Page.c: every CoreAddRange/CoreConvertPages bumps mMemoryMapKey;
    # GetMemoryMap itself does not.  At the first ExitBootServices AmdSevDxe's
    # accept-all allocates the PSC buffer page (one change) and re-adds each
    # unaccepted range as system memory (one change per range), so the key
    # the caller holds goes stale (AmdSevDxe.c AcceptAllMemory).
    ranges = ((0, 256 * MiB), (FOUR_GIB, FOUR_GIB + 64 * MiB), (5 * GiB, 5 * GiB + 64 * MiB))
    p, fw = start("snp", ram=384 * MiB, ram_ranges=ranges)
    _, k0 = current_map(fw)
    assert current_map(fw)[1] == k0
    st, addr = fw.allocate_pages(AllocateType.ANY_PAGES, MemoryType.LOADER_DATA, 4)
    assert st == EfiStatus.SUCCESS
    _, k1 = current_map(fw)
    assert k1 > k0
    assert fw.free_pages(addr, 4) == EfiStatus.SUCCESS
    _, k2 = current_map(fw)
    assert k2 > k1
    assert fw.allocate_pool(MemoryType.BOOT_SERVICES_DATA, 100)[0] == EfiStatus.SUCCESS
    _, k3 = current_map(fw)
    assert k3 > k2
    assert fw.exit_boot_services(k3) == EFI_INVALID_PARAMETER
    _, k4 = current_map(fw)
    assert k4 >= k3 + 1 + 2          # the PSC buffer page + two re-typed ranges


# ---- 5. the GetMemoryMap size bug ---------------------------------------------------------------
@pytest.mark.parametrize("bug", [False, True])
def test_05_mmap_size_bug_under_reports_by_the_unaccepted_entries(bug):
    # MdeModulePkg/Core/Dxe/Mem/Page.c CoreGetMemoryMap before edk2 f80a406aa9
    # (stable202511, "CoreGetMemoryMap: Account for Unaccepted Entries"): the
    # entry count left out EfiGcdMemoryTypeUnaccepted entries, so the size it
    # reports is short by (#type-15 entries x 48) and a buffer of that size
    # passes its check and is overrun.
    ranges = ((0, 256 * MiB), (FOUR_GIB, FOUR_GIB + 64 * MiB), (5 * GiB, 5 * GiB + 64 * MiB))
    p, fw = start("snp", ram=384 * MiB, ram_ranges=ranges,
                  firmware_debug=("mmap-size-bug",) if bug else ())
    st, mm, _, _ = fw.get_memory_map(None)
    assert len(mm.unaccepted) == 2
    true_size = len(mm) * 48
    st, _, _, reported = fw.get_memory_map(0)
    assert st == EFI_BUFFER_TOO_SMALL
    assert reported == (true_size - 2 * 48 if bug else true_size)
    if bug:
        with pytest.raises(FirmwareFailure) as exc:
            fw.get_memory_map(reported)
        assert exc.value.reason == "mmap_overrun"
    else:
        assert fw.get_memory_map(reported)[0] == EfiStatus.SUCCESS


# ---- 6. ExitBootServices -----------------------------------------------------------------------
def test_06_before_ebs_group_signalled_on_the_first_call_only():
    # MdeModulePkg/Core/Dxe/DxeMain/DxeMain.c CoreExitBootServices (edk2
    # e8668d2dee, stable202502): the before-ExitBootServices group only on the
    # first call; the timer is disabled before the key check, so even a
    # failing call leaves it off; a stale key -> EFI_INVALID_PARAMETER and the
    # ExitBootServices-failed group is signalled.
    p, fw = start("tdx", **Q35_16G)                 # TDX: no accept-all, nothing moves the key
    _, key = current_map(fw)
    assert fw.timer_enabled
    assert fw.exit_boot_services(key + 1000) == EFI_INVALID_PARAMETER
    assert (fw.before_ebs_signals, fw.ebs_failed_signals, fw.timer_enabled) == (1, 1, False)
    assert fw.exit_boot_services(key + 1000) == EFI_INVALID_PARAMETER
    assert (fw.before_ebs_signals, fw.ebs_failed_signals) == (1, 2)
    assert fw.exit_boot_services(key) == EfiStatus.SUCCESS
    assert (fw.before_ebs_signals, fw.ebs_failed_signals) == (1, 2)


def test_06_legacy_ebs_signals_every_call():
    # Before e8668d2dee the before-EBS group was signalled on every call
    # (debug switch ebs-signal-every-call).
    p, fw = start("tdx", firmware_debug=("ebs-signal-every-call",), **Q35_16G)
    _, key = current_map(fw)
    for n in (1, 2):
        assert fw.exit_boot_services(key + 1000) == EFI_INVALID_PARAMETER
        assert fw.before_ebs_signals == n
    assert fw.exit_boot_services(key) == EfiStatus.SUCCESS
    assert fw.before_ebs_signals == 3


@pytest.mark.parametrize("service", [
    lambda fw: fw.get_memory_map(None),
    lambda fw: fw.allocate_pages(AllocateType.ANY_PAGES, MemoryType.LOADER_DATA, 1),
    lambda fw: fw.locate_protocol(MEMORY_ACCEPT_PROTOCOL_GUID),
    lambda fw: fw.exit_boot_services(0),
])
def test_06_boot_services_are_gone_after_a_successful_ebs(service):
    # DxeMain.c CoreExitBootServices: on success the boot services are torn
    # down (gBS entries zeroed); calling one afterwards is a crash.
    p, fw = start("tdx", **Q35_16G)
    _, key = current_map(fw)
    assert fw.exit_boot_services(key) == EfiStatus.SUCCESS
    assert not fw.boot_services
    with pytest.raises(FirmwareFailure):
        service(fw)


# ---- 7. SNP PEI --------------------------------------------------------------------------------
def test_07_snp_pei_validates_resources_below_4g_and_leaves_the_rest_unaccepted():
    # OvmfPkg/PlatformPei/AmdSev.c AmdSevSnpInitialize (edk2 0d129ef7c3): a RAM
    # resource starting at or above 4 GiB becomes EFI_RESOURCE_MEMORY_UNACCEPTED,
    # every other one is pre-validated -- except the pages the VMM launched
    # (validated by SNP_LAUNCH_UPDATE; validating them again would fail).
    ranges = ((0, 2 * GiB), (3 * GiB, 3 * GiB + 512 * MiB), (FOUR_GIB, 5 * GiB))
    p, fw = start("snp", ram=3 * GiB + 512 * MiB, ram_ranges=ranges)
    assert p.launch == (LAUNCH,)
    assert accepted(p, 0, 2 * GiB) == pages(2 * GiB)
    assert accepted(p, 3 * GiB, 3 * GiB + 512 * MiB) == pages(512 * MiB)
    assert accepted(p, FOUR_GIB, 5 * GiB) == 0
    # the firmware validated everything below 4 GiB but the launch pages
    assert p.guest.path_stats("ovmf").bytes == 2 * GiB + 512 * MiB - (LAUNCH[1] - LAUNCH[0])
    mm, _ = current_map(fw)
    assert spans(mm, UNACCEPTED) == [(FOUR_GIB, 5 * GiB)]


# ---- 8. small SNP guests ------------------------------------------------------------------------
def test_08_snp_guest_below_the_q35_split_has_no_unaccepted_memory():
    # QEMU hw/i386/pc_q35.c: with less than 0xB0000000 (2816 MiB) of RAM all of
    # it is below 4 GiB, so PEI validates it all: no type 15, and the
    # accept-all at ExitBootServices has nothing to do (no map change, the
    # first call with the current key succeeds).
    p, fw = start("snp", ram=2815 * MiB)
    assert accepted(p, 0, 2815 * MiB) == pages(2815 * MiB)
    mm, key = current_map(fw)
    assert mm.unaccepted == ()
    assert fw.exit_boot_services(key) == EfiStatus.SUCCESS
    assert fw.map.key == key
    # at 2816 MiB q35 keeps 2 GiB low and puts 768 MiB at 4 GiB: type 15 appears
    p, fw = start("snp", ram=2816 * MiB)
    assert spans(current_map(fw)[0], UNACCEPTED) == [(FOUR_GIB, FOUR_GIB + 768 * MiB)]


# ---- 9. protocols ------------------------------------------------------------------------------
def test_09_protocols_per_vendor():
    # OvmfPkg/AmdSevDxe/AmdSevDxe.c: on SNP, EDKII_MEMORY_ACCEPT_PROTOCOL and
    # OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL; OvmfPkg/TdxDxe/TdxDxe.c: on TDX only
    # the memory-accept protocol.
    _, snp = start("snp", **SMALL)
    assert snp.locate_protocol(MEMORY_ACCEPT_PROTOCOL_GUID)[0] == EfiStatus.SUCCESS
    assert snp.locate_protocol(SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID)[0] == EfiStatus.SUCCESS
    _, tdx = start("tdx", **SMALL)
    assert tdx.locate_protocol(MEMORY_ACCEPT_PROTOCOL_GUID)[0] == EfiStatus.SUCCESS
    assert tdx.locate_protocol(SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID) == (EFI_NOT_FOUND, None)


# ---- 10. AllowUnacceptedMemory ------------------------------------------------------------------
def test_10_allow_unaccepted_memory_is_idempotent_irrevocable_and_callable_until_ebs():
    # AmdSevDxe.c AllowUnacceptedMemory: mAcceptAllMemoryAtEBS = FALSE; return
    # EFI_SUCCESS -- no checks, nothing turns it back on.
    p, fw = start("snp", **Q35_16G)
    st, proto = fw.locate_protocol(SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID)
    assert proto.allow_unaccepted_memory() == EfiStatus.SUCCESS
    assert proto.allow_unaccepted_memory() == EfiStatus.SUCCESS
    # any time before ExitBootServices: after other boot-service calls too
    fw.allocate_pages(AllocateType.ANY_PAGES, MemoryType.LOADER_DATA, 8)
    assert proto.allow_unaccepted_memory() == EfiStatus.SUCCESS
    _, key = current_map(fw)
    # a failed EBS runs the before-EBS notify: it must not accept anything
    assert fw.exit_boot_services(key + 1000) == EFI_INVALID_PARAMETER
    assert accepted(p, FOUR_GIB, FOUR_GIB + 14 * GiB) == 0
    _, key = current_map(fw)
    assert fw.exit_boot_services(key) == EfiStatus.SUCCESS
    assert accepted(p, FOUR_GIB, FOUR_GIB + 14 * GiB) == 0
    assert spans(fw.map.to_memory_map(), UNACCEPTED) == [(FOUR_GIB, FOUR_GIB + 14 * GiB)]


# ---- 11. the accept-all -------------------------------------------------------------------------
def test_11_accept_all_at_first_ebs_validates_each_range_then_closes_its_event():
    # AmdSevDxe.c ResolveUnacceptedMemory / AcceptAllMemory: unless the OS
    # opted in, every EfiGcdMemoryTypeUnaccepted range is accepted
    # (MemEncryptSevSnpPreValidateSystemRam), removed and re-added as system
    # memory, then the event is closed (so it never runs again, even where
    # the group is signalled on every call).
    ranges = ((0, 256 * MiB), (FOUR_GIB, FOUR_GIB + 64 * MiB), (5 * GiB, 5 * GiB + 64 * MiB))
    p, fw = start("snp", ram=384 * MiB, ram_ranges=ranges,
                  firmware_debug=("ebs-signal-every-call",))
    _, key = current_map(fw)
    calls = p.guest.path_stats("ovmf").calls
    fw.exit_boot_services(key)
    assert p.guest.path_stats("ovmf").calls == calls + 2          # one accept per range
    for s, e in ranges[1:]:
        assert accepted(p, s, e) == pages(64 * MiB)
    mm, _ = current_map(fw)
    assert mm.unaccepted == ()
    for s, e in ranges[1:]:
        assert (s, e) in spans(mm, MemoryType.CONVENTIONAL)
    assert not fw.before_ebs_event_open
    fw.exit_boot_services(key + 1000)                              # signalled again: closed
    assert p.guest.path_stats("ovmf").calls == calls + 2


# ---- 12. the accept-all makes the first EBS fail ------------------------------------------------
def test_12_accept_all_fails_the_first_ebs_and_the_retry_has_no_type15():
    # AmdSevDxe.c: the accept-all changes the memory map inside
    # ExitBootServices, so CoreTerminateMemoryMap sees a stale key ->
    # EFI_INVALID_PARAMETER; the caller re-reads the map and calls again.
    p, fw = start("snp", **Q35_16G)
    _, key = current_map(fw)
    assert fw.exit_boot_services(key) == EFI_INVALID_PARAMETER
    mm, key2 = current_map(fw)
    assert key2 != key
    assert mm.unaccepted == ()
    assert (FOUR_GIB, FOUR_GIB + 14 * GiB) in spans(mm, MemoryType.CONVENTIONAL)
    assert fw.exit_boot_services(key2) == EfiStatus.SUCCESS
    assert accepted(p, FOUR_GIB, FOUR_GIB + 14 * GiB) == pages(14 * GiB)


# ---- 13. the accept-all stops at the first failure ----------------------------------------------
THREE_HIGH = ((0, 256 * MiB), (FOUR_GIB, FOUR_GIB + 64 * MiB), (5 * GiB, 5 * GiB + 64 * MiB),
              (6 * GiB, 6 * GiB + 64 * MiB))


class FailPscInRange(Host):
    """KVM, except that a Page State Change touching [lo, hi) answers
    PSC_ERROR_GENERIC in SW_EXITINFO2 after doing the work."""

    def __init__(self, lo, hi):
        super().__init__()
        self.lo, self.hi = lo, hi

    def snp_psc(self, exit):
        gpa = ((exit.entry(exit.cur_entry) >> 12) & ((1 << 40) - 1)) << 12
        exit.default()
        if self.lo <= gpa < self.hi:
            exit.answer(sw_exitinfo2=PSC_ERROR_GENERIC)


def _ebs_failure(p, fw):
    _, key = current_map(fw)
    with pytest.raises(FirmwareFailure) as exc:
        fw.exit_boot_services(key)
    return exc.value


def test_13_accept_all_stops_at_the_first_failing_range():
    # AmdSevDxe.c AcceptAllMemory: `if (EFI_ERROR (Status)) break;` after each
    # range's accept, before the re-typing; on SNP a failed Page State Change
    # ends in SnpPageStateFailureTerminate (GHCB MSR termination, reason set
    # GHCB_TERMINATE_GHCB 0, code GHCB_TERMINATE_GHCB_GENERAL 0;
    # OvmfPkg/Library/BaseMemEncryptSevLib/X64/SnpPageStateChangeInternal.c).
    p, fw = start("snp", ram=448 * MiB, ram_ranges=THREE_HIGH)
    first, second, third = THREE_HIGH[1:]
    p.guest.set_host(FailPscInRange(*second))
    failure = _ebs_failure(p, fw)
    assert failure.reason == "terminated"
    f = p.guest.fatal
    assert (f.kind, f.reason_set, f.reason_code) == (FatalKind.TERMINATED, 0, 0)
    assert accepted(p, *first) == pages(64 * MiB)
    assert accepted(p, *third) == 0                  # never attempted
    mm = fw.map.to_memory_map()
    assert first in spans(mm, MemoryType.CONVENTIONAL)
    assert spans(mm, UNACCEPTED) == [second, third]


def test_13_accept_all_with_a_host_failing_every_psc_leaves_every_range_type15():
    p, fw = start("snp", ram=448 * MiB, ram_ranges=THREE_HIGH)
    p.guest.set_host(Host("psc-error"))
    assert _ebs_failure(p, fw).reason == "terminated"
    for s, e in THREE_HIGH[1:]:
        assert accepted(p, s, e) == 0
    assert spans(fw.map.to_memory_map(), UNACCEPTED) == list(THREE_HIGH[1:])


# ---- 14. SNP Page State Change batching ---------------------------------------------------------
class RecordPsc(Host):
    """KVM, recording how many entries each Page State Change VMGEXIT carries."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.sizes = []

    def snp_psc(self, exit):
        self.sizes.append(exit.end_entry - exit.cur_entry + 1)
        exit.default()


def test_14_snp_psc_entries_batches_and_buffers():
    # SnpPageStateChangeInternal.c BuildPageStateBuffer: a 2 MiB entry where
    # the address is 2 MiB aligned and at least 2 MiB remain, else 4 KiB;
    # a 4 KiB buffer holds (4096 - 8) / 8 = 511 entries, rounded down to a
    # multiple of 253 = 506; PageStateChange sends at most 253 per VMGEXIT.
    p, fw = start("snp", ram=4 * GiB)                  # q35: 2 GiB at 4 GiB
    rec = RecordPsc()
    p.guest.set_host(rec)
    p.guest.reset_path_stats("ovmf")
    before = p.guest.cost.counts()
    start_, end = FOUR_GIB + 12 * KiB, FOUR_GIB + 1100 * MiB + 20 * KiB
    memory_accept(fw).accept_memory(start_, end - start_)
    # head [4G+12K, 4G+2M): 509 x 4K; middle [4G+2M, 4G+1100M): 549 x 2M;
    # tail 20 KiB: 5 x 4K -> 1063 entries = buffers of 506, 506, 51
    # = VMGEXITs of 253, 253 | 253, 253 | 51
    s = p.guest.path_stats("ovmf")
    assert (s.accept_2m, s.accept_4k) == (549, 509 + 5)
    assert s.psc_requests == 3
    assert s.psc_exits == 5
    assert rec.sizes == [253, 253, 253, 253, 51]
    assert s.bytes == end - start_
    after = p.guest.cost.counts()
    delta = {e.label: after.get(e, 0) - before.get(e, 0) for e in after}
    assert (delta["pvalidate_2m"], delta["pvalidate_4k"], delta["vmgexit_psc"]) == (549, 514, 5)
    assert accepted(p, start_, end) == pages(end - start_)


# ---- 15. partial and failed Page State Changes --------------------------------------------------
def test_15_guest_reissues_a_psc_the_hypervisor_completed_in_part():
    # GHCB spec rev. 2 section 4.1.6: the hypervisor may process part of the
    # entries and advance cur_entry; PageStateChange() re-issues the VMGEXIT
    # while CurrentEntry <= EndEntry (SnpPageStateChangeInternal.c).
    p, fw = start("snp", ram=4 * GiB)
    p.guest.set_host(Host("psc-partial", psc_max_entries=100))
    p.guest.reset_path_stats("ovmf")
    memory_accept(fw).accept_memory(FOUR_GIB, 1200 * MiB)
    # 600 x 2M entries: buffers 506 + 94 -> batches 253, 253, 94 -> with 100
    # entries per exit: 3 + 3 + 1 VMGEXITs
    s = p.guest.path_stats("ovmf")
    assert (s.psc_requests, s.psc_exits) == (2, 7)
    assert accepted(p, FOUR_GIB, FOUR_GIB + 1200 * MiB) == pages(1200 * MiB)


@pytest.mark.parametrize("host", [Host("psc-error"), Host("ghcb-error", ghcb_error=2)])
def test_15_any_psc_error_terminates(host):
    # SnpPageStateChangeInternal.c PageStateChange: a VMGEXIT status or a
    # non-zero SwExitInfo2 -> SnpPageStateFailureTerminate (set 0, code 0).
    p, fw = start("snp", **SMALL)
    p.guest.set_host(host)
    with pytest.raises(FirmwareFailure) as exc:
        memory_accept(fw).accept_memory(FOUR_GIB, 4 * MiB)
    assert exc.value.reason == "terminated"
    f = p.guest.fatal
    assert (f.kind, f.reason_set, f.reason_code) == (FatalKind.TERMINATED, 0, 0)


# ---- 16. PVALIDATE size mismatch ----------------------------------------------------------------
def test_16_pvalidate_2m_on_a_4k_rmp_falls_back_to_512_4k():
    # SnpPageStateChangeInternal.c PvalidateRange: PVALIDATE_RET_SIZE_MISMATCH
    # on a 2 MiB PVALIDATE (the RMP entry is 4 KiB) -> the same 2 MiB as
    # 512 x 4 KiB.  A 4 KiB-backed host keeps 4 KiB RMP entries.
    p, fw = start("snp", backing="4K", vcpus=1, **SMALL)
    p.guest.reset_path_stats("ovmf")
    memory_accept(fw).accept_memory(FOUR_GIB, 4 * MiB)
    s = p.guest.path_stats("ovmf")
    assert (s.accept_2m, s.fallbacks, s.accept_4k) == (2, 2, 2 * 512)
    assert accepted(p, FOUR_GIB, FOUR_GIB + 4 * MiB) == 1024


# ---- 17. double validation ----------------------------------------------------------------------
def test_17_validating_an_already_validated_page_terminates():
    # PVALIDATE of a validated page changes nothing: CF=1, which AsmPvalidate
    # reports as PVALIDATE_RET_NO_UPDATE (255); PvalidateRange treats any
    # result but success as fatal -> SnpPageStateFailureTerminate (set 0,
    # code 0).  The launch pages were validated by SNP_LAUNCH_UPDATE.
    p, fw = start("snp", **SMALL)
    with pytest.raises(FirmwareFailure) as exc:
        memory_accept(fw).accept_memory(LAUNCH[0], LAUNCH[1] - LAUNCH[0])
    assert exc.value.reason == "terminated"
    f = p.guest.fatal
    assert (f.kind, f.reason_set, f.reason_code, f.eax, f.gpa) == \
        (FatalKind.TERMINATED, 0, 0, 255, LAUNCH[0])


# ---- 18. old builds crash past 512 GiB ----------------------------------------------------------
def test_18_snp_512g_crash_switch():
    # Before edk2 c1dd400a13 (stable202308) accepting memory past 512 GiB
    # faulted (no identity mapping there).  A 5.19 kernel has no unaccepted
    # memory support, so the accept-all at ExitBootServices runs over all of
    # a 768 GiB guest's high memory (4 GiB .. 770 GiB).
    ok = boot(BootConfig(vendor="snp", ram=768 * GiB, kernel="5.19"))
    assert ok.booted, ok.failure
    bad = boot(BootConfig(vendor="snp", ram=768 * GiB, kernel="5.19",
                          firmware_debug=("snp-512g-crash",)))
    assert not bad.booted
    assert (bad.failure["phase"], bad.failure["reason"]) == ("firmware", "firmware_crash")
    # a guest whose RAM ends below 512 GiB (4 GiB + 506 GiB = 510 GiB) is safe
    low = boot(BootConfig(vendor="snp", ram=508 * GiB, kernel="5.19",
                          firmware_debug=("snp-512g-crash",)))
    assert low.booted, low.failure


# ---- 19. the TD HOB check -----------------------------------------------------------------------
GOOD_HOB = qemu_td_hob(((0, 2 * GiB), (FOUR_GIB, 6 * GiB)), (LAUNCH,))


def test_19_qemu_td_hob_passes_validation():
    assert validate_td_hob(GOOD_HOB) is None


@pytest.mark.parametrize("bad", [
    # ResourceType outside EFI_RESOURCE_TYPE_LIST (0..7)
    TdHob(FOUR_GIB, 6 * GiB, 8),
    # ResourceAttribute bits outside the list of known EFI_RESOURCE_ATTRIBUTE_*
    TdHob(FOUR_GIB, 6 * GiB, EFI_RESOURCE_MEMORY_UNACCEPTED, TDVF_HOB_ATTRS | 1 << 31),
    # ENCRYPTED (0x04000000) is not in upstream's list either
    TdHob(FOUR_GIB, 6 * GiB, EFI_RESOURCE_MEMORY_UNACCEPTED, TDVF_HOB_ATTRS | 0x04000000),
], ids=["type-8", "attribute-bit-31", "attribute-encrypted"])
def test_19_validate_hob_list_rejects(bad):
    # OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c ValidateHobList: a resource
    # HOB whose ResourceType is not in EFI_RESOURCE_TYPE_LIST, or whose
    # ResourceAttribute has a bit outside the listed attributes, fails.
    assert validate_td_hob(GOOD_HOB[:-1] + [bad]) is not None


@pytest.mark.parametrize("attribute", [0x00800000, 0x01000000, 0x02000000],
                         ids=["persistent", "persistable", "more-reliable"])
def test_19_validate_hob_list_accepts_every_listed_attribute(attribute):
    # ValidateHobList's list includes EFI_RESOURCE_ATTRIBUTE_PERSISTENT
    # (0x00800000), _PERSISTABLE (0x01000000) and _MORE_RELIABLE (0x02000000)
    # (values: MdePkg/Include/Pi/PiHob.h).
    hob = TdHob(FOUR_GIB, 6 * GiB, EFI_RESOURCE_MEMORY_UNACCEPTED, TDVF_HOB_ATTRS | attribute)
    assert validate_td_hob(GOOD_HOB[:-1] + [hob]) is None


@pytest.mark.parametrize("hob", [
    TdHob(FOUR_GIB, FOUR_GIB, EFI_RESOURCE_MEMORY_UNACCEPTED),
    TdHob(FOUR_GIB + 0x800, 6 * GiB, EFI_RESOURCE_MEMORY_UNACCEPTED),
], ids=["zero-length", "misaligned"])
def test_19_validate_hob_list_does_not_check_resource_length_or_alignment(hob):
    # ValidateHobList checks the HOB header (Reserved == 0, HobLength != 0 and
    # == sizeof (EFI_HOB_RESOURCE_DESCRIPTOR)), the type and the attribute
    # bits -- not ResourceLength or PhysicalStart.  A zero-length resource is
    # harmless (BspAcceptMemoryResourceRange returns EFI_SUCCESS for
    # TotalLength 0); a misaligned one is only caught later, when SEC accepts
    # it: MdePkg/Library/TdxLib/AcceptPages.c TdAcceptPages answers
    # EFI_INVALID_PARAMETER for address bits 11:0.
    assert validate_td_hob(GOOD_HOB[:-1] + [hob]) is None


def test_19_a_rejected_td_hob_hangs_sec_before_any_acceptance(monkeypatch):
    # TdxHelperProcessTdHob returns EFI_INVALID_PARAMETER when ValidateHobList
    # fails, before ProcessHobList accepts anything; SEC then CpuDeadLoop()s.
    import unaccepted.firmware as firmware
    real = firmware.qemu_td_hob
    monkeypatch.setattr(firmware, "qemu_td_hob",
                        lambda ram, added: real(ram, added) + [TdHob(8 * GiB, 9 * GiB, 8)])
    p = Platform(BootConfig(vendor="tdx", **SMALL))
    fw = Firmware(p)
    with pytest.raises(FirmwareFailure) as exc:
        fw.start()
    assert exc.value.reason == "hung"
    # nothing accepted but the pages QEMU added at launch
    assert accepted(p, 0, p.memory_bytes) == pages(LAUNCH[1] - LAUNCH[0])


# ---- 20. TDX SEC: below 4 GiB only --------------------------------------------------------------
@pytest.mark.parametrize("vcpus", [1, 4])
def test_20_tdx_sec_accepts_unaccepted_hobs_below_4g_clipped_at_4g(vcpus):
    # SecTdxHelper.c AcceptMemory: AcceptMemoryEndAddress = BASE_4GB; a HOB
    # starting at or above it ends the walk; PhysicalEnd is clipped to it.
    ranges = ((0, 2 * GiB), (3 * GiB, 6 * GiB))
    p, fw = start("tdx", vcpus=vcpus, ram=5 * GiB, ram_ranges=ranges)
    assert accepted(p, 0, 2 * GiB) == pages(2 * GiB)
    assert accepted(p, 3 * GiB, FOUR_GIB) == pages(GiB)
    assert accepted(p, FOUR_GIB, 6 * GiB) == 0


# ---- 21. TDX MP accept --------------------------------------------------------------------------
def test_21_tdx_mp_accept_on_q35():
    # SecTdxHelper.c ProcessHobList with N = 4 vCPUs:
    # AcceptMemoryForAPsStack: APS_STACK_SIZE = ALIGN_VALUE (4 x 16 KiB, 2 MiB)
    #   = 2 MiB; the first UNACCEPTED HOB [0, 8 MiB) is >= 2 MiB and <= 32 MiB,
    #   so the BSP accepts all of it: 4 x 2 MiB.
    # AcceptMemory from 8 MiB: HOB [8 MiB + 128 KiB, 2 GiB):
    #   MpAcceptMemoryResourceRange: the BSP takes the unaligned head
    #   [0x820000, 10 MiB) = 480 x 4 KiB; the 2038 MiB left are 63 chunks of
    #   32 MiB and one of 22 MiB, chunk k on vCPU k % 4 with 2 MiB pages:
    #   vCPU 0, 1, 2: 16 chunks x 16 = 256; vCPU 3: 15 x 16 + 11 = 251.
    # The HOB at 4 GiB is not accepted.  Each first accept of a 2 MiB / 4 KiB
    # page makes KVM TDH.MEM.PAGE.AUG it at that size (item 28).
    p, fw = start("tdx", vcpus=4, **Q35_16G)
    assert per_vcpu(p, "aug_2m") == [4 + 256, 256, 256, 251]
    assert per_vcpu(p, "aug_4k") == [480, 0, 0, 0]


def test_21_tdx_ap_stack_size_and_whole_hobs_first():
    # AcceptMemoryForAPsStack with N = 200: ALIGN_VALUE (200 x 16 KiB =
    # 3200 KiB, 2 MiB) = 4 MiB.  HOB [16 MiB, 17 MiB) is smaller: accepted whole
    # (256 x 4 KiB on the BSP); HOB [32 MiB, 1056 MiB) is large enough and over
    # 32 MiB: only [32 MiB, 36 MiB) (2 x 2 MiB, BSP).  AcceptMemory from 36 MiB:
    # 1020 MiB = 31 chunks of 32 MiB + 28 MiB, chunk k on vCPU k.
    ranges = ((16 * MiB, 17 * MiB), (32 * MiB, 32 * MiB + GiB))
    p, fw = start("tdx", vcpus=200, ram=GiB + MiB, ram_ranges=ranges)
    aug2m = per_vcpu(p, "aug_2m")
    assert aug2m[0] == 2 + 16
    assert aug2m[1:31] == [16] * 30
    assert aug2m[31] == 14
    assert aug2m[32:] == [0] * 168
    assert per_vcpu(p, "aug_4k") == [256] + [0] * 199


def test_21_tdx_mp_accept_last_chunk_of_exactly_2m_is_one_2m_page():
    # BspApAcceptMemoryResourceRange: every chunk, the last one included, is
    # TdAcceptPages (addr, MIN (32 MiB, end - addr) / 2 MiB, SIZE_2MB): a last
    # chunk of exactly 2 MiB is one 2 MiB accept (the 4 KiB split of
    # BspAcceptMemoryResourceRange applies to the BSP's own ranges only).
    # 173 MiB, 4 vCPUs: stack HOB [0, 8 MiB) 4 x 2M on vCPU 0; head 480 x 4K;
    # [10 MiB, 172 MiB) = chunks 0..4 of 32 MiB on vCPUs 0,1,2,3,0 and chunk 5
    # [170 MiB, 172 MiB) on vCPU 1; the 1 MiB tail 256 x 4K on the BSP.
    p, fw = start("tdx", vcpus=4, ram=173 * MiB)
    assert per_vcpu(p, "aug_2m") == [4 + 32, 16 + 1, 16, 16]
    assert per_vcpu(p, "aug_4k") == [480 + 256, 0, 0, 0]


# ---- 22. TDX single-vCPU accept -----------------------------------------------------------------
def test_22_tdx_single_vcpu_head_middle_tail():
    # SecTdxHelper.c BspAcceptMemoryResourceRange: part 1, the unaligned head,
    # in 4 KiB pages; part 2 in 2 MiB pages only `if (TotalLength > SIZE_2MB)`;
    # part 3, the rest, in 4 KiB pages.
    ranges = ((0, 128 * MiB),                      # [0,8M): 4x2M; [8M+128K,128M): 480x4K + 59x2M
              (256 * MiB + 12 * KiB, 260 * MiB),   # head 509x4K, then exactly 2 MiB: 512x4K
              (512 * MiB, 514 * MiB + 8 * KiB),    # 2 MiB + 8 KiB: 1x2M + 2x4K
              (768 * MiB, 769 * MiB + 4 * KiB),    # 1 MiB + 4 KiB: 257x4K
              (GiB, GiB + 64 * MiB))               # aligned 64 MiB: 32x2M
    p, fw = start("tdx", vcpus=1, ram=199 * MiB, ram_ranges=ranges)
    s = p.guest.path_stats("ovmf")
    assert s.accept_2m == 4 + 59 + 1 + 32
    assert s.accept_4k == 480 + 509 + 512 + 2 + 257
    assert s.fallbacks == 0


# ---- 23. TdAcceptPages --------------------------------------------------------------------------
def test_23_td_accept_pages_skips_already_accepted_pages():
    # MdePkg/Library/TdxLib/AcceptPages.c TdAcceptPages:
    # TDX_EXIT_REASON_PAGE_ALREADY_ACCEPTED -> counted, next page, success.
    p, fw = start("tdx", vcpus=1, **SMALL)
    proto = memory_accept(fw)
    assert proto.accept_memory(FOUR_GIB, 4 * MiB) == EfiStatus.SUCCESS
    p.guest.reset_path_stats("ovmf")
    assert proto.accept_memory(FOUR_GIB, 4 * MiB) == EfiStatus.SUCCESS           # 2 x 2M again
    assert proto.accept_memory(LAUNCH[0], LAUNCH[1] - LAUNCH[0]) == EfiStatus.SUCCESS  # ADDed
    s = p.guest.path_stats("ovmf")
    assert s.already_accepted == 2 + 32
    assert p.guest.fatal is None


def test_23_td_accept_pages_never_uses_1g_pages():
    # AcceptPages.c: mTdxAcceptPageLevelMap = {SIZE_4KB, SIZE_2MB}; any other
    # page size (1 GiB) is EFI_INVALID_PARAMETER, so OVMF never issues a
    # 1 GiB ACCEPT even where the TDX module would take one.
    g = TdxGuest(4 * GiB, accept_1g=True)
    g.accept_path("ovmf")(GiB, 3 * GiB)
    s = g.path_stats("ovmf")
    assert (s.accept_1g, s.accept_2m) == (0, 1024)


# ---- 24. TDX PEI --------------------------------------------------------------------------------
def test_24_tdx_pei_hob_types():
    # OvmfPkg/Library/PlatformInitLib/IntelTdx.c
    # BuildResourceDescriptorHobForUnacceptedMemory: a HOB ending at or below
    # 4 GiB becomes system memory; one starting at or above stays unaccepted;
    # one straddling 4 GiB matches neither branch and stays UNACCEPTED whole,
    # the part SEC accepted included.
    ranges = ((0, 2 * GiB), (3 * GiB, 6 * GiB), (7 * GiB, 8 * GiB))
    p, fw = start("tdx", ram=6 * GiB, ram_ranges=ranges)
    mm, _ = current_map(fw)
    assert spans(mm, UNACCEPTED) == [(3 * GiB, 6 * GiB), (7 * GiB, 8 * GiB)]
    assert accepted(p, 3 * GiB, FOUR_GIB) == pages(GiB)      # accepted, reported as type 15
    low = [d for d in mm if d.end <= 2 * GiB]
    assert low and all(d.type != UNACCEPTED for d in low)


# ---- 25. TDX: no accept-all ---------------------------------------------------------------------
def test_25_tdx_has_no_accept_all_and_type15_reaches_the_loader():
    # OvmfPkg/TdxDxe/TdxDxe.c installs no OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL
    # and registers no before-EBS accept-all: the first ExitBootServices with
    # the current key succeeds and type 15 is in the final map.
    p, fw = start("tdx", **Q35_16G)
    mm, key = current_map(fw)
    assert spans(mm, UNACCEPTED) == [(FOUR_GIB, FOUR_GIB + 14 * GiB)]
    assert fw.locate_protocol(SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID)[0] == EFI_NOT_FOUND
    assert fw.exit_boot_services(key) == EfiStatus.SUCCESS
    assert accepted(p, FOUR_GIB, FOUR_GIB + 14 * GiB) == 0
    assert spans(fw.map.to_memory_map(), UNACCEPTED) == [(FOUR_GIB, FOUR_GIB + 14 * GiB)]


# ---- 26. TDX re-accept --------------------------------------------------------------------------
def test_26_tdx_shared_then_private_memory_is_accepted_again_by_the_protocol():
    # A page converted to shared and back (MapGPA) is removed by KVM and
    # comes back PENDING-free: the memory-accept protocol (TdxDxe.c
    # TdxMemoryAccept -> TdAcceptPages) accepts it again, with a fresh
    # EPT violation + AUG per page, and never re-types the map.
    p, fw = start("tdx", vcpus=1, **SMALL)
    lo, hi = 64 * MiB, 68 * MiB                       # accepted by SEC
    assert accepted(p, lo, hi) == 1024
    _, key = current_map(fw)
    p.guest.unaccept(lo, hi)
    assert accepted(p, lo, hi) == 0
    p.guest.reset_path_stats("ovmf")
    assert memory_accept(fw).accept_memory(lo, hi - lo) == EfiStatus.SUCCESS
    assert accepted(p, lo, hi) == 1024
    s = p.guest.path_stats("ovmf")
    assert (s.exits, s.host_aug_2m) == (2, 2)
    assert current_map(fw)[1] == key


# ---- 27. QEMU's TD HOB --------------------------------------------------------------------------
def test_27_qemu_td_hob():
    # QEMU target/i386/kvm/tdx.c (tdx_init_ram_entries, tdx_accept_ram_range,
    # entries sorted) and hw/i386/tdvf-hob.c: RAM is UNACCEPTED (7), the
    # TD_HOB / TEMP_MEM sections QEMU added are SYSTEM_MEMORY (0), both with
    # attributes PRESENT|INITIALIZED|TESTED (0x7).
    hobs = qemu_td_hob(((0, 2 * GiB), (FOUR_GIB, 18 * GiB)), (LAUNCH,))
    assert hobs == [TdHob(0, LAUNCH[0], 7, 0x7),
                    TdHob(LAUNCH[0], LAUNCH[1], 0, 0x7),
                    TdHob(LAUNCH[1], 2 * GiB, 7, 0x7),
                    TdHob(FOUR_GIB, 18 * GiB, 7, 0x7)]
    # the ADDED ranges are the launch sections only
    p, fw = start("tdx", **Q35_16G)
    assert p.launch == (LAUNCH,)
    assert fw.td_hob == hobs
    added = [(h.start, h.end) for h in fw.td_hob if h.type == EFI_RESOURCE_SYSTEM_MEMORY]
    assert added == [LAUNCH]


# ---- 28. EPT violation and AUG on first accept --------------------------------------------------
def test_28_tdx_first_accept_exits_and_the_host_augs():
    # TDX module: TDG.MEM.PAGE.ACCEPT of a GPA with no SEPT leaf is an EPT
    # violation TD exit; KVM answers with TDH.MEM.PAGE.AUG at the accept's
    # size and the guest re-executes the ACCEPT.
    p, fw = start("tdx", vcpus=1, **SMALL)
    p.guest.reset_path_stats("ovmf")
    memory_accept(fw).accept_memory(FOUR_GIB, 4 * MiB)
    s = p.guest.path_stats("ovmf")
    assert (s.exits, s.host_aug_2m, s.executions, s.success_2m) == (2, 2, 4, 2)


def test_28_tdx_2m_accept_on_4k_backing_size_mismatches():
    # With 4 KiB backing KVM AUGs 4 KiB pages: the re-executed 2 MiB ACCEPT
    # gets TDX_PAGE_SIZE_MISMATCH and TdAcceptPages falls back to 512 x 4 KiB.
    p, fw = start("tdx", vcpus=1, backing="4K", **SMALL)
    p.guest.reset_path_stats("ovmf")
    memory_accept(fw).accept_memory(FOUR_GIB, 4 * MiB)
    s = p.guest.path_stats("ovmf")
    assert (s.size_mismatch, s.fallbacks, s.success_4k, s.host_aug_2m) == (2, 2, 1024, 0)
    assert s.host_aug_4k == 1024
    assert accepted(p, FOUR_GIB, FOUR_GIB + 4 * MiB) == 1024


# ---- 37. downstream firmware variants -----------------------------------------------------------
@pytest.mark.parametrize("vendor", ["snp", "tdx"])
def test_37_ovmf_eager_accepts_everything(vendor):
    # A pre-accepting firmware (Kirill Shutemov's proposal, LKML 2023-01-13):
    # SNP PEI validates all RAM, TDX SEC accepts all RAM; no type 15.
    p, fw = start(vendor, firmware="ovmf-eager", **SMALL)
    assert accepted(p, 0, p.memory_bytes) == pages(512 * MiB)
    assert current_map(fw)[0].unaccepted == ()


@pytest.mark.parametrize("vendor", ["snp", "tdx"])
def test_37_ovmf_partial_accepts_size_plus_kernel_and_initrd_from_0(vendor):
    # edk2-staging PcdTdxAcceptPartialMemorySize and its SNP twin: SIZE plus
    # the kernel and initrd (fw_cfg) accepted from address 0 upward.
    budget = 200 * MiB + KERNEL_FILE_BYTES + INITRD_BYTES
    assert 256 * MiB < budget < 512 * MiB
    high = budget - 256 * MiB                       # what spills past the low range
    p, fw = start(vendor, kernel_bytes=KERNEL_FILE_BYTES + INITRD_BYTES,
                  firmware="ovmf-partial:200M", **SMALL)
    assert accepted(p, 0, 256 * MiB) == pages(256 * MiB)
    assert accepted(p, FOUR_GIB, FOUR_GIB + high) == pages(high)
    assert accepted(p, FOUR_GIB + high, FOUR_GIB + 256 * MiB) == 0
    assert spans(current_map(fw)[0], UNACCEPTED) == [(FOUR_GIB + high, FOUR_GIB + 256 * MiB)]


# ---- the map is a realistic OVMF q35 map --------------------------------------------------------
@pytest.mark.parametrize("vendor", ["snp", "tdx"])
def test_memory_map_is_realistic(vendor):
    # OVMF on q35: the legacy VGA / option-ROM / BIOS hole 0xA0000-0x100000 is
    # not RAM in the map; PCIe ECAM (PcdPciExpressBaseAddress 0xB0000000,
    # 256 MiB) is reserved (OvmfPkg/PlatformPei/MemDetect.c); the flash
    # (0xFFC00000-4 GiB) is runtime MMIO; runtime code / data carry
    # EFI_MEMORY_RUNTIME (Page.c CoreGetMemoryMap); ACPI reclaim and NVS
    # memory is present.
    p, fw = start(vendor, **Q35_16G)
    mm, _ = current_map(fw)
    mm.validate()
    assert not any(d.start < 0x100000 and 0xA0000 < d.end for d in mm)
    assert (MemoryType.CONVENTIONAL, 0) in [(d.type, d.start) for d in mm]
    assert (0xB0000000, 0xC0000000) in spans(mm, MemoryType.RESERVED)
    flash = [d for d in mm if d.type == MemoryType.MMIO and (d.start, d.end) ==
             (0xFFC00000, FOUR_GIB)]
    assert flash and flash[0].attribute & EFI_MEMORY_RUNTIME
    runtime = [d for d in mm if d.type in (MemoryType.RUNTIME_SERVICES_CODE,
                                            MemoryType.RUNTIME_SERVICES_DATA)]
    assert runtime and all(d.attribute & EFI_MEMORY_RUNTIME for d in runtime)
    assert spans(mm, MemoryType.ACPI_RECLAIM) and spans(mm, MemoryType.ACPI_NVS)
    # ACPI memory never carries EFI_MEMORY_RUNTIME (CoreTerminateMemoryMap
    # fails ExitBootServices if it does)
    assert not any(d.attribute & EFI_MEMORY_RUNTIME for d in mm
                   if d.type in (MemoryType.ACPI_RECLAIM, MemoryType.ACPI_NVS))


# ---- bad boot-service arguments -----------------------------------------------------------------
@pytest.mark.parametrize("call,status", [
    # Page.c CoreInternalAllocatePages: EfiConventionalMemory,
    # EfiPersistentMemory and EfiMaxMemoryType..0x6FFFFFFF are
    # EFI_INVALID_PARAMETER (UEFI 2.10 section 7.2 AllocatePages)
    (lambda fw: fw.allocate_pages(AllocateType.ANY_PAGES, MemoryType.CONVENTIONAL, 1),
     EFI_INVALID_PARAMETER),
    (lambda fw: fw.allocate_pages(AllocateType.ANY_PAGES, MemoryType.PERSISTENT, 1),
     EFI_INVALID_PARAMETER),
    (lambda fw: fw.allocate_pages(AllocateType.ANY_PAGES, 16, 1), EFI_INVALID_PARAMETER),
    (lambda fw: fw.allocate_pages(AllocateType.ANY_PAGES, 0x6FFFFFFF, 1), EFI_INVALID_PARAMETER),
    # AllocateAddress with a misaligned address: `(*Memory & (Alignment - 1)) != 0`
    # -> EFI_NOT_FOUND
    (lambda fw: fw.allocate_pages(AllocateType.ADDRESS, MemoryType.LOADER_DATA, 1, 0x100800),
     EFI_NOT_FOUND),
    # AllocateAddress of 0 pages -> EFI_NOT_FOUND
    (lambda fw: fw.allocate_pages(AllocateType.ADDRESS, MemoryType.LOADER_DATA, 0, 0x100000),
     EFI_NOT_FOUND),
    # any / max-address of 0 pages: FindFreePages returns 0 -> EFI_OUT_OF_RESOURCES
    (lambda fw: fw.allocate_pages(AllocateType.ANY_PAGES, MemoryType.LOADER_DATA, 0),
     EFI_OUT_OF_RESOURCES),
    (lambda fw: fw.allocate_pages(AllocateType.MAX_ADDRESS, MemoryType.LOADER_DATA, 0, 2 * GiB),
     EFI_OUT_OF_RESOURCES),
    # CoreInternalFreePages: a misaligned address -> EFI_INVALID_PARAMETER;
    # CoreConvertPagesEx: freeing free memory -> EFI_NOT_FOUND ("the pages to
    # free have been freed"); no entry covers unaccepted memory as pool/pages
    (lambda fw: fw.free_pages(0x100800, 1), EFI_INVALID_PARAMETER),
    (lambda fw: fw.free_pages(0x100000, 1), EFI_NOT_FOUND),
    (lambda fw: fw.free_pages(FOUR_GIB, 1), EFI_NOT_FOUND),
], ids=["conventional", "persistent", "type-16", "type-0x6fffffff", "address-misaligned",
        "address-0-pages", "any-0-pages", "max-0-pages", "free-misaligned", "free-free",
        "free-unaccepted"])
def test_bad_boot_service_arguments(call, status):
    p, fw = start("snp", **Q35_16G)
    _, key = current_map(fw)
    result = call(fw)
    assert (result[0] if isinstance(result, tuple) else result) == status
    assert current_map(fw)[1] == key
