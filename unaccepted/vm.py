"""The VM description: what a boot simulates, and the RAM layout the VMM builds.

A `BootConfig` is frozen, hashable and picklable, so the matrix can ship it
to worker processes or a Dask cluster.  Its fields are the `boot` options of
docs/interfaces.md; sizes are bytes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, Optional, Sequence, Tuple

from .errors import InvalidArgument

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
FOUR_GIB = 4 * GiB

# QEMU q35 (hw/i386/pc_q35.c, pc_q35_init): with at least 0xB0000000 bytes of
# RAM, 2 GiB stay below 4 GiB and the rest is placed from 4 GiB; below that
# all RAM is low.
Q35_LOW_LIMIT = 0xB0000000
Q35_LOW_SPLIT = 2 * GiB

VENDORS = ("snp", "tdx", "none")
BACKINGS = ("2M", "4K")
FIRMWARES = ("ovmf", "ovmf-noprotocol", "ovmf-eager", "ovmf-partial")
FIRMWARE_DEBUG = ("mmap-size-bug", "snp-512g-crash", "ebs-signal-every-call")
LOADERS = ("stub", "systemd-boot", "grub", "grub-linuxefi", "grub-legacy", "shim-grub", "custom",
           "kexec")
KERNELS = ("5.15", "5.19", "6.5", "6.6", "6.11", "6.12", "6.15", "mainline", "mainline-noconfig")
ACCEPT_MEMORY = ("lazy", "eager")
DEFAULT_PROFILE = {"snp": "snp-epyc-kvm", "tdx": "tdx-spr-kvm", "none": None}
# ovmf-partial without a size: td-shim's default partial accept (256 MiB,
# confidential-containers/td-shim PR #313), the only published default.
DEFAULT_PARTIAL = 256 * MiB

_UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB, "P": 1 << 50}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGTP]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(text: str, what: str = "size") -> int:
    """'4096', '4K', '2M', '64G', '1T' (binary units) -> bytes."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise InvalidArgument(f"{what} = {text!r} is not a size")
    if isinstance(text, int):
        if text < 0:
            raise InvalidArgument(f"{what} = {text} is negative")
        return text
    m = _SIZE.match(text)
    if not m:
        raise InvalidArgument(f"{what} = {text!r} is not a size (use 4096, 4K, 2M, 64G, 1T)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def format_size(n: int) -> str:
    for unit, size in (("T", TiB), ("G", GiB), ("M", MiB), ("K", KiB)):
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def q35_ram_ranges(ram: int) -> Tuple[Tuple[int, int], ...]:
    """QEMU q35's split of guest RAM into GPA ranges."""
    if ram < Q35_LOW_LIMIT:
        return ((0, ram),)
    return ((0, Q35_LOW_SPLIT), (FOUR_GIB, FOUR_GIB + ram - Q35_LOW_SPLIT))


def split_firmware(name: str) -> Tuple[str, Optional[int]]:
    """'ovmf-partial:1G' -> ('ovmf-partial', 1 GiB); others -> (name, None)."""
    base, sep, size = name.partition(":")
    if base not in FIRMWARES:
        raise InvalidArgument(f"firmware = {name!r}; use one of {', '.join(FIRMWARES)} "
                              "(ovmf-partial[:SIZE])")
    if sep and base != "ovmf-partial":
        raise InvalidArgument(f"firmware = {name!r}: only ovmf-partial takes a size")
    if base != "ovmf-partial":
        return base, None
    return base, parse_size(size, "ovmf-partial size") if sep else DEFAULT_PARTIAL


def _choice(value: object, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InvalidArgument(f"{name} = {value!r}; use one of {', '.join(choices)}")


@dataclass(frozen=True)
class BootConfig:
    """One boot: the VM, its firmware, boot loader and kernel.

    ram_ranges: the RAM's GPA ranges (default: q35's split of `ram`); a
    layout read with `memmap` sets them and `memmap` names its source.
    firmware_debug: old-firmware behaviours to switch on (FIRMWARE_DEBUG).
    """

    vendor: str = "tdx"
    ram: int = 16 * GiB
    vcpus: int = 4
    backing: str = "2M"
    firmware: str = "ovmf"
    loader: str = "grub"
    kernel: str = "mainline"
    accept_memory: str = "lazy"
    profile: Optional[str] = None
    memmap: Optional[str] = None
    ram_ranges: Tuple[Tuple[int, int], ...] = field(default=(), compare=True)
    firmware_debug: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _choice(self.vendor, "vendor", VENDORS)
        if isinstance(self.ram, bool) or not isinstance(self.ram, int) or self.ram <= 0:
            raise InvalidArgument(f"ram = {self.ram!r} must be a positive number of bytes")
        if self.ram % MiB:
            raise InvalidArgument(f"ram = {self.ram} must be a multiple of 1 MiB")
        if self.ram > 64 * TiB:
            raise InvalidArgument(f"ram = {format_size(self.ram)} is past the 64 TiB the "
                                  "simulator supports")
        if isinstance(self.vcpus, bool) or not isinstance(self.vcpus, int) or \
                not 1 <= self.vcpus <= 512:
            raise InvalidArgument(f"vcpus = {self.vcpus!r} must be an integer in 1..512")
        _choice(self.backing, "backing", BACKINGS)
        split_firmware(self.firmware)
        _choice(self.loader, "loader", LOADERS)
        _choice(self.kernel, "kernel", KERNELS)
        _choice(self.accept_memory, "accept_memory", ACCEPT_MEMORY)
        if self.profile is not None:
            from .cost import CostProfile
            if self.profile not in CostProfile.builtin_names():
                raise InvalidArgument(f"profile = {self.profile!r}; use one of "
                                      f"{', '.join(CostProfile.builtin_names())}")
        debug = tuple(self.firmware_debug)
        for d in debug:
            _choice(d, "firmware_debug", FIRMWARE_DEBUG)
        object.__setattr__(self, "firmware_debug", debug)
        ranges = tuple((int(a), int(b)) for a, b in self.ram_ranges) or q35_ram_ranges(self.ram)
        prev = 0
        for a, b in ranges:
            if a % (4 * KiB) or b % (4 * KiB) or b <= a or a < prev:
                raise InvalidArgument(f"ram_ranges: [{a:#x}, {b:#x}) must be 4 KiB aligned, "
                                      "non-empty, sorted and disjoint")
            prev = b
        if sum(b - a for a, b in ranges) != self.ram:
            raise InvalidArgument(f"ram_ranges hold {sum(b - a for a, b in ranges)} bytes, "
                                  f"not ram = {self.ram}")
        object.__setattr__(self, "ram_ranges", ranges)

    @property
    def cost_profile(self) -> Optional[str]:
        return self.profile if self.profile is not None else DEFAULT_PROFILE[self.vendor]

    @property
    def firmware_variant(self) -> str:
        return split_firmware(self.firmware)[0]

    @property
    def partial_bytes(self) -> Optional[int]:
        return split_firmware(self.firmware)[1]

    def replace(self, **changes: Any) -> "BootConfig":
        return replace(self, **changes)

    def to_json_obj(self) -> Dict[str, Any]:
        """The `config` object of the boot JSON (docs/interfaces.md)."""
        out: Dict[str, Any] = {"vendor": self.vendor, "ram": self.ram, "vcpus": self.vcpus,
                               "backing": self.backing, "firmware": self.firmware,
                               "loader": self.loader, "kernel": self.kernel,
                               "accept_memory": self.accept_memory,
                               "profile": self.cost_profile}
        if self.memmap is not None:
            out["memmap"] = self.memmap
        if self.firmware_debug:
            out["firmware_debug"] = list(self.firmware_debug)
        return out


CONFIG_FIELDS: Tuple[str, ...] = tuple(f.name for f in fields(BootConfig))

__all__ = ["ACCEPT_MEMORY", "BACKINGS", "BootConfig", "FIRMWARES", "FIRMWARE_DEBUG", "KERNELS",
           "LOADERS", "VENDORS", "format_size", "parse_size", "q35_ram_ranges", "split_firmware"]
