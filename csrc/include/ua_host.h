/*
 * ua_host.h - the pluggable hypervisor.  A host serves the guest's exits:
 * on SEV-SNP the Page State Change requests (GHCB NAE event and MSR
 * protocol) and the nested page faults of PVALIDATE and of plain accesses;
 * on TDX the EPT-violation exits (AUG, DEMOTE, host-priority release) and
 * TDG.VP.VMCALLs such as MapGPA.  Included by unaccepted.h; do not include
 * directly.  See docs/host.md.
 *
 * A host is an ops table plus a context.  Every entry may be NULL: a NULL
 * entry is served by the host's named behaviour, and a behaviour that does
 * not handle that exit falls through to KVM's implementation, the default.
 * The KVM handlers are public (ua_host_kvm_*) so a host written in C can do
 * what KVM does and change the result.  A machine without a host uses a
 * plain KVM host; the KVM path is called directly, without the indirection.
 *
 * Every handler returns UA_OK, UA_E_GUEST_HUNG when the host never resumes
 * the vCPU, or another status for a failure of the simulator or of a user
 * callback (UA_E_CALLBACK, UA_E_NOMEM); the guest operation then stops and
 * returns that status.  A host must outlive every machine it serves.
 */
#ifndef UA_HOST_H
#define UA_HOST_H

#ifdef __cplusplus
extern "C" {
#endif

/* UA_CDEF_BEGIN */

/* What a host did to serve an exit (statistics and tests). */
typedef enum ua_host_action {
    UA_HOST_DID_NOTHING = 0,      /* not served: the guest re-executes into the same exit */
    UA_HOST_DID_AUG_4K = 1,       /* TDX: TDH.MEM.PAGE.AUG of a 4 KiB page */
    UA_HOST_DID_AUG_2M = 2,       /* TDX: ... of a 2 MiB page */
    UA_HOST_DID_DEMOTE = 3,       /* TDX: BLOCK + TRACK + DEMOTE of a 2 MiB PENDING leaf */
    UA_HOST_DID_RELEASE_HP = 4,   /* TDX: the host-priority SEAMCALL finished */
    UA_HOST_DID_PSMASH = 5,       /* SNP: PSMASH of a 2 MiB RMP entry */
    UA_HOST_DID_RMPUPDATE = 6     /* SNP: lazy RMPUPDATE at the first fault (guest_memfd) */
} ua_host_action;

/* Named host behaviours.  Each is KVM with one thing changed. */
typedef enum ua_host_behavior {
    UA_HOST_KVM = 0,              /* KVM as upstream: serves every exit */
    UA_HOST_PSC_PARTIAL = 1,      /* SNP: completes at most psc_max_entries entries and
                                   * psc_max_pages pages per NAE exit (0 = no limit) */
    UA_HOST_PSC_ERROR = 2,        /* SNP: does the work, answers SW_EXITINFO2 = PSC_ERROR_GENERIC */
    UA_HOST_PSC_RESERVED = 3,     /* SNP: does the work, sets the header's reserved word */
    UA_HOST_PSC_END_GROW = 4,     /* SNP: does the work, raises end_entry by one */
    UA_HOST_PSC_REWIND = 5,       /* SNP: does nothing and sets cur_entry = 0 */
    UA_HOST_PSC_STALL = 6,        /* SNP: does nothing, reports success */
    UA_HOST_GHCB_ERROR = 7,       /* SNP: SW_EXITINFO1 = 2, SW_EXITINFO2 = ghcb_error (1-6)
                                   * for every NAE exit */
    UA_HOST_MSR_ERROR = 8,        /* SNP: MSR protocol PSC answered 1 << 63 | 0x015 */
    UA_HOST_MSR_BAD_CODE = 9,     /* SNP: ... answered with GHCBInfo 0x000 */
    UA_HOST_SKIP_RMPUPDATE = 10,  /* SNP: reports PSC success without any RMPUPDATE */
    UA_HOST_AUG_4K = 11,          /* TDX: always AUGs 4 KiB pages */
    UA_HOST_MAP_GPA_STALL = 12,   /* TDX: the next `count` MapGPA calls answer RETRY
                                   * without converting anything */
    UA_HOST_MAP_GPA_REFUSE = 13,  /* TDX: every MapGPA answered INVALID_OPERAND */
    UA_HOST_NEVER_RESOLVE = 14,   /* both: never resolves an exit: SNP PSC and MSR requests
                                   * and NPFs, TDX EPT violations (the guest hangs) */
    UA_HOST_BEHAVIOR_COUNT = 15
} ua_host_behavior;

typedef struct ua_host_config {
    uint32_t behavior;            /* ua_host_behavior */
    uint32_t lazy_rmpupdate;      /* KVM, SNP: 0 = RMPUPDATE while serving the PSC (QEMU
                                   * pre-faults); 1 = the PSC only records the private
                                   * attribute, RMPUPDATE at the guest's first NPF
                                   * (guest_memfd without pre-faulting) */
    uint32_t npf_psmash;          /* KVM, SNP: 1 = PSMASH a 2 MiB entry on an NPF with SIZEM */
    uint32_t psc_max_entries;     /* psc-partial */
    uint32_t psc_max_pages;       /* psc-partial */
    uint32_t ghcb_error;          /* ghcb-error: the GHCB error code, 1-6 */
    uint32_t count;               /* map-gpa-stall: RETRY answers to give */
    uint32_t reserved;            /* must be 0 */
} ua_host_config;

typedef struct ua_host_ops {
    /* SEV-SNP: a GHCB NAE Page State Change.  header and entries are the
     * scratch area in native words (header: cur_entry 15:0, end_entry
     * 31:16, reserved 63:32), updated in place; capacity = entries that
     * fit.  header is NULL when the scratch area is shorter than a header
     * (KVM answers INVALID_SCRATCH_AREA).  out is zeroed by the caller. */
    int (*snp_psc)(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *header, uint64_t *entries,
                   uint32_t capacity, ua_snp_ghcb_result *out);
    /* SEV-SNP: a GHCB MSR-protocol Page State Change request. */
    int (*snp_psc_msr)(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t request,
                       uint64_t *response);
    /* SEV-SNP: #VMEXIT(NPF) at gpa; *action = what was done (DID_NOTHING:
     * the guest re-executes into the same fault). */
    int (*snp_npf)(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t gpa, uint64_t exitinfo1,
                   uint32_t *action);
    /* TDX: a TD exit for an EPT violation at gpa (eeq = extended exit
     * qualification; exit_status = HOST_PRIORITY_BUSY_TIMEOUT or 0). */
    int (*tdx_exit)(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                    uint64_t exit_status, uint32_t *action);
    /* TDX: TDG.VP.VMCALL with R10..R13 (out is zeroed by the caller). */
    int (*tdx_vmcall)(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t r10, uint64_t r11,
                      uint64_t r12, uint64_t r13, ua_tdx_vmcall_result *out);
} ua_host_ops;

/* Defaults: KVM, eager RMPUPDATE, PSMASH on SIZEM NPFs. */
UA_API void ua_host_config_default(ua_host_config *cfg);
/* cfg may be NULL (defaults); ops may be NULL (the behaviour alone); ctx is
 * handed back by ua_host_ctx().  The ops table is copied. */
UA_API ua_status ua_host_create(const ua_host_config *cfg, const ua_host_ops *ops, void *ctx,
                                ua_host **out);
UA_API void ua_host_destroy(ua_host *h);
UA_API void *ua_host_ctx(const ua_host *h);
UA_API ua_status ua_host_config_get(const ua_host *h, ua_host_config *out);
/* "kvm", "psc-partial", ... ("" for an unknown value); find returns -1 for
 * an unknown name. */
UA_API const char *ua_host_behavior_name(int behavior);
UA_API int ua_host_behavior_find(const char *name);

/* KVM's handlers, for hosts that start from what KVM does.  h supplies the
 * KVM options (lazy_rmpupdate, npf_psmash, psc limits). */
UA_API int ua_host_kvm_snp_psc(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *header,
                               uint64_t *entries, uint32_t capacity, ua_snp_ghcb_result *out);
UA_API int ua_host_kvm_snp_psc_msr(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t request,
                                   uint64_t *response);
UA_API int ua_host_kvm_snp_npf(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t gpa,
                               uint64_t exitinfo1, uint32_t *action);
UA_API int ua_host_kvm_tdx_exit(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                                uint64_t exit_status, uint32_t *action);
UA_API int ua_host_kvm_tdx_vmcall(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t r10,
                                  uint64_t r11, uint64_t r12, uint64_t r13,
                                  ua_tdx_vmcall_result *out);

/* What the host's named behaviour does with an exit (KVM's handler where
 * the behaviour leaves that exit alone): for hosts that override an entry
 * and fall back to their behaviour. */
UA_API int ua_host_behavior_snp_psc(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *header,
                                    uint64_t *entries, uint32_t capacity,
                                    ua_snp_ghcb_result *out);
UA_API int ua_host_behavior_snp_psc_msr(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t request,
                                        uint64_t *response);
UA_API int ua_host_behavior_snp_npf(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t gpa,
                                    uint64_t exitinfo1, uint32_t *action);
UA_API int ua_host_behavior_tdx_exit(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t gpa,
                                     uint64_t eeq, uint64_t exit_status, uint32_t *action);
UA_API int ua_host_behavior_tdx_vmcall(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t r10,
                                       uint64_t r11, uint64_t r12, uint64_t r13,
                                       ua_tdx_vmcall_result *out);

/* UA_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* UA_HOST_H */
