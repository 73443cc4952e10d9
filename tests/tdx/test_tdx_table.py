"""Exhaustive state x operation tables: every SEPT state at 4 KiB and 2 MiB
(plus locked / host-priority / untracked / partly-accepted variants) against
every host SEAMCALL, every ACCEPT level and the malformed operands, in the C
model and in the pure-Python reference model (unaccepted.testing.tdx_reference).
Both must give the same status word, exit information and resulting state."""
from types import SimpleNamespace

import pytest

from _tdx_both import G1, K4, M2, Both, Err, key
from unaccepted import Host

MEM = 2 * G1
G2 = 4 * M2            # the 2 MiB region under test
G4 = G2 + 5 * K4       # a 4 KiB page inside it
OTHER4 = G2 + 7 * K4   # a sibling 4 KiB page (keeps the region split)


def _s(b, fn):
    return b.same(fn())


def host(b, op, pi):
    """A host SEAMCALL with a raw page_info in both models."""
    return getattr(b, op)(0, raw=pi)


def exit_at(gpa, eeq, exit_status=0):
    """A TD exit as the host sees it (what serve_exit reads)."""
    return SimpleNamespace(gpa=gpa, exit_qualification=eeq, exit_status=exit_status)


# setups: name -> list of steps (callables on a Both); each yields one state
def aug2m(b):
    _s(b, lambda: host(b, "aug", G2 | 1))


def acc2m(b):
    _s(b, lambda: b.accept(rcx=G2 | 1))


def blk2m(b):
    _s(b, lambda: host(b, "block", G2 | 1))


def trk(b):
    b.track()


def aug4k(b, g=G4):
    _s(b, lambda: host(b, "aug", g))


def acc4k(b):
    _s(b, lambda: b.accept(rcx=G4))


def blk4k(b):
    _s(b, lambda: host(b, "block", G4))


def removed2m(b):
    aug2m(b), blk2m(b), trk(b)
    b.set_importing(True)
    _s(b, lambda: host(b, "remove", G2 | 1))
    b.set_importing(False)


def removed4k(b):
    aug4k(b), blk4k(b), trk(b)
    b.set_importing(True)
    _s(b, lambda: host(b, "remove", G4))
    b.set_importing(False)


def partly(b):
    aug2m(b)
    b.set_interrupts(0, 7)
    r = _s(b, lambda: b.accept(rcx=G2 | 1))
    assert r.interrupted and r.accept_counter == 7


SETUPS_2M = {
    "FREE": [],
    "PENDING": [aug2m],
    "PENDING_partly_accepted": [partly],
    "MAPPED": [aug2m, acc2m],
    "BLOCKED_untracked": [aug2m, acc2m, blk2m],
    "BLOCKED": [aug2m, acc2m, blk2m, trk],
    "PENDING_BLOCKED_untracked": [aug2m, blk2m],
    "PENDING_BLOCKED": [aug2m, blk2m, trk],
    "REMOVED": [removed2m],
    "NL_MAPPED": [aug4k],
    "NL_BLOCKED_untracked": [aug4k, blk2m],
    "NL_BLOCKED": [aug4k, blk2m, trk],
    "MAPPED_locked": [aug2m, acc2m, lambda b: b.set_lock(G2, 1)],
    "PENDING_locked": [aug2m, lambda b: b.set_lock(G2, 1)],
    "PENDING_host_priority": [aug2m, lambda b: b.set_host_priority(G2, 1)],
}
SETUPS_4K = {
    "FREE": [lambda b: aug4k(b, OTHER4)],
    "PENDING": [aug4k],
    "MAPPED": [aug4k, acc4k],
    "BLOCKED_untracked": [aug4k, acc4k, blk4k],
    "BLOCKED": [aug4k, acc4k, blk4k, trk],
    "PENDING_BLOCKED_untracked": [aug4k, blk4k],
    "PENDING_BLOCKED": [aug4k, blk4k, trk],
    "REMOVED": [lambda b: aug4k(b, OTHER4), removed4k],
    "MAPPED_in_blocked_table": [aug4k, acc4k, blk2m, trk],
    "PENDING_locked": [aug4k, lambda b: b.set_lock(G4, 0)],
    "MAPPED_locked": [aug4k, acc4k, lambda b: b.set_lock(G4, 0)],
    "PENDING_host_priority": [aug4k, lambda b: b.set_host_priority(G4, 0)],
}
SETUPS = {**{"2M:" + k: v for k, v in SETUPS_2M.items()},
          **{"4K:" + k: v for k, v in SETUPS_4K.items()}}

HOST_OPS = ["aug", "block", "remove", "unblock", "demote", "promote"]
OPERANDS = {
    "4K": G4,
    "2M": G2 | 1,
    "1G": 0 | 2,
    "2M_misaligned": G4 | 1,
    "reserved_bits": G2 | 1 | 0x100,
    "reserved_high": G2 | 1 | (1 << 60),
    "level3": 3,
    "shared_gpa": (1 << 51) | G2 | 1,
    "past_guest": MEM | 1,
}


def build(setup, **kw):
    b = Both(MEM, **kw)
    for step in SETUPS[setup]:
        step(b)
    b.check_same(G2, G2 + M2, [G4])
    return b


def after(b):
    b.check_same(G2, G2 + M2, [G4, OTHER4, G2])


@pytest.mark.parametrize("operand", sorted(OPERANDS))
@pytest.mark.parametrize("op", HOST_OPS)
@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_host_seamcall(setup, op, operand):
    b = build(setup)
    c, r = host(b, op, OPERANDS[operand])
    assert key(c) == key(r), (setup, op, operand, c, r)
    after(b)


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_track_then_every_host_op(setup):
    b = build(setup)
    b.track()
    for op in HOST_OPS:
        for pi in (G4, G2 | 1):
            c, r = host(b, op, pi)
            assert key(c) == key(r), (setup, op, hex(pi), c, r)
            after(b)


ACCEPTS = {
    "4K": (G4, 6),
    "2M": (G2 | 1, 6),
    "1G": (0 | 2, 6),
    "2M_misaligned": (G4 | 1, 6),
    "reserved_bits": (G4 | 0x8, 6),
    "reserved_high": (G4 | (1 << 52), 6),
    "level3": (G2 | 3, 6),
    "shared_gpa": ((1 << 51) | G4, 6),
    "past_guest_4k": (MEM + K4, 6),
    "past_guest_2m": (MEM | 1, 6),
    "rax_version": (G4, 6 | (1 << 16)),
    "rax_reserved": (G2 | 1, 6 | (1 << 40)),
}


@pytest.mark.parametrize("accept_1g", [False, True])
@pytest.mark.parametrize("case", sorted(ACCEPTS))
@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_accept(setup, case, accept_1g):
    b = build(setup, accept_1g=accept_1g)
    rcx, rax = ACCEPTS[case]
    c, r = b.accept(rcx=rcx, rax=rax)
    assert key(c) == key(r), (setup, case, c, r)
    after(b)
    # an exit is served by the host (KVM) the same way in both models, and
    # the re-executed TDCALL gives the same answer again
    if isinstance(c, Err) or not c.exited:
        return
    c2, r2 = b.serve_exit(c)
    assert key(c2) == key(r2), (setup, case, c2, r2)
    after(b)
    if isinstance(c2, Err):
        return
    c3, r3 = b.accept(rcx=rcx, rax=rax)
    assert key(c3) == key(r3)
    after(b)


@pytest.mark.parametrize("after_chunks", [1, 2, 100, 511, 512, 600])
@pytest.mark.parametrize("setup", ["2M:PENDING", "2M:PENDING_partly_accepted"])
def test_accept_2m_with_interrupts(setup, after_chunks):
    b = build(setup)
    b.set_interrupts(0, after_chunks, period=3)
    for _ in range(400):
        c, r = b.accept(rcx=G2 | 1)
        assert key(c) == key(r)
        after(b)
        if not c.interrupted:
            break
    assert c.rax == 0


@pytest.mark.parametrize("write", [False, True])
@pytest.mark.parametrize("ve_disable", [False, True])
@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_access(setup, ve_disable, write):
    b = build(setup, pending_ve_disable=ve_disable)
    for g in (G4, G2, G4 | (1 << 51), MEM + K4):
        c, r = b.access(g, write)
        assert key(c) == key(r), (setup, hex(g), c, r)
        # a second touch: #DF when VE info is still valid
        c, r = b.access(g, write)
        assert key(c) == key(r), (setup, hex(g), c, r)
    after(b)


# 0.1's VMM policies AUG_REQUESTED, AUG_4K, REFUSE are the hosts kvm,
# aug-4k, never-resolve
@pytest.mark.parametrize("host", ["kvm", "aug-4k", "never-resolve"])
@pytest.mark.parametrize("backing", ["2M", "4K"])
@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_vmm_services_plain_violation(setup, backing, host):
    b = Both(MEM, backing=backing, host=Host(host))
    for step in SETUPS[setup]:
        step(b)
    c, r = b.access(G4)
    assert key(c) == key(r)
    c, r = b.serve_exit(exit_at(G4, 0))
    assert key(c) == key(r), (setup, c, r)
    after(b)


@pytest.mark.parametrize("data_nonzero", [False, True])
@pytest.mark.parametrize("operand", sorted(OPERANDS))
def test_add_before_and_after_finalize(operand, data_nonzero):
    b = Both(MEM, finalized=False)
    c, r = b.add(0, raw=OPERANDS[operand], data_nonzero=data_nonzero)
    assert key(c) == key(r), (operand, c, r)
    c, r = b.add(G4, data_nonzero=data_nonzero)   # again on the same page: now MAPPED
    assert key(c) == key(r)
    assert [x.status for x in b.finalize()] == [0, 0]
    c, r = b.finalize()
    assert key(c) == key(r) and c.status == 0xC000060800000000
    c, r = b.add(G4 + K4)
    assert key(c) == key(r) and c.status == 0xC000060800000000
    after(b)


BUILD_SETUPS = {
    "FREE": [],
    "4K:MAPPED": [lambda b: _s(b, lambda: b.add(G4))],
    "4K:FREE_in_table": [lambda b: _s(b, lambda: b.add(OTHER4))],
    "4K:BLOCKED": [lambda b: _s(b, lambda: b.add(G4)), blk4k],
    "4K:BLOCKED_tracked": [lambda b: _s(b, lambda: b.add(G4)), blk4k, trk],
    "NL_BLOCKED": [lambda b: _s(b, lambda: b.add(G4)), blk2m],
    "4K:MAPPED_locked": [lambda b: _s(b, lambda: b.add(G4)), lambda b: b.set_lock(G4, 0)],
    "2M:PENDING_aug": [aug2m],
    "4K:PENDING_aug": [aug4k],
    "2M:PENDING_BLOCKED_aug": [aug2m, blk2m],
    "4K:REMOVED": [lambda b: _s(b, lambda: b.add(G4)), lambda b: b.set_importing(True),
                   lambda b: _s(b, lambda: host(b, "remove", G4)),
                   lambda b: b.set_importing(False)],
}


@pytest.mark.parametrize("operand", sorted(OPERANDS))
@pytest.mark.parametrize("op", HOST_OPS + ["add"])
@pytest.mark.parametrize("setup", sorted(BUILD_SETUPS))
def test_host_ops_before_finalize(setup, op, operand):
    """In the build phase: ADD and AUG allowed, nothing needs blocking."""
    b = Both(MEM, finalized=False)
    for step in BUILD_SETUPS[setup]:
        step(b)
    after(b)
    pi = OPERANDS[operand]
    c, r = host(b, op, pi)
    assert key(c) == key(r), (setup, op, operand, c, r)
    after(b)
    # and the same TD once finalized
    assert [x.status for x in b.finalize()] == [0, 0]
    c, r = host(b, op, pi)
    assert key(c) == key(r), (setup, op, operand, c, r)
    after(b)
