/* C unit tests of the vendor-neutral guest (ua_guest) and the pluggable
 * host (ua_host): the same calls on both vendors, named behaviours, a host
 * written in C, argument checks, and threads on disjoint ranges. */
#include <pthread.h>
#include <string.h>

#include "unaccepted.h"
#include "ua_test.h"

#define M2 (2ull << 20)
#define MEM (256ull << 20)

static ua_guest *make(uint32_t vendor, uint32_t backing, ua_host *host, uint32_t vcpus)
{
    ua_guest_config cfg = {0};
    cfg.vendor = vendor;
    cfg.vcpus = vcpus;
    cfg.memory_bytes = MEM;
    cfg.backing = backing;
    cfg.host = host;
    ua_guest *g = NULL;
    CHECK_EQ(ua_guest_create(&cfg, &g), UA_OK);
    return g;
}

static int accept(ua_guest *g, uint32_t kind, uint64_t start, uint64_t end, uint32_t vcpu)
{
    ua_accept_fn fn;
    void *ctx;
    CHECK_EQ(ua_guest_accept_path(g, kind, &fn, &ctx), UA_OK);
    return fn(ctx, start, end, vcpu);
}

static uint64_t accepted(ua_guest *g)
{
    uint64_t n = ~0ull;
    CHECK_EQ(ua_guest_count_accepted(g, 0, MEM, &n), UA_OK);
    return n;
}

static void test_same_verbs_both_vendors(void)
{
    for (uint32_t v = UA_VENDOR_SNP; v <= UA_VENDOR_TDX; v++) {
        for (uint32_t kind = 0; kind < UA_PATH_KIND_COUNT; kind++) {
            ua_guest *g = make(v, UA_BACKING_4K, NULL, 1);
            CHECK_EQ(ua_guest_snp(g) != NULL, v == UA_VENDOR_SNP);
            CHECK_EQ(ua_guest_tdx(g) != NULL, v == UA_VENDOR_TDX);
            CHECK(ua_guest_cost(g) == NULL && ua_guest_host(g) == NULL);
            CHECK_EQ(accept(g, kind, 0, 2 * M2 + 4096, 0), UA_OK);
            CHECK_EQ(accepted(g), (2 * M2 + 4096) / 4096);
            ua_path_stats st;
            CHECK_EQ(ua_guest_path_stats_get(g, kind, &st), UA_OK);
            CHECK(st.calls == 1 && st.failures == 0 && st.bytes == 2 * M2 + 4096);
            CHECK(st.exits > 0);
            ua_touch_result r;
            CHECK_EQ(ua_guest_touch(g, 0, 4096, UA_TOUCH_WRITE, &r), UA_OK);
            CHECK_EQ(r.outcome, UA_TOUCH_SERVED);
            CHECK_EQ(ua_guest_unaccept(g, kind, 0, M2, 0), UA_OK);
            CHECK_EQ(accepted(g), (M2 + 4096) / 4096);
            ua_fatal f;
            CHECK_EQ(ua_guest_fatal_get(g, &f), UA_OK);
            CHECK_EQ(f.kind, UA_FATAL_NONE);
            CHECK_EQ(ua_guest_path_stats_reset(g, kind), UA_OK);
            CHECK_EQ(ua_guest_path_stats_get(g, kind, &st), UA_OK);
            CHECK_EQ(st.calls, 0u);
            ua_guest_destroy(g);
        }
    }
}

static void test_double_accept_is_fatal(void)
{
    /* SNP: CF=1 -> Linux terminates with GHCB_TERM_PVALIDATE (set 1, code 2);
     * TDX: PAGE_ALREADY_ACCEPTED -> tdx_accept_memory fails -> panic */
    ua_guest *s = make(UA_VENDOR_SNP, UA_BACKING_2M, NULL, 1);
    ua_guest *t = make(UA_VENDOR_TDX, UA_BACKING_2M, NULL, 1);
    CHECK_EQ(accept(s, UA_PATH_LINUX, 0, M2, 0), UA_OK);
    CHECK_EQ(accept(s, UA_PATH_LINUX, 0, M2, 0), UA_E_GUEST_TERMINATED);
    CHECK_EQ(accept(t, UA_PATH_LINUX, 0, M2, 0), UA_OK);
    CHECK_EQ(accept(t, UA_PATH_LINUX, 0, M2, 0), UA_E_GUEST_PANIC);
    ua_fatal f;
    ua_guest_fatal_get(s, &f);
    CHECK(f.kind == UA_FATAL_TERMINATED && f.reason_set == 1 && f.reason_code == 2);
    CHECK(f.code == (0x100 | (1 << 12) | (2 << 16)) && f.eax == 255);
    ua_guest_fatal_get(t, &f);
    CHECK(f.kind == UA_FATAL_PANIC && !strcmp(f.message, "TDX: Failed to accept memory"));
    /* a dead guest runs nothing; clearing the record revives it */
    CHECK_EQ(accept(t, UA_PATH_LINUX, 4 * M2, 5 * M2, 0), UA_E_GUEST_PANIC);
    ua_guest_fatal_clear(t);
    CHECK_EQ(accept(t, UA_PATH_LINUX, 4 * M2, 5 * M2, 0), UA_OK);
    ua_guest_destroy(s);
    ua_guest_destroy(t);
}

static void test_behaviours(void)
{
    CHECK_EQ(ua_host_behavior_find("kvm"), UA_HOST_KVM);
    CHECK_EQ(ua_host_behavior_find("never-resolve"), UA_HOST_NEVER_RESOLVE);
    CHECK_EQ(ua_host_behavior_find("nope"), -1);
    CHECK_EQ(ua_host_behavior_find(NULL), -1);
    CHECK(!strcmp(ua_host_behavior_name(UA_HOST_PSC_STALL), "psc-stall"));
    CHECK(!strcmp(ua_host_behavior_name(99), ""));
    for (int b = 0; b < UA_HOST_BEHAVIOR_COUNT; b++)
        CHECK_EQ(ua_host_behavior_find(ua_host_behavior_name(b)), b);

    ua_host_config c;
    ua_host *h = NULL;
    ua_host_config_default(&c);
    c.behavior = UA_HOST_GHCB_ERROR;             /* needs its code */
    CHECK_EQ(ua_host_create(&c, NULL, NULL, &h), UA_E_INVAL);
    CHECK(h == NULL);
    c.ghcb_error = 7;                            /* codes are 1-6 */
    CHECK_EQ(ua_host_create(&c, NULL, NULL, &h), UA_E_INVAL);
    ua_host_config_default(&c);
    c.psc_max_entries = 3;                       /* limits belong to psc-partial */
    CHECK_EQ(ua_host_create(&c, NULL, NULL, &h), UA_E_INVAL);
    c.behavior = UA_HOST_BEHAVIOR_COUNT;
    CHECK_EQ(ua_host_create(&c, NULL, NULL, &h), UA_E_INVAL);
    ua_host_config_default(&c);
    c.reserved = 1;
    CHECK_EQ(ua_host_create(&c, NULL, NULL, &h), UA_E_INVAL);

    /* never-resolve hangs both vendors */
    ua_host_config_default(&c);
    c.behavior = UA_HOST_NEVER_RESOLVE;
    CHECK_EQ(ua_host_create(&c, NULL, NULL, &h), UA_OK);
    ua_host_config back;
    CHECK_EQ(ua_host_config_get(h, &back), UA_OK);
    CHECK_EQ(back.behavior, UA_HOST_NEVER_RESOLVE);
    for (uint32_t v = UA_VENDOR_SNP; v <= UA_VENDOR_TDX; v++) {
        ua_guest *g = make(v, UA_BACKING_2M, h, 1);
        CHECK(ua_guest_host(g) == h);
        CHECK_EQ(accept(g, UA_PATH_LINUX, 0, M2, 0), UA_E_GUEST_HUNG);
        ua_fatal f;
        ua_guest_fatal_get(g, &f);
        CHECK_EQ(f.kind, UA_FATAL_HUNG);
        CHECK_EQ(accepted(g), 0u);
        ua_guest_destroy(g);
    }
    ua_host_destroy(h);
}

/* A host written in C: counts SNP Page State Changes, lets KVM serve them,
 * then reports an error for every one after the first two. */
struct counting {
    unsigned psc;
};

static int counting_psc(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                        uint32_t cap, ua_snp_ghcb_result *out)
{
    struct counting *c = ua_host_ctx(h);
    int st = ua_host_kvm_snp_psc(h, s, vcpu, hdr, ent, cap, out);
    if (++c->psc > 2)
        out->sw_exitinfo2 = UA_SNP_PSC_ERROR_GENERIC;
    return st;
}

static void test_host_in_c(void)
{
    struct counting c = {0};
    ua_host_ops ops;
    memset(&ops, 0, sizeof(ops));
    ops.snp_psc = counting_psc;
    ua_host *h;
    CHECK_EQ(ua_host_create(NULL, &ops, &c, &h), UA_OK);
    CHECK(ua_host_ctx(h) == &c);
    ua_guest *g = make(UA_VENDOR_SNP, UA_BACKING_2M, h, 1);
    /* 64 entries of 2 MiB per descriptor: 128 MiB per PSC */
    CHECK_EQ(accept(g, UA_PATH_LINUX, 0, 128ull << 20, 0), UA_OK);
    CHECK_EQ(accept(g, UA_PATH_LINUX, 128ull << 20, 192ull << 20, 0), UA_OK);
    CHECK_EQ(accept(g, UA_PATH_LINUX, 192ull << 20, MEM, 0), UA_E_GUEST_TERMINATED);
    ua_fatal f;
    ua_guest_fatal_get(g, &f);
    CHECK(f.reason_set == 1 && f.reason_code == 1 && f.info == UA_SNP_PSC_ERROR_GENERIC);
    CHECK_EQ(c.psc, 3u);
    ua_guest_destroy(g);
    ua_host_destroy(h);
}

/* New options reconfigure the path in place: a table that installed it
 * keeps a valid primitive (run under ASan in CI). */
static void test_options_in_place(void)
{
    for (uint32_t v = UA_VENDOR_SNP; v <= UA_VENDOR_TDX; v++) {
        ua_guest *g = make(v, UA_BACKING_2M, NULL, 1);
        ua_table *t;
        CHECK_EQ(ua_table_create(UA_DEFAULT_UNIT_SIZE, 0, MEM / M2 / 8, &t), UA_OK);
        CHECK_EQ(ua_table_mark(t, 0, MEM / M2, 1), UA_OK);
        ua_accept_fn fn;
        void *ctx;
        CHECK_EQ(ua_guest_accept_path(g, UA_PATH_LINUX, &fn, &ctx), UA_OK);
        CHECK_EQ(ua_table_set_accept(t, fn, ctx), UA_OK);
        CHECK_EQ(ua_accept_memory(t, 0, M2, 0, NULL), UA_OK);
        ua_path_options o = {.kind = UA_PATH_LINUX, .hang_limit = 7};
        CHECK_EQ(ua_guest_set_path_options(g, &o), UA_OK);
        void *ctx2;
        CHECK_EQ(ua_guest_accept_path(g, UA_PATH_LINUX, &fn, &ctx2), UA_OK);
        CHECK(ctx2 == ctx);
        ua_path_stats st;
        ua_guest_path_stats_get(g, UA_PATH_LINUX, &st);
        CHECK_EQ(st.calls, 0u);                  /* statistics restart */
        CHECK_EQ(ua_accept_memory(t, 8 * M2, M2, 0, NULL), UA_OK);
        ua_guest_path_stats_get(g, UA_PATH_LINUX, &st);
        CHECK_EQ(st.calls, 1u);
        CHECK_EQ(accepted(g), 4 * M2 / 4096);    /* two units, each with its guard unit */
        ua_table_destroy(t);
        ua_guest_destroy(g);
    }
}

static void test_bad_arguments(void)
{
    ua_guest_config cfg = {0};
    ua_guest *g = (ua_guest *)&cfg;
    cfg.vendor = 2;
    cfg.vcpus = 1;
    cfg.memory_bytes = MEM;
    CHECK_EQ(ua_guest_create(&cfg, &g), UA_E_INVAL);
    CHECK(g == NULL);
    cfg.vendor = UA_VENDOR_SNP;
    cfg.memory_bytes = MEM + 4096;               /* SNP: a multiple of 2 MiB */
    CHECK_EQ(ua_guest_create(&cfg, &g), UA_E_ALIGN);
    cfg.memory_bytes = MEM + 100;                /* any vendor: a multiple of 4 KiB */
    cfg.vendor = UA_VENDOR_TDX;
    CHECK_EQ(ua_guest_create(&cfg, &g), UA_E_ALIGN);
    cfg.memory_bytes = MEM + 4096;               /* TDX: RAM may end inside a 2 MiB region */
    CHECK_EQ(ua_guest_create(&cfg, &g), UA_OK);
    ua_guest_destroy(g);
    g = NULL;
    cfg.memory_bytes = MEM;
    cfg.vcpus = 0;
    CHECK_EQ(ua_guest_create(&cfg, &g), UA_E_VCPU);
    cfg.vcpus = 1;
    cfg.backing = 2;
    CHECK_EQ(ua_guest_create(&cfg, &g), UA_E_INVAL);
    CHECK_EQ(ua_guest_create(NULL, &g), UA_E_INVAL);
    ua_guest_destroy(NULL);
    ua_host_destroy(NULL);

    g = make(UA_VENDOR_SNP, UA_BACKING_2M, NULL, 2);
    ua_accept_fn fn;
    void *ctx;
    CHECK_EQ(ua_guest_accept_path(g, UA_PATH_KIND_COUNT, &fn, &ctx), UA_E_INVAL);
    CHECK_EQ(accept(g, UA_PATH_LINUX, 0, M2, 2), UA_E_VCPU);
    CHECK_EQ(accept(g, UA_PATH_LINUX, 0, 4095, 0), UA_E_ALIGN);
    ua_touch_result r;
    CHECK_EQ(ua_guest_touch(g, 0, 0, 0x80, &r), UA_E_INVAL);
    ua_path_options o = {.kind = UA_PATH_LINUX, .psc_max_entries = 254};
    CHECK_EQ(ua_guest_set_path_options(g, &o), UA_E_INVAL);
    CHECK_EQ(accepted(g), 0u);
    ua_guest_destroy(g);

    g = make(UA_VENDOR_TDX, UA_BACKING_2M, NULL, 1);
    o.psc_max_entries = 4;                       /* SNP fields must be 0 on TDX */
    CHECK_EQ(ua_guest_set_path_options(g, &o), UA_E_INVAL);
    CHECK_EQ(accept(g, UA_PATH_LINUX, MEM - M2, MEM + M2, 0), UA_E_RANGE); /* past RAM */
    CHECK_EQ(accepted(g), 0u);
    /* the public host entry points check their arguments */
    uint32_t action;
    ua_tdx_vmcall_result vr;
    CHECK_EQ(ua_host_kvm_snp_npf(NULL, NULL, 0, 0, 0, &action), UA_E_INVAL);
    CHECK_EQ(ua_host_behavior_tdx_exit(NULL, ua_guest_tdx(g), 0, 0, 0, 0, &action), UA_E_INVAL);
    CHECK_EQ(ua_host_kvm_tdx_vmcall(NULL, ua_guest_tdx(g), 5, 0, UA_TDX_VMCALL_MAP_GPA, 0, 4096,
                                    &vr), UA_E_VCPU);
    CHECK_EQ(ua_host_kvm_tdx_exit(NULL, ua_guest_tdx(g), 0, 0, 0, 0, NULL), UA_E_INVAL);
    /* a host set after creation is the one reported */
    ua_host_config hc;
    ua_host_config_default(&hc);
    hc.behavior = UA_HOST_AUG_4K;
    ua_host *h;
    CHECK_EQ(ua_host_create(&hc, NULL, NULL, &h), UA_OK);
    CHECK(ua_guest_host(g) == NULL);
    CHECK_EQ(ua_guest_set_host(g, h), UA_OK);
    ua_guest_config back;
    CHECK_EQ(ua_guest_config_get(g, &back), UA_OK);
    CHECK(ua_guest_host(g) == h && back.host == h);
    CHECK_EQ(accept(g, UA_PATH_LINUX, 0, M2, 0), UA_OK);
    ua_path_stats st;
    ua_guest_path_stats_get(g, UA_PATH_LINUX, &st);
    CHECK_EQ(st.host_aug_4k, 512u);              /* aug-4k served the 2 MiB accept */
    CHECK_EQ(ua_guest_set_host(g, NULL), UA_OK);
    CHECK(ua_guest_host(g) == NULL);
    ua_guest_destroy(g);
    ua_host_destroy(h);
}

struct job {
    ua_accept_fn fn;
    void *ctx;
    uint32_t vcpu;
    int rc;
};

/* no CHECK in here: the harness's counters are not thread-safe */
static void *accept_half(void *arg)
{
    struct job *j = arg;
    uint64_t half = MEM / 2;
    j->rc = j->fn(j->ctx, j->vcpu * half, (j->vcpu + 1) * half, j->vcpu);
    return NULL;
}

static void test_threads(void)
{
    for (uint32_t v = UA_VENDOR_SNP; v <= UA_VENDOR_TDX; v++) {
        ua_guest *g = make(v, UA_BACKING_4K, NULL, 2);
        pthread_t th[2];
        ua_accept_fn fn;
        void *ctx;
        CHECK_EQ(ua_guest_accept_path(g, UA_PATH_LINUX, &fn, &ctx), UA_OK);
        struct job jobs[2] = {{fn, ctx, 0, -1}, {fn, ctx, 1, -1}};
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, accept_half, &jobs[i]);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        CHECK(jobs[0].rc == UA_OK && jobs[1].rc == UA_OK);
        CHECK_EQ(accepted(g), MEM / 4096);
        ua_guest_destroy(g);
    }
}

int main(void)
{
    test_same_verbs_both_vendors();
    test_double_accept_is_fatal();
    test_behaviours();
    test_host_in_c();
    test_options_in_place();
    test_bad_arguments();
    test_threads();
    return ua_test_report("test_guest");
}
