"""Parameters, modules and the Sequential container.

A Module computes `forward(x)` and, given dL/d(output), `backward(grad)` -> dL/d(input),
accumulating its parameters' gradients into `Parameter.grad`. Built-in layers keep
their outputs and scratch arrays in per-layer workspaces reused from step to step;
their public `forward`/`backward` return copies, so nothing a user holds is
overwritten later, while containers and the Trainer chain the uncopied `_forward` /
`_backward` (the hot path)."""
from collections import OrderedDict

import numpy as np

from . import state_version
from .validation import as_array, float_dtype, positive_int


class Parameter:
    """A trainable array: `.data`, its gradient `.grad` (same shape and dtype), a
    `.name`, and `.requires_grad` (frozen parameters get no gradient and no update).

    Assigning to `.data` or `.grad` copies into the existing array, so views held by an
    optimizer's flat buffer stay valid."""

    __slots__ = ("_data", "_grad", "name", "requires_grad", "_owner")

    def __init__(self, data, name=None, requires_grad=True):
        self._data = np.array(data, copy=True, order="C")
        float_dtype(self._data.dtype)
        self._grad = np.zeros_like(self._data)
        self.name = name
        self.requires_grad = bool(requires_grad)
        self._owner = None  # the flat buffer this parameter lives in, if any

    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        self._assign(self._data, value, "data")

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        self._assign(self._grad, value, "grad")

    def _assign(self, dst, value, what):
        value = as_array(value, f"Parameter {self.name!r}.{what}")
        if value.shape != dst.shape:
            raise ValueError(
                f"Parameter {self.name!r}: cannot assign {what} of shape {value.shape} "
                f"to a parameter of shape {dst.shape}"
            )
        np.copyto(dst, value, casting="same_kind")
        if what == "data":
            state_version.bump()

    def _rebind(self, data, grad, owner=None):
        """Point the parameter at new storage (flat buffer views or a new dtype)."""
        self._data, self._grad, self._owner = data, grad, owner
        state_version.bump()

    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    size = property(lambda self: self._data.size)

    def __repr__(self):
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter({self.name!r}, shape={self.shape}, dtype={self.dtype}{frozen})"


class Module:
    """Base class of layers and models.

    Subclass it and implement `forward(x)` and `backward(grad_out)`; store Parameters
    and sub-Modules as attributes and they are found by `parameters()`, `state_dict()`,
    `apply()` and friends. Non-trainable state arrays (like running statistics) are
    listed by name in the class attribute `_buffers`."""

    _buffers = ()

    def __init__(self):
        self.training = True

    # -- computation ------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x):
        return self.forward(x)

    def _forward(self, x):
        """Hot-path forward used by containers; may return a reused workspace."""
        return self.forward(x)

    def _backward(self, grad_out, need_input_grad=True):
        """Hot-path backward; returns None when the input gradient is not needed."""
        return self.backward(grad_out)

    # -- structure --------------------------------------------------------------------
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self):
        return [m for _, m in self.named_children()]

    def modules(self):
        """This module and all its descendants, depth first."""
        out = [self]
        for child in self.children():
            out.extend(child.modules())
        return out

    def _own_parameters(self):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield name, value

    def named_parameters(self, prefix=""):
        """(name, Parameter) pairs, depth first; a Parameter shared by several modules
        (tied weights) is listed once, under its first name (as torch does)."""
        seen = set()
        for name, p in self._all_named_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _all_named_parameters(self, prefix):
        for name, p in self._own_parameters():
            yield prefix + name, p
        for cname, child in self.named_children():
            yield from child._all_named_parameters(prefix + cname + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        for name in self._buffers:
            value = getattr(self, name, None)
            if value is not None:
                yield prefix + name, value
        for cname, child in self.named_children():
            yield from child.named_buffers(prefix + cname + ".")

    def apply(self, fn):
        """Call fn on every submodule (children first) and on self; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- modes and gradients ----------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad.fill(0)

    def add_penalties(self):
        """For every layer with a `regularizer`: add the penalty's gradient to its
        weight's .grad; returns the sum of the penalties (0.0 without any)."""
        total = 0.0
        for m in self.modules():
            reg = getattr(m, "regularizer", None)
            if reg is not None:
                total += m._weight_penalty(reg, True)
        return total

    def penalty(self):
        """The sum of the layers' weight penalties, without touching gradients."""
        return sum(m._weight_penalty(m.regularizer, False) for m in self.modules()
                   if getattr(m, "regularizer", None) is not None)

    def _weight_penalty(self, reg, grad):
        """reg's penalty of this module's weight, adding its gradient to weight.grad
        when `grad` (hook: a weight-normalised layer routes it to weight_g/weight_v)."""
        return reg(self.weight) if grad else reg.value(self.weight.data)

    def freeze(self):
        """Stop training this module's parameters (no gradient work, no updates)."""
        for p in self.parameters():
            p.requires_grad = False
        return self

    def unfreeze(self):
        for p in self.parameters():
            p.requires_grad = True
        return self

    def astype(self, dtype):
        """Convert parameters and float buffers to dtype (float32 or float64) in place.

        Build the optimizer after converting: an optimizer built before holds the old
        arrays and refuses to step."""
        dt = float_dtype(dtype)
        for m in self.modules():
            for _, p in m._own_parameters():
                if p.dtype != dt:
                    p._rebind(p.data.astype(dt), p.grad.astype(dt))
            for name in m._buffers:
                value = getattr(m, name, None)
                if value is not None and value.dtype.kind == "f":
                    setattr(m, name, value.astype(dt))
            m._dtype_changed(dt)
        state_version.bump()
        return self

    def _dtype_changed(self, dtype):
        """Hook for modules that cache dtype-dependent state."""

    @property
    def dtype(self):
        params = self.parameters()
        return params[0].dtype if params else None

    # -- state ------------------------------------------------------------------------
    def _local_state(self):
        """This module's own parameters then buffers, in torch's state_dict order."""
        for name, p in self._own_parameters():
            yield name, p.data
        for name in self._buffers:
            value = getattr(self, name, None)
            if value is not None:
                yield name, value

    def _state_items(self, prefix=""):
        for name, arr in self._local_state():
            yield prefix + name, arr
        for cname, child in self.named_children():
            yield from child._state_items(prefix + cname + ".")

    def state_dict(self):
        """Copies of every parameter and buffer, under torch.nn-style keys
        ('0.weight', '1.running_mean', ...)."""
        return OrderedDict((k, np.array(v, copy=True)) for k, v in self._state_items())

    def load_state_dict(self, state, strict=True):
        """Copy arrays from `state` into this module (values are cast to the module's
        dtype). Keys and shapes follow state_dict(); with strict=True, missing and
        unexpected keys are an error. Accepts torch state dicts converted with
        `{k: v.numpy() for k, v in sd.items()}`."""
        own = dict(self._state_items())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"state_dict mismatch: missing keys {missing}, unexpected keys {unexpected}"
            )
        # Check every array before copying any, so a failed load changes nothing.
        pairs = []
        for key, dst in own.items():
            if key not in state:
                continue
            src = as_array(state[key], f"state_dict[{key!r}]")
            if src.shape != dst.shape:
                raise ValueError(
                    f"state_dict[{key!r}]: expected shape {dst.shape}, got {src.shape}"
                )
            pairs.append((dst, src))
        for dst, src in pairs:
            np.copyto(dst, src, casting="unsafe")
        state_version.bump()
        return self

    # -- architecture -----------------------------------------------------------------
    def get_config(self):
        """Constructor arguments that rebuild this module (JSON-serialisable), used by
        fastnn.save. Parameter-free layers return {}; user modules that want to be
        saved with their architecture override this (and accept the arguments)."""
        if type(self).__init__ is Module.__init__ or type(self).__init__ is Layer.__init__:
            return {}
        raise NotImplementedError(f"{type(self).__name__} does not define get_config")

    # -- display ----------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


class Layer(Module):
    """A built-in module whose `_forward`/`_backward` return workspace arrays.

    Workspaces are sized for the largest batch seen and sliced for smaller ones, so a
    training loop with a fixed batch size (and a last partial batch) allocates nothing
    after its first step."""

    def __init__(self):
        super().__init__()
        self._ws = {}

    def forward(self, x):
        return self._forward(x).copy()

    def backward(self, grad_out):
        return self._backward(grad_out).copy()

    def _workspace(self, key, shape, dtype):
        """An uninitialised array of `shape` reused across calls."""
        buf = self._ws.get(key)
        if (
            buf is None
            or buf.dtype != dtype
            or buf.shape[1:] != shape[1:]
            or buf.shape[0] < shape[0]
        ):
            buf = np.empty(shape, dtype)
            self._ws[key] = buf
        return buf if buf.shape[0] == shape[0] else buf[: shape[0]]

    def _colsum_scratch(self, width):
        """The float64 scratch of the column-sum kernels (bias gradients, batch norm)."""
        from . import _kernels

        return self._workspace("colsum", (_kernels.COLSUM_SCRATCH_ROWS * width,), np.float64)

    def _dtype_changed(self, dtype):
        self._ws.clear()


_cached_predictor = None


def _compiled(model):
    """model's compiled predictor (fastnn.inference), or None when it has none; the
    module is imported on first use (it imports the layers, which import this one)."""
    global _cached_predictor
    if _cached_predictor is None:
        from .inference import cached_predictor as _cached_predictor
    return _cached_predictor(model)


class Sequential(Layer):
    """Layers applied in order: `Sequential(Dense(784, 512), ReLU(), Dense(512, 10))`.

    Some runs of layers execute as one fused step (fastnn.fusion): an elementwise
    activation right after a Dense layer goes into the Dense layer's epilogue, and
    BatchNorm1d -> ReLU (-> Dropout) runs as two passes forward and two backward in
    training. The results are those of the layers applied one by one. The list of
    layers is fixed at construction."""

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is not a Module: {layer!r}")
        from . import fusion  # fusion knows the layer classes, which import this module

        self.layers = list(layers)
        self._steps = fusion.plan(self.layers)
        self._all_modules = None

    def named_children(self):
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def train(self, mode=True):
        # The layer list is fixed: the module tree is walked once, not on every call
        # (predict switches modes twice per call).
        if self._all_modules is None:
            self._all_modules = self.modules()
        for m in self._all_modules:
            m.training = bool(mode)
        return self

    def get_config(self):
        from .io import layer_spec

        return {"layers": [layer_spec(layer) for layer in self.layers]}

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def _forward(self, x):
        for step in self._steps:
            x = step._forward(x)
        return x

    def _backward(self, grad_out, need_input_grad=True):
        g = grad_out
        steps = self._steps
        for i in range(len(steps) - 1, -1, -1):
            g = steps[i]._backward(g, need_input_grad or i > 0)
        return g

    def backward(self, grad_out):
        return self._backward(grad_out, True).copy()

    def predict(self, X, batch_size=256):
        """Eval-mode forward over X in batches; a new (n_samples, n_outputs) array.
        Every module's train/eval mode is restored afterwards."""
        batch_size = positive_int(batch_size, "batch_size")
        X = as_array(X, "predict")
        if X.ndim < 2 or X.shape[0] == 0:
            raise ValueError(f"predict: expected a non-empty 2-D array, got shape {X.shape}")
        predictor = _compiled(self) if X.ndim == 2 else None
        if predictor is not None:  # the compiled evaluation forward (fastnn.inference)
            return predictor._predict(X, batch_size)
        if self._all_modules is None:
            self._all_modules = self.modules()
        modes = [m.training for m in self._all_modules]
        for m in self._all_modules:
            m.training = False
        try:
            out = None
            for start in range(0, X.shape[0], batch_size):
                yb = self._forward(X[start : start + batch_size])
                if out is None:
                    out = np.empty((X.shape[0],) + yb.shape[1:], yb.dtype)
                out[start : start + yb.shape[0]] = yb
        finally:
            for m, mode in zip(self._all_modules, modes):
                m.training = mode
        return out

    def summary(self, input_features=None, print_fn=print):
        """Print each layer with its output shape and parameter count; returns the text.

        The shapes come from an eval-mode forward of a 2-sample zero batch with
        `input_features` columns (default: the first layer's in_features)."""
        if input_features is None:
            input_features = getattr(self.layers[0], "in_features", None)
            if input_features is None:
                raise ValueError("summary: pass input_features (the first layer has none)")
        dtype = self.dtype or np.float32
        x = np.zeros((2, input_features), dtype)
        rows = []
        was_training = self.training
        self.eval()
        try:
            for i, layer in enumerate(self.layers):
                x = layer.forward(x)
                n = sum(p.size for p in layer.parameters())
                rows.append((f"{i}: {layer!r}".split("\n")[0], str((None,) + x.shape[1:]), n))
        finally:
            self.train(was_training)
        total = sum(p.size for p in self.parameters())
        trainable = sum(p.size for p in self.parameters() if p.requires_grad)
        w0 = max(len(r[0]) for r in rows + [("Layer", "", 0)])
        w1 = max(len(r[1]) for r in rows + [("", "Output shape", 0)])
        lines = [f"{'Layer':<{w0}}  {'Output shape':<{w1}}  {'Params':>10}"]
        lines.append("-" * len(lines[0]))
        lines += [f"{a:<{w0}}  {b:<{w1}}  {c:>10,}" for a, b, c in rows]
        lines.append("-" * len(lines[0]))
        lines.append(f"Total parameters: {total:,} (trainable {trainable:,}), dtype {dtype}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text
