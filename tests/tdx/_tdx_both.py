"""Drive the C TDX model and the pure-Python reference model with the same
calls and compare their answers.  Both have TdxGuest's interface, so a Both
forwards any method: `b.aug(M2, 1)` returns (C answer, reference answer),
where an error is the Err(exception class name, status) it raised."""
from dataclasses import fields, is_dataclass
from typing import NamedTuple, Optional

from unaccepted.errors import UnacceptedError
from unaccepted.tdx import TdxGuest
from unaccepted.testing.tdx_reference import G1, K4, M2, RefTdx

__all__ = ["Both", "Err", "G1", "K4", "M2", "key"]


class Err(NamedTuple):
    """An error either model raised, as the two can be compared."""

    name: str
    status: Optional[int]


def _run(fn):
    try:
        return fn()
    except UnacceptedError as e:
        return Err(type(e).__name__, e.status)


def key(x):
    """The comparable form of an answer: a result's fields without the host
    physical address (not modelled by the reference), ints for enums."""
    if is_dataclass(x) and not isinstance(x, type):
        return tuple((f.name, key(getattr(x, f.name))) for f in fields(x) if f.name != "hpa")
    if isinstance(x, dict):
        return {int(k): v for k, v in x.items()}
    if isinstance(x, (tuple, list)) and not isinstance(x, Err):
        return tuple(key(v) for v in x)
    if isinstance(x, int) and not isinstance(x, bool):
        return int(x)
    return x


class Both:
    """A C guest and a reference guest built from the same settings."""

    def __init__(self, memory_bytes, **settings):
        self.c = TdxGuest(memory_bytes, **settings)
        self.r = RefTdx(memory_bytes, **settings)
        self.mem = memory_bytes

    def run(self, fn):
        """(fn(C guest), fn(reference guest)), errors captured as Err."""
        return _run(lambda: fn(self.c)), _run(lambda: fn(self.r))

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *a, **kw: self.run(lambda g: getattr(g, name)(*a, **kw))

    def same(self, pair, what=""):
        """Assert both answers agree; the C answer."""
        c, r = pair
        assert key(c) == key(r), (what, c, r)
        return c

    def path(self, kind, start, end, vcpu=0):
        """Run an accept path on both: (True or Err, True or Err)."""
        return self.run(lambda g: g.accept_path(kind)(start, end, vcpu) or True)

    def check_same(self, start, end, gpas=()):
        """States, contents, the entries at gpas, the fatal record and the
        path statistics agree."""
        for what in ("count_states", "count_nonzero"):
            self.same(self.run(lambda g: getattr(g, what)(start, end)), what)
        for g in gpas:
            for lvl in (None, 1, 0):
                self.same(self.run(lambda x: x.entry(g, lvl)), (hex(g), lvl))
        self.same(self.run(lambda g: g.fatal), "fatal")
        for kind in ("linux", "ovmf"):
            self.same(self.run(lambda g: g.path_stats(kind)), kind)
