#!/usr/bin/env bash
# Data-parallel training over MPI: install fastnn with its `mpi` extra (mpi4py and the
# MPICH wheel, no compiler or system MPI) in a fresh virtual environment and run the
# distributed tests, which launch `mpiexec -n 2` and `mpiexec -n 3`.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$(mktemp -d)/venv"
python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
pip install ".[test,mpi]"
mpiexec --version | head -n 3
pytest tests/test_distributed.py
