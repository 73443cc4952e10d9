"""The `unaccepted` command."""
from __future__ import annotations

import argparse
import sys

from . import __version__


def _replay(args) -> int:
    from .replay import replay_bytes

    if args.file == "-":
        failed = replay_bytes(sys.stdin.buffer, sys.stdout)
    else:
        try:
            f = open(args.file, "rb")
        except OSError as exc:
            print(f"unaccepted replay: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        with f:
            failed = replay_bytes(f, sys.stdout)
    return 1 if args.strict and failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unaccepted",
        description="Simulate UEFI unaccepted memory in confidential VMs (SEV-SNP, TDX).")
    p.add_argument("--version", action="version", version=f"unaccepted {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replay", help="run JSON-lines conformance cases (docs/trace-format.md)")
    r.add_argument("file", nargs="?", default="-", help="input file, or - for stdin (default)")
    r.add_argument("--strict", action="store_true",
                   help="exit with status 1 if any case failed (default: 0 once every case ran)")
    r.set_defaults(func=_replay)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # one line and the conventional status, never a traceback
    try:
        status = args.func(args)
        sys.stdout.flush()
        return status
    except BrokenPipeError:          # `| head` closed the pipe: stop quietly
        _quiet_stdout()
        return 128 + 13              # SIGPIPE
    except KeyboardInterrupt:
        print("unaccepted: interrupted", file=sys.stderr)
        return 128 + 2               # SIGINT
    except MemoryError:
        print("unaccepted: out of memory", file=sys.stderr)
        return 1
    except OSError as exc:           # e.g. the disk filled up under stdout
        print(f"unaccepted: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _quiet_stdout():
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
