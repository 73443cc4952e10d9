/*
 * scan.c - whole-map scans and counts of the library beside loops that read
 * the same bitmap words as fast as this machine allows.
 *
 *   make -C csrc BUILD=/tmp/ua bench
 *   /tmp/ua/bench/scan [reps]             # default 7
 *
 * Two maps, fully accepted (every bit clear, every page of the bitmap
 * written once so that nothing reads the shared zero page):
 *   2^21 units (256 KiB bitmap, 4 TiB at 2 MiB): cache resident;
 *   2^30 units (128 MiB bitmap): larger than the last-level cache.
 * The library's entry points:
 *   contains   ua_contains_unaccepted() over the whole map (a full scan)
 *   accept     ua_accept_memory() of the whole map (nothing to do: a full scan)
 *   any        ua_bitmap_any() over the words
 *   count      ua_table_count_unaccepted() (a population count of every word)
 * The baselines, in this file, over the same words:
 *   vectorised          the same scan as a 128-bit vector loop (SSE2 on
 *                       x86-64: what any x86-64 build may use), plain loads
 *   vectorised-avx2     the scan with 256-bit vectors (if the CPU has AVX2)
 *   vectorised (count)  a 128-bit SWAR population count (SSE2)
 *   vectorised-avx512   VPOPCNTQ over 512-bit vectors (if the CPU has it)
 *   memory-bandwidth    OR of every word, 128-bit vectors, no early exit:
 *                       the read bandwidth of this machine for this buffer
 * One rep takes 3 samples of every implementation, interleaved, and keeps
 * the best of each; the figures are the median and [min, max] over the
 * reps, and the ratios (speeds: baseline time / time) are taken per rep,
 * then their median and [min, max].
 *
 * Built with -DUA_BENCH_LIBRARY -shared -fPIC (no main; see
 * benchmarks/cbench.py) the baselines serve benchmarks/bench_core.py.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stddef.h>
#include <string.h>

typedef uint64_t u64x2 __attribute__((vector_size(16)));

static inline u64x2 load2(const uint64_t *p)
{
    u64x2 v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Any non-zero word in w[0, n)?  Checks every 16 words (128 bytes). */
int vec_any(const uint64_t *w, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        u64x2 a = load2(w + i) | load2(w + i + 2), b = load2(w + i + 4) | load2(w + i + 6);
        u64x2 c = load2(w + i + 8) | load2(w + i + 10), d = load2(w + i + 12) | load2(w + i + 14);
        a = (a | b) | (c | d);
        if (a[0] | a[1])
            return 1;
    }
    for (; i < n; i++)
        if (w[i])
            return 1;
    return 0;
}

/* OR of every word, four independent accumulators: a read-bandwidth loop. */
uint64_t mem_read(const uint64_t *w, size_t n)
{
    u64x2 a = {0, 0}, b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a |= load2(w + i);
        b |= load2(w + i + 2);
        c |= load2(w + i + 4);
        d |= load2(w + i + 6);
    }
    a = (a | b) | (c | d);
    uint64_t r = a[0] | a[1];
    for (; i < n; i++)
        r |= w[i];
    return r;
}

/* Population count of w[0, n) with 128-bit SWAR: byte counts summed over up
 * to 7 steps of 8 words (<= 224 per byte), then folded into 64-bit lanes. */
uint64_t vec_count(const uint64_t *w, size_t n)
{
    const u64x2 m1 = {0x5555555555555555ull, 0x5555555555555555ull};
    const u64x2 m2 = {0x3333333333333333ull, 0x3333333333333333ull};
    const u64x2 m4 = {0x0f0f0f0f0f0f0f0full, 0x0f0f0f0f0f0f0f0full};
    const u64x2 m8 = {0x00ff00ff00ff00ffull, 0x00ff00ff00ff00ffull};
    const u64x2 m16 = {0x0000ffff0000ffffull, 0x0000ffff0000ffffull};
    const u64x2 m32 = {0x00000000ffffffffull, 0x00000000ffffffffull};
    u64x2 total = {0, 0};
    size_t i = 0;
    while (i + 8 <= n) {
        u64x2 bytes = {0, 0};
        for (int step = 0; step < 7 && i + 8 <= n; step++, i += 8) {
            for (int k = 0; k < 8; k += 2) {
                u64x2 x = load2(w + i + k);
                x = x - ((x >> 1) & m1);
                x = (x & m2) + ((x >> 2) & m2);
                bytes += (x + (x >> 4)) & m4;
            }
        }
        bytes = (bytes & m8) + ((bytes >> 8) & m8);
        bytes = (bytes & m16) + ((bytes >> 16) & m16);
        total += (bytes & m32) + (bytes >> 32);
    }
    uint64_t r = total[0] + total[1];
    for (; i < n; i++)
        r += (uint64_t)__builtin_popcountll(w[i]);
    return r;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86_WIDE 1
typedef uint64_t u64x4 __attribute__((vector_size(32)));

__attribute__((target("avx2"))) static inline u64x4 load4(const uint64_t *p)
{
    u64x4 v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* vec_any with 256-bit vectors; checks every 32 words (256 bytes). */
__attribute__((target("avx2"))) int vec_any_avx2(const uint64_t *w, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        u64x4 a = load4(w + i) | load4(w + i + 4), b = load4(w + i + 8) | load4(w + i + 12);
        u64x4 c = load4(w + i + 16) | load4(w + i + 20);
        u64x4 d = load4(w + i + 24) | load4(w + i + 28);
        a = (a | b) | (c | d);
        if ((a[0] | a[1]) | (a[2] | a[3]))
            return 1;
    }
    for (; i < n; i++)
        if (w[i])
            return 1;
    return 0;
}

__attribute__((target("avx512f,avx512vpopcntdq"))) uint64_t vec_count_avx512(const uint64_t *w,
                                                                          size_t n)
{
    __m512i a = _mm512_setzero_si512(), b = a;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a = _mm512_add_epi64(a, _mm512_popcnt_epi64(_mm512_loadu_si512(w + i)));
        b = _mm512_add_epi64(b, _mm512_popcnt_epi64(_mm512_loadu_si512(w + i + 8)));
    }
    uint64_t r = (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(a, b));
    for (; i < n; i++)
        r += (uint64_t)__builtin_popcountll(w[i]);
    return r;
}

int have_avx2(void) { return __builtin_cpu_supports("avx2"); }
int have_avx512_popcnt(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
}
#else
int have_avx2(void) { return 0; }
int have_avx512_popcnt(void) { return 0; }
#endif

#ifndef UA_BENCH_LIBRARY
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "unaccepted.h"

#define SAMPLES 3
#define MAX_REPS 64

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
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

enum impl {
    CONTAINS, ACCEPT, ANY, COUNT, VEC_ANY, VEC_ANY_AVX2, VEC_COUNT, VEC_COUNT_AVX512, MEMBW, NIMPL
};
static const char *const names[NIMPL] = {
    "unaccepted contains", "unaccepted accept", "unaccepted any", "unaccepted count",
    "vectorised any", "vectorised-avx2 any", "vectorised count", "vectorised-avx512 count",
    "memory-bandwidth"};

struct map {
    ua_table *t;
    const uint64_t *w;
    uint64_t nbits, nwords, cover;
};

static volatile uint64_t sink;

static uint64_t call(const struct map *m, enum impl i)
{
    switch (i) {
    case CONTAINS: return (uint64_t)ua_contains_unaccepted(m->t, 0, m->cover - 4096);
    case ACCEPT: {
        ua_accept_result r;
        if (ua_accept_memory(m->t, 0, m->cover - 4096, 0, &r) != UA_OK)
            return 1;
        return r.units;
    }
    case ANY: return (uint64_t)ua_bitmap_any(m->w, m->nbits, 0, m->nbits);
    case COUNT: return ua_table_count_unaccepted(m->t);
    case VEC_ANY: return (uint64_t)vec_any(m->w, m->nwords);
    case VEC_COUNT: return vec_count(m->w, m->nwords);
    case MEMBW: return mem_read(m->w, m->nwords);
#ifdef HAVE_X86_WIDE
    case VEC_ANY_AVX2: return (uint64_t)vec_any_avx2(m->w, m->nwords);
    case VEC_COUNT_AVX512: return vec_count_avx512(m->w, m->nwords);
#endif
    default: return 0;
    }
}

/* Seconds per call of one sample of `iters` calls. */
static double sample(const struct map *m, enum impl i, int iters)
{
    uint64_t acc = 0;
    double t0 = now();
    for (int k = 0; k < iters; k++)
        acc += call(m, i);
    double dt = (now() - t0) / iters;
    if (acc) {
        fprintf(stderr, "%s found something in an accepted map\n", names[i]);
        exit(1);
    }
    sink += acc;
    return dt;
}

static void run_map(unsigned log_units, int reps)
{
    struct map m;
    m.nbits = 1ull << log_units;
    m.nwords = m.nbits / 64;
    m.cover = m.nbits << 21;
    if (ua_table_create(1u << 21, 0, m.nbits / 8, &m.t) != UA_OK) {
        fprintf(stderr, "table of 2^%u units: cannot create\n", log_units);
        exit(1);
    }
    ua_table_mark(m.t, 0, m.nbits, 1);          /* write every page once */
    ua_table_mark(m.t, 0, m.nbits, 0);
    m.w = ua_table_words(m.t);
    int avail[NIMPL];
    for (int i = 0; i < NIMPL; i++)
        avail[i] = 1;
    avail[VEC_ANY_AVX2] = have_avx2();
    avail[VEC_COUNT_AVX512] = have_avx512_popcnt();
    int iters = log_units <= 22 ? 200 : 1;
    static double t[NIMPL][MAX_REPS];
    for (int i = 0; i < NIMPL; i++)           /* warm up */
        if (avail[i])
            sample(&m, (enum impl)i, iters);
    /* one rep: SAMPLES samples of every implementation, interleaved (the
     * order alternating), the best of each */
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < NIMPL; i++)
            t[i][r] = 1e30;
        for (int s = 0; s < SAMPLES; s++)
            for (int k = 0; k < NIMPL; k++) {
                int i = (r + s) % 2 ? NIMPL - 1 - k : k;
                if (!avail[i])
                    continue;
                double dt = sample(&m, (enum impl)i, iters);
                if (dt < t[i][r])
                    t[i][r] = dt;
            }
    }
    double bytes = (double)m.nwords * 8;
    /* ratios per rep (both timed in the same rep, which cancels the slow
     * drift of a shared machine's bandwidth), then medians */
    static double rv[NIMPL][MAX_REPS], rb[NIMPL][MAX_REPS];
    for (int i = 0; i < NIMPL; i++) {
        if (!avail[i])
            continue;
        /* counts compare with the vectorised count, scans with the vectorised scan */
        int ref = (i == COUNT || i == VEC_COUNT_AVX512) ? VEC_COUNT : VEC_ANY;
        for (int r = 0; r < reps; r++) {
            rv[i][r] = t[ref][r] / t[i][r];
            rb[i][r] = t[MEMBW][r] / t[i][r];
        }
    }
    printf("\n2^%u units (%.0f KiB bitmap), %d reps:\n", log_units, bytes / 1024, reps);
    printf("| implementation | time (median [min, max]) | GB/s | vs vectorised | "
           "vs memory-bandwidth |\n");
    printf("|---|---|---|---|---|\n");
    for (int i = 0; i < NIMPL; i++) {
        if (!avail[i])
            continue;
        double med = median(t[i], reps), v = median(rv[i], reps), b = median(rb[i], reps);
        /* median() sorted them: [0] and [reps - 1] are the min and the max */
        printf("| %s | %.2f us [%.2f, %.2f] | %.1f | %.2f [%.2f, %.2f] | %.2f [%.2f, %.2f] |\n",
               names[i], med * 1e6, t[i][0] * 1e6, t[i][reps - 1] * 1e6, bytes / med / 1e9, v,
               rv[i][0], rv[i][reps - 1], b, rb[i][0], rb[i][reps - 1]);
    }
    ua_table_destroy(m.t);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    if (reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "usage: %s [reps (1-%d)]\n", argv[0], MAX_REPS);
        return 2;
    }
    printf("scan: libunaccepted %s; ratios are speeds (baseline time / time)\n",
           ua_version_string());
    run_map(21, reps);
    run_map(30, reps);
    return 0;
}
#endif
