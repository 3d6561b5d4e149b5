# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The one binding layer between fastnn's Python modules and its C kernels (csrc/).

Every wrapper checks its arguments before a pointer reaches C (_check.pxi): arrays of
the call's float dtype (float32 or float64, taken from the first array argument),
native byte order, C-contiguous, of the sizes the kernel will touch, writeable where
the kernel writes; `None` stands for an optional buffer (NULL in C) and is refused
where the kernel needs one. A misuse raises TypeError or ValueError naming the
function and the argument. The GIL is released around every kernel call.

Each family of kernels has its file, included below: its declarations (one per
kernel, with the fused type `floating`, see csrc/binding.h) and its wrappers. How to
add a kernel: docs/contributing.md, "Adding a kernel".
"""
cimport numpy as cnp
from cython cimport floating
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

cnp.import_array()

include "_check.pxi"
include "_kernels_runtime.pxi"
include "_kernels_dense.pxi"
include "_kernels_norm.pxi"
include "_kernels_activations.pxi"
include "_kernels_dropout.pxi"
include "_kernels_loss.pxi"
include "_kernels_optim.pxi"
include "_kernels_conv.pxi"
include "_kernels_infer.pxi"
include "_kernels_recurrent.pxi"
include "_kernels_init.pxi"
include "_kernels_pad.pxi"
