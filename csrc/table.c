/* table.c - LINUX_EFI_UNACCEPTED_MEM_TABLE: sizing from a memory map (the EFI
 * stub's allocate_unaccepted_bitmap), per-descriptor processing
 * (process_unaccepted_memory), and the binary form. */
#include <stdlib.h>
#include <string.h>

#include "ua_internal.h"

static ua_status check_geometry(uint32_t unit_size, uint64_t phys_base, uint64_t size)
{
    if (!ua_is_pow2(unit_size) || unit_size < UA_PAGE_SIZE)
        return UA_E_UNIT_SIZE;      /* 2^31 is the largest power of two in a u32 */
    if (size > UA_MAX_BITMAP_BYTES)
        return UA_E_TOO_LARGE;
    if (phys_base % UA_PAGE_SIZE)
        return UA_E_ALIGN;
    ua_u128 end = (ua_u128)phys_base + (ua_u128)size * 8 * unit_size;
    if (end >= UA_U64_LIMIT)
        return UA_E_RANGE;
    return UA_OK;
}

ua_status ua_table_create(uint32_t unit_size, uint64_t phys_base, uint64_t size, ua_table **out)
{
    if (!out)
        return UA_E_INVAL;
    ua_status st = check_geometry(unit_size, phys_base, size);
    if (st)
        return st;
    ua_table *t = calloc(1, sizeof(*t));
    if (!t)
        return UA_E_NOMEM;
    uint64_t nwords = ua_words_for_bits(size * 8);
    t->words = calloc(nwords ? nwords : 1, sizeof(uint64_t));
    if (!t->words) {
        free(t);
        return UA_E_NOMEM;
    }
    t->version = UA_TABLE_VERSION;
    t->unit_size = unit_size;
    t->unit_shift = (unsigned)__builtin_ctz(unit_size);
    t->phys_base = phys_base;
    t->size = size;
    t->nbits = size * 8;
    t->accept = ua_accept_noop;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->done, NULL);
    *out = t;
    return UA_OK;
}

void ua_table_destroy(ua_table *t)
{
    if (!t)
        return;
    pthread_cond_destroy(&t->done);
    pthread_mutex_destroy(&t->lock);
    free(t->words);
    free(t);
}

ua_status ua_table_info_get(const ua_table *t, ua_table_info *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    out->version = t->version;
    out->unit_size = t->unit_size;
    out->phys_base = t->phys_base;
    out->size = t->size;
    out->nbits = t->nbits;
    out->coverage_end = t->phys_base + (t->nbits << t->unit_shift);
    return UA_OK;
}

const uint64_t *ua_table_words(const ua_table *t) { return t ? t->words : NULL; }

uint64_t ua_table_count_unaccepted(const ua_table *t)
{
    return t ? ua_bitmap_count(t->words, t->nbits, 0, t->nbits) : 0;
}

ua_status ua_table_from_memmap(const ua_mem_desc *descs, size_t n, uint32_t unit_size,
                               ua_table **out)
{
    if (!out)
        return UA_E_INVAL;
    *out = NULL;
    if (!ua_is_pow2(unit_size) || unit_size < UA_PAGE_SIZE)
        return UA_E_UNIT_SIZE;
    ua_status st = ua_memmap_check(descs, n, 0, NULL, NULL);
    if (st)
        return st;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (descs[i].type != UA_EFI_UNACCEPTED_MEMORY)
            continue;
        uint64_t end = descs[i].phys_start + descs[i].num_pages * UA_PAGE_SIZE;
        if (descs[i].phys_start < lo)
            lo = descs[i].phys_start;
        if (end > hi)
            hi = end;
    }
    if (hi == 0)
        return UA_OK;               /* no unaccepted memory: no table */
    uint64_t mask = (uint64_t)unit_size - 1;
    uint64_t phys_base = lo & ~mask;
    ua_u128 end = ((ua_u128)hi + mask) & ~(ua_u128)mask;
    ua_u128 span = end - phys_base;
    ua_u128 per_byte = (ua_u128)unit_size * 8;
    ua_u128 size = (span + per_byte - 1) / per_byte;
    if (size > UA_MAX_BITMAP_BYTES)
        return UA_E_TOO_LARGE;
    return ua_table_create(unit_size, phys_base, (uint64_t)size, out);
}

/* The stub's immediate accepts for one descriptor and the units it marks,
 * in the stub's order: whole (< 2 units), else head, tail, below phys_base,
 * past the bitmap.  Returns the number of pieces (<= 4). */
static size_t plan_range(const ua_table *t, uint64_t start, uint64_t end, ua_range pieces[4],
                         uint64_t *first_unit, uint64_t *last_unit)
{
    const uint64_t u = t->unit_size, mask = u - 1, pb = t->phys_base;
    size_t n = 0;
    *first_unit = *last_unit = 0;
    if (end - start < 2 * u) {
        pieces[n++] = (ua_range){start, end};
        return n;
    }
    /* end - start >= 2u, so rounding inside the range cannot overflow. */
    if (start & mask) {
        uint64_t up = (start | mask) + 1;
        pieces[n++] = (ua_range){start, up};
        start = up;
    }
    if (end & mask) {
        uint64_t down = end & ~mask;
        pieces[n++] = (ua_range){down, end};
        end = down;
    }
    if (start < pb) {
        pieces[n++] = (ua_range){start, end < pb ? end : pb};
        start = pb;
    }
    if (end < pb)
        return n;
    uint64_t s = start - pb, e = end - pb;
    uint64_t cov = t->nbits << t->unit_shift;
    if (e > cov) {
        /* Linux accepts [phys_base + cov, end); when the whole remainder lies
         * past the bitmap that would reach below `start`, so only the
         * remainder itself is accepted here (see docs/fidelity.md). */
        uint64_t from = s > cov ? s : cov;
        pieces[n++] = (ua_range){pb + from, pb + e};
        e = cov;
    }
    if (s < e) {
        *first_unit = s >> t->unit_shift;
        *last_unit = e >> t->unit_shift;
    }
    return n;
}

static ua_status check_range(uint64_t start, uint64_t end)
{
    if (start % UA_PAGE_SIZE || end % UA_PAGE_SIZE)
        return UA_E_ALIGN;
    if (end <= start)
        return UA_E_EMPTY;
    return UA_OK;
}

static ua_status apply_range(ua_table *t, uint64_t start, uint64_t end, ua_accept_fn accept,
                             void *ctx, uint32_t vcpu, ua_range *out, size_t *n_out)
{
    ua_range pieces[4];
    uint64_t first, last;
    size_t n = plan_range(t, start, end, pieces, &first, &last);
    for (size_t i = 0; i < n; i++) {
        out[(*n_out)++] = pieces[i];
        if (accept) {
            int st = accept(ctx, pieces[i].start, pieces[i].end, vcpu);
            if (st)
                return st > 0 && st < 64 ? (ua_status)st : UA_E_ACCEPT_FAILED;
        }
    }
    ua_table_mark(t, first, last, 1);
    return UA_OK;
}

ua_status ua_table_process_range(ua_table *t, uint64_t start, uint64_t end, ua_accept_fn accept,
                                 void *ctx, uint32_t vcpu, ua_range *out, size_t cap,
                                 size_t *n_out)
{
    if (!t || !n_out || (cap && !out))
        return UA_E_INVAL;
    *n_out = 0;
    ua_status st = check_range(start, end);
    if (st)
        return st;
    ua_range pieces[4];
    uint64_t first, last;
    size_t need = plan_range(t, start, end, pieces, &first, &last);
    if (need > cap) {
        *n_out = need;
        return UA_E_BUFFER;
    }
    return apply_range(t, start, end, accept, ctx, vcpu, out, n_out);
}

ua_status ua_table_process_memmap(ua_table *t, const ua_mem_desc *descs, size_t n,
                                  ua_accept_fn accept, void *ctx, uint32_t vcpu, ua_range *out,
                                  size_t cap, size_t *n_out)
{
    if (!t || !n_out || (cap && !out))
        return UA_E_INVAL;
    *n_out = 0;
    ua_status st = ua_memmap_check(descs, n, 0, NULL, NULL);
    if (st)
        return st;
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        if (descs[i].type != UA_EFI_UNACCEPTED_MEMORY)
            continue;
        ua_range pieces[4];
        uint64_t first, last;
        uint64_t s = descs[i].phys_start, e = s + descs[i].num_pages * UA_PAGE_SIZE;
        need += plan_range(t, s, e, pieces, &first, &last);
    }
    if (need > cap) {
        *n_out = need;
        return UA_E_BUFFER;
    }
    for (size_t i = 0; i < n; i++) {
        if (descs[i].type != UA_EFI_UNACCEPTED_MEMORY)
            continue;
        uint64_t s = descs[i].phys_start, e = s + descs[i].num_pages * UA_PAGE_SIZE;
        st = apply_range(t, s, e, accept, ctx, vcpu, out, n_out);
        if (st)
            return st;
    }
    return UA_OK;
}

ua_status ua_table_mark(ua_table *t, uint64_t first, uint64_t last, int unaccepted)
{
    if (!t)
        return UA_E_INVAL;
    if (first > last || last > t->nbits)
        return UA_E_RANGE;
    if (first == last)
        return UA_OK;
    /* like the other mutators, not while accepts run (an accepter owns the
     * bits of its range until it leaves) */
    pthread_mutex_lock(&t->lock);
    if (t->accepting) {
        pthread_mutex_unlock(&t->lock);
        return UA_E_STATE;
    }
    /* Atomic per word: an accepter that found nothing to do reads lock-free. */
    for (uint64_t w = first / 64; w <= (last - 1) / 64; w++) {
        unsigned lo = w == first / 64 ? (unsigned)(first % 64) : 0;
        unsigned hi = w == (last - 1) / 64 ? (unsigned)((last - 1) % 64) + 1 : 64;
        uint64_t m = ua_word_mask(lo, hi);
        if (unaccepted)
            __atomic_fetch_or(&t->words[w], m, __ATOMIC_RELEASE);
        else
            __atomic_fetch_and(&t->words[w], ~m, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&t->lock);
    return UA_OK;
}

/* ---- binary form ---- */

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void words_to_bytes(const uint64_t *words, uint64_t first, uint64_t n, uint8_t *out)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t b = first + i;
        out[i] = (uint8_t)(__atomic_load_n(&words[b / 8], __ATOMIC_RELAXED) >> (8 * (b % 8)));
    }
}

size_t ua_table_serialized_size(const ua_table *t)
{
    return t ? (size_t)(UA_TABLE_HEADER_SIZE + t->size) : 0;
}

ua_status ua_table_serialize(const ua_table *t, uint8_t *buf, size_t cap, size_t *written)
{
    if (!t || (cap && !buf))
        return UA_E_INVAL;
    size_t need = ua_table_serialized_size(t);
    if (written)
        *written = need;
    if (cap < need)
        return UA_E_BUFFER;
    put_le(buf, t->version, 4);
    put_le(buf + 4, t->unit_size, 4);
    put_le(buf + 8, t->phys_base, 8);
    put_le(buf + 16, t->size, 8);
    words_to_bytes(t->words, 0, t->size, buf + UA_TABLE_HEADER_SIZE);
    return UA_OK;
}

ua_status ua_table_parse(const uint8_t *buf, size_t len, ua_table **out)
{
    if (!out || (len && !buf))
        return UA_E_INVAL;
    *out = NULL;
    if (len < UA_TABLE_HEADER_SIZE)
        return UA_E_TRUNCATED;
    uint32_t version = (uint32_t)get_le(buf, 4);
    uint32_t unit_size = (uint32_t)get_le(buf + 4, 4);
    uint64_t phys_base = get_le(buf + 8, 8);
    uint64_t size = get_le(buf + 16, 8);
    if (version != UA_TABLE_VERSION)
        return UA_E_VERSION;
    ua_status st = check_geometry(unit_size, phys_base, size);
    if (st)
        return st;
    if (len - UA_TABLE_HEADER_SIZE < size)
        return UA_E_TRUNCATED;
    ua_table *t;
    st = ua_table_create(unit_size, phys_base, size, &t);
    if (st)
        return st;
    st = ua_table_bitmap_write(t, buf + UA_TABLE_HEADER_SIZE, size);
    if (st) {
        ua_table_destroy(t);
        return st;
    }
    *out = t;
    return UA_OK;
}

ua_status ua_table_bitmap_read(const ua_table *t, uint64_t first, uint64_t n, uint8_t *out)
{
    if (!t || (n && !out))
        return UA_E_INVAL;
    if (first > t->size || n > t->size - first)
        return UA_E_RANGE;
    words_to_bytes(t->words, first, n, out);
    return UA_OK;
}

ua_status ua_table_bitmap_write(ua_table *t, const uint8_t *bytes, uint64_t n)
{
    if (!t || (n && !bytes))
        return UA_E_INVAL;
    if (n != t->size)
        return UA_E_RANGE;
    pthread_mutex_lock(&t->lock);
    if (t->accepting) {
        pthread_mutex_unlock(&t->lock);
        return UA_E_STATE;
    }
    uint64_t nwords = ua_words_for_bits(t->nbits);
    for (uint64_t w = 0; w < nwords; w++) {
        uint64_t v = 0;
        for (unsigned i = 0; i < 8 && w * 8 + i < n; i++)
            v |= (uint64_t)bytes[w * 8 + i] << (8 * i);
        __atomic_store_n(&t->words[w], v, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&t->lock);
    return UA_OK;
}
