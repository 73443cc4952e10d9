# Stub for the cffi extension built from unaccepted/_build.py.  cffi makes
# `ffi` and `lib` at build time from the C headers (csrc/include), so their
# members are untyped (Any), except ffi.def_extern: a decorator that
# registers a Python callback for C and returns the function unchanged.
from typing import Any, Callable, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


class _FFI:
    def def_extern(self, name: str = ..., error: Any = ...,
                   onerror: Any = ...) -> Callable[[_F], _F]: ...
    def __getattr__(self, name: str) -> Any: ...


ffi: _FFI
lib: Any
