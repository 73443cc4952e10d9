"""Read memory maps from real machines: boot logs, binary EFI maps, JSON.

`parse_memmap(data)` detects the format from the bytes:

* a binary EFI memory map (the buffer GetMemoryMap() returns, 48- or
  40-byte stride), when the data is not text;
* JSON: a `MemoryMap.to_json()` list, or what `unaccepted memmap --json`
  prints (read back with its own `source`);
* otherwise a Linux boot log as people paste it: `BIOS-e820:` tables and the
  `efi: memNN:` lines `efi=debug` prints, behind any prefix (dmesg time
  stamps, printk caller ids, journald, syslog priorities, mail quote
  markers), with CRLF line ends and mail-wrapped lines rejoined.

The rules (inclusive and exclusive ends, what counts as usable, duplicate
tables) are in docs/memmap.md, with the Linux sources they follow.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import InvalidMemoryMap
from .memmap import MemoryDescriptor, MemoryMap

PAGE_SIZE = 4096
U32 = 1 << 32
U64 = 1 << 64

SOURCES = ("e820", "efi", "binary", "json")

# ---- EFI types and attributes ----------------------------------------------
# Names as Linux's efi_md_typeattr_format() prints them (memory_type_name[] in
# drivers/firmware/efi/efi.c): the short names since v5.10, then the long
# names they replaced.  Types past the table print as "type=N".
EFI_TYPE_NAMES: Dict[int, Tuple[str, ...]] = {
    0: ("Reserved",),
    1: ("Loader Code",),
    2: ("Loader Data",),
    3: ("Boot Code",),
    4: ("Boot Data",),
    5: ("Runtime Code",),
    6: ("Runtime Data",),
    7: ("Conventional", "Conventional Memory"),
    8: ("Unusable", "Unusable Memory"),
    9: ("ACPI Reclaim", "ACPI Reclaim Memory"),
    10: ("ACPI Mem NVS", "ACPI Memory NVS"),
    11: ("MMIO", "Memory Mapped I/O"),
    12: ("MMIO Port", "MMIO Port Space"),
    13: ("PAL Code",),
    14: ("Persistent", "Persistent Memory"),
    15: ("Unaccepted",),
}

# The attribute columns efi_md_typeattr_format() prints, with their UEFI bits
# (EFI_MEMORY_* in include/linux/efi.h).  Attributes with any other bit set
# print as a single "attr=0x%016llx" column instead.
EFI_ATTRIBUTE_FLAGS: Dict[str, int] = {
    "UC": 1 << 0,
    "WC": 1 << 1,
    "WT": 1 << 2,
    "WB": 1 << 3,
    "UCE": 1 << 4,
    "WP": 1 << 12,
    "RP": 1 << 13,
    "XP": 1 << 14,
    "NV": 1 << 15,
    "MR": 1 << 16,     # EFI_MEMORY_MORE_RELIABLE
    "RO": 1 << 17,
    "SP": 1 << 18,     # EFI_MEMORY_SP (specific purpose / soft reserved)
    "CC": 1 << 19,     # EFI_MEMORY_CPU_CRYPTO
    "HP": 1 << 20,     # EFI_MEMORY_HOT_PLUGGABLE
    "RUN": 1 << 63,    # EFI_MEMORY_RUNTIME
}
EFI_MEMORY_SP = EFI_ATTRIBUTE_FLAGS["SP"]

EFI_UNACCEPTED = 15
# What the x86 EFI stub's setup_e820() turns into E820_TYPE_RAM
# (drivers/firmware/efi/libstub/x86-stub.c), unless the SP attribute makes it
# soft reserved.  Type 15 also becomes RAM there but is counted apart.
EFI_USABLE_TYPES = frozenset({1, 2, 3, 4, 7})

# ---- e820 types --------------------------------------------------------------
E820_NAMES = ("usable", "reserved", "ACPI data", "ACPI NVS", "unusable", "persistent",
              "soft reserved", "unaccepted")
_E820_CODES = {1: "usable", 2: "reserved", 3: "ACPI data", 4: "ACPI NVS", 5: "unusable",
               7: "persistent", 12: "persistent"}
# Spellings of e820_print_type() across kernel versions, compared without
# whitespace and case: "usable" (and "System RAM" / "kernel usable RAM" in the
# 2025 rework), "reserved" / "device reserved", "persistent (type N)" /
# "persistent RAM (type N)", old kernels' "(usable)".
_E820_SPELLINGS = {
    "usable": "usable", "systemram": "usable", "kernelusableram": "usable",
    "reserved": "reserved", "devicereserved": "reserved",
    "softreserved": "soft reserved",
    "acpidata": "ACPI data",
    "acpinvs": "ACPI NVS",
    "unusable": "unusable",
    "unaccepted": "unaccepted",
}

Type = Union[str, int]


# ---- data --------------------------------------------------------------------
@dataclass(frozen=True)
class MapEntry:
    """One memory range: [start, end) with an e820 type name (str) or an EFI
    type number (int); `attribute` is the EFI attribute (None for e820)."""

    start: int
    end: int
    type: Type
    attribute: Optional[int]
    invalid: bool = False

    @property
    def size(self) -> int:
        return max(self.end - self.start, 0)

    @property
    def is_usable(self) -> bool:
        """Usable-class memory (not counting unaccepted memory)."""
        if self.invalid:
            return False
        if isinstance(self.type, str):
            return self.type == "usable"
        return (self.type in EFI_USABLE_TYPES
                and not (self.attribute or 0) & EFI_MEMORY_SP)

    @property
    def is_unaccepted(self) -> bool:
        if self.invalid:
            return False
        return self.type == ("unaccepted" if isinstance(self.type, str) else EFI_UNACCEPTED)

    def to_json_obj(self) -> Dict[str, Any]:
        return {"start": self.start, "end": self.end, "type": self.type,
                "attribute": self.attribute, "invalid": self.invalid}


def _union(ranges: Iterable[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """Sorted, disjoint, non-touching union of half-open ranges."""
    out: List[List[int]] = []
    for s, e in sorted(r for r in ranges if r[1] > r[0]):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


@dataclass(frozen=True)
class ParsedMap:
    """One memory map read from a source ("e820", "efi", "binary", "json")."""

    source: str
    entries: Tuple[MapEntry, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))

    def totals(self) -> Dict[str, int]:
        """Bytes of usable-class memory and of unaccepted memory (entries that
        overlap are counted once; invalid entries not at all), and
        highest_usable_end: the highest exclusive end of a usable-class or
        unaccepted entry (0 when there is none)."""
        usable = _union((e.start, e.end) for e in self.entries if e.is_usable)
        unaccepted = _union((e.start, e.end) for e in self.entries if e.is_unaccepted)
        return {"usable": sum(e - s for s, e in usable),
                "unaccepted": sum(e - s for s, e in unaccepted),
                "highest_usable_end": max((e for _, e in usable + unaccepted), default=0)}

    def ram_ranges(self) -> List[Tuple[int, int, bool]]:
        """(start, end, unaccepted) for the RAM-class memory (usable class and
        unaccepted), sorted and merged: only whole 4 KiB pages (each merged
        run is shrunk inward to page boundaries) and a page is unaccepted when
        any byte of it is in an unaccepted entry (as Linux marks the bitmap
        for an unaccepted descriptor even where another descriptor overlaps)."""
        ram: List[Tuple[int, int]] = []
        for s, e in _union((x.start, x.end) for x in self.entries
                           if x.is_usable or x.is_unaccepted):
            s = -(-s // PAGE_SIZE) * PAGE_SIZE
            e = e // PAGE_SIZE * PAGE_SIZE
            if e > s:
                ram.append((s, e))
        unacc = _union((x.start // PAGE_SIZE * PAGE_SIZE, -(-x.end // PAGE_SIZE) * PAGE_SIZE)
                       for x in self.entries if x.is_unaccepted)
        out: List[Tuple[int, int, bool]] = []
        for s, e in ram:
            pos = s
            for us, ue in unacc:
                if ue <= pos or us >= e:
                    continue
                if us > pos:
                    out.append((pos, us, False))
                    pos = us
                top = min(ue, e)
                out.append((pos, top, True))
                pos = top
            if pos < e:
                out.append((pos, e, False))
        return out

    def to_json_obj(self) -> Dict[str, Any]:
        return {"source": self.source,
                "entries": [e.to_json_obj() for e in self.entries],
                "totals": self.totals()}


@dataclass(frozen=True)
class ParseResult:
    """The maps found (for a log: at most one e820 table, then at most one
    EFI map) and the entry-like lines that could not be read."""

    maps: Tuple[ParsedMap, ...]
    bad_lines: Tuple[Tuple[int, str], ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "maps", tuple(self.maps))
        object.__setattr__(self, "bad_lines", tuple(self.bad_lines))

    def to_json_obj(self) -> Dict[str, Any]:
        """One map: that map's object; several: {"maps": [...]}."""
        if len(self.maps) == 1:
            return self.maps[0].to_json_obj()
        return {"maps": [m.to_json_obj() for m in self.maps]}


# ---- log parsing -------------------------------------------------------------
_E820_MARK = re.compile(r"BIOS-e820:", re.I)
_EFI_MARK = re.compile(r"\befi:\s*mem\d", re.I)      # not "efi: memattr:" lines
_E820_HEADER = re.compile(r"BIOS-provided physical RAM map", re.I)
# what starts a new log record (then the line is not a mail-wrapped tail)
_RECORD_START = re.compile(
    r"""(?:\[\s*\d+\.\d+\]            # dmesg time stamp
         |\[\s*[TC]\d+\]              # printk caller id
         |<\d+>                       # syslog priority
         |[A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d\s   # journald / syslog date
         |\d{4}-\d\d-\d\d[T\s]\d\d:\d\d               # ISO date
        )""", re.X)
_QUOTE = re.compile(r"^[\s>]*")
_MAX_CONTINUATIONS = 3

_HEX = r"(?:0x)?([0-9a-f]+)"
_E820_GAP = re.compile(r"BIOS-e820:\s*\[\s*gap", re.I)
_E820_NEW = re.compile(r"BIOS-e820:\s*\[\s*mem\s*" + _HEX + r"\s*-\s*" + _HEX + r"\s*\](.*)$",
                       re.I)
_E820_OLD = re.compile(r"BIOS-e820:\s*" + _HEX + r"\s*-\s*" + _HEX + r"(.*)$", re.I)
_SIZE_COLUMN = re.compile(r"^\d+(?:\.\d+)?\s*[KMGTPE]i?B\s*", re.I)
_CRYPTO_SUFFIX = re.compile(r";\s*crypto-capable$", re.I)

# The EFI line is read in steps, each a regex whose quantifiers never compete
# for the same characters (a hostile line must not make it backtrack).
_EFI_HEAD = re.compile(r"efi:\s*mem(\d+)\s*:\s*", re.I)
_EFI_OLD_TYPEATTR = re.compile(r"type\s*=\s*(\d+)\s*,\s*attr\s*=\s*(?:0x)?([0-9a-f]+)\s*,\s*",
                               re.I)
_EFI_RANGE_WORD = re.compile(r"range\s*=", re.I)
_EFI_RANGE = re.compile(r"range\s*=\s*\[\s*" + _HEX + r"\s*-\s*" + _HEX
                        + r"\s*([\])])\s*(?:\(([^()]*)\)\s*)?$", re.I)
_EFI_TAIL = re.compile(r"\d+\s*MB|invalid", re.I)

_EFI_NAME_KEYS = {re.sub(r"\s+", "", name).lower(): t
                  for t, names in EFI_TYPE_NAMES.items() for name in names}


class _Bad(Exception):
    """An entry-like line that cannot be read; the message is the reason."""


def _key(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def _decimal(text: str, what: str) -> int:
    """A decimal field; one longer than int() takes (CPython's limit on
    decimal digits, sys.get_int_max_str_digits()) makes the line bad."""
    try:
        return int(text, 10)
    except ValueError:
        raise _Bad(f"unreadable {what} ({len(text)} digits)") from None


def _e820_type(tail: str) -> str:
    text = _CRYPTO_SUFFIX.sub("", tail.strip()).strip()
    text = _SIZE_COLUMN.sub("", text).strip()
    if not text:
        raise _Bad("e820 entry without a type")
    if text.startswith("(") and text.endswith(")"):      # old kernels: "(usable)"
        text = text[1:-1]
    key = _key(text)
    m = re.fullmatch(r"type(\d+)", key)
    if m:
        code = _decimal(m.group(1), "e820 type")
        return _E820_CODES.get(code, f"type {code}")
    if re.fullmatch(r"persistent(?:ram)?(?:\(type\d+\))?", key):
        return "persistent"
    if key in _E820_SPELLINGS:
        return _E820_SPELLINGS[key]
    raise _Bad(f"unknown e820 type {text!r:.60}")


def _check_addresses(start: int, end: int, what: str) -> None:
    """The kernel prints 64-bit addresses; an end may pass 2^64 by less than
    2^64 (an invalid EFI descriptor), as JSON input allows (end < 2^65).
    Longer numbers make the line bad, so every map stays printable."""
    if start >= U64 or end >= U64 + U64:
        raise _Bad(f"{what} entry with an address past 2^64")


def _parse_e820(text: str) -> Optional[MapEntry]:
    """None for a gap line; raises _Bad for an unreadable one."""
    if _E820_GAP.match(text):
        return None
    m = _E820_NEW.match(text)
    inclusive = True
    if not m:
        m = _E820_OLD.match(text)
        inclusive = False
    if not m:
        raise _Bad("unreadable e820 entry")
    start = int(m.group(1), 16)
    end = int(m.group(2), 16) + (1 if inclusive else 0)
    _check_addresses(start, end, "e820")
    if end < start:
        raise _Bad(f"e820 entry ends ({end:#x}) before it starts ({start:#x})")
    return MapEntry(start, end, _e820_type(m.group(3)), None)


def _efi_typeattr(ta: str) -> Tuple[int, int]:
    parts = ta.split("|")
    key = _key(parts[0])
    if key.startswith("type="):
        try:
            etype = int(key[5:], 10)
        except ValueError:
            raise _Bad(f"unreadable EFI type {parts[0].strip()!r:.60}") from None
    elif key in _EFI_NAME_KEYS:
        etype = _EFI_NAME_KEYS[key]
    else:
        raise _Bad(f"unknown EFI memory type {parts[0].strip()!r:.60}")
    attribute = 0
    for column in parts[1:]:
        flag = re.sub(r"\s+", "", column)
        if not flag:
            continue
        if flag.lower().startswith("attr="):
            try:
                attribute |= int(flag[5:], 16)
            except ValueError:
                raise _Bad(f"unreadable EFI attribute {flag!r:.60}") from None
        elif flag.upper() in EFI_ATTRIBUTE_FLAGS:
            attribute |= EFI_ATTRIBUTE_FLAGS[flag.upper()]
        else:
            raise _Bad(f"unknown EFI attribute flag {flag!r:.60}")
    return etype, attribute


def _parse_efi(text: str, strict: bool) -> Tuple[int, MapEntry]:
    """(index, entry); strict also wants the "(NMB)" or "(invalid)" tail."""
    head = _EFI_HEAD.match(text)
    if not head:
        raise _Bad("unreadable EFI memory map entry")
    pos = head.end()
    old = _EFI_OLD_TYPEATTR.match(text, pos)
    word = None if old else _EFI_RANGE_WORD.search(text, pos)
    rng = _EFI_RANGE.match(text, old.end() if old else word.start() if word else len(text))
    tail = (rng.group(4) or "").strip() if rng else ""
    if not rng or (strict and not _EFI_TAIL.fullmatch(tail)):
        raise _Bad("unreadable EFI memory map entry")
    if old:
        etype, attribute = _decimal(old.group(1), "EFI type"), int(old.group(2), 16)
    else:
        # "[Name        |RUN|..|UC]"; a 10-digit "type=N" fills the kernel's
        # 64-byte buffer and the closing "]" is cut off
        assert word is not None   # rng matched where the word starts
        typeattr = text[pos:word.start()].strip()
        if typeattr.endswith("]"):
            typeattr = typeattr[:-1]
        if not typeattr.startswith("[") or "[" in typeattr[1:] or "]" in typeattr:
            raise _Bad("unreadable EFI memory map entry")
        etype, attribute = _efi_typeattr(typeattr[1:])
    if etype >= U32 or attribute >= U64:
        raise _Bad("EFI type or attribute out of range")
    invalid = tail.lower() == "invalid"
    start, last = int(rng.group(1), 16), int(rng.group(2), 16)
    end = last + 1 if rng.group(3) == "]" else last
    _check_addresses(start, end, "EFI")
    if end < start:
        if not invalid:
            raise _Bad(f"EFI entry ends ({end:#x}) before it starts ({start:#x})")
        end = start          # num_pages == 0: the kernel prints an end of 0
    return _decimal(head.group(1), "EFI descriptor index"), MapEntry(start, end, etype, attribute,
                                                                     invalid)


def _is_continuation(line: str) -> bool:
    """Could this line be the wrapped tail of the line before it?"""
    body = _QUOTE.sub("", line)
    if not body.strip():
        return False
    if _E820_MARK.search(line) or _EFI_MARK.search(line) or _E820_HEADER.search(line):
        return False
    return not _RECORD_START.match(body)


class _EfiTable:
    def __init__(self) -> None:
        self.valid: List[MapEntry] = []
        self.invalid: List[Tuple[int, MapEntry]] = []
        self.last_valid = -1
        self.last_invalid = -1

    def starts_new(self, idx: int, invalid: bool) -> bool:
        if invalid:
            return idx <= self.last_invalid or (bool(self.valid) and idx <= self.last_valid)
        return bool(self.valid) and idx <= self.last_valid

    def add(self, idx: int, entry: MapEntry) -> None:
        if entry.invalid:
            self.invalid.append((idx, entry))
            self.last_invalid = idx
        else:
            self.valid.append(entry)
            self.last_valid = idx

    def entries(self) -> List[MapEntry]:
        # Linux prints the descriptors it drops (efi_clean_memmap) with their
        # index in the firmware's map, then the cleaned map renumbered from 0:
        # putting each dropped one back at its index restores firmware order.
        out = list(self.valid)
        for idx, entry in sorted(self.invalid, key=lambda p: p[0]):
            out.insert(min(idx, len(out)), entry)
        return out


def _split_lines(text: str) -> List[str]:
    if "\n" not in text and "\r" in text:
        return text.split("\r")
    return [line.rstrip("\r") for line in text.split("\n")]


def _parse_log(text: str) -> ParseResult:
    lines = _split_lines(text)
    bad: List[Tuple[int, str]] = []
    e820_tables: List[List[MapEntry]] = []
    e820_new_table = True
    efi_tables: List[_EfiTable] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m820, mefi = _E820_MARK.search(line), _EFI_MARK.search(line)
        if not (m820 or mefi):
            if _E820_HEADER.search(line):
                e820_new_table = True
            i += 1
            continue
        is_e820 = m820 is not None and (mefi is None or m820.start() < mefi.start())
        mark = m820 if is_e820 else mefi
        assert mark is not None
        head = line[mark.start():]
        tails: List[str] = []
        for nxt in lines[i + 1:i + 1 + _MAX_CONTINUATIONS]:
            if not _is_continuation(nxt):
                break
            tails.append(_QUOTE.sub("", nxt))
        # The longest join that reads (strictly first) wins: a line cut by a
        # mail client reads only with its tail; an unrelated next line makes
        # the joined text unreadable, so the line is taken alone.
        parsed: Union[None, MapEntry, Tuple[int, MapEntry]] = None
        used: Optional[int] = None
        reason = ""
        for strict in ((False,) if is_e820 else (True, False)):
            for k in range(len(tails), -1, -1):
                joined = head + "".join(tails[:k])
                try:
                    parsed = _parse_e820(joined) if is_e820 else _parse_efi(joined, strict)
                except _Bad as exc:
                    if k == 0:
                        reason = str(exc)
                    continue
                used = k
                break
            if used is not None:
                break
        if used is None:
            bad.append((i + 1, reason))
            i += 1
            continue
        i += 1 + used
        if is_e820:
            if not isinstance(parsed, MapEntry):     # None: a "[gap ...]" line
                continue
            if e820_new_table or not e820_tables or parsed.start < e820_tables[-1][-1].start:
                e820_tables.append([])
                e820_new_table = False
            e820_tables[-1].append(parsed)
        else:
            assert isinstance(parsed, tuple)       # _parse_efi's (index, entry)
            idx, entry = parsed
            if not efi_tables or efi_tables[-1].starts_new(idx, entry.invalid):
                efi_tables.append(_EfiTable())
            efi_tables[-1].add(idx, entry)
    maps: List[ParsedMap] = []
    if e820_tables:                         # the first table of each kind
        maps.append(ParsedMap("e820", tuple(e820_tables[0])))
    if efi_tables:
        maps.append(ParsedMap("efi", tuple(efi_tables[0].entries())))
    return ParseResult(tuple(maps), tuple(bad))


# ---- binary and JSON ---------------------------------------------------------
def _entry_from_descriptor(d: MemoryDescriptor) -> MapEntry:
    end = d.start + d.pages * PAGE_SIZE
    return MapEntry(d.start, end, int(d.type), d.attribute,
                    invalid=d.pages == 0 or end > U64)


def _sane_type(t: int) -> bool:
    return t <= EFI_UNACCEPTED or t >= 0x70000000        # OEM and OS ranges


def _parse_binary(data: bytes) -> Optional[ParsedMap]:
    """A GetMemoryMap() buffer at a 48-byte stride, else 40: the first stride
    whose every descriptor is sane (4 KiB-aligned start, a known or OEM/OS
    type, at least one page, no wrap past 2^64); failing that the first whose
    starts and types are sane, with empty or wrapping descriptors invalid."""
    decoded: List[List[MapEntry]] = []
    for stride in (48, 40):
        if not data or len(data) % stride:
            continue
        mm = MemoryMap.from_bytes(data, descriptor_size=stride)
        entries = [_entry_from_descriptor(d) for d in mm]
        if all(d.start % PAGE_SIZE == 0 and _sane_type(d.type) for d in mm):
            decoded.append(entries)
    for entries in decoded:
        if not any(e.invalid for e in entries):
            return ParsedMap("binary", tuple(entries))
    return ParsedMap("binary", tuple(decoded[0])) if decoded else None


def _json_int(value: object, what: str, lo: int = 0, hi: int = U64 + U64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value < hi:
        raise InvalidMemoryMap(f"{what} = {value!r:.60} must be an int in [{lo}, {hi})")
    return value


def _map_from_json(obj: object, where: str) -> ParsedMap:
    if not isinstance(obj, dict):
        raise InvalidMemoryMap(f"{where}must be an object, got {type(obj).__name__}")
    source = obj.get("source")
    if source not in SOURCES:
        raise InvalidMemoryMap(f"{where}source = {source!r:.60} must be one of "
                               + ", ".join(map(repr, SOURCES)))
    items = obj.get("entries")
    if not isinstance(items, list):
        raise InvalidMemoryMap(f"{where}entries must be a list")
    entries: List[MapEntry] = []
    for i, item in enumerate(items):
        at = f"{where}entry {i}: "
        if not isinstance(item, dict):
            raise InvalidMemoryMap(f"{at}must be an object, got {type(item).__name__}")
        for key in ("start", "end", "type"):
            if key not in item:
                raise InvalidMemoryMap(f"{at}missing field {key!r}")
        start = _json_int(item["start"], f"{at}start", hi=U64)
        end = _json_int(item["end"], f"{at}end", lo=start)
        etype = item["type"]
        if source == "e820":
            if not (isinstance(etype, str)
                    and (etype in E820_NAMES or re.fullmatch(r"type \d+", etype))):
                raise InvalidMemoryMap(f"{at}type = {etype!r:.60} is not an e820 type name")
        else:
            etype = _json_int(etype, f"{at}type", hi=U32)
        attribute = item.get("attribute")
        if source == "e820" and attribute is not None:
            raise InvalidMemoryMap(f"{at}attribute = {attribute!r:.60} must be null in an e820 map")
        if attribute is not None:
            attribute = _json_int(attribute, f"{at}attribute", hi=U64)
        invalid = item.get("invalid", False)
        if not isinstance(invalid, bool):
            raise InvalidMemoryMap(f"{at}invalid = {invalid!r:.60} must be true or false")
        entries.append(MapEntry(start, end, etype, attribute, invalid))
    return ParsedMap(source, tuple(entries))


def _parse_json(obj: object) -> ParseResult:
    """obj is the list or the object that the JSON text starts with."""
    if isinstance(obj, list):                       # MemoryMap.to_json()
        mm = MemoryMap.from_json_obj(obj)
        return ParseResult((ParsedMap("json", tuple(_entry_from_descriptor(d) for d in mm)),))
    if isinstance(obj, dict) and "maps" in obj:
        maps = obj["maps"]
        if not isinstance(maps, list) or not maps:
            raise InvalidMemoryMap("maps must be a non-empty list")
        return ParseResult(tuple(_map_from_json(m, f"map {i}: ") for i, m in enumerate(maps)))
    return ParseResult((_map_from_json(obj, ""),))


# ---- entry points ------------------------------------------------------------
def parse_memmap(data: Union[bytes, str]) -> ParseResult:
    """Read a memory map from `data`, detecting the format (see the module
    docstring).  Raises InvalidMemoryMap when no map can be read."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = bytes(data)
    try:
        text: Optional[str] = data.decode("utf-8") if b"\0" not in data else None
    except UnicodeDecodeError:
        text = None
    if text is None:
        binary = _parse_binary(data)
        if binary is not None:
            return ParseResult((binary,))
        text = data.decode("utf-8", "replace").replace("\0", "")
    stripped = text.strip()
    json_error = None
    if stripped[:1] in ("[", "{"):
        try:
            obj = json.loads(stripped)
        except (ValueError, RecursionError) as exc:
            json_error = exc         # a dmesg log starts with "[" too
        else:
            return _parse_json(obj)
    result = _parse_log(text)
    if result.maps:
        return result
    if json_error is not None and re.match(r"[\[{]\s*[\[{\"\]}]", stripped):
        raise InvalidMemoryMap(f"memory map is not valid JSON: {json_error}")
    msg = "no memory map found (no BIOS-e820 or efi: memNN lines, not JSON, not a binary map)"
    if result.bad_lines:
        line, reason = result.bad_lines[0]
        msg = (f"no memory map found: {len(result.bad_lines)} entry line(s) could not be "
               f"read (first: line {line}: {reason})")
    err = InvalidMemoryMap(msg)
    err.bad_lines = result.bad_lines
    raise err


def read_memmap(path: str) -> ParseResult:
    """parse_memmap() of a file's bytes; OSError when it cannot be read."""
    with open(path, "rb") as f:
        return parse_memmap(f.read())


# ---- the command ---------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE",
                        help="boot log, binary EFI memory map or JSON map (- for stdin)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--strict", action="store_true",
                        help="report unreadable entry lines on stderr and exit with 1")


def _human(n: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            whole, rest = divmod(n, 1 << shift)
            if not rest:
                return f"{whole} {unit}"
            return f"~{whole}.{rest * 10 >> shift} {unit}"    # rounded down
    return f"{n} B"


def _type_text(t: Type) -> str:
    if isinstance(t, str):
        return t
    return f"{t} {EFI_TYPE_NAMES[t][0]}" if t in EFI_TYPE_NAMES else f"type {t}"


def format_map(m: ParsedMap) -> str:
    """The human table `unaccepted memmap` prints for one map."""
    rows = [f"{m.source} memory map, {len(m.entries)} entries",
            f"  {'start':<18}  {'end (exclusive)':<18}  {'size':>10}  {'type':<16}  attribute"]
    for e in m.entries:
        attr = "-" if e.attribute is None else f"{e.attribute:#018x}"
        row = (f"  {e.start:#018x}  {e.end:#018x}  {_human(e.size):>10}  "
               f"{_type_text(e.type):<16}  {attr}")
        rows.append(row + ("  (invalid)" if e.invalid else ""))
    t = m.totals()
    rows.append(f"usable:             {_human(t['usable'])} ({t['usable']} bytes)")
    rows.append(f"unaccepted:         {_human(t['unaccepted'])} ({t['unaccepted']} bytes)")
    rows.append(f"highest_usable_end: {t['highest_usable_end']:#x}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    """`unaccepted memmap FILE [--json] [--strict]`: 0 on success, 1 when no
    map can be read (or with --strict when some entry line could not be
    read), 2 when FILE cannot be read."""
    name = args.file
    try:
        if name == "-":
            result = parse_memmap(sys.stdin.buffer.read())
        else:
            result = read_memmap(name)
    except OSError as exc:
        print(f"unaccepted memmap: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except InvalidMemoryMap as exc:
        if args.strict:
            _report_bad(name, getattr(exc, "bad_lines", ()))
        print(f"unaccepted memmap: {name}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json_obj()))
    else:
        print("\n\n".join(format_map(m) for m in result.maps))
    if args.strict and result.bad_lines:
        _report_bad(name, result.bad_lines)
        return 1
    return 0


def _report_bad(name: str, bad_lines: Sequence[Tuple[int, str]]) -> None:
    for line, reason in bad_lines:
        print(f"unaccepted memmap: {name}:{line}: {reason}", file=sys.stderr)


__all__ = ["EFI_ATTRIBUTE_FLAGS", "EFI_TYPE_NAMES", "EFI_USABLE_TYPES", "E820_NAMES", "MapEntry",
           "ParseResult", "ParsedMap", "add_arguments", "format_map", "parse_memmap",
           "read_memmap", "run"]
