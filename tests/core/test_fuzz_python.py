"""Hypothesis fuzzing of the Python entry points that read untrusted bytes:
`unaccepted.replay` (docs/trace-format.md), `unaccepted.memlog.parse_memmap`
(docs/memmap.md) and `Table.parse`.

Each gets arbitrary bytes and nearly valid input (a valid input, then
mutated), and may only answer as documented:
  - replay: one output line per input line, each a result object with the
    documented keys in order or an error line with a documented kind; the
    count of failed cases is the count of error lines;
  - parse_memmap: a ParseResult (whose maps serialize and format) or
    InvalidMemoryMap, never another exception, in bounded time;
  - Table.parse: a Table that serializes back to the bytes it read, or a
    typed UnacceptedError.
The libFuzzer harnesses in fuzz/ cover the C entry points (docs/fuzzing.md).
"""
import io
import json
import struct
import time

from hypothesis import assume, example, given, settings, strategies as st

from unaccepted.errors import InvalidMemoryMap, UnacceptedError
from unaccepted.memlog import ParseResult, format_map, parse_memmap
from unaccepted.memmap import MemoryDescriptor, MemoryMap
from unaccepted.replay import replay, replay_bytes
from unaccepted.table import Table
from unaccepted.testing.strategies import memory_maps, ops, unit_sizes

FUZZ = settings(max_examples=200, deadline=None)

RESULT_KEYS = ["id", "table", "stub_accepted", "results", "bitmap"]
TABLE_KEYS = ["version", "unit_size", "phys_base", "size", "bitmap"]
ERROR_KINDS = {"InvalidTrace", "InvalidUnitSize", "InvalidMemoryMap", "InvalidOp",
               "TableTooLarge"}


# ---- mutation of valid inputs ------------------------------------------------------
@st.composite
def mutated(draw, data: bytes, max_edits: int = 4):
    """data with a few byte edits: flips, overwrites, insertions, deletions,
    a truncation, or a duplicated slice."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, max_edits))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, len(buf)))
        if kind == "insert" or not buf:
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "flip":
            buf[pos % len(buf)] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            buf[pos % len(buf)] = draw(st.sampled_from(b'0179af"[]{}:,-.eE \\\n\x00\xff'))
        elif kind == "delete":
            del buf[pos:pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del buf[pos:]
        else:
            end = draw(st.integers(pos, len(buf)))
            buf[pos:pos] = buf[pos:end]
    return bytes(buf)


# ---- replay ------------------------------------------------------------------------
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70),
                         st.floats(allow_nan=False), st.text(max_size=6))
json_values = st.recursive(json_scalars,
                           lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                           max_leaves=12)


@st.composite
def valid_cases(draw):
    mm = draw(memory_maps(max_descriptors=6))
    unit = draw(unit_sizes)
    case = {"id": draw(st.text(max_size=6)),
            "memory_map": [{"type": d.type, "start": d.start, "pages": d.pages} for d in mm],
            "ops": [{"op": k, "start": s, "size": n} for k, s, n in draw(ops(mm, unit))]}
    if draw(st.booleans()):
        case["unit_size"] = unit
    return case


@st.composite
def odd_cases(draw):
    """Case-shaped objects whose fields hold anything."""
    case = draw(valid_cases())
    for key in draw(st.lists(st.sampled_from(["id", "unit_size", "memory_map", "ops"]),
                             max_size=2)):
        if draw(st.booleans()):
            case.pop(key, None)
        else:
            case[key] = draw(json_values)
    for item in case.get("memory_map", []) + case.get("ops", []) \
            if isinstance(case.get("memory_map"), list) and isinstance(case.get("ops"), list) \
            else []:
        if isinstance(item, dict) and draw(st.integers(0, 9)) == 0:
            item[draw(st.sampled_from(["type", "start", "pages", "op", "size"]))] = \
                draw(json_values)
    return case


@st.composite
def trace_bytes(draw):
    """A few lines: valid cases, odd cases, any JSON, mutated JSON, raw bytes."""
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 4))
        if kind == 0:
            lines.append(json.dumps(draw(valid_cases())).encode())
        elif kind == 1:
            lines.append(json.dumps(draw(odd_cases())).encode())
        elif kind == 2:
            lines.append(json.dumps(draw(json_values)).encode())
        elif kind == 3:
            lines.append(draw(mutated(json.dumps(draw(valid_cases())).encode())))
        else:
            lines.append(draw(st.binary(max_size=40)))
    return b"\n".join(lines) + draw(st.sampled_from([b"", b"\n", b"\r\n"]))


def _huge_table(line: bytes) -> bool:
    """A case whose bitmap would take more than 1 MiB: valid, but slow to
    build and print; the unit tests cover large tables."""
    try:
        case = json.loads(line)
        unit = case.get("unit_size", 2 << 20)
        starts = [(d["start"], d["start"] + d["pages"] * 4096) for d in case["memory_map"]
                  if d.get("type") == 15]
        lo, hi = min(s for s, _ in starts), max(e for _, e in starts)
        return (hi - lo) // unit > 8 << 20
    except Exception:
        return False


def _check_line(text: str, source: bytes) -> bool:
    """One output line; returns whether it is an error line."""
    obj = json.loads(text)
    assert isinstance(obj, dict)
    try:
        case = json.loads(source.decode("utf-8").rstrip("\r"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        case = None
    if "error" in obj:
        assert list(obj) == ["id", "error"], obj
        assert list(obj["error"]) == ["kind", "message"], obj
        assert obj["error"]["kind"] in ERROR_KINDS, obj
        assert isinstance(obj["error"]["message"], str)
        want_id = case.get("id") if isinstance(case, dict) else None
        assert obj["id"] == want_id or want_id != want_id, (obj["id"], want_id)  # NaN
        return True
    assert list(obj) == RESULT_KEYS, obj
    assert isinstance(case, dict) and obj["id"] == case["id"]
    assert len(obj["results"]) == len(case["ops"])
    for res, o in zip(obj["results"], case["ops"]):
        if o["op"] == "accept":
            assert list(res) == ["accepted"] and all(s < e for s, e in res["accepted"])
        else:
            assert list(res) == ["contains"] and isinstance(res["contains"], bool)
    if obj["table"] is None:
        assert obj["bitmap"] is None and obj["stub_accepted"] == []
    else:
        assert list(obj["table"]) == TABLE_KEYS
        assert len(obj["bitmap"]) == 2 * obj["table"]["size"] == len(obj["table"]["bitmap"])
    return False


@FUZZ
@given(st.one_of(trace_bytes(), st.binary(max_size=200)))
@example(b"")
@example(b"\n\n")
@example(b'{"id": "x", "memory_map": [], "ops": []}\n\xff\xfe\n[1, 2]\n')
@example(b'{"id": [' * 50 + b']' * 50 + b'}')
def test_replay_answers_every_line_as_documented(data):
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    assume(not any(_huge_table(line) for line in lines))
    out = io.StringIO()
    failed = replay_bytes(io.BytesIO(data), out)
    text = out.getvalue()
    assert text == "" or text.endswith("\n")
    got = text.splitlines()
    assert len(got) == len(lines)
    errors = sum(_check_line(g, src) for g, src in zip(got, lines))
    assert failed == errors
    # the text interface answers the same, line for line
    try:
        texts = [line.decode("utf-8") for line in lines]
    except UnicodeDecodeError:
        return
    if not any("\r" in t[:-1] or "\x85" in t or "\u2028" in t for t in texts):
        assert list(replay(t + "\n" for t in texts)) == got


# ---- parse_memmap --------------------------------------------------------------------
def _hex(draw):
    """Hex fields, sometimes far longer than the 16 digits a kernel prints."""
    return draw(st.one_of(st.integers(0, (1 << 64) + 5).map(lambda v: f"{v:#x}"),
                          st.integers(0, 1 << 48).map(lambda v: f"{v:x}"),
                          st.text("0123456789abcdefx", min_size=1, max_size=24),
                          st.sampled_from([17, 33, 3000, 4000]).map(lambda n: "0x" + "f" * n)))


def _decimal(draw):
    """Decimal fields from short to longer than CPython's 4300-digit limit on
    int() (sys.get_int_max_str_digits)."""
    n = draw(st.one_of(st.integers(1, 12), st.sampled_from([4299, 4300, 4301, 6000])))
    return draw(st.sampled_from("0123456789")) * n


@st.composite
def log_lines(draw):
    prefix = draw(st.sampled_from(["", "[    0.000000] ", "[    0.000000] [    T0] ", "<6>",
                                   "Jan  1 00:00:00 host kernel: ", "> ", "2024-01-01T00:00"]))
    kind = draw(st.integers(0, 6))
    if kind == 0:
        body = (f"BIOS-e820: [mem {_hex(draw)}-{_hex(draw)}] "
                + draw(st.sampled_from(["usable", "reserved", "ACPI data", "unaccepted",
                                        "soft reserved", "persistent (type 7)", "(usable)",
                                        "type " + _decimal(draw), "", "bogus"])))
    elif kind == 1:
        body = f"BIOS-e820: {_hex(draw)} - {_hex(draw)} (usable)"
    elif kind == 2:
        name = draw(st.sampled_from(["Conventional", "Unaccepted", "Boot Data", "Reserved",
                                     "type=" + _decimal(draw), "Bogus"]))
        flags = draw(st.lists(st.sampled_from(["WB", "UC", "RUN", "XP", "  ", "attr=0x" +
                                               "f" * draw(st.integers(1, 20)), "??"]),
                              max_size=4))
        tail = draw(st.sampled_from(["", " (0MB)", " (2MB)", " (invalid)"]))
        close = draw(st.sampled_from(["]", ")"]))
        body = (f"efi: mem{_decimal(draw)}: [{name}|{'|'.join(flags)}] "
                f"range=[{_hex(draw)}-{_hex(draw)}{close}{tail}")
    elif kind == 3:
        body = (f"efi: mem{_decimal(draw)}: type={_decimal(draw)}, attr={_hex(draw)}, "
                f"range=[{_hex(draw)}-{_hex(draw)}) ({_decimal(draw)}MB)")
    elif kind == 4:
        body = "BIOS-provided physical RAM map:"
    elif kind == 5:
        body = draw(st.text(max_size=30))
    else:
        body = "efi: mem0" + draw(st.text("0123456789: [|]=-xabcdef()", max_size=40))
    return prefix + body


@st.composite
def memmap_inputs(draw):
    kind = draw(st.integers(0, 4))
    if kind == 0:      # a boot log
        nl = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        return nl.join(draw(st.lists(log_lines(), min_size=1, max_size=6))).encode()
    if kind == 1:      # a binary map, maybe damaged
        descs = [MemoryDescriptor(draw(st.sampled_from([7, 15, 0, 3, 0x70000000, 99])),
                                  draw(st.integers(0, 1 << 40)) * 4096,
                                  draw(st.integers(0, 1 << 20)))
                 for _ in range(draw(st.integers(1, 4)))]
        data = MemoryMap(descs).to_bytes(draw(st.sampled_from([48, 40])))
        return draw(mutated(data, max_edits=2))
    if kind == 2:      # JSON in either documented shape, maybe damaged
        mm = draw(memory_maps(max_descriptors=4))
        obj = draw(st.sampled_from([
            mm.to_json_obj(),
            {"source": "efi", "entries": [{"start": d.start, "end": d.end, "type": d.type,
                                           "attribute": 0} for d in mm]},
            {"maps": [{"source": "e820", "entries": [{"start": 0, "end": 4096,
                                                      "type": "usable"}]}]}]))
        return draw(mutated(json.dumps(obj).encode(), max_edits=3))
    if kind == 3:
        return json.dumps(draw(json_values)).encode()
    return draw(st.binary(max_size=300))


def _check_memmap(data: bytes):
    t0 = time.monotonic()
    try:
        res = parse_memmap(data)
    except InvalidMemoryMap:
        res = None
    assert time.monotonic() - t0 < 5, "parse_memmap took too long"
    if res is not None:
        assert isinstance(res, ParseResult) and res.maps
        json.dumps(res.to_json_obj())
        for m in res.maps:
            format_map(m)
            assert all(0 <= e.start <= e.end for e in m.entries), m


@FUZZ
@given(memmap_inputs())
@example(b"efi: mem" + b"1" * 4301 + b": [Conventional|   |WB] range=[0x0-0xfff] (0MB)")
@example(b"efi: mem00: type=" + b"7" * 4301 + b", attr=0xf, range=[0x0-0x1000) (0MB)")
@example(b"BIOS-e820: [mem 0x0-0xfff] type " + b"1" * 4301)
@example(b"BIOS-e820: [mem 0x0-0x" + b"f" * 4000 + b"] usable")
@example(b"efi: mem00: [Conventional|   |WB] range=[0x0-0x" + b"f" * 4000 + b"] (0MB)")
@example(b"[" * 100000)
@example(b"efi: mem00: [" + b"|" * 20000 + b"] range=[0x0-0xfff]")
def test_parse_memmap_returns_a_map_or_invalid_memory_map(data):
    _check_memmap(data)


# ---- Table.parse ----------------------------------------------------------------------
@st.composite
def table_bytes(draw):
    size = draw(st.integers(0, 64))
    header = struct.pack("<IIQQ",
                         draw(st.sampled_from([1, 1, 1, 0, 2, 0xffffffff])),
                         draw(st.sampled_from([4096, 2 << 20, 1 << 31, 0, 3000, 1 << 12 | 1])),
                         draw(st.sampled_from([0, 4 << 30, 0x800, (1 << 64) - (1 << 31)])),
                         draw(st.sampled_from([size, size, size + 1, 1 << 40, (1 << 64) - 1])))
    data = header + draw(st.binary(min_size=size, max_size=size + 8))
    return draw(mutated(data, max_edits=2)) if draw(st.booleans()) else data


@FUZZ
@given(st.one_of(table_bytes(), st.binary(max_size=80)), st.booleans())
def test_table_parse_returns_a_table_or_a_typed_error(data, exact):
    try:
        t = Table.parse(data, exact=exact)
    except UnacceptedError as exc:
        assert type(exc) is not UnacceptedError  # typed, not the base class
        return
    raw = t.to_bytes()
    assert len(raw) == 24 + t.size and data[:len(raw)] == raw
    assert not exact or len(data) == len(raw)
    assert t.unaccepted_units == sum(bin(b).count("1") for b in data[24:24 + t.size])
    assert Table.parse(bytearray(raw)).to_bytes() == raw
