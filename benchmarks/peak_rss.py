"""Peak RSS of one scenario per process (pytest-benchmark runs everything in
one process, so its ru_maxrss is the maximum over all benchmarks so far).

    python benchmarks/peak_rss.py            # every scenario, one subprocess each
    python benchmarks/peak_rss.py tdx 4K 1   # one: vendor, host backing, TiB
"""
import resource
import subprocess
import sys
import time

TiB = 1 << 40
SCENARIOS = [("snp", "2M", 1), ("snp", "4K", 1), ("snp", "2M", 4),
             ("tdx", "2M", 1), ("tdx", "4K", 1), ("tdx", "2M", 4)]


def run_one(vendor, backing, tib):
    from unaccepted import SnpGuest, Table, TdxGuest

    size = tib * TiB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    guest = (SnpGuest if vendor == "snp" else TdxGuest)(size, backing=backing)
    table = Table(2 << 20, 0, size // (2 << 20) // 8, accept=guest.accept_path("linux"))
    table.mark(0, table.nbits)
    t0 = time.perf_counter()
    table.accept(0, size - 4096)            # the whole guest, one run, through the Linux path
    wall = time.perf_counter() - t0
    assert table.unaccepted_units == 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"| {vendor} | {backing} | {tib} TiB | {wall:.2f} s | {peak / 1024:.0f} MiB "
          f"| {before / 1024:.0f} MiB |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4:
        run_one(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    else:
        print("| vendor | backing | guest | wall (accept all) | peak RSS | RSS before the guest |")
        print("|---|---|---|---|---|---|")
        for v, b, t in SCENARIOS:
            subprocess.run([sys.executable, __file__, v, b, str(t)], check=True)
