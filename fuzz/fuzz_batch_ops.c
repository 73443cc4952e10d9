/* fuzz_batch_ops.c - the batch runner ua_run_ops (accept_memory and
 * range_contains_unaccepted_memory) on a small table with a recorder
 * primitive.
 *
 * Input:
 *   byte 0      unit size 2^(12 + b % 20)
 *   byte 1      bitmap bytes 1 + b % 64 (at most 512 units)
 *   bytes 2-5   phys_base in 4 KiB pages
 *   byte 6      primitive: 0x07 = k: call k (1-based) fails, 0 never;
 *               0x08 the failure status is out of range (-> UA_E_ACCEPT_FAILED);
 *               0x10 the primitive re-enters the table (accept, mark, set_accept,
 *               bitmap_write must all answer UA_E_STATE);
 *               0x20 call k does not fail but sets the table's cancel flag
 *               (ua_table_set_cancel): the batch stops with UA_E_INTERRUPTED
 *               and is resumed at its cursor once the flag is cleared
 *   bitmap      the initial bitmap
 *   ops         10 bytes each: kind, vcpu, start (s16 units + u16 pages or
 *               bytes from phys_base), size (u16 units + u16 pages or bytes);
 *               kind & 0x80 moves the start next to 2^64.
 *
 * The batch runs in one ua_run_ops call; an op that fails stops it, and the
 * harness resumes after that op (after an interruption: at it), as a caller
 * would.  Invariants:
 *   - statuses are documented; a failed op's status is in its result and the
 *     cursor stops at it; the ops before it succeeded; an interruption comes
 *     only from the cancel flag, before the op's next run or the next op,
 *     and keeps what was done;
 *   - the primitive sees, op by op, exactly the runs of unaccepted units that
 *     Linux's accept_memory() unit range holds in a model bitmap, unit
 *     aligned, with the op's vCPU; each unit is still unaccepted when its
 *     range is handed over; result runs/units count the successful calls;
 *   - the recorder never holds the same unit twice and holds exactly the
 *     ranges that succeeded, in order;
 *   - contains answers what Linux's loop answers on the model at that point,
 *     and ua_contains_unaccepted gives the same answer;
 *   - afterwards the table equals the model, and every range a successful
 *     accept op covered reads accepted (contains = 0).
 */
#include "fuzz_common.h"

#define MAX_OPS 64
#define MAX_CALLS 4096

struct call {
    uint64_t start, end;
    uint32_t vcpu;
    int failed;
};

struct prim {
    ua_table *t;
    struct fuzz_geom g;
    unsigned fail_at;       /* 1-based call that fails (or cancels), 0 = never */
    int fail_status;
    int reenter;
    int cancel_mode;        /* call fail_at sets *cancel instead of failing */
    volatile int cancel;
    unsigned ncalls;
    struct call calls[MAX_CALLS];
    uint8_t *accepted;      /* per unit: accepted by a successful call */
};

static int checking_accept(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu)
{
    struct prim *p = ctx;
    const struct fuzz_geom *g = &p->g;
    FUZZ_CHECK(start < end && start >= g->phys_base && (start - g->phys_base) % g->unit == 0 &&
                   (end - g->phys_base) % g->unit == 0 &&
                   (end - g->phys_base) / g->unit <= g->nbits,
               "primitive got [%#llx, %#llx)", (unsigned long long)start,
               (unsigned long long)end);
    uint64_t f = (start - g->phys_base) / g->unit, l = (end - g->phys_base) / g->unit;
    const uint64_t *w = ua_table_words(p->t);
    for (uint64_t u = f; u < l; u++) {
        FUZZ_CHECK((__atomic_load_n(&w[u / 64], __ATOMIC_RELAXED) >> (u % 64)) & 1,
                   "unit %llu handed over while already accepted", (unsigned long long)u);
        FUZZ_CHECK(!p->accepted[u], "unit %llu accepted twice", (unsigned long long)u);
    }
    if (p->reenter) {
        /* the accepter owns its range: re-entry and mutators are refused */
        ua_accept_result r;
        FUZZ_CHECK(ua_accept_memory(p->t, start, end - start, vcpu, &r) == UA_E_STATE,
                   "re-entrant accept_memory was not refused");
        FUZZ_CHECK(ua_table_mark(p->t, f, f + 1, 0) == UA_E_STATE, "mark during an accept");
        FUZZ_CHECK(ua_table_set_accept(p->t, NULL, NULL) == UA_E_STATE,
                   "set_accept during an accept");
        ua_table_info info;
        FUZZ_CHECK(ua_table_info_get(p->t, &info) == UA_OK, "info");
        uint8_t zero[64] = {0};
        FUZZ_CHECK(ua_table_bitmap_write(p->t, zero, info.size) == UA_E_STATE,
                   "bitmap_write during an accept");
    }
    FUZZ_CHECK(p->ncalls < MAX_CALLS, "too many calls");
    struct call *c = &p->calls[p->ncalls++];
    *c = (struct call){start, end, vcpu, !p->cancel_mode && p->ncalls == p->fail_at};
    if (c->failed)
        return p->fail_status;
    if (p->cancel_mode && p->ncalls == p->fail_at)
        p->cancel = 1;
    for (uint64_t u = f; u < l; u++)
        p->accepted[u] = 1;
    return UA_OK;
}

static uint64_t decode_addr(struct fuzz_in *in, const struct fuzz_geom *g, int is_start)
{
    int64_t units = is_start ? (int16_t)in_le(in, 2) : (int64_t)in_le(in, 2);
    uint64_t extra = in_le(in, 2);
    uint64_t delta = (extra & 0x8000) ? (extra & 0x7fff) : (extra & 0x7fff) * UA_PAGE_SIZE;
    if (is_start)
        return g->phys_base + (uint64_t)(units * (int64_t)g->unit) + delta;
    return (uint64_t)units * g->unit + delta;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    const uint64_t unit = 1ull << (12 + in_u8(&in) % 20);
    const uint64_t bytes = 1 + in_u8(&in) % 64;
    const uint64_t base = in_le(&in, 4) << 12;
    const uint8_t pflags = in_u8(&in);
    ua_table *t = NULL;
    int st = ua_table_create((uint32_t)unit, base, bytes, &t);
    FUZZ_STATUS(st);
    FUZZ_CHECK(st == UA_OK, "create(%#llx, %#llx, %llu) = %d", (unsigned long long)unit,
               (unsigned long long)base, (unsigned long long)bytes, st);

    uint8_t model[64], initial[64];
    for (uint64_t i = 0; i < bytes; i++)
        initial[i] = model[i] = in_u8(&in);
    FUZZ_CHECK(ua_table_bitmap_write(t, initial, bytes) == UA_OK, "bitmap_write");

    static struct prim p;
    memset(&p, 0, sizeof(p));
    uint8_t accepted[512] = {0};
    p.t = t;
    p.g = (struct fuzz_geom){base, unit, bytes * 8};
    p.fail_at = pflags & 7;
    p.fail_status = (pflags & 8) ? 64 + (pflags >> 4) : UA_E_GUEST_PANIC;
    p.reenter = (pflags & 0x10) != 0;
    p.cancel_mode = (pflags & 0x20) != 0;
    p.accepted = accepted;
    ua_recorder *rec = NULL;
    FUZZ_CHECK(ua_recorder_create(checking_accept, &p, &rec) == UA_OK, "recorder");
    FUZZ_CHECK(ua_table_set_accept(t, ua_recorder_accept, rec) == UA_OK, "set_accept");
    FUZZ_CHECK(ua_table_set_cancel(t, &p.cancel) == UA_OK, "set_cancel");

    ua_op ops[MAX_OPS];
    size_t n = 0;
    while (n < MAX_OPS && in.n >= 10) {
        uint8_t kind = in_u8(&in);
        ua_op *o = &ops[n++];
        o->kind = (kind & 7) < 4 ? UA_OP_ACCEPT : (kind & 7) < 7 ? UA_OP_CONTAINS : 2 + (kind >> 3);
        o->vcpu = in_u8(&in);
        o->start = decode_addr(&in, &p.g, 1);
        o->size = decode_addr(&in, &p.g, 0);
        if (kind & 0x80)
            o->start = UINT64_MAX - (o->start & 0x3fffff);
    }

    /* run the batch, resuming after each failed op (at an interrupted one) */
    struct exec {
        size_t op;
        ua_op_result r;
    };
    static struct exec execs[2 * MAX_OPS + 2];
    size_t nexec = 0, cursor = 0;
    ua_op_result res[MAX_OPS];
    int rounds = 0;
    while (cursor < n) {
        FUZZ_CHECK(++rounds <= 2 * MAX_OPS + 2, "the batch makes no progress");
        size_t from = cursor;
        memset(res, 0xa5, sizeof(res)); /* status 0xa5a5a5a5: not written */
        int flag_before = p.cancel;
        st = ua_run_ops(t, ops, n, res, &cursor);
        FUZZ_STATUS(st);
        size_t stop = st == UA_OK ? n : cursor;
        FUZZ_CHECK(stop >= from && stop <= n, "cursor %zu after a run from %zu", cursor, from);
        for (size_t i = from; i < stop; i++) {
            FUZZ_CHECK(res[i].status == UA_OK, "op %zu before the cursor has status %d", i,
                       res[i].status);
            execs[nexec++] = (struct exec){i, res[i]};
        }
        if (st == UA_OK)
            break;
        FUZZ_CHECK(cursor < n, "failed with the cursor at the end");
        if (res[cursor].status == (int32_t)0xa5a5a5a5) {
            /* stopped before the op ran: only the cancel flag does that */
            FUZZ_CHECK(st == UA_E_INTERRUPTED && p.cancel && !flag_before,
                       "op %zu not run, status %d, flag %d", cursor, st, p.cancel);
        } else {
            FUZZ_CHECK(res[cursor].status == st, "failed batch: status %d, op %zu says %d", st,
                       cursor, res[cursor].status);
            FUZZ_CHECK(st != UA_E_INTERRUPTED || p.cancel,
                       "op %zu interrupted without the flag", cursor);
            execs[nexec++] = (struct exec){cursor, res[cursor]};
        }
        if (st == UA_E_INTERRUPTED)
            p.cancel = 0; /* the caller's reaction: clear it, resume at the cursor */
        else
            cursor++;
    }
    p.cancel = 0;

    /* replay the executions on the model */
    unsigned call = 0;
    uint8_t covered[MAX_OPS] = {0};
    for (size_t x = 0; x < nexec; x++) {
        const size_t i = execs[x].op;
        const ua_op *o = &ops[i];
        const ua_op_result *r = &execs[x].r;
        FUZZ_STATUS(r->status);
        if (o->kind == UA_OP_CONTAINS) {
            int want = ref_contains(&p.g, model, o->start, o->size);
            if (want < 0)
                FUZZ_CHECK(r->status == UA_E_RANGE, "op %zu: contains past 2^64: %d", i,
                           r->status);
            else
                FUZZ_CHECK(r->status == UA_OK && r->contains == (uint32_t)want,
                           "op %zu: contains(%#llx, %#llx) = %u (status %d), Linux says %d", i,
                           (unsigned long long)o->start, (unsigned long long)o->size,
                           r->contains, r->status, want);
            continue;
        }
        if (o->kind != UA_OP_ACCEPT) {
            FUZZ_CHECK(r->status == UA_E_OP, "op %zu: kind %u gave %d", i, o->kind, r->status);
            continue;
        }
        uint64_t f, l;
        if (!ref_accept_units(&p.g, o->start, o->size, &f, &l)) {
            FUZZ_CHECK(r->status == UA_E_RANGE, "op %zu: accept past 2^64 gave %d", i,
                       r->status);
            continue;
        }
        uint64_t runs = 0, units = 0;
        int failed = 0, cancelled = 0;
        for (uint64_t u = f; u < l && !failed;) {
            if (!bit_of(model, u)) {
                u++;
                continue;
            }
            uint64_t e = u;
            while (e < l && bit_of(model, e))
                e++;
            if (cancelled) { /* the flag is up: no further run */
                failed = 2;
                break;
            }
            FUZZ_CHECK(call < p.ncalls, "op %zu: run [%llu, %llu) never reached the primitive",
                       i, (unsigned long long)u, (unsigned long long)e);
            const struct call *c = &p.calls[call++];
            uint64_t cs = base + u * unit, ce = base + e * unit;
            FUZZ_CHECK(c->start == cs && c->end == ce && c->vcpu == o->vcpu,
                       "op %zu: primitive got [%#llx, %#llx) vcpu %u, expected [%#llx, %#llx) "
                       "vcpu %u",
                       i, (unsigned long long)c->start, (unsigned long long)c->end, c->vcpu,
                       (unsigned long long)cs, (unsigned long long)ce, o->vcpu);
            if (c->failed) {
                failed = 1;
                break;
            }
            for (uint64_t k = u; k < e; k++)
                model[k / 8] &= (uint8_t)~(1u << (k % 8));
            runs++;
            units += e - u;
            u = e;
            cancelled = p.cancel_mode && call == p.fail_at;
        }
        int want = failed == 2   ? UA_E_INTERRUPTED
                   : failed == 1 ? (p.fail_status > 0 && p.fail_status < 64 ? p.fail_status
                                                                            : UA_E_ACCEPT_FAILED)
                                 : UA_OK;
        FUZZ_CHECK(r->status == want && r->runs == runs && r->units == units,
                   "op %zu: status %d runs %llu units %llu, expected %d %llu %llu", i,
                   r->status, (unsigned long long)r->runs, (unsigned long long)r->units, want,
                   (unsigned long long)runs, (unsigned long long)units);
        covered[i] = !failed;
    }
    FUZZ_CHECK(call == p.ncalls, "the primitive got %u calls, the model expects %u", p.ncalls,
               call);

    /* the recorder holds the successful calls, no unit twice */
    size_t nrec = ua_recorder_count(rec), k = 0;
    uint8_t seen[512] = {0};
    for (unsigned c = 0; c < p.ncalls; c++) {
        if (p.calls[c].failed)
            continue;
        ua_range got;
        FUZZ_CHECK(ua_recorder_get(rec, k++, 1, &got) == UA_OK && got.start == p.calls[c].start &&
                       got.end == p.calls[c].end,
                   "recorded range %zu", k - 1);
        for (uint64_t u = (got.start - base) / unit; u < (got.end - base) / unit; u++) {
            FUZZ_CHECK(!seen[u], "the recorder saw unit %llu twice", (unsigned long long)u);
            seen[u] = 1;
        }
    }
    FUZZ_CHECK(k == nrec, "the recorder holds %zu ranges, %zu succeeded", nrec, k);

    /* the table is the model; accepted ranges read accepted */
    uint8_t now[64];
    FUZZ_CHECK(ua_table_bitmap_read(t, 0, bytes, now) == UA_OK, "bitmap_read");
    FUZZ_CHECK(memcmp(now, model, bytes) == 0, "the table differs from the model");
    uint64_t pop = 0;
    for (uint64_t i = 0; i < bytes; i++)
        pop += (uint64_t)__builtin_popcount(model[i]);
    FUZZ_CHECK(ua_table_count_unaccepted(t) == pop, "count");
    for (size_t i = 0; i < n; i++) {
        if (!covered[i])
            continue;
        int c = -1;
        st = ua_range_contains_unaccepted(t, ops[i].start, ops[i].size, &c);
        FUZZ_CHECK(st == UA_OK && c == 0,
                   "op %zu accepted [%#llx, +%#llx) but it reads unaccepted (%d, status %d)", i,
                   (unsigned long long)ops[i].start, (unsigned long long)ops[i].size, c, st);
    }
    for (size_t i = 0; i < n; i++) { /* the FFI form answers the same */
        int c = -1;
        st = ua_range_contains_unaccepted(t, ops[i].start, ops[i].size, &c);
        int ffi = ua_contains_unaccepted(t, ops[i].start, ops[i].size);
        FUZZ_CHECK(st ? ffi == -st : ffi == c, "contains %d (status %d), FFI form %d", c, st,
                   ffi);
    }
    ua_table_destroy(t);
    ua_recorder_destroy(rec);
    return 0;
}
