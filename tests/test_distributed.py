"""Data-parallel training over MPI. The multi-process tests launch tests/mpi/*.py with
`mpiexec -n 2` and `-n 3` (they need mpi4py and an MPI: pip install "fastnn[mpi]")."""
import os
import pathlib
import shutil
import subprocess
import sys

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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_"))}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [mpiexec(), "-n", str(n), sys.executable, str(SCRIPTS / script), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)


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
