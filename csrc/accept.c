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

/* The steps accept_memory() and range_contains_unaccepted_memory() share:
 * clamp [start, end) to phys_base, make it relative, add the guard unit when
 * the end is unit aligned, clamp to the bitmap.  Returns 0 when the range
 * ends below phys_base (nothing to do), else 1 with the offsets. */
static int linux_offsets(const ua_table *t, uint64_t start, ua_u128 end, ua_u128 *so,
                         ua_u128 *eo)
{
    if (end < t->phys_base)
        return 0;
    if (start < t->phys_base)
        start = t->phys_base;
    *so = start - t->phys_base;
    *eo = end - t->phys_base;
    /* Guard unit: load_unaligned_zeropad() may touch the next unit. */
    if ((*eo & (t->unit_size - 1)) == 0)
        *eo += t->unit_size;
    ua_u128 cov = (ua_u128)t->nbits << t->unit_shift;
    if (*eo > cov)
        *eo = cov;
    return 1;
}

/* Unit range [*first, *last) that accept_memory(start, size) works on, or
 * first == last when there is nothing to do. */
static ua_status accept_units(const ua_table *t, uint64_t start, uint64_t size, uint64_t *first,
                              uint64_t *last)
{
    *first = *last = 0;
    ua_u128 end = (ua_u128)start + size;
    if (end >= UA_U64_LIMIT)
        return UA_E_RANGE;
    /* Page widening first, so the guard test sees the real end. */
    end = (end + UA_PAGE_SIZE - 1) & ~(ua_u128)(UA_PAGE_SIZE - 1);
    ua_u128 so, eo;
    if (!linux_offsets(t, start & ~(uint64_t)(UA_PAGE_SIZE - 1), end, &so, &eo))
        return UA_OK;
    uint64_t f = (uint64_t)(so >> t->unit_shift);
    uint64_t l = (uint64_t)((eo + t->unit_size - 1) >> t->unit_shift);
    if (f < l) {
        *first = f;
        *last = l;
    }
    return UA_OK;
}

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

ua_status ua_accept_memory(ua_table *t, uint64_t start, uint64_t size, uint32_t vcpu,
                           ua_accept_result *result)
{
    ua_accept_result res = {0, 0, 0};
    if (result)
        *result = res;
    if (!t)
        return UA_E_INVAL;
    uint64_t first, last;
    ua_status st = accept_units(t, start, size, &first, &last);
    if (st || first == last)
        return st;
    if (!ua_bitmap_any_acquire(t->words, t->nbits, first, last))
        return UA_OK;

    struct ua_accept_range me = {first, last, pthread_self(), NULL};
    pthread_mutex_lock(&t->lock);
    const struct ua_accept_range *busy;
    while ((busy = overlaps_in_flight(t, first, last))) {
        if (pthread_equal(busy->owner, me.owner)) {
            /* the primitive called accept_memory() on the range it is
             * accepting: waiting for itself would never end */
            pthread_mutex_unlock(&t->lock);
            return UA_E_STATE;
        }
        res.waits++;
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
        res.runs++;
        res.units += re - rs;
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
    ua_u128 end = (ua_u128)start + size, so, eo;
    if (end >= UA_U64_LIMIT)
        return UA_E_RANGE;
    if (!linux_offsets(t, start, end, &so, &eo))
        return UA_OK;
    if (so >= eo)
        return UA_OK;
    /* Linux tests bit (so + k*unit) / unit for every k with so + k*unit < eo:
     * consecutive bits starting at so / unit. */
    uint64_t first = (uint64_t)(so >> t->unit_shift);
    uint64_t count = (uint64_t)((eo - so + t->unit_size - 1) >> t->unit_shift);
    *out = ua_bitmap_any_acquire(t->words, t->nbits, first, first + count);
    return UA_OK;
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

ua_status ua_run_ops(ua_table *t, const ua_op *ops, size_t n, ua_op_result *results,
                     size_t *cursor)
{
    if (!t || !cursor || (n && !ops))
        return UA_E_INVAL;
    for (size_t i = *cursor; i < n; i++) {
        ua_op_result r = {0, 0, 0, 0};
        ua_status st;
        if (ua_cancelled(t->cancel)) {
            *cursor = i;
            return UA_E_INTERRUPTED;
        }
        switch (ops[i].kind) {
        case UA_OP_ACCEPT: {
            ua_accept_result ar;
            st = ua_accept_memory(t, ops[i].start, ops[i].size, ops[i].vcpu, &ar);
            r.runs = ar.runs;
            r.units = ar.units;
            break;
        }
        case UA_OP_CONTAINS: {
            int c;
            st = ua_range_contains_unaccepted(t, ops[i].start, ops[i].size, &c);
            r.contains = (uint32_t)c;
            break;
        }
        default:
            st = UA_E_OP;
        }
        r.status = st;
        if (results)
            results[i] = r;
        if (st) {
            *cursor = i;
            return st;
        }
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
