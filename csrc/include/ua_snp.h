/*
 * ua_snp.h - AMD SEV-SNP vendor model: the RMP, the guest instructions
 * (PVALIDATE, RMPADJUST), the host instructions (RMPUPDATE, PSMASH), Page
 * State Change over the GHCB (MSR protocol and NAE event) with a hypervisor
 * model, RMP access checks, and the guest accept paths (Linux runtime, Linux
 * early/decompressor, OVMF).  Included by unaccepted.h; do not include
 * directly.  See docs/snp.md for the rules and their sources.
 *
 * Addresses: the guest RAM is GPA [0, memory_bytes).  The nested page table
 * (NPT) maps GPA -> SPA as the identity unless the host remapped a 4 KiB
 * page (ua_snp_npt_map).  The RMP covers SPA [0, memory_bytes + spare_bytes):
 * the spare SPAs are host memory a host can substitute for guest pages.
 * The guest's own page tables are modelled as the identity map over its RAM,
 * so a guest "virtual address" operand is its GPA; an operand at or past
 * memory_bytes is not mapped (#PF).
 *
 * Storage is sparse: one 24-byte record per 2 MiB region, allocated in
 * chunks on first write; a region that holds 4 KiB entries gets one flag
 * byte per page while its entries follow one GPA/ASID pattern, and 512
 * 8-byte entries otherwise.  Different threads may drive different vCPUs
 * on disjoint 2 MiB-aligned ranges concurrently; host configuration calls
 * (policy, NPT, in-use marks) must not race with guest calls.
 */
#ifndef UA_SNP_H
#define UA_SNP_H

#ifdef __cplusplus
extern "C" {
#endif

/* UA_CDEF_BEGIN */

/* ---- architectural constants --------------------------------------------- */
#define UA_SNP_PAGE_4K 0
#define UA_SNP_PAGE_2M 1
#define UA_SNP_MAX_ASID 1023              /* 10-bit ASID field of the RMP entry */
#define UA_SNP_MAX_VMPL 3

/* PVALIDATE / RMPADJUST return codes (EAX) */
#define UA_SNP_PVALIDATE_SUCCESS 0
#define UA_SNP_FAIL_INPUT 1
#define UA_SNP_FAIL_PERMISSION 2
#define UA_SNP_FAIL_SIZEMISMATCH 6
#define UA_SNP_PVALIDATE_FAIL_NOUPDATE 255  /* Linux's software code for CF=1 */

/* RMPUPDATE / PSMASH return codes (EAX) */
#define UA_SNP_RMP_SUCCESS 0
#define UA_SNP_RMP_FAIL_INPUT 1
#define UA_SNP_RMP_FAIL_PERMISSION 2
#define UA_SNP_RMP_FAIL_INUSE 3
#define UA_SNP_RMP_FAIL_OVERLAP 4

/* VMPL permission bits (RMP entry) */
#define UA_SNP_PERM_READ 1
#define UA_SNP_PERM_WRITE 2
#define UA_SNP_PERM_EXEC_USER 4
#define UA_SNP_PERM_EXEC_SUPER 8
#define UA_SNP_PERM_SSS 16
#define UA_SNP_PERM_ALL 31
/* RMPADJUST RDX: bits 7:0 target VMPL, 15:8 permissions, bit 16 VMSA */
#define UA_SNP_RMPADJUST_VMSA 0x10000

/* #VMEXIT(NPF) EXITINFO1 bits (also the page-fault error code bits 0-4) */
#define UA_SNP_NPF_PRESENT 1
#define UA_SNP_NPF_WRITE 2
#define UA_SNP_NPF_USER 4
#define UA_SNP_NPF_FETCH 16
#define UA_SNP_NPF_RMP 0x80000000          /* bit 31 */
#define UA_SNP_NPF_ENC 0x400000000         /* bit 34 */
#define UA_SNP_NPF_SIZEM 0x800000000       /* bit 35 */
#define UA_SNP_NPF_VMPL 0x1000000000       /* bit 36 */
#define UA_SNP_PFEC_RMP 0x80000000         /* host #PF error code bit 31 */
#define UA_SNP_VC_PAGE_NOT_VALIDATED 0x404
#define UA_SNP_EXIT_NPF 0x400
#define UA_SNP_EXIT_VMGEXIT 0x403

/* GHCB MSR protocol (MSR C001_0130) */
#define UA_SNP_GHCB_MSR_PSC_REQ 0x014
#define UA_SNP_GHCB_MSR_PSC_RESP 0x015
#define UA_SNP_GHCB_MSR_PSC_RESP_ERROR 0x8000000000000015  /* 1<<63 | 0x015 (KVM) */
#define UA_SNP_GHCB_MSR_TERM_REQ 0x100

/* Page State Change */
#define UA_SNP_PSC_OP_PRIVATE 1
#define UA_SNP_PSC_OP_SHARED 2
#define UA_SNP_PSC_OP_PSMASH 3
#define UA_SNP_PSC_OP_UNSMASH 4
#define UA_SNP_VMGEXIT_PSC 0x80000010      /* SW_EXITCODE */
#define UA_SNP_PSC_MAX_ENTRIES 253         /* VMGEXIT_PSC_MAX_COUNT (GHCB 2032-byte buffer) */
#define UA_SNP_LINUX_PSC_MAX_ENTRIES 64    /* VMGEXIT_PSC_MAX_ENTRY */
#define UA_SNP_PSC_HDR_BYTES 8
#define UA_SNP_PSC_ERROR_INVALID_HDR 0x100000001     /* (1<<32) | 1 */
#define UA_SNP_PSC_ERROR_INVALID_ENTRY 0x100000002   /* (1<<32) | 2 */
#define UA_SNP_PSC_ERROR_GENERIC 0x10000000000      /* 0x100 << 32 */
/* GHCB-level errors: SW_EXITINFO1[31:0] = 2 and SW_EXITINFO2 = one of these */
#define UA_SNP_GHCB_EXITINFO1_ERROR 2
#define UA_SNP_GHCB_ERR_NOT_REGISTERED 1
#define UA_SNP_GHCB_ERR_INVALID_USAGE 2
#define UA_SNP_GHCB_ERR_INVALID_SCRATCH_AREA 3
#define UA_SNP_GHCB_ERR_MISSING_INPUT 4
#define UA_SNP_GHCB_ERR_INVALID_INPUT 5
#define UA_SNP_GHCB_ERR_INVALID_EVENT 6

/* Termination reasons: MSR value 0x100 | set << 12 | code << 16 */
#define UA_SNP_TERM_SET_GEN 0
#define UA_SNP_TERM_GEN_REQ 0
#define UA_SNP_TERM_SET_LINUX 1
#define UA_SNP_TERM_PSC 1
#define UA_SNP_TERM_PVALIDATE 2
#define UA_SNP_TERM_NOT_VMPL0 3

/* EDK2 PSC buffer sizes: entries per fill (OvmfPkg BaseMemEncryptSevLib; docs/sources.md #S30) */
#define UA_SNP_OVMF_DXE_BUFFER_BYTES 4096  /* 506 entries per fill */
#define UA_SNP_OVMF_SEC_BUFFER_BYTES 1024  /* 127 entries per fill */

/* ---- model types ----------------------------------------------------------- */
typedef enum ua_snp_fault {
    UA_SNP_FAULT_NONE = 0,
    UA_SNP_FAULT_GP = 1,     /* #GP to the guest */
    UA_SNP_FAULT_PF = 2,     /* #PF (guest: operand not mapped; host: PFEC in error_code) */
    UA_SNP_FAULT_NPF = 3,    /* #VMEXIT(NPF): the hypervisor sees it, EXITINFO1 in exitinfo1 */
    UA_SNP_FAULT_VC = 4      /* #VC to the guest, error code in error_code */
} ua_snp_fault;

typedef enum ua_snp_access_kind {
    UA_SNP_ACCESS_READ = 0,
    UA_SNP_ACCESS_WRITE = 1,
    UA_SNP_ACCESS_EXEC_USER = 2,
    UA_SNP_ACCESS_EXEC_SUPER = 3
} ua_snp_access_kind;

typedef struct ua_snp_config {
    uint64_t memory_bytes;      /* guest RAM, a non-zero multiple of 2 MiB, <= 2^52 */
    uint64_t spare_bytes;       /* extra RMP-covered host SPAs (multiple of 2 MiB) */
    uint32_t asid;              /* guest ASID, 1 .. UA_SNP_MAX_ASID */
    uint32_t vmpl;              /* VMPL the guest kernel runs at, 0 .. 3 */
    uint32_t vcpus;             /* 1 .. UA_MAX_VCPUS */
    uint32_t coherency_sfw_no;  /* CPUID 8000_001F EBX[31]: 1 = no cache touch needed */
    uint32_t backing;           /* ua_backing: how the host backs private memory */
    uint32_t reserved;          /* must be 0 */
} ua_snp_config;

/* One logical RMP entry: the one that governs a 4 KiB SPA. */
typedef struct ua_snp_rmp_entry {
    uint64_t entry_spa;         /* SPA of the governing entry (2 MiB aligned when 2M) */
    uint64_t gpa;               /* GPA of the entry (2 MiB aligned when 2M) */
    uint32_t asid;
    uint8_t assigned;
    uint8_t page_size;          /* UA_SNP_PAGE_4K / UA_SNP_PAGE_2M */
    uint8_t immutable;
    uint8_t validated;
    uint8_t vmsa;
    uint8_t perm[4];            /* per-VMPL permission masks */
    uint8_t pad[3];
} ua_snp_rmp_entry;

/* New state for RMPUPDATE (Validated and VMSA cannot be set). */
typedef struct ua_snp_rmp_state {
    uint64_t gpa;
    uint32_t asid;
    uint8_t assigned;
    uint8_t page_size;
    uint8_t immutable;
    uint8_t rsvd;
} ua_snp_rmp_state;

/* Outcome of PVALIDATE / RMPADJUST / an access. */
typedef struct ua_snp_result {
    uint32_t eax;               /* return code when fault == NONE */
    uint32_t cf;                /* rFLAGS.CF (PVALIDATE: 1 = nothing changed) */
    uint32_t fault;             /* ua_snp_fault */
    uint32_t error_code;        /* #VC error code, #PF error code (low 32 bits) */
    uint64_t exitinfo1;         /* NPF: EXITINFO1 */
    uint64_t exitinfo2;         /* NPF: faulting GPA; #VC/#PF: CR2 */
} ua_snp_result;

/* Outcome of a GHCB NAE Page State Change VMGEXIT. */
typedef struct ua_snp_ghcb_result {
    uint64_t sw_exitinfo1;
    uint64_t sw_exitinfo2;
    uint32_t entries_done;      /* entries completed by this exit */
    uint32_t pages_done;        /* 4 KiB pages changed by this exit */
} ua_snp_ghcb_result;

typedef struct ua_snp_stats {
    uint64_t regions;           /* 2 MiB regions covered by the RMP */
    uint64_t chunks_allocated;  /* directory chunks in use */
    uint64_t split_regions;     /* regions that hold 512 4 KiB entries */
    uint64_t bytes_allocated;   /* simulator memory held by the RMP */
    uint64_t assigned_4k;       /* 4 KiB SPAs whose governing entry is assigned */
    uint64_t validated_4k;      /* ... assigned and validated */
} ua_snp_stats;

/* ---- lifetime and settings ---------------------------------------------------- */
/* Defaults: 1 GiB, no spare, ASID 1, VMPL 0, 1 vCPU, cache touch on, 2M backing. */
UA_API void ua_snp_config_default(ua_snp_config *cfg);
UA_API ua_status ua_snp_create(const ua_snp_config *cfg, ua_snp **out);
UA_API void ua_snp_destroy(ua_snp *s);
UA_API ua_status ua_snp_config_get(const ua_snp *s, ua_snp_config *out);
/* Cost accounting (NULL = none).  The cost must have at least vcpus vCPUs. */
UA_API ua_status ua_snp_set_cost(ua_snp *s, ua_cost *cost);
/* The caller's cancel flag for the guest paths (see ua_guest_set_cancel). */
UA_API ua_status ua_snp_set_cancel(ua_snp *s, const volatile int *flag);
/* The hypervisor serving this guest (NULL = KVM); it must outlive s. */
UA_API ua_status ua_snp_set_host(ua_snp *s, ua_host *host);
/* The host serving it; NULL for the built-in KVM host. */
UA_API ua_host *ua_snp_host(const ua_snp *s);
UA_API ua_status ua_snp_set_coherency_sfw_no(ua_snp *s, uint32_t on);
UA_API ua_status ua_snp_stats_get(const ua_snp *s, ua_snp_stats *out);
/* The fatal record (termination requests, hangs). */
UA_API ua_status ua_snp_fatal_get(const ua_snp *s, ua_fatal *out);
UA_API void ua_snp_fatal_clear(ua_snp *s);

/* ---- host side -------------------------------------------------------------- */
/* RMPUPDATE: *eax gets 0..4.  UA_E_RANGE only for an SPA past 2^52. */
UA_API ua_status ua_snp_rmpupdate(ua_snp *s, uint64_t spa, const ua_snp_rmp_state *st,
                                  uint32_t *eax);
UA_API ua_status ua_snp_psmash(ua_snp *s, uint64_t spa, uint32_t *eax);
/* Mark an SPA as in use (running VMSA/VMCB): RMPUPDATE/PSMASH then FAIL_INUSE. */
UA_API ua_status ua_snp_set_in_use(ua_snp *s, uint64_t spa, uint32_t in_use);
/* SNP_LAUNCH_UPDATE of [gpa, gpa+size) (4 KiB aligned): the pages become
 * assigned + validated (2 MiB entries where a whole region is covered and
 * the backing is 2M).  UA_E_STATE after launch_finish or if a page is
 * already assigned; UA_E_RANGE past the guest. */
UA_API ua_status ua_snp_launch_update(ua_snp *s, uint64_t gpa, uint64_t size);
UA_API ua_status ua_snp_launch_finish(ua_snp *s);
/* KVM_SET_MEMORY_ATTRIBUTES: mark [gpa, gpa+size) (4 KiB aligned, inside
 * the guest) private (1) or shared (0) in guest_memfd's attributes.  QEMU
 * marks all guest RAM private when it creates the memslots
 * (kvm_set_phys_mem), so a private access to a page nobody converted
 * faults it in from guest_memfd (RMPUPDATE, not validated) instead of
 * finding a hypervisor page.  Only the attribute changes, never the RMP. */
UA_API ua_status ua_snp_set_memory_attributes(ua_snp *s, uint64_t gpa, uint64_t size,
                                              uint32_t private_);
/* NPT: map one 4 KiB GPA to an SPA (both 4 KiB aligned, inside the RMP). */
UA_API ua_status ua_snp_npt_map(ua_snp *s, uint64_t gpa, uint64_t spa);
UA_API ua_status ua_snp_npt_lookup(const ua_snp *s, uint64_t gpa, uint64_t *spa);
/* A host write to an SPA: fault PF with PFEC bit 31 if the page is assigned. */
UA_API ua_status ua_snp_host_write(const ua_snp *s, uint64_t spa, ua_snp_result *out);
/* The logical RMP entry governing a 4 KiB SPA. */
UA_API ua_status ua_snp_rmp_read(const ua_snp *s, uint64_t spa, ua_snp_rmp_entry *out);
/* Counts over GPA [start, end) (4 KiB aligned), through the NPT: pages whose
 * governing entry is assigned to this guest with the right GPA and is
 * validated (accepted), and pages that are assigned but not validated. */
UA_API ua_status ua_snp_count_gpa(const ua_snp *s, uint64_t start, uint64_t end,
                                  uint64_t *validated, uint64_t *assigned_unvalidated);

/* ---- guest instructions and exits ------------------------------------------- */
UA_API ua_status ua_snp_pvalidate(ua_snp *s, uint32_t vcpu, uint64_t va, uint32_t size,
                                  uint32_t validate, ua_snp_result *out);
UA_API ua_status ua_snp_rmpadjust(ua_snp *s, uint32_t vcpu, uint64_t va, uint32_t size,
                                  uint64_t attrs, ua_snp_result *out);
/* A guest memory access at GPA with effective C-bit c_bit (fetches are
 * always private).  fault NONE, VC 0x404, or NPF with EXITINFO1. */
UA_API ua_status ua_snp_access(ua_snp *s, uint32_t vcpu, uint64_t gpa, uint32_t kind,
                               uint32_t c_bit, ua_snp_result *out);
/* GHCB MSR protocol: write request_msr, VMGEXIT (served by the host), read
 * *response_msr.  UA_E_GUEST_HUNG if the host never resumes the vCPU. */
UA_API ua_status ua_snp_psc_msr(ua_snp *s, uint32_t vcpu, uint64_t request_msr,
                                uint64_t *response_msr);
/* GHCB NAE Page State Change: buf is the scratch area (header + entries,
 * little-endian) of len bytes; the host updates it in place. */
UA_API ua_status ua_snp_psc_ghcb(ua_snp *s, uint32_t vcpu, uint8_t *buf, size_t len,
                                 ua_snp_ghcb_result *out);
/* The Linux guest's check after each PSC VMGEXIT against the header values
 * it started with: 0 = fine, 1 = error (ret/SW_EXITINFO2), 2 = reserved
 * word set, 3 = end_entry grew, 4 = cur_entry went backwards. */
UA_API int ua_snp_psc_guest_check(uint16_t start_cur, uint16_t start_end, const uint8_t *hdr,
                                  uint64_t sw_exitinfo2);
/* Hand an NPF at gpa to the host, as the CPU does; *action (may be NULL)
 * gets what the host did (ua_host_action). */
UA_API ua_status ua_snp_serve_npf(ua_snp *s, uint32_t vcpu, uint64_t gpa, uint64_t exitinfo1,
                                  uint32_t *action);
/* A Linux guest touching gpa (flags UA_TOUCH_*), with Linux's handling of
 * the outcome: an NPF goes to the host, which may fix it (lazy RMPUPDATE,
 * PSMASH) and resume, so the access is retried; an NPF the host cannot fix
 * leaves the guest re-executing forever (hung).  A #VC 0x404 (page not
 * validated) has no handler in Linux ("Unsupported exit-code 0x404 in #VC
 * exception"): in kernel mode the guest terminates with reason set 0, code
 * 0; in user mode the process gets SIGBUS and the guest lives on
 * (UA_TOUCH_GUEST_FAULT).  Fatal outcomes are also recorded. */
UA_API ua_status ua_snp_linux_touch(ua_snp *s, uint32_t vcpu, uint64_t gpa, uint32_t flags,
                                    ua_touch_result *out);
/* Record a termination request (GHCB MSR 0x100 | set << 12 | code << 16). */
UA_API uint64_t ua_snp_terminate(ua_snp *s, uint32_t vcpu, uint32_t reason_set,
                                 uint32_t reason_code);

/* ---- guest accept paths (ua_accept_fn with a path object as ctx) ------------ */
/*   UA_PATH_LINUX        snp_accept_memory(): GHCB PSC + PVALIDATE
 *   UA_PATH_LINUX_EARLY  decompressor: MSR PSC + PVALIDATE 4K per page
 *   UA_PATH_OVMF         EDK2 InternalSetPageState(Private)
 *   UA_PATH_OVMF_SEC     the same with SEC's 1 KiB work buffer (127 entries) */
typedef struct ua_snp_path ua_snp_path;
/* opts may be NULL (Linux defaults).  The path keeps a reference to s: s
 * must outlive it. */
UA_API ua_status ua_snp_path_create(ua_snp *s, const ua_path_options *opts, ua_snp_path **out);
UA_API void ua_snp_path_destroy(ua_snp_path *p);
UA_API uint32_t ua_snp_path_kind(const ua_snp_path *p);
UA_API ua_status ua_snp_path_stats_get(const ua_snp_path *p, ua_path_stats *out);
UA_API void ua_snp_path_stats_reset(ua_snp_path *p);
/* New options for an existing path (its statistics restart); the kind may
 * change too.  Not while the path runs. */
UA_API ua_status ua_snp_path_set_options(ua_snp_path *p, const ua_path_options *opts);
/* The accept primitive: the path's algorithm over [start, end). */
UA_API int ua_snp_accept(void *path, uint64_t start, uint64_t end, uint32_t vcpu);
/* The reverse conversion: rescind validation with PVALIDATE(0) first, then
 * PSC(SHARED); same batching, checks and terminations as the accept
 * direction, no cache touch. */
UA_API int ua_snp_unaccept(void *path, uint64_t start, uint64_t end, uint32_t vcpu);

/* UA_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* UA_SNP_H */
