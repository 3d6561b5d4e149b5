"""Learning-rate schedules, each equal to its torch.optim.lr_scheduler counterpart.

A schedule sets `lr` of every parameter group of its optimizer from that group's
initial ("base") lr. The Trainer calls `step()` after every epoch, or after every
optimizer step for schedules built with interval='step' (warmup within the first
epoch); ReduceOnPlateau is stepped with the monitored value. `state_dict()` /
`load_state_dict()` make schedules part of checkpoints.
"""

from __future__ import annotations

import math
from typing import Iterable

from .validation import choice, positive_int


def _positive_gamma(gamma, where):
    """gamma as a float > 0 (a zero or negative factor would make the lr 0 or negative,
    which the optimizers refuse)."""
    gamma = float(gamma)
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"{where}: gamma must be a positive number, got {gamma}")
    return gamma


class Schedule:
    """Base class: subclasses define `factor(t)`, the multiplier of the base lr after
    t steps of the schedule (t = 0 at construction)."""

    def __init__(self, optimizer, interval="epoch"):
        self.optimizer = optimizer
        self.interval = choice(interval, {"epoch", "step"}, "schedule interval")
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def factor(self, t):
        """The multiplier of the base learning rate after t steps of the schedule."""
        raise NotImplementedError

    def lr_at(self, t, base_lr):
        """The learning rate after t steps for a group whose base rate is base_lr."""
        return base_lr * self.factor(t)

    def _apply(self):
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(self.last_epoch, base)

    def step(self):
        """Advance one epoch (or one optimizer step for interval='step')."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self):
        """The current learning rate of each parameter group (a list)."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        """The schedule's state (everything but the optimizer), for checkpoints."""
        return {
            k: v
            for k, v in vars(self).items()
            if k != "optimizer" and not callable(v) and not isinstance(v, Schedule)
        }

    def load_state_dict(self, state):
        """Restore a state written by state_dict."""
        for k, v in state.items():
            setattr(self, k, list(v) if isinstance(v, tuple) else v)

    def __repr__(self):
        opts = ", ".join(
            f"{k}={v}" for k, v in self.state_dict().items() if k not in ("base_lrs", "last_epoch")
        )
        return f"{type(self).__name__}({opts})"


class StepDecay(Schedule):
    """lr = base * gamma ** floor((t - warmup_epochs) / step_size) once t reaches
    warmup_epochs, base before: "the first X epochs at a, then every Y epochs divide by
    b" (X = warmup_epochs, Y = step_size, b = 1 / gamma). With
    warmup_epochs=0 it is torch's StepLR."""

    def __init__(self, optimizer, step_size, gamma=0.1, warmup_epochs=0, interval="epoch"):
        self.step_size = positive_int(step_size, "step_size")
        self.gamma = _positive_gamma(gamma, "StepDecay")
        if warmup_epochs < 0:
            raise ValueError(f"StepDecay: warmup_epochs must be >= 0, got {warmup_epochs}")
        self.warmup_epochs = int(warmup_epochs)
        super().__init__(optimizer, interval)

    def factor(self, t):
        """gamma ** (number of completed step_size periods after the warm-up)."""
        return self.gamma ** (max(0, t - self.warmup_epochs) // self.step_size)


class MultiStep(Schedule):
    """lr = base * gamma ** (number of milestones <= t) (torch's MultiStepLR)."""

    def __init__(self, optimizer, milestones, gamma=0.1, interval="epoch"):
        self.milestones = sorted(int(m) for m in milestones)
        if any(m < 0 for m in self.milestones):
            raise ValueError(f"MultiStep: milestones must be >= 0, got {self.milestones}")
        self.gamma = _positive_gamma(gamma, "MultiStep")
        super().__init__(optimizer, interval)

    def factor(self, t):
        """gamma ** (number of milestones reached by t)."""
        return self.gamma ** sum(1 for m in self.milestones if m <= t)


class ExponentialDecay(Schedule):
    """lr = base * gamma ** t (torch's ExponentialLR)."""

    def __init__(self, optimizer, gamma, interval="epoch"):
        self.gamma = _positive_gamma(gamma, "ExponentialDecay")
        super().__init__(optimizer, interval)

    def factor(self, t):
        """gamma ** t."""
        return self.gamma**t


class CosineAnnealing(Schedule):
    """lr = eta_min + (base - eta_min) (1 + cos(pi t_cur / T_i)) / 2 (Loshchilov &
    Hutter, 2017). Without restarts t_cur = t and T_i = T_max (torch's
    CosineAnnealingLR); with restarts=True the cycle starts over every T_i steps, each
    cycle T_mult times longer than the last (torch's CosineAnnealingWarmRestarts with
    T_0 = T_max)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, restarts=False, T_mult=1, interval="epoch"):
        self.T_max = positive_int(T_max, "T_max")
        self.eta_min = float(eta_min)
        if not (math.isfinite(self.eta_min) and self.eta_min >= 0):
            raise ValueError(f"CosineAnnealing: eta_min must be >= 0, got {eta_min}")
        self.restarts = bool(restarts)
        self.T_mult = positive_int(T_mult, "T_mult")
        super().__init__(optimizer, interval)

    def _position(self, t):
        """(t_cur, T_i): position within the current cycle and its length."""
        if not self.restarts:
            return t, self.T_max
        T_i = self.T_max
        while t >= T_i:
            t -= T_i
            T_i *= self.T_mult
        return t, T_i

    def lr_at(self, t, base_lr):
        """eta_min + (base_lr - eta_min) (1 + cos(pi t_cur / T)) / 2, with restarts."""
        t_cur, T_i = self._position(t)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t_cur / T_i)) / 2


class LinearWarmup(Schedule):
    """Linear warmup from start_factor * base to base over warmup_epochs steps (torch's
    LinearLR), then hands over to `after` (another schedule of the same optimizer,
    stepped from its own t = 0, as torch's SequentialLR), or stays at base. The base
    lrs are the optimizer's lrs from before `after` was built. interval defaults to
    `after`'s (else 'epoch'); a different one is an error."""

    def __init__(self, optimizer, warmup_epochs, start_factor=1.0 / 3, after=None, interval=None):
        self.warmup_epochs = positive_int(warmup_epochs, "warmup_epochs")
        if not 0.0 < start_factor <= 1.0:
            raise ValueError(f"LinearWarmup: start_factor must be in (0, 1], got {start_factor}")
        self.start_factor = float(start_factor)
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup: `after` must schedule the same optimizer")
        self.after = after
        if after is not None:
            if interval is not None and interval != after.interval:
                raise ValueError(
                    f"LinearWarmup: interval={interval!r} but `after` steps "
                    f"per {after.interval!r}; give both the same interval"
                )
            interval = after.interval
            # `after` has already set its own t = 0 lr; start from the lrs it started
            # from (as torch's SequentialLR resets to the initial lrs)
            for g, base in zip(optimizer.param_groups, after.base_lrs):
                g["lr"] = base
        super().__init__(optimizer, "epoch" if interval is None else interval)

    def lr_at(self, t, base_lr):
        """Linear from start_factor * base_lr to base_lr over the warm-up, then the wrapped
        schedule's rate."""
        if t < self.warmup_epochs or self.after is None:
            frac = min(t, self.warmup_epochs) / self.warmup_epochs
            return base_lr * (self.start_factor + (1.0 - self.start_factor) * frac)
        return self.after.lr_at(t - self.warmup_epochs, base_lr)

    def state_dict(self):
        """The warm-up's state and the wrapped schedule's, for checkpoints."""
        state = super().state_dict()
        if self.after is not None:
            state["after"] = self.after.state_dict()
        return state

    def load_state_dict(self, state):
        """Restore a state written by state_dict."""
        state = dict(state)
        after = state.pop("after", None)
        super().load_state_dict(state)
        if after is not None and self.after is not None:
            self.after.load_state_dict(after)


class ReduceOnPlateau:
    """Multiply lr by `factor` when the monitored value (default 'val_loss') has not
    improved for more than `patience` epochs (torch's ReduceLROnPlateau): improvement
    means below best * (1 - threshold) in mode 'min' with threshold_mode 'rel' (above
    best * (1 + threshold) in 'max'), or by more than threshold in 'abs' mode
    (min_delta=d is threshold=d, threshold_mode='abs'). After a reduction, `cooldown`
    epochs pass before bad epochs count again; lr never goes below min_lr, and a
    reduction smaller than eps is skipped."""

    interval = "epoch"

    def __init__(
        self,
        optimizer,
        monitor="val_loss",
        mode="min",
        factor=0.1,
        patience=10,
        threshold=1e-4,
        threshold_mode="rel",
        cooldown=0,
        min_lr=0.0,
        eps=1e-8,
        min_delta=None,
    ):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceOnPlateau: factor must be in (0, 1), got {factor}")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"ReduceOnPlateau: monitor must be a metric name, got {monitor!r}")
        self.optimizer = optimizer
        self.monitor = monitor
        self.mode = choice(mode, {"min", "max"}, "mode")
        self.factor = float(factor)
        self.patience = int(patience)
        if min_delta is not None:
            threshold, threshold_mode = float(min_delta), "abs"
        self.threshold = float(threshold)
        self.threshold_mode = choice(threshold_mode, {"rel", "abs"}, "threshold_mode")
        self.cooldown = int(cooldown)
        for name in ("patience", "threshold", "cooldown"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ReduceOnPlateau: {name} must be >= 0, got {getattr(self, name)}")
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(
                    f"ReduceOnPlateau: expected {n} min_lr values (one per "
                    f"parameter group), got {len(min_lr)}"
                )
            self.min_lrs = [float(v) for v in min_lr]
        else:
            self.min_lrs = [float(min_lr)] * n
        if not all(v >= 0 for v in self.min_lrs):
            raise ValueError(f"ReduceOnPlateau: min_lr must be >= 0, got {min_lr}")
        self.eps = float(eps)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _is_better(self, a, best):
        if self.mode == "min":
            return a < (
                best * (1 - self.threshold)
                if self.threshold_mode == "rel"
                else best - self.threshold
            )
        return a > (
            best * (1 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold
        )

    def step(self, metric):
        """Record this epoch's value of the monitored metric."""
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(g["lr"] * self.factor, min_lr)
                if g["lr"] - new_lr > self.eps:
                    g["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def get_last_lr(self):
        """The current learning rate of each parameter group (a list)."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        """The schedule's state (everything but the optimizer), for checkpoints."""
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state):
        """Restore a state written by state_dict."""
        for k, v in state.items():
            setattr(self, k, v)

    def __repr__(self):
        return (
            f"ReduceOnPlateau(monitor={self.monitor!r}, mode={self.mode!r}, "
            f"factor={self.factor}, patience={self.patience})"
        )


class BatchSizeSchedule:
    """Grow the batch size during training instead of (or besides) decaying the learning
    rate (Smith et al., 2018, "Don't decay the learning rate, increase the batch size").

    With fit's batch_size as the base, the batch size after t completed epochs is
        base * factor ** (number of milestones <= t), capped at max_batch_size
    (milestones count epochs as torch's MultiStepLR: milestones=[10] doubles it from the
    11th epoch). scale_lr makes the optimizer's learning rates follow the batch size:
    'linear' multiplies them by the batch-size ratio (Goyal et al., 2017), 'sqrt' by its
    square root, None (the default) leaves them alone. Give it to
    `Trainer(batch_size_schedule=...)`; the History records 'batch_size' per epoch.
    It holds no state: the batch size and lr factor are functions of the epoch count, so
    a resumed fit continues the schedule.
    """

    def __init__(
        self,
        milestones: Iterable[int],
        factor: int = 2,
        scale_lr: str | None = None,
        max_batch_size: int | None = None,
    ):
        self.milestones = sorted(int(m) for m in milestones)
        if any(m < 1 for m in self.milestones):
            raise ValueError(f"BatchSizeSchedule: milestones must be >= 1, got {self.milestones}")
        self.factor = positive_int(factor, "BatchSizeSchedule factor")
        self.scale_lr = (
            None
            if scale_lr is None
            else choice(scale_lr, {"linear", "sqrt"}, "BatchSizeSchedule scale_lr")
        )
        self.max_batch_size = (
            None
            if max_batch_size is None
            else positive_int(max_batch_size, "BatchSizeSchedule max_batch_size")
        )

    def batch_size(self, t: int, base: int) -> int:
        """The batch size of the epoch after t completed epochs, from fit's batch_size."""
        size = base * self.factor ** sum(1 for m in self.milestones if m <= t)
        return size if self.max_batch_size is None else min(size, max(base, self.max_batch_size))

    def lr_factor(self, t: int, base: int) -> float:
        """The multiplier of the learning rates at epoch t relative to epoch 0."""
        ratio = self.batch_size(t, base) / base
        return {None: 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[self.scale_lr]

    def __repr__(self):
        return (
            f"BatchSizeSchedule(milestones={self.milestones}, factor={self.factor}, "
            f"scale_lr={self.scale_lr!r}, max_batch_size={self.max_batch_size})"
        )
