/* Activation derivatives too long for a macro of act_math.h (generic; included by each
 * family body that differentiates activations: see instantiate.h for T and S()). */

/* Derivative of the tanh-approximated GELU (torch's GeluBackward, approximate='tanh'). */
static inline T S(gelu_tanh_grad)(T z)
{
    const T kappa = (T)0.044715;
    T inner = FNN_GELU_K * (z + kappa * z * z * z);
    T t = TANH(inner);
    T left_d = (T)0.5 * ((T)1 + t);
    T right_d = (T)0.5 * z * ((T)1 - t * t) * FNN_GELU_K * ((T)1 + (T)3 * kappa * z * z);
    return left_d + right_d;
}
