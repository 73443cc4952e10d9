/*
 * ua_tdx.h - Intel TDX model: Secure EPT, host SEAMCALLs, guest TDCALLs
 * (TDG.MEM.PAGE.ACCEPT, TDG.VP.VEINFO.GET, TDG.VM.RD/WR, TDG.VP.VMCALL
 * MapGPA), guest accesses (#VE / TD exits) whose exits go to the host
 * (ua_host.h), and the guest accept paths (Linux tdx_accept_memory, OVMF
 * TdAcceptPages).  Included by unaccepted.h; do not include directly.
 *
 * Register-level conventions follow the TDX module 1.5 ABI (docs/tdx.md):
 *   - page_info / RCX = GPA | level, level 0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB;
 *   - TDX status words are 64-bit values: class in 47:40, details in 39:32,
 *     operand id or level in 31:0, bit 63 = error;
 *   - the simulator's own failures (bad handle, vCPU out of range, address
 *     past the guest for host calls) are ua_status codes, never TDX codes.
 *
 * Threading: different vCPUs may run guest operations concurrently on
 * disjoint 2 MiB-aligned ranges, and TDH.MEM.TRACK / TDG.VM.WR may run
 * alongside them.  Other host SEAMCALLs, configuration setters and guest
 * operations on the same 2 MiB region must not run concurrently.
 */
#ifndef UA_TDX_H
#define UA_TDX_H

#ifdef __cplusplus
extern "C" {
#endif

/* UA_CDEF_BEGIN */

/* ---- levels ---------------------------------------------------------------- */
#define UA_TDX_LEVEL_4K 0
#define UA_TDX_LEVEL_2M 1
#define UA_TDX_LEVEL_1G 2

/* ---- public SEPT states (TDX module sept_state_lookup, public value) ------- */
#define UA_TDX_SEPT_FREE 0
#define UA_TDX_SEPT_BLOCKED 1
#define UA_TDX_SEPT_PENDING 2
#define UA_TDX_SEPT_PENDING_BLOCKED 3
#define UA_TDX_SEPT_MAPPED 4
#define UA_TDX_SEPT_REMOVED 5
#define UA_TDX_SEPT_BLOCKEDW 8
#define UA_TDX_SEPT_EXPORTED_BLOCKEDW 9
#define UA_TDX_SEPT_EXPORTED_DIRTY 11
#define UA_TDX_SEPT_EXPORTED_DIRTY_BLOCKEDW 12
#define UA_TDX_SEPT_PENDING_BLOCKEDW 16
#define UA_TDX_SEPT_PENDING_EXPORTED_BLOCKEDW 17
#define UA_TDX_SEPT_PENDING_EXPORTED_DIRTY 19
#define UA_TDX_SEPT_PENDING_EXPORTED_DIRTY_BLOCKEDW 20
#define UA_TDX_SEPT_NL_BLOCKED 129
#define UA_TDX_SEPT_NL_MAPPED 132

/* ---- TDX status codes -------------------------------------------------------- */
#define UA_TDX_SUCCESS 0x0000000000000000ULL
#define UA_TDX_OPERAND_INVALID 0xC000010000000000ULL
#define UA_TDX_OPERAND_BUSY 0x8000020000000000ULL
#define UA_TDX_OPERAND_BUSY_HOST_PRIORITY 0x8000020400000000ULL
#define UA_TDX_HOST_PRIORITY_BUSY_TIMEOUT 0x9000020500000000ULL
#define UA_TDX_INTERRUPTED_RESUMABLE 0x8000000300000000ULL
#define UA_TDX_OP_STATE_INCORRECT 0xC000060800000000ULL
#define UA_TDX_NO_VALID_VE_INFO 0xC000070400000000ULL
#define UA_TDX_EPT_WALK_FAILED 0xC0000B0000000000ULL
#define UA_TDX_EPT_ENTRY_FREE 0xC0000B0100000000ULL
#define UA_TDX_EPT_ENTRY_NOT_FREE 0xC0000B0200000000ULL
#define UA_TDX_EPT_ENTRY_NOT_LEAF 0xC0000B0400000000ULL
#define UA_TDX_GPA_RANGE_NOT_BLOCKED 0xC0000B0600000000ULL
#define UA_TDX_GPA_RANGE_ALREADY_BLOCKED 0x00000B0700000000ULL
#define UA_TDX_TLB_TRACKING_NOT_DONE 0xC0000B0800000000ULL
#define UA_TDX_EPT_INVALID_PROMOTE_CONDITIONS 0xC0000B0900000000ULL
#define UA_TDX_PAGE_ALREADY_ACCEPTED 0x00000B0A00000000ULL
#define UA_TDX_PAGE_SIZE_MISMATCH 0xC0000B0B00000000ULL
#define UA_TDX_GPA_RANGE_BLOCKED 0xC0000B0C00000000ULL
#define UA_TDX_EPT_ENTRY_STATE_INCORRECT 0xC0000B0D00000000ULL
#define UA_TDX_METADATA_FIELD_ID_INCORRECT 0xC0000C0000000000ULL
#define UA_TDX_METADATA_FIELD_NOT_WRITABLE 0xC0000C0100000000ULL
#define UA_TDX_METADATA_FIELD_VALUE_NOT_VALID 0xC0000C0300000000ULL
#define UA_TDX_OPERAND_ID_RAX 0
#define UA_TDX_OPERAND_ID_RCX 1
#define UA_TDX_OPERAND_ID_SEPT_TREE 146 /* TLB_TRACKING_NOT_DONE of RANGE.UNBLOCK */
/* status & UA_TDX_STATUS_CLASS_MASK strips the operand id / level */
#define UA_TDX_STATUS_CLASS_MASK 0xFFFFFFFF00000000ULL

/* ---- leaves ------------------------------------------------------------------ */
#define UA_TDX_TDCALL_VP_VMCALL 0
#define UA_TDX_TDCALL_VP_VEINFO_GET 3
#define UA_TDX_TDCALL_MEM_PAGE_ACCEPT 6
#define UA_TDX_TDCALL_VM_RD 7
#define UA_TDX_TDCALL_VM_WR 8
#define UA_TDX_SEAMCALL_MEM_PAGE_ADD 2
#define UA_TDX_SEAMCALL_MEM_PAGE_AUG 6
#define UA_TDX_SEAMCALL_MEM_RANGE_BLOCK 7
#define UA_TDX_SEAMCALL_MEM_PAGE_DEMOTE 15
#define UA_TDX_SEAMCALL_MR_FINALIZE 17
#define UA_TDX_SEAMCALL_MEM_PAGE_PROMOTE 23
#define UA_TDX_SEAMCALL_MEM_PAGE_REMOVE 29
#define UA_TDX_SEAMCALL_MEM_TRACK 38
#define UA_TDX_SEAMCALL_MEM_RANGE_UNBLOCK 39

/* ---- TD-scope metadata and controls ------------------------------------------ */
#define UA_TDX_TDCS_CONFIG_FLAGS 0x1110000300000016ULL
#define UA_TDX_TDCS_TD_CTLS 0x1110000300000017ULL
#define UA_TDX_CONFIG_FLEXIBLE_PENDING_VE 0x2
#define UA_TDX_TD_CTLS_PENDING_VE_DISABLE 0x1
#define UA_TDX_ATTR_SEPT_VE_DISABLE 0x10000000
#define UA_TDX_ATTR_DEBUG 0x1

/* ---- exits, exceptions, VMCALL ----------------------------------------------- */
#define UA_TDX_EXIT_REASON_EPT_VIOLATION 48
#define UA_TDX_EEQ_TYPE_NONE 0
#define UA_TDX_EEQ_TYPE_ACCEPT 1
#define UA_TDX_EEQ_TYPE_PENDING_EPT_VIOLATION 6
#define UA_TDX_VECTOR_DF 8
#define UA_TDX_VECTOR_VE 20
#define UA_TDX_VMCALL_MAP_GPA 0x10001
#define UA_TDX_VMCALL_SUCCESS 0x0000000000000000ULL
#define UA_TDX_VMCALL_RETRY 0x0000000000000001ULL
#define UA_TDX_VMCALL_INVALID_OPERAND 0x8000000000000000ULL
#define UA_TDX_VMCALL_ALIGN_ERROR 0x8000000000000002ULL
#define UA_TDX_VMCALL_SUBFUNC_UNSUPPORTED 0x8000000000000003ULL

/* ---- model configuration ----------------------------------------------------- */
#define UA_TDX_INIT_FREE 0      /* private RAM starts FREE: the VMM AUGs on demand */
#define UA_TDX_INIT_PENDING 1   /* private RAM starts PENDING (VMM pre-AUGed it) */

typedef struct ua_tdx_config {
    uint64_t memory_bytes;   /* private RAM is GPA [0, memory_bytes); multiple of 4 KiB, > 0 */
    uint32_t vcpus;          /* 1 .. UA_MAX_VCPUS */
    uint32_t gpaw;           /* 48 or 52; the shared bit is bit gpaw-1 */
    uint32_t backing;        /* ua_backing: the largest page the host maps */
    uint32_t initial;        /* UA_TDX_INIT_FREE or UA_TDX_INIT_PENDING (at the backing level) */
    uint32_t reserved;       /* must be 0 */
    uint32_t accept_1g;      /* nonzero: a module that takes level-2 ACCEPT operands */
    uint64_t attributes;     /* TD ATTRIBUTES; bit 28 SEPT_VE_DISABLE initialises TD_CTLS bit 0 */
    uint64_t config_flags;   /* CONFIG_FLAGS; bit 1 FLEXIBLE_PENDING_VE */
    uint32_t hp_busy_limit;  /* host-priority busy answers in a row before the TD exits with
                                HOST_PRIORITY_BUSY_TIMEOUT (0 = never) */
    uint32_t finalized;      /* nonzero: create the TD already finalized (no build phase) */
} ua_tdx_config;

/* Defaults: 1 GiB, 1 vCPU, GPAW 52, 2 MiB backing, FREE, no 1 GiB accept,
 * SEPT_VE_DISABLE set, no flexible control, finalized. */
UA_API void ua_tdx_config_default(ua_tdx_config *cfg);
UA_API ua_status ua_tdx_create(const ua_tdx_config *cfg, ua_tdx **out);
UA_API void ua_tdx_destroy(ua_tdx *t);
UA_API ua_status ua_tdx_config_get(const ua_tdx *t, ua_tdx_config *out);
/* Cost accounting (NULL = none).  The cost must have at least vcpus vCPUs. */
UA_API ua_status ua_tdx_set_cost(ua_tdx *t, ua_cost *cost);
/* The caller's cancel flag for the guest paths (see ua_guest_set_cancel). */
UA_API ua_status ua_tdx_set_cancel(ua_tdx *t, const volatile int *flag);
/* The hypervisor serving this TD (NULL = KVM); it must outlive t. */
UA_API ua_status ua_tdx_set_host(ua_tdx *t, ua_host *host);
/* The host serving it; NULL for the built-in KVM host. */
UA_API ua_host *ua_tdx_host(const ua_tdx *t);
/* The fatal record (panics, hangs, a host that stopped the TD). */
UA_API ua_status ua_tdx_fatal_get(const ua_tdx *t, ua_fatal *out);
UA_API void ua_tdx_fatal_clear(ua_tdx *t);
/* Bytes of simulator memory held by the SEPT model. */
UA_API uint64_t ua_tdx_memory_usage(const ua_tdx *t);
UA_API int ua_tdx_is_finalized(const ua_tdx *t);
/* Migration import in progress: REMOVE then leaves REMOVED instead of FREE. */
UA_API void ua_tdx_set_importing(ua_tdx *t, int importing);

/* ---- host side (VMM SEAMCALLs) ------------------------------------------------ */
typedef struct ua_tdx_host_result {
    uint64_t status;    /* TDX status (RAX) */
    uint64_t hpa;       /* ADD/AUG: page mapped; REMOVE: page freed; 0 otherwise */
    uint32_t level;     /* EPT errors: level of the SEPT entry the walk reached */
    uint32_t state;     /* EPT errors: its public state */
} ua_tdx_host_result;

/* Each takes the issuing vCPU for cost accounting (the VMM thread that runs
 * on behalf of that vCPU).  page_info = GPA | level, as RCX. */
UA_API ua_status ua_tdx_host_add(ua_tdx *t, uint32_t vcpu, uint64_t page_info,
                                 uint32_t data_nonzero, ua_tdx_host_result *out);
UA_API ua_status ua_tdx_host_finalize(ua_tdx *t, uint32_t vcpu, ua_tdx_host_result *out);
UA_API ua_status ua_tdx_host_aug(ua_tdx *t, uint32_t vcpu, uint64_t page_info, ua_tdx_host_result *out);
UA_API ua_status ua_tdx_host_block(ua_tdx *t, uint32_t vcpu, uint64_t page_info, ua_tdx_host_result *out);
UA_API ua_status ua_tdx_host_track(ua_tdx *t, uint32_t vcpu, ua_tdx_host_result *out);
UA_API ua_status ua_tdx_host_remove(ua_tdx *t, uint32_t vcpu, uint64_t page_info, ua_tdx_host_result *out);
UA_API ua_status ua_tdx_host_unblock(ua_tdx *t, uint32_t vcpu, uint64_t page_info, ua_tdx_host_result *out);
UA_API ua_status ua_tdx_host_demote(ua_tdx *t, uint32_t vcpu, uint64_t page_info, ua_tdx_host_result *out);
UA_API ua_status ua_tdx_host_promote(ua_tdx *t, uint32_t vcpu, uint64_t page_info, ua_tdx_host_result *out);
/* TDH.MEM.PAGE.ADD of every 4 KiB page of [start, end) (launch pages; KVM's
 * KVM_TDX_INIT_MEM_REGION).  Stops at the first page whose status is not
 * SUCCESS: out describes it and *done (may be NULL) counts the pages added. */
UA_API ua_status ua_tdx_host_add_range(ua_tdx *t, uint32_t vcpu, uint64_t start, uint64_t end,
                                       uint32_t data_nonzero, ua_tdx_host_result *out,
                                       uint64_t *done);
/* Contention knobs: hold the SEPT entry lock (TDEL, as a concurrent
 * SEAMCALL would) or the host-priority bit (HP) of the entry at page_info.
 * UA_E_STATE if no entry exists at that level (e.g. 4 KiB in a 2 MiB leaf). */
UA_API ua_status ua_tdx_host_set_lock(ua_tdx *t, uint64_t page_info, int locked);
UA_API ua_status ua_tdx_host_set_priority(ua_tdx *t, uint64_t page_info, int host_priority);

/* ---- inspection ------------------------------------------------------------- */
typedef struct ua_tdx_entry_info {
    uint32_t state;          /* public state */
    uint32_t level;          /* level of the entry */
    uint32_t is_leaf;
    uint32_t locked;         /* TDEL */
    uint32_t host_priority;  /* HP */
    uint32_t accept_counter; /* 2 MiB PENDING leaf: 4 KiB chunks already zeroed */
    uint32_t shared;         /* the VMM holds this 4 KiB GPA as shared (MapGPA) */
    uint32_t data_nonzero;   /* the 4 KiB page at gpa holds non-zero data */
    uint64_t hpa;            /* host physical address of the 4 KiB page at gpa, 0 if none */
} ua_tdx_entry_info;

/* The SEPT entry at exactly `level` covering gpa (UA_E_STATE if the walk
 * ends above that level), or with level = -1 the entry the walk ends at. */
UA_API ua_status ua_tdx_entry(const ua_tdx *t, uint64_t gpa, int level, ua_tdx_entry_info *out);
/* Count 4 KiB pages of [start, end) by the public state of the leaf that
 * governs them; counts[s] for s = 0..5 (FREE..REMOVED). */
UA_API ua_status ua_tdx_count_states(const ua_tdx *t, uint64_t start, uint64_t end, uint64_t *counts);
/* Pages in [start, end) that are MAPPED and hold non-zero data. */
UA_API ua_status ua_tdx_count_nonzero(const ua_tdx *t, uint64_t start, uint64_t end, uint64_t *count);

/* ---- guest side (TDCALLs, accesses) ----------------------------------------- */
typedef struct ua_tdx_tdcall_result {
    uint64_t rax;                 /* TDX status; the input RAX if there was no return */
    uint32_t exited;              /* 1: asynchronous TD exit instead of a return */
    uint32_t interrupted;         /* 1: 2 MiB accept paused for a pending interrupt;
                                     RIP and RAX unchanged, re-execute to resume */
    uint32_t exit_reason;         /* 48 (EPT violation) when exited */
    uint32_t eeq_type;            /* extended exit qualification type */
    uint64_t exit_qualification;  /* extended exit qualification: type 3:0, info 63:32 */
    uint64_t exit_status;         /* HOST_PRIORITY_BUSY_TIMEOUT exits: that code */
    uint64_t gpa;                 /* GPA reported with an exit */
    uint32_t chunks_zeroed;       /* 4 KiB chunks zeroed by this execution */
    uint32_t accept_counter;      /* 2 MiB leaf's accept counter afterwards */
} ua_tdx_tdcall_result;

/* One execution of TDG.MEM.PAGE.ACCEPT.  rax must have leaf 6 in bits 15:0
 * (else UA_E_INVAL); other RAX bits are the version/reserved checks. */
UA_API ua_status ua_tdx_tdcall_accept(ua_tdx *t, uint32_t vcpu, uint64_t rax, uint64_t rcx,
                                      ua_tdx_tdcall_result *out);

#define UA_TDX_ACCESS_OK 0
#define UA_TDX_ACCESS_VE 1        /* #VE injected (vector 20) */
#define UA_TDX_ACCESS_DF 2        /* #DF injected: #VE while VE info was valid */
#define UA_TDX_ACCESS_EXIT 3      /* TD exit to the VMM (EPT violation) */

typedef struct ua_tdx_access_result {
    uint32_t outcome;             /* UA_TDX_ACCESS_* */
    uint32_t vector;              /* 20 or 8 when injected */
    uint32_t exit_reason;         /* 48 for EPT-violation exits */
    uint32_t eeq_type;            /* 0 plain, 6 pending */
    uint64_t exit_qualification;  /* EPT-violation qualification: bit 0 read, bit 1 write */
    uint64_t extended_exit_qualification; /* exits: EEQ, type in 3:0 (what the VMM reads) */
    uint32_t state;               /* public state of the entry that decided */
    uint32_t data_nonzero;        /* reads of MAPPED pages: 1 if the page holds non-zero data */
} ua_tdx_access_result;

/* A guest load (write = 0) or store (write = 1) to gpa (shared bit allowed). */
UA_API ua_status ua_tdx_guest_access(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint32_t write,
                                     ua_tdx_access_result *out);

typedef struct ua_tdx_veinfo {
    uint64_t status;              /* SUCCESS or NO_VALID_VE_INFO */
    uint32_t exit_reason;
    uint32_t valid;               /* 0xFFFFFFFF while valid */
    uint64_t exit_qualification;
    uint64_t gla;                 /* the model's guest is identity-mapped: gla = gpa */
    uint64_t gpa;
} ua_tdx_veinfo;
/* TDG.VP.VEINFO.GET: read and invalidate the vCPU's VE info. */
UA_API ua_status ua_tdx_tdcall_veinfo_get(ua_tdx *t, uint32_t vcpu, ua_tdx_veinfo *out);
/* TDG.VM.RD / TDG.VM.WR on CONFIG_FLAGS (read only) and TD_CTLS. */
UA_API ua_status ua_tdx_tdcall_vm_rd(ua_tdx *t, uint32_t vcpu, uint64_t field, uint64_t *status,
                                     uint64_t *value);
UA_API ua_status ua_tdx_tdcall_vm_wr(ua_tdx *t, uint32_t vcpu, uint64_t field, uint64_t value,
                                     uint64_t mask, uint64_t *status, uint64_t *old_value);

typedef struct ua_tdx_vmcall_result {
    uint64_t rax;      /* TDCALL status (0) */
    uint64_t r10;      /* VMCALL status */
    uint64_t r11;      /* RETRY: the GPA to resume from */
    uint64_t chunks;   /* 2 MiB chunks the VMM converted in this call */
} ua_tdx_vmcall_result;
/* TDG.VP.VMCALL with R10 (0 = standard), R11 (sub-function), R12, R13,
 * served by the host.  KVM implements MapGPA (0x10001) only; others get
 * SUBFUNC_UNSUPPORTED. */
UA_API ua_status ua_tdx_tdvmcall(ua_tdx *t, uint32_t vcpu, uint64_t r10, uint64_t r11,
                                 uint64_t r12, uint64_t r13, ua_tdx_vmcall_result *out);

/* An interrupt arrives after the vCPU completes `after` more interruptible
 * work units (a 4 KiB chunk of a 2 MiB ACCEPT, a 2 MiB chunk of MapGPA),
 * then every `period` units (0 = once).  after = 0 disarms. */
UA_API ua_status ua_tdx_set_interrupts(ua_tdx *t, uint32_t vcpu, uint32_t after, uint32_t period);

/* ---- the host ------------------------------------------------------------------ */
/* Hand a TD exit to the host, as the module does: one reported by a TDCALL
 * (its exit_qualification) or an access (its extended_exit_qualification),
 * with the exit status (HOST_PRIORITY_BUSY_TIMEOUT or 0).  *action (may be
 * NULL) gets what the host did (ua_host_action).  UA_E_HOST when the host
 * stops the TD. */
UA_API ua_status ua_tdx_serve_exit(ua_tdx *t, uint32_t vcpu, uint64_t gpa,
                                   uint64_t exit_qualification, uint64_t exit_status,
                                   uint32_t *action);

/* ---- guest accept paths --------------------------------------------------------- */
/*   UA_PATH_LINUX, UA_PATH_LINUX_EARLY  tdx_accept_memory(): 1G -> 2M -> 4K, any
 *                                       non-zero status fails (the decompressor
 *                                       and the kernel share it)
 *   UA_PATH_OVMF                        TdxMemoryAccept + TdAcceptPages
 *   UA_PATH_OVMF_SEC                    SEC's MP accept: TdAcceptPages with 2 MiB
 *                                       pages for every aligned 2 MiB, 4 KiB
 *                                       around them */
typedef struct ua_tdx_path ua_tdx_path;
/* opts may be NULL (Linux defaults); the SNP fields must be 0.  The path
 * keeps a reference to t: t must outlive it. */
UA_API ua_status ua_tdx_path_create(ua_tdx *t, const ua_path_options *opts, ua_tdx_path **out);
UA_API void ua_tdx_path_destroy(ua_tdx_path *p);
UA_API uint32_t ua_tdx_path_kind(const ua_tdx_path *p);
UA_API ua_status ua_tdx_path_stats_get(const ua_tdx_path *p, ua_path_stats *out);
UA_API void ua_tdx_path_stats_reset(ua_tdx_path *p);
/* New options for an existing path (its statistics restart); the kind may
 * change too.  Not while the path runs. */
UA_API ua_status ua_tdx_path_set_options(ua_tdx_path *p, const ua_path_options *opts);
/* The accept primitive: the path's algorithm over [start, end). */
UA_API int ua_tdx_accept(void *path, uint64_t start, uint64_t end, uint32_t vcpu);
/* The reverse conversion, as Linux gives private memory back: MapGPA to
 * shared (the VMM removes the private pages), then back to private; the
 * pages are unaccepted (FREE) afterwards. */
UA_API int ua_tdx_unaccept(void *path, uint64_t start, uint64_t end, uint32_t vcpu);

/* Linux's MapGPA loop (tdx_map_gpa): convert [start, end) to shared or
 * private, re-issuing on RETRY; gives up after 3 retries without progress.
 * *r10 gets the last VMCALL status. */
UA_API ua_status ua_tdx_linux_map_gpa(ua_tdx *t, uint32_t vcpu, uint64_t start, uint64_t end,
                                      int shared, uint64_t *r10);

/* Linux's disable_sept_ve() at boot: with CONFIG_FLAGS.FLEXIBLE_PENDING_VE
 * it sets TD_CTLS.PENDING_VE_DISABLE (unless the TD is a DEBUG TD, which
 * keeps SEPT #VEs enabled); without it the TD must have been built
 * with ATTRIBUTES.SEPT_VE_DISABLE, else the kernel panics ("TD
 * misconfiguration: SEPT #VE has to be disabled"; only a warning for DEBUG
 * TDs).  UA_OK or UA_E_GUEST_PANIC; *message (may be NULL) gets the text
 * printed ("" if none). */
UA_API ua_status ua_tdx_linux_disable_sept_ve(ua_tdx *t, uint32_t vcpu, const char **message);
/* A Linux kernel load or store to gpa (flags UA_TOUCH_*; UA_TOUCH_SHARED sets
 * the shared bit): plain EPT-violation exits are served by the host and the
 * access retried; a #VE on private memory panics ("Unexpected
 * EPT-violation on private memory."); a pending-page exit (EEQ type 6)
 * makes KVM stop the TD (terminated).  Fatal outcomes are also recorded. */
UA_API ua_status ua_tdx_linux_touch(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint32_t flags,
                                    ua_touch_result *out);

/* UA_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* UA_TDX_H */
