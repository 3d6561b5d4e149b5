# Optimizer updates over flat parameter, gradient and state buffers, and the buffer
# reductions around them (csrc/optim.c). Every buffer of a call holds param.size
# elements.

cdef extern from "binding.h" nogil:
    void fnn_sgd_step "FNN_FUSED(fnn_sgd_step)"(
        Py_ssize_t n, floating *param, const floating *grad, floating *buf, double lr,
        double momentum, double dampening, double weight_decay, int nesterov,
        int first_step)
    void fnn_adam_step "FNN_FUSED(fnn_adam_step)"(
        Py_ssize_t n, floating *param, const floating *grad, floating *exp_avg,
        floating *exp_avg_sq, floating *max_exp_avg_sq, double lr, double beta1,
        double beta2, double eps, double weight_decay, int decoupled,
        double bias_correction1, double bias_correction2_sqrt)
    void fnn_adagrad_step "FNN_FUSED(fnn_adagrad_step)"(
        Py_ssize_t n, floating *param, const floating *grad, floating *state_sum,
        double clr, double weight_decay, double eps)
    void fnn_rmsprop_step "FNN_FUSED(fnn_rmsprop_step)"(
        Py_ssize_t n, floating *param, const floating *grad, floating *square_avg,
        floating *grad_avg, floating *momentum_buffer, double lr, double alpha, double eps,
        double weight_decay, double momentum)
    void fnn_adadelta_step "FNN_FUSED(fnn_adadelta_step)"(
        Py_ssize_t n, floating *param, const floating *grad, floating *square_avg,
        floating *acc_delta, double lr, double rho, double eps, double weight_decay)
    void fnn_adamax_step "FNN_FUSED(fnn_adamax_step)"(
        Py_ssize_t n, floating *param, const floating *grad, floating *exp_avg,
        floating *exp_inf, double clr, double beta1, double beta2, double eps,
        double weight_decay)
    void fnn_nadam_step "FNN_FUSED(fnn_nadam_step)"(
        Py_ssize_t n, floating *param, const floating *grad, floating *exp_avg,
        floating *exp_avg_sq, double lr, double beta1, double beta2, double eps,
        double weight_decay, int decoupled, double bias_correction2, double coef_grad,
        double coef_avg)
    double fnn_sumsq "FNN_FUSED(fnn_sumsq)"(Py_ssize_t n, const floating *x)
    void fnn_scale "FNN_FUSED(fnn_scale)"(Py_ssize_t n, floating *x, double s)
    void fnn_zero "FNN_FUSED(fnn_zero)"(Py_ssize_t n, floating *x)
    double fnn_penalty "FNN_FUSED(fnn_penalty)"(
        Py_ssize_t n, const floating *w, floating *grad, double l1, double l2)


cdef inline Py_ssize_t _flat_size(object param, str fn) except -1:
    return _arr(param, fn, "param", 0).size


def sgd_step(param, grad, buf, double lr, double momentum, double dampening,
             double weight_decay, bint nesterov, bint first_step):
    """One SGD update over flat buffers (buf is None without momentum)."""
    if _is_f32(param, "sgd_step", "param"):
        _sgd_step(<float *>NULL, param, grad, buf, lr, momentum, dampening, weight_decay,
                  nesterov, first_step)
    else:
        _sgd_step(<double *>NULL, param, grad, buf, lr, momentum, dampening, weight_decay,
                  nesterov, first_step)


cdef int _sgd_step(floating *t, param, grad, buf, double lr, double momentum,
                   double dampening, double weight_decay, bint nesterov,
                   bint first_step) except -1:
    cdef str fn = "sgd_step"
    cdef Py_ssize_t n = _flat_size(param, fn)
    cdef floating *pp = _flt(t, param, fn, "param", n, _W)
    cdef floating *pg = _flt(t, grad, fn, "grad", n)
    cdef floating *pb = _flt(t, buf, fn, "buf", n, _W | _OPT)
    with nogil:
        fnn_sgd_step(n, pp, pg, pb, lr, momentum, dampening, weight_decay, nesterov,
                     first_step)
    return 0


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, double lr, double beta1,
              double beta2, double eps, double weight_decay, bint decoupled,
              double bias_correction1, double bias_correction2_sqrt):
    """One Adam/AdamW update over flat buffers (max_exp_avg_sq None without amsgrad)."""
    if _is_f32(param, "adam_step", "param"):
        _adam_step(<float *>NULL, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr,
                   beta1, beta2, eps, weight_decay, decoupled, bias_correction1,
                   bias_correction2_sqrt)
    else:
        _adam_step(<double *>NULL, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr,
                   beta1, beta2, eps, weight_decay, decoupled, bias_correction1,
                   bias_correction2_sqrt)


cdef int _adam_step(floating *t, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
                    double lr, double beta1, double beta2, double eps, double weight_decay,
                    bint decoupled, double bias_correction1,
                    double bias_correction2_sqrt) except -1:
    cdef str fn = "adam_step"
    cdef Py_ssize_t n = _flat_size(param, fn)
    cdef floating *pp = _flt(t, param, fn, "param", n, _W)
    cdef floating *pg = _flt(t, grad, fn, "grad", n)
    cdef floating *pm = _flt(t, exp_avg, fn, "exp_avg", n, _W)
    cdef floating *pv = _flt(t, exp_avg_sq, fn, "exp_avg_sq", n, _W)
    cdef floating *pmax = _flt(t, max_exp_avg_sq, fn, "max_exp_avg_sq", n, _W | _OPT)
    with nogil:
        fnn_adam_step(n, pp, pg, pm, pv, pmax, lr, beta1, beta2, eps, weight_decay, decoupled,
                      bias_correction1, bias_correction2_sqrt)
    return 0


def adagrad_step(param, grad, state_sum, double clr, double weight_decay, double eps):
    """One Adagrad update over flat buffers (clr: the decayed learning rate)."""
    if _is_f32(param, "adagrad_step", "param"):
        _adagrad_step(<float *>NULL, param, grad, state_sum, clr, weight_decay, eps)
    else:
        _adagrad_step(<double *>NULL, param, grad, state_sum, clr, weight_decay, eps)


cdef int _adagrad_step(floating *t, param, grad, state_sum, double clr, double weight_decay,
                       double eps) except -1:
    cdef str fn = "adagrad_step"
    cdef Py_ssize_t n = _flat_size(param, fn)
    cdef floating *pp = _flt(t, param, fn, "param", n, _W)
    cdef floating *pg = _flt(t, grad, fn, "grad", n)
    cdef floating *ps = _flt(t, state_sum, fn, "state_sum", n, _W)
    with nogil:
        fnn_adagrad_step(n, pp, pg, ps, clr, weight_decay, eps)
    return 0


def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, double lr,
                 double alpha, double eps, double weight_decay, double momentum):
    """One RMSprop update (grad_avg None unless centered, momentum_buffer None unless
    momentum > 0)."""
    if _is_f32(param, "rmsprop_step", "param"):
        _rmsprop_step(<float *>NULL, param, grad, square_avg, grad_avg, momentum_buffer, lr,
                      alpha, eps, weight_decay, momentum)
    else:
        _rmsprop_step(<double *>NULL, param, grad, square_avg, grad_avg, momentum_buffer, lr,
                      alpha, eps, weight_decay, momentum)


cdef int _rmsprop_step(floating *t, param, grad, square_avg, grad_avg, momentum_buffer,
                       double lr, double alpha, double eps, double weight_decay,
                       double momentum) except -1:
    cdef str fn = "rmsprop_step"
    cdef Py_ssize_t n = _flat_size(param, fn)
    cdef floating *pp = _flt(t, param, fn, "param", n, _W)
    cdef floating *pg = _flt(t, grad, fn, "grad", n)
    cdef floating *psq = _flt(t, square_avg, fn, "square_avg", n, _W)
    cdef floating *pga = _flt(t, grad_avg, fn, "grad_avg", n, _W | _OPT)
    cdef floating *pb = _flt(t, momentum_buffer, fn, "momentum_buffer", n, _W | _OPT)
    with nogil:
        fnn_rmsprop_step(n, pp, pg, psq, pga, pb, lr, alpha, eps, weight_decay, momentum)
    return 0


def adadelta_step(param, grad, square_avg, acc_delta, double lr, double rho, double eps,
                  double weight_decay):
    """One Adadelta update over flat buffers."""
    if _is_f32(param, "adadelta_step", "param"):
        _adadelta_step(<float *>NULL, param, grad, square_avg, acc_delta, lr, rho, eps,
                       weight_decay)
    else:
        _adadelta_step(<double *>NULL, param, grad, square_avg, acc_delta, lr, rho, eps,
                       weight_decay)


cdef int _adadelta_step(floating *t, param, grad, square_avg, acc_delta, double lr,
                        double rho, double eps, double weight_decay) except -1:
    cdef str fn = "adadelta_step"
    cdef Py_ssize_t n = _flat_size(param, fn)
    cdef floating *pp = _flt(t, param, fn, "param", n, _W)
    cdef floating *pg = _flt(t, grad, fn, "grad", n)
    cdef floating *psq = _flt(t, square_avg, fn, "square_avg", n, _W)
    cdef floating *pacc = _flt(t, acc_delta, fn, "acc_delta", n, _W)
    with nogil:
        fnn_adadelta_step(n, pp, pg, psq, pacc, lr, rho, eps, weight_decay)
    return 0


def adamax_step(param, grad, exp_avg, exp_inf, double clr, double beta1, double beta2,
                double eps, double weight_decay):
    """One Adamax update over flat buffers (clr = lr / (1 - beta1**t))."""
    if _is_f32(param, "adamax_step", "param"):
        _adamax_step(<float *>NULL, param, grad, exp_avg, exp_inf, clr, beta1, beta2, eps,
                     weight_decay)
    else:
        _adamax_step(<double *>NULL, param, grad, exp_avg, exp_inf, clr, beta1, beta2, eps,
                     weight_decay)


cdef int _adamax_step(floating *t, param, grad, exp_avg, exp_inf, double clr, double beta1,
                      double beta2, double eps, double weight_decay) except -1:
    cdef str fn = "adamax_step"
    cdef Py_ssize_t n = _flat_size(param, fn)
    cdef floating *pp = _flt(t, param, fn, "param", n, _W)
    cdef floating *pg = _flt(t, grad, fn, "grad", n)
    cdef floating *pm = _flt(t, exp_avg, fn, "exp_avg", n, _W)
    cdef floating *pu = _flt(t, exp_inf, fn, "exp_inf", n, _W)
    with nogil:
        fnn_adamax_step(n, pp, pg, pm, pu, clr, beta1, beta2, eps, weight_decay)
    return 0


def nadam_step(param, grad, exp_avg, exp_avg_sq, double lr, double beta1, double beta2,
               double eps, double weight_decay, bint decoupled, double bias_correction2,
               double coef_grad, double coef_avg):
    """One NAdam update over flat buffers (momentum-schedule coefficients precomputed)."""
    if _is_f32(param, "nadam_step", "param"):
        _nadam_step(<float *>NULL, param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
                    weight_decay, decoupled, bias_correction2, coef_grad, coef_avg)
    else:
        _nadam_step(<double *>NULL, param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
                    weight_decay, decoupled, bias_correction2, coef_grad, coef_avg)


cdef int _nadam_step(floating *t, param, grad, exp_avg, exp_avg_sq, double lr, double beta1,
                     double beta2, double eps, double weight_decay, bint decoupled,
                     double bias_correction2, double coef_grad,
                     double coef_avg) except -1:
    cdef str fn = "nadam_step"
    cdef Py_ssize_t n = _flat_size(param, fn)
    cdef floating *pp = _flt(t, param, fn, "param", n, _W)
    cdef floating *pg = _flt(t, grad, fn, "grad", n)
    cdef floating *pm = _flt(t, exp_avg, fn, "exp_avg", n, _W)
    cdef floating *pv = _flt(t, exp_avg_sq, fn, "exp_avg_sq", n, _W)
    with nogil:
        fnn_nadam_step(n, pp, pg, pm, pv, lr, beta1, beta2, eps, weight_decay, decoupled,
                       bias_correction2, coef_grad, coef_avg)
    return 0


def sumsq(x):
    """sum(x**2) accumulated in double; the same for any thread count."""
    if _is_f32(x, "sumsq", "x"):
        return _sumsq(<float *>NULL, x)
    return _sumsq(<double *>NULL, x)


cdef double _sumsq(floating *t, x) except? -1:
    cdef Py_ssize_t n = _arr(x, "sumsq", "x", 0).size
    cdef floating *px = _flt(t, x, "sumsq", "x", n)
    cdef double out
    with nogil:
        out = fnn_sumsq(n, px)
    return out


def scale(x, double s):
    """x *= s in place."""
    if _is_f32(x, "scale", "x"):
        _scale(<float *>NULL, x, s)
    else:
        _scale(<double *>NULL, x, s)


cdef int _scale(floating *t, x, double s) except -1:
    cdef Py_ssize_t n = _arr(x, "scale", "x", 0).size
    cdef floating *px = _flt(t, x, "scale", "x", n, _W)
    with nogil:
        fnn_scale(n, px, s)
    return 0


def zero(x):
    """x = 0 in place (threads share large buffers)."""
    if _is_f32(x, "zero", "x"):
        _zero(<float *>NULL, x)
    else:
        _zero(<double *>NULL, x)


cdef int _zero(floating *t, x) except -1:
    cdef Py_ssize_t n = _arr(x, "zero", "x", 0).size
    cdef floating *px = _flt(t, x, "zero", "x", n, _W)
    with nogil:
        fnn_zero(n, px)
    return 0


def penalty(w, grad, double l1, double l2):
    """Returns l1 * sum|w| + l2 * sum w^2 and adds its gradient to grad (w's shape)."""
    if _is_f32(w, "penalty", "w"):
        return _penalty(<float *>NULL, w, grad, l1, l2)
    return _penalty(<double *>NULL, w, grad, l1, l2)


cdef double _penalty(floating *t, w, grad, double l1, double l2) except? -1:
    cdef cnp.ndarray W = _arr(w, "penalty", "w", 0)
    cdef floating *pw = _flt(t, w, "penalty", "w", W.size)
    cdef floating *pg = _flt_like(t, grad, "penalty", "grad", W, "w", _W)
    cdef double out
    with nogil:
        out = fnn_penalty(W.size, pw, pg, l1, l2)
    return out
