"""The catalogue of bad inputs (issue 9): every entry point, given input that
is wrong in each way a user can get it wrong, raises the project's typed
error naming what is wrong, leaves the object's state exactly as it was,
and the good work that follows on the same object still succeeds.

Each case is (id, make, state, bad, good, error):
  make()        -> the object under test
  state(obj)    -> a snapshot that must not change
  bad(obj)      -> the call with bad input
  good(obj)     -> a good call afterwards (asserts its own result)
  error         -> the exception class expected (or a tuple, for replay lines
                   checked through their output instead)
"""
import io
import json

import pytest

from unaccepted import (AcceptFailed, CallbackError, UnacceptedError, Cost, Host, InvalidArgument, InvalidMemoryMap, InvalidOp,
                        InvalidState, InvalidTable, InvalidUnitSize, MemoryDescriptor as D,
                        MemoryMap, MemoryType, Misaligned, OpBatch, OutOfRange, PythonPrimitive,
                        Recorder, SnpConfig, SnpGuest, Table, TableTooLarge, TdxConfig,
                        TdxGuest, UnknownTableVersion, stub_build_table)
from unaccepted._core import ffi, lib
from unaccepted.boot import BootConfig, boot
from unaccepted.matrix import grid, run
from unaccepted.memlog import parse_memmap
from unaccepted.replay import replay_bytes

K4, M2, G1 = 4096, 2 << 20, 1 << 30
MAP = MemoryMap([D(MemoryType.CONVENTIONAL, 0, G1 // K4), D(MemoryType.UNACCEPTED, 4 * G1, G1 // K4)])


def table():
    t, _ = stub_build_table(MAP)
    return t


def table_state(t):
    return t.to_bytes()


def table_good(t):
    assert t.accept(4 * G1, M2) == 2                  # 2 MiB + the guard unit
    assert not t.contains(4 * G1, M2)


def guest(cls):
    def make():
        g = cls(64 << 20)
        g.accept_path("linux")(0, M2)
        return g
    return make


def guest_state(g):
    return g.count_accepted(), g.fatal, g.path_stats("linux")


def guest_good(g):
    g.accept_path("linux")(4 * M2, 6 * M2)
    assert g.count_accepted(4 * M2, 6 * M2) == 1024 and g.fatal is None


def raises_in(fn, exc):
    def call():
        with pytest.raises(exc):
            fn()
    return call


class Returns:
    """A primitive callback that returns `value`."""

    def __init__(self, value):
        self.value = value

    def __call__(self, start, end, vcpu):
        return self.value


CASES = []


def case(id, make, state, bad, good, error):
    CASES.append(pytest.param(make, state, bad, good, error, id=id))


# ---- the table: construction, parsing, the binary form ------------------------------------
for bad_id, fn, err in [
    ("table-unit-not-power-of-two", lambda t: Table(3000, 0, 1), InvalidUnitSize),
    ("table-unit-bool", lambda t: Table(True, 0, 1), InvalidArgument),
    ("table-base-negative", lambda t: Table(M2, -M2, 1), InvalidArgument),
    ("table-base-misaligned", lambda t: Table(M2, 12345, 1), Misaligned),
    ("table-too-large", lambda t: Table(K4, 0, (256 << 20) + 1), TableTooLarge),
    ("table-coverage-past-2^64", lambda t: Table(M2, (1 << 64) - 16 * M2 // 2, 1), OutOfRange),
    ("parse-version-2", lambda t: Table.parse(b"\x02\0\0\0\0\0\x20\0" + bytes(16) + b"\0"),
     UnknownTableVersion),
    ("parse-truncated", lambda t: Table.parse(t.to_bytes()[:-1]), InvalidTable),
    ("parse-trailing-bytes", lambda t: Table.parse(t.to_bytes() + b"x"), InvalidTable),
    ("parse-not-bytes", lambda t: Table.parse([1, 2, 3]), InvalidTable),
    ("parse-header-only-20", lambda t: Table.parse(bytes(20)), InvalidTable),
    ("bitmap-wrong-size", lambda t: setattr(t, "bitmap", b"\0" * (t.size + 1)), OutOfRange),
    ("mark-past-end", lambda t: t.mark(0, t.nbits + 1), OutOfRange),
    ("mark-negative", lambda t: t.mark(-1, 2), InvalidOp),
]:
    case(bad_id, table, table_state, fn, table_good, err)

# ---- the kernel's accept path: arguments -----------------------------------------------
for bad_id, fn, err in [
    ("accept-bool-start", lambda t: t.accept(True, K4), InvalidOp),
    ("accept-bool-size", lambda t: t.accept(4 * G1, True), InvalidOp),
    ("accept-str-start", lambda t: t.accept("4G", K4), InvalidOp),
    ("accept-float-size", lambda t: t.accept(4 * G1, 4096.0), InvalidOp),
    ("accept-negative", lambda t: t.accept(-K4, K4), InvalidOp),
    ("accept-past-2^64", lambda t: t.accept((1 << 64) - K4, 2 * K4), OutOfRange),
    ("accept-vcpu-negative", lambda t: t.accept(4 * G1, K4, vcpu=-1), InvalidOp),
    ("accept-vcpu-str", lambda t: t.accept(4 * G1, K4, vcpu="0"), InvalidOp),
    ("contains-bool", lambda t: t.contains(False, K4), InvalidOp),
    ("contains-past-2^64", lambda t: t.contains((1 << 64) - K4, 2 * K4), OutOfRange),
    ("contains-none", lambda t: t.contains(None, K4), InvalidOp),
    ("detailed-negative-size", lambda t: t.accept_detailed(0, -1), InvalidOp),
    ("batch-unknown-kind", lambda t: t.run([("touch", 0, K4)]), InvalidOp),
    ("batch-short-tuple", lambda t: t.run([("accept", 0)]), InvalidOp),
    ("batch-not-a-tuple", lambda t: t.run(["accept"]), InvalidOp),
    ("batch-bool-start", lambda t: t.run([("accept", True, K4)]), InvalidOp),
    ("batch-vcpu-2^32", lambda t: t.run([("accept", 0, K4, 1 << 32)]), InvalidOp),
    ("process-range-misaligned", lambda t: t.process_range(4097, 8 << 20), Misaligned),
    ("process-map-not-a-map", lambda t: t.process_memory_map([(15, 0, 1)]), InvalidMemoryMap),
    ("set-accept-not-callable", lambda t: t.set_accept(42), InvalidArgument),
]:
    case(bad_id, table, table_state, fn, table_good, err)

# ---- accept callbacks: what a primitive returns or does ---------------------------------


def with_primitive(prim_factory):
    def make():
        t = table()
        t.set_accept(prim_factory(t))
        return t
    return make


def restore_good(t):
    t.set_accept(None)
    table_good(t)


for bad_id, factory, err in [
    ("callback-returns-string", lambda t: Returns("ok"), CallbackError),
    ("callback-returns-float", lambda t: Returns(0.0), CallbackError),
    ("callback-returns-list", lambda t: Returns([]), CallbackError),
    ("callback-raises", lambda t: PythonPrimitive(lambda s, e, v: 1 / 0), CallbackError),
    ("callback-re-enters-its-range", lambda t: (lambda s, e, v: t.accept(s, e - s)),
     (CallbackError, InvalidState)),
    ("callback-marks-while-accepting", lambda t: (lambda s, e, v: t.mark(0, 1)),
     (CallbackError, InvalidState)),
    ("recorder-forwarding-a-failure", lambda t: Recorder(next=Returns(False)), AcceptFailed),
]:
    case(bad_id, with_primitive(factory), table_state,
         lambda t: t.accept(4 * G1 + 8 * M2, M2), restore_good, err)

# ---- memory maps and the stub -----------------------------------------------------------
for bad_id, fn, err in [
    ("stub-list-not-map", lambda t: stub_build_table([1, 2]), InvalidMemoryMap),
    ("map-overlap", lambda t: stub_build_table(MemoryMap([D(15, 0, 512), D(15, 4096, 1)])),
     InvalidMemoryMap),
    ("map-empty-descriptor", lambda t: MemoryMap([D(15, 0, 0)]).validate(), InvalidMemoryMap),
    ("map-misaligned", lambda t: MemoryMap([D(15, 1, 1)]).validate(), InvalidMemoryMap),
    ("map-past-2^64", lambda t: MemoryMap([D(15, (1 << 64) - K4, 2)]).validate(),
     InvalidMemoryMap),
    ("map-limit-zero", lambda t: MAP.validate(limit=0), InvalidMemoryMap),
    ("map-type-negative", lambda t: MemoryMap([D(-1, 0, 1)]).validate(), InvalidMemoryMap),
    ("map-bytes-short", lambda t: MemoryMap.from_bytes(b"\0" * 47), InvalidMemoryMap),
    ("map-json-not-list", lambda t: MemoryMap.from_json('{"a": 1}'), InvalidMemoryMap),
    ("memlog-garbage", lambda t: parse_memmap(b"\xff\xfe not a map"), InvalidMemoryMap),
    ("stub-unit-zero", lambda t: stub_build_table(MAP, unit_size=0), InvalidUnitSize),
]:
    case(bad_id, table, table_state, fn, table_good, err)

# ---- cost, guests and hosts ---------------------------------------------------------------
for cls in (SnpGuest, TdxGuest):
    name = cls.__name__[:3].lower()
    for bad_id, fn, err in [
        ("cost-int", lambda g: Cost(5), InvalidArgument),
        ("cost-vcpus-negative", lambda g: Cost("count", vcpus=-1), InvalidArgument),
        ("path-unknown-kind", lambda g: g.accept_path("bios"), InvalidArgument),
        ("path-unknown-option", lambda g: g.accept_path("linux", turbo=True), InvalidArgument),
        ("accept-misaligned", lambda g: g.accept_path("linux")(4 * M2 + 1, 6 * M2), Misaligned),
        ("accept-past-guest", lambda g: g.accept_path("linux")(0, 1 << 40), OutOfRange),
        ("accept-vcpu-out-of-range", lambda g: g.accept_path("linux")(0, M2, 7),
         InvalidArgument),
        ("unaccept-reversed", lambda g: g.unaccept(6 * M2, 4 * M2), InvalidArgument),
        ("touch-bool-gpa", lambda g: g.touch(True), InvalidArgument),
        ("touch-vcpu-out-of-range", lambda g: g.touch(K4, vcpu=3), InvalidArgument),
        ("set-host-not-a-host", lambda g: g.set_host("kvm"), InvalidArgument),
        ("host-unknown-behaviour", lambda g: Host("evil"), InvalidArgument),
    ]:
        case(f"{name}-{bad_id}", guest(cls), guest_state, fn, guest_good, err)

for bad_id, fn, err in [
    ("snp-config-memory-negative", lambda g: SnpConfig(-1), InvalidArgument),
    ("snp-config-vcpus-zero", lambda g: SnpConfig(64 << 20, vcpus=0), InvalidArgument),
    ("tdx-config-initial", lambda g: TdxConfig(64 << 20, initial="warm"), InvalidArgument),
    ("tdx-config-gpaw", lambda g: TdxConfig(64 << 20, gpaw=40), InvalidArgument),
    ("tdx-config-backing", lambda g: TdxConfig(64 << 20, backing="1G"), InvalidArgument),
]:
    case(bad_id, guest(TdxGuest), guest_state, fn, guest_good, err)

# ---- the boot flow -----------------------------------------------------------------------
for bad_id, fn, err in [
    ("boot-not-a-config", lambda _: boot({"vendor": "snp"}), InvalidArgument),
    ("boot-vendor", lambda _: BootConfig(vendor="sev"), InvalidArgument),
    ("boot-ram-not-mib", lambda _: BootConfig(ram=(1 << 30) + 1), InvalidArgument),
    ("boot-ram-bool", lambda _: BootConfig(ram=True), InvalidArgument),
    ("boot-firmware-size-on-ovmf", lambda _: BootConfig(firmware="ovmf:1G"), InvalidArgument),
    ("boot-ranges-overlap", lambda _: BootConfig(ram=3 << 30, ram_ranges=((0, 2 << 30),
                                                                          (1 << 30, 2 << 30))),
     InvalidArgument),
    ("boot-firmware-debug", lambda _: BootConfig(firmware_debug=("fast",)), InvalidArgument),
    ("matrix-axis", lambda _: grid({"colour": ["red"]}), InvalidArgument),
    ("matrix-workers", lambda _: run([BootConfig()], workers=0), InvalidArgument),
]:
    case(bad_id, lambda: BootConfig(), lambda c: c, fn,
         lambda c: None if boot(c).booted else pytest.fail("good boot failed"), err)


@pytest.mark.parametrize("make, state, bad, good, error", CASES)
def test_bad_input(make, state, bad, good, error):
    obj = make()
    before = state(obj)
    with pytest.raises(error) as exc:
        bad(obj)
    assert isinstance(exc.value, UnacceptedError)  # the project's typed errors
    assert str(exc.value)                         # it says what is wrong
    assert state(obj) == before                   # nothing changed
    good(obj)                                     # and the good work still runs


def test_the_catalogue_covers_every_class():
    ids = [p.id for p in CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)
    for prefix in ("table-", "parse-", "accept-", "batch-", "callback-", "map-", "snp-",
                   "tdx-", "boot-", "matrix-", "cost-", "contains-"):
        assert any(i.startswith(prefix) or f"-{prefix}" in i for i in ids), prefix


# ---- replay lines: each bad line gets its error line, the good ones around it run --------
GOOD = json.dumps({"id": "good", "ops": [{"op": "contains", "start": 0, "size": 4096}],
                   "memory_map": [{"type": 15, "start": 0, "pages": 2048}]}).encode()


@pytest.mark.parametrize("line, kind", [
    (b"[" * 1000 + b"]" * 1000, "InvalidTrace"),
    (b"\xff\xfe\xfd", "InvalidTrace"),
    (b"{\"id\": \"x\"", "InvalidTrace"),
    (b"", "InvalidTrace"),
    (b"{\"id\": 5, \"memory_map\": [], \"ops\": []}", "InvalidTrace"),
    (b"{\"id\": \"x\", \"unit_size\": 3000, \"memory_map\": [], \"ops\": []}", "InvalidUnitSize"),
    (b"{\"id\": \"x\", \"memory_map\": [{\"type\": 15, \"start\": 1, \"pages\": 1}], \"ops\": []}",
     "InvalidMemoryMap"),
    (b"{\"id\": \"x\", \"memory_map\": [], \"ops\": [{\"op\": \"jump\", \"start\": 0, \"size\": 1}]}",
     "InvalidOp"),
    (b"{\"id\": \"x\", \"unit_size\": 4096, \"ops\": [], \"memory_map\": "
     b"[{\"type\": 15, \"start\": 0, \"pages\": 268435456}]}", "CaseTooLarge"),
])
def test_bad_replay_line_between_good_ones(line, kind):
    out = io.StringIO()
    failed = replay_bytes(io.BytesIO(GOOD + b"\n" + line + b"\n" + GOOD + b"\n"), out)
    first, middle, last = (json.loads(x) for x in out.getvalue().splitlines())
    assert failed == 1
    assert middle["error"]["kind"] == kind and middle["error"]["message"]
    assert first == last and first["results"] == [{"contains": True}]


def test_c_core_null_handles_and_overflowing_sizes_give_statuses():
    # the C API directly: NULL handles and sizes that wrap 2^64 are statuses
    assert lib.ua_accept_memory(ffi.NULL, 0, K4, 0, ffi.NULL) == lib.UA_E_INVAL
    t = table()
    before = t.to_bytes()
    assert lib.ua_accept_memory(t._handle, (1 << 64) - K4, 2 * K4, 0, ffi.NULL) == lib.UA_E_RANGE
    assert lib.ua_contains_unaccepted(t._handle, (1 << 64) - K4, 2 * K4) == -lib.UA_E_RANGE
    cursor = ffi.new("size_t *")
    assert lib.ua_run_ops(t._handle, ffi.NULL, 3, ffi.NULL, cursor) == lib.UA_E_INVAL
    assert t.to_bytes() == before
    table_good(t)


def test_a_recorder_records_only_what_its_next_primitive_accepted():
    t = table()
    rec = Recorder(next=Returns(False))
    t.set_accept(rec)
    with pytest.raises(AcceptFailed):
        t.accept(4 * G1, M2)
    assert len(rec) == 0 and t.contains(4 * G1, M2)
