"""Parameters, modules, layers and the per-call contexts they compute in.

A Module computes `forward(x)` and, given dL/d(output), `backward(grad)` -> dL/d(input),
accumulating its parameters' gradients into `Parameter.grad`.

Built-in layers (subclasses of `Layer`) keep no per-call state on themselves: each call
computes in a `Context` - what its backward needs and the workspaces its outputs live
in. Containers (Sequential, Model) and the Trainer own one Context per call site and
call the uncopied `_forward(ctx, x)` / `_backward(ctx, grad, need_input_grad)` (the hot
path), so a layer can be called any number of times in one step (shared weights, a
block applied twice): every call's backward uses that call's context, and parameter
gradients of the calls add up. The public `forward`/`backward` copy their inputs and
outputs, so nothing a user holds is overwritten later."""

from __future__ import annotations

from collections import OrderedDict, deque
import threading
from typing import Any, Callable

import math

import numpy as np

from . import _kernels, state_version
from .threads import governor
from .batching import as_inputs
from .context import Context
from .parameter import Parameter
from .store import ParameterStore
from .symbolic import call_symbolic, is_symbolic
from .validation import as_array, float_dtype, positive_int

__all__ = ["Context", "Layer", "Module", "Parameter", "RemovableHandle"]

# Bumped whenever a hook is added or removed anywhere: containers re-plan (a hooked
# layer is never fused into a neighbour, so its hooks see its own input and output).
_hook_epoch = [0]


# The compiled evaluation path of predict: fastnn.inference registers its
# cached_predictor(model) -> Predictor or None here when it is imported (fastnn's
# __init__ imports it); it builds on the layers, which build on this module.
compiled_predictor = [None]


class RemovableHandle:
    """Returned by the register_*_hook methods; `remove()` unregisters the hook."""

    _next_id = 0

    def __init__(self, registry):
        self._registry = registry
        RemovableHandle._next_id += 1
        self.id = RemovableHandle._next_id

    def remove(self):
        """Unregister the hook (a second call does nothing)."""
        if self._registry.pop(self.id, None) is not None:
            _hook_epoch[0] += 1


def _check_name(name, where):
    if name is None:
        return None
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"{where}: name must be a non-empty string without '.', got {name!r}")
    return name


class Module:
    """Base class of layers and models.

    Subclass it and implement `forward(x)` and `backward(grad_out)`; store Parameters
    and sub-Modules as attributes and they are found by `parameters()`, `state_dict()`,
    `apply()` and friends. Non-trainable state arrays (like running statistics) are
    listed by name in the class attribute `_buffers`. Any Module trains with
    fastnn.Trainer, predicts with `predict` and can carry a `name`."""

    _buffers = ()
    training = True
    name = None
    _forward_hooks = _backward_hooks = {}  # replaced per instance by the first hook

    def __init__(self, name=None):
        self.training = True
        self.name = _check_name(name, type(self).__name__)

    # Caches and per-call workspaces: rebuilt on demand, never copied or pickled.
    _transient = ("_predict_ctx", "_compiled")

    def __getstate__(self):
        state = self.__dict__.copy()
        for cls in type(self).__mro__:
            for key in cls.__dict__.get("_transient", ()):
                state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset_transient()

    def _reset_transient(self):
        """Create the transient state (caches, workspaces) afresh."""

    # -- computation ------------------------------------------------------------------
    def forward(self, x):
        """The output for input x (an array, or a list for several inputs)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_out):
        """dL/d(input) given dL/d(output); adds the parameters' gradients to `.grad`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x, *args, **kwargs):
        if is_symbolic(x):
            return call_symbolic(self, x, *args, **kwargs)
        return self.forward(x, *args, **kwargs)

    def _forward(self, ctx, x):
        """Forward of one call site (containers call this). A module without per-call
        contexts (a user subclass) runs its own forward."""
        return self.forward(x)

    def _backward(self, ctx, grad_out, need_input_grad=True):
        """Backward of the call that `ctx` recorded; None when the input gradient is not
        needed (built-in layers then skip its computation)."""
        return self.backward(grad_out)

    # -- hooks ------------------------------------------------------------------------
    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call hook(module, inputs, output) after every forward of this module; returns
        a handle whose remove() unregisters it. A hooked layer is never fused with its
        neighbours, so it sees its own input and output."""
        return self._add_hook("_forward_hooks", hook)

    def register_full_backward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call hook(module, grad_input, grad_output) after every backward of this
        module (grad_input is None when no input gradient was computed)."""
        return self._add_hook("_backward_hooks", hook)

    def _add_hook(self, attr, hook):
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {hook!r}")
        if attr not in self.__dict__:
            setattr(self, attr, {})
        registry = getattr(self, attr)
        handle = RemovableHandle(registry)
        registry[handle.id] = hook
        _hook_epoch[0] += 1
        return handle

    @property
    def _hooked(self):
        return bool(self._forward_hooks or self._backward_hooks)

    def _run_forward_hooks(self, inputs, output):
        for hook in list(self._forward_hooks.values()):
            hook(self, inputs, output)

    def _run_backward_hooks(self, grad_input, grad_output):
        for hook in list(self._backward_hooks.values()):
            hook(self, grad_input, grad_output)

    # -- fusion protocol (fastnn.plan) ---------------------------------------------------
    def epilogue(self):
        """(activation code, alpha, beta) if this layer is an elementwise activation a
        preceding GEMM can apply in its epilogue, else None."""
        return None

    def fuse(self, following):
        """A fused step running this layer and some of the layers in `following` (the
        layers after it, each the single consumer of its predecessor's output), as
        (step, number of following layers absorbed); None when there is nothing to
        fuse. A step has `layers`, `_forward(ctx, x)` and `_backward(ctx, g, need)`."""
        return None

    # -- structure --------------------------------------------------------------------
    def named_children(self):
        """(name, module) pairs of the direct submodules."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self):
        """The direct submodules."""
        return [m for _, m in self.named_children()]

    def modules(self):
        """This module and all its descendants, depth first (each module once)."""
        out, seen = [], set()
        self._collect_modules(out, seen)
        return out

    def _collect_modules(self, out, seen):
        if id(self) in seen:
            return
        seen.add(id(self))
        out.append(self)
        for child in self.children():
            child._collect_modules(out, seen)

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

    def parameters(self) -> list[Parameter]:
        """The trainable Parameters of this module and its submodules (each once)."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        """(name, array) pairs of the non-trainable state (e.g. running statistics)."""
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

    def parameter_store(self) -> ParameterStore:
        """The contiguous data/grad store (fastnn.store.ParameterStore) holding exactly
        this module's parameters; built on first use (parameters become views into it),
        rebuilt if the parameters changed. Optimizers built over the parameters follow
        them into the new store."""
        return ParameterStore.of(self.parameters())

    # -- modes and gradients ----------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (mode=True) or evaluation mode on every submodule; returns self."""
        for m in self._modules_cached():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode (dropout off, running statistics); returns self."""
        return self.train(False)

    def zero_grad(self):
        """Set every parameter's gradient to zero."""
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
        return sum(
            m._weight_penalty(m.regularizer, False)
            for m in self.modules()
            if getattr(m, "regularizer", None) is not None
        )

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
        """Train this module's parameters again (undo freeze())."""
        for p in self.parameters():
            p.requires_grad = True
        return self

    def astype(self, dtype: Any) -> Module:
        """Convert parameters and float buffers to dtype (float32 or float64) in place.

        Build the optimizer after converting: an optimizer built before holds state of
        the old dtype and refuses to step."""
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
        """The dtype of the parameters (None for a module without any)."""
        params = self.parameters()
        return params[0].dtype if params else None

    # -- inference --------------------------------------------------------------------
    def predict(self, X: Any, batch_size: int = 256) -> np.ndarray | list[np.ndarray]:
        """Eval-mode forward over X in batches of batch_size; a new array with one row
        per sample (a list of arrays for a model with several outputs). X is an array
        of shape (n_samples, ...) or, for a model with several inputs, a list of such
        arrays. Every module's train/eval mode is restored afterwards. A model that
        fastnn.inference compiles runs its compiled evaluation forward instead (batch
        norm folded into the Dense weights; the same outputs to round-off)."""
        compiled = compiled_predictor[0]
        if compiled is not None:
            predictor = compiled(self)
            if predictor is not None:  # fastnn.inference; None: an X it does not take
                y = predictor._predict(X, batch_size)
                if y is not None:
                    return y
        batch_size = positive_int(batch_size, "batch_size")
        inputs = as_inputs(X, "predict")
        n = inputs[0].shape[0]
        single = not isinstance(X, (list, tuple))
        modules = self._modules_cached()
        modes = [m.training for m in modules]
        for m in modules:
            m.training = False
        ctx = self.__dict__.get("_predict_ctx")
        if ctx is None:
            ctx = self._predict_ctx = Context()
        try:
            outs = None
            for start in range(0, n, batch_size):
                governor.poll()
                xb = [x[start : start + batch_size] for x in inputs]
                yb = self._forward(ctx, xb[0] if single else xb)
                ys = yb if isinstance(yb, (list, tuple)) else [yb]
                if outs is None:
                    outs = [np.empty((n,) + y.shape[1:], y.dtype) for y in ys]
                for out, y in zip(outs, ys):
                    out[start : start + y.shape[0]] = y
        finally:
            for m, mode in zip(modules, modes):
                m.training = mode
        return outs if isinstance(yb, (list, tuple)) else outs[0]

    def _modules_cached(self):
        """modules(), cached by containers whose structure is fixed (FixedContainer)."""
        return self.modules()

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

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Copies of every parameter and buffer, under torch.nn-style keys
        ('0.weight', '1.running_mean', ... for a Sequential; '<layer name>.weight' for a
        Model). A parameter shared by several layers appears under each name."""
        return OrderedDict((k, np.array(v, copy=True)) for k, v in self._state_items())

    def load_state_dict(self, state: dict, strict: bool = True) -> Module:
        """Copy arrays from `state` into this module (values are cast to the module's
        dtype). Keys and shapes follow state_dict(); with strict=True, missing and
        unexpected keys are an error. Accepts torch state dicts converted with
        `{k: v.numpy() for k, v in sd.items()}`. Nothing changes if any array fails."""
        own = dict(self._state_items())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"state_dict mismatch: missing keys {missing}, unexpected keys {unexpected}"
            )
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
        """Constructor arguments that rebuild this module (JSON-serialisable, or
        Modules, which fastnn.save describes recursively), without `name` (saved
        separately). Parameter-free layers return {}; user modules that want to be
        saved with their architecture override this (and accept the arguments)."""
        if type(self).__init__ in (Module.__init__, Layer.__init__):
            return {}
        raise NotImplementedError(f"{type(self).__name__} does not define get_config")

    # -- display ----------------------------------------------------------------------
    def extra_repr(self):
        """The arguments shown in repr(module)."""
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
    """A built-in module computing in per-call contexts.

    Subclasses implement `_forward(ctx, x)` and `_backward(ctx, grad_out,
    need_input_grad)`, keep what backward needs on `ctx` and their outputs in
    `ctx.workspace(...)`, and ACCUMULATE parameter gradients. The public
    `forward`/`backward` work as a stack: each forward records its call (on a copy of
    the input) and each backward consumes the most recent recorded call, so
    `a = d(x1); b = d(x2); d.backward(gb); d.backward(ga)` is correct. A layer
    remembers its last `max_pending_calls` un-backpropagated calls; older ones are
    forgotten and their backward raises (containers and the Trainer keep their own
    contexts and have no such limit)."""

    max_pending_calls = 32

    _transient = ("_scratch_ws", "_pending", "_free")

    def __init__(self, name=None):
        super().__init__(name=name)
        self._reset_transient()

    def _reset_transient(self):
        super()._reset_transient()
        self._scratch_ws = {}
        self._pending = deque()
        self._free = []

    # -- public, copying API ----------------------------------------------------------
    def forward(self, x):
        """The output for x (a new array); records the call for the next backward."""
        ctx = self._free.pop() if self._free else Context()
        x = _own_copy(ctx, x)
        y = self._forward(ctx, x)
        if self._forward_hooks:
            self._run_forward_hooks(x, y)
        if len(self._pending) >= self.max_pending_calls:
            self._pending.popleft()  # forgotten: its workspaces go with it
        self._pending.append(ctx)
        return _copy(y)

    def backward(self, grad_out):
        """dL/dx of the most recent recorded call (a new array); consumes that call."""
        if not self._pending:
            raise RuntimeError(
                f"{type(self).__name__}.backward: no forward call is waiting for its "
                f"backward (each backward consumes one forward; at most "
                f"{self.max_pending_calls} are remembered)"
            )
        ctx = self._pending.pop()
        try:
            gx = self._backward(ctx, grad_out, True)
        except BaseException:
            self._pending.append(ctx)  # a refused gradient leaves the call waiting
            raise
        self._free.append(ctx)
        if self._backward_hooks:
            self._run_backward_hooks(gx, grad_out)
        return _copy(gx)

    # -- helpers for subclasses -------------------------------------------------------
    def _scratch(self, key, shape, dtype):
        """Per-layer scratch valid during one kernel call only (never state). Grown for
        the largest size asked for: calls alternating between sizes (batches of
        different sizes) reuse one buffer."""
        buf = self._scratch_ws.get(key)
        if buf is None or buf.dtype != dtype or buf.shape != shape:
            n = math.prod(shape)
            flat = self._scratch_ws.get((key, "grown"))
            if flat is None or flat.dtype != dtype or flat.size < n:
                flat = self._scratch_ws[key, "grown"] = np.empty(n, dtype)
            buf = self._scratch_ws[key] = flat[:n].reshape(shape)
        return buf

    @staticmethod
    def _shared_scratch(key, size, dtype):
        """Scratch of `size` elements valid during one kernel call only, shared by every
        layer of the calling thread (one buffer per key and dtype, grown to the largest
        request): large transient buffers, such as a convolution's im2col columns, then
        cost the largest layer's need once, not every layer's."""
        return _shared_scratch(key, size, dtype)

    def _colsum_scratch(self, width):
        """The float64 scratch of the column-sum kernels (bias gradients, batch norm)."""
        return self._scratch("colsum", (_kernels.COLSUM_SCRATCH_ROWS * width,), np.float64)

    def _dtype_changed(self, dtype):
        self._scratch_ws.clear()
        self._pending.clear()
        self._free.clear()


class FixedContainer(Layer):
    """A layer made of submodules fixed at construction (Sequential, Model): the walk of
    its module tree is done once, and its execution plan is cached in `_plan_cache`,
    a (plan, hook epoch) pair that subclasses rebuild when hooks change."""

    _transient = ("_plan_cache", "_all_modules")

    def _reset_transient(self):
        super()._reset_transient()
        self._plan_cache = (None, None)
        self._all_modules = None

    def _modules_cached(self):
        if self._all_modules is None:
            self._all_modules = self.modules()
        return self._all_modules


_scratch_pool = threading.local()


def _shared_scratch(key, size, dtype):
    pool = _scratch_pool.__dict__.setdefault("bufs", {})
    dtype = np.dtype(dtype)
    buf = pool.get((key, dtype))
    if buf is None or buf.size < size:
        buf = pool[(key, dtype)] = np.empty(size, dtype)
    return buf[:size]


def _own_copy(ctx, x):
    """x copied into the context (so later changes to the caller's array cannot reach
    the backward), or a list of such copies."""
    if isinstance(x, (list, tuple)):
        return [_own_copy_one(ctx, f"_in{i}", v) for i, v in enumerate(x)]
    return _own_copy_one(ctx, "_in", x)


def _own_copy_one(ctx, key, x):
    if (
        not isinstance(x, np.ndarray)
        or x.dtype.kind != "f"
        or x.ndim == 0
        or isinstance(x, np.ma.MaskedArray)
    ):  # the layer's check refuses a mask
        return x  # converted (so copied) by the layer's own input check
    buf = ctx.workspace(key, x.shape, x.dtype)
    np.copyto(buf, x)
    return buf


def _copy(y):
    if y is None:
        return None
    if isinstance(y, (list, tuple)):
        return [_copy(v) for v in y]
    return np.array(y, copy=True)
