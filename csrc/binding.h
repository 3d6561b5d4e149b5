/* What the Cython binding (fastnn/_kernels.pyx and its _kernels_<family>.pxi files)
 * includes: the kernels' prototypes and the names of their fused declarations.
 *
 * The binding declares each kernel once, with Cython's fused type `floating` in place
 * of T, under the C name FNN_FUSED(fnn_name):
 *
 *     void fnn_scale "FNN_FUSED(fnn_scale)"(Py_ssize_t n, floating *x, double s)
 *
 * Cython compiles one copy of a fused extern declaration per member of the fused type,
 * named __pyx_fuse_<i><C name> with i the member's position (0: float, 1: double); the
 * two macros below turn those names into the _f32 and _f64 instantiations of
 * instantiate.h. Every call is therefore checked by the C compiler against the
 * prototypes of fastnn.h, and a Cython that named its copies otherwise would fail to
 * build the binding (implicit declaration: an error in setup.py's flags), never call
 * the wrong kernel. */
#ifndef FASTNN_BINDING_H
#define FASTNN_BINDING_H

#include "fastnn.h"

#define __pyx_fuse_0FNN_FUSED(name) name##_f32
#define __pyx_fuse_1FNN_FUSED(name) name##_f64

#endif
