/* tdx_internal.h - pieces of the TDX model shared by tdx.c and guest_tdx.c;
 * not installed. */
#ifndef UA_TDX_INTERNAL_H
#define UA_TDX_INTERNAL_H

#include "ua_internal.h"

#define UA_TDX_SZ_4K 4096ull
#define UA_TDX_SZ_2M (1ull << 21)
#define UA_TDX_SZ_1G (1ull << 30)

static inline uint64_t ua_tdx_level_size(unsigned level) { return UA_TDX_SZ_4K << (9 * level); }

/* Fields of the extended exit qualification of an ACCEPT exit (bits 63:32). */
static inline uint64_t ua_tdx_eeq_accept(unsigned req_level, unsigned err_level, unsigned state,
                                         unsigned is_leaf)
{
    uint64_t info = (uint64_t)(req_level & 7) | ((uint64_t)(err_level & 7) << 3) |
                    ((uint64_t)(state & 0xFF) << 6) | ((uint64_t)(is_leaf & 1) << 14);
    return UA_TDX_EEQ_TYPE_ACCEPT | (info << 32);
}

/* Charge events to the model's cost object (no-op without one); for the
 * guest paths, which charge one UA_EV_ACCEPT_CALL per arch_accept_memory(). */
void ua_tdx_charge_internal(ua_tdx *t, uint32_t vcpu, int event, uint64_t n);

#endif
