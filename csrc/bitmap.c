/* bitmap.c - word-at-a-time bit ranges over uint64_t arrays.
 *
 * Every function clamps its range to nbits and touches only the words that
 * hold bits below nbits, so a caller can never make it read or write past
 * ceil(nbits / 64) words. */
#include <string.h>

#include "ua_internal.h"

static inline uint64_t clamp(uint64_t v, uint64_t nbits) { return v > nbits ? nbits : v; }

/* Readers that the library runs on a table's words while accepts may run
 * (find_next and the run iterator inside ua_accept_memory, the count) use
 * relaxed atomic loads (a plain mov on x86-64): accepters on other threads
 * clear neighbouring bits of the same word concurrently (ua_internal.h). */
static inline uint64_t load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

/* The words a bit range [first, last) touches: first and last word with the
 * masks of their bits in the range (fw == lw: both masks apply). */
struct span {
    uint64_t fw, lw;
    uint64_t lo_mask, hi_mask;
};

/* Clamp [first, last) to nbits; 0 when the range is empty. */
static inline int span_of(uint64_t nbits, uint64_t first, uint64_t last, struct span *sp)
{
    last = clamp(last, nbits);
    if (first >= last)
        return 0;
    sp->fw = first / 64;
    sp->lw = (last - 1) / 64;
    sp->lo_mask = ua_word_mask(first % 64, 64);
    sp->hi_mask = ua_word_mask(0, (unsigned)((last - 1) % 64) + 1);
    return 1;
}

enum write_op { OP_SET, OP_CLEAR, OP_CLEAR_ATOMIC };

/* Apply one masked write to a word. */
static inline void write_word(uint64_t *w, uint64_t mask, enum write_op op)
{
    switch (op) {
    case OP_SET: *w |= mask; break;
    case OP_CLEAR: *w &= ~mask; break;
    case OP_CLEAR_ATOMIC:
        /* Whole inner words belong to the caller alone: a store is enough. */
        if (mask == ~0ull)
            __atomic_store_n(w, 0, __ATOMIC_RELEASE);
        else
            __atomic_fetch_and(w, ~mask, __ATOMIC_RELEASE);
        break;
    }
}

/* Walk [first, last) word by word: partial first and last words get masks,
 * inner words are written whole.  Inlined per op, so each loop stays tight. */
static inline void write_range(uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last,
                               enum write_op op)
{
    struct span sp;
    if (!span_of(nbits, first, last, &sp))
        return;
    if (sp.fw == sp.lw) {
        write_word(&words[sp.fw], sp.lo_mask & sp.hi_mask, op);
        return;
    }
    write_word(&words[sp.fw], sp.lo_mask, op);
    for (uint64_t w = sp.fw + 1; w < sp.lw; w++)
        write_word(&words[w], ~0ull, op);
    write_word(&words[sp.lw], sp.hi_mask, op);
}

void ua_bitmap_set(uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last)
{
    write_range(words, nbits, first, last, OP_SET);
}

void ua_bitmap_clear(uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last)
{
    write_range(words, nbits, first, last, OP_CLEAR);
}

void ua_bitmap_clear_atomic(uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last)
{
    write_range(words, nbits, first, last, OP_CLEAR_ATOMIC);
}

/* Shared scanner: next bit equal to `want` in [from, nbits). */
static inline uint64_t find_next(const uint64_t *words, uint64_t nbits, uint64_t from, int want)
{
    if (from >= nbits)
        return nbits;
    uint64_t flip = want ? 0 : ~0ull;
    uint64_t w = from / 64, nwords = ua_words_for_bits(nbits);
    uint64_t word = (load(&words[w]) ^ flip) & ~((1ull << (from % 64)) - 1);
    while (!word) {
        if (++w >= nwords)
            return nbits;
        word = load(&words[w]) ^ flip;
    }
    uint64_t bit = w * 64 + (uint64_t)__builtin_ctzll(word);
    return bit < nbits ? bit : nbits;
}

uint64_t ua_bitmap_find_next_set(const uint64_t *words, uint64_t nbits, uint64_t from)
{
    return find_next(words, nbits, from, 1);
}

uint64_t ua_bitmap_find_next_zero(const uint64_t *words, uint64_t nbits, uint64_t from)
{
    return find_next(words, nbits, from, 0);
}

/* ---- population count ----
 * __builtin_popcountll is one instruction where the target has one, but the
 * x86-64 baseline has no POPCNT, and there it is a libgcc call per word
 * (about 4 GB/s).  The word loop is therefore compiled twice: once for a
 * target with POPCNT, chosen at run time when the CPU has it, and once for
 * the baseline (the compiler's portable expansion).  Relaxed loads: a count
 * may be taken while accepts run (Table.unaccepted_units from another
 * thread), and POPCNT is no faster on plain loads. */
__attribute__((always_inline)) static inline uint64_t count_words(const uint64_t *words,
                                                                  uint64_t fw, uint64_t lw)
{
    uint64_t a = 0, b = 0, c = 0, d = 0, w = fw;
    for (; w + 4 <= lw; w += 4) {
        a += (uint64_t)__builtin_popcountll(load(&words[w]));
        b += (uint64_t)__builtin_popcountll(load(&words[w + 1]));
        c += (uint64_t)__builtin_popcountll(load(&words[w + 2]));
        d += (uint64_t)__builtin_popcountll(load(&words[w + 3]));
    }
    for (; w < lw; w++)
        a += (uint64_t)__builtin_popcountll(load(&words[w]));
    return (a + b) + (c + d);
}

static uint64_t count_words_generic(const uint64_t *words, uint64_t fw, uint64_t lw)
{
    return count_words(words, fw, lw);
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("popcnt"))) static uint64_t count_words_popcnt(const uint64_t *words,
                                                                     uint64_t fw, uint64_t lw)
{
    return count_words(words, fw, lw);
}

static uint64_t count_inner(const uint64_t *words, uint64_t fw, uint64_t lw)
{
    __builtin_cpu_init();               /* idempotent; needed before constructors ran */
    if (__builtin_cpu_supports("popcnt"))
        return count_words_popcnt(words, fw, lw);
    return count_words_generic(words, fw, lw);
}
#else
static uint64_t count_inner(const uint64_t *words, uint64_t fw, uint64_t lw)
{
    return count_words_generic(words, fw, lw);
}
#endif

uint64_t ua_bitmap_count(const uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last)
{
    struct span sp;
    if (!span_of(nbits, first, last, &sp))
        return 0;
    if (sp.fw == sp.lw)
        return (uint64_t)__builtin_popcountll(load(&words[sp.fw]) & sp.lo_mask & sp.hi_mask);
    uint64_t n = (uint64_t)__builtin_popcountll(load(&words[sp.fw]) & sp.lo_mask);
    if (sp.lw - sp.fw > 1)
        n += count_inner(words, sp.fw + 1, sp.lw);
    return n + (uint64_t)__builtin_popcountll(load(&words[sp.lw]) & sp.hi_mask);
}

/* ---- any bit set ---- */

/* One word of ua_words_any_scan.  The signal fence emits no instruction; it
 * only keeps the compiler from hoisting all eight loads of a step above the
 * ORs, which gcc 12 does with relaxed loads: interleaved, the loop scans a
 * cache-resident map about 8 % faster on the development machine (Zen 4,
 * gcc and clang). */
static inline uint64_t scan_word(const uint64_t *p)
{
    uint64_t v = ua_scan_load(p);
    __atomic_signal_fence(__ATOMIC_ACQUIRE);
    return v;
}

/* For ua_bits_any_acquire (ua_internal.h): words[fw, lw) while accepts may
 * run, so atomic loads.  The OR of 8 words per test has no loop-carried
 * chain: out-of-order execution overlaps the steps. */
int ua_words_any_scan(const uint64_t *words, uint64_t fw, uint64_t lw)
{
    uint64_t w = fw;
    for (; w + 8 <= lw; w += 8) {
        const uint64_t *p = &words[w];
        uint64_t acc = ((scan_word(p) | scan_word(p + 1)) | (scan_word(p + 2) | scan_word(p + 3))) |
                       ((scan_word(p + 4) | scan_word(p + 5)) | (scan_word(p + 6) | scan_word(p + 7)));
        if (acc)
            return 1;
    }
    for (; w < lw; w++)
        if (ua_scan_load(&words[w]))
            return 1;
    return 0;
}

/* ua_bitmap_any: the public engine works on words the caller owns (its
 * writers, ua_bitmap_set and ua_bitmap_clear, are plain read-modify-writes
 * too), so plain loads, and the compiler may use vector registers: 16 words
 * (128 bytes) per test with 128-bit vectors (SSE2 on x86-64, NEON on arm64,
 * scalar code where the target has neither). */
typedef uint64_t ua_u64x2 __attribute__((vector_size(16)));

static int words_any_plain(const uint64_t *words, uint64_t fw, uint64_t lw)
{
    uint64_t w = fw;
    for (; w + 16 <= lw; w += 16) {
        ua_u64x2 v0, v1, v2, v3, v4, v5, v6, v7;
        memcpy(&v0, &words[w], 16);     /* one unaligned vector load each */
        memcpy(&v1, &words[w + 2], 16);
        memcpy(&v2, &words[w + 4], 16);
        memcpy(&v3, &words[w + 6], 16);
        memcpy(&v4, &words[w + 8], 16);
        memcpy(&v5, &words[w + 10], 16);
        memcpy(&v6, &words[w + 12], 16);
        memcpy(&v7, &words[w + 14], 16);
        ua_u64x2 acc = ((v0 | v1) | (v2 | v3)) | ((v4 | v5) | (v6 | v7));
        if (acc[0] | acc[1])
            return 1;
    }
    uint64_t acc = 0;
    for (; w < lw; w++)
        acc |= words[w];
    return acc != 0;
}

int ua_bitmap_any(const uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last)
{
    struct span sp;
    if (!span_of(nbits, first, last, &sp))
        return 0;
    if (sp.fw == sp.lw)
        return (words[sp.fw] & sp.lo_mask & sp.hi_mask) != 0;
    if ((words[sp.fw] & sp.lo_mask) || (words[sp.lw] & sp.hi_mask))
        return 1;
    return sp.lw - sp.fw > 1 && words_any_plain(words, sp.fw + 1, sp.lw);
}

int ua_bitmap_next_run(const uint64_t *words, uint64_t nbits, uint64_t *pos, uint64_t last,
                       uint64_t *run_first, uint64_t *run_last)
{
    last = clamp(last, nbits);
    if (*pos >= last)
        return 0;
    uint64_t s = find_next(words, nbits, *pos, 1);
    if (s >= last) {
        *pos = last;
        return 0;
    }
    uint64_t e = find_next(words, nbits, s, 0);
    if (e > last)
        e = last;
    *run_first = s;
    *run_last = e;
    *pos = e;
    return 1;
}
