/* bitmap.c - word-at-a-time bit ranges over uint64_t arrays.
 *
 * Every function clamps its range to nbits and touches only the words that
 * hold bits below nbits, so a caller can never make it read or write past
 * ceil(nbits / 64) words. */
#include "ua_internal.h"

static inline uint64_t clamp(uint64_t v, uint64_t nbits) { return v > nbits ? nbits : v; }

/* Readers use relaxed atomic loads (a plain mov on x86-64) because accepters
 * on other threads clear neighbouring bits of the same word concurrently. */
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

uint64_t ua_bitmap_count(const uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last)
{
    struct span sp;
    if (!span_of(nbits, first, last, &sp))
        return 0;
    if (sp.fw == sp.lw)
        return (uint64_t)__builtin_popcountll(load(&words[sp.fw]) & sp.lo_mask & sp.hi_mask);
    uint64_t n = (uint64_t)__builtin_popcountll(load(&words[sp.fw]) & sp.lo_mask);
    for (uint64_t w = sp.fw + 1; w < sp.lw; w++)
        n += (uint64_t)__builtin_popcountll(load(&words[w]));
    return n + (uint64_t)__builtin_popcountll(load(&words[sp.lw]) & sp.hi_mask);
}

/* OR-reduce the range, 8 words per step. */
static inline int any_in(const uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last,
                         int order)
{
#define LOAD_WORD(p) __atomic_load_n((p), order)
    struct span sp;
    if (!span_of(nbits, first, last, &sp))
        return 0;
    if (sp.fw == sp.lw)
        return (LOAD_WORD(&words[sp.fw]) & sp.lo_mask & sp.hi_mask) != 0;
    if (LOAD_WORD(&words[sp.fw]) & sp.lo_mask)
        return 1;
    uint64_t w = sp.fw + 1, lw = sp.lw;
    while (w + 8 <= lw) {
        uint64_t acc = LOAD_WORD(&words[w]) | LOAD_WORD(&words[w + 1]) | LOAD_WORD(&words[w + 2]) |
                       LOAD_WORD(&words[w + 3]) | LOAD_WORD(&words[w + 4]) | LOAD_WORD(&words[w + 5]) |
                       LOAD_WORD(&words[w + 6]) | LOAD_WORD(&words[w + 7]);
        if (acc)
            return 1;
        w += 8;
    }
    for (; w < lw; w++)
        if (LOAD_WORD(&words[w]))
            return 1;
    return (LOAD_WORD(&words[lw]) & sp.hi_mask) != 0;
#undef LOAD_WORD
}

int ua_bitmap_any(const uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last)
{
    return any_in(words, nbits, first, last, __ATOMIC_RELAXED);
}

int ua_bitmap_any_acquire(const uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last)
{
    /* Acquire pairs with the release in ua_bitmap_clear_atomic: seeing a bit
     * clear means the accept that cleared it is visible too. */
    return any_in(words, nbits, first, last, __ATOMIC_ACQUIRE);
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
