/* cost.c - cost profiles, per-vCPU event counters and simulated clocks.
 *
 * The built-in profiles are data: one cycle count per event plus the
 * sentence that says where it comes from: the primary source in short and
 * its row in docs/sources.md, or "assumption".  No per-instruction latency
 * is published for PVALIDATE, TDG.MEM.PAGE.ACCEPT, AUG or RMPUPDATE, so the
 * vendor profiles anchor on the published world-switch cost and on the one
 * whole-guest throughput figure, and say which values are fitted. */
#include <stdlib.h>
#include <string.h>

#include "ua_internal.h"

static const char *const event_names[UA_EV_COUNT] = {
    [UA_EV_PVALIDATE_4K] = "pvalidate_4k",
    [UA_EV_PVALIDATE_2M] = "pvalidate_2m",
    [UA_EV_RMPADJUST] = "rmpadjust",
    [UA_EV_VMGEXIT_PSC_MSR] = "vmgexit_psc_msr",
    [UA_EV_VMGEXIT_PSC] = "vmgexit_psc",
    [UA_EV_RMPUPDATE_4K] = "rmpupdate_4k",
    [UA_EV_RMPUPDATE_2M] = "rmpupdate_2m",
    [UA_EV_PSMASH] = "psmash",
    [UA_EV_NPF_EXIT] = "npf_exit",
    [UA_EV_VC] = "vc",
    [UA_EV_CACHE_TOUCH_4K] = "cache_touch_4k",
    [UA_EV_TDCALL_ACCEPT] = "tdcall_accept",
    [UA_EV_TD_EXIT] = "td_exit",
    [UA_EV_AUG_4K] = "aug_4k",
    [UA_EV_AUG_2M] = "aug_2m",
    [UA_EV_ZERO_4K] = "zero_4k",
    [UA_EV_SEAMCALL] = "seamcall",
    [UA_EV_TDVMCALL] = "tdvmcall",
    [UA_EV_VE] = "ve",
    [UA_EV_ACCEPT_CALL] = "accept_call",
    [UA_EV_TDCALL_OTHER] = "tdcall_other",
};

int ua_event_count(void) { return UA_EV_COUNT; }

const char *ua_event_name(int event)
{
    if (event < 0 || event >= UA_EV_COUNT)
        return "unknown";
    return event_names[event];
}

struct builtin {
    const char *name;
    double ghz;
    uint64_t cycles[UA_EV_COUNT];
    const char *source[UA_EV_COUNT];
};

#define NOT_THIS_VENDOR "not charged on this vendor (0)"

static const struct builtin builtins[] = {
    {
        .name = "snp-epyc-kvm",
        .ghz = 2.4,
        .cycles = {
            [UA_EV_PVALIDATE_4K] = 600,
            [UA_EV_PVALIDATE_2M] = 1200,
            [UA_EV_RMPADJUST] = 600,
            [UA_EV_VMGEXIT_PSC_MSR] = 2528,
            [UA_EV_VMGEXIT_PSC] = 2528,
            [UA_EV_RMPUPDATE_4K] = 1000,
            [UA_EV_RMPUPDATE_2M] = 1500,
            [UA_EV_PSMASH] = 1500,
            [UA_EV_NPF_EXIT] = 2528,
            [UA_EV_VC] = 1360,
            [UA_EV_CACHE_TOUCH_4K] = 200,
            [UA_EV_ACCEPT_CALL] = 100,
        },
        .source = {
            [UA_EV_PVALIDATE_4K] = "assumption: no published latency; RMP-entry work only, "
                                   "PVALIDATE writes no data (AMD APM vol. 2 sec. 15.36); "
                                   "docs/sources.md #S2",
            [UA_EV_PVALIDATE_2M] = "assumption: one authoritative 2 MiB RMP entry flipped "
                                   "(AMD APM vol. 2 sec. 15.36.6, Table 15-40), taken as 2x the "
                                   "4 KiB cost; docs/sources.md #S3",
            [UA_EV_RMPADJUST] = "assumption: same RMP-entry work as PVALIDATE 4 KiB; "
                                "docs/sources.md #S4",
            [UA_EV_VMGEXIT_PSC_MSR] = "full KVM_RUN round trip ~2,528 cycles on EPYC (LKML, "
                                      "Dec 2020), floor for one PSC VMGEXIT; docs/sources.md #S5",
            [UA_EV_VMGEXIT_PSC] = "full KVM_RUN round trip ~2,528 cycles on EPYC (LKML, "
                                  "Dec 2020), floor for one PSC VMGEXIT; docs/sources.md #S6",
            [UA_EV_RMPUPDATE_4K] = "assumption: no published latency for RMPUPDATE; "
                                   "docs/sources.md #S7",
            [UA_EV_RMPUPDATE_2M] = "assumption: 1.5x RMPUPDATE 4 KiB; docs/sources.md #S8",
            [UA_EV_PSMASH] = "assumption: like RMPUPDATE 2 MiB; docs/sources.md #S9",
            [UA_EV_NPF_EXIT] = "KVM_RUN round trip ~2,528 cycles per exit on EPYC (LKML, "
                               "Dec 2020); docs/sources.md #S10",
            [UA_EV_VC] = "SVM world switch ~1,344-1,376 cycles on EPYC (LKML, Dec 2020), "
                         "taken as the cost of delivering #VC; docs/sources.md #S11",
            [UA_EV_CACHE_TOUCH_4K] = "two cache-line reads per 4 KiB (Linux "
                                     "arch/x86/coco/sev/core.c: sev_evict_cache()); "
                                     "assumption: ~100 cycles each (miss); docs/sources.md #S12",
            [UA_EV_TDCALL_ACCEPT] = NOT_THIS_VENDOR,
            [UA_EV_TD_EXIT] = NOT_THIS_VENDOR,
            [UA_EV_AUG_4K] = NOT_THIS_VENDOR,
            [UA_EV_AUG_2M] = NOT_THIS_VENDOR,
            [UA_EV_ZERO_4K] = NOT_THIS_VENDOR,
            [UA_EV_SEAMCALL] = NOT_THIS_VENDOR,
            [UA_EV_TDVMCALL] = NOT_THIS_VENDOR,
            [UA_EV_VE] = NOT_THIS_VENDOR,
            [UA_EV_ACCEPT_CALL] = "assumption: bitmap and list bookkeeping per "
                                  "arch_accept_memory() call; docs/sources.md #S13",
            [UA_EV_TDCALL_OTHER] = NOT_THIS_VENDOR,
        },
    },
    {
        .name = "tdx-spr-kvm",
        .ghz = 2.0,
        .cycles = {
            [UA_EV_TDCALL_ACCEPT] = 300,
            [UA_EV_TD_EXIT] = 2528,
            [UA_EV_AUG_4K] = 1472,
            [UA_EV_AUG_2M] = 2000,
            [UA_EV_ZERO_4K] = 400,
            [UA_EV_SEAMCALL] = 1000,
            [UA_EV_TDVMCALL] = 2528,
            [UA_EV_VE] = 1360,
            [UA_EV_ACCEPT_CALL] = 100,
            [UA_EV_TDCALL_OTHER] = 300,
        },
        .source = {
            [UA_EV_PVALIDATE_4K] = NOT_THIS_VENDOR,
            [UA_EV_PVALIDATE_2M] = NOT_THIS_VENDOR,
            [UA_EV_RMPADJUST] = NOT_THIS_VENDOR,
            [UA_EV_VMGEXIT_PSC_MSR] = NOT_THIS_VENDOR,
            [UA_EV_VMGEXIT_PSC] = NOT_THIS_VENDOR,
            [UA_EV_RMPUPDATE_4K] = NOT_THIS_VENDOR,
            [UA_EV_RMPUPDATE_2M] = NOT_THIS_VENDOR,
            [UA_EV_PSMASH] = NOT_THIS_VENDOR,
            [UA_EV_NPF_EXIT] = NOT_THIS_VENDOR,
            [UA_EV_VC] = NOT_THIS_VENDOR,
            [UA_EV_CACHE_TOUCH_4K] = NOT_THIS_VENDOR,
            [UA_EV_TDCALL_ACCEPT] = "assumption: TDCALL entry/exit and SEPT walk without "
                                    "zeroing (zeroing is charged as zero_4k); "
                                    "docs/sources.md #S15",
            [UA_EV_TD_EXIT] = "KVM_RUN round trip ~2,528 cycles (SVM figure, LKML Dec 2020, "
                              "assumed similar for a TD exit); docs/sources.md #S16",
            [UA_EV_AUG_4K] = "fitted: makes the Linux path with 4 KiB-only backing cost "
                             "2.5 us per 4 KiB at 2.0 GHz (90 GiB in ~60 s, K. Shutemov, "
                             "LKML 2024-10-25): tdcall 300 + td_exit 2528 + aug 1472 + "
                             "tdcall 300 + zero 400 = 5000; docs/sources.md #S17",
            [UA_EV_AUG_2M] = "assumption: one SEPT update and PAMT entry for 2 MiB, no zeroing; "
                             "docs/sources.md #S18",
            [UA_EV_ZERO_4K] = "assumption: MOVDIR64B zeroing of 4 KiB at ~10 bytes/cycle "
                              "(cost proportional to bytes: TDX module 1.5 "
                              "tdg_mem_page_accept.c); docs/sources.md #S19",
            [UA_EV_SEAMCALL] = "assumption: host SEAMCALL round trip; docs/sources.md #S20",
            [UA_EV_TDVMCALL] = "KVM_RUN round trip ~2,528 cycles (SVM figure, LKML Dec 2020); "
                               "docs/sources.md #S21",
            [UA_EV_VE] = "world switch ~1,344-1,376 cycles (SVM figure, LKML Dec 2020), taken "
                         "as the cost of delivering #VE; docs/sources.md #S22",
            [UA_EV_ACCEPT_CALL] = "assumption: bitmap and list bookkeeping per "
                                  "arch_accept_memory() call; docs/sources.md #S23",
            [UA_EV_TDCALL_OTHER] = "assumption: a TDCALL round trip into the TDX module "
                                   "without SEPT work, like tdcall_accept; docs/sources.md #S24",
        },
    },
    {
        .name = "count",
        .ghz = 1.0,
        .cycles = {
            [0 ... UA_EV_COUNT - 1] = 1,
        },
        .source = {
            [0 ... UA_EV_COUNT - 1] = "definition: every event costs one cycle at 1 GHz, "
                                      "so clocks count events; docs/sources.md #S25",
        },
    },
};

#define NBUILTINS (sizeof(builtins) / sizeof(builtins[0]))

size_t ua_cost_profile_count(void) { return NBUILTINS; }

ua_status ua_cost_profile_builtin(size_t index, ua_cost_profile *out)
{
    if (index >= NBUILTINS || !out)
        return UA_E_INVAL;
    memset(out, 0, sizeof(*out));
    strncpy(out->name, builtins[index].name, sizeof(out->name) - 1);
    out->ghz = builtins[index].ghz;
    memcpy(out->cycles, builtins[index].cycles, sizeof(builtins[index].cycles));
    return UA_OK;
}

ua_status ua_cost_profile_find(const char *name, ua_cost_profile *out)
{
    if (!name || !out)
        return UA_E_INVAL;
    for (size_t i = 0; i < NBUILTINS; i++)
        if (strcmp(builtins[i].name, name) == 0)
            return ua_cost_profile_builtin(i, out);
    return UA_E_INVAL;
}

const char *ua_cost_profile_source(size_t index, int event)
{
    if (index >= NBUILTINS || event < 0 || event >= UA_EV_COUNT || !builtins[index].source[event])
        return "unknown";
    return builtins[index].source[event];
}

/* One cache line per vCPU so parallel vCPUs do not false-share. */
struct vcpu_slot {
    uint64_t counts[UA_EV_COUNT];
    uint64_t cycles;
} __attribute__((aligned(64)));

struct ua_cost {
    ua_cost_profile profile;
    uint32_t vcpus;
    struct vcpu_slot *slots;
};

ua_status ua_cost_create(const ua_cost_profile *profile, uint32_t vcpus, ua_cost **out)
{
    if (!profile || !out)
        return UA_E_INVAL;
    if (vcpus == 0 || vcpus > UA_MAX_VCPUS)
        return UA_E_VCPU;
    if (!(profile->ghz > 0.0) || profile->ghz > 1000.0)
        return UA_E_INVAL;
    ua_cost *c = calloc(1, sizeof(*c));
    if (!c)
        return UA_E_NOMEM;
    if (posix_memalign((void **)&c->slots, 64, sizeof(struct vcpu_slot) * vcpus)) {
        free(c);
        return UA_E_NOMEM;
    }
    memset(c->slots, 0, sizeof(struct vcpu_slot) * vcpus);
    c->profile = *profile;
    c->profile.name[sizeof(c->profile.name) - 1] = 0;
    c->vcpus = vcpus;
    *out = c;
    return UA_OK;
}

void ua_cost_destroy(ua_cost *c)
{
    if (!c)
        return;
    free(c->slots);
    free(c);
}

uint32_t ua_cost_vcpus(const ua_cost *c) { return c ? c->vcpus : 0; }

ua_status ua_cost_profile_get(const ua_cost *c, ua_cost_profile *out)
{
    if (!c || !out)
        return UA_E_INVAL;
    *out = c->profile;
    return UA_OK;
}

void ua_cost_charge(ua_cost *c, uint32_t vcpu, int event, uint64_t n)
{
    if (!c || vcpu >= c->vcpus || event < 0 || event >= UA_EV_COUNT)
        return;
    struct vcpu_slot *s = &c->slots[vcpu];
    s->counts[event] += n;
    s->cycles += n * c->profile.cycles[event];
}

void ua_cost_advance(ua_cost *c, uint32_t vcpu, uint64_t cycles)
{
    if (!c || vcpu >= c->vcpus)
        return;
    c->slots[vcpu].cycles += cycles;
}

ua_status ua_cost_counts(const ua_cost *c, uint32_t vcpu, uint64_t *counts, size_t n)
{
    if (!c || !counts)
        return UA_E_INVAL;
    if (vcpu >= c->vcpus)
        return UA_E_VCPU;
    for (size_t i = 0; i < n; i++)
        counts[i] = i < UA_EV_COUNT ? c->slots[vcpu].counts[i] : 0;
    return UA_OK;
}

ua_status ua_cost_total_counts(const ua_cost *c, uint64_t *counts, size_t n)
{
    if (!c || !counts)
        return UA_E_INVAL;
    for (size_t i = 0; i < n; i++) {
        uint64_t sum = 0;
        if (i < UA_EV_COUNT)
            for (uint32_t v = 0; v < c->vcpus; v++)
                sum += c->slots[v].counts[i];
        counts[i] = sum;
    }
    return UA_OK;
}

uint64_t ua_cost_cycles(const ua_cost *c, uint32_t vcpu)
{
    return c && vcpu < c->vcpus ? c->slots[vcpu].cycles : 0;
}

double ua_cost_seconds(const ua_cost *c, uint32_t vcpu)
{
    return c ? (double)ua_cost_cycles(c, vcpu) / (c->profile.ghz * 1e9) : 0.0;
}

void ua_cost_reset(ua_cost *c)
{
    if (c)
        memset(c->slots, 0, sizeof(struct vcpu_slot) * c->vcpus);
}
