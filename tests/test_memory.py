"""The memory a run needs and the machine has: a run too big is refused before it
starts; and results do not depend on what the output memory held."""
import os

import numpy as np
import pandas as pd
import pytest

from simulator import engine, memory

from helpers import make_scenario, with_money


def test_results_are_the_same_whatever_the_output_memory_held(monkeypatch):
    """The output arrays are uninitialised: every path zeroes its own rows first, so
    memory full of NaN gives the same results as fresh memory."""
    sc = make_scenario(base=with_money())
    first = engine.simulate(sc, paths=120, seed=3)
    monkeypatch.setattr(engine, "output_array", lambda shape: np.full(shape, np.nan))
    again = engine.simulate(sc, paths=120, seed=3)
    pd.testing.assert_frame_equal(again.paths, first.paths, check_exact=True)
    assert np.array_equal(again.by_tracking_quarter, first.by_tracking_quarter)
    assert np.array_equal(again.by_calendar_quarter, first.by_calendar_quarter)


def test_the_memory_estimate_counts_every_output_array_the_engine_allocates(monkeypatch):
    sc = make_scenario(base=with_money())
    allocated = []

    def counted(shape):
        allocated.append(np.empty(shape))
        return allocated[-1]

    monkeypatch.setattr(engine, "output_array", counted)
    engine.simulate(sc, paths=50, seed=1)
    params = engine.draw_parameters(sc, 1, 0, 50)
    assert (sum(a.nbytes for a in allocated) + params.nbytes
            == engine.output_bytes(engine.layout(sc), 50))


def test_a_run_bigger_than_the_memory_available_is_refused_before_simulating(monkeypatch):
    sc = make_scenario()
    need = engine.PEAK_PER_OUTPUT_BYTE * engine.output_bytes(engine.layout(sc), 1000)
    monkeypatch.setattr(memory, "available_bytes", lambda: int(need / 2))
    calls = []
    monkeypatch.setattr(engine, "run_chunk", lambda *a: calls.append(a))
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
    assert have is not None and 0 < have <= physical


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
    assert memory.available_bytes() <= 1 << 20
