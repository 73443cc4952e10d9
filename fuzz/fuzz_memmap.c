/* fuzz_memmap.c - EFI memory maps: ua_memmap_check, ua_table_from_memmap
 * (allocate_unaccepted_bitmap) and ua_table_process_memmap
 * (process_unaccepted_memory) with a no-op, recorder or failing primitive.
 *
 * Input:
 *   byte 0   unit size 2^(12 + b % 20)
 *   byte 1   flags: 0x01 compact descriptors (else raw 48-byte EFI stride),
 *            0x06 primitive (NULL, ua_accept_noop, recorder, recorder whose
 *            next primitive fails), 0x08 process a second map (the
 *            post-ExitBootServices map) instead of the first, 0x10 start
 *            with a short output capacity, 0x20 a limit for ua_memmap_check
 *   byte 2   number of descriptors of the first map (the rest form the second)
 *   byte 3   failing call / short capacity;  bytes 4-11: the limit
 *   then descriptors: raw (EFI_MEMORY_DESCRIPTOR at a 48-byte stride) or
 *   compact (12 bytes, mostly aligned, sizes spread over powers of two).
 *
 * Invariants:
 *   - ua_memmap_check's verdict matches a naive O(n^2) check; the index it
 *     names has the defect it reports (overlap: the two really overlap);
 *   - ua_table_from_memmap: NULL on failure or without type-15 memory; else
 *     the table Linux sizes (phys_base and size), empty;
 *   - ua_table_process_memmap: a short capacity changes nothing and reports
 *     the capacity needed; every immediately accepted range and every unit
 *     the table marks lies inside a type-15 descriptor; together (disjoint)
 *     they cover the type-15 memory exactly; no bit is set past the bitmap;
 *     the primitive sees exactly the ranges reported, the recorder records
 *     them, and a failing primitive's status comes back.
 */
#include "fuzz_common.h"

#define MAX_DESCS 96
#define MAX_TABLE_BYTES (1u << 20) /* larger tables are sized but not built */

struct map {
    ua_mem_desc d[MAX_DESCS];
    size_t n;
};

static int decode_desc(struct fuzz_in *in, int compact, ua_mem_desc *d)
{
    memset(d, 0, sizeof(*d));
    if (!compact) {
        if (in->n < UA_EFI_DESCRIPTOR_SIZE)
            return 0;
        d->type = (uint32_t)in_le(in, 4);
        in_le(in, 4);
        d->phys_start = in_le(in, 8);
        d->virt_start = in_le(in, 8);
        d->num_pages = in_le(in, 8);
        d->attribute = in_le(in, 8);
        in_le(in, 8);
        return 1;
    }
    if (in->n < 12)
        return 0;
    uint8_t kind = in_u8(in), misc = in_u8(in);
    uint64_t start_pages = in_le(in, 4), pages = in_le(in, 4);
    uint8_t shift = in_u8(in);
    in_u8(in);
    d->type = (kind & 0x80) ? UA_EFI_UNACCEPTED_MEMORY : (uint32_t)(kind & 0x1f);
    d->phys_start = (start_pages << 12) << (shift & 0xf);
    d->num_pages = pages << ((shift >> 4) & 0xf);
    if (misc & 0x01)
        d->phys_start |= (uint64_t)(misc & 0xf0) << 4;         /* misaligned */
    if (misc & 0x02)
        d->phys_start = ~d->phys_start & ~0xfffull;            /* near 2^64 */
    if (misc & 0x04)
        d->num_pages = 0;
    return 1;
}

static fuzz_u128 desc_end(const ua_mem_desc *d)
{
    return (fuzz_u128)d->phys_start + (fuzz_u128)d->num_pages * UA_PAGE_SIZE;
}

/* The per-descriptor defect of d (0 if none). */
static int desc_defect(const ua_mem_desc *d, uint64_t limit)
{
    if (d->phys_start % UA_PAGE_SIZE)
        return UA_E_ALIGN;
    if (d->num_pages == 0)
        return UA_E_EMPTY;
    fuzz_u128 end = desc_end(d);
    if (end >= FUZZ_U64_LIMIT || (limit && end > limit))
        return UA_E_RANGE;
    return 0;
}

static int overlap(const ua_mem_desc *a, const ua_mem_desc *b)
{
    return a->phys_start < desc_end(b) && b->phys_start < desc_end(a);
}

/* Naive validation: 0, or the status of some defect (any will do). */
static int naive_check(const struct map *m, uint64_t limit)
{
    for (size_t i = 0; i < m->n; i++)
        if (desc_defect(&m->d[i], limit))
            return desc_defect(&m->d[i], limit);
    for (size_t i = 0; i < m->n; i++)
        for (size_t j = i + 1; j < m->n; j++)
            if (overlap(&m->d[i], &m->d[j]))
                return UA_E_OVERLAP;
    return 0;
}

static void check_memmap_check(const struct map *m, uint64_t limit)
{
    size_t bad = (size_t)-1, other = (size_t)-1;
    int st = ua_memmap_check(m->d, m->n, limit, &bad, &other);
    FUZZ_STATUS(st);
    int naive = naive_check(m, limit);
    if (!naive) {
        FUZZ_CHECK(st == UA_OK, "valid map rejected with %d (bad %zu, other %zu)", st, bad,
                   other);
        return;
    }
    FUZZ_CHECK(st != UA_OK, "invalid map (%d) accepted", naive);
    FUZZ_CHECK(bad < m->n && other < m->n, "indices %zu, %zu of %zu", bad, other, m->n);
    if (st == UA_E_OVERLAP) {
        FUZZ_CHECK(bad != other && overlap(&m->d[bad], &m->d[other]) &&
                       !desc_defect(&m->d[bad], limit) && !desc_defect(&m->d[other], limit),
                   "descriptors %zu and %zu reported as overlapping", bad, other);
    } else {
        FUZZ_CHECK(bad == other && desc_defect(&m->d[bad], limit) == st,
                   "descriptor %zu reported with %d, its defect is %d", bad, st,
                   desc_defect(&m->d[bad], limit));
    }
}

/* ---- the primitive --------------------------------------------------------- */
struct prim {
    const struct map *m;       /* the map being processed */
    uint32_t vcpu;
    unsigned calls, fail_at;   /* fail_at: 1-based call that fails, 0 = never */
    int fail_status;
    ua_range seen[4 * MAX_DESCS];
    unsigned nseen;
};

static int inside_type15(const struct map *m, uint64_t start, uint64_t end)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->d[i].type == UA_EFI_UNACCEPTED_MEMORY && start >= m->d[i].phys_start &&
            (fuzz_u128)end <= desc_end(&m->d[i]))
            return 1;
    return 0;
}

static int checking_accept(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu)
{
    struct prim *p = ctx;
    FUZZ_CHECK(start < end && start % UA_PAGE_SIZE == 0 && end % UA_PAGE_SIZE == 0,
               "primitive got [%#llx, %#llx)", (unsigned long long)start,
               (unsigned long long)end);
    FUZZ_CHECK(inside_type15(p->m, start, end),
               "immediate accept [%#llx, %#llx) outside every type-15 descriptor",
               (unsigned long long)start, (unsigned long long)end);
    FUZZ_CHECK(vcpu == p->vcpu, "vcpu %u, expected %u", vcpu, p->vcpu);
    FUZZ_CHECK(p->nseen < 4 * MAX_DESCS, "more than 4 pieces per descriptor");
    p->seen[p->nseen++] = (ua_range){start, end};
    if (++p->calls == p->fail_at)
        return p->fail_status;
    return UA_OK;
}

/* ---- cover check --------------------------------------------------------------- */
static int by_start(const void *a, const void *b)
{
    const ua_range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* The pieces plus the marked units, sorted, are disjoint and their union is
 * the union of the map's type-15 descriptors. */
static void check_cover(const struct map *m, const ua_table *t, const ua_range *pieces,
                        size_t npieces)
{
    ua_table_info info;
    FUZZ_CHECK(ua_table_info_get(t, &info) == UA_OK, "info");
    size_t cap = npieces + 2 * MAX_DESCS + 1, n = 0, nd = 0;
    ua_range *all = malloc(cap * sizeof(*all)), *descs = malloc(MAX_DESCS * sizeof(*descs));
    FUZZ_CHECK(all && descs, "out of memory");
    for (size_t i = 0; i < npieces; i++)
        all[n++] = pieces[i];
    const uint64_t *words = ua_table_words(t);
    uint64_t pos = 0, rs, re;
    while (ua_bitmap_next_run(words, info.nbits, &pos, info.nbits, &rs, &re)) {
        uint64_t s = info.phys_base + rs * info.unit_size, e = info.phys_base + re * info.unit_size;
        /* every marked unit lies inside one type-15 descriptor: with the
         * union checked below, no descriptor edge may cut a unit of the run */
        for (size_t k = 0; k < m->n; k++) {
            if (m->d[k].type != UA_EFI_UNACCEPTED_MEMORY)
                continue;
            uint64_t edge[2] = {m->d[k].phys_start, (uint64_t)desc_end(&m->d[k])};
            for (int x = 0; x < 2; x++)
                FUZZ_CHECK(!(edge[x] > s && edge[x] < e) ||
                               (edge[x] - info.phys_base) % info.unit_size == 0,
                           "marked run [%#llx, %#llx) has a unit cut by the edge %#llx of "
                           "descriptor %zu",
                           (unsigned long long)s, (unsigned long long)e,
                           (unsigned long long)edge[x], k);
        }
        FUZZ_CHECK(n < cap, "more runs than descriptors");
        all[n++] = (ua_range){s, e};
    }
    for (size_t i = 0; i < m->n; i++)
        if (m->d[i].type == UA_EFI_UNACCEPTED_MEMORY)
            descs[nd++] = (ua_range){m->d[i].phys_start, (uint64_t)desc_end(&m->d[i])};
    qsort(all, n, sizeof(*all), by_start);
    qsort(descs, nd, sizeof(*descs), by_start);
    /* merge both into maximal intervals and compare */
    size_t i = 0, j = 0;
    while (i < n || j < nd) {
        FUZZ_CHECK(i < n && j < nd, "cover has %zu extra / %zu missing intervals", n - i, nd - j);
        uint64_t a0 = all[i].start, a1 = all[i].end;
        for (i++; i < n && all[i].start <= a1; i++) {
            FUZZ_CHECK(all[i].start == a1, "pieces/units overlap at %#llx",
                       (unsigned long long)all[i].start);
            a1 = all[i].end;
        }
        uint64_t d0 = descs[j].start, d1 = descs[j].end;
        for (j++; j < nd && descs[j].start == d1; j++)
            d1 = descs[j].end;
        FUZZ_CHECK(a0 == d0 && a1 == d1,
                   "accepted + marked [%#llx, %#llx) vs type-15 memory [%#llx, %#llx)",
                   (unsigned long long)a0, (unsigned long long)a1, (unsigned long long)d0,
                   (unsigned long long)d1);
    }
    free(all);
    free(descs);
}

/* ---- table sizing ------------------------------------------------------------------ */
/* Linux's allocate_unaccepted_bitmap(): 0 with the base and size, or a status. */
static int linux_size(const struct map *m, uint64_t unit, uint64_t *base, uint64_t *bytes)
{
    uint64_t lo = UINT64_MAX;
    fuzz_u128 hi = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->d[i].type == UA_EFI_UNACCEPTED_MEMORY) {
            if (m->d[i].phys_start < lo)
                lo = m->d[i].phys_start;
            if (desc_end(&m->d[i]) > hi)
                hi = desc_end(&m->d[i]);
        }
    if (hi == 0)
        return -1; /* no table */
    *base = lo / unit * unit;
    fuzz_u128 end = (hi + unit - 1) / unit * unit;
    fuzz_u128 per_byte = (fuzz_u128)unit * 8;
    fuzz_u128 size = (end - *base + per_byte - 1) / per_byte;
    if (size > UA_MAX_BITMAP_BYTES)
        return UA_E_TOO_LARGE;
    *bytes = (uint64_t)size;
    if ((fuzz_u128)*base + size * per_byte >= FUZZ_U64_LIMIT)
        return UA_E_RANGE; /* coverage would pass 2^64 (ua_table_create) */
    return 0;
}

static void process(ua_table *t, const struct map *b, struct prim *p, int mode, int full_cap,
                    uint8_t cap0, uint32_t vcpu)
{
    size_t n15 = 0;
    for (size_t i = 0; i < b->n; i++)
        n15 += b->d[i].type == UA_EFI_UNACCEPTED_MEMORY;
    size_t full = 4 * n15 + 1;
    ua_range *out = calloc(full, sizeof(*out));
    FUZZ_CHECK(out != NULL, "out of memory");
    ua_recorder *rec = NULL;
    ua_accept_fn fn = NULL;
    void *ctx = NULL;
    if (mode == 1) {
        fn = ua_accept_noop;
    } else if (mode >= 2) {
        FUZZ_CHECK(ua_recorder_create(checking_accept, p, &rec) == UA_OK, "recorder");
        fn = ua_recorder_accept;
        ctx = rec;
    }
    int valid = !naive_check(b, 0);
    size_t cap = full_cap ? full : cap0 % full;
    size_t n_out = 12345;
    int st = ua_table_process_memmap(t, b->d, b->n, fn, ctx, vcpu, out, cap, &n_out);
    FUZZ_STATUS(st);
    if (st == UA_E_BUFFER) {
        FUZZ_CHECK(valid && n_out > cap && n_out <= 4 * n15,
                   "short capacity %zu: needs %zu (%zu type-15 descriptors)", cap, n_out, n15);
        FUZZ_CHECK(p->calls == 0 && ua_table_count_unaccepted(t) == 0,
                   "a short capacity changed something");
        cap = n_out;
        n_out = 12345;
        st = ua_table_process_memmap(t, b->d, b->n, fn, ctx, vcpu, out, cap, &n_out);
        FUZZ_STATUS(st);
        FUZZ_CHECK(st != UA_E_BUFFER, "the capacity it asked for is short");
    }
    if (!valid) {
        FUZZ_CHECK(st == naive_check(b, 0) || st == UA_E_OVERLAP || st == UA_E_ALIGN ||
                       st == UA_E_EMPTY || st == UA_E_RANGE,
                   "invalid map processed with %d", st);
        FUZZ_CHECK(n_out == 0 && p->calls == 0 && ua_table_count_unaccepted(t) == 0,
                   "an invalid map changed something");
    } else if (st == UA_OK) {
        FUZZ_CHECK(n_out <= cap && n_out <= 4 * n15, "%zu pieces, capacity %zu", n_out, cap);
        if (mode >= 2) {
            FUZZ_CHECK(p->nseen == n_out, "primitive saw %u of %zu pieces", p->nseen, n_out);
            for (size_t i = 0; i < n_out; i++)
                FUZZ_CHECK(p->seen[i].start == out[i].start && p->seen[i].end == out[i].end,
                           "piece %zu differs from what the primitive saw", i);
            FUZZ_CHECK(ua_recorder_count(rec) == n_out, "recorder has %zu of %zu",
                       ua_recorder_count(rec), n_out);
            for (size_t i = 0; i < n_out; i++) {
                ua_range r;
                FUZZ_CHECK(ua_recorder_get(rec, i, 1, &r) == UA_OK && r.start == out[i].start &&
                               r.end == out[i].end,
                           "recorded piece %zu", i);
            }
        }
        for (size_t i = 0; i < n_out; i++)
            FUZZ_CHECK(out[i].start < out[i].end && inside_type15(b, out[i].start, out[i].end),
                       "reported piece %zu [%#llx, %#llx) outside type-15 memory", i,
                       (unsigned long long)out[i].start, (unsigned long long)out[i].end);
        check_cover(b, t, out, n_out);
    } else {
        /* only the primitive can fail a valid map with room enough */
        FUZZ_CHECK(mode == 3 && p->calls == p->fail_at,
                   "process failed with %d without a failing primitive", st);
        int want = p->fail_status > 0 && p->fail_status < 64 ? p->fail_status
                                                             : UA_E_ACCEPT_FAILED;
        FUZZ_CHECK(st == want, "primitive failed with %d, process returned %d", p->fail_status,
                   st);
        FUZZ_CHECK(n_out == p->calls && ua_recorder_count(rec) == p->calls - 1u,
                   "failing call %u: n_out %zu, recorded %zu", p->calls, n_out,
                   ua_recorder_count(rec));
    }
    /* never a bit past the bitmap */
    ua_table_info info;
    FUZZ_CHECK(ua_table_info_get(t, &info) == UA_OK, "info");
    FUZZ_CHECK(ua_table_count_unaccepted(t) <= info.nbits, "count past nbits");
    uint64_t nwords = (info.nbits + 63) / 64;
    if (nwords && info.nbits % 64)
        FUZZ_CHECK((ua_table_words(t)[nwords - 1] >> (info.nbits % 64)) == 0,
                   "bits set past nbits");
    ua_recorder_destroy(rec);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    const uint64_t unit = 1ull << (12 + in_u8(&in) % 20);
    const uint8_t flags = in_u8(&in), nfirst = in_u8(&in), knob = in_u8(&in);
    const uint64_t limit = (flags & 0x20) ? in_le(&in, 8) : (in_le(&in, 8), 0);
    const int compact = flags & 1, mode = (flags >> 1) & 3;
    static struct map a, b;
    a.n = b.n = 0;
    ua_mem_desc d;
    while (a.n < MAX_DESCS && a.n < nfirst && decode_desc(&in, compact, &d))
        a.d[a.n++] = d;
    while (b.n < MAX_DESCS && decode_desc(&in, compact, &d))
        b.d[b.n++] = d;
    const struct map *final_map = (flags & 8) ? &b : &a;

    check_memmap_check(&a, limit);
    if (final_map == &b)
        check_memmap_check(&b, limit);

    /* allocate_unaccepted_bitmap() */
    uint64_t base = 0, bytes = 0;
    int want = naive_check(&a, 0);
    if (!want)
        want = linux_size(&a, unit, &base, &bytes);
    if (want == 0 && bytes > MAX_TABLE_BYTES)
        return 0; /* too slow to build and scan at fuzzing rates */
    static char sentinel;
    ua_table *t = (ua_table *)(void *)&sentinel;
    int st = ua_table_from_memmap(a.d, a.n, (uint32_t)unit, &t);
    FUZZ_STATUS(st);
    if (want == -1) {
        FUZZ_CHECK(st == UA_OK && t == NULL, "no type-15 memory: status %d, table %p", st,
                   (void *)t);
        return 0;
    }
    if (want) {
        FUZZ_CHECK(st != UA_OK && t == NULL, "expected failure %d, got %d (table %p)", want, st,
                   (void *)t);
        if (want == UA_E_TOO_LARGE || want == UA_E_RANGE)
            FUZZ_CHECK(st == want, "sizing failure %d reported as %d", want, st);
        return 0;
    }
    FUZZ_CHECK(st == UA_OK && t != NULL, "from_memmap failed with %d", st);
    ua_table_info info;
    FUZZ_CHECK(ua_table_info_get(t, &info) == UA_OK, "info");
    FUZZ_CHECK(info.unit_size == unit && info.phys_base == base && info.size == bytes,
               "table base %#llx size %llu, Linux sizes base %#llx size %llu",
               (unsigned long long)info.phys_base, (unsigned long long)info.size,
               (unsigned long long)base, (unsigned long long)bytes);
    FUZZ_CHECK(ua_table_count_unaccepted(t) == 0, "a new table is not empty");

    /* process_unaccepted_memory() for the final map */
    struct prim p;
    memset(&p, 0, sizeof(p));
    p.m = final_map;
    p.vcpu = knob & 3;
    p.fail_at = mode == 3 ? 1u + knob % 8 : 0;
    p.fail_status = (knob & 0x40) ? UA_E_GUEST_PANIC : (knob & 0x20) ? -1 : 100;
    process(t, final_map, &p, mode, !(flags & 0x10), knob, p.vcpu);
    ua_table_destroy(t);
    return 0;
}
