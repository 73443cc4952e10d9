/* tdx.c - Intel TDX model: Secure EPT, host SEAMCALLs, TDG.MEM.PAGE.ACCEPT,
 * guest accesses (#VE / TD exits), TDG.VM.RD/WR, VE info, MapGPA and the VMM
 * that services TD exits.
 *
 * Behaviour follows the TDX module 1.5 as described in the project's
 * vendors.md Part B / E.2; where that text is silent the module's observable
 * behaviour is modelled and the comment says "model:".
 *
 * Storage.  The SEPT is two levels deep here: one 16-byte entry per 2 MiB
 * region (the 2 MiB-level SEPT entry: a 2 MiB leaf, FREE/REMOVED, or a
 * non-leaf pointing to 512 4 KiB entries) and, only for regions that need
 * it, an extension holding 512 one-byte 4 KiB entries plus per-4 KiB content
 * and sharing bits.  Regions live in 4096-entry chunks (8 GiB of guest)
 * reached through a directory; a chunk is allocated on first write, and
 * reads of an absent chunk synthesise the initial state.  Levels above
 * 2 MiB are implicit NL_MAPPED entries for guest RAM (model: the VMM has
 * built the upper paging structures; 1 GiB leaves are not modelled).
 *
 * Host physical addresses are identity tokens: the host hands out 2 MiB
 * frames (32-bit frame numbers) and, for 4 KiB pages re-added after a
 * REMOVE, fresh 4 KiB frames recorded in a per-region override array.  A
 * 4 KiB page of a region otherwise uses frame * 2 MiB + index * 4 KiB.
 *
 * Page contents are modelled by one bit per 4 KiB page: "holds non-zero
 * data".  AUG leaves host garbage (non-zero), ACCEPT zeroes, guest stores
 * set the bit.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tdx_internal.h"

/* ---- encodings ----------------------------------------------------------- */

/* Internal state codes (3 bits).  NL_* exist only at the 2 MiB level. */
enum {
    S_FREE = 0,
    S_PENDING = 1,
    S_MAPPED = 2,
    S_BLOCKED = 3,
    S_PENDING_BLOCKED = 4,
    S_REMOVED = 5,
    S_NL_MAPPED = 6,
    S_NL_BLOCKED = 7
};

static const uint8_t pub_state[8] = {
    UA_TDX_SEPT_FREE,   UA_TDX_SEPT_PENDING, UA_TDX_SEPT_MAPPED,    UA_TDX_SEPT_BLOCKED,
    UA_TDX_SEPT_PENDING_BLOCKED, UA_TDX_SEPT_REMOVED, UA_TDX_SEPT_NL_MAPPED, UA_TDX_SEPT_NL_BLOCKED,
};

/* The PS ("leaf") bit of the state encoding: set for MAPPED/PENDING and their
 * blocked forms, clear for FREE, REMOVED and non-leaf entries. */
static inline int is_leaf(unsigned s) { return s >= S_PENDING && s <= S_PENDING_BLOCKED; }
static inline int is_blocked(unsigned s)
{
    return s == S_BLOCKED || s == S_PENDING_BLOCKED || s == S_NL_BLOCKED;
}

/* 4 KiB entry byte */
#define P_STATE 0x07u
#define P_LOCK 0x08u   /* TDEL held */
#define P_HP 0x10u     /* host priority */
#define P_OVR 0x20u    /* HPA is ext->ovr[i] */
#define P_USED 0x40u   /* the default HPA slot was given back by a REMOVE */
#define P_BEPOCH 0x80u /* blocked during ext->block_epoch */

/* region flags */
#define R_LOCK 0x01u
#define R_HP 0x02u
#define R_GARBAGE 0x04u /* no ext: all 512 pages hold non-zero data */
#define R_BEPOCH 0x08u  /* 2 MiB entry blocked during ext->block_epoch */
#define R_SHARED 0x10u  /* no ext: all 512 GPAs are shared in the VMM's view */

#define CHUNK_SHIFT 12u
#define CHUNK_REGIONS (1u << CHUNK_SHIFT)
#define FRAME_POOL_2M 0x80000000u /* first 2 MiB frame handed out by AUG */
#define HPA_POOL_4K (1ull << 53)  /* base of fresh 4 KiB pages */

struct ext {
    uint32_t block_epoch;
    uint32_t reserved;
    uint32_t *ovr;      /* 512 4 KiB frame numbers, allocated on demand */
    uint64_t dirty[8];  /* page holds non-zero data */
    uint64_t shared[8]; /* GPA is shared in the VMM's view */
    uint8_t pte[512];
};

struct region {
    uint8_t state;
    uint8_t flags;
    uint16_t counter; /* accept_counter of a 2 MiB PENDING leaf */
    uint32_t frame;   /* host 2 MiB frame, 0 = none */
    struct ext *ext;
};

struct vcpu_state {
    uint32_t irq_countdown; /* work units until the next interrupt, 0 = none armed */
    uint32_t irq_period;
    uint32_t hp_busy;       /* host-priority busy answers in a row */
    uint32_t pad;
    ua_tdx_veinfo ve;
} __attribute__((aligned(64)));

struct ua_tdx {
    ua_tdx_config cfg;
    uint64_t nregions;
    uint64_t nchunks;
    uint64_t private_limit;   /* 2^(gpaw-1): the shared bit */
    struct region **dir;
    pthread_mutex_t dir_lock;
    uint8_t tmpl_state, tmpl_flags, nl_default_pte;
    uint32_t finalized, importing, policy;
    uint32_t map_gpa_stalls; /* atomic */
    uint32_t epoch;
    uint64_t td_ctls;
    uint64_t next_frame;      /* atomic */
    uint64_t next_frame4k;    /* atomic */
    uint64_t mem_usage;       /* atomic */
    ua_cost *cost;
    struct vcpu_state *vcpus;
};

static inline void charge(ua_tdx *t, uint32_t vcpu, int ev, uint64_t n)
{
    if (t->cost)
        ua_cost_charge(t->cost, vcpu, ev, n);
}

void ua_tdx_charge_internal(ua_tdx *t, uint32_t vcpu, int event, uint64_t n)
{
    charge(t, vcpu, event, n);
}

/* The TD's TLB epoch: TRACK may run on a VMM thread while vCPUs run. */
static inline uint32_t epoch_now(const ua_tdx *t) { return __atomic_load_n(&t->epoch, __ATOMIC_RELAXED); }

static inline void usage_add(ua_tdx *t, int64_t n)
{
    __atomic_fetch_add(&t->mem_usage, (uint64_t)n, __ATOMIC_RELAXED);
}

static inline int bit_get(const uint64_t *w, unsigned i) { return (w[i >> 6] >> (i & 63)) & 1; }
static inline void bit_set(uint64_t *w, unsigned i) { w[i >> 6] |= 1ull << (i & 63); }
static inline void bit_clr(uint64_t *w, unsigned i) { w[i >> 6] &= ~(1ull << (i & 63)); }

/* ---- the directory ------------------------------------------------------- */

static void region_init(const ua_tdx *t, struct region *r, uint64_t idx)
{
    r->state = t->tmpl_state;
    r->flags = t->tmpl_flags;
    r->counter = 0;
    r->frame = t->tmpl_state == S_FREE ? 0 : (uint32_t)(idx + 1);
    r->ext = NULL;
}

static struct region *chunk_alloc(ua_tdx *t, uint64_t c)
{
    pthread_mutex_lock(&t->dir_lock);
    struct region *chunk = t->dir[c];
    if (!chunk) {
        uint64_t first = c << CHUNK_SHIFT;
        uint64_t n = t->nregions - first < CHUNK_REGIONS ? t->nregions - first : CHUNK_REGIONS;
        chunk = malloc(n * sizeof(*chunk));
        if (chunk) {
            for (uint64_t i = 0; i < n; i++)
                region_init(t, &chunk[i], first + i);
            usage_add(t, (int64_t)(n * sizeof(*chunk)));
            __atomic_store_n(&t->dir[c], chunk, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&t->dir_lock);
    return chunk;
}

/* Region for writing (allocates its chunk); NULL only when out of memory. */
static inline struct region *region_w(ua_tdx *t, uint64_t idx)
{
    uint64_t c = idx >> CHUNK_SHIFT;
    struct region *chunk = __atomic_load_n(&t->dir[c], __ATOMIC_ACQUIRE);
    if (UA_UNLIKELY(!chunk)) {
        chunk = chunk_alloc(t, c);
        if (!chunk)
            return NULL;
    }
    return &chunk[idx & (CHUNK_REGIONS - 1)];
}

/* Region for reading; an absent chunk yields the initial state in *tmp. */
static inline const struct region *region_r(const ua_tdx *t, uint64_t idx, struct region *tmp)
{
    struct region *chunk = __atomic_load_n(&t->dir[idx >> CHUNK_SHIFT], __ATOMIC_ACQUIRE);
    if (!chunk) {
        region_init(t, tmp, idx);
        return tmp;
    }
    return &chunk[idx & (CHUNK_REGIONS - 1)];
}

static struct ext *ext_get(ua_tdx *t, struct region *r)
{
    if (r->ext)
        return r->ext;
    struct ext *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    if (r->flags & R_GARBAGE)
        memset(e->dirty, 0xFF, sizeof(e->dirty));
    if (r->flags & R_SHARED)
        memset(e->shared, 0xFF, sizeof(e->shared));
    r->flags &= (uint8_t)~(R_GARBAGE | R_SHARED | R_BEPOCH);
    if (r->state == S_NL_MAPPED || r->state == S_NL_BLOCKED)
        memset(e->pte, t->nl_default_pte, sizeof(e->pte));
    e->block_epoch = epoch_now(t) - 1;
    usage_add(t, (int64_t)sizeof(*e));
    r->ext = e;
    return e;
}

/* The 4 KiB entry i of a non-leaf region (synthesised when no ext yet). */
static inline uint8_t pte_get(const ua_tdx *t, const struct region *r, unsigned i)
{
    return r->ext ? r->ext->pte[i] : t->nl_default_pte;
}

static inline int page_dirty(const struct region *r, unsigned i)
{
    return r->ext ? bit_get(r->ext->dirty, i) : !!(r->flags & R_GARBAGE);
}

static inline int page_shared(const struct region *r, unsigned i)
{
    return r->ext ? bit_get(r->ext->shared, i) : !!(r->flags & R_SHARED);
}

static inline uint32_t alloc_frame(ua_tdx *t)
{
    return (uint32_t)__atomic_fetch_add(&t->next_frame, 1, __ATOMIC_RELAXED);
}

/* HPA of 4 KiB page i of a region (the governing leaf must hold one). */
static uint64_t page_hpa(const struct region *r, unsigned i, int leaf2m)
{
    if (!leaf2m && r->ext && (r->ext->pte[i] & P_OVR))
        return HPA_POOL_4K + (uint64_t)r->ext->ovr[i] * UA_TDX_SZ_4K;
    if (!r->frame)
        return 0;
    return (uint64_t)r->frame * UA_TDX_SZ_2M + (uint64_t)i * UA_TDX_SZ_4K;
}

/* Give page i a host page for ADD/AUG: its default slot the first time,
 * else a fresh 4 KiB page.  0 or UA_E_NOMEM. */
static int give_page(ua_tdx *t, struct region *r, unsigned i)
{
    struct ext *e = r->ext;
    uint8_t *p = &e->pte[i];
    *p &= (uint8_t)~P_OVR;
    if (!(*p & P_USED))
        return 0;
    if (!e->ovr) {
        e->ovr = calloc(512, sizeof(uint32_t));
        if (!e->ovr)
            return UA_E_NOMEM;
        usage_add(t, 512 * sizeof(uint32_t));
    }
    e->ovr[i] = (uint32_t)__atomic_fetch_add(&t->next_frame4k, 1, __ATOMIC_RELAXED);
    *p |= P_OVR;
    return 0;
}

/* Turn a FREE 2 MiB entry into a non-leaf with 512 FREE 4 KiB entries (the
 * implicit TDH.MEM.SEPT.ADD the VMM does before mapping 4 KiB pages). */
static int add_table(ua_tdx *t, uint32_t vcpu, struct region *r)
{
    struct ext *e = ext_get(t, r);
    if (!e)
        return UA_E_NOMEM;
    memset(e->pte, 0, sizeof(e->pte));
    r->state = S_NL_MAPPED;
    r->frame = alloc_frame(t);
    r->counter = 0;
    charge(t, vcpu, UA_EV_SEAMCALL, 1);
    return 0;
}

/* ---- creation ------------------------------------------------------------ */

void ua_tdx_config_default(ua_tdx_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->memory_bytes = 1ull << 30;
    cfg->nvcpus = 1;
    cfg->gpaw = 52;
    cfg->backing = UA_TDX_LEVEL_2M;
    cfg->initial = UA_TDX_INIT_FREE;
    cfg->vmm_policy = UA_TDX_VMM_AUG_REQUESTED;
    cfg->attributes = UA_TDX_ATTR_SEPT_VE_DISABLE;
    cfg->finalized = 1;
}

ua_status ua_tdx_create(const ua_tdx_config *cfg, ua_tdx **out)
{
    if (!cfg || !out)
        return UA_E_INVAL;
    *out = NULL;
    if (cfg->nvcpus == 0 || cfg->nvcpus > UA_MAX_VCPUS)
        return UA_E_VCPU;
    if (cfg->gpaw != 48 && cfg->gpaw != 52)
        return UA_E_INVAL;
    if (cfg->backing > UA_TDX_LEVEL_2M || cfg->initial > UA_TDX_INIT_PENDING ||
        cfg->vmm_policy > UA_TDX_VMM_REFUSE)
        return UA_E_INVAL;
    if (cfg->memory_bytes == 0 || cfg->memory_bytes % UA_TDX_SZ_4K)
        return UA_E_ALIGN;
    uint64_t private_limit = 1ull << (cfg->gpaw - 1);
    /* 2^32 - 2^31 region frames are reserved for the initial identity frames */
    if (cfg->memory_bytes > private_limit || cfg->memory_bytes > (1ull << 52))
        return UA_E_RANGE;

    ua_tdx *t = calloc(1, sizeof(*t));
    if (!t)
        return UA_E_NOMEM;
    t->cfg = *cfg;
    t->private_limit = private_limit;
    t->nregions = (cfg->memory_bytes + UA_TDX_SZ_2M - 1) / UA_TDX_SZ_2M;
    t->nchunks = (t->nregions + CHUNK_REGIONS - 1) >> CHUNK_SHIFT;
    t->dir = calloc(t->nchunks, sizeof(*t->dir));
    if (posix_memalign((void **)&t->vcpus, 64, sizeof(*t->vcpus) * cfg->nvcpus))
        t->vcpus = NULL;
    if (!t->dir || !t->vcpus) {
        free(t->dir);
        free(t->vcpus);
        free(t);
        return UA_E_NOMEM;
    }
    memset(t->vcpus, 0, sizeof(*t->vcpus) * cfg->nvcpus);
    pthread_mutex_init(&t->dir_lock, NULL);
    t->mem_usage = sizeof(*t) + t->nchunks * sizeof(*t->dir) + sizeof(*t->vcpus) * cfg->nvcpus;
    t->finalized = cfg->finalized ? 1 : 0;
    t->policy = cfg->vmm_policy;
    t->epoch = 1;
    t->next_frame = FRAME_POOL_2M;
    t->next_frame4k = 0;
    t->td_ctls = (cfg->attributes & UA_TDX_ATTR_SEPT_VE_DISABLE) ? UA_TDX_TD_CTLS_PENDING_VE_DISABLE : 0;
    if (cfg->initial == UA_TDX_INIT_PENDING) {
        /* model: the VMM AUGed all private RAM at the backing level before the
         * guest runs (a "prefault"); the pages hold host garbage until ACCEPT */
        t->tmpl_state = cfg->backing == UA_TDX_LEVEL_2M ? S_PENDING : S_NL_MAPPED;
        t->tmpl_flags = R_GARBAGE;
        t->nl_default_pte = S_PENDING;
        uint64_t tail = cfg->memory_bytes % UA_TDX_SZ_2M;
        if (tail) {
            /* the last region is only partly RAM: 4 KiB pages up to its end */
            struct region *r = region_w(t, t->nregions - 1);
            struct ext *e = r ? ext_get(t, r) : NULL;
            if (!e) {
                ua_tdx_destroy(t);
                return UA_E_NOMEM;
            }
            unsigned n = (unsigned)(tail / UA_TDX_SZ_4K);
            r->state = S_NL_MAPPED;
            memset(e->pte, S_FREE, sizeof(e->pte));
            memset(e->pte, S_PENDING, n);
            memset(e->dirty, 0, sizeof(e->dirty));
            for (unsigned i = 0; i < n; i++)
                bit_set(e->dirty, i);
        }
    }
    *out = t;
    return UA_OK;
}

void ua_tdx_destroy(ua_tdx *t)
{
    if (!t)
        return;
    for (uint64_t c = 0; c < t->nchunks; c++) {
        struct region *chunk = t->dir[c];
        if (!chunk)
            continue;
        uint64_t first = c << CHUNK_SHIFT;
        uint64_t n = t->nregions - first < CHUNK_REGIONS ? t->nregions - first : CHUNK_REGIONS;
        for (uint64_t i = 0; i < n; i++) {
            if (chunk[i].ext) {
                free(chunk[i].ext->ovr);
                free(chunk[i].ext);
            }
        }
        free(chunk);
    }
    pthread_mutex_destroy(&t->dir_lock);
    free(t->dir);
    free(t->vcpus);
    free(t);
}

ua_status ua_tdx_config_get(const ua_tdx *t, ua_tdx_config *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    *out = t->cfg;
    out->vmm_policy = t->policy;
    out->finalized = t->finalized;
    return UA_OK;
}

void ua_tdx_set_cost(ua_tdx *t, ua_cost *cost)
{
    if (t)
        t->cost = cost;
}

ua_status ua_tdx_set_vmm_policy(ua_tdx *t, uint32_t policy)
{
    if (!t || policy > UA_TDX_VMM_REFUSE)
        return UA_E_INVAL;
    t->policy = policy;
    return UA_OK;
}

uint64_t ua_tdx_memory_usage(const ua_tdx *t)
{
    return t ? __atomic_load_n(&t->mem_usage, __ATOMIC_RELAXED) : 0;
}

int ua_tdx_is_finalized(const ua_tdx *t) { return t ? (int)t->finalized : 0; }

void ua_tdx_set_importing(ua_tdx *t, int importing)
{
    if (t)
        t->importing = importing ? 1 : 0;
}

ua_status ua_tdx_set_map_gpa_stalls(ua_tdx *t, uint32_t count)
{
    if (!t)
        return UA_E_INVAL;
    __atomic_store_n(&t->map_gpa_stalls, count, __ATOMIC_RELAXED);
    return UA_OK;
}

ua_status ua_tdx_set_interrupts(ua_tdx *t, uint32_t vcpu, uint32_t after, uint32_t period)
{
    if (!t)
        return UA_E_INVAL;
    if (vcpu >= t->cfg.nvcpus)
        return UA_E_VCPU;
    t->vcpus[vcpu].irq_countdown = after;
    t->vcpus[vcpu].irq_period = after ? period : 0;
    return UA_OK;
}

/* Interruptible work: of `remaining` units, how many run before a check
 * point finds an interrupt pending.  There is no check after the last unit,
 * so an interrupt arriving then is simply delivered on return. */
static inline uint32_t irq_units(struct vcpu_state *v, uint32_t remaining, int *interrupted)
{
    uint32_t n = remaining;
    *interrupted = 0;
    if (v->irq_countdown) {
        if (v->irq_countdown < remaining) {
            n = v->irq_countdown;
            *interrupted = 1;
        }
        if (n >= v->irq_countdown)
            v->irq_countdown = v->irq_period;
        else
            v->irq_countdown -= n;
    }
    return n;
}

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
    if (vcpu >= t->cfg.nvcpus)
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
static int block_epoch_enter(ua_tdx *t, struct region *r)
{
    struct ext *e = ext_get(t, r);
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
    struct region *r = region_w(t, ref->gpa / UA_TDX_SZ_2M);
    if (!r) {
        *st = UA_E_NOMEM;
        return 1;
    }
    ref->r = r;
    ref->i = (unsigned)((ref->gpa % UA_TDX_SZ_2M) / UA_TDX_SZ_4K);
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
        struct ext *e = ext_get(t, r);
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
map_page_4k(ua_tdx *t, const struct sept_ref *e, unsigned state,
            int nonzero, ua_tdx_host_result *out)
{
    struct region *r = e->r;
    ua_status st = give_page(t, r, e->i);
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
    return map_page_4k(t, &e, S_MAPPED, data_nonzero, out);
}

ua_status ua_tdx_host_add_range(ua_tdx *t, uint32_t vcpu, uint64_t start, uint64_t end,
                                uint32_t data_nonzero, ua_tdx_host_result *out, uint64_t *done)
{
    ua_status st = host_begin(t, vcpu, out);
    if (done)
        *done = 0;
    if (st)
        return st;
    if ((start | end) % UA_TDX_SZ_4K)
        return UA_E_ALIGN;
    if (start > end || end > t->cfg.memory_bytes)
        return UA_E_RANGE;
    for (uint64_t a = start; a < end; a += UA_TDX_SZ_4K) {
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
        r->frame = alloc_frame(t);
        if (r->ext) {
            memset(r->ext->dirty, 0xFF, sizeof(r->ext->dirty));
            memset(r->ext->shared, 0, sizeof(r->ext->shared));
        } else {
            r->flags = (uint8_t)((r->flags & ~R_SHARED) | R_GARBAGE);
        }
        out->hpa = page_hpa(r, 0, 1);
        return UA_OK;
    }
    return map_page_4k(t, &e, S_PENDING, 1, out); /* AUG: host garbage until ACCEPT */
}

ua_status ua_tdx_host_block(ua_tdx *t, uint32_t vcpu, uint64_t pi, ua_tdx_host_result *out)
{
    struct sept_ref e;
    ua_status st;
    if (sept_enter(t, vcpu, pi, &OP_BLOCK, out, &e, &st))
        return st;
    struct region *r = e.r;
    if ((st = block_epoch_enter(t, r)))
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
static void drop_ovr(ua_tdx *t, struct ext *x)
{
    if (x->ovr) {
        free(x->ovr);
        x->ovr = NULL;
        usage_add(t, -(int64_t)(512 * sizeof(uint32_t)));
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
    struct ext *x = ext_get(t, r);
    if (!x)
        return UA_E_NOMEM;
    /* children take the unblocked state of the parent; a partially done
     * 2 MiB ACCEPT is forgotten (its accept_counter bits are cleaned) */
    unsigned cs = (s == S_MAPPED || s == S_BLOCKED) ? S_MAPPED : S_PENDING;
    memset(x->pte, (int)cs, sizeof(x->pte));
    drop_ovr(t, x);
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
        drop_ovr(t, r->ext);
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
    struct region *r = region_w(t, gpa / UA_TDX_SZ_2M);
    if (!r)
        return UA_E_NOMEM;
    *reg = r;
    *pte = NULL;
    if (level == UA_TDX_LEVEL_4K) {
        if (r->state != S_NL_MAPPED && r->state != S_NL_BLOCKED)
            return UA_E_STATE;
        struct ext *e = ext_get(t, r);
        if (!e)
            return UA_E_NOMEM;
        *pte = &e->pte[(gpa % UA_TDX_SZ_2M) / UA_TDX_SZ_4K];
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

/* ---- inspection ------------------------------------------------------------ */

ua_status ua_tdx_entry(const ua_tdx *t, uint64_t gpa, int level, ua_tdx_entry_info *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (level < -1 || level > UA_TDX_LEVEL_1G)
        return UA_E_INVAL;
    if (gpa >= t->cfg.memory_bytes)
        return UA_E_RANGE;
    if (level == UA_TDX_LEVEL_1G) {
        out->state = UA_TDX_SEPT_NL_MAPPED;
        out->level = UA_TDX_LEVEL_1G;
        return UA_OK;
    }
    struct region tmp;
    const struct region *r = region_r(t, gpa / UA_TDX_SZ_2M, &tmp);
    unsigned i = (unsigned)((gpa % UA_TDX_SZ_2M) / UA_TDX_SZ_4K);
    int nl = r->state == S_NL_MAPPED || r->state == S_NL_BLOCKED;
    out->shared = (uint32_t)page_shared(r, i);
    if (level == UA_TDX_LEVEL_2M || (level == -1 && !nl)) {
        out->state = pub_state[r->state];
        out->level = UA_TDX_LEVEL_2M;
        out->is_leaf = (uint32_t)is_leaf(r->state);
        out->locked = !!(r->flags & R_LOCK);
        out->host_priority = !!(r->flags & R_HP);
        out->accept_counter = r->counter;
        if (out->is_leaf) {
            out->hpa = page_hpa(r, i, 1);
            out->data_nonzero = (uint32_t)page_dirty(r, i);
        }
        return UA_OK;
    }
    if (!nl)
        return UA_E_STATE;
    uint8_t p = pte_get(t, r, i);
    unsigned s = p & P_STATE;
    out->state = pub_state[s];
    out->level = UA_TDX_LEVEL_4K;
    out->is_leaf = (uint32_t)is_leaf(s);
    out->locked = !!(p & P_LOCK);
    out->host_priority = !!(p & P_HP);
    if (out->is_leaf) {
        out->hpa = page_hpa(r, i, 0);
        out->data_nonzero = (uint32_t)page_dirty(r, i);
    }
    return UA_OK;
}

static ua_status range_check(const ua_tdx *t, uint64_t start, uint64_t end)
{
    if (!t)
        return UA_E_INVAL;
    if ((start | end) % UA_TDX_SZ_4K)
        return UA_E_ALIGN;
    if (start > end || end > t->cfg.memory_bytes)
        return UA_E_RANGE;
    return UA_OK;
}

ua_status ua_tdx_count_states(const ua_tdx *t, uint64_t start, uint64_t end, uint64_t *counts)
{
    ua_status st = range_check(t, start, end);
    if (st)
        return st;
    if (!counts)
        return UA_E_INVAL;
    memset(counts, 0, 6 * sizeof(*counts));
    for (uint64_t a = start; a < end;) {
        uint64_t idx = a / UA_TDX_SZ_2M;
        uint64_t rend = (idx + 1) * UA_TDX_SZ_2M < end ? (idx + 1) * UA_TDX_SZ_2M : end;
        struct region tmp;
        const struct region *r = region_r(t, idx, &tmp);
        if (r->state == S_NL_MAPPED || r->state == S_NL_BLOCKED) {
            for (uint64_t b = a; b < rend; b += UA_TDX_SZ_4K) {
                unsigned i = (unsigned)((b % UA_TDX_SZ_2M) / UA_TDX_SZ_4K);
                counts[pub_state[pte_get(t, r, i) & P_STATE]]++;
            }
        } else {
            counts[pub_state[r->state]] += (rend - a) / UA_TDX_SZ_4K;
        }
        a = rend;
    }
    return UA_OK;
}

ua_status ua_tdx_count_nonzero(const ua_tdx *t, uint64_t start, uint64_t end, uint64_t *count)
{
    ua_status st = range_check(t, start, end);
    if (st)
        return st;
    if (!count)
        return UA_E_INVAL;
    uint64_t n = 0;
    for (uint64_t a = start; a < end; a += UA_TDX_SZ_4K) {
        struct region tmp;
        const struct region *r = region_r(t, a / UA_TDX_SZ_2M, &tmp);
        unsigned i = (unsigned)((a % UA_TDX_SZ_2M) / UA_TDX_SZ_4K);
        int nl = r->state == S_NL_MAPPED || r->state == S_NL_BLOCKED;
        unsigned s = nl ? (pte_get(t, r, i) & P_STATE) : r->state;
        if (s == S_MAPPED && page_dirty(r, i))
            n++;
    }
    *count = n;
    return UA_OK;
}

/* ---- TDG.MEM.PAGE.ACCEPT ------------------------------------------------------ */

static void accept_exit(ua_tdcall_result *out, uint64_t gpa, unsigned req, unsigned err_level,
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
                      ua_tdcall_result *out)
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
                  unsigned s, int locked, int hp, ua_tdcall_result *out)
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
                               ua_tdcall_result *out)
{
    if (UA_UNLIKELY(!t || !out))
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (UA_UNLIKELY(vcpu >= t->cfg.nvcpus))
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
    if (UA_UNLIKELY(gpa >= t->nregions * UA_TDX_SZ_2M)) {
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
    struct region *r = region_w(t, gpa / UA_TDX_SZ_2M);
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
    unsigned i = (unsigned)((gpa % UA_TDX_SZ_2M) / UA_TDX_SZ_4K);
    uint8_t p = pte_get(t, r, i);
    unsigned s = p & P_STATE;
    if (accept_entry_done(t, vcpu, v, gpa, req, s, p & P_LOCK, p & P_HP, out))
        return UA_OK;
    struct ext *e = ext_get(t, r);
    if (UA_UNLIKELY(!e))
        return UA_E_NOMEM;
    e->pte[i] = (uint8_t)((e->pte[i] & ~P_STATE) | S_MAPPED);
    bit_clr(e->dirty, i);
    charge(t, vcpu, UA_EV_ZERO_4K, 1);
    out->chunks_zeroed = 1;
    out->rax = UA_TDX_SUCCESS;
    return UA_OK;
}

/* ---- guest accesses ----------------------------------------------------------- */

ua_status ua_tdx_guest_access(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint32_t write,
                              ua_tdx_access_result *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (vcpu >= t->cfg.nvcpus)
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
    struct region *r = region_w(t, pa / UA_TDX_SZ_2M);
    if (!r)
        return UA_E_NOMEM;
    unsigned i = (unsigned)((pa % UA_TDX_SZ_2M) / UA_TDX_SZ_4K);
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
            struct ext *e = ext_get(t, r);
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
    if (vcpu >= t->cfg.nvcpus)
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
    if (vcpu >= t->cfg.nvcpus)
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
    if (vcpu >= t->cfg.nvcpus)
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

/* ---- MapGPA and the VMM's page conversions ----------------------------------- */

/* The VMM drops the private page(s) behind [a, b) within one region:
 * BLOCK, TRACK, REMOVE (splitting a 2 MiB leaf that is only partly covered).
 * SEAMCALLs are charged; locked entries are left alone (model). */
static ua_status vmm_zap_private(ua_tdx *t, uint32_t vcpu, struct region *r, unsigned i0,
                                 unsigned i1)
{
    if (is_leaf(r->state) && !(r->flags & R_LOCK)) {
        if (i0 == 0 && i1 == 512) {
            charge(t, vcpu, UA_EV_SEAMCALL, is_blocked(r->state) ? 2 : 3);
            r->state = t->importing ? S_REMOVED : S_FREE;
            r->frame = 0;
            r->counter = 0;
            r->flags &= (uint8_t)~(R_BEPOCH | R_HP);
            return UA_OK;
        }
        struct ext *x = ext_get(t, r);
        if (!x)
            return UA_E_NOMEM;
        unsigned s = r->state;
        unsigned cs = (s == S_MAPPED || s == S_BLOCKED) ? S_MAPPED : S_PENDING;
        charge(t, vcpu, UA_EV_SEAMCALL, is_blocked(s) ? 2 : 3); /* (BLOCK) TRACK DEMOTE */
        memset(x->pte, (int)cs, sizeof(x->pte));
        r->state = S_NL_MAPPED;
        r->counter = 0;
        r->flags &= (uint8_t)~(R_BEPOCH | R_HP);
    }
    if (r->state != S_NL_MAPPED && r->state != S_NL_BLOCKED)
        return UA_OK;
    struct ext *x = ext_get(t, r);
    if (!x)
        return UA_E_NOMEM;
    uint64_t blocks = 0, removes = 0;
    for (unsigned i = i0; i < i1; i++) {
        uint8_t *p = &x->pte[i];
        unsigned s = *p & P_STATE;
        if (!is_leaf(s) || (*p & P_LOCK))
            continue;
        if (!is_blocked(s))
            blocks++;
        removes++;
        *p = (uint8_t)((t->importing ? S_REMOVED : S_FREE) | P_USED);
    }
    if (removes)
        charge(t, vcpu, UA_EV_SEAMCALL, blocks + removes + 1); /* + one TRACK */
    return UA_OK;
}

static ua_status set_shared_range(ua_tdx *t, struct region *r, unsigned i0, unsigned i1, int shared)
{
    if (i0 == 0 && i1 == 512 && !r->ext) {
        r->flags = shared ? (uint8_t)(r->flags | R_SHARED) : (uint8_t)(r->flags & ~R_SHARED);
        return UA_OK;
    }
    struct ext *x = ext_get(t, r);
    if (!x)
        return UA_E_NOMEM;
    for (unsigned i = i0; i < i1; i++) {
        if (shared)
            bit_set(x->shared, i);
        else
            bit_clr(x->shared, i);
    }
    return UA_OK;
}

ua_status ua_tdx_tdvmcall(ua_tdx *t, uint32_t vcpu, uint64_t r10, uint64_t r11, uint64_t r12,
                          uint64_t r13, ua_tdx_vmcall_result *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (vcpu >= t->cfg.nvcpus)
        return UA_E_VCPU;
    if (!t->finalized)
        return UA_E_STATE;
    charge(t, vcpu, UA_EV_TDVMCALL, 1);
    out->rax = UA_TDX_SUCCESS;
    if (r10 != 0 || r11 != UA_TDX_VMCALL_MAP_GPA) {
        out->r10 = UA_TDX_VMCALL_SUBFUNC_UNSUPPORTED;
        return UA_OK;
    }
    /* KVM (tdx_map_gpa) checks the range before the alignment */
    uint64_t gpa = r12, size = r13, sbit = t->private_limit;
    uint64_t end = gpa + size;
    if (size == 0 || end < gpa || end > (sbit << 1) || ((gpa ^ (end - 1)) & sbit)) {
        out->r10 = UA_TDX_VMCALL_INVALID_OPERAND;
        return UA_OK;
    }
    if ((gpa | size) % UA_TDX_SZ_4K) {
        out->r10 = UA_TDX_VMCALL_ALIGN_ERROR;
        return UA_OK;
    }
    uint32_t stalls = __atomic_load_n(&t->map_gpa_stalls, __ATOMIC_RELAXED);
    while (stalls && !__atomic_compare_exchange_n(&t->map_gpa_stalls, &stalls, stalls - 1, 0,
                                                  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
    if (stalls) {
        out->r10 = UA_TDX_VMCALL_RETRY;
        out->r11 = gpa;
        return UA_OK;
    }
    int to_shared = (gpa & sbit) != 0;
    uint64_t a = gpa & ~sbit, e = end - (to_shared ? sbit : 0);
    if (e > t->cfg.memory_bytes) { /* model: the VMM converts guest RAM only */
        out->r10 = UA_TDX_VMCALL_INVALID_OPERAND;
        return UA_OK;
    }
    struct vcpu_state *v = &t->vcpus[vcpu];
    while (a < e) {
        /* KVM converts TDX_MAP_GPA_MAX_LEN (2 MiB) per step, counted from
         * where the previous step stopped (not 2 MiB-aligned) */
        uint64_t cend = e - a > UA_TDX_SZ_2M ? a + UA_TDX_SZ_2M : e;
        for (uint64_t b = a; b < cend;) {
            uint64_t idx = b / UA_TDX_SZ_2M;
            uint64_t rend = (idx + 1) * UA_TDX_SZ_2M < cend ? (idx + 1) * UA_TDX_SZ_2M : cend;
            struct region *r = region_w(t, idx);
            if (!r)
                return UA_E_NOMEM;
            unsigned i0 = (unsigned)((b % UA_TDX_SZ_2M) / UA_TDX_SZ_4K);
            unsigned i1 = i0 + (unsigned)((rend - b) / UA_TDX_SZ_4K);
            ua_status st;
            if (to_shared && (st = vmm_zap_private(t, vcpu, r, i0, i1)))
                return st;
            if ((st = set_shared_range(t, r, i0, i1, to_shared)))
                return st;
            b = rend;
        }
        out->chunks++;
        a = cend;
        /* one interruptible unit per chunk; the check point is between chunks */
        int fired = 0;
        if (v->irq_countdown && --v->irq_countdown == 0) {
            v->irq_countdown = v->irq_period;
            fired = 1;
        }
        if (a < e && fired) {
            out->r10 = UA_TDX_VMCALL_RETRY;
            out->r11 = a | (to_shared ? sbit : 0);
            return UA_OK;
        }
    }
    out->r10 = UA_TDX_VMCALL_SUCCESS;
    return UA_OK;
}

/* ---- the VMM ------------------------------------------------------------------ */

static int any_shared(const struct region *r)
{
    if (!r->ext)
        return !!(r->flags & R_SHARED);
    for (unsigned w = 0; w < 8; w++)
        if (r->ext->shared[w])
            return 1;
    return 0;
}

ua_status ua_tdx_vmm_handle_exit(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                                 uint64_t exit_status, uint32_t *action)
{
    uint32_t dummy;
    if (!action)
        action = &dummy;
    *action = UA_TDX_VMM_DID_NOTHING;
    if (!t)
        return UA_E_INVAL;
    if (vcpu >= t->cfg.nvcpus)
        return UA_E_VCPU;
    ua_tdx_host_result hr;
    ua_status st;
    uint64_t pa = gpa & ~t->private_limit;
    if (exit_status == UA_TDX_HOST_PRIORITY_BUSY_TIMEOUT) {
        /* model: the host SEAMCALL that held priority gets to finish and
         * releases the HP bit at both levels */
        if (pa >= t->cfg.memory_bytes)
            return UA_E_HOST;
        struct region *r = region_w(t, pa / UA_TDX_SZ_2M);
        if (!r)
            return UA_E_NOMEM;
        r->flags &= (uint8_t)~R_HP;
        if (r->ext)
            r->ext->pte[(pa % UA_TDX_SZ_2M) / UA_TDX_SZ_4K] &= (uint8_t)~P_HP;
        *action = UA_TDX_VMM_DID_RELEASE_HP;
        return UA_OK;
    }
    if (t->policy == UA_TDX_VMM_REFUSE || (gpa & t->private_limit) || pa >= t->cfg.memory_bytes)
        return UA_E_HOST;
    struct region *r = region_w(t, pa / UA_TDX_SZ_2M);
    if (!r)
        return UA_E_NOMEM;
    unsigned i = (unsigned)((pa % UA_TDX_SZ_2M) / UA_TDX_SZ_4K);
    if (page_shared(r, i))
        return UA_E_HOST; /* a private fault on a GPA the VMM holds as shared */
    unsigned type = (unsigned)(eeq & 0xF);
    unsigned req, err_level, err_state;
    if (type == UA_TDX_EEQ_TYPE_ACCEPT) {
        uint64_t info = eeq >> 32;
        req = (unsigned)(info & 7);
        err_level = (unsigned)((info >> 3) & 7);
        err_state = (unsigned)((info >> 6) & 0xFF);
    } else if (type == UA_TDX_EEQ_TYPE_NONE) {
        /* a plain access to a FREE page: map it at the backing level */
        req = t->cfg.backing;
        err_level = (r->state == S_NL_MAPPED) ? UA_TDX_LEVEL_4K : UA_TDX_LEVEL_2M;
        err_state = err_level == UA_TDX_LEVEL_4K ? pub_state[pte_get(t, r, i) & P_STATE]
                                                 : pub_state[r->state];
    } else {
        /* EEQ type 6: guest access before accept; KVM stops the VM */
        return UA_E_HOST;
    }
    if (err_state == UA_TDX_SEPT_FREE || err_state == UA_TDX_SEPT_REMOVED) {
        unsigned target = t->policy == UA_TDX_VMM_AUG_4K ? UA_TDX_LEVEL_4K
                          : req < t->cfg.backing        ? req
                                                        : t->cfg.backing;
        if (target > UA_TDX_LEVEL_2M)
            target = UA_TDX_LEVEL_2M;
        uint64_t base = pa & ~(UA_TDX_SZ_2M - 1);
        if (target == UA_TDX_LEVEL_2M &&
            (base + UA_TDX_SZ_2M > t->cfg.memory_bytes ||
             (r->state != S_FREE && r->state != S_REMOVED) || any_shared(r)))
            target = UA_TDX_LEVEL_4K;
        uint64_t a = target == UA_TDX_LEVEL_2M ? base : (pa & ~(UA_TDX_SZ_4K - 1));
        if ((st = ua_tdx_host_aug(t, vcpu, a | target, &hr)))
            return st;
        if (hr.status != UA_TDX_SUCCESS)
            return UA_E_HOST;
        *action = target == UA_TDX_LEVEL_2M ? UA_TDX_VMM_DID_AUG_2M : UA_TDX_VMM_DID_AUG_4K;
        return UA_OK;
    }
    if (err_state == UA_TDX_SEPT_PENDING && err_level == UA_TDX_LEVEL_2M && req < err_level) {
        /* a 4 KiB accept inside a 2 MiB PENDING leaf: split it */
        uint64_t a = (pa & ~(UA_TDX_SZ_2M - 1)) | UA_TDX_LEVEL_2M;
        if ((st = ua_tdx_host_block(t, vcpu, a, &hr)))
            return st;
        if (hr.status != UA_TDX_SUCCESS)
            return UA_E_HOST;
        if ((st = ua_tdx_host_track(t, vcpu, &hr)))
            return st;
        if ((st = ua_tdx_host_demote(t, vcpu, a, &hr)))
            return st;
        if (hr.status != UA_TDX_SUCCESS)
            return UA_E_HOST;
        *action = UA_TDX_VMM_DID_DEMOTE;
        return UA_OK;
    }
    /* BLOCKED, PENDING_BLOCKED, NL_BLOCKED: the host is in the middle of
     * taking the page away; model: this VMM does not resolve that */
    return UA_E_HOST;
}
