"""TDX model benchmarks (pytest-benchmark).

    python -m pytest benchmarks/bench_tdx.py --benchmark-only

Each accept benchmark builds a fresh guest in setup (not timed) and accepts
all of it through the Linux path (tdx_accept_memory) in one C call.  Peak
RSS (ru_maxrss) and the model's own memory use go to extra_info.
"""
import resource

import pytest

from unaccepted import Cost
from unaccepted.tdx import SeptState, TdxGuest

K4, M2, G1, T1 = 4096, 2 << 20, 1 << 30, 1 << 40


def _rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _accept_all(benchmark, memory, backing, cost=False):
    state = {}

    def setup():
        state.clear()
        g = TdxGuest(memory, backing=backing, cost=Cost("tdx-spr-kvm") if cost else None)
        state["g"] = g
        state["path"] = g.accept_path("linux")
        return (), {}

    def run():
        state["path"](0, memory)

    benchmark.pedantic(run, setup=setup, rounds=1, iterations=1, warmup_rounds=0)
    g, path = state["g"], state["path"]
    s = path.stats
    assert g.count_states(0, memory) == {SeptState.MAPPED: memory // K4}
    benchmark.extra_info.update(
        memory_bytes=memory, backing=backing, tdcall_executions=s.executions, exits=s.exits,
        aug_4k=s.host_aug_4k, aug_2m=s.host_aug_2m, model_mib=g.memory_usage / 2**20,
        peak_rss_mib=_rss_mib())
    if cost:
        benchmark.extra_info["simulated_seconds"] = g.cost.seconds(0)
    return g


@pytest.mark.parametrize("backing", ["2M", "4K"])
@pytest.mark.parametrize("cost", [False, True], ids=["", "with_cost"])
@pytest.mark.benchmark(group="tdx-accept-1tib")
def test_accept_1tib(benchmark, backing, cost):
    _accept_all(benchmark, T1, backing, cost=cost)


@pytest.mark.benchmark(group="tdx-memory")
def test_memory_4tib_2m_backing_accepted(benchmark):
    g = _accept_all(benchmark, 4 * T1, "2M")
    benchmark.extra_info["bytes_per_2m_region"] = g.memory_usage / (4 * T1 // M2)
    assert g.memory_usage <= 64 << 20


@pytest.mark.benchmark(group="tdx-create")
def test_create_64tib(benchmark):
    g = benchmark(TdxGuest, 64 * T1)
    benchmark.extra_info.update(model_mib=g.memory_usage / 2**20, peak_rss_mib=_rss_mib())


@pytest.mark.benchmark(group="tdx-ops")
def test_single_accept_tdcall(benchmark):
    g = TdxGuest(G1, initial="pending")
    g.accept_path("linux")(0, G1)
    benchmark(g.accept, M2, 1)   # PAGE_ALREADY_ACCEPTED: the cffi round trip
