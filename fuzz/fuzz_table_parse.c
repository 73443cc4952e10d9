/* fuzz_table_parse.c - ua_table_parse, the binary LINUX_EFI_UNACCEPTED_MEM_TABLE.
 *
 * Input: any bytes, parsed as a table (24-byte header + bitmap).  Bytes past
 * the table (the "tail") drive a few queries on the parsed table.
 *
 * Invariants:
 *   - the status is documented; on failure *out is NULL (it was not NULL
 *     before the call) and the status is one a parse can give; a header with
 *     one defect gets that defect's status; a well-formed table parses;
 *   - on success the table reports the header's geometry, serializes to
 *     exactly the bytes it consumed (and reports UA_E_BUFFER with the size it
 *     needs for a short buffer), counts as many unaccepted units as the input
 *     bitmap has set bits (<= nbits), keeps the bits past nbits zero, and its
 *     runs, find_next_* and counts agree with a plain bit scan;
 *   - one byte short of the bitmap is UA_E_TRUNCATED; a round trip parses to
 *     the same table; ua_range_contains_unaccepted agrees with Linux's
 *     one-unit-at-a-time loop; ua_table_mark changes exactly its range.
 */
#include "fuzz_common.h"

enum { D_VERSION, D_UNIT, D_TOO_LARGE, D_ALIGN, D_RANGE, D_TRUNCATED, D_COUNT };

/* The header's defects, one flag each (unaccepted.h: ua_table_create and the
 * binary form). */
static unsigned defects(const uint8_t *data, size_t size)
{
    if (size < UA_TABLE_HEADER_SIZE)
        return 1u << D_TRUNCATED;
    uint64_t version = le_at(data, 4), unit = le_at(data + 4, 4);
    uint64_t base = le_at(data + 8, 8), bytes = le_at(data + 16, 8);
    unsigned d = 0;
    if (version != UA_TABLE_VERSION)
        d |= 1u << D_VERSION;
    int pow2 = unit && !(unit & (unit - 1));
    if (!pow2 || unit < UA_PAGE_SIZE)
        d |= 1u << D_UNIT;
    if (bytes > UA_MAX_BITMAP_BYTES)
        d |= 1u << D_TOO_LARGE;
    if (base % UA_PAGE_SIZE)
        d |= 1u << D_ALIGN;
    if (!(d & ((1u << D_UNIT) | (1u << D_TOO_LARGE))) &&
        (fuzz_u128)base + (fuzz_u128)bytes * 8 * unit >= FUZZ_U64_LIMIT)
        d |= 1u << D_RANGE;
    if (size - UA_TABLE_HEADER_SIZE < bytes)
        d |= 1u << D_TRUNCATED;
    return d;
}

static const int DEFECT_STATUS[D_COUNT] = {UA_E_VERSION, UA_E_UNIT_SIZE, UA_E_TOO_LARGE,
                                           UA_E_ALIGN,   UA_E_RANGE,     UA_E_TRUNCATED};

static void check_queries(ua_table *t, const ua_table_info *info, const uint8_t *bm,
                          struct fuzz_in *tail)
{
    const uint64_t nbits = info->nbits;
    const struct fuzz_geom g = {info->phys_base, info->unit_size, nbits};
    uint8_t *shadow = malloc(info->size ? info->size : 1);
    FUZZ_CHECK(shadow != NULL, "out of memory");
    memcpy(shadow, bm, info->size);
    const uint64_t *words = ua_table_words(t);
    for (int q = 0; q < 8 && tail->n; q++) {
        uint8_t kind = in_u8(tail);
        uint64_t a = nbits ? in_le(tail, 2) % (nbits + 2) : in_le(tail, 1) % 2;
        uint64_t b = nbits ? in_le(tail, 2) % (nbits + 2) : in_le(tail, 1) % 2;
        switch (kind % 4) {
        case 0: { /* find_next_set / find_next_zero / count against a scan */
            uint64_t ns = nbits, nz = nbits, cnt = 0;
            for (uint64_t i = a; i < nbits; i++) {
                if (ns == nbits && bit_of(shadow, i))
                    ns = i;
                if (nz == nbits && !bit_of(shadow, i))
                    nz = i;
            }
            for (uint64_t i = a; i < b && i < nbits; i++)
                cnt += (uint64_t)bit_of(shadow, i);
            FUZZ_CHECK(ua_bitmap_find_next_set(words, nbits, a) == ns, "find_next_set(%llu)",
                       (unsigned long long)a);
            FUZZ_CHECK(ua_bitmap_find_next_zero(words, nbits, a) == nz, "find_next_zero(%llu)",
                       (unsigned long long)a);
            FUZZ_CHECK(ua_bitmap_count(words, nbits, a, b) == cnt, "count [%llu, %llu)",
                       (unsigned long long)a, (unsigned long long)b);
            FUZZ_CHECK(ua_bitmap_any(words, nbits, a, b) == (cnt != 0), "any [%llu, %llu)",
                       (unsigned long long)a, (unsigned long long)b);
            break;
        }
        case 1: { /* range_contains_unaccepted against Linux's loop */
            uint64_t start = g.phys_base + a * g.unit + (in_le(tail, 2) << 4);
            uint64_t size = b * g.unit + (in_le(tail, 2) << 4);
            if (kind & 0x80)
                start = (uint64_t)0 - (start & 0xffffff);
            int got = -1, want = ref_contains(&g, shadow, start, size);
            int st = ua_range_contains_unaccepted(t, start, size, &got);
            FUZZ_STATUS(st);
            if (want < 0) {
                FUZZ_CHECK(st == UA_E_RANGE, "contains past 2^64 gave %d", st);
            } else {
                FUZZ_CHECK(st == UA_OK && got == want,
                           "contains(%#llx, %#llx) = %d (status %d), Linux says %d",
                           (unsigned long long)start, (unsigned long long)size, got, st, want);
            }
            break;
        }
        case 2: { /* mark changes exactly [a, b) */
            int un = kind & 0x10;
            int st = ua_table_mark(t, a, b, un);
            FUZZ_STATUS(st);
            if (a > b || b > nbits) {
                FUZZ_CHECK(st == UA_E_RANGE, "mark [%llu, %llu) of %llu gave %d",
                           (unsigned long long)a, (unsigned long long)b,
                           (unsigned long long)nbits, st);
                break;
            }
            FUZZ_CHECK(st == UA_OK, "mark gave %d", st);
            for (uint64_t i = a; i < b; i++) {
                if (un)
                    shadow[i / 8] |= (uint8_t)(1u << (i % 8));
                else
                    shadow[i / 8] &= (uint8_t)~(1u << (i % 8));
            }
            break;
        }
        default: { /* runs cover exactly the set bits */
            uint64_t pos = a, rs, re, expect = a, total = 0;
            while (ua_bitmap_next_run(words, nbits, &pos, b, &rs, &re)) {
                FUZZ_CHECK(rs >= expect && rs < re && re <= b && re <= nbits && pos == re,
                           "run [%llu, %llu) after %llu", (unsigned long long)rs,
                           (unsigned long long)re, (unsigned long long)expect);
                for (uint64_t i = expect; i < rs; i++)
                    FUZZ_CHECK(!bit_of(shadow, i), "bit %llu set between runs",
                               (unsigned long long)i);
                for (uint64_t i = rs; i < re; i++)
                    FUZZ_CHECK(bit_of(shadow, i), "bit %llu clear inside a run",
                               (unsigned long long)i);
                total += re - rs;
                expect = re;
            }
            for (uint64_t i = expect; i < b && i < nbits; i++)
                FUZZ_CHECK(!bit_of(shadow, i), "bit %llu set after the last run",
                           (unsigned long long)i);
            (void)total;
            break;
        }
        }
    }
    uint8_t *now = malloc(info->size ? info->size : 1);
    FUZZ_CHECK(now != NULL, "out of memory");
    FUZZ_CHECK(ua_table_bitmap_read(t, 0, info->size, now) == UA_OK, "bitmap_read");
    FUZZ_CHECK(memcmp(now, shadow, info->size) == 0, "bitmap differs from the model");
    free(now);
    free(shadow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char sentinel;
    ua_table *t = (ua_table *)(void *)&sentinel;
    int st = ua_table_parse(data, size, &t);
    FUZZ_STATUS(st);
    unsigned d = defects(data, size);
    if (st != UA_OK) {
        FUZZ_CHECK(t == NULL, "failed parse (%d) left *out = %p", st, (void *)t);
        FUZZ_CHECK(d != 0, "a well-formed table failed to parse with %d", st);
        int known = 0;
        for (int i = 0; i < D_COUNT; i++)
            known |= st == DEFECT_STATUS[i] && (d & (1u << i));
        FUZZ_CHECK(known || st == UA_E_NOMEM, "status %d names no defect of the input (%#x)",
                   st, d);
        if (!(d & (d - 1))) /* one defect: it is the one reported */
            FUZZ_CHECK(st == DEFECT_STATUS[__builtin_ctz(d)], "single defect %#x reported as %d",
                       d, st);
        return 0;
    }
    FUZZ_CHECK(d == 0, "parsed a table with defects %#x", d);

    ua_table_info info;
    FUZZ_CHECK(ua_table_info_get(t, &info) == UA_OK, "info_get");
    const uint64_t bytes = le_at(data + 16, 8);
    FUZZ_CHECK(info.version == UA_TABLE_VERSION && info.unit_size == le_at(data + 4, 4) &&
                   info.phys_base == le_at(data + 8, 8) && info.size == bytes &&
                   info.nbits == bytes * 8 &&
                   info.coverage_end == info.phys_base + info.nbits * info.unit_size,
               "geometry differs from the header");

    /* serialize: exactly the consumed bytes */
    const size_t need = UA_TABLE_HEADER_SIZE + (size_t)bytes;
    FUZZ_CHECK(ua_table_serialized_size(t) == need, "serialized_size");
    uint8_t *buf = malloc(need);
    FUZZ_CHECK(buf != NULL, "out of memory");
    size_t written = 0;
    FUZZ_CHECK(ua_table_serialize(t, buf, need - 1, &written) == UA_E_BUFFER && written == need,
               "short buffer: written %zu, need %zu", written, need);
    FUZZ_CHECK(ua_table_serialize(t, buf, need, &written) == UA_OK && written == need,
               "serialize");
    FUZZ_CHECK(memcmp(buf, data, need) == 0, "serialized bytes differ from the input");

    /* counts and the words */
    const uint8_t *bm = data + UA_TABLE_HEADER_SIZE;
    uint64_t pop = 0;
    for (uint64_t i = 0; i < bytes; i++)
        pop += (uint64_t)__builtin_popcount(bm[i]);
    uint64_t count = ua_table_count_unaccepted(t);
    FUZZ_CHECK(count == pop && count <= info.nbits, "count %llu, input has %llu of %llu",
               (unsigned long long)count, (unsigned long long)pop,
               (unsigned long long)info.nbits);
    const uint64_t *words = ua_table_words(t);
    FUZZ_CHECK(words != NULL, "words");
    uint64_t nwords = (info.nbits + 63) / 64;
    if (nwords && info.nbits % 64)
        FUZZ_CHECK((words[nwords - 1] >> (info.nbits % 64)) == 0, "bits set past nbits");
    uint8_t one;
    FUZZ_CHECK(ua_table_bitmap_read(t, bytes, 1, &one) == UA_E_RANGE, "read past the bitmap");

    /* one byte short is truncated; a round trip gives the same table */
    if (bytes) {
        ua_table *shorter = (ua_table *)(void *)&sentinel;
        FUZZ_CHECK(ua_table_parse(data, need - 1, &shorter) == UA_E_TRUNCATED && !shorter,
                   "one byte short");
    }
    ua_table *again = NULL;
    FUZZ_CHECK(ua_table_parse(buf, need, &again) == UA_OK, "round trip");
    FUZZ_CHECK(ua_table_count_unaccepted(again) == count, "round trip count");
    ua_table_destroy(again);
    free(buf);

    struct fuzz_in tail = {data + need, size - need};
    check_queries(t, &info, bm, &tail);
    ua_table_destroy(t);
    return 0;
}
