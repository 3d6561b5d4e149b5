#!/usr/bin/env bash
# CI job: fastnn's C kernels under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Builds the extension with -fsanitize=address,undefined in a copy of the source tree
# and a virtual environment of its own (the working tree's build is left alone), with
# OpenMP required (setup.py's probe must keep it under sanitizer flags), then runs the
# kernel, binding and layer tests and the property-based fuzz suite with the sanitizer runtime
# preloaded (Python itself is not instrumented). Any out-of-bounds access or undefined
# behaviour aborts the run. Leak detection is off: CPython keeps its own allocations
# alive on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The committed tree only (no in-place build products).
git archive --format=tar HEAD | tar -x -C "$work"

python3 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
python -m pip install -q --upgrade pip

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
(cd "$work" && CFLAGS="$san -O1 -g" LDFLAGS="$san" FASTNN_REQUIRE_OPENMP=1 \
    pip install -q -e ".[test]")

cd "$work"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
python -c "import fastnn._kernels as k; print('sanitized build:', k.__file__)"
# --capture=sys: a sanitizer report goes to file descriptor 2 and ends the process, so
# pytest must not be capturing that descriptor (the report would be lost with it).
python -m pytest -q -p no:cacheprovider --capture=sys \
    tests/test_kernels.py tests/test_layers.py tests/test_activations.py \
    tests/test_normalization.py tests/test_fusion.py tests/test_binding.py tests/test_fuzz.py \
    tests/test_conv_kernels.py tests/test_conv_padding_mode.py tests/test_conv_phase.py \
    tests/test_conv_1x1.py tests/test_winograd.py tests/test_batchnorm_planes.py \
    tests/test_merge_add_relu.py tests/test_recurrent_kernels.py
