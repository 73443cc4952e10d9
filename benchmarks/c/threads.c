/*
 * threads.c - parallel accept: throughput with N threads on disjoint ranges
 * against N times the throughput of one thread.
 *
 *   cc -O2 -pthread -Icsrc/include benchmarks/c/threads.c csrc/[a-z]*.c -o threads
 *   ./threads TARGET THREADS SIZE [options]
 *
 * (benchmarks/threads.sh builds it and runs the sweep for N = 1 .. nproc.)
 *
 * TARGET   bitmap  one table (2 MiB units), every other unit unaccepted, each
 *                  thread calls ua_accept_memory on its own range with the
 *                  no-op primitive (one primitive call per run: the bitmap,
 *                  the accepting list and the run loop, nothing else);
 *          tdx, snp  one guest (one vCPU per thread), one table over all of
 *                  it with the guest's Linux accept path as the primitive,
 *                  each thread accepting its own range of fresh memory.
 * THREADS  thread counts: "1,2,4", "1-16" or a mix ("1-4,8,16"); 1 is always
 *          measured, as the reference.
 * SIZE     guest bytes per thread, with a K/M/G/T suffix (multiple of 2 MiB).
 * options  -r ROUNDS   rounds per thread count (default 3; the median is the
 *                      figure, min and max the spread)
 *          -c CHUNK    bytes per ua_accept_memory call (default: the whole
 *                      range in one call)
 *          -b 2M|4K    host backing for tdx/snp (default 4K)
 *          -p PROFILE  cost profile name, or "none" (default: the vendor's
 *                      built-in profile, so the per-vCPU counters are live)
 *
 * One line per thread count:
 *   tdx 4K  N=2   256 GiB/thread  2208.6 GiB/s [1912.5, 2773.8]  ratio 0.91 [0.79, 1.14]  cpu 1.01
 * where the throughput is all threads' guest bytes over the wall time from
 * the start barrier to the last thread's end, and the ratio is
 * throughput(N) / (N * median throughput(1)), median [min, max] over the
 * rounds.  "cpu" is the CPU time the threads spent per byte at N over the
 * same at 1 (median): 1.00 when nothing is shared, above 1 when threads
 * slow each other down (cache lines bouncing, spinning); unlike the wall
 * ratio it does not drop when other processes take cores.  Guests and
 * tables are built and marked before the clock starts, torn down after it
 * stops, and one untimed round with one thread runs first.  Each call
 * accepts [a, a + chunk - 4 KiB): its end is then not unit aligned, so the
 * call does not take the guard unit, which is the next thread's first unit.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unaccepted.h"

#define UNIT (2ull << 20)
#define MAXN 1024

enum target { T_BITMAP, T_TDX, T_SNP };

struct opts {
    enum target target;
    const char *name;
    uint64_t size;      /* bytes per thread */
    uint64_t chunk;     /* bytes per ua_accept_memory call; 0 = whole range */
    int rounds;
    uint32_t backing;
    const char *profile; /* NULL: none */
};

struct worker {
    pthread_t tid;
    pthread_barrier_t *start;
    ua_table *table;
    uint64_t base, size, chunk;
    uint32_t vcpu;
    double t0, t1, cpu;
    ua_status st;
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(w->start);
    double c0 = cpu_now();
    w->t0 = now();
    w->st = UA_OK;
    uint64_t step = w->chunk ? w->chunk : w->size;
    for (uint64_t a = w->base; a < w->base + w->size && !w->st; a += step) {
        uint64_t n = w->base + w->size - a < step ? w->base + w->size - a : step;
        /* a call whose end is unit aligned also takes the next unit (the
         * guard unit), which is the next thread's: end one page short */
        w->st = ua_accept_memory(w->table, a, n - 4096, w->vcpu, NULL);
    }
    w->t1 = now();
    w->cpu = cpu_now() - c0;
    return NULL;
}

static int die(const char *what, int st)
{
    fprintf(stderr, "threads: %s: %s\n", what, ua_strerror(st));
    exit(1);
}

/* One round with n threads: guest bytes per second (< 0 on failure) and
 * CPU seconds per byte in *cpu. */
static double one_round(const struct opts *o, unsigned n, double *cpu)
{
    uint64_t total = o->size * n;
    ua_guest *g = NULL;
    ua_table *t;
    ua_status st;
    uint64_t units = total / UNIT, bytes = (units + 7) / 8;
    if ((st = ua_table_create((uint32_t)UNIT, 0, bytes, &t)))
        die("ua_table_create", st);
    if (o->target == T_BITMAP) {
        /* every other unit unaccepted: one no-op call per unit accepted */
        uint8_t *b = malloc(bytes);
        if (!b)
            die("malloc", UA_E_NOMEM);
        memset(b, 0x55, bytes);
        if ((st = ua_table_bitmap_write(t, b, bytes)) ||
            (st = ua_table_mark(t, units, bytes * 8, 0)))
            die("ua_table_bitmap_write", st);
        free(b);
    } else {
        if ((st = ua_table_mark(t, 0, total / UNIT, 1)))
            die("ua_table_mark", st);
        ua_cost_profile prof;
        ua_guest_config c;
        memset(&c, 0, sizeof(c));
        c.vendor = o->target == T_TDX ? UA_VENDOR_TDX : UA_VENDOR_SNP;
        c.vcpus = n;
        c.memory_bytes = total;
        c.backing = o->backing;
        if (o->profile) {
            if ((st = ua_cost_profile_find(o->profile, &prof)))
                die("unknown cost profile", st);
            c.cost_profile = &prof;
        }
        if ((st = ua_guest_create(&c, &g)))
            die("ua_guest_create", st);
        ua_accept_fn fn;
        void *ctx;
        if ((st = ua_guest_accept_path(g, UA_PATH_LINUX, &fn, &ctx)) ||
            (st = ua_table_set_accept(t, fn, ctx)))
            die("accept path", st);
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, n);
    struct worker *w = calloc(n, sizeof(*w));
    for (unsigned i = 0; i < n; i++) {
        w[i] = (struct worker){.start = &start, .table = t, .base = i * o->size,
                               .size = o->size, .chunk = o->chunk, .vcpu = i};
        if (pthread_create(&w[i].tid, NULL, run_worker, &w[i])) {
            fprintf(stderr, "threads: pthread_create failed\n");
            exit(1);
        }
    }
    double t0 = 1e300, t1 = 0, cpus = 0;
    int failed = 0;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(w[i].tid, NULL);
        if (w[i].st) {
            fprintf(stderr, "threads: thread %u: %s\n", i, ua_strerror(w[i].st));
            failed = 1;
        }
        t0 = w[i].t0 < t0 ? w[i].t0 : t0;
        t1 = w[i].t1 > t1 ? w[i].t1 : t1;
        cpus += w[i].cpu;
    }
    *cpu = cpus / (double)total;
    if (!failed && ua_table_count_unaccepted(t) != 0) {
        fprintf(stderr, "threads: units left unaccepted\n");
        failed = 1;
    }
    pthread_barrier_destroy(&start);
    free(w);
    ua_table_destroy(t);
    ua_guest_destroy(g);
    return failed ? -1.0 : (double)total / (t1 - t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int r)
{
    qsort(v, (size_t)r, sizeof(v[0]), cmp_double);
    return r % 2 ? v[r / 2] : (v[r / 2 - 1] + v[r / 2]) / 2;
}

/* rounds of n threads: median, min, max throughput; median CPU per byte */
static void measure(const struct opts *o, unsigned n, double out[3], double *cpu)
{
    double v[64], c[64];
    int r = o->rounds;
    for (int i = 0; i < r; i++)
        if ((v[i] = one_round(o, n, &c[i])) < 0)
            exit(1);
    out[0] = median(v, r);
    out[1] = v[0];
    out[2] = v[r - 1];
    *cpu = median(c, r);
}

static uint64_t parse_size(const char *s)
{
    char *e;
    double v = strtod(s, &e);
    uint64_t m = 1;
    switch (*e) {
    case 'K': case 'k': m = 1ull << 10; break;
    case 'M': case 'm': m = 1ull << 20; break;
    case 'G': case 'g': m = 1ull << 30; break;
    case 'T': case 't': m = 1ull << 40; break;
    case 0: break;
    default: return 0;
    }
    return (uint64_t)(v * (double)m);
}

/* "1-4,8,16" -> sorted list with 1 first; returns the count. */
static unsigned parse_counts(const char *s, unsigned *out)
{
    unsigned n = 0;
    char seen[MAXN + 1] = {0};
    seen[1] = 1;
    while (*s) {
        char *e;
        unsigned long a = strtoul(s, &e, 10), b = a;
        if (*e == '-')
            b = strtoul(e + 1, &e, 10);
        if (a < 1 || b > MAXN || a > b)
            return 0;
        for (unsigned long k = a; k <= b; k++)
            seen[k] = 1;
        if (*e == ',')
            e++;
        else if (*e)
            return 0;
        s = e;
    }
    for (unsigned k = 1; k <= MAXN; k++)
        if (seen[k])
            out[n++] = k;
    return n;
}

static void usage(void)
{
    fprintf(stderr, "usage: threads bitmap|tdx|snp THREADS SIZE [-r rounds] [-c chunk] "
                    "[-b 2M|4K] [-p profile|none]\n"
                    "  e.g. threads tdx 1-4 16G -r 3\n");
    exit(2);
}

static void human(double bytes_per_s, char *buf, size_t n)
{
    snprintf(buf, n, "%.1f", bytes_per_s / (1ull << 30));
}

/* "256 MiB", "16 GiB", "64 TiB" */
static void size_str(uint64_t bytes, char *buf, size_t n)
{
    static const char *const unit[] = {"MiB", "GiB", "TiB"};
    double v = (double)bytes / (1 << 20);
    int u = 0;
    while (u < 2 && v >= 1024) {
        v /= 1024;
        u++;
    }
    snprintf(buf, n, "%g %s", v, unit[u]);
}

int main(int argc, char **argv)
{
    struct opts o = {.rounds = 3, .backing = UA_BACKING_4K};
    const char *pos[3];
    int npos = 0, profile_set = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] && !argv[i][2] && i + 1 < argc) {
            const char *v = argv[++i];
            switch (argv[i - 1][1]) {
            case 'r': o.rounds = atoi(v); break;
            case 'c': o.chunk = parse_size(v); if (!o.chunk) usage(); break;
            case 'b': o.backing = !strcmp(v, "2M") ? UA_BACKING_2M : UA_BACKING_4K; break;
            case 'p': o.profile = strcmp(v, "none") ? v : NULL; profile_set = 1; break;
            default: usage();
            }
        } else if (npos < 3) {
            pos[npos++] = argv[i];
        } else {
            usage();
        }
    }
    if (npos != 3 || o.rounds < 1 || o.rounds > 64)
        usage();
    o.name = pos[0];
    if (!strcmp(pos[0], "bitmap"))
        o.target = T_BITMAP;
    else if (!strcmp(pos[0], "tdx"))
        o.target = T_TDX;
    else if (!strcmp(pos[0], "snp"))
        o.target = T_SNP;
    else
        usage();
    if (!profile_set)
        o.profile = o.target == T_TDX ? "tdx-spr-kvm" : o.target == T_SNP ? "snp-epyc-kvm" : NULL;
    unsigned counts[MAXN];
    unsigned nc = parse_counts(pos[1], counts);
    o.size = parse_size(pos[2]);
    if (!nc || !o.size || o.size % UNIT || (o.chunk && o.chunk % UNIT))
        usage();
    const char *back = o.target == T_BITMAP ? "" : o.backing == UA_BACKING_2M ? " 2M" : " 4K";
    /* one untimed round first: the allocator's arenas and the first page
     * faults of a fresh process would otherwise land in N = 1 */
    double ignored;
    if (one_round(&o, 1, &ignored) < 0)
        return 1;
    double one = 0, cpu1 = 0;
    for (unsigned k = 0; k < nc; k++) {
        unsigned n = counts[k];
        double m[3], cpu;
        measure(&o, n, m, &cpu);
        if (n == 1) {
            one = m[0];
            cpu1 = cpu;
        }
        char a[32], lo[32], hi[32], sz[32];
        size_str(o.size, sz, sizeof(sz));
        human(m[0], a, sizeof(a));
        human(m[1], lo, sizeof(lo));
        human(m[2], hi, sizeof(hi));
        double ref = n * one;
        printf("%s%s  N=%-3u %s/thread  %s GiB/s [%s, %s]  ratio %.2f [%.2f, %.2f]  cpu %.2f\n",
               o.name, back, n, sz, a, lo, hi, m[0] / ref, m[1] / ref, m[2] / ref, cpu / cpu1);
        fflush(stdout);
    }
    return 0;
}
