"""Argument validation for the whole package: one place that turns bad
input into a typed error naming the argument and its value, before anything
reaches C (so state is left unchanged)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional, Type, TypeVar

from .errors import InvalidArgument

if TYPE_CHECKING:
    from typing_extensions import TypeGuard     # typing.TypeGuard: Python 3.10

U32 = 1 << 32
U64 = 1 << 64

_T = TypeVar("_T")


def as_int(value: object, name: str, lo: int = 0, hi: int = U64, *,
           exc: Type[Exception] = InvalidArgument, where: str = "") -> int:
    """An int (not a bool) in [lo, hi)."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value < hi:
        raise exc(f"{where}{name} = {value!r} must be an int in [{lo}, {hi})")
    return value


def as_u32(value: object, name: str, *, exc: Type[Exception] = InvalidArgument,
           where: str = "") -> int:
    return as_int(value, name, 0, U32, exc=exc, where=where)


def as_u64(value: object, name: str, *, exc: Type[Exception] = InvalidArgument,
           where: str = "") -> int:
    return as_int(value, name, 0, U64, exc=exc, where=where)


def as_vcpu(value: object, vcpus: Optional[int] = None, name: str = "vcpu") -> int:
    """A vCPU index: in [0, vcpus) when the count is known, else a u32."""
    return as_int(value, name, 0, U32 if vcpus is None else vcpus)


def as_bool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, int)) or isinstance(value, int) and value not in (0, 1):
        raise InvalidArgument(f"{name} = {value!r} must be a bool")
    return bool(value)


def as_choice(value: str, name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise InvalidArgument(f"{name} = {value!r} must be one of {', '.join(map(repr, choices))}")
    return value


def as_instance(value: object, name: str, cls: Type[_T],
                exc: Type[Exception] = InvalidArgument) -> _T:
    """An instance of cls (the typed error names what came instead)."""
    if not isinstance(value, cls):
        raise exc(f"{name} must be a {cls.__name__}, got {type(value).__name__} {value!r:.60}")
    return value


def is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool (JSON and CLI inputs)."""
    return isinstance(value, int) and not isinstance(value, bool)


__all__ = ["U32", "U64", "as_bool", "as_choice", "as_instance", "as_int", "as_u32", "as_u64",
           "as_vcpu", "is_int"]
