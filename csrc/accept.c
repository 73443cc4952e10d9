/* accept.c - the kernel's accept_memory() and range_contains_unaccepted_memory()
 * (drivers/firmware/efi/unaccepted_memory.c semantics, current mainline),
 * the batch entry point, and the built-in primitives (no-op, recorder).
 *
 * Concurrency follows Linux 6.6+: a caller registers its unit range on the
 * accepting list; a caller whose range shares a unit with a registered one
 * waits until it leaves; the primitive runs without the lock.  Two details
 * differ in mechanism but not in outcome:
 *   - waiters sleep on a condition variable instead of spinning;
 *   - a caller whose units are all already accepted returns without taking
 *     the lock (bits only go 1 -> 0 while accepts run, and a bit is cleared
 *     only after its accept finished, so such a caller has nothing to wait
 *     for and nothing to do).
 * Bits are cleared with atomic word operations because callers accepting
 * disjoint units may share a bitmap word. */
#include <stdlib.h>
#include <string.h>

#include "ua_internal.h"

int ua_accept_noop(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu) { return UA_OK; }

/* ---- unit ranges ----
 * Both entry points first turn a byte range into a unit range the way Linux
 * does: clamp [start, end) to phys_base, make it relative, add the guard
 * unit when the end is unit aligned (load_unaligned_zeropad() may touch the
 * next unit), clamp to the bitmap's coverage.  accept_memory() widens to
 * pages first, so the guard test sees the real end.
 *
 * The common case is computed in 64 bits: when start + size < 2^63 nothing
 * can overflow (page widening adds < 2^12, the guard unit <= 2^31, the
 * coverage is at most 2^62: nbits <= 2^31 and unit_size <= 2^31).  Ends at or
 * above 2^63 take the exact 128-bit path, out of line; both give the same
 * answers. */
#define FAST_END_LIMIT (1ull << 63)

/* The table's geometry, which never changes after creation, read once. */
struct geom {
    const uint64_t *words;
    uint64_t nbits, phys_base, unit, cov;
    unsigned shift;
};

struct urange {
    uint64_t first, last;               /* bits, half-open; empty when first >= last */
};

static inline struct geom geom_of(const ua_table *t)
{
    struct geom g = {t->words, t->nbits, t->phys_base, t->unit_size,
                     t->nbits << t->unit_shift, t->unit_shift};
    return g;
}

/* Offsets of [start, end) from phys_base, start clamped up to it, the guard
 * unit added when end is unit aligned, end clamped to the coverage: what
 * accept_memory() and range_contains_unaccepted_memory() share.  0 when the
 * range ends below phys_base. */
static inline int offsets64(const struct geom *g, uint64_t start, uint64_t end, uint64_t *so,
                            uint64_t *eo)
{
    if (end < g->phys_base)
        return 0;
    if (start < g->phys_base)
        start = g->phys_base;
    *so = start - g->phys_base;
    *eo = end - g->phys_base;
    if ((*eo & (g->unit - 1)) == 0)
        *eo += g->unit;
    if (*eo > g->cov)
        *eo = g->cov;
    return 1;
}

/* accept_memory()'s units for end = start + size < 2^63. */
static inline struct urange accept_units64(const struct geom *g, uint64_t start, uint64_t end)
{
    struct urange u = {0, 0};
    end = (end + UA_PAGE_SIZE - 1) & ~(uint64_t)(UA_PAGE_SIZE - 1);
    start &= ~(uint64_t)(UA_PAGE_SIZE - 1);
    uint64_t so, eo;
    if (!offsets64(g, start, end, &so, &eo))
        return u;
    u.first = so >> g->shift;
    u.last = (eo + g->unit - 1) >> g->shift;
    return u;
}

/* range_contains_unaccepted_memory()'s bits for end = start + size < 2^63:
 * Linux tests bit (so + k*unit) / unit for every k with so + k*unit < eo,
 * consecutive bits starting at so / unit. */
static inline struct urange contains_bits64(const struct geom *g, uint64_t start, uint64_t end)
{
    struct urange u = {0, 0};
    uint64_t so, eo;
    if (!offsets64(g, start, end, &so, &eo) || so >= eo)
        return u;
    u.first = so >> g->shift;
    u.last = u.first + ((eo - so + g->unit - 1) >> g->shift);
    return u;
}

/* The same steps with 128-bit arithmetic, for ends at or above 2^63.
 * Returns 0 when the range ends below phys_base (nothing to do), else 1
 * with the offsets. */
static int linux_offsets(const ua_table *t, uint64_t start, ua_u128 end, ua_u128 *so,
                         ua_u128 *eo)
{
    if (end < t->phys_base)
        return 0;
    if (start < t->phys_base)
        start = t->phys_base;
    *so = start - t->phys_base;
    *eo = end - t->phys_base;
    if ((*eo & (t->unit_size - 1)) == 0)
        *eo += t->unit_size;
    ua_u128 cov = (ua_u128)t->nbits << t->unit_shift;
    if (*eo > cov)
        *eo = cov;
    return 1;
}

__attribute__((noinline, cold)) static struct urange accept_units_wide(const ua_table *t,
                                                                       uint64_t start,
                                                                       uint64_t size)
{
    struct urange u = {0, 0};
    ua_u128 end = (ua_u128)start + size;    /* < 2^64: the caller checked */
    end = (end + UA_PAGE_SIZE - 1) & ~(ua_u128)(UA_PAGE_SIZE - 1);
    ua_u128 so, eo;
    if (!linux_offsets(t, start & ~(uint64_t)(UA_PAGE_SIZE - 1), end, &so, &eo))
        return u;
    u.first = (uint64_t)(so >> t->unit_shift);
    u.last = (uint64_t)((eo + t->unit_size - 1) >> t->unit_shift);
    return u;
}

__attribute__((noinline, cold)) static struct urange contains_bits_wide(const ua_table *t,
                                                                        uint64_t start,
                                                                        uint64_t size)
{
    struct urange u = {0, 0};
    ua_u128 so, eo;
    if (!linux_offsets(t, start, (ua_u128)start + size, &so, &eo) || so >= eo)
        return u;
    u.first = (uint64_t)(so >> t->unit_shift);
    u.last = u.first + (uint64_t)((eo - so + t->unit_size - 1) >> t->unit_shift);
    return u;
}

/* ---- the accept path ---- */

static const struct ua_accept_range *overlaps_in_flight(const ua_table *t, uint64_t first,
                                                        uint64_t last)
{
    for (const struct ua_accept_range *r = t->accepting; r; r = r->next)
        if (r->last > first && r->first < last)
            return r;
    return NULL;
}

static inline void clear_word_bits(ua_table *t, uint64_t word, uint64_t mask)
{
    if (mask)
        __atomic_fetch_and(&t->words[word], ~mask, __ATOMIC_RELEASE);
}

static ua_status to_status(int rc)
{
    if (rc > 0 && rc < 64)
        return (ua_status)rc;
    return UA_E_ACCEPT_FAILED;
}

/* The slow part of accept_memory(), for a unit range with a bit set: the
 * accepting list under the lock, the primitive once per run, the bits.  Out
 * of line so that the fast check does not carry its frame.  *res is written
 * on the way out (it starts zeroed by the caller). */
__attribute__((noinline)) static ua_status accept_slow(ua_table *t, uint64_t first, uint64_t last,
                                                       uint32_t vcpu, ua_accept_result *res)
{
    ua_status st = UA_OK;
    ua_accept_result r = {0, 0, 0};    /* local: the primitive may alias *res */
    struct ua_accept_range me = {first, last, pthread_self(), NULL};
    pthread_mutex_lock(&t->lock);
    const struct ua_accept_range *busy;
    while ((busy = overlaps_in_flight(t, first, last))) {
        if (pthread_equal(busy->owner, me.owner)) {
            /* the primitive called accept_memory() on the range it is
             * accepting: waiting for itself would never end */
            pthread_mutex_unlock(&t->lock);
            return UA_E_STATE;          /* *res stays zero */
        }
        r.waits++;
        pthread_cond_wait(&t->done, &t->lock);
    }
    me.next = t->accepting;
    t->accepting = &me;
    ua_accept_fn accept = t->accept;
    void *ctx = t->accept_ctx;
    pthread_mutex_unlock(&t->lock);

    /* Only this caller touches bits in [first, last) until it leaves.  Runs
     * that fit in one word are cleared together, one atomic operation per
     * word: a bit is still cleared only after its own accept succeeded. */
    uint64_t pos = first, rs, re;
    uint64_t pend_word = UINT64_MAX, pend_mask = 0;
    const volatile int *cancel = t->cancel;
    while (ua_bitmap_next_run(t->words, t->nbits, &pos, last, &rs, &re)) {
        if (ua_cancelled(cancel)) {
            st = UA_E_INTERRUPTED;
            break;
        }
        int rc = accept(ctx, t->phys_base + (rs << t->unit_shift),
                        t->phys_base + (re << t->unit_shift), vcpu);
        if (rc) {
            st = to_status(rc);
            break;
        }
        r.runs++;
        r.units += re - rs;
        if (rs / 64 == (re - 1) / 64) {
            if (rs / 64 != pend_word) {
                clear_word_bits(t, pend_word, pend_mask);
                pend_word = rs / 64;
                pend_mask = 0;
            }
            pend_mask |= ua_word_mask(rs % 64, (unsigned)((re - 1) % 64) + 1);
        } else {
            ua_bitmap_clear_atomic(t->words, t->nbits, rs, re);
        }
    }
    clear_word_bits(t, pend_word, pend_mask);

    pthread_mutex_lock(&t->lock);
    struct ua_accept_range **pp = &t->accepting;
    while (*pp != &me)
        pp = &(*pp)->next;
    *pp = me.next;
    pthread_cond_broadcast(&t->done);
    pthread_mutex_unlock(&t->lock);
    *res = r;
    return st;
}

/* accept_memory(start, size): the unit range and the check whether any of
 * its units is unaccepted, inline and without the lock (a caller whose units
 * are all accepted has nothing to wait for: see the top of this file); the
 * rest in accept_slow. */
static inline ua_status accept_one(ua_table *t, const struct geom *g, uint64_t start,
                                   uint64_t size, uint32_t vcpu, ua_accept_result *res)
{
    uint64_t end;
    if (UA_UNLIKELY(__builtin_add_overflow(start, size, &end)))
        return UA_E_RANGE;              /* the end would be 2^64 or more */
    struct urange u = UA_LIKELY(end < FAST_END_LIMIT) ? accept_units64(g, start, end)
                                                      : accept_units_wide(t, start, size);
    if (u.first >= u.last || !ua_bits_any_acquire(g->words, g->nbits, u.first, u.last))
        return UA_OK;
    ua_accept_result r = {0, 0, 0};
    ua_status st = accept_slow(t, u.first, u.last, vcpu, &r);
    *res = r;
    return st;
}

/* range_contains_unaccepted_memory(start, size) into *out. */
static inline ua_status contains_one(const ua_table *t, const struct geom *g, uint64_t start,
                                     uint64_t size, int *out)
{
    uint64_t end;
    if (UA_UNLIKELY(__builtin_add_overflow(start, size, &end)))
        return UA_E_RANGE;
    struct urange u = UA_LIKELY(end < FAST_END_LIMIT) ? contains_bits64(g, start, end)
                                                      : contains_bits_wide(t, start, size);
    *out = ua_bits_any_acquire(g->words, g->nbits, u.first, u.last);
    return UA_OK;
}

ua_status ua_accept_memory(ua_table *t, uint64_t start, uint64_t size, uint32_t vcpu,
                           ua_accept_result *result)
{
    ua_accept_result res = {0, 0, 0};
    if (result)
        *result = res;
    if (!t)
        return UA_E_INVAL;
    struct geom g = geom_of(t);
    ua_status st = accept_one(t, &g, start, size, vcpu, &res);
    if (result)
        *result = res;
    return st;
}

int64_t ua_accept_memory_units(ua_table *t, uint64_t start, uint64_t size, uint32_t vcpu)
{
    ua_accept_result r;
    ua_status st = ua_accept_memory(t, start, size, vcpu, &r);
    return st ? -(int64_t)st : (int64_t)r.units;
}

ua_status ua_range_contains_unaccepted(const ua_table *t, uint64_t start, uint64_t size, int *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    *out = 0;
    struct geom g = geom_of(t);
    return contains_one(t, &g, start, size, out);
}

int ua_contains_unaccepted(const ua_table *t, uint64_t start, uint64_t size)
{
    int out;
    ua_status st = ua_range_contains_unaccepted(t, start, size, &out);
    return st ? -(int)st : out;
}

ua_status ua_table_set_cancel(ua_table *t, const volatile int *flag)
{
    if (!t)
        return UA_E_INVAL;
    pthread_mutex_lock(&t->lock);
    if (t->accepting) {
        pthread_mutex_unlock(&t->lock);
        return UA_E_STATE;
    }
    t->cancel = flag;
    pthread_mutex_unlock(&t->lock);
    return UA_OK;
}

ua_status ua_table_set_accept(ua_table *t, ua_accept_fn fn, void *ctx)
{
    if (!t)
        return UA_E_INVAL;
    pthread_mutex_lock(&t->lock);
    if (t->accepting) {
        pthread_mutex_unlock(&t->lock);
        return UA_E_STATE;
    }
    t->accept = fn ? fn : ua_accept_noop;
    t->accept_ctx = fn ? ctx : NULL;
    pthread_mutex_unlock(&t->lock);
    return UA_OK;
}

/* One op of a batch in full (the cancel flag, either kind, any range), with
 * its result; out of line, for the ops run_fast leaves. */
__attribute__((noinline)) static ua_status run_one(ua_table *t, const struct geom *g,
                                                   const ua_op *op, ua_op_result *result)
{
    ua_op_result r = {0, 0, 0, 0};
    ua_status st;
    if (ua_cancelled(t->cancel))
        return UA_E_INTERRUPTED;        /* no result: the op did not run */
    if (op->kind == UA_OP_ACCEPT) {
        ua_accept_result ar = {0, 0, 0};
        st = accept_one(t, g, op->start, op->size, op->vcpu, &ar);
        r.runs = ar.runs;
        r.units = ar.units;
    } else if (op->kind == UA_OP_CONTAINS) {
        int c = 0;
        st = contains_one(t, g, op->start, op->size, &c);
        r.contains = (uint32_t)c;
    } else {
        st = UA_E_OP;
    }
    r.status = st;
    if (result)
        *result = r;
    return st;
}

/* The batch's fast path: runs ops[i, n) for as long as they need no lock,
 * no primitive, no 128-bit arithmetic and no long scan (an accept whose
 * units are all accepted, any contains of up to UA_INLINE_SCAN_WORDS + 2
 * words), with the table's geometry in registers and no call.  Returns the
 * index of the first op it leaves for run_one (or n).  The acquire fence of
 * the scans it did is taken once, on the way out.  want_results is a
 * constant in each of the two copies below. */
__attribute__((always_inline)) static inline size_t
run_fast(const struct geom *gp, const ua_op *ops, size_t i, size_t n, ua_op_result *results,
         const volatile int *cancel, int want_results)
{
    const struct geom geom = *gp, *g = &geom;    /* in registers: nothing here calls out */
    for (; i < n; i++) {
        const ua_op *op = &ops[i];
        uint64_t end;
        if (ua_cancelled(cancel) || __builtin_add_overflow(op->start, op->size, &end) ||
            end >= FAST_END_LIMIT)
            break;
        int accept = op->kind == UA_OP_ACCEPT;
        if (!accept && op->kind != UA_OP_CONTAINS)
            break;
        /* last <= nbits without a clamp: eo <= cov = nbits << shift, so
         * ceil(eo / unit) <= nbits, and contains' first + count is at most
         * that too */
        struct urange u = accept ? accept_units64(g, op->start, end)
                                 : contains_bits64(g, op->start, end);
        uint64_t acc = 0;
        if (u.first < u.last) {
            uint64_t fw = u.first / 64, lw = (u.last - 1) / 64;
            uint64_t lo = ~0ull << (u.first % 64), hi = ~0ull >> (63 - (u.last - 1) % 64);
            if (fw == lw) {
                acc = ua_scan_load(&g->words[fw]) & lo & hi;
            } else {
                if (lw - fw - 1 > UA_INLINE_SCAN_WORDS)
                    break;
                acc = (ua_scan_load(&g->words[fw]) & lo) | (ua_scan_load(&g->words[lw]) & hi);
                for (uint64_t w = fw + 1; w < lw; w++)
                    acc |= ua_scan_load(&g->words[w]);
            }
        }
        if (accept && acc)
            break;                      /* something to accept */
        if (want_results)
            results[i] = (ua_op_result){UA_OK, !accept && acc, 0, 0};
    }
    ua_scan_fence();
    return i;
}

/* Out of line, so that run_one's calls do not push the geometry to the
 * stack. */
__attribute__((noinline)) static size_t run_fast_results(const struct geom *g, const ua_op *ops,
                                                         size_t i, size_t n,
                                                         ua_op_result *results,
                                                         const volatile int *cancel)
{
    return run_fast(g, ops, i, n, results, cancel, 1);
}

__attribute__((noinline)) static size_t run_fast_no_results(const struct geom *g,
                                                            const ua_op *ops, size_t i,
                                                            size_t n, const volatile int *cancel)
{
    return run_fast(g, ops, i, n, NULL, cancel, 0);
}

ua_status ua_run_ops(ua_table *t, const ua_op *ops, size_t n, ua_op_result *results,
                     size_t *cursor)
{
    if (!t || !cursor || (n && !ops))
        return UA_E_INVAL;
    /* The cancel flag cannot change under us: ua_table_set_cancel is not
     * for while accepts run. */
    const volatile int *cancel = t->cancel;
    struct geom g = geom_of(t);
    size_t i = *cursor;
    while (i < n) {
        i = results ? run_fast_results(&g, ops, i, n, results, cancel)
                    : run_fast_no_results(&g, ops, i, n, cancel);
        if (i == n)
            break;
        ua_status st = run_one(t, &g, &ops[i], results ? &results[i] : NULL);
        if (st != UA_OK) {
            *cursor = i;
            return st;
        }
        i++;
    }
    *cursor = n;
    return UA_OK;
}

/* ---- recorder ---- */

struct ua_recorder {
    pthread_mutex_t lock;
    ua_range *items;
    size_t count, cap;
    ua_accept_fn next;
    void *next_ctx;
};

ua_status ua_recorder_create(ua_accept_fn next, void *next_ctx, ua_recorder **out)
{
    if (!out)
        return UA_E_INVAL;
    ua_recorder *r = calloc(1, sizeof(*r));
    if (!r)
        return UA_E_NOMEM;
    pthread_mutex_init(&r->lock, NULL);
    r->next = next;
    r->next_ctx = next_ctx;
    *out = r;
    return UA_OK;
}

void ua_recorder_destroy(ua_recorder *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->items);
    free(r);
}

int ua_recorder_accept(void *recorder, uint64_t start, uint64_t end, uint32_t vcpu)
{
    ua_recorder *r = recorder;
    if (!r)
        return UA_E_INVAL;
    /* forward first: a range the next primitive failed was not accepted
     * and is not recorded */
    int st = r->next ? r->next(r->next_ctx, start, end, vcpu) : UA_OK;
    if (st)
        return st;
    pthread_mutex_lock(&r->lock);
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        ua_range *items = realloc(r->items, cap * sizeof(*items));
        if (!items) {
            pthread_mutex_unlock(&r->lock);
            return UA_E_NOMEM;
        }
        r->items = items;
        r->cap = cap;
    }
    r->items[r->count++] = (ua_range){start, end};
    pthread_mutex_unlock(&r->lock);
    return UA_OK;
}

size_t ua_recorder_count(const ua_recorder *r)
{
    if (!r)
        return 0;
    pthread_mutex_lock((pthread_mutex_t *)&r->lock);
    size_t n = r->count;
    pthread_mutex_unlock((pthread_mutex_t *)&r->lock);
    return n;
}

ua_status ua_recorder_get(const ua_recorder *r, size_t first, size_t n, ua_range *out)
{
    if (!r || (n && !out))
        return UA_E_INVAL;
    pthread_mutex_lock((pthread_mutex_t *)&r->lock);
    ua_status st = UA_OK;
    if (first > r->count || n > r->count - first)
        st = UA_E_RANGE;
    else if (n)
        memcpy(out, r->items + first, n * sizeof(*out));
    pthread_mutex_unlock((pthread_mutex_t *)&r->lock);
    return st;
}

void ua_recorder_reset(ua_recorder *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->count = 0;
    pthread_mutex_unlock(&r->lock);
}
