"""How fastnn's OpenMP threads wait (fastnn.threads) and the busy-machine benchmark
(`fastnn bench --contention`, fastnn.bench.contention)."""

import argparse
import json
import os
import subprocess
import tempfile
import sys

import pytest

from fastnn.bench import contention

_REPORT = (
    "import os, json, fastnn\n"
    "print(json.dumps([fastnn.threads.openmp_settings(), "
    "os.environ.get('GOMP_SPINCOUNT')]))"
)


def _settings(env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", _REPORT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),  # not the source tree, which python -c would import
    ).stdout
    return json.loads(out)


def test_fastnn_sets_a_short_spin_before_the_runtime_starts_and_leaves_children_alone():
    settings, leaked = _settings({})
    assert settings == {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "10000", "set_by": "fastnn"}
    assert leaked is None  # a child process (a PyTorch worker) gets its own defaults


@pytest.mark.parametrize(
    "env",
    [
        {"OMP_WAIT_POLICY": "passive"},
        {"GOMP_SPINCOUNT": "300000"},
        {"OMP_WAIT_POLICY": "active", "GOMP_SPINCOUNT": "5"},
    ],
)
def test_user_openmp_settings_win(env):
    settings, leaked = _settings(env)
    assert settings["set_by"] == "user"
    assert settings["GOMP_SPINCOUNT"] == env.get("GOMP_SPINCOUNT")
    assert settings["OMP_WAIT_POLICY"] == env.get("OMP_WAIT_POLICY")
    assert leaked == env.get("GOMP_SPINCOUNT")


class FakeCompetitor:
    def __init__(self):
        self.states = []

    def set(self, busy):
        self.states.append(busy)

    def stop(self):
        self.states.append("stopped")


def test_contention_measures_each_worker_idle_and_loaded_alternately():
    workers = contention.start_workers(torch=False)
    assert set(workers) == {"fastnn", "fastnn_stock_libgomp"}
    assert workers["fastnn"].info["openmp"]["GOMP_SPINCOUNT"] == "10000"
    assert workers["fastnn_stock_libgomp"].info["openmp"] == {
        "OMP_WAIT_POLICY": None,
        "GOMP_SPINCOUNT": "300000",
        "set_by": "user",
    }
    comp = FakeCompetitor()
    opts = argparse.Namespace(repeats=2, min_time=0.005, warmup=0.005, pause=0.0)
    try:
        rows = contention.bench_contention([16], 1, workers, opts, lambda m: None, comp)
    finally:
        for w in workers.values():
            w.close()
    assert comp.states == [False, True, True, False, False, "stopped"]
    assert {r["impl"] for r in rows} == {"fastnn", "fastnn_stock_libgomp"}
    for r in rows:
        assert len(r["idle_rates"]) == len(r["busy_rates"]) == 2
        assert r["retention"] == pytest.approx(r["busy_samples_per_s"] / r["idle_samples_per_s"])
    text = contention.contention_table(rows, [16])
    assert "fastnn kept" in text and "stock settings" in text
    targets = contention.contention_targets(rows, [16])
    assert [t["name"] for t in targets] == ["contention: fastnn keeps >= 40% at batch 16"]


def test_the_competitor_is_a_real_busy_process_and_is_stopped():
    comp = contention.Competitor()
    comp.set(True)
    proc = comp.proc
    assert proc.poll() is None
    comp.set(False)
    assert proc.poll() is not None and comp.proc is None
