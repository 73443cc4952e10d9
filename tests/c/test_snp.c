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

static ua_snp *make(uint64_t mem, uint64_t spare, uint32_t backing, uint32_t nvcpus)
{
    ua_snp_config cfg = {.memory_bytes = mem, .spare_bytes = spare, .asid = 5, .vmpl = 0,
                         .nvcpus = nvcpus, .coherency_sfw_no = 0};
    ua_snp *s = NULL;
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_OK);
    ua_snp_host_policy p;
    CHECK_EQ(ua_snp_host_policy_get(s, &p), UA_OK);
    p.backing = backing;
    CHECK_EQ(ua_snp_set_host_policy(s, &p), UA_OK);
    return s;
}

static void test_create_args(void)
{
    ua_snp *s = (ua_snp *)1;
    ua_snp_config cfg = {.memory_bytes = 3 << 20, .asid = 1, .nvcpus = 1};
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_E_ALIGN);
    CHECK(s == NULL);
    cfg.memory_bytes = 1ull << 53;
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_E_RANGE);
    cfg.memory_bytes = MiB2;
    cfg.asid = 0;
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_E_INVAL);
    cfg.asid = 1;
    cfg.nvcpus = 0;
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_E_VCPU);
    CHECK_EQ(ua_snp_create(NULL, &s), UA_E_INVAL);
    ua_snp_destroy(NULL);
    /* 64 TiB: only the directory */
    cfg.memory_bytes = 64ull << 40;
    cfg.nvcpus = 1;
    CHECK_EQ(ua_snp_create(&cfg, &s), UA_OK);
    ua_snp_stats st;
    CHECK_EQ(ua_snp_stats_get(s, &st), UA_OK);
    CHECK(st.chunks_allocated == 0 && st.bytes_allocated < (1u << 20));
    ua_snp_destroy(s);
}

static void test_instructions(void)
{
    ua_snp *s = make(16 << 20, MiB2, UA_SNP_BACKING_2M, 1);
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
    ua_snp *s = make(16 << 20, 0, UA_SNP_BACKING_2M, 1);
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
    ua_snp_termination t;
    CHECK_EQ(ua_snp_termination_get(s, &t), UA_OK);
    CHECK(t.terminated && t.reason_set == 1 && t.reason_code == 2 && t.msr == 0x21100);
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
        CHECK_EQ(ua_snp_accept_linux(p, 0, 256 << 20, 0), UA_OK);
        ua_snp_path_stats st;
        CHECK_EQ(ua_snp_path_stats_get(p, &st), UA_OK);
        CHECK(st.psc_requests == 2 && st.psc_exits == 2 && st.pvalidate_2m == 128);
        CHECK_EQ(st.fallbacks, backing ? 128u : 0u);
        CHECK_EQ(st.pvalidate_4k, backing ? 128u * 512 : 0u);
        uint64_t counts[UA_EV_COUNT];
        CHECK_EQ(ua_cost_counts(cost, 0, counts, UA_EV_COUNT), UA_OK);
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
        CHECK_EQ(ua_snp_accept_linux(p, 0, MiB2, 0), UA_E_GUEST_TERMINATED);
        ua_snp_termination t;
        CHECK_EQ(ua_snp_termination_get(s, &t), UA_OK);
        CHECK(t.msr == 0x21100 && t.eax == 255);
        CHECK_EQ(ua_snp_accept(p, MiB2, 2 * MiB2, 0), UA_E_GUEST_TERMINATED);
        ua_snp_termination_clear(s);
        /* early path and OVMF on fresh ranges */
        ua_snp_path_options o = {.kind = UA_SNP_PATH_LINUX_EARLY};
        ua_snp_path *pe = NULL, *po = NULL;
        CHECK_EQ(ua_snp_path_create(s, &o, &pe), UA_OK);
        CHECK_EQ(ua_snp_accept(pe, 256 << 20, (256 << 20) + 16 * KiB4, 0), UA_OK);
        CHECK_EQ(ua_snp_path_stats_get(pe, &st), UA_OK);
        CHECK(st.msr_exits == 16 && st.pvalidate_4k == 16);
        o.kind = UA_SNP_PATH_OVMF;
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

static void test_table_threads(void)
{
    uint64_t size = 8 * GiB;
    ua_snp *s = make(size, 0, UA_SNP_BACKING_4K, 2);
    ua_snp_path *p = NULL;
    CHECK_EQ(ua_snp_path_create(s, NULL, &p), UA_OK);
    ua_table *t = NULL;
    CHECK_EQ(ua_table_create(UA_DEFAULT_UNIT_SIZE, 0, size / MiB2 / 8, &t), UA_OK);
    CHECK_EQ(ua_table_mark(t, 0, size / MiB2, 1), UA_OK);
    CHECK_EQ(ua_table_set_accept(t, ua_snp_accept_linux, p), UA_OK);
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
    ua_snp_termination term;
    CHECK_EQ(ua_snp_termination_get(s, &term), UA_OK);
    CHECK_EQ(term.terminated, 0u);
    ua_table_destroy(t);
    ua_snp_path_destroy(p);
    ua_snp_destroy(s);
}

static void test_linux_touch(void)
{
    ua_snp *s = make(16 << 20, 0, UA_SNP_BACKING_2M, 1);
    ua_snp_rmp_state priv = {.gpa = 4 * MiB2, .asid = 5, .assigned = 1, .page_size = 0};
    uint32_t eax, sigbus = 7;
    ua_snp_result r;
    CHECK_EQ(ua_snp_rmpupdate(s, 4 * MiB2, &priv, &eax), UA_OK);
    CHECK_EQ(eax, 0u);
    /* user mode: SIGBUS, the guest lives on */
    CHECK_EQ(ua_snp_guest_linux_touch(s, 0, 4 * MiB2, UA_SNP_ACCESS_READ, 1, &r, &sigbus), UA_OK);
    CHECK(sigbus == 1 && r.fault == UA_SNP_FAULT_VC && r.error_code == 0x404);
    /* kernel mode: termination request, reason set 0, code 0 */
    CHECK_EQ(ua_snp_guest_linux_touch(s, 0, 4 * MiB2, UA_SNP_ACCESS_READ, 0, &r, &sigbus),
             UA_E_GUEST_TERMINATED);
    ua_snp_termination t;
    CHECK_EQ(ua_snp_termination_get(s, &t), UA_OK);
    CHECK(t.terminated && t.msr == 0x100 && t.gpa == 4 * MiB2);
    /* never assigned: the host cannot fix the NPF */
    CHECK_EQ(ua_snp_guest_linux_touch(s, 0, 6 * MiB2, UA_SNP_ACCESS_READ, 0, &r, &sigbus),
             UA_E_GUEST_HUNG);
    CHECK_EQ(ua_snp_guest_linux_touch(s, 3, 0, UA_SNP_ACCESS_READ, 0, &r, &sigbus), UA_E_VCPU);
    CHECK_EQ(ua_snp_guest_linux_touch(s, 0, 0, UA_SNP_ACCESS_READ, 0, NULL, &sigbus), UA_E_INVAL);
    ua_snp_destroy(s);
}

int main(void)
{
    test_create_args();
    test_instructions();
    test_psc();
    test_paths();
    test_table_threads();
    test_linux_touch();
    return ua_test_report("test_snp");
}
