"""The classic initialisation experiment: push Gaussian data through a deep stack of Dense
layers and watch the spread of the activations layer by layer for each weight
initialisation. Zeros kill everything, N(0, 1) explodes (or saturates tanh), a small
N(0, 0.01^2) vanishes, Xavier keeps tanh healthy and Kaiming keeps ReLU healthy."""

import math
import warnings

import numpy as np

from .. import init as _init, rng
from ..layers.activations import ReLU, Tanh
from ..layers.dense import Dense
from ._objective import preserved_rng
from ._plot import pyplot, save
from ._result import Result, table

INITS = {
    "zeros": lambda w: _init.zeros_(w),
    "normal": lambda w: _init.normal_(w, 0.0, 1.0),
    "small_normal": lambda w: _init.normal_(w, 0.0, 0.01),
    "xavier": lambda w: _init.xavier_normal_(w),
    "kaiming": lambda w: _init.kaiming_normal_(w, nonlinearity="relu"),
}
INIT_DESCRIPTIONS = {
    "zeros": "all weights 0",
    "normal": "N(0, 1)",
    "small_normal": "N(0, 0.01^2)",
    "xavier": "Xavier normal, std sqrt(2 / (fan_in + fan_out))",
    "kaiming": "Kaiming normal, std sqrt(2 / fan_in)",
}
_ACTIVATIONS = {"tanh": Tanh, "relu": ReLU}


class DepthExperiment(Result):
    """Outcome of init_depth_experiment: `std[init]` and `mean[init]` are arrays with one
    value per layer (the activations after each layer's nonlinearity), `inits`,
    `depth`, `activation`; `samples[init][l]` holds a sample of layer l's activations
    for the histograms of `.plot(path)`; `verdicts[init]` is 'dead' (all zero),
    'saturated' (tanh: most outputs beyond |0.99| at the last layer), 'vanishing' /
    'exploding' (the std shrinks / grows by more than 20% per layer on average, or ends
    below 1e-2 / above 1e2 times the input's) or 'stable'."""

    title = "activation std by depth for each initialisation"

    def __init__(self, activation, depth, width, inits, std, mean, saturation, samples, input_std):
        self.activation, self.depth, self.width = activation, depth, width
        self.inits = list(inits)
        self.std, self.mean, self.saturation = std, mean, saturation
        self.samples = samples
        self.input_std = input_std
        self.verdicts = {name: self._verdict(name) for name in self.inits}

    def _verdict(self, name):
        s = self.std[name]
        first, last = s[0], s[-1]
        if not np.isfinite(s).all():
            return "exploding"
        if last == 0 or (first == 0 and last == 0):
            return "dead"
        if self.activation == "tanh" and self.saturation[name][-1] > 0.5:
            return "saturated"
        # geometric growth of the std per layer; 0.8 halves it every 3 layers
        growth = (last / first) ** (1.0 / max(self.depth - 1, 1)) if first > 0 else 1.0
        if last < 1e-2 * self.input_std or growth < 0.8:
            return "vanishing"
        if last > 1e2 * self.input_std or growth > 1.25:
            return "exploding"
        return "stable"

    def _lines(self):
        cols = sorted(
            {0, 1, self.depth // 2 - 1, self.depth - 2, self.depth - 1} & set(range(self.depth))
        )
        headers = ("init",) + tuple(f"layer {c + 1}" for c in cols) + ("verdict",)
        rows = [
            (name,) + tuple(float(self.std[name][c]) for c in cols) + (self.verdicts[name],)
            for name in self.inits
        ]
        return [
            f"  {self.depth} x Dense({self.width}, {self.width}) + {self.activation}, "
            f"zero biases, input N(0, 1); std of the activations:",
            table(headers, rows),
        ]

    def plot(self, path):
        """Left: std of the activations by layer for each initialisation (log scale).
        Right: histograms of layers 1, depth/2 and depth for each initialisation."""
        plt = pyplot("DepthExperiment")
        n = len(self.inits)
        layers = sorted({0, self.depth // 2 - 1 if self.depth > 2 else 0, self.depth - 1})
        fig = plt.figure(figsize=(5 + 2.4 * len(layers), max(4.0, 1.7 * n)))
        grid = fig.add_gridspec(n, 1 + len(layers), width_ratios=[2.2] + [1] * len(layers))
        ax = fig.add_subplot(grid[:, 0])
        x = np.arange(1, self.depth + 1)
        for name in self.inits:
            s = np.where(self.std[name] > 0, self.std[name], np.nan)
            ax.plot(x, s, marker="o", ms=3, label=f"{name} ({self.verdicts[name]})")
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_ylabel("std of activations")
        ax.set_title(f"{self.activation}, width {self.width}")
        ax.legend(fontsize=8)
        for i, name in enumerate(self.inits):
            for j, layer in enumerate(layers):
                hax = fig.add_subplot(grid[i, 1 + j])
                sample = self.samples[name][layer]
                sample = sample[np.isfinite(sample)]
                if sample.size:
                    hax.hist(sample, bins=40, color="tab:blue")
                hax.set_yticks([])
                hax.tick_params(labelsize=6)
                if i == 0:
                    hax.set_title(f"layer {layer + 1}", fontsize=8)
                if j == 0:
                    hax.set_ylabel(name, fontsize=8)
        return save(fig, path)


def init_depth_experiment(
    depth=10, width=256, activation="tanh", inits=tuple(INITS), n=1000, seed=0
):
    """Reproduce the classic initialisation experiment: X ~ N(0, 1) of shape (n, width) through
    `depth` layers of Dense(width, width, bias 0) + activation ('tanh' or 'relu'),
    weights drawn with each initialisation in `inits` (names of INITS: 'zeros',
    'normal' N(0,1), 'small_normal' N(0, 0.01^2), 'xavier' (Xavier normal), 'kaiming'
    (Kaiming normal with the ReLU gain, whatever the activation), or callables taking
    the weight Parameter), and record the std of the activations after every layer.

    Uses fastnn's Dense/activation layers and fastnn.init; fastnn.seed(seed) is applied
    inside and fastnn's random state is restored afterwards. Returns a DepthExperiment
    (table in its repr, `.plot(path)`)."""
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"init_depth_experiment: activation must be one of "
            f"{sorted(_ACTIVATIONS)}, got {activation!r}"
        )
    depth, width, n = int(depth), int(width), int(n)
    if depth < 1 or width < 1 or n < 2:
        raise ValueError("init_depth_experiment: depth, width must be >= 1 and n >= 2")
    fns = {}
    for item in inits:
        if callable(item):
            fns[getattr(item, "__name__", repr(item))] = item
        elif item in INITS:
            fns[item] = INITS[item]
        else:
            raise ValueError(
                f"init_depth_experiment: unknown init {item!r}; expected one of "
                f"{sorted(INITS)} or a callable"
            )
    std, mean, sat, samples = {}, {}, {}, {}
    with preserved_rng():
        rng.seed(seed)
        X = rng.generator().standard_normal((n, width)).astype(np.float64)
        sample_gen = np.random.default_rng(seed)
        for name, fn in fns.items():
            rng.seed(seed + 1)
            h = X
            stds, means, sats, hists = [], [], [], []
            for _ in range(depth):
                layer = Dense(width, width, dtype=np.float64)
                with warnings.catch_warnings():  # zeros_ warns about symmetry; we know
                    warnings.simplefilter("ignore")
                    fn(layer.weight)
                layer.bias.data.fill(0)
                act = _ACTIVATIONS[activation]()
                with np.errstate(all="ignore"):
                    h = act.forward(layer.forward(h))
                stds.append(float(np.std(h)) if np.isfinite(h).all() else math.inf)
                means.append(float(np.mean(h)) if np.isfinite(h).all() else math.nan)
                sats.append(
                    float(np.mean(np.abs(h) > 0.99))
                    if activation == "tanh"
                    else float(np.mean(h == 0))
                )
                flat = h.reshape(-1)
                hists.append(sample_gen.choice(flat, min(flat.size, 5000), replace=False))
            std[name], mean[name] = np.array(stds), np.array(means)
            sat[name], samples[name] = np.array(sats), hists
    return DepthExperiment(
        activation, depth, width, list(fns), std, mean, sat, samples, float(X.std())
    )
