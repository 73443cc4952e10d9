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

/* ---- reading a table's bitmap while accepts may run ----
 * ua_accept_memory, ua_range_contains_unaccepted and ua_run_ops may run
 * concurrently on one table (docs/c-api.md, "Threads"), and accepters clear
 * bits with atomic read-modify-writes (release).  A reader racing with them
 * must use atomic loads: a plain load of a word another thread writes is a
 * data race in C11 (undefined behaviour, and what ThreadSanitizer reports),
 * however harmless the instruction is on x86-64.  So these scans use
 * relaxed loads, which compile to plain moves, and ONE acquire fence after
 * the scan instead of an acquire load per word.  The fence is enough: if a
 * relaxed load reads a value written by an accepter's release RMW (or by a
 * later RMW of its release sequence), the accepter's release synchronizes
 * with our acquire fence (C11 7.17.4), so seeing its bits clear means seeing
 * everything its primitive did before.  On x86-64 the fence costs nothing
 * (a compiler barrier); on arm64 it is one dmb instead of one ldar per word.
 * Relaxed loads cannot be vectorised: the scan reads one word per load, at
 * about 55 GB/s from L2 on the development machine, against about 90 GB/s
 * for a 128-bit vector loop with plain loads (benchmarks/c/scan.c); big
 * maps are memory bound either way.
 *
 * ThreadSanitizer does not model fences (gcc warns with -Wtsan): under it
 * the loads themselves are acquire loads, the same ordering word by word. */
#if defined(__SANITIZE_THREAD__)
#define UA_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UA_TSAN 1
#endif
#endif
#ifdef UA_TSAN
#define UA_SCAN_ORDER __ATOMIC_ACQUIRE
#define ua_scan_fence() ((void)0)
#else
#define UA_SCAN_ORDER __ATOMIC_RELAXED
#define ua_scan_fence() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#endif

static inline uint64_t ua_scan_load(const uint64_t *p) { return __atomic_load_n(p, UA_SCAN_ORDER); }

/* Any word of words[fw, lw) non-zero (whole words, fw < lw); out of line,
 * for long ranges.  No fence: ua_bits_any_acquire adds it. */
int ua_words_any_scan(const uint64_t *words, uint64_t fw, uint64_t lw);

/* Ranges up to this many inner words are scanned inline. */
#define UA_INLINE_SCAN_WORDS 16

/* Any bit of [first, last) set, clamped to nbits, then an acquire fence:
 * the fast check of the accept path and the answer of
 * range_contains_unaccepted_memory(). */
static inline int ua_bits_any_acquire(const uint64_t *words, uint64_t nbits, uint64_t first,
                                      uint64_t last)
{
    if (last > nbits)
        last = nbits;
    if (first >= last)
        return 0;
    uint64_t fw = first / 64, lw = (last - 1) / 64;
    uint64_t lo = ~0ull << (first % 64), hi = ~0ull >> (63 - (last - 1) % 64);
    uint64_t acc;
    if (fw == lw) {
        acc = ua_scan_load(&words[fw]) & lo & hi;
    } else {
        acc = (ua_scan_load(&words[fw]) & lo) | (ua_scan_load(&words[lw]) & hi);
        if (lw - fw - 1 > UA_INLINE_SCAN_WORDS) {
            if (!acc)
                acc = (uint64_t)ua_words_any_scan(words, fw + 1, lw);
        } else {
            for (uint64_t w = fw + 1; w < lw; w++)
                acc |= ua_scan_load(&words[w]);
        }
    }
    ua_scan_fence();
    return acc != 0;
}



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
