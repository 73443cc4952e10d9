"""The bitmap engine against a Python list of bits, including word edges and
bit counts that are not multiples of 64."""
from hypothesis import given, strategies as st

from unaccepted._core import ffi, lib


def make(bits):
    n = len(bits)
    words = ffi.new("uint64_t[]", max((n + 63) // 64, 1))
    for i, b in enumerate(bits):
        if b:
            words[i // 64] |= 1 << (i % 64)
    return words


def read(words, n):
    return [bool(words[i // 64] >> (i % 64) & 1) for i in range(n)]


bitlists = st.integers(0, 300).flatmap(lambda n: st.lists(st.booleans(), min_size=n, max_size=n))
bounds = st.tuples(st.integers(0, 320), st.integers(0, 320))


@given(bitlists, bounds)
def test_set_and_clear_match_a_list(bits, rng):
    first, last = rng
    n = len(bits)
    w = make(bits)
    lib.ua_bitmap_set(w, n, first, last)
    expect = [b or first <= i < last for i, b in enumerate(bits)]
    assert read(w, n) == expect
    lib.ua_bitmap_clear(w, n, first, last)
    expect = [b and not first <= i < last for i, b in enumerate(expect)]
    assert read(w, n) == expect


@given(bitlists, st.integers(0, 320))
def test_find_next(bits, start):
    n = len(bits)
    w = make(bits)
    nxt_set = next((i for i in range(start, n) if bits[i]), n)
    nxt_zero = next((i for i in range(start, n) if not bits[i]), n)
    assert lib.ua_bitmap_find_next_set(w, n, start) == nxt_set
    assert lib.ua_bitmap_find_next_zero(w, n, start) == nxt_zero


@given(bitlists, bounds)
def test_count_and_any(bits, rng):
    first, last = rng
    n = len(bits)
    w = make(bits)
    inside = [bits[i] for i in range(min(first, n), min(last, n))]
    assert lib.ua_bitmap_count(w, n, first, last) == sum(inside)
    assert bool(lib.ua_bitmap_any(w, n, first, last)) == any(inside)


@given(bitlists, bounds)
def test_runs_cover_exactly_the_set_bits(bits, rng):
    first, last = rng
    n = len(bits)
    w = make(bits)
    pos = ffi.new("uint64_t *", first)
    a, b = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    runs = []
    while lib.ua_bitmap_next_run(w, n, pos, last, a, b):
        runs.append((a[0], b[0]))
    covered = [i for s, e in runs for i in range(s, e)]
    assert covered == [i for i in range(first, min(last, n)) if bits[i]]
    # maximal runs: never two adjacent
    assert all(e1 < s2 for (_, e1), (s2, _) in zip(runs, runs[1:]))


def test_words_past_nbits_are_never_touched():
    # 70 bits live in 2 words; a third word is a canary.
    w = ffi.new("uint64_t[]", 3)
    w[2] = 0x5A5A
    lib.ua_bitmap_set(w, 70, 0, 1 << 40)
    assert w[0] == (1 << 64) - 1 and w[1] == (1 << 6) - 1 and w[2] == 0x5A5A
    lib.ua_bitmap_clear(w, 70, 3, 1 << 40)
    assert w[0] == 0b111 and w[1] == 0 and w[2] == 0x5A5A
    # bits past nbits in the last word are ignored by searches
    w[1] = 1 << 63
    assert lib.ua_bitmap_find_next_set(w, 70, 3) == 70
    assert lib.ua_bitmap_count(w, 70, 0, 1 << 40) == 3


def make_sparse(n, ones):
    words = ffi.new("uint64_t[]", max((n + 63) // 64, 1))
    for i in ones:
        words[i // 64] |= 1 << (i % 64)
    return words


# up to 48 words with at most three set bits: the vector and unrolled loops
# of ua_bitmap_any and ua_bitmap_count, their tails, and a bit in any place
sparse_bitmaps = st.one_of(st.integers(0, 64 * 48), st.integers(64 * 17, 64 * 48)).flatmap(
    lambda n: st.tuples(st.just(n), st.sets(st.sampled_from(range(n)), max_size=3) if n else
                        st.just(frozenset())))
long_bounds = st.one_of(st.tuples(st.integers(0, 64 * 50), st.integers(0, 64 * 50)),
                        st.tuples(st.integers(0, 130), st.integers(64 * 17, 64 * 50)))


@given(sparse_bitmaps, long_bounds)
def test_count_and_any_over_long_sparse_ranges(case, rng):
    (n, ones), (first, last) = case, rng
    w = make_sparse(n, ones)
    inside = [i for i in ones if first <= i < min(last, n)]
    assert lib.ua_bitmap_count(w, n, first, last) == len(inside)
    assert bool(lib.ua_bitmap_any(w, n, first, last)) == bool(inside)


@given(st.integers(64 * 18, 64 * 40), st.sets(st.integers(0, 64 * 40 - 1), max_size=2),
       st.lists(st.one_of(st.tuples(st.integers(0, 64 * 42), st.integers(0, 64 * 42)),
                          st.tuples(st.integers(0, 130), st.integers(64 * 18, 64 * 42))),
                max_size=8))
def test_table_scans_long_ranges(nbits, ones, ranges):
    """range_contains_unaccepted_memory over ranges of up to 40 words (the
    inline scan of a batch, the out-of-line scan past 16 inner words) and the
    count, one call at a time and in a batch."""
    from unaccepted import OpBatch, Table
    nbits = (nbits + 7) // 8 * 8
    ones = {b for b in ones if b < nbits}
    unit = 4096
    t = Table(unit, 0, nbits // 8)
    for b in ones:
        t.mark(b, b + 1)
    assert t.unaccepted_units == len(ones)
    ranges = [(f, l) for f, l in ranges if f < l]
    expect = []
    for first, last in ranges:
        # units [first, last), the end 1 byte short of a unit boundary (no
        # guard unit): Linux tests the units first .. last - 1
        got = t.contains(first * unit, (last - first) * unit - 1)
        want = any(first <= b < min(last, nbits) for b in ones)
        assert got == want
        expect.append(want)
    batch = t.run(OpBatch(("contains", f * unit, (l - f) * unit - 1) for f, l in ranges))
    assert [r.contains for r in batch] == expect


def test_any_and_count_find_a_single_bit_anywhere():
    """Every position of a 48-word bitmap, for ranges starting in the first
    words and ending anywhere: a bit in any lane of any vector or unrolled
    step is found, and nothing is found outside the range."""
    n = 64 * 48
    w = ffi.new("uint64_t[]", n // 64)
    for pos in range(n):
        w[pos // 64] = 1 << (pos % 64)
        for first, last in ((0, n), (1, n), (64, n), (130, n - 1), (0, pos), (pos, pos + 1),
                            (pos + 1, n)):
            want = first <= pos < min(last, n)
            assert bool(lib.ua_bitmap_any(w, n, first, last)) == want, (pos, first, last)
            assert lib.ua_bitmap_count(w, n, first, last) == want, (pos, first, last)
        w[pos // 64] = 0
