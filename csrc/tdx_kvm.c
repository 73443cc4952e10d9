/* tdx_kvm.c - TDX: KVM's side of the TD's exits, the default host
 * (ua_host_kvm_tdx_*): EPT-violation exits (AUG at the level the accept
 * asked for, capped by the backing; BLOCK + TRACK + DEMOTE of a 2 MiB
 * PENDING leaf for a 4 KiB accept; the host-priority release) and
 * TDG.VP.VMCALL<MapGPA> with its page conversions.  See docs/tdx.md. */
#include "tdx_internal.h"

/* ---- MapGPA and the VMM's page conversions ----------------------------------- */

/* The VMM drops the private page(s) behind [a, b) within one region:
 * BLOCK, TRACK, REMOVE (splitting a 2 MiB leaf that is only partly covered).
 * SEAMCALLs are charged; locked entries are left alone (model). */
static ua_status vmm_zap_private(ua_tdx *t, uint32_t vcpu, struct region *r, unsigned i0,
                                 unsigned i1)
{
    if (is_leaf(r->state) && !(r->flags & R_LOCK)) {
        if (i0 == 0 && i1 == 512) {
            charge(t, vcpu, UA_EV_SEAMCALL, is_blocked(r->state) ? 2 : 3);
            r->state = t->importing ? S_REMOVED : S_FREE;
            r->frame = 0;
            r->counter = 0;
            r->flags &= (uint8_t)~(R_BEPOCH | R_HP);
            return UA_OK;
        }
        struct ext *x = ext_get(t, vcpu, r);
        if (!x)
            return UA_E_NOMEM;
        unsigned s = r->state;
        unsigned cs = (s == S_MAPPED || s == S_BLOCKED) ? S_MAPPED : S_PENDING;
        charge(t, vcpu, UA_EV_SEAMCALL, is_blocked(s) ? 2 : 3); /* (BLOCK) TRACK DEMOTE */
        memset(x->pte, (int)cs, sizeof(x->pte));
        r->state = S_NL_MAPPED;
        r->counter = 0;
        r->flags &= (uint8_t)~(R_BEPOCH | R_HP);
    }
    if (r->state != S_NL_MAPPED && r->state != S_NL_BLOCKED)
        return UA_OK;
    struct ext *x = ext_get(t, vcpu, r);
    if (!x)
        return UA_E_NOMEM;
    uint64_t blocks = 0, removes = 0;
    for (unsigned i = i0; i < i1; i++) {
        uint8_t *p = &x->pte[i];
        unsigned s = *p & P_STATE;
        if (!is_leaf(s) || (*p & P_LOCK))
            continue;
        if (!is_blocked(s))
            blocks++;
        removes++;
        *p = (uint8_t)((t->importing ? S_REMOVED : S_FREE) | P_USED);
    }
    if (removes)
        charge(t, vcpu, UA_EV_SEAMCALL, blocks + removes + 1); /* + one TRACK */
    return UA_OK;
}

static ua_status set_shared_range(ua_tdx *t, uint32_t vcpu, struct region *r, unsigned i0,
                                  unsigned i1, int shared)
{
    if (i0 == 0 && i1 == 512 && !r->ext) {
        r->flags = shared ? (uint8_t)(r->flags | R_SHARED) : (uint8_t)(r->flags & ~R_SHARED);
        return UA_OK;
    }
    struct ext *x = ext_get(t, vcpu, r);
    if (!x)
        return UA_E_NOMEM;
    for (unsigned i = i0; i < i1; i++) {
        if (shared)
            bit_set(x->shared, i);
        else
            bit_clr(x->shared, i);
    }
    return UA_OK;
}

int tdx_map_gpa_check(const ua_tdx *t, uint64_t gpa, uint64_t size, ua_tdx_vmcall_result *out)
{
    /* KVM (tdx_map_gpa) checks the range before the alignment */
    uint64_t sbit = t->private_limit, end = gpa + size;
    if (size == 0 || end < gpa || end > (sbit << 1) || ((gpa ^ (end - 1)) & sbit)) {
        out->r10 = UA_TDX_VMCALL_INVALID_OPERAND;
        return -1;
    }
    if ((gpa | size) % UA_4K) {
        out->r10 = UA_TDX_VMCALL_ALIGN_ERROR;
        return -1;
    }
    return 0;
}

/* KVM's TDG.VP.VMCALL handler: MapGPA converts 2 MiB per step (counted from
 * where the previous step stopped, not 2 MiB-aligned), dropping private
 * pages on a conversion to shared, and answers RETRY with the resume
 * address when an interrupt is pending between steps; every other
 * sub-function is unsupported. */
int ua_host_kvm_tdx_vmcall(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t r10, uint64_t r11,
                           uint64_t r12, uint64_t r13, ua_tdx_vmcall_result *out)
{
    if (!t || !out)
        return UA_E_INVAL;
    if (vcpu >= t->cfg.vcpus)
        return UA_E_VCPU;
    out->rax = UA_TDX_SUCCESS;
    if (r10 != 0 || r11 != UA_TDX_VMCALL_MAP_GPA) {
        out->r10 = UA_TDX_VMCALL_SUBFUNC_UNSUPPORTED;
        return UA_OK;
    }
    uint64_t gpa = r12, size = r13, sbit = t->private_limit;
    if (tdx_map_gpa_check(t, gpa, size, out))
        return UA_OK;
    uint64_t end = gpa + size;
    int to_shared = (gpa & sbit) != 0;
    uint64_t a = gpa & ~sbit, e = end - (to_shared ? sbit : 0);
    if (e > t->cfg.memory_bytes) { /* model: the VMM converts guest RAM only */
        out->r10 = UA_TDX_VMCALL_INVALID_OPERAND;
        return UA_OK;
    }
    struct vcpu_state *v = &t->vcpus[vcpu];
    while (a < e) {
        uint64_t cend = e - a > UA_2M ? a + UA_2M : e;
        for (uint64_t b = a; b < cend;) {
            uint64_t idx = b / UA_2M;
            uint64_t rend = (idx + 1) * UA_2M < cend ? (idx + 1) * UA_2M : cend;
            struct region *r = region_w(t, idx);
            if (!r)
                return UA_E_NOMEM;
            unsigned i0 = (unsigned)((b % UA_2M) / UA_4K);
            unsigned i1 = i0 + (unsigned)((rend - b) / UA_4K);
            ua_status st;
            if (to_shared && (st = vmm_zap_private(t, vcpu, r, i0, i1)))
                return st;
            if ((st = set_shared_range(t, vcpu, r, i0, i1, to_shared)))
                return st;
            b = rend;
        }
        out->chunks++;
        a = cend;
        /* one interruptible unit per chunk; the check point is between chunks */
        int fired = 0;
        if (v->irq_countdown && --v->irq_countdown == 0) {
            v->irq_countdown = v->irq_period;
            fired = 1;
        }
        if (a < e && fired) {
            out->r10 = UA_TDX_VMCALL_RETRY;
            out->r11 = a | (to_shared ? sbit : 0);
            return UA_OK;
        }
    }
    out->r10 = UA_TDX_VMCALL_SUCCESS;
    return UA_OK;
}

/* ---- the VMM ------------------------------------------------------------------ */

static int any_shared(const struct region *r)
{
    if (!r->ext)
        return !!(r->flags & R_SHARED);
    for (unsigned w = 0; w < 8; w++)
        if (r->ext->shared[w])
            return 1;
    return 0;
}

/* KVM's handler of a TD exit for an EPT violation.  UA_OK with *action
 * (DID_NOTHING when it leaves the exit unserved, so the guest re-executes
 * into it), or UA_E_HOST when KVM stops the TD. */
static inline __attribute__((always_inline)) int
kvm_exit(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq, uint64_t exit_status,
         uint32_t *action, unsigned max_level)
{
    *action = UA_HOST_DID_NOTHING;
    ua_tdx_host_result hr;
    ua_status st;
    uint64_t pa = gpa & ~t->private_limit;
    if (exit_status == UA_TDX_HOST_PRIORITY_BUSY_TIMEOUT) {
        /* model: the host SEAMCALL that held priority gets to finish and
         * releases the HP bit at both levels */
        if (pa >= t->cfg.memory_bytes)
            return UA_E_HOST;
        struct region *r = region_w(t, pa / UA_2M);
        if (!r)
            return UA_E_NOMEM;
        r->flags &= (uint8_t)~R_HP;
        if (r->ext)
            r->ext->pte[(pa % UA_2M) / UA_4K] &= (uint8_t)~P_HP;
        *action = UA_HOST_DID_RELEASE_HP;
        return UA_OK;
    }
    if ((gpa & t->private_limit) || pa >= t->cfg.memory_bytes)
        return UA_E_HOST;
    struct region *r = region_w(t, pa / UA_2M);
    if (!r)
        return UA_E_NOMEM;
    unsigned i = (unsigned)((pa % UA_2M) / UA_4K);
    if (page_shared(r, i))
        return UA_E_HOST; /* a private fault on a GPA the VMM holds as shared */
    unsigned type = (unsigned)(eeq & 0xF);
    unsigned req, err_level, err_state;
    if (type == UA_TDX_EEQ_TYPE_ACCEPT) {
        uint64_t info = eeq >> 32;
        req = (unsigned)(info & 7);
        err_level = (unsigned)((info >> 3) & 7);
        err_state = (unsigned)((info >> 6) & 0xFF);
    } else if (type == UA_TDX_EEQ_TYPE_NONE) {
        /* a plain access to a FREE page: map it at the backing level */
        req = t->backing_level;
        err_level = (r->state == S_NL_MAPPED) ? UA_TDX_LEVEL_4K : UA_TDX_LEVEL_2M;
        err_state = err_level == UA_TDX_LEVEL_4K ? pub_state[pte_get(t, r, i) & P_STATE]
                                                 : pub_state[r->state];
    } else {
        /* EEQ type 6: guest access before accept; KVM stops the VM */
        return UA_E_HOST;
    }
    if (err_state == UA_TDX_SEPT_FREE || err_state == UA_TDX_SEPT_REMOVED) {
        unsigned target = req < t->backing_level ? req : t->backing_level;
        if (target > max_level)
            target = max_level;
        if (target > UA_TDX_LEVEL_2M)
            target = UA_TDX_LEVEL_2M;
        uint64_t base = pa & ~(UA_2M - 1);
        if (target == UA_TDX_LEVEL_2M &&
            (base + UA_2M > t->cfg.memory_bytes ||
             (r->state != S_FREE && r->state != S_REMOVED) || any_shared(r)))
            target = UA_TDX_LEVEL_4K;
        uint64_t a = target == UA_TDX_LEVEL_2M ? base : (pa & ~(UA_4K - 1));
        if ((st = ua_tdx_host_aug(t, vcpu, a | target, &hr)))
            return st;
        if (hr.status != UA_TDX_SUCCESS)
            return UA_E_HOST;
        *action = target == UA_TDX_LEVEL_2M ? UA_HOST_DID_AUG_2M : UA_HOST_DID_AUG_4K;
        return UA_OK;
    }
    if (err_state == UA_TDX_SEPT_PENDING && err_level == UA_TDX_LEVEL_2M && req < err_level) {
        /* a 4 KiB accept inside a 2 MiB PENDING leaf: split it */
        uint64_t a = (pa & ~(UA_2M - 1)) | UA_TDX_LEVEL_2M;
        if ((st = ua_tdx_host_block(t, vcpu, a, &hr)))
            return st;
        if (hr.status != UA_TDX_SUCCESS)
            return UA_E_HOST;
        if ((st = ua_tdx_host_track(t, vcpu, &hr)))
            return st;
        if ((st = ua_tdx_host_demote(t, vcpu, a, &hr)))
            return st;
        if (hr.status != UA_TDX_SUCCESS)
            return UA_E_HOST;
        *action = UA_HOST_DID_DEMOTE;
        return UA_OK;
    }
    /* BLOCKED, PENDING_BLOCKED, NL_BLOCKED: the host is in the middle of
     * taking the page away; model: this VMM does not resolve that, and the
     * guest re-executes into the same exit */
    return UA_OK;
}

int tdx_kvm_exit(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                 uint64_t exit_status, uint32_t *action, unsigned max_level)
{
    return kvm_exit(t, vcpu, gpa, eeq, exit_status, action, max_level);
}

int ua_host_kvm_tdx_exit(ua_host *h, ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                         uint64_t exit_status, uint32_t *action)
{
    if (!t || !action)
        return UA_E_INVAL;
    if (vcpu >= t->cfg.vcpus)
        return UA_E_VCPU;
    return kvm_exit(t, vcpu, gpa, eeq, exit_status, action, UA_TDX_LEVEL_2M);
}

/* The default host's path from tdx_exit_to_host(): KVM has no options on
 * TDX, so the host object is not needed (one argument fewer per exit). */
int tdx_kvm_exit_default(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                         uint64_t exit_status, uint32_t *action)
{
    return kvm_exit(t, vcpu, gpa, eeq, exit_status, action, UA_TDX_LEVEL_2M);
}

ua_status ua_tdx_serve_exit(ua_tdx *t, uint32_t vcpu, uint64_t gpa, uint64_t eeq,
                            uint64_t exit_status, uint32_t *action)
{
    uint32_t local;
    if (!t)
        return UA_E_INVAL;
    if (vcpu >= t->cfg.vcpus)
        return UA_E_VCPU;
    return tdx_exit_to_host(t, vcpu, gpa, eeq, exit_status, action ? action : &local);
}
