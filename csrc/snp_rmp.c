/* snp_rmp.c - SEV-SNP model: the RMP storage (a sparse directory of 2 MiB
 * records, split regions of 4 KiB entries), the machine's lifetime and
 * settings, the fatal record, the nested page table and in-use marks.
 * Rules and their sources: docs/snp.md. */
#include <stdlib.h>
#include <string.h>

#include "snp_internal.h"

/* ------------------------------------------------------------------------ */
/* storage                                                                   */

static struct snp_split *split_alloc(ua_snp *s, uint32_t vcpu)
{
    struct snp_split *sp = calloc(1, sizeof(*sp));
    if (sp)
        snp_bytes_add(s, vcpu, (int64_t)sizeof(*sp));
    return sp;
}

void snp_split_free(ua_snp *s, uint32_t vcpu, struct snp_split *sp)
{
    if (!sp)
        return;
    uint64_t bytes = sizeof(*sp) + (sp->perm ? 512 * sizeof(uint16_t) : 0) +
                     (sp->e ? 512 * sizeof(uint64_t) : 0);
    snp_bytes_add(s, vcpu, -(int64_t)bytes);
    free(sp->e);
    free(sp->perm);
    free(sp);
}

int split_put(ua_snp *s, uint32_t vcpu, struct snp_split *sp, unsigned i, uint64_t e)
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
        snp_bytes_add(s, vcpu, 512 * sizeof(uint64_t));
        for (unsigned j = 0; j < 512; j++)
            full[j] = split_get(sp, j);
        sp->e = full;
    }
    sp->e[i] = e;
    return 0;
}

/* Turn a region into 512 4 KiB entries.  A 2 MiB entry is copied to every
 * page with consecutive GPAs (PSMASH semantics); a zero region stays zero. */
int snp_region_split(ua_snp *s, uint32_t vcpu, struct snp_region *rg)
{
    if (rg->split)
        return 1;
    struct snp_split *sp = split_alloc(s, vcpu);
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
                snp_split_free(s, vcpu, sp);
                return 0;
            }
            snp_bytes_add(s, vcpu, 512 * sizeof(uint16_t));
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

void ua_snp_config_default(ua_snp_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->memory_bytes = 1ull << 30;
    cfg->asid = 1;
    cfg->vcpus = 1;
    cfg->backing = UA_BACKING_2M;
}

static void free_splits(void *owner, void *chunk, uint64_t n)
{
    struct snp_region *rg = chunk;
    for (uint64_t i = 0; i < n; i++)
        if (rg[i].split) {
            free(rg[i].split->e);
            free(rg[i].split->perm);
            free(rg[i].split);
        }
}

static void free_attr_bitmaps(void *owner, void *chunk, uint64_t n)
{
    uintptr_t *a = chunk;
    for (uint64_t i = 0; i < n; i++)
        if (a[i] > 1)
            free((void *)a[i]);
}

ua_status ua_snp_create(const ua_snp_config *cfg, ua_snp **out)
{
    if (!cfg || !out)
        return UA_E_INVAL;
    *out = NULL;
    if (cfg->memory_bytes == 0 || cfg->memory_bytes % UA_2M || cfg->spare_bytes % UA_2M)
        return UA_E_ALIGN;
    if (cfg->memory_bytes > SNP_PA_LIMIT || cfg->spare_bytes > SNP_PA_LIMIT - cfg->memory_bytes)
        return UA_E_RANGE;
    if (cfg->asid == 0 || cfg->asid > UA_SNP_MAX_ASID || cfg->vmpl > UA_SNP_MAX_VMPL ||
        cfg->backing > UA_BACKING_4K || cfg->reserved)
        return UA_E_INVAL;
    if (cfg->vcpus == 0 || cfg->vcpus > UA_MAX_VCPUS)
        return UA_E_VCPU;
    ua_snp *s = calloc(1, sizeof(*s));
    if (!s)
        return UA_E_NOMEM;
    if (posix_memalign((void **)&s->vcpus, 64, sizeof(*s->vcpus) * cfg->vcpus)) {
        free(s);
        return UA_E_NOMEM;
    }
    memset(s->vcpus, 0, sizeof(*s->vcpus) * cfg->vcpus);
    s->cfg = *cfg;
    s->cfg.coherency_sfw_no = !!cfg->coherency_sfw_no;
    s->guest_pages = cfg->memory_bytes >> 12;
    s->rmp_end = cfg->memory_bytes + cfg->spare_bytes;
    s->nregions = s->rmp_end >> SNP_REGION_SHIFT;
    s->bytes_allocated = sizeof(*s) + sizeof(*s->vcpus) * cfg->vcpus;
    if (ua_sparse_init(&s->rmp, s->nregions, sizeof(struct snp_region), NULL, s,
                       &s->bytes_allocated) ||
        ua_sparse_init(&s->attr, cfg->memory_bytes >> SNP_REGION_SHIFT, sizeof(uintptr_t), NULL,
                       s, &s->bytes_allocated)) {
        ua_sparse_fini(&s->rmp, NULL);
        free(s->vcpus);
        free(s);
        return UA_E_NOMEM;
    }
    ua_host_init_default(&s->own_host);
    s->host = &s->own_host;
    ua_fatal_slot_init(&s->fatal);
    *out = s;
    return UA_OK;
}

void ua_snp_destroy(ua_snp *s)
{
    if (!s)
        return;
    ua_sparse_fini(&s->rmp, free_splits);
    ua_sparse_fini(&s->attr, free_attr_bitmaps);
    free(s->remaps);
    free(s->in_use);
    ua_fatal_slot_fini(&s->fatal);
    free(s->vcpus);
    free(s);
}

ua_status ua_snp_config_get(const ua_snp *s, ua_snp_config *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    *out = s->cfg;
    return UA_OK;
}

ua_status ua_snp_set_cancel(ua_snp *s, const volatile int *flag)
{
    if (!s)
        return UA_E_INVAL;
    s->cancel = flag;
    return UA_OK;
}

ua_status ua_snp_set_cost(ua_snp *s, ua_cost *cost)
{
    if (!s)
        return UA_E_INVAL;
    if (cost && ua_cost_vcpus(cost) < s->cfg.vcpus)
        return UA_E_VCPU;
    s->cost = cost;
    return UA_OK;
}

ua_host *ua_snp_host(const ua_snp *s)
{
    return s && s->host != &s->own_host ? s->host : NULL;
}

ua_status ua_snp_set_host(ua_snp *s, ua_host *host)
{
    if (!s)
        return UA_E_INVAL;
    s->host = host ? host : &s->own_host;
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
    for (uint32_t v = 0; v < s->cfg.vcpus; v++)
        out->bytes_allocated += (uint64_t)__atomic_load_n(&s->vcpus[v].bytes, __ATOMIC_RELAXED);
    for (uint64_t c = 0; c < s->rmp.nchunks; c++) {
        const struct snp_region *ch = ua_sparse_peek(&s->rmp, c << UA_SPARSE_SHIFT);
        if (!ch)
            continue;
        out->chunks_allocated++;
        for (uint64_t i = 0, n = ua_sparse_chunk_items(&s->rmp, c); i < n; i++) {
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

int snp_record_termination(ua_snp *s, uint32_t vcpu, uint32_t set, uint32_t code, uint64_t gpa,
                           uint32_t eax, uint32_t fault, uint64_t info2)
{
    ua_fatal f;
    memset(&f, 0, sizeof(f));
    f.kind = UA_FATAL_TERMINATED;
    f.vcpu = vcpu;
    f.gpa = gpa;
    f.code = term_msr(set, code);
    f.reason_set = set & 0xf;
    f.reason_code = code & 0xff;
    f.eax = eax;
    f.fault = fault;
    f.info = info2;
    return ua_fatal_record(&s->fatal, &f);
}

int snp_record_hang(ua_snp *s, uint32_t vcpu, uint64_t gpa, const char *why)
{
    return ua_fatal_raise(&s->fatal, UA_FATAL_HUNG, vcpu, gpa, 0, why);
}

uint64_t ua_snp_terminate(ua_snp *s, uint32_t vcpu, uint32_t reason_set, uint32_t reason_code)
{
    if (s)
        snp_record_termination(s, vcpu, reason_set, reason_code, 0, 0, 0, 0);
    return term_msr(reason_set, reason_code);
}

ua_status ua_snp_fatal_get(const ua_snp *s, ua_fatal *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    ua_fatal_read(&s->fatal, out);
    return UA_OK;
}

void ua_snp_fatal_clear(ua_snp *s)
{
    if (s)
        ua_fatal_reset(&s->fatal);
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

int snp_in_use_any(const ua_snp *s, uint64_t spa, uint64_t size)
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

