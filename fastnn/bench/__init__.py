"""fastnn's benchmark suite (docs/performance.md): the pure-NumPy MLP-BN baseline, which is
also a correctness oracle (`numpy_baseline`), and the side-by-side comparison behind
`fastnn bench`: its timing harness (`harness`), the workload in each implementation
(`workloads`), the measured sections (`sections`), the tables and targets (`report`)
and the command line (`compare`).

It ships in the package so that `fastnn bench` works from an installed wheel; PyTorch
is used when importable, never required."""

__all__ = ["NumpyMLPBN"]


def __getattr__(name):
    # Lazy, so that `python -m fastnn.bench.numpy_baseline` does not import it twice.
    if name == "NumpyMLPBN":
        from .numpy_baseline import NumpyMLPBN

        return NumpyMLPBN
    raise AttributeError(f"module 'fastnn.bench' has no attribute {name!r}")
