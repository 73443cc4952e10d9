"""Cost profiles, per-vCPU event counters and simulated clocks (csrc/cost.c).

Profiles are data kept in the C core with a source for every value; this
module reads them and wraps the counters that vendor models charge.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, cast

from ._core import ffi, lib
from .errors import InvalidArgument, check
from .validate import as_instance, as_int, as_u64, as_vcpu

EVENT_COUNT: int = lib.ua_event_count()


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
    TDCALL_OTHER = lib.UA_EV_TDCALL_OTHER

    @property
    def label(self) -> str:
        """The C core's name for the event (e.g. 'pvalidate_4k')."""
        return cast(str, ffi.string(lib.ua_event_name(self.value)).decode())


@dataclass(frozen=True)
class CostProfile:
    """Cycles per event and the simulated clock rate.  `sources` says where
    each value of a built-in profile comes from."""

    name: str
    ghz: float
    cycles: Dict[Event, int]
    sources: Dict[Event, str] = field(default_factory=dict)

    @classmethod
    def builtin_names(cls) -> List[str]:
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

    def with_cycles(self, **changes: object) -> "CostProfile":
        """A copy with some events' cycles changed (keys: Event names, lower case)."""
        cycles = dict(self.cycles)
        sources = dict(self.sources)
        for key, value in changes.items():
            try:
                ev = Event[key.upper()]
            except KeyError:
                raise InvalidArgument(f"unknown event {key!r}") from None
            cycles[ev] = as_u64(value, f"cycles for {key}")
            sources[ev] = "set by the caller"
        return CostProfile(self.name + "+custom", self.ghz, cycles, sources)

    def _to_c(self) -> Any:
        """A ua_cost_profile * (cffi cdata) holding this profile."""
        p = ffi.new("ua_cost_profile *")
        name = self.name.encode()[:31]
        ffi.memmove(p.name, name, len(name))
        if not isinstance(self.ghz, (int, float)) or not 0 < self.ghz <= 1000:
            raise InvalidArgument(f"ghz = {self.ghz!r} must be in (0, 1000]")
        p.ghz = self.ghz
        for ev, cyc in self.cycles.items():
            p.cycles[int(ev)] = as_u64(cyc, f"cycles[{Event(ev).name}]")
        return p


EVENT_MEANINGS = {
    Event.PVALIDATE_4K: "one PVALIDATE with a 4 KiB operand, any outcome",
    Event.PVALIDATE_2M: "one PVALIDATE with a 2 MiB operand, any outcome",
    Event.RMPADJUST: "one RMPADJUST",
    Event.VMGEXIT_PSC_MSR: "one GHCB MSR-protocol Page State Change round trip",
    Event.VMGEXIT_PSC: "one GHCB NAE Page State Change VMGEXIT",
    Event.RMPUPDATE_4K: "host RMPUPDATE of a 4 KiB entry",
    Event.RMPUPDATE_2M: "host RMPUPDATE of a 2 MiB entry",
    Event.PSMASH: "host PSMASH",
    Event.NPF_EXIT: "#VMEXIT(NPF), e.g. an RMP check failing",
    Event.VC: "#VC delivered to the guest",
    Event.CACHE_TOUCH_4K: "coherency mitigation: first and last byte of a validated 4 KiB page",
    Event.TDCALL_ACCEPT: "one TDG.MEM.PAGE.ACCEPT execution, any outcome",
    Event.TD_EXIT: "TD exit to the VMM (EPT violation) and re-entry",
    Event.AUG_4K: "TDH.MEM.PAGE.AUG of a 4 KiB page",
    Event.AUG_2M: "TDH.MEM.PAGE.AUG of a 2 MiB page",
    Event.ZERO_4K: "one 4 KiB zeroing pass under the TD key",
    Event.SEAMCALL: "any other host SEAMCALL (BLOCK, TRACK, REMOVE, DEMOTE, ...)",
    Event.TDVMCALL: "TDG.VP.VMCALL round trip (MapGPA, ...)",
    Event.VE: "#VE delivered to the guest",
    Event.ACCEPT_CALL: "fixed overhead of one arch_accept_memory() call",
    Event.TDCALL_OTHER: "any other TDCALL (TDG.VM.RD/WR, TDG.VP.VEINFO.GET)",
}


def profiles_markdown() -> str:
    """The event and profile tables of docs/cost-model.md (kept in step by a test)."""
    lines = ["| event | C name | meaning |", "|---|---|---|"]
    lines += [f"| `{e.name}` | `{e.label}` | {EVENT_MEANINGS[e]} |" for e in Event]
    for name in CostProfile.builtin_names():
        p = CostProfile.builtin(name)
        lines += ["", f"### Profile `{name}` ({p.ghz} GHz)", "",
                  "| event | cycles | source |", "|---|---|---|"]
        lines += [f"| `{e.label}` | {p.cycles[e]} | {p.sources[e]} |" for e in Event]
    return "\n".join(lines) + "\n"


class Cost:
    """Per-vCPU event counters and clocks charged by the vendor models."""

    _handle: Any          # ua_cost * (cffi cdata)
    _owner: object        # what owns the counters (None: this object)
    profile: CostProfile
    vcpus: int

    def __init__(self, profile: CostProfile | str = "count", vcpus: int = 1) -> None:
        if isinstance(profile, str):
            profile = CostProfile.builtin(profile)
        as_instance(profile, "profile (a built-in name or a CostProfile)", CostProfile)
        vcpus = as_int(vcpus, "vcpus", 1, lib.UA_MAX_VCPUS + 1)
        out = ffi.new("ua_cost **")
        check(lib.ua_cost_create(profile._to_c(), vcpus, out), "cannot create cost model")
        self._handle = ffi.gc(out[0], lib.ua_cost_destroy)
        self._owner = None
        self.profile = profile
        self.vcpus = vcpus

    @classmethod
    def _borrow(cls, handle: Any, profile: CostProfile, vcpus: int, owner: object) -> "Cost":
        """A view of counters another object owns (a guest's); keeps it alive."""
        self = cls.__new__(cls)
        self._handle = handle
        self._owner = owner
        self.profile = profile
        self.vcpus = vcpus
        return self

    def _vcpu(self, vcpu: object) -> int:
        return as_vcpu(vcpu, self.vcpus)

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
        return cast(int, lib.ua_cost_cycles(self._handle, self._vcpu(vcpu)))

    def seconds(self, vcpu: int = 0) -> float:
        """Simulated time of one vCPU."""
        return cast(float, lib.ua_cost_seconds(self._handle, self._vcpu(vcpu)))

    def advance(self, cycles: int, vcpu: int = 0) -> None:
        lib.ua_cost_advance(self._handle, self._vcpu(vcpu), cycles)

    def reset(self) -> None:
        lib.ua_cost_reset(self._handle)
