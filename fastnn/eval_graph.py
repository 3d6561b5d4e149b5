"""The compiled evaluation forward of any model graph: Sequential and Model graphs
(nested containers and Residual blocks expanded) cut into steps, each one kernel call
where the layers allow it.

Walking the graph in topological order, each layer starts a step with the run of
layers after it in which every intermediate output has a single consumer:
- Dense layers with their activations, feature-wise normalisations and dropouts:
  one fastnn._kernels.DenseChain call (see fastnn.folding.fold);
- Conv1d/Conv2d, then a normalisation with running statistics (folded into its weight
  and bias per output channel) and an elementwise activation (in the convolution's
  epilogue): one convolution call that keeps nothing for a backward;
- Add, then an elementwise activation: one sum and one in-place activation pass;
- layers that are the identity in evaluation (dropouts, the spatial dropouts,
  Identity) are skipped;
- any other layer (pooling, Flatten, Embedding, AttentionPooling, RNN/LSTM/GRU,
  Concatenate, LayerNorm, ...) runs its own evaluation forward in a context of its
  own, reused across calls.
Every step writes into workspaces grown for the largest batch, so a call at a batch
size seen before allocates only the array it returns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels, state_version
from .folding import NotCompilable, dense_run, fold, fold_conv, identity_in_eval, running_norm
from .graph import Model
from .layers.conv import Conv1d, Conv2d
from .layers.merge import Add, Residual
from .module import Context, Layer, Module
from .sequential import Sequential
from .threads import governor
from .validation import as_array, as_float_input, positive_int

__all__ = ["GraphPredictor", "graph_nodes", "plan_steps"]


# ------------------------------------------------------------------------ the graph
def graph_nodes(model: Module):
    """The leaf layers of `model` as nodes (module, input slots, multi, output slots)
    in topological order, with the number of input slots and the output slots.
    Sequentials and Models inside are expanded; a Residual block becomes its layers
    and an Add of its input and their output."""
    nodes, counter = [], [0]

    def new_slot():
        counter[0] += 1
        return counter[0] - 1

    def expand(module, ins, multi, n_out):
        if module._hooked:
            raise NotCompilable(
                f"{type(module).__name__} has hooks, which a compiled predictor would not call"
            )
        kind = type(module)
        if kind in (Sequential, Residual):
            (s,) = ins
            for layer in module.layers:
                s = expand(layer, [s], False, 1)[0]
            if kind is Residual:
                out = new_slot()
                nodes.append((Add(), (ins[0], s), True, (out,)))
                s = out
            return [s]
        if kind is Model:
            slots = {id(t): s for t, s in zip(module.inputs, ins)}
            for node in module._nodes:
                outs = expand(
                    node.module,
                    [slots[id(t)] for t in node.inputs],
                    node.multi,
                    len(node.outputs),
                )
                slots.update((id(t), s) for t, s in zip(node.outputs, outs))
            return [slots[id(t)] for t in module.outputs]
        outs = tuple(new_slot() for _ in range(n_out))
        nodes.append((module, tuple(ins), multi, outs))
        return list(outs)

    n_inputs = len(model.inputs) if type(model) is Model else 1
    inputs = [new_slot() for _ in range(n_inputs)]
    outputs = expand(model, inputs, n_inputs > 1, 1)
    return nodes, n_inputs, outputs


# ------------------------------------------------------------------------ the steps
class _Step:
    """Reads `inputs` (slots; a list when `multi`), writes `outputs`; `forward(x)`
    returns the output (a list for several); `layers`: the modules it stands for."""

    eval_modules = ()  # modules whose evaluation mode the step relies on

    def __init__(self, nodes):
        first, last = nodes[0], nodes[-1]
        self.inputs, self.multi, self.outputs = first[1], first[2], last[3]
        self.layers = tuple(node[0] for node in nodes)


class _Identity(_Step):
    def forward(self, x):
        return x


class _LayerStep(_Step):
    """A layer's own evaluation forward, in a context kept across calls."""

    def __init__(self, nodes):
        super().__init__(nodes)
        self.layer, self.ctx = self.layers[0], Context()
        self.eval_modules = tuple(self.layer.modules())

    def forward(self, x):
        return self.layer._forward(self.ctx, x)


class _ChainStep(_Step):
    """Dense layers (with what folds into them) as one DenseChain call on (rows,
    in_features) input; any other input goes through the layers one by one, whose
    checks say what is wrong with it."""

    def __init__(self, nodes):
        super().__init__(nodes)
        weights, biases, acts, self.softmax = fold(self.layers)
        self.chain = _kernels.DenseChain(weights, biases, acts)
        self.ctx = Context()
        self.one_by_one = [_LayerStep([(m, (0,), False, (0,))]) for m in self.layers]
        self.eval_modules = tuple(m for s in self.one_by_one for m in s.eval_modules)

    def forward(self, x):
        chain = self.chain
        if type(x) is not np.ndarray or x.dtype != chain.dtype or not x.flags.c_contiguous:
            x = as_float_input(x, chain.dtype, type(self.layers[0]).__name__)
        if x.ndim != 2 or x.shape[1] != chain.in_features:
            for step in self.one_by_one:  # the layers' own forward: their checks raise
                x = step.forward(x)
            return x
        y = self.ctx.workspace("y", (x.shape[0], chain.out_features), chain.dtype)
        chain.forward(x, y)
        if self.softmax:
            _kernels.softmax_forward(y, y)
        return y


class _ConvStep(_Step):
    """A convolution with the normalisation after it folded into its weight and bias
    and an elementwise activation in its epilogue."""

    def __init__(self, nodes, norm, act):
        super().__init__(nodes)
        self.conv, self.ctx = self.layers[0], Context()
        self.weight, self.bias = fold_conv(self.conv, norm)
        self.act = act.epilogue() if act is not None else (_kernels.ACT_IDENTITY, 0.0, 0.0)

    def forward(self, x):
        return self.conv.convolve(self.ctx, x, self.weight, self.bias, self.act, keep=False)


class _AddActStep(_Step):
    """x_1 + ... + x_n, then an elementwise activation in place."""

    def __init__(self, nodes, act):
        super().__init__(nodes)
        self.add, self.ctx = self.layers[0], Context()
        self.act = act.epilogue()

    def forward(self, xs):
        y = self.add._forward(self.ctx, xs)
        _kernels.bias_act(*self.act, None, y, y)
        return y


def _conv_run(modules):
    """(n, norm, act) for a convolution followed by `modules[1:]`: how many it absorbs
    (identities, one normalisation with running statistics, one elementwise
    activation after it, in that order)."""
    ndim = modules[0]._dims + 2
    n, norm, act = 1, None, None
    for m in modules[1:]:
        if identity_in_eval(m):
            pass
        elif norm is None and act is None and running_norm(m, ndim):
            if m.num_features != modules[0].out_channels:
                break  # the layer's own check names the mismatch
            norm = m
        elif act is None and isinstance(m, Layer) and m.epilogue() is not None:
            act = m
        else:
            break
        n += 1
    return n, norm, act


def _activation_run(modules):
    """(n, act) for an Add followed by `modules[1:]`: identities and one elementwise
    activation."""
    n, act = 1, None
    for m in modules[1:]:
        if identity_in_eval(m):
            pass
        elif act is None and isinstance(m, Layer) and m.epilogue() is not None:
            act = m
        else:
            break
        n += 1
    return n, act


def plan_steps(nodes, outputs):
    """The nodes cut into steps (see the module docstring), in an order that runs."""
    readers = {}
    for k, (_, ins, _, _) in enumerate(nodes):
        for s in ins:
            readers.setdefault(s, []).append(k)
    ends = set(outputs)
    index = {id(node): k for k, node in enumerate(nodes)}
    done, steps = set(), []
    for k in range(len(nodes)):
        if k in done:
            continue
        run = [nodes[k]]  # followed while each output has one consumer taking one input
        while len(run[-1][3]) == 1:
            s = run[-1][3][0]
            nxt = readers.get(s, [])
            if s in ends or len(nxt) != 1 or nodes[nxt[0]][2] or len(nodes[nxt[0]][1]) != 1:
                break
            run.append(nodes[nxt[0]])
        modules = [node[0] for node in run]
        head, multi = modules[0], run[0][2]
        n_dense = 0 if multi else dense_run(modules)
        if n_dense:
            step, n = _ChainStep(run[:n_dense]), n_dense
        elif type(head) in (Conv1d, Conv2d):
            n, norm, act = _conv_run(modules)
            step = _ConvStep(run[:n], norm, act)
        elif type(head) is Add:
            n, act = _activation_run(modules)
            step = _AddActStep(run[:n], act) if act is not None else _LayerStep(run[:n])
        elif not multi and identity_in_eval(head):
            n, step = 1, _Identity(run[:1])
        else:
            n, step = 1, _LayerStep(run[:1])
        done.update(index[id(node)] for node in run[:n])
        steps.append(step)
    return steps


# ------------------------------------------------------------------------ the predictor
class GraphPredictor:
    """The compiled evaluation forward of a model graph (see the module docstring).

    `predictor(x)` returns a new array (a list of arrays for a model with several
    outputs); x is an array or, for several inputs, a list. `predict(X, batch_size)`
    goes through X in batches. Like fastnn.inference.Predictor it refolds its weights
    whenever fastnn changed the model's state; after in-place edits of parameter
    arrays call `refresh()`."""

    def __init__(self, model: Module) -> None:
        self._nodes, self._n_inputs, self._outputs = graph_nodes(model)
        self._version: int | None = None
        self.refresh()

    def refresh(self) -> GraphPredictor:
        """Refold the weights (and re-plan the steps) from the model's current state."""
        version = state_version.value
        self.steps = plan_steps(self._nodes, self._outputs)
        seen, mods = set(), []
        for step in self.steps:
            for m in step.eval_modules:
                if id(m) not in seen:
                    seen.add(id(m))
                    mods.append(m)
        self._eval_modules = mods
        self._version = version
        return self

    def _run(self, xs):
        """The outputs (workspace views, a list) for inputs xs (a list)."""
        if self._version != state_version.value:
            self.refresh()
        training = [m for m in self._eval_modules if m.training]  # usually none
        for m in training:
            m.training = False
        try:
            vals = {}
            vals.update(zip(range(self._n_inputs), xs))
            for step in self.steps:
                x = [vals[s] for s in step.inputs] if step.multi else vals[step.inputs[0]]
                y = step.forward(x)
                if len(step.outputs) == 1:
                    vals[step.outputs[0]] = y
                else:
                    vals.update(zip(step.outputs, y))
            return [vals[s] for s in self._outputs]
        finally:
            for m in training:
                m.training = True

    def _inputs(self, X):
        xs = list(X) if isinstance(X, (list, tuple)) else [X]
        if len(xs) != self._n_inputs:
            raise ValueError(
                f"predict: the model takes {self._n_inputs} inputs, got {len(xs)} arrays"
            )
        xs = [as_array(x, "predict") for x in xs]
        n = xs[0].shape[0] if xs[0].ndim else 0
        if n == 0 or any(x.ndim == 0 or x.shape[0] != n for x in xs):
            raise ValueError(
                f"predict: expected non-empty arrays with one row per sample, got shapes "
                f"{[x.shape for x in xs]}"
            )
        return xs

    def __call__(self, X: Any) -> np.ndarray | list[np.ndarray]:
        governor.poll()
        ys = [np.array(y) for y in self._run(self._inputs(X))]
        return ys if len(ys) > 1 else ys[0]

    def predict(self, X: Any, batch_size: int = 256) -> np.ndarray | list[np.ndarray]:
        """The outputs for every sample of X, batch_size samples at a time."""
        return self._predict(self._inputs(X), positive_int(batch_size, "batch_size"))

    def _predict(self, X, batch_size):
        """predict() for X of non-empty arrays, one per input, with the same number of
        rows; None for any other X (Module.predict then takes its own path, whose
        checks say what is wrong)."""
        xs = X if isinstance(X, (list, tuple)) else [X]
        if not (
            len(xs) == self._n_inputs
            and all(type(x) is np.ndarray and x.ndim > 0 for x in xs)
            and xs[0].shape[0] > 0
            and all(x.shape[0] == xs[0].shape[0] for x in xs)
        ):
            return None
        if type(batch_size) is not int or batch_size <= 0:
            batch_size = positive_int(batch_size, "batch_size")
        n, outs = xs[0].shape[0], None
        for start in range(0, n, batch_size):
            ys = self._run([x[start : start + batch_size] for x in xs])
            if outs is None:
                outs = [np.empty((n,) + y.shape[1:], y.dtype) for y in ys]
            for out, y in zip(outs, ys):
                out[start : start + y.shape[0]] = y
        return outs if len(outs) > 1 else outs[0]

    def __repr__(self):
        return "GraphPredictor(" + ", ".join(type(s).__name__[1:] for s in self.steps) + ")"
