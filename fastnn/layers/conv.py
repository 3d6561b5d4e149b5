"""Convolution layers with torch.nn's signature, weight layout and state_dict keys:
Conv1d on (N, C, L) and Conv2d on (N, C, H, W) input.

The C kernels (csrc/conv.c) run the products on register tiles, reading a padded
input in place (stride 1), through Winograd's F(2x2, 3x3) (3x3, stride 1, 16 channels
or more) or on im2col columns (the rest); bias and a following elementwise activation
are applied in the same pass that writes the NCHW output (the layer's `fuse`), and
their derivative in the pass that feeds the backward products. See docs/cnn.md."""

import math

import numpy as np

from .. import _kernels, init as _init
from ..module import Layer, Parameter
from ..validation import as_float_input, float_dtype, positive_int


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def spatial_tuple(value, n, name, where, minimum=1):
    """value (an int or a sequence of n ints) as a tuple of n ints >= minimum."""
    items = (value,) * n if isinstance(value, (int, np.integer)) else tuple(value)
    if len(items) != n or any(
        isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in items
    ):
        raise TypeError(f"{where}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


def check_spatial_input(x, dtype, where, dims, channels):
    """x as a C-contiguous (N, C, *spatial) array of dtype with `dims` spatial axes."""
    x = as_float_input(x, dtype, where)
    if x.ndim != dims + 2:
        axes = "(N, C, L)" if dims == 1 else "(N, C, H, W)"
        raise ValueError(f"{where}: expected a {dims + 2}-D input {axes}, got shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{where}: expected {channels} channels on axis 1, got shape {x.shape}")
    return x


def check_grad(grad_out, shape, dtype, where):
    """grad_out as a C-contiguous array of dtype and the output's shape."""
    g = as_float_input(grad_out, dtype, f"{where}.backward")
    if g.shape != tuple(shape):
        raise ValueError(
            f"{where}.backward: expected gradient of shape {tuple(shape)}, got {g.shape}"
        )
    return g


def as_4d(a):
    """A (N, C, L) array viewed as (N, C, 1, L); 4-D arrays as they are."""
    return a if a.ndim == 4 else a.reshape(a.shape[0], a.shape[1], 1, a.shape[2])


class _ConvNd(Layer):
    """Shared body of Conv1d and Conv2d (the class attribute _dims: spatial axes)."""

    _dims = 2

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        padding_mode="zeros",
        dtype=np.float32,
        name=None,
    ):
        super().__init__(name=name)
        cls, n = type(self).__name__, self._dims
        self.in_channels = positive_int(in_channels, f"{cls} in_channels")
        self.out_channels = positive_int(out_channels, f"{cls} out_channels")
        self.kernel_size = spatial_tuple(kernel_size, n, "kernel_size", cls)
        self._where = (
            f"{cls}({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size})"
        )
        self.stride = spatial_tuple(stride, n, "stride", self._where)
        self.dilation = spatial_tuple(dilation, n, "dilation", self._where)
        self.groups = positive_int(groups, f"{self._where} groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{self._where}: groups={self.groups} must divide in_channels "
                f"({self.in_channels}) and out_channels ({self.out_channels})"
            )
        if padding_mode not in PADDING_MODES:
            raise ValueError(
                f"{self._where}: padding_mode must be one of 'zeros', 'reflect', "
                f"'replicate', 'circular', got {padding_mode!r}"
            )
        self.padding_mode = padding_mode
        self.padding = self._resolve_padding(padding)
        dt = float_dtype(dtype)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dt), "weight")
        self.bias = Parameter(np.empty(self.out_channels, dt), "bias") if bias else None
        self.reset_parameters()

    def _resolve_padding(self, padding):
        """Symmetric padding per axis (self._extra: one more zero after, for 'same' with
        an odd total as torch pads)."""
        n = self._dims
        self._extra = (0,) * n
        self._padding_arg = padding if isinstance(padding, str) else None
        if isinstance(padding, str):
            if padding == "valid":
                return (0,) * n
            if padding != "same":
                raise ValueError(
                    f"{self._where}: padding must be 'same', 'valid', an int or a "
                    f"tuple, got {padding!r}"
                )
            if any(s != 1 for s in self.stride):
                raise ValueError(
                    f"{self._where}: padding='same' needs stride 1, got stride={self.stride}"
                )
            total = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            self._extra = tuple(t % 2 for t in total)
            return tuple(t // 2 for t in total)
        padding = spatial_tuple(padding, n, "padding", self._where, minimum=0)
        self._padding_arg = list(padding)
        return padding

    def reset_parameters(self):
        """torch's initialisation: weight by kaiming_uniform_(a=sqrt(5)), bias
        ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_channels / groups * kernel."""
        _init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
            bound = 1.0 / math.sqrt(fan_in)
            _init.uniform_(self.bias, -bound, bound)

    def _geometry(self):
        """(stride, padding, dilation) as the 2-D tuples the convolution kernels take
        (no padding in a mode other than 'zeros': the input comes padded)."""
        pad = self.padding if self.padding_mode == "zeros" else (0,) * self._dims
        if self._dims == 2:
            return self.stride, pad, self.dilation
        return (1,) + self.stride, (0,) + pad, (1,) + self.dilation

    def _pads(self):
        """(top, bottom, left, right) of the padding in padding_mode, as torch pads
        (for 'same', an odd total puts the extra position after)."""
        after = tuple(p + e for p, e in zip(self.padding, self._extra))
        if self._dims == 1:
            return (0, 0, self.padding[0], after[0])
        return (self.padding[0], after[0], self.padding[1], after[1])

    def _weight4(self, arr):
        return arr if self._dims == 2 else arr.reshape(arr.shape[0], arr.shape[1], 1, arr.shape[2])

    def output_shape(self, spatial):
        """The output's spatial sizes for input spatial sizes (padding='same' included)."""
        return tuple(
            _kernels.conv_output_size(n + e, k, s, p, d)
            for n, e, k, s, p, d in zip(
                spatial, self._extra, self.kernel_size, self.stride, self.padding, self.dilation
            )
        )

    def compute_output_shape(self, input_shape):
        return (self.out_channels,) + self.output_shape(tuple(input_shape[1:]))

    def _check_input(self, x):
        x = check_spatial_input(x, self.weight.dtype, self._where, self._dims, self.in_channels)
        if self.padding_mode in ("reflect", "circular"):
            self._check_wrap(x.shape)
        out = self.output_shape(x.shape[2:])
        if min(out) < 1:
            eff = tuple(d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel_size))
            raise ValueError(
                f"{self._where}: kernel (dilated: {eff}) is larger than the padded "
                f"input {x.shape[2:]} + 2 * padding {self.padding}"
            )
        return x

    def _check_wrap(self, shape):
        """torch's limits: reflect padding < the input's size, circular <= it."""
        reflect = self.padding_mode == "reflect"
        for n, p, e in zip(shape[2:], self.padding, self._extra):
            if (p + e >= n) if reflect else (p + e > n):
                rule = "less than" if reflect else "at most"
                raise ValueError(
                    f"{self._where}: padding_mode={self.padding_mode!r} needs padding "
                    f"{rule} the input's size on each axis, got padding {self._padding_arg!r}"
                    f" for input of shape {shape}"
                )

    def _pad_input(self, ctx, x):
        """x (4-D) as the convolution reads it: padded in padding_mode, or with the
        extra zeros of an asymmetric 'same' (zero padding is the kernel's own)."""
        if self.padding_mode == "zeros":
            return as_4d(self._pad_extra(ctx, x))
        x = as_4d(x)
        t, b, left, r = self._pads()
        shape = x.shape[:2] + (x.shape[2] + t + b, x.shape[3] + left + r)
        xp = ctx.workspace("x_pad", shape, x.dtype)
        _kernels.pad_forward(x, xp, (t, b, left, r), self.padding_mode)
        return xp

    def _pad_extra(self, ctx, x):
        """x with one more zero row/column after where 'same' padding is asymmetric."""
        if not any(self._extra):
            return x
        shape = x.shape[:2] + tuple(n + e for n, e in zip(x.shape[2:], self._extra))
        xp = ctx.workspace("x_same", shape, x.dtype)
        xp[...] = 0
        xp[(slice(None), slice(None)) + tuple(slice(0, n) for n in x.shape[2:])] = x
        return xp

    def _forward(self, ctx, x, act=None):
        """act: an elementwise activation applied in the epilogue (see `fuse`)."""
        code, alpha, beta = act.epilogue() if act is not None else (_kernels.ACT_IDENTITY, 0.0, 0.0)
        bias = None if self.bias is None else self.bias.data
        return self.convolve(ctx, x, self.weight.data, bias, (code, alpha, beta))

    def convolve(self, ctx, x, weight, bias, act, keep=True):
        """act((x * weight) + bias) with this layer's geometry: weight of the layer's
        weight shape, bias (out_channels,) or None, act an epilogue (code, alpha,
        beta). keep=False (evaluation only) keeps nothing for a backward. The compiled
        evaluation forward (fastnn.inference) passes weights with batch norm folded in."""
        x = self._check_input(x)
        ctx.in_shape = x.shape
        x = self._pad_input(ctx, x)
        w = self._weight4(weight)
        code, alpha, beta = act
        geo = self._geometry()
        out = (x.shape[0], self.out_channels) + tuple(
            _kernels.conv_output_size(n, k, s, p, d)
            for n, k, s, p, d in zip(x.shape[2:], w.shape[2:], *geo)
        )
        y = ctx.workspace("y", out, x.dtype)
        z = ctx.workspace("z", out, x.dtype) if keep and _kernels.act_needs_input(code) else None
        ctx.scratch = _kernels.conv_scratch_size(x.shape, w.shape, *geo, self.groups)
        scratch = self._shared_scratch("conv", ctx.scratch, x.dtype)
        _kernels.conv_forward(
            x,
            w,
            bias,
            code,
            alpha,
            beta,
            z,
            y,
            scratch,
            *geo,
            self.groups,
        )
        ctx.x, ctx.z, ctx.y, ctx.act = x, z, y, (code, alpha, beta)
        return y if self._dims == 2 else y.reshape(out[0], out[1], out[3])

    def _backward(self, ctx, grad_out, need_input_grad=True):
        y, x = ctx.y, ctx.x
        out = y.shape if self._dims == 2 else y.shape[:2] + y.shape[3:]
        g = as_4d(check_grad(grad_out, out, y.dtype, self._where))
        w, b = self.weight, self.bias
        gw = self._weight4(w.grad) if w.requires_grad else None
        gb = b.grad if b is not None and b.requires_grad else None
        gx = None
        if need_input_grad:  # the padding's adjoint takes the gradient in a mode but 'zeros'
            zeros = self.padding_mode == "zeros"
            gx = (
                ctx.grad_workspace(x.shape, x.dtype)
                if zeros
                else ctx.workspace("gx", x.shape, x.dtype)
            )
        if gw is not None or gb is not None or gx is not None:
            geo = self._geometry()
            code, alpha, beta = ctx.act
            bsum = self._scratch("bsum", (y.shape[1],), np.float64)
            _kernels.conv_backward(
                x,
                self._weight4(w.data),
                code,
                alpha,
                beta,
                ctx.z,
                y,
                g,
                gw,
                gb,
                gx,
                self._shared_scratch("conv", ctx.scratch, x.dtype),
                bsum,
                *geo,
                self.groups,
            )
        if gx is None:
            return None
        if self.padding_mode != "zeros":  # the padding's adjoint
            shape = ctx.in_shape
            g_in = ctx.grad_workspace(shape[:2] + (1,) * (4 - len(shape)) + shape[2:], x.dtype)
            _kernels.pad_backward(gx, g_in, self._pads(), self.padding_mode)
            return g_in.reshape(ctx.in_shape)
        gx = gx if self._dims == 2 else gx.reshape(x.shape[0], x.shape[1], x.shape[3])
        if any(self._extra):  # drop the extra zeros' gradient
            gx = gx[(slice(None), slice(None)) + tuple(slice(0, n) for n in ctx.in_shape[2:])]
        return gx

    def fuse(self, following):
        """Convolution followed by an elementwise activation: one step, the activation
        in the epilogue of the convolution's GEMMs."""
        if following[0].epilogue() is None:
            return None
        return ConvActivation(self, following[0]), 1

    def get_config(self):
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self._padding_arg,
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.bias is not None,
            "padding_mode": self.padding_mode,
        }

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1,) * self._dims:
            s += f", stride={self.stride}"
        if any(self.padding) or any(self._extra):
            s += f", padding={self._padding_arg!r}"
        if self.dilation != (1,) * self._dims:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s


class ConvActivation:
    """The fused step of a convolution and the elementwise activation after it."""

    def __init__(self, conv, act):
        self.conv, self.act = conv, act
        self.layers = (conv, act)

    def _forward(self, ctx, x):
        return self.conv._forward(ctx, x, self.act)

    def _backward(self, ctx, grad_out, need_input_grad=True):
        return self.conv._backward(ctx, grad_out, need_input_grad)


class Conv1d(_ConvNd):
    """1-D convolution of (N, in_channels, L) input: weight (out_channels,
    in_channels / groups, kernel_size), bias (out_channels,); output (N, out_channels,
    L_out) with L_out = (L + 2 padding - dilation (kernel_size - 1) - 1) // stride + 1.
    padding: an int, 'valid' (0) or 'same' (output length L, stride 1 only).
    groups=in_channels gives a depthwise convolution. Initialisation as torch."""

    _dims = 1


class Conv2d(_ConvNd):
    """2-D convolution of (N, in_channels, H, W) input: weight (out_channels,
    in_channels / groups, kh, kw), bias (out_channels,); output (N, out_channels, H_out,
    W_out) with H_out = (H + 2 padding[0] - dilation[0] (kh - 1) - 1) // stride[0] + 1
    (likewise W_out). kernel_size, stride, padding and dilation take an int or a pair;
    padding also 'valid' (0) or 'same' (output H x W, stride 1 only; an odd total pads
    one more zero after, as torch). groups=in_channels gives a depthwise convolution.
    padding_mode 'reflect', 'replicate' or 'circular' pads as torch's F.pad in that
    mode (reflect: padding < the input's size, circular: <= it), then convolves
    without padding. Initialisation as torch."""

    _dims = 2
