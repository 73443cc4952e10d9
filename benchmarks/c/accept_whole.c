/*
 * accept_whole.c - accept a whole guest through the Linux path, in C, for
 * before/after comparisons that need no Python: wall time (best of N) or,
 * under callgrind, the instruction count, which is repeatable on a shared
 * machine.  Builds against 0.1 and 0.2 of the library (the guest interface
 * changed between them; both branches do the same work).
 *
 *   make -C csrc BUILD=/tmp/ua
 *   cc -O2 -Icsrc/include benchmarks/c/accept_whole.c /tmp/ua/libunaccepted.a -pthread -o accept_whole
 *   ./accept_whole snp|tdx 2M|4K GiB [rounds]
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null ./accept_whole tdx 4K 1 1
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unaccepted.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* One accept of [0, mem): returns the seconds it took, < 0 on failure. */
static double accept_snp(uint64_t mem, int backing_4k)
{
    ua_snp_config c;
    memset(&c, 0, sizeof(c));
    c.memory_bytes = mem;
    c.asid = 1;
#if UA_VERSION_MINOR >= 2
    c.vcpus = 1;
    c.backing = backing_4k ? UA_BACKING_4K : UA_BACKING_2M;
#else
    c.nvcpus = 1;
#endif
    ua_snp *s;
    ua_snp_path *p;
    if (ua_snp_create(&c, &s) || ua_snp_path_create(s, NULL, &p))
        return -1;
#if UA_VERSION_MINOR < 2
    ua_snp_host_policy pol;
    memset(&pol, 0, sizeof(pol));
    pol.backing = backing_4k ? UA_SNP_BACKING_4K : UA_SNP_BACKING_2M;
    pol.npf_psmash = 1;
    ua_snp_set_host_policy(s, &pol);
#endif
    double t0 = now();
    int st = ua_snp_accept(p, 0, mem, 0);
    double dt = now() - t0;
    ua_snp_path_destroy(p);
    ua_snp_destroy(s);
    return st ? -1 : dt;
}

static double accept_tdx(uint64_t mem, int backing_4k)
{
    ua_tdx_config c;
    ua_tdx_config_default(&c);
    c.memory_bytes = mem;
#if UA_VERSION_MINOR >= 2
    c.backing = backing_4k ? UA_BACKING_4K : UA_BACKING_2M;
    ua_path_options o = {UA_PATH_LINUX, 0, 0, 0};
#else
    c.backing = backing_4k ? UA_TDX_LEVEL_4K : UA_TDX_LEVEL_2M;
#endif
    ua_tdx *t;
    ua_tdx_path *p;
    if (ua_tdx_create(&c, &t))
        return -1;
#if UA_VERSION_MINOR >= 2
    if (ua_tdx_path_create(t, &o, &p))
        return -1;
    double t0 = now();
    int st = ua_tdx_accept(p, 0, mem, 0);
#else
    if (ua_tdx_path_create(t, UA_TDX_PATH_LINUX, &p))
        return -1;
    double t0 = now();
    int st = ua_tdx_accept_linux(p, 0, mem, 0);
#endif
    double dt = now() - t0;
    ua_tdx_path_destroy(p);
    ua_tdx_destroy(t);
    return st ? -1 : dt;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s snp|tdx 2M|4K GiB [rounds]\n", argv[0]);
        return 2;
    }
    int tdx = !strcmp(argv[1], "tdx"), backing_4k = !strcmp(argv[2], "4K");
    uint64_t mem = strtoull(argv[3], NULL, 10) << 30;
    int rounds = argc > 4 ? atoi(argv[4]) : 3;
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        double dt = tdx ? accept_tdx(mem, backing_4k) : accept_snp(mem, backing_4k);
        if (dt < 0) {
            fprintf(stderr, "accept failed\n");
            return 1;
        }
        if (dt < best)
            best = dt;
    }
    printf("%s %s %s GiB: best of %d %.2f ms (libunaccepted %s)\n", argv[1], argv[2], argv[3],
           rounds, best * 1e3, ua_version_string());
    return 0;
}
