"""Fully connected layer: y = x @ W.T + b, W of shape (out_features, in_features)."""

import math

import numpy as np

from .. import _kernels, init as _init
from ..module import Layer, Parameter
from ..regularizers import L1L2, Regularizer
from ..validation import as_float_input, float_dtype, positive_int


class Dense(Layer):
    """y = x @ weight.T + bias, for x of shape (batch, in_features).

    weight has shape (out_features, in_features) and bias (out_features,), the layout
    of torch.nn.Linear, so weights move between the two unchanged. The default
    initialisation is torch's too: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
    `init` names a weight initialiser from fastnn.init.BY_NAME ('xavier_uniform',
    'kaiming_normal', 'orthogonal', ...) or is a callable taking the weight Parameter;
    with it the bias starts at zero. `regularizer` (fastnn.regularizers.L1/L2/L1L2)
    penalises the weight (not the bias).

    The GEMMs run in BLAS; bias add and a following activation are one fused pass
    over the GEMM output, and their backward one fused pass before the backward GEMMs.
    """

    def __init__(
        self,
        in_features,
        out_features,
        bias=True,
        init=None,
        dtype=np.float32,
        regularizer=None,
        name=None,
    ):
        super().__init__(name=name)
        if isinstance(regularizer, dict):  # from get_config
            regularizer = L1L2(**regularizer)
        if regularizer is not None and not isinstance(regularizer, Regularizer):
            raise TypeError(
                f"Dense: regularizer must be a fastnn.regularizers object, got {regularizer!r}"
            )
        self.regularizer = regularizer
        self.in_features = positive_int(in_features, "Dense: in_features")
        self.out_features = positive_int(out_features, "Dense: out_features")
        dt = float_dtype(dtype)
        self.weight = Parameter.empty((self.out_features, self.in_features), dt, "weight")
        self.bias = Parameter.empty((self.out_features,), dt, "bias") if bias else None
        self._where = f"Dense({self.in_features}, {self.out_features})"
        self.reset_parameters(init)

    def reset_parameters(self, init=None):
        """Re-draw the weights (and bias) as the constructor does."""
        if init is None:
            bound = 1.0 / math.sqrt(self.in_features)
            _init.kaiming_uniform_(self.weight, a=math.sqrt(5))
            if self.bias is not None:
                _init.uniform_(self.bias, -bound, bound)
            return
        if callable(init):
            init(self.weight)
        elif init in _init.BY_NAME:
            _init.BY_NAME[init](self.weight)
        else:
            raise ValueError(
                f"{self._where}: unknown init {init!r}; expected one of "
                f"{sorted(_init.BY_NAME)} or a callable"
            )
        if self.bias is not None:
            self.bias.data.fill(0)

    def _forward(self, ctx, x, act=None):
        """act: an activation layer run in the epilogue (see `fuse`)."""
        W = self.weight.data
        x = as_float_input(x, W.dtype, self._where, ndim=2, features=self.in_features)
        rows = x.shape[0]
        code, alpha, beta = act.epilogue() if act is not None else (_kernels.ACT_IDENTITY, 0.0, 0.0)
        z = ctx.workspace("z", (rows, self.out_features), W.dtype)
        _kernels.gemm(x, W, z, False, True, 1.0, 0.0)
        # Activations differentiable from their output are applied in place; the
        # others keep the pre-activation z for the backward pass.
        needs_input = _kernels.act_needs_input(code)
        y = ctx.workspace("y", z.shape, z.dtype) if needs_input else z
        _kernels.bias_act(code, alpha, beta, None if self.bias is None else self.bias.data, z, y)
        ctx.x, ctx.z, ctx.y, ctx.act = x, z if needs_input else None, y, (code, alpha, beta)
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        y, x = ctx.y, ctx.x
        g = as_float_input(grad_out, y.dtype, f"{self._where}.backward")
        if g.shape != y.shape:
            raise ValueError(
                f"{self._where}.backward: expected gradient of shape {y.shape}, got {g.shape}"
            )
        bias = self.bias
        gbias = bias.grad if bias is not None and bias.requires_grad else None
        scratch = self._colsum_scratch(y.shape[1]) if gbias is not None else None
        code, alpha, beta = ctx.act
        if code == _kernels.ACT_IDENTITY:
            gz = g  # no derivative to apply; only the bias gradient's column sums
            if gbias is not None:
                _kernels.act_backward(code, 0.0, 0.0, None, None, g, None, gbias, scratch)
        else:
            gz = ctx.workspace("gz", y.shape, y.dtype)
            _kernels.act_backward(code, alpha, beta, ctx.z, y, g, gz, gbias, scratch)
        return linear_backward(self, ctx, gz, x, need_input_grad)

    def fuse(self, following):
        """Dense followed by an elementwise activation: one step, the activation in the
        GEMM epilogue (one pass for bias + activation, one for its derivative + the
        bias gradient)."""
        if following[0].epilogue() is None:
            return None
        return DenseActivation(self, following[0]), 1

    def get_config(self):
        reg = self.regularizer
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "regularizer": None if reg is None else {"l1": reg.l1, "l2": reg.l2},
        }

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


Linear = Dense


class DenseActivation:
    """The fused step of a Dense layer and the elementwise activation after it."""

    def __init__(self, dense, act):
        self.dense, self.act = dense, act
        self.layers = (dense, act)

    def _forward(self, ctx, x):
        return self.dense._forward(ctx, x, self.act)

    def _backward(self, ctx, grad_out, need_input_grad=True):
        return self.dense._backward(ctx, grad_out, need_input_grad)


def linear_backward(layer, ctx, gz, x, need_input_grad):
    """The GEMMs of the backward of z = x @ layer.weight.T: weight.grad += gz.T @ x (if
    trainable) and, when wanted, the input gradient gz @ weight (a workspace of ctx)."""
    w = layer.weight
    if w.requires_grad:
        _kernels.gemm(gz, x, w.grad, True, False, 1.0, 1.0)
    if not need_input_grad:
        return None
    gx = ctx.grad_workspace(x.shape, x.dtype)
    _kernels.gemm(gz, w.data, gx, False, False, 1.0, 0.0)
    return gx
