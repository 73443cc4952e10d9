/* fuzz_snp.c - the SEV-SNP model driven by a byte program: a 16 MiB guest
 * (ua_guest, vendor SNP, 2 MiB of spare host SPAs, 2 vCPUs, cost counting on)
 * served by KVM or a named host behaviour, and a sequence of calls decoded
 * from the input: PVALIDATE, RMPADJUST, RMPUPDATE, PSMASH, PSC over the MSR
 * protocol and the GHCB, guest accesses, NPFs handed to the host, the guest
 * accept and unaccept paths (every ua_path_kind), touches, launch,
 * memory attributes, NPT remaps, in-use marks, terminations, path options,
 * the caller's cancel flag (ua_guest_set_cancel), fatal clears.
 *
 * Input: 4 configuration bytes (backing, VMPL, coherency, ASID, host
 * behaviour and its knobs, path hang limit), then one op per byte followed
 * by its operands.
 *
 * Invariants, checked after every op (the whole-guest counts after every
 * fourth op and at the end of the input):
 *   - every status is documented; instruction results carry documented codes
 *     (PVALIDATE / RMPADJUST: EAX 0, 1, 2, 6 or a fault; RMPUPDATE 0-4;
 *     PSMASH 0, 1, 3; touch outcomes 0-5);
 *   - validated pages (ua_snp_count_gpa = ua_guest_count_accepted) never
 *     exceed the guest's pages, nor assigned pages the RMP's;
 *   - a fatal record, once written, stays exactly as it is until
 *     ua_guest_fatal_clear; a dead guest's accept and unaccept return its
 *     fatal status and change nothing; a fatal status from an accept, a
 *     fatal touch outcome or a termination request leaves a record behind;
 *     an accept interrupted by the cancel flag leaves the guest alive;
 *   - RMPUPDATE and PSMASH that succeed leave the entry they promise;
 *     PVALIDATE that succeeds (CF=0) flips Validated;
 *   - while no NPT remap aliases pages, an accept that returns UA_OK leaves
 *     every page of its range validated, an unaccept none.
 */
#include "fuzz_common.h"

#define MEM (16ull << 20)
#define SPARE (2ull << 20)
#define MIB2 (2ull << 20)
#define KIB4 4096ull
#define MAX_OPS 64

struct state {
    volatile int cancel;  /* the guest's cancel flag (ua_guest_set_cancel) */
    ua_guest *g;
    ua_snp *s;
    ua_snp_config cfg;
    int remapped;      /* an NPT remap happened: pages may alias */
};

/* A GPA or SPA operand: mostly a page of the guest (or just past it),
 * sometimes 2 MiB aligned, misaligned, or raw. */
static uint64_t addr(struct fuzz_in *in, uint64_t limit)
{
    uint8_t m = in_u8(in);
    switch (m & 3) {
    case 0: return in_le(in, 2) % (limit / KIB4 + 2) * KIB4;
    case 1: return in_le(in, 1) % (limit / MIB2 + 1) * MIB2;
    case 2: return in_le(in, 2) % (limit / KIB4 + 2) * KIB4 + (m >> 2) * 8;
    default: return (m & 4) ? in_le(in, 8) : in_le(in, 1) * KIB4;
    }
}

static uint64_t length(struct fuzz_in *in)
{
    uint8_t m = in_u8(in);
    switch (m & 3) {
    case 0: return (uint64_t)(m >> 2) * KIB4;
    case 1: return (uint64_t)((m >> 2) % 9) * MIB2;
    case 2: return in_le(in, 2) * KIB4;
    default: return (uint64_t)(m >> 2) * MIB2 + in_le(in, 1) * KIB4;
    }
}

static void counts(const struct state *st, uint64_t start, uint64_t end, uint64_t *v,
                   uint64_t *u)
{
    FUZZ_CHECK(ua_snp_count_gpa(st->s, start, end, v, u) == UA_OK, "count_gpa");
}

static void global_invariants(const struct state *st)
{
    uint64_t v, u;
    counts(st, 0, MEM, &v, &u);
    FUZZ_CHECK(v + u <= MEM / KIB4, "validated %llu + unvalidated %llu > %llu guest pages",
               (unsigned long long)v, (unsigned long long)u, (unsigned long long)(MEM / KIB4));
    ua_snp_stats ss;
    FUZZ_CHECK(ua_snp_stats_get(st->s, &ss) == UA_OK, "stats");
    FUZZ_CHECK(ss.validated_4k <= ss.assigned_4k && ss.assigned_4k <= (MEM + SPARE) / KIB4,
               "RMP: %llu validated, %llu assigned", (unsigned long long)ss.validated_4k,
               (unsigned long long)ss.assigned_4k);
}

/* Once per input. */
static void final_invariants(const struct state *st)
{
    uint64_t v, u, acc = ~0ull;
    counts(st, 0, MEM, &v, &u);
    FUZZ_CHECK(ua_guest_count_accepted(st->g, 0, MEM, &acc) == UA_OK && acc == v,
               "guest counts %llu accepted, the model %llu validated", (unsigned long long)acc,
               (unsigned long long)v);
}

static void check_result(const ua_snp_result *r, int pvalidate)
{
    FUZZ_CHECK(r->fault <= UA_SNP_FAULT_VC, "fault %u", r->fault);
    if (r->fault == UA_SNP_FAULT_NONE) {
        FUZZ_CHECK(r->eax == UA_SNP_PVALIDATE_SUCCESS || r->eax == UA_SNP_FAIL_INPUT ||
                       r->eax == UA_SNP_FAIL_PERMISSION || r->eax == UA_SNP_FAIL_SIZEMISMATCH,
                   "eax %u", r->eax);
        FUZZ_CHECK(r->cf <= 1 && (!r->cf || (pvalidate && r->eax == 0)), "cf %u eax %u", r->cf,
                   r->eax);
    }
    if (r->fault == UA_SNP_FAULT_VC)
        FUZZ_CHECK(r->error_code == UA_SNP_VC_PAGE_NOT_VALIDATED, "#VC %#x", r->error_code);
}

/* An accept-path op: [start, end) through the path of `kind`. */
static void path_op(struct state *st, struct fuzz_in *in, int accept, const ua_fatal *before)
{
    uint32_t kind = in_u8(in) % (UA_PATH_KIND_COUNT + 1); /* one past: invalid */
    uint32_t vcpu = in_u8(in) % 3;                        /* 2: invalid */
    uint64_t start = addr(in, MEM), end = start + length(in);
    if (in_u8(in) & 1)
        end = start; /* empty */
    uint64_t v0, u0;
    counts(st, 0, MEM, &v0, &u0);
    int rc;
    if (accept) {
        ua_accept_fn fn;
        void *ctx;
        rc = ua_guest_accept_path(st->g, kind, &fn, &ctx);
        FUZZ_STATUS(rc);
        if (kind >= UA_PATH_KIND_COUNT) {
            FUZZ_CHECK(rc == UA_E_INVAL, "path of kind %u: %d", kind, rc);
            return;
        }
        FUZZ_CHECK(rc == UA_OK, "accept path %u: %d", kind, rc);
        rc = fn(ctx, start, end, vcpu);
    } else {
        rc = ua_guest_unaccept(st->g, kind, start, end, vcpu);
    }
    FUZZ_STATUS(rc);
    if (kind >= UA_PATH_KIND_COUNT) {
        FUZZ_CHECK(rc == UA_E_INVAL, "unaccept of kind %u: %d", kind, rc);
        return;
    }
    int valid = vcpu < 2 && !((start | end) & 0xfff) && start <= end && end <= MEM;
    if (!valid) {
        FUZZ_CHECK(rc == UA_E_VCPU || rc == UA_E_ALIGN || rc == UA_E_RANGE,
                   "bad arguments [%#llx, %#llx) vcpu %u: %d", (unsigned long long)start,
                   (unsigned long long)end, vcpu, rc);
        return;
    }
    uint64_t v1, u1;
    counts(st, 0, MEM, &v1, &u1);
    if (before->kind != UA_FATAL_NONE) {
        FUZZ_CHECK(rc == fuzz_fatal_status(before->kind) && v1 == v0 && u1 == u0,
                   "a dead guest (%u) ran an %s: %d, validated %llu -> %llu", before->kind,
                   accept ? "accept" : "unaccept", rc, (unsigned long long)v0,
                   (unsigned long long)v1);
        return;
    }
    FUZZ_CHECK(rc == UA_OK || fuzz_is_fatal_status(rc) || rc == UA_E_NOMEM ||
                   (rc == UA_E_INTERRUPTED && st->cancel),
               "%s [%#llx, %#llx) on path %u returned %d", accept ? "accept" : "unaccept",
               (unsigned long long)start, (unsigned long long)end, kind, rc);
    ua_fatal after;
    FUZZ_CHECK(ua_guest_fatal_get(st->g, &after) == UA_OK, "fatal_get");
    if (rc == UA_E_INTERRUPTED)
        FUZZ_CHECK(after.kind == UA_FATAL_NONE, "interrupted, fatal record %u", after.kind);
    if (fuzz_is_fatal_status(rc))
        FUZZ_CHECK(after.kind != UA_FATAL_NONE && fuzz_fatal_status(after.kind) == rc,
                   "%s returned %d, the fatal record says %u", accept ? "accept" : "unaccept",
                   rc, after.kind);
    if (rc == UA_OK && !st->remapped) {
        uint64_t v, u;
        counts(st, start, end, &v, &u);
        uint64_t pages = (end - start) / KIB4;
        FUZZ_CHECK(accept ? v == pages : v == 0,
                   "%s [%#llx, %#llx) succeeded on path %u but %llu of %llu pages are validated",
                   accept ? "accept" : "unaccept", (unsigned long long)start,
                   (unsigned long long)end, kind, (unsigned long long)v,
                   (unsigned long long)pages);
    }
}

/* One op; the whole-guest counts run after every fourth (they scan the
 * guest) and once more at the end of the input. */
static void op(struct state *st, struct fuzz_in *in, int i)
{
    ua_fatal before, after;
    FUZZ_CHECK(ua_guest_fatal_get(st->g, &before) == UA_OK, "fatal_get");
    int cleared = 0, rc = UA_OK, uses_vcpu = 0;
    uint8_t code = in_u8(in);
    uint32_t vcpu = in_u8(in) % 3; /* vCPU 2 does not exist */
    ua_snp_result r;
    switch (code % 23) {
    case 0: { /* PVALIDATE */
        uses_vcpu = 1;
        uint64_t va = addr(in, MEM + MIB2);
        uint8_t b = in_u8(in);
        uint32_t size = b & 3, validate = (b >> 2) & 1;
        rc = ua_snp_pvalidate(st->s, vcpu, va, size > 1 ? (b >> 3) : size, validate, &r);
        FUZZ_STATUS(rc);
        if (rc)
            break;
        check_result(&r, 1);
        if (r.fault == UA_SNP_FAULT_NONE && r.eax == 0 && !r.cf) {
            uint64_t spa;
            FUZZ_CHECK(ua_snp_npt_lookup(st->s, va, &spa) == UA_OK, "npt_lookup");
            ua_snp_rmp_entry e;
            FUZZ_CHECK(ua_snp_rmp_read(st->s, spa, &e) == UA_OK && e.validated == validate,
                       "PVALIDATE(%u) of %#llx succeeded, the entry says validated=%u",
                       validate, (unsigned long long)va, e.validated);
        }
        break;
    }
    case 1: { /* RMPADJUST */
        uses_vcpu = 1;
        uint64_t va = addr(in, MEM + MIB2);
        uint32_t size = in_u8(in) % 3;
        uint64_t attrs = in_le(in, 3);
        rc = ua_snp_rmpadjust(st->s, vcpu, va, size, attrs, &r);
        FUZZ_STATUS(rc);
        if (!rc)
            check_result(&r, 0);
        break;
    }
    case 2: { /* RMPUPDATE */
        uint64_t spa = addr(in, MEM + SPARE);
        uint8_t b = in_u8(in);
        ua_snp_rmp_state s = {0};
        s.gpa = (b & 0x80) ? addr(in, MEM) : spa;
        s.asid = (b & 0x40) ? in_le(in, 2) % 1100 : st->cfg.asid;
        s.assigned = b & 1;
        s.page_size = (b >> 1) & 1;
        if (b & 0x20)
            s.page_size = 2;
        s.immutable = (b >> 2) & 1;
        if (!s.assigned && !(b & 0x40))
            s.asid = 0;
        uint32_t eax = 99;
        rc = ua_snp_rmpupdate(st->s, spa, &s, &eax);
        FUZZ_STATUS(rc);
        if (rc) {
            FUZZ_CHECK(rc == UA_E_RANGE && spa >= (1ull << 52), "RMPUPDATE %#llx: %d",
                       (unsigned long long)spa, rc);
            break;
        }
        FUZZ_CHECK(eax <= UA_SNP_RMP_FAIL_OVERLAP, "RMPUPDATE eax %u", eax);
        if (eax == UA_SNP_RMP_SUCCESS) {
            ua_snp_rmp_entry e;
            FUZZ_CHECK(ua_snp_rmp_read(st->s, spa, &e) == UA_OK, "rmp_read");
            FUZZ_CHECK(e.assigned == s.assigned && e.page_size == s.page_size &&
                           e.immutable == s.immutable && e.asid == s.asid && e.gpa == s.gpa &&
                           !e.validated && !e.vmsa && e.perm[0] == UA_SNP_PERM_ALL &&
                           !e.perm[1] && !e.perm[2] && !e.perm[3] && e.entry_spa == spa,
                       "RMPUPDATE of %#llx succeeded but the entry differs",
                       (unsigned long long)spa);
        }
        break;
    }
    case 3: { /* PSMASH */
        uint64_t spa = addr(in, MEM + SPARE);
        ua_snp_rmp_entry e0, e;
        int had = spa < MEM + SPARE && ua_snp_rmp_read(st->s, spa, &e0) == UA_OK;
        uint32_t eax = 99;
        rc = ua_snp_psmash(st->s, spa, &eax);
        FUZZ_STATUS(rc);
        if (rc)
            break;
        FUZZ_CHECK(eax == UA_SNP_RMP_SUCCESS || eax == UA_SNP_RMP_FAIL_INPUT ||
                       eax == UA_SNP_RMP_FAIL_INUSE,
                   "PSMASH eax %u", eax);
        if (eax == UA_SNP_RMP_SUCCESS) {
            FUZZ_CHECK(had && e0.page_size == UA_SNP_PAGE_2M, "PSMASH of a 4 KiB entry worked");
            for (unsigned i = 0; i < 512; i += 73) {
                FUZZ_CHECK(ua_snp_rmp_read(st->s, spa + i * KIB4, &e) == UA_OK, "rmp_read");
                FUZZ_CHECK(e.page_size == 0 && e.assigned == e0.assigned &&
                               e.validated == e0.validated && e.asid == e0.asid &&
                               e.gpa == e0.gpa + i * KIB4 && e.entry_spa == spa + i * KIB4,
                           "page %u after PSMASH", i);
            }
        }
        break;
    }
    case 4: { /* PSC over the MSR protocol */
        uses_vcpu = 1;
        uint64_t gfn = addr(in, MEM + MIB2) >> 12;
        uint8_t b = in_u8(in);
        uint64_t req = (b & 0x80) ? in_le(in, 8)
                                  : UA_SNP_GHCB_MSR_PSC_REQ | (gfn << 12) |
                                        ((uint64_t)(b & 0xf) << 52);
        uint64_t resp = 0;
        rc = ua_snp_psc_msr(st->s, vcpu, req, &resp);
        FUZZ_STATUS(rc);
        if ((req & 0xfff) != UA_SNP_GHCB_MSR_PSC_REQ && vcpu < 2)
            FUZZ_CHECK(rc == UA_E_OP, "MSR request %#llx: %d", (unsigned long long)req, rc);
        break;
    }
    case 5: { /* PSC over the GHCB */
        uses_vcpu = 1;
        uint8_t buf[8 + 8 * 16];
        uint8_t b = in_u8(in);
        unsigned nent = b % 17;
        size_t len = (b & 0x80) ? in_u8(in) % sizeof(buf) : 8 + 8 * nent;
        uint64_t hdr = (b & 0x40) ? in_le(in, 8) : (uint64_t)(nent ? nent - 1 : 0) << 16;
        memset(buf, 0, sizeof(buf));
        for (int i = 0; i < 8; i++)
            buf[i] = (uint8_t)(hdr >> (8 * i));
        for (unsigned j = 0; j < nent; j++) {
            uint8_t eb = in_u8(in);
            uint64_t gpa = addr(in, MEM + MIB2);
            uint64_t e = (eb & 0x80) ? in_le(in, 8)
                                     : ((gpa >> 12) << 12) | ((uint64_t)(eb & 7) << 52) |
                                           ((uint64_t)((eb >> 3) & 1) << 56) | ((eb >> 4) & 3);
            for (int i = 0; i < 8; i++)
                buf[8 + 8 * j + i] = (uint8_t)(e >> (8 * i));
        }
        ua_snp_ghcb_result g;
        rc = ua_snp_psc_ghcb(st->s, vcpu, buf, len, &g);
        FUZZ_STATUS(rc);
        if (!rc) {
            size_t cap = len < 8 ? 0 : (len - 8) / 8;
            FUZZ_CHECK(g.entries_done <= cap && g.pages_done <= 512ull * g.entries_done + 512,
                       "PSC: %u entries, %u pages done of %zu", g.entries_done, g.pages_done,
                       cap);
            int chk = ua_snp_psc_guest_check((uint16_t)hdr, (uint16_t)(hdr >> 16), buf,
                                             g.sw_exitinfo2);
            FUZZ_CHECK(chk >= 0 && chk <= 4, "psc_guest_check %d", chk);
        }
        break;
    }
    case 6: { /* a guest access */
        uses_vcpu = 1;
        uint64_t gpa = addr(in, MEM + MIB2);
        uint8_t b = in_u8(in);
        rc = ua_snp_access(st->s, vcpu, gpa, b % 5, (b >> 3) % 3, &r);
        FUZZ_STATUS(rc);
        if (!rc) {
            check_result(&r, 0);
            FUZZ_CHECK(r.fault == UA_SNP_FAULT_NONE || r.fault == UA_SNP_FAULT_NPF ||
                           r.fault == UA_SNP_FAULT_VC,
                       "access fault %u", r.fault);
        }
        break;
    }
    case 7: /* accept */
        path_op(st, in, 1, &before);
        break;
    case 8: /* unaccept */
        path_op(st, in, 0, &before);
        break;
    case 9: { /* touch */
        uint64_t gpa = addr(in, MEM + MIB2);
        uint32_t flags = in_u8(in) % 9;
        uses_vcpu = flags < 8;
        ua_touch_result t;
        rc = ua_guest_touch(st->g, vcpu, gpa, flags, &t);
        FUZZ_STATUS(rc);
        if (!rc) {
            FUZZ_CHECK(t.outcome <= UA_TOUCH_HUNG, "touch outcome %u", t.outcome);
            if (t.outcome >= UA_TOUCH_TERMINATED) {
                FUZZ_CHECK(ua_guest_fatal_get(st->g, &after) == UA_OK &&
                               after.kind != UA_FATAL_NONE,
                           "fatal touch outcome %u without a fatal record", t.outcome);
                if (before.kind == UA_FATAL_NONE)
                    FUZZ_CHECK(after.kind == t.outcome - 2, "touch outcome %u, record %u",
                               t.outcome, after.kind);
            }
        }
        break;
    }
    case 10: { /* an NPF handed to the host */
        uses_vcpu = 1;
        uint64_t gpa = addr(in, MEM + MIB2);
        uint64_t info = in_u8(in);
        info = (info & 0x1f) | ((info & 0x20) ? UA_SNP_NPF_RMP : 0) |
               ((info & 0x40) ? UA_SNP_NPF_SIZEM : 0) | ((info & 0x80) ? UA_SNP_NPF_ENC : 0);
        uint32_t action = 99;
        rc = ua_snp_serve_npf(st->s, vcpu, gpa, info, &action);
        FUZZ_STATUS(rc);
        if (!rc)
            FUZZ_CHECK(action <= UA_HOST_DID_RMPUPDATE, "action %u", action);
        break;
    }
    case 11: { /* KVM_SET_MEMORY_ATTRIBUTES */
        uint64_t gpa = addr(in, MEM), size = length(in);
        rc = ua_snp_set_memory_attributes(st->s, gpa, size, in_u8(in) % 3);
        FUZZ_STATUS(rc);
        break;
    }
    case 12: { /* SNP_LAUNCH_UPDATE / FINISH */
        uint8_t b = in_u8(in);
        if (b & 1) {
            rc = ua_snp_launch_finish(st->s);
        } else {
            uint64_t gpa = addr(in, MEM), size = length(in);
            rc = ua_snp_launch_update(st->s, gpa, size);
        }
        FUZZ_STATUS(rc);
        break;
    }
    case 13: { /* NPT remap (host configuration) */
        uint64_t gpa = addr(in, MEM), spa = addr(in, MEM + SPARE);
        rc = ua_snp_npt_map(st->s, gpa, spa);
        FUZZ_STATUS(rc);
        if (!rc && gpa != spa)
            st->remapped = 1;
        break;
    }
    case 14: { /* in-use marks */
        uint64_t spa = addr(in, MEM + SPARE);
        rc = ua_snp_set_in_use(st->s, spa, in_u8(in) & 1);
        FUZZ_STATUS(rc);
        break;
    }
    case 15:
        ua_guest_fatal_clear(st->g);
        cleared = 1;
        break;
    case 16: { /* termination request */
        uint32_t set = in_u8(in), reason = in_u8(in);
        uint64_t msr = ua_snp_terminate(st->s, vcpu, set, reason);
        FUZZ_CHECK((msr & 0xfff) == UA_SNP_GHCB_MSR_TERM_REQ, "termination MSR %#llx",
                   (unsigned long long)msr);
        FUZZ_CHECK(ua_guest_fatal_get(st->g, &after) == UA_OK && after.kind != UA_FATAL_NONE,
                   "termination left no record");
        break;
    }
    case 17: { /* host write, RMP read */
        uint64_t spa = addr(in, MEM + SPARE + MIB2);
        rc = ua_snp_host_write(st->s, spa, &r);
        FUZZ_STATUS(rc);
        ua_snp_rmp_entry e;
        int rc2 = ua_snp_rmp_read(st->s, spa, &e);
        FUZZ_STATUS(rc2);
        if (!rc && !rc2)
            FUZZ_CHECK((r.fault == UA_SNP_FAULT_PF) == (e.assigned != 0),
                       "host write to %#llx: fault %u, assigned %u", (unsigned long long)spa,
                       r.fault, e.assigned);
        break;
    }
    case 18:
        rc = ua_snp_set_coherency_sfw_no(st->s, in_u8(in) & 1);
        FUZZ_STATUS(rc);
        break;
    case 19: { /* new options for a path (kept cheap: small hang limits) */
        ua_path_options o = {0};
        uint8_t b = in_u8(in);
        o.kind = b % (UA_PATH_KIND_COUNT + 1);
        o.hang_limit = 1 + in_u8(in) % 8;
        if (b & 0x10)
            o.psc_max_entries = in_u8(in) + (b & 0x20 ? 0 : 200);
        if (b & 0x40)
            o.ovmf_buffer_bytes = (uint32_t)in_le(in, 2);
        rc = ua_guest_set_path_options(st->g, &o);
        FUZZ_STATUS(rc);
        break;
    }
    case 20: { /* statistics */
        ua_path_stats ps;
        rc = ua_guest_path_stats_get(st->g, in_u8(in) % 4, &ps);
        FUZZ_STATUS(rc);
        if (!rc)
            FUZZ_CHECK(ps.failures <= ps.calls, "%llu failures in %llu calls",
                       (unsigned long long)ps.failures, (unsigned long long)ps.calls);
        break;
    }
    case 21: /* the caller's cancel flag */
        st->cancel = in_u8(in) & 1;
        break;
    default: { /* counts over a range */
        uint64_t a = addr(in, MEM), b = addr(in, MEM), v, u;
        rc = ua_snp_count_gpa(st->s, a, b, &v, &u);
        FUZZ_STATUS(rc);
        if (!rc)
            FUZZ_CHECK(v + u <= (b - a) / KIB4, "count [%#llx, %#llx): %llu + %llu",
                       (unsigned long long)a, (unsigned long long)b, (unsigned long long)v,
                       (unsigned long long)u);
        break;
    }
    }
    if (uses_vcpu && vcpu == 2)
        FUZZ_CHECK(rc == UA_E_VCPU, "op %u on vCPU 2: %d", code % 23, rc);
    FUZZ_CHECK(ua_guest_fatal_get(st->g, &after) == UA_OK, "fatal_get");
    if (!cleared && before.kind != UA_FATAL_NONE)
        FUZZ_CHECK(memcmp(&before, &after, sizeof(before)) == 0,
                   "op %u changed the fatal record of a dead guest (kind %u -> %u)", code % 23,
                   before.kind, after.kind);
    if (cleared)
        FUZZ_CHECK(after.kind == UA_FATAL_NONE, "fatal_clear left kind %u", after.kind);
    if (i % 4 == 3)
        global_invariants(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t c0 = in_u8(&in), c1 = in_u8(&in), c2 = in_u8(&in), c3 = in_u8(&in);
    struct state st;
    memset(&st, 0, sizeof(st));
    ua_snp_config_default(&st.cfg);
    st.cfg.spare_bytes = SPARE;
    st.cfg.asid = 1 + c2 % 8;
    st.cfg.vmpl = (c0 & 0x40) ? (c0 >> 2) & 3 : 0;
    st.cfg.coherency_sfw_no = (c0 >> 4) & 1;

    ua_host *host = NULL;
    if (c1) {
        ua_host_config hc;
        ua_host_config_default(&hc);
        hc.behavior = (c1 & 0x80) ? c1 % UA_HOST_BEHAVIOR_COUNT : UA_HOST_KVM;
        hc.lazy_rmpupdate = c1 & 1;
        hc.npf_psmash = !(c1 & 2);
        hc.psc_max_entries = (c3 >> 4) % 4;
        hc.psc_max_pages = (c3 & 0xf) * 97;
        hc.ghcb_error = 1 + c3 % 6;
        hc.count = c3 % 5;
        if (ua_host_create(&hc, NULL, NULL, &host) != UA_OK)
            host = NULL;
    }
    ua_cost_profile prof;
    FUZZ_CHECK(ua_cost_profile_find("count", &prof) == UA_OK, "cost profile");
    ua_guest_config gc = {.vendor = UA_VENDOR_SNP, .vcpus = 2, .memory_bytes = MEM,
                          .backing = c0 & 1, .cost_profile = &prof, .host = host,
                          .vendor_config = &st.cfg};
    int rc = ua_guest_create(&gc, &st.g);
    FUZZ_CHECK(rc == UA_OK, "guest_create %d", rc);
    st.s = ua_guest_snp(st.g);
    FUZZ_CHECK(st.s != NULL && ua_guest_tdx(st.g) == NULL, "vendor handles");
    /* keep the paths cheap: a host that never answers is given up on soon */
    FUZZ_CHECK(ua_guest_set_cancel(st.g, &st.cancel) == UA_OK, "set_cancel");
    for (uint32_t k = 0; k < UA_PATH_KIND_COUNT; k++) {
        ua_path_options o = {.kind = k, .hang_limit = 1 + c2 / 32};
        FUZZ_CHECK(ua_guest_set_path_options(st.g, &o) == UA_OK, "path options");
    }
    for (int i = 0; i < MAX_OPS && in.n; i++)
        op(&st, &in, i);
    global_invariants(&st);
    final_invariants(&st);
    ua_guest_destroy(st.g);
    ua_host_destroy(host);
    return 0;
}
