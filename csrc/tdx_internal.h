/* tdx_internal.h - TDX model internals shared by the Secure EPT storage
 * (tdx_sept.c), the TDX module's SEAMCALLs and TDCALLs (tdx_module.c), KVM
 * (tdx_kvm.c) and the guest paths (tdx_guest.c); not installed.
 *
 * The SEPT is two levels deep here: one 16-byte entry per 2 MiB region (the
 * 2 MiB-level SEPT entry: a 2 MiB leaf, FREE/REMOVED, or a non-leaf pointing
 * to 512 4 KiB entries) and, only for regions that need it, an extension
 * holding 512 one-byte 4 KiB entries plus per-4 KiB content and sharing
 * bits.  Regions live in the shared sparse directory; reads of a chunk never
 * written synthesise the initial state.  Levels above 2 MiB are implicit
 * NL_MAPPED entries for guest RAM (model: the VMM has built the upper paging
 * structures; 1 GiB leaves are not modelled).
 *
 * Host physical addresses are identity tokens: the host hands out 2 MiB
 * frames (32-bit frame numbers) and, for 4 KiB pages re-added after a
 * REMOVE, fresh 4 KiB frames recorded in a per-region override array.  A
 * 4 KiB page of a region otherwise uses frame * 2 MiB + index * 4 KiB.
 *
 * Page contents are modelled by one bit per 4 KiB page: "holds non-zero
 * data".  AUG leaves host garbage (non-zero), ACCEPT zeroes, guest stores
 * set the bit. */
#ifndef UA_TDX_INTERNAL_H
#define UA_TDX_INTERNAL_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "host_internal.h"
#include "sparse_internal.h"


static inline uint64_t ua_tdx_level_size(unsigned level) { return UA_4K << (9 * level); }

/* Fields of the extended exit qualification of an ACCEPT exit (bits 63:32). */
static inline uint64_t ua_tdx_eeq_accept(unsigned req_level, unsigned err_level, unsigned state,
                                         unsigned is_leaf)
{
    uint64_t info = (uint64_t)(req_level & 7) | ((uint64_t)(err_level & 7) << 3) |
                    ((uint64_t)(state & 0xFF) << 6) | ((uint64_t)(is_leaf & 1) << 14);
    return UA_TDX_EEQ_TYPE_ACCEPT | (info << 32);
}

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

/* Calls made for no vCPU (creation, the contention knobs): their memory and
 * host frames go to the TD-wide counters. */
#define TDX_NO_VCPU UINT32_MAX
/* 2 MiB host frames a vCPU takes from the TD-wide counter at a time. */
#define FRAME_BLOCK 64u

/* Per-vCPU state, driven by one thread at a time (as the vCPU's cost slot
 * and path statistics are).  It also holds what would otherwise be shared
 * counters written per 2 MiB region on the accept path - the vCPU's share
 * of the model's memory and its block of host frames - so that vCPUs
 * accepting disjoint ranges write no common cache line. */
struct vcpu_state {
    uint32_t irq_countdown; /* work units until the next interrupt, 0 = none armed */
    uint32_t irq_period;
    uint32_t hp_busy;       /* host-priority busy answers in a row */
    uint32_t frames_left;   /* frames left in this vCPU's block, from frame_next */
    uint32_t frame_next;
    uint32_t pad;
    int64_t mem_usage;      /* bytes this vCPU's calls allocated (less freed); read by
                             * ua_tdx_memory_usage from any thread: relaxed atomics */
    ua_tdx_veinfo ve;
} __attribute__((aligned(64)));

struct ua_tdx {
    ua_tdx_config cfg;
    const volatile int *cancel;  /* the caller's cancel flag (ua_guest_set_cancel) */
    uint64_t nregions;
    uint64_t private_limit;   /* 2^(gpaw-1): the shared bit */
    unsigned backing_level;   /* largest level the host maps (from cfg.backing) */
    struct ua_sparse dir;     /* struct region per 2 MiB */
    uint8_t tmpl_state, tmpl_flags, nl_default_pte;
    uint32_t finalized, importing;
    uint32_t epoch;
    uint64_t td_ctls;
    ua_cost *cost;
    ua_host *host;            /* never NULL: own_host unless a host was set */
    ua_host own_host;
    struct ua_fatal_slot fatal;
    struct vcpu_state *vcpus;
    /* TD-wide counters, written now and then while vCPUs run (a block of
     * frames, a directory chunk): kept off the cache lines read above */
    char pad0[64];
    uint64_t next_frame;      /* atomic: blocks of 2 MiB frames for the vCPUs' pools */
    uint64_t next_frame4k;    /* atomic */
    uint64_t mem_usage;       /* atomic: memory not charged to a vCPU (the TD itself,
                               * directory chunks, calls for no vCPU) */
    char pad1[64];
};

static inline void charge(ua_tdx *t, uint32_t vcpu, int ev, uint64_t n)
{
    if (t->cost)
        ua_cost_charge(t->cost, vcpu, ev, n);
}


/* The TD's TLB epoch: TRACK may run on a VMM thread while vCPUs run. */
static inline uint32_t epoch_now(const ua_tdx *t) { return __atomic_load_n(&t->epoch, __ATOMIC_RELAXED); }

/* Model memory allocated (n > 0) or freed by a call for vcpu. */
static inline void usage_add(ua_tdx *t, uint32_t vcpu, int64_t n)
{
    if (vcpu < t->cfg.vcpus) {
        int64_t *u = &t->vcpus[vcpu].mem_usage;   /* this vCPU's thread alone writes it */
        __atomic_store_n(u, __atomic_load_n(u, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_add(&t->mem_usage, (uint64_t)n, __ATOMIC_RELAXED);
    }
}

static inline int bit_get(const uint64_t *w, unsigned i) { return (w[i >> 6] >> (i & 63)) & 1; }
static inline void bit_set(uint64_t *w, unsigned i) { w[i >> 6] |= 1ull << (i & 63); }
static inline void bit_clr(uint64_t *w, unsigned i) { w[i >> 6] &= ~(1ull << (i & 63)); }


/* ---- interrupts ---- */

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

/* ---- the directory ------------------------------------------------------- */

static inline void region_init(const ua_tdx *t, struct region *r, uint64_t idx)
{
    r->state = t->tmpl_state;
    r->flags = t->tmpl_flags;
    r->counter = 0;
    r->frame = t->tmpl_state == S_FREE ? 0 : (uint32_t)(idx + 1);
    r->ext = NULL;
}

/* Region for writing (allocates its chunk); NULL only when out of memory. */
static inline struct region *region_w(ua_tdx *t, uint64_t idx)
{
    void *c = ua_sparse_get(&t->dir, idx);
    return c ? UA_SPARSE_AT(struct region, c, idx) : NULL;
}

/* Region for reading; a chunk never written yields the initial state in *tmp. */
static inline const struct region *region_r(const ua_tdx *t, uint64_t idx, struct region *tmp)
{
    void *c = ua_sparse_peek(&t->dir, idx);
    if (!c) {
        region_init(t, tmp, idx);
        return tmp;
    }
    return UA_SPARSE_AT(struct region, c, idx);
}

/* The extension of a region (allocated on first use); NULL on ENOMEM.  The
 * common case stays inline: it runs once per 4 KiB page on the accept path. */
struct ext *tdx_ext_alloc(ua_tdx *t, uint32_t vcpu, struct region *r);
static inline struct ext *ext_get(ua_tdx *t, uint32_t vcpu, struct region *r)
{
    return UA_LIKELY(r->ext != NULL) ? r->ext : tdx_ext_alloc(t, vcpu, r);
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

/* A fresh 2 MiB host frame, from the vCPU's block (refilled FRAME_BLOCK at a
 * time from the TD-wide counter, so one vCPU gets consecutive frames). */
static inline uint32_t alloc_frame(ua_tdx *t, uint32_t vcpu)
{
    if (vcpu >= t->cfg.vcpus)
        return (uint32_t)__atomic_fetch_add(&t->next_frame, 1, __ATOMIC_RELAXED);
    struct vcpu_state *v = &t->vcpus[vcpu];
    if (UA_UNLIKELY(!v->frames_left)) {
        v->frame_next = (uint32_t)__atomic_fetch_add(&t->next_frame, FRAME_BLOCK,
                                                     __ATOMIC_RELAXED);
        v->frames_left = FRAME_BLOCK;
    }
    v->frames_left--;
    return v->frame_next++;
}

/* HPA of 4 KiB page i of a region (the governing leaf must hold one). */
static inline uint64_t page_hpa(const struct region *r, unsigned i, int leaf2m)
{
    if (!leaf2m && r->ext && (r->ext->pte[i] & P_OVR))
        return HPA_POOL_4K + (uint64_t)r->ext->ovr[i] * UA_4K;
    if (!r->frame)
        return 0;
    return (uint64_t)r->frame * UA_2M + (uint64_t)i * UA_4K;
}

/* Give page i a host page for ADD/AUG: its default slot the first time
 * (inline), else a fresh 4 KiB page.  0 or UA_E_NOMEM. */
int tdx_give_fresh_page(ua_tdx *t, uint32_t vcpu, struct region *r, unsigned i);
static inline int give_page(ua_tdx *t, uint32_t vcpu, struct region *r, unsigned i)
{
    uint8_t *p = &r->ext->pte[i];
    *p &= (uint8_t)~P_OVR;
    return UA_LIKELY(!(*p & P_USED)) ? 0 : tdx_give_fresh_page(t, vcpu, r, i);
}
/* Turn a FREE 2 MiB entry into a non-leaf with 512 FREE 4 KiB entries (the
 * implicit TDH.MEM.SEPT.ADD the VMM does before mapping 4 KiB pages). */
int tdx_add_table(ua_tdx *t, uint32_t vcpu, struct region *r);
#define add_table tdx_add_table

/* Record how the guest died; returns the matching status. */
int tdx_record_fatal(ua_tdx *t, uint32_t kind, uint32_t vcpu, uint64_t gpa, uint64_t code,
                     const char *message);

int tdx_kvm_exit_default(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                         uint64_t exit_status, uint32_t *action);

/* n consecutive 4 KiB ACCEPTs with KVM serving their exits, the common case
 * batched (tdx_module.c); returns the pages done, *augs the exits/AUGs. */
unsigned tdx_accept_run_4k(ua_tdx *t, uint32_t vcpu, uint64_t gpa, unsigned n, unsigned *augs);

/* A TD exit to the host: the host's handler, KVM's called directly when the
 * host has none.  The exit itself is charged by the module. */
static inline int tdx_exit_to_host(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                                   uint64_t exit_status, uint32_t *action)
{
    ua_host *h = t->host;
    if (UA_LIKELY(!h->ops.tdx_exit))
        return tdx_kvm_exit_default(t, vcpu, gpa, eeq, exit_status, action);
    *action = UA_HOST_DID_NOTHING;
    return h->ops.tdx_exit(h, t, vcpu, gpa, eeq, exit_status, action);
}

#endif
