"""Optimizers with torch.optim's names, defaults and update rules.

When an optimizer is built, its parameters move into one contiguous data buffer and
one gradient buffer (each Parameter keeps a view of its slice), so that `zero_grad` is
one memset and `step` is one fused C pass per parameter group. Optimizer state
(momentum buffers, Adam moments) is flat in the same layout.
"""
import math

import numpy as np

from . import _kernels
from .module import Parameter


class Optimizer:
    """Base class. `params` is an iterable of Parameters or of dicts
    `{"params": [...], **overrides}` (parameter groups with their own lr, weight decay,
    ...). Frozen parameters (requires_grad=False) stay in the buffer but are skipped
    by `step`. Step counts are kept per parameter group."""

    _state_names = ()  # names of the flat state buffers, in state_dict order

    def __init__(self, params, defaults):
        groups = _as_groups(params)
        for g in groups:
            for key in g:
                if key != "params" and key not in defaults:
                    raise ValueError(f"{type(self).__name__}: unknown option {key!r} in a "
                                     f"parameter group; expected one of {sorted(defaults)}")
            for key, value in defaults.items():
                g.setdefault(key, value)
            self._validate(g)
        self.defaults = dict(defaults)
        self.param_groups = groups
        self._params = [p for g in groups for p in g["params"]]
        self._build_flat_buffers()
        self.state = {name: np.zeros_like(self._data) for name in self._state_names
                      if self._needs_state(name)}
        for g in groups:
            g.setdefault("step", 0)

    # -- subclass interface -----------------------------------------------------------
    def _validate(self, group):
        """Raise ValueError for invalid hyper-parameters in a group."""

    def _needs_state(self, name):
        return True

    def _update(self, group, lo, hi):
        """Apply one update to flat elements [lo, hi) of group's parameters."""
        raise NotImplementedError

    # -- flat buffers -----------------------------------------------------------------
    def _build_flat_buffers(self):
        dtypes = {p.dtype for p in self._params}
        if len(dtypes) != 1:
            raise ValueError(f"{type(self).__name__}: all parameters must share one dtype, "
                             f"got {sorted(map(str, dtypes))}")
        total = sum(p.size for p in self._params)
        self._data = np.empty(total, dtypes.pop())
        self._grad = np.empty_like(self._data)
        self._offsets = []
        offset = 0
        for p in self._params:
            lo, hi = offset, offset + p.size
            self._data[lo:hi] = p.data.reshape(-1)
            self._grad[lo:hi] = p.grad.reshape(-1)
            p._rebind(self._data[lo:hi].reshape(p.shape), self._grad[lo:hi].reshape(p.shape),
                      owner=self._data)
            self._offsets.append((lo, hi))
            offset = hi
        bounds, i = [], 0
        for g in self.param_groups:
            n = len(g["params"])
            bounds.append(list(range(i, i + n)))
            i += n
        self._group_params = bounds

    def _check_owner(self):
        for p in self._params:
            if p._owner is not self._data:
                raise RuntimeError(
                    f"{type(self).__name__}: parameter {p.name!r} no longer lives in this "
                    "optimizer's buffer (it was given to another optimizer or the model was "
                    "converted with astype); build the optimizer again"
                )

    def _runs(self, group_index):
        """Flat [lo, hi) ranges of the group's trainable parameters, merged when adjacent."""
        runs = []
        for i in self._group_params[group_index]:
            if not self._params[i].requires_grad:
                continue
            lo, hi = self._offsets[i]
            if runs and runs[-1][1] == lo:
                runs[-1][1] = hi
            else:
                runs.append([lo, hi])
        return runs

    # -- public API -------------------------------------------------------------------
    def zero_grad(self):
        """Set every gradient to zero (one memset over the flat gradient buffer)."""
        self._grad.fill(0)

    def step(self):
        """One update of every trainable parameter from its current gradient."""
        self._check_owner()
        for gi, group in enumerate(self.param_groups):
            runs = self._runs(gi)
            if not runs:
                continue
            group["step"] += 1
            for lo, hi in runs:
                self._update(group, lo, hi)

    @property
    def lr(self):
        """Learning rate of the first group; setting it sets every group's lr."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        _check_lr(value, type(self).__name__)
        for g in self.param_groups:
            g["lr"] = float(value)

    def state_dict(self):
        """{'state': {name: flat array copy}, 'param_groups': [hyper-parameters, step,
        parameter indices]} — enough to continue training bit for bit."""
        groups = [{k: v for k, v in g.items() if k != "params"} | {"params": idx}
                  for g, idx in zip(self.param_groups, self._group_params)]
        return {"state": {k: v.copy() for k, v in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if [g["params"] for g in groups] != self._group_params:
            raise ValueError(f"{type(self).__name__}.load_state_dict: parameter groups do not "
                             "match this optimizer's")
        for name, arr in state_dict["state"].items():
            if name not in self.state or np.shape(arr) != self.state[name].shape:
                raise ValueError(f"{type(self).__name__}.load_state_dict: unexpected state "
                                 f"{name!r} of shape {np.shape(arr)}")
        for name, arr in state_dict["state"].items():
            np.copyto(self.state[name], arr, casting="unsafe")
        for g, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    g[k] = tuple(v) if isinstance(v, list) else v

    def __repr__(self):
        g = {k: v for k, v in self.param_groups[0].items() if k not in ("params", "step")}
        opts = ", ".join(f"{k}={v}" for k, v in g.items())
        return f"{type(self).__name__}({opts})"


def _as_groups(params):
    if isinstance(params, Parameter):
        raise TypeError("params must be an iterable of Parameters (e.g. model.parameters()), "
                        "not a single Parameter")
    items = list(params)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    if all(isinstance(x, dict) for x in items):
        groups = [dict(g, params=list(g["params"])) for g in items]
    else:
        groups = [{"params": items}]
    seen = set()
    for g in groups:
        if not g["params"]:
            raise ValueError("optimizer got a parameter group with no parameters")
        for p in g["params"]:
            if not isinstance(p, Parameter):
                raise TypeError(f"optimizer params must be fastnn Parameters, got {type(p).__name__}")
            if id(p) in seen:
                raise ValueError(f"parameter {p.name!r} appears more than once in the optimizer")
            seen.add(id(p))
    return groups


def _check_lr(lr, where):
    if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr >= 0):
        raise ValueError(f"{where}: invalid learning rate {lr!r} (must be a finite number >= 0)")


class SGD(Optimizer):
    r"""Stochastic gradient descent with momentum (torch.optim.SGD):

    .. math::
        g_t &= \nabla_\theta L + \lambda \theta_{t-1} \\
        b_t &= g_t \text{ if } t = 1 \text{ else } \mu b_{t-1} + (1 - \tau) g_t \\
        g_t &= g_t + \mu b_t \text{ (nesterov) or } b_t \text{ (momentum > 0)} \\
        \theta_t &= \theta_{t-1} - \gamma g_t

    with lr :math:`\gamma`, momentum :math:`\mu`, dampening :math:`\tau`, weight_decay
    :math:`\lambda` (an L2 penalty added to the gradient).
    """

    _state_names = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _validate(self, g):
        _check_lr(g["lr"], "SGD")
        if g["momentum"] < 0:
            raise ValueError(f"SGD: invalid momentum {g['momentum']}")
        if g["weight_decay"] < 0:
            raise ValueError(f"SGD: invalid weight_decay {g['weight_decay']}")
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")

    def _needs_state(self, name):
        return any(g["momentum"] != 0 for g in self.param_groups)

    def _update(self, g, lo, hi):
        buf = self.state["momentum_buffer"][lo:hi] if g["momentum"] != 0 else None
        _kernels.sgd_step(self._data[lo:hi], self._grad[lo:hi], buf, g["lr"], g["momentum"],
                          g["dampening"], g["weight_decay"], g["nesterov"], g["step"] == 1)


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015; https://arxiv.org/abs/1412.6980), as torch.optim.Adam:

    .. math::
        g_t &= \nabla_\theta L + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ (amsgrad) or } v_t \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}
                    \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    weight_decay :math:`\lambda` here is an L2 penalty added to the gradient (it then
    gets Adam's per-parameter scaling); AdamW decays the weights directly instead.
    """

    _state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

    def _validate(self, g):
        name = type(self).__name__
        _check_lr(g["lr"], name)
        b1, b2 = g["betas"]
        if not 0.0 <= b1 < 1.0:
            raise ValueError(f"{name}: invalid beta parameter at index 0: {b1}")
        if not 0.0 <= b2 < 1.0:
            raise ValueError(f"{name}: invalid beta parameter at index 1: {b2}")
        if not g["eps"] > 0:
            raise ValueError(f"{name}: invalid epsilon value: {g['eps']}")
        if g["weight_decay"] < 0:
            raise ValueError(f"{name}: invalid weight_decay value: {g['weight_decay']}")

    def _needs_state(self, name):
        return name != "max_exp_avg_sq" or any(g["amsgrad"] for g in self.param_groups)

    def _update(self, g, lo, hi):
        b1, b2 = g["betas"]
        t = g["step"]
        vmax = self.state["max_exp_avg_sq"][lo:hi] if g["amsgrad"] else None
        _kernels.adam_step(self._data[lo:hi], self._grad[lo:hi], self.state["exp_avg"][lo:hi],
                           self.state["exp_avg_sq"][lo:hi], vmax, g["lr"], b1, b2, g["eps"],
                           g["weight_decay"], self._decoupled, 1.0 - b1**t,
                           math.sqrt(1.0 - b2**t))


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019;
    https://arxiv.org/abs/1711.05101), as torch.optim.AdamW: before the Adam update,

    .. math:: \theta_{t-1} \leftarrow \theta_{t-1} (1 - \gamma \lambda)

    and the gradient carries no penalty. Unlike an L2 penalty, the decay is not
    rescaled by Adam's per-parameter step sizes.
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
