/* tdx_sept.c - TDX model: the Secure EPT storage (regions in the sparse
 * directory, their 4 KiB extensions and host frames), the TD's lifetime and
 * settings, the fatal record, and inspection of the SEPT.
 * Behaviour follows the TDX module 1.5 (docs/tdx.md); where the module's
 * documentation is silent the comment says "model:". */
#include "tdx_internal.h"

/* ---- the directory ------------------------------------------------------- */

static void init_chunk(void *owner, void *chunk, uint64_t first, uint64_t n)
{
    const ua_tdx *t = owner;
    struct region *r = chunk;
    for (uint64_t i = 0; i < n; i++)
        region_init(t, &r[i], first + i);
}

struct ext *tdx_ext_alloc(ua_tdx *t, uint32_t vcpu, struct region *r)
{
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
    usage_add(t, vcpu, (int64_t)sizeof(*e));
    r->ext = e;
    return e;
}

int tdx_give_fresh_page(ua_tdx *t, uint32_t vcpu, struct region *r, unsigned i)
{
    struct ext *e = r->ext;
    uint8_t *p = &e->pte[i];
    if (!e->ovr) {
        e->ovr = calloc(512, sizeof(uint32_t));
        if (!e->ovr)
            return UA_E_NOMEM;
        usage_add(t, vcpu, 512 * sizeof(uint32_t));
    }
    e->ovr[i] = (uint32_t)__atomic_fetch_add(&t->next_frame4k, 1, __ATOMIC_RELAXED);
    *p |= P_OVR;
    return 0;
}

int tdx_add_table(ua_tdx *t, uint32_t vcpu, struct region *r)
{
    struct ext *e = ext_get(t, vcpu, r);
    if (!e)
        return UA_E_NOMEM;
    memset(e->pte, 0, sizeof(e->pte));
    r->state = S_NL_MAPPED;
    r->frame = alloc_frame(t, vcpu);
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
    cfg->vcpus = 1;
    cfg->gpaw = 52;
    cfg->backing = UA_BACKING_2M;
    cfg->initial = UA_TDX_INIT_FREE;
    cfg->attributes = UA_TDX_ATTR_SEPT_VE_DISABLE;
    cfg->finalized = 1;
}

ua_status ua_tdx_create(const ua_tdx_config *cfg, ua_tdx **out)
{
    if (!cfg || !out)
        return UA_E_INVAL;
    *out = NULL;
    if (cfg->vcpus == 0 || cfg->vcpus > UA_MAX_VCPUS)
        return UA_E_VCPU;
    if (cfg->gpaw != 48 && cfg->gpaw != 52)
        return UA_E_INVAL;
    if (cfg->backing > UA_BACKING_4K || cfg->initial > UA_TDX_INIT_PENDING || cfg->reserved)
        return UA_E_INVAL;
    if (cfg->memory_bytes == 0 || cfg->memory_bytes % UA_4K)
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
    t->backing_level = cfg->backing == UA_BACKING_2M ? UA_TDX_LEVEL_2M : UA_TDX_LEVEL_4K;
    t->nregions = (cfg->memory_bytes + UA_2M - 1) / UA_2M;
    t->mem_usage = sizeof(*t) + sizeof(*t->vcpus) * cfg->vcpus;
    if (posix_memalign((void **)&t->vcpus, 64, sizeof(*t->vcpus) * cfg->vcpus))
        t->vcpus = NULL;
    if (!t->vcpus || ua_sparse_init(&t->dir, t->nregions, sizeof(struct region), init_chunk, t,
                                    &t->mem_usage)) {
        free(t->vcpus);
        free(t);
        return UA_E_NOMEM;
    }
    memset(t->vcpus, 0, sizeof(*t->vcpus) * cfg->vcpus);
    ua_host_init_default(&t->own_host);
    t->host = &t->own_host;
    ua_fatal_slot_init(&t->fatal);
    t->finalized = cfg->finalized ? 1 : 0;
    t->epoch = 1;
    t->next_frame = FRAME_POOL_2M;
    t->next_frame4k = 0;
    t->td_ctls = (cfg->attributes & UA_TDX_ATTR_SEPT_VE_DISABLE) ? UA_TDX_TD_CTLS_PENDING_VE_DISABLE : 0;
    if (cfg->initial == UA_TDX_INIT_PENDING) {
        /* model: the VMM AUGed all private RAM at the backing level before the
         * guest runs (a "prefault"); the pages hold host garbage until ACCEPT */
        t->tmpl_state = t->backing_level == UA_TDX_LEVEL_2M ? S_PENDING : S_NL_MAPPED;
        t->tmpl_flags = R_GARBAGE;
        t->nl_default_pte = S_PENDING;
        uint64_t tail = cfg->memory_bytes % UA_2M;
        if (tail) {
            /* the last region is only partly RAM: 4 KiB pages up to its end */
            struct region *r = region_w(t, t->nregions - 1);
            struct ext *e = r ? ext_get(t, TDX_NO_VCPU, r) : NULL;
            if (!e) {
                ua_tdx_destroy(t);
                return UA_E_NOMEM;
            }
            unsigned n = (unsigned)(tail / UA_4K);
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

static void free_exts(void *owner, void *chunk, uint64_t n)
{
    struct region *r = chunk;
    for (uint64_t i = 0; i < n; i++)
        if (r[i].ext) {
            free(r[i].ext->ovr);
            free(r[i].ext);
        }
}

void ua_tdx_destroy(ua_tdx *t)
{
    if (!t)
        return;
    ua_sparse_fini(&t->dir, free_exts);
    ua_fatal_slot_fini(&t->fatal);
    free(t->vcpus);
    free(t);
}

ua_status ua_tdx_config_get(const ua_tdx *t, ua_tdx_config *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    *out = t->cfg;
    out->finalized = t->finalized;
    return UA_OK;
}

ua_status ua_tdx_set_cancel(ua_tdx *t, const volatile int *flag)
{
    if (!t)
        return UA_E_INVAL;
    t->cancel = flag;
    return UA_OK;
}

ua_status ua_tdx_set_cost(ua_tdx *t, ua_cost *cost)
{
    if (!t)
        return UA_E_INVAL;
    if (cost && ua_cost_vcpus(cost) < t->cfg.vcpus)
        return UA_E_VCPU;
    t->cost = cost;
    return UA_OK;
}

ua_host *ua_tdx_host(const ua_tdx *t)
{
    return t && t->host != &t->own_host ? t->host : NULL;
}

ua_status ua_tdx_set_host(ua_tdx *t, ua_host *host)
{
    if (!t)
        return UA_E_INVAL;
    t->host = host ? host : &t->own_host;
    return UA_OK;
}

int tdx_record_fatal(ua_tdx *t, uint32_t kind, uint32_t vcpu, uint64_t gpa, uint64_t code,
                     const char *message)
{
    return ua_fatal_raise(&t->fatal, kind, vcpu, gpa, code, message);
}

ua_status ua_tdx_fatal_get(const ua_tdx *t, ua_fatal *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    ua_fatal_read(&t->fatal, out);
    return UA_OK;
}

void ua_tdx_fatal_clear(ua_tdx *t)
{
    if (t)
        ua_fatal_reset(&t->fatal);
}

uint64_t ua_tdx_memory_usage(const ua_tdx *t)
{
    if (!t)
        return 0;
    uint64_t n = __atomic_load_n(&t->mem_usage, __ATOMIC_RELAXED);
    for (uint32_t v = 0; v < t->cfg.vcpus; v++)
        n += (uint64_t)__atomic_load_n(&t->vcpus[v].mem_usage, __ATOMIC_RELAXED);
    return n;
}

int ua_tdx_is_finalized(const ua_tdx *t) { return t ? (int)t->finalized : 0; }

void ua_tdx_set_importing(ua_tdx *t, int importing)
{
    if (t)
        t->importing = importing ? 1 : 0;
}

ua_status ua_tdx_set_interrupts(ua_tdx *t, uint32_t vcpu, uint32_t after, uint32_t period)
{
    if (!t)
        return UA_E_INVAL;
    if (vcpu >= t->cfg.vcpus)
        return UA_E_VCPU;
    t->vcpus[vcpu].irq_countdown = after;
    t->vcpus[vcpu].irq_period = after ? period : 0;
    return UA_OK;
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
    const struct region *r = region_r(t, gpa / UA_2M, &tmp);
    unsigned i = (unsigned)((gpa % UA_2M) / UA_4K);
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
    if ((start | end) % UA_4K)
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
        uint64_t idx = a / UA_2M;
        uint64_t rend = (idx + 1) * UA_2M < end ? (idx + 1) * UA_2M : end;
        struct region tmp;
        const struct region *r = region_r(t, idx, &tmp);
        if (r->state == S_NL_MAPPED || r->state == S_NL_BLOCKED) {
            for (uint64_t b = a; b < rend; b += UA_4K) {
                unsigned i = (unsigned)((b % UA_2M) / UA_4K);
                counts[pub_state[pte_get(t, r, i) & P_STATE]]++;
            }
        } else {
            counts[pub_state[r->state]] += (rend - a) / UA_4K;
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
    for (uint64_t a = start; a < end; a += UA_4K) {
        struct region tmp;
        const struct region *r = region_r(t, a / UA_2M, &tmp);
        unsigned i = (unsigned)((a % UA_2M) / UA_4K);
        int nl = r->state == S_NL_MAPPED || r->state == S_NL_BLOCKED;
        unsigned s = nl ? (pte_get(t, r, i) & P_STATE) : r->state;
        if (s == S_MAPPED && page_dirty(r, i))
            n++;
    }
    *count = n;
    return UA_OK;
}
