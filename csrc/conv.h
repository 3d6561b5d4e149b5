/* Convolution and pooling kernels (conv.c, pool.c): declarations shared with the binding
 * (fastnn/_kernels_conv.pxi).
 *
 * Layout is torch's: input (N, C, H, W), weight (K, C / groups, kh, kw), output
 * (N, K, Ho, Wo), all C-contiguous; 1-D layers pass H = 1. Shapes are checked by the
 * binding before any kernel runs.
 */
#ifndef FASTNN_CONV_H
#define FASTNN_CONV_H

#include "fastnn.h"

/* Geometry of one convolution. Ho = (H + 2 ph - dh (kh - 1) - 1) / sh + 1, likewise Wo. */
typedef struct {
    ptrdiff_t N, C, H, W; /* input */
    ptrdiff_t K, groups;  /* output channels; groups divides C and K */
    ptrdiff_t kh, kw, sh, sw, ph, pw, dh, dw;
    ptrdiff_t Ho, Wo;
} fnn_conv_geom;

/* Scratch elements (of the data type) the forward and backward take: a chunk of
 * samples' columns or padded input, output rows and dL/dz (conv.c), the transposed
 * weights and the weight gradient's sums between blocks of samples, Winograd's buffers
 * and transformed filters. Depends on the shape (and the Winograd switch) only. */
ptrdiff_t fnn_conv_scratch(const fnn_conv_geom *g);

/* Whether the convolution runs Winograd's F(2x2, 3x3) or F(4x4, 3x3) (conv.c: the 3x3,
 * stride-1, undilated, ungrouped convolutions with padding <= 1 and 16 channels or
 * more, whose buffers for two samples fit the scratch's chunk), and
 * the switch that turns it off (1 by default; for measurements and tests of the
 * direct path). Changing the switch changes the scratch size: not between a forward
 * and its backward. */
int fnn_conv_uses_winograd(const fnn_conv_geom *g);
extern int fnn_conv_winograd_enabled;

/* Whether the convolution runs the phase path (conv.c: strided, 8 output channels or
 * more per group, kernels up to 16 taps and strides up to 8 per axis), and its switch
 * (1 by default; off: im2col columns). Like Winograd's, not between a forward and its
 * backward. */
int fnn_conv_uses_phase(const fnn_conv_geom *g);
extern int fnn_conv_phase_enabled;

/* Whether the convolution's backward runs the strided 1x1 path (conv.c: 1x1, stride > 1,
 * no padding, ungrouped, sample by sample), and its switch (1 by default; off: im2col
 * columns). Like Winograd's, not between a forward and its backward. */
int fnn_conv_uses_point(const fnn_conv_geom *g);
extern int fnn_conv_point_enabled;

/* Geometry of one pooling: `planes` = N C images of H x W pooled to Ho x Wo. */
typedef struct {
    ptrdiff_t planes, H, W;
    ptrdiff_t kh, kw, sh, sw, ph, pw, dh, dw;
    ptrdiff_t Ho, Wo;
} fnn_pool_geom;

/* Internal to conv.c and pool.c: the outputs o in [0, nout) whose input position
 * o s - off lies in [0, n), as [*lo, *hi). */
static inline void fnn_out_range(ptrdiff_t n, ptrdiff_t s, ptrdiff_t off, ptrdiff_t nout,
                                 ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t l = off > 0 ? (off + s - 1) / s : 0;
    ptrdiff_t top = n - 1 + off;
    ptrdiff_t h = top < 0 ? 0 : top / s + 1;
    if (h > nout) h = nout;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

#define FNN_DECLARE_CONV(T, S)                                                              \
    /* y = act(conv(x, w) + bias); z (may be NULL) keeps the pre-activation. bias may be  \
     * NULL. scratch: fnn_conv_scratch(g) elements. */                                      \
    void S(fnn_conv_forward)(const fnn_conv_geom *g, const T *x, const T *w, const T *bias, \
                             int act, T alpha, T beta, T *z, T *y, T *scratch);            \
    /* From gy = dL/dy: gz = gy act'(z, y) (z or y may be NULL when act' ignores it);     \
     * gw += dL/dw, gbias += dL/dbias, gx = dL/dx; each of gw, gbias, gx may be NULL.     \
     * bsum: K doubles of scratch for the bias sums (may be NULL without gbias). */        \
    void S(fnn_conv_backward)(const fnn_conv_geom *g, const T *x, const T *w, int act,      \
                              T alpha, T beta, const T *z, const T *y, const T *gy, T *gw, \
                              T *gbias, T *gx, T *scratch, double *bsum);                  \
    /* Max pooling; idx gets the flat index (h W + w) of each maximum in its plane. */    \
    void S(fnn_maxpool_forward)(const fnn_pool_geom *g, const T *x, T *y, int32_t *idx);  \
    void S(fnn_maxpool_backward)(const fnn_pool_geom *g, const T *gy, const int32_t *idx, \
                                 T *gx);                                                   \
    /* Average pooling as torch: windows clipped to the padded input; the divisor is      \
     * `divisor` if > 0, else the window's size within the padded input                   \
     * (count_include_pad) or within the input. */                                         \
    void S(fnn_avgpool_forward)(const fnn_pool_geom *g, int count_include_pad,            \
                                ptrdiff_t divisor, const T *x, T *y);                      \
    void S(fnn_avgpool_backward)(const fnn_pool_geom *g, int count_include_pad,           \
                                 ptrdiff_t divisor, const T *gy, T *gx);                   \
    /* Adaptive average pooling: output cell i covers [floor(i H / Ho),                   \
     * ceil((i + 1) H / Ho)) (and likewise along W). */                                    \
    void S(fnn_adaptive_avgpool_forward)(const fnn_pool_geom *g, const T *x, T *y);       \
    void S(fnn_adaptive_avgpool_backward)(const fnn_pool_geom *g, const T *gy, T *gx);

#define FNN_S32(name) name##_f32
#define FNN_S64(name) name##_f64
FNN_DECLARE_CONV(float, FNN_S32)
FNN_DECLARE_CONV(double, FNN_S64)
#undef FNN_S32
#undef FNN_S64

#endif
