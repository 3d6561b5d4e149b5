"""Pooling layers with torch.nn's names, arguments and semantics: MaxPool1d/2d,
AvgPool1d/2d, AdaptiveAvgPool1d/2d (global average pooling with output size 1), and
Flatten. Kernels in csrc/pool.c, one (sample, channel) plane per thread."""

import math

import numpy as np

from .. import _kernels
from ..module import Layer
from ..validation import follow_dtype
from .conv import as_4d, check_grad, check_spatial_input, spatial_tuple


class _Pool(Layer):
    """Shared body: input checks, the 1-D as (N, C, 1, L) view, output workspaces."""

    _dims = 2

    def _where_name(self, args):
        return f"{type(self).__name__}({args})"

    def _prepare(self, ctx, x):
        x = check_spatial_input(x, follow_dtype(x), self._where, self._dims, None)
        spatial = self._out_spatial(x.shape[2:])
        if min(spatial) < 1:
            raise ValueError(f"{self._where}: window larger than the padded input {x.shape[2:]}")
        ctx.in_shape = x.shape
        y = ctx.workspace("y", x.shape[:2] + spatial, x.dtype)
        return as_4d(x), y, as_4d(y)

    def _grad(self, ctx, grad_out):
        return as_4d(check_grad(grad_out, ctx.out_shape, ctx.dtype, self._where))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._out_spatial(tuple(input_shape[1:]))

    def _gx(self, ctx):
        return ctx.grad_workspace(ctx.in_shape, ctx.dtype)

    def _shaped(self, ctx, a4):
        return a4 if self._dims == 2 else a4.reshape(ctx.in_shape[:2] + (a4.shape[3],))


class _WindowPool(_Pool):
    def __init__(self, kernel_size, stride, padding, ceil_mode, name, dilation=1):
        super().__init__(name=name)
        n, cls = self._dims, type(self).__name__
        self.kernel_size = spatial_tuple(kernel_size, n, "kernel_size", cls)
        self._where = f"{cls}(kernel_size={self.kernel_size})"
        self.stride = (
            self.kernel_size if stride is None else spatial_tuple(stride, n, "stride", self._where)
        )
        self.padding = spatial_tuple(padding, n, "padding", self._where, minimum=0)
        self.dilation = spatial_tuple(dilation, n, "dilation", self._where)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(
                f"{self._where}: padding {self.padding} must be at most half the kernel size"
            )
        self.ceil_mode = bool(ceil_mode)

    def _out_spatial(self, spatial):
        return tuple(
            _kernels.conv_output_size(n, k, s, p, d, self.ceil_mode)
            for n, k, s, p, d in zip(
                spatial, self.kernel_size, self.stride, self.padding, self.dilation
            )
        )

    def _geometry(self):
        """(kernel, stride, padding, dilation) as the 2-D tuples the kernels take."""
        if self._dims == 2:
            return self.kernel_size, self.stride, self.padding, self.dilation
        return (
            (1,) + self.kernel_size,
            (1,) + self.stride,
            (0,) + self.padding,
            (1,) + self.dilation,
        )

    def _config(self):
        return {
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "ceil_mode": self.ceil_mode,
        }

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}" + (
            ", ceil_mode=True" if self.ceil_mode else ""
        )


class _MaxPool(_WindowPool):
    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        return_indices=False,
        ceil_mode=False,
        name=None,
    ):
        super().__init__(kernel_size, stride, padding, ceil_mode, name, dilation)
        if return_indices:
            raise NotImplementedError(f"{self._where}: return_indices=True is not supported")

    def _forward(self, ctx, x):
        x4, y, y4 = self._prepare(ctx, x)
        idx = ctx.workspace("idx", y4.shape, np.int32)
        k, s, p, d = self._geometry()
        _kernels.maxpool_forward(x4, y4, idx, k, s, p, d, self.ceil_mode)
        ctx.idx, ctx.out_shape, ctx.dtype = idx, y.shape, y.dtype
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = self._grad(ctx, grad_out)
        if not need_input_grad:
            return None
        gx = self._gx(ctx)
        k, s, p, d = self._geometry()
        _kernels.maxpool_backward(g, ctx.idx, as_4d(gx), k, s, p, d, self.ceil_mode)
        return gx

    def get_config(self):
        return dict(self._config(), dilation=list(self.dilation))


class MaxPool1d(_MaxPool):
    """Max over windows of (N, C, L) input: kernel_size, stride (default kernel_size),
    padding (at most kernel_size / 2; padded positions never win), dilation, ceil_mode
    as torch.nn.MaxPool1d. Backward routes each gradient to its window's first maximum."""

    _dims = 1


class MaxPool2d(_MaxPool):
    """Max over windows of (N, C, H, W) input, as torch.nn.MaxPool2d (int or pair
    arguments; stride defaults to kernel_size). Backward routes each gradient to its
    window's first maximum (NaN counts as a maximum)."""


class _AvgPool(_WindowPool):
    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode=False,
        count_include_pad=True,
        divisor_override=None,
        name=None,
    ):
        super().__init__(kernel_size, stride, padding, ceil_mode, name)
        self.count_include_pad = bool(count_include_pad)
        if divisor_override is not None:
            if (
                isinstance(divisor_override, bool)
                or int(divisor_override) != divisor_override
                or divisor_override < 1
            ):
                raise ValueError(
                    f"{self._where}: divisor_override must be a positive int, "
                    f"got {divisor_override!r}"
                )
            divisor_override = int(divisor_override)
        self.divisor_override = divisor_override

    def _args(self):
        k, s, p, _ = self._geometry()
        return k, s, p, self.ceil_mode, self.count_include_pad, self.divisor_override or 0

    def _forward(self, ctx, x):
        x4, y, y4 = self._prepare(ctx, x)
        _kernels.avgpool_forward(x4, y4, *self._args())
        ctx.out_shape, ctx.dtype = y.shape, y.dtype
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = self._grad(ctx, grad_out)
        if not need_input_grad:
            return None
        gx = self._gx(ctx)
        _kernels.avgpool_backward(g, as_4d(gx), *self._args())
        return gx

    def get_config(self):
        return dict(
            self._config(),
            count_include_pad=self.count_include_pad,
            divisor_override=self.divisor_override,
        )


class AvgPool1d(_AvgPool):
    """Mean over windows of (N, C, L) input, as torch.nn.AvgPool1d: windows are clipped
    to the padded input and, with count_include_pad=True (default), padded zeros count
    in the divisor."""

    _dims = 1

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode=False,
        count_include_pad=True,
        name=None,
    ):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, None, name)

    def get_config(self):
        cfg = super().get_config()
        del cfg["divisor_override"]
        return cfg


class AvgPool2d(_AvgPool):
    """Mean over windows of (N, C, H, W) input, as torch.nn.AvgPool2d (count_include_pad,
    ceil_mode and divisor_override included)."""


class _AdaptiveAvgPool(_Pool):
    def __init__(self, output_size, name=None):
        super().__init__(name=name)
        n, cls = self._dims, type(self).__name__
        items = (
            (output_size,) * n if not isinstance(output_size, (tuple, list)) else tuple(output_size)
        )
        if len(items) != n:
            raise ValueError(
                f"{cls}: output_size must be an int or a tuple of {n}, got {output_size!r}"
            )
        self.output_size = tuple(
            None if v is None else spatial_tuple(v, 1, "output_size", cls)[0] for v in items
        )
        self._where = f"{cls}({output_size!r})"

    def _out_spatial(self, spatial):
        return tuple(n if o is None else o for n, o in zip(spatial, self.output_size))

    def _forward(self, ctx, x):
        x4, y, y4 = self._prepare(ctx, x)
        _kernels.adaptive_avgpool_forward(x4, y4)
        ctx.out_shape, ctx.dtype = y.shape, y.dtype
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = self._grad(ctx, grad_out)
        if not need_input_grad:
            return None
        gx = self._gx(ctx)
        _kernels.adaptive_avgpool_backward(g, as_4d(gx))
        return gx

    def get_config(self):
        out = self.output_size
        return {"output_size": out[0] if self._dims == 1 else list(out)}

    def extra_repr(self):
        return f"output_size={self.output_size if self._dims == 2 else self.output_size[0]}"


class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """Average of (N, C, L) input over output_size cells [floor(i L / n), ceil((i + 1) L
    / n)), as torch.nn.AdaptiveAvgPool1d; output_size=1 is global average pooling."""

    _dims = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """Average of (N, C, H, W) input over an output_size grid of cells (an int, or a
    pair whose None entries keep the input size), as torch.nn.AdaptiveAvgPool2d;
    output_size=1 is global average pooling."""


class Flatten(Layer):
    """Merge axes start_dim..end_dim into one (default: all but the batch axis), as
    torch.nn.Flatten; C-contiguous input is only reshaped (no copy)."""

    def __init__(self, start_dim=1, end_dim=-1, name=None):
        super().__init__(name=name)
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def _axes(self, ndim):
        s = self.start_dim + ndim if self.start_dim < 0 else self.start_dim
        e = self.end_dim + ndim if self.end_dim < 0 else self.end_dim
        if not 0 <= s <= e < ndim:
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}): "
                f"does not fit a {ndim}-D input"
            )
        return s, e

    def _out_shape(self, shape):
        s, e = self._axes(len(shape))
        return shape[:s] + (math.prod(shape[s : e + 1]),) + shape[e + 1 :]

    def compute_output_shape(self, input_shape):
        return self._out_shape((1,) + tuple(input_shape))[1:]

    def _forward(self, ctx, x):
        x = np.asarray(x) if not isinstance(x, np.ndarray) else x
        ctx.in_shape = x.shape
        x = np.ascontiguousarray(x, dtype=follow_dtype(x))
        return x.reshape(self._out_shape(x.shape))

    def _backward(self, ctx, grad_out, need_input_grad=True):
        want = self._out_shape(ctx.in_shape)
        if grad_out.shape != want:
            raise ValueError(
                f"Flatten.backward: expected gradient of shape {want}, got {grad_out.shape}"
            )
        return np.ascontiguousarray(grad_out).reshape(ctx.in_shape) if need_input_grad else None

    def get_config(self):
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
