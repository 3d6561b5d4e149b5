#!/usr/bin/env bash
# Build the documentation site (mkdocs-material + mkdocstrings) with every warning an
# error: a broken link, a missing page or an unresolvable API reference fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "mkdocs-material>=9.5,<10" "mkdocstrings[python]>=0.26"
mkdocs build --strict --site-dir "$(mktemp -d)/site"
