"""Sequential: layers applied in order, a chain-shaped plan (fastnn.plan)."""

import numpy as np

from .graph import _table
from .module import Context, FixedContainer, Module, _hook_epoch
from .plan import Plan


class Sequential(FixedContainer):
    """Layers applied in order: `Sequential(Dense(784, 512), ReLU(), Dense(512, 10))`.

    state_dict keys are those of torch.nn.Sequential ('0.weight', '1.running_mean').
    Some runs of layers execute as one fused step (see fastnn.plan): an elementwise
    activation right after a Dense layer goes into the Dense layer's epilogue, and
    BatchNorm1d -> ReLU (-> Dropout) runs as two passes forward and two backward in
    training. The results are those of the layers applied one by one. A layer may
    appear several times (its weights are shared and its gradients sum). The list of
    layers is fixed at construction."""

    def __init__(self, *layers, name=None):
        super().__init__(name=name)
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is not a Module: {layer!r}")
        self.layers = list(layers)

    def named_children(self):
        """("0", layer), ("1", layer), ... (torch's keys)."""
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def get_config(self):
        """The layers (fastnn.save describes them recursively)."""
        return {"layers": list(self.layers)}

    @classmethod
    def from_config(cls, config, name=None):
        """Rebuild from get_config() with the layers already rebuilt."""
        return cls(*config["layers"], name=name)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    # -- execution ------------------------------------------------------------------------
    def _plan(self):
        plan, epoch = self._plan_cache
        if plan is None or epoch != _hook_epoch[0]:
            nodes = [(layer, (i,), False, (i + 1,)) for i, layer in enumerate(self.layers)]
            plan = Plan(nodes, 1, [len(self.layers)])
            self._plan_cache = (plan, _hook_epoch[0])
        return plan

    @property
    def steps(self):
        """The steps the current plan runs (each with the `layers` it stands for)."""
        return self._plan().steps

    def _forward(self, ctx, x):
        plan = self._plan()
        if ctx.__dict__.get("plan") is not plan:
            ctx.reset()
            ctx.plan = plan
        return plan.forward(ctx, [x])[0]

    def _backward(self, ctx, grad_out, need_input_grad=True):
        return ctx.plan.backward(ctx, [grad_out], need_input_grad)[0]

    # -- display ----------------------------------------------------------------------
    def summary(self, input_features=None, print_fn=print):
        """Print each layer with its output shape and parameter count; returns the text.

        The shapes come from an eval-mode forward of a 2-sample zero batch with
        `input_features` columns (default: the first layer's in_features), or of shape
        (2,) + input_features when it is a tuple."""
        if input_features is None:
            input_features = getattr(self.layers[0], "in_features", None)
            if input_features is None:
                raise ValueError("summary: pass input_features (the first layer has none)")
        shape = (
            tuple(input_features)
            if isinstance(input_features, (tuple, list))
            else (input_features,)
        )
        x = np.zeros((2,) + shape, self.dtype or np.float32)
        rows = []
        was_training = self.training
        self.eval()
        try:
            for i, layer in enumerate(self.layers):
                x = layer._forward(Context(), x)
                n = sum(p.size for p in layer.parameters())
                rows.append((f"{i}: {layer!r}".split("\n")[0], str((None,) + x.shape[1:]), n))
        finally:
            self.train(was_training)
        return _table(rows, ("Layer", "Output shape", "Params"), self, print_fn)
