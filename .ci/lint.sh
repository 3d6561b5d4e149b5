#!/usr/bin/env bash
# Lint: cython-lint on the Cython binding and ruff on the Python code (settings in
# pyproject.toml: [tool.cython-lint], [tool.ruff]).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet "cython-lint>=0.16"
cython-lint fastnn/*.pyx fastnn/*.pxi

# ruff on the Python code (settings: [tool.ruff] in pyproject.toml).
python -m pip install --quiet "ruff>=0.6"
ruff check fastnn tests bench examples setup.py
ruff format --check fastnn tests bench examples setup.py
