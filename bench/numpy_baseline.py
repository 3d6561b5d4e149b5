"""The pure-NumPy MLP-BN baseline (and correctness oracle) of docs/performance.md.

The code lives in the package, fastnn/bench/numpy_baseline.py, so that `fastnn bench`
works from an installed wheel; this file re-exports it and, run as a script, times a
few training steps:

    python bench/numpy_baseline.py [--steps 20] [--batches 16,128,2048]
"""

from fastnn.bench.numpy_baseline import *  # noqa: F401,F403
from fastnn.bench.numpy_baseline import main

if __name__ == "__main__":
    raise SystemExit(main())
