/* snp_kvm.c - SEV-SNP: KVM's side of the guest's exits, the default host
 * (ua_host_kvm_snp_*): Page State Change over the GHCB (NAE event and MSR
 * protocol), the memory attributes of guest_memfd's lazy mode, and nested
 * page faults (PSMASH on SIZEM, lazy RMPUPDATE).  The guest-side entry
 * points that hand a request to whatever host serves the machine are here
 * too.  Rules and their sources: docs/snp.md. */
#include <stdlib.h>
#include <string.h>

#include "snp_internal.h"

/* ---- memory attributes (guest_memfd's lazy mode) ---- */
static uintptr_t *attr_slot(ua_snp *s, uint64_t gregion, int alloc)
{
    void *c = alloc ? ua_sparse_get(&s->attr, gregion) : ua_sparse_peek(&s->attr, gregion);
    return c ? UA_SPARSE_AT(uintptr_t, c, gregion) : NULL;
}

static int attr_private(ua_snp *s, uint64_t gfn)
{
    uintptr_t *a = attr_slot(s, gfn >> 9, 0);
    if (!a || *a == 0)
        return 0;
    if (*a == 1)
        return 1;
    return (int)((((const uint64_t *)*a)[(gfn & 511) >> 6] >> (gfn & 63)) & 1);
}

static int attr_all_private(ua_snp *s, uint64_t gfn2m)
{
    uintptr_t *a = attr_slot(s, gfn2m >> 9, 0);
    return a && *a == 1;
}

/* Set the attribute of n GFNs from gfn (all in one 2 MiB region). */
static int attr_set(ua_snp *s, uint32_t vcpu, uint64_t gfn, unsigned n, int priv)
{
    uintptr_t *a = attr_slot(s, gfn >> 9, 1);
    if (!a)
        return -1;
    if (n == 512 || *a == (uintptr_t)priv) {
        if (n == 512 && *a > 1) {
            free((void *)*a);
            snp_bytes_add(s, vcpu, -64);
        }
        if (n == 512)
            *a = (uintptr_t)priv;
        return 0;
    }
    uint64_t *bits;
    if (*a <= 1) {
        bits = malloc(64);
        if (!bits)
            return -1;
        snp_bytes_add(s, vcpu, 64);
        memset(bits, *a ? 0xff : 0, 64);
        *a = (uintptr_t)bits;
    }
    bits = (uint64_t *)*a;
    for (unsigned i = 0; i < n; i++) {
        unsigned b = (unsigned)((gfn + i) & 511);
        if (priv)
            bits[b >> 6] |= 1ull << (b & 63);
        else
            bits[b >> 6] &= ~(1ull << (b & 63));
    }
    /* A region whose 512 pages now share one attribute goes back to 0 / 1,
     * so a region made private page by page counts as all private too
     * (KVM allows a 2 MiB mapping when every page's attribute is private). */
    uint64_t all = ~0ull, any = 0;
    for (unsigned i = 0; i < 8; i++) {
        all &= bits[i];
        any |= bits[i];
    }
    if (all == ~0ull || !any) {
        *a = all == ~0ull;
        free(bits);
        snp_bytes_add(s, vcpu, -64);
    }
    return 0;
}

ua_status ua_snp_set_memory_attributes(ua_snp *s, uint64_t gpa, uint64_t size,
                                       uint32_t private_)
{
    if (!s || private_ > 1)
        return UA_E_INVAL;
    if ((gpa | size) & 0xfff)
        return UA_E_ALIGN;
    if (gpa > s->cfg.memory_bytes || size > s->cfg.memory_bytes - gpa)
        return UA_E_RANGE;
    uint64_t gfn = gpa >> 12, end = (gpa + size) >> 12;
    while (gfn < end) {
        uint64_t region_end = (gfn | 511) + 1;
        unsigned n = (unsigned)((region_end < end ? region_end : end) - gfn);
        if (attr_set(s, SNP_NO_VCPU, gfn, n, (int)private_))
            return UA_E_NOMEM;
        gfn += n;
    }
    return UA_OK;
}

/* Make one 4 KiB GFN private or shared the way KVM does: PSMASH an assigned
 * 2 MiB entry first, then RMPUPDATE the 4 KiB page.  0 on success. */
static int host_set_4k(ua_snp *s, uint32_t vcpu, uint64_t gfn, int private_, int lazy)
{
    if (lazy) {
        if (attr_set(s, vcpu, gfn, 1, private_))
            return -1;
        if (private_)
            return 0; /* RMPUPDATE at the guest's first NPF on the page */
    }
    uint64_t spa = snp_npt(s, gfn << 12);
    struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
    /* KVM converts on a change of the page's memory attribute only: a page
     * already in the requested state is left alone (no RMPUPDATE, so a
     * validated page stays validated and a PVALIDATE then reports CF=1). */
    int is2m;
    uint64_t cur = snp_entry(s, spa, &is2m);
    if (private_ ? !rmp_owner_fault(cur, is2m, gfn << 12, spa, s->cfg.asid)
                 : !(cur & E_ASSIGNED))
        return 0;
    if (rg && (rg->e & (E_PAGESIZE | E_ASSIGNED)) == (E_PAGESIZE | E_ASSIGNED)) {
        if (snp_psmash(s, vcpu, spa & ~(UA_2M - 1)) != UA_SNP_RMP_SUCCESS)
            return -1;
    }
    ua_snp_rmp_state st = snp_rmp_state_for(s, gfn << 12, private_, 0);
    return snp_rmpupdate(s, vcpu, spa, &st) == UA_SNP_RMP_SUCCESS ? 0 : -1;
}

/* host_set_4k for n consecutive GFNs of one 2 MiB region, in one pass when
 * nothing needs the general path (no remaps, in-use pages or lazy mode, and
 * the region is not a 2 MiB entry): the same checks and entries as n
 * single-page calls, with the RMPUPDATEs charged at once. */
static int host_set_run_4k(ua_snp *s, uint32_t vcpu, uint64_t gfn, unsigned n, int private_,
                           int lazy)
{
    struct snp_region *rg = NULL;
    if (!s->nremaps && !s->nin_use && !lazy) {
        /* Shared in a region never written: every page already is; leave
         * the region whole, as the page-by-page path does. */
        const struct snp_region *cur = snp_region_peek(s, gfn >> 9);
        if (!private_ && (!cur || (!cur->split && !(cur->e & E_PAGESIZE))))
            return 0;
        rg = snp_region_get(s, gfn >> 9);
    }
    if (!rg || (rg->e & E_PAGESIZE) || (!rg->split && !snp_region_split(s, vcpu, rg))) {
        for (unsigned i = 0; i < n; i++)
            if (host_set_4k(s, vcpu, gfn + i, private_, lazy))
                return -1;
        return 0;
    }
    struct snp_split *sp = rg->split;
    uint64_t done = 0;
    int rc = 0;
    unsigned idx0 = (unsigned)(gfn & 511);
    uint64_t gpa0 = gfn << 12;
    if (!sp->e && (!private_ || !sp->have_base ||
                   (sp->asid == s->cfg.asid &&
                    ((sp->base + ((uint64_t)idx0 << 12)) & E_GPA_MASK) == gpa0))) {
        /* compact, and the new entries fit the pattern: flags only */
        if (private_ && !sp->have_base) {
            sp->base = gpa0 - ((uint64_t)idx0 << 12);
            sp->asid = s->cfg.asid;
            sp->have_base = 1;
        }
        uint8_t *f = &sp->f[idx0];
        const uint8_t nf = (uint8_t)(private_ ? (E_ASSIGNED | E_PERM0) : E_PERM0);
        /* eight pages at a time while all eight change and none is
         * immutable (the common case), one at a time from the first that
         * does not */
        const uint64_t key8 = (private_ ? 0 : E_ASSIGNED) * F_ONES;
        unsigned i = 0;
        for (; i + 8 <= n && (flags8_load(f + i) & ((E_ASSIGNED | E_IMMUTABLE) * F_ONES)) == key8;
             i += 8) {
            flags8_store(f + i, nf * F_ONES);
            if (sp->perm)
                memset(&sp->perm[idx0 + i], 0, 8 * sizeof(sp->perm[0]));
        }
        done = i;
        for (; i < n; i++) {
            if (private_ ? (f[i] & (E_ASSIGNED | E_IMMUTABLE)) == E_ASSIGNED
                         : !(f[i] & E_ASSIGNED))
                continue; /* already in the requested state */
            done++;
            if (f[i] & E_IMMUTABLE) {
                rc = -1;
                break;
            }
            f[i] = nf;
            if (sp->perm)
                sp->perm[idx0 + i] = 0;
        }
        snp_charge(s, vcpu, UA_EV_RMPUPDATE_4K, done);
        return rc;
    }
    const uint64_t key = E_ASSIGNED | ((uint64_t)s->cfg.asid << E_ASID_SHIFT);
    const uint64_t mask = E_ASSIGNED | E_IMMUTABLE | E_ASID_MASK | E_GPA_MASK;
    for (unsigned i = 0; i < n; i++) {
        unsigned idx = idx0 + i;
        uint64_t e = split_get(sp, idx), gpa = gpa0 + ((uint64_t)i << 12);
        if (private_ ? (e & mask) == (key | gpa) : !(e & E_ASSIGNED))
            continue; /* already in the requested state */
        done++;
        if (e & E_IMMUTABLE) {
            rc = -1;
            break;
        }
        if (split_put(s, vcpu, sp, idx, private_ ? (key | E_PERM0 | gpa) : E_PERM0)) {
            rc = -1;
            break;
        }
        if (sp->perm)
            sp->perm[idx] = 0;
    }
    snp_charge(s, vcpu, UA_EV_RMPUPDATE_4K, done);
    return rc;
}

/* Make a 2 MiB-aligned run of 512 GFNs private or shared with one 2 MiB
 * RMPUPDATE when the host backs with 2 MiB pages and nothing in the region
 * forces 4 KiB entries; else page by page. */
static int host_set_2m(ua_snp *s, uint32_t vcpu, uint64_t gfn, int private_, int lazy)
{
    if (lazy) {
        if (attr_set(s, vcpu, gfn, 512, private_))
            return -1;
        if (private_)
            return 0;
    }
    if (s->cfg.backing == UA_BACKING_2M && !snp_range_remapped(s, gfn, 512)) {
        uint64_t spa = gfn << 12;
        struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
        if (!rg || !rg->split) {
            uint64_t cur = rg ? rg->e : 0;
            if (private_ ? ((cur & E_PAGESIZE) && !rmp_owner_fault(cur, 1, spa, spa, s->cfg.asid))
                         : !(cur & E_ASSIGNED))
                return 0; /* already in the requested state */
            ua_snp_rmp_state st = snp_rmp_state_for(s, spa, private_, 1);
            return snp_rmpupdate(s, vcpu, spa, &st) == UA_SNP_RMP_SUCCESS ? 0 : -1;
        }
    }
    return host_set_run_4k(s, vcpu, gfn, 512, private_, lazy);
}

/* ---- Page State Change ---- */

/* A valid MSR-protocol request for this guest: 1 and its GFN and
 * direction, else 0 (KVM answers those with its generic error). */
int snp_psc_msr_decode(const ua_snp *s, uint64_t req, uint64_t *gfn, int *private_)
{
    *gfn = (req >> 12) & ((1ull << 40) - 1);
    unsigned op = (req >> 52) & 0xf;
    *private_ = op == UA_SNP_PSC_OP_PRIVATE;
    return !(req >> 56) && (op == UA_SNP_PSC_OP_PRIVATE || op == UA_SNP_PSC_OP_SHARED) &&
           *gfn < s->guest_pages;
}

int ua_host_kvm_snp_psc_msr(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t request,
                            uint64_t *response)
{
    if (!h || !s || !response)
        return UA_E_INVAL;
    if (vcpu >= s->cfg.vcpus)
        return UA_E_VCPU;
    uint64_t gfn;
    int priv;
    if (!snp_psc_msr_decode(s, request, &gfn, &priv) ||
        host_set_4k(s, vcpu, gfn, priv, (int)h->cfg.lazy_rmpupdate))
        *response = UA_SNP_GHCB_MSR_PSC_RESP_ERROR;
    else
        *response = UA_SNP_GHCB_MSR_PSC_RESP;
    return UA_OK;
}

ua_status ua_snp_psc_msr(ua_snp *s, uint32_t vcpu, uint64_t request_msr, uint64_t *response_msr)
{
    if (!s || !response_msr)
        return UA_E_INVAL;
    if (vcpu >= s->cfg.vcpus)
        return UA_E_VCPU;
    if ((request_msr & 0xfff) != UA_SNP_GHCB_MSR_PSC_REQ)
        return UA_E_OP;
    return snp_exit_psc_msr(s, vcpu, request_msr, response_msr);
}

int snp_psc_header_check(uint64_t *hdr, uint32_t cap, ua_snp_ghcb_result *out)
{
    if (hdr && PSC_END(*hdr) >= UA_SNP_PSC_MAX_ENTRIES) {
        out->sw_exitinfo2 = UA_SNP_PSC_ERROR_INVALID_HDR;
        return -1;
    }
    if (!hdr || PSC_END(*hdr) >= cap) { /* the scratch area cannot hold what it names */
        out->sw_exitinfo1 = UA_SNP_GHCB_EXITINFO1_ERROR;
        out->sw_exitinfo2 = UA_SNP_GHCB_ERR_INVALID_SCRATCH_AREA;
        return -1;
    }
    return 0;
}

/* KVM's NAE Page State Change handler (the GHCB specification's contract,
 * as KVM implements it): process entries from cur_entry, at most
 * psc_max_entries entries and psc_max_pages pages per exit (0 = all), set
 * cur_page as pages complete and advance cur_entry; a 2 MiB entry already
 * partly done is finished as 4 KiB pages; PSMASH/UNSMASH hints are no-ops.
 * Errors in SW_EXITINFO2 stop the walk with the header pointing at the
 * failing entry.  rmpupdate = 0 walks and reports without converting (the
 * skip-rmpupdate host). */
int snp_kvm_psc_walk(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                     uint32_t cap, ua_snp_ghcb_result *out, int rmpupdate)
{
    if (snp_psc_header_check(hdr, cap, out))
        return UA_OK;
    const ua_host_config *c = &h->cfg;
    const int lazy = (int)c->lazy_rmpupdate;
    uint64_t hv = *hdr;
    unsigned cur = PSC_CUR(hv), end = PSC_END(hv);
    uint64_t left_e = c->psc_max_entries ? c->psc_max_entries : UINT64_MAX;
    uint64_t left_p = c->psc_max_pages ? c->psc_max_pages : UINT64_MAX;
    while (cur <= end && left_e && left_p) {
        uint64_t x = ent[cur];
        unsigned cur_page = x & 0xfff;
        uint64_t gfn = PSC_ENT_GFN(x);
        unsigned op = PSC_ENT_OP(x);
        unsigned npages = PSC_ENT_2M(x) ? 512 : 1;
        if (op < UA_SNP_PSC_OP_PRIVATE || op > UA_SNP_PSC_OP_UNSMASH || cur_page > npages ||
            (gfn & (npages - 1))) {
            out->sw_exitinfo2 = UA_SNP_PSC_ERROR_INVALID_ENTRY;
            break;
        }
        if (op <= UA_SNP_PSC_OP_SHARED && gfn + npages > s->guest_pages) {
            out->sw_exitinfo2 = UA_SNP_PSC_ERROR_GENERIC;
            break;
        }
        unsigned todo = npages - cur_page;
        if (todo > left_p)
            todo = (unsigned)left_p;
        if (op <= UA_SNP_PSC_OP_SHARED && todo && rmpupdate) {
            int priv = op == UA_SNP_PSC_OP_PRIVATE, bad;
            if (npages == 512 && cur_page == 0 && todo == 512)
                bad = host_set_2m(s, vcpu, gfn, priv, lazy);
            else
                bad = host_set_run_4k(s, vcpu, gfn + cur_page, todo, priv, lazy);
            if (bad) {
                out->sw_exitinfo2 = UA_SNP_PSC_ERROR_GENERIC;
                break;
            }
        }
        if (op <= UA_SNP_PSC_OP_SHARED) {
            left_p -= todo;
            out->pages_done += todo;
        } else {
            todo = npages - cur_page; /* hints complete at once */
        }
        cur_page += todo;
        ent[cur] = (x & ~0xfffull) | cur_page;
        if (cur_page < npages)
            break;
        cur++;
        left_e--;
        out->entries_done++;
    }
    *hdr = PSC_HDR(cur, end, hv >> 32);
    return UA_OK;
}

int ua_host_kvm_snp_psc(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *header,
                        uint64_t *entries, uint32_t capacity, ua_snp_ghcb_result *out)
{
    if (!h || !s || !out || (capacity && !entries))
        return UA_E_INVAL;
    if (vcpu >= s->cfg.vcpus)
        return UA_E_VCPU;
    return snp_kvm_psc_walk(h, s, vcpu, header, entries, capacity, out, 1);
}

static uint64_t le64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static void put_le64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        b[i] = (uint8_t)v;
}

ua_status ua_snp_psc_ghcb(ua_snp *s, uint32_t vcpu, uint8_t *buf, size_t len,
                          ua_snp_ghcb_result *out)
{
    if (!s || !out || (!buf && len))
        return UA_E_INVAL;
    if (vcpu >= s->cfg.vcpus)
        return UA_E_VCPU;
    uint64_t hdr = 0, ent[UA_SNP_PSC_MAX_ENTRIES];
    size_t cap = len < UA_SNP_PSC_HDR_BYTES ? 0 : (len - UA_SNP_PSC_HDR_BYTES) / 8;
    if (cap > UA_SNP_PSC_MAX_ENTRIES)
        cap = UA_SNP_PSC_MAX_ENTRIES;
    if (len >= UA_SNP_PSC_HDR_BYTES)
        hdr = le64(buf);
    for (size_t i = 0; i < cap; i++)
        ent[i] = le64(buf + 8 + 8 * i);
    int st = snp_exit_psc(s, vcpu, len >= UA_SNP_PSC_HDR_BYTES ? &hdr : NULL, ent,
                          (uint32_t)cap, out);
    if (len >= UA_SNP_PSC_HDR_BYTES)
        put_le64(buf, hdr);
    for (size_t i = 0; i < cap; i++)
        put_le64(buf + 8 + 8 * i, ent[i]);
    return st;
}

int ua_snp_psc_guest_check(uint16_t start_cur, uint16_t start_end, const uint8_t *hdr,
                           uint64_t sw_exitinfo2)
{
    if (sw_exitinfo2)
        return 1;
    if (!hdr)
        return 1;
    uint64_t h = le64(hdr);
    if (h >> 32)
        return 2;
    if (PSC_END(h) > start_end)
        return 3;
    if (PSC_CUR(h) < start_cur)
        return 4;
    return 0;
}

/* ---- nested page faults ---- */

/* KVM's answer to an NPF: with SIZEM (a 4 KiB operation on a 2 MiB entry)
 * it PSMASHes the entry and resumes, so the instruction re-executes; in
 * lazy mode the first fault on a private GFN maps it (kvm_gmem fault-in ->
 * rmp_make_private) at the largest level the backing and the attributes
 * allow; nothing else is fixable (the page was never assigned, or belongs
 * elsewhere): the guest would re-execute forever. */
int ua_host_kvm_snp_npf(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t gpa, uint64_t exitinfo1,
                        uint32_t *action)
{
    if (!h || !s || !action)
        return UA_E_INVAL;
    if (vcpu >= s->cfg.vcpus)
        return UA_E_VCPU;
    uint64_t gfn = gpa >> 12;
    *action = UA_HOST_DID_NOTHING;
    /* guest_memfd faults a private GFN in on an NPF whatever the PSC did
     * (pre-faulting at PSC time only makes this path rare) */
    if (!(exitinfo1 & UA_SNP_NPF_SIZEM) && gfn < s->guest_pages && attr_private(s, gfn)) {
        uint64_t spa = snp_npt(s, gpa & ~0xfffull);
        int is2m;
        if (snp_entry(s, spa, &is2m) & E_ASSIGNED)
            return UA_OK; /* assigned to something else: not a missing mapping */
        uint64_t g2 = gfn & ~511ull;
        if (s->cfg.backing == UA_BACKING_2M && attr_all_private(s, g2) &&
            !snp_range_remapped(s, g2, 512)) {
            ua_snp_rmp_state st = snp_rmp_state_for(s, g2 << 12, 1, 1);
            if (snp_rmpupdate(s, vcpu, g2 << 12, &st) == UA_SNP_RMP_SUCCESS) {
                *action = UA_HOST_DID_RMPUPDATE;
                return UA_OK;
            }
        }
        ua_snp_rmp_state st = snp_rmp_state_for(s, gpa & ~0xfffull, 1, 0);
        if (snp_rmpupdate(s, vcpu, spa, &st) == UA_SNP_RMP_SUCCESS)
            *action = UA_HOST_DID_RMPUPDATE;
        return UA_OK;
    }
    if ((exitinfo1 & UA_SNP_NPF_SIZEM) && h->cfg.npf_psmash) {
        uint64_t spa = snp_npt(s, gpa) & ~(UA_2M - 1);
        if (snp_psmash(s, vcpu, spa) == UA_SNP_RMP_SUCCESS)
            *action = UA_HOST_DID_PSMASH;
    }
    return UA_OK;
}

ua_status ua_snp_serve_npf(ua_snp *s, uint32_t vcpu, uint64_t gpa, uint64_t exitinfo1,
                           uint32_t *action)
{
    uint32_t local;
    if (!s)
        return UA_E_INVAL;
    if (vcpu >= s->cfg.vcpus)
        return UA_E_VCPU;
    /* the NPF itself was charged when the instruction or access took it */
    return snp_exit_npf(s, vcpu, gpa, exitinfo1, action ? action : &local);
}
