/*
 * unaccepted.h - public C API of the unaccepted-memory simulator.
 *
 * Conventions (see docs/c-api.md):
 *   - every object is an opaque handle made by ua_*_create / ua_*_from_* and
 *     released with the matching ua_*_destroy; there is no global state;
 *   - every fallible call returns ua_status (UA_OK == 0) and writes results
 *     through pointers; on failure the object is left as it was;
 *   - ranges are half-open: [start, end) in bytes, or [first, last) in bits;
 *   - struct layouts below are part of the ABI of this major version.
 *
 * This file is the umbrella header.  The vendor models, guest accept paths
 * and the cost model live in the headers it includes at the end.
 *
 * Text between UA_CDEF_BEGIN and UA_CDEF_END is also fed to cffi's cdef
 * parser, so it holds plain declarations only (no macros with arguments,
 * no inline functions, no attributes).
 */
#ifndef UNACCEPTED_H
#define UNACCEPTED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(UA_BUILDING_LIBRARY) && defined(__GNUC__)
#define UA_API __attribute__((visibility("default")))
#else
#define UA_API
#endif

#define UA_VERSION_MAJOR 0
#define UA_VERSION_MINOR 2
#define UA_VERSION_PATCH 0
#define UA_VERSION_STRING "0.2.0"

/* UA_CDEF_BEGIN */

/* ---- status codes -------------------------------------------------------- */
typedef enum ua_status {
    UA_OK = 0,
    /* bad arguments to the simulator itself (never an architectural answer) */
    UA_E_INVAL = 1,          /* an argument is out of its domain */
    UA_E_NOMEM = 2,          /* allocation failed */
    UA_E_RANGE = 3,          /* address/size past a limit or overflowing 2^64 */
    UA_E_ALIGN = 4,          /* address or size not aligned as required */
    UA_E_OVERLAP = 5,        /* two memory descriptors overlap */
    UA_E_EMPTY = 6,          /* a memory descriptor has no pages */
    UA_E_UNIT_SIZE = 7,      /* unit size not a power of two in [4 KiB, 2 GiB] */
    UA_E_TOO_LARGE = 8,      /* bitmap would exceed UA_MAX_BITMAP_BYTES */
    UA_E_VERSION = 9,        /* unknown table version */
    UA_E_TRUNCATED = 10,     /* input buffer shorter than its header says */
    UA_E_BUFFER = 11,        /* output buffer too small (needed size reported) */
    UA_E_OP = 12,            /* unknown operation kind in a batch */
    UA_E_STATE = 13,         /* operation not allowed in the object's state */
    UA_E_VCPU = 14,          /* vCPU index out of range */
    /* outcomes of an accept that the guest does not survive */
    UA_E_ACCEPT_FAILED = 32, /* the accept primitive reported failure */
    UA_E_GUEST_TERMINATED = 33, /* SNP guest asked the hypervisor to terminate it */
    UA_E_GUEST_PANIC = 34,   /* guest kernel panicked (e.g. TDX accept failed) */
    UA_E_FAULT = 35,         /* unrecoverable architectural fault (#VC, #VE, #GP..) */
    UA_E_HOST = 36,          /* the host/hypervisor refused or cannot serve */
    UA_E_CALLBACK = 37,      /* a user callback raised or returned an error */
    /* vendor-model outcomes (40-49) */
    UA_E_GUEST_HUNG = 40,    /* the guest can never progress (an exit the host never resolves) */
    UA_E_INTERRUPTED = 41    /* the caller's cancel flag was set: stopped between batches */
} ua_status;

UA_API const char *ua_strerror(int status);
UA_API uint32_t ua_version(void);          /* major << 16 | minor << 8 | patch */
UA_API const char *ua_version_string(void);

/* ---- constants ------------------------------------------------------------ */
#define UA_PAGE_SIZE 4096
#define UA_DEFAULT_UNIT_SIZE 2097152
#define UA_TABLE_VERSION 1
#define UA_TABLE_HEADER_SIZE 24
#define UA_MAX_BITMAP_BYTES 268435456
#define UA_EFI_UNACCEPTED_MEMORY 15
#define UA_EFI_DESCRIPTOR_SIZE 48
#define UA_EFI_DESCRIPTOR_VERSION 1

/* ---- bitmap engine: word-at-a-time operations on uint64_t arrays ----------
 * Bit i is bit (i % 64) of words[i / 64]; on little-endian hosts this is the
 * byte order of the EFI table (bit i = bit i%8 of byte i/8).  nbits bounds
 * every access: nothing at or past bit nbits is read or written.  Ranges are
 * clamped to nbits.  find_* return nbits when nothing is found.  These are
 * for words the caller owns: set, clear and any use plain (non-atomic)
 * accesses, so no other thread may write the words meanwhile (to ask a
 * table while accepts run, use ua_range_contains_unaccepted). */
UA_API void ua_bitmap_set(uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last);
UA_API void ua_bitmap_clear(uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last);
UA_API uint64_t ua_bitmap_find_next_set(const uint64_t *words, uint64_t nbits, uint64_t from);
UA_API uint64_t ua_bitmap_find_next_zero(const uint64_t *words, uint64_t nbits, uint64_t from);
UA_API uint64_t ua_bitmap_count(const uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last);
UA_API int ua_bitmap_any(const uint64_t *words, uint64_t nbits, uint64_t first, uint64_t last);
/* Next run of set bits starting at or after *pos: returns 1 and [*run_first,
 * *run_last) with *pos = *run_last, or 0 when none remains before last. */
UA_API int ua_bitmap_next_run(const uint64_t *words, uint64_t nbits, uint64_t *pos,
                              uint64_t last, uint64_t *run_first, uint64_t *run_last);

/* ---- EFI memory map ------------------------------------------------------- */
typedef struct ua_mem_desc {   /* EFI_MEMORY_DESCRIPTOR, 40 bytes */
    uint32_t type;
    uint32_t pad;
    uint64_t phys_start;
    uint64_t virt_start;
    uint64_t num_pages;
    uint64_t attribute;
} ua_mem_desc;

typedef struct ua_range {
    uint64_t start;
    uint64_t end;
} ua_range;

/* Validate a map: every descriptor 4 KiB aligned, at least one page, end
 * representable below 2^64, end <= limit (0 = no limit), no two overlapping.
 * On failure *bad is the offending index and *other the descriptor it
 * overlaps (or equal to *bad).  Works in O(n log n); n up to 2^24. */
UA_API ua_status ua_memmap_check(const ua_mem_desc *descs, size_t n, uint64_t limit,
                                 size_t *bad, size_t *other);

/* ---- the accept primitive -------------------------------------------------
 * arch_accept_memory(start, end) as a callback: called once per run of
 * unaccepted units with unit-aligned byte addresses.  Return UA_OK, or any
 * other status to report failure (the units stay unaccepted). */
typedef int (*ua_accept_fn)(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu);

/* A recorder primitive: forwards the call to the next primitive (if one is
 * set) and remembers the range when that succeeded.  Thread-safe. */
typedef struct ua_recorder ua_recorder;
UA_API ua_status ua_recorder_create(ua_accept_fn next, void *next_ctx, ua_recorder **out);
UA_API void ua_recorder_destroy(ua_recorder *r);
UA_API int ua_recorder_accept(void *recorder, uint64_t start, uint64_t end, uint32_t vcpu);
UA_API size_t ua_recorder_count(const ua_recorder *r);
/* Copy records [first, first+n) out; fails with UA_E_RANGE past the end. */
UA_API ua_status ua_recorder_get(const ua_recorder *r, size_t first, size_t n, ua_range *out);
UA_API void ua_recorder_reset(ua_recorder *r);

/* The do-nothing primitive (bookkeeping only). */
UA_API int ua_accept_noop(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu);

/* ---- LINUX_EFI_UNACCEPTED_MEM_TABLE --------------------------------------- */
typedef struct ua_table ua_table;

typedef struct ua_table_info {
    uint32_t version;
    uint32_t unit_size;
    uint64_t phys_base;
    uint64_t size;          /* bitmap length in bytes */
    uint64_t nbits;         /* size * 8 */
    uint64_t coverage_end;  /* phys_base + nbits * unit_size */
} ua_table_info;

/* An empty (all accepted) table.  unit_size: power of two in [4096, 2^31];
 * size <= UA_MAX_BITMAP_BYTES; phys_base + coverage must not pass 2^64. */
UA_API ua_status ua_table_create(uint32_t unit_size, uint64_t phys_base, uint64_t size,
                                 ua_table **out);
UA_API void ua_table_destroy(ua_table *t);
UA_API ua_status ua_table_info_get(const ua_table *t, ua_table_info *out);

/* The EFI stub's allocate_unaccepted_bitmap(): size a table from the type-15
 * descriptors of a (pre-ExitBootServices) map.  The map is checked first
 * (ua_memmap_check with no limit).  *out is NULL when the map has no
 * unaccepted memory (then every address counts as accepted). */
UA_API ua_status ua_table_from_memmap(const ua_mem_desc *descs, size_t n, uint32_t unit_size,
                                      ua_table **out);

/* The EFI stub's process_unaccepted_memory() for every type-15 descriptor of
 * the (post-ExitBootServices) map, in map order.  Pieces accepted at once go
 * to accept(ctx, ...) (may be NULL) and are written to out[] in stub order
 * (cap >= 4 * number of type-15 descriptors suffices); *n_out is the count.
 * The map is checked and the capacity verified before anything changes. */
UA_API ua_status ua_table_process_memmap(ua_table *t, const ua_mem_desc *descs, size_t n,
                                         ua_accept_fn accept, void *ctx, uint32_t vcpu,
                                         ua_range *out, size_t cap, size_t *n_out);
/* The same for one range [start, end) (4 KiB aligned, end > start). */
UA_API ua_status ua_table_process_range(ua_table *t, uint64_t start, uint64_t end,
                                        ua_accept_fn accept, void *ctx, uint32_t vcpu,
                                        ua_range *out, size_t cap, size_t *n_out);

/* Binary form: 24-byte little-endian header + `size` bitmap bytes. */
UA_API size_t ua_table_serialized_size(const ua_table *t);
UA_API ua_status ua_table_serialize(const ua_table *t, uint8_t *buf, size_t cap, size_t *written);
UA_API ua_status ua_table_parse(const uint8_t *buf, size_t len, ua_table **out);
/* Bitmap bytes [first, first+n) in table byte order. */
UA_API ua_status ua_table_bitmap_read(const ua_table *t, uint64_t first, uint64_t n, uint8_t *out);
/* Replace the whole bitmap (n must equal size). */
UA_API ua_status ua_table_bitmap_write(ua_table *t, const uint8_t *bytes, uint64_t n);
/* Mark units [first, last) unaccepted / accepted without calling anything.
 * UA_E_STATE while accepts run (as for the other mutators). */
UA_API ua_status ua_table_mark(ua_table *t, uint64_t first, uint64_t last, int unaccepted);
UA_API uint64_t ua_table_count_unaccepted(const ua_table *t);
/* Direct read access to the words (ceil(size / 8) of them; bits past nbits are 0). */
UA_API const uint64_t *ua_table_words(const ua_table *t);

/* ---- the kernel's accept path --------------------------------------------- */
/* Install the arch_accept_memory() primitive (NULL = ua_accept_noop).  Not
 * while accepts are running. */
UA_API ua_status ua_table_set_accept(ua_table *t, ua_accept_fn fn, void *ctx);
/* A cancel flag the caller owns (NULL = none): while *flag is non-zero,
 * ua_accept_memory stops before its next run and ua_run_ops before its next
 * op, with UA_E_INTERRUPTED; what was done before stays done (bits of the
 * runs the primitive finished are cleared, *cursor names the next op).  A
 * run the primitive is in is never cut.  Not while accepts are running. */
UA_API ua_status ua_table_set_cancel(ua_table *t, const volatile int *flag);

typedef struct ua_accept_result {
    uint64_t runs;    /* calls made to the primitive */
    uint64_t units;   /* units accepted */
    uint64_t waits;   /* times this caller waited for another accepter */
} ua_accept_result;

/* accept_memory(start, size) with mainline semantics: page widening, clamp,
 * guard unit, one primitive call per run of set bits, bits cleared only after
 * the call succeeded, callers touching a unit being accepted wait.  result may
 * be NULL.  Safe to call from many threads on one table.  A primitive that
 * calls it again on a range its own call is accepting gets UA_E_STATE (it
 * would wait for itself forever). */
UA_API ua_status ua_accept_memory(ua_table *t, uint64_t start, uint64_t size, uint32_t vcpu,
                                  ua_accept_result *result);
/* The same, for callers that cross an FFI per call: returns the number of
 * units accepted (>= 0), or -status on failure. */
UA_API int64_t ua_accept_memory_units(ua_table *t, uint64_t start, uint64_t size, uint32_t vcpu);
/* range_contains_unaccepted_memory(start, size): *out = 1 or 0, Linux's
 * answer (no page widening; guard unit; one bit per unit step from start). */
UA_API ua_status ua_range_contains_unaccepted(const ua_table *t, uint64_t start, uint64_t size,
                                              int *out);
/* The same answer for callers that cross an FFI per call: 1 or 0, or
 * -status on an error. */
UA_API int ua_contains_unaccepted(const ua_table *t, uint64_t start, uint64_t size);

/* Batch entry point: run ops[*cursor ..] in order; stops at the first op that
 * fails and returns its status with *cursor at that op (so a caller can
 * resume), else *cursor = n.  results (optional) has n entries. */
typedef enum ua_op_kind {
    UA_OP_ACCEPT = 0,
    UA_OP_CONTAINS = 1
} ua_op_kind;

typedef struct ua_op {
    uint32_t kind;
    uint32_t vcpu;
    uint64_t start;
    uint64_t size;
} ua_op;

typedef struct ua_op_result {
    int32_t status;
    uint32_t contains;
    uint64_t runs;
    uint64_t units;
} ua_op_result;

UA_API ua_status ua_run_ops(ua_table *t, const ua_op *ops, size_t n, ua_op_result *results,
                            size_t *cursor);

/* UA_CDEF_END */

#ifdef __cplusplus
}
#endif

#include "ua_cost.h"
#include "ua_vm.h"
#include "ua_snp.h"
#include "ua_tdx.h"
#include "ua_host.h"
#include "ua_guest.h"

#endif /* UNACCEPTED_H */
