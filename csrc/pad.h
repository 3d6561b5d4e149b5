/* Non-zero padding of the last two axes of (planes, H, W) arrays, as torch's F.pad in
 * the modes 'reflect', 'replicate' and 'circular' (padding_mode of Conv1d/Conv2d), and
 * its adjoint for the backward. Declarations shared with the binding
 * (fastnn/_kernels_pad.pxi), which checks every size first: reflect needs each pad
 * < the axis' length, circular each pad <= it. */
#ifndef FASTNN_PAD_H
#define FASTNN_PAD_H

#include "fastnn.h"

enum { FNN_PAD_REFLECT = 0, FNN_PAD_REPLICATE = 1, FNN_PAD_CIRCULAR = 2, FNN_PAD_COUNT = 3 };

/* The padding of one call: pads before/after each axis (top, bottom, left, right). */
typedef struct {
    ptrdiff_t planes, H, W;
    ptrdiff_t top, bottom, left, right;
    int mode;
} fnn_pad_geom;

#define FNN_DECLARE_PAD(T, S)                                                               \
    /* y (planes, H + top + bottom, W + left + right) = x padded in g->mode. */            \
    void S(fnn_pad_forward)(const fnn_pad_geom *g, const T *x, T *y);                      \
    /* gx (planes, H, W) = the adjoint of fnn_pad_forward applied to gy: each input      \
     * element receives the sum of the gradients of the outputs that copy it. */          \
    void S(fnn_pad_backward)(const fnn_pad_geom *g, const T *gy, T *gx);

#define FNN_S32(name) name##_f32
#define FNN_S64(name) name##_f64
FNN_DECLARE_PAD(float, FNN_S32)
FNN_DECLARE_PAD(double, FNN_S64)
#undef FNN_S32
#undef FNN_S64

#endif
