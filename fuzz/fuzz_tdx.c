/* fuzz_tdx.c - the TDX model driven by a byte program: a guest of 16 MiB
 * (or less 1 to 382 4 KiB pages, so the last 2 MiB region is partial;
 * ua_guest, vendor TDX, 2 vCPUs, cost counting on) served by KVM or a named
 * host behaviour, and a sequence of calls decoded from the input:
 * TDG.MEM.PAGE.ACCEPT, the host SEAMCALLs (ADD, AUG, BLOCK, TRACK, REMOVE,
 * UNBLOCK, DEMOTE, PROMOTE, MR.FINALIZE, ADD of a range), the contention
 * knobs, guest accesses, VEINFO.GET, VM.RD/WR, TDG.VP.VMCALL (MapGPA),
 * interrupts, exits handed to the host, the accept and unaccept paths,
 * Linux's MapGPA loop, disable_sept_ve and touches, path options, the
 * caller's cancel flag (ua_guest_set_cancel), fatal clears.
 *
 * Input: 4 configuration bytes (GPAW, backing, initial state, 1 GiB accept,
 * attributes and CONFIG_FLAGS, host-priority limit, finalized, guest size,
 * host behaviour, path hang limit), then one op per byte with operands.
 *
 * Invariants, checked after every op (the whole-guest counts after every
 * fourth op and at the end of the input):
 *   - every status is documented; TDX status words are ones the TDX ABI
 *     defines (class in 63:32), and an exit or an interrupt leaves RAX as it
 *     was; access, touch, VE-info and host answers stay in their ranges;
 *   - the SEPT counts add up to the guest's pages, accepted (MAPPED) pages
 *     never exceed them, and ua_guest_count_accepted agrees;
 *   - a fatal record, once written, stays exactly as it is until
 *     ua_guest_fatal_clear; a dead guest's accept and unaccept return its
 *     fatal status and change nothing; a fatal status or outcome leaves a
 *     record behind; an accept interrupted by the cancel flag leaves the
 *     guest alive;
 *   - an accept that returns UA_OK leaves every page of its range MAPPED; an
 *     unaccept that returns UA_OK leaves none (while no entry was locked).
 */
#include "fuzz_common.h"

#define MIB2 (2ull << 20)
#define KIB4 4096ull
#define MAX_OPS 64

struct state {
    volatile int cancel;  /* the guest's cancel flag (ua_guest_set_cancel) */
    ua_guest *g;
    ua_tdx *t;
    uint64_t mem;
    uint64_t shared_bit;
    int locks;            /* an entry was locked: unaccept may leave it mapped */
};

static uint64_t addr(struct fuzz_in *in, uint64_t limit)
{
    uint8_t m = in_u8(in);
    switch (m & 3) {
    case 0: return in_le(in, 2) % (limit / KIB4 + 2) * KIB4;
    case 1: return in_le(in, 1) % (limit / MIB2 + 2) * MIB2;
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

/* page_info / RCX: a GPA with a level, now and then with reserved bits or
 * the shared bit. */
static uint64_t page_info(struct fuzz_in *in, const struct state *st)
{
    uint8_t b = in_u8(in);
    uint64_t level = b % 4; /* 3: invalid */
    uint64_t gpa = addr(in, st->mem + MIB2);
    if (!(b & 0x80))
        gpa &= ~((KIB4 << (9 * (level < 3 ? level : 0))) - 1); /* aligned to its level */
    uint64_t pi = (gpa & ~0xfffull) | level;
    if (b & 0x40)
        pi |= (uint64_t)(b & 0x38) << 3; /* reserved bits 11:3 */
    if (b & 0x04 && b & 0x08)
        pi |= st->shared_bit;
    return pi;
}

/* The TDX status classes the ABI defines (ua_tdx.h), operand id stripped. */
static int tdx_status_known(uint64_t st)
{
    static const uint64_t known[] = {
        UA_TDX_SUCCESS, UA_TDX_OPERAND_INVALID, UA_TDX_OPERAND_BUSY,
        UA_TDX_OPERAND_BUSY_HOST_PRIORITY, UA_TDX_HOST_PRIORITY_BUSY_TIMEOUT,
        UA_TDX_INTERRUPTED_RESUMABLE, UA_TDX_OP_STATE_INCORRECT, UA_TDX_NO_VALID_VE_INFO,
        UA_TDX_EPT_WALK_FAILED, UA_TDX_EPT_ENTRY_FREE, UA_TDX_EPT_ENTRY_NOT_FREE,
        UA_TDX_EPT_ENTRY_NOT_LEAF, UA_TDX_GPA_RANGE_NOT_BLOCKED,
        UA_TDX_GPA_RANGE_ALREADY_BLOCKED, UA_TDX_TLB_TRACKING_NOT_DONE,
        UA_TDX_EPT_INVALID_PROMOTE_CONDITIONS, UA_TDX_PAGE_ALREADY_ACCEPTED,
        UA_TDX_PAGE_SIZE_MISMATCH, UA_TDX_GPA_RANGE_BLOCKED, UA_TDX_EPT_ENTRY_STATE_INCORRECT,
        UA_TDX_METADATA_FIELD_ID_INCORRECT, UA_TDX_METADATA_FIELD_NOT_WRITABLE,
        UA_TDX_METADATA_FIELD_VALUE_NOT_VALID};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if ((st & UA_TDX_STATUS_CLASS_MASK) == known[i])
            return (st & ~UA_TDX_STATUS_CLASS_MASK) <= 0xffff;
    return 0;
}

static int public_state(uint32_t s)
{
    switch (s) {
    case UA_TDX_SEPT_FREE: case UA_TDX_SEPT_BLOCKED: case UA_TDX_SEPT_PENDING:
    case UA_TDX_SEPT_PENDING_BLOCKED: case UA_TDX_SEPT_MAPPED: case UA_TDX_SEPT_REMOVED:
    case UA_TDX_SEPT_NL_BLOCKED: case UA_TDX_SEPT_NL_MAPPED:
        return 1;
    default:
        return 0;
    }
}

static uint64_t mapped(const struct state *st, uint64_t start, uint64_t end)
{
    uint64_t c[6];
    FUZZ_CHECK(ua_tdx_count_states(st->t, start, end, c) == UA_OK, "count_states");
    return c[UA_TDX_SEPT_MAPPED];
}

static void global_invariants(const struct state *st)
{
    uint64_t c[6], total = 0;
    FUZZ_CHECK(ua_tdx_count_states(st->t, 0, st->mem, c) == UA_OK, "count_states");
    for (int i = 0; i < 6; i++)
        total += c[i];
    FUZZ_CHECK(total == st->mem / KIB4, "SEPT counts add up to %llu of %llu pages",
               (unsigned long long)total, (unsigned long long)(st->mem / KIB4));
}

/* Once per input: these walk every page. */
static void final_invariants(const struct state *st)
{
    uint64_t acc = ~0ull, m = mapped(st, 0, st->mem);
    FUZZ_CHECK(ua_guest_count_accepted(st->g, 0, st->mem, &acc) == UA_OK && acc == m,
               "guest counts %llu accepted, the SEPT %llu mapped", (unsigned long long)acc,
               (unsigned long long)m);
    uint64_t nz = ~0ull;
    FUZZ_CHECK(ua_tdx_count_nonzero(st->t, 0, st->mem, &nz) == UA_OK &&
                   nz <= mapped(st, 0, st->mem),
               "%llu non-zero pages, more than are mapped", (unsigned long long)nz);
}

static void check_host(int rc, const ua_tdx_host_result *hr)
{
    FUZZ_STATUS(rc);
    if (!rc) {
        FUZZ_CHECK(tdx_status_known(hr->status), "SEAMCALL status %#llx",
                   (unsigned long long)hr->status);
        if (hr->status != UA_TDX_SUCCESS && hr->state)
            FUZZ_CHECK(public_state(hr->state) && hr->level <= UA_TDX_LEVEL_1G,
                       "SEAMCALL error detail: level %u state %u", hr->level, hr->state);
    }
}

static void path_op(struct state *st, struct fuzz_in *in, int accept, const ua_fatal *before)
{
    uint32_t kind = in_u8(in) % (UA_PATH_KIND_COUNT + 1);
    uint32_t vcpu = in_u8(in) % 3;
    uint64_t start = addr(in, st->mem), end = start + length(in);
    if (in_u8(in) & 1)
        end = start;
    uint64_t m0 = mapped(st, 0, st->mem);
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
        rc = fn(ctx, start, end, vcpu);
    } else {
        rc = ua_guest_unaccept(st->g, kind, start, end, vcpu);
    }
    FUZZ_STATUS(rc);
    if (kind >= UA_PATH_KIND_COUNT) {
        FUZZ_CHECK(rc == UA_E_INVAL, "unaccept of kind %u: %d", kind, rc);
        return;
    }
    int valid = vcpu < 2 && !((start | end) & 0xfff) && start <= end && end <= st->mem;
    if (!valid) {
        FUZZ_CHECK(rc == UA_E_VCPU || rc == UA_E_ALIGN || rc == UA_E_RANGE,
                   "bad arguments [%#llx, %#llx) vcpu %u: %d", (unsigned long long)start,
                   (unsigned long long)end, vcpu, rc);
        return;
    }
    if (before->kind != UA_FATAL_NONE) {
        FUZZ_CHECK(rc == fuzz_fatal_status(before->kind) && mapped(st, 0, st->mem) == m0,
                   "a dead guest (%u) ran an %s: %d", before->kind,
                   accept ? "accept" : "unaccept", rc);
        return;
    }
    ua_fatal after;
    FUZZ_CHECK(ua_guest_fatal_get(st->g, &after) == UA_OK, "fatal_get");
    if (fuzz_is_fatal_status(rc))
        FUZZ_CHECK(after.kind != UA_FATAL_NONE && fuzz_fatal_status(after.kind) == rc,
                   "%s returned %d, the fatal record says %u", accept ? "accept" : "unaccept",
                   rc, after.kind);
    /* OVMF reports failure to its caller; an unaccept the host refuses leaks;
     * before TDH.MR.FINALIZE the guest cannot run */
    if (rc == UA_E_INTERRUPTED)
        FUZZ_CHECK(st->cancel && after.kind == UA_FATAL_NONE,
                   "interrupted (flag %d), fatal record %u", st->cancel, after.kind);
    FUZZ_CHECK(rc == UA_OK || fuzz_is_fatal_status(rc) || rc == UA_E_NOMEM ||
                   (rc == UA_E_INTERRUPTED && st->cancel) ||
                   (rc == UA_E_STATE && !ua_tdx_is_finalized(st->t)) ||
                   (accept && kind >= UA_PATH_OVMF && rc == UA_E_ACCEPT_FAILED) ||
                   (!accept && rc == UA_E_HOST),
               "%s [%#llx, %#llx) on path %u returned %d", accept ? "accept" : "unaccept",
               (unsigned long long)start, (unsigned long long)end, kind, rc);
    if (rc == UA_OK && (accept || !st->locks)) {
        uint64_t m = mapped(st, start, end), pages = (end - start) / KIB4;
        FUZZ_CHECK(accept ? m == pages : m == 0,
                   "%s [%#llx, %#llx) succeeded on path %u but %llu of %llu pages are mapped",
                   accept ? "accept" : "unaccept", (unsigned long long)start,
                   (unsigned long long)end, kind, (unsigned long long)m,
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
    uint32_t vcpu = in_u8(in) % 3;
    ua_tdx_host_result hr;
    switch (code % 27) {
    case 0: { /* TDG.MEM.PAGE.ACCEPT */
        uses_vcpu = 1;
        uint8_t b = in_u8(in);
        uint64_t rax = UA_TDX_TDCALL_MEM_PAGE_ACCEPT;
        if (b & 1)
            rax |= (uint64_t)in_u8(in) << 16;
        if (b & 2)
            rax = in_le(in, 2);
        uint64_t rcx = page_info(in, st);
        ua_tdx_tdcall_result r;
        rc = ua_tdx_tdcall_accept(st->t, vcpu, rax, rcx, &r);
        FUZZ_STATUS(rc);
        if ((rax & 0xffff) != UA_TDX_TDCALL_MEM_PAGE_ACCEPT && vcpu < 2)
            FUZZ_CHECK(rc == UA_E_INVAL, "ACCEPT with leaf %#llx: %d",
                       (unsigned long long)(rax & 0xffff), rc);
        if (!rc) {
            FUZZ_CHECK(!(r.exited && r.interrupted), "exited and interrupted");
            if (r.exited || r.interrupted)
                FUZZ_CHECK(r.rax == rax, "an exit changed RAX to %#llx",
                           (unsigned long long)r.rax);
            else
                FUZZ_CHECK(tdx_status_known(r.rax), "ACCEPT status %#llx",
                           (unsigned long long)r.rax);
            FUZZ_CHECK(r.chunks_zeroed <= 512 && r.accept_counter <= 512,
                       "zeroed %u, counter %u", r.chunks_zeroed, r.accept_counter);
        }
        break;
    }
    case 1: { /* ADD / AUG */
        uses_vcpu = 1;
        uint8_t b = in_u8(in);
        uint64_t pi = page_info(in, st);
        rc = (b & 1) ? ua_tdx_host_add(st->t, vcpu, pi, (b >> 1) & 1, &hr)
                     : ua_tdx_host_aug(st->t, vcpu, pi, &hr);
        check_host(rc, &hr);
        break;
    }
    case 2: /* BLOCK */
        uses_vcpu = 1;
        rc = ua_tdx_host_block(st->t, vcpu, page_info(in, st), &hr);
        check_host(rc, &hr);
        break;
    case 3: /* TRACK */
        uses_vcpu = 1;
        rc = ua_tdx_host_track(st->t, vcpu, &hr);
        check_host(rc, &hr);
        break;
    case 4: /* REMOVE */
        uses_vcpu = 1;
        rc = ua_tdx_host_remove(st->t, vcpu, page_info(in, st), &hr);
        check_host(rc, &hr);
        break;
    case 5: /* UNBLOCK */
        uses_vcpu = 1;
        rc = ua_tdx_host_unblock(st->t, vcpu, page_info(in, st), &hr);
        check_host(rc, &hr);
        break;
    case 6: /* DEMOTE / PROMOTE */
        uses_vcpu = 1;
        rc = (in_u8(in) & 1) ? ua_tdx_host_demote(st->t, vcpu, page_info(in, st), &hr)
                             : ua_tdx_host_promote(st->t, vcpu, page_info(in, st), &hr);
        check_host(rc, &hr);
        break;
    case 7: { /* MR.FINALIZE / ADD of a range */
        uses_vcpu = 1;
        if (in_u8(in) & 1) {
            rc = ua_tdx_host_finalize(st->t, vcpu, &hr);
        } else {
            uint64_t a = addr(in, st->mem), done = 0;
            uint64_t e = a + length(in) % (64 * KIB4);
            rc = ua_tdx_host_add_range(st->t, vcpu, a, e, 1, &hr, &done);
            if (!rc && a <= e)
                FUZZ_CHECK(done <= (e - a) / KIB4, "added %llu pages", (unsigned long long)done);
        }
        check_host(rc, &hr);
        break;
    }
    case 8: { /* contention knobs */
        uint8_t b = in_u8(in);
        uint64_t pi = page_info(in, st);
        rc = (b & 1) ? ua_tdx_host_set_lock(st->t, pi, (b >> 1) & 1)
                     : ua_tdx_host_set_priority(st->t, pi, (b >> 1) & 1);
        FUZZ_STATUS(rc);
        if ((b & 3) == 3 && !rc)
            st->locks = 1;
        break;
    }
    case 9: { /* a guest access */
        uses_vcpu = 1;
        uint64_t gpa = addr(in, st->mem + MIB2);
        uint8_t b = in_u8(in);
        if (b & 2)
            gpa |= st->shared_bit;
        ua_tdx_access_result a;
        rc = ua_tdx_guest_access(st->t, vcpu, gpa, b & 1, &a);
        FUZZ_STATUS(rc);
        if (!rc)
            FUZZ_CHECK(a.outcome <= UA_TDX_ACCESS_EXIT && (!a.state || public_state(a.state)),
                       "access outcome %u state %u", a.outcome, a.state);
        break;
    }
    case 10: { /* TDG.VP.VEINFO.GET */
        uses_vcpu = 1;
        ua_tdx_veinfo v;
        rc = ua_tdx_tdcall_veinfo_get(st->t, vcpu, &v);
        FUZZ_STATUS(rc);
        if (!rc)
            FUZZ_CHECK(v.status == UA_TDX_SUCCESS || v.status == UA_TDX_NO_VALID_VE_INFO,
                       "VEINFO status %#llx", (unsigned long long)v.status);
        break;
    }
    case 11: { /* TDG.VM.RD / WR */
        uses_vcpu = 1;
        uint8_t b = in_u8(in);
        uint64_t field = (b & 1) ? UA_TDX_TDCS_TD_CTLS
                                 : (b & 2) ? UA_TDX_TDCS_CONFIG_FLAGS : in_le(in, 8);
        uint64_t status = 0, value = 0;
        if (b & 4)
            rc = ua_tdx_tdcall_vm_wr(st->t, vcpu, field, in_u8(in), in_u8(in), &status, &value);
        else
            rc = ua_tdx_tdcall_vm_rd(st->t, vcpu, field, &status, &value);
        FUZZ_STATUS(rc);
        if (!rc)
            FUZZ_CHECK(tdx_status_known(status), "VM.RD/WR status %#llx",
                       (unsigned long long)status);
        break;
    }
    case 12: { /* TDG.VP.VMCALL */
        uses_vcpu = 1;
        uint8_t b = in_u8(in);
        uint64_t gpa = addr(in, st->mem + MIB2), size = length(in);
        if (b & 1)
            gpa |= st->shared_bit;
        uint64_t r10 = (b & 2) ? in_u8(in) : 0;
        uint64_t r11 = (b & 4) ? in_le(in, 4) : UA_TDX_VMCALL_MAP_GPA;
        ua_tdx_vmcall_result r;
        rc = ua_tdx_tdvmcall(st->t, vcpu, r10, r11, gpa, size, &r);
        FUZZ_STATUS(rc);
        if (!rc)
            FUZZ_CHECK(r.rax == UA_TDX_SUCCESS &&
                           (r.r10 == UA_TDX_VMCALL_SUCCESS || r.r10 == UA_TDX_VMCALL_RETRY ||
                            r.r10 == UA_TDX_VMCALL_INVALID_OPERAND ||
                            r.r10 == UA_TDX_VMCALL_ALIGN_ERROR ||
                            r.r10 == UA_TDX_VMCALL_SUBFUNC_UNSUPPORTED),
                       "VMCALL rax %#llx r10 %#llx", (unsigned long long)r.rax,
                       (unsigned long long)r.r10);
        break;
    }
    case 13: /* interrupts */
        uses_vcpu = 1;
        rc = ua_tdx_set_interrupts(st->t, vcpu, in_u8(in) % 8, in_u8(in) % 4);
        FUZZ_STATUS(rc);
        break;
    case 14: { /* an exit handed to the host */
        uses_vcpu = 1;
        uint64_t gpa = addr(in, st->mem + MIB2);
        uint8_t b = in_u8(in);
        uint64_t eeq = (b & 0x0f) | ((uint64_t)in_le(in, 2) << 32);
        uint64_t status = (b & 0x10) ? UA_TDX_HOST_PRIORITY_BUSY_TIMEOUT : 0;
        if (b & 0x20)
            gpa |= st->shared_bit;
        uint32_t action = 99;
        rc = ua_tdx_serve_exit(st->t, vcpu, gpa, eeq, status, &action);
        FUZZ_STATUS(rc);
        if (!rc)
            FUZZ_CHECK(action <= UA_HOST_DID_RMPUPDATE, "action %u", action);
        break;
    }
    case 15:
        path_op(st, in, 1, &before);
        break;
    case 16:
        path_op(st, in, 0, &before);
        break;
    case 17: { /* Linux's MapGPA loop */
        uses_vcpu = 1;
        uint64_t a = addr(in, st->mem), e = a + length(in), r10 = 0;
        rc = ua_tdx_linux_map_gpa(st->t, vcpu, a, e, in_u8(in) & 1, &r10);
        FUZZ_STATUS(rc);
        break;
    }
    case 18: { /* disable_sept_ve */
        uses_vcpu = 1;
        const char *msg = NULL;
        rc = ua_tdx_linux_disable_sept_ve(st->t, vcpu, &msg);
        FUZZ_STATUS(rc);
        FUZZ_CHECK(msg != NULL, "no message");
        break;
    }
    case 19: { /* touch */
        uint64_t gpa = addr(in, st->mem + MIB2);
        uint32_t flags = in_u8(in) % 9;
        uses_vcpu = flags < 8;
        ua_touch_result t;
        rc = ua_guest_touch(st->g, vcpu, gpa, flags, &t);
        FUZZ_STATUS(rc);
        if (!rc) {
            FUZZ_CHECK(t.outcome <= UA_TOUCH_HUNG && t.outcome != UA_TOUCH_GUEST_FAULT,
                       "touch outcome %u", t.outcome);
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
    case 20:
        ua_guest_fatal_clear(st->g);
        cleared = 1;
        break;
    case 21:
        ua_tdx_set_importing(st->t, in_u8(in) & 1);
        break;
    case 22: { /* the entry at a level */
        ua_tdx_entry_info e;
        uint64_t gpa = addr(in, st->mem + MIB2);
        rc = ua_tdx_entry(st->t, gpa, (int)(in_u8(in) % 5) - 1, &e);
        FUZZ_STATUS(rc);
        if (!rc)
            FUZZ_CHECK(public_state(e.state) && e.level <= UA_TDX_LEVEL_1G &&
                           e.accept_counter <= 512,
                       "entry state %u level %u counter %u", e.state, e.level,
                       e.accept_counter);
        break;
    }
    case 23: { /* new options for a path */
        ua_path_options o = {0};
        uint8_t b = in_u8(in);
        o.kind = b % (UA_PATH_KIND_COUNT + 1);
        o.hang_limit = 1 + in_u8(in) % 8;
        if (b & 0x10)
            o.psc_max_entries = 1; /* an SNP field: refused on TDX */
        rc = ua_guest_set_path_options(st->g, &o);
        FUZZ_STATUS(rc);
        break;
    }
    case 24: { /* statistics */
        ua_path_stats ps;
        rc = ua_guest_path_stats_get(st->g, in_u8(in) % 4, &ps);
        FUZZ_STATUS(rc);
        if (!rc)
            FUZZ_CHECK(ps.failures <= ps.calls && ps.success_4k + ps.success_2m <= ps.executions,
                       "stats: %llu failures in %llu calls", (unsigned long long)ps.failures,
                       (unsigned long long)ps.calls);
        break;
    }
    case 25: /* the caller's cancel flag */
        st->cancel = in_u8(in) & 1;
        break;
    default: { /* counts over a range */
        uint64_t a = addr(in, st->mem), b = addr(in, st->mem), c[6];
        rc = ua_tdx_count_states(st->t, a, b, c);
        FUZZ_STATUS(rc);
        if (!rc) {
            uint64_t total = 0;
            for (int i = 0; i < 6; i++)
                total += c[i];
            FUZZ_CHECK(total == (b - a) / KIB4, "counts over [%#llx, %#llx)",
                       (unsigned long long)a, (unsigned long long)b);
        }
        break;
    }
    }
    if (uses_vcpu && vcpu == 2)
        FUZZ_CHECK(rc == UA_E_VCPU, "op %u on vCPU 2: %d", code % 27, rc);
    FUZZ_CHECK(ua_guest_fatal_get(st->g, &after) == UA_OK, "fatal_get");
    if (!cleared && before.kind != UA_FATAL_NONE)
        FUZZ_CHECK(memcmp(&before, &after, sizeof(before)) == 0,
                   "op %u changed the fatal record of a dead guest (kind %u -> %u)", code % 27,
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
    ua_tdx_config cfg;
    ua_tdx_config_default(&cfg);
    cfg.gpaw = (c0 & 1) ? 48 : 52;
    cfg.initial = (c0 >> 2) & 1;
    cfg.accept_1g = (c0 >> 3) & 1;
    cfg.attributes = ((c0 & 0x10) ? 0 : UA_TDX_ATTR_SEPT_VE_DISABLE) |
                     ((c0 & 0x20) ? UA_TDX_ATTR_DEBUG : 0);
    cfg.config_flags = (c0 & 0x40) ? UA_TDX_CONFIG_FLEXIBLE_PENDING_VE : 0;
    cfg.finalized = !(c0 & 0x80);
    cfg.hp_busy_limit = c2 % 4;
    st.mem = (16ull << 20) - (uint64_t)(c3 & 0x80 ? (c3 & 0x7f) * 3 + 1 : 0) * KIB4;
    st.shared_bit = 1ull << (cfg.gpaw - 1);

    ua_host *host = NULL;
    if (c1) {
        ua_host_config hc;
        ua_host_config_default(&hc);
        hc.behavior = (c1 & 0x80) ? c1 % UA_HOST_BEHAVIOR_COUNT : UA_HOST_KVM;
        hc.count = c1 % 5;
        hc.psc_max_entries = 1;
        hc.ghcb_error = 1;
        if (ua_host_create(&hc, NULL, NULL, &host) != UA_OK)
            host = NULL;
    }
    ua_cost_profile prof;
    FUZZ_CHECK(ua_cost_profile_find("count", &prof) == UA_OK, "cost profile");
    ua_guest_config gc = {.vendor = UA_VENDOR_TDX, .vcpus = 2, .memory_bytes = st.mem,
                          .backing = (c0 >> 1) & 1, .cost_profile = &prof, .host = host,
                          .vendor_config = &cfg};
    int rc = ua_guest_create(&gc, &st.g);
    FUZZ_CHECK(rc == UA_OK, "guest_create %d", rc);
    st.t = ua_guest_tdx(st.g);
    FUZZ_CHECK(st.t != NULL && ua_guest_snp(st.g) == NULL, "vendor handles");
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
