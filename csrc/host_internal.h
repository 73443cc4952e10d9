/* host_internal.h - the host object behind ua_host (host.c); not installed. */
#ifndef UA_HOST_INTERNAL_H
#define UA_HOST_INTERNAL_H

#include "ua_internal.h"

struct ua_host {
    ua_host_config cfg;
    ua_host_ops ops;     /* effective table: the user's entries, else the behaviour's;
                          * a NULL entry means KVM, called directly */
    void *ctx;
    uint32_t stalls;     /* map-gpa-stall: RETRY answers still to give (atomic) */
};

/* A plain KVM host with the default options (each machine embeds one). */
void ua_host_init_default(ua_host *h);

/* Pieces of KVM the named behaviours reuse (tdx_kvm.c). */
/* KVM's exit handler with the AUG level capped at max_level. */
int tdx_kvm_exit(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                 uint64_t exit_status, uint32_t *action, unsigned max_level);
/* KVM's MapGPA argument checks: 0 if the request is well formed, else the
 * VMCALL error is in out->r10. */
int tdx_map_gpa_check(const ua_tdx *t, uint64_t gpa, uint64_t size, ua_tdx_vmcall_result *out);

#endif
