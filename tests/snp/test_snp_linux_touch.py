"""Linux's handling of a guest touch on SNP (arch/x86/coco/sev/vc-handle.c;
AMD APM vol. 2 section 15.36.10, Table 15-39):
#VC 0x404 has no handler, so kernel mode terminates with reason set 0 code 0
and user mode gets SIGBUS; NPFs go to the host."""
import pytest

from unaccepted import GuestHung, GuestTerminated
from unaccepted.snp import Access, Fault, PageSize, SnpGuest

MiB = 1 << 20
X = 64 * MiB              # a guest page used by the tests


def accepted_guest(**kw):
    g = SnpGuest(256 * MiB, backing="2M", spare_bytes=16 * MiB, **kw)
    g.accept_path("linux").accept(X, X + 2 * MiB)
    return g


def test_touching_accepted_memory_just_works():
    g = accepted_guest()
    r = g.linux_touch(X + 4096, Access.WRITE)
    assert r.access.fault == Fault.NONE and not r.sigbus
    assert not g.termination.terminated


def test_kernel_touch_of_an_unvalidated_page_terminates_with_gen_req():
    g = SnpGuest(256 * MiB, backing="2M")
    assert g.make_private(X, X) == 0                   # assigned by the host, never validated
    with pytest.raises(GuestTerminated):
        g.linux_touch(X)
    t = g.termination
    assert t.terminated and (t.reason_set, t.reason_code) == (0, 0)
    assert t.msr == 0x100                             # 0x100 | set 0 << 12 | code 0 << 16
    assert t.gpa == X


def test_user_touch_of_an_unvalidated_page_is_sigbus_and_the_guest_lives():
    g = SnpGuest(256 * MiB, backing="2M")
    g.make_private(X, X)
    r = g.linux_touch(X, user_mode=True)
    assert r.sigbus and r.access.fault == Fault.VC and r.access.error_code == 0x404
    assert not g.termination.terminated


def test_remap_after_validation_is_detected_and_fatal():
    """Attack (a) of docs/snp.md: the host points X at a fresh SPA B it made private."""
    g = accepted_guest()
    b = 256 * MiB                                      # a spare host page
    assert g.make_private(b, X) == 0
    g.npt_map(X, b)
    with pytest.raises(GuestTerminated):
        g.linux_touch(X, Access.READ)
    assert g.termination.reason_set == 0


def test_npf_the_host_cannot_fix_hangs_the_guest():
    g = SnpGuest(256 * MiB, backing="2M")              # never assigned: NPF forever
    with pytest.raises(GuestHung):
        g.linux_touch(X)


def test_lazy_host_assigns_on_the_first_npf_then_the_missing_validation_shows():
    g = SnpGuest(256 * MiB, backing="2M", lazy_rmpupdate=True)
    g.accept_path("linux").accept(X, X + 2 * MiB)      # PSC records private, RMPUPDATE on NPF
    assert g.linux_touch(X).access.fault == Fault.NONE
