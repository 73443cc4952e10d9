"""Arbitrary arguments never crash the SNP model: every call either returns
an architectural answer or raises one of the package's typed errors, and
the pure-Python reference (same API) gives the same answer to every call and
ends in the same state."""
from hypothesis import given, settings
from hypothesis import strategies as st

from unaccepted.errors import UnacceptedError
from unaccepted.snp import SnpGuest, parse_psc_buffer, psc_buffer
from unaccepted.testing import snp_reference as ref

MEM, SPARE = 8 << 20, 2 << 20
u64 = st.integers(0, (1 << 64) - 1)
addr = st.one_of(u64, st.integers(0, MEM + SPARE + (4 << 20)),
                 st.integers(0, (MEM + SPARE) // 4096).map(lambda p: p * 4096))
small = st.integers(0, 8)
u32 = st.integers(0, (1 << 32) - 1)

CALLS = st.one_of(
    st.tuples(st.just("pvalidate"), addr, small, st.booleans(), small),
    st.tuples(st.just("rmpadjust"), addr, small, u64, small),
    st.tuples(st.just("access"), addr, small, st.booleans(), small),
    st.tuples(st.just("rmpupdate"), addr, addr, st.integers(0, 2048), st.booleans(), small,
              st.booleans()),
    st.tuples(st.just("psmash"), addr),
    st.tuples(st.just("host_write"), addr),
    st.tuples(st.just("npt_map"), addr, addr),
    st.tuples(st.just("psc_msr"), u64, small),
    st.tuples(st.just("psc_ghcb"), st.lists(u64, max_size=6), u32, small),
    st.tuples(st.just("accept"), st.sampled_from(["linux", "linux-early", "ovmf"]), addr, addr,
              small),
    st.tuples(st.just("launch"), addr, addr),
    st.tuples(st.just("count"), addr, addr),
)


def call(g, c):
    kind = c[0]
    if kind == "pvalidate":
        return g.pvalidate(c[1], c[2], c[3], vcpu=c[4])
    if kind == "rmpadjust":
        return g.rmpadjust(c[1], c[2], attrs=c[3], vcpu=c[4])
    if kind == "access":
        return g.access(c[1], c[2], c_bit=c[3], vcpu=c[4])
    if kind == "rmpupdate":
        return g.rmpupdate(c[1], gpa=c[2], asid=c[3], assigned=c[4], page_size=c[5],
                           immutable=c[6])
    if kind == "psmash":
        return g.psmash(c[1])
    if kind == "host_write":
        return g.host_write(c[1])
    if kind == "npt_map":
        return g.npt_map(c[1], c[2])
    if kind == "psc_msr":
        return g.psc_msr(c[1], vcpu=c[2])
    if kind == "psc_ghcb":
        buf = psc_buffer(c[1], cur_entry=c[2] & 0xFFFF, end_entry=(c[2] >> 16) & 0xFFFF)
        r = g.psc_ghcb(buf, vcpu=c[3])
        return r, parse_psc_buffer(buf)
    if kind == "accept":
        p = g.accept_path(c[1], hang_limit=3)
        try:
            return p.accept(c[2], c[3], vcpu=c[4])
        finally:
            g.clear_fatal()
    if kind == "launch":
        return g.launch_update(c[1], c[2])
    if kind == "count":
        return g.count(c[1], c[2])
    raise AssertionError(kind)  # pragma: no cover


def answer(g, c):
    """What a call gives: its result, or the class of the typed refusal."""
    try:
        return "ok", call(g, c)
    except (UnacceptedError, OverflowError) as exc:
        return "raised", type(exc)  # a typed refusal (or cffi's u64 range check)


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(CALLS, max_size=25), backing=st.sampled_from(["2M", "4K"]))
def test_arbitrary_calls_never_crash(calls, backing):
    g = SnpGuest(MEM, spare_bytes=SPARE, vcpus=2, backing=backing)
    r = ref.SnpGuest(MEM, spare_bytes=SPARE, vcpus=2, backing=backing)
    for c in calls:
        assert answer(g, c) == answer(r, c), c
    st_ = g.stats()
    assert st_.validated_4k <= st_.assigned_4k <= (MEM + SPARE) // 4096
    v, u = g.count()
    assert v + u <= MEM // 4096
    assert (v, u) == r.count()
    for kind in ("linux", "linux-early", "ovmf"):
        assert g.path_stats(kind) == r.path_stats(kind), kind
    for page in range(0, (MEM + SPARE) // 4096, 37):
        assert g.rmp(page * 4096) == r.rmp(page * 4096)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["rmpupdate", "psmash", "pvalidate", "rmpadjust"]),
                              st.integers(0, (MEM + SPARE) // 4096 + 2), st.integers(0, 3),
                              st.integers(0, 7)), max_size=30))
def test_random_instruction_sequences_match_reference(ops):
    g, r = (cls(MEM, spare_bytes=SPARE, asid=3) for cls in (SnpGuest, ref.SnpGuest))
    for op, page, a, b in ops:
        x = page * 4096 + (0 if a < 3 else 8)
        big = b & 1
        if op == "rmpupdate":
            kw = dict(gpa=(x - x % (2 << 20) if big else x) % MEM, asid=3 if b & 2 else 0,
                      assigned=bool(b & 2), page_size=big, immutable=bool(b & 4) and bool(b & 2))
            if b & 4 and not b & 2:
                kw.update(asid=0, assigned=True, immutable=True)
            assert g.rmpupdate(x, **kw) == r.rmpupdate(x, **kw)
        elif op == "psmash":
            assert g.psmash(x) == r.psmash(x)
        elif op == "pvalidate":
            assert g.pvalidate(x, big, bool(b & 2)) == r.pvalidate(x, big, bool(b & 2))
        else:
            attrs = 1 + (b >> 1) % 3 | ((1 if b & 2 else 3) << 8) | (0x10000 if b & 4 else 0)
            assert g.rmpadjust(x, big, attrs=attrs) == r.rmpadjust(x, big, attrs=attrs)
    for page in range(0, (MEM + SPARE) // 4096, 37):
        assert g.rmp(page * 4096) == r.rmp(page * 4096)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["private", "shared", "foreign", "firmware",
                                               "psmash", "validate", "rescind", "remap"]),
                              st.integers(0, MEM // 4096 - 1), st.booleans()), max_size=40))
def test_count_matches_reference(ops):
    g, r = (cls(MEM, spare_bytes=SPARE, asid=3) for cls in (SnpGuest, ref.SnpGuest))
    for op, page, big in ops:
        a = page * 4096
        if big:
            a -= a % (2 << 20)
        size = int(big)
        if op in ("private", "shared", "foreign", "firmware"):
            kw = {"private": dict(gpa=a, asid=3, assigned=True),
                  "shared": dict(),
                  "foreign": dict(gpa=a, asid=4, assigned=True),
                  "firmware": dict(assigned=True, immutable=True)}[op]
            assert g.rmpupdate(a, page_size=size, **kw) == r.rmpupdate(a, page_size=size, **kw)
        elif op == "psmash":
            assert g.psmash(a) == r.psmash(a)
        elif op in ("validate", "rescind"):
            assert g.pvalidate(a, size, op == "validate") == r.pvalidate(a, size, op == "validate")
        else:
            spa = MEM + (page % (SPARE // 4096)) * 4096
            g.npt_map(page * 4096, spa)
            r.npt_map(page * 4096, spa)
    assert g.count(0, MEM) == r.count(0, MEM)
    assert g.count(4096, MEM - 8192) == r.count(4096, MEM - 8192)
