"""Merge layers of the functional API - called on a list of tensors, as in Keras - and
the residual block x + f(x)."""

import numpy as np

from .. import _kernels
from ..module import Layer
from ..sequential import Sequential
from ..validation import as_float_input, follow_dtype
from .activations import is_relu


class _Merge(Layer):
    """A layer of several same-dtype inputs (a list of at least two arrays)."""

    def _inputs(self, x):
        where = type(self).__name__
        if not isinstance(x, (list, tuple)) or len(x) < 2:
            raise ValueError(
                f"{where}: expected a list of at least 2 inputs, got {type(x).__name__}"
            )
        dt = follow_dtype(x[0])
        return [as_float_input(v, dt, f"{where} input {i}") for i, v in enumerate(x)]

    def _same_shapes(self, xs):
        if any(v.shape != xs[0].shape for v in xs):
            raise ValueError(
                f"{type(self).__name__}: inputs must have the same shape, got "
                f"{[v.shape for v in xs]}"
            )

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"{type(self).__name__}: expected a list of at least 2 inputs")
        if any(tuple(s) != tuple(input_shape[0]) for s in input_shape):
            raise ValueError(
                f"{type(self).__name__}: inputs must have the same shape, got {input_shape}"
            )
        return tuple(input_shape[0])

    def _grad(self, ctx, grad_out):
        g = as_float_input(grad_out, ctx.dtype, f"{type(self).__name__}.backward")
        if g.shape != ctx.shape:
            raise ValueError(
                f"{type(self).__name__}.backward: expected gradient of shape "
                f"{ctx.shape}, got {g.shape}"
            )
        return g


class Add(_Merge):
    """y = x_1 + x_2 + ... (inputs of one shape); each input's gradient is dL/dy."""

    def _forward(self, ctx, x):
        xs = self._inputs(x)
        self._same_shapes(xs)
        y = ctx.workspace("y", xs[0].shape, xs[0].dtype)
        np.add(xs[0], xs[1], out=y)
        for v in xs[2:]:
            y += v
        ctx.shape, ctx.dtype, ctx.n = y.shape, y.dtype, len(xs)
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = self._grad(ctx, grad_out)
        return [g] * ctx.n if need_input_grad else None

    def fuse(self, following):
        """Add -> ReLU (the join of a residual block) as one step (_AddReLU)."""
        return (_AddReLU(self, following[0]), 1) if is_relu(following[0]) else None


class _AddReLU:
    """The fused step Add -> ReLU: y = max(x_1 + ... + x_n, 0) with the last addition
    and the rectification in one pass (fastnn._kernels.add_relu), and a backward of
    one pass, g * (y > 0), handed to every input as the same array (no copies)."""

    def __init__(self, add, relu):
        self.add, self.relu = add, relu
        self.layers = (add, relu)

    def _forward(self, ctx, x):
        add = self.add
        xs = add._inputs(x)
        add._same_shapes(xs)
        y = ctx.workspace("y", xs[0].shape, xs[0].dtype)
        first = xs[0]
        if len(xs) > 2:
            np.add(xs[0], xs[1], out=y)
            for v in xs[2:-1]:
                y += v
            first = y
        _kernels.add_relu(first, xs[-1], y)  # _inputs made them C-contiguous
        ctx.shape, ctx.dtype, ctx.n, ctx.y = y.shape, y.dtype, len(xs), y
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = self.add._grad(ctx, grad_out)
        if not need_input_grad:
            return None
        gx = ctx.grad_workspace(g.shape, g.dtype)
        _kernels.act_backward(_kernels.ACT_RELU, 0.0, 0.0, None, ctx.y, g, gx, None)
        return [gx] * ctx.n


class Multiply(_Merge):
    """y = x_1 * x_2 * ... elementwise (inputs of one shape);
    dL/dx_i = dL/dy * prod_{j != i} x_j."""

    def _forward(self, ctx, x):
        xs = self._inputs(x)
        self._same_shapes(xs)
        y = ctx.workspace("y", xs[0].shape, xs[0].dtype)
        np.multiply(xs[0], xs[1], out=y)
        for v in xs[2:]:
            y *= v
        ctx.xs, ctx.shape, ctx.dtype = xs, y.shape, y.dtype
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = self._grad(ctx, grad_out)
        if not need_input_grad:
            return None
        xs, out = ctx.xs, []
        for i in range(len(xs)):
            gi = ctx.workspace(f"g{i}", g.shape, g.dtype)
            np.copyto(gi, g)
            for j, v in enumerate(xs):
                if j != i:
                    gi *= v
            out.append(gi)
        return out


class Concatenate(_Merge):
    """Join the inputs along `axis` (of the full array, batch axis included; default
    the last); their other axes must agree. Each input's gradient is its slice of
    dL/dy."""

    def __init__(self, axis=-1, name=None):
        super().__init__(name=name)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Concatenate: axis must be an integer, got {axis!r}")
        self.axis = int(axis)

    def _axis(self, ndim):
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 1 <= axis < ndim:
            raise ValueError(
                f"Concatenate: axis {self.axis} is out of range for "
                f"{ndim}-D inputs (the batch axis 0 cannot be joined)"
            )
        return axis

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError("Concatenate: expected a list of at least 2 inputs")
        shapes = [tuple(s) for s in input_shape]
        axis = self._axis(len(shapes[0]) + 1) - 1
        self._check_shapes([(None,) + s for s in shapes], axis + 1)
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return tuple(out)

    def _check_shapes(self, shapes, axis):
        rest = [s[:axis] + s[axis + 1 :] for s in shapes]
        if any(len(s) != len(shapes[0]) for s in shapes) or any(r != rest[0] for r in rest):
            raise ValueError(
                f"Concatenate(axis={self.axis}): inputs must agree on every "
                f"axis but the joined one, got {[tuple(s) for s in shapes]}"
            )

    def _forward(self, ctx, x):
        xs = self._inputs(x)
        axis = self._axis(xs[0].ndim)
        self._check_shapes([v.shape for v in xs], axis)
        shape = list(xs[0].shape)
        shape[axis] = sum(v.shape[axis] for v in xs)
        y = ctx.workspace("y", tuple(shape), xs[0].dtype)
        np.concatenate(xs, axis=axis, out=y)
        ctx.shape, ctx.dtype, ctx.axis = y.shape, y.dtype, axis
        ctx.sizes = [v.shape[axis] for v in xs]
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = self._grad(ctx, grad_out)
        if not need_input_grad:
            return None
        out, start, axis = [], 0, ctx.axis
        for i, size in enumerate(ctx.sizes):
            index = [slice(None)] * g.ndim
            index[axis] = slice(start, start + size)
            part = g[tuple(index)]
            gi = ctx.workspace(f"g{i}", part.shape, g.dtype)
            np.copyto(gi, part)
            out.append(gi)
            start += size
        return out

    def get_config(self):
        return {"axis": self.axis}

    def extra_repr(self):
        return f"axis={self.axis}"


class Residual(Sequential):
    """y = x + f(x), f the layers applied in order (a Sequential of them): the
    residual block of He et al. (2016). Usable anywhere, Sequential included; f must
    keep the shape of its input. state_dict keys are f's, as in a Sequential
    ('0.weight', ...)."""

    def _forward(self, ctx, x):
        fx = super()._forward(ctx, x)
        x = np.asarray(x)
        if fx.shape != x.shape:
            raise ValueError(
                f"Residual: the block maps shape {x.shape} to {fx.shape}; x + f(x) needs them equal"
            )
        y = ctx.workspace("sum", fx.shape, fx.dtype)
        np.add(fx, x, out=y)
        ctx.shape, ctx.dtype = y.shape, y.dtype
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = as_float_input(grad_out, ctx.dtype, "Residual.backward")
        if g.shape != ctx.shape:
            raise ValueError(
                f"Residual.backward: expected gradient of shape {ctx.shape}, got {g.shape}"
            )
        gf = super()._backward(ctx, g, need_input_grad)
        if not need_input_grad:
            return None
        gx = ctx.workspace("gx", g.shape, g.dtype)
        np.add(gf, g, out=gx)
        return gx
