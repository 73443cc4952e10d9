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
