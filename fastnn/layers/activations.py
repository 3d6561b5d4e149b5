"""Activation layers; forward and derivative of each are C kernels.

Elementwise activations have no parameters (PReLU aside) and compute in their input's
dtype (float32 or float64; other input is converted to float32). Placed right after
a Dense layer inside a Sequential they are fused into the Dense layer's epilogue
(see fastnn.Sequential).

Derivative conventions at kinks, as torch: ReLU'(0) = 0 (one-sided), LeakyReLU'(0) =
negative_slope, AbsReLU'(0) = 0, HardTanh' = 0 at and beyond its bounds, ELU'(0) =
alpha, PReLU'(0) = a. NaN propagates through every activation."""

import math

import numpy as np

from .. import _kernels, init as _init
from ..module import Layer, Parameter
from ..validation import (
    as_float_input,
    choice,
    float_dtype,
    follow_dtype,
    positive_int,
    real_number,
)
from .dense import linear_backward


class _Elementwise(Layer):
    """An activation y = f(x) applied elementwise to an array of any shape."""

    code = None  # _kernels.ACT_* code

    @property
    def params(self):
        """The two scalar parameters the kernels take (see csrc/generic/act_math.h)."""
        return 0.0, 0.0

    def epilogue(self):
        return (self.code, *self.params)

    def _forward(self, ctx, x):
        x = as_float_input(x, follow_dtype(x), type(self).__name__)
        y = ctx.workspace("y", x.shape, x.dtype)
        _kernels.bias_act(self.code, *self.params, None, x, y)
        ctx.x, ctx.y = x, y
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        y = ctx.y
        g = _check_grad(grad_out, y, type(self).__name__)
        gx = ctx.grad_workspace(y.shape, y.dtype)
        x = ctx.x if _kernels.act_needs_input(self.code) else None
        _kernels.act_backward(self.code, *self.params, x, y, g, gx, None)
        return gx


def is_relu(layer):
    """True if `layer` is a plain ReLU (an elementwise activation whose epilogue code is
    ACT_RELU): the layer the fused steps BatchNorm -> ReLU and Add -> ReLU absorb."""
    ep = layer.epilogue()
    return ep is not None and ep[0] == _kernels.ACT_RELU


def _check_grad(grad_out, like, where):
    """grad_out as an array of like's dtype and shape, else ValueError."""
    g = as_float_input(grad_out, like.dtype, f"{where}.backward")
    if g.shape != like.shape:
        raise ValueError(
            f"{where}.backward: expected gradient of shape {like.shape}, got {g.shape}"
        )
    return g


class Identity(_Elementwise):
    """y = x."""

    code = _kernels.ACT_IDENTITY

    def _forward(self, ctx, x):
        ctx.y = as_float_input(x, follow_dtype(x), "Identity")
        return ctx.y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        y = ctx.y
        g = as_float_input(grad_out, y.dtype, "Identity.backward")
        if g.shape != y.shape:
            raise ValueError(
                f"Identity.backward: expected gradient of shape {y.shape}, got {g.shape}"
            )
        return g


class ReLU(_Elementwise):
    """y = max(x, 0); derivative 1 for x > 0, else 0 (0 at x = 0)."""

    code = _kernels.ACT_RELU


class LeakyReLU(_Elementwise):
    """y = x for x > 0, negative_slope * x otherwise (Maas et al., 2013)."""

    code = _kernels.ACT_LEAKY_RELU

    def __init__(self, negative_slope=0.01, name=None):
        super().__init__(name=name)
        self.negative_slope = real_number(negative_slope, "LeakyReLU: negative_slope")

    @property
    def params(self):
        return self.negative_slope, 0.0

    def get_config(self):
        return {"negative_slope": self.negative_slope}

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class AbsReLU(_Elementwise):
    """Absolute-value rectification y = |x| (the ReLU family member with slope -1 on the
    negative side); derivative sign(x), 0 at 0."""

    code = _kernels.ACT_ABS


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x)); derivative y (1 - y)."""

    code = _kernels.ACT_SIGMOID


class Tanh(_Elementwise):
    """y = tanh(x); derivative 1 - y^2."""

    code = _kernels.ACT_TANH


class HardTanh(_Elementwise):
    """y = min_val for x < min_val, max_val for x > max_val, x between; derivative 1
    strictly between the bounds, 0 elsewhere (torch.nn.Hardtanh)."""

    code = _kernels.ACT_HARDTANH

    def __init__(self, min_val=-1.0, max_val=1.0, name=None):
        super().__init__(name=name)
        # Infinite bounds are a one-sided clamp (as torch allows).
        min_val = real_number(min_val, "HardTanh: min_val", finite=False)
        max_val = real_number(max_val, "HardTanh: max_val", finite=False)
        if not min_val < max_val:
            raise ValueError(f"HardTanh: min_val must be below max_val, got {min_val}, {max_val}")
        self.min_val, self.max_val = min_val, max_val

    @property
    def params(self):
        return self.min_val, self.max_val

    def get_config(self):
        return {"min_val": self.min_val, "max_val": self.max_val}

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class Softplus(_Elementwise):
    """y = log(1 + exp(beta x)) / beta, and y = x where beta x > threshold (for numerical
    stability, as torch.nn.Softplus); derivative sigmoid(beta x) (1 above threshold)."""

    code = _kernels.ACT_SOFTPLUS

    def __init__(self, beta=1.0, threshold=20.0, name=None):
        super().__init__(name=name)
        beta = real_number(beta, "Softplus: beta", finite=False)
        if not 0 < beta < math.inf:
            raise ValueError(f"Softplus: beta must be positive and finite, got {beta}")
        self.beta, self.threshold = beta, real_number(threshold, "Softplus: threshold")

    @property
    def params(self):
        return self.beta, self.threshold

    def get_config(self):
        return {"beta": self.beta, "threshold": self.threshold}

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class ELU(_Elementwise):
    """y = x for x > 0, alpha (exp(x) - 1) otherwise (Clevert et al., 2016); derivative
    1 for x > 0, alpha exp(x) otherwise."""

    code = _kernels.ACT_ELU

    def __init__(self, alpha=1.0, name=None):
        super().__init__(name=name)
        self.alpha = real_number(alpha, "ELU: alpha")

    @property
    def params(self):
        return self.alpha, 0.0

    def get_config(self):
        return {"alpha": self.alpha}

    def extra_repr(self):
        return f"alpha={self.alpha}"


class GELU(_Elementwise):
    """y = x Phi(x) (Hendrycks & Gimpel, 2016), Phi the standard normal CDF (erf form);
    approximate='tanh' uses 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    def __init__(self, approximate="none", name=None):
        super().__init__(name=name)
        self.approximate = choice(approximate, {"none", "tanh"}, "GELU approximation")

    @property
    def code(self):
        return _kernels.ACT_GELU if self.approximate == "none" else _kernels.ACT_GELU_TANH

    def get_config(self):
        return {"approximate": self.approximate}

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class PReLU(Layer):
    """y = x for x > 0, a x otherwise, with a learnable slope a (He et al., 2015): one
    shared by all channels (num_parameters=1) or one per channel (num_parameters = C,
    channels on axis 1 of an (N, C, ...) input), initialised to `init`.
    dL/da = sum of grad * x over the inputs with x <= 0."""

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32, name=None):
        super().__init__(name=name)
        self.num_parameters = positive_int(num_parameters, "PReLU: num_parameters")
        init = real_number(init, "PReLU: init")
        self.weight = Parameter(np.full(self.num_parameters, init, float_dtype(dtype)), "weight")

    def _forward(self, ctx, x):
        a = self.weight.data
        x = as_float_input(x, a.dtype, "PReLU")
        channels = x.shape[1] if x.ndim > 1 else 1
        if self.num_parameters != 1 and channels != self.num_parameters:
            raise ValueError(
                f"PReLU: {self.num_parameters} slopes for an input with "
                f"{channels} channels (axis 1), shape {x.shape}"
            )
        y = ctx.workspace("y", x.shape, x.dtype)
        _kernels.prelu_forward(x, a, y)
        ctx.x = x
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = _check_grad(grad_out, ctx.x, "PReLU")
        gx = ctx.workspace("gx", g.shape, g.dtype)
        w = self.weight
        channels = ctx.x.shape[1] if ctx.x.ndim > 1 else 1
        _kernels.prelu_backward(
            ctx.x,
            g,
            w.data,
            gx,
            w.grad if w.requires_grad else None,
            self._colsum_scratch(channels),
        )
        return gx

    def get_config(self):
        return {"num_parameters": self.num_parameters}

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Maxout(Layer):
    """out_features units, each the maximum of `pieces` affine functions of the input
    (Goodfellow et al., 2013): y[:, o] = max_p (x @ W[o*pieces + p] + b[o*pieces + p]).

    weight has shape (out_features * pieces, in_features) with each unit's pieces in
    consecutive rows (bias likewise), so one GEMM computes every piece. The gradient
    flows through the winning piece only (the first, on ties)."""

    def __init__(self, in_features, out_features, pieces, bias=True, dtype=np.float32, name=None):
        super().__init__(name=name)
        self.in_features = positive_int(in_features, "Maxout: in_features")
        self.out_features = positive_int(out_features, "Maxout: out_features")
        if not isinstance(pieces, (int, np.integer)) or not 2 <= pieces <= 255:
            raise ValueError(f"Maxout: pieces must be an integer in [2, 255], got {pieces!r}")
        self.pieces = int(pieces)
        dt = float_dtype(dtype)
        rows = self.out_features * self.pieces
        self.weight = Parameter.empty((rows, self.in_features), dt, "weight")
        self.bias = Parameter.empty((rows,), dt, "bias") if bias else None
        bound = 1.0 / math.sqrt(self.in_features)
        _init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            _init.uniform_(self.bias, -bound, bound)
        self._where = f"Maxout({self.in_features}, {self.out_features}, pieces={self.pieces})"

    def _forward(self, ctx, x):
        W = self.weight.data
        x = as_float_input(x, W.dtype, self._where, ndim=2, features=self.in_features)
        rows = x.shape[0]
        z = ctx.workspace("z", (rows, W.shape[0]), W.dtype)
        _kernels.gemm(x, W, z, False, True, 1.0, 0.0)
        b = None if self.bias is None else self.bias.data
        _kernels.bias_act(_kernels.ACT_IDENTITY, 0.0, 0.0, b, z, z)  # z += bias
        y = ctx.workspace("y", (rows, self.out_features), W.dtype)
        idx = ctx.workspace("idx", y.shape, np.uint8)
        _kernels.maxout_forward(z, self.pieces, y, idx)
        ctx.x, ctx.idx = x, idx
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        x, idx = ctx.x, ctx.idx
        g = _check_grad(grad_out, np.empty(idx.shape, x.dtype), self._where)
        gz = ctx.workspace("gz", (x.shape[0], self.weight.shape[0]), x.dtype)
        _kernels.maxout_backward(g, idx, self.pieces, gz)
        if self.bias is not None and self.bias.requires_grad:
            _kernels.act_backward(
                _kernels.ACT_IDENTITY,
                0.0,
                0.0,
                None,
                None,
                gz,
                None,
                self.bias.grad,
                self._colsum_scratch(gz.shape[1]),
            )
        return linear_backward(self, ctx, gz, x, need_input_grad)

    def get_config(self):
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "pieces": self.pieces,
            "bias": self.bias is not None,
        }

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"pieces={self.pieces}"
        )


class Softmax(Layer):
    """y = exp(x - max) / sum(exp(x - max)) along `axis` (computed stably). For training
    a classifier, prefer CrossEntropyLoss on logits: it fuses this with the loss."""

    def __init__(self, axis=-1, name=None):
        super().__init__(name=name)
        self.axis = int(axis)

    def _forward(self, ctx, x):
        x = as_float_input(x, follow_dtype(x), "Softmax")
        axis = self.axis if self.axis >= 0 else x.ndim + self.axis
        if not 0 <= axis < x.ndim:
            raise ValueError(f"Softmax: axis {self.axis} out of range for shape {x.shape}")
        ctx.moved = axis != x.ndim - 1
        if ctx.moved:  # the kernel works on the last axis
            x = np.ascontiguousarray(np.moveaxis(x, axis, -1))
        y = ctx.workspace("y", x.shape, x.dtype)
        _kernels.softmax_forward(x, y)
        ctx.y, ctx.axis = y, axis
        return np.moveaxis(y, -1, axis) if ctx.moved else y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        y, axis = ctx.y, ctx.axis
        g = as_float_input(grad_out, y.dtype, "Softmax.backward")
        if ctx.moved:
            g = np.ascontiguousarray(np.moveaxis(g, axis, -1))
        g = _check_grad(g, y, "Softmax")
        gx = ctx.workspace("gx", y.shape, y.dtype)
        _kernels.softmax_backward(y, g, gx)
        return np.moveaxis(gx, -1, axis) if ctx.moved else gx

    def get_config(self):
        return {"axis": self.axis}

    def extra_repr(self):
        return f"axis={self.axis}"


class RBF(Layer):
    """Gaussian radial basis units: for each of `centers` units j,
        y_j = exp(-|x - c_j|^2 / (2 s_j^2))
    with learnable centres `centers` (centers, in_features), drawn U(-1, 1), and widths
    `widths` (centers,), initialised to `width`. The squared distances come from one
    GEMM: |x|^2 - 2 x . c_j + |c_j|^2."""

    def __init__(self, in_features, centers, width=1.0, dtype=np.float32, name=None):
        super().__init__(name=name)
        self.in_features = positive_int(in_features, "RBF: in_features")
        self.n_centers = positive_int(centers, "RBF: centers")
        width = real_number(width, "RBF: width")
        if not width > 0:
            raise ValueError(f"RBF: width must be positive, got {width}")
        dt = float_dtype(dtype)
        self.centers = Parameter.empty((self.n_centers, self.in_features), dt, "centers")
        _init.uniform_(self.centers, -1.0, 1.0)
        self.widths = Parameter(np.full(self.n_centers, width, dt), "widths")
        self._where = f"RBF({self.in_features}, {self.n_centers})"

    def _forward(self, ctx, x):
        C = self.centers.data
        x = as_float_input(x, C.dtype, self._where, ndim=2, features=self.in_features)
        rows = x.shape[0]
        d2 = ctx.workspace("d2", (rows, self.n_centers), C.dtype)
        _kernels.gemm(x, C, d2, False, True, 1.0, 0.0)
        xsq = np.einsum("ij,ij->i", x, x)
        csq = np.einsum("ij,ij->i", C, C)
        y = ctx.workspace("y", d2.shape, C.dtype)
        _kernels.rbf_forward(xsq, csq, self.widths.data, d2, y)
        ctx.x, ctx.d2, ctx.y = x, d2, y
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        x, y, C = ctx.x, ctx.y, self.centers.data
        g = _check_grad(grad_out, y, self._where)
        gd2 = ctx.workspace("gd2", y.shape, y.dtype)
        gsum = np.empty(self.n_centers, y.dtype)
        grow = np.empty(x.shape[0], y.dtype)
        w = self.widths
        _kernels.rbf_backward(
            ctx.d2, y, g, w.data, gd2, gsum, grow, w.grad if w.requires_grad else None
        )
        # d2 = |x|^2 - 2 x.c + |c|^2:  dL/dc_j = 2 (c_j sum_i g_ij - sum_i g_ij x_i)
        if self.centers.requires_grad:
            self.centers.grad += 2.0 * C * gsum[:, None]
            _kernels.gemm(gd2, x, self.centers.grad, True, False, -2.0, 1.0)
        if not need_input_grad:
            return None
        # dL/dx_i = 2 (x_i sum_j g_ij - sum_j g_ij c_j)
        gx = ctx.workspace("gx", x.shape, x.dtype)
        np.multiply(x, 2.0 * grow[:, None], out=gx)
        _kernels.gemm(gd2, C, gx, False, False, -2.0, 1.0)
        return gx

    def get_config(self):
        return {"in_features": self.in_features, "centers": self.n_centers}

    def extra_repr(self):
        return f"in_features={self.in_features}, centers={self.n_centers}"
