"""Memory: a layer's construction allocates its parameters once (initialised in place),
and an impossible size raises MemoryError before anything is allocated. Each case runs
in a subprocess (peak RSS and resource limits are per process)."""

import subprocess
import tempfile
import sys
import textwrap

import numpy as np
import pytest

import fastnn
from fastnn import memory


def _run(code, timeout=120):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),  # not the source tree, which python -c would import
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_dense_construction_peaks_at_its_parameter_bytes():
    # Dense(4096, 4096): 64 MiB of weights. Peak RSS growth of building it, against the
    # parameter bytes (was 3x: a copy of the weights, a float64 draw, touched gradients).
    code, out, err = _run("""
        import resource, numpy as np, fastnn
        fastnn.Dense(8, 8)  # imports and first-use costs out of the way
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        layer = fastnn.Dense(4096, 4096)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        nbytes = sum(p.data.nbytes for p in layer.parameters())
        assert np.isfinite(layer.weight.data).all()
        print((after - before) * 1024 / nbytes)
    """)
    assert code == 0, err
    assert float(out) <= 1.3


def test_uniform_init_draws_in_place_and_is_reproducible():
    fastnn.seed(3)
    a = fastnn.Dense(300, 200)
    fastnn.seed(3)
    b = fastnn.Dense(300, 200)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    bound = 1 / np.sqrt(300)
    w = a.weight.data
    assert w.min() >= -bound and w.max() < bound and abs(w.mean()) < 0.05 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound
    x = np.zeros((1000, 100), np.float32)
    fastnn.init.normal_(x, 2.0, 3.0)
    assert x.dtype == np.float32 and abs(x.mean() - 2) < 0.05 and abs(x.std() - 3) < 0.05
    strided = np.zeros((100, 100))[:, ::2]  # not contiguous: filled through a copy
    fastnn.init.uniform_(strided, -1, 1)
    assert (strided != 0).all()


def test_an_impossible_parameter_is_a_memory_error_before_it_is_allocated():
    code, out, err = _run("""
        import resource, fastnn
        fastnn.Dense(8, 8)
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        try:
            fastnn.Dense(2**30, 1)  # 4 GiB of float32 weights, 8 GiB with gradients
        except MemoryError as e:
            print("MemoryError:", e)
    """)
    assert code == 0, err
    assert "MemoryError: parameter 'weight' of shape (1, 1073741824)" in out
    with pytest.raises(MemoryError, match="only"):
        memory.check(1 << 62, "a test allocation")


def test_fit_with_the_address_space_nearly_exhausted_is_a_memory_error_not_a_hang():
    # Was: OpenBLAS's first GEMM retried its failed 32 MiB buffer allocation forever at
    # 100% CPU (and libgomp ends the process when it cannot create a thread). Now fit
    # raises before starting either; with the limit raised the same process trains.
    code, out, err = _run(
        """
        import resource, sys, numpy as np, fastnn
        def vm_size():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))
        rng = np.random.default_rng(0)
        X = rng.standard_normal((512, 20)).astype(np.float32)
        y = (X[:, 0] > 0).astype(np.int64)
        def fit():
            fastnn.seed(0)
            model = fastnn.Sequential(fastnn.Dense(20, 32), fastnn.ReLU(), fastnn.Dense(32, 2))
            trainer = fastnn.Trainer(model, fastnn.losses.CrossEntropyLoss(),
                                     fastnn.optim.Adam(model.parameters(), lr=1e-2))
            trainer.fit(X, y, epochs=3, batch_size=64, verbose=0)
            return trainer.evaluate(X, y)["accuracy"]
        resource.setrlimit(resource.RLIMIT_AS, (vm_size() + (8 << 20), resource.RLIM_INFINITY))
        try:
            fit()
        except MemoryError as e:
            print("MemoryError:", e)
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)
        print("accuracy", fit())
        """,
        timeout=60,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("MemoryError: fastnn's"), out
    assert "address space" in lines[0] and "RLIMIT_AS" in lines[0], out
    assert float(lines[1].split()[1]) > 0.9
