"""The Linux path's batched 4 KiB accepts (tdx_accept_run_4k) against the
single steps they stand for.

With KVM as the host the Linux path runs the common course of its 4 KiB
ACCEPTs (PENDING -> accepted; FREE -> exit, KVM's 4 KiB AUG, re-executed)
in one batch per 2 MiB region.  A host with an exit handler of its own
always takes the single steps: `aug-4k` is KVM with the AUG level capped at
4 KiB, which with 4 KiB host backing is KVM's answer to every exit, so the
two guests below must end in exactly the same state - SEPT entries, host
pages, page contents, statistics, cost counters and clocks, fatal record,
model memory - whatever the pages held before (PENDING, FREE, removed,
shared, locked, host priority, already accepted)."""
import pytest

from unaccepted import Cost, Host
from unaccepted.errors import UnacceptedError
from unaccepted.tdx import TdxGuest

K4, M2 = 4096, 2 << 20


def _pair(memory, vcpus=1, **settings):
    """The same guest twice: KVM (batched) and the single-step host."""
    return [TdxGuest(memory, backing="4K", vcpus=vcpus, host=host,
                     cost=Cost("tdx-spr-kvm", vcpus=vcpus), **settings)
            for host in (Host(), Host("aug-4k"))]


def _snapshot(g, memory, vcpus):
    pages = []
    for a in range(0, memory, K4):
        e = g.entry(a)
        pages.append((e.state, e.level, e.hpa, e.data_nonzero, e.shared, e.locked,
                      e.host_priority))
    return {
        "pages": pages,
        "stats": g.path_stats("linux"),
        "counts": [g.cost.counts(v) for v in range(vcpus)],
        "cycles": [g.cost.cycles(v) for v in range(vcpus)],
        "fatal": g.fatal,
        "memory": g.memory_usage,
    }


def _run(g, calls, vcpus=1, hang_limit=0):
    path = g.accept_path("linux", hang_limit=hang_limit) if hang_limit else g.accept_path("linux")
    outcomes = []
    for start, end, vcpu in calls:
        try:
            path(start, end, vcpu=vcpu)
            outcomes.append("ok")
        except UnacceptedError as e:
            outcomes.append(type(e).__name__)
    return outcomes


def _same(prepare, calls, memory=8 * M2, vcpus=1, hang_limit=0, **settings):
    snaps = []
    for g in _pair(memory, vcpus, **settings):
        prepare(g)
        outcomes = _run(g, calls, vcpus, hang_limit)
        snaps.append((outcomes, _snapshot(g, memory, vcpus)))
    (out_a, a), (out_b, b) = snaps
    assert out_a == out_b
    for key in a:
        assert a[key] == b[key], key
    return out_a, a


def _nothing(g):
    pass


def test_fresh_memory_whole_and_unaligned_ranges():
    out, snap = _same(_nothing, [(0, 2 * M2, 0), (2 * M2 + 3 * K4, 5 * M2 - 7 * K4, 0),
                                 (5 * M2, 8 * M2, 0)])
    assert out == ["ok", "ok", "ok"]
    assert snap["stats"].host_aug_4k > 0


def test_prefaulted_pending_pages():
    out, _ = _same(_nothing, [(0, 8 * M2, 0)], initial="pending")
    assert out == ["ok"]


def test_a_mix_of_pending_free_and_removed_pages():
    def prepare(g):
        for i in (0, 1, 7, 100, 511):
            g.aug(M2 + i * K4)                   # PENDING (region gets its 4 KiB table)
        g.aug(3 * M2 + 5 * K4)
        for i in (5,):                           # REMOVE: the page's host slot is used up,
            a = 3 * M2 + i * K4                  # the next AUG takes a fresh page
            g.block(a)
            g.track()
            g.remove(a)
    out, _ = _same(prepare, [(0, 8 * M2, 0)])
    assert out == ["ok"]


@pytest.mark.parametrize("spoil", ["shared", "locked", "host_priority", "accepted", "blocked"])
def test_a_page_off_the_common_course_in_the_middle(spoil):
    bad = 2 * M2 + 300 * K4

    def prepare(g):
        g.aug(2 * M2)                            # the region gets its 4 KiB table
        if spoil == "shared":
            g.map_gpa(bad, bad + K4, shared=True)
        elif spoil == "locked":
            g.set_lock(bad)
        elif spoil == "host_priority":
            g.set_host_priority(bad)
        elif spoil == "accepted":
            g.aug(bad)
            g.accept(bad)
        elif spoil == "blocked":
            g.aug(bad)
            g.block(bad)
    out, snap = _same(prepare, [(0, 4 * M2, 0)])
    assert out != ["ok"]                         # the guest dies on that page, both ways
    assert snap["fatal"] is not None


def test_hang_limit_one_takes_the_single_steps():
    out, _ = _same(_nothing, [(0, 2 * M2, 0)], hang_limit=1)
    assert out == ["GuestHung"]


def test_several_vcpus_are_charged_apart():
    out, snap = _same(_nothing, [(0, 3 * M2, 0), (3 * M2, 5 * M2 + 12 * K4, 1),
                                 (5 * M2 + 12 * K4, 8 * M2, 2)], vcpus=3)
    assert out == ["ok"] * 3
    assert all(snap["cycles"])
