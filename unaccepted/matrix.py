"""The policy matrix: every combination of boot options, booted in parallel
on the local cores or on a Dask distributed cluster, in a stable order.

With the defaults it answers the question the upstream debate asked for
today's stack (accept everything unless the OS opts in, a pre-accepting
firmware, or retiring the protocol): what each policy costs and whom it
breaks.
"""
from __future__ import annotations

import csv
import io
import itertools
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, TextIO, Tuple, cast

from .boot import boot
from .errors import InvalidArgument
from .vm import FIRMWARES, KERNELS, LOADERS, VENDORS, BootConfig, GiB, format_size

# The grid's axes in their stable order; vendor x firmware x loader x kernel
# by default, the others at the `boot` defaults.
AXES = ("vendor", "ram", "vcpus", "backing", "firmware", "loader", "kernel", "accept_memory",
        "profile")
DEFAULT_GRID: Dict[str, Sequence[Any]] = {"vendor": VENDORS, "firmware": FIRMWARES,
                                          "loader": LOADERS, "kernel": KERNELS}


def grid(options: Optional[Dict[str, Sequence[Any]]] = None, **fixed: Any) -> List[BootConfig]:
    """The cartesian product of `options` (axis -> values) over the default
    grid; `fixed` are BootConfig fields every point shares (ram_ranges...)."""
    axes = dict(DEFAULT_GRID)
    for name, values in (options or {}).items():
        if name not in AXES:
            raise InvalidArgument(f"unknown matrix axis {name!r}; use {', '.join(AXES)}")
        values = list(values)
        if not values:
            raise InvalidArgument(f"matrix axis {name!r} has no values")
        axes[name] = values
    names = [a for a in AXES if a in axes]
    return [BootConfig(**dict(zip(names, point)), **fixed)
            for point in itertools.product(*(axes[n] for n in names))]


def _boot_json(config: BootConfig) -> Dict[str, Any]:
    return boot(config).to_json_obj()


def run(configs: Sequence[BootConfig], *, workers: Optional[int] = None,
        scheduler: Optional[str] = None,
        progress: Optional[Callable[[int, int], None]] = None) -> List[Dict[str, Any]]:
    """Boot every config; the results (boot JSON objects) in the configs' order."""
    configs = list(configs)
    for c in configs:
        if not isinstance(c, BootConfig):
            raise InvalidArgument(f"{c!r} is not a BootConfig")
    if scheduler is not None:
        return _run_dask(configs, scheduler, progress)
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgument(f"workers = {workers!r} must be a positive integer")
    out: List[Dict[str, Any]] = []
    if workers == 1 or len(configs) <= 1:
        for c in configs:
            out.append(_boot_json(c))
            if progress:
                progress(len(out), len(configs))
        return out
    chunk = max(1, len(configs) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for r in pool.map(_boot_json, configs, chunksize=chunk):
            out.append(r)
            if progress:
                progress(len(out), len(configs))
    return out


def _run_dask(configs: List[BootConfig], address: str,
              progress: Optional[Callable[[int, int], None]]) -> List[Dict[str, Any]]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:   # the optional extra
        raise InvalidArgument("--scheduler needs dask.distributed: pip install "
                              "'unaccepted[cluster]'") from exc
    with Client(address) as client:
        futures = client.map(_boot_json, configs, pure=False)
        if progress:
            for done, _ in enumerate(as_completed(futures), 1):
                progress(done, len(configs))
        return cast(List[Dict[str, Any]], client.gather(futures))


# ---- output ---------------------------------------------------------------------------
COLUMNS = ("vendor", "ram", "vcpus", "backing", "firmware", "loader", "kernel",
           "accept_memory", "booted", "failure", "usable", "lost", "unaccepted",
           "accepted_firmware", "accepted_kernel", "time_total")


def flat(result: Dict[str, Any]) -> Dict[str, Any]:
    """One result as a flat row (CSV, tables)."""
    c, m, a = result["config"], result["memory"], result["accepted"]
    f = result["failure"]
    return {"vendor": c["vendor"], "ram": c["ram"], "vcpus": c["vcpus"],
            "backing": c["backing"], "firmware": c["firmware"], "loader": c["loader"],
            "kernel": c["kernel"], "accept_memory": c["accept_memory"],
            "booted": result["booted"],
            "failure": f"{f['phase']}:{f['reason']}" if f else "",
            "usable": m["usable"], "lost": m["lost"], "unaccepted": m["unaccepted"],
            "accepted_firmware": a["firmware"],
            "accepted_kernel": a["stub"] + a["decompressor"] + a["kernel"],
            "time_total": result["time"]["total"]}


def to_csv(results: Iterable[Dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow(flat(r))
    return buf.getvalue()


def _gib(n: int) -> str:
    return f"{n / GiB:.1f}"


def _cells(r: Dict[str, Any]) -> List[str]:
    row = flat(r)
    return [str(row["vendor"]), format_size(row["ram"]), str(row["vcpus"]), row["backing"],
            str(row["firmware"]), str(row["loader"]), str(row["kernel"]),
            str(row["accept_memory"]), "yes" if row["booted"] else "NO",
            str(row["failure"]) or "-", _gib(row["usable"]), _gib(row["lost"]),
            _gib(row["accepted_firmware"]), _gib(row["accepted_kernel"]),
            f"{row['time_total']:.3f}"]


HEADER = ["vendor", "ram", "vcpus", "backing", "firmware", "loader", "kernel", "accept",
          "booted", "failure", "usable GiB", "lost GiB", "fw acc GiB", "os acc GiB",
          "time s"]


def summary(results: Sequence[Dict[str, Any]]) -> List[List[str]]:
    """Per vendor x firmware: how many boots work, how many lose memory,
    the firmware's acceptance time and the whole boot time on average."""
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["config"]["vendor"], r["config"]["firmware"]), []).append(r)
    rows: List[List[str]] = []
    for (vendor, fw), rs in groups.items():
        booted = [r for r in rs if r["booted"]]
        lossy = [r for r in booted if r["memory"]["lost"]]
        fw_time = sum(r["time"]["firmware"] for r in rs) / len(rs)
        total = sum(r["time"]["total"] for r in booted) / len(booted) if booted else 0.0
        broken = sorted({f"{r['config']['loader']}/{r['config']['kernel']}"
                         for r in rs if not r["booted"]})
        rows.append([vendor, fw, f"{len(booted)}/{len(rs)}", str(len(lossy)),
                     f"{fw_time:.3f}", f"{total:.3f}",
                     ", ".join(broken[:4]) + (f" (+{len(broken) - 4})" if len(broken) > 4
                                              else "")])
    return rows


SUMMARY_HEADER = ["vendor", "firmware", "booted", "lost memory", "firmware s (mean)",
                  "boot s (mean)", "broken (loader/kernel)"]


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def _markdown(header: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def to_table(results: Sequence[Dict[str, Any]], markdown: bool = False) -> str:
    fmt = _markdown if markdown else _table
    body = fmt(HEADER, [_cells(r) for r in results])
    summ = fmt(SUMMARY_HEADER, summary(results))
    title = "## Policy summary" if markdown else "Policy summary (vendor x firmware)"
    return f"{body}\n\n{title}\n\n{summ}\n"


def progress_printer(stream: Optional[TextIO] = None) -> Optional[Callable[[int, int], None]]:
    """A one-line counter on stderr, only when stderr is a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None

    def show(done: int, total: int) -> None:
        stream.write(f"\r{done}/{total} boots")
        if done == total:
            stream.write("\n")
        stream.flush()
    return show


__all__ = ["AXES", "DEFAULT_GRID", "grid", "run", "to_csv", "to_table", "summary", "flat"]
