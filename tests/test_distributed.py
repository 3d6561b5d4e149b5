"""Data-parallel training over MPI. The multi-process tests launch tests/mpi/*.py with
`mpiexec -n 2` and `-n 3` (they need mpi4py and an MPI: pip install "fastnn[mpi]")."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fastnn import distributed
from fastnn.distributed import shard_slice

SCRIPTS = pathlib.Path(__file__).resolve().parent / "mpi"


def mpiexec():
    pytest.importorskip("mpi4py")
    local = pathlib.Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec (pip install mpich)")
    return found


def launch(n, script, *args, timeout=300, cwd=None):
    """Run tests/mpi/<script> on n ranks; the timeout bounds a hang (it fails the test)."""
    return launch_python(n, SCRIPTS / script, *args, timeout=timeout, cwd=cwd)


def launch_python(n, *args, timeout=300, cwd=None):
    """`mpiexec -n n python *args`, one kernel thread per rank."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_"))}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [mpiexec(), "-n", str(n), sys.executable, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def test_shards_cover_the_batch_in_order_with_sizes_differing_by_at_most_one():
    for n in range(0, 12):
        for size in range(1, 5):
            slices = [shard_slice(n, size, r) for r in range(size)]
            assert [s.start for s in slices] == [0] + [s.stop for s in slices[:-1]]
            assert slices[-1].stop == n
            sizes = [s.stop - s.start for s in slices]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_launcher_detection(monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(var, raising=False)
    assert not distributed.launched_by_mpiexec()
    assert distributed.world() is None and distributed.rank() == 0
    assert distributed.world_size() == 1 and distributed.is_main_process()
    monkeypatch.setenv("PMI_SIZE", "1")
    assert not distributed.launched_by_mpiexec()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.launched_by_mpiexec()


@pytest.mark.parametrize("how", ["raise", "die"])
def test_a_failing_rank_stops_every_rank(how):
    run = launch(3, "failure.py", how, timeout=120)
    assert run.returncode != 0
    assert "unreachable" not in run.stdout
    if how == "raise":
        assert "rank 1 of 3 raised; aborting all ranks" in run.stderr
        assert "RuntimeError: rank 1 failed on purpose" in run.stderr


def test_cost_model():
    from fastnn.bench import distributed as bd

    # 2 (N - 1) / N of 1 GB at 8 Gbit/s = 1 GB/s, plus 2 (N - 1) latencies
    assert bd.ring_allreduce_seconds(1e9, 4, 8, latency=0.0) == pytest.approx(1.5)
    assert bd.ring_allreduce_seconds(1e9, 4, 8, latency=1e-3) == pytest.approx(1.506)
    assert bd.ring_allreduce_seconds(1e9, 1, 8) == 0.0
    rate = bd.interpolated_rate([(16, 100.0), (256, 1000.0)])
    assert rate(16) == 100.0 and rate(64) == pytest.approx(550.0) and rate(4096) == 1000.0
    table = bd.scaling_table("m", 256, rate, 1e6, machines=(1, 2, 4))
    assert [r[0] for r in table["rows"]] == [1, 2, 4]
    assert table["rows"][0][3:6] == [0.0, 1.0, 1.0]
    assert bd.MLP_PARAMS == 671_754  # 784-512-512-10 with two BatchNorm1d
    text = bd.cost_model_text()
    assert "largest N at >= 50% efficiency" in text and "CNN" in text


# -- data-parallel training against one process ------------------------------------------
def _train_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("mpi_train", SCRIPTS / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_ranks(tmp_path, n, kind, opt, epochs, batch, dtype, resume="-", checkpoint=None):
    """Train under mpiexec -n n; (the state of every rank, rank 0's history)."""
    out = tmp_path / f"{kind}-{opt}-{n}"
    args = [kind, opt, epochs, batch, dtype, out, resume] + ([checkpoint] if checkpoint else [])
    run = launch(n, "train.py", *args)
    assert run.returncode == 0, run.stderr[-3000:]
    states = [dict(np.load(f"{out}.rank{r}.npz")) for r in range(n)]
    with open(f"{out}.history.json") as f:
        return states, json.load(f)


def assert_states_equal(a, b, **tol):
    assert a.keys() == b.keys()
    for k in a:
        if tol:
            np.testing.assert_allclose(a[k], b[k], err_msg=k, **tol)
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ranks_end_with_the_weights_of_one_process(tmp_path, n, opt, dtype):
    mpiexec()
    # 600 samples in global batches of 32: shards of 16/16 or 11/11/10, last batch 24
    states, history = run_ranks(tmp_path, n, "plain", opt, 3, 32, dtype)
    for other in states[1:]:
        assert_states_equal(states[0], other)  # bit-identical across ranks
    one = _train_module().train("plain", opt, 3, 32, np.dtype(dtype))
    assert_states_equal(one.model.state_dict(), states[0], **TOL[dtype])
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(history[key], one.history[key], rtol=1e-5, err_msg=key)
    assert one.history["val_accuracy"][-1] > 0.8  # it learned something


@pytest.mark.parametrize(
    "kind,dtype",
    [
        ("dropout", "float64"),
        ("syncbn", "float64"),
        ("syncbn-dropout", "float64"),
        ("syncbn-dropout", "float32"),
    ],
)
def test_dropout_and_syncbatchnorm_equal_one_process(tmp_path, kind, dtype):
    mpiexec()
    states, _ = run_ranks(tmp_path, 3, kind, "adam", 2, 32, dtype)
    for other in states[1:]:
        assert_states_equal(states[0], other)
    one = _train_module().train(kind, "adam", 2, 32, np.dtype(dtype))
    assert_states_equal(one.model.state_dict(), states[0], **TOL[dtype])


def test_resume_with_another_number_of_ranks(tmp_path):
    mpiexec()
    ckpt = tmp_path / "ckpt.safetensors"
    run_ranks(tmp_path, 2, "plain", "adam", 2, 32, "float64", "-", ckpt)
    states, history = run_ranks(tmp_path, 3, "plain", "adam", 4, 32, "float64", ckpt)
    one = _train_module().train("plain", "adam", 4, 32, np.float64)
    assert_states_equal(one.model.state_dict(), states[0], **TOL["float64"])
    assert len(history["loss"]) == 4


def test_each_rank_reads_only_its_rows_of_a_memmap(tmp_path):
    mpiexec()
    X = np.random.default_rng(0).normal(size=(103, 5)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    run = launch(3, "memmap.py", tmp_path / "X.npy", tmp_path / "reads", 16)
    assert run.returncode == 0, run.stderr[-3000:]
    per_rank = []
    for r in range(3):
        with open(tmp_path / f"reads.rank{r}.json") as f:
            per_rank.append(json.load(f))
    for epoch in range(2):
        rows = [set(reads[epoch]) for reads in per_rank]
        assert all(len(r) == len(reads[epoch]) for r, reads in zip(rows, per_rank))
        assert set.union(*rows) == set(range(103))  # together: every row once
        assert sum(len(r) for r in rows) == 103  # apart: disjoint
        assert all(30 <= len(r) <= 40 for r in rows)


def test_local_batchnorm_differs_from_one_process_as_documented(tmp_path):
    mpiexec()
    states, _ = run_ranks(tmp_path, 2, "bn", "sgd", 1, 32, "float64")
    one = _train_module().train("bn", "sgd", 1, 32, np.float64)
    diff = np.max(np.abs(one.model.state_dict()["0.weight"] - states[0]["0.weight"]))
    assert diff > 1e-6  # shard statistics, not global ones
    for other in states[1:]:
        assert_states_equal(states[0], other)  # running statistics broadcast from rank 0


def test_row_offset_draws_a_shard_of_one_process_masks():
    """With the row offset of a shard, Dropout and the fused BatchNorm1d-ReLU-Dropout
    step draw the mask rows one process draws for the whole batch."""
    import fastnn
    from fastnn import rng

    r = np.random.default_rng(1)
    x = r.standard_normal((12, 70))
    fastnn.seed(5)
    full = fastnn.Dropout(0.4).forward(x)
    fastnn.seed(5)
    rng.set_dropout_row_offset(8)
    try:
        shard = fastnn.Dropout(0.4).forward(x[8:])
        # fused (in a Sequential) and layer by layer: the same masks under an offset
        outs = []
        for fused in (True, False):
            fastnn.seed(5)
            layers = [fastnn.BatchNorm1d(70, dtype=np.float64), fastnn.ReLU(), fastnn.Dropout(0.4)]
            if fused:
                outs.append(fastnn.Sequential(*layers)._forward(fastnn.Context(), x[8:]))
            else:
                h = x[8:]
                for layer in layers:
                    h = layer.forward(h)
                outs.append(h)
    finally:
        rng.set_dropout_row_offset(0)
    np.testing.assert_array_equal(shard == 0, full[8:] == 0)
    np.testing.assert_array_equal(shard, full[8:])
    np.testing.assert_array_equal(outs[0], outs[1])
    fastnn.seed(5)
    assert not np.array_equal(fastnn.Dropout(0.4).forward(x[8:]) == 0, shard == 0)


def test_fastnn_train_under_mpiexec_writes_from_rank_0_only(tmp_path):
    mpiexec()
    out = tmp_path / "run"
    run = launch_python(
        2,
        "-m",
        "fastnn",
        "train",
        "--epochs",
        "8",
        "--hidden",
        "32",
        "--batch-size",
        "32",
        "--quiet",
        "--out",
        out,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("Trained 8 epochs") == 1  # one rank prints
    assert (out / "model.safetensors").exists() and (out / "history.csv").exists()
    with open(out / "history.csv") as f:
        assert len(f.read().strip().splitlines()) == 9  # header and 8 epochs, written once
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.85


def test_non_finite_data_on_one_rank_raises_on_every_rank(tmp_path):
    mpiexec()
    run = launch(3, "bad_data.py", timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("ValueError: fit X: contains NaN or infinity") == 3


def test_a_rank_raising_during_fit_stops_every_rank(tmp_path):
    run = launch(2, "failure.py", "fit-raise", timeout=120)
    output = f"stdout:\n{run.stdout[-2000:]}\nstderr:\n{run.stderr[-3000:]}"
    assert run.returncode != 0, output
    assert "rank 1 of 2 raised; aborting all ranks" in run.stderr, output
    assert "unreachable" not in run.stdout, output


def test_bench_distributed_runs():
    import io

    mpiexec()
    from fastnn.bench import distributed as bd

    out = io.StringIO()
    result = bd.run(batch=64, repeats=1, min_time=0.01, out=out)
    text = out.getvalue()
    assert set(result["steps"]) == {"1 process x 2 threads", "2 processes x 1 thread"}
    assert all(v > 0 for v in result["steps"].values())
    assert [r["floats"] for r in result["allreduce"]][:2] == [1024, 4096]
    assert "2 processes x 1 thread" in text and "| 671,754 |" in text


@pytest.mark.parametrize("shape", [(16, 6), (8, 6, 5), (4, 6, 3, 3)])
def test_syncbatchnorm_in_one_process_is_torch_batchnorm(shape):
    """Outside data-parallel training SyncBatchNorm computes what torch's BatchNorm does
    (torch's own SyncBatchNorm needs a process group to train)."""
    torch = pytest.importorskip("torch")
    import fastnn

    r = np.random.default_rng(0)
    x = r.standard_normal(shape) * 2 + 1
    g = r.standard_normal(shape)
    layer = fastnn.layers.SyncBatchNorm(6, momentum=0.2, dtype=np.float64)
    layer.weight.data = r.uniform(0.5, 1.5, 6)
    layer.bias.data = r.normal(size=6)
    ref = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d}[len(shape)](
        6, momentum=0.2
    ).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    xt = torch.from_numpy(x).requires_grad_()
    yt = ref(xt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(layer.forward(x), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, ref.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(layer.bias.grad, ref.bias.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-12)


def test_every_global_batch_must_give_each_rank_a_row():
    class Comm:  # a 3-rank world seen from rank 2, without MPI
        def Get_rank(self):
            return 2

        def Get_size(self):
            return 3

    world = distributed.World(Comm())
    world.check_batches(100, 32, drop_last=False)  # last batch of 4 rows
    world.check_batches(98, 32, drop_last=True)  # the last 2 rows are dropped
    with pytest.raises(ValueError, match="global batch of 2 rows cannot give each of the 3"):
        world.check_batches(98, 32, drop_last=False)
    with pytest.raises(ValueError, match="batch_size >= 3"):
        world.check_batches(100, 2, drop_last=False)
    from fastnn import rng

    try:
        assert world.begin_batch(32) == slice(22, 32)
        assert world.batch_weight == 10 / 32 and world.batch_rows == 32
        assert rng.dropout_offset(np.zeros((10, 7))) == 22 * 7
    finally:
        rng.set_dropout_row_offset(0)
