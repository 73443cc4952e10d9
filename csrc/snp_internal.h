/* snp_internal.h - SEV-SNP model internals shared by the RMP (snp_rmp.c),
 * the CPU's instructions (snp_cpu.c), KVM (snp_kvm.c) and the guest paths
 * (snp_guest.c); not installed. */
#ifndef UA_SNP_INTERNAL_H
#define UA_SNP_INTERNAL_H

#include <pthread.h>
#include <string.h>

#include "host_internal.h"
#include "sparse_internal.h"

#define SNP_REGION_SHIFT 21
#define SNP_PA_LIMIT (1ull << 52)
#define SNP_NO_VCPU 0xffffffffu                  /* host-initiated: charge nobody */

/* One RMP entry packed in 64 bits (logical fields, not the hardware layout):
 * flags in bits 0-5, the GPA in its own bits 12-51, the ASID in 52-61.  The
 * permission masks of VMPL1-3 (5 bits each) live beside it; VMPL0's mask is
 * "all" once any RMPUPDATE wrote the entry (E_PERM0) and nobody can change
 * it afterwards (RMPADJUST only targets higher VMPLs). */
#define E_ASSIGNED 1ull
#define E_PAGESIZE 2ull
#define E_IMMUTABLE 4ull
#define E_VALIDATED 8ull
#define E_VMSA 16ull
#define E_PERM0 32ull
#define E_GPA_MASK 0x000ffffffffff000ull
#define E_ASID_SHIFT 52
#define E_ASID_MASK (0x3ffull << E_ASID_SHIFT)

static inline uint32_t e_asid(uint64_t e) { return (uint32_t)((e & E_ASID_MASK) >> E_ASID_SHIFT); }

#define E_FLAGS 0x3full
#define F_UCONS 0x40u   /* compact flag byte only: unassigned page with GPA ubase + i * 4 KiB */

/* 512 4 KiB entries of a split region.  Compact form (e == NULL): one flag
 * byte per page plus a pattern shared by the assigned pages - the GPA of
 * page i is base + i * 4 KiB and the ASID is asid - which is what PSMASH
 * and the host's 4 KiB conversions produce; an unassigned page's ASID is 0
 * and its GPA 0 (or ubase + i * 4 KiB with F_UCONS).  The first entry that does not fit the pattern switches the
 * region to 512 full 8-byte entries (e).  perm (VMPL1-3 masks) exists only
 * once some RMPADJUST granted a non-zero mask in this region. */
struct snp_split {
    uint64_t *e;
    uint16_t *perm;
    uint64_t base;              /* GPA of page 0 (mod 2^64), when have_base */
    uint64_t ubase;             /* GPA of page 0 for F_UCONS pages (an unassigned 2 MiB
                                 * entry's GPAs after the split) */
    uint32_t asid;
    uint8_t have_base;
    uint8_t f[512];
};

/* Eight compact flag bytes at once (f[i .. i+7]), for the run loops. */
#define F_ONES 0x0101010101010101ull
static inline uint64_t flags8_load(const uint8_t *f)
{
    uint64_t w;
    memcpy(&w, f, sizeof(w));
    return w;
}
static inline void flags8_store(uint8_t *f, uint64_t w) { memcpy(f, &w, sizeof(w)); }

static inline uint64_t split_get(const struct snp_split *sp, unsigned i)
{
    if (sp->e)
        return sp->e[i];
    uint64_t f = sp->f[i];
    if (!(f & E_ASSIGNED))
        return (f & E_FLAGS) | ((f & F_UCONS) ? ((sp->ubase + ((uint64_t)i << 12)) & E_GPA_MASK) : 0);
    return f | ((sp->base + ((uint64_t)i << 12)) & E_GPA_MASK) |
           ((uint64_t)sp->asid << E_ASID_SHIFT);
}

/* A 2 MiB SPA region.  Invariant: with split == NULL, either E_PAGESIZE is
 * set in e (one 2 MiB entry) or e == 0 (512 zeroed 4 KiB entries). */
struct snp_region {
    uint64_t e;
    struct snp_split *split;
    uint16_t perm;              /* VMPL1-3 masks of a 2 MiB entry */
};

struct snp_remap {
    uint64_t gfn;
    uint64_t spfn;
};

/* Per-vCPU counters, written by the vCPU's thread (one at a time, as its
 * cost slot): memory allocated on the accept path (4 KiB RMP arrays,
 * attribute bitmaps) is counted here rather than in one shared counter, so
 * vCPUs accepting disjoint ranges write no common cache line. */
struct snp_vcpu {
    int64_t bytes;              /* allocated less freed; relaxed atomics (read by others) */
} __attribute__((aligned(64)));

struct ua_snp {
    ua_snp_config cfg;
    const volatile int *cancel;  /* the caller's cancel flag (ua_guest_set_cancel) */
    ua_cost *cost;
    ua_host *host;              /* never NULL: own_host unless a host was set */
    ua_host own_host;
    uint64_t guest_pages;
    uint64_t rmp_end;           /* bytes of SPA covered */
    uint64_t nregions;
    struct ua_sparse rmp;       /* struct snp_region per 2 MiB of SPA */
    /* KVM's lazy mode: the private memory attribute per GPA 2 MiB region:
     * 0 = all shared, 1 = all private, else a pointer to a 512-bit bitmap. */
    struct ua_sparse attr;      /* uintptr_t per 2 MiB of GPA */
    struct snp_remap *remaps;   /* sorted by gfn; host-side configuration */
    size_t nremaps, capremaps;
    uint64_t *in_use;           /* SPAs (4 KiB aligned) marked in use */
    size_t nin_use, capin_use;
    int launch_finished;
    struct ua_fatal_slot fatal;
    struct snp_vcpu *vcpus;
    /* written now and then while vCPUs run (a directory chunk): kept off
     * the cache lines read above */
    char pad0[64];
    uint64_t bytes_allocated;   /* atomic: memory not charged to a vCPU (the machine,
                                 * directory chunks, host-initiated instructions) */
    char pad1[64];
};

/* Simulator memory allocated (n > 0) or freed for vcpu (SNP_NO_VCPU: the
 * machine-wide counter). */
static inline void snp_bytes_add(ua_snp *s, uint32_t vcpu, int64_t n)
{
    if (vcpu < s->cfg.vcpus) {
        int64_t *b = &s->vcpus[vcpu].bytes;   /* this vCPU's thread alone writes it */
        __atomic_store_n(b, __atomic_load_n(b, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
    } else {
        __atomic_add_fetch(&s->bytes_allocated, (uint64_t)n, __ATOMIC_RELAXED);
    }
}

/* ---- region lookup ---- */
static inline struct snp_region *snp_region_peek(const ua_snp *s, uint64_t r)
{
    void *c = ua_sparse_peek(&s->rmp, r);
    return c ? UA_SPARSE_AT(struct snp_region, c, r) : NULL;
}

/* allocates its chunk; NULL on ENOMEM */
static inline struct snp_region *snp_region_get(ua_snp *s, uint64_t r)
{
    void *c = ua_sparse_get(&s->rmp, r);
    return c ? UA_SPARSE_AT(struct snp_region, c, r) : NULL;
}
/* Turn a region into 512 4 KiB entries (PSMASH semantics for a 2 MiB
 * entry); 0 when out of memory. */
int snp_region_split(ua_snp *s, uint32_t vcpu, struct snp_region *rg);
void snp_split_free(ua_snp *s, uint32_t vcpu, struct snp_split *sp);
/* Whether a page of [spa, spa + size) is marked in use (running VMSA/VMCB). */
int snp_in_use_any(const ua_snp *s, uint64_t spa, uint64_t size);
/* Store entry i of a split region (expanding a compact one if the entry
 * does not fit its pattern); -1 when out of memory (nothing changed). */
int split_put(ua_snp *s, uint32_t vcpu, struct snp_split *sp, unsigned i, uint64_t e);

/* The governing entry for a 4 KiB SPA (covered).  *is2m says whether it is
 * the region's 2 MiB entry. */
static inline uint64_t snp_entry(const ua_snp *s, uint64_t spa, int *is2m)
{
    const struct snp_region *rg = snp_region_peek(s, spa >> SNP_REGION_SHIFT);
    *is2m = 0;
    if (!rg)
        return 0;
    if (rg->e & E_PAGESIZE) {
        *is2m = 1;
        return rg->e;
    }
    return rg->split ? split_get(rg->split, (spa >> 12) & 511) : 0;
}

/* A GPA range argument: 4 KiB aligned, inside guest RAM. */
static inline ua_status snp_check_range(const ua_snp *s, uint64_t start, uint64_t end)
{
    if ((start | end) & 0xfff)
        return UA_E_ALIGN;
    if (start > end || end > s->cfg.memory_bytes)
        return UA_E_RANGE;
    return UA_OK;
}

/* NPT: GPA -> SPA (identity unless remapped). */
uint64_t snp_npt(const ua_snp *s, uint64_t gpa);
int snp_range_remapped(const ua_snp *s, uint64_t gfn, uint64_t npages);

/* The RMP checks a guest operation on a private page makes before looking
 * at Validated: assigned, ASID, reverse map (GPA), immutable.  gpa is the
 * 4 KiB GPA the guest used; spa its translation. */
static inline int rmp_owner_fault(uint64_t e, int is2m, uint64_t gpa, uint64_t spa, uint32_t asid)
{
    uint64_t egpa = (e & E_GPA_MASK) + (is2m ? (spa & (UA_2M - 1) & ~0xfffull) : 0);
    return !(e & E_ASSIGNED) || e_asid(e) != asid || egpa != (gpa & ~0xfffull) ||
           (e & E_IMMUTABLE);
}

/* The RMPUPDATE operand a host uses to make a guest page private or shared. */
ua_snp_rmp_state snp_rmp_state_for(const ua_snp *s, uint64_t gpa, int private_, int big);

/* Internal instruction bodies (arguments already validated). */
uint32_t snp_rmpupdate(ua_snp *s, uint32_t vcpu, uint64_t spa, const ua_snp_rmp_state *st);
uint32_t snp_psmash(ua_snp *s, uint32_t vcpu, uint64_t spa);
void snp_pvalidate(ua_snp *s, uint64_t gpa, uint32_t size, uint32_t validate, ua_snp_result *r);
/* PVALIDATE 4K of consecutive pages from gpa (inside one region) while each
 * would succeed with CF=0; returns how many were done (0..n).  The first
 * page not done must go through snp_pvalidate. */
unsigned snp_pvalidate_run4k(ua_snp *s, uint64_t gpa, unsigned n, uint32_t validate);

/* PSC header word: u16 cur_entry, u16 end_entry (inclusive), u32 reserved. */
#define PSC_CUR(h) ((uint16_t)((h) & 0xffff))
#define PSC_END(h) ((uint16_t)(((h) >> 16) & 0xffff))

static inline void snp_charge(ua_snp *s, uint32_t vcpu, int ev, uint64_t n)
{
    if (s->cost && n)
        ua_cost_charge(s->cost, vcpu, ev, n);
}

/* Exits to the host: the exit is charged, then the host's handler runs
 * (KVM's directly when the host has no handler of its own). */
static inline int snp_exit_psc(ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                               uint32_t cap, ua_snp_ghcb_result *out)
{
    ua_host *h = s->host;
    memset(out, 0, sizeof(*out));
    snp_charge(s, vcpu, UA_EV_VMGEXIT_PSC, 1);
    if (UA_LIKELY(!h->ops.snp_psc))
        return ua_host_kvm_snp_psc(h, s, vcpu, hdr, ent, cap, out);
    return h->ops.snp_psc(h, s, vcpu, hdr, ent, cap, out);
}

static inline int snp_exit_psc_msr(ua_snp *s, uint32_t vcpu, uint64_t req, uint64_t *resp)
{
    ua_host *h = s->host;
    snp_charge(s, vcpu, UA_EV_VMGEXIT_PSC_MSR, 1);
    if (UA_LIKELY(!h->ops.snp_psc_msr))
        return ua_host_kvm_snp_psc_msr(h, s, vcpu, req, resp);
    return h->ops.snp_psc_msr(h, s, vcpu, req, resp);
}

/* The NPF exit is charged by the caller (the guest path batches it). */
static inline int snp_exit_npf(ua_snp *s, uint32_t vcpu, uint64_t gpa, uint64_t exitinfo1,
                               uint32_t *action)
{
    ua_host *h = s->host;
    *action = UA_HOST_DID_NOTHING;
    if (UA_LIKELY(!h->ops.snp_npf))
        return ua_host_kvm_snp_npf(h, s, vcpu, gpa, exitinfo1, action);
    return h->ops.snp_npf(h, s, vcpu, gpa, exitinfo1, action);
}

/* KVM's checks of a PSC header before any entry is read: 0 if the walk may
 * start, else the error is in out. */
int snp_psc_header_check(uint64_t *hdr, uint32_t cap, ua_snp_ghcb_result *out);
/* KVM's PSC walk; rmpupdate = 0 advances without converting anything. */
int snp_kvm_psc_walk(ua_host *h, ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent,
                     uint32_t cap, ua_snp_ghcb_result *out, int rmpupdate);
/* Decode an MSR-protocol PSC request: 0 if KVM would reject it. */
int snp_psc_msr_decode(const ua_snp *s, uint64_t req, uint64_t *gfn, int *private_);

/* Record a GHCB termination request; returns UA_E_GUEST_TERMINATED. */
int snp_record_termination(ua_snp *s, uint32_t vcpu, uint32_t set, uint32_t code, uint64_t gpa,
                           uint32_t eax, uint32_t fault, uint64_t info2);
/* Record that the guest hangs at gpa; returns UA_E_GUEST_HUNG. */
int snp_record_hang(ua_snp *s, uint32_t vcpu, uint64_t gpa, const char *why);


/* PSC entry fields */
#define PSC_ENT_GFN(x) (((x) >> 12) & ((1ull << 40) - 1))
#define PSC_ENT_OP(x) ((unsigned)(((x) >> 52) & 0xf))
#define PSC_ENT_2M(x) ((unsigned)(((x) >> 56) & 1))
#define PSC_HDR(cur, end, rsvd) ((uint64_t)(cur) | ((uint64_t)(end) << 16) | ((uint64_t)(rsvd) << 32))

#endif
