/* Compile one generic kernel body for float and for double.
 *
 * A family file (dense.c, norm.c, ...) defines FNN_GENERIC as the path of its body and
 * includes this header. The body is written once in terms of:
 *   T        the element type
 *   S(name)  the name with its type suffix (_f32 / _f64)
 *   EXP, LOG, SQRT, TANH, FABS, ERF, LOG1P, EXPM1, SIGMOID   math functions for T (libm's, or
 *            for float the vectorisable ones of vmath.h where libm's would not be)
 */
#ifndef FNN_GENERIC
#error "define FNN_GENERIC before including instantiate.h"
#endif

#include <math.h>
#include "vmath.h"

#define T float
#define S(name) name##_f32
#define EXP fnn_expf /* vmath.h: versions that vectorise */
#define LOG logf
#define SQRT sqrtf
#define TANH fnn_tanhf
#define SIGMOID fnn_sigmoidf
#define FABS fabsf
#define ERF erff
#define LOG1P fnn_log1pf
#define EXPM1 fnn_expm1f
#include FNN_GENERIC
#undef T
#undef S
#undef EXP
#undef LOG
#undef SQRT
#undef TANH
#undef SIGMOID
#undef FABS
#undef ERF
#undef LOG1P
#undef EXPM1

#define T double
#define S(name) name##_f64
#define EXP exp
#define LOG log
#define SQRT sqrt
#define TANH tanh
#define SIGMOID fnn_sigmoid
#define FABS fabs
#define ERF erf
#define LOG1P log1p
#define EXPM1 expm1
#include FNN_GENERIC
#undef T
#undef S
#undef EXP
#undef LOG
#undef SQRT
#undef TANH
#undef SIGMOID
#undef FABS
#undef ERF
#undef LOG1P
#undef EXPM1
