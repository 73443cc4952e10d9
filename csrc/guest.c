/* guest.c - the vendor-neutral guest (ua_guest.h): one handle, the same
 * verbs for SEV-SNP and TDX, dispatched to the vendor machine.  It owns the
 * machine, one accept path per kind and, given a profile, the cost
 * counters; the host belongs to the caller. */
#include <stdlib.h>
#include <string.h>

#include "ua_internal.h"

struct ua_guest {
    ua_guest_config cfg;        /* vendor_config and cost_profile cleared */
    ua_cost *cost;              /* owned; NULL without a profile */
    ua_snp *snp;                /* exactly one of snp / tdx */
    ua_tdx *tdx;
    void *paths[UA_PATH_KIND_COUNT]; /* ua_snp_path / ua_tdx_path */
    ua_accept_fn accept;        /* the vendor's ua_accept_fn and unaccept */
    ua_accept_fn unaccept;
};

static ua_status make_machine(ua_guest *g, const ua_guest_config *cfg)
{
    if (cfg->vendor == UA_VENDOR_SNP) {
        ua_snp_config c;
        if (cfg->vendor_config)
            c = *(const ua_snp_config *)cfg->vendor_config;
        else
            ua_snp_config_default(&c);
        c.memory_bytes = cfg->memory_bytes;
        c.vcpus = cfg->vcpus;
        c.backing = cfg->backing;
        ua_status st = ua_snp_create(&c, &g->snp);
        if (st)
            return st;
        if ((st = ua_snp_set_cost(g->snp, g->cost)) || (st = ua_snp_set_host(g->snp, cfg->host)))
            return st;
        for (uint32_t k = 0; k < UA_PATH_KIND_COUNT; k++) {
            ua_path_options o = {.kind = k};
            if ((st = ua_snp_path_create(g->snp, &o, (ua_snp_path **)&g->paths[k])))
                return st;
        }
        g->accept = ua_snp_accept;
        g->unaccept = ua_snp_unaccept;
        return UA_OK;
    }
    ua_tdx_config c;
    if (cfg->vendor_config)
        c = *(const ua_tdx_config *)cfg->vendor_config;
    else
        ua_tdx_config_default(&c);
    c.memory_bytes = cfg->memory_bytes;
    c.vcpus = cfg->vcpus;
    c.backing = cfg->backing;
    ua_status st = ua_tdx_create(&c, &g->tdx);
    if (st)
        return st;
    if ((st = ua_tdx_set_cost(g->tdx, g->cost)) || (st = ua_tdx_set_host(g->tdx, cfg->host)))
        return st;
    for (uint32_t k = 0; k < UA_PATH_KIND_COUNT; k++) {
        ua_path_options o = {.kind = k};
        if ((st = ua_tdx_path_create(g->tdx, &o, (ua_tdx_path **)&g->paths[k])))
            return st;
    }
    g->accept = ua_tdx_accept;
    g->unaccept = ua_tdx_unaccept;
    return UA_OK;
}

ua_status ua_guest_create(const ua_guest_config *cfg, ua_guest **out)
{
    if (!cfg || !out)
        return UA_E_INVAL;
    *out = NULL;
    if (cfg->vendor > UA_VENDOR_TDX || cfg->backing > UA_BACKING_4K || cfg->reserved)
        return UA_E_INVAL;
    if (cfg->memory_bytes == 0 || cfg->memory_bytes % UA_SIZE_4K)
        return UA_E_ALIGN;  /* the vendor checks the rest (SNP: 2 MiB multiples) */
    if (cfg->vcpus == 0 || cfg->vcpus > UA_MAX_VCPUS)
        return UA_E_VCPU;
    ua_guest *g = calloc(1, sizeof(*g));
    if (!g)
        return UA_E_NOMEM;
    ua_status st = UA_OK;
    if (cfg->cost_profile)
        st = ua_cost_create(cfg->cost_profile, cfg->vcpus, &g->cost);
    if (!st)
        st = make_machine(g, cfg);
    if (st) {
        ua_guest_destroy(g);
        return st;
    }
    g->cfg = *cfg;
    g->cfg.cost_profile = NULL;
    g->cfg.vendor_config = NULL;
    *out = g;
    return UA_OK;
}

void ua_guest_destroy(ua_guest *g)
{
    if (!g)
        return;
    for (uint32_t k = 0; k < UA_PATH_KIND_COUNT; k++) {
        if (g->snp)
            ua_snp_path_destroy(g->paths[k]);
        else
            ua_tdx_path_destroy(g->paths[k]);
    }
    ua_snp_destroy(g->snp);
    ua_tdx_destroy(g->tdx);
    ua_cost_destroy(g->cost);
    free(g);
}

ua_status ua_guest_config_get(const ua_guest *g, ua_guest_config *out)
{
    if (!g || !out)
        return UA_E_INVAL;
    *out = g->cfg;
    out->host = ua_guest_host(g); /* the host serving it now */
    return UA_OK;
}

ua_status ua_guest_accept_path(ua_guest *g, uint32_t kind, ua_accept_fn *fn, void **ctx)
{
    if (!g || !fn || !ctx || kind >= UA_PATH_KIND_COUNT)
        return UA_E_INVAL;
    *fn = g->accept;
    *ctx = g->paths[kind];
    return UA_OK;
}

ua_status ua_guest_set_path_options(ua_guest *g, const ua_path_options *opts)
{
    if (!g || !opts || opts->kind >= UA_PATH_KIND_COUNT)
        return UA_E_INVAL;
    /* in place: a table that installed the path keeps a valid context */
    return g->snp ? ua_snp_path_set_options(g->paths[opts->kind], opts)
                  : ua_tdx_path_set_options(g->paths[opts->kind], opts);
}

ua_status ua_guest_unaccept(ua_guest *g, uint32_t kind, uint64_t start, uint64_t end,
                            uint32_t vcpu)
{
    if (!g || kind >= UA_PATH_KIND_COUNT)
        return UA_E_INVAL;
    return (ua_status)g->unaccept(g->paths[kind], start, end, vcpu);
}

int ua_guest_touch_1(ua_guest *g, uint32_t vcpu, uint64_t gpa, uint32_t flags,
                     ua_touch_result *out)
{
    ua_status st = ua_guest_touch(g, vcpu, gpa, flags, out);
    if (st)
        return -(int)st;
    return !(out->outcome == UA_TOUCH_SERVED && out->exits == 0);
}

ua_status ua_guest_touch(ua_guest *g, uint32_t vcpu, uint64_t gpa, uint32_t flags,
                         ua_touch_result *out)
{
    if (!g)
        return UA_E_INVAL;
    return g->snp ? ua_snp_linux_touch(g->snp, vcpu, gpa, flags, out)
                  : ua_tdx_linux_touch(g->tdx, vcpu, gpa, flags, out);
}

ua_status ua_guest_count_accepted(const ua_guest *g, uint64_t start, uint64_t end,
                                  uint64_t *pages)
{
    if (!g || !pages)
        return UA_E_INVAL;
    if (g->snp) {
        uint64_t unvalidated;
        return ua_snp_count_gpa(g->snp, start, end, pages, &unvalidated);
    }
    uint64_t counts[6];
    ua_status st = ua_tdx_count_states(g->tdx, start, end, counts);
    if (!st)
        *pages = counts[UA_TDX_SEPT_MAPPED];
    return st;
}

ua_status ua_guest_path_stats_get(const ua_guest *g, uint32_t kind, ua_path_stats *out)
{
    if (!g || kind >= UA_PATH_KIND_COUNT)
        return UA_E_INVAL;
    return g->snp ? ua_snp_path_stats_get(g->paths[kind], out)
                  : ua_tdx_path_stats_get(g->paths[kind], out);
}

ua_status ua_guest_path_stats_reset(ua_guest *g, uint32_t kind)
{
    if (!g || kind >= UA_PATH_KIND_COUNT)
        return UA_E_INVAL;
    if (g->snp)
        ua_snp_path_stats_reset(g->paths[kind]);
    else
        ua_tdx_path_stats_reset(g->paths[kind]);
    return UA_OK;
}

ua_status ua_guest_fatal_get(const ua_guest *g, ua_fatal *out)
{
    if (!g)
        return UA_E_INVAL;
    return g->snp ? ua_snp_fatal_get(g->snp, out) : ua_tdx_fatal_get(g->tdx, out);
}

void ua_guest_fatal_clear(ua_guest *g)
{
    if (!g)
        return;
    if (g->snp)
        ua_snp_fatal_clear(g->snp);
    else
        ua_tdx_fatal_clear(g->tdx);
}

ua_cost *ua_guest_cost(const ua_guest *g) { return g ? g->cost : NULL; }
ua_host *ua_guest_host(const ua_guest *g)
{
    if (!g)
        return NULL;
    return g->snp ? ua_snp_host(g->snp) : ua_tdx_host(g->tdx);
}

ua_status ua_guest_set_host(ua_guest *g, ua_host *host)
{
    if (!g)
        return UA_E_INVAL;
    return g->snp ? ua_snp_set_host(g->snp, host) : ua_tdx_set_host(g->tdx, host);
}
ua_status ua_guest_set_cancel(ua_guest *g, const volatile int *flag)
{
    if (!g)
        return UA_E_INVAL;
    return g->snp ? ua_snp_set_cancel(g->snp, flag) : ua_tdx_set_cancel(g->tdx, flag);
}
ua_snp *ua_guest_snp(const ua_guest *g) { return g ? g->snp : NULL; }
ua_tdx *ua_guest_tdx(const ua_guest *g) { return g ? g->tdx : NULL; }
