"""The SEV-SNP runs of 4 KiB entries (the host's RMPUPDATEs of a Page State
Change, the guest's PVALIDATEs after a 2 MiB size mismatch) against the
page-by-page instructions they stand for.

The runs take eight compact flag bytes at once while all eight take the
common course.  A machine with any NPT remap does everything page by page
(snp_pvalidate_run4k and the run conversion need identity-mapped pages), so
the same guest with one remapped page outside the range looked at must end
in exactly the same state: RMP entries, counts, statistics, cost counters
and clocks, fatal record."""
import pytest

from unaccepted import Cost
from unaccepted.errors import UnacceptedError
from unaccepted.snp import PageSize, SnpGuest

K4, M2 = 4096, 2 << 20
MEM = 10 * M2          # the last 2 MiB hold the remapped page, not compared
LOOK = 8 * M2


def _pair(vcpus=1):
    guests = []
    for remap in (False, True):
        g = SnpGuest(MEM, backing="4K", vcpus=vcpus, spare_bytes=M2,
                     cost=Cost("snp-epyc-kvm", vcpus=vcpus))
        if remap:
            g.npt_map(MEM - K4, MEM)         # page by page from here on
        guests.append(g)
    return guests


def _snapshot(g, vcpus):
    return {
        "rmp": [g.rmp(a) for a in range(0, LOOK, K4)],
        "count": g.count(0, LOOK),
        "stats": g.path_stats("linux"),
        "counts": [g.cost.counts(v) for v in range(vcpus)],
        "cycles": [g.cost.cycles(v) for v in range(vcpus)],
        "fatal": g.fatal,
    }


def _same(prepare, calls, vcpus=1):
    snaps = []
    for g in _pair(vcpus):
        prepare(g)
        path = g.accept_path("linux")
        outcomes = []
        for verb, start, end, vcpu in calls:
            try:
                if verb == "accept":
                    path(start, end, vcpu=vcpu)
                else:
                    g.unaccept(start, end, vcpu=vcpu)
                outcomes.append("ok")
            except UnacceptedError as e:
                outcomes.append(type(e).__name__)
        snaps.append((outcomes, _snapshot(g, vcpus)))
    (out_a, a), (out_b, b) = snaps
    assert out_a == out_b
    for key in a:
        assert a[key] == b[key], key
    return out_a, a


def _nothing(g):
    pass


def test_fresh_memory_whole_and_unaligned_ranges():
    out, snap = _same(_nothing, [("accept", 0, 2 * M2, 0), ("accept", 2 * M2, 2 * M2 + 3 * K4, 0),
                                 ("accept", 2 * M2 + 3 * K4, 5 * M2 - 7 * K4, 0),
                                 ("accept", 5 * M2 - 7 * K4, LOOK, 0)])
    assert out == ["ok"] * 4
    assert snap["count"] == (LOOK // K4, 0)


def test_accept_unaccept_accept():
    out, _ = _same(_nothing, [("accept", 0, LOOK, 0), ("unaccept", M2 + 5 * K4, 4 * M2, 0),
                              ("accept", M2 + 5 * K4, 4 * M2, 0)])
    assert out == ["ok", "ok", "ok"]


def test_pages_made_private_by_the_host_first():
    def prepare(g):
        for i in (0, 3, 8, 9, 15, 16, 17, 300, 511):
            g.make_private(M2 + i * K4, M2 + i * K4)   # assigned, not validated
    out, _ = _same(prepare, [("accept", 0, LOOK, 0)])
    assert out == ["ok"]


@pytest.mark.parametrize("spoil", ["validated", "immutable", "permissions"])
def test_a_page_off_the_common_course_in_the_middle(spoil):
    bad = 2 * M2 + 300 * K4

    def prepare(g):
        if spoil == "validated":                  # double validation: CF=1, terminate
            g.make_private(bad, bad)
            g.pvalidate(bad)
        elif spoil == "immutable":                # the host's RMPUPDATE fails
            g.rmpupdate(bad, gpa=bad, asid=0, assigned=True, immutable=True)
        elif spoil == "permissions":              # VMPL1 permissions in the region
            g.make_private(bad, bad)
            g.pvalidate(bad)
            g.rmpadjust(bad, target_vmpl=1, perms=1)
            g.unaccept(bad, bad + K4)
    out, _ = _same(prepare, [("accept", 0, 4 * M2, 0)])
    if spoil == "permissions":
        assert out == ["ok"]
    else:
        assert out != ["ok"]


def test_several_vcpus_are_charged_apart():
    out, snap = _same(_nothing, [("accept", 0, 3 * M2, 0), ("accept", 3 * M2, 5 * M2 + 12 * K4, 1),
                                 ("accept", 5 * M2 + 12 * K4, LOOK, 2)], vcpus=3)
    assert out == ["ok"] * 3
    assert all(snap["cycles"])
