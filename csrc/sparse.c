/* sparse.c - the sparse two-level directory (see sparse_internal.h). */
#include <stdlib.h>

#include "sparse_internal.h"

ua_status ua_sparse_init(struct ua_sparse *d, uint64_t nitems, size_t item_size,
                         ua_sparse_init_fn *init, void *owner, uint64_t *bytes)
{
    d->nitems = nitems;
    d->nchunks = (nitems + UA_SPARSE_ITEMS - 1) >> UA_SPARSE_SHIFT;
    d->item_size = item_size;
    d->init = init;
    d->owner = owner;
    d->bytes = bytes;
    d->chunks = calloc(d->nchunks ? d->nchunks : 1, sizeof(*d->chunks));
    if (!d->chunks)
        return UA_E_NOMEM;
    if (bytes)
        __atomic_add_fetch(bytes, d->nchunks * sizeof(*d->chunks), __ATOMIC_RELAXED);
    pthread_mutex_init(&d->lock, NULL);
    return UA_OK;
}

void ua_sparse_fini(struct ua_sparse *d, void (*each)(void *owner, void *chunk, uint64_t n))
{
    if (!d->chunks)
        return;
    for (uint64_t c = 0; c < d->nchunks; c++) {
        if (!d->chunks[c])
            continue;
        if (each)
            each(d->owner, d->chunks[c], ua_sparse_chunk_items(d, c));
        free(d->chunks[c]);
    }
    free(d->chunks);
    d->chunks = NULL;
    pthread_mutex_destroy(&d->lock);
}

void *ua_sparse_chunk_alloc(struct ua_sparse *d, uint64_t c)
{
    pthread_mutex_lock(&d->lock);
    void *chunk = d->chunks[c];
    if (!chunk) {
        uint64_t n = ua_sparse_chunk_items(d, c);
        chunk = d->init ? malloc(n * d->item_size) : calloc(n, d->item_size);
        if (chunk) {
            if (d->init)
                d->init(d->owner, chunk, c << UA_SPARSE_SHIFT, n);
            if (d->bytes)
                __atomic_add_fetch(d->bytes, n * d->item_size, __ATOMIC_RELAXED);
            __atomic_store_n(&d->chunks[c], chunk, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&d->lock);
    return chunk;
}
