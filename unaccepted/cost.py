"""Cost profiles, per-vCPU event counters and simulated clocks (csrc/cost.c).

Profiles are data kept in the C core with a source for every value; this
module reads them and wraps the counters that vendor models charge.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict, Optional

from ._core import ffi, lib
from .errors import InvalidArgument, check

EVENT_COUNT = lib.UA_EV_COUNT


class Event(enum.IntEnum):
    """Events a model charges (ua_event)."""

    PVALIDATE_4K = lib.UA_EV_PVALIDATE_4K
    PVALIDATE_2M = lib.UA_EV_PVALIDATE_2M
    RMPADJUST = lib.UA_EV_RMPADJUST
    VMGEXIT_PSC_MSR = lib.UA_EV_VMGEXIT_PSC_MSR
    VMGEXIT_PSC = lib.UA_EV_VMGEXIT_PSC
    RMPUPDATE_4K = lib.UA_EV_RMPUPDATE_4K
    RMPUPDATE_2M = lib.UA_EV_RMPUPDATE_2M
    PSMASH = lib.UA_EV_PSMASH
    NPF_EXIT = lib.UA_EV_NPF_EXIT
    VC = lib.UA_EV_VC
    CACHE_TOUCH_4K = lib.UA_EV_CACHE_TOUCH_4K
    TDCALL_ACCEPT = lib.UA_EV_TDCALL_ACCEPT
    TD_EXIT = lib.UA_EV_TD_EXIT
    AUG_4K = lib.UA_EV_AUG_4K
    AUG_2M = lib.UA_EV_AUG_2M
    ZERO_4K = lib.UA_EV_ZERO_4K
    SEAMCALL = lib.UA_EV_SEAMCALL
    TDVMCALL = lib.UA_EV_TDVMCALL
    VE = lib.UA_EV_VE
    ACCEPT_CALL = lib.UA_EV_ACCEPT_CALL

    @property
    def label(self) -> str:
        """The C core's name for the event (e.g. 'pvalidate_4k')."""
        return ffi.string(lib.ua_event_name(self.value)).decode()


@dataclass(frozen=True)
class CostProfile:
    """Cycles per event and the simulated clock rate.  `sources` says where
    each value of a built-in profile comes from."""

    name: str
    ghz: float
    cycles: Dict[Event, int]
    sources: Dict[Event, str] = field(default_factory=dict)

    @classmethod
    def builtin_names(cls) -> list:
        return [cls._from_c(i).name for i in range(lib.ua_cost_profile_count())]

    @classmethod
    def builtin(cls, name: str) -> "CostProfile":
        for i in range(lib.ua_cost_profile_count()):
            p = cls._from_c(i)
            if p.name == name:
                return p
        raise InvalidArgument(
            f"unknown cost profile {name!r}; built-in: {', '.join(cls.builtin_names())}")

    @classmethod
    def _from_c(cls, index: int) -> "CostProfile":
        p = ffi.new("ua_cost_profile *")
        check(lib.ua_cost_profile_builtin(index, p))
        return cls(
            name=ffi.string(p.name).decode(),
            ghz=p.ghz,
            cycles={e: p.cycles[e] for e in Event},
            sources={e: ffi.string(lib.ua_cost_profile_source(index, e)).decode()
                     for e in Event},
        )

    def with_cycles(self, **changes) -> "CostProfile":
        """A copy with some events' cycles changed (keys: Event names, lower case)."""
        cycles = dict(self.cycles)
        sources = dict(self.sources)
        for key, value in changes.items():
            try:
                ev = Event[key.upper()]
            except KeyError:
                raise InvalidArgument(f"unknown event {key!r}") from None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"cycles for {key} must be a non-negative int, got {value!r}")
            cycles[ev] = value
            sources[ev] = "set by the caller"
        return CostProfile(self.name + "+custom", self.ghz, cycles, sources)

    def _to_c(self):
        p = ffi.new("ua_cost_profile *")
        name = self.name.encode()[:31]
        ffi.memmove(p.name, name, len(name))
        if not isinstance(self.ghz, (int, float)) or not 0 < self.ghz <= 1000:
            raise InvalidArgument(f"ghz = {self.ghz!r} must be in (0, 1000]")
        p.ghz = self.ghz
        for ev, cyc in self.cycles.items():
            if isinstance(cyc, bool) or not isinstance(cyc, int) or not 0 <= cyc < 1 << 64:
                raise InvalidArgument(f"cycles[{Event(ev).name}] = {cyc!r} is not a u64")
            p.cycles[int(ev)] = cyc
        return p


class Cost:
    """Per-vCPU event counters and clocks charged by the vendor models."""

    def __init__(self, profile: CostProfile | str = "count", nvcpus: int = 1):
        if isinstance(profile, str):
            profile = CostProfile.builtin(profile)
        if isinstance(nvcpus, bool) or not isinstance(nvcpus, int) or not 1 <= nvcpus <= lib.UA_MAX_VCPUS:
            raise InvalidArgument(f"nvcpus = {nvcpus!r} must be an int in [1, {lib.UA_MAX_VCPUS}]")
        out = ffi.new("ua_cost **")
        check(lib.ua_cost_create(profile._to_c(), nvcpus, out), "cannot create cost model")
        self._handle = ffi.gc(out[0], lib.ua_cost_destroy)
        self.profile = profile
        self.nvcpus = nvcpus

    def _vcpu(self, vcpu):
        if isinstance(vcpu, bool) or not isinstance(vcpu, int) or not 0 <= vcpu < self.nvcpus:
            raise InvalidArgument(f"vcpu = {vcpu!r} is not in [0, {self.nvcpus})")
        return vcpu

    def charge(self, event: Event, n: int = 1, vcpu: int = 0) -> None:
        lib.ua_cost_charge(self._handle, self._vcpu(vcpu), Event(event), n)

    def counts(self, vcpu: Optional[int] = None) -> Dict[Event, int]:
        """Events charged to one vCPU, or to all of them when vcpu is None."""
        buf = ffi.new("uint64_t[]", EVENT_COUNT)
        if vcpu is None:
            check(lib.ua_cost_total_counts(self._handle, buf, EVENT_COUNT))
        else:
            check(lib.ua_cost_counts(self._handle, self._vcpu(vcpu), buf, EVENT_COUNT))
        return {e: buf[e] for e in Event if buf[e]}

    def cycles(self, vcpu: int = 0) -> int:
        return lib.ua_cost_cycles(self._handle, self._vcpu(vcpu))

    def seconds(self, vcpu: int = 0) -> float:
        """Simulated time of one vCPU."""
        return lib.ua_cost_seconds(self._handle, self._vcpu(vcpu))

    def advance(self, cycles: int, vcpu: int = 0) -> None:
        lib.ua_cost_advance(self._handle, self._vcpu(vcpu), cycles)

    def reset(self) -> None:
        lib.ua_cost_reset(self._handle)
