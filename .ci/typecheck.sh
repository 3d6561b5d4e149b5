#!/usr/bin/env bash
# Type-check the package with mypy (configuration in pyproject.toml, [tool.mypy]).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "mypy>=1.10"
mypy
