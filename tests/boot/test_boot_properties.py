"""unaccepted.boot: properties every boot keeps, over random VMs.

Random vendor (snp / tdx), RAM (1 MiB multiples, 256 MiB .. 2 TiB, on q35's
split or on a layout with holes), vCPUs (1..64), host backing, firmware
variant, boot loader, kernel and accept_memory mode.

Bounds, so that each test stays within a few seconds:
- 4 KiB host backing makes the C models walk every 4 KiB page of a bulk
  accept (accept-all, ovmf-eager, accept_memory=eager): about 12 ms per
  GiB on TDX, so 4K-backed guests are drawn up to 8 GiB; 2M-backed ones
  go to 2 TiB.
- TDX layouts never put a RAM range across 4 GiB.  EDK2 keeps such a TD
  HOB UNACCEPTED whole after SEC accepted its low part, and Linux then
  accepts that part again (test_boot_outcomes.py
  test_tdx_ram_range_straddling_4g_is_reaccepted_and_panics); QEMU's PCI
  hole below 4 GiB means it never builds one.  SNP layouts may.
"""
import json

from hypothesis import assume, given, settings, strategies as st

from unaccepted.boot import _memory, boot, seed_of
from unaccepted.firmware import Firmware, FirmwareFailure, _intersect, _subtract
from unaccepted.guest import PATH_KINDS
from unaccepted.kernel import (E820_RAM, INITRD_BYTES, KERNEL_FILE_BYTES, PROFILES, Boot,
                               BootFailure)
from unaccepted.loaders import LOADERS
from unaccepted.platform import Platform
from unaccepted.vm import FIRMWARES, KERNELS, LOADERS as LOADER_NAMES, BootConfig

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
G4 = 4 * GiB
PAGE = 4 * KiB
LAUNCH = 0x820000 - 0x800000      # the VMM's launch pages (OVMF MEMFD scratch)
EFI_STUB_LOADERS = ("stub", "systemd-boot", "grub", "grub-linuxefi", "shim-grub")
PATHS = tuple(PATH_KINDS)          # every accept path the guest has (ovmf, linux, ...)

SETTINGS = settings(max_examples=40, deadline=None)


# ---- strategies ------------------------------------------------------------------------
@st.composite
def holey_layout(draw, vendor, max_ram):
    """RAM from 0 (optionally with a hole below 4 GiB), then 0..4 ranges from
    4 GiB with holes between; starts may be 4 KiB- but not 2 MiB-aligned (the
    stub's unaligned heads and tails).  SNP may get a range across 4 GiB."""
    low = draw(st.integers(256, 2816)) * MiB
    ranges = [(0, low)]
    if draw(st.booleans()):
        cut = draw(st.integers(128, low // MiB - 64)) * MiB
        hole = draw(st.integers(1, 256)) * MiB
        ranges = [(0, cut), (cut + hole, low + hole)]
    top = ranges[-1][1]
    if vendor == "snp" and draw(st.booleans()):
        start = max(top + MiB, G4 - draw(st.integers(1, 1024)) * MiB)
        if start < G4:
            ranges.append((start, G4 + draw(st.integers(1, 2048)) * MiB))
    budget = max_ram - sum(b - a for a, b in ranges)
    pos = max(G4, ranges[-1][1]) + draw(st.integers(0, 64)) * MiB + \
        draw(st.integers(0, 511)) * PAGE
    for _ in range(draw(st.integers(0, 4))):
        if budget < MiB:
            break
        size = draw(st.integers(1, max(1, min(budget // MiB, 512 * 1024)))) * MiB
        ranges.append((pos, pos + size))
        budget -= size
        pos += size + draw(st.integers(1, 4096)) * MiB + draw(st.integers(0, 511)) * PAGE
    return tuple(ranges)


FIRMWARE = st.sampled_from(FIRMWARES + ("ovmf-partial:1G", "ovmf-partial:64M"))


@st.composite
def configs(draw, *, kernels=KERNELS, loaders=LOADER_NAMES, firmwares=FIRMWARE,
            accept_memory=st.sampled_from(("lazy", "eager"))):
    vendor = draw(st.sampled_from(("snp", "tdx")))
    backing = draw(st.sampled_from(("2M", "4K")))
    max_ram = 2 * TiB if backing == "2M" else 8 * GiB
    kw = dict(vendor=vendor, backing=backing, vcpus=draw(st.integers(1, 64)),
              firmware=draw(firmwares), loader=draw(st.sampled_from(loaders)),
              kernel=draw(st.sampled_from(kernels)), accept_memory=draw(accept_memory))
    if draw(st.booleans()):
        ranges = draw(holey_layout(vendor, max_ram))
        kw.update(ram=sum(b - a for a, b in ranges), ram_ranges=ranges)
    else:
        # log-uniform: as many 256 MiB..512 MiB guests as 1..2 TiB ones
        top = draw(st.integers(9, (max_ram // MiB).bit_length() - 1))
        kw["ram"] = draw(st.integers(1 << (top - 1), 1 << top)) * MiB
    return BootConfig(**kw)


# ---- helpers ---------------------------------------------------------------------------
def steps(config):
    """boot()'s steps, keeping the objects: (platform, boot, firmware, failure)."""
    p = Platform(config)
    k = Boot(p, PROFILES[config.kernel], eager=config.accept_memory == "eager")
    fw = Firmware(p, kernel_bytes=KERNEL_FILE_BYTES + INITRD_BYTES)
    failure = None
    try:
        fw.start()
        LOADERS[config.loader](p, fw, k, seed_of(config))
    except (FirmwareFailure, BootFailure) as exc:
        failure = exc
    return p, k, fw, failure


# ---- properties -------------------------------------------------------------------------
@SETTINGS
@given(configs())
def test_memory_is_conserved_and_accepts_fit_in_ram(c):
    r = boot(c)
    m = r.memory
    assert m["ram"] == c.ram
    assert m["usable"] + m["lost"] + m["firmware"] == c.ram
    assert min(m.values()) >= 0
    assert m["unaccepted"] <= c.ram
    assert min(r.accepted.values()) >= 0
    # the launch pages were accepted before any layer ran
    assert sum(r.accepted.values()) + LAUNCH <= c.ram
    assert all(t >= 0 for t in r.time.values())
    assert abs(r.time["total"] - sum(r.time[x] for x in ("firmware", "loader", "stub",
                                                          "kernel"))) < 1e-9
    assert r.booted == (r.failure is None)


@SETTINGS
@given(configs())
def test_no_unit_is_accepted_twice(c):
    p, k, fw, failure = steps(c)
    # every accept path of the guest: no page met a second accept
    for kind in PATHS:
        assert p.guest.path_stats(kind).already_accepted == 0, kind
    fatal = p.guest.fatal
    if fatal is not None:
        assert "Failed to accept" not in fatal.message, fatal.message
    # accounting: what the layers accepted is what the guest holds accepted,
    # plus what a kernel without SNP support gave back (5.15's C-bit flips)
    held = p.accepted_bytes()
    assert sum(p.accepted.values()) + p.launch_bytes() >= held
    if c.kernel != "5.15":
        assert sum(p.accepted.values()) + p.launch_bytes() == held


@SETTINGS
@given(configs(kernels=("mainline",), loaders=EFI_STUB_LOADERS,
               accept_memory=st.just("lazy")))
def test_mainline_through_an_efi_stub_loader_boots(c):
    # lazy acceptance end to end: firmware, opt-out, table, decompressor,
    # memblock, buddy; a double validation / PAGE_ALREADY_ACCEPTED would
    # terminate or panic the guest
    r = boot(c)
    assert r.booted, r.failure
    assert r.memory["lost"] == 0


@SETTINGS
@given(configs())
def test_a_booted_guest_never_touches_unaccepted_memory(c):
    """Every RAM byte still unaccepted is marked in the table the kernel uses,
    or is not e820 RAM (the kernel never allocates it)."""
    p, k, fw, failure = steps(c)
    assume(failure is None)
    assert k.e820 is not None
    e820_ram = [(s, e) for s, e, t in k.e820 if t == E820_RAM]
    marked = k.table.unaccepted_ranges() if k.table is not None and k.kernel.unaccepted \
        else []
    for a, b in _subtract(_intersect(e820_ram, list(c.ram_ranges)), marked):
        assert p.accepted_bytes(a, b) == b - a, (hex(a), hex(b))
    if marked:
        # and what the table marks is truly unaccepted (no stale bits)
        for a, b in _intersect(marked, list(c.ram_ranges)):
            assert p.accepted_bytes(a, b) == 0, (hex(a), hex(b))


@SETTINGS
@given(configs(accept_memory=st.just("lazy")))
def test_eager_and_lazy_reach_the_same_usable_memory(lazy):
    eager = lazy.replace(accept_memory="eager")
    rl, re_ = boot(lazy), boot(eager)
    for key in ("ram", "usable", "lost", "firmware"):
        assert rl.memory[key] == re_.memory[key], key
    if rl.booted and re_.booted:
        assert re_.memory["unaccepted"] <= rl.memory["unaccepted"]
    if re_.booted and PROFILES[eager.kernel].unaccepted and eager.loader in EFI_STUB_LOADERS:
        assert re_.memory["unaccepted"] == 0


@SETTINGS
@given(configs())
def test_boot_is_deterministic(c):
    first = json.dumps(boot(c).to_json_obj(), sort_keys=True)
    again = json.dumps(boot(BootConfig(**{f: getattr(c, f) for f in (
        "vendor", "ram", "vcpus", "backing", "firmware", "loader", "kernel", "accept_memory",
        "profile", "memmap", "ram_ranges", "firmware_debug")})).to_json_obj(), sort_keys=True)
    assert first == again
    p, k, fw, failure = steps(c)
    r = boot(c)
    assert _memory(p, k, fw) == r.memory
    assert p.accepted == r.accepted
