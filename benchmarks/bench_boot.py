"""The boot flow (pytest-benchmark; no timed asserts).

    python -m pytest benchmarks/bench_boot.py --benchmark-only

Targets (issue 7, figures in benchmarks/README.md):
- one lazy boot of a 1 TiB guest through firmware, loader and kernel under
  1 s of wall time, for both vendors and both host backings;
- the default policy matrix (864 boots) under 60 s on 2 cores.
The baseline named in each id is what the same run is compared with: a
1 TiB `none` guest (no acceptance at all: the Python floor of a boot) and,
for the matrix, one worker against two.
"""
import pytest

from unaccepted import matrix
from unaccepted.boot import boot
from unaccepted.vm import BootConfig

TiB = 1 << 40


@pytest.mark.parametrize("vendor, backing", [("snp", "2M"), ("snp", "4K"), ("tdx", "2M"),
                                             ("tdx", "4K"), ("none", "2M")])
@pytest.mark.benchmark(group="boot-1tib-lazy")
def test_boot_1tib_lazy(benchmark, vendor, backing):
    config = BootConfig(vendor=vendor, ram=TiB, vcpus=16, backing=backing)
    r = benchmark.pedantic(boot, args=(config,), rounds=3, iterations=1)
    assert r.booted
    m = r.memory
    assert m["usable"] + m["lost"] + m["firmware"] == TiB
    if vendor != "none":      # lazy: almost everything is still unaccepted at init
        assert m["unaccepted"] > TiB * 9 // 10


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.benchmark(group="matrix-default")
def test_default_matrix(benchmark, workers):
    configs = matrix.grid()
    results = benchmark.pedantic(matrix.run, args=(configs,), kwargs={"workers": workers},
                                 rounds=1, iterations=1)
    assert len(results) == 3 * 4 * 8 * 9
    assert all(r["memory"]["usable"] + r["memory"]["lost"] + r["memory"]["firmware"] ==
               r["memory"]["ram"] for r in results)
