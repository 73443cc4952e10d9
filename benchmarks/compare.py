"""Before/after: the ratio of each benchmark's time in one tree to another's,
from pytest-benchmark JSON files of interleaved runs on the same machine.

    # run i of "before" and run i of "after" back to back, several times:
    python benchmarks/compare.py before-1.json,before-2.json after-1.json,after-2.json

For each benchmark present in both, the ratio after/before of the minimum
time of run i (the least disturbed round on a shared machine) is computed
for every pair i; the table shows the median ratio and its range over the
pairs.  A ratio below 1 means faster after.
"""
import json
import statistics
import sys


def load(paths):
    runs = []
    for path in paths.split(","):
        with open(path) as f:
            data = json.load(f)
        runs.append({b["fullname"].split("::", 1)[-1]: b["stats"]["min"]
                     for b in data["benchmarks"]})
    return runs


def fmt(s):
    for unit, scale in (("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        if s * scale >= 1:
            return f"{s * scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def main(before_paths, after_paths):
    before, after = load(before_paths), load(after_paths)
    if len(before) != len(after):
        sys.exit("give as many before runs as after runs (they are paired)")
    names = sorted(set.intersection(*(set(r) for r in before + after)))
    print("| benchmark | before (min, median of runs) | after | after / before: median [range] |")
    print("|---|---|---|---|")
    for name in names:
        ratios = [a[name] / b[name] for b, a in zip(before, after)]
        b_med = statistics.median(r[name] for r in before)
        a_med = statistics.median(r[name] for r in after)
        print(f"| `{name}` | {fmt(b_med)} | {fmt(a_med)} | {statistics.median(ratios):.3f} "
              f"[{min(ratios):.3f}, {max(ratios):.3f}] |")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
