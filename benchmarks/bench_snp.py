"""SEV-SNP model benchmarks (pytest-benchmark; informational, no timed asserts).

    python -m pytest benchmarks/bench_snp.py --benchmark-only

Accepting a whole 1 TiB guest through the core table and the Linux path
with 2 MiB and 4 KiB host backing, the simulator memory of a fully accepted
4 TiB guest, and creating a 64 TiB guest.  Peak RSS (ru_maxrss, process-wide
and monotonic, so the 4 KiB run is last) and the model's own allocation go
to extra_info.
"""
import resource

import pytest

from unaccepted import Cost, Table
from unaccepted.snp import SnpGuest

M2, TiB = 2 << 20, 1 << 40


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def accepted_table(size):
    t = Table(size=size // M2 // 8)
    t.mark(0, size // M2)
    return t


def run_accept_all(benchmark, size, backing, rounds):
    state = {}

    def setup():
        g = SnpGuest(size, backing=backing, cost=Cost("snp-epyc-kvm"))
        t = accepted_table(size)
        t.set_accept(g.accept_path("linux"))
        state["g"], state["t"] = g, t
        return (t,), {}

    def accept_all(t):
        t.accept(0, size)

    benchmark.pedantic(accept_all, setup=setup, rounds=rounds, iterations=1)
    g = state["g"]
    assert g.count() == (size // 4096, 0)
    st = g.stats()
    benchmark.extra_info.update({
        "guest_bytes": size, "backing": backing,
        "model_bytes_allocated": st.bytes_allocated,
        "split_regions": st.split_regions,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "simulated_seconds_vcpu0": round(g.cost.seconds(0), 3),
    })


@pytest.mark.benchmark(group="snp-accept")
def test_accept_1tib_linux_2m_backing(benchmark):
    run_accept_all(benchmark, TiB, "2M", rounds=5)


@pytest.mark.benchmark(group="snp-memory")
def test_memory_4tib_2m_backing_all_accepted(benchmark):
    run_accept_all(benchmark, 4 * TiB, "2M", rounds=1)
    assert benchmark.extra_info["model_bytes_allocated"] <= 64 << 20


@pytest.mark.benchmark(group="snp-create")
def test_create_64tib_guest(benchmark):
    g = benchmark(SnpGuest, 64 * TiB)
    st = g.stats()
    benchmark.extra_info.update({"model_bytes_allocated": st.bytes_allocated,
                                 "regions": st.regions, "peak_rss_mib": round(peak_rss_mib(), 1)})


@pytest.mark.benchmark(group="snp-accept")
def test_accept_1tib_linux_4k_backing(benchmark):
    run_accept_all(benchmark, TiB, "4K", rounds=1)
