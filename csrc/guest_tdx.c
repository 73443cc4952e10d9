/* guest_tdx.c - TDX guest accept paths (the core's ua_accept_fn primitives)
 * and the Linux MapGPA loop.
 *
 * Every ACCEPT goes through execute(): the TDCALL runs; a TD exit is served
 * by the model's VMM and the same TDCALL re-executes (RIP was not advanced);
 * a 2 MiB accept paused by an interrupt re-executes after the interrupt and
 * resumes at its accept counter.  All of it is charged by the model.
 *
 * Linux (arch/x86/coco/tdx/tdx-shared.c, tdx_accept_memory): per position
 * try 1 GiB, 2 MiB, 4 KiB; a size is skipped without a TDCALL when the
 * position is not aligned to it or fewer bytes remain; any non-zero status
 * (PAGE_ALREADY_ACCEPTED included) is a failure at that size; a 4 KiB
 * failure makes arch_accept_memory() panic("TDX: Failed to accept memory").
 *
 * OVMF (OvmfPkg/TdxDxe TdxMemoryAccept + MdePkg TdxLib TdAcceptPages): the
 * range is cut into an unaligned head (4 KiB pages), a 2 MiB-aligned middle
 * taken with 2 MiB pages only when more than 2 MiB remain, and a tail
 * (4 KiB pages) - so a range of exactly 2 MiB is accepted as 512 x 4 KiB.
 * Per page, the status with its low 16 bits masked: SUCCESS; ALREADY_ACCEPTED
 * counted and skipped; SIZE_MISMATCH at 2 MiB -> the same 2 MiB as 512 x
 * 4 KiB (error at 4 KiB); OPERAND_BUSY -> the same page again, at most 3
 * retries (the 4th busy answer fails); anything else fails.
 */
#include <stdlib.h>
#include <string.h>

#include "tdx_internal.h"

#define ACCEPT_RAX ((uint64_t)UA_TDX_TDCALL_MEM_PAGE_ACCEPT)
#define OVMF_MAX_RETRIES 3

struct path_vcpu {
    ua_tdx_path_stats s;
} __attribute__((aligned(64)));

struct ua_tdx_path {
    ua_tdx *t;
    uint32_t kind;
    uint32_t nvcpus;
    const char *panic_msg; /* atomic: NULL until the first failure */
    struct path_vcpu *v;
};

static const char *const MSG_LINUX = "TDX: Failed to accept memory";
static const char *const MSG_OVMF = "TdAcceptPages: failed to accept memory (EFI_INVALID_PARAMETER)";
static const char *const MSG_HOST = "TDX: the VMM did not resolve an accept exit (TD cannot make progress)";

ua_status ua_tdx_path_create(ua_tdx *t, uint32_t kind, ua_tdx_path **out)
{
    if (!t || !out || kind > UA_TDX_PATH_OVMF)
        return UA_E_INVAL;
    *out = NULL;
    ua_tdx_config cfg;
    ua_tdx_config_get(t, &cfg);
    ua_tdx_path *p = calloc(1, sizeof(*p));
    if (!p)
        return UA_E_NOMEM;
    if (posix_memalign((void **)&p->v, 64, sizeof(*p->v) * cfg.nvcpus)) {
        free(p);
        return UA_E_NOMEM;
    }
    memset(p->v, 0, sizeof(*p->v) * cfg.nvcpus);
    p->t = t;
    p->kind = kind;
    p->nvcpus = cfg.nvcpus;
    p->panic_msg = NULL;
    *out = p;
    return UA_OK;
}

void ua_tdx_path_destroy(ua_tdx_path *p)
{
    if (!p)
        return;
    free(p->v);
    free(p);
}

uint32_t ua_tdx_path_kind(const ua_tdx_path *p) { return p ? p->kind : 0; }

ua_status ua_tdx_path_stats_get(const ua_tdx_path *p, ua_tdx_path_stats *out)
{
    if (!p || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    uint64_t *dst = (uint64_t *)out;
    size_t n = sizeof(*out) / sizeof(uint64_t);
    for (uint32_t v = 0; v < p->nvcpus; v++) {
        const uint64_t *src = (const uint64_t *)&p->v[v].s;
        for (size_t k = 0; k < n; k++)
            dst[k] += src[k];
    }
    return UA_OK;
}

void ua_tdx_path_reset(ua_tdx_path *p)
{
    if (!p)
        return;
    memset(p->v, 0, sizeof(*p->v) * p->nvcpus);
    __atomic_store_n(&p->panic_msg, NULL, __ATOMIC_RELEASE);
}

const char *ua_tdx_path_panic_message(const ua_tdx_path *p)
{
    const char *msg = p ? __atomic_load_n(&p->panic_msg, __ATOMIC_ACQUIRE) : NULL;
    return msg ? msg : "";
}

static void record_panic(ua_tdx_path *p, const char *msg)
{
    const char *expected = NULL;
    /* the first failure's message wins */
    __atomic_compare_exchange_n(&p->panic_msg, &expected, msg, 0, __ATOMIC_RELEASE,
                                __ATOMIC_RELAXED);
}

/* One ACCEPT instruction as the guest sees it: executions until it returns.
 * UA_OK with *rax, or the status of a simulator / VMM failure. */
static ua_status execute(ua_tdx_path *p, uint32_t vcpu, uint64_t rcx, uint64_t *rax)
{
    ua_tdx_path_stats *s = &p->v[vcpu].s;
    unsigned level = (unsigned)(rcx & 7);
    if (level == UA_TDX_LEVEL_1G)
        s->issued_1g++;
    else if (level == UA_TDX_LEVEL_2M)
        s->issued_2m++;
    else
        s->issued_4k++;
    for (;;) {
        ua_tdcall_result r;
        ua_status st = ua_tdx_tdcall_accept(p->t, vcpu, ACCEPT_RAX, rcx, &r);
        if (st)
            return st;
        s->executions++;
        if (r.interrupted) {
            s->interrupts++;
            continue;
        }
        if (r.exited) {
            uint32_t action;
            s->exits++;
            st = ua_tdx_vmm_handle_exit(p->t, vcpu, r.gpa, r.exit_qualification, r.exit_status,
                                        &action);
            if (st)
                return st;
            switch (action) {
            case UA_TDX_VMM_DID_AUG_4K: s->vmm_aug_4k++; break;
            case UA_TDX_VMM_DID_AUG_2M: s->vmm_aug_2m++; break;
            case UA_TDX_VMM_DID_DEMOTE: s->vmm_demote++; break;
            case UA_TDX_VMM_DID_RELEASE_HP: s->vmm_release_hp++; break;
            default: break;
            }
            continue;
        }
        uint64_t cls = r.rax & UA_TDX_STATUS_CLASS_MASK;
        if (r.rax == UA_TDX_SUCCESS) {
            if (level == UA_TDX_LEVEL_2M)
                s->success_2m++;
            else if (level == UA_TDX_LEVEL_4K)
                s->success_4k++;
        } else if (cls == UA_TDX_PAGE_ALREADY_ACCEPTED) {
            s->already_accepted++;
        } else if (cls == UA_TDX_PAGE_SIZE_MISMATCH) {
            s->size_mismatch++;
        } else if (cls == UA_TDX_OPERAND_INVALID) {
            s->operand_invalid++;
        } else if (cls == UA_TDX_OPERAND_BUSY) {
            s->operand_busy++;
        } else {
            s->other_status++;
        }
        *rax = r.rax;
        return UA_OK;
    }
}

static int path_enter(ua_tdx_path *p, uint64_t start, uint64_t end, uint32_t vcpu)
{
    if (!p)
        return UA_E_INVAL;
    if (vcpu >= p->nvcpus)
        return UA_E_VCPU;
    if ((start | end) % UA_TDX_SZ_4K)
        return UA_E_ALIGN;
    if (start > end)
        return UA_E_RANGE;
    p->v[vcpu].s.calls++;
    ua_tdx_charge_internal(p->t, vcpu, UA_EV_ACCEPT_CALL, 1);
    return UA_OK;
}

static int path_fail(ua_tdx_path *p, uint32_t vcpu, int st)
{
    p->v[vcpu].s.failures++;
    if (st == UA_E_GUEST_PANIC)
        record_panic(p, MSG_LINUX);
    else if (st == UA_E_ACCEPT_FAILED)
        record_panic(p, MSG_OVMF);
    else if (st == UA_E_HOST)
        record_panic(p, MSG_HOST);
    return st;
}

int ua_tdx_accept_linux(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu)
{
    ua_tdx_path *p = ctx;
    int st = path_enter(p, start, end, vcpu);
    if (st)
        return st;
    while (start < end) {
        uint64_t len = end - start, done = 0;
        for (int level = UA_TDX_LEVEL_1G; level >= UA_TDX_LEVEL_4K; level--) {
            uint64_t size = ua_tdx_level_size((unsigned)level);
            if ((start & (size - 1)) || len < size)
                continue;
            uint64_t rax;
            st = execute(p, vcpu, start | (uint64_t)level, &rax);
            if (st)
                return path_fail(p, vcpu, st);
            if (rax == UA_TDX_SUCCESS) {
                done = size;
                break;
            }
        }
        if (!done)
            return path_fail(p, vcpu, UA_E_GUEST_PANIC);
        start += done;
    }
    return UA_OK;
}

/* TdAcceptPages(start, npages, level) */
static int td_accept_pages(ua_tdx_path *p, uint32_t vcpu, uint64_t start, uint64_t npages,
                           unsigned level)
{
    uint64_t size = ua_tdx_level_size(level);
    if (start & 0xFFF0000000000FFFull)
        return UA_E_ACCEPT_FAILED; /* EFI_INVALID_PARAMETER: bits 63:52 / 11:0 */
    uint64_t addr = start;
    for (uint64_t k = 0; k < npages; k++, addr += size) {
        unsigned retried = 0;
        for (;;) {
            uint64_t rax;
            ua_status st = execute(p, vcpu, addr | level, &rax);
            if (st)
                return st;
            uint64_t m = rax & ~0xFFFFull;
            if (rax == UA_TDX_SUCCESS || m == UA_TDX_PAGE_ALREADY_ACCEPTED)
                break;
            if (m == UA_TDX_PAGE_SIZE_MISMATCH) {
                if (level == UA_TDX_LEVEL_4K)
                    return UA_E_ACCEPT_FAILED;
                int r = td_accept_pages(p, vcpu, addr, 512, level - 1);
                if (r)
                    return r;
                break;
            }
            if (m == UA_TDX_OPERAND_BUSY && ++retried <= OVMF_MAX_RETRIES)
                continue;
            return UA_E_ACCEPT_FAILED;
        }
    }
    return UA_OK;
}

int ua_tdx_accept_ovmf(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu)
{
    ua_tdx_path *p = ctx;
    int st = path_enter(p, start, end, vcpu);
    if (st)
        return st;
    uint64_t size = end - start;
    if (size == 0)
        return UA_OK;
    uint64_t head = 0;
    if (start % UA_TDX_SZ_2M) {
        head = UA_TDX_SZ_2M - start % UA_TDX_SZ_2M;
        if (head > size)
            head = size;
    }
    uint64_t rest = size - head, middle = 0;
    if (rest > UA_TDX_SZ_2M)
        middle = rest & ~(UA_TDX_SZ_2M - 1);
    const struct {
        uint64_t bytes;
        unsigned level;
    } part[3] = {{head, UA_TDX_LEVEL_4K}, {middle, UA_TDX_LEVEL_2M}, {rest - middle, UA_TDX_LEVEL_4K}};
    for (unsigned k = 0; k < 3; k++) {
        uint64_t bytes = part[k].bytes;
        if (bytes && (st = td_accept_pages(p, vcpu, start, bytes / ua_tdx_level_size(part[k].level),
                                           part[k].level)))
            return path_fail(p, vcpu, st);
        start += bytes;
    }
    return UA_OK;
}

ua_status ua_tdx_guest_map_gpa(ua_tdx *t, uint32_t vcpu, uint64_t start, uint64_t end, int shared,
                               uint64_t *r10)
{
    if (!t)
        return UA_E_INVAL;
    ua_tdx_config cfg;
    ua_tdx_config_get(t, &cfg);
    if (vcpu >= cfg.nvcpus)
        return UA_E_VCPU;
    if (start >= end)
        return UA_E_RANGE;
    if (shared) { /* the request carries the shared bit on both ends */
        uint64_t sbit = 1ull << (cfg.gpaw - 1);
        start |= sbit;
        end |= sbit;
    }
    unsigned retries = 0;
    ua_tdx_vmcall_result r;
    memset(&r, 0, sizeof(r));
    r.r10 = UA_TDX_VMCALL_RETRY;
    while (retries < 3) {
        ua_status st = ua_tdx_tdvmcall(t, vcpu, 0, UA_TDX_VMCALL_MAP_GPA, start, end - start, &r);
        if (st)
            return st;
        if (r.r10 != UA_TDX_VMCALL_RETRY)
            break;
        /* the VMM's resume address must lie in [start, end) */
        if (r.r11 < start || r.r11 >= end) {
            r.r10 = UA_TDX_VMCALL_INVALID_OPERAND;
            break;
        }
        if (r.r11 == start) { /* a retry without forward progress */
            retries++;
            continue;
        }
        start = r.r11;
        retries = 0;
    }
    if (r10)
        *r10 = r.r10;
    return r.r10 == UA_TDX_VMCALL_SUCCESS ? UA_OK : UA_E_HOST;
}

ua_status ua_tdx_guest_linux_disable_sept_ve(ua_tdx *t, uint32_t vcpu, const char **message)
{
    static const char *const msg = "TD misconfiguration: SEPT #VE has to be disabled";
    if (message)
        *message = "";
    if (!t)
        return UA_E_INVAL;
    ua_tdx_config cfg;
    ua_tdx_config_get(t, &cfg);
    if (vcpu >= cfg.nvcpus)
        return UA_E_VCPU;
    uint64_t st, config, controls, old;
    ua_status rc = ua_tdx_tdcall_vm_rd(t, vcpu, UA_TDX_TDCS_CONFIG_FLAGS, &st, &config);
    if (rc)
        return rc;
    if (!(config & UA_TDX_CONFIG_FLEXIBLE_PENDING_VE)) {
        if (cfg.attributes & UA_TDX_ATTR_SEPT_VE_DISABLE)
            return UA_OK;
        if (message)
            *message = msg;
        return (cfg.attributes & UA_TDX_ATTR_DEBUG) ? UA_OK : UA_E_GUEST_PANIC;
    }
    if ((rc = ua_tdx_tdcall_vm_rd(t, vcpu, UA_TDX_TDCS_TD_CTLS, &st, &controls)))
        return rc;
    if (controls & UA_TDX_TD_CTLS_PENDING_VE_DISABLE)
        return UA_OK;
    if (cfg.attributes & UA_TDX_ATTR_DEBUG)
        return UA_OK; /* a DEBUG TD keeps SEPT #VEs for backtraces */
    return ua_tdx_tdcall_vm_wr(t, vcpu, UA_TDX_TDCS_TD_CTLS, UA_TDX_TD_CTLS_PENDING_VE_DISABLE,
                               UA_TDX_TD_CTLS_PENDING_VE_DISABLE, &st, &old);
}

ua_status ua_tdx_guest_linux_touch(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint32_t write,
                                   ua_tdx_access_result *out, const char **message)
{
    ua_tdx_access_result local;
    if (!out)
        out = &local;
    if (message)
        *message = "";
    for (int attempt = 0; attempt < 4; attempt++) {
        ua_status st = ua_tdx_guest_access(t, vcpu, gpa, write, out);
        if (st)
            return st;
        switch (out->outcome) {
        case UA_TDX_ACCESS_OK:
            return UA_OK;
        case UA_TDX_ACCESS_VE:
        case UA_TDX_ACCESS_DF:
            if (message)
                *message = out->outcome == UA_TDX_ACCESS_VE
                               ? "Unexpected EPT-violation on private memory."
                               : "double fault";
            return UA_E_GUEST_PANIC;
        default:
            if (out->eeq_type == UA_TDX_EEQ_TYPE_PENDING_EPT_VIOLATION) {
                if (message)
                    *message = "KVM: guest access before accepting (memory fault exit)";
                return UA_E_HOST;
            }
            st = ua_tdx_vmm_handle_exit(t, vcpu, gpa, out->extended_exit_qualification, 0, NULL);
            if (st)
                return st;
        }
    }
    return UA_E_HOST;
}
