/* host.c - the pluggable host (ua_host.h): the host object, dispatch
 * defaults, and the named behaviours, each KVM with one thing changed.
 * KVM itself lives beside each vendor's model (snp_kvm.c, tdx_kvm.c). */
#include <stdlib.h>
#include <string.h>

#include "snp_internal.h"

static const char *const NAMES[UA_HOST_BEHAVIOR_COUNT] = {
    [UA_HOST_KVM] = "kvm",
    [UA_HOST_PSC_PARTIAL] = "psc-partial",
    [UA_HOST_PSC_ERROR] = "psc-error",
    [UA_HOST_PSC_RESERVED] = "psc-reserved",
    [UA_HOST_PSC_END_GROW] = "psc-end-grow",
    [UA_HOST_PSC_REWIND] = "psc-rewind",
    [UA_HOST_PSC_STALL] = "psc-stall",
    [UA_HOST_GHCB_ERROR] = "ghcb-error",
    [UA_HOST_MSR_ERROR] = "msr-error",
    [UA_HOST_MSR_BAD_CODE] = "msr-bad-code",
    [UA_HOST_SKIP_RMPUPDATE] = "skip-rmpupdate",
    [UA_HOST_AUG_4K] = "aug-4k",
    [UA_HOST_MAP_GPA_STALL] = "map-gpa-stall",
    [UA_HOST_MAP_GPA_REFUSE] = "map-gpa-refuse",
    [UA_HOST_NEVER_RESOLVE] = "never-resolve",
};

const char *ua_host_behavior_name(int behavior)
{
    return behavior >= 0 && behavior < UA_HOST_BEHAVIOR_COUNT ? NAMES[behavior] : "";
}

int ua_host_behavior_find(const char *name)
{
    for (int i = 0; name && i < UA_HOST_BEHAVIOR_COUNT; i++)
        if (!strcmp(name, NAMES[i]))
            return i;
    return -1;
}

void ua_host_config_default(ua_host_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->behavior = UA_HOST_KVM;
    cfg->npf_psmash = 1;
}

/* ---- SEV-SNP behaviours ---------------------------------------------------- */

/* Work done, then the answer spoiled: KVM serves the request, and if the
 * header passed KVM's checks the behaviour changes what the guest reads. */
enum spoil { SPOIL_ERROR, SPOIL_RESERVED, SPOIL_END_GROW };

static int kvm_then_spoil(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                          uint32_t cap, ua_snp_ghcb_result *out, enum spoil how)
{
    if (snp_psc_header_check(hdr, cap, out))
        return UA_OK;
    int st = ua_host_kvm_snp_psc(h, s, vcpu, hdr, ent, cap, out);
    if (st)
        return st;
    if (how == SPOIL_ERROR)
        out->sw_exitinfo2 = UA_SNP_PSC_ERROR_GENERIC;
    else if (how == SPOIL_RESERVED)
        *hdr |= 1ull << 32;
    else
        *hdr = PSC_HDR(PSC_CUR(*hdr), PSC_END(*hdr) + 1u, *hdr >> 32);
    return UA_OK;
}

static int psc_error(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                     uint32_t cap, ua_snp_ghcb_result *out)
{
    return kvm_then_spoil(h, s, vcpu, hdr, ent, cap, out, SPOIL_ERROR);
}

static int psc_reserved(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                        uint32_t cap, ua_snp_ghcb_result *out)
{
    return kvm_then_spoil(h, s, vcpu, hdr, ent, cap, out, SPOIL_RESERVED);
}

static int psc_end_grow(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                        uint32_t cap, ua_snp_ghcb_result *out)
{
    return kvm_then_spoil(h, s, vcpu, hdr, ent, cap, out, SPOIL_END_GROW);
}

/* Nothing done: the header is checked as KVM checks it, then left (stall)
 * or moved back to entry 0 (rewind). */
static int psc_stall(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                     uint32_t cap, ua_snp_ghcb_result *out)
{
    snp_psc_header_check(hdr, cap, out);
    return UA_OK;
}

static int psc_rewind(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                      uint32_t cap, ua_snp_ghcb_result *out)
{
    if (!snp_psc_header_check(hdr, cap, out))
        *hdr = PSC_HDR(0, PSC_END(*hdr), *hdr >> 32);
    return UA_OK;
}

/* The GHCB itself is refused before the scratch area is read. */
static int ghcb_error(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                      uint32_t cap, ua_snp_ghcb_result *out)
{
    out->sw_exitinfo1 = UA_SNP_GHCB_EXITINFO1_ERROR;
    out->sw_exitinfo2 = h->cfg.ghcb_error;
    return UA_OK;
}

static int skip_rmpupdate(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                          uint32_t cap, ua_snp_ghcb_result *out)
{
    return snp_kvm_psc_walk(h, s, vcpu, hdr, ent, cap, out, 0);
}

static int msr_error(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t req, uint64_t *resp)
{
    *resp = UA_SNP_GHCB_MSR_PSC_RESP_ERROR;
    return UA_OK;
}

static int msr_bad_code(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t req, uint64_t *resp)
{
    uint64_t gfn;
    int priv;
    *resp = snp_psc_msr_decode(s, req, &gfn, &priv) ? 0 : UA_SNP_GHCB_MSR_PSC_RESP_ERROR;
    return UA_OK;
}

static int msr_skip_rmpupdate(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t req, uint64_t *resp)
{
    uint64_t gfn;
    int priv;
    *resp = snp_psc_msr_decode(s, req, &gfn, &priv) ? UA_SNP_GHCB_MSR_PSC_RESP
                                                     : UA_SNP_GHCB_MSR_PSC_RESP_ERROR;
    return UA_OK;
}

/* The MSR protocol has no "no progress" answer: a host that never serves
 * it never resumes the vCPU. */
static int msr_never(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t req, uint64_t *resp)
{
    *resp = 0;
    return UA_E_GUEST_HUNG;
}

static int npf_never(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t gpa, uint64_t exitinfo1,
                     uint32_t *action)
{
    *action = UA_HOST_DID_NOTHING;
    return UA_OK;
}

/* ---- TDX behaviours ---------------------------------------------------------- */

static int exit_aug_4k(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                       uint64_t exit_status, uint32_t *action)
{
    return tdx_kvm_exit(h, t, vcpu, gpa, eeq, exit_status, action, UA_TDX_LEVEL_4K);
}

/* EPT violations stay unserved.  A HOST_PRIORITY_BUSY_TIMEOUT exit is not
 * one: the host SEAMCALL holding priority still finishes (as with 0.1's
 * VMM_REFUSE), so KVM serves it. */
static int exit_never(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                      uint64_t exit_status, uint32_t *action)
{
    if (exit_status == UA_TDX_HOST_PRIORITY_BUSY_TIMEOUT)
        return ua_host_kvm_tdx_exit(h, t, vcpu, gpa, eeq, exit_status, action);
    *action = UA_HOST_DID_NOTHING;
    return UA_OK;
}

/* RETRY from the requested start while stalls remain; the arguments are
 * checked first, as KVM does. */
static int vmcall_map_gpa_stall(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t r10, uint64_t r11,
                                uint64_t r12, uint64_t r13, ua_tdx_vmcall_result *out)
{
    if (r10 == 0 && r11 == UA_TDX_VMCALL_MAP_GPA && !tdx_map_gpa_check(t, r12, r13, out)) {
        uint32_t n = __atomic_load_n(&h->stalls, __ATOMIC_RELAXED);
        while (n && !__atomic_compare_exchange_n(&h->stalls, &n, n - 1, 0, __ATOMIC_RELAXED,
                                                 __ATOMIC_RELAXED))
            ;
        if (n) {
            out->r10 = UA_TDX_VMCALL_RETRY;
            out->r11 = r12;
            return UA_OK;
        }
    }
    return ua_host_kvm_tdx_vmcall(h, t, vcpu, r10, r11, r12, r13, out);
}

static int vmcall_map_gpa_refuse(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t r10,
                                 uint64_t r11, uint64_t r12, uint64_t r13,
                                 ua_tdx_vmcall_result *out)
{
    if (r10 == 0 && r11 == UA_TDX_VMCALL_MAP_GPA) {
        out->r10 = UA_TDX_VMCALL_INVALID_OPERAND;
        return UA_OK;
    }
    return ua_host_kvm_tdx_vmcall(h, t, vcpu, r10, r11, r12, r13, out);
}

/* The behaviours' tables; a NULL entry is KVM. */
static const ua_host_ops BEHAVIOURS[UA_HOST_BEHAVIOR_COUNT] = {
    [UA_HOST_KVM] = {0},
    [UA_HOST_PSC_PARTIAL] = {0}, /* KVM's walk honours the limits */
    [UA_HOST_PSC_ERROR] = {.snp_psc = psc_error},
    [UA_HOST_PSC_RESERVED] = {.snp_psc = psc_reserved},
    [UA_HOST_PSC_END_GROW] = {.snp_psc = psc_end_grow},
    [UA_HOST_PSC_REWIND] = {.snp_psc = psc_rewind},
    [UA_HOST_PSC_STALL] = {.snp_psc = psc_stall},
    [UA_HOST_GHCB_ERROR] = {.snp_psc = ghcb_error},
    [UA_HOST_MSR_ERROR] = {.snp_psc_msr = msr_error},
    [UA_HOST_MSR_BAD_CODE] = {.snp_psc_msr = msr_bad_code},
    [UA_HOST_SKIP_RMPUPDATE] = {.snp_psc = skip_rmpupdate, .snp_psc_msr = msr_skip_rmpupdate},
    [UA_HOST_AUG_4K] = {.tdx_exit = exit_aug_4k},
    [UA_HOST_MAP_GPA_STALL] = {.tdx_vmcall = vmcall_map_gpa_stall},
    [UA_HOST_MAP_GPA_REFUSE] = {.tdx_vmcall = vmcall_map_gpa_refuse},
    [UA_HOST_NEVER_RESOLVE] = {.snp_psc = psc_stall, .snp_psc_msr = msr_never,
                               .snp_npf = npf_never, .tdx_exit = exit_never},
};

static ua_status check_config(const ua_host_config *c)
{
    if (c->behavior >= UA_HOST_BEHAVIOR_COUNT || c->lazy_rmpupdate > 1 || c->npf_psmash > 1 ||
        c->reserved)
        return UA_E_INVAL;
    if (c->ghcb_error > UA_SNP_GHCB_ERR_INVALID_EVENT)
        return UA_E_INVAL;
    if (c->behavior == UA_HOST_GHCB_ERROR && c->ghcb_error == 0)
        return UA_E_INVAL;  /* the behaviour needs its code */
    if (c->behavior != UA_HOST_GHCB_ERROR && c->ghcb_error)
        return UA_E_INVAL;
    if ((c->psc_max_entries || c->psc_max_pages) && c->behavior != UA_HOST_PSC_PARTIAL)
        return UA_E_INVAL;  /* limits belong to psc-partial */
    if (c->behavior == UA_HOST_PSC_PARTIAL && !c->psc_max_entries && !c->psc_max_pages)
        return UA_E_INVAL;
    if (c->count && c->behavior != UA_HOST_MAP_GPA_STALL)
        return UA_E_INVAL;
    return UA_OK;
}

static void host_init(ua_host *h, const ua_host_config *cfg, const ua_host_ops *ops, void *ctx)
{
    memset(h, 0, sizeof(*h));
    h->cfg = *cfg;
    h->ops = BEHAVIOURS[cfg->behavior];
    h->ctx = ctx;
    h->stalls = cfg->count;
    if (ops) { /* the user's entries win over the behaviour's */
        if (ops->snp_psc)
            h->ops.snp_psc = ops->snp_psc;
        if (ops->snp_psc_msr)
            h->ops.snp_psc_msr = ops->snp_psc_msr;
        if (ops->snp_npf)
            h->ops.snp_npf = ops->snp_npf;
        if (ops->tdx_exit)
            h->ops.tdx_exit = ops->tdx_exit;
        if (ops->tdx_vmcall)
            h->ops.tdx_vmcall = ops->tdx_vmcall;
    }
}

void ua_host_init_default(ua_host *h)
{
    ua_host_config cfg;
    ua_host_config_default(&cfg);
    host_init(h, &cfg, NULL, NULL);
}

ua_status ua_host_create(const ua_host_config *cfg, const ua_host_ops *ops, void *ctx,
                         ua_host **out)
{
    if (!out)
        return UA_E_INVAL;
    *out = NULL;
    ua_host_config c;
    if (cfg)
        c = *cfg;
    else
        ua_host_config_default(&c);
    ua_status st = check_config(&c);
    if (st)
        return st;
    ua_host *h = malloc(sizeof(*h));
    if (!h)
        return UA_E_NOMEM;
    host_init(h, &c, ops, ctx);
    *out = h;
    return UA_OK;
}

void ua_host_destroy(ua_host *h) { free(h); }

void *ua_host_ctx(const ua_host *h) { return h ? h->ctx : NULL; }

ua_status ua_host_config_get(const ua_host *h, ua_host_config *out)
{
    if (!h || !out)
        return UA_E_INVAL;
    *out = h->cfg;
    return UA_OK;
}

/* ---- the behaviour underneath a host's own handlers ------------------------ */

#define BEHAVIOUR_OR_KVM(entry, ...)                                     \
    if (!h)                                                               \
        return UA_E_INVAL;                                                \
    const ua_host_ops *b = &BEHAVIOURS[h->cfg.behavior];                  \
    return b->entry ? b->entry(h, __VA_ARGS__) : ua_host_kvm_##entry(h, __VA_ARGS__)

int ua_host_behavior_snp_psc(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *header,
                             uint64_t *entries, uint32_t capacity, ua_snp_ghcb_result *out)
{
    BEHAVIOUR_OR_KVM(snp_psc, s, vcpu, header, entries, capacity, out);
}

int ua_host_behavior_snp_psc_msr(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t request,
                                 uint64_t *response)
{
    BEHAVIOUR_OR_KVM(snp_psc_msr, s, vcpu, request, response);
}

int ua_host_behavior_snp_npf(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t gpa,
                             uint64_t exitinfo1, uint32_t *action)
{
    BEHAVIOUR_OR_KVM(snp_npf, s, vcpu, gpa, exitinfo1, action);
}

int ua_host_behavior_tdx_exit(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                              uint64_t exit_status, uint32_t *action)
{
    BEHAVIOUR_OR_KVM(tdx_exit, t, vcpu, gpa, eeq, exit_status, action);
}

int ua_host_behavior_tdx_vmcall(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t r10,
                                uint64_t r11, uint64_t r12, uint64_t r13,
                                ua_tdx_vmcall_result *out)
{
    BEHAVIOUR_OR_KVM(tdx_vmcall, t, vcpu, r10, r11, r12, r13, out);
}
