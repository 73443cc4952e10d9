/* tdx_module.c - TDX model: the TDX module.  Host SEAMCALLs (ADD, AUG,
 * BLOCK, TRACK, REMOVE, UNBLOCK, DEMOTE, PROMOTE, MR.FINALIZE), guest
 * TDCALLs (TDG.MEM.PAGE.ACCEPT, TDG.VP.VEINFO.GET, TDG.VM.RD/WR,
 * TDG.VP.VMCALL, which hands over to the host), and guest accesses (#VE /
 * TD exits).  Behaviour follows the TDX module 1.5 (docs/tdx.md); where its
 * documentation is silent the comment says "model:". */
#include "tdx_internal.h"

/* ---- page_info decoding (RCX of host calls and ACCEPT) -------------------- */

#define PI_LEVEL_MASK 0x7ull
#define PI_RSVD_MASK (0xFF8ull | 0xFFF0000000000000ull) /* 11:3 and 63:52 */

/* 0 if page_info is well formed for levels [0, max_level], aligned and a
 * private GPA; else the OPERAND_INVALID status. */
static uint64_t decode_page_info(const ua_tdx *t, uint64_t pi, unsigned max_level, uint64_t *gpa,
                                 unsigned *level)
{
    unsigned l = (unsigned)(pi & PI_LEVEL_MASK);
    uint64_t g = pi & ~0xFFFull & ~0xFFF0000000000000ull;
    if ((pi & PI_RSVD_MASK) || l > max_level || (g & (ua_tdx_level_size(l) - 1)))
        return UA_TDX_OPERAND_INVALID | UA_TDX_OPERAND_ID_RCX;
    if (g >= t->private_limit)
        return UA_TDX_OPERAND_INVALID | UA_TDX_OPERAND_ID_RCX;
    *gpa = g;
    *level = l;
    return 0;
}

/* ---- host SEAMCALLs ------------------------------------------------------- */

static ua_status host_begin(ua_tdx *t, uint32_t vcpu, ua_tdx_host_result *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (vcpu >= t->cfg.vcpus)
        return UA_E_VCPU;
    return UA_OK;
}

static inline uint64_t with_rcx(uint64_t status) { return status | UA_TDX_OPERAND_ID_RCX; }

static void set_detail(ua_tdx_host_result *out, unsigned level, unsigned state)
{
    out->level = level;
    out->state = pub_state[state];
}

/* TLB tracking: an entry blocked in the current epoch is not tracked yet. */
static inline int tracked(const ua_tdx *t, const struct region *r, int flagged)
{
    return !flagged || !r->ext || r->ext->block_epoch != epoch_now(t);
}

/* Start blocking something in region r during the current epoch. */
static int block_epoch_enter(ua_tdx *t, uint32_t vcpu, struct region *r)
{
    struct ext *e = ext_get(t, vcpu, r);
    if (!e)
        return UA_E_NOMEM;
    uint32_t now = epoch_now(t);
    if (e->block_epoch != now) {
        /* everything flagged before was blocked in an older, tracked epoch */
        for (unsigned i = 0; i < 512; i++)
            e->pte[i] &= (uint8_t)~P_BEPOCH;
        r->flags &= (uint8_t)~R_BEPOCH;
        e->block_epoch = now;
    }
    return 0;
}

/* Is TLB tracking required before REMOVE/DEMOTE/UNBLOCK/PROMOTE?  Only while
 * the TD may run (after finalize); then the entry must be blocked and
 * tracked.  Returns the error status or 0. */
static uint64_t need_blocked_tracked(const ua_tdx *t, const struct region *r, unsigned s,
                                     int flagged, uint64_t tlb_operand)
{
    if (!t->finalized)
        return 0;
    if (!is_blocked(s))
        return with_rcx(UA_TDX_GPA_RANGE_NOT_BLOCKED);
    if (!tracked(t, r, flagged))
        return UA_TDX_TLB_TRACKING_NOT_DONE | tlb_operand;
    return 0;
}

/* What a SEAMCALL that takes page_info accepts: its levels, its allowed-from
 * states per level (seamcall_sept_state_lookup; a bit per internal state)
 * and the checks that follow. */
#define ST(s) (1u << (s))
#define ST_LEAF (ST(S_PENDING) | ST(S_MAPPED) | ST(S_BLOCKED) | ST(S_PENDING_BLOCKED))
#define ST_BLOCKED (ST(S_BLOCKED) | ST(S_PENDING_BLOCKED) | ST(S_NL_BLOCKED))
#define ST_FREE_REMOVED (ST(S_FREE) | ST(S_REMOVED))

enum {
    AT_1G_NONE,        /* max_level below 1 GiB: the decode rejects level 2 */
    AT_1G_UNMODELLED,  /* UA_E_STATE (model: 1 GiB blocking is not modelled) */
    AT_1G_NOT_LEAF,    /* EPT_ENTRY_STATE_INCORRECT on the NL_MAPPED 1 GiB entry */
    AT_1G_NO_PROMOTE   /* EPT_INVALID_PROMOTE_CONDITIONS: no 1 GiB leaves here */
};

enum { PHASE_ANY, PHASE_BUILD, PHASE_RUNNING }; /* else OP_STATE_INCORRECT */

struct sept_op {
    uint8_t phase;           /* PHASE_*: before or after TDH.MR.FINALIZE */
    uint8_t aug_events;      /* charged as aug_4k / aug_2m by level (else seamcall) */
    uint8_t min_level;       /* a well-formed operand below it: OPERAND_INVALID|1 */
    uint8_t max_level;
    uint8_t at_1g;           /* AT_1G_*: the answer at level 2 */
    uint8_t add_table;       /* 4 KiB on a FREE 2 MiB entry: add the page table first */
    uint8_t blocked_tracked; /* finalized TD: the entry must be blocked and tracked;
                              * the operand id of TLB_TRACKING_NOT_DONE (1: RCX) */
    uint8_t warn_blocked;    /* a blocked state answers GPA_RANGE_ALREADY_BLOCKED */
    uint8_t allowed[2];      /* allowed-from states at 4 KiB and 2 MiB */
};

static const struct sept_op OP_ADD = {PHASE_BUILD, 0, 0, UA_TDX_LEVEL_4K, AT_1G_NONE, 1, 0, 0,
                                      {ST(S_FREE), 0}};
/* AUG is allowed in the build phase too (the module's op-state table lets
 * it run before TDH.MR.FINALIZE as well as after) */
static const struct sept_op OP_AUG = {PHASE_ANY, 1, 0, UA_TDX_LEVEL_2M, AT_1G_NONE, 1, 0, 0,
                                      {ST_FREE_REMOVED, ST_FREE_REMOVED}};
static const struct sept_op OP_BLOCK = {PHASE_ANY, 0, 0, UA_TDX_LEVEL_1G, AT_1G_UNMODELLED, 0, 0, 1,
                                        {ST(S_MAPPED) | ST(S_PENDING),
                                         ST(S_NL_MAPPED) | ST(S_MAPPED) | ST(S_PENDING)}};
static const struct sept_op OP_REMOVE = {PHASE_ANY, 0, 0, UA_TDX_LEVEL_1G, AT_1G_NOT_LEAF, 0, 1, 0,
                                         {ST_LEAF, ST_LEAF}};
/* every allowed state is blocked, so "blocked and tracked" checks tracking;
 * UNBLOCK reports missing tracking against the SEPT tree, not RCX */
static const struct sept_op OP_UNBLOCK = {PHASE_ANY, 0, 0, UA_TDX_LEVEL_1G, AT_1G_NOT_LEAF, 0,
                                          UA_TDX_OPERAND_ID_SEPT_TREE, 0,
                                          {ST_BLOCKED, ST_BLOCKED}};
static const struct sept_op OP_DEMOTE = {PHASE_ANY, 0, UA_TDX_LEVEL_2M, UA_TDX_LEVEL_1G, AT_1G_NOT_LEAF,
                                         0, 1, 0, {0, ST_LEAF}};
static const struct sept_op OP_PROMOTE = {PHASE_ANY, 0, UA_TDX_LEVEL_2M, UA_TDX_LEVEL_1G,
                                          AT_1G_NO_PROMOTE, 0, 1, 0,
                                          {0, ST(S_NL_MAPPED) | ST(S_NL_BLOCKED)}};

/* The entry a SEAMCALL works on. */
struct sept_ref {
    uint64_t gpa;
    unsigned level;
    unsigned i;        /* 4 KiB index within the region */
    unsigned s;        /* the entry's state */
    struct region *r;
    uint8_t *pte;      /* the 4 KiB entry; NULL at 2 MiB */
};

/* The common part of the SEAMCALLs that take page_info: check the arguments
 * (host_begin), charge the call, check the TD's phase (OP_STATE_INCORRECT),
 * decode page_info (OPERAND_INVALID|1), check the range against guest RAM (UA_E_RANGE), walk to the
 * entry at the requested level (host walks go through NL_BLOCKED tables;
 * EPT_WALK_FAILED|1 with the entry the walk stopped at), then its lock
 * (OPERAND_BUSY|1), its state against the allowed-from set
 * (EPT_ENTRY_STATE_INCORRECT|1 or GPA_RANGE_ALREADY_BLOCKED|1, with level and
 * state) and, where required, blocking and TLB tracking.  Returns 1 when the
 * SEAMCALL ends here: out->status holds its answer, or *st a simulator
 * error.  Inlined: AUG is on the 4 KiB-backing accept path. */
static inline __attribute__((always_inline)) int
sept_enter(ua_tdx *t, uint32_t vcpu, uint64_t pi, const struct sept_op *op,
           ua_tdx_host_result *out, struct sept_ref *ref, ua_status *st)
{
    if ((*st = host_begin(t, vcpu, out)))
        return 1;
    unsigned lvl = (unsigned)(pi & PI_LEVEL_MASK);
    charge(t, vcpu,
           !op->aug_events             ? UA_EV_SEAMCALL
           : lvl == UA_TDX_LEVEL_2M    ? UA_EV_AUG_2M
           : lvl == UA_TDX_LEVEL_4K    ? UA_EV_AUG_4K
                                       : UA_EV_SEAMCALL,
           1);
    if (op->phase != PHASE_ANY && !t->finalized != (op->phase == PHASE_BUILD)) {
        out->status = UA_TDX_OP_STATE_INCORRECT;
        return 1;
    }
    if (op->min_level && lvl < op->min_level && !(pi & PI_RSVD_MASK)) {
        out->status = with_rcx(UA_TDX_OPERAND_INVALID);
        return 1;
    }
    uint64_t bad = decode_page_info(t, pi, op->max_level, &ref->gpa, &ref->level);
    if (bad) {
        out->status = bad;
        return 1;
    }
    unsigned level = ref->level;
    if (ref->gpa + ua_tdx_level_size(level) > t->cfg.memory_bytes) {
        *st = UA_E_RANGE;
        return 1;
    }
    struct region *r = region_w(t, ref->gpa / UA_2M);
    if (!r) {
        *st = UA_E_NOMEM;
        return 1;
    }
    ref->r = r;
    ref->i = (unsigned)((ref->gpa % UA_2M) / UA_4K);
    if (level == UA_TDX_LEVEL_1G) {
        /* the 1 GiB entry of guest RAM is always a non-leaf in this model */
        if (op->at_1g == AT_1G_UNMODELLED) {
            *st = UA_E_STATE;
        } else if (op->at_1g == AT_1G_NO_PROMOTE) {
            out->status = with_rcx(UA_TDX_EPT_INVALID_PROMOTE_CONDITIONS);
        } else {
            out->status = with_rcx(UA_TDX_EPT_ENTRY_STATE_INCORRECT);
            out->level = UA_TDX_LEVEL_1G;
            out->state = UA_TDX_SEPT_NL_MAPPED;
        }
        return 1;
    }
    int locked, flagged;
    if (level == UA_TDX_LEVEL_2M) {
        ref->pte = NULL;
        ref->s = r->state;
        locked = r->flags & R_LOCK;
        flagged = r->flags & R_BEPOCH;
    } else {
        if (op->add_table && r->state == S_FREE && (*st = add_table(t, vcpu, r)))
            return 1;
        if (r->state != S_NL_MAPPED && r->state != S_NL_BLOCKED) {
            out->status = with_rcx(UA_TDX_EPT_WALK_FAILED);
            set_detail(out, UA_TDX_LEVEL_2M, r->state);
            return 1;
        }
        struct ext *e = ext_get(t, vcpu, r);
        if (!e) {
            *st = UA_E_NOMEM;
            return 1;
        }
        uint8_t *p = &e->pte[ref->i];
        ref->pte = p;
        ref->s = *p & P_STATE;
        locked = *p & P_LOCK;
        flagged = *p & P_BEPOCH;
    }
    unsigned s = ref->s;
    if (locked) {
        out->status = with_rcx(UA_TDX_OPERAND_BUSY);
        return 1;
    }
    if (!(op->allowed[level] & ST(s))) {
        out->status = with_rcx(op->warn_blocked && is_blocked(s) ? UA_TDX_GPA_RANGE_ALREADY_BLOCKED
                                                                 : UA_TDX_EPT_ENTRY_STATE_INCORRECT);
        set_detail(out, level, s);
        return 1;
    }
    if (op->blocked_tracked) {
        uint64_t e = need_blocked_tracked(t, r, s, flagged, op->blocked_tracked);
        if (e) {
            out->status = e;
            if ((e & UA_TDX_STATUS_CLASS_MASK) == UA_TDX_GPA_RANGE_NOT_BLOCKED)
                set_detail(out, level, s);
            return 1;
        }
    }
    return 0;
}

/* ADD / AUG at 4 KiB: give the entry a host page, its new state and the
 * page's content bit; the GPA stops being shared in the VMM's view. */
static inline __attribute__((always_inline)) ua_status
map_page_4k(ua_tdx *t, uint32_t vcpu, const struct sept_ref *e, unsigned state,
            int nonzero, ua_tdx_host_result *out)
{
    struct region *r = e->r;
    ua_status st = give_page(t, vcpu, r, e->i);
    if (st)
        return st;
    *e->pte = (uint8_t)((*e->pte & ~P_STATE) | state);
    if (nonzero)
        bit_set(r->ext->dirty, e->i);
    else
        bit_clr(r->ext->dirty, e->i);
    bit_clr(r->ext->shared, e->i);
    out->hpa = page_hpa(r, e->i, 0);
    return UA_OK;
}

ua_status ua_tdx_host_finalize(ua_tdx *t, uint32_t vcpu, ua_tdx_host_result *out)
{
    ua_status st = host_begin(t, vcpu, out);
    if (st)
        return st;
    charge(t, vcpu, UA_EV_SEAMCALL, 1);
    if (t->finalized)
        out->status = UA_TDX_OP_STATE_INCORRECT;
    else
        t->finalized = 1;
    return UA_OK;
}

ua_status ua_tdx_host_add(ua_tdx *t, uint32_t vcpu, uint64_t pi, uint32_t data_nonzero,
                          ua_tdx_host_result *out)
{
    struct sept_ref e;
    ua_status st;
    if (sept_enter(t, vcpu, pi, &OP_ADD, out, &e, &st))
        return st;
    return map_page_4k(t, vcpu, &e, S_MAPPED, data_nonzero, out);
}

ua_status ua_tdx_host_add_range(ua_tdx *t, uint32_t vcpu, uint64_t start, uint64_t end,
                                uint32_t data_nonzero, ua_tdx_host_result *out, uint64_t *done)
{
    ua_status st = host_begin(t, vcpu, out);
    if (done)
        *done = 0;
    if (st)
        return st;
    if ((start | end) % UA_4K)
        return UA_E_ALIGN;
    if (start > end || end > t->cfg.memory_bytes)
        return UA_E_RANGE;
    for (uint64_t a = start; a < end; a += UA_4K) {
        if ((st = ua_tdx_host_add(t, vcpu, a, data_nonzero, out)))
            return st;
        if (out->status != UA_TDX_SUCCESS)
            return UA_OK;
        if (done)
            (*done)++;
    }
    return UA_OK;
}

ua_status ua_tdx_host_aug(ua_tdx *t, uint32_t vcpu, uint64_t pi, ua_tdx_host_result *out)
{
    struct sept_ref e;
    ua_status st;
    if (sept_enter(t, vcpu, pi, &OP_AUG, out, &e, &st))
        return st;
    struct region *r = e.r;
    if (e.level == UA_TDX_LEVEL_2M) {
        r->state = S_PENDING;
        r->counter = 0;
        r->frame = alloc_frame(t, vcpu);
        if (r->ext) {
            memset(r->ext->dirty, 0xFF, sizeof(r->ext->dirty));
            memset(r->ext->shared, 0, sizeof(r->ext->shared));
        } else {
            r->flags = (uint8_t)((r->flags & ~R_SHARED) | R_GARBAGE);
        }
        out->hpa = page_hpa(r, 0, 1);
        return UA_OK;
    }
    return map_page_4k(t, vcpu, &e, S_PENDING, 1, out); /* AUG: host garbage until ACCEPT */
}

ua_status ua_tdx_host_block(ua_tdx *t, uint32_t vcpu, uint64_t pi, ua_tdx_host_result *out)
{
    struct sept_ref e;
    ua_status st;
    if (sept_enter(t, vcpu, pi, &OP_BLOCK, out, &e, &st))
        return st;
    struct region *r = e.r;
    if ((st = block_epoch_enter(t, vcpu, r)))
        return st;
    unsigned s = e.s;
    if (e.level == UA_TDX_LEVEL_2M) {
        r->state = s == S_NL_MAPPED ? S_NL_BLOCKED : s == S_MAPPED ? S_BLOCKED : S_PENDING_BLOCKED;
        r->flags |= R_BEPOCH;
        return UA_OK;
    }
    *e.pte = (uint8_t)((*e.pte & ~P_STATE) | (s == S_MAPPED ? S_BLOCKED : S_PENDING_BLOCKED) |
                       P_BEPOCH);
    return UA_OK;
}

ua_status ua_tdx_host_track(ua_tdx *t, uint32_t vcpu, ua_tdx_host_result *out)
{
    ua_status st = host_begin(t, vcpu, out);
    if (st)
        return st;
    charge(t, vcpu, UA_EV_SEAMCALL, 1);
    /* model: every vCPU leaves the old epoch at once, so one TRACK completes
     * the TLB tracking of everything blocked before it */
    __atomic_fetch_add(&t->epoch, 1, __ATOMIC_RELAXED);
    return UA_OK;
}

ua_status ua_tdx_host_remove(ua_tdx *t, uint32_t vcpu, uint64_t pi, ua_tdx_host_result *out)
{
    struct sept_ref e;
    ua_status st;
    if (sept_enter(t, vcpu, pi, &OP_REMOVE, out, &e, &st))
        return st;
    struct region *r = e.r;
    unsigned free_state = t->importing ? S_REMOVED : S_FREE;
    if (e.level == UA_TDX_LEVEL_2M) {
        out->hpa = page_hpa(r, 0, 1);
        r->state = (uint8_t)free_state;
        r->counter = 0;
        r->frame = 0;
        r->flags &= (uint8_t)~(R_BEPOCH | R_HP);
        return UA_OK;
    }
    out->hpa = page_hpa(r, e.i, 0);
    *e.pte = (uint8_t)(free_state | P_USED);
    return UA_OK;
}

ua_status ua_tdx_host_unblock(ua_tdx *t, uint32_t vcpu, uint64_t pi, ua_tdx_host_result *out)
{
    struct sept_ref e;
    ua_status st;
    if (sept_enter(t, vcpu, pi, &OP_UNBLOCK, out, &e, &st))
        return st;
    unsigned s = e.s;
    if (e.level == UA_TDX_LEVEL_2M) {
        e.r->state = s == S_NL_BLOCKED ? S_NL_MAPPED : s == S_BLOCKED ? S_MAPPED : S_PENDING;
        e.r->flags &= (uint8_t)~R_BEPOCH;
        return UA_OK;
    }
    *e.pte = (uint8_t)((*e.pte & ~(P_STATE | P_BEPOCH)) | (s == S_BLOCKED ? S_MAPPED : S_PENDING));
    return UA_OK;
}

/* Forget the fresh 4 KiB host pages of a region that becomes one 2 MiB
 * mapping again (DEMOTE's children, PROMOTE's leaf use the 2 MiB frame). */
static void drop_ovr(ua_tdx *t, uint32_t vcpu, struct ext *x)
{
    if (x->ovr) {
        free(x->ovr);
        x->ovr = NULL;
        usage_add(t, vcpu, -(int64_t)(512 * sizeof(uint32_t)));
    }
}

ua_status ua_tdx_host_demote(ua_tdx *t, uint32_t vcpu, uint64_t pi, ua_tdx_host_result *out)
{
    struct sept_ref e;
    ua_status st;
    if (sept_enter(t, vcpu, pi, &OP_DEMOTE, out, &e, &st))
        return st;
    struct region *r = e.r;
    unsigned s = e.s;
    struct ext *x = ext_get(t, vcpu, r);
    if (!x)
        return UA_E_NOMEM;
    /* children take the unblocked state of the parent; a partially done
     * 2 MiB ACCEPT is forgotten (its accept_counter bits are cleaned) */
    unsigned cs = (s == S_MAPPED || s == S_BLOCKED) ? S_MAPPED : S_PENDING;
    memset(x->pte, (int)cs, sizeof(x->pte));
    drop_ovr(t, vcpu, x);
    r->state = S_NL_MAPPED;
    r->counter = 0;
    r->flags &= (uint8_t)~(R_BEPOCH | R_HP);
    return UA_OK;
}

ua_status ua_tdx_host_promote(ua_tdx *t, uint32_t vcpu, uint64_t pi, ua_tdx_host_result *out)
{
    struct sept_ref e;
    ua_status st;
    if (sept_enter(t, vcpu, pi, &OP_PROMOTE, out, &e, &st))
        return st;
    struct region *r = e.r;
    /* all 512 entries: unlocked leaves in one state (all MAPPED or all
     * PENDING) on contiguous host pages of the region's 2 MiB frame */
    uint8_t first = pte_get(t, r, 0);
    unsigned cs = first & P_STATE;
    int ok = r->frame != 0 && (cs == S_MAPPED || cs == S_PENDING);
    for (unsigned i = 0; ok && i < 512; i++) {
        uint8_t p = pte_get(t, r, i);
        if ((p & P_STATE) != cs || (p & (P_OVR | P_LOCK)))
            ok = 0;
    }
    if (!ok) {
        out->status = with_rcx(UA_TDX_EPT_INVALID_PROMOTE_CONDITIONS);
        return UA_OK;
    }
    if (r->ext) {
        memset(r->ext->pte, 0, sizeof(r->ext->pte));
        drop_ovr(t, vcpu, r->ext);
    }
    r->state = (uint8_t)cs;
    r->counter = 0;
    r->flags &= (uint8_t)~R_BEPOCH;
    out->hpa = page_hpa(r, 0, 1);
    return UA_OK;
}

/* Entry at page_info for the contention knobs. */
static ua_status knob_entry(ua_tdx *t, uint64_t pi, uint8_t **pte, struct region **reg)
{
    uint64_t gpa;
    unsigned level;
    if (!t)
        return UA_E_INVAL;
    if (decode_page_info(t, pi, UA_TDX_LEVEL_2M, &gpa, &level))
        return UA_E_INVAL;
    if (gpa >= t->cfg.memory_bytes)
        return UA_E_RANGE;
    struct region *r = region_w(t, gpa / UA_2M);
    if (!r)
        return UA_E_NOMEM;
    *reg = r;
    *pte = NULL;
    if (level == UA_TDX_LEVEL_4K) {
        if (r->state != S_NL_MAPPED && r->state != S_NL_BLOCKED)
            return UA_E_STATE;
        struct ext *e = ext_get(t, TDX_NO_VCPU, r);
        if (!e)
            return UA_E_NOMEM;
        *pte = &e->pte[(gpa % UA_2M) / UA_4K];
    }
    return UA_OK;
}

/* Set or clear a contention bit of the entry at page_info: pte_bit in a
 * 4 KiB entry, region_bit in a 2 MiB one. */
static ua_status knob_set(ua_tdx *t, uint64_t pi, int on, uint8_t pte_bit, uint8_t region_bit)
{
    uint8_t *p;
    struct region *r;
    ua_status st = knob_entry(t, pi, &p, &r);
    if (st)
        return st;
    uint8_t *bits = p ? p : &r->flags;
    uint8_t bit = p ? pte_bit : region_bit;
    *bits = on ? (uint8_t)(*bits | bit) : (uint8_t)(*bits & ~bit);
    return UA_OK;
}

ua_status ua_tdx_host_set_lock(ua_tdx *t, uint64_t pi, int locked)
{
    return knob_set(t, pi, locked, P_LOCK, R_LOCK);
}

ua_status ua_tdx_host_set_priority(ua_tdx *t, uint64_t pi, int hp)
{
    return knob_set(t, pi, hp, P_HP, R_HP);
}

/* ---- TDG.MEM.PAGE.ACCEPT ------------------------------------------------------ */

static void accept_exit(ua_tdx_tdcall_result *out, uint64_t gpa, unsigned req, unsigned err_level,
                        unsigned state, int leaf)
{
    out->exited = 1;
    out->exit_reason = UA_TDX_EXIT_REASON_EPT_VIOLATION;
    out->eeq_type = UA_TDX_EEQ_TYPE_ACCEPT;
    out->exit_qualification = ua_tdx_eeq_accept(req, err_level, pub_state[state], (unsigned)leaf);
    out->gpa = gpa;
}

/* Lock acquisition by the guest: TDEL held -> OPERAND_BUSY; HP held ->
 * OPERAND_BUSY as well (the dispatcher converts BUSY_HOST_PRIORITY), or a TD
 * exit once hp_busy_limit answers in a row were busy.  Returns 1 when the
 * execution ends here. */
static int guest_lock(ua_tdx *t, struct vcpu_state *v, int locked, int hp, uint64_t gpa,
                      ua_tdx_tdcall_result *out)
{
    if (locked) {
        v->hp_busy = 0;
        out->rax = with_rcx(UA_TDX_OPERAND_BUSY);
        return 1;
    }
    if (hp) {
        if (t->cfg.hp_busy_limit && ++v->hp_busy >= t->cfg.hp_busy_limit) {
            v->hp_busy = 0;
            out->exited = 1;
            out->exit_status = UA_TDX_HOST_PRIORITY_BUSY_TIMEOUT;
            out->gpa = gpa;
            return 1;
        }
        out->rax = with_rcx(UA_TDX_OPERAND_BUSY);
        return 1;
    }
    v->hp_busy = 0;
    return 0;
}

/* ACCEPT at the entry of the requested level (steps 3b-3e): its lock, then
 * a non-leaf that is not FREE (NL_* at 2 MiB, and the REMOVED quirk at
 * either level) -> PAGE_SIZE_MISMATCH | level, MAPPED -> PAGE_ALREADY_
 * ACCEPTED | level, anything but PENDING -> VIOLATION (a TD exit).  Returns
 * 1 when the execution ends here; 0 for a PENDING entry to zero. */
static inline __attribute__((always_inline)) int
accept_entry_done(ua_tdx *t, uint32_t vcpu, struct vcpu_state *v, uint64_t gpa, unsigned req,
                  unsigned s, int locked, int hp, ua_tdx_tdcall_result *out)
{
    if (guest_lock(t, v, locked, hp, gpa, out)) {
        if (out->exited)
            charge(t, vcpu, UA_EV_TD_EXIT, 1);
        return 1;
    }
    if (s != S_FREE && !is_leaf(s)) {
        out->rax = UA_TDX_PAGE_SIZE_MISMATCH | req;
        return 1;
    }
    if (s == S_MAPPED) {
        out->rax = UA_TDX_PAGE_ALREADY_ACCEPTED | req;
        return 1;
    }
    if (s != S_PENDING) {
        accept_exit(out, gpa, req, req, s, is_leaf(s));
        charge(t, vcpu, UA_EV_TD_EXIT, 1);
        return 1;
    }
    return 0;
}

ua_status ua_tdx_tdcall_accept(ua_tdx *t, uint32_t vcpu, uint64_t rax, uint64_t rcx,
                               ua_tdx_tdcall_result *out)
{
    if (UA_UNLIKELY(!t || !out))
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (UA_UNLIKELY(vcpu >= t->cfg.vcpus))
        return UA_E_VCPU;
    if (UA_UNLIKELY((rax & 0xFFFF) != UA_TDX_TDCALL_MEM_PAGE_ACCEPT))
        return UA_E_INVAL;
    if (UA_UNLIKELY(!t->finalized))
        return UA_E_STATE;
    struct vcpu_state *v = &t->vcpus[vcpu];
    charge(t, vcpu, UA_EV_TDCALL_ACCEPT, 1);
    out->rax = rax; /* an exit or interrupt leaves RAX as it was */
    if (UA_UNLIKELY(rax >> 16)) {
        out->rax = UA_TDX_OPERAND_INVALID | UA_TDX_OPERAND_ID_RAX;
        return UA_OK;
    }
    uint64_t gpa;
    unsigned req;
    uint64_t bad = decode_page_info(t, rcx, t->cfg.accept_1g ? UA_TDX_LEVEL_1G : UA_TDX_LEVEL_2M,
                                    &gpa, &req);
    if (UA_UNLIKELY(bad)) {
        out->rax = bad;
        return UA_OK;
    }
    /* GPAs outside guest RAM: no SEPT below the top levels (model: the walk
     * stops at a FREE entry of the requested level or at 2 MiB) */
    if (UA_UNLIKELY(gpa >= t->nregions * UA_2M)) {
        unsigned lvl = req > UA_TDX_LEVEL_2M ? req : UA_TDX_LEVEL_2M;
        accept_exit(out, gpa, req, lvl, S_FREE, 0);
        charge(t, vcpu, UA_EV_TD_EXIT, 1);
        return UA_OK;
    }
    if (req == UA_TDX_LEVEL_1G) {
        /* a module taking 1 GiB operands: the 1 GiB entry of guest RAM is
         * always a non-leaf here (the host maps at most 2 MiB) */
        out->rax = UA_TDX_PAGE_SIZE_MISMATCH | UA_TDX_LEVEL_1G;
        return UA_OK;
    }
    struct region *r = region_w(t, gpa / UA_2M);
    if (UA_UNLIKELY(!r))
        return UA_E_NOMEM;
    unsigned rs = r->state;

    if (req == UA_TDX_LEVEL_2M) {
        if (accept_entry_done(t, vcpu, v, gpa, req, rs, r->flags & R_LOCK, r->flags & R_HP, out))
            return UA_OK;
        int intr;
        uint32_t remaining = 512u - r->counter;
        uint32_t n = irq_units(v, remaining, &intr);
        charge(t, vcpu, UA_EV_ZERO_4K, n);
        out->chunks_zeroed = n;
        if (intr) {
            r->counter = (uint16_t)(r->counter + n);
            out->interrupted = 1;
            out->accept_counter = r->counter;
            return UA_OK;
        }
        r->counter = 0;
        r->state = S_MAPPED;
        if (r->ext)
            memset(r->ext->dirty, 0, sizeof(r->ext->dirty));
        r->flags &= (uint8_t)~R_GARBAGE;
        out->rax = UA_TDX_SUCCESS;
        return UA_OK;
    }

    /* 4 KiB request: the walk passes the 2 MiB entry only if it is NL_MAPPED */
    if (rs != S_NL_MAPPED) {
        if (rs == S_MAPPED) {
            out->rax = UA_TDX_PAGE_ALREADY_ACCEPTED | UA_TDX_LEVEL_2M;
            return UA_OK;
        }
        accept_exit(out, gpa, req, UA_TDX_LEVEL_2M, rs, is_leaf(rs));
        charge(t, vcpu, UA_EV_TD_EXIT, 1);
        return UA_OK;
    }
    unsigned i = (unsigned)((gpa % UA_2M) / UA_4K);
    uint8_t p = pte_get(t, r, i);
    unsigned s = p & P_STATE;
    if (accept_entry_done(t, vcpu, v, gpa, req, s, p & P_LOCK, p & P_HP, out))
        return UA_OK;
    struct ext *e = ext_get(t, vcpu, r);
    if (UA_UNLIKELY(!e))
        return UA_E_NOMEM;
    e->pte[i] = (uint8_t)((e->pte[i] & ~P_STATE) | S_MAPPED);
    bit_clr(e->dirty, i);
    charge(t, vcpu, UA_EV_ZERO_4K, 1);
    out->chunks_zeroed = 1;
    out->rax = UA_TDX_SUCCESS;
    return UA_OK;
}

/* The common case of a guest's 4 KiB accepts, batched: n consecutive
 * ACCEPTs at 4 KiB from gpa (all in one region), each executed until it
 * returns, with KVM serving the exits, exactly as the single steps do it
 * (ua_tdx_tdcall_accept, then tdx_kvm_exit_default and ua_tdx_host_aug):
 *   - a PENDING page: one execution, zeroed, MAPPED;
 *   - a FREE page: the execution exits (VIOLATION, TD exit), KVM AUGs the
 *     4 KiB page (a host page, garbage until accepted), the re-execution
 *     zeroes it, MAPPED.
 * Stops before the first page that would do anything else: locked or
 * host-priority entries, a page the VMM holds as shared (KVM stops the TD),
 * MAPPED (ALREADY_ACCEPTED), blocked or REMOVED entries, a region that is
 * not NL_MAPPED; the caller runs that page through the single steps.  The
 * events are charged once per run with the same totals; *augs gets the
 * AUGs (= exits) done.  Preconditions, checked by the caller: the TD is
 * finalized, the host has no exit handler of its own (KVM), vcpu is valid,
 * [gpa, gpa + n * 4 KiB) is guest RAM inside one 2 MiB region. */
unsigned tdx_accept_run_4k(ua_tdx *t, uint32_t vcpu, uint64_t gpa, unsigned n, unsigned *augs)
{
    *augs = 0;
    struct region *r = region_w(t, gpa / UA_2M);
    if (UA_UNLIKELY(!r) || r->state != S_NL_MAPPED)
        return 0;
    unsigned i0 = (unsigned)((gpa % UA_2M) / UA_4K);
    uint8_t first = pte_get(t, r, i0);
    unsigned fs = first & P_STATE;
    if ((first & (P_LOCK | P_HP)) || (fs != S_PENDING && fs != S_FREE) ||
        (fs == S_FREE && page_shared(r, i0)))
        return 0;   /* nothing done, nothing allocated: the single steps take it */
    struct ext *e = ext_get(t, vcpu, r);   /* the first page's AUG or ACCEPT allocates it too */
    if (UA_UNLIKELY(!e))
        return 0;
    unsigned i = i0, aug = 0;
    const uint64_t ones = 0x0101010101010101ull;
    for (; i < i0 + n; i++) {
        /* eight aligned entries at once when all eight are bare FREE
         * entries (no flags, the default host page unused, not shared) or
         * all bare PENDING: each page as below */
        while (!(i & 7) && i + 8 <= i0 + n) {
            uint64_t w;
            memcpy(&w, &e->pte[i], sizeof(w));
            uint64_t bits = 0xFFull << (i & 63);
            if (w == S_FREE * ones && !(e->shared[i >> 6] & bits))
                aug += 8;
            else if (w != S_PENDING * ones)
                break;
            w = S_MAPPED * ones;
            memcpy(&e->pte[i], &w, sizeof(w));
            e->dirty[i >> 6] &= ~bits;
            i += 8;
        }
        if (i >= i0 + n)
            break;
        uint8_t p = e->pte[i];
        if (p & (P_LOCK | P_HP))
            break;
        if ((p & P_STATE) == S_FREE) {
            /* the exit, then KVM's AUG at 4 KiB (map_page_4k) */
            if (bit_get(e->shared, i) || give_page(t, vcpu, r, i))
                break;
            p = e->pte[i];   /* give_page may have changed the host page bits */
            aug++;
        } else if ((p & P_STATE) != S_PENDING) {
            break;
        }
        e->pte[i] = (uint8_t)((p & ~P_STATE) | S_MAPPED);
        bit_clr(e->dirty, i);
    }
    unsigned done = i - i0;
    if (done) {
        t->vcpus[vcpu].hp_busy = 0;
        charge(t, vcpu, UA_EV_TDCALL_ACCEPT, done + aug);
        charge(t, vcpu, UA_EV_TD_EXIT, aug);
        charge(t, vcpu, UA_EV_AUG_4K, aug);
        charge(t, vcpu, UA_EV_ZERO_4K, done);
    }
    *augs = aug;
    return done;
}

/* ---- guest accesses ----------------------------------------------------------- */

ua_status ua_tdx_guest_access(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint32_t write,
                              ua_tdx_access_result *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (vcpu >= t->cfg.vcpus)
        return UA_E_VCPU;
    if (!t->finalized)
        return UA_E_STATE;
    if (gpa >= (t->private_limit << 1))
        return UA_E_RANGE; /* beyond GPAW: not an address the guest can form */
    uint64_t qual = write ? 2 : 1;
    int shared_access = (gpa & t->private_limit) != 0;
    uint64_t pa = gpa & ~t->private_limit;
    if (pa >= t->cfg.memory_bytes) {
        /* model: no RAM there; the VMM sees a plain EPT violation (MMIO) */
        out->outcome = UA_TDX_ACCESS_EXIT;
        out->exit_reason = UA_TDX_EXIT_REASON_EPT_VIOLATION;
        out->eeq_type = UA_TDX_EEQ_TYPE_NONE;
        out->exit_qualification = qual;
        charge(t, vcpu, UA_EV_TD_EXIT, 1);
        return UA_OK;
    }
    struct region *r = region_w(t, pa / UA_2M);
    if (!r)
        return UA_E_NOMEM;
    unsigned i = (unsigned)((pa % UA_2M) / UA_4K);
    if (shared_access) {
        /* shared EPT: present only if the VMM converted this GPA to shared */
        if (page_shared(r, i))
            return UA_OK;
        out->outcome = UA_TDX_ACCESS_EXIT;
        out->exit_reason = UA_TDX_EXIT_REASON_EPT_VIOLATION;
        out->eeq_type = UA_TDX_EEQ_TYPE_NONE;
        out->exit_qualification = qual;
        charge(t, vcpu, UA_EV_TD_EXIT, 1);
        return UA_OK;
    }
    int nl = r->state == S_NL_MAPPED;
    unsigned s = nl ? (pte_get(t, r, i) & P_STATE) : r->state;
    if (r->state == S_NL_BLOCKED)
        s = S_NL_BLOCKED;
    out->state = pub_state[s];
    if (s == S_MAPPED) {
        if (write) {
            struct ext *e = ext_get(t, vcpu, r);
            if (!e)
                return UA_E_NOMEM;
            bit_set(e->dirty, i);
        } else {
            out->data_nonzero = (uint32_t)page_dirty(r, i);
        }
        return UA_OK;
    }
    if (s == S_PENDING &&
        !(__atomic_load_n(&t->td_ctls, __ATOMIC_RELAXED) & UA_TDX_TD_CTLS_PENDING_VE_DISABLE)) {
        struct vcpu_state *v = &t->vcpus[vcpu];
        charge(t, vcpu, UA_EV_VE, 1);
        if (v->ve.valid) {
            out->outcome = UA_TDX_ACCESS_DF;
            out->vector = UA_TDX_VECTOR_DF;
            return UA_OK;
        }
        v->ve.valid = 0xFFFFFFFFu;
        v->ve.exit_reason = UA_TDX_EXIT_REASON_EPT_VIOLATION;
        v->ve.exit_qualification = qual;
        v->ve.gla = gpa;
        v->ve.gpa = gpa;
        out->outcome = UA_TDX_ACCESS_VE;
        out->vector = UA_TDX_VECTOR_VE;
        out->exit_reason = UA_TDX_EXIT_REASON_EPT_VIOLATION;
        out->exit_qualification = qual;
        return UA_OK;
    }
    out->outcome = UA_TDX_ACCESS_EXIT;
    out->exit_reason = UA_TDX_EXIT_REASON_EPT_VIOLATION;
    out->eeq_type = s == S_PENDING ? UA_TDX_EEQ_TYPE_PENDING_EPT_VIOLATION : UA_TDX_EEQ_TYPE_NONE;
    out->exit_qualification = qual;
    out->extended_exit_qualification = out->eeq_type;
    charge(t, vcpu, UA_EV_TD_EXIT, 1);
    return UA_OK;
}

ua_status ua_tdx_tdcall_veinfo_get(ua_tdx *t, uint32_t vcpu, ua_tdx_veinfo *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (vcpu >= t->cfg.vcpus)
        return UA_E_VCPU;
    charge(t, vcpu, UA_EV_TDCALL_OTHER, 1);
    struct vcpu_state *v = &t->vcpus[vcpu];
    if (!v->ve.valid) {
        out->status = UA_TDX_NO_VALID_VE_INFO;
        return UA_OK;
    }
    *out = v->ve;
    out->status = UA_TDX_SUCCESS;
    memset(&v->ve, 0, sizeof(v->ve));
    return UA_OK;
}

ua_status ua_tdx_tdcall_vm_rd(ua_tdx *t, uint32_t vcpu, uint64_t field, uint64_t *status,
                              uint64_t *value)
{
    if (!t || !status || !value)
        return UA_E_INVAL;
    if (vcpu >= t->cfg.vcpus)
        return UA_E_VCPU;
    charge(t, vcpu, UA_EV_TDCALL_OTHER, 1);
    *value = 0;
    *status = UA_TDX_SUCCESS;
    if (field == UA_TDX_TDCS_CONFIG_FLAGS)
        *value = t->cfg.config_flags;
    else if (field == UA_TDX_TDCS_TD_CTLS)
        *value = __atomic_load_n(&t->td_ctls, __ATOMIC_RELAXED);
    else
        *status = UA_TDX_METADATA_FIELD_ID_INCORRECT;
    return UA_OK;
}

ua_status ua_tdx_tdcall_vm_wr(ua_tdx *t, uint32_t vcpu, uint64_t field, uint64_t value,
                              uint64_t mask, uint64_t *status, uint64_t *old_value)
{
    if (!t || !status || !old_value)
        return UA_E_INVAL;
    if (vcpu >= t->cfg.vcpus)
        return UA_E_VCPU;
    charge(t, vcpu, UA_EV_TDCALL_OTHER, 1);
    *old_value = 0;
    *status = UA_TDX_SUCCESS;
    if (field == UA_TDX_TDCS_CONFIG_FLAGS) {
        *status = UA_TDX_METADATA_FIELD_NOT_WRITABLE;
    } else if (field == UA_TDX_TDCS_TD_CTLS) {
        /* model: writable only with CONFIG_FLAGS.FLEXIBLE_PENDING_VE, and only
         * PENDING_VE_DISABLE (bit 0) is modelled */
        if (!(t->cfg.config_flags & UA_TDX_CONFIG_FLEXIBLE_PENDING_VE))
            *status = UA_TDX_METADATA_FIELD_NOT_WRITABLE;
        else if (value & mask & ~(uint64_t)UA_TDX_TD_CTLS_PENDING_VE_DISABLE)
            *status = UA_TDX_METADATA_FIELD_VALUE_NOT_VALID;
        else {
            /* TD-scope: other vCPUs read it concurrently */
            uint64_t m = mask & UA_TDX_TD_CTLS_PENDING_VE_DISABLE;
            uint64_t old = __atomic_load_n(&t->td_ctls, __ATOMIC_RELAXED), nv;
            do {
                nv = (old & ~m) | (value & m);
            } while (!__atomic_compare_exchange_n(&t->td_ctls, &old, nv, 0, __ATOMIC_RELAXED,
                                                  __ATOMIC_RELAXED));
            *old_value = old;
        }
    } else {
        *status = UA_TDX_METADATA_FIELD_ID_INCORRECT;
    }
    return UA_OK;
}

/* ---- TDG.VP.VMCALL ------------------------------------------------------------ */

/* The module hands the registers to the host (the TD exits); the host's
 * answer comes back in R10/R11. */
ua_status ua_tdx_tdvmcall(ua_tdx *t, uint32_t vcpu, uint64_t r10, uint64_t r11, uint64_t r12,
                          uint64_t r13, ua_tdx_vmcall_result *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (vcpu >= t->cfg.vcpus)
        return UA_E_VCPU;
    if (!t->finalized)
        return UA_E_STATE;
    charge(t, vcpu, UA_EV_TDVMCALL, 1);
    out->rax = UA_TDX_SUCCESS;
    ua_host *h = t->host;
    if (UA_LIKELY(!h->ops.tdx_vmcall))
        return ua_host_kvm_tdx_vmcall(h, t, vcpu, r10, r11, r12, r13, out);
    return h->ops.tdx_vmcall(h, t, vcpu, r10, r11, r12, r13, out);
}
