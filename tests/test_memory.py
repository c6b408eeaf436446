"""The output memory pool: a buffer is reused only once nothing else refers to it,
and a simulation into reused (even poisoned) memory gives the same results."""
import gc
import os

import numpy as np
import pandas as pd
import pytest

from simulator import engine, memory
from simulator.memory import BufferPool

from helpers import make_scenario, with_money


def test_a_buffer_in_use_is_never_handed_out_again():
    pool = BufferPool(max_bytes=10**6)
    a = pool.empty((10, 3))
    b = pool.empty((10, 3))
    assert not np.shares_memory(a, b)
    column = a[:, 1]           # a view of a view: it refers to the pool's buffer
    del a
    c = pool.empty((30,))
    assert not np.shares_memory(c, column) and not np.shares_memory(c, b)
    assert pool.pooled_bytes() == 3 * 30 * 8
    frame = pd.DataFrame(b, copy=False)   # a frame built on the array holds it too
    del b
    assert pool.idle_bytes() == 0
    del frame, column
    gc.collect()
    assert pool.idle_bytes() == 30 * 8 * 2   # a and b; c is still held
    d = pool.empty((5, 6))
    assert pool.pooled_bytes() == 3 * 30 * 8    # reused, not allocated
    assert d.shape == (5, 6) and d.flags.c_contiguous and d.dtype == np.float64


def test_the_pool_is_bounded_and_releases_idle_buffers():
    pool = BufferPool(max_bytes=1000)
    kept = pool.empty((100,))         # 800 bytes: pooled
    extra = pool.empty((100,))        # would pass the bound: plain memory, not pooled
    assert pool.pooled_bytes() == 800
    del kept
    assert pool.idle_bytes() == 800
    small = pool.empty((10,))         # would leave most of the idle buffer unused: fresh
    assert pool.pooled_bytes() == 880
    assert pool.release() == 800      # the idle one goes back to the system
    assert pool.pooled_bytes() == 80 and small.size == 10 and extra.size == 100
    del small
    assert pool.release() == 80
    assert pool.pooled_bytes() == 0


def test_the_oldest_idle_buffers_make_way_for_new_sizes():
    pool = BufferPool(max_bytes=1000)
    first = pool.empty((50,))          # 400 bytes
    second = pool.empty((60,))         # 480 bytes: 880 pooled
    del first, second
    third = pool.empty((63,))          # 504 bytes, fits neither: the oldest idle one goes
    assert sorted(b.size for b in pool._buffers) == [60, 63]
    assert any(np.shares_memory(third, b) for b in pool._buffers)   # pooled, not plain
    assert pool.pooled_bytes() == 984 and pool.idle_bytes() == 480


def test_results_are_the_same_in_reused_and_poisoned_memory():
    sc = make_scenario(base=with_money())
    memory.release()
    first = engine.simulate(sc, paths=120, seed=3)
    paths = first.paths.copy()
    qsr, cal = first.by_tracking_quarter.copy(), first.by_calendar_quarter.copy()
    del first
    gc.collect()
    assert memory.OUTPUTS.idle_bytes() > 0
    for buf in memory.OUTPUTS._buffers:   # what a previous run left, made as bad as can be
        buf.fill(np.nan)
    again = engine.simulate(sc, paths=120, seed=3)
    assert any(np.shares_memory(again.by_calendar_quarter, b) for b in memory.OUTPUTS._buffers)
    pd.testing.assert_frame_equal(again.paths, paths, check_exact=True)
    assert np.array_equal(again.by_tracking_quarter, qsr)
    assert np.array_equal(again.by_calendar_quarter, cal)


def test_the_memory_estimate_counts_every_output_array_the_engine_allocates(monkeypatch):
    sc = make_scenario(base=with_money())
    pool = BufferPool()
    monkeypatch.setattr(memory, "OUTPUTS", pool)
    result = engine.simulate(sc, paths=50, seed=1)
    params = engine.draw_parameters(sc, 1, 0, 50)
    assert pool.pooled_bytes() + params.nbytes == engine.output_bytes(engine.layout(sc), 50)
    del result


def test_a_run_bigger_than_the_memory_available_is_refused_before_simulating(monkeypatch):
    sc = make_scenario()
    need = engine.PEAK_PER_OUTPUT_BYTE * engine.output_bytes(engine.layout(sc), 1000)
    monkeypatch.setattr(memory, "available_bytes", lambda: int(need / 2))
    calls = []
    monkeypatch.setattr(engine.K, "simulate_chunk", lambda *a: calls.append(a))
    with pytest.raises(engine.NotEnoughMemory,
                       match=r"1,000 paths of small need .* run at most about (499|500) paths"):
        engine.simulate(sc, paths=1000)
    assert calls == []
    monkeypatch.setattr(memory, "available_bytes", lambda: None)   # unknown: not checked
    engine.check_memory(sc, 10**8)
    monkeypatch.setattr(memory, "available_bytes", lambda: int(need * 1.01))
    engine.check_memory(sc, 1000)


def test_this_machine_reports_the_memory_available():
    if not os.path.exists("/proc/meminfo"):
        pytest.skip("only Linux says how much memory is available")
    have = memory.available_bytes()
    assert 10**7 < have < 2**50


def test_without_meminfo_the_physical_memory_bounds_a_run(monkeypatch):
    import builtins
    real_open = builtins.open

    def no_meminfo(path, *args, **kwargs):
        if str(path) == "/proc/meminfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_meminfo)
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    have = memory.available_bytes()
    assert have is not None and 0 < have <= physical + memory.OUTPUTS.idle_bytes()


def test_the_room_under_a_container_memory_limit_leaves_out_its_page_cache(tmp_path):
    assert memory.cgroup_room(str(tmp_path)) is None            # no cgroup files: no limit
    (tmp_path / "memory.max").write_text("max\n")
    assert memory.cgroup_room(str(tmp_path)) is None            # no limit set
    (tmp_path / "memory.max").write_text(f"{4 << 30}\n")
    (tmp_path / "memory.stat").write_text(f"anon {1 << 30}\nfile {2 << 30}\nkernel 1000\n")
    assert memory.cgroup_room(str(tmp_path)) == 3 << 30          # the 2 GiB of cache is room


def test_the_room_under_a_cgroup_v1_memory_limit(tmp_path, monkeypatch):
    assert memory.cgroup_v1_room(str(tmp_path)) is None         # no cgroup files: no limit
    (tmp_path / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert memory.cgroup_v1_room(str(tmp_path)) is None         # v1's "no limit"
    (tmp_path / "memory.limit_in_bytes").write_text(f"{4 << 30}\n")
    (tmp_path / "memory.stat").write_text(f"cache {2 << 30}\nrss {5 << 20}\n"
                                          f"total_cache {2 << 30}\ntotal_rss {1 << 30}\n")
    assert memory.cgroup_v1_room(str(tmp_path)) == 3 << 30       # hierarchy total, cache is room
    (tmp_path / "memory.stat").write_text(f"cache {2 << 30}\nrss {1 << 29}\n")
    assert memory.cgroup_v1_room(str(tmp_path)) == (4 << 30) - (1 << 29)
    # available_bytes takes v1 where there is no v2 limit
    monkeypatch.setattr(memory, "cgroup_room", lambda folder: None)
    monkeypatch.setattr(memory, "cgroup_v1_room", lambda folder: 1 << 20)
    assert memory.available_bytes() <= (1 << 20) + memory.OUTPUTS.idle_bytes()
