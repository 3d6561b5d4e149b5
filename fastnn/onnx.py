"""Export a trained model to ONNX: `fastnn.onnx.export(model, path)`.

The graph is the model in evaluation mode (BatchNorm with its running statistics,
Dropout as the identity or its weight-scaling factor), with a dynamic batch axis;
`onnx.checker` accepts it and onnxruntime reproduces `model.predict` to float
round-off. Requires the `onnx` package: `pip install "fastnn[onnx]"` (which also
brings onnxruntime, to run the exported file).

    >>> import fastnn.onnx
    >>> fastnn.onnx.export(model, "model.onnx")          # input (batch, n_features)
    >>> fastnn.onnx.export(cnn, "cnn.onnx", input_shape=(None, 3, 32, 32))
    >>> fastnn.onnx.export(rnn, "rnn.onnx", input_shape=(None, 50, 16))  # (N, T, F)
    >>> fastnn.onnx.export(graph_model, "model.onnx")    # a fastnn.Model: its Inputs
    >>> import onnxruntime as ort
    >>> sess = ort.InferenceSession("model.onnx")
    >>> sess.run(None, {"input": X.astype(np.float32)})[0]

Extending it. Each layer class has a converter in `CONVERTERS`, a plain dict from
the class to a function `convert(layer, graph, x) -> y` that appends the layer's
nodes to `graph` (a `GraphBuilder`) and returns the name of its output, `x` being
the name of its input (lists of names for layers called on, or returning, several
tensors, like the merge layers). Lookup follows the class's MRO, so subclasses inherit their
parent's converter. Add one for a new layer with the `register` decorator:

    >>> @fastnn.onnx.register(MyLayer)
    ... def _my_layer(layer, graph, x):
    ...     return graph.node("Relu", [x])

A layer without a converter raises `ExportError` naming it.
"""

from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np

from . import layers as _layers
from .layers.conv import _ConvNd
from .layers.normalization import _BatchNorm
from .layers.pooling import _AdaptiveAvgPool, _AvgPool, _MaxPool
from .layers.recurrent import _Recurrent
from .graph import Model
from .module import Module
from .sequential import Sequential
from .symbolic import SymbolicTensor, _infer

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:  # pragma: no cover - exercised only without onnx
    raise ImportError("fastnn.onnx needs the onnx package: pip install 'fastnn[onnx]'") from e

__all__ = ["CONVERTERS", "ExportError", "GraphBuilder", "export", "register"]

DEFAULT_OPSET = 17  # LayerNormalization needs 17; onnxruntime >= 1.14 runs it

_ELEM_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


class ExportError(ValueError):
    """A model that cannot be written as ONNX; the message names the layer."""


class GraphBuilder:
    """The ONNX graph under construction: nodes, initializers (constants) and fresh
    names. `dtype` is the model's float type; `shape` the shape of the tensor entering
    the layer being converted without the batch axis (a list of shapes for a layer of
    several inputs; spatial and sequence sizes are fixed at export); `rank` that
    tensor's rank, batch axis included (2 for (N, features)); `opset` the target."""

    def __init__(self, dtype, shape, opset):
        self.dtype, self.shape, self.opset = np.dtype(dtype), shape, opset
        self.nodes, self.initializers = [], []
        self._used: set[str] = set()
        self.prefix = ""

    @property
    def rank(self) -> int:
        first = self.shape[0] if isinstance(self.shape, list) else self.shape
        return len(first) + 1

    def ints(self, values, hint: str = "shape") -> str:
        """An int64 initializer (shapes, axes, pads)."""
        return self.const(np.array(values, np.int64), hint, dtype=np.int64)

    def name(self, hint: str) -> str:
        """A name not used yet, built from hint (and the current layer's prefix)."""
        base = f"{self.prefix}{hint}" if self.prefix else hint
        name, i = base, 1
        while name in self._used:
            name, i = f"{base}_{i}", i + 1
        self._used.add(name)
        return name

    def const(self, value, hint: str = "const", dtype=None) -> str:
        """An initializer holding value (in the model's dtype unless dtype is given)."""
        arr = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        """Append a node with one output; returns the output's name."""
        out = self.name(hint or op.lower())
        self.nodes.append(
            helper.make_node(op, inputs, [out], name=self.name(f"{op}_node"), **attrs)
        )
        return out

    def reduce(self, op: str, x: str, axes: list[int], keepdims: bool = True) -> str:
        """A Reduce* node over axes (an attribute before opset 18, an input since)."""
        if self.opset >= 18 or op == "ReduceSum":
            axes_in = self.const(np.array(axes, np.int64), "axes", dtype=np.int64)
            return self.node(op, [x, axes_in], keepdims=int(keepdims))
        return self.node(op, [x], axes=axes, keepdims=int(keepdims))


# x and the result are tensor names: one, or a list for several inputs or outputs.
Names = Union[str, list[str]]  # noqa: UP007 - a runtime alias (Python 3.10's | needs both types)
Converter = Callable[[Module, GraphBuilder, Names], Names]
CONVERTERS: dict[type, Converter] = {}


def register(*classes: type) -> Callable[[Converter], Converter]:
    """Decorator: use the function as the ONNX converter of these layer classes."""

    def add(fn):
        for cls in classes:
            CONVERTERS[cls] = fn
        return fn

    return add


def convert(layer: Module, graph: GraphBuilder, x: Names) -> Names:
    """Append `layer`'s nodes to graph; the name of its output."""
    for cls in type(layer).__mro__:
        if cls in CONVERTERS:
            return CONVERTERS[cls](layer, graph, x)
    raise ExportError(
        f"fastnn.onnx: no ONNX form for layer {type(layer).__name__} "
        f"({layer!r}); register a converter with fastnn.onnx.register"
    )


# ---------------------------------------------------------------------------- containers


def _output_shape(layer, shape, dtype):
    """The shape (without the batch axis) of layer's output for input `shape` (a list
    of shapes for several inputs), as the graph API infers it."""
    multi = isinstance(shape, list)
    inputs = [SymbolicTensor((None,) + tuple(s), dtype) for s in (shape if multi else [shape])]
    return _infer(layer, inputs, multi)[0]


@register(Sequential)
def _sequential(model, graph, x):
    prefix, shape = graph.prefix, graph.shape
    for i, layer in enumerate(model):
        graph.prefix = f"{prefix}{i}."
        x = convert(layer, graph, x)
        graph.shape = _output_shape(layer, graph.shape, graph.dtype)
    graph.prefix, graph.shape = prefix, shape
    return x


@register(Model)
def _model(model, graph, x):
    """Each node of the graph in topological order, tensors mapped to ONNX names."""
    names = {id(t): v for t, v in zip(model.inputs, x if isinstance(x, list) else [x])}
    prefix, shape = graph.prefix, graph.shape
    for node in model._nodes:
        ins = [names[id(t)] for t in node.inputs]
        shapes = [tuple(t.shape[1:]) for t in node.inputs]
        graph.shape = shapes if node.multi else shapes[0]
        graph.prefix = f"{prefix}{node.module.name}."
        out = convert(node.module, graph, ins if node.multi else ins[0])
        for t, v in zip(node.outputs, out if isinstance(out, list) else [out]):
            names[id(t)] = v
    graph.prefix, graph.shape = prefix, shape
    outs = [names[id(t)] for t in model.outputs]
    return outs if len(outs) > 1 else outs[0]


@register(_layers.Residual)
def _residual(block, graph, x):
    return graph.node("Add", [x, _sequential(block, graph, x)], "residual")


def _chain(op):
    def conv(layer, graph, xs):
        y = xs[0]
        for v in xs[1:]:
            y = graph.node(op, [y, v])
        return y

    return conv


register(_layers.Add)(_chain("Add"))
register(_layers.Multiply)(_chain("Mul"))


@register(_layers.Concatenate)
def _concatenate(layer, graph, xs):
    return graph.node("Concat", xs, axis=layer._axis(graph.rank))


# ------------------------------------------------------------------------- affine layers


def _affine(graph, x, weight, bias):
    """x @ weight.T + bias: Gemm for 2-D input, MatMul + Add otherwise."""
    w = graph.const(weight, "weight")
    if graph.rank == 2:
        inputs = [x, w] if bias is None else [x, w, graph.const(bias, "bias")]
        return graph.node("Gemm", inputs, "linear", transB=1)
    y = graph.node("MatMul", [x, graph.const(np.ascontiguousarray(weight.T), "weight_t")])
    return y if bias is None else graph.node("Add", [y, graph.const(bias, "bias")])


@register(_layers.Dense)
def _dense(layer, graph, x):
    return _affine(graph, x, layer.weight.data, None if layer.bias is None else layer.bias.data)


@register(_layers.DropConnect)
def _dropconnect(layer, graph, x):
    return convert(layer.layer, graph, x)  # evaluation uses every weight


@register(_layers.Maxout)
def _maxout(layer, graph, x):
    z = _affine(graph, x, layer.weight.data, None if layer.bias is None else layer.bias.data)
    shape = graph.const(
        np.array([0, layer.out_features, layer.pieces], np.int64), "shape", dtype=np.int64
    )
    return graph.reduce("ReduceMax", graph.node("Reshape", [z, shape]), [2], keepdims=False)


@register(_layers.RBF)
def _rbf(layer, graph, x):
    # d2 = |x|^2 - 2 x.c + |c|^2 (clamped at 0, as the kernel), y = exp(-d2 / (2 s^2))
    C = layer.centers.data.astype(np.float64)
    xsq = graph.reduce("ReduceSumSquare", x, [1])
    xc = graph.node("MatMul", [x, graph.const(-2.0 * C.T, "centers_t")])
    d2 = graph.node(
        "Add", [graph.node("Add", [xsq, xc]), graph.const((C * C).sum(axis=1), "centers_sq")]
    )
    d2 = graph.node("Max", [d2, graph.const(0.0, "zero")])
    w = layer.widths.data.astype(np.float64)
    return graph.node("Exp", [graph.node("Mul", [d2, graph.const(-1.0 / (2 * w * w), "inv_2s2")])])


# --------------------------------------------------------------------------- activations


def _simple(op, **attrs_of):
    def conv(layer, graph, x):
        return graph.node(op, [x], **{k: f(layer) for k, f in attrs_of.items()})

    return conv


register(_layers.ReLU)(_simple("Relu"))
register(_layers.Sigmoid)(_simple("Sigmoid"))
register(_layers.Tanh)(_simple("Tanh"))
register(_layers.AbsReLU)(_simple("Abs"))
register(_layers.Identity)(_simple("Identity"))
register(_layers.LeakyReLU)(_simple("LeakyRelu", alpha=lambda m: m.negative_slope))

# onnxruntime has no double kernels for Elu, Softplus and Erf: float64 graphs spell
# the first two out in elementary ops and compute erf in float32.
_NO_DOUBLE_KERNEL = np.dtype(np.float64)


@register(_layers.ELU)
def _elu(layer, graph, x):
    if graph.dtype != _NO_DOUBLE_KERNEL:
        return graph.node("Elu", [x], alpha=layer.alpha)
    zero = graph.const(0.0, "zero")
    neg = graph.node(
        "Mul",
        [
            graph.node(
                "Sub", [graph.node("Exp", [graph.node("Min", [x, zero])]), graph.const(1.0, "one")]
            ),
            graph.const(layer.alpha, "alpha"),
        ],
    )
    return graph.node("Where", [graph.node("Greater", [x, zero]), x, neg])


def _softplus_op(graph, x):
    """log(1 + exp(x)), as max(x, 0) + log(1 + exp(-|x|)) where there is no kernel."""
    if graph.dtype != _NO_DOUBLE_KERNEL:
        return graph.node("Softplus", [x])
    tail = graph.node(
        "Log",
        [
            graph.node(
                "Add",
                [
                    graph.const(1.0, "one"),
                    graph.node("Exp", [graph.node("Neg", [graph.node("Abs", [x])])]),
                ],
            )
        ],
    )
    return graph.node("Add", [graph.node("Max", [x, graph.const(0.0, "zero")]), tail])


def _erf(graph, x):
    if graph.dtype != _NO_DOUBLE_KERNEL:
        return graph.node("Erf", [x])
    e = graph.node("Erf", [graph.node("Cast", [x], to=TensorProto.FLOAT)])
    return graph.node("Cast", [e], to=TensorProto.DOUBLE)


register(_layers.Softmax)(_simple("Softmax", axis=lambda m: m.axis))


@register(_layers.HardTanh)
def _hardtanh(layer, graph, x):
    return graph.node(
        "Clip", [x, graph.const(layer.min_val, "min"), graph.const(layer.max_val, "max")]
    )


@register(_layers.Softplus)
def _softplus(layer, graph, x):
    # torch: log(1 + exp(beta x)) / beta, and x itself where beta x > threshold
    bx = x if layer.beta == 1 else graph.node("Mul", [x, graph.const(layer.beta, "beta")])
    sp = _softplus_op(graph, bx)
    if layer.beta != 1:
        sp = graph.node("Div", [sp, graph.const(layer.beta, "beta")])
    linear = graph.node("Greater", [bx, graph.const(layer.threshold, "threshold")])
    return graph.node("Where", [linear, x, sp])


@register(_layers.GELU)
def _gelu(layer, graph, x):
    if layer.approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = graph.node("Mul", [graph.node("Mul", [x, x]), x])
        inner = graph.node("Add", [x, graph.node("Mul", [x3, graph.const(0.044715, "c")])])
        t = graph.node(
            "Tanh", [graph.node("Mul", [inner, graph.const(math.sqrt(2 / math.pi), "sqrt_2_pi")])]
        )
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        t = _erf(graph, graph.node("Mul", [x, graph.const(1 / math.sqrt(2), "inv_sqrt2")]))
    half_x = graph.node("Mul", [x, graph.const(0.5, "half")])
    return graph.node("Mul", [half_x, graph.node("Add", [t, graph.const(1.0, "one")])])


def _channel_shape(graph, n):
    """Shape broadcasting a per-channel (axis 1) vector of n against the input."""
    return (n,) + (1,) * (graph.rank - 2)


@register(_layers.PReLU)
def _prelu(layer, graph, x):
    w = layer.weight.data
    slope = w.reshape(_channel_shape(graph, w.size)) if w.size > 1 else w
    return graph.node("PRelu", [x, graph.const(slope, "slope")])


# ------------------------------------------------------------------ dropout, normalisation


@register(_layers.Dropout)
def _dropout(layer, graph, x):
    if layer.mode == "inverted" or layer.p == 0.0:
        return x  # the identity in evaluation
    return graph.node("Mul", [x, graph.const(1.0 - layer.p, "keep")])


@register(_layers.Standardize)
def _standardize(layer, graph, x):
    mean, scale = graph.const(layer.mean, "mean"), graph.const(layer.scale, "scale")
    if layer.inverse:
        return graph.node("Add", [graph.node("Mul", [x, scale]), mean])
    return graph.node("Div", [graph.node("Sub", [x, mean]), scale])


def _running_norm(layer, graph, x):
    """Per-channel normalisation by running statistics (BatchNormalization)."""
    n, dt = layer.num_features, graph.dtype
    if not layer.track_running_stats:
        raise ExportError(
            f"fastnn.onnx: {type(layer).__name__} without running statistics "
            "normalises each batch by its own statistics in evaluation; ONNX "
            "export needs track_running_stats=True"
        )
    scale = layer.weight.data if layer.affine else np.ones(n, dt)
    bias = layer.bias.data if layer.affine else np.zeros(n, dt)
    return graph.node(
        "BatchNormalization",
        [
            x,
            graph.const(scale, "scale"),
            graph.const(bias, "bias"),
            graph.const(layer.running_mean, "running_mean"),
            graph.const(layer.running_var, "running_var"),
        ],
        "batchnorm",
        epsilon=layer.eps,
    )


# BatchNorm1d/2d, SyncBatchNorm and BatchRenorm1d: all evaluate with running statistics.
register(_BatchNorm)(_running_norm)


def _group_norm(graph, x, groups, eps, weight, bias):
    """Normalise each sample's `groups` groups of channels over their values, then a
    per-channel affine (weight, bias may be None)."""
    shape = graph.node("Shape", [x])
    g = graph.node(
        "Reshape", [x, graph.const(np.array([0, groups, -1], np.int64), "groups", dtype=np.int64)]
    )
    mean = graph.reduce("ReduceMean", g, [2])
    d = graph.node("Sub", [g, mean])
    var = graph.reduce("ReduceMean", graph.node("Mul", [d, d]), [2])
    std = graph.node("Sqrt", [graph.node("Add", [var, graph.const(eps, "eps")])])
    y = graph.node("Reshape", [graph.node("Div", [d, std]), shape])
    if weight is not None:
        y = graph.node(
            "Mul", [y, graph.const(weight.reshape(_channel_shape(graph, weight.size)), "weight")]
        )
    if bias is not None:
        y = graph.node(
            "Add", [y, graph.const(bias.reshape(_channel_shape(graph, bias.size)), "bias")]
        )
    return y


@register(_layers.GroupNorm)
def _groupnorm(layer, graph, x):
    return _group_norm(
        graph,
        x,
        layer.num_groups,
        layer.eps,
        layer.weight.data if layer.affine else None,
        layer.bias.data if layer.affine else None,
    )


@register(_layers.InstanceNorm1d, _layers.InstanceNorm2d)
def _instancenorm(layer, graph, x):
    if layer.track_running_stats:
        return _running_norm(layer, graph, x)
    return _group_norm(
        graph,
        x,
        layer.num_features,
        layer.eps,
        layer.weight.data if layer.affine else None,
        layer.bias.data if layer.affine else None,
    )


@register(_layers.LayerNorm)
def _layernorm(layer, graph, x):
    shape = layer.normalized_shape
    weight = layer.weight.data if layer.weight is not None else np.ones(shape, graph.dtype)
    inputs = [x, graph.const(weight, "weight")]
    if layer.bias is not None:
        inputs.append(graph.const(layer.bias.data, "bias"))
    return graph.node(
        "LayerNormalization", inputs, "layernorm", axis=-len(shape), epsilon=layer.eps
    )


# ------------------------------------------------------------------- convolution, pooling


def _pads(begin, end):
    """ONNX `pads`: every axis's begin, then every axis's end."""
    return list(begin) + list(end)


@register(_ConvNd)
def _conv(layer, graph, x):
    if layer.padding_mode != "zeros":  # ONNX's Conv pads with zeros only
        raise ExportError(
            f"fastnn.onnx: {layer._where} with padding_mode={layer.padding_mode!r} is "
            "not exported (only 'zeros')"
        )
    inputs = [x, graph.const(layer.weight.data, "weight")]
    if layer.bias is not None:
        inputs.append(graph.const(layer.bias.data, "bias"))
    return graph.node(
        "Conv",
        inputs,
        "conv",
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        dilations=list(layer.dilation),
        # padding='same' with an odd total pads the extra zero after, as torch
        pads=_pads(layer.padding, [p + e for p, e in zip(layer.padding, layer._extra)]),
        group=layer.groups,
    )


def _ceil_overflow(layer, spatial):
    """Per axis, how far a ceil_mode window reaches past the padded input (0 without
    ceil_mode): padding the input that much more at the end gives torch's output size
    with ONNX's floor rule."""
    out = layer._out_spatial(spatial)
    return [
        max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p))
        for o, n, k, s, p, d in zip(
            out, spatial, layer.kernel_size, layer.stride, layer.padding, layer.dilation
        )
    ]


def _pad(graph, x, begin, end, value):
    """x padded on its spatial axes with the constant value."""
    if not any(begin) and not any(end):
        return x
    zeros = [0, 0]
    pads = graph.ints(zeros + list(begin) + zeros + list(end), "pads")
    return graph.node("Pad", [x, pads, graph.const(value, "pad_value")], mode="constant")


def _window_attrs(layer, pads):
    return dict(kernel_shape=list(layer.kernel_size), strides=list(layer.stride), pads=pads)


@register(_MaxPool)
def _maxpool(layer, graph, x):
    extra = _ceil_overflow(layer, graph.shape[1:])
    pads = _pads(layer.padding, layer.padding)
    if any(extra):  # padded positions never win: pad with -inf, pool without padding
        ends = [p + e for p, e in zip(layer.padding, extra)]
        x, pads = _pad(graph, x, layer.padding, ends, -np.inf), [0] * len(pads)
    return graph.node(
        "MaxPool", [x], "maxpool", dilations=list(layer.dilation), **_window_attrs(layer, pads)
    )


def _avgpool_divisors(layer, spatial):
    """torch's divisor of every output position (the output's spatial shape): the
    window clipped to the padded input, or to the input without count_include_pad,
    or divisor_override."""
    axes = []
    for o, n, k, s, p in zip(
        layer._out_spatial(spatial), spatial, layer.kernel_size, layer.stride, layer.padding
    ):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if not layer.count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        axes.append(end - start)
    if len(axes) == 1:
        return axes[0].astype(np.float64)
    return np.multiply.outer(axes[0], axes[1]).astype(np.float64)


@register(_AvgPool)
def _avgpool(layer, graph, x):
    spatial = graph.shape[1:]
    divisors = _avgpool_divisors(layer, spatial)
    window = math.prod(layer.kernel_size)
    if layer.divisor_override is not None:
        divisors = np.full_like(divisors, layer.divisor_override)
    if (divisors == window).all():  # every window whole: ONNX's own AveragePool
        pads = _pads(layer.padding, layer.padding)
        return graph.node(
            "AveragePool", [x], "avgpool", count_include_pad=1, **_window_attrs(layer, pads)
        )
    # Otherwise: the window sums (a mean over zero-padded input, times the window
    # size) divided by torch's divisors, constants of the fixed input size.
    ends = [p + e for p, e in zip(layer.padding, _ceil_overflow(layer, spatial))]
    padded = _pad(graph, x, layer.padding, ends, 0.0)
    mean = graph.node(
        "AveragePool", [padded], "avgpool", **_window_attrs(layer, [0] * 2 * len(ends))
    )
    return graph.node("Mul", [mean, graph.const(window / divisors, "window_over_divisor")])


@register(_AdaptiveAvgPool)
def _adaptive_avgpool(layer, graph, x):
    spatial = graph.shape[1:]
    out = layer._out_spatial(spatial)
    if all(o == 1 for o in out):
        return graph.node("GlobalAveragePool", [x], "global_avgpool")
    if any(n % o for n, o in zip(spatial, out)):
        raise ExportError(
            f"fastnn.onnx: {type(layer).__name__}(output_size={layer.output_size}) on input "
            f"of spatial size {tuple(spatial)} has cells of unequal size; ONNX has no "
            "adaptive pooling: export with an input size that output_size divides"
        )
    kernel = [n // o for n, o in zip(spatial, out)]
    return graph.node("AveragePool", [x], "avgpool", kernel_shape=kernel, strides=kernel)


@register(_layers.Flatten)
def _flatten(layer, graph, x):
    full = (None,) + tuple(graph.shape)
    s, e = layer._axes(len(full))
    if s == 1 and e == len(full) - 1:
        return graph.node("Flatten", [x], axis=1)
    # Reshape to the fixed sizes, 0 keeping the batch axis (start_dim 0 would merge the
    # batch axis, which predict refuses).
    target = [0, *full[1:s], math.prod(full[s : e + 1]), *full[e + 1 :]]
    return graph.node("Reshape", [x, graph.ints(target)])


# Regularisers that are the identity in evaluation.
register(
    _layers.Dropout1d,
    _layers.Dropout2d,
    _layers.DropBlock2d,
    _layers.StochasticDepth,
    _layers.Cutout,
)(lambda layer, graph, x: x)


# --------------------------------------------------------------- embedding, attention


@register(_layers.Embedding)
def _embedding(layer, graph, ids):
    """Gather rows of the table; ids arrive in the model's float type, as predict takes
    them, and are cast to int64 (ONNX's Gather reads a negative id from the end, where
    fastnn refuses it)."""
    ids = graph.node("Cast", [ids], "ids", to=TensorProto.INT64)
    return graph.node("Gather", [graph.const(layer.weight.data, "weight"), ids], axis=0)


def _valid_steps(graph, m, m_shape, steps):
    """A (N, T) bool tensor of the steps that count, from lengths ((N,) or (N, 1)) or a
    (N, T) mask."""
    if tuple(m_shape) not in ((), (1,)):
        return graph.node("Not", [graph.node("Equal", [m, graph.const(0.0, "zero")])])
    lengths = graph.node("Reshape", [m, graph.ints([-1, 1])], "lengths")
    return graph.node("Less", [graph.const(np.arange(steps), "steps"), lengths])


@register(_layers.AttentionPooling)
def _attention_pooling(layer, graph, x):
    shapes = graph.shape if isinstance(x, list) else [graph.shape]
    xs = x if isinstance(x, list) else [x]
    x, T = xs[0], shapes[0][0]
    scores = graph.node("MatMul", [x, graph.const(layer.query.data, "query")], "scores")
    if len(xs) > 1:
        valid = _valid_steps(graph, xs[1], shapes[1], T)
        scores = graph.node("Where", [valid, scores, graph.const(-np.inf, "minus_inf")])
    weights = graph.node("Softmax", [scores], "attention", axis=1)
    unsq = graph.node("Unsqueeze", [weights, graph.ints([2], "axes")])
    return graph.reduce("ReduceSum", graph.node("Mul", [x, unsq]), [1], keepdims=False)


# ---------------------------------------------------------------------------- recurrent

# ONNX's gate order, as blocks of torch's: LSTM i, o, f, c from torch's i, f, g, o;
# GRU z, r, h from torch's r, z, n.
_GATES = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}


def _onnx_gates(w, op, H):
    """Torch's stacked gate blocks of w (blocks * H rows first) in ONNX's order."""
    return np.concatenate([w[g * H : (g + 1) * H] for g in _GATES[op]])


def _recurrent_weights(layer, graph, k, op):
    """ONNX's W, R and B (biases Wb then Rb) of layer k, one slab per direction."""
    H = layer.hidden_size
    W, R, B = [], [], []
    for d in range(layer.num_directions):
        w_ih, w_hh, b_ih, b_hh = layer._cell(k, d)
        W.append(_onnx_gates(w_ih.data, op, H))
        R.append(_onnx_gates(w_hh.data, op, H))
        if b_ih is None:
            B.append(np.zeros(2 * len(_GATES[op]) * H, graph.dtype))
        else:
            B.append(np.concatenate([_onnx_gates(b_ih.data, op, H), _onnx_gates(b_hh.data, op, H)]))
    return [graph.const(np.stack(v), name) for v, name in ((W, "W"), (R, "R"), (B, "B"))]


@register(_Recurrent)
def _recurrent(layer, graph, x):
    """One ONNX RNN/LSTM/GRU node per layer of the stack (dropout between layers is the
    identity in evaluation); a second input, the lengths, becomes sequence_lens."""
    op = {_layers.LSTM: "LSTM", _layers.GRU: "GRU"}.get(type(layer), "RNN")
    H, D, L = layer.hidden_size, layer.num_directions, layer.num_layers
    xs = x if isinstance(x, list) else [x]
    x, lengths = xs[0], ""
    if len(xs) > 1:  # lengths (N,) or (N, 1), in the model's float type
        flat = graph.node("Reshape", [xs[1], graph.ints([-1])])
        lengths = graph.node("Cast", [flat], "lengths", to=TensorProto.INT32)
    if len(xs) > 2:
        raise ExportError(
            f"fastnn.onnx: {layer._where} called with initial states: not exported "
            "(the states' batch axis is axis 1, a model input's is axis 0)"
        )
    attrs = dict(hidden_size=H, direction="bidirectional" if D == 2 else "forward")
    if op == "GRU":
        attrs["linear_before_reset"] = 1  # torch: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    if op == "RNN":
        attrs["activations"] = ["Relu" if layer.nonlinearity == "relu" else "Tanh"] * D
    if layer.batch_first:  # ONNX's recurrent operators are time-major
        x = graph.node("Transpose", [x], perm=[1, 0, 2])
    for k in range(L):
        inputs = [x, *_recurrent_weights(layer, graph, k, op)] + ([lengths] if lengths else [])
        y, y_h = graph.name(f"{op.lower()}_Y"), graph.name(f"{op.lower()}_Y_h")
        graph.nodes.append(
            helper.make_node(op, inputs, [y, y_h], name=graph.name(f"{op}_node"), **attrs)
        )
        if k < L - 1 or layer.return_sequences:  # Y (T, D, N, H) -> (T, N, D * H)
            y = graph.node("Transpose", [y], perm=[0, 2, 1, 3])
            x = graph.node("Reshape", [y, graph.ints([0, 0, -1])], "sequence")
    if not layer.return_sequences:  # the last layer's final states: (N, D * H)
        h = graph.node("Transpose", [y_h], perm=[1, 0, 2])
        return graph.node("Reshape", [h, graph.ints([0, -1])], "final_state")
    return graph.node("Transpose", [x], perm=[1, 0, 2]) if layer.batch_first else x


# ----------------------------------------------------------------------------- export


# Layers whose input is not a feature vector: a model reaching one of them before any
# layer that names its input size needs an explicit input_shape.
_SHAPED_INPUT = (
    _ConvNd,
    _MaxPool,
    _AvgPool,
    _AdaptiveAvgPool,
    _Recurrent,
    _layers.Flatten,
    _layers.Embedding,
    _layers.AttentionPooling,
    _layers.BatchNorm2d,
    _layers.InstanceNorm2d,
    _layers.Dropout1d,
    _layers.Dropout2d,
    _layers.DropBlock2d,
    _layers.Cutout,
)


def _infer_features(model):
    """(n_features,) from the first layer that names its input size, for a model whose
    input is a feature vector."""
    for m in model.modules():
        if isinstance(m, _SHAPED_INPUT):
            raise ExportError(
                f"fastnn.onnx: cannot tell the input shape of a model starting with "
                f"{type(m).__name__}; pass input_shape=(None, ...), e.g. (None, C, H, W) "
                "for images or (None, T, features) for sequences"
            )
        for attr in ("in_features", "num_features", "normalized_shape"):
            v = getattr(m, attr, None)
            if v is not None:
                return (v,) if isinstance(v, int) else tuple(v)
    raise ExportError(
        "fastnn.onnx: cannot tell the model's input size; pass input_shape=(None, n_features)"
    )


def _inputs(model, input_shape, input_name):
    """[(name, shape with None for the batch axis, dtype)] of the model's inputs."""
    if isinstance(model, Model):
        if input_shape is not None:
            raise ValueError(
                "fastnn.onnx.export: a fastnn.Model's input shapes come from its "
                "Inputs; do not pass input_shape"
            )
        return [(t.name, tuple(t.shape), np.dtype(t.dtype)) for t in model.inputs]
    if input_shape is None:
        input_shape = (None,) + _infer_features(model)
    input_shape = tuple(input_shape)
    if (
        len(input_shape) < 2
        or input_shape[0] is not None
        or any(not isinstance(d, int) or d < 1 for d in input_shape[1:])
    ):
        raise ValueError(
            "fastnn.onnx.export: input_shape must be (None, d1, ...) with the "
            f"batch axis None and positive sizes, got {input_shape}"
        )
    return [(input_name, input_shape, np.dtype(model.dtype or np.float32))]


def export(
    model: Module,
    path=None,
    input_shape: tuple | None = None,
    opset: int = DEFAULT_OPSET,
    input_name: str = "input",
    output_name: str = "output",
) -> onnx.ModelProto:
    """Write the model in evaluation mode as an ONNX graph to path (if given) and
    return the onnx.ModelProto.

    model: a Sequential, a fastnn.Model (its graph inputs are its Inputs, with their
    names and shapes) or any built-in layer. input_shape: for a model that is not a
    fastnn.Model, the input's shape with None for the dynamic batch axis, e.g.
    (None, n_features) (the default, n_features read from the first layer),
    (None, C, H, W) for images or (None, T, features) for sequences (required then:
    image sizes and sequence lengths are fixed in the graph), named input_name. opset: the ONNX opset (17 or later). The outputs are named
    output_name (then output_name_1, ... for several); tensor types follow the
    model's dtype (float32 -> FLOAT, float64 -> DOUBLE). Raises ExportError for a
    layer without an ONNX form.
    """
    if opset < 17:
        raise ValueError(f"fastnn.onnx.export: opset must be >= 17, got {opset}")
    inputs = _inputs(model, input_shape, input_name)
    dtype = np.dtype(model.dtype or inputs[0][2])
    # One evaluation forward checks the shapes and brings derived state (weight-normalised
    # weights) up to date; ones are valid lengths, masks and token ids.
    ones = [np.ones((1,) + shape[1:], dt) for _, shape, dt in inputs]
    sample = model.predict(ones if len(ones) > 1 else ones[0])
    samples = sample if isinstance(sample, list) else [sample]
    shapes = [tuple(shape[1:]) for _, shape, _ in inputs]
    graph = GraphBuilder(dtype, shapes if len(shapes) > 1 else shapes[0], opset)
    out_names = [output_name] + [f"{output_name}_{i}" for i in range(1, len(samples))]
    graph._used.update([name for name, _, _ in inputs] + out_names)
    names = [name for name, _, _ in inputs]
    y = convert(model, graph, names if isinstance(model, Model) and len(names) > 1 else names[0])
    ys = y if isinstance(y, list) else [y]
    for v, out in zip(ys, out_names):
        graph.nodes.append(helper.make_node("Identity", [v], [out], name=f"{out}_node"))
    proto = helper.make_model(
        helper.make_graph(
            graph.nodes,
            model.name or type(model).__name__,
            [
                helper.make_tensor_value_info(name, _ELEM_TYPES[dt], ["batch"] + list(shape[1:]))
                for name, shape, dt in inputs
            ],
            [
                helper.make_tensor_value_info(
                    out, _ELEM_TYPES[np.dtype(s.dtype)], ["batch"] + list(np.shape(s)[1:])
                )
                for out, s in zip(out_names, samples)
            ],
            initializer=graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="fastnn",
    )
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        onnx.save(proto, path)
    return proto
