/* C unit tests of the core: table, stub processing, accept path, batch,
 * binary form, threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "unaccepted.h"
#include "ua_test.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static void test_bitmap(void)
{
    uint64_t w[3] = {0, 0, 0xabc};
    ua_bitmap_set(w, 100, 60, 70);
    CHECK_EQ(w[0], 0xfull << 60);
    CHECK_EQ(w[1], 0x3full);
    CHECK_EQ(w[2], 0xabcull);                 /* past nbits: untouched */
    CHECK_EQ(ua_bitmap_count(w, 100, 0, 100), 10u);
    CHECK_EQ(ua_bitmap_find_next_set(w, 100, 0), 60u);
    CHECK_EQ(ua_bitmap_find_next_zero(w, 100, 60), 70u);
    CHECK(ua_bitmap_any(w, 100, 69, 70));
    CHECK(!ua_bitmap_any(w, 100, 70, 1000));
    uint64_t pos = 0, a, b;
    CHECK(ua_bitmap_next_run(w, 100, &pos, 100, &a, &b));
    CHECK(a == 60 && b == 70 && pos == 70);
    CHECK(!ua_bitmap_next_run(w, 100, &pos, 100, &a, &b));
}

static void test_stub(void)
{
    ua_mem_desc map[3] = {
        {.type = 7, .phys_start = 0, .num_pages = 512},
        {.type = UA_EFI_UNACCEPTED_MEMORY, .phys_start = 2 * MiB + 4096, .num_pages = 2047},
        {.type = UA_EFI_UNACCEPTED_MEMORY, .phys_start = 16 * MiB, .num_pages = 300},
    };
    ua_table *t = NULL;
    CHECK_EQ(ua_table_from_memmap(map, 3, UA_DEFAULT_UNIT_SIZE, &t), UA_OK);
    ua_table_info info;
    CHECK_EQ(ua_table_info_get(t, &info), UA_OK);
    CHECK(info.phys_base == 2 * MiB && info.size == 1 && info.unit_size == 2 * MiB);
    ua_range got[8];
    size_t n = 0;
    CHECK_EQ(ua_table_process_memmap(t, map, 3, NULL, NULL, 0, got, 1, &n), UA_E_BUFFER);
    CHECK_EQ(n, 2u);                          /* the needed capacity, nothing changed */
    CHECK_EQ(ua_table_count_unaccepted(t), 0u);
    CHECK_EQ(ua_table_process_memmap(t, map, 3, NULL, NULL, 0, got, 8, &n), UA_OK);
    CHECK_EQ(n, 2u);
    CHECK(got[0].start == 2 * MiB + 4096 && got[0].end == 4 * MiB);
    CHECK(got[1].start == 16 * MiB && got[1].end == 16 * MiB + 300 * 4096);
    uint8_t byte;
    CHECK_EQ(ua_table_bitmap_read(t, 0, 1, &byte), UA_OK);
    CHECK_EQ(byte, 0x0e);

    uint8_t buf[64];
    size_t len;
    CHECK_EQ(ua_table_serialize(t, buf, sizeof buf, &len), UA_OK);
    CHECK_EQ(len, 25u);
    ua_table *copy = NULL;
    CHECK_EQ(ua_table_parse(buf, len, &copy), UA_OK);
    CHECK_EQ(ua_table_count_unaccepted(copy), 3u);
    buf[0] = 2;
    ua_table *bad = NULL;
    CHECK_EQ(ua_table_parse(buf, len, &bad), UA_E_VERSION);
    CHECK(bad == NULL);
    CHECK_EQ(ua_table_parse(buf, 10, &bad), UA_E_TRUNCATED);
    ua_table_destroy(copy);
    ua_table_destroy(t);

    ua_mem_desc overlap[2] = {
        {.type = 15, .phys_start = 0, .num_pages = 4},
        {.type = 7, .phys_start = 8192, .num_pages = 1},
    };
    size_t badi, other;
    CHECK_EQ(ua_memmap_check(overlap, 2, 0, &badi, &other), UA_E_OVERLAP);
    CHECK(badi == 1 && other == 0);
    t = (ua_table *)1;
    ua_mem_desc none[1] = {{.type = 7, .phys_start = 0, .num_pages = 1}};
    CHECK_EQ(ua_table_from_memmap(none, 1, UA_DEFAULT_UNIT_SIZE, &t), UA_OK);
    CHECK(t == NULL);
}

static int fail_second(void *ctx, uint64_t s, uint64_t e, uint32_t vcpu)
{
    int *calls = ctx;
    return ++*calls == 2 ? UA_E_GUEST_PANIC : UA_OK;
}

static void test_accept(void)
{
    ua_table *t;
    CHECK_EQ(ua_table_create(2 * MiB, 4 * GiB, 1, &t), UA_OK);
    CHECK_EQ(ua_table_mark(t, 0, 8, 1), UA_OK);
    CHECK_EQ(ua_table_mark(t, 0, 9, 1), UA_E_RANGE);
    ua_recorder *rec;
    CHECK_EQ(ua_recorder_create(NULL, NULL, &rec), UA_OK);
    CHECK_EQ(ua_table_set_accept(t, ua_recorder_accept, rec), UA_OK);
    ua_accept_result r;
    CHECK_EQ(ua_accept_memory(t, 4 * GiB, 2 * MiB, 0, &r), UA_OK);   /* + guard unit */
    CHECK(r.runs == 1 && r.units == 2);
    ua_range got[4];
    CHECK_EQ(ua_recorder_count(rec), 1u);
    CHECK_EQ(ua_recorder_get(rec, 0, 1, got), UA_OK);
    CHECK(got[0].start == 4 * GiB && got[0].end == 4 * GiB + 4 * MiB);
    CHECK_EQ(ua_recorder_get(rec, 0, 2, got), UA_E_RANGE);
    int c = -1;
    CHECK_EQ(ua_range_contains_unaccepted(t, 4 * GiB, 4096, &c), UA_OK);
    CHECK_EQ(c, 0);
    CHECK_EQ(ua_range_contains_unaccepted(t, 4 * GiB + 4 * MiB, 4096, &c), UA_OK);
    CHECK_EQ(c, 1);
    CHECK_EQ(ua_accept_memory(t, UINT64_MAX - 4095, 4096, 0, &r), UA_E_RANGE);

    ua_op ops[3] = {
        {.kind = UA_OP_CONTAINS, .start = 4 * GiB, .size = 16 * MiB},
        {.kind = UA_OP_ACCEPT, .start = 4 * GiB, .size = 16 * MiB},
        {.kind = 9},
    };
    ua_op_result res[3];
    size_t cursor = 0;
    CHECK_EQ(ua_run_ops(t, ops, 3, res, &cursor), UA_E_OP);
    CHECK_EQ(cursor, 2u);
    CHECK(res[0].contains == 1 && res[1].units == 6 && res[2].status == UA_E_OP);
    CHECK_EQ(ua_table_count_unaccepted(t), 0u);

    int calls = 0;
    CHECK_EQ(ua_table_mark(t, 0, 8, 1), UA_OK);
    CHECK_EQ(ua_table_mark(t, 3, 4, 0), UA_OK);
    CHECK_EQ(ua_table_set_accept(t, fail_second, &calls), UA_OK);
    CHECK_EQ(ua_accept_memory(t, 4 * GiB, 16 * MiB, 0, &r), UA_E_GUEST_PANIC);
    CHECK(r.runs == 1 && r.units == 3);
    CHECK_EQ(ua_table_count_unaccepted(t), 4u);       /* failed run stays unaccepted */
    ua_recorder_destroy(rec);
    ua_table_destroy(t);
}

struct worker { ua_table *t; uint32_t vcpu; unsigned seed; int batch; };

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 20000; i++) {
        w->seed = w->seed * 1103515245u + 12345u;
        uint64_t start = (uint64_t)(w->seed % 4096) * 4096 * 64;
        uint64_t size = (w->seed >> 8) % (8 * MiB);
        if (!w->batch) {
            ua_accept_memory(w->t, start, size, w->vcpu, NULL);
            continue;
        }
        /* the batch entry point: its inline fast path (contains, accepts of
         * accepted units) and its full path, racing with the accepters */
        ua_op ops[3] = {
            {.kind = UA_OP_CONTAINS, .vcpu = w->vcpu, .start = start, .size = size},
            {.kind = UA_OP_ACCEPT, .vcpu = w->vcpu, .start = start, .size = size},
            {.kind = UA_OP_CONTAINS, .vcpu = w->vcpu, .start = 0, .size = 8192 * 128 * 1024},
        };
        size_t cursor = 0;
        ua_run_ops(w->t, ops, 3, NULL, &cursor);
    }
    return NULL;
}

static void test_threads(void)
{
    ua_table *t;
    const uint64_t units = 8192;
    CHECK_EQ(ua_table_create(128 * 1024, 0, units / 8, &t), UA_OK);
    CHECK_EQ(ua_table_mark(t, 0, units, 1), UA_OK);
    ua_recorder *rec;
    CHECK_EQ(ua_recorder_create(NULL, NULL, &rec), UA_OK);
    CHECK_EQ(ua_table_set_accept(t, ua_recorder_accept, rec), UA_OK);
    pthread_t th[4];
    struct worker ws[4];
    for (unsigned i = 0; i < 4; i++) {
        ws[i] = (struct worker){t, i, i * 7919u + 1, (int)(i % 2)};
        pthread_create(&th[i], NULL, work, &ws[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(ua_accept_memory(t, 0, units * 128 * 1024, 0, NULL), UA_OK);
    size_t n = ua_recorder_count(rec);
    ua_range *all = malloc(n * sizeof(*all));
    CHECK_EQ(ua_recorder_get(rec, 0, n, all), UA_OK);
    unsigned char *seen = calloc(units, 1);
    int twice = 0;
    for (size_t i = 0; i < n; i++)
        for (uint64_t u = all[i].start / (128 * 1024); u < all[i].end / (128 * 1024); u++)
            twice |= seen[u]++;
    int missing = 0;
    for (uint64_t u = 0; u < units; u++)
        missing |= !seen[u];
    CHECK(!twice);
    CHECK(!missing);
    free(seen);
    free(all);
    ua_recorder_destroy(rec);
    ua_table_destroy(t);
}

static void test_misc(void)
{
    CHECK_EQ(ua_version(), (uint32_t)((UA_VERSION_MAJOR << 16) | (UA_VERSION_MINOR << 8) |
                                      UA_VERSION_PATCH));
    CHECK(strcmp(ua_version_string(), UA_VERSION_STRING) == 0);
    CHECK(strcmp(ua_strerror(UA_E_VERSION), "unknown unaccepted-memory table version") == 0);
    ua_table *t = NULL;
    CHECK_EQ(ua_table_create(3000, 0, 1, &t), UA_E_UNIT_SIZE);
    CHECK_EQ(ua_table_create(2 * MiB, 0, UA_MAX_BITMAP_BYTES + 1ull, &t), UA_E_TOO_LARGE);
    CHECK(t == NULL);
    CHECK_EQ(ua_accept_memory(NULL, 0, 0, 0, NULL), UA_E_INVAL);
}

int main(void)
{
    test_bitmap();
    test_stub();
    test_accept();
    test_threads();
    test_misc();
    return ua_test_report("test_core");
}
