/* memmap.c - validation of EFI memory maps. */
#include <stdlib.h>

#include "ua_internal.h"

/* End of a descriptor; the caller has checked it does not overflow. */
static inline uint64_t desc_end(const ua_mem_desc *d) { return d->phys_start + d->num_pages * UA_PAGE_SIZE; }

/* A descriptor's start with its index: sorted with plain qsort (ISO C; no
 * context argument needed), ties kept in map order. */
struct by_start {
    uint64_t start;
    size_t index;
};

static int cmp_start(const void *a, const void *b)
{
    const struct by_start *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

ua_status ua_memmap_check(const ua_mem_desc *descs, size_t n, uint64_t limit, size_t *bad,
                          size_t *other)
{
    size_t dummy_bad, dummy_other;
    if (!bad)
        bad = &dummy_bad;
    if (!other)
        other = &dummy_other;
    if (n && !descs)
        return UA_E_INVAL;
    for (size_t i = 0; i < n; i++) {
        const ua_mem_desc *d = &descs[i];
        *bad = *other = i;
        if (d->phys_start % UA_PAGE_SIZE)
            return UA_E_ALIGN;
        if (d->num_pages == 0)
            return UA_E_EMPTY;
        /* The end must be representable: start + pages * 4 KiB < 2^64. */
        ua_u128 end = (ua_u128)d->phys_start + (ua_u128)d->num_pages * UA_PAGE_SIZE;
        if (end >= UA_U64_LIMIT || (limit && end > limit))
            return UA_E_RANGE;
    }
    if (n < 2)
        return UA_OK;
    struct by_start *order = malloc(n * sizeof(*order));
    if (!order)
        return UA_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        order[i].start = descs[i].phys_start;
        order[i].index = i;
    }
    qsort(order, n, sizeof(*order), cmp_start);
    ua_status st = UA_OK;
    /* Sorted by start, a descriptor overlaps some earlier one iff it starts
     * below the largest end seen so far. */
    size_t reach_idx = order[0].index;
    uint64_t reach = desc_end(&descs[reach_idx]);
    for (size_t k = 1; k < n; k++) {
        size_t i = order[k].index;
        if (descs[i].phys_start < reach) {
            /* Report the later one in map order as the bad descriptor. */
            *bad = i > reach_idx ? i : reach_idx;
            *other = i > reach_idx ? reach_idx : i;
            st = UA_E_OVERLAP;
            break;
        }
        if (desc_end(&descs[i]) > reach) {
            reach = desc_end(&descs[i]);
            reach_idx = i;
        }
    }
    free(order);
    return st;
}
