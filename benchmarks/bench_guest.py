"""The guest interface and the pluggable host (pytest-benchmark; no timed asserts).

    python -m pytest benchmarks/bench_guest.py --benchmark-only

How much a host written in Python costs per exit against KVM, the default
(which the models call directly, without going through the ops table):
both vendors accept 64 MiB with 4 KiB backing, so every 4 KiB page takes an
exit on TDX (one AUG each) and every 2 MiB entry falls back on SNP.  The
Python host only delegates (`exit.default()`), so the two runs do the same
work and end in the same state; the difference is the callback.
"""
import pytest

from unaccepted import Host, SnpConfig, TdxConfig

MEM = 64 << 20


class Delegate(Host):
    def snp_psc(self, exit):
        exit.default()

    def snp_npf(self, exit):
        exit.default()

    def tdx_exit(self, exit):
        exit.default()


CONFIGS = {"snp": SnpConfig, "tdx": TdxConfig}
HOSTS = {"kvm": Host(), "python": Delegate()}


@pytest.mark.parametrize("vendor", ["snp", "tdx"])
@pytest.mark.parametrize("host", ["kvm", "python"])
@pytest.mark.benchmark(group="host-dispatch")
def test_accept_64mib_4k_backing(benchmark, vendor, host):
    state = {}

    def setup():
        state["g"] = CONFIGS[vendor](MEM, backing="4K", host=HOSTS[host]).build()
        state["path"] = state["g"].accept_path("linux")
        return (), {}

    benchmark.pedantic(lambda: state["path"](0, MEM), setup=setup, rounds=5, iterations=1)
    g = state["g"]
    assert g.count_accepted() == MEM // 4096 and g.fatal is None
    benchmark.extra_info.update(exits=g.path_stats().exits, vendor=vendor, host=host)
