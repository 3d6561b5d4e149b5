"""The PyTorch worker process of `fastnn bench` (fastnn/bench/torch_worker.py)."""

import os
import subprocess
import sys
import time

import pytest

from fastnn.bench import harness


def test_worker_times_torch_cases_interleaved_with_local_ones():
    pytest.importorskip("torch")
    worker = harness.TorchWorker.start()
    assert worker is not None
    try:
        assert worker.info["torch"]
        cases = [
            harness.Case("local", lambda: sum(range(100)), 1),
            worker.case("torch", "predict", 16, 1),
            worker.case("torch_train", "train", 16, 1),
        ]
        res = harness.measure(cases, repeats=2, min_time=0.005, warmup_time=0.005)
        for name in ("torch", "torch_train"):
            r = res[name]
            assert len(r["per_call_s"]) == 2 and min(r["per_call_s"]) > 0
            assert r["items_per_s"] > 0
        with pytest.raises(ValueError, match="unknown command"):
            worker.ask(cmd="nonsense")
    finally:
        worker.close()
    assert worker.proc.returncode == 0


def test_no_worker_when_torch_cannot_be_imported(tmp_path, monkeypatch):
    (tmp_path / "torch.py").write_text("raise ImportError('no torch here')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert harness.TorchWorker.start() is None


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux /proc")
def test_cpu_meter_counts_the_benchmark_workers_as_its_own():
    # A busy worker process is the measurement, not load from other processes: without
    # this, `fastnn bench --contention` called an idle machine busy. The busy child holds
    # one core of os.cpu_count(): counted as other load only when it is not registered
    # as a worker. Other programs' bursts on a shared machine can blur one pair of
    # windows, so up to three pairs are taken; a meter that ignored the registration
    # would see no difference in any of them.
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    differences = []
    try:
        time.sleep(0.3)
        for _ in range(3):
            meter = harness.CpuMeter()
            time.sleep(0.8)
            other = meter.background()
            harness._WORKER_PIDS.add(proc.pid)
            meter = harness.CpuMeter()
            time.sleep(0.8)
            own = meter.background()
            harness._WORKER_PIDS.discard(proc.pid)
            differences.append(other - own)
            if differences[-1] > 0.5 / (os.cpu_count() or 1):
                break
    finally:
        harness._WORKER_PIDS.discard(proc.pid)
        proc.kill()
        proc.wait()
    assert max(differences) > 0.5 / (os.cpu_count() or 1), differences
