"""The machine a boot runs on: the guest (C state), its RAM layout, and the
books every layer writes into (who accepted what, simulated time per phase,
console messages).

Accounting is exact and cheap: at every change of the layer in control the
platform reads the guest's accepted-page count and its per-vCPU clocks (both
C) and charges the difference to the layer that was running.  Nested layers
(the firmware's accept-all inside a loader's ExitBootServices) are charged
to the innermost one.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Tuple, Union

from .vm import BootConfig, MiB

if TYPE_CHECKING:
    from .guest import AcceptPath
    from .snp import SnpGuest
    from .tdx import TdxGuest

ACCEPT_LAYERS = ("firmware", "stub", "decompressor", "kernel")
TIME_PHASES = ("firmware", "loader", "stub", "kernel")
# each layer's accept bucket and time bucket
_LAYERS = {"firmware": ("firmware", "firmware"), "loader": (None, "loader"),
           "stub": ("stub", "stub"), "decompressor": ("decompressor", "kernel"),
           "kernel": ("kernel", "kernel")}

# Where the VMM puts the pages it adds before the guest runs: OVMF's MEMFD
# scratch area (SEC page tables, GHCB / TD HOB, work area, mailbox, temp
# RAM) at 0x800000..0x820000 (OvmfPkg/Include/Fdf/OvmfPkgDefines.fdf.inc).
# SNP: the SEV metadata sections go through SNP_LAUNCH_UPDATE; TDX: QEMU
# adds the TD_HOB and TEMP_MEM sections with TDH.MEM.PAGE.ADD (hw/i386/
# tdvf.c); everything else starts unaccepted.
LAUNCH_RANGE = (0x800000, 0x820000)


class Platform:
    """The guest and its books.  `guest` is None for vendor `none`."""

    def __init__(self, config: BootConfig):
        self.config = config
        self.vendor = config.vendor
        self.ram_ranges: Tuple[Tuple[int, int], ...] = config.ram_ranges
        self.ram = config.ram
        top = self.ram_ranges[-1][1]
        self.memory_bytes = -(-top // (2 * MiB)) * (2 * MiB)
        self.vcpus = config.vcpus
        self.messages: List[str] = []
        self.accepted: Dict[str, int] = dict.fromkeys(ACCEPT_LAYERS, 0)
        self.time: Dict[str, float] = dict.fromkeys(TIME_PHASES, 0.0)
        self.launch = self._launch_ranges()
        self.guest: Optional[Union[SnpGuest, TdxGuest]] = \
            self._create_guest() if self.vendor != "none" else None
        self._stack: List[str] = []
        self._mark = self._snapshot()

    # ---- the guest ------------------------------------------------------------
    def _launch_ranges(self) -> Tuple[Tuple[int, int], ...]:
        a, b = LAUNCH_RANGE
        if self.vendor == "none" or not any(s <= a and b <= e for s, e in self.ram_ranges):
            return ()
        return ((a, b),)

    def _create_guest(self) -> Union[SnpGuest, TdxGuest]:
        profile = self.config.cost_profile
        if self.vendor == "snp":
            from .snp import SnpGuest
            g = SnpGuest(self.memory_bytes, vcpus=self.vcpus, backing=self.config.backing,
                         cost_profile=profile)
            # QEMU makes every guest_memfd-backed RAM slot private at creation
            # (accel/kvm/kvm-all.c, kvm_set_phys_mem)
            for s, e in self.ram_ranges:
                g.set_memory_attributes(s, e - s, True)
            for s, e in self.launch:
                g.launch_update(s, e - s)
            g.launch_finish()
            return g
        from .tdx import TdxGuest
        return TdxGuest(self.memory_bytes, vcpus=self.vcpus, backing=self.config.backing,
                        cost_profile=profile, launch=self.launch)

    def path(self, kind: str) -> AcceptPath:
        assert self.guest is not None, "vendor none has no accept paths"
        return self.guest.accept_path(kind)

    def accepted_bytes(self, start: int = 0, end: Optional[int] = None) -> int:
        """RAM bytes of [start, end) the guest has accepted (launch pages too)."""
        if self.guest is None:
            return 0
        end = self.memory_bytes if end is None else end
        total = 0
        for s, e in self.ram_ranges:
            a, b = max(s, start), min(e, end)
            if a < b:
                total += self.guest.count_accepted(a, b) * 4096
        return total

    def unaccepted_bytes(self) -> int:
        """RAM nobody has accepted yet (0 without a confidential guest)."""
        return 0 if self.guest is None else self.ram - self.accepted_bytes()

    def launch_bytes(self) -> int:
        return sum(e - s for s, e in self.launch)

    # ---- the books --------------------------------------------------------------
    def _snapshot(self) -> Tuple[int, Tuple[float, ...]]:
        if self.guest is None:
            return 0, ()
        cost = self.guest.cost
        clocks = tuple(cost.seconds(v) for v in range(self.vcpus)) if cost is not None else ()
        return self.accepted_bytes(), clocks

    def _charge(self) -> None:
        now = self._snapshot()
        if self._stack:
            accept_bucket, time_bucket = _LAYERS[self._stack[-1]]
            done = now[0] - self._mark[0]
            if done > 0:     # pages given back (a kernel flipping them shared) are no accepts
                if accept_bucket is None:   # a loader accepts nothing itself
                    accept_bucket = "firmware"
                self.accepted[accept_bucket] += done
            if now[1]:
                self.time[time_bucket] += max(b - a for a, b in zip(self._mark[1], now[1]))
        self._mark = now

    @contextmanager
    def layer(self, name: str) -> Iterator[None]:
        """Charge what happens inside to `name` (one of _LAYERS)."""
        self._charge()
        self._stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self._stack.pop()

    def say(self, line: str) -> None:
        self.messages.append(line)

    def counts(self) -> Dict[str, int]:
        if self.guest is None or self.guest.cost is None:
            return {}
        return {e.label: n for e, n in self.guest.cost.counts().items()}

    def total_time(self) -> float:
        return sum(self.time.values())


__all__ = ["ACCEPT_LAYERS", "LAUNCH_RANGE", "Platform", "TIME_PHASES"]
