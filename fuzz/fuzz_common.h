/* fuzz_common.h - helpers shared by the libFuzzer harnesses in fuzz/.
 *
 * The harnesses use the public API only (unaccepted.h): they check what the
 * headers and docs promise, not how csrc/ happens to do it.  A broken
 * invariant prints what was expected and aborts, which libFuzzer (and the
 * standalone replay driver, standalone_main.c) reports as a crash.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unaccepted.h"

#define FUZZ_CHECK(cond, ...)                                                        \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: invariant failed: %s\n  ", __FILE__, __LINE__,   \
                    #cond);                                                          \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* Every value of the ua_status enum (unaccepted.h); nothing else may come
 * out of a ua_* call that returns a status. */
static inline int fuzz_status_documented(int st)
{
    switch (st) {
    case UA_OK: case UA_E_INVAL: case UA_E_NOMEM: case UA_E_RANGE: case UA_E_ALIGN:
    case UA_E_OVERLAP: case UA_E_EMPTY: case UA_E_UNIT_SIZE: case UA_E_TOO_LARGE:
    case UA_E_VERSION: case UA_E_TRUNCATED: case UA_E_BUFFER: case UA_E_OP: case UA_E_STATE:
    case UA_E_VCPU: case UA_E_ACCEPT_FAILED: case UA_E_GUEST_TERMINATED: case UA_E_GUEST_PANIC:
    case UA_E_FAULT: case UA_E_HOST: case UA_E_CALLBACK: case UA_E_GUEST_HUNG:
    case UA_E_INTERRUPTED:
        return 1;
    default:
        return 0;
    }
}

#define FUZZ_STATUS(st)                                                              \
    do {                                                                             \
        int st_ = (int)(st);                                                         \
        FUZZ_CHECK(fuzz_status_documented(st_), "undocumented status %d", st_);     \
        FUZZ_CHECK(strcmp(ua_strerror(st_), "unknown status") != 0,                  \
                   "status %d has no message", st_);                                 \
    } while (0)

/* The status a guest's fatal record stands for (ua_vm.h). */
static inline int fuzz_fatal_status(uint32_t kind)
{
    switch (kind) {
    case UA_FATAL_TERMINATED: return UA_E_GUEST_TERMINATED;
    case UA_FATAL_PANIC: return UA_E_GUEST_PANIC;
    case UA_FATAL_HUNG: return UA_E_GUEST_HUNG;
    default: return UA_OK;
    }
}

static inline int fuzz_is_fatal_status(int st)
{
    return st == UA_E_GUEST_TERMINATED || st == UA_E_GUEST_PANIC || st == UA_E_GUEST_HUNG;
}

/* ---- reading the input ------------------------------------------------------ */
struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t in_u8(struct fuzz_in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

/* A little-endian value of `bytes` bytes (missing bytes read as 0). */
static inline uint64_t in_le(struct fuzz_in *in, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)in_u8(in) << (8 * i);
    return v;
}

static inline uint64_t le_at(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

typedef unsigned __int128 fuzz_u128;
#define FUZZ_U64_LIMIT ((fuzz_u128)1 << 64)

/* ---- Linux's answers, written from drivers/firmware/efi/unaccepted_memory.c
 * and the contract in unaccepted.h, over a plain byte bitmap ------------------ */
struct fuzz_geom {
    uint64_t phys_base;
    uint64_t unit;
    uint64_t nbits;
};

static inline int bit_of(const uint8_t *bm, uint64_t i) { return (bm[i / 8] >> (i % 8)) & 1; }

/* accept_memory(start, size): the unit range [*first, *last) it works on (empty
 * when there is nothing to do); 0 for UA_E_RANGE (start + size >= 2^64). */
static inline int ref_accept_units(const struct fuzz_geom *g, uint64_t start, uint64_t size,
                                   uint64_t *first, uint64_t *last)
{
    *first = *last = 0;
    fuzz_u128 end = (fuzz_u128)start + size;
    if (end >= FUZZ_U64_LIMIT)
        return 0;
    fuzz_u128 s = start / UA_PAGE_SIZE * UA_PAGE_SIZE;          /* page widening */
    end = (end + UA_PAGE_SIZE - 1) / UA_PAGE_SIZE * UA_PAGE_SIZE;
    if (end < g->phys_base)
        return 1;
    if (s < g->phys_base)
        s = g->phys_base;
    s -= g->phys_base;
    end -= g->phys_base;
    if (end % g->unit == 0)                                    /* guard unit */
        end += g->unit;
    fuzz_u128 cov = (fuzz_u128)g->nbits * g->unit;
    if (end > cov)
        end = cov;
    uint64_t f = (uint64_t)(s / g->unit), l = (uint64_t)((end + g->unit - 1) / g->unit);
    if (f < l) {
        *first = f;
        *last = l;
    }
    return 1;
}

/* range_contains_unaccepted_memory(start, size) over bitmap bm; -1 for
 * UA_E_RANGE.  Steps one unit at a time from start, as Linux does. */
static inline int ref_contains(const struct fuzz_geom *g, const uint8_t *bm, uint64_t start,
                               uint64_t size)
{
    fuzz_u128 end = (fuzz_u128)start + size, s = start;
    if (end >= FUZZ_U64_LIMIT)
        return -1;
    if (s < g->phys_base)
        s = g->phys_base;
    if (end < g->phys_base)
        return 0;
    s -= g->phys_base;
    end -= g->phys_base;
    if (end % g->unit == 0)
        end += g->unit;
    fuzz_u128 cov = (fuzz_u128)g->nbits * g->unit;
    if (end > cov)
        end = cov;
    for (; s < end; s += g->unit)
        if (bit_of(bm, (uint64_t)(s / g->unit)))
            return 1;
    return 0;
}

#endif
