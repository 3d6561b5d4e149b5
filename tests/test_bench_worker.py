"""The PyTorch worker process of `fastnn bench` (fastnn/bench/torch_worker.py)."""

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
