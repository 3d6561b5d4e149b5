"""The functional API (Keras' functional model with torch's layers):

    x = fastnn.Input((784,))
    h = fastnn.Dense(784, 256)(x)
    h = fastnn.ReLU()(h)
    y = fastnn.layers.Add()([h, fastnn.Dense(256, 256)(h)])
    model = fastnn.Model(x, fastnn.Dense(256, 10)(y))

Calling a module on symbolic tensors records a node and returns symbolic tensors of
the output shape; `Model(inputs, outputs)` collects the nodes between them into an
executable plan (fastnn.plan). A module called at several nodes shares its
parameters between them; its gradients sum."""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .module import FixedContainer, Layer, _hook_epoch
from .symbolic import SymbolicTensor
from .plan import Plan
from .validation import float_dtype, positive_int


def Input(
    shape: int | Sequence[int],
    dtype=np.float32,  # noqa: N802 - Keras' name
    name: str | None = None,
) -> SymbolicTensor:
    """A symbolic model input; `shape` excludes the batch axis (an int or a tuple)."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(positive_int(d, "Input shape") for d in shape)
    if name is not None and (not isinstance(name, str) or not name or "." in name):
        raise ValueError(f"Input: name must be a non-empty string without '.', got {name!r}")
    return SymbolicTensor((None,) + shape, float_dtype(dtype), None, 0, name)


def _auto_name(module):
    return re.sub(r"[^0-9a-z_]", "", type(module).__name__.lower()) or "layer"


class Model(FixedContainer):
    """A model from symbolic inputs to outputs: `Model(inputs, outputs, name=None)`,
    each a SymbolicTensor or a list of them.

    Its layers are the modules called between them, in topological order; layers
    without a name get one (`dense`, `dense_1`, ... by class) and names must be unique
    in the model. `state_dict()` keys are `<layer name>.<param>`. A Model is a Layer:
    it can be called on arrays, on symbolic tensors (nested models), trained by
    fastnn.Trainer (several inputs: `fit([X1, X2], y)`) and saved by fastnn.save.
    forward takes an array or, with several inputs, a list; it returns an array or,
    with several outputs, a list."""

    def __init__(
        self,
        inputs: SymbolicTensor | Sequence[SymbolicTensor],
        outputs: SymbolicTensor | Sequence[SymbolicTensor],
        name: str | None = None,
    ):
        super().__init__(name=name)
        self._multi_in = isinstance(inputs, (list, tuple))
        self._multi_out = isinstance(outputs, (list, tuple))
        self.inputs = list(inputs) if self._multi_in else [inputs]
        self.outputs = list(outputs) if self._multi_out else [outputs]
        for t in self.inputs + self.outputs:
            if not isinstance(t, SymbolicTensor):
                raise TypeError(
                    f"Model: inputs and outputs must be symbolic tensors "
                    f"(fastnn.Input and layer calls on it), got {t!r}"
                )
        for t in self.inputs:
            if t.node is not None:
                raise ValueError(f"Model: inputs must be fastnn.Input tensors, got the {t!r}")
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError("Model: the same Input is given twice")
        self._nodes = self._topological_nodes()
        self._layers = []
        for node in self._nodes:
            if all(node.module is not m for m in self._layers):
                self._layers.append(node.module)
        self._name_layers()
        self._name_inputs()

    # -- construction ---------------------------------------------------------------------
    def _topological_nodes(self):
        order, state = [], {}
        allowed = {id(t) for t in self.inputs}

        def visit(t, path):
            if t.node is None:
                if id(t) not in allowed:
                    raise ValueError(
                        f"Model: an output depends on the input {t!r}, which "
                        "is not among the model's inputs"
                    )
                return
            node = t.node
            mark = state.get(id(node))
            if mark == "done":
                return
            if mark == "active":
                raise ValueError("Model: the graph has a cycle")
            state[id(node)] = "active"
            for u in node.inputs:
                visit(u, path)
            state[id(node)] = "done"
            order.append(node)

        for t in self.outputs:
            visit(t, ())
        return order

    def _name_layers(self):
        taken = {}
        for layer in self._layers:
            if layer.name is not None:
                if layer.name in taken:
                    raise ValueError(
                        f"Model: two layers are named {layer.name!r}; names "
                        "must be unique in a model"
                    )
                taken[layer.name] = layer
        counts = {}
        for layer in self._layers:
            if layer.name is None:
                base = _auto_name(layer)
                k = counts.get(base, 0)
                name = base if k == 0 else f"{base}_{k}"
                while name in taken:
                    k += 1
                    name = f"{base}_{k}"
                counts[base] = k + 1
                layer.name = name
                taken[name] = layer

    def _name_inputs(self):
        names = set()
        for i, t in enumerate(self.inputs):
            if t.name is None:
                t.name = "input" if len(self.inputs) == 1 else f"input_{i}"
            if t.name in names:
                raise ValueError(f"Model: two inputs are named {t.name!r}")
            names.add(t.name)

    # -- structure ------------------------------------------------------------------------
    @property
    def layers(self):
        """The model's layers (each once), in topological order."""
        return list(self._layers)

    def get_layer(self, name: str) -> Layer:
        """The layer called `name`; KeyError listing the names otherwise."""
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise KeyError(
            f"Model has no layer {name!r}; its layers are {[m.name for m in self._layers]}"
        )

    def named_children(self):
        """(layer name, layer) pairs, in the order the layers run."""
        for layer in self._layers:
            yield layer.name, layer

    # -- execution ------------------------------------------------------------------------
    def _plan(self):
        plan, epoch = self._plan_cache
        if plan is None or epoch != _hook_epoch[0]:
            slots = {id(t): i for i, t in enumerate(self.inputs)}
            nodes = []
            for node in self._nodes:
                ins = tuple(slots[id(t)] for t in node.inputs)
                outs = []
                for t in node.outputs:
                    slots[id(t)] = len(slots)
                    outs.append(slots[id(t)])
                nodes.append((node.module, ins, node.multi, tuple(outs)))
            outputs = [slots[id(t)] for t in self.outputs]
            plan = Plan(nodes, len(self.inputs), outputs)
            self._plan_cache = (plan, _hook_epoch[0])
        return plan

    def _forward(self, ctx, x):
        plan = self._plan()
        if ctx.__dict__.get("plan") is not plan:
            ctx.reset()
            ctx.plan = plan
        xs = self._check_inputs(x)
        ys = plan.forward(ctx, xs)
        ctx.out_dtypes = [y.dtype for y in ys]  # the model's dtype now (astype changes it)
        return ys if self._multi_out else ys[0]

    def _backward(self, ctx, grad_out, need_input_grad=True):
        gs = list(grad_out) if self._multi_out else [grad_out]
        if len(gs) != len(self.outputs):
            raise ValueError(
                f"{self._where()}.backward: expected {len(self.outputs)} "
                f"output gradients, got {len(gs)}"
            )
        for g, t, y in zip(gs, self.outputs, range(len(gs))):
            if g is not None and np.shape(g)[1:] != t.shape[1:]:
                raise ValueError(
                    f"{self._where()}.backward: gradient {y} has shape "
                    f"{np.shape(g)}, expected (batch,) + {t.shape[1:]}"
                )
        gs = [
            None if g is None else np.ascontiguousarray(g, dtype=dt)
            for g, dt in zip(gs, ctx.out_dtypes)
        ]
        gx = ctx.plan.backward(ctx, gs, need_input_grad)
        if not need_input_grad:
            return None
        return gx if self._multi_in else gx[0]

    def _check_inputs(self, x):
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(xs) != len(self.inputs):
            raise ValueError(f"{self._where()}: expected {len(self.inputs)} inputs, got {len(xs)}")
        out = []
        for v, t in zip(xs, self.inputs):
            v = np.asarray(v)
            if v.shape[1:] != t.shape[1:]:
                raise ValueError(
                    f"{self._where()}: input {t.name!r} expects shape "
                    f"(batch,) + {t.shape[1:]}, got {v.shape}"
                )
            out.append(v)
        return out

    def _where(self):
        return f"Model {self.name!r}" if self.name else "Model"

    # -- architecture -----------------------------------------------------------------
    def get_config(self):
        """Inputs, layers (as Modules) and the calls between them."""
        ids = {id(t): ("input", i) for i, t in enumerate(self.inputs)}
        index = {id(m): i for i, m in enumerate(self._layers)}
        nodes = []
        for k, node in enumerate(self._nodes):
            nodes.append(
                {
                    "layer": index[id(node.module)],
                    "inputs": [list(ids[id(t)]) for t in node.inputs],
                    "multi": node.multi,
                }
            )
            for j, t in enumerate(node.outputs):
                ids[id(t)] = ("node", k, j)
        return {
            "inputs": [
                {"shape": list(t.shape[1:]), "dtype": str(t.dtype), "name": t.name}
                for t in self.inputs
            ],
            "layers": list(self._layers),
            "nodes": nodes,
            "outputs": [list(ids[id(t)]) for t in self.outputs],
            "multi_inputs": self._multi_in,
            "multi_outputs": self._multi_out,
        }

    @classmethod
    def from_config(cls, config, name=None):
        """Rebuild a Model from get_config() (with its layers already rebuilt)."""
        inputs = [
            Input(tuple(spec["shape"]), spec["dtype"], spec["name"]) for spec in config["inputs"]
        ]
        layers = config["layers"]
        made = []
        for node in config["nodes"]:
            args = [
                inputs[r[1]] if r[0] == "input" else _output(made[r[1]], r[2])
                for r in node["inputs"]
            ]
            made.append(layers[node["layer"]](args if node["multi"] else args[0]))
        outs = [
            inputs[r[1]] if r[0] == "input" else _output(made[r[1]], r[2])
            for r in config["outputs"]
        ]
        return cls(
            inputs if config["multi_inputs"] else inputs[0],
            outs if config["multi_outputs"] else outs[0],
            name=name,
        )

    # -- display ----------------------------------------------------------------------
    def summary(self, print_fn=print) -> str:
        """Print each layer call with its output shape, parameter count and inputs;
        returns the text."""
        names = {id(t): t.name for t in self.inputs}
        rows = [(f"{t.name} (Input)", str(t.shape), 0, "") for t in self.inputs]
        counted = set()
        for node in self._nodes:
            m = node.module
            n = 0
            if id(m) not in counted:
                counted.add(id(m))
                n = sum(p.size for p in m.parameters())
            for k, t in enumerate(node.outputs):
                names[id(t)] = m.name if len(node.outputs) == 1 else f"{m.name}[{k}]"
            shape = ", ".join(str(t.shape) for t in node.outputs)
            rows.append(
                (
                    f"{m.name} ({type(m).__name__})",
                    shape,
                    n,
                    ", ".join(names[id(t)] for t in node.inputs),
                )
            )
        return _table(rows, ("Layer (type)", "Output shape", "Params", "Inputs"), self, print_fn)

    def extra_repr(self):
        """The model's name, if any."""
        return f"name={self.name!r}" if self.name else ""


def _output(made, index):
    return made[index] if isinstance(made, list) else made


def _table(rows, header, model, print_fn):
    """Aligned summary table with totals (shared by Model and Sequential)."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    fmt_row = "  ".join(
        ["{:<%d}" % widths[0], "{:<%d}" % widths[1], "{:>%d}" % max(widths[2], 10)]
        + (["{:<%d}" % widths[3]] if len(header) > 3 else [])
    )
    lines = [fmt_row.format(*header).rstrip()]
    lines.append("-" * len(lines[0]))
    for r in rows:
        cells = list(r)
        cells[2] = f"{r[2]:,}"
        lines.append(fmt_row.format(*cells).rstrip())
    lines.append("-" * len(lines[0]))
    params = model.parameters()
    total = sum(p.size for p in params)
    trainable = sum(p.size for p in params if p.requires_grad)
    lines.append(
        f"Total parameters: {total:,} (trainable {trainable:,}), dtype "
        f"{model.dtype or np.dtype(np.float32)}"
    )
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text
