"""Accept a whole 1 TiB guest, SEV-SNP and TDX, 2 MiB and 4 KiB host backing:
the figures the 0.2 interface work had to keep (and the before/after check
of any change on the accept paths).  Works with 0.1 and 0.2 of the package.

    python benchmarks/one_tib.py [rounds]      # one line: the min of each case in ms

Run it with the before tree's and the after tree's environment, several
times interleaved, on the same machine: the ratio of the minima is the
figure; this machine is shared, so the spread over runs goes with it.
SNP goes through the core Table (accept_memory -> snp_accept_memory), TDX
calls the Linux path directly; both with cost accounting off for TDX and
on (snp-epyc-kvm) for SNP, as benchmarks/bench_snp.py and bench_tdx.py do.
"""
import sys
import time

from unaccepted import Cost, Table
from unaccepted.snp import SnpGuest
from unaccepted.tdx import TdxGuest

TIB, M2 = 1 << 40, 2 << 20


def snp(backing):
    g = SnpGuest(TIB, backing=backing, cost=Cost("snp-epyc-kvm"))
    t = Table(size=TIB // M2 // 8)
    t.mark(0, TIB // M2)
    t.set_accept(g.accept_path("linux"))
    t0 = time.perf_counter()
    t.accept(0, TIB)
    return time.perf_counter() - t0


def tdx(backing):
    g = TdxGuest(TIB, backing=backing)
    path = g.accept_path("linux")
    t0 = time.perf_counter()
    path(0, TIB)
    return time.perf_counter() - t0


CASES = {"snp-2M": lambda: snp("2M"), "snp-4K": lambda: snp("4K"),
         "tdx-2M": lambda: tdx("2M"), "tdx-4K": lambda: tdx("4K")}


def main(rounds):
    best = {name: min(fn() for _ in range(rounds)) for name, fn in CASES.items()}
    print(" ".join(f"{name}={t * 1e3:.1f}" for name, t in best.items()))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
