"""The `unaccepted` command."""
from __future__ import annotations

import argparse
import sys

from . import __version__


def _replay(args) -> int:
    from .replay import replay_stream

    if args.file == "-":
        replay_stream(sys.stdin, sys.stdout)
        return 0
    try:
        f = open(args.file, encoding="utf-8")
    except OSError as exc:
        print(f"unaccepted replay: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    with f:
        try:
            replay_stream(f, sys.stdout)
        except UnicodeDecodeError as exc:
            print(f"unaccepted replay: {args.file} is not UTF-8 text: {exc}", file=sys.stderr)
            return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unaccepted",
        description="Simulate UEFI unaccepted memory in confidential VMs (SEV-SNP, TDX).")
    p.add_argument("--version", action="version", version=f"unaccepted {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replay", help="run JSON-lines conformance cases (docs/trace-format.md)")
    r.add_argument("file", nargs="?", default="-", help="input file, or - for stdin (default)")
    r.set_defaults(func=_replay)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
