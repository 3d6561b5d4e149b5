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
        rows = contention.bench_contention([16], 2, workers, opts, lambda m: None, comp)
    finally:
        for w in workers.values():
            w.close()
    assert comp.states == [False, True, True, False, False, "stopped"]
    assert {r["impl"] for r in rows} == {"fastnn", "fastnn_stock_libgomp"}
    for r in rows:
        assert len(r["idle_rates"]) == len(r["busy_rates"]) == 2
        assert r["retention"] == pytest.approx(r["busy_samples_per_s"] / r["idle_samples_per_s"])
    # fastnn (not the stock-settings variant) is also timed idle on one thread
    by = {r["impl"]: r for r in rows}
    one = by["fastnn"]["one_thread_idle_samples_per_s"]
    assert one > 0
    assert by["fastnn"]["one_core_share"] == pytest.approx(one / by["fastnn"]["idle_samples_per_s"])
    assert by["fastnn_stock_libgomp"]["one_core_share"] is None
    text = contention.contention_table(rows, [16])
    assert "fastnn kept" in text and "stock settings" in text
    assert "fastnn one core" in text and "fastnn_stock_libgomp one core" not in text
    targets = contention.contention_targets(rows, [16])
    assert [t["name"] for t in targets] == ["contention: fastnn keeps >= 40% at batch 16"]


def test_the_competitor_is_a_real_busy_process_and_is_stopped():
    comp = contention.Competitor()
    comp.set(True)
    proc = comp.proc
    assert proc.poll() is None
    comp.set(False)
    assert proc.poll() is not None and comp.proc is None


# ------------------------------------------------------------------- the thread governor
class FakeMachine:
    """A /proc/stat of two cores and the clocks the governor reads, advanced by hand."""

    def __init__(self, tmp_path):
        self.path = tmp_path / "stat"
        self.now, self.own, self.busy, self.nice = 100.0, 0.0, [0.0, 0.0], [0.0, 0.0]
        self.tck = os.sysconf("SC_CLK_TCK")
        self.autogroup = tmp_path / "sched_autogroup_enabled"
        self.autogroup.write_text("0\n")
        self.write()

    def write(self):
        lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
        for c, (b, n) in enumerate(zip(self.busy, self.nice)):
            # user nice system idle iowait irq softirq steal guest guest_nice; the busy
            # time spread over every busy column but nice, idle and iowait left out
            t, tn = round(b * self.tck), round(n * self.tck)
            parts = [t // 5, tn, t // 5, 999, 999, t // 5, t // 5, t - 4 * (t // 5), 7, 7]
            lines.append(f"cpu{c} " + " ".join(map(str, parts)))
        lines.append("intr 12345")
        self.path.write_text("\n".join(lines) + "\n")

    def run(self, seconds, own_cores, other_cores, niced_cores=0.0):
        """`seconds` pass with this process using own_cores, others other_cores and
        processes at a lower priority (nice > 0) niced_cores."""
        self.now += seconds
        self.own += own_cores * seconds
        per_core = (own_cores + other_cores) * seconds / len(self.busy)
        self.busy = [b + per_core for b in self.busy]
        self.nice = [n + niced_cores * seconds / len(self.nice) for n in self.nice]
        self.write()

    def governor(self):
        from fastnn.threads import ThreadGovernor

        g = ThreadGovernor(
            str(self.path),
            clock=lambda: self.now,
            cpu_time=lambda: self.own,
            autogroup_path=str(self.autogroup),
        )
        g.cpus, g.enabled = [0, 1], True
        return g


@pytest.fixture
def two_threads(use_threads):
    with use_threads(2):
        yield
    from fastnn import _kernels

    assert _kernels.threads_in_use() == _kernels.get_num_threads()


def test_governor_gives_other_processes_their_cores_and_takes_them_back(tmp_path, two_threads):
    from fastnn import _kernels

    m = FakeMachine(tmp_path)
    g = m.governor()
    g.poll()  # the first look only records
    assert _kernels.threads_in_use() == 2
    m.run(0.2, own_cores=1.3, other_cores=0.7)  # a busy process preempts our team
    g.poll()
    assert _kernels.threads_in_use() == 1
    m.run(0.05, own_cores=1.0, other_cores=2.0)  # too soon to look again
    g.poll()
    assert _kernels.threads_in_use() == 1
    m.run(0.2, own_cores=1.0, other_cores=1.0)  # still there
    g.poll()
    assert _kernels.threads_in_use() == 1
    m.run(0.2, own_cores=1.0, other_cores=0.1)  # gone: background noise only
    g.poll()
    assert _kernels.threads_in_use() == 2
    m.run(0.2, own_cores=2.0, other_cores=5.0)  # never fewer than one thread
    g.poll()
    assert _kernels.threads_in_use() == 1


@pytest.mark.parametrize("autogroup", ["0", "1", None])
def test_governor_counts_niced_processes_only_where_they_compete(tmp_path, two_threads, autogroup):
    """Processes at a lower priority yield the cores to ours, unless the kernel shares
    the CPU between sessions (autogroup), where nice does not order them."""
    from fastnn import _kernels

    m = FakeMachine(tmp_path)
    if autogroup is None:  # a kernel without autogroup
        m.autogroup.unlink()
    else:
        m.autogroup.write_text(autogroup + "\n")
    g = m.governor()
    g.poll()
    m.run(0.2, own_cores=1.3, other_cores=0.0, niced_cores=0.7)
    g.poll()
    assert _kernels.threads_in_use() == (1 if autogroup == "1" else 2)


def test_governor_never_exceeds_the_thread_count_set(tmp_path, use_threads):
    from fastnn import _kernels

    m = FakeMachine(tmp_path)
    g = m.governor()
    with use_threads(1):
        g.poll()
        m.run(0.2, own_cores=1.0, other_cores=0.0)
        g.poll()
        assert _kernels.threads_in_use() == 1


def test_governor_off_or_unreadable_stat_changes_nothing(tmp_path, two_threads):
    from fastnn import _kernels
    from fastnn.threads import ThreadGovernor

    m = FakeMachine(tmp_path)
    g = m.governor()
    g.enabled = False
    g.poll()
    m.run(0.2, own_cores=1.0, other_cores=2.0)
    g.poll()
    assert _kernels.threads_in_use() == 2
    assert not ThreadGovernor(str(tmp_path / "missing")).available


def test_set_dynamic_threads_validates_and_restores_the_full_team(two_threads):
    import fastnn
    from fastnn import _kernels

    with pytest.raises(TypeError, match="enabled must be True or False"):
        fastnn.set_dynamic_threads(1)
    _kernels.use_threads(1)
    fastnn.set_dynamic_threads(False)
    assert _kernels.threads_in_use() == 2


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_governor_sees_a_real_busy_process(two_threads):
    """A process spinning on one of our cores is seen as load by the real /proc/stat."""
    import time

    from fastnn import _kernels
    from fastnn.threads import ThreadGovernor

    g = ThreadGovernor()
    g.cpus = sorted(os.sched_getaffinity(0))[:2]
    # The busy child inherits our priority: under `nice pytest` its time is niced time.
    g.enabled, g.count_nice = True, True
    busy = subprocess.Popen(
        [sys.executable, "-c", contention._BUSY], preexec_fn=lambda: os.sched_setaffinity(0, g.cpus)
    )
    try:
        seen = []
        for _ in range(10):
            time.sleep(0.15)
            g.poll()
            seen.append(_kernels.threads_in_use())
    finally:
        busy.kill()
        busy.wait()
    assert 1 in seen[2:], seen


def test_thread_count_changing_between_steps_leaves_training_bit_identical(use_threads):
    """What the governor does (a different count at any step) never changes results."""
    import numpy as np

    import fastnn
    from fastnn import _kernels
    from fastnn.losses import CrossEntropyLoss
    from fastnn.optim import Adam

    r = np.random.default_rng(0)
    X, y = r.normal(size=(1024, 300)).astype(np.float32), r.integers(0, 5, 1024)

    def train(counts):
        fastnn.seed(0)
        model = fastnn.Sequential(
            fastnn.Dense(300, 600), fastnn.BatchNorm1d(600), fastnn.ReLU(),
            fastnn.Dropout(0.3), fastnn.Dense(600, 5),
        )  # fmt: skip
        trainer = fastnn.Trainer(model, CrossEntropyLoss(), Adam(model.parameters()))
        for i, s in enumerate(range(0, 1024, 128)):
            _kernels.use_threads(counts[i % len(counts)])
            trainer.train_step(X[s : s + 128], y[s : s + 128])
        return [p.copy() for p in model.state_dict().values()]

    with use_threads(2):
        fixed, changing = train([2]), train([1, 2, 2, 1])
    for a, b in zip(fixed, changing):
        np.testing.assert_array_equal(a, b)


def test_governor_ignores_what_ran_during_a_pause_between_calls(tmp_path, two_threads):
    """A benchmark alternating libraries, or a server between requests: what other
    programs did during a pause is no evidence about now; the count stays as the last
    window of our own work left it, and the next such window decides."""
    from fastnn import _kernels

    m = FakeMachine(tmp_path)
    g = m.governor()
    g.poll()
    m.run(0.1, own_cores=2.0, other_cores=0.0)
    g.poll()
    m.run(2.0, own_cores=0.0, other_cores=2.0)  # a pause; another program ran meanwhile
    g.poll()
    assert _kernels.threads_in_use() == 2
    m.run(0.2, own_cores=1.3, other_cores=0.7)  # loaded while we work: shrink
    g.poll()
    assert _kernels.threads_in_use() == 1
    m.run(2.0, own_cores=0.0, other_cores=0.0)  # a quiet pause is no evidence either
    g.poll()
    assert _kernels.threads_in_use() == 1
    m.run(0.15, own_cores=1.0, other_cores=0.0)  # the next window of our work decides
    g.poll()
    assert _kernels.threads_in_use() == 2


def test_governor_adds_a_thread_only_for_a_clearly_free_core(tmp_path, two_threads):
    """Our one thread sharing a core with the other program for a moment shows half a
    core free: not enough to add a thread that would be preempted at once."""
    from fastnn import _kernels

    m = FakeMachine(tmp_path)
    g = m.governor()
    g.poll()
    m.run(0.2, own_cores=1.0, other_cores=1.0)
    g.poll()
    assert _kernels.threads_in_use() == 1
    m.run(0.2, own_cores=0.5, other_cores=0.5)
    g.poll()
    assert _kernels.threads_in_use() == 1
    m.run(0.2, own_cores=1.0, other_cores=0.2)
    g.poll()
    assert _kernels.threads_in_use() == 2
