/*
 * guest_demo.c - drive an SEV-SNP guest and a TDX guest through the one
 * vendor-neutral interface (ua_guest), then plug in a host of our own.
 *
 * Build against an installed library:
 *   make -C csrc install PREFIX=$HOME/.local
 *   cc guest_demo.c $(PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig \
 *        pkg-config --cflags --libs --static unaccepted) -o guest_demo
 *
 * For each vendor: a 16 GiB guest whose memory above 4 GiB is unaccepted
 * (a one-descriptor EFI map), the EFI stub's table, the kernel's
 * accept_memory() over 1 GiB through the guest's Linux accept path, a touch
 * before and after, and the path statistics and simulated time.  Then a TDX
 * guest served by a host that never maps a page: the accept hangs.
 */
#include <stdio.h>
#include <string.h>

#include "unaccepted.h"

#define GIB (1ull << 30)

static const char *outcome_name(uint32_t o)
{
    static const char *const names[] = {"served", "served after exits", "guest fault",
                                        "terminated", "panic", "hung"};
    return o < sizeof(names) / sizeof(names[0]) ? names[o] : "?";
}

static int run(uint32_t vendor, const char *name, const char *profile_name)
{
    ua_cost_profile profile;
    if (ua_cost_profile_find(profile_name, &profile))
        return 1;
    ua_guest_config cfg = {0};
    cfg.vendor = vendor;
    cfg.vcpus = 4;
    cfg.memory_bytes = 16 * GIB;
    cfg.backing = UA_BACKING_4K;
    cfg.cost_profile = &profile;
    ua_guest *g;
    ua_status st = ua_guest_create(&cfg, &g);
    if (st) {
        fprintf(stderr, "%s: %s\n", name, ua_strerror(st));
        return 1;
    }

    /* the firmware's map: RAM below 4 GiB accepted, the rest type 15 */
    ua_mem_desc map[2] = {
        {.type = 7, .phys_start = 0, .num_pages = (4 * GIB) / UA_PAGE_SIZE},
        {.type = UA_EFI_UNACCEPTED_MEMORY, .phys_start = 4 * GIB,
         .num_pages = (12 * GIB) / UA_PAGE_SIZE},
    };
    ua_table *t;
    if ((st = ua_table_from_memmap(map, 2, UA_DEFAULT_UNIT_SIZE, &t)))
        return 1;
    size_t n_out;
    ua_range immediate[8];
    if ((st = ua_table_process_memmap(t, map, 2, NULL, NULL, 0, immediate, 8, &n_out)))
        return 1;

    ua_accept_fn fn;
    void *ctx;
    ua_guest_accept_path(g, UA_PATH_LINUX, &fn, &ctx);
    ua_table_set_accept(t, fn, ctx);

    ua_accept_result r = {0};
    st = ua_accept_memory(t, 5 * GIB, GIB, 1, &r);
    ua_touch_result accepted_page, unaccepted_page;
    ua_guest_touch(g, 1, 5 * GIB, 0, &accepted_page);
    /* last: a kernel touch of memory nobody accepted is fatal on both vendors */
    ua_guest_touch(g, 1, 12 * GIB, 0, &unaccepted_page);

    ua_path_stats ps;
    ua_guest_path_stats_get(g, UA_PATH_LINUX, &ps);
    uint64_t accepted;
    ua_guest_count_accepted(g, 0, cfg.memory_bytes, &accepted);
    printf("%s: accept_memory: %s, %llu units in %llu calls; %llu MiB accepted\n", name,
           ua_strerror(st), (unsigned long long)r.units, (unsigned long long)r.runs,
           (unsigned long long)(accepted * UA_PAGE_SIZE >> 20));
    printf("%s: 4K accepts %llu, 2M accepts %llu, exits %llu, simulated %.3f ms on vCPU 1\n",
           name, (unsigned long long)ps.accept_4k, (unsigned long long)ps.accept_2m,
           (unsigned long long)ps.exits, ua_cost_seconds(ua_guest_cost(g), 1) * 1e3);
    ua_fatal f;
    ua_guest_fatal_get(g, &f);
    printf("%s: touch of an accepted page: %s; of an unaccepted one: %s (%s)\n", name,
           outcome_name(accepted_page.outcome), outcome_name(unaccepted_page.outcome), f.message);
    ua_table_destroy(t);
    ua_guest_destroy(g);
    return st != UA_OK;
}

/* A host written in C: KVM for everything but EPT violations, which it
 * leaves unserved, so an ACCEPT exits again and again. */
static int never_aug(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                     uint64_t exit_status, uint32_t *action)
{
    (void)t, (void)vcpu, (void)gpa, (void)eeq, (void)exit_status;
    ++*(unsigned *)ua_host_ctx(h);
    *action = UA_HOST_DID_NOTHING;
    return UA_OK;
}

static int run_custom_host(void)
{
    unsigned exits = 0;
    ua_host_ops ops;
    memset(&ops, 0, sizeof(ops));
    ops.tdx_exit = never_aug;
    ua_host *h;
    if (ua_host_create(NULL, &ops, &exits, &h))
        return 1;
    ua_guest_config cfg = {0};
    cfg.vendor = UA_VENDOR_TDX;
    cfg.vcpus = 1;
    cfg.memory_bytes = GIB;
    cfg.host = h;
    ua_guest *g;
    if (ua_guest_create(&cfg, &g))
        return 1;
    ua_accept_fn fn;
    void *ctx;
    ua_guest_accept_path(g, UA_PATH_LINUX, &fn, &ctx);
    int st = fn(ctx, 0, UA_SIZE_2M, 0);
    ua_fatal f;
    ua_guest_fatal_get(g, &f);
    printf("never-aug host: %s after %u unserved exits (fatal kind %u: %s)\n", ua_strerror(st),
           exits, f.kind, f.message);
    ua_guest_destroy(g);
    ua_host_destroy(h);
    return st != UA_E_GUEST_HUNG;
}

int main(void)
{
    printf("libunaccepted %s\n", ua_version_string());
    int bad = run(UA_VENDOR_SNP, "SNP", "snp-epyc-kvm");
    bad |= run(UA_VENDOR_TDX, "TDX", "tdx-spr-kvm");
    bad |= run_custom_host();
    return bad;
}
