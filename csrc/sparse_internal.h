/* sparse_internal.h - the sparse two-level directory both vendor models keep
 * their per-2 MiB records in; not installed.
 *
 * Items (fixed-size records, one per 2 MiB region) live in chunks of 4096
 * (8 GiB of guest) reached through a directory.  A chunk is allocated on
 * first write, initialised by the owner's init callback (zeroed without
 * one) and published with a release store, so readers need no lock; a
 * reader that finds no chunk sees the initial state.  Allocation takes the
 * directory's lock so two writers never both allocate a chunk. */
#ifndef UA_SPARSE_INTERNAL_H
#define UA_SPARSE_INTERNAL_H

#include <pthread.h>

#include "ua_internal.h"

#define UA_SPARSE_SHIFT 12u
#define UA_SPARSE_ITEMS (1ull << UA_SPARSE_SHIFT)

typedef void ua_sparse_init_fn(void *owner, void *chunk, uint64_t first, uint64_t n);

struct ua_sparse {
    void **chunks;
    uint64_t nitems;
    uint64_t nchunks;
    size_t item_size;
    ua_sparse_init_fn *init;     /* NULL: chunks start zeroed */
    void *owner;
    uint64_t *bytes;             /* the owner's memory counter (atomic); may be NULL */
    pthread_mutex_t lock;
};

ua_status ua_sparse_init(struct ua_sparse *d, uint64_t nitems, size_t item_size,
                         ua_sparse_init_fn *init, void *owner, uint64_t *bytes);
/* each (may be NULL) sees every allocated chunk before it is freed. */
void ua_sparse_fini(struct ua_sparse *d, void (*each)(void *owner, void *chunk, uint64_t n));
void *ua_sparse_chunk_alloc(struct ua_sparse *d, uint64_t c);

/* Items held by chunk c (the last one may be short). */
static inline uint64_t ua_sparse_chunk_items(const struct ua_sparse *d, uint64_t c)
{
    uint64_t n = d->nitems - (c << UA_SPARSE_SHIFT);
    return n < UA_SPARSE_ITEMS ? n : UA_SPARSE_ITEMS;
}

/* The chunk holding item i, or NULL if it was never written. */
static inline void *ua_sparse_peek(const struct ua_sparse *d, uint64_t i)
{
    return __atomic_load_n(&d->chunks[i >> UA_SPARSE_SHIFT], __ATOMIC_ACQUIRE);
}

/* The chunk holding item i, allocated if needed; NULL when out of memory. */
static inline void *ua_sparse_get(struct ua_sparse *d, uint64_t i)
{
    void *c = ua_sparse_peek(d, i);
    return UA_LIKELY(c != NULL) ? c : ua_sparse_chunk_alloc(d, i >> UA_SPARSE_SHIFT);
}

/* Typed item access: UA_SPARSE_AT(struct region, chunk, i). */
#define UA_SPARSE_AT(type, chunk, i) (&((type *)(chunk))[(i) & (UA_SPARSE_ITEMS - 1)])

#endif
