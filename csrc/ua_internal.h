/* Internal helpers shared by the C core; not installed. */
#ifndef UA_INTERNAL_H
#define UA_INTERNAL_H

#include "unaccepted.h"

#define UA_WORD_BITS 64u
#define UA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define UA_LIKELY(x) __builtin_expect(!!(x), 1)

static inline int ua_is_pow2(uint64_t x) { return x && !(x & (x - 1)); }
static inline uint64_t ua_words_for_bits(uint64_t nbits) { return (nbits + 63) / 64; }

/* Mask of bits [lo, hi) within one word, 0 <= lo < hi <= 64. */
static inline uint64_t ua_word_mask(unsigned lo, unsigned hi)
{
    uint64_t upper = hi >= 64 ? ~0ull : ((1ull << hi) - 1);
    return upper & ~((1ull << lo) - 1);
}

/* Atomic variants used where several threads share bitmap words: the accept
 * path clears its own bits while neighbours clear theirs in the same word. */
void ua_bitmap_clear_atomic(uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last);
int ua_bitmap_any_acquire(const uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last);

#endif
