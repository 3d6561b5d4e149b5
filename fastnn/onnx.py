"""Export a trained model to ONNX: `fastnn.onnx.export(model, path)`.

The graph is the model in evaluation mode (BatchNorm with its running statistics,
Dropout as the identity or its weight-scaling factor), with a dynamic batch axis;
`onnx.checker` accepts it and onnxruntime reproduces `model.predict` to float
round-off. Requires the `onnx` package: `pip install "fastnn[onnx]"` (which also
brings onnxruntime, to run the exported file).

    >>> import fastnn.onnx
    >>> fastnn.onnx.export(model, "model.onnx")          # input (batch, n_features)
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
from .graph import Model
from .module import Module
from .sequential import Sequential

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
    names. `dtype` is the model's float type; `rank` the rank of the tensor entering
    the layer being converted (batch axis included: 2 for (N, features)); `opset` the
    target."""

    def __init__(self, dtype, rank, opset):
        self.dtype, self.rank, self.opset = np.dtype(dtype), rank, opset
        self.nodes, self.initializers = [], []
        self._used: set[str] = set()
        self.prefix = ""

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


@register(Sequential)
def _sequential(model, graph, x):
    prefix = graph.prefix
    for i, layer in enumerate(model):
        graph.prefix = f"{prefix}{i}."
        x = convert(layer, graph, x)
    graph.prefix = prefix
    return x


@register(Model)
def _model(model, graph, x):
    """Each node of the graph in topological order, tensors mapped to ONNX names."""
    names = {id(t): v for t, v in zip(model.inputs, x if isinstance(x, list) else [x])}
    prefix = graph.prefix
    for node in model._nodes:
        ins = [names[id(t)] for t in node.inputs]
        graph.rank = len(node.inputs[0].shape)
        graph.prefix = f"{prefix}{node.module.name}."
        out = convert(node.module, graph, ins if node.multi else ins[0])
        for t, v in zip(node.outputs, out if isinstance(out, list) else [out]):
            names[id(t)] = v
    graph.prefix = prefix
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


register(_layers.BatchNorm1d, _layers.BatchNorm2d)(_running_norm)


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


# ----------------------------------------------------------------------------- export


def _infer_features(model):
    for m in model.modules():
        for attr in ("in_features", "num_features", "normalized_shape"):
            if hasattr(m, attr):
                v = getattr(m, attr)
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
    (None, n_features) (the default, n_features read from the first layer), named
    input_name. opset: the ONNX opset (17 or later). The outputs are named
    output_name (then output_name_1, ... for several); tensor types follow the
    model's dtype (float32 -> FLOAT, float64 -> DOUBLE). Raises ExportError for a
    layer without an ONNX form.
    """
    if opset < 17:
        raise ValueError(f"fastnn.onnx.export: opset must be >= 17, got {opset}")
    inputs = _inputs(model, input_shape, input_name)
    dtype = np.dtype(model.dtype or inputs[0][2])
    # One evaluation forward checks the shapes and brings derived state (weight-normalised
    # weights) up to date.
    zeros = [np.zeros((1,) + shape[1:], dt) for _, shape, dt in inputs]
    sample = model.predict(zeros if len(zeros) > 1 else zeros[0])
    samples = sample if isinstance(sample, list) else [sample]
    graph = GraphBuilder(dtype, len(inputs[0][1]), opset)
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
