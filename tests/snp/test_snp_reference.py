"""Exhaustive state x operation tables: the C SNP model against the
pure-Python reference (unaccepted.testing.snp_reference).

Every recipe builds one RMP state around a test region (host operations and
guest instructions applied to both models); every operation variant (good
and bad arguments) is then applied to a fresh copy of that state, and both
the architectural outcome and the resulting RMP entries must agree.  The two
models have the same API, so every operation is one call made on each."""
import itertools

import pytest

from unaccepted.snp import Fault, SnpGuest
from unaccepted.testing import snp_reference as ref

MEM = 8 << 20
SPARE = 4 << 20
ASID = 5
B = 2 << 20                 # test region (GPA == SPA by default)
S = MEM                     # first spare SPA region
K4, M2 = ref.K4, ref.M2


def R(spa, **kw):
    return ("rmpupdate", (spa,), kw)


def PV(va, size, validate):
    return ("pvalidate", (va, size, bool(validate)), {})


def ADJ(va, size, attrs):
    return ("rmpadjust", (va, size), {"attrs": attrs})


def SMASH(spa):
    return ("psmash", (spa,), {})


def NPT(gpa, spa):
    return ("npt_map", (gpa, spa), {})


def IN_USE(spa):
    return ("set_in_use", (spa,), {})


PRIV2M = R(B, gpa=B, asid=ASID, assigned=True, page_size=1)
PRIV4K = [R(B, gpa=B, asid=ASID, assigned=True), R(B + K4, gpa=B + K4, asid=ASID, assigned=True)]

RECIPES = {
    "hv-4k": [],
    "hv-2m": [R(B, page_size=1)],
    "priv-2m": [PRIV2M],
    "priv-2m-valid": [PRIV2M, PV(B, 1, 1)],
    "priv-2m-valid-adj": [PRIV2M, PV(B, 1, 1), ADJ(B, 1, 1 | 3 << 8)],
    "priv-2m-vmsa": [PRIV2M, PV(B, 1, 1), ADJ(B, 1, 1 | 0x10000)],
    "other-asid-2m": [R(B, gpa=B, asid=ASID + 1, assigned=True, page_size=1)],
    "wrong-gpa-2m": [R(B, gpa=B + M2, asid=ASID, assigned=True, page_size=1)],
    "fw-2m": [R(B, assigned=True, immutable=True, page_size=1)],
    "immutable-2m": [R(B, gpa=B, asid=ASID, assigned=True, immutable=True, page_size=1)],
    "smashed-valid": [PRIV2M, PV(B, 1, 1), SMASH(B)],
    "smashed-adj": [PRIV2M, PV(B, 1, 1), ADJ(B, 1, 1 | 3 << 8), SMASH(B)],
    "smashed-hv": [R(B, page_size=1), SMASH(B)],
    "priv-4k": PRIV4K,
    "priv-4k-valid": PRIV4K + [PV(B, 0, 1), PV(B + K4, 0, 1)],
    "priv-4k-mixed": PRIV4K + [PV(B, 0, 1)],
    "priv-4k-adj": PRIV4K + [PV(B, 0, 1), ADJ(B, 0, 1 | 1 << 8)],
    "priv-4k-vmsa": PRIV4K + [PV(B, 0, 1), ADJ(B, 0, 1 | 0x10000)],
    # a region in full-entry form (an entry off the compact GPA/ASID pattern)
    "priv-4k-full": PRIV4K + [R(B + 2 * K4, gpa=3 * M2, asid=ASID, assigned=True),
                              PV(B, 0, 1)],
    "other-asid-4k": [R(B, gpa=B, asid=ASID + 1, assigned=True)],
    "wrong-gpa-4k": [R(B, gpa=B + K4, asid=ASID, assigned=True)],
    "fw-4k": [R(B, assigned=True, immutable=True)],
    "in-use-2m": [PRIV2M, IN_USE(B)],
    "in-use-4k": PRIV4K + [IN_USE(B + K4)],
    # the remap attack's states: GPA B now points at spare SPA S
    "remap-fresh": PRIV4K + [PV(B, 0, 1), NPT(B, S), R(S, gpa=B, asid=ASID, assigned=True)],
    "remap-fresh-valid": PRIV4K + [PV(B, 0, 1), NPT(B, S),
                                   R(S, gpa=B, asid=ASID, assigned=True), PV(B, 0, 1)],
    "remap-hv": [NPT(B, S)],
    "remap-2m-target": [NPT(B, S), R(S, gpa=S, asid=ASID, assigned=True, page_size=1)],
}


def apply(c, r, op):
    """One call, made on the C model and on the reference: same answer."""
    name, args, kw = op
    assert getattr(c, name)(*args, **kw) == getattr(r, name)(*args, **kw), op


def build(name, **kw):
    c, r = (cls(MEM, spare_bytes=SPARE, asid=ASID, **kw) for cls in (SnpGuest, ref.SnpGuest))
    for op in RECIPES[name]:
        apply(c, r, op)
    return c, r


PROBES = [0, B, B + K4, B + M2 - K4, B + M2, S, S + K4]


def same_rmp(c, r):
    for spa in PROBES:
        assert c.rmp(spa) == r.rmp(spa), (hex(spa), c.rmp(spa), r.rmp(spa))


PV_OPS = [PV(va, size, val)
          for va in (B, B + K4, B + 8, B + M2 - K4, 0, MEM, MEM + M2)
          for size in (0, 1, 2) for val in (0, 1)]
ADJ_ATTRS = [1 | 1 << 8, 1 | 3 << 8, 1 | 2 << 8, 0 | 1 << 8, 4 | 1 << 8, 1 | 0x1F << 8,
             1 | 0x10000, 3 | 0x10000 | 1 << 8, 1 | 1 << 20, 2 | 0x20 << 8, 1]
ADJ_OPS = [ADJ(va, size, a) for va in (B, B + K4, B + 8, MEM)
           for size in (0, 1, 3) for a in ADJ_ATTRS]
STATES = [dict(), dict(page_size=1), dict(gpa=B, asid=ASID, assigned=True),
          dict(gpa=B, asid=ASID, assigned=True, page_size=1),
          dict(assigned=True, immutable=True), dict(asid=3), dict(immutable=True),
          dict(assigned=True), dict(gpa=B + K4, asid=ASID, assigned=True, page_size=1),
          dict(page_size=2), dict(gpa=1 << 52, asid=ASID, assigned=True),
          dict(gpa=B, asid=1024, assigned=True)]
UPD_OPS = [R(spa, **st) for spa in (B, B + K4, B + 8, S, MEM + SPARE) for st in STATES]
SMASH_OPS = [SMASH(spa) for spa in (B, B + K4, B + M2, S, MEM + SPARE)]


@pytest.mark.parametrize("state", sorted(RECIPES))
def test_instruction_table(state):
    n = 0
    for op in PV_OPS + ADJ_OPS + UPD_OPS + SMASH_OPS:
        c, r = build(state)
        apply(c, r, op)
        same_rmp(c, r)
        n += 1
    assert n == len(PV_OPS) + len(ADJ_OPS) + len(UPD_OPS) + len(SMASH_OPS)


@pytest.mark.parametrize("state", sorted(RECIPES))
def test_access_table(state):
    c, r = build(state)
    for gpa, kind, cbit in itertools.product((B, B + K4, B + 123, MEM, 0), range(4), (0, 1)):
        got = c.access(gpa, kind, c_bit=bool(cbit))
        want = r.access(gpa, kind, c_bit=bool(cbit))
        assert got == want, (state, hex(gpa), kind, cbit)
    for spa in (B, B + K4, S, MEM + SPARE):
        assert c.host_write(spa) == r.host_write(spa)


@pytest.mark.parametrize("vmpl", [1, 2, 3])
@pytest.mark.parametrize("state", ["hv-4k", "priv-2m", "priv-4k", "fw-2m", "remap-hv"])
def test_higher_vmpl_tables(vmpl, state):
    """A guest kernel at VMPL > 0: PVALIDATE #GPs, RMPADJUST can only target
    higher VMPLs and only grant what it holds itself."""
    for op in PV_OPS + ADJ_OPS:
        c, r = build(state, vmpl=vmpl)
        apply(c, r, op)
        same_rmp(c, r)
    c, r = build("hv-4k", vmpl=vmpl)
    assert c.pvalidate(B, 0, True) == r.pvalidate(B, 0, True)
    assert c.pvalidate(B, 0, True).fault == Fault.GP
