#!/usr/bin/env bash
# Lint: cython-lint on the Cython binding (settings: [tool.cython-lint] in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet "cython-lint>=0.16"
cython-lint fastnn/*.pyx fastnn/*.pxi
