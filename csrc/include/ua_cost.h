/*
 * ua_cost.h - cost profiles, per-vCPU event counters and simulated clocks.
 * Included by unaccepted.h; do not include directly.
 *
 * Every architectural event a model executes (an instruction, an exit, a
 * zeroing pass, ...) is charged to the vCPU that issued it: its counter goes
 * up by n and its clock by n * profile.cycles[event].  Each vCPU slot must be
 * driven by one thread at a time; different vCPUs may be charged in parallel.
 */
#ifndef UA_COST_H
#define UA_COST_H

#ifdef __cplusplus
extern "C" {
#endif

/* UA_CDEF_BEGIN */

typedef enum ua_event {
    /* AMD SEV-SNP */
    UA_EV_PVALIDATE_4K = 0,     /* one PVALIDATE with a 4 KiB operand, any outcome */
    UA_EV_PVALIDATE_2M = 1,     /* one PVALIDATE with a 2 MiB operand, any outcome */
    UA_EV_RMPADJUST = 2,
    UA_EV_VMGEXIT_PSC_MSR = 3,  /* one GHCB MSR-protocol Page State Change round trip */
    UA_EV_VMGEXIT_PSC = 4,      /* one GHCB NAE Page State Change VMGEXIT */
    UA_EV_RMPUPDATE_4K = 5,     /* host RMPUPDATE of a 4 KiB entry */
    UA_EV_RMPUPDATE_2M = 6,     /* host RMPUPDATE of a 2 MiB entry */
    UA_EV_PSMASH = 7,
    UA_EV_NPF_EXIT = 8,         /* #VMEXIT(NPF), e.g. an RMP check failing */
    UA_EV_VC = 9,               /* #VC delivered to the guest */
    UA_EV_CACHE_TOUCH_4K = 10,  /* coherency mitigation: touch one validated 4 KiB page */
    /* Intel TDX */
    UA_EV_TDCALL_ACCEPT = 11,   /* one TDG.MEM.PAGE.ACCEPT execution, any outcome */
    UA_EV_TD_EXIT = 12,         /* TD exit to the VMM (EPT violation) and re-entry */
    UA_EV_AUG_4K = 13,          /* TDH.MEM.PAGE.AUG of a 4 KiB page */
    UA_EV_AUG_2M = 14,          /* TDH.MEM.PAGE.AUG of a 2 MiB page */
    UA_EV_ZERO_4K = 15,         /* one 4 KiB zeroing pass under the TD key */
    UA_EV_SEAMCALL = 16,        /* any other host SEAMCALL (BLOCK, TRACK, REMOVE, ...) */
    UA_EV_TDVMCALL = 17,        /* TDG.VP.VMCALL round trip (MapGPA, ...) */
    UA_EV_VE = 18,              /* #VE delivered to the guest */
    /* shared */
    UA_EV_ACCEPT_CALL = 19,     /* one arch_accept_memory() call (fixed overhead) */
    UA_EV_TDCALL_OTHER = 20     /* any other TDCALL (TDG.VM.RD/WR, TDG.VP.VEINFO.GET, ...) */
    /* new events are appended; ua_event_count() says how many this build has */
} ua_event;

/* Room the ABI keeps for events: profiles and count buffers of this size
 * stay valid when events are added.  Ask ua_event_count() at run time. */
#define UA_EV_MAX 32
#define UA_MAX_VCPUS 65536

typedef struct ua_cost_profile {
    char name[32];
    double ghz;                 /* cycles per nanosecond of the simulated CPU */
    uint64_t cycles[32];        /* UA_EV_MAX: cycles per event, indexed by ua_event */
} ua_cost_profile;

/* Events this build charges (<= UA_EV_MAX). */
UA_API int ua_event_count(void);
UA_API const char *ua_event_name(int event);
/* Built-in profiles, by index (0 .. count-1) or by name. */
UA_API size_t ua_cost_profile_count(void);
UA_API ua_status ua_cost_profile_builtin(size_t index, ua_cost_profile *out);
UA_API ua_status ua_cost_profile_find(const char *name, ua_cost_profile *out);
/* Where a built-in profile's value for an event comes from (never NULL). */
UA_API const char *ua_cost_profile_source(size_t index, int event);

typedef struct ua_cost ua_cost;
UA_API ua_status ua_cost_create(const ua_cost_profile *profile, uint32_t vcpus, ua_cost **out);
UA_API void ua_cost_destroy(ua_cost *c);
UA_API uint32_t ua_cost_vcpus(const ua_cost *c);
UA_API ua_status ua_cost_profile_get(const ua_cost *c, ua_cost_profile *out);
/* Charge n events to a vCPU.  A NULL cost, an unknown event or a vCPU out of
 * range is ignored (models validate vCPUs at their entry points). */
UA_API void ua_cost_charge(ua_cost *c, uint32_t vcpu, int event, uint64_t n);
/* Add cycles to a vCPU's clock that no event accounts for (waiting, ...). */
UA_API void ua_cost_advance(ua_cost *c, uint32_t vcpu, uint64_t cycles);
UA_API ua_status ua_cost_counts(const ua_cost *c, uint32_t vcpu, uint64_t *counts, size_t n);
UA_API ua_status ua_cost_total_counts(const ua_cost *c, uint64_t *counts, size_t n);
UA_API uint64_t ua_cost_cycles(const ua_cost *c, uint32_t vcpu);
UA_API double ua_cost_seconds(const ua_cost *c, uint32_t vcpu);
UA_API void ua_cost_reset(ua_cost *c);

/* UA_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* UA_COST_H */
