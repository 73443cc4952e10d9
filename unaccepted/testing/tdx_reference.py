"""Pure-Python reference model of the TDX Secure EPT, the host SEAMCALLs,
TDG.MEM.PAGE.ACCEPT, guest accesses, MapGPA, the VMM policy and the guest
accept paths.

It restates the rules of the TDX module 1.5 source (intel/tdx-module branch
tdx_1.5: tdg_mem_page_accept.c, td_ept_violation.c, tdh_mem_page_*.c,
sept_state_lookup) plus the modelling choices documented in docs/tdx.md, in
the plainest form: a dict of 2 MiB entries, each optionally holding a list
of 512 4 KiB entries.  It is an oracle for the C model (unaccepted.tdx),
never a fast path.  Host
physical addresses are not modelled (the C model's are identity tokens);
everything else observable is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

K4, M2, G1 = 4096, 2 << 20, 1 << 30
SIZES = {0: K4, 1: M2, 2: G1}

# public state values
FREE, BLOCKED, PENDING, PENDING_BLOCKED, MAPPED, REMOVED = 0, 1, 2, 3, 4, 5
NL_BLOCKED, NL_MAPPED = 0x81, 0x84
LEAF_STATES = {MAPPED, BLOCKED, PENDING, PENDING_BLOCKED}
BLOCKED_STATES = {BLOCKED, PENDING_BLOCKED, NL_BLOCKED}

# status words
SUCCESS = 0
OPERAND_INVALID = 0xC000010000000000
OPERAND_BUSY = 0x8000020000000000
HOST_PRIORITY_BUSY_TIMEOUT = 0x9000020500000000
OP_STATE_INCORRECT = 0xC000060800000000
NO_VALID_VE_INFO = 0xC000070400000000
EPT_WALK_FAILED = 0xC0000B0000000000
GPA_RANGE_NOT_BLOCKED = 0xC0000B0600000000
GPA_RANGE_ALREADY_BLOCKED = 0x00000B0700000000
TLB_TRACKING_NOT_DONE = 0xC0000B0800000000
EPT_INVALID_PROMOTE_CONDITIONS = 0xC0000B0900000000
PAGE_ALREADY_ACCEPTED = 0x00000B0A00000000
PAGE_SIZE_MISMATCH = 0xC0000B0B00000000
EPT_ENTRY_STATE_INCORRECT = 0xC0000B0D00000000
METADATA_FIELD_ID_INCORRECT = 0xC0000C0000000000
METADATA_FIELD_NOT_WRITABLE = 0xC0000C0100000000
METADATA_FIELD_VALUE_NOT_VALID = 0xC0000C0300000000
RCX = 1
SEPT_TREE = 146   # the operand id RANGE.UNBLOCK gives TLB_TRACKING_NOT_DONE

TD_CTLS = 0x1110000300000017
CONFIG_FLAGS = 0x1110000300000016

VMCALL_SUCCESS, VMCALL_RETRY = 0, 1
VMCALL_INVALID_OPERAND = 0x8000000000000000
VMCALL_ALIGN_ERROR = 0x8000000000000002
VMCALL_SUBFUNC_UNSUPPORTED = 0x8000000000000003

# access outcomes
OK, VE, DF, EXIT = 0, 1, 2, 3


class SimError(Exception):
    """A simulator-level error (the C model's ua_status); .name says which."""

    def __init__(self, name):
        super().__init__(name)
        self.name = name


@dataclass
class Entry:
    state: int = FREE
    locked: bool = False
    hp: bool = False
    counter: int = 0            # accept counter (2 MiB PENDING leaves)
    blocked_epoch: Optional[int] = None
    used: bool = False          # 4 KiB: its original host page was given back by REMOVE
    moved: bool = False         # 4 KiB: mapped to a fresh host page (not the region's)


@dataclass
class Region:
    entry: Entry = field(default_factory=Entry)
    children: Optional[List[Entry]] = None   # 512 entries when non-leaf


def eeq_accept(req, err_level, state, leaf):
    return 1 | ((req | err_level << 3 | state << 6 | int(leaf) << 14) << 32)


class RefTdx:
    """Same rules as the C model; methods mirror unaccepted.tdx.TdxGuest but
    return plain tuples/dicts."""

    def __init__(self, memory_bytes, *, nvcpus=1, backing=1, initial="free", gpaw=52,
                 accept_1g=False, finalized=True, pending_ve_disable=True, flexible=False,
                 policy=0, hp_busy_limit=0):
        self.mem = memory_bytes
        self.nvcpus = nvcpus
        self.backing = backing
        self.shared_bit = 1 << (gpaw - 1)
        self.accept_1g = accept_1g
        self.finalized = finalized
        self.td_ctls = 1 if pending_ve_disable else 0
        self.config_flags = 2 if flexible else 0
        self.policy = policy
        self.hp_busy_limit = hp_busy_limit
        self.importing = False
        self.map_gpa_stalls = 0
        self.epoch = 1
        self.nregions = -(-memory_bytes // M2)
        self.regions: Dict[int, Region] = {}
        self.nonzero = set()        # 4 KiB page numbers holding non-zero data
        self.shared = set()         # 4 KiB page numbers shared in the VMM's view
        self.hp_busy = [0] * nvcpus
        self.irq = [[0, 0] for _ in range(nvcpus)]   # countdown, period
        self.ve = [None] * nvcpus
        self.initial = initial
        if initial == "pending":
            # the VMM pre-AUGed all RAM at the backing level; a last region that
            # is only partly RAM gets 4 KiB pages up to the end of RAM
            for idx in range(self.nregions):
                pages = min(512, (memory_bytes - idx * M2) // K4)
                if pages == 512 and backing == 1:
                    self.regions[idx] = Region(Entry(PENDING))
                else:
                    self.regions[idx] = Region(Entry(NL_MAPPED), [
                        Entry(PENDING if i < pages else FREE) for i in range(512)])
            self.nonzero = set(range(memory_bytes // K4))

    # ---- helpers ---------------------------------------------------------------
    def region(self, idx) -> Region:
        if idx not in self.regions:
            self.regions[idx] = Region()
        return self.regions[idx]

    def decode(self, pi, max_level):
        level = pi & 7
        gpa = pi & ~0xFFF & ((1 << 52) - 1)
        if pi & 0xFF8 or pi >> 52 or level > max_level or gpa % SIZES[level]:
            return None
        if gpa >= self.shared_bit:
            return None
        return gpa, level

    def irq_units(self, vcpu, remaining):
        cd, period = self.irq[vcpu]
        if not cd:
            return remaining, False
        if cd < remaining:
            self.irq[vcpu][0] = period
            return cd, True
        self.irq[vcpu][0] = period if remaining >= cd else cd - remaining
        return remaining, False

    def set_interrupts(self, vcpu, after, period=0):
        self.irq[vcpu] = [after, period if after else 0]

    def _tracked(self, e: Entry):
        return e.blocked_epoch is None or e.blocked_epoch != self.epoch

    def _host_target(self, pi, max_level):
        d = self.decode(pi, max_level)
        if d is None:
            return None, (OPERAND_INVALID | RCX, 0, 0)
        gpa, level = d
        if gpa + SIZES[level] > self.mem:
            raise SimError("RANGE")
        return d, None

    def _walk4k(self, gpa):
        r = self.region(gpa // M2)
        if r.entry.state not in (NL_MAPPED, NL_BLOCKED):
            return None, (EPT_WALK_FAILED | RCX, 1, r.entry.state)
        return r.children[(gpa % M2) // K4], None

    def _add_table(self, r: Region):
        r.entry = Entry(NL_MAPPED, r.entry.locked, r.entry.hp)
        r.children = [Entry() for _ in range(512)]

    # ---- host ------------------------------------------------------------------
    def finalize(self):
        if self.finalized:
            return (OP_STATE_INCORRECT, 0, 0)
        self.finalized = True
        return (SUCCESS, 0, 0)

    # allowed-from states of the page_info SEAMCALLs at (4 KiB, 2 MiB)
    _FREE_REMOVED = {FREE, REMOVED}
    _BLOCKABLE = ({MAPPED, PENDING}, {NL_MAPPED, MAPPED, PENDING})
    _NON_LEAF = {NL_MAPPED, NL_BLOCKED}

    def _enter(self, pi, allowed, *, max_level=2, min_level=0, at_1g=None, add_table=False,
               warn_blocked=False, needs=False, tlb_operand=RCX):
        """The common part of the SEAMCALLs that take page_info: decode, range,
        walk to the entry at the requested level, lock, allowed-from state
        and (needs) blocked-and-tracked, TLB_TRACKING_NOT_DONE carrying
        tlb_operand.  ((gpa, level, region, entry), None)
        or (None, the answer).  at_1g: the answer at level 2 (None raises
        SimError("STATE"), 1 GiB blocking being unmodelled)."""
        if min_level and (pi & 7) < min_level and not (pi & 0xFF8 or pi >> 52):
            return None, (OPERAND_INVALID | RCX, 0, 0)
        d, err = self._host_target(pi, max_level)
        if err:
            return None, err
        gpa, level = d
        if level == 2:
            if at_1g is None:
                raise SimError("STATE")
            return None, at_1g
        r = self.region(gpa // M2)
        e = r.entry
        if level == 0:
            if add_table and r.entry.state == FREE:
                self._add_table(r)
            e, err = self._walk4k(gpa)
            if err:
                return None, err
        if e.locked:
            return None, (OPERAND_BUSY | RCX, 0, 0)
        if e.state not in allowed[level]:
            code = GPA_RANGE_ALREADY_BLOCKED if warn_blocked and e.state in BLOCKED_STATES \
                else EPT_ENTRY_STATE_INCORRECT
            return None, (code | RCX, level, e.state)
        need = self._needs(e, tlb_operand) if needs else None
        if need:
            return None, ((need, level, e.state) if need >> 32 == GPA_RANGE_NOT_BLOCKED >> 32
                          else (need, 0, 0))
        return (gpa, level, r, e), None

    def add(self, pi, data_nonzero=False):
        if self.finalized:
            return (OP_STATE_INCORRECT, 0, 0)
        ref, err = self._enter(pi, ({FREE}, set()), max_level=0, add_table=True)
        if err:
            return err
        gpa, _, _, e = ref
        e.state, e.moved = MAPPED, e.used
        page = gpa // K4
        (self.nonzero.add if data_nonzero else self.nonzero.discard)(page)
        self.shared.discard(page)
        return (SUCCESS, 0, 0)

    def aug(self, pi):
        # allowed before and after finalize (no op-state check here)
        ref, err = self._enter(pi, (self._FREE_REMOVED, self._FREE_REMOVED), max_level=1,
                               add_table=True)
        if err:
            return err
        gpa, level, r, e = ref
        if level == 1:
            r.entry = Entry(PENDING, False, r.entry.hp)
            r.children = None
            first = gpa // K4
            self.nonzero.update(range(first, first + 512))
            self.shared.difference_update(range(first, first + 512))
            return (SUCCESS, 0, 0)
        e.state, e.moved = PENDING, e.used
        self.nonzero.add(gpa // K4)
        self.shared.discard(gpa // K4)
        return (SUCCESS, 0, 0)

    def block(self, pi):
        ref, err = self._enter(pi, self._BLOCKABLE, warn_blocked=True)
        if err:
            return err
        e = ref[3]
        e.state = {NL_MAPPED: NL_BLOCKED, MAPPED: BLOCKED, PENDING: PENDING_BLOCKED}[e.state]
        e.blocked_epoch = self.epoch
        return (SUCCESS, 0, 0)

    def track(self):
        self.epoch += 1
        return (SUCCESS, 0, 0)

    def _needs(self, e: Entry, tlb_operand=RCX):
        """Blocked-and-tracked requirement of a running TD."""
        if not self.finalized:
            return None
        if e.state not in BLOCKED_STATES:
            return GPA_RANGE_NOT_BLOCKED | RCX
        if not self._tracked(e):
            return TLB_TRACKING_NOT_DONE | tlb_operand
        return None

    _NOT_LEAF_1G = (EPT_ENTRY_STATE_INCORRECT | RCX, 2, NL_MAPPED)

    def remove(self, pi):
        ref, err = self._enter(pi, (LEAF_STATES, LEAF_STATES), at_1g=self._NOT_LEAF_1G,
                               needs=True)
        if err:
            return err
        _, level, r, e = ref
        new = REMOVED if self.importing else FREE
        if level == 1:
            r.entry = Entry(new, False, False)
            r.children = None
        else:
            e.state, e.counter, e.blocked_epoch, e.hp, e.used, e.moved = new, 0, None, False, True, False
        return (SUCCESS, 0, 0)

    def unblock(self, pi):
        # every allowed state is blocked: "needs" checks the tracking, which
        # UNBLOCK reports against the SEPT tree rather than RCX
        ref, err = self._enter(pi, (BLOCKED_STATES, BLOCKED_STATES), at_1g=self._NOT_LEAF_1G,
                               needs=True, tlb_operand=SEPT_TREE)
        if err:
            return err
        e = ref[3]
        e.state = {NL_BLOCKED: NL_MAPPED, BLOCKED: MAPPED, PENDING_BLOCKED: PENDING}[e.state]
        e.blocked_epoch = None
        return (SUCCESS, 0, 0)

    def demote(self, pi):
        ref, err = self._enter(pi, (set(), LEAF_STATES), min_level=1, at_1g=self._NOT_LEAF_1G,
                               needs=True)
        if err:
            return err
        _, _, r, e = ref
        child = MAPPED if e.state in (MAPPED, BLOCKED) else PENDING
        r.children = [Entry(child) for _ in range(512)]
        r.entry = Entry(NL_MAPPED)
        return (SUCCESS, 0, 0)

    def promote(self, pi):
        ref, err = self._enter(pi, (set(), self._NON_LEAF), min_level=1,
                               at_1g=(EPT_INVALID_PROMOTE_CONDITIONS | RCX, 0, 0), needs=True)
        if err:
            return err
        _, _, r, e = ref
        # contiguity: a page given back by REMOVE and re-added breaks it
        first = r.children[0].state
        ok = first in (MAPPED, PENDING) and all(
            c.state == first and not c.locked and not c.moved
            for c in r.children)
        if not ok:
            return (EPT_INVALID_PROMOTE_CONDITIONS | RCX, 0, 0)
        r.entry = Entry(first, e.locked, e.hp)
        r.children = None
        return (SUCCESS, 0, 0)

    # ---- guest -------------------------------------------------------------------
    def _lock(self, vcpu, e: Entry, gpa, out):
        if e.locked:
            self.hp_busy[vcpu] = 0
            out["rax"] = OPERAND_BUSY | RCX
            return True
        if e.hp:
            self.hp_busy[vcpu] += 1
            if self.hp_busy_limit and self.hp_busy[vcpu] >= self.hp_busy_limit:
                self.hp_busy[vcpu] = 0
                out.update(exited=True, exit_status=HOST_PRIORITY_BUSY_TIMEOUT, gpa=gpa)
                return True
            out["rax"] = OPERAND_BUSY | RCX
            return True
        self.hp_busy[vcpu] = 0
        return False

    def accept(self, rcx, vcpu=0, rax=6):
        if not self.finalized:
            raise SimError("STATE")
        out = dict(rax=rax, exited=False, interrupted=False, eeq=0, exit_status=0, gpa=0,
                   chunks_zeroed=0, accept_counter=0)

        def exit_(gpa, req, lvl, state, leaf):
            out.update(exited=True, eeq=eeq_accept(req, lvl, state, leaf), gpa=gpa)
            return out

        if rax >> 16:
            out["rax"] = OPERAND_INVALID
            return out
        d = self.decode(rcx, 2 if self.accept_1g else 1)
        if d is None:
            out["rax"] = OPERAND_INVALID | RCX
            return out
        gpa, req = d
        if gpa >= self.nregions * M2:
            return exit_(gpa, req, max(req, 1), FREE, False)
        if req == 2:
            out["rax"] = PAGE_SIZE_MISMATCH | 2
            return out
        r = self.region(gpa // M2)
        e = r.entry
        if req == 1:
            if self._lock(vcpu, e, gpa, out):
                return out
            if e.state != FREE and e.state not in LEAF_STATES:
                out["rax"] = PAGE_SIZE_MISMATCH | 1
                return out
            if e.state == MAPPED:
                out["rax"] = PAGE_ALREADY_ACCEPTED | 1
                return out
            if e.state != PENDING:
                return exit_(gpa, 1, 1, e.state, e.state in LEAF_STATES)
            n, intr = self.irq_units(vcpu, 512 - e.counter)
            out["chunks_zeroed"] = n
            if intr:
                e.counter += n
                out.update(interrupted=True, accept_counter=e.counter)
                return out
            e.counter, e.state = 0, MAPPED
            first = gpa // K4
            self.nonzero.difference_update(range(first, first + 512))
            out["rax"] = SUCCESS
            return out
        if e.state != NL_MAPPED:
            if e.state == MAPPED:
                out["rax"] = PAGE_ALREADY_ACCEPTED | 1
                return out
            return exit_(gpa, 0, 1, e.state, e.state in LEAF_STATES)
        c = r.children[(gpa % M2) // K4]
        if self._lock(vcpu, c, gpa, out):
            return out
        if c.state == REMOVED:
            out["rax"] = PAGE_SIZE_MISMATCH | 0
        elif c.state == MAPPED:
            out["rax"] = PAGE_ALREADY_ACCEPTED | 0
        elif c.state != PENDING:
            return exit_(gpa, 0, 0, c.state, c.state in LEAF_STATES)
        else:
            c.state = MAPPED
            self.nonzero.discard(gpa // K4)
            out.update(rax=SUCCESS, chunks_zeroed=1)
        return out

    def leaf_state(self, pa):
        r = self.region(pa // M2)
        if r.entry.state == NL_MAPPED:
            return r.children[(pa % M2) // K4].state
        return r.entry.state

    def access(self, gpa, write=False, vcpu=0):
        """(outcome, vector, eeq_type, state, data_nonzero)"""
        if not self.finalized:
            raise SimError("STATE")
        if gpa >= self.shared_bit << 1:
            raise SimError("RANGE")
        pa = gpa & ~self.shared_bit
        if pa >= self.mem:
            return (EXIT, 0, 0, 0, False)
        if gpa & self.shared_bit:
            return (OK, 0, 0, 0, False) if pa // K4 in self.shared else (EXIT, 0, 0, 0, False)
        s = self.leaf_state(pa)
        if s == MAPPED:
            if write:
                self.nonzero.add(pa // K4)
                return (OK, 0, 0, s, False)
            return (OK, 0, 0, s, pa // K4 in self.nonzero)
        if s == PENDING and not self.td_ctls & 1:
            if self.ve[vcpu] is not None:
                return (DF, 8, 0, s, False)
            self.ve[vcpu] = (48, 2 if write else 1, gpa)
            return (VE, 20, 0, s, False)
        return (EXIT, 0, 6 if s == PENDING else 0, s, False)

    def veinfo_get(self, vcpu=0):
        v, self.ve[vcpu] = self.ve[vcpu], None
        return (NO_VALID_VE_INFO, None) if v is None else (SUCCESS, v)

    def vm_rd(self, field):
        if field == CONFIG_FLAGS:
            return SUCCESS, self.config_flags
        if field == TD_CTLS:
            return SUCCESS, self.td_ctls
        return METADATA_FIELD_ID_INCORRECT, 0

    def vm_wr(self, field, value, mask):
        if field == TD_CTLS:
            if not self.config_flags & 2:
                return METADATA_FIELD_NOT_WRITABLE, 0
            if value & mask & ~1:
                return METADATA_FIELD_VALUE_NOT_VALID, 0
            old = self.td_ctls
            self.td_ctls = (self.td_ctls & ~(mask & 1)) | (value & mask & 1)
            return SUCCESS, old
        if field == CONFIG_FLAGS:
            return METADATA_FIELD_NOT_WRITABLE, 0
        return METADATA_FIELD_ID_INCORRECT, 0

    # ---- MapGPA and the VMM ----------------------------------------------------------
    def _zap(self, a, b):
        """The VMM drops private pages behind [a, b) (within one region)."""
        idx = a // M2
        r = self.region(idx)
        i0, i1 = (a % M2) // K4, (a % M2) // K4 + (b - a) // K4
        new = REMOVED if self.importing else FREE
        if r.entry.state in LEAF_STATES and not r.entry.locked:
            if i0 == 0 and i1 == 512:
                r.entry = Entry(new)
                r.children = None
                return
            child = MAPPED if r.entry.state in (MAPPED, BLOCKED) else PENDING
            r.children = [Entry(child) for _ in range(512)]
            r.entry = Entry(NL_MAPPED)
        if r.entry.state in (NL_MAPPED, NL_BLOCKED):
            for c in r.children[i0:i1]:
                if c.state in LEAF_STATES and not c.locked:
                    c.state, c.counter, c.blocked_epoch, c.hp = new, 0, None, False
                    c.used, c.moved = True, False

    def tdvmcall(self, r10, r11, r12, r13, vcpu=0):
        """(r10, r11, chunks)"""
        if not self.finalized:
            raise SimError("STATE")
        if r10 != 0 or r11 != 0x10001:
            return (VMCALL_SUBFUNC_UNSUPPORTED, 0, 0)
        gpa, size, s = r12, r13, self.shared_bit
        end = gpa + size
        if size == 0 or end >= 1 << 64 or end > s << 1 or (gpa ^ (end - 1)) & s:
            return (VMCALL_INVALID_OPERAND, 0, 0)
        if (gpa | size) % K4:
            return (VMCALL_ALIGN_ERROR, 0, 0)
        to_shared = bool(gpa & s)
        a, e = gpa & ~s, end - (s if to_shared else 0)
        if e > self.mem:
            return (VMCALL_INVALID_OPERAND, 0, 0)
        if self.map_gpa_stalls:
            self.map_gpa_stalls -= 1
            return (VMCALL_RETRY, gpa, 0)
        chunks = 0
        while a < e:
            cend = min(e, a + M2)          # 2 MiB from a, not 2 MiB-aligned
            b = a
            while b < cend:
                rend = min(cend, (b // M2 + 1) * M2)
                if to_shared:
                    self._zap(b, rend)
                    self.shared.update(range(b // K4, rend // K4))
                else:
                    self.shared.difference_update(range(b // K4, rend // K4))
                b = rend
            chunks += 1
            a = cend
            fired = False
            if self.irq[vcpu][0]:
                self.irq[vcpu][0] -= 1
                if self.irq[vcpu][0] == 0:
                    self.irq[vcpu][0] = self.irq[vcpu][1]
                    fired = True
            if a < e and fired:
                return (VMCALL_RETRY, a | (s if to_shared else 0), chunks)
        return (VMCALL_SUCCESS, 0, chunks)

    def vmm_handle_exit(self, gpa, eeq, exit_status=0, vcpu=0):
        """The action taken ('aug4k', 'aug2m', 'demote', 'release_hp'), or
        raises SimError('HOST')."""
        pa = gpa & ~self.shared_bit
        if exit_status == HOST_PRIORITY_BUSY_TIMEOUT:
            if pa >= self.mem:
                raise SimError("HOST")
            r = self.region(pa // M2)
            r.entry.hp = False
            if r.children:
                r.children[(pa % M2) // K4].hp = False
            return "release_hp"
        if self.policy == 2 or gpa & self.shared_bit or pa >= self.mem or pa // K4 in self.shared:
            raise SimError("HOST")
        r = self.region(pa // M2)
        typ = eeq & 0xF
        if typ == 1:
            info = eeq >> 32
            req, lvl, state = info & 7, (info >> 3) & 7, (info >> 6) & 0xFF
        elif typ == 0:
            req = self.backing
            lvl = 0 if r.entry.state == NL_MAPPED else 1
            state = r.children[(pa % M2) // K4].state if lvl == 0 else r.entry.state
        else:
            raise SimError("HOST")
        if state in (FREE, REMOVED):
            target = 0 if self.policy == 1 else min(req, self.backing, 1)
            base = pa - pa % M2
            region_shared = any(p in self.shared for p in range(base // K4, base // K4 + 512))
            if target == 1 and (base + M2 > self.mem or r.entry.state not in (FREE, REMOVED)
                                or region_shared):
                target = 0
            addr = base if target == 1 else pa - pa % K4
            st = self.aug(addr | target)
            if st[0]:
                raise SimError("HOST")
            return "aug2m" if target == 1 else "aug4k"
        if state == PENDING and lvl == 1 and req < lvl:
            base = pa - pa % M2
            if self.block(base | 1)[0]:
                raise SimError("HOST")
            self.track()
            if self.demote(base | 1)[0]:
                raise SimError("HOST")
            return "demote"
        raise SimError("HOST")

    # ---- accept paths -------------------------------------------------------------
    def execute(self, rcx, vcpu, stats):
        lvl = rcx & 7
        stats["issued_%s" % {0: "4k", 1: "2m", 2: "1g"}[lvl]] += 1
        while True:
            r = self.accept(rcx, vcpu)
            stats["executions"] += 1
            if r["interrupted"]:
                stats["interrupts"] += 1
                continue
            if r["exited"]:
                stats["exits"] += 1
                act = self.vmm_handle_exit(r["gpa"], r["eeq"], r["exit_status"], vcpu)
                stats["vmm_" + {"aug4k": "aug_4k", "aug2m": "aug_2m", "demote": "demote",
                                "release_hp": "release_hp"}[act]] += 1
                continue
            return r["rax"]

    @staticmethod
    def new_stats():
        return {k: 0 for k in ("issued_1g", "issued_2m", "issued_4k", "executions", "exits",
                               "interrupts", "vmm_aug_4k", "vmm_aug_2m", "vmm_demote",
                               "vmm_release_hp")}

    def accept_linux(self, start, end, vcpu=0, stats=None):
        """tdx_accept_memory(): True, or False (the kernel panics)."""
        stats = self.new_stats() if stats is None else stats
        while start < end:
            for lvl in (2, 1, 0):
                size = SIZES[lvl]
                if start % size or end - start < size:
                    continue
                if self.execute(start | lvl, vcpu, stats) == 0:
                    start += size
                    break
            else:
                return False
        return True

    def td_accept_pages(self, start, npages, lvl, vcpu, stats):
        size = SIZES[lvl]
        for k in range(npages):
            addr = start + k * size
            retried = 0
            while True:
                rax = self.execute(addr | lvl, vcpu, stats)
                m = rax & ~0xFFFF
                if rax == 0 or m == PAGE_ALREADY_ACCEPTED:
                    break
                if m == PAGE_SIZE_MISMATCH and lvl > 0:
                    if not self.td_accept_pages(addr, 512, lvl - 1, vcpu, stats):
                        return False
                    break
                if m == OPERAND_BUSY:
                    retried += 1
                    if retried <= 3:
                        continue
                return False
        return True

    def accept_ovmf(self, start, end, vcpu=0, stats=None):
        stats = self.new_stats() if stats is None else stats
        size = end - start
        head = min((-start) % M2, size)
        rest = size - head
        middle = rest - rest % M2 if rest > M2 else 0
        tail = rest - middle
        return ((not head or self.td_accept_pages(start, head // K4, 0, vcpu, stats))
                and (not middle or self.td_accept_pages(start + head, middle // M2, 1, vcpu, stats))
                and (not tail or self.td_accept_pages(start + head + middle, tail // K4, 0, vcpu,
                                                      stats)))

    # ---- inspection ----------------------------------------------------------------
    def entry(self, gpa, level=None):
        """(state, level, locked, hp, accept_counter) of the entry at level (or the
        one the walk ends at)."""
        r = self.region(gpa // M2)
        nl = r.entry.state in (NL_MAPPED, NL_BLOCKED)
        if level == 1 or (level is None and not nl):
            e = r.entry
            return (e.state, 1, e.locked, e.hp, e.counter)
        if not nl:
            raise SimError("STATE")
        c = r.children[(gpa % M2) // K4]
        return (c.state, 0, c.locked, c.hp, 0)

    def count_states(self, start, end):
        counts = {}
        for pa in range(start, end, K4):
            s = self.leaf_state(pa) if self.region(pa // M2).entry.state != NL_BLOCKED else \
                self.region(pa // M2).children[(pa % M2) // K4].state
            counts[s] = counts.get(s, 0) + 1
        return counts
