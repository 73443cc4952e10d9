/* tdx_guest.c - TDX guest accept paths (the core's ua_accept_fn primitives),
 * the unaccept conversion, and Linux's MapGPA loop, SEPT #VE set-up and
 * handling of a touch.
 *
 * Every ACCEPT goes through execute(): the TDCALL runs; a TD exit is served
 * by the host and the same TDCALL re-executes (RIP was not advanced); a host
 * that leaves it unserved hang_limit times in a row hangs the guest;
 * a 2 MiB accept paused by an interrupt re-executes after the interrupt and
 * resumes at its accept counter.  All of it is charged by the model.  With
 * KVM serving the exits, the Linux path's 4 KiB accepts up to a 2 MiB
 * boundary run as one batch (tdx_accept_run_4k) while they take the common
 * course (PENDING, or FREE -> exit -> AUG -> re-executed), with the same
 * state, statistics and charges as one by one.
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
    ua_path_stats s;
} __attribute__((aligned(64)));

struct ua_tdx_path {
    ua_tdx *t;
    ua_path_options o;
    uint32_t vcpus;
    struct path_vcpu *v;
};

static ua_status map_gpa_loop(ua_tdx *t, uint32_t vcpu, uint64_t start, uint64_t end, int shared,
                              uint64_t *r10);

static const char *const MSG_LINUX = "TDX: Failed to accept memory";
static const char *const MSG_HUNG = "TDX: the host never resolves an accept exit";
static const char *const MSG_STOPPED = "KVM stopped the TD while serving an accept exit";

/* Defaults filled in and the options checked (the SNP fields must be 0). */
static ua_status normalize(ua_path_options *o)
{
    if (o->psc_max_entries || o->ovmf_buffer_bytes)
        return UA_E_INVAL;
    return ua_path_options_common(o);
}

ua_status ua_tdx_path_create(ua_tdx *t, const ua_path_options *opts, ua_tdx_path **out)
{
    if (!t || !out)
        return UA_E_INVAL;
    *out = NULL;
    ua_path_options o = {0};
    if (opts)
        o = *opts;
    ua_status st = normalize(&o);
    if (st)
        return st;
    ua_tdx_path *p = calloc(1, sizeof(*p));
    if (!p)
        return UA_E_NOMEM;
    if (posix_memalign((void **)&p->v, 64, sizeof(*p->v) * t->cfg.vcpus)) {
        free(p);
        return UA_E_NOMEM;
    }
    memset(p->v, 0, sizeof(*p->v) * t->cfg.vcpus);
    p->t = t;
    p->o = o;
    p->vcpus = t->cfg.vcpus;
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

uint32_t ua_tdx_path_kind(const ua_tdx_path *p) { return p ? p->o.kind : 0; }

ua_status ua_tdx_path_stats_get(const ua_tdx_path *p, ua_path_stats *out)
{
    if (!p || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    uint64_t *dst = (uint64_t *)out;
    size_t n = sizeof(*out) / sizeof(uint64_t);
    for (uint32_t v = 0; v < p->vcpus; v++) {
        const uint64_t *src = (const uint64_t *)&p->v[v].s;
        for (size_t k = 0; k < n; k++)
            dst[k] += src[k];
    }
    return UA_OK;
}

void ua_tdx_path_stats_reset(ua_tdx_path *p)
{
    if (p)
        memset(p->v, 0, sizeof(*p->v) * p->vcpus);
}

ua_status ua_tdx_path_set_options(ua_tdx_path *p, const ua_path_options *opts)
{
    if (!p || !opts)
        return UA_E_INVAL;
    ua_path_options o = *opts;
    ua_status st = normalize(&o);
    if (st)
        return st;
    p->o = o;
    ua_tdx_path_stats_reset(p);
    return UA_OK;
}

/* One ACCEPT instruction as the guest sees it: executions until it returns.
 * UA_OK with *rax; UA_E_GUEST_HUNG when the host never serves its exit;
 * UA_E_HOST when the host stops the TD; or a simulator failure. */
static ua_status execute(ua_tdx_path *p, uint32_t vcpu, uint64_t rcx, uint64_t *rax)
{
    ua_path_stats *s = &p->v[vcpu].s;
    unsigned level = (unsigned)(rcx & 7);
    if (level == UA_TDX_LEVEL_1G)
        s->accept_1g++;
    else if (level == UA_TDX_LEVEL_2M)
        s->accept_2m++;
    else
        s->accept_4k++;
    /* one ACCEPT takes a few exits at most (AUG, DEMOTE, a host-priority
     * release); hang_limit of them means the host makes no progress, whatever
     * it says it did */
    uint32_t exits = 0;
    for (;;) {
        ua_tdx_tdcall_result r;
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
            st = tdx_exit_to_host(p->t, vcpu, r.gpa, r.exit_qualification, r.exit_status,
                                  &action);
            if (st)
                return st;
            switch (action) {
            case UA_HOST_DID_AUG_4K: s->host_aug_4k++; break;
            case UA_HOST_DID_AUG_2M: s->host_aug_2m++; break;
            case UA_HOST_DID_DEMOTE: s->host_demote++; break;
            case UA_HOST_DID_RELEASE_HP: s->host_release_hp++; break;
            default: break;
            }
            if (++exits >= p->o.hang_limit)
                return UA_E_GUEST_HUNG;
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

#define EMPTY (-1) /* path_enter: nothing to do (not counted, as on SNP) */

/* Argument checks (a range past guest RAM is a bad argument, as on SNP),
 * then the call is counted and charged.  UA_OK, EMPTY, or a status. */
static int path_enter(ua_tdx_path *p, uint64_t start, uint64_t end, uint32_t vcpu)
{
    if (!p)
        return UA_E_INVAL;
    if (vcpu >= p->vcpus)
        return UA_E_VCPU;
    if ((start | end) % UA_4K)
        return UA_E_ALIGN;
    if (start > end || end > p->t->cfg.memory_bytes)
        return UA_E_RANGE;
    int st = ua_fatal_check(&p->t->fatal);
    if (st)
        return st;
    if (start == end)
        return EMPTY;
    p->v[vcpu].s.calls++;
    charge(p->t, vcpu, UA_EV_ACCEPT_CALL, 1);
    return UA_OK;
}

/* A failed call: record how the guest died (the first death wins). */
static int path_fail(ua_tdx_path *p, uint32_t vcpu, int st, uint64_t gpa, uint64_t status)
{
    if (st == UA_E_INTERRUPTED)   /* the caller asked to stop: not a failure */
        return st;
    p->v[vcpu].s.failures++;
    ua_tdx *t = p->t;
    switch (st) {
    case UA_E_GUEST_PANIC:
        return tdx_record_fatal(t, UA_FATAL_PANIC, vcpu, gpa, status, MSG_LINUX);
    case UA_E_GUEST_HUNG:
        return tdx_record_fatal(t, UA_FATAL_HUNG, vcpu, gpa, status, MSG_HUNG);
    case UA_E_HOST:
        return tdx_record_fatal(t, UA_FATAL_TERMINATED, vcpu, gpa, status, MSG_STOPPED);
    default:
        return st;
    }
}

/* Whether 4 KiB accepts may go through tdx_accept_run_4k: KVM serves the
 * exits (no handler of the host's own), the TD runs, and one exit per
 * ACCEPT is not yet a hang. */
static int batch_4k_ok(const ua_tdx_path *p)
{
    const ua_tdx *t = p->t;
    return !t->host->ops.tdx_exit && t->finalized && p->o.hang_limit > 1;
}

/* The 4 KiB ACCEPTs from start up to the next 2 MiB boundary (or end), as
 * execute() would run them one by one, in one batch while they take the
 * common course; returns the pages done (0: run the next one singly). */
static uint64_t accept_run_4k(ua_tdx_path *p, uint32_t vcpu, uint64_t start, uint64_t end)
{
    uint64_t stop = (start | (UA_2M - 1)) + 1;
    if (stop > end)
        stop = end;
    unsigned augs;
    unsigned n = tdx_accept_run_4k(p->t, vcpu, start, (unsigned)((stop - start) / UA_4K), &augs);
    if (n) {
        ua_path_stats *s = &p->v[vcpu].s;
        s->accept_4k += n;
        s->executions += n + augs;
        s->exits += augs;
        s->host_aug_4k += augs;
        s->success_4k += n;
    }
    return n;
}

static int accept_linux(ua_tdx_path *p, uint64_t start, uint64_t end, uint32_t vcpu)
{
    int st;
    uint64_t last = 0;
    const int batch = batch_4k_ok(p);
    while (start < end) {
        if (ua_cancelled(p->t->cancel))   /* between accepts: the pages so far are done */
            return UA_E_INTERRUPTED;
        uint64_t len = end - start, done = 0;
        for (int level = UA_TDX_LEVEL_1G; level >= UA_TDX_LEVEL_4K; level--) {
            uint64_t size = ua_tdx_level_size((unsigned)level);
            if ((start & (size - 1)) || len < size)
                continue;
            /* from here Linux accepts 4 KiB at a time up to the next 2 MiB
             * boundary: the common course of those in one batch */
            if (level == UA_TDX_LEVEL_4K && batch &&
                (done = accept_run_4k(p, vcpu, start, end) * UA_4K))
                break;
            uint64_t rax;
            st = execute(p, vcpu, start | (uint64_t)level, &rax);
            if (st)
                return path_fail(p, vcpu, st, start, 0);
            if (rax == UA_TDX_SUCCESS) {
                done = size;
                break;
            }
            last = rax;
            if (level > UA_TDX_LEVEL_4K) /* a big accept redone smaller */
                p->v[vcpu].s.fallbacks++;
        }
        if (!done)
            return path_fail(p, vcpu, UA_E_GUEST_PANIC, start, last);
        start += done;
    }
    return UA_OK;
}

/* TdAcceptPages(start, npages, level); *bad gets the failing page. */
static int td_accept_pages(ua_tdx_path *p, uint32_t vcpu, uint64_t start, uint64_t npages,
                           unsigned level, uint64_t *bad)
{
    *bad = start;
    uint64_t size = ua_tdx_level_size(level);
    if (start & 0xFFF0000000000FFFull)
        return UA_E_ACCEPT_FAILED; /* EFI_INVALID_PARAMETER: bits 63:52 / 11:0 */
    uint64_t addr = start;
    for (uint64_t k = 0; k < npages; k++, addr += size) {
        unsigned retried = 0;
        *bad = addr;
        if (ua_cancelled(p->t->cancel))
            return UA_E_INTERRUPTED;
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
                p->v[vcpu].s.fallbacks++;
                int r = td_accept_pages(p, vcpu, addr, 512, level - 1, bad);
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

/* sec = 0: TdxMemoryAccept's cut (the 2 MiB middle only when more than
 * 2 MiB remain); sec = 1: SEC's BspApAcceptMemoryResourceRange, which
 * takes every aligned 2 MiB with a 2 MiB page, the last one included. */
static int accept_ovmf(ua_tdx_path *p, uint64_t start, uint64_t end, uint32_t vcpu, int sec)
{
    int st;
    uint64_t size = end - start;
    if (size == 0)
        return UA_OK;
    uint64_t head = 0;
    if (start % UA_2M) {
        head = UA_2M - start % UA_2M;
        if (head > size)
            head = size;
    }
    uint64_t rest = size - head, middle = 0;
    if (rest > UA_2M || (sec && rest == UA_2M))
        middle = rest & ~(UA_2M - 1);
    const struct {
        uint64_t bytes;
        unsigned level;
    } part[3] = {{head, UA_TDX_LEVEL_4K}, {middle, UA_TDX_LEVEL_2M}, {rest - middle, UA_TDX_LEVEL_4K}};
    for (unsigned k = 0; k < 3; k++) {
        uint64_t bytes = part[k].bytes;
        uint64_t bad;
        if (bytes && (st = td_accept_pages(p, vcpu, start, bytes / ua_tdx_level_size(part[k].level),
                                           part[k].level, &bad)))
            return path_fail(p, vcpu, st, bad, 0);
        start += bytes;
    }
    return UA_OK;
}

int ua_tdx_accept(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu)
{
    ua_tdx_path *p = ctx;
    int st = path_enter(p, start, end, vcpu);
    if (st)
        return st == EMPTY ? UA_OK : st;
    /* OVMF's protocol returns its error to the caller (UA_E_ACCEPT_FAILED);
     * Linux panics */
    st = p->o.kind == UA_PATH_OVMF       ? accept_ovmf(p, start, end, vcpu, 0)
         : p->o.kind == UA_PATH_OVMF_SEC ? accept_ovmf(p, start, end, vcpu, 1)
                                   : accept_linux(p, start, end, vcpu);
    if (!st)
        p->v[vcpu].s.bytes += end - start;
    return st;
}

/* Linux gives private memory back with set_memory_decrypted(): MapGPA to
 * shared, after which KVM has removed the private pages; converting back
 * (MapGPA to private) leaves them FREE, unaccepted until the next ACCEPT. */
int ua_tdx_unaccept(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu)
{
    ua_tdx_path *p = ctx;
    int st = path_enter(p, start, end, vcpu);
    if (st)
        return st == EMPTY ? UA_OK : st;
    uint64_t r10 = 0;
    st = map_gpa_loop(p->t, vcpu, start, end, 1, &r10);
    if (!st && r10 == UA_TDX_VMCALL_SUCCESS)
        st = map_gpa_loop(p->t, vcpu, start, end, 0, &r10);
    if (st) /* the host stopped the TD or never returned: recorded */
        return path_fail(p, vcpu, st, start, r10);
    if (r10 != UA_TDX_VMCALL_SUCCESS) {
        /* Linux: set_memory_decrypted() fails and the pages are leaked; the
         * guest lives on */
        p->v[vcpu].s.failures++;
        return UA_E_HOST;
    }
    p->v[vcpu].s.bytes += end - start;
    return UA_OK;
}

/* Linux's tdx_map_gpa() loop.  Returns the host handler's failure (the
 * host stopped the TD, never returned, a callback failed), else UA_OK with
 * the last VMCALL status in *r10. */
static ua_status map_gpa_loop(ua_tdx *t, uint32_t vcpu, uint64_t start, uint64_t end, int shared,
                              uint64_t *r10)
{
    uint64_t size = end - start; /* before the shared bit: no wrap at the top of RAM */
    if (shared) { /* the request carries the shared bit */
        start |= t->private_limit;
        end = start + size;
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
    *r10 = r.r10;
    return UA_OK;
}

ua_status ua_tdx_linux_map_gpa(ua_tdx *t, uint32_t vcpu, uint64_t start, uint64_t end, int shared,
                               uint64_t *r10)
{
    if (!t)
        return UA_E_INVAL;
    if (vcpu >= t->cfg.vcpus)
        return UA_E_VCPU;
    if (start >= end)
        return UA_E_RANGE;
    uint64_t last = 0;
    ua_status st = map_gpa_loop(t, vcpu, start, end, shared, &last);
    if (r10)
        *r10 = last;
    if (st)
        return st;
    return last == UA_TDX_VMCALL_SUCCESS ? UA_OK : UA_E_HOST;
}

ua_status ua_tdx_linux_disable_sept_ve(ua_tdx *t, uint32_t vcpu, const char **message)
{
    static const char *const msg = "TD misconfiguration: SEPT #VE has to be disabled";
    if (message)
        *message = "";
    if (!t)
        return UA_E_INVAL;
    ua_tdx_config cfg;
    ua_tdx_config_get(t, &cfg);
    if (vcpu >= cfg.vcpus)
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

/* Exits one access may take before the guest counts as hung (the host
 * keeps "serving" it without the access going through). */
#define TOUCH_EXIT_LIMIT 4

ua_status ua_tdx_linux_touch(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint32_t flags,
                             ua_touch_result *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    if (flags & ~(uint32_t)(UA_TOUCH_WRITE | UA_TOUCH_SHARED | UA_TOUCH_USER))
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (flags & UA_TOUCH_SHARED)
        gpa |= t->private_limit;
    for (;;) {
        ua_tdx_access_result a;
        ua_status st = ua_tdx_guest_access(t, vcpu, gpa, !!(flags & UA_TOUCH_WRITE), &a);
        if (st)
            return st;
        switch (a.outcome) {
        case UA_TDX_ACCESS_OK:
            out->outcome = out->exits ? UA_TOUCH_SERVED_EXIT : UA_TOUCH_SERVED;
            return UA_OK;
        case UA_TDX_ACCESS_VE:
        case UA_TDX_ACCESS_DF:
            out->vector = a.vector;
            tdx_record_fatal(t, UA_FATAL_PANIC, vcpu, gpa, a.exit_qualification,
                             a.outcome == UA_TDX_ACCESS_VE
                                 ? "Unexpected EPT-violation on private memory."
                                 : "double fault");
            out->outcome = UA_TOUCH_PANIC;
            return UA_OK;
        default:
            out->detail = a.extended_exit_qualification;
            if (a.eeq_type == UA_TDX_EEQ_TYPE_PENDING_EPT_VIOLATION) {
                /* KVM exits to user space with a memory fault; the VMM stops */
                tdx_record_fatal(t, UA_FATAL_TERMINATED, vcpu, gpa, a.extended_exit_qualification,
                                 "KVM: guest access before accepting (memory fault exit)");
                out->outcome = UA_TOUCH_TERMINATED;
                return UA_OK;
            }
            uint32_t action;
            st = tdx_exit_to_host(t, vcpu, gpa, a.extended_exit_qualification, 0, &action);
            out->exits++;
            if (st == UA_E_HOST) {
                tdx_record_fatal(t, UA_FATAL_TERMINATED, vcpu, gpa, a.extended_exit_qualification,
                                 "the host stopped the TD at an EPT violation");
                out->outcome = UA_TOUCH_TERMINATED;
                return UA_OK;
            }
            if (st && st != UA_E_GUEST_HUNG)
                return st;
            if (st || action == UA_HOST_DID_NOTHING || out->exits >= TOUCH_EXIT_LIMIT) {
                tdx_record_fatal(t, UA_FATAL_HUNG, vcpu, gpa, a.extended_exit_qualification,
                                 "access: an EPT violation the host never resolves");
                out->outcome = UA_TOUCH_HUNG;
                return UA_OK;
            }
        }
    }
}
