"""Per-layer activation and gradient statistics: saturated
sigmoid/tanh units, dead ReLUs, activations that shrink or grow with depth, and
gradients that vanish or explode on their way back to the first layers."""

import math

import numpy as np

from ..layers.activations import (
    ELU,
    GELU,
    HardTanh,
    LeakyReLU,
    PReLU,
    ReLU,
    Sigmoid,
    Softplus,
    Tanh,
)
from ._objective import as_float, as_target, check_model, leaf_modules, preserved_rng, working_copy
from ._plot import pyplot, save
from ._result import Issue, Result, fmt, issue_lines, table, verdict

_HIST_SAMPLES = 20000
SATURATION_LIMIT = 0.25  # fraction of saturated sigmoid/tanh outputs that is flagged
DEAD_LIMIT = 0.25  # fraction of dead ReLU units that is flagged
VANISH, EXPLODE = 1e-3, 1e3  # ratios between first and last layers that are flagged


class _Recorder:
    """Instruments a working copy with hooks: every leaf module records its output
    (forward hook) and the gradient it receives (backward hook). A hooked layer is
    never fused with its neighbours, so an activation that would run in its Dense
    layer's epilogue is seen as a layer of its own."""

    def __init__(self, model):
        self.model = model
        self.outputs, self.grads, self.inputs = {}, {}, {}
        self.leaves = leaf_modules(model)
        for name, m in self.leaves:
            m.register_forward_hook(self._on_forward(name))
            m.register_full_backward_hook(self._on_backward(name))

    def _on_forward(self, name):
        def hook(module, inputs, output):
            self.outputs[name] = np.array(output, copy=True)

        return hook

    def _on_backward(self, name):
        def hook(module, grad_input, grad_output):
            self.grads[name] = np.array(grad_output, copy=True)

        return hook

    def layer_type(self, name):
        return dict(self.leaves)[name]


def _kind(module):
    if isinstance(module, (Sigmoid, Tanh, HardTanh)):
        return "saturating"
    if isinstance(module, (ReLU, LeakyReLU, PReLU, ELU, GELU, Softplus)):
        return "rectifier"
    return None


def _saturated(module, y):
    if isinstance(module, Sigmoid):
        return (y < 0.01) | (y > 0.99)
    if isinstance(module, Tanh):
        return np.abs(y) > 0.99
    if isinstance(module, HardTanh):
        return (y <= module.min_val) | (y >= module.max_val)
    return None


def _dead_units(module, y):
    """Fraction of units (axis 1) never active on the batch: output <= 0 for every sample
    (ReLU: exactly 0; for the leaky/smooth rectifiers, never on the positive side)."""
    if y.ndim < 2 or y.shape[0] == 0:
        return None
    units = np.moveaxis(y, 1, 0).reshape(y.shape[1], -1)
    active = (units > 0).any(axis=1)
    return float(1.0 - active.mean())


def _sample(values, gen):
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    flat = flat[np.isfinite(flat)]
    if flat.size > _HIST_SAMPLES:
        flat = gen.choice(flat, _HIST_SAMPLES, replace=False)
    return flat


class LayerActivation:
    """Statistics of one layer's output on the batch."""

    __slots__ = (
        "name",
        "type",
        "shape",
        "mean",
        "std",
        "saturation",
        "dead",
        "zero",
        "finite",
        "sample",
    )

    def __init__(self, name, module, y, gen):
        self.name, self.type = name, type(module).__name__
        self.shape = tuple(y.shape)
        yf = np.asarray(y, dtype=np.float64)
        self.finite = bool(np.isfinite(yf).all())
        self.mean = float(yf.mean()) if yf.size else math.nan
        self.std = float(yf.std()) if yf.size else math.nan
        self.zero = float(np.mean(yf == 0)) if yf.size else math.nan
        sat = _saturated(module, yf)
        self.saturation = float(sat.mean()) if sat is not None and yf.size else None
        self.dead = _dead_units(module, yf) if _kind(module) == "rectifier" else None
        self.sample = _sample(yf, gen)


class ActivationStats(Result):
    """Outcome of activation_stats: `layers` (a list of LayerActivation with name, type,
    shape, mean, std, saturation (sigmoid/tanh/hardtanh: fraction of outputs in the flat
    tails), dead (rectifiers: fraction of units never active on the batch), zero
    (fraction of exact zeros)), `input_std`, `issues`, `passed`. `.plot(path)` draws a
    histogram per layer and the std by depth."""

    title = "activation statistics"

    def __init__(self, layers, input_std, issues):
        self.layers = layers
        self.input_std = input_std
        self.issues = issues
        self.passed = not any(i.severity in ("error", "warning") for i in issues)

    def __getitem__(self, name):
        return next(layer for layer in self.layers if layer.name == name)

    def _lines(self):
        rows = [
            (
                a.name,
                a.type,
                a.mean,
                a.std,
                "-" if a.saturation is None else f"{a.saturation:.1%}",
                "-" if a.dead is None else f"{a.dead:.1%}",
            )
            for a in self.layers
        ]
        return [
            f"  {verdict(self.passed)}: {len(self.layers)} layers, input std {fmt(self.input_std)}",
            table(("layer", "type", "mean", "std", "saturated", "dead units"), rows),
        ] + issue_lines(self.issues)

    def plot(self, path):
        """Per-layer histograms of the outputs and their std by depth, saved at path."""
        plt = pyplot("ActivationStats")
        layers = self.layers[:23]
        n = len(layers) + 1
        cols = min(4, n)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
        ax = axes[0, 0]
        stds = [max(a.std, 1e-30) if math.isfinite(a.std) else np.nan for a in self.layers]
        ax.plot(np.arange(1, len(stds) + 1), stds, marker="o")
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_title("std of outputs")
        for k, a in enumerate(layers, start=1):
            ax = axes[k // cols, k % cols]
            if a.sample.size:
                ax.hist(a.sample, bins=50, color="tab:blue")
            ax.set_title(f"{a.name} {a.type}\nmean {fmt(a.mean)} std {fmt(a.std)}", fontsize=8)
            ax.tick_params(labelsize=7)
        for k in range(n, rows * cols):
            axes[k // cols, k % cols].axis("off")
        return save(fig, path)


def activation_stats(model, X, max_samples=1024, seed=0):
    """Run the model (a copy, in training mode: BatchNorm uses batch statistics,
    dropout draws masks without consuming fastnn's random stream) on the first
    `max_samples` rows of X and report, for every layer (leaf module): mean, std,
    fraction of saturated outputs (sigmoid/tanh/hardtanh), fraction of dead units
    (ReLU family: never active on the batch), and flags: saturation above 25%, dead
    units above 25%, outputs whose std is below 1e-3 or above 1e3 times the input's
    (vanishing/exploding activations), non-finite outputs."""
    check_model(model, "activation_stats")
    gen = np.random.default_rng(seed)
    with preserved_rng():
        work = working_copy(model, train=True)
        rec = _Recorder(work)
        X = as_float(np.asarray(X)[:max_samples], work.dtype or np.float32, "activation_stats")
        work.forward(X)
    input_std = float(np.asarray(X, np.float64).std())
    layers = [
        LayerActivation(name, m, rec.outputs[name], gen)
        for name, m in rec.leaves
        if name in rec.outputs
    ]
    issues = _activation_issues(layers, input_std)
    return ActivationStats(layers, input_std, issues)


def _activation_issues(layers, input_std):
    issues = []
    bad = [a.name for a in layers if not a.finite]
    if bad:
        issues.append(
            Issue(
                "nonfinite_activations",
                "error",
                f"non-finite outputs in {', '.join(bad)}",
                "check the inputs (check_data) and the initialisation; lower the "
                "learning rate if this happens during training",
            )
        )
    sat = [a for a in layers if a.saturation is not None and a.saturation > SATURATION_LIMIT]
    if sat:
        desc = ", ".join(f"{a.name} {a.saturation:.0%}" for a in sat)
        issues.append(
            Issue(
                "saturation",
                "warning",
                f"saturated sigmoid/tanh units: {desc}",
                "saturated units pass almost no gradient: standardise the inputs, use a smaller "
                "(Xavier) initialisation, add BatchNorm before the activation, or use ReLU",
                where=[a.name for a in sat],
            )
        )
    dead = [a for a in layers if a.dead is not None and a.dead > DEAD_LIMIT]
    if dead:
        desc = ", ".join(f"{a.name} {a.dead:.0%}" for a in dead)
        issues.append(
            Issue(
                "dead_units",
                "warning",
                f"ReLU units never active on this batch: {desc}",
                "dead units get no gradient and never recover: check for large negative biases "
                "or a too-high learning rate, use Kaiming initialisation, LeakyReLU/ELU, or "
                "BatchNorm",
                where=[a.name for a in dead],
            )
        )
    if input_std > 0:
        small = [a for a in layers if a.finite and a.std < VANISH * input_std]
        large = [a for a in layers if a.finite and a.std > EXPLODE * input_std]
        if small:
            issues.append(
                Issue(
                    "vanishing_activations",
                    "warning",
                    f"activations shrink with depth: std {fmt(small[0].std)} at {small[0].name} "
                    f"(input std {fmt(input_std)})",
                    "the initialisation is too small for the depth: use Xavier (tanh/sigmoid) or "
                    "Kaiming (ReLU) initialisation, or add normalisation layers",
                    where=[a.name for a in small],
                )
            )
        if large:
            issues.append(
                Issue(
                    "exploding_activations",
                    "warning",
                    f"activations grow with depth: std {fmt(large[0].std)} at {large[0].name} "
                    f"(input std {fmt(input_std)})",
                    "the initialisation is too large for the depth: use Xavier/Kaiming "
                    "initialisation, or add normalisation layers",
                    where=[a.name for a in large],
                )
            )
    return issues


class ParameterGradient:
    """Gradient statistics of one parameter."""

    __slots__ = ("name", "shape", "grad_norm", "weight_norm", "ratio", "grad_rms", "finite")

    def __init__(self, name, p):
        g = np.asarray(p.grad, np.float64)
        w = np.asarray(p.data, np.float64)
        self.name, self.shape = name, tuple(p.shape)
        self.finite = bool(np.isfinite(g).all())
        self.grad_norm = float(np.linalg.norm(g)) if self.finite else math.inf
        self.weight_norm = float(np.linalg.norm(w))
        self.ratio = self.grad_norm / self.weight_norm if self.weight_norm > 0 else math.inf
        self.grad_rms = self.grad_norm / math.sqrt(max(g.size, 1))


class GradientStats(Result):
    """Outcome of gradient_stats: `parameters` (ParameterGradient: grad_norm,
    weight_norm, ratio = grad_norm / weight_norm, grad_rms), `layer_grad_norms`
    ({layer: norm of dL/d(layer output)}, the signal propagated backwards),
    `depth_ratio` (RMS gradient of the first weight matrix over that of the last),
    `loss`, `issues`, `passed`, and `kind` in {'healthy', 'vanishing', 'exploding',
    'nonfinite'}."""

    title = "gradient statistics"

    def __init__(self, parameters, layer_grad_norms, depth_ratio, loss, issues, kind):
        self.parameters = parameters
        self.layer_grad_norms = layer_grad_norms
        self.depth_ratio = depth_ratio
        self.loss = loss
        self.issues = issues
        self.kind = kind
        self.passed = not any(i.severity in ("error", "warning") for i in issues)

    def __getitem__(self, name):
        return next(p for p in self.parameters if p.name == name)

    def _lines(self):
        rows = [
            (p.name, "x".join(map(str, p.shape)), p.grad_norm, p.weight_norm, p.ratio)
            for p in self.parameters
        ]
        ratio = "-" if self.depth_ratio is None else fmt(self.depth_ratio)
        return [
            f"  {verdict(self.passed)} ({self.kind}): loss {fmt(self.loss)}; RMS gradient "
            f"first/last weight layer {ratio}",
            table(("parameter", "shape", "|grad|", "|weight|", "|grad|/|weight|"), rows),
        ] + issue_lines(self.issues)

    def plot(self, path):
        """Gradient norm, weight norm and their ratio per parameter (log scale), and the
        norm of the gradient reaching each layer's output, saved at path."""
        plt = pyplot("GradientStats")
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
        names = [p.name for p in self.parameters]
        x = np.arange(len(names))
        tiny = 1e-30
        ax1.bar(x - 0.2, [max(p.grad_norm, tiny) for p in self.parameters], 0.4, label="|grad|")
        ax1.bar(x + 0.2, [max(p.weight_norm, tiny) for p in self.parameters], 0.4, label="|weight|")
        ax1.plot(
            x,
            [max(p.ratio, tiny) if math.isfinite(p.ratio) else np.nan for p in self.parameters],
            "k.-",
            label="|grad|/|weight|",
        )
        ax1.set_yscale("log")
        ax1.set_xticks(x, names, rotation=60, fontsize=7, ha="right")
        ax1.set_title("parameters")
        ax1.legend(fontsize=8)
        layers = list(self.layer_grad_norms)
        ax2.plot(
            np.arange(1, len(layers) + 1),
            [max(v, tiny) for v in self.layer_grad_norms.values()],
            marker="o",
        )
        ax2.set_yscale("log")
        ax2.set_xticks(np.arange(1, len(layers) + 1), layers, rotation=60, fontsize=7, ha="right")
        ax2.set_title("|dL/d(layer output)| (backpropagated signal)")
        return save(fig, path)


def gradient_stats(model, loss, X, y, max_samples=256):
    """One forward/backward pass of a copy of the model (training mode) on the first
    `max_samples` samples; per trainable parameter the gradient norm, weight norm and
    their ratio, per layer the norm of the gradient arriving at its output.

    Flags: non-finite gradients; parameters whose gradient is exactly zero (unused, or
    behind dead units); vanishing gradients (the RMS gradient of the first weight
    matrix below 1e-3 times the last one's) and exploding gradients (above 1e3 times),
    with advice: initialisation, normalisation, residual connections, gradient
    clipping, non-saturating activations."""
    import copy

    check_model(model, "gradient_stats")
    with preserved_rng():
        work = working_copy(model, train=True)
        rec = _Recorder(work)
        dtype = work.dtype or np.float32
        X = as_float(np.asarray(X)[:max_samples], dtype, "gradient_stats")
        y = as_target(np.asarray(y)[:max_samples], dtype)
        loss = copy.deepcopy(loss)
        work.zero_grad()
        value = float(loss(work.forward(X), y))
        work.backward(loss.backward())
        work.add_penalties()
    params = [ParameterGradient(n, p) for n, p in work.named_parameters() if p.requires_grad]
    layer_norms, signal = {}, []
    for name, _ in rec.leaves:
        if name in rec.grads:
            g = np.asarray(rec.grads[name], np.float64)
            layer_norms[name] = float(np.linalg.norm(g))
            if np.isfinite(layer_norms[name]) and g.size:
                signal.append((name, layer_norms[name] / math.sqrt(g.size)))
    issues, kind, ratio = _gradient_issues(params, value, signal)
    return GradientStats(params, layer_norms, ratio, value, issues, kind)


def _gradient_issues(params, value, signal):
    """(issues, kind, depth ratio). signal: [(layer, RMS of dL/d(output))] front to back."""
    issues = []
    kind = "healthy"
    bad = [p.name for p in params if not p.finite]
    if bad or not math.isfinite(value):
        issues.append(
            Issue(
                "nonfinite_gradients",
                "error",
                f"non-finite loss or gradients ({', '.join(bad) or 'loss'})",
                "check the data for NaN/inf, lower the learning rate, clip the "
                "gradients (Trainer(clip_grad_norm=1.0))",
            )
        )
        return issues, "nonfinite", None
    zero = [p.name for p in params if p.grad_norm == 0]
    if zero:
        issues.append(
            Issue(
                "zero_gradient",
                "warning",
                f"parameters with an exactly zero gradient: {', '.join(zero)}",
                "they will never change: unused parameters, units that are all dead, a "
                "gradient that a custom layer does not pass on, or all-zero (symmetric) weights",
                where=zero,
            )
        )
    weights = [p for p in params if len(p.shape) >= 2]
    ratio = None
    evidence_small, evidence_large = [], []
    if len(weights) >= 2 and weights[-1].grad_rms > 0:
        ratio = weights[0].grad_rms / weights[-1].grad_rms
        text = (
            f"the first weight matrix ({weights[0].name}) gets {fmt(ratio)} times the RMS "
            f"gradient of the last ({weights[-1].name})"
        )
        if ratio < VANISH:
            evidence_small.append(text)
        elif ratio > EXPLODE:
            evidence_large.append(text)
    if len(signal) >= 2 and signal[-1][1] > 0:
        s_ratio = signal[0][1] / signal[-1][1]
        text = (
            f"the gradient reaching the output of {signal[0][0]} has {fmt(s_ratio)} times "
            f"the RMS of the one at {signal[-1][0]}"
        )
        if s_ratio < VANISH:
            evidence_small.append(text)
        elif s_ratio > EXPLODE:
            evidence_large.append(text)
    steep = [p for p in weights if math.isfinite(p.ratio) and p.ratio > 100]
    if steep:
        evidence_large.append(
            f"|grad|/|weight| reaches {fmt(max(p.ratio for p in steep))} "
            f"({steep[0].name}): one step of lr=0.01 would change the "
            "weights by more than their own size"
        )
    if evidence_small:
        kind = "vanishing"
        issues.append(
            Issue(
                "vanishing_gradients",
                "warning",
                "gradients vanish towards the input: " + "; ".join(evidence_small),
                "the first layers will barely learn: use ReLU-family activations instead of "
                "sigmoid/tanh, Kaiming (ReLU) or Xavier (tanh) initialisation, BatchNorm or "
                "LayerNorm between layers, residual connections, or a shallower network",
            )
        )
    elif evidence_large:
        kind = "exploding"
        issues.append(
            Issue(
                "exploding_gradients",
                "warning",
                "gradients explode: " + "; ".join(evidence_large),
                "clip the gradient norm (Trainer(clip_grad_norm=1.0)), use a smaller "
                "initialisation (Xavier/Kaiming rather than N(0, 1)), add normalisation "
                "layers, standardise inputs and targets, lower the learning rate",
            )
        )
    return issues, kind, ratio
