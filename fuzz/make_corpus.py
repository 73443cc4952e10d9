#!/usr/bin/env python3
"""Write the seed corpora of the libFuzzer harnesses: fuzz/corpus/<harness>/.

Each seed is a small valid input in the harness's own encoding (the comment
at the top of each fuzz_*.c describes it), chosen so the fuzzer starts from
the interesting paths: tables that parse, memory maps with type-15 memory,
batches that accept and query, guests that accept, unaccept, touch and meet
misbehaving hosts.  Standard library only; deterministic; every file stays
under 4 KiB.  Run from anywhere: python3 fuzz/make_corpus.py [--out DIR]
(DIR defaults to fuzz/corpus; tests/c/test_fuzz.py checks the committed
corpus is what this script writes).
"""
from __future__ import annotations

import argparse
import os
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
MiB2 = 2 << 20
PAGE = 4096


def unit_sel(unit: int) -> int:
    """The selector byte for 2^(12 + b % 20)."""
    return unit.bit_length() - 1 - 12


# ---- fuzz_table_parse ----------------------------------------------------------
def table(unit, base, bitmap, version=1, size=None):
    size = len(bitmap) if size is None else size
    return struct.pack("<IIQQ", version, unit, base, size) + bytes(bitmap)


def table_parse_seeds():
    q = bytes([0, 0, 0, 8, 0,            # find/count [0, 8)
               1, 1, 0, 3, 0, 0, 0, 16, 0,   # contains from unit 1
               2, 2, 0, 9, 0,            # mark [2, 9) accepted
               0x12, 0, 0, 4, 0,         # mark [0, 4) unaccepted
               3, 0, 0, 64, 0])          # runs over [0, 64)
    return {
        "empty": table(MiB2, 0, b""),
        "one-byte": table(MiB2, 4 << 30, b"\x0e"),
        "4k-units": table(PAGE, 1 << 32, bytes(range(1, 17))) + q,
        "2g-units": table(1 << 31, 0, b"\xff\x00\xaa"),
        "trailing-queries": table(MiB2, 2 * MiB2, b"\xf0\x0f\xff\x01") + q,
        "bad-version": table(MiB2, 0, b"\x01", version=2),
        "bad-unit": table(3000, 0, b"\x01"),
        "truncated": table(MiB2, 0, b"\x01\x02", size=3),
        "misaligned-base": table(MiB2, 0x800, b"\x01"),
        "past-2^64": table(1 << 31, (1 << 64) - (1 << 31), b"\x01"),
    }


# ---- fuzz_memmap -----------------------------------------------------------------
def compact(etype, start, pages, misc=0, shift=0):
    kind = 0x80 if etype == 15 else etype
    return struct.pack("<BBIIBB", kind, misc, start // PAGE, pages, shift, 0)


def raw(etype, start, pages, attribute=0):
    return struct.pack("<IIQQQQ", etype, 0, start, 0, pages, attribute) + bytes(8)


def memmap_header(unit, flags, nfirst, knob=0, limit=0):
    return bytes([unit_sel(unit), flags, nfirst, knob]) + struct.pack("<Q", limit)


STUB_MAP = [(7, 0, 512), (15, MiB2 + PAGE, 2047), (15, 16 << 20, 300)]


def memmap_seeds():
    c = b"".join(compact(*d) for d in STUB_MAP)
    r = b"".join(raw(*d) for d in STUB_MAP)
    final = [(7, 0, 512), (15, MiB2 + PAGE, 1023), (7, 6 << 20, 1), (15, 16 << 20, 300)]
    return {
        "stub-compact-recorder": memmap_header(MiB2, 0x01 | 2 << 1, 3) + c,
        "stub-raw-noop": memmap_header(MiB2, 0x00 | 1 << 1, 3) + r,
        "stub-raw-null": memmap_header(MiB2, 0x00, 3) + r,
        "short-capacity": memmap_header(MiB2, 0x01 | 0x10 | 2 << 1, 3, knob=1) + c,
        "failing-primitive": memmap_header(MiB2, 0x01 | 3 << 1, 3, knob=0x41) + c,
        "final-map": memmap_header(MiB2, 0x01 | 0x08 | 2 << 1, 3) + c
        + b"".join(compact(*d) for d in final),
        "4k-units": memmap_header(PAGE, 0x01 | 2 << 1, 2)
        + compact(15, 0, 100) + compact(15, 100 * PAGE, 3),
        "overlap": memmap_header(MiB2, 0x01 | 2 << 1, 2) + compact(15, 0, 4) + compact(7, 8192, 1),
        "limit": memmap_header(MiB2, 0x01 | 0x20, 1, limit=1 << 20) + compact(15, 0, 512),
        "top-of-memory": memmap_header(1 << 31, 0x01 | 2 << 1, 1)
        + compact(15, 0, 1, misc=0x02),
        "no-unaccepted": memmap_header(MiB2, 0x00, 1) + raw(7, 0, 256),
    }


# ---- fuzz_batch_ops -----------------------------------------------------------------
ACCEPT, CONTAINS, BAD = 0, 4, 7


def op(kind, start_units=0, start_extra=0, size_units=0, size_extra=0, vcpu=0):
    return struct.pack("<BBhHHH", kind, vcpu, start_units, start_extra, size_units, size_extra)


def batch(unit, nbytes, base_pages, pflags, bitmap, ops):
    return (bytes([unit_sel(unit), nbytes - 1]) + struct.pack("<I", base_pages)
            + bytes([pflags]) + bytes(bitmap) + b"".join(ops))


def batch_seeds():
    ops = [op(CONTAINS, 0, 0, 8), op(ACCEPT, 0, 0, 1), op(ACCEPT, 2, 0x8001, 0, 5, vcpu=3),
           op(CONTAINS, -1, 0, 4), op(BAD), op(ACCEPT, 4, 1, 3, 0x8000),
           op(ACCEPT | 0x80, 0, 0, 1), op(CONTAINS, 0, 0, 64)]
    return {
        "accept-and-query": batch(MiB2, 1, 1 << 20, 0, b"\xff", ops),
        "4k-units": batch(PAGE, 8, 256, 0, bytes([0x5a] * 8), ops),
        "failing-call": batch(MiB2, 2, 0, 2, b"\xff\xff", ops),
        "bad-status": batch(MiB2, 2, 0, 0x19, b"\xff\x0f", ops),
        "reentrant": batch(MiB2, 1, 0, 0x10, b"\xff", ops[:3]),
        "wide-table": batch(1 << 16, 64, 4, 0, bytes(range(64)), ops),
    }


# ---- fuzz_snp / fuzz_tdx programs ------------------------------------------------------
def a2m(index):            # addr(): mode 1, a 2 MiB-aligned address
    return bytes([1, index])


def apage(page):           # addr(): mode 0, a 4 KiB page
    return bytes([0]) + struct.pack("<H", page)


def l2m(n):                # length(): mode 1, n x 2 MiB (n <= 8)
    return bytes([(n << 2) | 1])


def lpages(n):             # length(): mode 0, n x 4 KiB (n < 64)
    return bytes([n << 2])


def path(code, kind, start, length, vcpu=0):
    """accept / unaccept op: code, (op vcpu), kind, vcpu, addr, length, not empty."""
    return bytes([code, 0, kind, vcpu]) + start + length + b"\x00"


SNP_ACCEPT, SNP_UNACCEPT, SNP_TOUCH = 7, 8, 9


def snp(c0, c1, c2, c3, *ops):
    return bytes([c0, c1, c2, c3]) + b"".join(ops)


def snp_seeds():
    accept_all = path(SNP_ACCEPT, 0, a2m(0), l2m(8))
    touch = bytes([SNP_TOUCH, 0]) + apage(700) + b"\x01"
    pval = bytes([0, 0]) + a2m(2) + b"\x05"                     # PVALIDATE 2M, validate
    rmpupdate = bytes([2, 0]) + a2m(3) + b"\x03"               # RMPUPDATE 2M assigned
    psmash = bytes([3, 0]) + a2m(3)
    msr = bytes([4, 0]) + apage(900) + b"\x01"                 # MSR PSC private
    ghcb = bytes([5, 0, 2]) + b"\x01" + apage(1000) + b"\x09" + a2m(5)
    access = bytes([6, 0]) + apage(1000) + b"\x08"
    return {
        "linux-accept-touch": snp(0, 0, 2, 0, accept_all, touch, touch),
        "early-path": snp(0, 0, 2, 0, path(SNP_ACCEPT, 1, a2m(1), lpages(16)), touch),
        "ovmf-4k-backing": snp(1, 0, 2, 0, path(SNP_ACCEPT, 2, a2m(2), l2m(3)),
                               path(SNP_UNACCEPT, 2, a2m(2), l2m(1))),
        "double-accept": snp(0, 0, 2, 0, path(SNP_ACCEPT, 0, a2m(1), l2m(1)),
                             path(SNP_ACCEPT, 0, a2m(1), l2m(1)),
                             path(SNP_ACCEPT, 0, a2m(2), l2m(1)), bytes([15, 0]),
                             path(SNP_ACCEPT, 0, a2m(2), l2m(1))),
        "instructions": snp(0, 0, 0, 0, rmpupdate, pval, psmash, pval, msr, ghcb, access,
                            touch),
        "lazy-host": snp(0, 0x01, 2, 0, bytes([11, 0]) + a2m(0) + l2m(8) + b"\x01",
                         path(SNP_ACCEPT, 0, a2m(4), l2m(2)), touch),
        "psc-error-host": snp(0, 0x80 | 2, 2, 0, path(SNP_ACCEPT, 0, a2m(0), l2m(2)), touch),
        "never-resolve-host": snp(0, 0x80 | 14, 2, 0, path(SNP_ACCEPT, 1, a2m(0), lpages(1)),
                                  touch),
        "vmpl1": snp(0x44, 0, 2, 0, path(SNP_ACCEPT, 0, a2m(0), l2m(1)), touch),
        "launch": snp(0, 0, 2, 0, bytes([12, 0, 0]) + a2m(0) + l2m(1), bytes([12, 0, 1]),
                      touch),
    }


TDX_TDCALL, TDX_HOST_ADD_AUG, TDX_ACCEPT, TDX_UNACCEPT, TDX_TOUCH = 0, 1, 15, 16, 19


def tdx(c0, c1, c2, c3, *ops):
    return bytes([c0, c1, c2, c3]) + b"".join(ops)


def tdx_seeds():
    accept_all = path(TDX_ACCEPT, 0, a2m(0), l2m(8))
    touch = bytes([TDX_TOUCH, 0]) + apage(700) + b"\x01"
    aug2m = bytes([TDX_HOST_ADD_AUG, 0, 0, 1]) + a2m(3)          # AUG level 1 (2 MiB)
    accept2m = bytes([TDX_TDCALL, 0, 0, 1]) + a2m(3)             # TDG.MEM.PAGE.ACCEPT 2 MiB
    accept4k = bytes([TDX_TDCALL, 0, 0, 0]) + apage(3 * 512 + 5)
    block = bytes([2, 0, 1]) + a2m(3)
    track = bytes([3, 0])
    remove = bytes([4, 0, 1]) + a2m(3)
    mapgpa = bytes([12, 0, 1]) + a2m(4) + l2m(1)
    return {
        "linux-accept-touch": tdx(0, 0, 2, 0, accept_all, touch),
        "ovmf-4k-backing": tdx(2, 0, 2, 0, path(TDX_ACCEPT, 2, a2m(1), l2m(2)),
                               path(TDX_UNACCEPT, 2, a2m(1), l2m(1)), touch),
        "touch-before-accept": tdx(0, 0, 2, 0, touch, path(TDX_ACCEPT, 0, a2m(0), l2m(1))),
        "seamcalls": tdx(0, 0, 0, 0, aug2m, accept4k, accept2m, block, track, remove, mapgpa,
                         touch),
        "initially-pending": tdx(0x04, 0, 2, 0x85, path(TDX_ACCEPT, 1, a2m(7), l2m(1)),
                                 bytes([TDX_TDCALL, 0, 0, 0]) + apage(8 * 512 - 1), touch),
        "not-finalized": tdx(0x80, 0, 2, 0, bytes([7, 0, 0]) + apage(0) + lpages(8),
                             bytes([7, 0, 1]), accept_all),
        "never-resolve-host": tdx(0, 0x80 | 14, 2, 0, path(TDX_ACCEPT, 0, a2m(0), l2m(1)),
                                  touch),
        "map-gpa-stall": tdx(0, 0x80 | 12, 2, 0, path(TDX_ACCEPT, 0, a2m(0), l2m(1)),
                             path(TDX_UNACCEPT, 0, a2m(0), l2m(1))),
        "interrupts": tdx(0, 0, 2, 0, bytes([13, 0, 3, 1]), aug2m, accept2m, accept2m,
                          bytes([12, 0, 1]) + a2m(4) + l2m(3)),
        "sept-ve": tdx(0x50, 0, 2, 0, bytes([18, 0]), bytes([11, 0, 1]), touch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CORPUS, help="corpus folder to write")
    corpus = parser.parse_args().out
    harnesses = {"fuzz_table_parse": table_parse_seeds(), "fuzz_memmap": memmap_seeds(),
                 "fuzz_batch_ops": batch_seeds(), "fuzz_snp": snp_seeds(),
                 "fuzz_tdx": tdx_seeds()}
    for name, seeds in harnesses.items():
        out = corpus / name
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for seed, data in seeds.items():
            assert len(data) < 4096, (name, seed, len(data))
            (out / f"seed-{seed}").write_bytes(data)
        print(f"{out}: {len(seeds)} seeds")


if __name__ == "__main__":
    os.umask(0o022)
    main()
