"""Summarise a pytest-benchmark JSON file: time per operation and the ratio
of each baseline to `unaccepted` in the same group and parameters.

    python benchmarks/report.py .benchmarks/core.json
"""
import json
import re
import sys
from collections import defaultdict

# longest first where one name contains another
IMPLS = ("unaccepted", "numpy-vectorised", "python", "numpy", "bitarray", "bare-c",
         "vectorised-avx512", "vectorised-avx2", "vectorised", "memory-bandwidth")


def impl_of(name):
    name = name.replace("_", "-")
    for impl in IMPLS:
        if re.search(rf"(^|[-\[]){re.escape(impl)}([-\]\[]|$)", name):
            return impl
    return "?"


def fmt_time(s):
    for unit, scale in (("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        if s * scale >= 1:
            return f"{s * scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def main(path):
    data = json.load(open(path))
    groups = defaultdict(list)
    for b in data["benchmarks"]:
        groups[b["group"]].append(b)
    machine = data.get("machine_info", {})
    print(f"# {machine.get('cpu', {}).get('brand_raw', '?')}, "
          f"{machine.get('cpu', {}).get('count', '?')} cores, Python "
          f"{machine.get('python_version', '?')}, {data.get('datetime', '')[:10]}")
    for group, items in sorted(groups.items()):
        print(f"\n## {group}")
        print(f"| implementation | params | median | per op | vs unaccepted |")
        print("|---|---|---|---|---|")
        base = {}
        for b in items:
            if impl_of(b["name"]) == "unaccepted":
                base[json.dumps(b.get("params") or {}, sort_keys=True)] = b
        for b in sorted(items, key=lambda b: (json.dumps(b.get("params") or {}), b["name"])):
            ops = b.get("extra_info", {}).get("ops", 1)
            med = b["stats"]["median"]
            key = json.dumps(b.get("params") or {}, sort_keys=True)
            params = {k: v for k, v in (b.get("params") or {}).items() if k != "baseline"}
            ref = base.get(key) or base.get(json.dumps(params, sort_keys=True))
            ratio = ""
            if ref is not None:
                ref_per_op = ref["stats"]["median"] / ref.get("extra_info", {}).get("ops", 1)
                ratio = f"{(med / ops) / ref_per_op:.2f}x"
            info = b.get("extra_info", {})
            extra = ""
            nbytes = info.get("bitmap_bytes")
            if nbytes:
                extra = f" ({nbytes / med / 1e9:.1f} GB/s)"
            impl = impl_of(b["name"])
            if impl == "?":       # no baseline in this group: name it and show its extras
                impl = b["name"]
                shown = {k: (round(v, 1) if isinstance(v, float) else v)
                         for k, v in info.items() if k not in ("ops",)}
                params = {**params, **shown} if params else shown
            print(f"| {impl} | {params or ''} | {fmt_time(med)}{extra} | "
                  f"{fmt_time(med / ops)} | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".benchmarks/latest.json")
