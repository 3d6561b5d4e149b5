"""Time fastnn.datasets.load_table against pandas.read_csv on the same CSV file, each
in its own process, and print the ratio.

    python bench/tables.py [--rows 400000] [--cols 50] [--file PATH]

The file (rows x cols float features and an integer class column; ~200 MB with the
defaults) is generated once and kept at PATH (default: a temporary directory).
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

# Imports happen before the clock starts (pandas in both: load_table uses it).
TIMER = """
import sys, time
import pandas as pd
from fastnn.datasets import load_table
t = time.perf_counter()
{body}
print(time.perf_counter() - t)
"""
BODIES = {
    "pandas.read_csv": "pd.read_csv(sys.argv[1])",
    "fastnn load_table": "load_table(sys.argv[1])",
}


def generate(path, rows, cols, seed=0):
    rng = np.random.default_rng(seed)
    header = ",".join([f"x{j}" for j in range(cols)] + ["label"])
    with open(path, "w") as f:
        f.write(header + "\n")
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            X = rng.normal(size=(n, cols))
            y = rng.integers(0, 10, (n, 1))
            np.savetxt(f, np.hstack([X, y]), fmt=["%.6g"] * cols + ["%d"], delimiter=",")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=400_000)
    p.add_argument("--cols", type=int, default=50)
    p.add_argument("--file")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    path = args.file or os.path.join(tempfile.mkdtemp(), "table.csv")
    if not os.path.exists(path):
        generate(path, args.rows, args.cols)
    print(f"{path}: {os.path.getsize(path) / 1e6:.0f} MB")
    best = {}
    for _ in range(args.repeats):  # interleaved, so load drifts hit both alike
        for name, body in BODIES.items():
            out = subprocess.run(
                [sys.executable, "-c", TIMER.format(body=body), path],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            best[name] = min(best.get(name, float("inf")), float(out))
    for name, t in best.items():
        print(f"{name:20s} {t:7.2f} s (best of {args.repeats})")
    print(f"ratio load_table / read_csv: {best['fastnn load_table'] / best['pandas.read_csv']:.2f}")


if __name__ == "__main__":
    main()
