#ifndef FASTNN_ACT_MATH_H
#define FASTNN_ACT_MATH_H

/* Elementwise activations: forward F(v, a) of the pre-activation v, and derivative
 * D(z, y, a) from the pre-activation z and/or the output y; `a` is the activation's
 * parameter (LeakyReLU's slope). Macros rather than functions so that each expands
 * inside a `#pragma omp simd` loop. An activation whose D does not mention z can be
 * differentiated from its output alone (fnn_act_needs_input() == 0).
 *
 * Conventions at kinks (documented in fastnn.layers): ReLU'(0) = 0, LeakyReLU'(0) = a.
 * NaN propagates through every forward, as in torch. */
#define FNN_F_IDENTITY(v, a) (v)
#define FNN_D_IDENTITY(z, y, a) ((T)1)

#define FNN_F_RELU(v, a) ((v) < 0 ? (T)0 : (v))
#define FNN_D_RELU(z, y, a) ((y) > 0 ? (T)1 : (T)0)

#define FNN_F_LEAKY_RELU(v, a) ((v) < 0 ? (a) * (v) : (v))
#define FNN_D_LEAKY_RELU(z, y, a) ((z) > 0 ? (T)1 : (a))

#define FNN_F_SIGMOID(v, a) ((T)1 / ((T)1 + EXP(-(v))))
#define FNN_D_SIGMOID(z, y, a) ((y) * ((T)1 - (y)))

#define FNN_F_TANH(v, a) TANH(v)
#define FNN_D_TANH(z, y, a) ((T)1 - (y) * (y))

/* X-macro over the activations: X(CODE, name, FORWARD, DERIVATIVE, NEEDS_INPUT),
 * NEEDS_INPUT being 1 exactly when DERIVATIVE mentions z. */
#define FNN_FOR_EACH_ACT(X)                                                      \
    X(FNN_ACT_IDENTITY, identity, FNN_F_IDENTITY, FNN_D_IDENTITY, 0)             \
    X(FNN_ACT_RELU, relu, FNN_F_RELU, FNN_D_RELU, 0)                             \
    X(FNN_ACT_LEAKY_RELU, leaky_relu, FNN_F_LEAKY_RELU, FNN_D_LEAKY_RELU, 1)     \
    X(FNN_ACT_SIGMOID, sigmoid, FNN_F_SIGMOID, FNN_D_SIGMOID, 0)                 \
    X(FNN_ACT_TANH, tanh, FNN_F_TANH, FNN_D_TANH, 0)

#endif
