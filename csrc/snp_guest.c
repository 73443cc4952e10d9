/* snp_guest.c - SEV-SNP guest accept paths, each an arch_accept_memory()
 * primitive (ua_accept_fn) over a path object:
 *
 *   Linux runtime  snp_accept_memory(): GHCB NAE Page State Change in
 *                  descriptors of <= 64 entries, re-issued while the
 *                  hypervisor completes part, with the guest's checks; then
 *                  PVALIDATE each entry, 2 MiB falling back to 512 x 4 KiB;
 *                  then the cache touch unless COHERENCY_SFW_NO.
 *   Linux early    decompressor: per 4 KiB page one MSR-protocol PSC and
 *                  one 4 KiB PVALIDATE.
 *   OVMF           EDK2 InternalSetPageState(Private): fills of 506 (DXE,
 *                  4 KiB buffer) or 127 (SEC, 1 KiB) entries, PSC in
 *                  batches of <= 253 with no progress checks, then PVALIDATE
 *                  with the same fallback; any failure (CF=1 included)
 *                  terminates with reason set 0, code 0.
 *
 * A guest instruction that takes an NPF is re-executed once the hypervisor
 * fixed the cause (PSMASH for SIZEM, or a lazy host faulting the page in);
 * if it cannot, the real guest would spin forever and the path returns
 * UA_E_GUEST_HUNG.  A hypervisor that makes no progress on a PSC is
 * re-asked hang_limit times, then the same.
 * Behaviour and sources: docs/snp.md. */
#include <stdlib.h>
#include <string.h>

#include "snp_internal.h"

/* Statistics per vCPU, each written by its vCPU's thread once per call and
 * summed on read (relaxed atomics: a reader may run on another thread). */
struct path_vcpu {
    ua_path_stats s;
} __attribute__((aligned(64)));

struct ua_snp_path {
    ua_snp *s;
    ua_path_options o;
    uint32_t fill;              /* OVMF entries per buffer fill */
    uint32_t vcpus;
    struct path_vcpu *v;
};

#define OVMF_MAX_BUFFER 16384

static uint32_t ovmf_entries_per_fill(uint32_t bytes)
{
    /* EDK2 BuildPageStateBuffer: floor((size - 8) / 8), rounded down to a
     * multiple of 253 (PSC) and then of 510 (SVSM PVALIDATE) when those
     * are non-zero: 506 per 4 KiB, 127 in SEC's 1 KiB (OvmfPkg
     * BaseMemEncryptSevLib SnpPageStateChangeInternal.c). */
    uint32_t n = (bytes - UA_SNP_PSC_HDR_BYTES) / 8;
    uint32_t psc = n / UA_SNP_PSC_MAX_ENTRIES * UA_SNP_PSC_MAX_ENTRIES;
    if (psc)
        n = psc;
    uint32_t svsm = n / 510 * 510;
    if (svsm)
        n = svsm;
    return n;
}

/* Defaults filled in and the options checked; UA_E_INVAL if one is out of
 * its domain. */
static ua_status normalize(ua_path_options *o)
{
    if (ua_path_options_common(o))
        return UA_E_INVAL;
    if (o->psc_max_entries == 0)
        o->psc_max_entries = UA_SNP_LINUX_PSC_MAX_ENTRIES;
    if (o->psc_max_entries > UA_SNP_PSC_MAX_ENTRIES)
        return UA_E_INVAL;
    if (o->ovmf_buffer_bytes == 0)
        o->ovmf_buffer_bytes = o->kind == UA_PATH_OVMF_SEC ? UA_SNP_OVMF_SEC_BUFFER_BYTES
                                                           : UA_SNP_OVMF_DXE_BUFFER_BYTES;
    if (o->ovmf_buffer_bytes < UA_SNP_PSC_HDR_BYTES + 8 || o->ovmf_buffer_bytes > OVMF_MAX_BUFFER)
        return UA_E_INVAL;
    return UA_OK;
}

ua_status ua_snp_path_create(ua_snp *s, const ua_path_options *opts, ua_snp_path **out)
{
    if (!s || !out)
        return UA_E_INVAL;
    *out = NULL;
    ua_path_options o = {0};
    if (opts)
        o = *opts;
    ua_status st = normalize(&o);
    if (st)
        return st;
    ua_snp_path *p = calloc(1, sizeof(*p));
    if (!p)
        return UA_E_NOMEM;
    if (posix_memalign((void **)&p->v, 64, sizeof(*p->v) * s->cfg.vcpus)) {
        free(p);
        return UA_E_NOMEM;
    }
    memset(p->v, 0, sizeof(*p->v) * s->cfg.vcpus);
    p->vcpus = s->cfg.vcpus;
    p->s = s;
    p->o = o;
    p->fill = ovmf_entries_per_fill(o.ovmf_buffer_bytes);
    *out = p;
    return UA_OK;
}

ua_status ua_snp_path_set_options(ua_snp_path *p, const ua_path_options *opts)
{
    if (!p || !opts)
        return UA_E_INVAL;
    ua_path_options o = *opts;
    ua_status st = normalize(&o);
    if (st)
        return st;
    p->o = o;
    p->fill = ovmf_entries_per_fill(o.ovmf_buffer_bytes);
    ua_snp_path_stats_reset(p);
    return UA_OK;
}

void ua_snp_path_destroy(ua_snp_path *p)
{
    if (!p)
        return;
    free(p->v);
    free(p);
}

uint32_t ua_snp_path_kind(const ua_snp_path *p) { return p ? p->o.kind : 0; }

ua_status ua_snp_path_stats_get(const ua_snp_path *p, ua_path_stats *out)
{
    if (!p || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    uint64_t *dst = (uint64_t *)out;
    for (uint32_t v = 0; v < p->vcpus; v++) {
        const uint64_t *src = (const uint64_t *)&p->v[v].s;
        for (size_t i = 0; i < sizeof(*out) / 8; i++)
            dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    }
    return UA_OK;
}

void ua_snp_path_stats_reset(ua_snp_path *p)
{
    if (!p)
        return;
    for (uint32_t v = 0; v < p->vcpus; v++) {
        uint64_t *dst = (uint64_t *)&p->v[v].s;
        for (size_t i = 0; i < sizeof(p->v[v].s) / 8; i++)
            __atomic_store_n(&dst[i], 0, __ATOMIC_RELAXED);
    }
}

/* Per-call counters, charged and published once at the end of the call. */
struct ctr {
    ua_path_stats st;
};

static void publish(ua_snp_path *p, uint32_t vcpu, const struct ctr *c)
{
    ua_snp *s = p->s;
    snp_charge(s, vcpu, UA_EV_ACCEPT_CALL, 1);
    snp_charge(s, vcpu, UA_EV_PVALIDATE_2M, c->st.accept_2m);
    snp_charge(s, vcpu, UA_EV_PVALIDATE_4K, c->st.accept_4k);
    snp_charge(s, vcpu, UA_EV_NPF_EXIT, c->st.npf_exits);
    snp_charge(s, vcpu, UA_EV_CACHE_TOUCH_4K, c->st.cache_touch_4k);
    const uint64_t *src = (const uint64_t *)&c->st;
    uint64_t *dst = (uint64_t *)&p->v[vcpu].s;   /* this vCPU's thread alone writes it */
    for (size_t i = 0; i < sizeof(c->st) / 8; i++)
        if (src[i])
            __atomic_store_n(&dst[i], __atomic_load_n(&dst[i], __ATOMIC_RELAXED) + src[i],
                             __ATOMIC_RELAXED);
}

static ua_status prologue(ua_snp_path *p, uint64_t start, uint64_t end, uint32_t vcpu)
{
    if (!p)
        return UA_E_INVAL;
    ua_snp *s = p->s;
    if (vcpu >= s->cfg.vcpus)
        return UA_E_VCPU;
    ua_status st = snp_check_range(s, start, end);
    if (st)
        return st;
    return ua_fatal_check(&s->fatal);
}

/* Count what the host did to serve an exit. */
static void count_action(struct ctr *c, uint32_t action)
{
    if (action == UA_HOST_DID_PSMASH)
        c->st.host_psmash++;
    else if (action == UA_HOST_DID_RMPUPDATE)
        c->st.host_rmpupdate++;
}

/* A host handler's failure, recorded where it kills the guest: the host
 * never resumes the vCPU (hung) or stops the guest (terminated). */
static int host_failure(ua_snp *s, uint32_t vcpu, uint64_t gpa, int st, const char *hung)
{
    if (st == UA_E_GUEST_HUNG)
        return snp_record_hang(s, vcpu, gpa, hung);
    if (st == UA_E_HOST)
        return ua_fatal_raise(&s->fatal, UA_FATAL_TERMINATED, vcpu, gpa, 0,
                              "the host stopped the guest");
    return st;
}

/* PVALIDATE as a guest executes it: NPFs go to the host and the instruction
 * re-executes, whatever the host did; hang_limit NPFs in a row mean the
 * host never resolves it.  UA_OK, or UA_E_GUEST_HUNG (recorded), or the
 * host's failure. */
static inline int guest_pvalidate(ua_snp_path *p, uint32_t vcpu, uint64_t gpa, uint32_t size,
                                  int validate, ua_snp_result *r, struct ctr *c)
{
    for (uint32_t tries = 0;; tries++) {
        snp_pvalidate(p->s, gpa, size, (uint32_t)validate, r);
        if (size)
            c->st.accept_2m++;
        else
            c->st.accept_4k++;
        if (UA_LIKELY(r->fault != UA_SNP_FAULT_NPF))
            return UA_OK;
        c->st.npf_exits++;
        uint32_t action;
        int st = snp_exit_npf(p->s, vcpu, gpa, r->exitinfo1, &action);
        count_action(c, action);
        if (!st && tries + 1 >= p->o.hang_limit)
            st = UA_E_GUEST_HUNG;
        if (st)
            return host_failure(p->s, vcpu, gpa, st,
                                "PVALIDATE: nested page fault the host never resolves");
    }
}

static int pv_failed(const ua_snp_result *r)
{
    return r->fault != UA_SNP_FAULT_NONE || r->eax != 0 || r->cf;
}

static uint32_t pv_code(const ua_snp_result *r)
{
    return r->cf && !r->eax ? UA_SNP_PVALIDATE_FAIL_NOUPDATE : r->eax;
}

/* PVALIDATE one PSC entry with the 2M -> 512 x 4K fallback shared by Linux
 * (pval_pages) and EDK2 (BasePvalidate), validating or rescinding.  Returns
 * UA_OK, UA_E_GUEST_HUNG, or -1 with bad and r describing the failing
 * PVALIDATE. */
static int validate_entry(ua_snp_path *p, uint32_t vcpu, uint64_t gpa, int big, int validate,
                          struct ctr *c, ua_snp_result *r, uint64_t *bad)
{
    *bad = gpa;
    int st = guest_pvalidate(p, vcpu, gpa, big ? 1 : 0, validate, r, c);
    if (st)
        return st;
    if (big && r->fault == UA_SNP_FAULT_NONE && r->eax == UA_SNP_FAIL_SIZEMISMATCH) {
        c->st.fallbacks++;
        for (unsigned i = 0; i < 512;) {
            /* the common case in one pass; anything else page by page */
            unsigned k = snp_pvalidate_run4k(p->s, gpa + (uint64_t)i * UA_4K, 512 - i,
                                             (uint32_t)validate);
            c->st.accept_4k += k;
            i += k;
            if (i == 512)
                break;
            uint64_t a = gpa + (uint64_t)i * UA_4K;
            *bad = a;
            if ((st = guest_pvalidate(p, vcpu, a, 0, validate, r, c)))
                return st;
            if (UA_UNLIKELY(pv_failed(r)))
                return -1;
            i++;
        }
        memset(r, 0, sizeof(*r));
        return UA_OK;
    }
    return pv_failed(r) ? -1 : UA_OK;
}


/* Build entries for [*a, end): 2M where 2 MiB-aligned with >= 2 MiB left. */
static uint32_t build(uint64_t *ent, uint32_t max, uint64_t *a, uint64_t end, unsigned op)
{
    uint32_t n = 0;
    while (*a < end && n < max) {
        int big = !(*a & (UA_2M - 1)) && end - *a >= UA_2M;
        ent[n++] = ((*a >> 12) << 12) | ((uint64_t)op << 52) | ((uint64_t)big << 56);
        *a += big ? UA_2M : UA_4K;
    }
    return n;
}

/* The position a PSC has reached: entries done, then pages of the current
 * entry; used to spot exits that made no progress. */
static inline uint64_t psc_pos(uint64_t hdr, const uint64_t *ent, uint32_t n)
{
    unsigned cur = PSC_CUR(hdr);
    return ((uint64_t)cur << 12) | (cur < n ? (ent[cur] & 0xfff) : 0);
}

/* A termination reason: GHCB MSR reason set and code. */
struct term {
    uint32_t set, code;
};

static const struct term TERM_LINUX_PSC = {UA_SNP_TERM_SET_LINUX, UA_SNP_TERM_PSC};
static const struct term TERM_LINUX_PVALIDATE = {UA_SNP_TERM_SET_LINUX, UA_SNP_TERM_PVALIDATE};
static const struct term TERM_EDK2 = {UA_SNP_TERM_SET_GEN, UA_SNP_TERM_GEN_REQ};

/* PVALIDATE every entry of a descriptor (with the fallback); on the first
 * failure record the termination t and return its status. */
static int validate_all(ua_snp_path *p, uint32_t vcpu, const uint64_t *ent, uint32_t n,
                        int validate, struct ctr *c, struct term t)
{
    for (uint32_t i = 0; i < n; i++) {
        ua_snp_result r;
        uint64_t bad;
        int v = validate_entry(p, vcpu, PSC_ENT_GFN(ent[i]) << 12, (int)PSC_ENT_2M(ent[i]),
                               validate, c, &r, &bad);
        if (v > 0)
            return v;
        if (v)
            return snp_record_termination(p->s, vcpu, t.set, t.code, bad, pv_code(&r), r.fault, 0);
    }
    return UA_OK;
}

/* Issue one PSC descriptor (entries ent[0..n-1] of a buffer of cap, header
 * cur 0 / end n-1) until the hypervisor reports cur_entry > end_entry.
 * After every exit the guest checks ret and SW_EXITINFO2; with
 * linux_checks also what vmgexit_psc() checks against the values it
 * started with: the reserved word, end_entry not grown, cur_entry not
 * below its start.  A failed check terminates with t (first = the address
 * reported).  hang_limit exits in a row without progress: UA_E_GUEST_HUNG. */
static int psc_issue(ua_snp_path *p, uint32_t vcpu, uint64_t *ent, uint32_t n, uint32_t cap,
                     int linux_checks, struct term t, uint64_t first, struct ctr *c)
{
    ua_snp *s = p->s;
    uint64_t hdr = (uint64_t)(n - 1) << 16;
    const uint16_t cur0 = 0, end0 = (uint16_t)(n - 1);
    uint32_t stuck = 0;
    while (PSC_CUR(hdr) <= PSC_END(hdr)) {
        ua_snp_ghcb_result g;
        uint64_t before = psc_pos(hdr, ent, cap);
        int st = snp_exit_psc(s, vcpu, &hdr, ent, UA_SNP_PSC_MAX_ENTRIES, &g);
        c->st.psc_exits++;
        if (st)
            return host_failure(s, vcpu, first, st, "Page State Change: the host never returns");
        if ((g.sw_exitinfo1 & 0xffffffffu) || g.sw_exitinfo2 ||
            (linux_checks && ((hdr >> 32) || PSC_END(hdr) > end0 || PSC_CUR(hdr) < cur0)))
            return snp_record_termination(s, vcpu, t.set, t.code, first, 0, 0,
                                          g.sw_exitinfo2 ? g.sw_exitinfo2 : g.sw_exitinfo1);
        if (psc_pos(hdr, ent, cap) == before) {
            if (++stuck >= p->o.hang_limit)
                return snp_record_hang(s, vcpu, first,
                                       "Page State Change: the host makes no progress");
        } else {
            stuck = 0;
        }
    }
    return UA_OK;
}

/* The descriptor-based paths: for each descriptor of up to max entries
 * (2M where 2 MiB-aligned with >= 2 MiB left), (shared: rescind first)
 * the PSC, (private: then validate and touch).
 *
 *   Linux set_pages_state(): max = psc_max_entries; the descriptor goes
 *     out as it is, re-issued until done, with vmgexit_psc()'s checks;
 *     failures terminate with GHCB_TERM_PSC / GHCB_TERM_PVALIDATE.
 *   EDK2 InternalSetPageState(): max = the buffer fill; PageStateChange()
 *     copies batches of <= 253 into the GHCB shared buffer and checks only
 *     the status and SwExitInfo2; BasePvalidate() terminates on any
 *     non-zero result (255 for CF=1) after the size-mismatch fallback;
 *     every failure is set 0, code 0. */
static int desc_set_state(ua_snp_path *p, uint64_t start, uint64_t end, uint32_t vcpu, int priv,
                          struct ctr *c, int edk2)
{
    const unsigned op = priv ? UA_SNP_PSC_OP_PRIVATE : UA_SNP_PSC_OP_SHARED;
    const uint32_t max = edk2 ? p->fill : p->o.psc_max_entries;
    const struct term t_psc = edk2 ? TERM_EDK2 : TERM_LINUX_PSC;
    const struct term t_pval = edk2 ? TERM_EDK2 : TERM_LINUX_PVALIDATE;
    uint64_t ent[OVMF_MAX_BUFFER / 8];
    uint64_t ghcb[UA_SNP_PSC_MAX_ENTRIES];
    uint64_t a = start;
    int rc;
    while (a < end) {
        if (ua_cancelled(p->s->cancel))   /* between fills: the pages so far are done */
            return UA_E_INTERRUPTED;
        uint64_t first = a;
        uint32_t n = build(ent, max, &a, end, op);
        c->st.psc_requests++;
        /* "validation must be rescinded before changing to shared" */
        if (!priv && (rc = validate_all(p, vcpu, ent, n, 0, c, t_pval)))
            return rc;
        if (!edk2 && (rc = psc_issue(p, vcpu, ent, n, n, 1, t_psc, first, c)))
            return rc;
        for (uint32_t idx = 0; edk2 && idx < n;) {
            uint32_t cnt = n - idx < UA_SNP_PSC_MAX_ENTRIES ? n - idx : UA_SNP_PSC_MAX_ENTRIES;
            memset(ghcb, 0, sizeof(ghcb));
            memcpy(ghcb, &ent[idx], cnt * sizeof(uint64_t));
            if ((rc = psc_issue(p, vcpu, ghcb, cnt, UA_SNP_PSC_MAX_ENTRIES, 0, t_psc, first, c)))
                return rc;
            idx += cnt;
        }
        if (priv) {
            if ((rc = validate_all(p, vcpu, ent, n, 1, c, t_pval)))
                return rc;
            if (!p->s->cfg.coherency_sfw_no)
                c->st.cache_touch_4k += (a - first) >> 12;
        }
        c->st.bytes += a - first;
    }
    return UA_OK;
}

static int linux_set_state(ua_snp_path *p, uint64_t start, uint64_t end, uint32_t vcpu, int priv,
                           struct ctr *c)
{
    return desc_set_state(p, start, end, vcpu, priv, c, 0);
}

static int ovmf_set_state(ua_snp_path *p, uint64_t start, uint64_t end, uint32_t vcpu, int priv,
                          struct ctr *c)
{
    return desc_set_state(p, start, end, vcpu, priv, c, 1);
}

/* Linux early_set_pages_state(): per 4 KiB page, MSR-protocol PSC and a
 * 4 KiB PVALIDATE (rescind before the PSC when making pages shared). */
static int early_set_state(ua_snp_path *p, uint64_t start, uint64_t end, uint32_t vcpu, int priv,
                           struct ctr *c)
{
    ua_snp *s = p->s;
    const uint64_t op = priv ? UA_SNP_PSC_OP_PRIVATE : UA_SNP_PSC_OP_SHARED;
    int rc;
    for (uint64_t a = start; a < end; a += UA_4K) {
        if (((a - start) & (UA_2M - 1)) == 0 && ua_cancelled(s->cancel))
            return UA_E_INTERRUPTED;
        const uint64_t page = (a >> 12) << 12; /* a one-entry 4 KiB descriptor */
        if (!priv && (rc = validate_all(p, vcpu, &page, 1, 0, c, TERM_LINUX_PVALIDATE)))
            return rc;
        uint64_t req = UA_SNP_GHCB_MSR_PSC_REQ | ((a >> 12) << 12) | op << 52;
        uint64_t resp = 0;
        int st = snp_exit_psc_msr(s, vcpu, req, &resp);
        c->st.msr_exits++;
        if (st)
            return host_failure(s, vcpu, a, st,
                                "Page State Change (MSR): the host never returns");
        if ((resp & 0xfff) != UA_SNP_GHCB_MSR_PSC_RESP || (resp >> 32))
            return snp_record_termination(s, vcpu, TERM_LINUX_PSC.set, TERM_LINUX_PSC.code, a, 0,
                                          0, resp);
        if (priv) {
            if ((rc = validate_all(p, vcpu, &page, 1, 1, c, TERM_LINUX_PVALIDATE)))
                return rc;
            if (!s->cfg.coherency_sfw_no)
                c->st.cache_touch_4k++;
        }
        c->st.bytes += UA_4K;
    }
    return UA_OK;
}

typedef int set_state_fn(ua_snp_path *p, uint64_t start, uint64_t end, uint32_t vcpu, int priv,
                         struct ctr *c);

/* Indexed by ua_path_kind, with the termination a guest that does not run
 * at VMPL0 requests (no SVSM in this model): Linux stops at boot with
 * NOT_VMPL0; OVMF's SEC refuses to run with the general reason. */
static const struct {
    set_state_fn *fn;
    struct term not_vmpl0;
} KINDS[UA_PATH_KIND_COUNT] = {
    [UA_PATH_LINUX] = {linux_set_state, {UA_SNP_TERM_SET_LINUX, UA_SNP_TERM_NOT_VMPL0}},
    [UA_PATH_LINUX_EARLY] = {early_set_state, {UA_SNP_TERM_SET_LINUX, UA_SNP_TERM_NOT_VMPL0}},
    [UA_PATH_OVMF] = {ovmf_set_state, {UA_SNP_TERM_SET_GEN, UA_SNP_TERM_GEN_REQ}},
    [UA_PATH_OVMF_SEC] = {ovmf_set_state, {UA_SNP_TERM_SET_GEN, UA_SNP_TERM_GEN_REQ}},
};

/* One accept/unaccept call: argument checks, then the path's algorithm with
 * per-call counters charged and published at the end. */
static int run_path(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu, int priv)
{
    ua_snp_path *p = ctx;
    ua_status st = prologue(p, start, end, vcpu);
    if (st || start == end)
        return st;
    const uint32_t kind = p->o.kind;
    struct ctr c;
    memset(&c, 0, sizeof(c));
    c.st.calls = 1;
    int rc;
    if (p->s->cfg.vmpl != 0)
        rc = snp_record_termination(p->s, vcpu, KINDS[kind].not_vmpl0.set,
                                    KINDS[kind].not_vmpl0.code, start, 0, 0, 0);
    else
        rc = KINDS[kind].fn(p, start, end, vcpu, priv, &c);
    c.st.exits = c.st.psc_exits + c.st.msr_exits + c.st.npf_exits;
    c.st.failures = rc != UA_OK && rc != UA_E_INTERRUPTED;
    publish(p, vcpu, &c);
    return rc;
}

int ua_snp_accept(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu)
{
    return run_path(ctx, start, end, vcpu, 1);
}

int ua_snp_unaccept(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu)
{
    return run_path(ctx, start, end, vcpu, 0);
}

/* ---- Linux's handling of a guest touch --------------------------------------- */

/* NPFs on one access that the host keeps "fixing" without the access going
 * through: past this the guest counts as hung. */
#define TOUCH_NPF_LIMIT 8

ua_status ua_snp_linux_touch(ua_snp *s, uint32_t vcpu, uint64_t gpa, uint32_t flags,
                             ua_touch_result *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    if (flags & ~(uint32_t)(UA_TOUCH_WRITE | UA_TOUCH_SHARED | UA_TOUCH_USER))
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    const uint32_t kind = (flags & UA_TOUCH_WRITE) ? UA_SNP_ACCESS_WRITE : UA_SNP_ACCESS_READ;
    const uint32_t c_bit = !(flags & UA_TOUCH_SHARED);
    for (int tries = 0;; tries++) {
        ua_snp_result r;
        ua_status st = ua_snp_access(s, vcpu, gpa, kind, c_bit, &r);
        if (st)
            return st;
        if (r.fault == UA_SNP_FAULT_NONE) {
            out->outcome = out->exits ? UA_TOUCH_SERVED_EXIT : UA_TOUCH_SERVED;
            return UA_OK;
        }
        if (r.fault == UA_SNP_FAULT_NPF) {
            uint32_t action;
            out->detail = r.exitinfo1;
            /* the NPF_EXIT was charged by ua_snp_access() (guest_npf) */
            st = snp_exit_npf(s, vcpu, gpa, r.exitinfo1, &action);
            if (st && st != UA_E_GUEST_HUNG && st != UA_E_HOST)
                return st;
            out->exits++;
            if (st == UA_E_HOST) {
                ua_fatal_raise(&s->fatal, UA_FATAL_TERMINATED, vcpu, gpa, r.exitinfo1,
                               "the host stopped the guest at a nested page fault");
                out->outcome = UA_TOUCH_TERMINATED;
                return UA_OK;
            }
            if (st || action == UA_HOST_DID_NOTHING || tries >= TOUCH_NPF_LIMIT) {
                snp_record_hang(s, vcpu, gpa, "access: nested page fault the host never resolves");
                out->outcome = UA_TOUCH_HUNG;
                return UA_OK;
            }
            continue;
        }
        out->vector = r.fault == UA_SNP_FAULT_VC ? 29 : r.fault == UA_SNP_FAULT_GP ? 13 : 14;
        out->error_code = r.error_code;
        if (r.fault == UA_SNP_FAULT_VC && r.error_code == UA_SNP_VC_PAGE_NOT_VALIDATED) {
            if (flags & UA_TOUCH_USER) { /* SIGBUS to the process */
                out->outcome = UA_TOUCH_GUEST_FAULT;
                return UA_OK;
            }
            snp_record_termination(s, vcpu, UA_SNP_TERM_SET_GEN, UA_SNP_TERM_GEN_REQ, gpa, 0,
                                   UA_SNP_FAULT_VC, 0);
            out->outcome = UA_TOUCH_TERMINATED;
            return UA_OK;
        }
        /* any other fault on a plain kernel access is not survivable */
        ua_fatal_raise(&s->fatal, UA_FATAL_PANIC, vcpu, gpa, r.error_code,
                       "unhandled exception on a memory access");
        out->outcome = UA_TOUCH_PANIC;
        return UA_OK;
    }
}
