"""cffi builder for the C core (out-of-line API mode).

The cdef is read from the public headers (the parts between UA_CDEF_BEGIN and
UA_CDEF_END), in the order the umbrella header includes them, and the C
compiler checks it against the same headers: the Python binding and the C
library cannot drift apart.  The extension compiles every csrc/*.c, the same
sources the Makefile turns into libunaccepted.a/.so.
"""
from __future__ import annotations

import glob
import os
import re
from typing import List

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CSRC = os.path.join(ROOT, "csrc")
INCLUDE = os.path.join(CSRC, "include")
UMBRELLA = "unaccepted.h"

_BLOCK = re.compile(r"/\* UA_CDEF_BEGIN \*/(.*?)/\* UA_CDEF_END \*/", re.S)
_INCLUDE = re.compile(r'^#include "([^"]+)"', re.M)
_API = re.compile(r"\bUA_API\s+")

# Python callbacks the extension can hand to C: an accept primitive
# (ua_accept_fn) and the entries of a host's ops table (ua_host_ops).
PYTHON_CALLBACKS = """
extern "Python" int _ua_py_accept(void *ctx, uint64_t start, uint64_t end, uint32_t vcpu);
extern "Python" int _ua_py_host_snp_psc(ua_host *, ua_snp *, uint32_t, uint64_t *, uint64_t *,
                                        uint32_t, ua_snp_ghcb_result *);
extern "Python" int _ua_py_host_snp_psc_msr(ua_host *, ua_snp *, uint32_t, uint64_t, uint64_t *);
extern "Python" int _ua_py_host_snp_npf(ua_host *, ua_snp *, uint32_t, uint64_t, uint64_t,
                                        uint32_t *);
extern "Python" int _ua_py_host_tdx_exit(ua_host *, ua_tdx *, uint32_t, uint64_t, uint64_t,
                                         uint64_t, uint32_t *);
extern "Python" int _ua_py_host_tdx_vmcall(ua_host *, ua_tdx *, uint32_t, uint64_t, uint64_t,
                                           uint64_t, uint64_t, ua_tdx_vmcall_result *);
"""


def header_order() -> List[str]:
    """The umbrella header first, then the headers it includes, in order."""
    with open(os.path.join(INCLUDE, UMBRELLA)) as f:
        text = f.read()
    return [UMBRELLA] + _INCLUDE.findall(text)


def cdef_text() -> str:
    parts: List[str] = []
    for name in header_order():
        with open(os.path.join(INCLUDE, name)) as f:
            for block in _BLOCK.findall(f.read()):
                parts.append(_API.sub("", block))
    return "\n".join(parts) + PYTHON_CALLBACKS


def sources() -> List[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(CSRC, "*.c")))


def c_flags() -> List[str]:
    flags = ["-std=c11", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra",
             "-Wno-unused-parameter", "-pthread"]
    extra = os.environ.get("UA_EXTRA_CFLAGS")
    if extra:
        flags += extra.split()
    return flags


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "unaccepted._core",
    '#define UA_BUILDING_LIBRARY 1\n#include "unaccepted.h"\n',
    sources=sources(),
    include_dirs=[os.path.relpath(INCLUDE, ROOT)],
    define_macros=[("UA_BUILDING_LIBRARY", "1"), ("_POSIX_C_SOURCE", "200809L")],
    extra_compile_args=c_flags(),
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
