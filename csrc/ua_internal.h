/* Internal helpers shared by the C core; not installed. */
#ifndef UA_INTERNAL_H
#define UA_INTERNAL_H

#include "unaccepted.h"

#define UA_WORD_BITS 64u
/* The page sizes of ua_vm.h as 64-bit values, for address arithmetic. */
#define UA_4K ((uint64_t)UA_SIZE_4K)
#define UA_2M ((uint64_t)UA_SIZE_2M)
#define UA_1G ((uint64_t)UA_SIZE_1G)
/* Events of this build (ua_event_count()); append-only, <= UA_EV_MAX. */
#define UA_EV_COUNT 21
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
    pthread_t owner;               /* the thread running it (re-entry check) */
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
    const volatile int *cancel;    /* the caller's cancel flag, or NULL */
};

/* A caller's cancel flag is set: stop at the next batch boundary. */
static inline int ua_cancelled(const volatile int *flag)
{
    return flag && *flag;
}

/* ---- the fatal record of a machine (fatal.c): the first fatal event wins ---- */
struct ua_fatal_slot {
    pthread_mutex_t lock;
    int dead;                      /* atomic: a fatal event was recorded */
    ua_fatal f;
};

void ua_fatal_slot_init(struct ua_fatal_slot *s);
void ua_fatal_slot_fini(struct ua_fatal_slot *s);
/* Record f unless something was recorded before; returns the status of
 * f->kind (UA_E_GUEST_TERMINATED, UA_E_GUEST_PANIC, UA_E_GUEST_HUNG). */
int ua_fatal_record(struct ua_fatal_slot *s, const ua_fatal *f);
/* The same with a message, for the common case. */
int ua_fatal_raise(struct ua_fatal_slot *s, uint32_t kind, uint32_t vcpu, uint64_t gpa,
                   uint64_t code, const char *message);
void ua_fatal_read(const struct ua_fatal_slot *s, ua_fatal *out);
void ua_fatal_reset(struct ua_fatal_slot *s);
int ua_fatal_status(uint32_t kind);
static inline int ua_fatal_dead(const struct ua_fatal_slot *s)
{
    return __atomic_load_n(&s->dead, __ATOMIC_ACQUIRE);
}
/* UA_OK while the guest lives, else the status of how it died: a dead
 * guest runs nothing more. */
static inline int ua_fatal_check(const struct ua_fatal_slot *s)
{
    if (UA_LIKELY(!ua_fatal_dead(s)))
        return UA_OK;
    ua_fatal f;
    ua_fatal_read(s, &f);
    return ua_fatal_status(f.kind);
}

/* ---- accept-path options: what both vendors check and default ---- */
#define UA_DEFAULT_HANG_LIMIT 1000   /* exits without progress before "hung" */

static inline ua_status ua_path_options_common(ua_path_options *o)
{
    if (o->kind >= UA_PATH_KIND_COUNT)
        return UA_E_INVAL;
    if (o->hang_limit == 0)
        o->hang_limit = UA_DEFAULT_HANG_LIMIT;
    return UA_OK;
}

typedef unsigned __int128 ua_u128;
#define UA_U64_LIMIT ((ua_u128)1 << 64)
#endif
