#ifndef FASTNN_ACT_MATH_H
#define FASTNN_ACT_MATH_H

/* Elementwise activations: forward F(v, a, b) of the pre-activation v, and derivative
 * D(z, y, a, b) from the pre-activation z and/or the output y; a and b are the
 * activation's parameters (LeakyReLU's slope, HardTanh's bounds, Softplus's beta and
 * threshold, ELU's alpha). Macros rather than functions so that each expands inside
 * a `#pragma omp simd` loop. An activation whose D does not mention z can be
 * differentiated from its output alone (fnn_act_needs_input() == 0), which lets a
 * Dense layer apply it in place.
 *
 * The formulas are torch's (aten/src/ATen/native/cpu/Activation.cpp), derivative
 * conventions at kinks included: ReLU'(0) = 0, LeakyReLU'(0) = slope, |x|'(0) = 0,
 * HardTanh' = 0 at and beyond the bounds, ELU'(0) = alpha. NaN propagates. */
#define FNN_F_IDENTITY(v, a, b) (v)
#define FNN_D_IDENTITY(z, y, a, b) ((T)1)

#define FNN_F_RELU(v, a, b) ((v) < 0 ? (T)0 : (v))
/* torch's threshold_backward: the gradient passes unless y <= 0 (so it passes at NaN) */
#define FNN_D_RELU(z, y, a, b) ((y) <= 0 ? (T)0 : (T)1)

/* a: negative slope */
#define FNN_F_LEAKY_RELU(v, a, b) ((v) < 0 ? (a) * (v) : (v))
#define FNN_D_LEAKY_RELU(z, y, a, b) ((z) > 0 ? (T)1 : (a))

#define FNN_F_SIGMOID(v, a, b) SIGMOID(v)
#define FNN_D_SIGMOID(z, y, a, b) ((y) * ((T)1 - (y)))

#define FNN_F_TANH(v, a, b) TANH(v)
#define FNN_D_TANH(z, y, a, b) ((T)1 - (y) * (y))

/* Absolute-value rectification g(z) = |z| (Jarrett et al., 2009). */
#define FNN_F_ABS(v, a, b) FABS(v)
#define FNN_D_ABS(z, y, a, b) ((z) > 0 ? (T)1 : ((z) < 0 ? (T)-1 : (T)0))

/* a = min_val, b = max_val */
#define FNN_F_HARDTANH(v, a, b) ((v) < (a) ? (a) : ((v) > (b) ? (b) : (v)))
#define FNN_D_HARDTANH(z, y, a, b) (((y) > (a) && (y) < (b)) ? (T)1 : (T)0)

/* Where one side of a choice calls a math function, both sides are computed and the
 * result selected (FNN_PICK): a branch around a function call keeps a loop from
 * vectorising. The functions' arguments are clamped so that the unused side never
 * overflows into a NaN that the choice would have to discard. */
#define FNN_PICK(c, t, f) ((c) ? (t) : (f))

/* a = beta, b = threshold: linear where beta * z > threshold. */
#define FNN_F_SOFTPLUS(v, a, b) \
    FNN_PICK((v) * (a) > (b), (v), LOG1P(EXP(FNN_MIN_T((v) * (a), (b)))) / (a))
#define FNN_D_SOFTPLUS(z, y, a, b) \
    FNN_PICK((z) * (a) > (b), (T)1, (T)1 / ((T)1 + EXP(-FNN_MIN_T((z) * (a), (b)))))

/* a = alpha */
#define FNN_F_ELU(v, a, b) FNN_PICK((v) > 0, (v), (a) * EXPM1(FNN_MIN_T((v), (T)0)))
#define FNN_D_ELU(z, y, a, b) FNN_PICK((z) > 0, (T)1, (a) * EXP(FNN_MIN_T((z), (T)0)))

/* min(x, m) that keeps a NaN x (it must propagate). */
#define FNN_MIN_T(x, m) ((x) > (m) ? (m) : (x))

/* C99 has no M_SQRT1_2 and friends. */
#define FNN_SQRT1_2 0.70710678118654752440  /* 1/sqrt(2) */
#define FNN_INV_SQRT_2PI 0.39894228040143267794 /* 1/sqrt(2 pi) */
#define FNN_SQRT_2_PI 0.79788456080286535588  /* sqrt(2/pi) */

/* GELU, exact: z * Phi(z). */
#define FNN_F_GELU(v, a, b) ((T)0.5 * (v) * ((T)1 + ERF((v) * (T)FNN_SQRT1_2)))
#define FNN_D_GELU(z, y, a, b)                                   \
    ((T)0.5 * ((T)1 + ERF((z) * (T)FNN_SQRT1_2)) +                 \
     (z) * EXP((T)-0.5 * (z) * (z)) * (T)FNN_INV_SQRT_2PI)

/* GELU, tanh approximation: 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))). */
#define FNN_GELU_K ((T)FNN_SQRT_2_PI)
#define FNN_F_GELU_TANH(v, a, b) \
    ((T)0.5 * (v) * ((T)1 + TANH(FNN_GELU_K * ((v) + (T)0.044715 * (v) * (v) * (v)))))
#define FNN_D_GELU_TANH(z, y, a, b) S(gelu_tanh_grad)(z)

/* X-macro over the activations: X(CODE, name, FORWARD, DERIVATIVE, NEEDS_INPUT),
 * NEEDS_INPUT being 1 exactly when DERIVATIVE mentions z. */
#define FNN_FOR_EACH_ACT(X)                                                      \
    X(FNN_ACT_IDENTITY, identity, FNN_F_IDENTITY, FNN_D_IDENTITY, 0)             \
    X(FNN_ACT_RELU, relu, FNN_F_RELU, FNN_D_RELU, 0)                             \
    X(FNN_ACT_LEAKY_RELU, leaky_relu, FNN_F_LEAKY_RELU, FNN_D_LEAKY_RELU, 1)     \
    X(FNN_ACT_SIGMOID, sigmoid, FNN_F_SIGMOID, FNN_D_SIGMOID, 0)                 \
    X(FNN_ACT_TANH, tanh, FNN_F_TANH, FNN_D_TANH, 0)                             \
    X(FNN_ACT_ABS, abs, FNN_F_ABS, FNN_D_ABS, 1)                                 \
    X(FNN_ACT_HARDTANH, hardtanh, FNN_F_HARDTANH, FNN_D_HARDTANH, 0)             \
    X(FNN_ACT_SOFTPLUS, softplus, FNN_F_SOFTPLUS, FNN_D_SOFTPLUS, 1)             \
    X(FNN_ACT_ELU, elu, FNN_F_ELU, FNN_D_ELU, 1)                                 \
    X(FNN_ACT_GELU, gelu, FNN_F_GELU, FNN_D_GELU, 1)                             \
    X(FNN_ACT_GELU_TANH, gelu_tanh, FNN_F_GELU_TANH, FNN_D_GELU_TANH, 1)

#endif
