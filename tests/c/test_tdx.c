/* test_tdx.c - C unit test of the TDX model (csrc/tdx_sept.c, tdx_module.c,
 * tdx_kvm.c, tdx_guest.c) and its hosts (csrc/host.c).
 * Expected values come from the TDX module 1.5 source (intel/tdx-module
 * branch tdx_1.5: tdg_mem_page_accept.c, tdh_mem_page_*.c,
 * tdx_error_codes_defs.h) and the path algorithms of Linux
 * arch/x86/coco/tdx/tdx-shared.c:tdx_accept_memory() and EDK2
 * MdePkg/Library/TdxLib/AcceptPages.c:TdAcceptPages(). */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "unaccepted.h"
#include "ua_test.h"

#define K4 4096ull
#define M2 (2ull << 20)
#define G1 (1ull << 30)

static ua_tdx *make(uint64_t mem, uint32_t backing, uint32_t initial, uint32_t vcpus)
{
    ua_tdx_config cfg;
    ua_tdx_config_default(&cfg);
    cfg.memory_bytes = mem;
    cfg.backing = backing;
    cfg.initial = initial;
    cfg.vcpus = vcpus;
    ua_tdx *t = NULL;
    CHECK_EQ(ua_tdx_create(&cfg, &t), UA_OK);
    return t;
}

static void test_config_errors(void)
{
    ua_tdx_config cfg;
    ua_tdx *t = (ua_tdx *)1;
    ua_tdx_config_default(&cfg);
    cfg.memory_bytes = 0;
    CHECK_EQ(ua_tdx_create(&cfg, &t), UA_E_ALIGN);
    CHECK(t == NULL);
    ua_tdx_config_default(&cfg);
    cfg.vcpus = 0;
    CHECK_EQ(ua_tdx_create(&cfg, &t), UA_E_VCPU);
    ua_tdx_config_default(&cfg);
    cfg.gpaw = 50;
    CHECK_EQ(ua_tdx_create(&cfg, &t), UA_E_INVAL);
    ua_tdx_config_default(&cfg);
    cfg.backing = 2;
    CHECK_EQ(ua_tdx_create(&cfg, &t), UA_E_INVAL);
    ua_tdx_config_default(&cfg);
    cfg.reserved = 1; /* 0.1's vmm_policy field: must be 0 now */
    CHECK_EQ(ua_tdx_create(&cfg, &t), UA_E_INVAL);
    ua_tdx_config_default(&cfg);
    cfg.memory_bytes = (1ull << 51) + M2;
    CHECK_EQ(ua_tdx_create(&cfg, &t), UA_E_RANGE);
    CHECK_EQ(ua_tdx_create(NULL, &t), UA_E_INVAL);
    ua_tdx_destroy(NULL);
}

static void test_accept_statuses(void)
{
    ua_tdx *t = make(G1, UA_BACKING_2M, UA_TDX_INIT_FREE, 1);
    ua_tdx_tdcall_result r;
    CHECK_EQ(ua_tdx_tdcall_accept(t, 0, 6, 0 | 2, &r), UA_OK);
    CHECK_EQ(r.rax, 0xC000010000000001ull);
    CHECK_EQ(ua_tdx_tdcall_accept(t, 0, 6, K4 | 1, &r), UA_OK);
    CHECK_EQ(r.rax, 0xC000010000000001ull);
    CHECK_EQ(ua_tdx_tdcall_accept(t, 0, 6 | (1ull << 16), 0, &r), UA_OK);
    CHECK_EQ(r.rax, 0xC000010000000000ull);
    CHECK_EQ(ua_tdx_tdcall_accept(t, 1, 6, 0, &r), UA_E_VCPU);
    CHECK_EQ(ua_tdx_tdcall_accept(t, 0, 7, 0, &r), UA_E_INVAL);
    CHECK_EQ(ua_tdx_tdcall_accept(NULL, 0, 6, 0, &r), UA_E_INVAL);

    /* FREE 2 MiB: VIOLATION exit, the VMM AUGs, the TDCALL re-executes */
    CHECK_EQ(ua_tdx_tdcall_accept(t, 0, 6, M2 | 1, &r), UA_OK);
    CHECK(r.exited && r.exit_reason == 48 && r.eeq_type == 1 && r.rax == 6);
    CHECK_EQ(r.exit_qualification, 1ull | ((1ull | 1ull << 3) << 32));
    uint32_t action = 99;
    CHECK_EQ(ua_tdx_serve_exit(t, 0, r.gpa, r.exit_qualification, r.exit_status, &action), UA_OK);
    CHECK_EQ(action, UA_HOST_DID_AUG_2M);
    CHECK_EQ(ua_tdx_tdcall_accept(t, 0, 6, M2 | 1, &r), UA_OK);
    CHECK(r.rax == 0 && r.chunks_zeroed == 512);
    CHECK_EQ(ua_tdx_tdcall_accept(t, 0, 6, M2 | 1, &r), UA_OK);
    CHECK_EQ(r.rax, 0x00000B0A00000001ull);
    CHECK_EQ(ua_tdx_tdcall_accept(t, 0, 6, M2 + 3 * K4, &r), UA_OK);
    CHECK_EQ(r.rax, 0x00000B0A00000001ull);

    ua_tdx_entry_info e;
    CHECK_EQ(ua_tdx_entry(t, M2, -1, &e), UA_OK);
    CHECK(e.state == UA_TDX_SEPT_MAPPED && e.level == 1 && e.is_leaf && !e.data_nonzero);
    CHECK_EQ(ua_tdx_entry(t, M2, 0, &e), UA_E_STATE);
    CHECK_EQ(ua_tdx_entry(t, G1, -1, &e), UA_E_RANGE);
    ua_tdx_destroy(t);
}

static void test_host_ops(void)
{
    ua_tdx *t = make(G1, UA_BACKING_2M, UA_TDX_INIT_FREE, 1);
    ua_tdx_host_result h;
    CHECK_EQ(ua_tdx_host_aug(t, 0, 5 * K4, &h), UA_OK);
    CHECK(h.status == 0 && h.hpa != 0);
    CHECK_EQ(ua_tdx_host_aug(t, 0, 0 | 1, &h), UA_OK);
    CHECK_EQ(h.status, 0xC0000B0D00000001ull);
    CHECK(h.level == 1 && h.state == UA_TDX_SEPT_NL_MAPPED);
    CHECK_EQ(ua_tdx_host_aug(t, 0, M2 | 2, &h), UA_OK);
    CHECK_EQ(h.status, 0xC000010000000001ull);
    CHECK_EQ(ua_tdx_host_remove(t, 0, 5 * K4, &h), UA_OK);
    CHECK_EQ(h.status, 0xC0000B0600000001ull);
    CHECK_EQ(ua_tdx_host_block(t, 0, 5 * K4, &h), UA_OK);
    CHECK_EQ(h.status, 0ull);
    CHECK_EQ(ua_tdx_host_block(t, 0, 5 * K4, &h), UA_OK);
    CHECK_EQ(h.status, 0x00000B0700000001ull);
    CHECK_EQ(ua_tdx_host_remove(t, 0, 5 * K4, &h), UA_OK);
    CHECK_EQ(h.status, 0xC0000B0800000001ull);
    CHECK_EQ(ua_tdx_host_track(t, 0, &h), UA_OK);
    CHECK_EQ(ua_tdx_host_remove(t, 0, 5 * K4, &h), UA_OK);
    CHECK(h.status == 0 && h.hpa != 0);
    CHECK_EQ(ua_tdx_host_aug(t, 0, (2 * M2 + 5 * K4) | 1, &h), UA_OK); /* misaligned */
    CHECK_EQ(h.status, 0xC000010000000001ull);
    CHECK_EQ(ua_tdx_host_aug(t, 0, G1, &h), UA_E_RANGE);
    CHECK_EQ(ua_tdx_host_aug(t, 3, 0, &h), UA_E_VCPU);
    CHECK_EQ(ua_tdx_host_aug(t, 0, 2 * M2 | 0x40, &h), UA_OK);
    CHECK_EQ(h.status, 0xC000010000000001ull);
    ua_tdx_host_result f;
    CHECK_EQ(ua_tdx_host_finalize(t, 0, &f), UA_OK);
    CHECK_EQ(f.status, 0xC000060800000000ull);
    ua_tdx_destroy(t);
}

static void test_linux_path_counts(void)
{
    ua_cost_profile prof;
    CHECK_EQ(ua_cost_profile_find("count", &prof), UA_OK);
    ua_cost *cost = NULL;
    CHECK_EQ(ua_cost_create(&prof, 1, &cost), UA_OK);

    ua_tdx *t = make(2 * G1, UA_BACKING_4K, UA_TDX_INIT_FREE, 1);
    CHECK_EQ(ua_tdx_set_cost(t, cost), UA_OK);
    ua_tdx_path *p = NULL;
    ua_path_options o = {.kind = UA_PATH_LINUX};
    CHECK_EQ(ua_tdx_path_create(t, &o, &p), UA_OK);
    CHECK_EQ(ua_tdx_accept(p, 0, 8 * M2, 0), UA_OK);
    ua_path_stats s;
    CHECK_EQ(ua_tdx_path_stats_get(p, &s), UA_OK);
    CHECK_EQ(s.accept_1g, 0ull); /* fewer than 1 GiB: no 1 GiB try */
    CHECK_EQ(s.accept_2m, 8ull);
    CHECK_EQ(s.accept_4k, 8 * 512ull);
    CHECK_EQ(s.exits, 8 * 512ull);
    CHECK_EQ(s.host_aug_4k, 8 * 512ull);
    CHECK_EQ(s.size_mismatch, 8ull);
    uint64_t counts[UA_EV_MAX];
    CHECK_EQ(ua_cost_counts(cost, 0, counts, (size_t)ua_event_count()), UA_OK);
    CHECK_EQ(counts[UA_EV_TDCALL_ACCEPT], s.executions);
    CHECK_EQ(counts[UA_EV_AUG_4K], 8 * 512ull);
    CHECK_EQ(counts[UA_EV_ZERO_4K], 8 * 512ull);
    CHECK_EQ(counts[UA_EV_TD_EXIT], 8 * 512ull);

    /* a second accept of accepted memory: Linux panics */
    CHECK_EQ(ua_tdx_accept(p, 0, M2, 0), UA_E_GUEST_PANIC);
    ua_fatal f;
    CHECK_EQ(ua_tdx_fatal_get(t, &f), UA_OK);
    CHECK(f.kind == UA_FATAL_PANIC && f.gpa == 0);
    CHECK(strcmp(f.message, "TDX: Failed to accept memory") == 0);
    CHECK_EQ(f.code, 0x00000B0A00000000ull); /* the 4 KiB try's PAGE_ALREADY_ACCEPTED */
    CHECK_EQ(ua_tdx_accept(p, 1, M2, 0), UA_E_ALIGN);
    CHECK_EQ(ua_tdx_accept(p, 0, M2, 9), UA_E_VCPU);
    CHECK_EQ(ua_tdx_accept(NULL, 0, M2, 0), UA_E_INVAL);
    /* docs/changes-0.2.md: a dead guest runs no further accepts */
    CHECK_EQ(ua_tdx_accept(p, 8 * M2, 9 * M2, 0), UA_E_GUEST_PANIC);
    ua_tdx_path_destroy(p);

    /* OVMF tolerates it (on a guest revived from the panic above) */
    ua_tdx_fatal_clear(t);
    o.kind = UA_PATH_OVMF;
    CHECK_EQ(ua_tdx_path_create(t, &o, &p), UA_OK);
    CHECK_EQ(ua_tdx_accept(p, 0, 4 * M2, 0), UA_OK);
    CHECK_EQ(ua_tdx_path_stats_get(p, &s), UA_OK);
    CHECK_EQ(s.already_accepted, 4 * 512ull); /* SIZE_MISMATCH, then 512 x ALREADY */
    CHECK_EQ(ua_tdx_fatal_get(t, &f), UA_OK);
    CHECK_EQ(f.kind, (uint32_t)UA_FATAL_NONE);
    ua_tdx_path_destroy(p);

    /* SEC's MP accept takes an exactly-2 MiB range as one 2 MiB page
     * (SecTdxHelper.c BspApAcceptMemoryResourceRange); the protocol's
     * TdxMemoryAccept takes it as 512 x 4 KiB; on this 4 KiB-backed TD the
     * 2 MiB page size-mismatches and falls back */
    o.kind = UA_PATH_OVMF_SEC;
    CHECK_EQ(ua_tdx_path_create(t, &o, &p), UA_OK);
    CHECK_EQ(ua_tdx_accept(p, 16 * M2, 17 * M2, 0), UA_OK);
    CHECK_EQ(ua_tdx_path_stats_get(p, &s), UA_OK);
    CHECK_EQ(s.accept_2m, 1ull);
    CHECK_EQ(s.fallbacks, 1ull);
    CHECK_EQ(s.accept_4k, 512ull);
    ua_tdx_path_destroy(p);
    ua_tdx_destroy(t);
    ua_cost_destroy(cost);
}

static void test_interrupted_accept(void)
{
    ua_tdx *t = make(G1, UA_BACKING_2M, UA_TDX_INIT_PENDING, 1);
    ua_tdx_tdcall_result r;
    CHECK_EQ(ua_tdx_set_interrupts(t, 0, 200, 0), UA_OK);
    CHECK_EQ(ua_tdx_set_interrupts(t, 1, 200, 0), UA_E_VCPU);
    CHECK_EQ(ua_tdx_tdcall_accept(t, 0, 6, 0 | 1, &r), UA_OK);
    CHECK(r.interrupted && r.rax == 6 && r.accept_counter == 200 && r.chunks_zeroed == 200);
    CHECK_EQ(ua_tdx_tdcall_accept(t, 0, 6, 0 | 1, &r), UA_OK);
    CHECK(!r.interrupted && r.rax == 0 && r.chunks_zeroed == 312);
    ua_tdx_destroy(t);
}

static void test_access_and_ve(void)
{
    ua_tdx_config cfg;
    ua_tdx_config_default(&cfg);
    cfg.initial = UA_TDX_INIT_PENDING;
    cfg.attributes = 0; /* SEPT_VE_DISABLE clear */
    ua_tdx *t = NULL;
    CHECK_EQ(ua_tdx_create(&cfg, &t), UA_OK);
    ua_tdx_access_result a;
    CHECK_EQ(ua_tdx_guest_access(t, 0, 8 * K4, 0, &a), UA_OK);
    CHECK(a.outcome == UA_TDX_ACCESS_VE && a.vector == 20 && a.exit_reason == 48);
    CHECK_EQ(ua_tdx_guest_access(t, 0, 8 * K4, 1, &a), UA_OK);
    CHECK(a.outcome == UA_TDX_ACCESS_DF && a.vector == 8);
    ua_tdx_veinfo v;
    CHECK_EQ(ua_tdx_tdcall_veinfo_get(t, 0, &v), UA_OK);
    CHECK(v.status == 0 && v.valid == 0xFFFFFFFFu && v.gpa == 8 * K4);
    CHECK_EQ(ua_tdx_tdcall_veinfo_get(t, 0, &v), UA_OK);
    CHECK_EQ(v.status, 0xC000070400000000ull);
    uint64_t st, val;
    CHECK_EQ(ua_tdx_tdcall_vm_wr(t, 0, UA_TDX_TDCS_TD_CTLS, 1, 1, &st, &val), UA_OK);
    CHECK_EQ(st, 0xC0000C0100000000ull);
    ua_tdx_destroy(t);
}

static void test_map_gpa(void)
{
    ua_tdx *t = make(G1, UA_BACKING_2M, UA_TDX_INIT_FREE, 1);
    ua_tdx_vmcall_result v;
    uint64_t sbit = 1ull << 51;
    CHECK_EQ(ua_tdx_tdvmcall(t, 0, 0, 0x10001, sbit | 0x10, K4, &v), UA_OK);
    CHECK_EQ(v.r10, 0x8000000000000002ull);
    CHECK_EQ(ua_tdx_tdvmcall(t, 0, 0, 0x10001, sbit - K4, 2 * K4, &v), UA_OK);
    CHECK_EQ(v.r10, 0x8000000000000000ull);
    CHECK_EQ(ua_tdx_tdvmcall(t, 0, 0, 0x10002, 0, K4, &v), UA_OK);
    CHECK_EQ(v.r10, 0x8000000000000003ull);
    CHECK_EQ(ua_tdx_set_interrupts(t, 0, 1, 1), UA_OK);
    CHECK_EQ(ua_tdx_tdvmcall(t, 0, 0, 0x10001, sbit, 3 * M2, &v), UA_OK);
    CHECK(v.r10 == 1 && v.r11 == (sbit | M2) && v.chunks == 1);
    uint64_t r10 = 99;
    CHECK_EQ(ua_tdx_linux_map_gpa(t, 0, 0, 3 * M2, 1, &r10), UA_OK);
    CHECK_EQ(r10, 0ull);
    ua_tdx_entry_info e;
    CHECK_EQ(ua_tdx_entry(t, 2 * M2, -1, &e), UA_OK);
    CHECK(e.shared);
    ua_tdx_destroy(t);
}

struct worker {
    ua_tdx_path *p;
    uint32_t vcpu;
    int rc;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    uint64_t base = (uint64_t)w->vcpu * 2 * G1;
    w->rc = ua_tdx_accept(w->p, base, base + 2 * G1, w->vcpu);
    return NULL;
}

static void *vmm_thread(void *arg)
{
    ua_tdx *t = arg;
    ua_tdx_host_result h;
    uint64_t st, val;
    for (int i = 0; i < 2000; i++) {
        ua_tdx_host_track(t, 0, &h);
        ua_tdx_tdcall_vm_rd(t, 0, UA_TDX_TDCS_TD_CTLS, &st, &val);
    }
    return NULL;
}

static void test_threads(void)
{
    ua_tdx *t = make(8 * G1, UA_BACKING_4K, UA_TDX_INIT_FREE, 4);
    ua_tdx_path *p = NULL;
    CHECK_EQ(ua_tdx_path_create(t, NULL, &p), UA_OK); /* NULL: Linux defaults */
    pthread_t th[4];
    struct worker w[4];
    for (uint32_t i = 0; i < 4; i++) {
        w[i] = (struct worker){p, i, -1};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    pthread_t vmm;
    pthread_create(&vmm, NULL, vmm_thread, t);
    pthread_join(vmm, NULL);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(w[i].rc, UA_OK);
    }
    uint64_t counts[6];
    CHECK_EQ(ua_tdx_count_states(t, 0, 8 * G1, counts), UA_OK);
    CHECK_EQ(counts[UA_TDX_SEPT_MAPPED], 8 * G1 / K4);
    ua_tdx_path_destroy(p);
    ua_tdx_destroy(t);
}

static void test_launch_and_linux_policy(void)
{
    ua_tdx_config cfg;
    ua_tdx_config_default(&cfg);
    cfg.finalized = 0;
    cfg.attributes = 0;
    ua_tdx *t = NULL;
    CHECK_EQ(ua_tdx_create(&cfg, &t), UA_OK);
    ua_tdx_host_result h;
    uint64_t done = 0;
    CHECK_EQ(ua_tdx_host_add_range(t, 0, 0x800000, 0x820000, 1, &h, &done), UA_OK);
    CHECK(h.status == 0 && done == 32);
    CHECK_EQ(ua_tdx_host_add_range(t, 0, 0x81F000, 0x821000, 1, &h, &done), UA_OK);
    CHECK(h.status == 0xC0000B0D00000001ull && done == 0);
    CHECK_EQ(ua_tdx_host_add_range(t, 0, 1, K4, 0, &h, &done), UA_E_ALIGN);
    ua_tdx_access_result a;
    CHECK_EQ(ua_tdx_guest_access(t, 0, 0, 0, &a), UA_E_STATE);
    CHECK_EQ(ua_tdx_host_finalize(t, 0, &h), UA_OK);
    CHECK_EQ(h.status, 0ull);
    const char *msg = NULL;
    CHECK_EQ(ua_tdx_linux_disable_sept_ve(t, 0, &msg), UA_E_GUEST_PANIC);
    CHECK(strcmp(msg, "TD misconfiguration: SEPT #VE has to be disabled") == 0);
    ua_touch_result tr;
    CHECK_EQ(ua_tdx_linux_touch(t, 0, 0x800000, 0, &tr), UA_OK);
    CHECK(tr.outcome == UA_TOUCH_SERVED && tr.exits == 0);
    CHECK_EQ(ua_tdx_guest_access(t, 0, 0x800000, 0, &a), UA_OK);
    CHECK(a.outcome == UA_TDX_ACCESS_OK && a.data_nonzero);
    /* docs/changes-0.2.md: the touch returns its outcome (0.1 returned
     * UA_E_GUEST_PANIC); the panic is in the fatal record */
    CHECK_EQ(ua_tdx_linux_touch(t, 0, 0x900000, 0, &tr), UA_OK);
    CHECK(tr.outcome == UA_TOUCH_PANIC && tr.vector == UA_TDX_VECTOR_VE && tr.exits == 1);
    ua_fatal f;
    CHECK_EQ(ua_tdx_fatal_get(t, &f), UA_OK);
    CHECK(f.kind == UA_FATAL_PANIC && f.gpa == 0x900000);
    CHECK(strcmp(f.message, "Unexpected EPT-violation on private memory.") == 0);
    ua_tdx_destroy(t);
}

static void test_sparse_64tib(void)
{
    ua_tdx *t = make(64ull << 40, UA_BACKING_2M, UA_TDX_INIT_FREE, 1);
    CHECK(ua_tdx_memory_usage(t) < (1u << 20));
    ua_tdx_path *p = NULL;
    CHECK_EQ(ua_tdx_path_create(t, NULL, &p), UA_OK);
    CHECK_EQ(ua_tdx_accept(p, (64ull << 40) - 2 * M2, 64ull << 40, 0), UA_OK);
    ua_tdx_path_destroy(p);
    ua_tdx_destroy(t);
}

/* RAM that ends inside a 2 MiB region (ua_tdx_create takes any multiple of
 * 4 KiB; the vendor-neutral ua_guest only whole 2 MiB regions) */
static void test_partial_last_region(void)
{
    ua_tdx *t = make(M2 + 16 * K4, UA_BACKING_2M, UA_TDX_INIT_FREE, 1);
    ua_tdx_path *p = NULL;
    CHECK_EQ(ua_tdx_path_create(t, NULL, &p), UA_OK);
    CHECK_EQ(ua_tdx_accept(p, 0, M2 + 16 * K4, 0), UA_OK);
    uint64_t counts[6];
    CHECK_EQ(ua_tdx_count_states(t, 0, M2 + 16 * K4, counts), UA_OK);
    CHECK_EQ(counts[UA_TDX_SEPT_MAPPED], 512 + 16ull);
    ua_path_stats s;
    CHECK_EQ(ua_tdx_path_stats_get(p, &s), UA_OK);
    CHECK_EQ(s.host_aug_4k, 16ull); /* the last region cannot take a 2 MiB page */
    ua_tdx_path_destroy(p);
    ua_tdx_destroy(t);

    /* prefaulted: the VMM AUGed the partial region in 4 KiB pages */
    const uint64_t mem = 3 * M2 + 40 * K4;
    for (uint32_t b = UA_BACKING_2M; b <= UA_BACKING_4K; b++) {
        t = make(mem, b, UA_TDX_INIT_PENDING, 1);
        CHECK_EQ(ua_tdx_count_states(t, 0, mem, counts), UA_OK);
        CHECK_EQ(counts[UA_TDX_SEPT_PENDING], mem / K4);
        CHECK_EQ(ua_tdx_path_create(t, NULL, &p), UA_OK);
        CHECK_EQ(ua_tdx_accept(p, 0, mem, 0), UA_OK);
        CHECK_EQ(ua_tdx_path_stats_get(p, &s), UA_OK);
        CHECK_EQ(s.exits, 0ull);
        CHECK_EQ(ua_tdx_count_states(t, 0, mem, counts), UA_OK);
        CHECK_EQ(counts[UA_TDX_SEPT_MAPPED], mem / K4);
        ua_tdx_entry_info e;
        CHECK_EQ(ua_tdx_entry(t, 3 * M2, 1, &e), UA_OK);
        CHECK_EQ(e.state, (uint32_t)UA_TDX_SEPT_NL_MAPPED);
        CHECK_EQ(ua_tdx_entry(t, 0, 1, &e), UA_OK);
        CHECK_EQ(e.state == UA_TDX_SEPT_MAPPED, b == UA_BACKING_2M);
        ua_tdx_path_destroy(p);
        ua_tdx_destroy(t);
    }
}

/* The hosts (csrc/host.c, tdx_kvm.c) seen from the guest. */
struct counting_host {
    uint32_t exits;
};

static int counting_exit(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                         uint64_t exit_status, uint32_t *action)
{
    ((struct counting_host *)ua_host_ctx(h))->exits++;
    return ua_host_kvm_tdx_exit(h, t, vcpu, gpa, eeq, exit_status, action);
}

static ua_host *host_of(uint32_t behavior, uint32_t count)
{
    ua_host_config hc;
    ua_host_config_default(&hc);
    hc.behavior = behavior;
    hc.count = count;
    ua_host *h = NULL;
    CHECK_EQ(ua_host_create(&hc, NULL, NULL, &h), UA_OK);
    return h;
}

static void test_hosts(void)
{
    ua_host_config hc;
    ua_host_config_default(&hc);
    ua_host *h = NULL;
    hc.count = 3; /* count belongs to map-gpa-stall */
    CHECK_EQ(ua_host_create(&hc, NULL, NULL, &h), UA_E_INVAL);
    CHECK_EQ(ua_host_behavior_find("never-resolve"), UA_HOST_NEVER_RESOLVE);
    CHECK(strcmp(ua_host_behavior_name(UA_HOST_AUG_4K), "aug-4k") == 0);

    /* never-resolve: an ACCEPT whose EPT violation is never served is
     * re-executed into the same exit (TDX module tdg_mem_page_accept.c: the
     * TD exit leaves RIP on the TDCALL); after hang_limit exits the guest
     * counts as hung (docs/changes-0.2.md) */
    ua_tdx *t = make(G1, UA_BACKING_2M, UA_TDX_INIT_FREE, 1);
    ua_host *never = host_of(UA_HOST_NEVER_RESOLVE, 0);
    CHECK_EQ(ua_tdx_set_host(t, never), UA_OK);
    ua_tdx_path *p = NULL;
    ua_path_options o = {.kind = UA_PATH_LINUX, .hang_limit = 5};
    CHECK_EQ(ua_tdx_path_create(t, &o, &p), UA_OK);
    CHECK_EQ(ua_tdx_accept(p, 0, M2, 0), UA_E_GUEST_HUNG);
    ua_path_stats s;
    CHECK_EQ(ua_tdx_path_stats_get(p, &s), UA_OK);
    CHECK(s.exits == 5 && s.executions == 5 && s.failures == 1 && s.host_aug_2m == 0);
    ua_fatal f;
    CHECK_EQ(ua_tdx_fatal_get(t, &f), UA_OK);
    CHECK(f.kind == UA_FATAL_HUNG && f.gpa == 0);
    /* the host-priority timeout is not an EPT violation: the SEAMCALL that
     * holds priority still finishes (as 0.1's VMM_REFUSE served it) */
    uint32_t action = 99;
    CHECK_EQ(ua_tdx_serve_exit(t, 0, 3 * M2, 0, UA_TDX_HOST_PRIORITY_BUSY_TIMEOUT, &action),
             UA_OK);
    CHECK_EQ(action, UA_HOST_DID_RELEASE_HP);
    CHECK_EQ(ua_tdx_serve_exit(t, 0, 3 * M2, 0, 0, &action), UA_OK);
    CHECK_EQ(action, UA_HOST_DID_NOTHING);
    ua_tdx_path_destroy(p);

    /* aug-4k with 2 MiB backing: the 2 MiB ACCEPT gets a 4 KiB page, so the
     * re-execution answers PAGE_SIZE_MISMATCH and Linux (tdx-shared.c
     * try_accept_one) goes on with 512 x 4 KiB */
    ua_tdx_fatal_clear(t);
    ua_host *aug4k = host_of(UA_HOST_AUG_4K, 0);
    CHECK_EQ(ua_tdx_set_host(t, aug4k), UA_OK);
    CHECK_EQ(ua_tdx_path_create(t, NULL, &p), UA_OK);
    CHECK_EQ(ua_tdx_accept(p, 4 * M2, 5 * M2, 0), UA_OK);
    CHECK_EQ(ua_tdx_path_stats_get(p, &s), UA_OK);
    CHECK(s.accept_2m == 1 && s.size_mismatch == 1 && s.accept_4k == 512);
    CHECK(s.host_aug_4k == 512 && s.host_aug_2m == 0 && s.success_4k == 512);
    ua_tdx_path_destroy(p);

    /* map-gpa-stall / map-gpa-refuse: KVM's MapGPA answers replaced
     * (Linux arch/x86/coco/tdx/tdx.c tdx_map_gpa gives up after 3 RETRYs
     * without progress) */
    ua_host *stall = host_of(UA_HOST_MAP_GPA_STALL, 3);
    CHECK_EQ(ua_tdx_set_host(t, stall), UA_OK);
    uint64_t r10 = 0;
    CHECK_EQ(ua_tdx_linux_map_gpa(t, 0, 8 * M2, 9 * M2, 1, &r10), UA_E_HOST);
    CHECK_EQ(r10, UA_TDX_VMCALL_RETRY);
    CHECK_EQ(ua_tdx_linux_map_gpa(t, 0, 8 * M2, 9 * M2, 1, &r10), UA_OK); /* used up */
    ua_host *refuse = host_of(UA_HOST_MAP_GPA_REFUSE, 0);
    CHECK_EQ(ua_tdx_set_host(t, refuse), UA_OK);
    CHECK_EQ(ua_tdx_linux_map_gpa(t, 0, 8 * M2, 9 * M2, 0, &r10), UA_E_HOST);
    CHECK_EQ(r10, UA_TDX_VMCALL_INVALID_OPERAND);

    /* a host written in C: its entry runs for every exit, ctx handed back */
    struct counting_host ctx = {0};
    ua_host_ops ops;
    memset(&ops, 0, sizeof(ops));
    ops.tdx_exit = counting_exit;
    ua_host *mine = NULL;
    CHECK_EQ(ua_host_create(NULL, &ops, &ctx, &mine), UA_OK);
    CHECK_EQ(ua_tdx_set_host(t, mine), UA_OK);
    CHECK_EQ(ua_tdx_path_create(t, NULL, &p), UA_OK);
    CHECK_EQ(ua_tdx_accept(p, 10 * M2, 12 * M2, 0), UA_OK);
    CHECK_EQ(ua_tdx_path_stats_get(p, &s), UA_OK);
    CHECK(ctx.exits == 2 && s.exits == 2 && s.host_aug_2m == 2);
    ua_tdx_path_destroy(p);

    CHECK_EQ(ua_tdx_set_host(t, NULL), UA_OK); /* back to the built-in KVM */
    ua_tdx_destroy(t);
    ua_host_destroy(never);
    ua_host_destroy(aug4k);
    ua_host_destroy(stall);
    ua_host_destroy(refuse);
    ua_host_destroy(mine);
}

int main(void)
{
    test_config_errors();
    test_accept_statuses();
    test_host_ops();
    test_linux_path_counts();
    test_interrupted_accept();
    test_access_and_ve();
    test_map_gpa();
    test_threads();
    test_launch_and_linux_policy();
    test_sparse_64tib();
    test_partial_last_region();
    test_hosts();
    return ua_test_report("test_tdx");
}
