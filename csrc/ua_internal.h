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



/* ---- the table object (shared by table.c and accept.c) ---- */
#include <pthread.h>

struct ua_accept_range {           /* one in-flight accept_memory() call */
    uint64_t first, last;          /* units, half-open */
    struct ua_accept_range *next;
};

struct ua_table {
    uint32_t version;
    uint32_t unit_size;
    unsigned unit_shift;
    uint64_t phys_base;
    uint64_t size;                 /* bitmap bytes */
    uint64_t nbits;
    uint64_t *words;               /* ceil(size / 8) words, bits >= nbits stay 0 */
    ua_accept_fn accept;
    void *accept_ctx;
    pthread_mutex_t lock;          /* protects `accepting` and the primitive */
    pthread_cond_t done;           /* signalled when an accepter leaves */
    struct ua_accept_range *accepting;
};

typedef unsigned __int128 ua_u128;
#define UA_U64_LIMIT ((ua_u128)1 << 64)
#endif
