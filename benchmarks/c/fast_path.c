/*
 * fast_path.c - the batch fast path of the library (ua_run_ops over accept or
 * contains ops whose ranges are already accepted) beside a bare hand-written
 * C loop doing the same Linux bitmap work over the same ops and the same
 * bitmap words.  Prints ns per op for both and their ratio.
 *
 *   make -C csrc BUILD=/tmp/ua bench
 *   /tmp/ua/bench/fast_path [reps]        # default 11
 *
 * One rep takes 5 samples of a few hundred batches of each implementation,
 * interleaved, and keeps the best of each; the figures printed are the
 * median and [min, max] over the reps of each, and the median and [min,
 * max] of the per-rep ratios.
 *
 * Built with -DUA_BENCH_LIBRARY -shared -fPIC (no main; see
 * benchmarks/cbench.py) the bare loops are the `bare-c` baseline of
 * benchmarks/bench_core.py.
 *
 * The bare loop is written from the semantics of Linux's accept_memory()
 * and range_contains_unaccepted_memory() (drivers/firmware/efi/
 * unaccepted_memory.c): page-align (accept only), clamp to the table's
 * coverage, add the guard unit when the end is unit aligned, then test
 * whether any bit of the unit range is set.  It is what a C programmer
 * would write for a table whose ranges are known to be sane: 64-bit
 * arithmetic, no overflow or argument checks, no op kinds, no cancel flag,
 * no results, no locking (nothing to accept: an accept whose units are all
 * clear returns before the lock in Linux too).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stddef.h>

#include "unaccepted.h"

#define BARE_PAGE 4096ull

/* Any bit of [first, last) set?  first < last. */
static inline int bare_any(const uint64_t *w, uint64_t first, uint64_t last)
{
    uint64_t fw = first / 64, lw = (last - 1) / 64;
    uint64_t lo = ~0ull << (first % 64), hi = ~0ull >> (63 - (last - 1) % 64);
    if (fw == lw)
        return (w[fw] & lo & hi) != 0;
    uint64_t acc = (w[fw] & lo) | (w[lw] & hi);
    for (uint64_t i = fw + 1; i < lw; i++)
        acc |= w[i];
    return acc != 0;
}

/* accept_memory() over n ops: the number of ops that found something to
 * accept (0 when the whole range is already accepted).  Out of line, as
 * ua_run_ops is: the compiler cannot specialise either for the call site. */
__attribute__((noinline)) uint64_t bare_accept_ops(const uint64_t *words, uint64_t nbits, uint64_t phys_base,
                         unsigned unit_shift, const ua_op *ops, size_t n)
{
    uint64_t unit = 1ull << unit_shift, cov = nbits << unit_shift, todo = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t start = ops[i].start & ~(BARE_PAGE - 1);
        uint64_t end = (ops[i].start + ops[i].size + BARE_PAGE - 1) & ~(BARE_PAGE - 1);
        if (end < phys_base)
            continue;
        if (start < phys_base)
            start = phys_base;
        start -= phys_base;
        end -= phys_base;
        if ((end & (unit - 1)) == 0)
            end += unit;                 /* guard unit */
        if (end > cov)
            end = cov;
        uint64_t first = start >> unit_shift, last = (end + unit - 1) >> unit_shift;
        if (first < last)
            todo += (uint64_t)bare_any(words, first, last);
    }
    return todo;
}

/* range_contains_unaccepted_memory() over n ops: how many answered yes. */
__attribute__((noinline)) uint64_t bare_contains_ops(const uint64_t *words, uint64_t nbits, uint64_t phys_base,
                           unsigned unit_shift, const ua_op *ops, size_t n)
{
    uint64_t unit = 1ull << unit_shift, cov = nbits << unit_shift, yes = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t start = ops[i].start, end = ops[i].start + ops[i].size;
        if (end < phys_base)
            continue;
        if (start < phys_base)
            start = phys_base;
        start -= phys_base;
        end -= phys_base;
        if ((end & (unit - 1)) == 0)
            end += unit;
        if (end > cov)
            end = cov;
        if (start >= end)
            continue;
        /* Linux tests one bit per unit step from start: consecutive bits */
        uint64_t first = start >> unit_shift;
        uint64_t count = (end - start + unit - 1) >> unit_shift;
        yes += (uint64_t)bare_any(words, first, first + count);
    }
    return yes;
}

#ifndef UA_BENCH_LIBRARY
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BATCH 4096
#define UNIT_SHIFT 21                    /* 2 MiB units */
#define UNITS (1ull << 21)               /* 4 TiB: a 256 KiB bitmap */
#define SAMPLES 5
#define MAX_REPS 64

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)                /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct ctx {
    ua_table *t;
    const uint64_t *words;
    /* the geometry as the bare loop gets it: read from the table at run
     * time, so that the compiler cannot specialise the loop for constants */
    uint64_t nbits, phys_base;
    unsigned unit_shift;
    ua_op ops[BATCH];
    int contains;
};

static volatile uint64_t sink;

/* ns per op of one sample of `iters` batches through ua_run_ops. */
static double sample_ua(struct ctx *c, int iters)
{
    double t0 = now();
    for (int k = 0; k < iters; k++) {
        size_t cursor = 0;
        if (ua_run_ops(c->t, c->ops, BATCH, NULL, &cursor) != UA_OK) {
            fprintf(stderr, "ua_run_ops failed\n");
            exit(1);
        }
    }
    return (now() - t0) / ((double)iters * BATCH) * 1e9;
}

/* The same through the bare loop. */
static double sample_bare(struct ctx *c, int iters)
{
    uint64_t found = 0;
    double t0 = now();
    for (int k = 0; k < iters; k++)
        found += c->contains ? bare_contains_ops(c->words, c->nbits, c->phys_base,
                                                 c->unit_shift, c->ops, BATCH)
                             : bare_accept_ops(c->words, c->nbits, c->phys_base,
                                               c->unit_shift, c->ops, BATCH);
    double dt = (now() - t0) / ((double)iters * BATCH) * 1e9;
    sink += found;
    if (found) {
        fprintf(stderr, "bare loop found unaccepted units in an accepted map\n");
        exit(1);
    }
    return dt;
}

/* One rep: SAMPLES samples of each, interleaved (so that both see the same
 * machine, which on a shared host changes from second to second), the
 * best of each. */
static void one_rep(struct ctx *c, int iters, int bare_first, double *ua, double *bare)
{
    *ua = *bare = 1e30;
    for (int s = 0; s < SAMPLES; s++) {
        double u, b;
        if ((s + bare_first) % 2) {
            b = sample_bare(c, iters);
            u = sample_ua(c, iters);
        } else {
            u = sample_ua(c, iters);
            b = sample_bare(c, iters);
        }
        if (u < *ua)
            *ua = u;
        if (b < *bare)
            *bare = b;
    }
}

static void run_case(struct ctx *c, const char *kind, uint64_t length, int reps)
{
    rng_state = 0x9e3779b97f4a7c15ull ^ length;
    for (int i = 0; i < BATCH; i++) {
        uint64_t first = rng() % (UNITS - length);
        /* the size ends 4 KiB short of a unit boundary: no guard unit */
        c->ops[i] = (ua_op){c->contains ? UA_OP_CONTAINS : UA_OP_ACCEPT, 0,
                            first << UNIT_SHIFT, (length << UNIT_SHIFT) - BARE_PAGE};
    }
    int iters = length > 64 ? 100 : 300;
    double ua[MAX_REPS], bare[MAX_REPS], ratio[MAX_REPS];
    one_rep(c, iters, 0, &ua[0], &bare[0]);   /* warm up */
    for (int r = 0; r < reps; r++) {
        one_rep(c, iters, r % 2, &ua[r], &bare[r]);
        ratio[r] = ua[r] / bare[r];
    }
    /* median() sorts: [0] and [reps - 1] are then the min and the max */
    double ua_med = median(ua, reps), bare_med = median(bare, reps);
    double r_med = median(ratio, reps);
    printf("%-8s %3llu units: unaccepted %6.2f ns/op [%.2f, %.2f]  bare-c %6.2f ns/op "
           "[%.2f, %.2f]  ratio %.2f [%.2f, %.2f]\n",
           kind, (unsigned long long)length, ua_med, ua[0], ua[reps - 1], bare_med, bare[0],
           bare[reps - 1], r_med, ratio[0], ratio[reps - 1]);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 11;
    if (reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "usage: %s [reps (1-%d)]\n", argv[0], MAX_REPS);
        return 2;
    }
    static struct ctx c;
    if (ua_table_create(1u << UNIT_SHIFT, 0, UNITS / 8, &c.t) != UA_OK)
        return 1;
    /* Write every page of the bitmap once: a fresh calloc'd bitmap maps the
     * shared zero page, and reading it would be reading 4 KiB from L1. */
    ua_table_mark(c.t, 0, UNITS, 1);
    ua_table_mark(c.t, 0, UNITS, 0);
    c.words = ua_table_words(c.t);
    ua_table_info info;
    ua_table_info_get(c.t, &info);
    c.nbits = info.nbits;
    c.phys_base = info.phys_base;
    c.unit_shift = (unsigned)__builtin_ctz(info.unit_size);
    printf("fast_path: libunaccepted %s, %d ops per batch, 2^21 units of 2 MiB (256 KiB "
           "bitmap, all accepted), %d reps, each the best of %d interleaved samples\n",
           ua_version_string(), BATCH, reps, SAMPLES);
    const uint64_t lengths[] = {2, 512};
    for (int contains = 0; contains < 2; contains++) {
        c.contains = contains;
        for (int i = 0; i < 2; i++)
            run_case(&c, contains ? "contains" : "accept", lengths[i], reps);
    }
    ua_table_destroy(c.t);
    return 0;
}
#endif
