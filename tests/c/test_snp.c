/* C unit tests of the SEV-SNP model: RMP instructions, PSC, access checks,
 * accept paths, the core table driving the Linux path, threads, and bad
 * arguments. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "unaccepted.h"
#include "ua_test.h"

#define KiB4 4096ull
#define MiB2 (2ull << 20)
#define GiB (1ull << 30)

static ua_snp *make(uint64_t mem, uint64_t spare, uint32_t backing, uint32_t vcpus)
{
    ua_snp_config cfg = {.memory_bytes = mem, .spare_bytes = spare, .asid = 5, .vmpl = 0,
                         .vcpus = vcpus, .coherency_sfw_no = 0, .backing = backing};
    ua_snp *s = NULL;
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_OK);
    return s;
}

/* The fatal record of s. */
static ua_fatal fatal_of(const ua_snp *s)
{
    ua_fatal f;
    memset(&f, 0xff, sizeof(f));
    CHECK_EQ(ua_snp_fatal_get(s, &f), UA_OK);
    return f;
}

static void test_create_args(void)
{
    ua_snp *s = (ua_snp *)1;
    ua_snp_config cfg = {.memory_bytes = 3 << 20, .asid = 1, .vcpus = 1};
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_E_ALIGN);
    CHECK(s == NULL);
    cfg.memory_bytes = 1ull << 53;
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_E_RANGE);
    cfg.memory_bytes = MiB2;
    cfg.asid = 0;
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_E_INVAL);
    cfg.asid = 1;
    cfg.vcpus = 0;
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_E_VCPU);
    CHECK_EQ(ua_snp_create(NULL, &s), UA_E_INVAL);
    ua_snp_destroy(NULL);
    /* 64 TiB: only the directory */
    cfg.memory_bytes = 64ull << 40;
    cfg.vcpus = 1;
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_OK);
    ua_snp_stats st;
    CHECK_EQ(ua_snp_stats_get(s, &st), UA_OK);
    CHECK(st.chunks_allocated == 0 && st.bytes_allocated < (1u << 20));
    ua_snp_destroy(s);
}

static void test_instructions(void)
{
    ua_snp *s = make(16 << 20, MiB2, UA_BACKING_2M, 1);
    ua_snp_result r;
    uint32_t eax;
    ua_snp_rmp_state priv2m = {.gpa = MiB2, .asid = 5, .assigned = 1, .page_size = 1};

    CHECK_EQ(ua_snp_pvalidate(s, 0, MiB2, 1, 1, &r), UA_OK);
    CHECK(r.fault == UA_SNP_FAULT_NPF && (r.exitinfo1 & UA_SNP_NPF_RMP));
    CHECK_EQ(ua_snp_rmpupdate(s, MiB2, &priv2m, &eax), UA_OK);
    CHECK_EQ(eax, UA_SNP_RMP_SUCCESS);
    CHECK_EQ(ua_snp_pvalidate(s, 0, MiB2 + KiB4, 0, 1, &r), UA_OK);
    CHECK(r.fault == UA_SNP_FAULT_NPF && (r.exitinfo1 & UA_SNP_NPF_SIZEM));
    CHECK_EQ(ua_snp_pvalidate(s, 0, MiB2, 1, 1, &r), UA_OK);
    CHECK(r.fault == 0 && r.eax == 0 && r.cf == 0);
    CHECK_EQ(ua_snp_pvalidate(s, 0, MiB2, 1, 1, &r), UA_OK);
    CHECK(r.fault == 0 && r.eax == 0 && r.cf == 1);
    CHECK_EQ(ua_snp_pvalidate(s, 0, MiB2 + 8, 0, 1, &r), UA_OK);
    CHECK_EQ(r.eax, UA_SNP_FAIL_INPUT);
    CHECK_EQ(ua_snp_pvalidate(s, 0, 16 << 20, 0, 1, &r), UA_OK);
    CHECK_EQ(r.fault, UA_SNP_FAULT_PF);
    CHECK_EQ(ua_snp_pvalidate(s, 1, 0, 0, 1, &r), UA_E_VCPU);

    ua_snp_rmp_entry e;
    CHECK_EQ(ua_snp_psmash(s, MiB2, &eax), UA_OK);
    CHECK_EQ(eax, 0u);
    CHECK_EQ(ua_snp_rmp_read(s, MiB2 + 7 * KiB4, &e), UA_OK);
    CHECK(e.validated && e.page_size == 0 && e.gpa == MiB2 + 7 * KiB4 && e.perm[0] == 31);
    CHECK_EQ(ua_snp_pvalidate(s, 0, MiB2, 1, 1, &r), UA_OK);
    CHECK_EQ(r.eax, UA_SNP_FAIL_SIZEMISMATCH);

    /* RMPADJUST: grant VMPL1 read, set VMSA */
    CHECK_EQ(ua_snp_rmpadjust(s, 0, MiB2, 0, 1 | (1 << 8) | UA_SNP_RMPADJUST_VMSA, &r), UA_OK);
    CHECK(r.fault == 0 && r.eax == 0);
    CHECK_EQ(ua_snp_rmp_read(s, MiB2, &e), UA_OK);
    CHECK(e.vmsa && e.perm[1] == 1);
    CHECK_EQ(ua_snp_rmpadjust(s, 0, MiB2, 0, 0 | (1 << 8), &r), UA_OK);
    CHECK_EQ(r.eax, UA_SNP_FAIL_PERMISSION);

    /* RMPUPDATE clears Validated, VMSA and the VMPL masks */
    ua_snp_rmp_state p4 = {.gpa = MiB2, .asid = 5, .assigned = 1};
    CHECK_EQ(ua_snp_rmpupdate(s, MiB2, &p4, &eax), UA_OK);
    CHECK_EQ(ua_snp_rmp_read(s, MiB2, &e), UA_OK);
    CHECK(!e.validated && !e.vmsa && e.perm[1] == 0 && e.perm[0] == 31);
    /* immutable refuses */
    ua_snp_rmp_state fw = {.assigned = 1, .immutable = 1};
    CHECK_EQ(ua_snp_rmpupdate(s, 0, &fw, &eax), UA_OK);
    CHECK_EQ(eax, 0u);
    CHECK_EQ(ua_snp_rmpupdate(s, 0, &p4, &eax), UA_OK);
    CHECK_EQ(eax, UA_SNP_RMP_FAIL_PERMISSION);
    CHECK_EQ(ua_snp_rmpupdate(s, 1ull << 52, &p4, &eax), UA_E_RANGE);

    /* access: #VC 0x404, host #PF bit 31 */
    CHECK_EQ(ua_snp_access(s, 0, MiB2, UA_SNP_ACCESS_READ, 1, &r), UA_OK);
    CHECK(r.fault == UA_SNP_FAULT_VC && r.error_code == 0x404);
    CHECK_EQ(ua_snp_host_write(s, MiB2, &r), UA_OK);
    CHECK(r.fault == UA_SNP_FAULT_PF && (r.error_code & 0x80000000u));
    CHECK_EQ(ua_snp_access(s, 0, 0, 9, 1, &r), UA_E_INVAL);
    ua_snp_destroy(s);
}

static void test_psc(void)
{
    ua_snp *s = make(16 << 20, 0, UA_BACKING_2M, 1);
    uint8_t buf[8 + 8 * 3] = {0};
    uint64_t h = (uint64_t)2 << 16, ent[3] = {
        (0ull << 12) | (1ull << 52) | (1ull << 56),
        (600ull << 12) | (1ull << 52),
        (601ull << 12) | (9ull << 52),     /* bad operation */
    };
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(h >> (8 * i));
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 8; i++)
            buf[8 + 8 * j + i] = (uint8_t)(ent[j] >> (8 * i));
    ua_snp_ghcb_result g;
    CHECK_EQ(ua_snp_psc_ghcb(s, 0, buf, sizeof buf, &g), UA_OK);
    CHECK_EQ(g.sw_exitinfo2, UA_SNP_PSC_ERROR_INVALID_ENTRY);
    CHECK(g.entries_done == 2 && g.pages_done == 513);
    CHECK_EQ(buf[0], 2);                              /* cur_entry at the bad entry */
    CHECK_EQ(ua_snp_psc_guest_check(0, 2, buf, g.sw_exitinfo2), 1);
    CHECK_EQ(ua_snp_psc_ghcb(s, 0, buf, 4, &g), UA_OK);
    CHECK(g.sw_exitinfo1 == 2 && g.sw_exitinfo2 == 3);

    uint64_t resp = 0;
    uint64_t req = UA_SNP_GHCB_MSR_PSC_REQ | (700ull << 12) | (1ull << 52);
    CHECK_EQ(ua_snp_psc_msr(s, 0, req, &resp), UA_OK);
    CHECK_EQ(resp, (uint64_t)UA_SNP_GHCB_MSR_PSC_RESP);
    CHECK_EQ(ua_snp_psc_msr(s, 0, req | (3ull << 52), &resp), UA_OK);
    CHECK_EQ(resp, (uint64_t)UA_SNP_GHCB_MSR_PSC_RESP_ERROR);
    CHECK_EQ(ua_snp_psc_msr(s, 0, 0x100, &resp), UA_E_OP);
    CHECK_EQ(ua_snp_terminate(s, 0, 1, 2), 0x21100u);
    ua_fatal t = fatal_of(s);
    CHECK(t.kind == UA_FATAL_TERMINATED && t.reason_set == 1 && t.reason_code == 2 &&
          t.code == 0x21100);
    ua_snp_destroy(s);
}

static void test_paths(void)
{
    for (uint32_t backing = 0; backing < 2; backing++) {
        ua_cost_profile prof;
        ua_cost *cost = NULL;
        CHECK_EQ(ua_cost_profile_find("count", &prof), UA_OK);
        CHECK_EQ(ua_cost_create(&prof, 1, &cost), UA_OK);
        ua_snp *s = make(GiB, 0, backing, 1);
        CHECK_EQ(ua_snp_set_cost(s, cost), UA_OK);
        ua_snp_path *p = NULL;
        CHECK_EQ(ua_snp_path_create(s, NULL, &p), UA_OK);
        CHECK_EQ(ua_snp_path_kind(p), (uint32_t)UA_PATH_LINUX);
        CHECK_EQ(ua_snp_accept(p, 0, 256 << 20, 0), UA_OK);
        ua_path_stats st;
        CHECK_EQ(ua_snp_path_stats_get(p, &st), UA_OK);
        CHECK(st.psc_requests == 2 && st.psc_exits == 2 && st.accept_2m == 128);
        CHECK_EQ(st.fallbacks, backing ? 128u : 0u);
        CHECK_EQ(st.accept_4k, backing ? 128u * 512 : 0u);
        uint64_t counts[UA_EV_MAX];
        CHECK(ua_event_count() <= UA_EV_MAX);
        CHECK_EQ(ua_cost_counts(cost, 0, counts, (size_t)ua_event_count()), UA_OK);
        CHECK_EQ(counts[UA_EV_RMPUPDATE_2M], backing ? 0u : 128u);
        CHECK_EQ(counts[UA_EV_RMPUPDATE_4K], backing ? 65536u : 0u);
        CHECK_EQ(counts[UA_EV_CACHE_TOUCH_4K], 65536u);
        uint64_t v, u;
        CHECK_EQ(ua_snp_count_gpa(s, 0, GiB, &v, &u), UA_OK);
        CHECK(v == 65536 && u == 0);
        /* unaccept: rescind, then shared; accept again works */
        CHECK_EQ(ua_snp_unaccept(p, 0, 4 * MiB2, 0), UA_OK);
        CHECK_EQ(ua_snp_count_gpa(s, 0, 4 * MiB2, &v, &u), UA_OK);
        CHECK(v == 0 && u == 0);
        CHECK_EQ(ua_snp_accept(p, 0, 4 * MiB2, 0), UA_OK);
        CHECK_EQ(ua_snp_count_gpa(s, 0, GiB, &v, &u), UA_OK);
        CHECK(v == 65536 && u == 0);
        /* double accept: the PSC is a no-op, PVALIDATE reports CF=1 -> terminate */
        CHECK_EQ(ua_snp_accept(p, 0, MiB2, 0), UA_E_GUEST_TERMINATED);
        ua_fatal t = fatal_of(s);
        CHECK(t.kind == UA_FATAL_TERMINATED && t.code == 0x21100 && t.eax == 255);
        CHECK_EQ(ua_snp_accept(p, MiB2, 2 * MiB2, 0), UA_E_GUEST_TERMINATED);
        ua_snp_fatal_clear(s);
        CHECK_EQ(fatal_of(s).kind, (uint32_t)UA_FATAL_NONE);
        /* early path and OVMF on fresh ranges */
        ua_path_options o = {.kind = UA_PATH_LINUX_EARLY};
        ua_snp_path *pe = NULL, *po = NULL;
        CHECK_EQ(ua_snp_path_create(s, &o, &pe), UA_OK);
        CHECK_EQ(ua_snp_accept(pe, 256 << 20, (256 << 20) + 16 * KiB4, 0), UA_OK);
        CHECK_EQ(ua_snp_path_stats_get(pe, &st), UA_OK);
        CHECK(st.msr_exits == 16 && st.accept_4k == 16);
        o.kind = UA_PATH_OVMF;
        o.ovmf_buffer_bytes = 1024;
        CHECK_EQ(ua_snp_path_create(s, &o, &po), UA_OK);
        CHECK_EQ(ua_snp_accept(po, 512 << 20, GiB, 0), UA_OK);
        CHECK_EQ(ua_snp_path_stats_get(po, &st), UA_OK);
        CHECK(st.psc_requests == 3 && st.psc_exits == 3);      /* 256 entries: 127+127+2 */
        CHECK_EQ(ua_snp_accept(po, 1, GiB, 0), UA_E_ALIGN);
        CHECK_EQ(ua_snp_accept(po, 0, 2 * GiB, 0), UA_E_RANGE);
        CHECK_EQ(ua_snp_accept(po, 0, GiB, 3), UA_E_VCPU);
        CHECK_EQ(ua_snp_accept(NULL, 0, GiB, 0), UA_E_INVAL);
        ua_snp_path_destroy(pe);
        ua_snp_path_destroy(po);
        ua_snp_path_destroy(p);
        ua_snp_destroy(s);
        ua_cost_destroy(cost);
    }
}

struct job {
    ua_table *t;
    uint32_t vcpu;
    uint64_t size;
    int rc;
};

static void *worker(void *arg)
{
    struct job *j = arg;
    j->rc = UA_OK;
    for (uint64_t a = j->vcpu * MiB2; a < j->size; a += 2 * MiB2) {
        int rc = ua_accept_memory(j->t, a, KiB4, j->vcpu, NULL);
        if (rc)
            j->rc = rc;
    }
    return NULL;
}

/* KVM_SET_MEMORY_ATTRIBUTES as QEMU issues it for all RAM: a private
 * access to a page nobody converted is faulted in from guest_memfd (RMP
 * assigned, not validated), so the guest takes #VC 0x404 (AMD APM vol. 2
 * 15.36.10, PAGE_NOT_VALIDATED) instead of an NPF nothing resolves. */
static void test_memory_attributes(void)
{
    ua_snp *s = make(8 * MiB2, 0, UA_BACKING_2M, 1);
    CHECK_EQ(ua_snp_set_memory_attributes(s, 1, KiB4, 1), UA_E_ALIGN);
    CHECK_EQ(ua_snp_set_memory_attributes(s, 0, 9 * MiB2, 1), UA_E_RANGE);
    CHECK_EQ(ua_snp_set_memory_attributes(s, 0, KiB4, 2), UA_E_INVAL);
    CHECK_EQ(ua_snp_set_memory_attributes(NULL, 0, KiB4, 1), UA_E_INVAL);
    ua_touch_result r;
    memset(&r, 0, sizeof(r));
    CHECK_EQ(ua_snp_linux_touch(s, 0, 2 * MiB2, UA_TOUCH_WRITE, &r), UA_OK);
    CHECK_EQ(r.outcome, UA_TOUCH_HUNG);              /* shared attribute: never resolved */
    ua_snp_destroy(s);
    s = make(8 * MiB2, 0, UA_BACKING_2M, 1);
    CHECK_EQ(ua_snp_set_memory_attributes(s, 0, 8 * MiB2, 1), UA_OK);
    memset(&r, 0, sizeof(r));
    CHECK_EQ(ua_snp_linux_touch(s, 0, 2 * MiB2 + KiB4, UA_TOUCH_WRITE, &r), UA_OK);
    CHECK_EQ(r.outcome, UA_TOUCH_TERMINATED);
    CHECK_EQ(r.vector, 29);
    CHECK_EQ(r.error_code, 0x404);
    ua_snp_rmp_entry e;
    CHECK_EQ(ua_snp_rmp_read(s, 2 * MiB2, &e), UA_OK);
    CHECK(e.assigned && !e.validated);
    ua_snp_destroy(s);
}

static void test_table_threads(void)
{
    uint64_t size = 8 * GiB;
    ua_snp *s = make(size, 0, UA_BACKING_4K, 2);
    ua_snp_path *p = NULL;
    CHECK_EQ(ua_snp_path_create(s, NULL, &p), UA_OK);
    ua_table *t = NULL;
    CHECK_EQ(ua_table_create(UA_DEFAULT_UNIT_SIZE, 0, size / MiB2 / 8, &t), UA_OK);
    CHECK_EQ(ua_table_mark(t, 0, size / MiB2, 1), UA_OK);
    CHECK_EQ(ua_table_set_accept(t, ua_snp_accept, p), UA_OK);
    struct job jobs[2] = {{t, 0, size, 0}, {t, 1, size, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK(jobs[0].rc == UA_OK && jobs[1].rc == UA_OK);
    CHECK_EQ(ua_table_count_unaccepted(t), 0u);
    uint64_t v, u;
    CHECK_EQ(ua_snp_count_gpa(s, 0, size, &v, &u), UA_OK);
    CHECK(v == size / KiB4 && u == 0);
    CHECK_EQ(fatal_of(s).kind, (uint32_t)UA_FATAL_NONE);
    ua_table_destroy(t);
    ua_snp_path_destroy(p);
    ua_snp_destroy(s);
}

static void test_linux_touch(void)
{
    ua_snp *s = make(16 << 20, 0, UA_BACKING_2M, 1);
    ua_snp_rmp_state priv = {.gpa = 4 * MiB2, .asid = 5, .assigned = 1, .page_size = 0};
    uint32_t eax;
    ua_touch_result r;
    CHECK_EQ(ua_snp_rmpupdate(s, 4 * MiB2, &priv, &eax), UA_OK);
    CHECK_EQ(eax, 0u);
    /* user mode: SIGBUS, the guest lives on */
    CHECK_EQ(ua_snp_linux_touch(s, 0, 4 * MiB2, UA_TOUCH_USER, &r), UA_OK);
    CHECK(r.outcome == UA_TOUCH_GUEST_FAULT && r.vector == 29 && r.error_code == 0x404);
    CHECK_EQ(fatal_of(s).kind, (uint32_t)UA_FATAL_NONE);
    /* kernel mode: termination request, reason set 0, code 0.  0.2: the touch
     * returns UA_OK with the outcome (was UA_E_GUEST_TERMINATED), the
     * termination is in the fatal record (docs/changes-0.2.md). */
    CHECK_EQ(ua_snp_linux_touch(s, 0, 4 * MiB2, 0, &r), UA_OK);
    CHECK_EQ(r.outcome, (uint32_t)UA_TOUCH_TERMINATED);
    ua_fatal t = fatal_of(s);
    CHECK(t.kind == UA_FATAL_TERMINATED && t.code == 0x100 && t.gpa == 4 * MiB2 &&
          t.reason_set == 0 && t.reason_code == 0);
    /* never assigned: the host cannot fix the NPF.  0.2: outcome HUNG (was
     * UA_E_GUEST_HUNG), recorded as a fatal HUNG once the record is clear */
    ua_snp_fatal_clear(s);
    CHECK_EQ(ua_snp_linux_touch(s, 0, 6 * MiB2, 0, &r), UA_OK);
    CHECK(r.outcome == UA_TOUCH_HUNG && r.exits >= 1);
    CHECK(r.detail & UA_SNP_NPF_RMP);
    CHECK_EQ(fatal_of(s).kind, (uint32_t)UA_FATAL_HUNG);
    CHECK_EQ(ua_snp_linux_touch(s, 3, 0, 0, &r), UA_E_VCPU);
    CHECK_EQ(ua_snp_linux_touch(s, 0, 0, 0, NULL), UA_E_INVAL);
    CHECK_EQ(ua_snp_linux_touch(s, 0, 0, 8, &r), UA_E_INVAL);   /* unknown flag */
    ua_snp_destroy(s);
}

/* A host written in C: refuses every NAE Page State Change (counted in ctx). */
static int refuse_psc(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *header, uint64_t *entries,
                      uint32_t capacity, ua_snp_ghcb_result *out)
{
    (*(int *)ua_host_ctx(h))++;
    out->sw_exitinfo2 = UA_SNP_PSC_ERROR_GENERIC;
    return UA_OK;
}

/* KVM's NPF handler, counting what it did. */
static int count_npf(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t gpa, uint64_t exitinfo1,
                     uint32_t *action)
{
    int st = ua_host_kvm_snp_npf(h, s, vcpu, gpa, exitinfo1, action);
    if (*action == UA_HOST_DID_RMPUPDATE)
        (*(int *)ua_host_ctx(h))++;
    return st;
}

static void test_hosts(void)
{
    ua_host_config cfg;
    ua_host *h = NULL;
    ua_host_config_default(&cfg);
    CHECK(cfg.behavior == UA_HOST_KVM && cfg.npf_psmash == 1 && cfg.lazy_rmpupdate == 0);
    CHECK_EQ(ua_host_behavior_find("psc-error"), UA_HOST_PSC_ERROR);
    CHECK(!strcmp(ua_host_behavior_name(UA_HOST_NEVER_RESOLVE), "never-resolve"));
    CHECK_EQ(ua_host_behavior_find("nope"), -1);
    cfg.behavior = UA_HOST_PSC_PARTIAL;          /* needs a limit */
    CHECK_EQ(ua_host_create(&cfg, NULL, NULL, &h), UA_E_INVAL);
    cfg.behavior = UA_HOST_GHCB_ERROR;
    cfg.ghcb_error = 7;                          /* GHCB error codes are 1-6 */
    CHECK_EQ(ua_host_create(&cfg, NULL, NULL, &h), UA_E_INVAL);
    CHECK(h == NULL);

    /* psc-error: Linux terminates with SEV_TERM_SET_LINUX / GHCB_TERM_PSC */
    ua_snp *s = make(64 << 20, 0, UA_BACKING_2M, 1);
    ua_snp_path *p = NULL;
    CHECK_EQ(ua_snp_path_create(s, NULL, &p), UA_OK);
    ua_host_config_default(&cfg);
    cfg.behavior = UA_HOST_PSC_ERROR;
    CHECK_EQ(ua_host_create(&cfg, NULL, NULL, &h), UA_OK);
    CHECK_EQ(ua_snp_set_host(s, h), UA_OK);
    CHECK_EQ(ua_snp_accept(p, 0, 4 * MiB2, 0), UA_E_GUEST_TERMINATED);
    ua_fatal f = fatal_of(s);
    CHECK(f.kind == UA_FATAL_TERMINATED && f.reason_set == 1 && f.reason_code == 1 &&
          f.code == 0x11100 && f.info == UA_SNP_PSC_ERROR_GENERIC);
    /* a dead guest runs no further accepts (0.2) */
    CHECK_EQ(ua_snp_accept(p, 8 * MiB2, 9 * MiB2, 0), UA_E_GUEST_TERMINATED);
    ua_snp_fatal_clear(s);
    CHECK_EQ(ua_snp_set_host(s, NULL), UA_OK);   /* back to KVM */
    ua_host_destroy(h);
    CHECK_EQ(ua_snp_accept(p, 8 * MiB2, 9 * MiB2, 0), UA_OK);

    /* never-resolve: the MSR protocol exit never returns -> hung */
    ua_path_options o = {.kind = UA_PATH_LINUX_EARLY};
    ua_snp_path *pe = NULL;
    CHECK_EQ(ua_snp_path_create(s, &o, &pe), UA_OK);
    cfg.behavior = UA_HOST_NEVER_RESOLVE;
    CHECK_EQ(ua_host_create(&cfg, NULL, NULL, &h), UA_OK);
    CHECK_EQ(ua_snp_set_host(s, h), UA_OK);
    CHECK_EQ(ua_snp_accept(pe, 10 * MiB2, 10 * MiB2 + KiB4, 0), UA_E_GUEST_HUNG);
    CHECK_EQ(fatal_of(s).kind, (uint32_t)UA_FATAL_HUNG);
    ua_snp_fatal_clear(s);
    ua_snp_set_host(s, NULL);
    ua_host_destroy(h);

    /* a C host: its snp_psc wins over the behaviour's, the rest is KVM */
    int refused = 0;
    ua_host_ops ops;
    memset(&ops, 0, sizeof(ops));
    ops.snp_psc = refuse_psc;
    ua_host_config_default(&cfg);
    CHECK_EQ(ua_host_create(&cfg, &ops, &refused, &h), UA_OK);
    CHECK(ua_host_ctx(h) == &refused);
    CHECK_EQ(ua_snp_set_host(s, h), UA_OK);
    CHECK_EQ(ua_snp_accept(p, 12 * MiB2, 13 * MiB2, 0), UA_E_GUEST_TERMINATED);
    f = fatal_of(s);
    CHECK(refused == 1 && f.reason_set == 1 && f.reason_code == 1 && f.gpa == 12 * MiB2);
    uint64_t v, u;
    CHECK_EQ(ua_snp_count_gpa(s, 12 * MiB2, 13 * MiB2, &v, &u), UA_OK);
    CHECK(v == 0 && u == 0);                     /* nothing converted */
    ua_snp_fatal_clear(s);
    CHECK_EQ(ua_snp_accept(pe, 14 * MiB2, 14 * MiB2 + KiB4, 0), UA_OK);   /* MSR: KVM */
    ua_snp_set_host(s, NULL);
    ua_host_destroy(h);

    /* lazy KVM with a counting NPF handler: one fault-in per 2 MiB entry */
    int mapped = 0;
    memset(&ops, 0, sizeof(ops));
    ops.snp_npf = count_npf;
    ua_host_config_default(&cfg);
    cfg.lazy_rmpupdate = 1;
    CHECK_EQ(ua_host_create(&cfg, &ops, &mapped, &h), UA_OK);
    CHECK_EQ(ua_snp_set_host(s, h), UA_OK);
    CHECK_EQ(ua_snp_accept(p, 16 * MiB2, 20 * MiB2, 0), UA_OK);
    CHECK_EQ(mapped, 4);
    CHECK_EQ(ua_snp_count_gpa(s, 16 * MiB2, 20 * MiB2, &v, &u), UA_OK);
    CHECK(v == 4 * 512 && u == 0);
    ua_snp_path_destroy(pe);
    ua_snp_path_destroy(p);
    ua_snp_destroy(s);
    ua_host_destroy(h);
}

int main(void)
{
    test_create_args();
    test_instructions();
    test_psc();
    test_paths();
    test_memory_attributes();
    test_table_threads();
    test_linux_touch();
    test_hosts();
    return ua_test_report("test_snp");
}
