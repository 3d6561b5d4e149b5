"""Optimizers with torch.optim's names, defaults and update rules.

An optimizer works on slices of a parameter store (fastnn.store): its parameters live
in one contiguous data buffer and one gradient buffer - the model's store when they
are already in one (module.parameter_store()), else a store built over them - so
that `zero_grad` is one memset and `step` is one fused C pass per run of adjacent
parameters. Optimizer state (momentum buffers, Adam moments) is flat in the same
layout; `state_dict` saves it in the optimizer's parameter order. When the parameters
move to another store (the model's store is built after the optimizer), the state
follows them.
"""

import inspect
import math

import numpy as np

from . import _kernels, state_version
from .parameter import Parameter, layout_epoch
from .store import ParameterStore
from .validation import like_default, plain, real_number


class Optimizer:
    """Base class. `params` is an iterable of Parameters or of dicts
    `{"params": [...], **overrides}` (parameter groups with their own lr, weight decay,
    ...). Frozen parameters (requires_grad=False) stay in the buffer but are skipped
    by `step`. Each parameter counts its own steps (as torch does): one frozen for a
    while and then unfrozen continues from its own count; `step` runs one fused kernel
    over each stretch of adjacent parameters with equal counts (usually the whole
    buffer)."""

    _state_names: tuple[str, ...] = ()  # names of the flat state buffers, in state_dict order

    def __init__(self, params, defaults):
        groups = _as_groups(params)
        # The constructor's own defaults say what kind each option is (flag, number).
        kinds = {k: v.default for k, v in inspect.signature(type(self).__init__).parameters.items()}
        for g in groups:
            for key in g:
                if key != "params" and key not in defaults:
                    raise ValueError(
                        f"{type(self).__name__}: unknown option {key!r} in a "
                        f"parameter group; expected one of {sorted(defaults)}"
                    )
            for key, value in defaults.items():
                g[key] = like_default(
                    g.get(key, value), kinds.get(key), f"{type(self).__name__}: {key}"
                )
            self._validate(g)
        self.defaults = dict(defaults)
        self.param_groups = groups
        self._params = [p for g in groups for p in g["params"]]
        self._build_flat_buffers()
        self.state = {
            name: np.zeros_like(self._data) for name in self._state_names if self._needs_state(name)
        }
        self.steps = np.zeros(len(self._params), np.int64)
        for gi, g in enumerate(groups):
            self._init_group(gi, g)

    # -- subclass interface -----------------------------------------------------------
    def _validate(self, group):
        """Raise ValueError for invalid hyper-parameters in a group."""

    def _needs_state(self, name):
        return True

    def _init_group(self, index, group):
        """Set initial state for a group (flat state starts at zero)."""

    def _group_ranges(self, index):
        """The flat [lo, hi) ranges of group `index`'s parameters."""
        return [self._offsets[i] for i in self._group_params[index]]

    def _update(self, group, run):
        """Apply one update to a _Run of the group's parameters."""
        raise NotImplementedError

    # -- flat buffers -----------------------------------------------------------------
    def _build_flat_buffers(self):
        dtypes = {p.dtype for p in self._params}
        if len(dtypes) != 1:
            raise ValueError(
                f"{type(self).__name__}: all parameters must share one dtype, "
                f"got {sorted(map(str, dtypes))}"
            )
        owners = {id(p._owner) for p in self._params}
        owner = self._params[0]._owner
        if owner is None or len(owners) != 1:
            owner = ParameterStore(self._params).buffers[0]
        self._bind(owner)
        bounds, i = [], 0
        for g in self.param_groups:
            n = len(g["params"])
            bounds.append(list(range(i, i + n)))
            i += n
        self._group_params = bounds

    def _bind(self, buffer):
        """Work on `buffer` (a fastnn.store.FlatBuffer holding every parameter)."""
        self._buffer = buffer
        self._data, self._grad = buffer.data, buffer.grad
        self._offsets = [buffer.range_of(p) for p in self._params]
        self._layout_seen = layout_epoch[0]

    def _follow_parameters(self):
        """If the parameters moved to another store, move the state with them."""
        if self._layout_seen == layout_epoch[0]:
            return
        self._layout_seen = layout_epoch[0]
        buffer = self._params[0]._owner
        if buffer is self._buffer and all(p._owner is buffer for p in self._params):
            return
        if buffer is None or any(p._owner is not buffer for p in self._params):
            buffer = ParameterStore(self._params).buffers[0]
        if buffer.dtype != self._data.dtype:
            raise RuntimeError(
                f"{type(self).__name__}: the parameters were converted to {buffer.dtype} "
                f"(astype) after the optimizer was built for {self._data.dtype}; build the "
                "optimizer again"
            )
        saved = {name: self._gather(arr) for name, arr in self.state.items()}
        self._bind(buffer)
        for name, flat in saved.items():
            self.state[name] = np.zeros_like(self._data)
            self._scatter(flat, self.state[name])

    def _gather(self, flat):
        """The slices of a store-layout array for this optimizer's parameters, in
        parameter order (one array)."""
        return np.concatenate([flat[lo:hi] for lo, hi in self._offsets])

    def _scatter(self, packed, flat):
        """Inverse of _gather: write parameter-ordered values into a store-layout array."""
        start = 0
        for lo, hi in self._offsets:
            flat[lo:hi] = packed[start : start + hi - lo]
            start += hi - lo

    def _advance(self, group_index):
        """Count a step for each trainable parameter of the group; returns the runs of
        adjacent parameters that now have equal step counts."""
        runs = []
        for i in self._group_params[group_index]:
            if not self._params[i].requires_grad:
                continue
            self.steps[i] += 1
            t = int(self.steps[i])
            lo, hi = self._offsets[i]
            last = runs[-1] if runs else None
            if last is not None and last.hi == lo and last.t == t:
                last.hi, last.stop = hi, i + 1
            else:
                runs.append(_Run(lo, hi, t, i, i + 1))
        return runs

    # -- public API -------------------------------------------------------------------
    def zero_grad(self):
        """Set the gradients of this optimizer's parameters to zero (one memset over the
        flat gradient buffer when they fill it)."""
        self._follow_parameters()
        if sum(hi - lo for lo, hi in self._offsets) == self._grad.size:
            _kernels.zero(self._grad)
        else:
            for lo, hi in self._offsets:
                self._grad[lo:hi] = 0

    def step(self):
        """One update of every trainable parameter from its current gradient."""
        self._follow_parameters()
        for gi, group in enumerate(self.param_groups):
            for run in self._advance(gi):
                self._update(group, run)
        state_version.bump()

    @property
    def lr(self):
        """Learning rate of the first group; setting it sets every group's lr."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        """Learning rate of the first group; setting it sets every group's lr."""
        value = real_number(value, f"{type(self).__name__}: lr")
        _check_lr(value, type(self).__name__)
        for g in self.param_groups:
            g["lr"] = float(value)

    def state_dict(self):
        """{'state': {name: flat array copy, 'step': per-parameter step counts, ...},
        'param_groups': [hyper-parameters and parameter indices]} - enough to continue
        training bit for bit."""
        groups = [
            {k: v for k, v in g.items() if k != "params"} | {"params": idx}
            for g, idx in zip(self.param_groups, self._group_params)
        ]
        self._follow_parameters()
        state = {k: self._gather(v) for k, v in self.state.items()}
        state.update({k: v.copy() for k, v in self._per_param_state().items()})
        return {"state": state, "param_groups": groups}

    def _per_param_state(self):
        """Per-parameter arrays saved with the state (one entry per parameter)."""
        return {"step": self.steps}

    def load_state_dict(self, state_dict):
        """Restore a state written by state_dict into this optimizer (built over the same
        parameters)."""
        groups = state_dict["param_groups"]
        if [g["params"] for g in groups] != self._group_params:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: parameter groups do not "
                "match this optimizer's"
            )
        self._follow_parameters()
        own = {k: self._gather(v) for k, v in self.state.items()}
        own.update(self._per_param_state())
        saved = state_dict["state"]
        if set(saved) != set(own):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state has "
                f"{sorted(saved)}, expected {sorted(own)}"
            )
        for name, arr in saved.items():
            if np.shape(arr) != own[name].shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: state {name!r} "
                    f"has shape {np.shape(arr)}, expected {own[name].shape}"
                )
        for name, arr in saved.items():
            if name in self.state:
                self._scatter(np.asarray(arr, self._data.dtype), self.state[name])
            else:
                np.copyto(own[name], arr, casting="unsafe")
        for g, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    g[k] = tuple(v) if isinstance(v, list) else v

    def __repr__(self):
        g = {k: v for k, v in self.param_groups[0].items() if k not in ("params", "step")}
        opts = ", ".join(f"{k}={v}" for k, v in g.items())
        return f"{type(self).__name__}({opts})"


class _Run:
    """Adjacent parameters [start, stop) with equal step count t, flat range [lo, hi)."""

    __slots__ = ("lo", "hi", "t", "start", "stop")

    def __init__(self, lo, hi, t, start, stop):
        self.lo, self.hi, self.t, self.start, self.stop = lo, hi, t, start, stop


def _as_groups(params):
    if isinstance(params, Parameter):
        raise TypeError(
            "params must be an iterable of Parameters (e.g. model.parameters()), "
            "not a single Parameter"
        )
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
                raise TypeError(
                    f"optimizer params must be fastnn Parameters, got {type(p).__name__}"
                )
            if id(p) in seen:
                raise ValueError(f"parameter {p.name!r} appears more than once in the optimizer")
            seen.add(id(p))
    return groups


def _check_lr(lr, where):
    if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr >= 0):
        raise ValueError(
            f"{where}: invalid learning rate {plain(lr)!r} (must be a finite number >= 0)"
        )


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

    def __init__(
        self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
            ),
        )

    def _validate(self, g):
        _check_lr(g["lr"], "SGD")
        if not g["momentum"] >= 0:  # (not >= rather than <: NaN is refused too)
            raise ValueError(f"SGD: invalid momentum {g['momentum']}")
        if not g["weight_decay"] >= 0:
            raise ValueError(f"SGD: invalid weight_decay {g['weight_decay']}")
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")

    def _needs_state(self, name):
        return any(g["momentum"] != 0 for g in self.param_groups)

    def _update(self, g, run):
        lo, hi = run.lo, run.hi
        buf = self.state["momentum_buffer"][lo:hi] if g["momentum"] != 0 else None
        _kernels.sgd_step(
            self._data[lo:hi],
            self._grad[lo:hi],
            buf,
            g["lr"],
            g["momentum"],
            g["dampening"],
            g["weight_decay"],
            g["nesterov"],
            run.t == 1,
        )


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

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False
    ):
        super().__init__(
            params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        )

    def _validate(self, g):
        _check_betas(g, type(self).__name__)

    def _needs_state(self, name):
        return name != "max_exp_avg_sq" or any(g["amsgrad"] for g in self.param_groups)

    def _update(self, g, run):
        lo, hi, t = run.lo, run.hi, run.t
        b1, b2 = g["betas"]
        vmax = self.state["max_exp_avg_sq"][lo:hi] if g["amsgrad"] else None
        _kernels.adam_step(
            self._data[lo:hi],
            self._grad[lo:hi],
            self.state["exp_avg"][lo:hi],
            self.state["exp_avg_sq"][lo:hi],
            vmax,
            g["lr"],
            b1,
            b2,
            g["eps"],
            g["weight_decay"],
            self._decoupled,
            1.0 - b1**t,
            math.sqrt(1.0 - b2**t),
        )


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019;
    https://arxiv.org/abs/1711.05101), as torch.optim.AdamW: before the Adam update,

    .. math:: \theta_{t-1} \leftarrow \theta_{t-1} (1 - \gamma \lambda)

    and the gradient carries no penalty. Unlike an L2 penalty, the decay is not
    rescaled by Adam's per-parameter step sizes.
    """

    _decoupled = True

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011; https://jmlr.org/papers/v12/duchi11a.html), as
    torch.optim.Adagrad:

    .. math::
        \tilde\gamma &= \gamma / (1 + (t - 1) \eta) \\
        g_t &= \nabla_\theta L + \lambda \theta_{t-1} \\
        s_t &= s_{t-1} + g_t^2 \\
        \theta_t &= \theta_{t-1} - \tilde\gamma \, g_t / (\sqrt{s_t} + \epsilon)

    with lr_decay :math:`\eta` and :math:`s_0` = initial_accumulator_value.
    """

    _state_names = ("sum",)

    def __init__(
        self,
        params,
        lr=1e-2,
        lr_decay=0.0,
        weight_decay=0.0,
        initial_accumulator_value=0.0,
        eps=1e-10,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                lr_decay=lr_decay,
                weight_decay=weight_decay,
                initial_accumulator_value=initial_accumulator_value,
                eps=eps,
            ),
        )

    def _validate(self, g):
        _check_lr(g["lr"], "Adagrad")
        for key in ("lr_decay", "weight_decay", "initial_accumulator_value"):
            if not g[key] >= 0:
                raise ValueError(f"Adagrad: invalid {key} value: {g[key]}")
        # eps = 0 would turn a zero gradient with a zero accumulator into 0/0 = NaN
        if not g["eps"] > 0:
            raise ValueError(f"Adagrad: invalid epsilon value: {g['eps']}")

    def _init_group(self, index, group):
        for lo, hi in self._group_ranges(index):
            self.state["sum"][lo:hi] = group["initial_accumulator_value"]

    def _update(self, g, run):
        lo, hi = run.lo, run.hi
        clr = g["lr"] / (1.0 + (run.t - 1) * g["lr_decay"])
        _kernels.adagrad_step(
            self._data[lo:hi],
            self._grad[lo:hi],
            self.state["sum"][lo:hi],
            clr,
            g["weight_decay"],
            g["eps"],
        )


class RMSprop(Optimizer):
    r"""RMSprop (Hinton, lecture 6e; centered: Graves, 2013), as torch.optim.RMSprop:

    .. math::
        g_t &= \nabla_\theta L + \lambda \theta_{t-1} \\
        v_t &= \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        \bar g_t &= \alpha \bar g_{t-1} + (1 - \alpha) g_t, \quad
            d_t = \sqrt{v_t - \bar g_t^2} + \epsilon \quad \text{(centered)} \\
        d_t &= \sqrt{v_t} + \epsilon \quad \text{(otherwise)} \\
        b_t &= \mu b_{t-1} + g_t / d_t, \quad \theta_t = \theta_{t-1} - \gamma b_t
            \quad \text{(momentum } \mu > 0) \\
        \theta_t &= \theta_{t-1} - \gamma g_t / d_t \quad \text{(otherwise)}
    """

    _state_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(
        self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                alpha=alpha,
                eps=eps,
                weight_decay=weight_decay,
                momentum=momentum,
                centered=centered,
            ),
        )

    def _validate(self, g):
        _check_lr(g["lr"], "RMSprop")
        if not 0.0 <= g["alpha"] <= 1.0:
            raise ValueError(f"RMSprop: invalid alpha value: {g['alpha']}")
        for key in ("eps",):
            if not g[key] > 0:
                raise ValueError(f"RMSprop: invalid {key} value: {g[key]}")
        for key in ("momentum", "weight_decay"):
            if not g[key] >= 0:
                raise ValueError(f"RMSprop: invalid {key} value: {g[key]}")

    def _needs_state(self, name):
        if name == "grad_avg":
            return any(g["centered"] for g in self.param_groups)
        if name == "momentum_buffer":
            return any(g["momentum"] > 0 for g in self.param_groups)
        return True

    def _update(self, g, run):
        lo, hi = run.lo, run.hi
        st = self.state
        _kernels.rmsprop_step(
            self._data[lo:hi],
            self._grad[lo:hi],
            st["square_avg"][lo:hi],
            st["grad_avg"][lo:hi] if g["centered"] else None,
            st["momentum_buffer"][lo:hi] if g["momentum"] > 0 else None,
            g["lr"],
            g["alpha"],
            g["eps"],
            g["weight_decay"],
            g["momentum"],
        )


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012; https://arxiv.org/abs/1212.5701), as torch.optim.Adadelta:

    .. math::
        g_t &= \nabla_\theta L + \lambda \theta_{t-1} \\
        v_t &= \rho v_{t-1} + (1 - \rho) g_t^2 \\
        \Delta_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} g_t \\
        u_t &= \rho u_{t-1} + (1 - \rho) \Delta_t^2 \\
        \theta_t &= \theta_{t-1} - \gamma \Delta_t
    """

    _state_names = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _validate(self, g):
        _check_lr(g["lr"], "Adadelta")
        if not 0.0 <= g["rho"] <= 1.0:
            raise ValueError(f"Adadelta: invalid rho value: {g['rho']}")
        if not g["eps"] > 0:
            raise ValueError(f"Adadelta: invalid epsilon value: {g['eps']}")
        if not g["weight_decay"] >= 0:
            raise ValueError(f"Adadelta: invalid weight_decay value: {g['weight_decay']}")

    def _update(self, g, run):
        lo, hi = run.lo, run.hi
        _kernels.adadelta_step(
            self._data[lo:hi],
            self._grad[lo:hi],
            self.state["square_avg"][lo:hi],
            self.state["acc_delta"][lo:hi],
            g["lr"],
            g["rho"],
            g["eps"],
            g["weight_decay"],
        )


def _check_betas(g, name):
    """The checks of the Adam family: lr, betas in [0, 1), eps > 0, weight_decay >= 0."""
    _check_lr(g["lr"], name)
    b1, b2 = g["betas"]
    if not 0.0 <= b1 < 1.0:
        raise ValueError(f"{name}: invalid beta parameter at index 0: {b1}")
    if not 0.0 <= b2 < 1.0:
        raise ValueError(f"{name}: invalid beta parameter at index 1: {b2}")
    if not g["eps"] > 0:
        raise ValueError(f"{name}: invalid epsilon value: {g['eps']}")
    if not g["weight_decay"] >= 0:
        raise ValueError(f"{name}: invalid weight_decay value: {g['weight_decay']}")


class Adamax(Optimizer):
    r"""Adamax, Adam with the infinity norm (Kingma & Ba, 2015, section 7), as
    torch.optim.Adamax:

    .. math::
        g_t &= \nabla_\theta L + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        u_t &= \max(\beta_2 u_{t-1}, |g_t| + \epsilon) \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t} \frac{m_t}{u_t}
    """

    _state_names = ("exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _validate(self, g):
        _check_betas(g, "Adamax")

    def _update(self, g, run):
        lo, hi = run.lo, run.hi
        b1, b2 = g["betas"]
        clr = g["lr"] / (1.0 - b1**run.t)
        _kernels.adamax_step(
            self._data[lo:hi],
            self._grad[lo:hi],
            self.state["exp_avg"][lo:hi],
            self.state["exp_inf"][lo:hi],
            clr,
            b1,
            b2,
            g["eps"],
            g["weight_decay"],
        )


class NAdam(Optimizer):
    r"""Adam with Nesterov momentum (Dozat, 2016), as torch.optim.NAdam:

    .. math::
        \mu_t &= \beta_1 (1 - \tfrac12 \, 0.96^{t \psi}), \quad
        \Pi_t = \textstyle\prod_{i \le t} \mu_i \\
        g_t &= \nabla_\theta L + \lambda \theta_{t-1}
            \quad (\text{or } \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)
            \text{ when decoupled}) \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        d_t &= \sqrt{v_t / (1 - \beta_2^t)} + \epsilon \\
        \theta_t &= \theta_{t-1} - \gamma \frac{1 - \mu_t}{1 - \Pi_t} \frac{g_t}{d_t}
            - \gamma \frac{\mu_{t+1}}{1 - \Pi_{t+1}} \frac{m_t}{d_t}

    with momentum_decay :math:`\psi`. Paper: https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ
    """

    _state_names = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params,
        lr=2e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        momentum_decay=4e-3,
        decoupled_weight_decay=False,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                momentum_decay=momentum_decay,
                decoupled_weight_decay=decoupled_weight_decay,
            ),
        )
        self.mu_product = np.ones(len(self._params))  # prod of mu_1..mu_t, per parameter

    def _validate(self, g):
        _check_betas(g, "NAdam")
        if not g["momentum_decay"] >= 0:
            raise ValueError(f"NAdam: invalid momentum_decay value: {g['momentum_decay']}")

    def _per_param_state(self):
        return {"step": self.steps, "mu_product": self.mu_product}

    def _update(self, g, run):
        lo, hi, t = run.lo, run.hi, run.t
        b1, b2 = g["betas"]
        psi, lr = g["momentum_decay"], g["lr"]
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        # Parameters with equal step counts have equal products (a function of t).
        prods = self.mu_product[run.start : run.stop]
        prods *= mu
        prod = float(prods[0])
        _kernels.nadam_step(
            self._data[lo:hi],
            self._grad[lo:hi],
            self.state["exp_avg"][lo:hi],
            self.state["exp_avg_sq"][lo:hi],
            lr,
            b1,
            b2,
            g["eps"],
            g["weight_decay"],
            g["decoupled_weight_decay"],
            1.0 - b2**t,
            -lr * (1.0 - mu) / (1.0 - prod),
            -lr * mu_next / (1.0 - prod * mu_next),
        )


def _trainable_grads(parameters):
    """The gradient arrays of the trainable parameters: the single flat gradient buffer
    when the parameters are exactly one optimizer's, else one array per parameter."""
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    params = [p for p in parameters if p.requires_grad]
    owners = {id(p._owner) for p in params}
    if len(owners) == 1 and params[0]._owner is not None:
        flat = params[0]._owner.grad
        if sum(p.size for p in params) == flat.size:
            return [flat]
    return [p.grad for p in params]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients of `parameters` (trainable ones) so that their global norm is
    at most max_norm, as torch.nn.utils.clip_grad_norm_: with
    total = ||concat(grads)||_p, the gradients are multiplied by
    max_norm / (total + 1e-6) when that is below 1. Returns total (before clipping),
    computed by one reduction over the flat gradient buffer when the parameters are
    an optimizer's. norm_type: 2.0 (default), any p >= 1, or inf."""
    max_norm = float(max_norm)
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be positive, got {max_norm}")
    norm_type = float(norm_type)
    if not norm_type >= 1:
        raise ValueError(f"clip_grad_norm_: norm_type must be >= 1 or inf, got {norm_type}")
    grads = _trainable_grads(parameters)
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.abs(g).max()) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        total = math.sqrt(sum(_kernels.sumsq(g) for g in grads))
    else:
        total = sum(float((np.abs(g.astype(np.float64)) ** norm_type).sum()) for g in grads)
        total **= 1.0 / norm_type
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise RuntimeError(f"clip_grad_norm_: the total norm of the gradients is {total}")
        return total
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            _kernels.scale(g, coef)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient entry of the trainable `parameters` to [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    if not clip_value > 0:
        raise ValueError(f"clip_grad_value_: clip_value must be positive, got {clip_value}")
    for g in _trainable_grads(parameters):
        np.clip(g, -clip_value, clip_value, out=g)
