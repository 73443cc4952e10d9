/*
 * ua_guest.h - one confidential guest, whatever the vendor.  A ua_guest
 * owns a vendor machine (ua_snp or ua_tdx), its accept paths (one per
 * ua_path_kind) and, when a cost profile is given, its cost counters; it is
 * served by a host (ua_host.h; KVM when none is given).  The verbs are the
 * same for both vendors: take an accept path as a ua_accept_fn + context
 * (to install in a table or call directly), unaccept, touch a guest
 * physical address from a vCPU, read the fatal record, the per-path
 * statistics and the cost counters.  The vendor instructions stay
 * available through ua_guest_snp() / ua_guest_tdx() and ua_snp_* /
 * ua_tdx_*.  Included by unaccepted.h; do not include directly.
 *
 * Threading: as for the vendor machines - different vCPUs may accept
 * disjoint 2 MiB-aligned ranges concurrently (a table's accepting list
 * guarantees that); configuration calls must not race with guest calls.
 */
#ifndef UA_GUEST_H
#define UA_GUEST_H

#ifdef __cplusplus
extern "C" {
#endif

/* UA_CDEF_BEGIN */

typedef struct ua_guest ua_guest;

typedef struct ua_guest_config {
    uint32_t vendor;                     /* ua_vendor */
    uint32_t vcpus;                      /* 1 .. UA_MAX_VCPUS */
    uint64_t memory_bytes;               /* guest RAM is GPA [0, memory_bytes): a non-zero
                                          * multiple of 4 KiB (SNP: of 2 MiB), <= 2^52 */
    uint32_t backing;                    /* ua_backing */
    uint32_t reserved;                   /* must be 0 */
    const ua_cost_profile *cost_profile; /* NULL: no cost accounting; else the guest
                                          * owns counters with this profile */
    ua_host *host;                       /* NULL: KVM; else must outlive the guest */
    const void *vendor_config;           /* NULL: the vendor's defaults; else a
                                          * ua_snp_config / ua_tdx_config whose
                                          * memory, vCPUs and backing are replaced by
                                          * the fields above */
} ua_guest_config;

UA_API ua_status ua_guest_create(const ua_guest_config *cfg, ua_guest **out);
UA_API void ua_guest_destroy(ua_guest *g);
/* The config as created (vendor_config and cost_profile read back as NULL). */
UA_API ua_status ua_guest_config_get(const ua_guest *g, ua_guest_config *out);

/* The accept primitive of a path kind, to install with ua_table_set_accept
 * or to call as fn(ctx, start, end, vcpu) with 4 KiB-aligned addresses.
 * The path lives as long as the guest. */
UA_API ua_status ua_guest_accept_path(ua_guest *g, uint32_t kind, ua_accept_fn *fn, void **ctx);
/* Replace the options of the path of opts->kind (not while it runs). */
UA_API ua_status ua_guest_set_path_options(ua_guest *g, const ua_path_options *opts);
/* Give [start, end) back (4 KiB aligned): SNP rescinds validation, then
 * Page State Change to shared; TDX MapGPA to shared, then back to private
 * (the VMM drops the pages; they are unaccepted again).  Same outcomes as
 * an accept: UA_OK or a fatal status. */
UA_API ua_status ua_guest_unaccept(ua_guest *g, uint32_t kind, uint64_t start, uint64_t end,
                             uint32_t vcpu);
/* A kernel (or, with UA_TOUCH_USER, user) load or store at gpa from vcpu,
 * handled as Linux handles it; flags = UA_TOUCH_*.  UA_OK with the
 * outcome in *out (fatal outcomes are also in the fatal record). */
UA_API ua_status ua_guest_touch(ua_guest *g, uint32_t vcpu, uint64_t gpa, uint32_t flags,
                                ua_touch_result *out);
/* The same for callers that cross an FFI per call: 0 when the access was
 * served without an exit (the common case: nothing to read back), 1 when
 * *out holds another outcome, -status on an error. */
UA_API int ua_guest_touch_1(ua_guest *g, uint32_t vcpu, uint64_t gpa, uint32_t flags,
                            ua_touch_result *out);
/* 4 KiB pages of [start, end) the guest has accepted (SNP: validated with
 * the right owner and GPA; TDX: MAPPED). */
UA_API ua_status ua_guest_count_accepted(const ua_guest *g, uint64_t start, uint64_t end,
                                         uint64_t *pages);

UA_API ua_status ua_guest_path_stats_get(const ua_guest *g, uint32_t kind, ua_path_stats *out);
UA_API ua_status ua_guest_path_stats_reset(ua_guest *g, uint32_t kind);
/* The fatal record (kind UA_FATAL_NONE while the guest lives). */
UA_API ua_status ua_guest_fatal_get(const ua_guest *g, ua_fatal *out);
UA_API void ua_guest_fatal_clear(ua_guest *g);

UA_API ua_cost *ua_guest_cost(const ua_guest *g);   /* NULL without a cost profile */
UA_API ua_host *ua_guest_host(const ua_guest *g);   /* the host serving it; NULL: KVM */
/* Serve the guest with another host (NULL: KVM) from now on; it must
 * outlive the guest.  Not while guest calls run. */
UA_API ua_status ua_guest_set_host(ua_guest *g, ua_host *host);
/* A cancel flag the caller owns (NULL = none): while *flag is non-zero the
 * guest's accept paths stop between batches (SNP: before the next PSC fill,
 * or 2 MiB of the early path; TDX: before the next ACCEPT) and return
 * UA_E_INTERRUPTED; the pages accepted before stay accepted.  Set it for
 * calls made on the path directly: a table driving a path cannot know how
 * far an interrupted run got (use ua_table_set_cancel there). */
UA_API ua_status ua_guest_set_cancel(ua_guest *g, const volatile int *flag);
UA_API ua_snp *ua_guest_snp(const ua_guest *g);     /* NULL unless SNP */
UA_API ua_tdx *ua_guest_tdx(const ua_guest *g);     /* NULL unless TDX */

/* UA_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* UA_GUEST_H */
