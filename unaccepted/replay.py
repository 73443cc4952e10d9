"""`unaccepted replay`: the JSON-lines conformance interface (docs/trace-format.md).

Each input line is a case: a memory map, an optional unit size and a list of
ops.  The case's table is built as the EFI stub builds it, the ops run in one
C call with a recording primitive, and one JSON object is written per line.
"""
from __future__ import annotations

import json
import time
from typing import (Any, BinaryIO, Dict, Iterable, Iterator, List, Optional, Sequence, TextIO,
                    Tuple, Type)

from .errors import (CaseTooLarge, InvalidMemoryMap, InvalidOp, InvalidTrace,
                     InvalidUnitSize, UnacceptedError)
from .memmap import MemoryDescriptor, MemoryMap
from .primitives import Recorder
from .table import DEFAULT_UNIT_SIZE, OpBatch, Table
from .validate import is_int

ADDRESS_LIMIT = 1 << 52   # largest x86-64 MAXPHYADDR
# What one case may cost (docs/trace-format.md, "Limits"): its table's
# bitmap, which the output line carries twice in hex, and the ranges its
# accepts report.  A case past either gets a CaseTooLarge error line and
# the next case runs.
MAX_CASE_BITMAP_BYTES = 1 << 20
MAX_CASE_RANGES = 1 << 20
MIN_UNIT, MAX_UNIT = 1 << 12, 1 << 31
OPS = ("accept", "contains")

_Op = Tuple[str, int, int]       # (kind, start, size)


def _uint(obj: Dict[str, Any], key: str, where: str, exc: Type[UnacceptedError]) -> int:
    if key not in obj:
        raise exc(f"{where}: missing field {key!r}")
    v = obj[key]
    if not is_int(v):
        raise exc(f"{where}: {key} must be an integer, got {json.dumps(v)}")
    if v < 0:
        raise exc(f"{where}: {key} = {v} is negative")
    return v


def parse_case(case: object) -> Tuple[str, int, MemoryMap, List[_Op]]:
    """Validate one decoded case; returns (id, unit_size, MemoryMap, ops)."""
    if not isinstance(case, dict):
        raise InvalidTrace(f"a case must be a JSON object, got {type(case).__name__}")
    if "id" not in case:
        raise InvalidTrace("missing field 'id'")
    if not isinstance(case["id"], str):
        raise InvalidTrace(f"id must be a string, got {json.dumps(case['id'])}")

    unit_size = case.get("unit_size", DEFAULT_UNIT_SIZE)
    if not is_int(unit_size) or not (MIN_UNIT <= unit_size <= MAX_UNIT) or \
            unit_size & (unit_size - 1):
        raise InvalidUnitSize(
            f"unit_size = {json.dumps(unit_size)} is not a power of two from 4096 to 2^31")

    if "memory_map" not in case:
        raise InvalidTrace("missing field 'memory_map'")
    raw_map = case["memory_map"]
    if not isinstance(raw_map, list):
        raise InvalidMemoryMap(f"memory_map must be a list, got {type(raw_map).__name__}")
    descs: List[MemoryDescriptor] = []
    for i, d in enumerate(raw_map):
        where = f"memory_map[{i}]"
        if not isinstance(d, dict):
            raise InvalidMemoryMap(f"{where}: must be an object, got {json.dumps(d)}")
        t = _uint(d, "type", where, InvalidMemoryMap)
        start = _uint(d, "start", where, InvalidMemoryMap)
        pages = _uint(d, "pages", where, InvalidMemoryMap)
        if t >= 1 << 32:
            raise InvalidMemoryMap(f"{where}: type = {t} does not fit EFI_MEMORY_TYPE (u32)")
        descs.append(MemoryDescriptor(t, start, pages))
    # alignment, empty descriptors, the 2^52 limit and overlaps: the C check
    memory_map = MemoryMap(descs).validate(limit=ADDRESS_LIMIT)

    if "ops" not in case:
        raise InvalidTrace("missing field 'ops'")
    raw_ops = case["ops"]
    if not isinstance(raw_ops, list):
        raise InvalidOp(f"ops must be a list, got {type(raw_ops).__name__}")
    ops: List[_Op] = []
    for i, o in enumerate(raw_ops):
        where = f"ops[{i}]"
        if not isinstance(o, dict):
            raise InvalidOp(f"{where}: must be an object, got {json.dumps(o)}")
        if "op" not in o:
            raise InvalidOp(f"{where}: missing field 'op'")
        if o["op"] not in OPS:
            raise InvalidOp(f"{where}: unknown op {json.dumps(o['op'])} (accept, contains)")
        start = _uint(o, "start", where, InvalidOp)
        size = _uint(o, "size", where, InvalidOp)
        if start + size > ADDRESS_LIMIT:
            raise InvalidOp(f"{where}: start + size = {start + size} is past 2^52")
        ops.append((o["op"], start, size))
    return case["id"], unit_size, memory_map, ops


def run_case(case_id: str, unit_size: int, memory_map: MemoryMap,
             ops: Sequence[_Op]) -> Dict[str, Any]:
    stub_rec = Recorder()
    table = Table.from_memory_map(memory_map, unit_size)
    out: Dict[str, Any] = {"id": case_id, "table": None, "stub_accepted": [], "results": [],
                           "bitmap": None}
    if table is None:
        # No table: every address is accepted, accept does nothing.
        out["results"] = [{"accepted": []} if kind == "accept" else {"contains": False}
                          for kind, _, _ in ops]
        return out
    if table.size > MAX_CASE_BITMAP_BYTES:
        raise CaseTooLarge(f"the table's bitmap would be {table.size} bytes; a case may "
                           f"have at most {MAX_CASE_BITMAP_BYTES}")
    stub_accepted = table.process_memory_map(memory_map, accept=stub_rec)
    out["table"] = {"version": table.version, "unit_size": table.unit_size,
                    "phys_base": table.phys_base, "size": table.size,
                    "bitmap": table.bitmap.hex()}
    out["stub_accepted"] = [[s, e] for s, e in stub_accepted]
    # the recorder holds at most one range per set bit (the bitmap limit
    # bounds its memory); what reaches the output line is bounded here
    rec = Recorder()
    table.set_accept(rec)
    results = table.run(OpBatch(ops))
    if len(rec) + len(stub_accepted) > MAX_CASE_RANGES:
        raise CaseTooLarge(f"the case reported {len(rec) + len(stub_accepted)} accepted "
                           f"ranges; a case may report at most {MAX_CASE_RANGES}")
    ranges = rec.ranges()
    pos = 0
    for r in results:
        if r.kind == "accept":
            out["results"].append({"accepted": [[s, e] for s, e in ranges[pos:pos + r.runs]]})
            pos += r.runs
        else:
            out["results"].append({"contains": r.contains})
    out["bitmap"] = table.bitmap.hex()
    return out


def error_line(case_id: object, exc: BaseException) -> Dict[str, Any]:
    kind = type(exc).__name__ if isinstance(exc, UnacceptedError) else "InvalidTrace"
    return {"id": case_id, "error": {"kind": kind, "message": str(exc)}}


def replay_line(line: str) -> Dict[str, Any]:
    try:
        case = json.loads(line)
    except ValueError as exc:
        return error_line(None, InvalidTrace(f"not JSON: {exc}"))
    except RecursionError:  # nested too deeply for the decoder: this line only
        return error_line(None, InvalidTrace("not JSON: nested too deeply"))
    case_id = case.get("id") if isinstance(case, dict) else None
    try:
        return run_case(*parse_case(case))
    except UnacceptedError as exc:
        return error_line(case_id, exc)
    except (TypeError, OverflowError, RecursionError) as exc:  # malformed shapes
        return error_line(case_id, InvalidTrace(str(exc)))


def replay(lines: Iterable[str]) -> Iterator[str]:
    """One output line (without newline) per input line."""
    for line in lines:
        yield json.dumps(replay_line(line.rstrip("\r\n")))


def replay_stream(inp: TextIO, out: TextIO) -> int:
    """Replay text lines; returns how many cases failed."""
    failed = 0
    for text in replay(inp):
        failed += '"error": ' in text
        out.write(text)
        out.write("\n")
    return failed


def decode_lines(inp: BinaryIO) -> Iterator[str]:
    """Lines of a byte stream, split at LF only (a CR inside a line is JSON
    whitespace), each decoded as UTF-8 on its own: a line that is not UTF-8
    becomes a line that is not JSON, so it gets its error and the others
    run."""
    for raw in inp:
        try:
            yield raw.rstrip(b"\n").decode("utf-8")
        except UnicodeDecodeError as exc:
            yield "\0not UTF-8 at byte %d" % exc.start


def replay_bytes(inp: BinaryIO, out: TextIO, progress: Optional[TextIO] = None) -> int:
    """Replay a byte stream (a file or stdin's buffer); returns how many
    cases failed.  `progress`: a stream (stderr on a terminal) that gets a
    one-line count of the cases done, at most twice a second."""
    failed = 0
    done = 0
    shown = time.monotonic()
    for line in decode_lines(inp):
        if line.startswith("\0not UTF-8"):
            result = error_line(None, InvalidTrace(line[1:]))
        else:
            result = replay_line(line.rstrip("\r"))
        failed += "error" in result
        out.write(json.dumps(result))
        out.write("\n")
        done += 1
        if progress is not None and time.monotonic() - shown >= 0.5:
            shown = time.monotonic()
            progress.write(f"\r{done} cases, {failed} failed")
            progress.flush()
    if progress is not None and done:
        progress.write(f"\r{done} cases, {failed} failed\n")
        progress.flush()
    return failed
