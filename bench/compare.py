"""fastnn against the NumPy baseline and PyTorch on MLP-BN: the same as `fastnn bench`.

The code lives in the package, fastnn/bench/compare.py; this file only runs it:

    python bench/compare.py [--quick] [--batches 16,128] [--threads 1,2] [--no-torch]
                            [--json PATH]
"""

from fastnn.bench.compare import main

if __name__ == "__main__":
    raise SystemExit(main())
