"""`unaccepted replay`: output checked against the reference model and the
trace format's rules for bad input."""
import io
import json
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from unaccepted.replay import replay, replay_bytes, replay_line
from unaccepted.testing.reference import ref_stub
from unaccepted.testing.strategies import memory_maps, ops, unit_sizes

MiB, GiB = 1 << 20, 1 << 30


def expected(case):
    """The output line computed from the reference model alone."""
    unit = case.get("unit_size", 2 * MiB)
    descs = [(d["type"], d["start"], d["pages"]) for d in case["memory_map"]]
    table, accepted = ref_stub(descs, unit)
    if table is None:
        return {"id": case["id"], "table": None, "stub_accepted": [],
                "results": [{"accepted": []} if o["op"] == "accept" else {"contains": False}
                            for o in case["ops"]], "bitmap": None}
    out = {"id": case["id"],
           "table": {"version": 1, "unit_size": unit, "phys_base": table.phys_base,
                     "size": table.size, "bitmap": table.bitmap_bytes().hex()},
           "stub_accepted": [list(r) for r in accepted], "results": []}
    for o in case["ops"]:
        if o["op"] == "accept":
            out["results"].append({"accepted": [list(r) for r in table.accept(o["start"],
                                                                              o["size"])]})
        else:
            out["results"].append({"contains": table.contains(o["start"], o["size"])})
    out["bitmap"] = table.bitmap_bytes().hex()
    return out


@st.composite
def trace_cases(draw):
    mm = draw(memory_maps())
    unit = draw(unit_sizes)
    op_list = draw(ops(mm, unit))
    case = {"id": draw(st.text(max_size=8)),
            "memory_map": [{"type": d.type, "start": d.start, "pages": d.pages} for d in mm],
            "ops": [{"op": k, "start": s, "size": n} for k, s, n in op_list
                    if s + n <= 1 << 52]}
    if unit != 2 * MiB or draw(st.booleans()):
        case["unit_size"] = unit
    return case


@given(trace_cases())
def test_replay_matches_reference(case):
    line = json.dumps(case)
    got = json.loads(next(iter(replay([line]))))
    assert got == expected(case)


def test_spec_example_byte_for_byte():
    case = ('{"id": "any string", "unit_size": 2097152, "memory_map": ['
            '{"type": 7, "start": 0, "pages": 160}, '
            '{"type": 15, "start": 4294967296, "pages": 1048576}], "ops": ['
            '{"op": "accept", "start": 4294967296, "size": 4194304}, '
            '{"op": "contains", "start": 4299161600, "size": 4096}]}')
    out = next(iter(replay([case])))
    # 4 GiB of unaccepted memory at 4 GiB: 2048 units, 256 bytes, all set
    prefix = ('{"id": "any string", "table": {"version": 1, "unit_size": 2097152, '
              '"phys_base": 4294967296, "size": 256, "bitmap": "' + "ff" * 256 + '"}, '
              '"stub_accepted": [], "results": [{"accepted": [[4294967296, 4301258752]]}, '
              '{"contains": false}], "bitmap": "f8' + "ff" * 255 + '"}')
    assert out == prefix


BAD = [
    ("not json", None, "InvalidTrace"),
    ('[1, 2]', None, "InvalidTrace"),
    ('{"memory_map": [], "ops": []}', None, "InvalidTrace"),
    ('{"id": 5, "memory_map": [], "ops": []}', 5, "InvalidTrace"),
    ('{"id": "a", "ops": []}', "a", "InvalidTrace"),
    ('{"id": "a", "memory_map": []}', "a", "InvalidTrace"),
    ('{"id": "a", "unit_size": 3000, "memory_map": [], "ops": []}', "a", "InvalidUnitSize"),
    ('{"id": "a", "unit_size": 2048, "memory_map": [], "ops": []}', "a", "InvalidUnitSize"),
    ('{"id": "a", "unit_size": 4294967296, "memory_map": [], "ops": []}', "a",
     "InvalidUnitSize"),
    ('{"id": "a", "unit_size": 4096.0, "memory_map": [], "ops": []}', "a", "InvalidUnitSize"),
    ('{"id": "a", "unit_size": true, "memory_map": [], "ops": []}', "a", "InvalidUnitSize"),
    ('{"id": "a", "memory_map": [{"type": 15, "start": 1, "pages": 1}], "ops": []}', "a",
     "InvalidMemoryMap"),
    ('{"id": "a", "memory_map": [{"type": 15, "start": 0, "pages": 0}], "ops": []}', "a",
     "InvalidMemoryMap"),
    ('{"id": "a", "memory_map": [{"type": 15, "start": 0, "pages": -1}], "ops": []}', "a",
     "InvalidMemoryMap"),
    ('{"id": "a", "memory_map": [{"type": 15, "start": 0}], "ops": []}', "a",
     "InvalidMemoryMap"),
    ('{"id": "a", "memory_map": [{"type": 15, "start": 0, "pages": 1.0}], "ops": []}', "a",
     "InvalidMemoryMap"),
    ('{"id": "a", "memory_map": [{"type": 15, "start": 0, "pages": 4}, '
     '{"type": 7, "start": 8192, "pages": 1}], "ops": []}', "a", "InvalidMemoryMap"),
    ('{"id": "a", "memory_map": [{"type": 15, "start": 4503599627366400, "pages": 2}], '
     '"ops": []}', "a", "InvalidMemoryMap"),
    ('{"id": "a", "memory_map": [], "ops": [{"op": "evict", "start": 0, "size": 1}]}', "a",
     "InvalidOp"),
    ('{"id": "a", "memory_map": [], "ops": [{"op": "accept", "start": -1, "size": 1}]}', "a",
     "InvalidOp"),
    ('{"id": "a", "memory_map": [], "ops": [{"op": "accept", "start": 0, "size": false}]}',
     "a", "InvalidOp"),
    ('{"id": "a", "memory_map": [], "ops": [{"op": "accept", "start": 4503599627370496, '
     '"size": 1}]}', "a", "InvalidOp"),
    ('{"id": "a", "memory_map": [], "ops": [{"op": "contains", "start": 0}]}', "a",
     "InvalidOp"),
    # 4 PiB at 1 MiB units needs 512 MiB of bitmap (2 MiB units: exactly the 256 MiB cap)
    ('{"id": "a", "unit_size": 1048576, "memory_map": [{"type": 15, "start": 0, "pages": 1}, '
     '{"type": 15, "start": 4503599627366400, "pages": 1}], "ops": []}', "a", "TableTooLarge"),
]


@pytest.mark.parametrize("line, case_id, kind", BAD)
def test_bad_cases(line, case_id, kind):
    out = replay_line(line)
    assert set(out) == {"id", "error"}
    assert out["id"] == case_id
    assert out["error"]["kind"] == kind
    assert out["error"]["message"]


def test_end_at_exactly_2_52_is_valid():
    out = replay_line('{"id": "top", "memory_map": [{"type": 15, "start": 4503599627366400, '
                      '"pages": 1}], "ops": [{"op": "accept", "start": 4503599627366400, '
                      '"size": 4096}]}')
    assert out["stub_accepted"] == [[(1 << 52) - 4096, 1 << 52]]


def test_one_output_line_per_input_line_and_errors_do_not_stop_the_file(tmp_path):
    lines = ['{"id": "1", "memory_map": [], "ops": []}', "garbage",
             '{"id": "3", "memory_map": [{"type": 15, "start": 0, "pages": 2048}], '
             '"ops": [{"op": "accept", "start": 0, "size": 4096}]}']
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sys.executable, "-m", "unaccepted", "replay", str(f)],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    out = [json.loads(l) for l in proc.stdout.splitlines()]
    assert [o["id"] for o in out] == ["1", None, "3"]
    assert out[2]["results"] == [{"accepted": [[0, 2 * MiB]]}]
    # stdin, with "-" and with no argument
    for args in (["-"], []):
        p = subprocess.run([sys.executable, "-m", "unaccepted", "replay", *args],
                           input="\n".join(lines) + "\n", capture_output=True, text=True)
        assert p.returncode == 0 and p.stdout == proc.stdout


def test_unreadable_input_fails(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "unaccepted", "replay",
                           str(tmp_path / "missing.jsonl")], capture_output=True, text=True)
    assert proc.returncode == 2 and "cannot read" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


GOOD = b'{"id": "g", "memory_map": [], "ops": []}'
GOOD_OUT = {"id": "g", "table": None, "stub_accepted": [], "results": [], "bitmap": None}


def _replay(tmp_path, data, *args):
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    from_file = subprocess.run([sys.executable, "-m", "unaccepted", "replay", *args, str(path)],
                               capture_output=True)
    from_stdin = subprocess.run([sys.executable, "-m", "unaccepted", "replay", *args, "-"],
                                input=data, capture_output=True)
    assert from_file.stdout == from_stdin.stdout and from_file.returncode == from_stdin.returncode
    assert b"Traceback" not in from_file.stderr
    return from_file.returncode, [json.loads(l) for l in from_file.stdout.splitlines()]


def test_bad_lines_never_stop_the_good_ones(tmp_path):
    # issue 9: a 1000-level nesting crashed the run; a non-UTF-8 line lost
    # every line; a bare CR (JSON whitespace) split a line read from a file
    nested = b"[" * 1000 + b"]" * 1000
    data = b"\n".join([GOOD, nested, b"\xff\xfe\x00", b'{"id":\r"g", "memory_map": [], "ops": []}',
                       GOOD]) + b"\n"
    rc, out = _replay(tmp_path, data)
    assert rc == 0 and len(out) == 5
    assert out[0] == out[3] == out[4] == GOOD_OUT
    assert out[1]["error"] == {"kind": "InvalidTrace", "message": "not JSON: nested too deeply"}
    assert out[2]["error"] == {"kind": "InvalidTrace", "message": "not UTF-8 at byte 0"}
    rc, _ = _replay(tmp_path, data, "--strict")
    assert rc == 1                      # --strict: some case failed
    rc, _ = _replay(tmp_path, GOOD + b"\n", "--strict")
    assert rc == 0


def test_a_closed_pipe_ends_quietly_with_sigpipes_status(tmp_path):
    (tmp_path / "many.jsonl").write_bytes((GOOD + b"\n") * 50000)
    proc = subprocess.Popen([sys.executable, "-m", "unaccepted", "replay",
                             str(tmp_path / "many.jsonl")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert json.loads(proc.stdout.readline()) == GOOD_OUT
    proc.stdout.close()                 # what `| head -1` does
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""


def test_shipped_example_trace_runs():
    proc = subprocess.run([sys.executable, "-m", "unaccepted", "replay",
                           "examples/traces/basic.jsonl"], capture_output=True, text=True)
    assert proc.returncode == 0
    out = [json.loads(l) for l in proc.stdout.splitlines()]
    assert out[1]["table"]["bitmap"] == "0e" and out[1]["bitmap"] == "0c"


# ---- what one case may cost (docs/trace-format.md, "Limits") ----------------
def test_a_short_case_cannot_ask_for_a_huge_table_and_the_next_case_runs():
    import io
    big = json.dumps({"id": "big", "unit_size": 4096, "ops": [],
                      "memory_map": [{"type": 15, "start": 0, "pages": 1 << 28}]})
    good = json.dumps({"id": "good", "ops": [{"op": "contains", "start": 0, "size": 4096}],
                       "memory_map": [{"type": 15, "start": 0, "pages": 2048}]})
    assert len(big) < 140
    out = io.StringIO()
    failed = replay_bytes(io.BytesIO((big + "\n" + good + "\n").encode()), out)
    first, second = (json.loads(x) for x in out.getvalue().splitlines())
    assert failed == 1
    assert first["error"]["kind"] == "CaseTooLarge" and "1048576" in first["error"]["message"]
    assert second["id"] == "good" and second["results"] == [{"contains": True}]


def test_the_largest_allowed_bitmap_still_runs():
    from unaccepted.replay import MAX_CASE_BITMAP_BYTES
    pages = MAX_CASE_BITMAP_BYTES * 8           # 4 KiB units: one bit per page
    r = replay_line(json.dumps({"id": "edge", "unit_size": 4096, "ops": [],
                                "memory_map": [{"type": 15, "start": 0, "pages": pages}]}))
    assert r["table"]["size"] == MAX_CASE_BITMAP_BYTES
    r = replay_line(json.dumps({"id": "over", "unit_size": 4096, "ops": [],
                                "memory_map": [{"type": 15, "start": 0, "pages": pages + 8}]}))
    assert r["error"]["kind"] == "CaseTooLarge"


def test_progress_goes_to_the_given_stream_only():
    import io
    line = json.dumps({"id": "a", "ops": [], "memory_map": []}) + "\n"
    out, err = io.StringIO(), io.StringIO()
    replay_bytes(io.BytesIO((line * 3).encode()), out, err)
    assert err.getvalue().endswith("3 cases, 0 failed\n")
    assert out.getvalue().count("\n") == 3
