"""The C baselines of the benchmarks (benchmarks/c/fast_path.c, scan.c),
compiled at first use into a shared library and called through cffi's ABI
mode: `bare-c` (the Linux bitmap work as a plain C loop), `vectorised`
(the same words scanned or counted with vector registers) and
`memory-bandwidth` (a read loop over the same words).

They are built like a user's program: the C compiler on PATH (`cc`, or $CC),
-O2, no -march.  load() returns None when there is no compiler, and the
benchmarks that need it are skipped.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional

from cffi import FFI

from unaccepted._core import ffi as core_ffi

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCES = [HERE / "c" / "fast_path.c", HERE / "c" / "scan.c"]

CDEF = """
uint64_t bare_accept_ops(const uint64_t *words, uint64_t nbits, uint64_t phys_base,
                         unsigned unit_shift, const void *ops, size_t n);
uint64_t bare_contains_ops(const uint64_t *words, uint64_t nbits, uint64_t phys_base,
                           unsigned unit_shift, const void *ops, size_t n);
int vec_any(const uint64_t *w, size_t n);
uint64_t vec_count(const uint64_t *w, size_t n);
uint64_t mem_read(const uint64_t *w, size_t n);
int vec_any_avx2(const uint64_t *w, size_t n);
uint64_t vec_count_avx512(const uint64_t *w, size_t n);
int have_avx2(void);
int have_avx512_popcnt(void);
"""

_lib: Any = None
_ffi = FFI()
_ffi.cdef(CDEF)


def load() -> Optional[Any]:
    """The compiled baselines (a cffi library object), or None without a C
    compiler."""
    global _lib
    if _lib is not None:
        return _lib
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    out = Path(tempfile.mkdtemp(prefix="ua-cbench-")) / "libuabench.so"
    cmd = [cc, "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-DUA_BENCH_LIBRARY",
           "-shared", "-fPIC", f"-I{ROOT / 'csrc' / 'include'}", *map(str, SOURCES),
           "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    _lib = _ffi.dlopen(str(out))
    return _lib


def words_of(table) -> Any:
    """The table's bitmap words as a pointer the baselines accept."""
    from unaccepted._core import lib as core_lib
    addr = int(core_ffi.cast("uintptr_t", core_lib.ua_table_words(table._handle)))
    return _ffi.cast("const uint64_t *", addr)


def ops_of(batch) -> Any:
    """An OpBatch's C array (ua_op[]) as a pointer the baselines accept."""
    return _ffi.cast("const void *", int(core_ffi.cast("uintptr_t", batch._ops)))
