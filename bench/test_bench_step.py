"""The whole MLP-BN training step (forward, loss, backward, Adam) at batch 16, 128 and
2048: fastnn, the NumPy baseline, PyTorch (default and fused Adam) when importable, and
the GEMM-only bound, one benchmark group per batch size. Each call trains on the next
batch of the preloaded data set. The step builders are fastnn.bench.workloads', the
ones `fastnn bench` times."""

import pytest

from fastnn.bench import workloads

IMPLS = ["fastnn", "numpy", "torch", "torch_fused", "gemm_only"]


@pytest.mark.parametrize("batch", workloads.TRAIN_BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_train_step(benchmark, data, impl, batch):
    X, y = data
    if impl == "fastnn":
        step = workloads.fastnn_train_step(X, y, batch)
    elif impl == "numpy":
        step = workloads.numpy_train_step(X, y, batch)
    elif impl.startswith("torch"):
        torch = pytest.importorskip("torch")
        step = workloads.torch_train_step(
            torch, torch.from_numpy(X), torch.from_numpy(y), batch, fused=impl == "torch_fused"
        )
    else:
        step = workloads.gemm_only_step(batch)
    for _ in range(3):  # warm-up: workspaces, optimizer state, allocator caches
        step()
    benchmark.group = f"train step MLP-BN, batch {batch}"
    benchmark.extra_info["samples_per_call"] = batch
    benchmark(step)


@pytest.mark.parametrize("batch", workloads.PREDICT_BATCHES)
@pytest.mark.parametrize("impl", ["fastnn", "numpy", "torch"])
def test_predict(benchmark, data, impl, batch):
    X, _ = data
    if impl == "fastnn":
        run = workloads.fastnn_predict(X, batch)
    elif impl == "numpy":
        run = workloads.numpy_predict(X, batch)
    else:
        torch = pytest.importorskip("torch")
        run = workloads.torch_predict(torch, torch.from_numpy(X), batch)
    run()
    benchmark.group = f"predict MLP-BN (eval), batch {batch}"
    benchmark.extra_info["samples_per_call"] = batch
    benchmark(run)
