/* Concurrency stress test of the accept path: in each of ROUNDS rounds the
 * whole table is marked unaccepted and THREADS threads accept overlapping
 * random ranges of it through a counting primitive that now and then fails,
 * while they also ask range_contains_unaccepted.
 *
 * Checked inside the primitive (so an overlap is caught while it happens):
 * no unit is handed to two accepters at once, and every unit handed over is
 * still marked unaccepted.  Checked by each thread: a successful accept
 * leaves its range reading accepted, and a range that read accepted never
 * reads unaccepted again (bits only go 1 -> 0).  Checked at the end: every
 * unit was accepted exactly once, the units the calls report add up to the
 * table, and nothing is left unaccepted, round after round.  Runs under ThreadSanitizer in
 * `make check SAN=thread` (a few seconds). */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "unaccepted.h"
#include "ua_test.h"

#define THREADS 8
#define ROUNDS 20
#define ITERATIONS 1500
#define UNIT (64u << 10)
#define UNITS 4096u
#define BASE (1ull << 32)

static ua_table *table;
static uint32_t accepted[UNITS];   /* successful accepts per unit */
static uint32_t in_flight[UNITS];  /* 1 while a primitive call holds the unit */
static uint32_t overlaps, twice, stale, failures_allowed = 1;
static uint32_t rng[THREADS];

static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static int unit_marked(uint64_t u)
{
    const uint64_t *w = ua_table_words(table);
    return (int)((__atomic_load_n(&w[u / 64], __ATOMIC_ACQUIRE) >> (u % 64)) & 1);
}

/* The primitive: vcpu is the calling thread's index. */
static int counting_accept(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu)
{
    uint64_t f = (start - BASE) / UNIT, l = (end - BASE) / UNIT;
    for (uint64_t u = f; u < l; u++) {
        if (__atomic_exchange_n(&in_flight[u], 1, __ATOMIC_ACQ_REL))
            __atomic_fetch_add(&overlaps, 1, __ATOMIC_RELAXED);
        if (!unit_marked(u))
            __atomic_fetch_add(&twice, 1, __ATOMIC_RELAXED);
    }
    sched_yield(); /* widen the window in which another accepter could collide */
    int fail = __atomic_load_n(&failures_allowed, __ATOMIC_RELAXED) && next(&rng[vcpu]) % 16 == 0;
    for (uint64_t u = f; u < l; u++) {
        if (!fail)
            __atomic_fetch_add(&accepted[u], 1, __ATOMIC_RELAXED);
        __atomic_store_n(&in_flight[u], 0, __ATOMIC_RELEASE);
    }
    return fail ? UA_E_GUEST_PANIC : UA_OK;
}

struct worker {
    uint32_t vcpu;
    uint64_t units;       /* units its calls reported */
    uint32_t errors;      /* unexpected statuses or answers */
};

static void *work(void *arg)
{
    struct worker *w = arg;
    uint32_t *s = &rng[w->vcpu];
    for (int i = 0; i < ITERATIONS; i++) {
        uint32_t r = next(s);
        /* overlapping ranges: anywhere in (and a little around) the table,
         * unit aligned or not, up to 24 units long */
        uint64_t start = BASE - 2 * UNIT + (uint64_t)(r % (UNITS + 4)) * UNIT +
                         ((r >> 20) & 1 ? (next(s) % UNIT) & ~4095ull : 0);
        uint64_t size = (uint64_t)(next(s) % (24 * UNIT));
        if (r & (1u << 21)) {
            ua_accept_result res;
            int st = ua_accept_memory(table, start, size, w->vcpu, &res);
            w->units += res.units;
            if (st == UA_OK) {
                if (ua_contains_unaccepted(table, start, size) != 0)
                    w->errors++;
            } else if (st != UA_E_GUEST_PANIC) {
                w->errors++;
            }
        } else {
            int before = ua_contains_unaccepted(table, start, size);
            int after = ua_contains_unaccepted(table, start, size);
            if (before < 0 || after < 0 || (before == 0 && after == 1))
                __atomic_fetch_add(&stale, 1, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

int main(void)
{
    CHECK_EQ(ua_table_create(UNIT, BASE, UNITS / 8, &table), UA_OK);
    CHECK_EQ(ua_table_set_accept(table, counting_accept, NULL), UA_OK);
    for (uint32_t i = 0; i < THREADS; i++)
        rng[i] = 2463534242u + 7919u * i;
    for (uint32_t round = 1; round <= ROUNDS; round++) {
        CHECK_EQ(ua_table_mark(table, 0, UNITS, 1), UA_OK);
        __atomic_store_n(&failures_allowed, 1, __ATOMIC_RELAXED);
        pthread_t th[THREADS];
        struct worker ws[THREADS];
        for (uint32_t i = 0; i < THREADS; i++) {
            ws[i] = (struct worker){i, 0, 0};
            CHECK_EQ(pthread_create(&th[i], NULL, work, &ws[i]), 0);
        }
        uint64_t reported = 0;
        uint32_t errors = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
            reported += ws[i].units;
            errors += ws[i].errors;
        }
        /* whatever is left, accepted without failures */
        __atomic_store_n(&failures_allowed, 0, __ATOMIC_RELAXED);
        ua_accept_result res;
        CHECK_EQ(ua_accept_memory(table, BASE, (uint64_t)UNITS * UNIT, 0, &res), UA_OK);
        reported += res.units;
        CHECK_EQ(errors, 0u);
        CHECK_EQ(reported, (uint64_t)UNITS);
        CHECK_EQ(ua_table_count_unaccepted(table), 0u);
        uint32_t not_once = 0;
        for (uint32_t u = 0; u < UNITS; u++)
            not_once += accepted[u] != round;
        CHECK_EQ(not_once, 0u);
    }
    CHECK_EQ(overlaps, 0u);
    CHECK_EQ(twice, 0u);
    CHECK_EQ(stale, 0u);
    ua_table_destroy(table);
    return ua_test_report("test_stress");
}
