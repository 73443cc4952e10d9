/*
 * ua_vm.h - vendor-neutral vocabulary shared by both confidential-VM models
 * (ua_snp.h, ua_tdx.h), the pluggable host (ua_host.h) and the guest
 * interface (ua_guest.h): page sizes, host backing, the kinds of guest
 * accept path with their options and statistics, the fatal record, and the
 * outcome of a guest touch.  Included by unaccepted.h; do not include
 * directly.
 */
#ifndef UA_VM_H
#define UA_VM_H

#ifdef __cplusplus
extern "C" {
#endif

/* UA_CDEF_BEGIN */

/* ---- page sizes (architectural on both vendors) ----------------------------- */
#define UA_SIZE_4K 4096
#define UA_SIZE_2M 2097152
#define UA_SIZE_1G 1073741824

typedef struct ua_snp ua_snp;   /* AMD SEV-SNP machine (ua_snp.h) */
typedef struct ua_tdx ua_tdx;   /* Intel TDX machine (ua_tdx.h) */
typedef struct ua_host ua_host; /* the hypervisor serving a guest (ua_host.h) */

typedef enum ua_vendor {
    UA_VENDOR_SNP = 0,
    UA_VENDOR_TDX = 1
} ua_vendor;

/* How the host backs private guest memory. */
typedef enum ua_backing {
    UA_BACKING_2M = 0,    /* 2 MiB where the guest asks for 2 MiB (RMP entries / SEPT leaves) */
    UA_BACKING_4K = 1     /* 4 KiB only (e.g. KVM TDX today) */
} ua_backing;

/* ---- guest accept paths ------------------------------------------------------- */
typedef enum ua_path_kind {
    UA_PATH_LINUX = 0,        /* the kernel's arch_accept_memory() */
    UA_PATH_LINUX_EARLY = 1,  /* the decompressor / EFI stub (SNP: MSR protocol, 4 KiB
                               * per page; TDX: the same tdx_accept_memory()) */
    UA_PATH_OVMF = 2,         /* EDK2's memory-accept protocol */
    UA_PATH_OVMF_SEC = 3,     /* EDK2's SEC: TDX TdAcceptPages at 2 MiB for every aligned
                               * 2 MiB (BspApAcceptMemoryResourceRange); SNP the same
                               * engine as OVMF with SEC's 1 KiB work buffer */
    UA_PATH_KIND_COUNT = 4
} ua_path_kind;

/* Options of a path; zero fields take the defaults.  The SNP fields are
 * ignored by TDX and must be zero there. */
typedef struct ua_path_options {
    uint32_t kind;               /* ua_path_kind */
    uint32_t psc_max_entries;    /* SNP Linux: PSC entries per descriptor (64, <= 253) */
    uint32_t ovmf_buffer_bytes;  /* SNP OVMF: PSC buffer (4096 in DXE, 1024 in SEC) */
    uint32_t hang_limit;         /* exits in a row without progress before the guest
                                  * counts as hung (default 1000) */
} ua_path_options;

/* Per-path statistics, one struct for both vendors.  The common block is
 * filled by both; each vendor block stays zero for the other vendor. */
typedef struct ua_path_stats {
    /* both vendors */
    uint64_t calls;              /* accept/unaccept primitive calls */
    uint64_t failures;           /* calls that returned non-OK */
    uint64_t bytes;              /* bytes accepted (or unaccepted) */
    uint64_t accept_4k;          /* accept instructions issued with a 4 KiB operand */
    uint64_t accept_2m;          /* ... with a 2 MiB operand */
    uint64_t accept_1g;          /* ... with a 1 GiB operand (TDX) */
    uint64_t fallbacks;          /* 2 MiB accepts redone at a smaller size */
    uint64_t exits;              /* exits to the host (SNP: PSC VMGEXITs + NPFs; TDX: TD exits) */
    uint64_t host_psmash;        /* host actions taken to serve those exits ... */
    uint64_t host_rmpupdate;     /* (SNP: lazy RMPUPDATE at an NPF) */
    uint64_t host_aug_4k;
    uint64_t host_aug_2m;
    uint64_t host_demote;
    uint64_t host_release_hp;
    /* SNP */
    uint64_t psc_requests;       /* descriptors / buffers built */
    uint64_t psc_exits;          /* NAE Page State Change VMGEXITs */
    uint64_t msr_exits;          /* MSR-protocol Page State Change VMGEXITs */
    uint64_t npf_exits;          /* #VMEXIT(NPF) taken by a PVALIDATE */
    uint64_t cache_touch_4k;     /* coherency mitigation touches */
    /* TDX */
    uint64_t executions;         /* ACCEPT executions incl. re-executions */
    uint64_t success_2m;
    uint64_t success_4k;
    uint64_t already_accepted;
    uint64_t size_mismatch;
    uint64_t operand_invalid;
    uint64_t operand_busy;
    uint64_t other_status;
    uint64_t interrupts;         /* 2 MiB accepts paused and resumed */
    uint64_t reserved[4];        /* room to grow without an ABI break; zero */
} ua_path_stats;

/* ---- the fatal record: how a guest died (one per machine) --------------------- */
typedef enum ua_fatal_kind {
    UA_FATAL_NONE = 0,
    UA_FATAL_TERMINATED = 1,  /* SNP: the guest asked the host to terminate it (GHCB
                               * MSR 0x100); TDX: the host stopped the TD */
    UA_FATAL_PANIC = 2,       /* the guest kernel (or firmware) panicked */
    UA_FATAL_HUNG = 3         /* the guest can never progress (an exit never served) */
} ua_fatal_kind;

typedef struct ua_fatal {
    uint32_t kind;            /* ua_fatal_kind; the first fatal event wins */
    uint32_t vcpu;
    uint64_t gpa;             /* the address being accepted or touched */
    uint64_t code;            /* SNP: the termination MSR value; TDX: the TDX status or
                               * VMCALL status that failed (0 if none) */
    uint32_t reason_set;      /* SNP: GHCB termination reason set and code */
    uint32_t reason_code;
    uint32_t eax;             /* SNP: the failing PVALIDATE's code (255 for CF=1) */
    uint32_t fault;           /* SNP: the failing PVALIDATE's ua_snp_fault */
    uint64_t info;            /* SNP: the failing PSC's SW_EXITINFO2 / MSR response */
    char message[96];         /* what the guest printed, "" if nothing */
} ua_fatal;

/* ---- a guest touching memory ---------------------------------------------------- */
#define UA_TOUCH_WRITE 1      /* a store (else a load) */
#define UA_TOUCH_SHARED 2     /* through a shared mapping (SNP C-bit clear; TDX shared bit) */
#define UA_TOUCH_USER 4       /* from user mode (else the kernel) */

typedef enum ua_touch_outcome {
    UA_TOUCH_SERVED = 0,        /* the access completed */
    UA_TOUCH_SERVED_EXIT = 1,   /* completed after the host served one or more exits */
    UA_TOUCH_GUEST_FAULT = 2,   /* a fault the guest handled and survived (SNP: SIGBUS
                                 * to a user process) */
    UA_TOUCH_TERMINATED = 3,    /* fatal: see the fatal record */
    UA_TOUCH_PANIC = 4,
    UA_TOUCH_HUNG = 5
} ua_touch_outcome;

typedef struct ua_touch_result {
    uint32_t outcome;           /* ua_touch_outcome */
    uint32_t exits;             /* exits the host served for this access */
    uint32_t vector;            /* the exception the guest took (SNP #VC 29, TDX #VE 20 /
                                 * #DF 8), 0 if none */
    uint32_t error_code;        /* SNP: #VC error code (0x404); 0 otherwise */
    uint64_t detail;            /* SNP: EXITINFO1 of the last NPF; TDX: the last exit's
                                 * extended exit qualification */
} ua_touch_result;

/* UA_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* UA_VM_H */
