"""TDX rules checked against the Intel TDX module source, with every expected
value written out by hand (not computed by either model).

Primary source: github.com/intel/tdx-module, branch tdx_1.5 (tag TDX_1.5.01,
commit 72d8cffb214b74ae94d75afce36423020f74b47c).  Each test names the file
and function it follows and says, in our own words, which line of logic
gives the expected value.  The C model and the pure-Python reference
(unaccepted.testing.tdx_reference) must both give it."""
from _tdx_both import G1, K4, M2, Both

# the status words, spelled out (include/auto_gen/tdx_error_codes_defs.h)
SUCCESS = 0
OPERAND_INVALID_RCX = 0xC000010000000001
OPERAND_BUSY_RCX = 0x8000020000000001
OP_STATE_INCORRECT = 0xC000060800000000          # no operand id
GPA_RANGE_NOT_BLOCKED_RCX = 0xC0000B0600000001
GPA_RANGE_ALREADY_BLOCKED_RCX = 0x00000B0700000001
TLB_TRACKING_NOT_DONE_RCX = 0xC0000B0800000001
TLB_TRACKING_NOT_DONE_SEPT_TREE = 0xC0000B0800000092   # operand id 146 = 0x92
EPT_ENTRY_STATE_INCORRECT_RCX = 0xC0000B0D00000001
# public SEPT states
FREE, BLOCKED, PENDING, PENDING_BLOCKED, MAPPED, REMOVED = 0, 1, 2, 3, 4, 5
NL_BLOCKED, NL_MAPPED = 0x81, 0x84


def both(pair, expected):
    """A host SEAMCALL's (status, level, state) in both models."""
    for who, x in zip(("C model", "reference"), pair):
        assert (x.status, x.level, x.state) == expected, (who, x, expected)


def state(b, gpa, level):
    return b.same(b.entry(gpa, level)).state


# ---------------------------------------------------------------- fix 1
def test_aug_is_allowed_before_finalize():
    """include/auto_gen/op_state_lookup.c, seamcall_state_lookup: the row of
    leaf 6 (TDH.MEM.PAGE.AUG) is true for OP_STATE_INITIALIZED (the state
    tdh_mng_init.c leaves the TD in, before tdh_mr_finalize.c moves it to
    RUNNABLE) as well as for RUNNABLE, LIVE_EXPORT and LIVE_IMPORT.
    tdh_mem_page_aug.c, tdh_mem_page_aug: the only op-state gate is
    check_state_map_tdcs_and_lock with the AUG leaf, i.e. that table; nothing
    tests for finalization.  The row of leaf 2 (TDH.MEM.PAGE.ADD) is true for
    INITIALIZED only, and the failed gate (helpers.c,
    check_any_td_state_map_tdcs_and_lock) returns OP_STATE_INCORRECT with no
    operand id."""
    b = Both(G1, finalized=False)
    both(b.aug(0, raw=M2 | 1), (SUCCESS, 0, 0))           # 2 MiB, build phase
    assert state(b, M2, 1) == PENDING
    both(b.aug(0, raw=4 * M2 + 3 * K4), (SUCCESS, 0, 0))  # 4 KiB, build phase
    assert state(b, 4 * M2 + 3 * K4, 0) == PENDING
    both(b.add(8 * M2), (SUCCESS, 0, 0))                   # ADD still fine
    both(b.finalize(), (SUCCESS, 0, 0))
    both(b.aug(0, raw=2 * M2 | 1), (SUCCESS, 0, 0))       # and AUG after finalize
    both(b.add(9 * M2), (OP_STATE_INCORRECT, 0, 0))        # ADD is build-phase only
    # the page AUGed before finalize is an ordinary PENDING page to the guest
    c, r = b.accept(rcx=M2 | 1)
    assert c.rax == r.rax == SUCCESS and not c.exited and not r.exited
    assert state(b, M2, 1) == MAPPED


# ---------------------------------------------------------------- fix 2
def test_unblock_without_track_reports_the_sept_tree_operand():
    """src/vmm_dispatcher/api_calls/tdh_mem_range_unblock.c,
    tdh_mem_range_unblock: when both the entry's state and the TD's op state
    require TLB tracking and the blocking epoch recorded for the page is not
    yet tracked, it fails with TDX_TLB_TRACKING_NOT_DONE plus operand id
    OPERAND_ID_SEPT_TREE (146, tdx_error_codes_defs.h) -- not RCX -- and does
    not fill in the SEPT entry details (RCX/RDX stay zero).  The other
    callers of the same check (tdh_mem_page_remove.c, _demote.c,
    _promote.c) add OPERAND_ID_RCX instead."""
    b = Both(G1)
    # 2 MiB PENDING_BLOCKED
    b.aug(0, raw=0 | 1)
    both(b.block(0, raw=0 | 1), (SUCCESS, 0, 0))
    both(b.unblock(0, raw=0 | 1), (TLB_TRACKING_NOT_DONE_SEPT_TREE, 0, 0))
    assert state(b, 0, 1) == PENDING_BLOCKED                 # nothing changed
    both(b.remove(0, raw=0 | 1), (TLB_TRACKING_NOT_DONE_RCX, 0, 0))   # REMOVE: RCX
    # 4 KiB BLOCKED
    b.aug(0, raw=M2 + K4)
    b.accept(rcx=M2 + K4)
    both(b.block(0, raw=M2 + K4), (SUCCESS, 0, 0))
    both(b.unblock(0, raw=M2 + K4), (TLB_TRACKING_NOT_DONE_SEPT_TREE, 0, 0))
    # NL_BLOCKED (a 2 MiB entry pointing to a 4 KiB table)
    b.aug(0, raw=2 * M2)
    both(b.block(0, raw=2 * M2 | 1), (SUCCESS, 0, 0))
    assert state(b, 2 * M2, 1) == NL_BLOCKED
    both(b.unblock(0, raw=2 * M2 | 1), (TLB_TRACKING_NOT_DONE_SEPT_TREE, 0, 0))
    # once a TRACK has moved the TD epoch past the blocking epoch
    # (helpers.h, is_tlb_tracked), UNBLOCK succeeds and restores the state
    both(b.track(), (SUCCESS, 0, 0))
    both(b.unblock(0, raw=0 | 1), (SUCCESS, 0, 0))
    both(b.unblock(0, raw=M2 + K4), (SUCCESS, 0, 0))
    both(b.unblock(0, raw=2 * M2 | 1), (SUCCESS, 0, 0))
    assert (state(b, 0, 1), state(b, M2 + K4, 0), state(b, 2 * M2, 1)) == \
        (PENDING, MAPPED, NL_MAPPED)


def test_unblock_in_the_build_phase_needs_no_track():
    """op_state_lookup.c, state_flags_lookup: tlb_tracking_required is 0 for
    OP_STATE_INITIALIZED, so tdh_mem_range_unblock skips the tracking check
    before TDH.MR.FINALIZE."""
    b = Both(G1, finalized=False)
    b.add(5 * K4)
    both(b.block(0, raw=5 * K4), (SUCCESS, 0, 0))
    both(b.unblock(0, raw=5 * K4), (SUCCESS, 0, 0))
    assert state(b, 5 * K4, 0) == MAPPED


# ---------------------------------------------------------------- SEPT transitions
def test_sept_transitions_of_the_host_seamcalls():
    """include/auto_gen/sept_state_lookup.c, seamcall_sept_state_lookup (the
    allowed-from states per leaf): AUG (leaf 6) from FREE or REMOVED; RANGE.BLOCK
    (7) from NL_MAPPED, MAPPED or PENDING; RANGE.UNBLOCK (39) from NL_BLOCKED,
    BLOCKED or PENDING_BLOCKED; PAGE.REMOVE (29) from the four leaf states.
    tdh_mem_range_block.c, tdh_mem_range_block: a refused entry that is
    already blocked answers the warning GPA_RANGE_ALREADY_BLOCKED, any other
    refused entry EPT_ENTRY_STATE_INCORRECT, both with operand RCX and the
    entry's level and state.  tdh_mem_page_remove.c, tdh_mem_page_remove: a
    running TD's entry must be blocked first (GPA_RANGE_NOT_BLOCKED|RCX, with
    the entry details)."""
    b = Both(G1)
    # AUG: FREE -> PENDING; again -> refused, the entry details reported
    both(b.aug(0, raw=M2 | 1), (SUCCESS, 0, 0))
    assert state(b, M2, 1) == PENDING
    both(b.aug(0, raw=M2 | 1), (EPT_ENTRY_STATE_INCORRECT_RCX, 1, PENDING))
    # BLOCK: PENDING -> PENDING_BLOCKED; again -> the ALREADY_BLOCKED warning
    both(b.block(0, raw=M2 | 1), (SUCCESS, 0, 0))
    assert state(b, M2, 1) == PENDING_BLOCKED
    both(b.block(0, raw=M2 | 1), (GPA_RANGE_ALREADY_BLOCKED_RCX, 1, PENDING_BLOCKED))
    # BLOCK of a FREE entry: not blocked, so STATE_INCORRECT
    both(b.block(0, raw=3 * M2 | 1), (EPT_ENTRY_STATE_INCORRECT_RCX, 1, FREE))
    # UNBLOCK of an unblocked entry: STATE_INCORRECT
    both(b.unblock(0, raw=3 * M2 | 1), (EPT_ENTRY_STATE_INCORRECT_RCX, 1, FREE))
    # MAPPED -> BLOCKED -> (track) -> FREE through REMOVE
    b.aug(0, raw=4 * M2 | 1)
    b.accept(rcx=4 * M2 | 1)
    assert state(b, 4 * M2, 1) == MAPPED
    both(b.remove(0, raw=4 * M2 | 1), (GPA_RANGE_NOT_BLOCKED_RCX, 1, MAPPED))
    both(b.block(0, raw=4 * M2 | 1), (SUCCESS, 0, 0))
    assert state(b, 4 * M2, 1) == BLOCKED
    both(b.track(), (SUCCESS, 0, 0))
    both(b.remove(0, raw=4 * M2 | 1), (SUCCESS, 0, 0))
    assert state(b, 4 * M2, 1) == FREE
    # REMOVE of a FREE entry: not a leaf state
    both(b.remove(0, raw=4 * M2 | 1), (EPT_ENTRY_STATE_INCORRECT_RCX, 1, FREE))


# ---------------------------------------------------------------- ACCEPT statuses
def test_accept_status_codes():
    """src/td_dispatcher/vm_exits/tdg_mem_page_accept.c.  tdg_mem_page_accept:
    a page_info that fails verify_page_info_input (here a misaligned 2 MiB
    GPA) is OPERAND_INVALID with operand RCX.  check_tdaccept_failure: a walk
    that stops above the requested level at a guest-accessible leaf
    (MAPPED) is PAGE_ALREADY_ACCEPTED, and the caller adds the level the walk
    stopped at (1), not the requested one; at the requested level a non-FREE
    non-leaf entry is PAGE_SIZE_MISMATCH plus that level; a MAPPED leaf is
    PAGE_ALREADY_ACCEPTED plus the level; a failed guest-side entry lock is
    OPERAND_BUSY plus RCX; only a PENDING leaf (tdcall_sept_state_lookup,
    leaf 6) is accepted and becomes MAPPED; anything else is a TD exit
    (async_tdexit_ept_violation), RAX unchanged."""
    b = Both(G1)
    # operand check
    c, r = b.accept(rcx=K4 | 1)
    assert c.rax == r.rax == OPERAND_INVALID_RCX
    # 2 MiB PENDING: accepted
    b.aug(0, raw=0 | 1)
    c, r = b.accept(rcx=0 | 1)
    assert c.rax == r.rax == SUCCESS and c.chunks_zeroed == r.chunks_zeroed == 512
    assert state(b, 0, 1) == MAPPED
    # again at 2 MiB: already accepted at level 1
    c, r = b.accept(rcx=0 | 1)
    assert c.rax == r.rax == 0x00000B0A00000001
    # 4 KiB inside the 2 MiB MAPPED leaf: the walk stopped at level 1
    c, r = b.accept(rcx=7 * K4)
    assert c.rax == r.rax == 0x00000B0A00000001
    # a 2 MiB request on a region split into 4 KiB pages: size mismatch, level 1
    b.aug(0, raw=M2 + K4)
    c, r = b.accept(rcx=M2 | 1)
    assert c.rax == r.rax == 0xC0000B0B00000001 and not c.exited
    # 4 KiB PENDING: accepted; again: already accepted at level 0
    c, r = b.accept(rcx=M2 + K4)
    assert c.rax == r.rax == SUCCESS
    c, r = b.accept(rcx=M2 + K4)
    assert c.rax == r.rax == 0x00000B0A00000000
    # a locked PENDING entry: busy, operand RCX
    b.aug(0, raw=M2 + 2 * K4)
    b.set_lock(M2 + 2 * K4, 0)
    c, r = b.accept(rcx=M2 + 2 * K4)
    assert c.rax == r.rax == OPERAND_BUSY_RCX
    assert state(b, M2 + 2 * K4, 0) == PENDING
    # a FREE 4 KiB entry: a TD exit, RAX still the leaf number (6)
    c, r = b.accept(rcx=M2 + 3 * K4)
    assert c.exited and r.exited and c.rax == r.rax == 6
