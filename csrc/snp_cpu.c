/* snp_cpu.c - SEV-SNP model: the instructions the CPU executes on the RMP.
 * Host side: RMPUPDATE, PSMASH, SNP_LAUNCH_UPDATE, host writes; guest side:
 * PVALIDATE, RMPADJUST and the RMP checks of a guest access.
 * Rules and their sources: docs/snp.md. */
#include <stdlib.h>
#include <string.h>

#include "snp_internal.h"

/* ------------------------------------------------------------------------ */
/* host instructions                                                         */

/* RMPUPDATE.  Checks, in order (AMD APM vol. 2 sec. 15.36 lists the codes, not an order; this
 * order follows the operand-first convention of the other RMP
 * instructions):
 *   FAIL_INPUT (1): page size > 1; SPA or GPA not aligned to the size; SPA
 *     outside the RMP; GPA >= 2^52; ASID > 1023; a hypervisor-owned state
 *     with a non-zero ASID or Immutable; an ASID-0 assigned state that is not
 *     Immutable (Table 15-35: ASID 0 + assigned is the AMD-SP's, immutable);
 *   FAIL_INUSE (3): a page of the range is in use (running VMSA/VMCB);
 *   FAIL_PERMISSION (2): the current entry (any covered entry) is Immutable
 *     (VeriSMo's rmpupdate);
 *   FAIL_OVERLAP (4): a 4 KiB update inside an assigned 2 MiB entry (the
 *     host must PSMASH first, as KVM does) or a 2 MiB update over 4 KiB
 *     entries of which one is assigned.
 * Success always leaves Validated = VMSA = 0, VMPL0 = all, VMPL1-3 = none
 * (AMD APM vol. 2 sec. 15.36.6/15.36.11 and VeriSMo's rmpupdate; the
 * conservative reading, see docs/snp.md). */
uint32_t snp_rmpupdate(ua_snp *s, uint32_t vcpu, uint64_t spa, const ua_snp_rmp_state *st)
{
    if (st->page_size > 1)
        return UA_SNP_RMP_FAIL_INPUT;
    int big = st->page_size == 1;
    uint64_t size = big ? UA_2M : UA_4K;
    snp_charge(s, vcpu, big ? UA_EV_RMPUPDATE_2M : UA_EV_RMPUPDATE_4K, 1);
    if ((spa & (size - 1)) || spa >= s->rmp_end || (st->gpa & (size - 1)) ||
        st->gpa >= SNP_PA_LIMIT || st->asid > UA_SNP_MAX_ASID)
        return UA_SNP_RMP_FAIL_INPUT;
    if (!st->assigned && (st->asid || st->immutable))
        return UA_SNP_RMP_FAIL_INPUT;
    if (st->assigned && st->asid == 0 && !st->immutable)
        return UA_SNP_RMP_FAIL_INPUT;
    if (UA_UNLIKELY(s->nin_use) && snp_in_use_any(s, spa, size))
        return UA_SNP_RMP_FAIL_INUSE;
    uint64_t ne = (st->assigned ? E_ASSIGNED : 0) | (big ? E_PAGESIZE : 0) |
                  (st->immutable ? E_IMMUTABLE : 0) | E_PERM0 | (st->gpa & E_GPA_MASK) |
                  ((uint64_t)st->asid << E_ASID_SHIFT);
    struct snp_region *rg = snp_region_get(s, spa >> SNP_REGION_SHIFT);
    if (!rg)
        return UA_SNP_RMP_FAIL_INUSE; /* out of simulator memory: refuse, change nothing */
    if (big) {
        if (rg->e & E_PAGESIZE) {
            if (rg->e & E_IMMUTABLE)
                return UA_SNP_RMP_FAIL_PERMISSION;
        } else if (rg->split) {
            uint64_t any = 0;
            for (unsigned i = 0; i < 512; i++)
                any |= split_get(rg->split, i);
            if (any & E_IMMUTABLE)
                return UA_SNP_RMP_FAIL_PERMISSION;
            if (any & E_ASSIGNED)
                return UA_SNP_RMP_FAIL_OVERLAP;
            snp_split_free(s, vcpu, rg->split);
            rg->split = NULL;
        }
        rg->e = ne;
        rg->perm = 0;
        return UA_SNP_RMP_SUCCESS;
    }
    if (rg->e & E_PAGESIZE) {
        if (rg->e & E_IMMUTABLE)
            return UA_SNP_RMP_FAIL_PERMISSION;
        if (rg->e & E_ASSIGNED)
            return UA_SNP_RMP_FAIL_OVERLAP;
    } else if (rg->split && (split_get(rg->split, (spa >> 12) & 511) & E_IMMUTABLE)) {
        return UA_SNP_RMP_FAIL_PERMISSION;
    }
    if (!snp_region_split(s, vcpu, rg))
        return UA_SNP_RMP_FAIL_INUSE;
    unsigned idx = (spa >> 12) & 511;
    if (split_put(s, vcpu, rg->split, idx, ne))
        return UA_SNP_RMP_FAIL_INUSE; /* out of simulator memory */
    if (rg->split->perm)
        rg->split->perm[idx] = 0;
    return UA_SNP_RMP_SUCCESS;
}

/* PSMASH: FAIL_INPUT if the SPA is not 2 MiB aligned, outside the RMP, or
 * its entry is not a 2 MiB entry (nothing to smash; our reading of the
 * APM); FAIL_INUSE if a page of the region is in use.  Every field is
 * copied, Validated, VMSA and the permissions included. */
uint32_t snp_psmash(ua_snp *s, uint32_t vcpu, uint64_t spa)
{
    snp_charge(s, vcpu, UA_EV_PSMASH, 1);
    if ((spa & (UA_2M - 1)) || spa >= s->rmp_end)
        return UA_SNP_RMP_FAIL_INPUT;
    struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
    if (!rg || !(rg->e & E_PAGESIZE))
        return UA_SNP_RMP_FAIL_INPUT;
    if (UA_UNLIKELY(s->nin_use) && snp_in_use_any(s, spa, UA_2M))
        return UA_SNP_RMP_FAIL_INUSE;
    if (!snp_region_split(s, vcpu, rg))
        return UA_SNP_RMP_FAIL_INUSE;
    return UA_SNP_RMP_SUCCESS;
}

ua_status ua_snp_rmpupdate(ua_snp *s, uint64_t spa, const ua_snp_rmp_state *st, uint32_t *eax)
{
    if (!s || !st || !eax)
        return UA_E_INVAL;
    if (spa >= SNP_PA_LIMIT)
        return UA_E_RANGE;
    *eax = snp_rmpupdate(s, SNP_NO_VCPU, spa, st);
    return UA_OK;
}

ua_status ua_snp_psmash(ua_snp *s, uint64_t spa, uint32_t *eax)
{
    if (!s || !eax)
        return UA_E_INVAL;
    if (spa >= SNP_PA_LIMIT)
        return UA_E_RANGE;
    *eax = snp_psmash(s, SNP_NO_VCPU, spa);
    return UA_OK;
}

/* The state a host conversion writes with RMPUPDATE: private = assigned
 * to this guest for gpa (rmp_make_private()), else hypervisor-owned
 * (rmp_make_shared()). */
ua_snp_rmp_state snp_rmp_state_for(const ua_snp *s, uint64_t gpa, int private_, int big)
{
    ua_snp_rmp_state st = {0};
    st.page_size = big ? 1 : 0;
    if (private_) {
        st.gpa = gpa;
        st.asid = s->cfg.asid;
        st.assigned = 1;
    }
    return st;
}

ua_status ua_snp_launch_update(ua_snp *s, uint64_t gpa, uint64_t size)
{
    if (!s)
        return UA_E_INVAL;
    if ((gpa | size) & 0xfff)
        return UA_E_ALIGN;
    if (size == 0)
        return UA_OK;
    if (gpa >= s->cfg.memory_bytes || size > s->cfg.memory_bytes - gpa)
        return UA_E_RANGE;
    if (s->launch_finished)
        return UA_E_STATE;
    uint64_t end = gpa + size;
    /* All-or-nothing: every page must be hypervisor-owned first. */
    for (uint64_t a = gpa; a < end;) {
        int is2m;
        uint64_t spa = snp_npt(s, a);
        uint64_t e = snp_entry(s, spa, &is2m);
        if ((e & E_ASSIGNED) || (UA_UNLIKELY(s->nin_use) && snp_in_use_any(s, spa, UA_4K)))
            return UA_E_STATE;
        if (!snp_region_peek(s, spa >> SNP_REGION_SHIFT) && !(a & (UA_2M - 1)) &&
            end - a >= UA_2M && !snp_range_remapped(s, a >> 12, 512) &&
            !(s->nin_use && snp_in_use_any(s, a, UA_2M)))
            a += UA_2M; /* an untouched region is all hypervisor-owned */
        else
            a += UA_4K;
    }
    for (uint64_t a = gpa; a < end;) {
        int whole = !(a & (UA_2M - 1)) && end - a >= UA_2M &&
                    s->cfg.backing == UA_BACKING_2M && !snp_range_remapped(s, a >> 12, 512);
        uint64_t spa = snp_npt(s, a);
        /* (a split region of hypervisor-owned pages merges back into one
         * 2 MiB entry: snp_rmpupdate frees its 4 KiB array) */
        ua_snp_rmp_state st = snp_rmp_state_for(s, a, 1, whole);
        uint32_t rc = snp_rmpupdate(s, SNP_NO_VCPU, spa, &st);
        if (rc != UA_SNP_RMP_SUCCESS)
            return rc == UA_SNP_RMP_FAIL_INUSE ? UA_E_NOMEM : UA_E_STATE;
        /* The firmware validates the page (it is "present in a validated
         * state at launch"); the transient Immutable is gone afterwards. */
        struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
        if (whole)
            rg->e |= E_VALIDATED;
        else if (split_put(s, SNP_NO_VCPU, rg->split, (spa >> 12) & 511,
                           split_get(rg->split, (spa >> 12) & 511) | E_VALIDATED))
            return UA_E_NOMEM;
        a += whole ? UA_2M : UA_4K;
    }
    return UA_OK;
}

ua_status ua_snp_launch_finish(ua_snp *s)
{
    if (!s)
        return UA_E_INVAL;
    s->launch_finished = 1;
    return UA_OK;
}

static uint8_t perm_of(uint64_t e, uint16_t ext, unsigned vmpl)
{
    if (vmpl == 0)
        return (e & E_PERM0) ? UA_SNP_PERM_ALL : 0;
    return (uint8_t)((ext >> (5 * (vmpl - 1))) & 0x1f);
}

static uint16_t ext_perm(const ua_snp *s, uint64_t spa)
{
    const struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
    if (!rg)
        return 0;
    if (rg->e & E_PAGESIZE)
        return rg->perm;
    return (rg->split && rg->split->perm) ? rg->split->perm[(spa >> 12) & 511] : 0;
}

ua_status ua_snp_rmp_read(const ua_snp *s, uint64_t spa, ua_snp_rmp_entry *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    if (spa >= s->rmp_end)
        return UA_E_RANGE;
    spa &= ~0xfffull;
    int is2m;
    uint64_t e = snp_entry(s, spa, &is2m);
    uint16_t ext = ext_perm(s, spa);
    memset(out, 0, sizeof(*out));
    out->entry_spa = is2m ? spa & ~(UA_2M - 1) : spa;
    out->gpa = e & E_GPA_MASK;
    out->asid = e_asid(e);
    out->assigned = !!(e & E_ASSIGNED);
    out->page_size = !!(e & E_PAGESIZE);
    out->immutable = !!(e & E_IMMUTABLE);
    out->validated = !!(e & E_VALIDATED);
    out->vmsa = !!(e & E_VMSA);
    for (unsigned v = 0; v < 4; v++)
        out->perm[v] = perm_of(e, ext, v);
    return UA_OK;
}

ua_status ua_snp_host_write(const ua_snp *s, uint64_t spa, ua_snp_result *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    if (spa >= SNP_PA_LIMIT)
        return UA_E_RANGE;
    memset(out, 0, sizeof(*out));
    if (spa >= s->rmp_end)
        return UA_OK; /* beyond RMP coverage counts as hypervisor-owned */
    int is2m;
    if (snp_entry(s, spa & ~0xfffull, &is2m) & E_ASSIGNED) {
        out->fault = UA_SNP_FAULT_PF;
        out->error_code = (uint32_t)(UA_SNP_PFEC_RMP | UA_SNP_NPF_PRESENT | UA_SNP_NPF_WRITE);
        out->exitinfo2 = spa;
    }
    return UA_OK;
}

ua_status ua_snp_count_gpa(const ua_snp *s, uint64_t start, uint64_t end, uint64_t *validated,
                           uint64_t *assigned_unvalidated)
{
    if (!s || !validated || !assigned_unvalidated)
        return UA_E_INVAL;
    ua_status st = snp_check_range(s, start, end);
    if (st)
        return st;
    uint64_t v = 0, u = 0;
    const uint64_t want = E_ASSIGNED | ((uint64_t)s->cfg.asid << E_ASID_SHIFT);
    for (uint64_t a = start; a < end;) {
        if (!(a & (UA_2M - 1)) && end - a >= UA_2M && !snp_range_remapped(s, a >> 12, 512)) {
            const struct snp_region *rg = snp_region_peek(s, a >> SNP_REGION_SHIFT);
            if (!rg || (!rg->split && !(rg->e & E_PAGESIZE))) {
                a += UA_2M;
                continue;
            }
            if (rg->e & E_PAGESIZE) {
                uint64_t e = rg->e;
                if ((e & (E_ASSIGNED | E_ASID_MASK | E_IMMUTABLE)) == want &&
                    (e & E_GPA_MASK) == a) {
                    if (e & E_VALIDATED)
                        v += 512;
                    else
                        u += 512;
                }
                a += UA_2M;
                continue;
            }
            const struct snp_split *sp = rg->split;
            if (!sp->e && (!sp->have_base || (sp->asid == s->cfg.asid && sp->base == a))) {
                /* compact and its pattern is this region's GPAs: flags decide */
                for (unsigned i = 0; i < 512; i++) {
                    unsigned f = sp->f[i];
                    if ((f & (E_ASSIGNED | E_IMMUTABLE)) == E_ASSIGNED) {
                        v += (f >> 3) & 1;          /* E_VALIDATED */
                        u += !((f >> 3) & 1);
                    }
                }
                a += UA_2M;
                continue;
            }
        }
        uint64_t spa = snp_npt(s, a);
        int is2m;
        uint64_t e = snp_entry(s, spa, &is2m);
        uint64_t egpa = (e & E_GPA_MASK) + (is2m ? (spa & (UA_2M - 1)) : 0);
        if ((e & (E_ASSIGNED | E_ASID_MASK | E_IMMUTABLE)) == want && egpa == a) {
            if (e & E_VALIDATED)
                v++;
            else
                u++;
        }
        a += UA_4K;
    }
    *validated = v;
    *assigned_unvalidated = u;
    return UA_OK;
}

/* ------------------------------------------------------------------------ */
/* guest instructions                                                        */

/* The entry governing spa, with its region (NULL if never written) and
 * the page's index in it, for writing the entry back. */
static inline uint64_t entry_at(const ua_snp *s, uint64_t spa, struct snp_region **rgp,
                                unsigned *idx, int *is2m)
{
    struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
    *rgp = rg;
    *idx = (spa >> 12) & 511;
    *is2m = rg && (rg->e & E_PAGESIZE);
    return !rg ? 0 : *is2m ? rg->e : rg->split ? split_get(rg->split, *idx) : 0;
}

/* The NPF EXITINFO1 a PVALIDATE/RMPADJUST of size takes on entry e, or 0
 * (AMD APM vol. 2 Tables 15-39/15-40; VeriSMo's pvalidate/rmpadjust): the
 * owner checks first -> RMP; then a
 * 4 KiB request on a 2 MiB entry -> RMP | SIZEM (the host PSMASHes). */
static inline uint64_t instr_npf(uint64_t e, int is2m, uint64_t gpa, uint64_t spa, uint32_t asid,
                                 uint32_t size)
{
    const uint64_t npf = UA_SNP_NPF_RMP | UA_SNP_NPF_ENC | UA_SNP_NPF_PRESENT;
    if (rmp_owner_fault(e, is2m, gpa, spa, asid))
        return npf;
    return size == UA_SNP_PAGE_4K && is2m ? npf | UA_SNP_NPF_SIZEM : 0;
}

/* A 2 MiB request at gpa -> spa size-mismatches when the RMP holds 4 KiB
 * entries, or the NPT cannot map the GPA range as one 2 MiB page (a 4 KiB
 * remap inside it, or a target SPA that is not 2 MiB aligned): the APM
 * compares with the NPT size. */
static inline int size_mismatch_2m(const ua_snp *s, int is2m, uint64_t gpa, uint64_t spa)
{
    return !is2m || (spa & (UA_2M - 1)) || snp_range_remapped(s, gpa >> 12, 512);
}

static inline void set_fault(ua_snp_result *r, uint32_t fault, uint32_t error_code,
                             uint64_t exitinfo1, uint64_t addr)
{
    r->fault = fault;
    r->error_code = error_code;
    r->exitinfo1 = exitinfo1;
    r->exitinfo2 = addr;
}

/* An NPF (charged NPF_EXIT) or a #VC 0x404 with CR2 = va (charged VC). */
static void guest_npf(ua_snp *s, uint32_t vcpu, ua_snp_result *r, uint64_t exitinfo1, uint64_t gpa)
{
    set_fault(r, UA_SNP_FAULT_NPF, 0, exitinfo1, gpa);
    snp_charge(s, vcpu, UA_EV_NPF_EXIT, 1);
}

static void guest_vc404(ua_snp *s, uint32_t vcpu, ua_snp_result *r, uint64_t va)
{
    set_fault(r, UA_SNP_FAULT_VC, UA_SNP_VC_PAGE_NOT_VALIDATED, 0, va);
    snp_charge(s, vcpu, UA_EV_VC, 1);
}

/* Argument checks and accounting shared by the guest instructions. */
static ua_status guest_begin(ua_snp *s, uint32_t vcpu, ua_snp_result *out, int ev)
{
    if (!s || !out)
        return UA_E_INVAL;
    if (vcpu >= s->cfg.vcpus)
        return UA_E_VCPU;
    memset(out, 0, sizeof(*out));
    snp_charge(s, vcpu, ev, 1);
    return UA_OK;
}

/* PVALIDATE with validated arguments (VMPL 0, size <= 1, aligned, mapped).
 * VeriSMo's order (AMD APM vol. 2 Table 15-40): owner checks -> NPF; 4K request on a 2M entry ->
 * NPF with SIZEM; 2M request on 4K entries -> FAIL_SIZEMISMATCH; Validated
 * already equal -> EAX 0, CF 1; else flip it.  No data is written. */
void snp_pvalidate(ua_snp *s, uint64_t gpa, uint32_t size, uint32_t validate, ua_snp_result *r)
{
    uint64_t spa = snp_npt(s, gpa);
    struct snp_region *rg;
    unsigned idx;
    int is2m;
    uint64_t e = entry_at(s, spa, &rg, &idx, &is2m);
    memset(r, 0, sizeof(*r));
    uint64_t npf = instr_npf(e, is2m, gpa, spa, s->cfg.asid, size);
    if (npf) {
        set_fault(r, UA_SNP_FAULT_NPF, 0, npf, gpa);
        return;
    }
    if (size == UA_SNP_PAGE_2M && size_mismatch_2m(s, is2m, gpa, spa)) {
        r->eax = UA_SNP_FAIL_SIZEMISMATCH;
        return;
    }
    uint64_t want = validate ? E_VALIDATED : 0;
    if ((e & E_VALIDATED) == want) {
        r->cf = 1;
        return;
    }
    if (is2m)
        rg->e = (rg->e & ~E_VALIDATED) | want;
    else if (!rg->split->e)
        rg->split->f[idx] ^= (uint8_t)E_VALIDATED; /* the pattern still fits */
    else
        rg->split->e[idx] = (e & ~E_VALIDATED) | want;
}

unsigned snp_pvalidate_run4k(ua_snp *s, uint64_t gpa, unsigned n, uint32_t validate)
{
    if (s->nremaps)
        return 0;
    struct snp_region *rg = snp_region_peek(s, gpa >> SNP_REGION_SHIFT);
    if (!rg || !rg->split)
        return 0;
    struct snp_split *sp = rg->split;
    uint64_t *ent = sp->e;
    const uint64_t key = E_ASSIGNED | ((uint64_t)s->cfg.asid << E_ASID_SHIFT);
    const uint64_t mask = E_ASSIGNED | E_IMMUTABLE | E_ASID_MASK | E_GPA_MASK;
    const uint64_t want = validate ? E_VALIDATED : 0;
    unsigned idx = (unsigned)((gpa >> 12) & 511), i;
    if (n > 512 - idx)
        n = 512 - idx;
    if (!ent) {
        /* compact: the pattern decides GPA and ASID for every assigned page */
        if (!sp->have_base || sp->asid != s->cfg.asid ||
            ((sp->base + ((uint64_t)idx << 12)) & E_GPA_MASK) != gpa)
            return 0;
        uint8_t *f = &sp->f[idx];
        const uint8_t fw = (uint8_t)want;
        /* eight pages at a time while all eight flip (assigned, not
         * immutable, Validated not yet as wanted), then one at a time */
        const uint64_t mask8 = (E_ASSIGNED | E_IMMUTABLE | E_VALIDATED) * F_ONES;
        const uint64_t key8 = (E_ASSIGNED | (want ^ E_VALIDATED)) * F_ONES;
        for (i = 0; i + 8 <= n && (flags8_load(f + i) & mask8) == key8; i += 8)
            flags8_store(f + i, flags8_load(f + i) ^ (E_VALIDATED * F_ONES));
        for (; i < n; i++) {
            if ((f[i] & (E_ASSIGNED | E_IMMUTABLE)) != E_ASSIGNED || (f[i] & E_VALIDATED) == fw)
                break;
            f[i] ^= (uint8_t)E_VALIDATED;
        }
        return i;
    }
    for (i = 0; i < n; i++, gpa += UA_4K) {
        uint64_t e = ent[idx + i];
        if ((e & mask) != (key | gpa) || (e & E_VALIDATED) == want)
            break;
        ent[idx + i] = e ^ E_VALIDATED;
    }
    return i;
}

ua_status ua_snp_pvalidate(ua_snp *s, uint32_t vcpu, uint64_t va, uint32_t size,
                           uint32_t validate, ua_snp_result *out)
{
    ua_status st = guest_begin(s, vcpu, out,
                               size == UA_SNP_PAGE_2M ? UA_EV_PVALIDATE_2M : UA_EV_PVALIDATE_4K);
    if (st)
        return st;
    if (s->cfg.vmpl != 0) { /* VeriSMo: PVALIDATE at VMPL != 0 raises #GP */
        out->fault = UA_SNP_FAULT_GP;
        return UA_OK;
    }
    if (size > 1 || (va & ((size ? UA_2M : UA_4K) - 1))) {
        out->eax = UA_SNP_FAIL_INPUT;
        return UA_OK;
    }
    if (va >= s->cfg.memory_bytes) { /* not mapped by the guest page tables */
        set_fault(out, UA_SNP_FAULT_PF, 0, 0, va);
        return UA_OK;
    }
    snp_pvalidate(s, va, size, validate ? 1 : 0, out);
    if (out->fault == UA_SNP_FAULT_NPF)
        snp_charge(s, vcpu, UA_EV_NPF_EXIT, 1);
    return UA_OK;
}

/* RMPADJUST.  Order (VeriSMo's rmpadjust, input checks first):
 *   FAIL_INPUT: size > 1, VA misaligned, reserved RDX bits, target VMPL > 3,
 *     Write without Read;
 *   #PF: VA not mapped;
 *   FAIL_PERMISSION: target VMPL <= the current VMPL;
 *   NPF: the same conditions as PVALIDATE (instr_npf);
 *   #VC 0x404: the page is not validated;
 *   FAIL_SIZEMISMATCH: 2M request on 4K entries;
 *   FAIL_PERMISSION: the new mask is not a subset of the caller's own;
 *   else set the target VMPL's mask; the VMSA bit is changed only at VMPL0
 *   (EDK2: "the VMSA change is only made when running at VMPL0"). */
ua_status ua_snp_rmpadjust(ua_snp *s, uint32_t vcpu, uint64_t va, uint32_t size, uint64_t attrs,
                           ua_snp_result *out)
{
    ua_status st = guest_begin(s, vcpu, out, UA_EV_RMPADJUST);
    if (st)
        return st;
    uint32_t target = attrs & 0xff;
    uint32_t perms = (attrs >> 8) & 0xff;
    int vmsa = !!(attrs & UA_SNP_RMPADJUST_VMSA);
    if (size > 1 || (va & ((size ? UA_2M : UA_4K) - 1)) ||
        (attrs & ~(uint64_t)(0xff | 0xff00 | UA_SNP_RMPADJUST_VMSA)) || (perms & ~0x1fu) ||
        target > UA_SNP_MAX_VMPL ||
        ((perms & UA_SNP_PERM_WRITE) && !(perms & UA_SNP_PERM_READ))) {
        out->eax = UA_SNP_FAIL_INPUT;
        return UA_OK;
    }
    if (va >= s->cfg.memory_bytes) {
        set_fault(out, UA_SNP_FAULT_PF, 0, 0, va);
        return UA_OK;
    }
    if (target <= s->cfg.vmpl) {
        out->eax = UA_SNP_FAIL_PERMISSION;
        return UA_OK;
    }
    uint64_t spa = snp_npt(s, va);
    struct snp_region *rg;
    unsigned idx;
    int is2m;
    uint64_t e = entry_at(s, spa, &rg, &idx, &is2m);
    uint64_t npf = instr_npf(e, is2m, va, spa, s->cfg.asid, size);
    if (npf) {
        guest_npf(s, vcpu, out, npf, va);
        return UA_OK;
    }
    if (!(e & E_VALIDATED)) {
        guest_vc404(s, vcpu, out, va);
        return UA_OK;
    }
    if (size == UA_SNP_PAGE_2M && size_mismatch_2m(s, is2m, va, spa)) {
        out->eax = UA_SNP_FAIL_SIZEMISMATCH;
        return UA_OK;
    }
    uint16_t ext = ext_perm(s, spa);
    uint8_t mine = perm_of(e, ext, s->cfg.vmpl);
    if (perms & ~(uint32_t)mine) {
        out->eax = UA_SNP_FAIL_PERMISSION;
        return UA_OK;
    }
    unsigned sh = 5 * (target - 1);
    uint16_t next = (uint16_t)((ext & ~(0x1fu << sh)) | (perms << sh));
    if (is2m) {
        rg->perm = next;
        if (s->cfg.vmpl == 0)
            rg->e = (rg->e & ~E_VMSA) | (vmsa ? E_VMSA : 0);
    } else {
        if (!rg->split->perm) {
            if (next == 0)
                goto vmsa4k;
            uint16_t *p = calloc(512, sizeof(uint16_t));
            if (!p)
                return UA_E_NOMEM;
            snp_bytes_add(s, vcpu, 512 * sizeof(uint16_t));
            rg->split->perm = p;
        }
        rg->split->perm[idx] = next;
    vmsa4k:
        if (s->cfg.vmpl == 0 &&
            split_put(s, vcpu, rg->split, idx, (e & ~E_VMSA) | (vmsa ? E_VMSA : 0)))
            return UA_E_NOMEM;
    }
    return UA_OK;
}

/* Guest access.  Private (C=1, and every fetch): the RMP owner checks ->
 * NPF(RMP|ENC); then Validated -> #VC 0x404 with CR2 = the VA (= GPA here);
 * then the VMPL mask -> NPF(RMP|ENC|VMPL).  The Page-Size check cannot fail
 * in this model: the NPT maps a page at most at the RMP entry's size (KVM
 * keeps NPT level <= RMP level; AMD APM vol. 2 sec. 15.36.6, Table 15-40).  Shared (C=0) data writes
 * must hit a hypervisor-owned page, else NPF(RMP); C=0 reads are not
 * RMP-checked.  A GPA outside guest RAM has no NPT mapping: NPF without the
 * RMP bit. */
ua_status ua_snp_access(ua_snp *s, uint32_t vcpu, uint64_t gpa, uint32_t kind, uint32_t c_bit,
                        ua_snp_result *out)
{
    if (!s || !out)
        return UA_E_INVAL;
    if (vcpu >= s->cfg.vcpus)
        return UA_E_VCPU;
    if (kind > UA_SNP_ACCESS_EXEC_SUPER || c_bit > 1)
        return UA_E_INVAL;
    if (gpa >= SNP_PA_LIMIT)
        return UA_E_RANGE;
    memset(out, 0, sizeof(*out));
    static const uint64_t acc_bits[] = {
        [UA_SNP_ACCESS_READ] = 0,
        [UA_SNP_ACCESS_WRITE] = UA_SNP_NPF_WRITE,
        [UA_SNP_ACCESS_EXEC_USER] = UA_SNP_NPF_FETCH | UA_SNP_NPF_USER,
        [UA_SNP_ACCESS_EXEC_SUPER] = UA_SNP_NPF_FETCH,
    };
    static const uint8_t need_perm[] = {
        [UA_SNP_ACCESS_READ] = UA_SNP_PERM_READ,
        [UA_SNP_ACCESS_WRITE] = UA_SNP_PERM_WRITE,
        [UA_SNP_ACCESS_EXEC_USER] = UA_SNP_PERM_EXEC_USER,
        [UA_SNP_ACCESS_EXEC_SUPER] = UA_SNP_PERM_EXEC_SUPER,
    };
    uint64_t acc = acc_bits[kind];
    int priv = c_bit || kind >= UA_SNP_ACCESS_EXEC_USER;
    if (gpa >= s->cfg.memory_bytes) {
        guest_npf(s, vcpu, out, acc | (priv ? UA_SNP_NPF_ENC : 0), gpa);
        return UA_OK;
    }
    uint64_t spa = snp_npt(s, gpa);
    int is2m;
    uint64_t e = snp_entry(s, spa & ~0xfffull, &is2m);
    if (!priv) {
        if (kind == UA_SNP_ACCESS_WRITE && (e & E_ASSIGNED))
            guest_npf(s, vcpu, out, UA_SNP_NPF_RMP | UA_SNP_NPF_PRESENT | acc, gpa);
        return UA_OK;
    }
    uint64_t npf = UA_SNP_NPF_RMP | UA_SNP_NPF_ENC | UA_SNP_NPF_PRESENT | acc;
    if (rmp_owner_fault(e, is2m, gpa, spa, s->cfg.asid))
        guest_npf(s, vcpu, out, npf, gpa);
    else if (!(e & E_VALIDATED))
        guest_vc404(s, vcpu, out, gpa);
    else if (!(perm_of(e, ext_perm(s, spa), s->cfg.vmpl) & need_perm[kind]))
        guest_npf(s, vcpu, out, npf | UA_SNP_NPF_VMPL, gpa);
    return UA_OK;
}

