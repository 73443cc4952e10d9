/* snp.c - AMD SEV-SNP model: sparse RMP, RMPUPDATE, PSMASH, PVALIDATE,
 * RMPADJUST, RMP access checks, and the hypervisor side of Page State
 * Change (GHCB MSR protocol and NAE event).
 *
 * Rules and their sources are in docs/snp.md and the project spec
 * (vendors.md Part A / E.1).  Where the spec is silent the choice is the
 * architecture manual's behaviour as we read it, and the comment says so. */
#include <stdlib.h>
#include <string.h>

#include "ua_snp_internal.h"

/* ------------------------------------------------------------------------ */
/* storage                                                                   */

/* Regions held by directory chunk c (the last chunk may be short). */
static uint64_t chunk_regions(const ua_snp *s, uint64_t c)
{
    uint64_t n = s->nregions - (c << SNP_CHUNK_SHIFT);
    return n < SNP_CHUNK_REGIONS ? n : SNP_CHUNK_REGIONS;
}

/* The slow path of a directory lookup: allocate the chunk of *slot
 * (bytes, zeroed) under the lock unless another thread did, and publish it
 * with a release store.  NULL when out of memory. */
static void *chunk_alloc(ua_snp *s, void **slot, size_t bytes)
{
    pthread_mutex_lock(&s->lock);
    void *c = *slot;
    if (!c && (c = calloc(1, bytes))) {
        __atomic_add_fetch(&s->bytes_allocated, bytes, __ATOMIC_RELAXED);
        __atomic_store_n(slot, c, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&s->lock);
    return c;
}

struct snp_region *snp_region_get(ua_snp *s, uint64_t r)
{
    void **slot = &s->chunks[r >> SNP_CHUNK_SHIFT];
    struct snp_region *c = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (UA_UNLIKELY(!c) &&
        !(c = chunk_alloc(s, slot, chunk_regions(s, r >> SNP_CHUNK_SHIFT) * sizeof(*c))))
        return NULL;
    return &c[r & (SNP_CHUNK_REGIONS - 1)];
}

static struct snp_split *split_alloc(ua_snp *s)
{
    struct snp_split *sp = calloc(1, sizeof(*sp));
    if (sp)
        __atomic_add_fetch(&s->bytes_allocated, sizeof(*sp), __ATOMIC_RELAXED);
    return sp;
}

static void split_free(ua_snp *s, struct snp_split *sp)
{
    if (!sp)
        return;
    uint64_t bytes = sizeof(*sp) + (sp->perm ? 512 * sizeof(uint16_t) : 0) +
                     (sp->e ? 512 * sizeof(uint64_t) : 0);
    __atomic_sub_fetch(&s->bytes_allocated, bytes, __ATOMIC_RELAXED);
    free(sp->e);
    free(sp->perm);
    free(sp);
}

int split_put(ua_snp *s, struct snp_split *sp, unsigned i, uint64_t e)
{
    if (UA_LIKELY(!sp->e)) {
        uint64_t rest = e & ~E_FLAGS;
        if (!(e & E_ASSIGNED)) {
            if (!rest) {
                sp->f[i] = (uint8_t)e;
                return 0;
            }
            if (rest == ((sp->ubase + ((uint64_t)i << 12)) & E_GPA_MASK)) {
                sp->f[i] = (uint8_t)((e & E_FLAGS) | F_UCONS);
                return 0;
            }
        } else {
            uint64_t gpa = e & E_GPA_MASK;
            uint32_t asid = e_asid(e);
            if (!sp->have_base) {
                sp->base = gpa - ((uint64_t)i << 12);
                sp->asid = asid;
                sp->have_base = 1;
            }
            if (((sp->base + ((uint64_t)i << 12)) & E_GPA_MASK) == gpa && sp->asid == asid &&
                !(rest & ~(E_GPA_MASK | E_ASID_MASK))) {
                sp->f[i] = (uint8_t)(e & E_FLAGS);
                return 0;
            }
        }
        /* does not fit the pattern: switch to full entries */
        uint64_t *full = malloc(512 * sizeof(uint64_t));
        if (!full)
            return -1;
        __atomic_add_fetch(&s->bytes_allocated, 512 * sizeof(uint64_t), __ATOMIC_RELAXED);
        for (unsigned j = 0; j < 512; j++)
            full[j] = split_get(sp, j);
        sp->e = full;
    }
    sp->e[i] = e;
    return 0;
}

/* Turn a region into 512 4 KiB entries.  A 2 MiB entry is copied to every
 * page with consecutive GPAs (PSMASH semantics); a zero region stays zero. */
static int region_split(ua_snp *s, struct snp_region *rg)
{
    if (rg->split)
        return 1;
    struct snp_split *sp = split_alloc(s);
    if (!sp)
        return 0;
    uint64_t e = rg->e;
    if (e & E_PAGESIZE) {
        if (e & E_ASSIGNED) {
            memset(sp->f, (int)(e & E_FLAGS & ~E_PAGESIZE), sizeof(sp->f));
            sp->base = e & E_GPA_MASK;
            sp->asid = e_asid(e);
            sp->have_base = 1;
        } else {
            /* hypervisor-owned: ASID 0, consecutive GPAs from the entry's */
            memset(sp->f, (int)((e & E_FLAGS & ~E_PAGESIZE) | F_UCONS), sizeof(sp->f));
            sp->ubase = e & E_GPA_MASK;
        }
        if (rg->perm) {
            sp->perm = malloc(512 * sizeof(uint16_t));
            if (!sp->perm) {
                split_free(s, sp);
                return 0;
            }
            __atomic_add_fetch(&s->bytes_allocated, 512 * sizeof(uint16_t), __ATOMIC_RELAXED);
            for (unsigned i = 0; i < 512; i++)
                sp->perm[i] = rg->perm;
        }
    }
    rg->e = 0;
    rg->perm = 0;
    rg->split = sp;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* lifetime                                                                  */

ua_status ua_snp_create(const ua_snp_config *cfg, ua_snp **out)
{
    if (!cfg || !out)
        return UA_E_INVAL;
    *out = NULL;
    if (cfg->memory_bytes == 0 || cfg->memory_bytes % SNP_2M || cfg->spare_bytes % SNP_2M)
        return UA_E_ALIGN;
    if (cfg->memory_bytes > SNP_PA_LIMIT || cfg->spare_bytes > SNP_PA_LIMIT - cfg->memory_bytes)
        return UA_E_RANGE;
    if (cfg->asid == 0 || cfg->asid > UA_SNP_MAX_ASID || cfg->vmpl > UA_SNP_MAX_VMPL)
        return UA_E_INVAL;
    if (cfg->nvcpus == 0 || cfg->nvcpus > UA_MAX_VCPUS)
        return UA_E_VCPU;
    ua_snp *s = calloc(1, sizeof(*s));
    if (!s)
        return UA_E_NOMEM;
    s->cfg = *cfg;
    s->cfg.coherency_sfw_no = !!cfg->coherency_sfw_no;
    s->guest_pages = cfg->memory_bytes >> 12;
    s->rmp_end = cfg->memory_bytes + cfg->spare_bytes;
    s->nregions = s->rmp_end >> SNP_REGION_SHIFT;
    s->nchunks = (s->nregions + SNP_CHUNK_REGIONS - 1) >> SNP_CHUNK_SHIFT;
    s->chunks = calloc(s->nchunks, sizeof(*s->chunks));
    if (!s->chunks) {
        free(s);
        return UA_E_NOMEM;
    }
    uint64_t gregions = cfg->memory_bytes >> SNP_REGION_SHIFT;
    s->nattr_chunks = (gregions + SNP_CHUNK_REGIONS - 1) >> SNP_CHUNK_SHIFT;
    s->attr = calloc(s->nattr_chunks, sizeof(*s->attr));
    if (!s->attr) {
        free(s->chunks);
        free(s);
        return UA_E_NOMEM;
    }
    s->bytes_allocated = sizeof(*s) + s->nchunks * sizeof(*s->chunks) +
                         s->nattr_chunks * sizeof(*s->attr);
    s->pol.backing = UA_SNP_BACKING_2M;
    s->pol.npf_psmash = 1;
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return UA_OK;
}

void ua_snp_destroy(ua_snp *s)
{
    if (!s)
        return;
    for (uint64_t c = 0; c < s->nchunks; c++) {
        struct snp_region *ch = s->chunks[c];
        if (!ch)
            continue;
        for (uint64_t i = 0, n = chunk_regions(s, c); i < n; i++)
            if (ch[i].split) {
                free(ch[i].split->e);
                free(ch[i].split->perm);
                free(ch[i].split);
            }
        free(ch);
    }
    free(s->chunks);
    for (uint64_t c = 0; c < s->nattr_chunks; c++) {
        uintptr_t *ch = s->attr[c];
        if (!ch)
            continue;
        for (uint64_t i = 0; i < SNP_CHUNK_REGIONS; i++)
            if (ch[i] > 1)
                free((void *)ch[i]);
        free(ch);
    }
    free(s->attr);
    free(s->remaps);
    free(s->in_use);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

ua_status ua_snp_config_get(const ua_snp *s, ua_snp_config *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    *out = s->cfg;
    return UA_OK;
}

ua_status ua_snp_set_cost(ua_snp *s, ua_cost *cost)
{
    if (!s)
        return UA_E_INVAL;
    if (cost && ua_cost_nvcpus(cost) < s->cfg.nvcpus)
        return UA_E_VCPU;
    s->cost = cost;
    return UA_OK;
}

ua_status ua_snp_set_host_policy(ua_snp *s, const ua_snp_host_policy *p)
{
    if (!s || !p)
        return UA_E_INVAL;
    if (p->backing > UA_SNP_BACKING_4K || p->psc_fault > UA_SNP_PSCF_STALL ||
        p->msr_fault > UA_SNP_MSRF_BAD_CODE || p->skip_rmpupdate > 1 || p->npf_psmash > 1 ||
        p->ghcb_error > UA_SNP_GHCB_ERR_INVALID_EVENT || p->lazy_rmpupdate > 1 || p->reserved)
        return UA_E_INVAL;
    s->pol = *p;
    return UA_OK;
}

ua_status ua_snp_host_policy_get(const ua_snp *s, ua_snp_host_policy *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    *out = s->pol;
    return UA_OK;
}

ua_status ua_snp_set_coherency_sfw_no(ua_snp *s, uint32_t on)
{
    if (!s)
        return UA_E_INVAL;
    s->cfg.coherency_sfw_no = !!on;
    return UA_OK;
}

ua_status ua_snp_stats_get(const ua_snp *s, ua_snp_stats *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    out->regions = s->nregions;
    out->bytes_allocated = __atomic_load_n(&s->bytes_allocated, __ATOMIC_RELAXED);
    for (uint64_t c = 0; c < s->nchunks; c++) {
        const struct snp_region *ch = __atomic_load_n(&s->chunks[c], __ATOMIC_ACQUIRE);
        if (!ch)
            continue;
        out->chunks_allocated++;
        for (uint64_t i = 0, n = chunk_regions(s, c); i < n; i++) {
            const struct snp_region *rg = &ch[i];
            if (rg->e & E_PAGESIZE) {
                if (rg->e & E_ASSIGNED) {
                    out->assigned_4k += 512;
                    if (rg->e & E_VALIDATED)
                        out->validated_4k += 512;
                }
            } else if (rg->split) {
                out->split_regions++;
                for (unsigned j = 0; j < 512; j++) {
                    uint64_t e = split_get(rg->split, j);
                    out->assigned_4k += e & E_ASSIGNED;
                    out->validated_4k += (e & (E_ASSIGNED | E_VALIDATED)) ==
                                         (E_ASSIGNED | E_VALIDATED);
                }
            }
        }
    }
    return UA_OK;
}

/* The GHCB MSR value of a termination request. */
static uint64_t term_msr(uint32_t set, uint32_t code)
{
    return UA_SNP_GHCB_MSR_TERM_REQ | ((uint64_t)(set & 0xf) << 12) |
           ((uint64_t)(code & 0xff) << 16);
}

ua_status snp_record_termination(ua_snp *s, uint32_t vcpu, uint32_t set, uint32_t code,
                                 uint64_t gpa, uint32_t eax, uint32_t fault, uint64_t info2)
{
    pthread_mutex_lock(&s->lock);
    if (!s->terminated) {
        s->term.terminated = 1;
        s->term.vcpu = vcpu;
        s->term.reason_set = set & 0xf;
        s->term.reason_code = code & 0xff;
        s->term.msr = term_msr(set, code);
        s->term.gpa = gpa;
        s->term.eax = eax;
        s->term.fault = fault;
        s->term.sw_exitinfo2 = info2;
        __atomic_store_n(&s->terminated, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&s->lock);
    return UA_E_GUEST_TERMINATED;
}

uint64_t ua_snp_terminate(ua_snp *s, uint32_t vcpu, uint32_t reason_set, uint32_t reason_code)
{
    if (s)
        snp_record_termination(s, vcpu, reason_set, reason_code, 0, 0, 0, 0);
    return term_msr(reason_set, reason_code);
}

ua_status ua_snp_termination_get(const ua_snp *s, ua_snp_termination *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    *out = s->term;
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
    return UA_OK;
}

void ua_snp_termination_clear(ua_snp *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    memset(&s->term, 0, sizeof(s->term));
    __atomic_store_n(&s->terminated, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------------ */
/* NPT and in-use bookkeeping (host configuration; not concurrent with     */
/* guest activity)                                                           */

static size_t remap_find(const ua_snp *s, uint64_t gfn)
{
    size_t lo = 0, hi = s->nremaps;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->remaps[mid].gfn < gfn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint64_t snp_npt(const ua_snp *s, uint64_t gpa)
{
    if (UA_LIKELY(s->nremaps == 0))
        return gpa;
    uint64_t gfn = gpa >> 12;
    size_t i = remap_find(s, gfn);
    if (i < s->nremaps && s->remaps[i].gfn == gfn)
        return (s->remaps[i].spfn << 12) | (gpa & 0xfff);
    return gpa;
}

int snp_range_remapped(const ua_snp *s, uint64_t gfn, uint64_t npages)
{
    if (UA_LIKELY(s->nremaps == 0))
        return 0;
    size_t i = remap_find(s, gfn);
    return i < s->nremaps && s->remaps[i].gfn < gfn + npages;
}

ua_status ua_snp_npt_map(ua_snp *s, uint64_t gpa, uint64_t spa)
{
    if (!s)
        return UA_E_INVAL;
    if ((gpa | spa) & 0xfff)
        return UA_E_ALIGN;
    if (gpa >= s->cfg.memory_bytes || spa >= s->rmp_end)
        return UA_E_RANGE;
    uint64_t gfn = gpa >> 12, spfn = spa >> 12;
    size_t i = remap_find(s, gfn);
    if (i < s->nremaps && s->remaps[i].gfn == gfn) {
        if (spfn == gfn) { /* back to the identity */
            memmove(&s->remaps[i], &s->remaps[i + 1], (s->nremaps - i - 1) * sizeof(*s->remaps));
            s->nremaps--;
        } else {
            s->remaps[i].spfn = spfn;
        }
        return UA_OK;
    }
    if (spfn == gfn)
        return UA_OK;
    if (s->nremaps == s->capremaps) {
        size_t cap = s->capremaps ? s->capremaps * 2 : 16;
        struct snp_remap *n = realloc(s->remaps, cap * sizeof(*n));
        if (!n)
            return UA_E_NOMEM;
        s->remaps = n;
        s->capremaps = cap;
    }
    memmove(&s->remaps[i + 1], &s->remaps[i], (s->nremaps - i) * sizeof(*s->remaps));
    s->remaps[i].gfn = gfn;
    s->remaps[i].spfn = spfn;
    s->nremaps++;
    return UA_OK;
}

ua_status ua_snp_npt_lookup(const ua_snp *s, uint64_t gpa, uint64_t *spa)
{
    if (!s || !spa)
        return UA_E_INVAL;
    if (gpa >= s->cfg.memory_bytes)
        return UA_E_RANGE;
    *spa = snp_npt(s, gpa);
    return UA_OK;
}

static int in_use_any(const ua_snp *s, uint64_t spa, uint64_t size)
{
    for (size_t i = 0; i < s->nin_use; i++)
        if (s->in_use[i] >= spa && s->in_use[i] < spa + size)
            return 1;
    return 0;
}

ua_status ua_snp_set_in_use(ua_snp *s, uint64_t spa, uint32_t in_use)
{
    if (!s)
        return UA_E_INVAL;
    if (spa & 0xfff)
        return UA_E_ALIGN;
    if (spa >= s->rmp_end)
        return UA_E_RANGE;
    for (size_t i = 0; i < s->nin_use; i++)
        if (s->in_use[i] == spa) {
            if (!in_use)
                s->in_use[i] = s->in_use[--s->nin_use];
            return UA_OK;
        }
    if (!in_use)
        return UA_OK;
    if (s->nin_use == s->capin_use) {
        size_t cap = s->capin_use ? s->capin_use * 2 : 8;
        uint64_t *n = realloc(s->in_use, cap * sizeof(*n));
        if (!n)
            return UA_E_NOMEM;
        s->in_use = n;
        s->capin_use = cap;
    }
    s->in_use[s->nin_use++] = spa;
    return UA_OK;
}

/* ------------------------------------------------------------------------ */
/* host instructions                                                         */

/* RMPUPDATE.  Checks, in order (the spec lists the codes, not an order; this
 * order follows the operand-first convention of the other RMP
 * instructions):
 *   FAIL_INPUT (1): page size > 1; SPA or GPA not aligned to the size; SPA
 *     outside the RMP; GPA >= 2^52; ASID > 1023; a hypervisor-owned state
 *     with a non-zero ASID or Immutable; an ASID-0 assigned state that is not
 *     Immutable (Table 15-35: ASID 0 + assigned is the AMD-SP's, immutable);
 *   FAIL_INUSE (3): a page of the range is in use (running VMSA/VMCB);
 *   FAIL_PERMISSION (2): the current entry (any covered entry) is Immutable
 *     (VeriSMo's rmpupdate);
 *   FAIL_OVERLAP (4): a 4 KiB update inside an assigned 2 MiB entry (the
 *     host must PSMASH first, as KVM does) or a 2 MiB update over 4 KiB
 *     entries of which one is assigned.
 * Success always leaves Validated = VMSA = 0, VMPL0 = all, VMPL1-3 = none
 * (vendors.md E.1 item 3; the conservative reading of Part D). */
uint32_t snp_rmpupdate(ua_snp *s, uint32_t vcpu, uint64_t spa, const ua_snp_rmp_state *st)
{
    if (st->page_size > 1)
        return UA_SNP_RMP_FAIL_INPUT;
    int big = st->page_size == 1;
    uint64_t size = big ? SNP_2M : SNP_4K;
    snp_charge(s, vcpu, big ? UA_EV_RMPUPDATE_2M : UA_EV_RMPUPDATE_4K, 1);
    if ((spa & (size - 1)) || spa >= s->rmp_end || (st->gpa & (size - 1)) ||
        st->gpa >= SNP_PA_LIMIT || st->asid > UA_SNP_MAX_ASID)
        return UA_SNP_RMP_FAIL_INPUT;
    if (!st->assigned && (st->asid || st->immutable))
        return UA_SNP_RMP_FAIL_INPUT;
    if (st->assigned && st->asid == 0 && !st->immutable)
        return UA_SNP_RMP_FAIL_INPUT;
    if (UA_UNLIKELY(s->nin_use) && in_use_any(s, spa, size))
        return UA_SNP_RMP_FAIL_INUSE;
    uint64_t ne = (st->assigned ? E_ASSIGNED : 0) | (big ? E_PAGESIZE : 0) |
                  (st->immutable ? E_IMMUTABLE : 0) | E_PERM0 | (st->gpa & E_GPA_MASK) |
                  ((uint64_t)st->asid << E_ASID_SHIFT);
    struct snp_region *rg = snp_region_get(s, spa >> SNP_REGION_SHIFT);
    if (!rg)
        return UA_SNP_RMP_FAIL_INUSE; /* out of simulator memory: refuse, change nothing */
    if (big) {
        if (rg->e & E_PAGESIZE) {
            if (rg->e & E_IMMUTABLE)
                return UA_SNP_RMP_FAIL_PERMISSION;
        } else if (rg->split) {
            uint64_t any = 0;
            for (unsigned i = 0; i < 512; i++)
                any |= split_get(rg->split, i);
            if (any & E_IMMUTABLE)
                return UA_SNP_RMP_FAIL_PERMISSION;
            if (any & E_ASSIGNED)
                return UA_SNP_RMP_FAIL_OVERLAP;
            split_free(s, rg->split);
            rg->split = NULL;
        }
        rg->e = ne;
        rg->perm = 0;
        return UA_SNP_RMP_SUCCESS;
    }
    if (rg->e & E_PAGESIZE) {
        if (rg->e & E_IMMUTABLE)
            return UA_SNP_RMP_FAIL_PERMISSION;
        if (rg->e & E_ASSIGNED)
            return UA_SNP_RMP_FAIL_OVERLAP;
    } else if (rg->split && (split_get(rg->split, (spa >> 12) & 511) & E_IMMUTABLE)) {
        return UA_SNP_RMP_FAIL_PERMISSION;
    }
    if (!region_split(s, rg))
        return UA_SNP_RMP_FAIL_INUSE;
    unsigned idx = (spa >> 12) & 511;
    if (split_put(s, rg->split, idx, ne))
        return UA_SNP_RMP_FAIL_INUSE; /* out of simulator memory */
    if (rg->split->perm)
        rg->split->perm[idx] = 0;
    return UA_SNP_RMP_SUCCESS;
}

/* PSMASH: FAIL_INPUT if the SPA is not 2 MiB aligned, outside the RMP, or
 * its entry is not a 2 MiB entry (nothing to smash; our reading of the
 * APM); FAIL_INUSE if a page of the region is in use.  Every field is
 * copied, Validated, VMSA and the permissions included. */
uint32_t snp_psmash(ua_snp *s, uint32_t vcpu, uint64_t spa)
{
    snp_charge(s, vcpu, UA_EV_PSMASH, 1);
    if ((spa & (SNP_2M - 1)) || spa >= s->rmp_end)
        return UA_SNP_RMP_FAIL_INPUT;
    struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
    if (!rg || !(rg->e & E_PAGESIZE))
        return UA_SNP_RMP_FAIL_INPUT;
    if (UA_UNLIKELY(s->nin_use) && in_use_any(s, spa, SNP_2M))
        return UA_SNP_RMP_FAIL_INUSE;
    if (!region_split(s, rg))
        return UA_SNP_RMP_FAIL_INUSE;
    return UA_SNP_RMP_SUCCESS;
}

ua_status ua_snp_rmpupdate(ua_snp *s, uint64_t spa, const ua_snp_rmp_state *st, uint32_t *eax)
{
    if (!s || !st || !eax)
        return UA_E_INVAL;
    if (spa >= SNP_PA_LIMIT)
        return UA_E_RANGE;
    *eax = snp_rmpupdate(s, SNP_NO_VCPU, spa, st);
    return UA_OK;
}

ua_status ua_snp_psmash(ua_snp *s, uint64_t spa, uint32_t *eax)
{
    if (!s || !eax)
        return UA_E_INVAL;
    if (spa >= SNP_PA_LIMIT)
        return UA_E_RANGE;
    *eax = snp_psmash(s, SNP_NO_VCPU, spa);
    return UA_OK;
}

/* The state a host conversion writes with RMPUPDATE: private = assigned
 * to this guest for gpa (rmp_make_private()), else hypervisor-owned
 * (rmp_make_shared()). */
static ua_snp_rmp_state rmp_state_for(const ua_snp *s, uint64_t gpa, int private_, int big)
{
    ua_snp_rmp_state st = {0};
    st.page_size = big ? 1 : 0;
    if (private_) {
        st.gpa = gpa;
        st.asid = s->cfg.asid;
        st.assigned = 1;
    }
    return st;
}

ua_status ua_snp_launch_update(ua_snp *s, uint64_t gpa, uint64_t size)
{
    if (!s)
        return UA_E_INVAL;
    if ((gpa | size) & 0xfff)
        return UA_E_ALIGN;
    if (size == 0)
        return UA_OK;
    if (gpa >= s->cfg.memory_bytes || size > s->cfg.memory_bytes - gpa)
        return UA_E_RANGE;
    if (s->launch_finished)
        return UA_E_STATE;
    uint64_t end = gpa + size;
    /* All-or-nothing: every page must be hypervisor-owned first. */
    for (uint64_t a = gpa; a < end;) {
        int is2m;
        uint64_t spa = snp_npt(s, a);
        uint64_t e = snp_entry(s, spa, &is2m);
        if ((e & E_ASSIGNED) || (UA_UNLIKELY(s->nin_use) && in_use_any(s, spa, SNP_4K)))
            return UA_E_STATE;
        if (!snp_region_peek(s, spa >> SNP_REGION_SHIFT) && !(a & (SNP_2M - 1)) &&
            end - a >= SNP_2M && !snp_range_remapped(s, a >> 12, 512) &&
            !(s->nin_use && in_use_any(s, a, SNP_2M)))
            a += SNP_2M; /* an untouched region is all hypervisor-owned */
        else
            a += SNP_4K;
    }
    for (uint64_t a = gpa; a < end;) {
        int whole = !(a & (SNP_2M - 1)) && end - a >= SNP_2M &&
                    s->pol.backing == UA_SNP_BACKING_2M && !snp_range_remapped(s, a >> 12, 512);
        uint64_t spa = snp_npt(s, a);
        /* (a split region of hypervisor-owned pages merges back into one
         * 2 MiB entry: snp_rmpupdate frees its 4 KiB array) */
        ua_snp_rmp_state st = rmp_state_for(s, a, 1, whole);
        uint32_t rc = snp_rmpupdate(s, SNP_NO_VCPU, spa, &st);
        if (rc != UA_SNP_RMP_SUCCESS)
            return rc == UA_SNP_RMP_FAIL_INUSE ? UA_E_NOMEM : UA_E_STATE;
        /* The firmware validates the page (it is "present in a validated
         * state at launch"); the transient Immutable is gone afterwards. */
        struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
        if (whole)
            rg->e |= E_VALIDATED;
        else if (split_put(s, rg->split, (spa >> 12) & 511,
                           split_get(rg->split, (spa >> 12) & 511) | E_VALIDATED))
            return UA_E_NOMEM;
        a += whole ? SNP_2M : SNP_4K;
    }
    return UA_OK;
}

ua_status ua_snp_launch_finish(ua_snp *s)
{
    if (!s)
        return UA_E_INVAL;
    s->launch_finished = 1;
    return UA_OK;
}

static uint8_t perm_of(uint64_t e, uint16_t ext, unsigned vmpl)
{
    if (vmpl == 0)
        return (e & E_PERM0) ? UA_SNP_PERM_ALL : 0;
    return (uint8_t)((ext >> (5 * (vmpl - 1))) & 0x1f);
}

static uint16_t ext_perm(const ua_snp *s, uint64_t spa)
{
    const struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
    if (!rg)
        return 0;
    if (rg->e & E_PAGESIZE)
        return rg->perm;
    return (rg->split && rg->split->perm) ? rg->split->perm[(spa >> 12) & 511] : 0;
}

ua_status ua_snp_rmp_read(const ua_snp *s, uint64_t spa, ua_snp_rmp_entry *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    if (spa >= s->rmp_end)
        return UA_E_RANGE;
    spa &= ~0xfffull;
    int is2m;
    uint64_t e = snp_entry(s, spa, &is2m);
    uint16_t ext = ext_perm(s, spa);
    memset(out, 0, sizeof(*out));
    out->entry_spa = is2m ? spa & ~(SNP_2M - 1) : spa;
    out->gpa = e & E_GPA_MASK;
    out->asid = e_asid(e);
    out->assigned = !!(e & E_ASSIGNED);
    out->page_size = !!(e & E_PAGESIZE);
    out->immutable = !!(e & E_IMMUTABLE);
    out->validated = !!(e & E_VALIDATED);
    out->vmsa = !!(e & E_VMSA);
    for (unsigned v = 0; v < 4; v++)
        out->perm[v] = perm_of(e, ext, v);
    return UA_OK;
}

ua_status ua_snp_host_write(const ua_snp *s, uint64_t spa, ua_snp_result *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    if (spa >= SNP_PA_LIMIT)
        return UA_E_RANGE;
    memset(out, 0, sizeof(*out));
    if (spa >= s->rmp_end)
        return UA_OK; /* beyond RMP coverage counts as hypervisor-owned */
    int is2m;
    if (snp_entry(s, spa & ~0xfffull, &is2m) & E_ASSIGNED) {
        out->fault = UA_SNP_FAULT_PF;
        out->error_code = (uint32_t)(UA_SNP_PFEC_RMP | UA_SNP_NPF_PRESENT | UA_SNP_NPF_WRITE);
        out->exitinfo2 = spa;
    }
    return UA_OK;
}

ua_status ua_snp_count_gpa(const ua_snp *s, uint64_t start, uint64_t end, uint64_t *validated,
                           uint64_t *assigned_unvalidated)
{
    if (!s || !validated || !assigned_unvalidated)
        return UA_E_INVAL;
    ua_status st = snp_check_range(s, start, end);
    if (st)
        return st;
    uint64_t v = 0, u = 0;
    const uint64_t want = E_ASSIGNED | ((uint64_t)s->cfg.asid << E_ASID_SHIFT);
    for (uint64_t a = start; a < end;) {
        if (!(a & (SNP_2M - 1)) && end - a >= SNP_2M && !snp_range_remapped(s, a >> 12, 512)) {
            const struct snp_region *rg = snp_region_peek(s, a >> SNP_REGION_SHIFT);
            if (!rg || (!rg->split && !(rg->e & E_PAGESIZE))) {
                a += SNP_2M;
                continue;
            }
            if (rg->e & E_PAGESIZE) {
                uint64_t e = rg->e;
                if ((e & (E_ASSIGNED | E_ASID_MASK | E_IMMUTABLE)) == want &&
                    (e & E_GPA_MASK) == a) {
                    if (e & E_VALIDATED)
                        v += 512;
                    else
                        u += 512;
                }
                a += SNP_2M;
                continue;
            }
            const struct snp_split *sp = rg->split;
            if (!sp->e && (!sp->have_base || (sp->asid == s->cfg.asid && sp->base == a))) {
                /* compact and its pattern is this region's GPAs: flags decide */
                for (unsigned i = 0; i < 512; i++) {
                    unsigned f = sp->f[i];
                    if ((f & (E_ASSIGNED | E_IMMUTABLE)) == E_ASSIGNED) {
                        v += (f >> 3) & 1;          /* E_VALIDATED */
                        u += !((f >> 3) & 1);
                    }
                }
                a += SNP_2M;
                continue;
            }
        }
        uint64_t spa = snp_npt(s, a);
        int is2m;
        uint64_t e = snp_entry(s, spa, &is2m);
        uint64_t egpa = (e & E_GPA_MASK) + (is2m ? (spa & (SNP_2M - 1)) : 0);
        if ((e & (E_ASSIGNED | E_ASID_MASK | E_IMMUTABLE)) == want && egpa == a) {
            if (e & E_VALIDATED)
                v++;
            else
                u++;
        }
        a += SNP_4K;
    }
    *validated = v;
    *assigned_unvalidated = u;
    return UA_OK;
}

/* ------------------------------------------------------------------------ */
/* guest instructions                                                        */

/* The RMP checks a guest operation on a private page makes before looking
 * at Validated: assigned, ASID, reverse map (GPA), immutable.  gpa is the
 * 4 KiB GPA the guest used; spa its translation. */
static inline int rmp_owner_fault(uint64_t e, int is2m, uint64_t gpa, uint64_t spa, uint32_t asid)
{
    uint64_t egpa = (e & E_GPA_MASK) + (is2m ? (spa & (SNP_2M - 1) & ~0xfffull) : 0);
    return !(e & E_ASSIGNED) || e_asid(e) != asid || egpa != (gpa & ~0xfffull) ||
           (e & E_IMMUTABLE);
}

/* The entry governing spa, with its region (NULL if never written) and
 * the page's index in it, for writing the entry back. */
static inline uint64_t entry_at(const ua_snp *s, uint64_t spa, struct snp_region **rgp,
                                unsigned *idx, int *is2m)
{
    struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
    *rgp = rg;
    *idx = (spa >> 12) & 511;
    *is2m = rg && (rg->e & E_PAGESIZE);
    return !rg ? 0 : *is2m ? rg->e : rg->split ? split_get(rg->split, *idx) : 0;
}

/* The NPF EXITINFO1 a PVALIDATE/RMPADJUST of size takes on entry e, or 0
 * (vendors.md A4/A5, E.1 item 7): the owner checks first -> RMP; then a
 * 4 KiB request on a 2 MiB entry -> RMP | SIZEM (the host PSMASHes). */
static inline uint64_t instr_npf(uint64_t e, int is2m, uint64_t gpa, uint64_t spa, uint32_t asid,
                                 uint32_t size)
{
    const uint64_t npf = UA_SNP_NPF_RMP | UA_SNP_NPF_ENC | UA_SNP_NPF_PRESENT;
    if (rmp_owner_fault(e, is2m, gpa, spa, asid))
        return npf;
    return size == UA_SNP_PAGE_4K && is2m ? npf | UA_SNP_NPF_SIZEM : 0;
}

/* A 2 MiB request at gpa -> spa size-mismatches when the RMP holds 4 KiB
 * entries, or the NPT cannot map the GPA range as one 2 MiB page (a 4 KiB
 * remap inside it, or a target SPA that is not 2 MiB aligned): the APM
 * compares with the NPT size. */
static inline int size_mismatch_2m(const ua_snp *s, int is2m, uint64_t gpa, uint64_t spa)
{
    return !is2m || (spa & (SNP_2M - 1)) || snp_range_remapped(s, gpa >> 12, 512);
}

static inline void set_fault(ua_snp_result *r, uint32_t fault, uint32_t error_code,
                             uint64_t exitinfo1, uint64_t addr)
{
    r->fault = fault;
    r->error_code = error_code;
    r->exitinfo1 = exitinfo1;
    r->exitinfo2 = addr;
}

/* An NPF (charged NPF_EXIT) or a #VC 0x404 with CR2 = va (charged VC). */
static void guest_npf(ua_snp *s, uint32_t vcpu, ua_snp_result *r, uint64_t exitinfo1, uint64_t gpa)
{
    set_fault(r, UA_SNP_FAULT_NPF, 0, exitinfo1, gpa);
    snp_charge(s, vcpu, UA_EV_NPF_EXIT, 1);
}

static void guest_vc404(ua_snp *s, uint32_t vcpu, ua_snp_result *r, uint64_t va)
{
    set_fault(r, UA_SNP_FAULT_VC, UA_SNP_VC_PAGE_NOT_VALIDATED, 0, va);
    snp_charge(s, vcpu, UA_EV_VC, 1);
}

/* Argument checks and accounting shared by the guest instructions. */
static ua_status guest_begin(ua_snp *s, uint32_t vcpu, ua_snp_result *out, int ev)
{
    if (!s || !out)
        return UA_E_INVAL;
    if (vcpu >= s->cfg.nvcpus)
        return UA_E_VCPU;
    memset(out, 0, sizeof(*out));
    snp_charge(s, vcpu, ev, 1);
    return UA_OK;
}

/* PVALIDATE with validated arguments (VMPL 0, size <= 1, aligned, mapped).
 * vendors.md A4 order: owner checks -> NPF; 4K request on a 2M entry ->
 * NPF with SIZEM; 2M request on 4K entries -> FAIL_SIZEMISMATCH; Validated
 * already equal -> EAX 0, CF 1; else flip it.  No data is written. */
void snp_pvalidate(ua_snp *s, uint64_t gpa, uint32_t size, uint32_t validate, ua_snp_result *r)
{
    uint64_t spa = snp_npt(s, gpa);
    struct snp_region *rg;
    unsigned idx;
    int is2m;
    uint64_t e = entry_at(s, spa, &rg, &idx, &is2m);
    memset(r, 0, sizeof(*r));
    uint64_t npf = instr_npf(e, is2m, gpa, spa, s->cfg.asid, size);
    if (npf) {
        set_fault(r, UA_SNP_FAULT_NPF, 0, npf, gpa);
        return;
    }
    if (size == UA_SNP_PAGE_2M && size_mismatch_2m(s, is2m, gpa, spa)) {
        r->eax = UA_SNP_FAIL_SIZEMISMATCH;
        return;
    }
    uint64_t want = validate ? E_VALIDATED : 0;
    if ((e & E_VALIDATED) == want) {
        r->cf = 1;
        return;
    }
    if (is2m)
        rg->e = (rg->e & ~E_VALIDATED) | want;
    else if (!rg->split->e)
        rg->split->f[idx] ^= (uint8_t)E_VALIDATED; /* the pattern still fits */
    else
        rg->split->e[idx] = (e & ~E_VALIDATED) | want;
}

unsigned snp_pvalidate_run4k(ua_snp *s, uint64_t gpa, unsigned n, uint32_t validate)
{
    if (s->nremaps)
        return 0;
    struct snp_region *rg = snp_region_peek(s, gpa >> SNP_REGION_SHIFT);
    if (!rg || !rg->split)
        return 0;
    struct snp_split *sp = rg->split;
    uint64_t *ent = sp->e;
    const uint64_t key = E_ASSIGNED | ((uint64_t)s->cfg.asid << E_ASID_SHIFT);
    const uint64_t mask = E_ASSIGNED | E_IMMUTABLE | E_ASID_MASK | E_GPA_MASK;
    const uint64_t want = validate ? E_VALIDATED : 0;
    unsigned idx = (unsigned)((gpa >> 12) & 511), i;
    if (n > 512 - idx)
        n = 512 - idx;
    if (!ent) {
        /* compact: the pattern decides GPA and ASID for every assigned page */
        if (!sp->have_base || sp->asid != s->cfg.asid ||
            ((sp->base + ((uint64_t)idx << 12)) & E_GPA_MASK) != gpa)
            return 0;
        uint8_t *f = &sp->f[idx];
        const uint8_t fw = (uint8_t)want;
        for (i = 0; i < n; i++) {
            if ((f[i] & (E_ASSIGNED | E_IMMUTABLE)) != E_ASSIGNED || (f[i] & E_VALIDATED) == fw)
                break;
            f[i] ^= (uint8_t)E_VALIDATED;
        }
        return i;
    }
    for (i = 0; i < n; i++, gpa += SNP_4K) {
        uint64_t e = ent[idx + i];
        if ((e & mask) != (key | gpa) || (e & E_VALIDATED) == want)
            break;
        ent[idx + i] = e ^ E_VALIDATED;
    }
    return i;
}

ua_status ua_snp_pvalidate(ua_snp *s, uint32_t vcpu, uint64_t va, uint32_t size,
                           uint32_t validate, ua_snp_result *out)
{
    ua_status st = guest_begin(s, vcpu, out,
                               size == UA_SNP_PAGE_2M ? UA_EV_PVALIDATE_2M : UA_EV_PVALIDATE_4K);
    if (st)
        return st;
    if (s->cfg.vmpl != 0) { /* VeriSMo: PVALIDATE at VMPL != 0 raises #GP */
        out->fault = UA_SNP_FAULT_GP;
        return UA_OK;
    }
    if (size > 1 || (va & ((size ? SNP_2M : SNP_4K) - 1))) {
        out->eax = UA_SNP_FAIL_INPUT;
        return UA_OK;
    }
    if (va >= s->cfg.memory_bytes) { /* not mapped by the guest page tables */
        set_fault(out, UA_SNP_FAULT_PF, 0, 0, va);
        return UA_OK;
    }
    snp_pvalidate(s, va, size, validate ? 1 : 0, out);
    if (out->fault == UA_SNP_FAULT_NPF)
        snp_charge(s, vcpu, UA_EV_NPF_EXIT, 1);
    return UA_OK;
}

/* RMPADJUST.  Order (VeriSMo's rmpadjust, input checks first):
 *   FAIL_INPUT: size > 1, VA misaligned, reserved RDX bits, target VMPL > 3,
 *     Write without Read;
 *   #PF: VA not mapped;
 *   FAIL_PERMISSION: target VMPL <= the current VMPL;
 *   NPF: the same conditions as PVALIDATE (instr_npf);
 *   #VC 0x404: the page is not validated;
 *   FAIL_SIZEMISMATCH: 2M request on 4K entries;
 *   FAIL_PERMISSION: the new mask is not a subset of the caller's own;
 *   else set the target VMPL's mask; the VMSA bit is changed only at VMPL0
 *   (EDK2: "the VMSA change is only made when running at VMPL0"). */
ua_status ua_snp_rmpadjust(ua_snp *s, uint32_t vcpu, uint64_t va, uint32_t size, uint64_t attrs,
                           ua_snp_result *out)
{
    ua_status st = guest_begin(s, vcpu, out, UA_EV_RMPADJUST);
    if (st)
        return st;
    uint32_t target = attrs & 0xff;
    uint32_t perms = (attrs >> 8) & 0xff;
    int vmsa = !!(attrs & UA_SNP_RMPADJUST_VMSA);
    if (size > 1 || (va & ((size ? SNP_2M : SNP_4K) - 1)) ||
        (attrs & ~(uint64_t)(0xff | 0xff00 | UA_SNP_RMPADJUST_VMSA)) || (perms & ~0x1fu) ||
        target > UA_SNP_MAX_VMPL ||
        ((perms & UA_SNP_PERM_WRITE) && !(perms & UA_SNP_PERM_READ))) {
        out->eax = UA_SNP_FAIL_INPUT;
        return UA_OK;
    }
    if (va >= s->cfg.memory_bytes) {
        set_fault(out, UA_SNP_FAULT_PF, 0, 0, va);
        return UA_OK;
    }
    if (target <= s->cfg.vmpl) {
        out->eax = UA_SNP_FAIL_PERMISSION;
        return UA_OK;
    }
    uint64_t spa = snp_npt(s, va);
    struct snp_region *rg;
    unsigned idx;
    int is2m;
    uint64_t e = entry_at(s, spa, &rg, &idx, &is2m);
    uint64_t npf = instr_npf(e, is2m, va, spa, s->cfg.asid, size);
    if (npf) {
        guest_npf(s, vcpu, out, npf, va);
        return UA_OK;
    }
    if (!(e & E_VALIDATED)) {
        guest_vc404(s, vcpu, out, va);
        return UA_OK;
    }
    if (size == UA_SNP_PAGE_2M && size_mismatch_2m(s, is2m, va, spa)) {
        out->eax = UA_SNP_FAIL_SIZEMISMATCH;
        return UA_OK;
    }
    uint16_t ext = ext_perm(s, spa);
    uint8_t mine = perm_of(e, ext, s->cfg.vmpl);
    if (perms & ~(uint32_t)mine) {
        out->eax = UA_SNP_FAIL_PERMISSION;
        return UA_OK;
    }
    unsigned sh = 5 * (target - 1);
    uint16_t next = (uint16_t)((ext & ~(0x1fu << sh)) | (perms << sh));
    if (is2m) {
        rg->perm = next;
        if (s->cfg.vmpl == 0)
            rg->e = (rg->e & ~E_VMSA) | (vmsa ? E_VMSA : 0);
    } else {
        if (!rg->split->perm) {
            if (next == 0)
                goto vmsa4k;
            uint16_t *p = calloc(512, sizeof(uint16_t));
            if (!p)
                return UA_E_NOMEM;
            __atomic_add_fetch(&s->bytes_allocated, 512 * sizeof(uint16_t), __ATOMIC_RELAXED);
            rg->split->perm = p;
        }
        rg->split->perm[idx] = next;
    vmsa4k:
        if (s->cfg.vmpl == 0 &&
            split_put(s, rg->split, idx, (e & ~E_VMSA) | (vmsa ? E_VMSA : 0)))
            return UA_E_NOMEM;
    }
    return UA_OK;
}

/* Guest access.  Private (C=1, and every fetch): the RMP owner checks ->
 * NPF(RMP|ENC); then Validated -> #VC 0x404 with CR2 = the VA (= GPA here);
 * then the VMPL mask -> NPF(RMP|ENC|VMPL).  The Page-Size check cannot fail
 * in this model: the NPT maps a page at most at the RMP entry's size (KVM
 * keeps NPT level <= RMP level; vendors.md A4).  Shared (C=0) data writes
 * must hit a hypervisor-owned page, else NPF(RMP); C=0 reads are not
 * RMP-checked.  A GPA outside guest RAM has no NPT mapping: NPF without the
 * RMP bit. */
ua_status ua_snp_access(ua_snp *s, uint32_t vcpu, uint64_t gpa, uint32_t kind, uint32_t c_bit,
                        ua_snp_result *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    if (vcpu >= s->cfg.nvcpus)
        return UA_E_VCPU;
    if (kind > UA_SNP_ACCESS_EXEC_SUPER || c_bit > 1)
        return UA_E_INVAL;
    if (gpa >= SNP_PA_LIMIT)
        return UA_E_RANGE;
    memset(out, 0, sizeof(*out));
    static const uint64_t acc_bits[] = {
        [UA_SNP_ACCESS_READ] = 0,
        [UA_SNP_ACCESS_WRITE] = UA_SNP_NPF_WRITE,
        [UA_SNP_ACCESS_EXEC_USER] = UA_SNP_NPF_FETCH | UA_SNP_NPF_USER,
        [UA_SNP_ACCESS_EXEC_SUPER] = UA_SNP_NPF_FETCH,
    };
    static const uint8_t need_perm[] = {
        [UA_SNP_ACCESS_READ] = UA_SNP_PERM_READ,
        [UA_SNP_ACCESS_WRITE] = UA_SNP_PERM_WRITE,
        [UA_SNP_ACCESS_EXEC_USER] = UA_SNP_PERM_EXEC_USER,
        [UA_SNP_ACCESS_EXEC_SUPER] = UA_SNP_PERM_EXEC_SUPER,
    };
    uint64_t acc = acc_bits[kind];
    int priv = c_bit || kind >= UA_SNP_ACCESS_EXEC_USER;
    if (gpa >= s->cfg.memory_bytes) {
        guest_npf(s, vcpu, out, acc | (priv ? UA_SNP_NPF_ENC : 0), gpa);
        return UA_OK;
    }
    uint64_t spa = snp_npt(s, gpa);
    int is2m;
    uint64_t e = snp_entry(s, spa & ~0xfffull, &is2m);
    if (!priv) {
        if (kind == UA_SNP_ACCESS_WRITE && (e & E_ASSIGNED))
            guest_npf(s, vcpu, out, UA_SNP_NPF_RMP | UA_SNP_NPF_PRESENT | acc, gpa);
        return UA_OK;
    }
    uint64_t npf = UA_SNP_NPF_RMP | UA_SNP_NPF_ENC | UA_SNP_NPF_PRESENT | acc;
    if (rmp_owner_fault(e, is2m, gpa, spa, s->cfg.asid))
        guest_npf(s, vcpu, out, npf, gpa);
    else if (!(e & E_VALIDATED))
        guest_vc404(s, vcpu, out, gpa);
    else if (!(perm_of(e, ext_perm(s, spa), s->cfg.vmpl) & need_perm[kind]))
        guest_npf(s, vcpu, out, npf | UA_SNP_NPF_VMPL, gpa);
    return UA_OK;
}

/* ------------------------------------------------------------------------ */
/* hypervisor: Page State Change                                             */

/* ---- memory attributes (lazy mode) ---- */
static uintptr_t *attr_slot(ua_snp *s, uint64_t gregion, int alloc)
{
    void **slot = &s->attr[gregion >> SNP_CHUNK_SHIFT];
    uintptr_t *c = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!c && (!alloc || !(c = chunk_alloc(s, slot, SNP_CHUNK_REGIONS * sizeof(*c)))))
        return NULL;
    return &c[gregion & (SNP_CHUNK_REGIONS - 1)];
}

static int attr_private(ua_snp *s, uint64_t gfn)
{
    uintptr_t *a = attr_slot(s, gfn >> 9, 0);
    if (!a || *a == 0)
        return 0;
    if (*a == 1)
        return 1;
    return (int)((((const uint64_t *)*a)[(gfn & 511) >> 6] >> (gfn & 63)) & 1);
}

static int attr_all_private(ua_snp *s, uint64_t gfn2m)
{
    uintptr_t *a = attr_slot(s, gfn2m >> 9, 0);
    return a && *a == 1;
}

/* Set the attribute of n GFNs from gfn (all in one 2 MiB region). */
static int attr_set(ua_snp *s, uint64_t gfn, unsigned n, int priv)
{
    uintptr_t *a = attr_slot(s, gfn >> 9, 1);
    if (!a)
        return -1;
    if (n == 512 || *a == (uintptr_t)priv) {
        if (n == 512 && *a > 1) {
            free((void *)*a);
            __atomic_sub_fetch(&s->bytes_allocated, 64, __ATOMIC_RELAXED);
        }
        if (n == 512)
            *a = (uintptr_t)priv;
        return 0;
    }
    uint64_t *bits;
    if (*a <= 1) {
        bits = malloc(64);
        if (!bits)
            return -1;
        __atomic_add_fetch(&s->bytes_allocated, 64, __ATOMIC_RELAXED);
        memset(bits, *a ? 0xff : 0, 64);
        *a = (uintptr_t)bits;
    }
    bits = (uint64_t *)*a;
    for (unsigned i = 0; i < n; i++) {
        unsigned b = (unsigned)((gfn + i) & 511);
        if (priv)
            bits[b >> 6] |= 1ull << (b & 63);
        else
            bits[b >> 6] &= ~(1ull << (b & 63));
    }
    return 0;
}

/* Make one 4 KiB GFN private or shared the way KVM does: PSMASH an assigned
 * 2 MiB entry first, then RMPUPDATE the 4 KiB page.  0 on success. */
static int host_set_4k(ua_snp *s, uint32_t vcpu, uint64_t gfn, int private_)
{
    if (s->pol.lazy_rmpupdate) {
        if (attr_set(s, gfn, 1, private_))
            return -1;
        if (private_)
            return 0; /* RMPUPDATE at the guest's first NPF on the page */
    }
    uint64_t spa = snp_npt(s, gfn << 12);
    struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
    /* KVM converts on a change of the page's memory attribute only: a page
     * already in the requested state is left alone (no RMPUPDATE, so a
     * validated page stays validated and a PVALIDATE then reports CF=1). */
    int is2m;
    uint64_t cur = snp_entry(s, spa, &is2m);
    if (private_ ? !rmp_owner_fault(cur, is2m, gfn << 12, spa, s->cfg.asid)
                 : !(cur & E_ASSIGNED))
        return 0;
    if (rg && (rg->e & (E_PAGESIZE | E_ASSIGNED)) == (E_PAGESIZE | E_ASSIGNED)) {
        if (snp_psmash(s, vcpu, spa & ~(SNP_2M - 1)) != UA_SNP_RMP_SUCCESS)
            return -1;
    }
    ua_snp_rmp_state st = rmp_state_for(s, gfn << 12, private_, 0);
    return snp_rmpupdate(s, vcpu, spa, &st) == UA_SNP_RMP_SUCCESS ? 0 : -1;
}

/* host_set_4k for n consecutive GFNs of one 2 MiB region, in one pass when
 * nothing needs the general path (no remaps, in-use pages or lazy mode, and
 * the region is not a 2 MiB entry): the same checks and entries as n
 * single-page calls, with the RMPUPDATEs charged at once. */
static int host_set_run_4k(ua_snp *s, uint32_t vcpu, uint64_t gfn, unsigned n, int private_)
{
    struct snp_region *rg = NULL;
    if (!s->nremaps && !s->nin_use && !s->pol.lazy_rmpupdate)
        rg = snp_region_get(s, gfn >> 9);
    if (!rg || (rg->e & E_PAGESIZE) || (!rg->split && !region_split(s, rg))) {
        for (unsigned i = 0; i < n; i++)
            if (host_set_4k(s, vcpu, gfn + i, private_))
                return -1;
        return 0;
    }
    struct snp_split *sp = rg->split;
    uint64_t done = 0;
    int rc = 0;
    unsigned idx0 = (unsigned)(gfn & 511);
    uint64_t gpa0 = gfn << 12;
    if (!sp->e && (!private_ || !sp->have_base ||
                   (sp->asid == s->cfg.asid &&
                    ((sp->base + ((uint64_t)idx0 << 12)) & E_GPA_MASK) == gpa0))) {
        /* compact, and the new entries fit the pattern: flags only */
        if (private_ && !sp->have_base) {
            sp->base = gpa0 - ((uint64_t)idx0 << 12);
            sp->asid = s->cfg.asid;
            sp->have_base = 1;
        }
        uint8_t *f = &sp->f[idx0];
        const uint8_t nf = (uint8_t)(private_ ? (E_ASSIGNED | E_PERM0) : E_PERM0);
        for (unsigned i = 0; i < n; i++) {
            if (private_ ? (f[i] & (E_ASSIGNED | E_IMMUTABLE)) == E_ASSIGNED
                         : !(f[i] & E_ASSIGNED))
                continue; /* already in the requested state */
            done++;
            if (f[i] & E_IMMUTABLE) {
                rc = -1;
                break;
            }
            f[i] = nf;
            if (sp->perm)
                sp->perm[idx0 + i] = 0;
        }
        snp_charge(s, vcpu, UA_EV_RMPUPDATE_4K, done);
        return rc;
    }
    const uint64_t key = E_ASSIGNED | ((uint64_t)s->cfg.asid << E_ASID_SHIFT);
    const uint64_t mask = E_ASSIGNED | E_IMMUTABLE | E_ASID_MASK | E_GPA_MASK;
    for (unsigned i = 0; i < n; i++) {
        unsigned idx = idx0 + i;
        uint64_t e = split_get(sp, idx), gpa = gpa0 + ((uint64_t)i << 12);
        if (private_ ? (e & mask) == (key | gpa) : !(e & E_ASSIGNED))
            continue; /* already in the requested state */
        done++;
        if (e & E_IMMUTABLE) {
            rc = -1;
            break;
        }
        if (split_put(s, sp, idx, private_ ? (key | E_PERM0 | gpa) : E_PERM0)) {
            rc = -1;
            break;
        }
        if (sp->perm)
            sp->perm[idx] = 0;
    }
    snp_charge(s, vcpu, UA_EV_RMPUPDATE_4K, done);
    return rc;
}

/* Make a 2 MiB-aligned run of 512 GFNs private or shared with one 2 MiB
 * RMPUPDATE when the host backs with 2 MiB pages and nothing in the region
 * forces 4 KiB entries; else page by page. */
static int host_set_2m(ua_snp *s, uint32_t vcpu, uint64_t gfn, int private_)
{
    if (s->pol.lazy_rmpupdate) {
        if (attr_set(s, gfn, 512, private_))
            return -1;
        if (private_)
            return 0;
    }
    if (s->pol.backing == UA_SNP_BACKING_2M && !snp_range_remapped(s, gfn, 512)) {
        uint64_t spa = gfn << 12;
        struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
        if (!rg || !rg->split) {
            uint64_t cur = rg ? rg->e : 0;
            if (private_ ? ((cur & E_PAGESIZE) && !rmp_owner_fault(cur, 1, spa, spa, s->cfg.asid))
                         : !(cur & E_ASSIGNED))
                return 0; /* already in the requested state */
            ua_snp_rmp_state st = rmp_state_for(s, spa, private_, 1);
            return snp_rmpupdate(s, vcpu, spa, &st) == UA_SNP_RMP_SUCCESS ? 0 : -1;
        }
    }
    return host_set_run_4k(s, vcpu, gfn, 512, private_);
}

uint64_t snp_psc_msr(ua_snp *s, uint32_t vcpu, uint64_t req)
{
    snp_charge(s, vcpu, UA_EV_VMGEXIT_PSC_MSR, 1);
    uint64_t gfn = (req >> 12) & ((1ull << 40) - 1);
    unsigned op = (req >> 52) & 0xf;
    if ((req >> 56) || (op != UA_SNP_PSC_OP_PRIVATE && op != UA_SNP_PSC_OP_SHARED) ||
        gfn >= s->guest_pages)
        return UA_SNP_GHCB_MSR_PSC_RESP_ERROR;
    if (s->pol.msr_fault == UA_SNP_MSRF_ERROR)
        return UA_SNP_GHCB_MSR_PSC_RESP_ERROR;
    if (s->pol.msr_fault == UA_SNP_MSRF_BAD_CODE)
        return 0;
    if (!s->pol.skip_rmpupdate && host_set_4k(s, vcpu, gfn, op == UA_SNP_PSC_OP_PRIVATE))
        return UA_SNP_GHCB_MSR_PSC_RESP_ERROR;
    return UA_SNP_GHCB_MSR_PSC_RESP;
}

ua_status ua_snp_psc_msr(ua_snp *s, uint32_t vcpu, uint64_t request_msr, uint64_t *response_msr)
{
    if (!s || !response_msr)
        return UA_E_INVAL;
    if (vcpu >= s->cfg.nvcpus)
        return UA_E_VCPU;
    if ((request_msr & 0xfff) != UA_SNP_GHCB_MSR_PSC_REQ)
        return UA_E_OP;
    *response_msr = snp_psc_msr(s, vcpu, request_msr);
    return UA_OK;
}

#define PSC_HDR(cur, end, rsvd) ((uint64_t)(cur) | ((uint64_t)(end) << 16) | ((uint64_t)(rsvd) << 32))

/* The hypervisor's NAE Page State Change handler (KVM's contract, vendors.md
 * A6): process entries from cur_entry, at most psc_max_entries entries and
 * psc_max_pages pages per exit, set cur_page as pages complete and advance
 * cur_entry; a 2 MiB entry already partly done is finished as 4 KiB pages;
 * PSMASH/UNSMASH hints are no-ops.  Errors in SW_EXITINFO2 stop the walk
 * with the header pointing at the failing entry. */
void snp_psc_ghcb(ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent, size_t cap,
                  ua_snp_ghcb_result *out)
{
    memset(out, 0, sizeof(*out));
    snp_charge(s, vcpu, UA_EV_VMGEXIT_PSC, 1);
    const ua_snp_host_policy *p = &s->pol;
    if (p->ghcb_error) { /* the GHCB is checked before the scratch area is read */
        out->sw_exitinfo1 = UA_SNP_GHCB_EXITINFO1_ERROR;
        out->sw_exitinfo2 = p->ghcb_error;
        return;
    }
    uint64_t h = *hdr;
    unsigned cur = PSC_CUR(h), end = PSC_END(h);
    if (end >= UA_SNP_PSC_MAX_ENTRIES) {
        out->sw_exitinfo2 = UA_SNP_PSC_ERROR_INVALID_HDR;
        return;
    }
    if (end >= cap) {
        out->sw_exitinfo1 = UA_SNP_GHCB_EXITINFO1_ERROR;
        out->sw_exitinfo2 = UA_SNP_GHCB_ERR_INVALID_SCRATCH_AREA;
        return;
    }
    if (p->psc_fault == UA_SNP_PSCF_STALL)
        return;
    if (p->psc_fault == UA_SNP_PSCF_REWIND) {
        *hdr = PSC_HDR(0, end, h >> 32);
        return;
    }
    uint64_t left_e = p->psc_max_entries ? p->psc_max_entries : UINT64_MAX;
    uint64_t left_p = p->psc_max_pages ? p->psc_max_pages : UINT64_MAX;
    while (cur <= end && left_e && left_p) {
        uint64_t x = ent[cur];
        unsigned cur_page = x & 0xfff;
        uint64_t gfn = (x >> 12) & ((1ull << 40) - 1);
        unsigned op = (x >> 52) & 0xf;
        unsigned npages = (x >> 56) & 1 ? 512 : 1;
        if (op < UA_SNP_PSC_OP_PRIVATE || op > UA_SNP_PSC_OP_UNSMASH || cur_page > npages ||
            (gfn & (npages - 1))) {
            out->sw_exitinfo2 = UA_SNP_PSC_ERROR_INVALID_ENTRY;
            break;
        }
        if (op <= UA_SNP_PSC_OP_SHARED && gfn + npages > s->guest_pages) {
            out->sw_exitinfo2 = UA_SNP_PSC_ERROR_GENERIC;
            break;
        }
        unsigned todo = npages - cur_page;
        if (todo > left_p)
            todo = (unsigned)left_p;
        if (op <= UA_SNP_PSC_OP_SHARED && todo && !p->skip_rmpupdate) {
            int priv = op == UA_SNP_PSC_OP_PRIVATE, bad = 0;
            if (npages == 512 && cur_page == 0 && todo == 512) {
                bad = host_set_2m(s, vcpu, gfn, priv);
            } else {
                bad = host_set_run_4k(s, vcpu, gfn + cur_page, todo, priv);
            }
            if (bad) {
                out->sw_exitinfo2 = UA_SNP_PSC_ERROR_GENERIC;
                break;
            }
        }
        if (op <= UA_SNP_PSC_OP_SHARED) {
            left_p -= todo;
            out->pages_done += todo;
        } else {
            todo = npages - cur_page; /* hints complete at once */
        }
        cur_page += todo;
        ent[cur] = (x & ~0xfffull) | cur_page;
        if (cur_page < npages)
            break;
        cur++;
        left_e--;
        out->entries_done++;
    }
    uint32_t rsvd = (uint32_t)(h >> 32);
    if (p->psc_fault == UA_SNP_PSCF_ERROR)
        out->sw_exitinfo2 = UA_SNP_PSC_ERROR_GENERIC;
    else if (p->psc_fault == UA_SNP_PSCF_RESERVED)
        rsvd |= 1;
    else if (p->psc_fault == UA_SNP_PSCF_END_GROW)
        end++;
    *hdr = PSC_HDR(cur, end, rsvd);
}

static uint64_t le64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static void put_le64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        b[i] = (uint8_t)v;
}

ua_status ua_snp_psc_ghcb(ua_snp *s, uint32_t vcpu, uint8_t *buf, size_t len,
                          ua_snp_ghcb_result *out)
{
    if (!s || !out || (!buf && len))
        return UA_E_INVAL;
    if (vcpu >= s->cfg.nvcpus)
        return UA_E_VCPU;
    memset(out, 0, sizeof(*out));
    if (len < UA_SNP_PSC_HDR_BYTES) {
        snp_charge(s, vcpu, UA_EV_VMGEXIT_PSC, 1);
        out->sw_exitinfo1 = UA_SNP_GHCB_EXITINFO1_ERROR;
        out->sw_exitinfo2 = s->pol.ghcb_error ? s->pol.ghcb_error
                                              : UA_SNP_GHCB_ERR_INVALID_SCRATCH_AREA;
        return UA_OK;
    }
    uint64_t hdr = le64(buf), ent[UA_SNP_PSC_MAX_ENTRIES];
    size_t cap = (len - UA_SNP_PSC_HDR_BYTES) / 8;
    if (cap > UA_SNP_PSC_MAX_ENTRIES)
        cap = UA_SNP_PSC_MAX_ENTRIES;
    for (size_t i = 0; i < cap; i++)
        ent[i] = le64(buf + 8 + 8 * i);
    snp_psc_ghcb(s, vcpu, &hdr, ent, cap, out);
    put_le64(buf, hdr);
    for (size_t i = 0; i < cap; i++)
        put_le64(buf + 8 + 8 * i, ent[i]);
    return UA_OK;
}

int ua_snp_psc_guest_check(uint16_t start_cur, uint16_t start_end, const uint8_t *hdr,
                           uint64_t sw_exitinfo2)
{
    if (sw_exitinfo2)
        return 1;
    if (!hdr)
        return 1;
    uint64_t h = le64(hdr);
    if (h >> 32)
        return 2;
    if (PSC_END(h) > start_end)
        return 3;
    if (PSC_CUR(h) < start_cur)
        return 4;
    return 0;
}

/* The hypervisor's answer to an NPF raised by a guest PVALIDATE/RMPADJUST:
 * with SIZEM (a 4 KiB operation on a 2 MiB entry) KVM PSMASHes the entry
 * and resumes, so the instruction re-executes; nothing else is fixable
 * (the page was never assigned, or belongs elsewhere): the guest would
 * re-execute forever. */
int snp_host_npf(ua_snp *s, uint32_t vcpu, uint64_t gpa, uint64_t exitinfo1, uint64_t *psmashes)
{
    uint64_t gfn = gpa >> 12;
    if (s->pol.lazy_rmpupdate && !(exitinfo1 & UA_SNP_NPF_SIZEM) && gfn < s->guest_pages &&
        attr_private(s, gfn)) {
        /* Lazy mode: the first fault on a private GFN makes the host map it
         * (kvm_gmem fault-in -> rmp_make_private) at the largest level the
         * backing and the attributes allow, then resume the guest. */
        uint64_t spa = snp_npt(s, gpa & ~0xfffull);
        int is2m;
        if (snp_entry(s, spa, &is2m) & E_ASSIGNED)
            return 0; /* assigned to something else: not a missing mapping */
        uint64_t g2 = gfn & ~511ull;
        if (s->pol.backing == UA_SNP_BACKING_2M && attr_all_private(s, g2) &&
            !snp_range_remapped(s, g2, 512)) {
            ua_snp_rmp_state st = rmp_state_for(s, g2 << 12, 1, 1);
            if (snp_rmpupdate(s, vcpu, g2 << 12, &st) == UA_SNP_RMP_SUCCESS)
                return 1;
        }
        ua_snp_rmp_state st = rmp_state_for(s, gpa & ~0xfffull, 1, 0);
        return snp_rmpupdate(s, vcpu, spa, &st) == UA_SNP_RMP_SUCCESS;
    }
    if ((exitinfo1 & UA_SNP_NPF_SIZEM) && s->pol.npf_psmash) {
        uint64_t spa = snp_npt(s, gpa) & ~(SNP_2M - 1);
        if (snp_psmash(s, vcpu, spa) == UA_SNP_RMP_SUCCESS) {
            (*psmashes)++;
            return 1;
        }
    }
    return 0;
}
