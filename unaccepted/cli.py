"""The `unaccepted` command (docs/interfaces.md): boot, matrix, memmap, replay."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence, Tuple

from . import __version__
from .errors import UnacceptedError


class _UsageError(Exception):
    """A bad argument found after parsing (status 2, one line)."""


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr naming the option and the value,
    status 2, no usage dump and no traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def _size(text: str) -> int:
    from .vm import parse_size
    try:
        return parse_size(text)
    except UnacceptedError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return n


def _list_of(item: Callable[[str], object], choices: Optional[Sequence[str]] = None,
             check: Optional[Callable[[str], object]] = None) -> Callable[[str], List[object]]:
    """A comma list of values (matrix) checked one by one."""
    def parse(text: str) -> List[object]:
        values = [v.strip() for v in text.split(",")]
        if not all(values):
            raise argparse.ArgumentTypeError(f"{text!r} has an empty item")
        out: List[object] = []
        for v in values:
            if choices is not None and v not in choices:
                raise argparse.ArgumentTypeError(
                    f"invalid choice {v!r} (choose from {', '.join(choices)})")
            if check is not None:
                try:
                    check(v)
                except UnacceptedError as exc:
                    raise argparse.ArgumentTypeError(str(exc)) from None
            out.append(item(v))
        return out
    return parse


def _firmware_name(text: str) -> str:
    from .vm import split_firmware
    split_firmware(text)
    return text


def _boot_options(p: argparse.ArgumentParser, *, lists: bool) -> None:
    from .cost import CostProfile
    from .vm import ACCEPT_MEMORY, BACKINGS, FIRMWARE_DEBUG, KERNELS, LOADERS, VENDORS

    def opt(name: str, kind: Callable[[str], object], choices: Optional[Sequence[str]] = None,
            check: Optional[Callable[[str], object]] = None, default: object = None,
            help: str = "") -> None:
        if lists:
            p.add_argument(name, type=_list_of(kind, choices, check), default=None,
                           metavar="LIST", help=help + " (comma list)")
        else:
            def one(text: str, kind: Callable[[str], object] = kind,
                    choices: Optional[Sequence[str]] = choices,
                    check: Optional[Callable[[str], object]] = check) -> object:
                return _list_of(kind, choices, check)(text)[0] if "," not in text else \
                    _fail(f"{text!r}: one value only")
            p.add_argument(name, type=one, default=default, help=help)

    opt("--vendor", str, VENDORS, default="tdx", help="snp, tdx or none (default tdx)")
    opt("--ram", _size, default=16 << 30, help="guest RAM, e.g. 16G (default 16G)")
    opt("--vcpus", _positive, default=4, help="vCPUs (default 4)")
    opt("--backing", str, BACKINGS, default="2M",
        help="host mapping of private memory: 2M or 4K (default 2M)")
    opt("--firmware", str, check=_firmware_name, default="ovmf",
        help="ovmf, ovmf-noprotocol, ovmf-eager or ovmf-partial[:SIZE] (default ovmf)")
    opt("--loader", str, LOADERS, default="grub", help=f"{', '.join(LOADERS)} (default grub)")
    opt("--kernel", str, KERNELS, default="mainline",
        help=f"kernel profile: {', '.join(KERNELS)} (default mainline)")
    opt("--accept-memory", str, ACCEPT_MEMORY, default="lazy",
        help="the kernel's accept_memory= (default lazy)")
    opt("--profile", str, CostProfile.builtin_names(), default=None,
        help="cost profile (default by vendor)")
    p.add_argument("--memmap", metavar="FILE", default=None,
                   help="boot with the RAM layout of a log or map (see `memmap`)")
    p.add_argument("--firmware-debug", metavar="LIST", default="",
                   type=_plus_list(FIRMWARE_DEBUG),
                   help="old-firmware behaviours, '+'-separated: " + ", ".join(FIRMWARE_DEBUG))


def _plus_list(choices: Sequence[str]) -> Callable[[str], Tuple[str, ...]]:
    def parse(text: str) -> Tuple[str, ...]:
        items = tuple(v for v in text.split("+") if v)
        for v in items:
            if v not in choices:
                raise argparse.ArgumentTypeError(
                    f"invalid choice {v!r} (choose from {', '.join(choices)})")
        return items
    return parse


def _fail(message: str) -> NoReturn:
    raise argparse.ArgumentTypeError(message)


def _memmap_fixed(args: argparse.Namespace) -> Dict[str, Any]:
    """BootConfig fields from --memmap: the RAM layout of the file."""
    if args.memmap is None:
        return {}
    from .memlog import read_memmap
    try:
        result = read_memmap(args.memmap)
    except OSError as exc:
        raise _UsageError(f"argument --memmap: cannot read {args.memmap}: "
                          f"{exc.strerror or exc}") from None
    m = result.maps[-1]            # the EFI map when a log holds both
    ranges = tuple((s, e) for s, e, _ in m.ram_ranges())
    if not ranges:
        raise UnacceptedError(f"{args.memmap}: the map has no RAM")
    return {"memmap": args.memmap, "ram_ranges": ranges, "ram": sum(e - s for s, e in ranges)}


def _boot(args: argparse.Namespace) -> int:
    from .boot import boot
    from .vm import BootConfig
    fixed = _memmap_fixed(args)
    config = BootConfig(vendor=args.vendor, ram=fixed.pop("ram", args.ram), vcpus=args.vcpus,
                        backing=args.backing, firmware=args.firmware, loader=args.loader,
                        kernel=args.kernel, accept_memory=args.accept_memory,
                        profile=args.profile, firmware_debug=args.firmware_debug, **fixed)
    result = boot(config)
    if args.json:
        json.dump(result.to_json_obj(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_boot_text(result.to_json_obj()))
    return 0


def _boot_text(r: Dict[str, Any]) -> str:
    from .vm import format_size
    c, m = r["config"], r["memory"]
    gib = 1 << 30
    lines = [f"{c['vendor']} guest, {format_size(c['ram'])} RAM, {c['vcpus']} vCPUs, "
             f"{c['backing']} backing: {c['firmware']} -> {c['loader']} -> Linux "
             f"{c['kernel']} (accept_memory={c['accept_memory']})"]
    if r["booted"]:
        lines.append("booted")
    else:
        f = r["failure"]
        lines.append(f"did not boot: {f['phase']}: {f['reason']}: {f['message']}")
    lines.append("memory GiB:   " + "  ".join(f"{k} {m[k] / gib:.2f}" for k in
                                              ("ram", "usable", "lost", "firmware",
                                               "unaccepted")))
    lines.append("accepted GiB: " + "  ".join(f"{k} {v / gib:.2f}"
                                              for k, v in r["accepted"].items()))
    lines.append("time s:       " + "  ".join(f"{k} {v:.3f}" for k, v in r["time"].items()))
    lines += [f"  | {msg}" for msg in r["messages"]]
    return "\n".join(lines) + "\n"


def _matrix(args: argparse.Namespace) -> int:
    from . import matrix
    options = {name: getattr(args, name) for name in matrix.AXES
               if getattr(args, name, None) is not None}
    fixed = _memmap_fixed(args)
    if fixed:
        if "ram" in options:
            raise UnacceptedError("--ram and --memmap exclude each other")
        options["ram"] = [fixed.pop("ram")]
    if args.firmware_debug:
        fixed["firmware_debug"] = args.firmware_debug
    configs = matrix.grid(options, **fixed)
    results = matrix.run(configs, workers=args.workers, scheduler=args.scheduler,
                         progress=matrix.progress_printer())
    fmt = "json" if args.json else args.format
    if fmt == "json":
        json.dump(results, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif fmt == "csv":
        sys.stdout.write(matrix.to_csv(results))
    else:
        sys.stdout.write(matrix.to_table(results, markdown=fmt == "md"))
    return 0


def _memmap(args: argparse.Namespace) -> int:
    from .memlog import run
    return run(args)


def _replay(args: argparse.Namespace) -> int:
    from .replay import replay_bytes

    progress = sys.stderr if sys.stderr.isatty() else None
    if args.file == "-":
        failed = replay_bytes(sys.stdin.buffer, sys.stdout, progress)
    else:
        try:
            f = open(args.file, "rb")
        except OSError as exc:
            print(f"unaccepted replay: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        with f:
            failed = replay_bytes(f, sys.stdout, progress)
    return 1 if args.strict and failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="unaccepted",
        description="Simulate UEFI unaccepted memory in confidential VMs (SEV-SNP, TDX).")
    p.add_argument("--version", action="version", version=f"unaccepted {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    b = sub.add_parser("boot", help="boot one confidential VM through firmware, loader and "
                                    "kernel (docs/boot.md)")
    _boot_options(b, lists=False)
    b.add_argument("--json", action="store_true", help="print the boot JSON")
    b.set_defaults(func=_boot)

    m = sub.add_parser("matrix", help="boot every combination of the options in parallel "
                                      "(the policy matrix)")
    _boot_options(m, lists=True)
    m.add_argument("--format", choices=("table", "json", "csv", "md"), default="table",
                   help="output format (default table)")
    m.add_argument("--json", action="store_true", help="same as --format json")
    m.add_argument("--workers", type=_positive, default=None,
                   help="local worker processes (default: all cores)")
    m.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="a Dask distributed scheduler to run the grid on")
    m.set_defaults(func=_matrix)

    mm = sub.add_parser("memmap", help="read a memory map from a boot log, a binary EFI map "
                                       "or a JSON map (docs/memmap.md)")
    from .memlog import add_arguments
    add_arguments(mm)
    mm.set_defaults(func=_memmap)

    r = sub.add_parser("replay", help="run JSON-lines conformance cases (docs/trace-format.md)")
    r.add_argument("file", nargs="?", default="-", help="input file, or - for stdin (default)")
    r.add_argument("--strict", action="store_true",
                   help="exit with status 1 if any case failed (default: 0 once every case ran)")
    r.set_defaults(func=_replay)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # one line and the conventional status, never a traceback
    try:
        status: int = args.func(args)
        sys.stdout.flush()
        return status
    except BrokenPipeError:          # `| head` closed the pipe: stop quietly
        _quiet_stdout()
        return 128 + 13              # SIGPIPE
    except _UsageError as exc:
        print(f"unaccepted {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unaccepted: interrupted", file=sys.stderr)
        return 128 + 2               # SIGINT
    except MemoryError:
        print("unaccepted: out of memory", file=sys.stderr)
        return 1
    except UnacceptedError as exc:   # the simulator could not run it
        print(f"unaccepted {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:           # e.g. the disk filled up under stdout
        print(f"unaccepted: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's
    final flush does not print a second error."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
