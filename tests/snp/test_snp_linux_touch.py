"""Linux's handling of a guest touch on SNP (arch/x86/coco/sev/vc-handle.c;
AMD APM vol. 2 section 15.36.10, Table 15-39):
#VC 0x404 has no handler, so kernel mode terminates with reason set 0 code 0
and user mode gets SIGBUS; NPFs go to the host.

0.2 (docs/changes-0.2.md): `guest.touch(gpa, write=, user=)` returns a
TouchResult whose outcome says what happened (it no longer raises
GuestTerminated / GuestHung); fatal outcomes are also in `guest.fatal`."""
from unaccepted import FatalKind, Host, TouchOutcome
from unaccepted.snp import SnpGuest

MiB = 1 << 20
X = 64 * MiB              # a guest page used by the tests


def accepted_guest(**kw):
    g = SnpGuest(256 * MiB, backing="2M", spare_bytes=16 * MiB, **kw)
    g.accept_path("linux").accept(X, X + 2 * MiB)
    return g


def test_touching_accepted_memory_just_works():
    g = accepted_guest()
    r = g.touch(X + 4096, write=True)
    assert r.outcome == TouchOutcome.SERVED and r.vector == 0 and r.exits == 0
    assert g.fatal is None


def test_kernel_touch_of_an_unvalidated_page_terminates_with_gen_req():
    g = SnpGuest(256 * MiB, backing="2M")
    assert g.make_private(X, X) == 0                   # assigned by the host, never validated
    r = g.touch(X)                                     # 0.2: an outcome, not GuestTerminated
    assert r.outcome == TouchOutcome.TERMINATED and r.outcome.fatal
    t = g.fatal
    assert t.kind == FatalKind.TERMINATED and (t.reason_set, t.reason_code) == (0, 0)
    assert t.code == 0x100                             # 0x100 | set 0 << 12 | code 0 << 16
    assert t.gpa == X


def test_user_touch_of_an_unvalidated_page_is_sigbus_and_the_guest_lives():
    g = SnpGuest(256 * MiB, backing="2M")
    g.make_private(X, X)
    r = g.touch(X, user=True)
    # SIGBUS: a fault the guest survives, after #VC (vector 29) with error code 0x404
    assert r.outcome == TouchOutcome.GUEST_FAULT and not r.outcome.fatal
    assert r.vector == 29 and r.error_code == 0x404
    assert g.fatal is None


def test_remap_after_validation_is_detected_and_fatal():
    """Attack (a) of docs/snp.md: the host points X at a fresh SPA B it made private."""
    g = accepted_guest()
    b = 256 * MiB                                      # a spare host page
    assert g.make_private(b, X) == 0
    g.npt_map(X, b)
    assert g.touch(X).outcome == TouchOutcome.TERMINATED
    assert g.fatal.reason_set == 0


def test_npf_the_host_cannot_fix_hangs_the_guest():
    g = SnpGuest(256 * MiB, backing="2M")              # never assigned: NPF forever
    r = g.touch(X)                                     # 0.2: an outcome, not GuestHung
    assert r.outcome == TouchOutcome.HUNG and r.exits >= 1
    assert g.fatal.kind == FatalKind.HUNG and g.fatal.gpa == X


def test_lazy_host_assigns_on_the_first_npf_then_the_missing_validation_shows():
    g = SnpGuest(256 * MiB, backing="2M", host=Host(lazy_rmpupdate=True))
    g.accept_path("linux").accept(X, X + 2 * MiB)      # PSC records private, RMPUPDATE on NPF
    assert g.touch(X).outcome == TouchOutcome.SERVED
