"""Pure-Python reference model of the SEV-SNP rules (docs/snp.md; AMD APM
vol. 2 section 15.36, the GHCB specification, VeriSMo's RMP model).

Written independently of csrc/snp.c and as plainly as possible: every 2 MiB
SPA region is either one 2 MiB entry or a list of 512 4 KiB entries, entries
are frozen dataclasses, and each instruction is a straight-line list of the
checks in the documented order.  It is an oracle for the C model's
instructions (RMPUPDATE, PSMASH, PVALIDATE, RMPADJUST, accesses, host
writes); it has no cost model and no accept paths.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Set, Tuple, Union

K4 = 4096
M2 = 2 << 20
PA_LIMIT = 1 << 52
MAX_ASID = 1023

# fault kinds (same numbering as ua_snp_fault)
NONE, GP, PF, NPF, VC = 0, 1, 2, 3, 4

# NPF EXITINFO1 bits
P, W, U, FETCH = 1, 2, 4, 16
RMP, ENC, SIZEM, VMPL = 1 << 31, 1 << 34, 1 << 35, 1 << 36
PFEC_RMP = 1 << 31
VC_NOT_VALIDATED = 0x404

# RMPUPDATE / PSMASH codes
OK, FAIL_INPUT, FAIL_PERMISSION, FAIL_INUSE, FAIL_OVERLAP = 0, 1, 2, 3, 4
FAIL_SIZEMISMATCH = 6

READ, WRITE, EXEC_USER, EXEC_SUPER = 0, 1, 2, 3


@dataclass(frozen=True)
class Entry:
    assigned: bool = False
    page_size: int = 0
    immutable: bool = False
    validated: bool = False
    vmsa: bool = False
    gpa: int = 0
    asid: int = 0
    perm: Tuple[int, int, int, int] = (0, 0, 0, 0)


ZERO = Entry()


@dataclass(frozen=True)
class Outcome:
    """eax, cf, fault, error_code, exitinfo1 - what the instruction reports."""

    eax: int = 0
    cf: int = 0
    fault: int = NONE
    error_code: int = 0
    exitinfo1: int = 0


Region = Union[Entry, List[Entry]]   # an Entry = one 2 MiB entry


@dataclass
class RefSnp:
    memory_bytes: int
    spare_bytes: int = 0
    asid: int = 1
    vmpl: int = 0
    regions: Dict[int, Region] = field(default_factory=dict)
    npt: Dict[int, int] = field(default_factory=dict)       # gfn -> spfn (identity otherwise)
    in_use: Set[int] = field(default_factory=set)           # 4 KiB SPAs

    @property
    def rmp_end(self) -> int:
        return self.memory_bytes + self.spare_bytes

    # ---- lookups ----------------------------------------------------------
    def region(self, spa: int) -> Region:
        return self.regions.get(spa // M2, [ZERO] * 512)

    def governing(self, spa: int) -> Tuple[Entry, bool]:
        """The entry that governs the 4 KiB page at spa, and whether it is 2M."""
        rg = self.region(spa)
        if isinstance(rg, Entry):
            return rg, True
        return rg[(spa % M2) // K4], False

    def read(self, spa: int) -> Tuple[int, Entry]:
        """(entry_spa, entry) as ua_snp_rmp_read reports them."""
        spa -= spa % K4
        e, big = self.governing(spa)
        return (spa - spa % M2 if big else spa), e

    def translate(self, gpa: int) -> int:
        page = gpa // K4
        return self.npt.get(page, page) * K4 + gpa % K4

    # ---- host -------------------------------------------------------------
    def rmpupdate(self, spa: int, gpa: int = 0, asid: int = 0, assigned: bool = False,
                  page_size: int = 0, immutable: bool = False) -> int:
        if page_size > 1:
            return FAIL_INPUT
        size = M2 if page_size else K4
        if spa % size or spa >= self.rmp_end or gpa % size or gpa >= PA_LIMIT or asid > MAX_ASID:
            return FAIL_INPUT
        if not assigned and (asid != 0 or immutable):
            return FAIL_INPUT
        if assigned and asid == 0 and not immutable:
            return FAIL_INPUT
        if any(spa <= u < spa + size for u in self.in_use):
            return FAIL_INUSE
        new = Entry(assigned=bool(assigned), page_size=page_size, immutable=bool(immutable),
                    validated=False, vmsa=False, gpa=gpa, asid=asid, perm=(31, 0, 0, 0))
        r = spa // M2
        rg = self.region(spa)
        if page_size:
            if isinstance(rg, Entry):
                if rg.immutable:
                    return FAIL_PERMISSION
            else:
                if any(e.immutable for e in rg):
                    return FAIL_PERMISSION
                if any(e.assigned for e in rg):
                    return FAIL_OVERLAP
            self.regions[r] = new
            return OK
        if isinstance(rg, Entry):
            if rg.immutable:
                return FAIL_PERMISSION
            if rg.assigned:
                return FAIL_OVERLAP
            rg = self._smashed(rg)
        else:
            if rg[(spa % M2) // K4].immutable:
                return FAIL_PERMISSION
            rg = list(rg)
        rg[(spa % M2) // K4] = new
        self.regions[r] = rg
        return OK

    @staticmethod
    def _smashed(e: Entry) -> List[Entry]:
        return [replace(e, page_size=0, gpa=e.gpa + i * K4) for i in range(512)]

    def psmash(self, spa: int) -> int:
        if spa % M2 or spa >= self.rmp_end:
            return FAIL_INPUT
        rg = self.region(spa)
        if not isinstance(rg, Entry):
            return FAIL_INPUT
        if any(spa <= u < spa + M2 for u in self.in_use):
            return FAIL_INUSE
        self.regions[spa // M2] = self._smashed(rg)
        return OK

    def host_write(self, spa: int) -> Outcome:
        if spa >= self.rmp_end:
            return Outcome()
        e, _ = self.governing(spa - spa % K4)
        if e.assigned:
            return Outcome(fault=PF, error_code=PFEC_RMP | P | W)
        return Outcome()

    def _set(self, spa: int, big: bool, entry: Entry) -> None:
        r = spa // M2
        if big:
            self.regions[r] = entry
        else:
            rg = list(self.region(spa))
            rg[(spa % M2) // K4] = entry
            self.regions[r] = rg

    # ---- guest ------------------------------------------------------------
    def _owner_fault(self, e: Entry, big: bool, gpa: int, spa: int) -> bool:
        egpa = e.gpa + ((spa % M2) - (spa % K4) if big else 0)
        return (not e.assigned or e.asid != self.asid or egpa != gpa - gpa % K4
                or e.immutable)

    def _remapped_2m(self, va: int) -> bool:
        """Some 4 KiB page of the 2 MiB GPA range at va is remapped in the
        NPT, so the NPT cannot map that range as one 2 MiB page."""
        first = va // K4
        return any(first <= g < first + 512 for g in self.npt)

    def pvalidate(self, va: int, size: int, validate: bool) -> Outcome:
        if self.vmpl != 0:
            return Outcome(fault=GP)
        if size > 1 or va % (M2 if size else K4):
            return Outcome(eax=FAIL_INPUT)
        if va >= self.memory_bytes:
            return Outcome(fault=PF)
        spa = self.translate(va)
        e, big = self.governing(spa)
        if self._owner_fault(e, big, va, spa):
            return Outcome(fault=NPF, exitinfo1=RMP | ENC | P)
        if size == 0 and big:
            return Outcome(fault=NPF, exitinfo1=RMP | ENC | P | SIZEM)
        if size == 1 and (not big or spa % M2 or self._remapped_2m(va)):
            return Outcome(eax=FAIL_SIZEMISMATCH)
        if e.validated == bool(validate):
            return Outcome(cf=1)
        self._set(spa, big, replace(e, validated=bool(validate)))
        return Outcome()

    def rmpadjust(self, va: int, size: int, attrs: int) -> Outcome:
        target, perms, vmsa = attrs & 0xFF, (attrs >> 8) & 0xFF, bool(attrs & 0x10000)
        if (size > 1 or va % (M2 if size else K4) or attrs & ~0x1FFFF or perms & ~0x1F
                or target > 3 or (perms & 2 and not perms & 1)):
            return Outcome(eax=FAIL_INPUT)
        if va >= self.memory_bytes:
            return Outcome(fault=PF)
        if target <= self.vmpl:
            return Outcome(eax=FAIL_PERMISSION)
        spa = self.translate(va)
        e, big = self.governing(spa)
        if self._owner_fault(e, big, va, spa):          # the same NPFs as PVALIDATE
            return Outcome(fault=NPF, exitinfo1=RMP | ENC | P)
        if size == 0 and big:
            return Outcome(fault=NPF, exitinfo1=RMP | ENC | P | SIZEM)
        if not e.validated:
            return Outcome(fault=VC, error_code=VC_NOT_VALIDATED)
        if size == 1 and (not big or spa % M2 or self._remapped_2m(va)):
            return Outcome(eax=FAIL_SIZEMISMATCH)
        if perms & ~e.perm[self.vmpl]:
            return Outcome(eax=FAIL_PERMISSION)
        perm = list(e.perm)
        perm[target] = perms
        new = replace(e, perm=tuple(perm), vmsa=vmsa if self.vmpl == 0 else e.vmsa)
        self._set(spa, big, new)
        return Outcome()

    def access(self, gpa: int, kind: int, c_bit: bool) -> Outcome:
        acc = {READ: 0, WRITE: W, EXEC_USER: FETCH | U, EXEC_SUPER: FETCH}[kind]
        private = c_bit or kind in (EXEC_USER, EXEC_SUPER)
        if gpa >= self.memory_bytes:
            return Outcome(fault=NPF, exitinfo1=acc | (ENC if private else 0))
        spa = self.translate(gpa)
        e, big = self.governing(spa - spa % K4)
        if not private:
            if kind == WRITE and e.assigned:
                return Outcome(fault=NPF, exitinfo1=RMP | P | acc)
            return Outcome()
        if self._owner_fault(e, big, gpa, spa):
            return Outcome(fault=NPF, exitinfo1=RMP | ENC | P | acc)
        if not e.validated:
            return Outcome(fault=VC, error_code=VC_NOT_VALIDATED)
        need = {READ: 1, WRITE: 2, EXEC_USER: 4, EXEC_SUPER: 8}[kind]
        if not e.perm[self.vmpl] & need:
            return Outcome(fault=NPF, exitinfo1=RMP | ENC | P | acc | VMPL)
        return Outcome()

    # ---- whole-guest views ------------------------------------------------
    def validated_spas_for(self, gpa: int) -> List[int]:
        """Every SPA page whose governing entry says: assigned to us, this GPA, validated."""
        out = []
        for r, rg in self.regions.items():
            base = r * M2
            if isinstance(rg, Entry):
                off = gpa - rg.gpa
                if rg.assigned and rg.validated and rg.asid == self.asid and 0 <= off < M2:
                    out.append(base + off - off % K4)
            else:
                for i, e in enumerate(rg):
                    if e.assigned and e.validated and e.asid == self.asid and e.gpa == gpa - gpa % K4:
                        out.append(base + i * K4)
        return out
