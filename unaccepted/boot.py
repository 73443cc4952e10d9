"""One boot of one confidential VM: VMM, firmware, boot loader, EFI stub,
decompressor, kernel up to init; and its outcome, the `boot` JSON of
docs/interfaces.md.

    >>> from unaccepted.boot import BootConfig, boot
    >>> r = boot(BootConfig(vendor="tdx", ram=16 << 30, loader="grub-legacy"))
    >>> r.booted, r.memory["lost"] > 0
    (True, True)
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .firmware import Firmware, FirmwareFailure, _intersect, _subtract
from .kernel import (E820_RAM, INITRD_BYTES, KERNEL_FILE_BYTES, PROFILES, Boot, BootFailure,
                     e820_bytes, efi_to_e820_type)
from .loaders import LOADERS
from .memmap import MemoryType
from .platform import ACCEPT_LAYERS, TIME_PHASES, Platform
from .vm import BootConfig

PHASES = ("firmware", "loader", "stub", "decompressor", "kernel")


@dataclass
class BootResult:
    """The outcome of a boot (docs/interfaces.md, `boot --json`)."""

    config: BootConfig
    booted: bool
    failure: Optional[Dict[str, str]]
    memory: Dict[str, int]
    accepted: Dict[str, int]
    time: Dict[str, float]
    messages: List[str] = field(default_factory=list)
    counts: Dict[str, int] = field(default_factory=dict)

    def to_json_obj(self) -> Dict[str, Any]:
        return {"config": self.config.to_json_obj(), "booted": self.booted,
                "failure": self.failure, "memory": dict(self.memory),
                "accepted": dict(self.accepted), "time": dict(self.time),
                "messages": list(self.messages), "counts": dict(self.counts)}


def seed_of(config: BootConfig) -> int:
    """A deterministic seed per configuration (KASLR's choice)."""
    return zlib.crc32(repr(config).encode())


def boot(config: BootConfig) -> BootResult:
    """Boot `config` to init (or to the failure that stops it)."""
    if not isinstance(config, BootConfig):
        from .errors import InvalidArgument
        raise InvalidArgument(f"config = {config!r} must be a BootConfig")
    p = Platform(config)
    kernel = PROFILES[config.kernel]
    k = Boot(p, kernel, eager=config.accept_memory == "eager")
    fw = Firmware(p, kernel_bytes=KERNEL_FILE_BYTES + INITRD_BYTES)
    failure = None
    try:
        fw.start()
        LOADERS[config.loader](p, fw, k, seed_of(config))
    except FirmwareFailure as exc:
        failure = {"phase": "firmware", "reason": exc.reason, "message": exc.message}
    except BootFailure as exc:
        failure = {"phase": exc.phase, "reason": exc.reason, "message": exc.message}
    if failure is not None:
        p.say(f"{failure['phase']}: {failure['message']}")
    memory = _memory(p, k, fw)
    time = {name: p.time[name] for name in TIME_PHASES}
    time["total"] = sum(time.values())
    return BootResult(config, failure is None, failure, memory,
                      {name: p.accepted[name] for name in ACCEPT_LAYERS}, time,
                      list(p.messages), p.counts())


def _memory(p: Platform, k: Boot, fw: Firmware) -> Dict[str, int]:
    """ram = usable + lost + firmware, from the e820 the kernel got (or, when
    the boot stopped before, from the firmware's map as the kernel would
    have read it)."""
    ram = p.ram_ranges
    if k.e820 is not None:
        e820_ram = [(s, e) for s, e, t in k.e820 if t == E820_RAM]
        seen15 = k.type15_seen
    else:
        e820_ram, seen15 = [], []
        for r in fw.map.regions:
            if r.type == MemoryType.UNACCEPTED:
                seen15.append((r.start, r.end))
                if k.kernel.unaccepted:
                    e820_ram.append((r.start, r.end))
            elif efi_to_e820_type(r.type, r.attribute) == E820_RAM:
                e820_ram.append((r.start, r.end))
    usable = sum(b - a for a, b in _intersect(e820_ram, ram))
    lost = sum(b - a for a, b in _subtract(_intersect(seen15, ram), e820_ram))
    return {"ram": p.ram, "usable": usable, "lost": lost,
            "firmware": p.ram - usable - lost, "unaccepted": p.unaccepted_bytes()}


__all__ = ["BootConfig", "BootResult", "PHASES", "boot"]
