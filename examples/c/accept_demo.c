/* accept_demo.c - use libunaccepted from C: build the EFI stub's table from a
 * memory map, then accept memory the way the kernel's page allocator does.
 *
 *   make -C csrc example && csrc/build/examples/accept_demo
 */
#include <inttypes.h>
#include <stdio.h>

#include "unaccepted.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Our own accept primitive: count what the kernel asks for. */
struct counter { uint64_t calls, bytes; };

static int count_accept(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu)
{
    struct counter *c = ctx;
    (void)vcpu;
    c->calls++;
    c->bytes += end - start;
    return UA_OK;
}

int main(void)
{
    /* 2 GiB accepted below 4 GiB, 6 GiB unaccepted above (a TDVF-like map). */
    ua_mem_desc map[] = {
        {.type = 7, .phys_start = 0, .num_pages = 2 * GiB / 4096},
        {.type = UA_EFI_UNACCEPTED_MEMORY, .phys_start = 4 * GiB, .num_pages = 6 * GiB / 4096},
    };
    ua_table *table;
    ua_status st = ua_table_from_memmap(map, 2, UA_DEFAULT_UNIT_SIZE, &table);
    if (st || !table) {
        fprintf(stderr, "table: %s\n", ua_strerror(st));
        return 1;
    }
    ua_range now[8];
    size_t n_now;
    st = ua_table_process_memmap(table, map, 2, NULL, NULL, 0, now, 8, &n_now);
    if (st) {
        fprintf(stderr, "stub: %s\n", ua_strerror(st));
        return 1;
    }
    struct counter c = {0, 0};
    ua_table_set_accept(table, count_accept, &c);

    /* The page allocator accepts 4 MiB blocks; run 1024 of them in one call. */
    ua_op ops[1024];
    for (int i = 0; i < 1024; i++)
        ops[i] = (ua_op){.kind = UA_OP_ACCEPT, .start = 4 * GiB + (uint64_t)i * 4 * MiB,
                         .size = 4 * MiB};
    size_t cursor = 0;
    st = ua_run_ops(table, ops, 1024, NULL, &cursor);
    if (st) {
        fprintf(stderr, "accept: %s at op %zu\n", ua_strerror(st), cursor);
        return 1;
    }
    printf("libunaccepted %s\n", ua_version_string());
    printf("stub accepted at once: %zu ranges\n", n_now);
    printf("accept calls: %" PRIu64 ", bytes accepted: %" PRIu64 "\n", c.calls, c.bytes);
    printf("units still unaccepted: %" PRIu64 "\n", ua_table_count_unaccepted(table));
    ua_table_destroy(table);
    return 0;
}
