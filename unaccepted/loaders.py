"""Boot loaders: who calls ExitBootServices, and what the kernel receives.

Each loader is a function (platform, firmware, boot, seed) that ends with
the kernel at init (or raises BootFailure).  docs/boot.md has the sources.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Tuple

from .firmware import AllocateType, EfiStatus, Firmware, Range
from .kernel import (E820_RAM, E820_RESERVED, INITRD_BYTES, KERNEL_FILE_BYTES, PAGE, PROFILES,
                     Boot, BootFailure, e820_merge, efi_to_e820_type)
from .memmap import MemoryDescriptor, MemoryType
from .platform import Platform

GRUB_EBS_ATTEMPTS = 16     # grub_efi_finish_boot_services loops; a bound keeps a broken
                           # firmware from spinning the simulator forever
KEXEC_FIRST_KERNEL = "mainline"


def _load_images(fw: Firmware) -> None:
    """The kernel image and the initrd read into loader memory."""
    for mtype, size in ((MemoryType.LOADER_CODE, KERNEL_FILE_BYTES),
                        (MemoryType.LOADER_DATA, INITRD_BYTES)):
        status, _ = fw.allocate_pages(AllocateType.ANY_PAGES, mtype, size // PAGE)
        if status != EfiStatus.SUCCESS:
            raise BootFailure("loader", "out_of_resources",
                              f"cannot load the kernel: AllocatePages {status.name}")


def _run_kernel(boot: Boot, seed: int, avoid: Iterable[Range] = ()) -> None:
    boot.decompress(seed, avoid)
    boot.start_kernel()


def efi_stub(p: Platform, fw: Firmware, boot: Boot, seed: int) -> None:
    """The firmware's boot manager (or any loader that hands over with
    LoadImage/StartImage or the EFI handover protocol) runs the kernel's
    EFI stub, which does the opt-in, the table and ExitBootServices."""
    with p.layer("loader"):
        _load_images(fw)
    boot.efi_stub(fw)
    _run_kernel(boot, seed)


def shim_grub(p: Platform, fw: Firmware, boot: Boot, seed: int) -> None:
    """shim in front of GRUB: shim hooks ExitBootServices; GRUB took part
    in verification, so the hook passes the call through and re-hooks
    after a failure so that the retry reaches it too (shim.c)."""
    original = fw.exit_boot_services
    calls: List[int] = []

    def hooked(map_key: int) -> EfiStatus:
        calls.append(map_key)
        return original(map_key)      # a failed call leaves the hook installed

    fw.exit_boot_services = hooked    # type: ignore[method-assign]
    try:
        efi_stub(p, fw, boot, seed)
    finally:
        fw.exit_boot_services = original   # type: ignore[method-assign]
        fw.shim_hook_calls = len(calls)    # type: ignore[attr-defined]


def _e820_from_map(p: Platform, mm: Iterable[MemoryDescriptor], *,
                   report_unknown: bool) -> List[Tuple[int, int, int]]:
    """A loader's own EFI -> e820 translation, which knows nothing of type
    15 (GRUB's grub_efi_mmap_iterate: unknown types count as reserved)."""
    out: List[Tuple[int, int, int]] = []
    for d in mm:
        if d.type == MemoryType.UNACCEPTED:
            if report_unknown:
                p.say(f"Unknown memory type {d.type}, considering reserved")
            out.append((d.start, d.end, E820_RESERVED))
            continue
        t = efi_to_e820_type(d.type, d.attribute)
        if t is not None:
            out.append((d.start, d.end, t))
    return e820_merge(out)


def grub_legacy(p: Platform, fw: Firmware, boot: Boot, seed: int) -> None:
    """GRUB's x86 `linux` path (grub-core/loader/i386/linux.c): e820 from the
    map before ExitBootServices, then grub_efi_finish_boot_services()
    looping on failure into a buffer sized before."""
    with p.layer("loader"):
        _load_images(fw)
        _, _, _, need = fw.get_memory_map(0)
        buf = -(-need // PAGE) * PAGE          # the preallocated buffer, page-rounded
        status, mm, _, _ = fw.get_memory_map(buf)
        assert mm is not None      # the buffer holds the size GetMemoryMap asked for
        boot.saw_map(mm)
        e820 = _e820_from_map(p, mm, report_unknown=True)
        for _ in range(GRUB_EBS_ATTEMPTS):
            status, final, key, _ = fw.get_memory_map(buf)
            if status == EfiStatus.BUFFER_TOO_SMALL:
                raise BootFailure("loader", "mmap_buffer_too_small",
                                  "memory map buffer is too small")
            if fw.exit_boot_services(key) == EfiStatus.SUCCESS:
                break
        else:
            raise BootFailure("loader", "ebs_failed", "couldn't terminate EFI services")
        boot.e820 = e820
    _run_kernel(boot, seed)


def custom(p: Platform, fw: Firmware, boot: Boot, seed: int) -> None:
    """A loader that calls ExitBootServices once, without retrying (as
    unikraft before its PR #1105), and hands the final map over as e820
    without knowing type 15."""
    with p.layer("loader"):
        _load_images(fw)
        _, _, _, need = fw.get_memory_map(0)
        status, mm, key, _ = fw.get_memory_map(need)
        assert mm is not None      # the buffer holds the size GetMemoryMap asked for
        boot.saw_map(mm)
        status = fw.exit_boot_services(key)
        if status != EfiStatus.SUCCESS:
            raise BootFailure("loader", "ebs_failed",
                              f"ExitBootServices returned {status.name} and the loader "
                              "does not retry")
        boot.e820 = _e820_from_map(p, mm, report_unknown=False)
    _run_kernel(boot, seed)


def kexec(p: Platform, fw: Firmware, boot: Boot, seed: int) -> None:
    """kexec from a running mainline kernel booted through GRUB: no
    firmware; the new kernel gets the first one's e820 and its config
    tables (the unaccepted table included); the first kernel accepts the
    segments' destinations when it is 6.15 or later (kexec_core)."""
    first = Boot(p, PROFILES[KEXEC_FIRST_KERNEL], eager=boot.eager)
    efi_stub(p, fw, first, seed)
    with p.layer("kernel"):
        free = _free_top_down(first)
        need = KERNEL_FILE_BYTES + INITRD_BYTES + PAGE
        segments: List[Range] = []
        for s, e in reversed(free):
            if need <= 0:
                break
            take = min(e - s, need)
            segments.append((e - take, e))
            need -= take
        if first.kernel.kexec_accepts_segments and first.table is not None:
            for a, b in segments:
                first._guest_call("kernel", first.table.accept, a, b - a, 0)
    p.say("kexec_core: Starting new kernel")
    boot.e820 = first.e820
    boot.table, boot.table_range = first.table, first.table_range
    boot.type15_seen = first.type15_seen
    if first.table_range:
        boot.reserved.append(first.table_range)
    _run_kernel(boot, seed + 1, avoid=segments)


def _free_top_down(first: Boot) -> List[Range]:
    from .firmware import _subtract
    assert first.e820 is not None   # the first kernel booted
    ram = [(s, e) for s, e, t in first.e820 if t == E820_RAM]
    return _subtract(ram, first.reserved)


LOADERS: Dict[str, Callable[[Platform, Firmware, Boot, int], None]] = {
    "stub": efi_stub,
    "systemd-boot": efi_stub,     # LoadImage/StartImage of the kernel's PE entry
    "grub": efi_stub,             # GRUB >= 2.12's generic EFI loader (kernel >= 5.8)
    "grub-linuxefi": efi_stub,    # the distributions' EFI handover protocol
    "grub-legacy": grub_legacy,
    "shim-grub": shim_grub,
    "custom": custom,
    "kexec": kexec,
}

__all__ = ["LOADERS"]
