"""unaccepted.boot: the documented outcomes of booting a confidential VM and
the Linux / boot-loader checklist, one test each.

Every test names its PRIMARY source in a comment.  Expected values are
worked out by hand from the rule they test; the q35 layout rule used
throughout (QEMU hw/i386/pc_q35.c pc_q35_init): with RAM >= 0xB0000000
(2816 MiB) 2 GiB stay below 4 GiB and the rest is placed from 4 GiB, below
that all RAM is low.  So a 16 GiB guest is [0, 2G) + [4G, 18G): 14 GiB above
4 GiB, which OVMF / TDVF leave unaccepted (type 15).

Where a test needs the firmware, the table or the e820 map, it reproduces
the steps of unaccepted.boot.boot() (Platform, Boot, Firmware, LOADERS).
"""
import types

import pytest

from unaccepted.boot import _memory, boot, seed_of
from unaccepted.firmware import (SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID, UNACCEPTED_TABLE_GUID,
                                 Firmware, FirmwareFailure)
from unaccepted.kernel import (E820_ACPI, E820_RAM, INITRD_BYTES, KERNEL_FILE_BYTES,
                               KERNEL_TOTAL_BYTES, PROFILES, Boot, BootFailure)
from unaccepted import loaders
from unaccepted.loaders import LOADERS
from unaccepted.memmap import MemoryType
from unaccepted.platform import Platform
from unaccepted.table import Table
from unaccepted.vm import BootConfig

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
G4 = 4 * GiB
# The pages the VMM adds before the guest runs (SNP_LAUNCH_UPDATE /
# TDH.MEM.PAGE.ADD): OVMF's MEMFD scratch area 0x800000..0x820000
# (OvmfPkg/Include/Fdf/OvmfPkgDefines.fdf.inc) = 128 KiB.
LAUNCH = 0x820000 - 0x800000
assert LAUNCH == 128 * KiB
EFI_STUB_LOADERS = ("stub", "systemd-boot", "grub", "grub-linuxefi", "shim-grub")


# ---- helpers ---------------------------------------------------------------------
def steps(config, seed=None, *, before_loader=None):
    """boot()'s steps, keeping the objects: (platform, boot, firmware, failure)."""
    p = Platform(config)
    k = Boot(p, PROFILES[config.kernel], eager=config.accept_memory == "eager")
    fw = Firmware(p, kernel_bytes=KERNEL_FILE_BYTES + INITRD_BYTES)
    failure = None
    try:
        fw.start()
        if before_loader is not None:
            before_loader(fw)
        LOADERS[config.loader](p, fw, k, seed_of(config) if seed is None else seed)
    except (FirmwareFailure, BootFailure) as exc:
        failure = exc
    return p, k, fw, failure


def stub_only(config):
    """Firmware, the loader's image loads and the EFI stub, nothing after."""
    p = Platform(config)
    k = Boot(p, PROFILES[config.kernel], eager=config.accept_memory == "eager")
    fw = Firmware(p, kernel_bytes=KERNEL_FILE_BYTES + INITRD_BYTES)
    fw.start()
    with p.layer("loader"):
        loaders._load_images(fw)
    k.efi_stub(fw)
    return p, k, fw


def check_books(r):
    """What every outcome keeps: memory conserved, nothing accepted twice over."""
    m = r.memory
    assert m["usable"] + m["lost"] + m["firmware"] == m["ram"] == r.config.ram
    assert min(m["usable"], m["lost"], m["firmware"], m["unaccepted"]) >= 0
    assert sum(r.accepted.values()) <= r.config.ram
    obj = r.to_json_obj()
    assert set(obj) == {"config", "booted", "failure", "memory", "accepted", "time", "messages",
                        "counts"}
    assert set(obj["config"]) >= {"vendor", "ram", "vcpus", "backing", "firmware", "loader",
                                  "kernel", "accept_memory", "profile"}
    assert set(obj["memory"]) == {"ram", "usable", "lost", "firmware", "unaccepted"}
    assert set(obj["accepted"]) == {"firmware", "stub", "decompressor", "kernel"}
    assert set(obj["time"]) == {"firmware", "loader", "stub", "kernel", "total"}
    if r.booted:
        assert r.failure is None
    else:
        assert set(r.failure) == {"phase", "reason", "message"}
        assert r.failure["phase"] in ("firmware", "loader", "stub", "decompressor", "kernel")
        assert "\n" not in r.failure["message"]


def cfg(**kw):
    kw.setdefault("ram", 16 * GiB)
    return BootConfig(**kw)


# ---- documented outcomes -------------------------------------------------------------
@pytest.mark.parametrize("loader", ["stub", "grub"])
def test_old_snp_kernel_on_current_ovmf_boots_after_accept_all_and_ebs_retry(loader):
    # OvmfPkg/AmdSevDxe/AmdSevDxe.c ResolveUnacceptedMemory (edk2 26847fb6be):
    # without the OS's opt-in the first ExitBootServices accepts all memory,
    # which changes the map, so that call fails; Linux
    # drivers/firmware/efi/libstub/x86-stub.c exit_boot() /
    # efi_exit_boot_services() re-reads the map and retries once.
    c = cfg(vendor="snp", kernel="5.19", loader=loader)
    r = boot(c)
    check_books(r)
    assert r.booted
    # everything but the VMM's launch pages was accepted by the firmware
    assert r.accepted == {"firmware": 16 * GiB - LAUNCH, "stub": 0, "decompressor": 0,
                          "kernel": 0}
    assert r.memory["unaccepted"] == 0
    assert r.memory["lost"] == 0
    p, k, fw, failure = steps(c)
    assert failure is None
    assert fw.ebs_calls == 2
    assert fw.before_ebs_signals == 1
    assert not fw.map.of_type(MemoryType.UNACCEPTED)


@pytest.mark.parametrize("vendor", ["snp", "tdx"])
def test_grub_legacy_path_leaves_only_low_memory(vendor):
    # grub-core/mmap/efi/mmap.c grub_efi_mmap_iterate: an EFI type it does not
    # know is "Unknown memory type %d, considering reserved"; AMDESE/AMDSEV
    # issue #200 (https://github.com/AMDESE/AMDSEV/issues/200): the guest
    # "shrinks ... to about 2G".  16 GiB q35: 2 GiB low, 14 GiB above 4 GiB.
    r = boot(cfg(vendor=vendor, loader="grub-legacy"))
    check_books(r)
    assert r.booted
    assert "Unknown memory type 15, considering reserved" in r.messages
    assert r.memory["lost"] == 14 * GiB
    assert r.memory["usable"] < 2 * GiB
    assert r.memory["usable"] == 2 * GiB - r.memory["firmware"]
    assert r.memory["firmware"] < 4 * MiB          # the firmware's own ~3 MiB below 2 GiB
    if vendor == "tdx":
        # nothing accepts the high memory: it stays unaccepted, and unused
        assert r.memory["unaccepted"] == 14 * GiB
    else:
        # SNP: the legacy loader never opts in, so EBS accepted it all, in vain
        assert r.accepted["firmware"] == 16 * GiB - LAUNCH
        assert r.memory["unaccepted"] == 0


def test_tdx_kernel_without_unaccepted_support_loses_ram_above_4g():
    # Dionna Glaze, LKML 2023-01-17
    # <CAAH4kHbhSfeDeBCLCO4Bc2MK8Ds-kjXxCnrkMEP1j_GO5sh18w@mail.gmail.com>:
    # "goes from 785GiB free memory to 3GiB free memory".  768 GiB q35:
    # 2 GiB low, 766 GiB above 4 GiB, all of it type 15 that 5.19 drops.
    r = boot(cfg(vendor="tdx", ram=768 * GiB, kernel="5.19", loader="grub"))
    check_books(r)
    assert r.booted
    assert r.memory["usable"] < 4 * GiB
    assert r.memory["lost"] == 766 * GiB
    assert r.memory["unaccepted"] == 766 * GiB


def test_custom_loader_without_ebs_retry_fails_on_snp():
    # unikraft PR #1105 (https://github.com/unikraft/unikraft/pull/1105) and
    # AMD's kvm-unit-tests EFI retry patch (2024-03-25): a loader that calls
    # ExitBootServices once fails when the accept-all changed the map.
    r = boot(cfg(vendor="snp", loader="custom"))
    check_books(r)
    assert not r.booted
    assert (r.failure["phase"], r.failure["reason"]) == ("loader", "ebs_failed")


def test_custom_loader_boots_on_snp_without_the_acceptance_protocol():
    # AmdSevDxe.c (26847fb6be): ovmf-noprotocol has no accept-all at EBS, so
    # the map does not change under the loader; the loader's own e820 knows
    # nothing of type 15 and loses the 14 GiB above 4 GiB.
    r = boot(cfg(vendor="snp", loader="custom", firmware="ovmf-noprotocol"))
    check_books(r)
    assert r.booted
    assert r.memory["lost"] == 14 * GiB


@pytest.mark.parametrize("ram_mib, booted", [(2048, True), (2815, True), (2816, False)])
def test_custom_loader_on_snp_depends_on_memory_above_4g(ram_mib, booted):
    # q35 (pc_q35_init): below 2816 MiB all RAM is low, OVMF accepts it all in
    # PEI and there is no type 15, so the accept-all at EBS changes nothing;
    # at 2816 MiB 768 MiB land above 4 GiB and the single EBS fails.
    r = boot(cfg(vendor="snp", loader="custom", ram=ram_mib * MiB))
    check_books(r)
    assert r.booted is booted
    if not booted:
        assert r.failure["reason"] == "ebs_failed"


@pytest.mark.parametrize("kernel", ["5.19", "mainline-noconfig"])
@pytest.mark.parametrize("vendor, reason", [("snp", "vc_0x404"), ("tdx", "pending_page_access")])
def test_kexec_into_kernel_without_support_on_lazy_guest_breaks(kernel, vendor, reason):
    # AMD APM vol 2, #VC error code 0x404 = PAGE_NOT_VALIDATED; TDX: a private
    # page the guest never accepted (pending) cannot be accessed.  The first
    # kernel (mainline) left memory unaccepted; the second ignores the table.
    r = boot(cfg(vendor=vendor, loader="kexec", kernel=kernel))
    check_books(r)
    assert not r.booted
    assert r.failure["reason"] == reason
    assert "kexec_core: Starting new kernel" in r.messages


@pytest.mark.parametrize("kernel", ["5.19", "mainline-noconfig"])
@pytest.mark.parametrize("vendor", ["snp", "tdx"])
def test_kexec_into_kernel_without_support_boots_after_eager_accept(kernel, vendor):
    # Documentation/admin-guide/kernel-parameters.txt accept_memory=eager: the
    # first kernel accepts all memory, so nothing is left for the second.
    r = boot(cfg(vendor=vendor, loader="kexec", kernel=kernel, accept_memory="eager"))
    check_books(r)
    assert r.booted
    assert r.memory["unaccepted"] == 0


@pytest.mark.parametrize("vendor", ["snp", "tdx"])
def test_kexec_into_supporting_kernel_boots_and_inherits_the_table(vendor):
    # drivers/firmware/efi/unaccepted_memory.c and e7761d827e99 (the table in
    # EFI_ACPI_RECLAIM_MEMORY so kexec keeps it): the table survives kexec and
    # the second kernel keeps accepting lazily through it.
    c = cfg(vendor=vendor, loader="kexec", kernel="mainline")
    r = boot(c)
    check_books(r)
    assert r.booted
    assert r.memory["unaccepted"] > 0               # still lazy after kexec
    p, k, fw, failure = steps(c)
    assert failure is None
    assert k.table is not None
    assert k.table is fw.config_tables[UNACCEPTED_TABLE_GUID]


@pytest.mark.parametrize("vendor, booted", [("snp", False), ("tdx", False), ("none", True)])
def test_5_15_has_no_confidential_guest_support(vendor, booted):
    # SEV-SNP guest support (arch/x86/kernel/sev.c) and TDX guest support
    # (arch/x86/coco/tdx/tdx.c) were merged in Linux 5.19; 5.15 boots only as
    # a plain VM.
    r = boot(cfg(vendor=vendor, kernel="5.15"))
    check_books(r)
    assert r.booted is booted
    if vendor == "snp":
        assert r.failure["reason"].startswith("vc_")
    elif vendor == "tdx":
        assert r.failure["reason"] == "ve_unhandled"
    else:
        assert r.memory["lost"] == 0 and r.memory["unaccepted"] == 0


# ---- Linux EFI stub -----------------------------------------------------------------
@pytest.mark.parametrize("kernel, table_type, e820_type", [
    ("6.6", MemoryType.ACPI_RECLAIM, E820_ACPI),
    ("mainline", MemoryType.ACPI_RECLAIM, E820_ACPI),
    ("6.5", MemoryType.LOADER_DATA, E820_RAM)])
@pytest.mark.parametrize("vendor", ["snp", "tdx"])
def test_stub_with_support_opts_out_and_builds_the_table(vendor, kernel, table_type, e820_type):
    # drivers/firmware/efi/libstub/unaccepted_memory.c allocate_unaccepted_bitmap:
    # version 1, 2 MiB units, phys_base = round_down(lowest type-15 start, 2M),
    # size = DIV_ROUND_UP(span, 2M * 8) bytes, an EFI_ACPI_RECLAIM_MEMORY pool
    # (6.6, e7761d827e99) or EFI_LOADER_DATA (6.5); x86-stub.c
    # setup_unaccepted_memory calls OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL when
    # it exists.  16 GiB q35: type 15 = [4G, 18G), span 14 GiB -> 896 bytes.
    c = cfg(vendor=vendor, kernel=kernel, loader="stub")
    p, k, fw, failure = steps(c)
    assert failure is None
    if vendor == "snp":
        assert fw.protocols[SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID].calls == 1
        assert fw.accept_all_at_ebs is False
    else:
        assert SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID not in fw.protocols
    # the opt-out leaves the map alone: the first EBS succeeds
    assert fw.ebs_calls == 1
    t = k.table
    assert t is fw.config_tables[UNACCEPTED_TABLE_GUID]
    assert (t.version, t.unit_size, t.phys_base, t.size) == (1, 2 * MiB, G4, 896)
    a, b = k.table_range
    assert b - a == 24 + 896                         # header + bitmap
    assert fw.map.find(a).type == table_type
    # e820 comes from the final map: the table's pages keep their type
    (entry,) = [e for e in k.e820 if e[0] <= a < e[1]]
    assert entry[2] == e820_type
    # all type-15 RAM is e820 RAM
    assert any(s <= G4 and 18 * GiB <= e and t_ == E820_RAM for s, e, t_ in k.e820)


@pytest.mark.parametrize("vendor", ["snp", "tdx"])
def test_stub_accepts_short_pieces_and_unaligned_heads_and_tails(vendor):
    # drivers/firmware/efi/libstub/unaccepted_memory.c process_unaccepted_memory:
    # a range under 2 units (4 MiB) is accepted at once, so is an unaligned
    # head and tail.  Layout: [4G, 4G+3M) -> 3 MiB at once; [4G+17M, 4G+57M)
    # -> head [4G+17M, 4G+18M) and tail [4G+56M, 4G+57M), 1 MiB each;
    # 3 + 1 + 1 = 5 MiB; the bitmap keeps [4G+18M, 4G+56M) = 19 units.
    ranges = ((0, 2 * GiB), (G4, G4 + 3 * MiB), (G4 + 17 * MiB, G4 + 57 * MiB))
    c = cfg(vendor=vendor, ram=2 * GiB + 43 * MiB, ram_ranges=ranges, loader="stub")
    p, k, fw = stub_only(c)
    assert p.accepted["stub"] == 5 * MiB
    t = k.table
    # phys_base = 4G, span = 57 MiB -> ceil(57 / 16) = 4 bytes
    assert (t.phys_base, t.size) == (G4, 4)
    assert t.unaccepted_ranges() == [(G4 + 18 * MiB, G4 + 56 * MiB)]
    assert t.unaccepted_units == 19
    r = boot(c)
    check_books(r)
    assert r.booted
    assert r.accepted["stub"] == 5 * MiB


@pytest.mark.parametrize("loader", ["stub", "grub"])
def test_stub_without_support_on_snp_gets_everything_accepted(loader):
    # x86-stub.c: without CONFIG_UNACCEPTED_MEMORY no setup_unaccepted_memory
    # (no opt-out) and no table; AmdSevDxe accept-all at the first EBS; the
    # stub's retry reads the map where all RAM is conventional.
    c = cfg(vendor="snp", kernel="5.19", loader=loader)
    p, k, fw, failure = steps(c)
    assert failure is None
    assert fw.protocols[SEV_MEMORY_ACCEPTANCE_PROTOCOL_GUID].calls == 0
    assert k.table is None
    assert UNACCEPTED_TABLE_GUID not in fw.config_tables
    assert fw.ebs_calls == 2
    assert any(s <= G4 and 18 * GiB <= e and t == E820_RAM for s, e, t in k.e820)


def test_stub_without_support_on_tdx_drops_type_15():
    # x86-stub.c setup_e820: type 15 is only turned into RAM under
    # CONFIG_UNACCEPTED_MEMORY; otherwise it is not reported: RAM lost.
    c = cfg(vendor="tdx", kernel="5.19", loader="stub")
    p, k, fw, failure = steps(c)
    assert failure is None
    assert k.table is None
    assert fw.ebs_calls == 1
    assert not any(s < 18 * GiB and G4 < e for s, e, t in k.e820)
    r = boot(c)
    check_books(r)
    assert r.memory["lost"] == 14 * GiB


def test_stub_reuses_an_existing_version_1_table():
    # libstub/unaccepted_memory.c allocate_unaccepted_bitmap: "Check if the
    # table is already installed" -> version 1 is used as is.
    holder = {}

    def install(fw):
        holder["t"] = Table.from_memory_map(fw.map.to_memory_map())
        fw.install_configuration_table(UNACCEPTED_TABLE_GUID, holder["t"])

    c = cfg(vendor="tdx", loader="stub")
    p, k, fw, failure = steps(c, before_loader=install)
    assert failure is None
    assert k.table is holder["t"]
    assert k.table_range is None          # nothing allocated
    assert fw.config_tables[UNACCEPTED_TABLE_GUID] is holder["t"]


def test_stub_rejects_an_unknown_table_version():
    # libstub/unaccepted_memory.c allocate_unaccepted_bitmap:
    # efi_err("Unknown version of unaccepted memory table\n").  Table.parse
    # refuses other versions, so the installed table is a header stand-in.
    def install(fw):
        fw.install_configuration_table(UNACCEPTED_TABLE_GUID, types.SimpleNamespace(version=2))

    c = cfg(vendor="tdx", loader="stub")
    p, k, fw, failure = steps(c, before_loader=install)
    assert isinstance(failure, BootFailure)
    assert (failure.phase, failure.reason) == ("stub", "table_version")
    assert "Unknown version of unaccepted memory table" in failure.message


# ---- decompressor ---------------------------------------------------------------------
def _seeds_by_image_side(c, want_high, tries=64):
    for seed in range(tries):
        p, k, fw, failure = steps(c, seed)
        assert failure is None
        if (k.image[0] >= G4) == want_high:
            return p, k, fw
    pytest.fail("no KASLR seed put the image on the wanted side of 4 GiB")


@pytest.mark.parametrize("vendor", ["snp", "tdx"])
@pytest.mark.parametrize("high", [True, False])
def test_decompressor_accepts_its_output_through_the_stub_accept(vendor, high):
    # arch/x86/boot/compressed/misc.c extract_kernel: accept_memory(output,
    # ALIGN(max(output_len, kernel_total_size), 2M)) through the stub's
    # accept_memory (libstub), which has no guard unit.  64 MiB total size
    # (kernel.KERNEL_TOTAL_BYTES) > 14 MiB image: 64 MiB accepted when KASLR
    # put it above 4 GiB (type 15), nothing when below (accepted by firmware).
    c = cfg(vendor=vendor, loader="stub")
    p, k, fw = _seeds_by_image_side(c, high)
    a, b = k.image
    assert b - a == KERNEL_TOTAL_BYTES == 64 * MiB
    assert a % (2 * MiB) == 0
    assert p.accepted["decompressor"] == (64 * MiB if high else 0)
    assert p.accepted_bytes(a, b) == b - a
    assert not k.table.contains(a, b - a)


def test_decompressor_accepts_no_guard_unit():
    # libstub accept_memory (drivers/firmware/efi/libstub/unaccepted_memory.c)
    # accepts exactly the 2 MiB units of the range; mm/unaccepted.c's extra
    # guard unit (load_unaligned_zeropad) is the running kernel's, not the
    # decompressor's.  Check right after extract_kernel.
    c = cfg(vendor="tdx", loader="stub")
    for seed in range(64):
        p, k, fw = stub_only(c)
        k.decompress(seed)
        a, b = k.image
        if a >= G4 + 2 * MiB and b + 2 * MiB <= 18 * GiB:
            break
    else:
        pytest.fail("no seed put the image inside the type-15 range")
    assert p.accepted["decompressor"] == 64 * MiB
    assert p.accepted_bytes(b, b + 2 * MiB) == 0
    assert p.accepted_bytes(a - 2 * MiB, a) == 0
    assert k.table.contains(b, 2 * MiB) and k.table.contains(a - 2 * MiB, 2 * MiB)


@pytest.mark.parametrize("vendor", ["snp", "tdx"])
def test_grub_legacy_decompressor_accepts_nothing(vendor):
    # extract_kernel accepts only through the table; grub-legacy boots hand
    # over no table (the stub never ran) and e820 RAM is all accepted.
    r = boot(cfg(vendor=vendor, loader="grub-legacy"))
    assert r.booted
    assert r.accepted["decompressor"] == 0
    assert r.accepted["stub"] == 0


# ---- early kernel ---------------------------------------------------------------------
@pytest.mark.parametrize("vendor", ["snp", "tdx"])
@pytest.mark.parametrize("ram_gib", [16, 64])
def test_memblock_accepts_the_struct_page_array(vendor, ram_gib):
    # mm/memblock.c memblock_alloc_range_nid -> accept_memory(): the memmap
    # (64-byte struct page per 4 KiB page = 1.5625 % of RAM) is allocated
    # top-down from the end of RAM (type 15) and accepted.  16 GiB -> 256 MiB,
    # 64 GiB -> 1 GiB (e820 RAM is a few MiB under RAM; rounded up to 2 MiB
    # it is the same).  Up to two 2 MiB pieces more: free chunks that are not
    # 4 MiB aligned next to the kernel image are accepted when freed.
    memmap = ram_gib * GiB // 64
    c = cfg(vendor=vendor, ram=ram_gib * GiB, loader="grub")
    r = boot(c)
    check_books(r)
    assert r.booted
    assert memmap <= r.accepted["kernel"] <= memmap + 4 * MiB
    p, k, fw, failure = steps(c)
    top = (ram_gib - 2) * GiB + G4
    assert p.accepted_bytes(top - memmap, top) == memmap


@pytest.mark.parametrize("vendor", ["snp", "tdx"])
def test_accept_memory_eager_accepts_everything_on_all_vcpus(vendor):
    # mm/page_alloc.c accept_memory_parse (accept_memory=eager,
    # Documentation/admin-guide/kernel-parameters.txt): every block is
    # accepted as it is freed, the deferred struct-page init threads sharing
    # the work; nothing is left unaccepted at init.
    lazy = cfg(vendor=vendor, vcpus=4, loader="grub")
    eager = lazy.replace(accept_memory="eager")
    r = boot(eager)
    check_books(r)
    assert r.booted
    assert r.memory["unaccepted"] == 0
    # RAM = launch pages + what every layer accepted
    assert sum(r.accepted.values()) == 16 * GiB - LAUNCH
    pl, *_ = steps(lazy)
    pe, *_ = steps(eager)
    lazy_counts = [sum(pl.guest.cost.counts(v).values()) for v in range(4)]
    eager_counts = [sum(pe.guest.cost.counts(v).values()) for v in range(4)]
    assert all(n > 0 for n in eager_counts)
    # every vCPU did more than in the lazy boot (same firmware work)
    assert all(e > l for e, l in zip(eager_counts, lazy_counts))
    if vendor == "snp":
        # SNP firmware accepts on the BSP only: lazy boots leave the APs idle
        assert lazy_counts[1:] == [0, 0, 0]


# ---- boot loaders ----------------------------------------------------------------------
@pytest.mark.parametrize("vendor", ["snp", "tdx"])
@pytest.mark.parametrize("kernel", ["mainline", "5.19"])
def test_efi_stub_loaders_give_the_same_outcome(vendor, kernel):
    # GRUB >= 2.12 generic EFI loader (grub-core/loader/efi/linux.c), systemd-boot
    # (LoadImage/StartImage), grub-linuxefi (EFI handover protocol) and shim
    # in front of GRUB all leave ExitBootServices and the opt-out to the
    # kernel's stub.  Same KASLR seed -> same memory and accept books.
    outcomes = {}
    for loader in EFI_STUB_LOADERS:
        c = cfg(vendor=vendor, kernel=kernel, loader=loader)
        p, k, fw, failure = steps(c, seed=1234)
        assert failure is None
        outcomes[loader] = (_memory(p, k, fw), dict(p.accepted), k.e820, k.image,
                            k.table.bitmap if k.table else None, p.messages)
    first = outcomes["stub"]
    for loader, o in outcomes.items():
        assert o == first, loader
    # and through boot() (own seeds): the e820-derived books agree
    results = [boot(cfg(vendor=vendor, kernel=kernel, loader=ld)) for ld in EFI_STUB_LOADERS]
    for r in results:
        check_books(r)
        assert r.booted
        assert {x: r.memory[x] for x in ("usable", "lost", "firmware")} == \
            {x: results[0].memory[x] for x in ("usable", "lost", "firmware")}
        assert r.accepted["firmware"] == results[0].accepted["firmware"]


@pytest.mark.parametrize("kernel, calls", [("5.19", 2), ("mainline", 1)])
def test_shim_ebs_hook_passes_through_and_rehooks(kernel, calls):
    # rhboot/shim shim.c (and replacements.c): the ExitBootServices hook
    # passes the call through when GRUB took part in verification and stays
    # installed after a failure, so the stub's retry reaches it too.
    c = cfg(vendor="snp", kernel=kernel, loader="shim-grub")
    p, k, fw, failure = steps(c)
    assert failure is None
    assert fw.shim_hook_calls == calls
    assert fw.ebs_calls == calls
    assert fw.exit_boot_services == Firmware.exit_boot_services.__get__(fw)   # unhooked


def _many_ranges(n, size=4 * GiB, gap=2 * MiB):
    """[0, 2G) plus n separate RAM ranges from 4 GiB, `gap` apart."""
    out, a = [(0, 2 * GiB)], G4
    for _ in range(n):
        out.append((a, a + size))
        a += size + gap
    return tuple(out)


def _entries_when_grub_sizes_its_buffer(c):
    p = Platform(c)
    fw = Firmware(p, kernel_bytes=KERNEL_FILE_BYTES + INITRD_BYTES)
    fw.start()
    with p.layer("loader"):
        loaders._load_images(fw)
    return len(fw.map.regions)


def test_grub_buffer_too_small_after_the_accept_all():
    # grub-core/loader/i386/linux.c grub_linux_boot -> grub_efi_finish_boot_services
    # (grub-core/kern/efi/mm.c): the final map must fit the buffer sized
    # (page-rounded) before; else "memory map buffer is too small".  Each
    # separate RAM range above 4 GiB is its own type-15 entry; SNP's accept-all
    # turns them conventional (no merging: holes between) and allocates one
    # reserved page for the PSC buffer, splitting a conventional entry: one
    # entry more.  EDK2 DescriptorSize = 48: 85 entries = 4080 bytes fit the
    # one-page buffer, 86 = 4128 do not; 86 entries -> 2 pages, 87 still fit.
    n = next(n for n in range(40, 120)
             if _entries_when_grub_sizes_its_buffer(
                 BootConfig(vendor="snp", ram=2 * GiB + n * 4 * GiB, ram_ranges=_many_ranges(n)))
             == 85)
    tight = BootConfig(vendor="snp", loader="grub-legacy", ram=2 * GiB + n * 4 * GiB,
                       ram_ranges=_many_ranges(n))
    r = boot(tight)
    check_books(r)
    assert not r.booted
    assert (r.failure["phase"], r.failure["reason"]) == ("loader", "mmap_buffer_too_small")
    assert r.failure["message"] == "memory map buffer is too small"
    # one range more: 86 entries, a two-page buffer, room for the 87th
    roomy = tight.replace(ram=tight.ram + 4 * GiB, ram_ranges=_many_ranges(n + 1))
    assert _entries_when_grub_sizes_its_buffer(roomy) == 86
    assert boot(roomy).booted
    # TDX: no accept-all, the map does not grow, the same layout boots
    assert boot(tight.replace(vendor="tdx")).booted


@pytest.mark.parametrize("first, accepted", [("mainline", True), ("6.15", True),
                                             ("6.12", False)])
def test_kexec_first_kernel_accepts_segment_destinations_from_6_15(monkeypatch, first,
                                                                   accepted):
    # kernel/kexec_core.c sanity_check_segment_list -> accept_memory() on each
    # destination (Yan Zhao / Kirill A. Shutemov, v6.15); before that the
    # destinations may stay unaccepted.  The next kernel inherits the bitmap.
    seen = {}
    real = Boot.decompress

    def spy(self, seed, avoid=()):
        seen["segments"] = list(avoid)
        return real(self, seed, avoid)

    monkeypatch.setattr(Boot, "decompress", spy)
    monkeypatch.setattr(loaders, "KEXEC_FIRST_KERNEL", first)
    c = cfg(vendor="tdx", loader="kexec", kernel="mainline")
    p, k, fw, failure = steps(c)
    assert failure is None
    assert k.table is fw.config_tables[UNACCEPTED_TABLE_GUID]
    segs = seen["segments"]
    assert sum(b - a for a, b in segs) == KERNEL_FILE_BYTES + INITRD_BYTES + 4096
    for a, b in segs:
        assert (p.accepted_bytes(a, b) == b - a) is accepted
        assert k.table.contains(a, b - a) is (not accepted)


def test_failed_boot_still_fills_memory_and_accepted():
    # The outcome contract: the books are filled whatever the phase that failed.
    r = boot(cfg(vendor="snp", loader="custom"))
    check_books(r)
    assert not r.booted
    assert r.accepted["firmware"] == 16 * GiB - LAUNCH    # the accept-all ran
    assert r.memory["ram"] == 16 * GiB
    assert r.memory["usable"] > 15 * GiB                  # all RAM was conventional
    assert r.time["total"] > 0
    r = boot(cfg(vendor="tdx", loader="kexec", kernel="5.19"))
    check_books(r)
    assert not r.booted
    assert r.accepted["kernel"] > 0 and r.accepted["decompressor"] >= 0
    assert r.memory["unaccepted"] > 0


# ---- a layout QEMU never builds ---------------------------------------------------------
def test_tdx_ram_range_straddling_4g_is_reaccepted_and_panics():
    # OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c AcceptMemory accepts every
    # UNACCEPTED HOB up to 4 GiB, cutting one that straddles it;
    # OvmfPkg/Library/PlatformInitLib/IntelTdx.c
    # BuildResourceDescriptorHobForUnacceptedMemory keeps such a HOB
    # UNACCEPTED whole.  Linux then accepts [3G, 4G) a second time
    # (TDX_PAGE_ALREADY_ACCEPTED) and arch/x86/coco/tdx/tdx-shared.c
    # try_accept_one fails -> "TDX: Failed to accept memory".  QEMU's PCI
    # hole keeps RAM from straddling 4 GiB, so only a custom layout gets here;
    # eager makes the second accept certain.
    ranges = ((0, 2 * GiB), (3 * GiB, 5 * GiB))
    c = BootConfig(vendor="tdx", ram=4 * GiB, ram_ranges=ranges, loader="grub",
                   accept_memory="eager")
    r = boot(c)
    check_books(r)
    assert not r.booted
    assert r.failure["reason"] == "panic"
    p, k, fw, failure = steps(c)
    assert p.guest.fatal.message == "TDX: Failed to accept memory"
    # SNP splits at 4 GiB (PEI validates below, type 15 only above): boots
    assert boot(c.replace(vendor="snp")).booted
