/* ua_snp_internal.h - SEV-SNP model internals shared by snp.c and
 * guest_snp.c; not installed. */
#ifndef UA_SNP_INTERNAL_H
#define UA_SNP_INTERNAL_H

#include <pthread.h>

#include "ua_internal.h"

#define SNP_4K 4096ull
#define SNP_2M 2097152ull
#define SNP_REGION_SHIFT 21
#define SNP_CHUNK_SHIFT 12                       /* 4096 regions (8 GiB) per chunk */
#define SNP_CHUNK_REGIONS (1ull << SNP_CHUNK_SHIFT)
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

struct ua_snp {
    ua_snp_config cfg;
    ua_snp_host_policy pol;
    ua_cost *cost;
    uint64_t guest_pages;
    uint64_t rmp_end;           /* bytes of SPA covered */
    uint64_t nregions;
    uint64_t nchunks;
    void **chunks;              /* struct snp_region[] per chunk, allocated on first write */
    /* Lazy mode: the private memory attribute per GPA 2 MiB region: 0 = all
     * shared, 1 = all private, else a pointer to a 512-bit bitmap. */
    void **attr;                /* uintptr_t[] per chunk */
    uint64_t nattr_chunks;
    pthread_mutex_t lock;       /* chunk allocation, termination record */
    uint64_t bytes_allocated;   /* atomic */
    struct snp_remap *remaps;   /* sorted by gfn; host-side configuration */
    size_t nremaps, capremaps;
    uint64_t *in_use;           /* SPAs (4 KiB aligned) marked in use */
    size_t nin_use, capin_use;
    int launch_finished;
    int terminated;             /* atomic */
    ua_snp_termination term;
};

/* ---- region lookup ---- */
static inline struct snp_region *snp_region_peek(const ua_snp *s, uint64_t r)
{
    struct snp_region *c = __atomic_load_n(&s->chunks[r >> SNP_CHUNK_SHIFT], __ATOMIC_ACQUIRE);
    return c ? &c[r & (SNP_CHUNK_REGIONS - 1)] : NULL;
}

struct snp_region *snp_region_get(ua_snp *s, uint64_t r); /* allocates; NULL on ENOMEM */
/* Store entry i of a split region (expanding a compact one if the entry
 * does not fit its pattern); -1 when out of memory (nothing changed). */
int split_put(ua_snp *s, struct snp_split *sp, unsigned i, uint64_t e);

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

/* Hypervisor handlers (charge their events to vcpu). */
uint64_t snp_psc_msr(ua_snp *s, uint32_t vcpu, uint64_t req);
/* hdr/ent: native words of the scratch area; cap = entries that fit. */
void snp_psc_ghcb(ua_snp *s, uint32_t vcpu, uint64_t *hdr, uint64_t *ent, size_t cap,
                  ua_snp_ghcb_result *out);
/* NPF exit from a guest instruction: 1 if the host fixed it (re-execute). */
int snp_host_npf(ua_snp *s, uint32_t vcpu, uint64_t gpa, uint64_t exitinfo1, uint64_t *psmashes);

ua_status snp_record_termination(ua_snp *s, uint32_t vcpu, uint32_t set, uint32_t code,
                                 uint64_t gpa, uint32_t eax, uint32_t fault, uint64_t info2);

static inline void snp_charge(ua_snp *s, uint32_t vcpu, int ev, uint64_t n)
{
    if (s->cost && n)
        ua_cost_charge(s->cost, vcpu, ev, n);
}

#endif
