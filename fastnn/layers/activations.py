"""Elementwise activation layers (forward and derivative are C kernels).

Activation layers have no parameters and compute in their input's dtype (float32 or
float64; other input is converted to float32).

Conventions at kinks: ReLU'(0) = 0 (the one-sided derivative torch also uses),
LeakyReLU'(0) = negative_slope. NaN propagates through every activation.

Placed right after a Dense layer inside a Sequential, these layers are fused into the
Dense layer's epilogue (see fastnn.Sequential)."""
from .. import _kernels
from ..module import Layer
from ..validation import as_float_input, follow_dtype


class _Elementwise(Layer):
    """An activation y = f(x) applied elementwise to an array of any shape."""

    code = None  # _kernels.ACT_* code
    _fusable = True

    @property
    def alpha(self):
        """The activation's scalar parameter (LeakyReLU's slope), else 0."""
        return 0.0

    def _forward(self, x):
        x = as_float_input(x, follow_dtype(x), type(self).__name__)
        y = self._workspace("y", x.shape, x.dtype)
        _kernels.bias_act(self.code, self.alpha, None, x, y)
        self._x, self._y = x, y
        return y

    def _backward(self, grad_out, need_input_grad=True):
        y = self._y
        g = as_float_input(grad_out, y.dtype, f"{type(self).__name__}.backward")
        if g.shape != y.shape:
            raise ValueError(
                f"{type(self).__name__}.backward: expected gradient of shape {y.shape}, "
                f"got {g.shape}"
            )
        gx = self._workspace("gx", y.shape, y.dtype)
        x = self._x if _kernels.act_needs_input(self.code) else None
        _kernels.act_backward(self.code, self.alpha, x, y, g, gx, None)
        return gx


class Identity(_Elementwise):
    """y = x."""

    code = _kernels.ACT_IDENTITY

    def _forward(self, x):
        self._y = as_float_input(x, follow_dtype(x), "Identity")
        return self._y

    def _backward(self, grad_out, need_input_grad=True):
        y = self._y
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

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    @property
    def alpha(self):
        return self.negative_slope

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x)); derivative y (1 - y)."""

    code = _kernels.ACT_SIGMOID


class Tanh(_Elementwise):
    """y = tanh(x); derivative 1 - y^2."""

    code = _kernels.ACT_TANH
