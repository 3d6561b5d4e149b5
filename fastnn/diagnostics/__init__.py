"""Diagnostics: the debugging checklist as tools.

Each function returns a small result object whose repr is a short table and a
verdict, with `passed` (or `kind`) where it judges:

- check_data(X, y, X_test=None, y_test=None): NaN/inf, constant or badly scaled
  features, label range/balance, duplicates and train/test leakage, distribution
  shift, preprocessing mismatch, labels separated from their samples.
- loss_at_init(model, loss, X, y): the initial loss against ln K / the loss of
  predicting 0, with the likely cause of a mismatch.
- gradient_check(model, loss, X, y, eps=1e-6): backward against central differences
  in float64, for every parameter and the input.
- overfit_small_batch(model, loss, X, y, steps=200): can the model fit 16 samples?
- activation_stats(model, X), gradient_stats(model, loss, X, y): per-layer mean, std,
  saturation, dead units; gradient and weight norms; vanishing/exploding gradients.
- init_depth_experiment(depth=10, width=256, activation='tanh'): seed 002's
  activation std by depth for zeros / N(0,1) / small normal / Xavier / Kaiming.
- hessian_spectrum(model, loss, X, y, k=6): extreme Hessian eigenvalues (minimum or
  saddle), the escape direction, `.escape(model, step)`.
- triage(shallow_factory, deep_factory, X, y): model bias or optimisation (seed 003).
- run_doctor(X, y, model=None, out=None): all of the above in one report
  (`fastnn doctor` on the command line).
"""

from ._result import Issue
from .data_checks import DataReport, check_data
from .depth import DepthExperiment, init_depth_experiment
from .doctor import DoctorReport, run_doctor
from .gradcheck import GradientCheckResult, gradient_check
from .hessian import EscapePath, HessianResult, hessian_spectrum
from .init_loss import InitLossResult, loss_at_init
from .layer_stats import ActivationStats, GradientStats, activation_stats, gradient_stats
from .overfit import OverfitResult, overfit_small_batch
from .triage import TriageResult, triage

__all__ = [
    "ActivationStats",
    "DataReport",
    "DepthExperiment",
    "DoctorReport",
    "EscapePath",
    "GradientCheckResult",
    "GradientStats",
    "HessianResult",
    "InitLossResult",
    "Issue",
    "OverfitResult",
    "TriageResult",
    "activation_stats",
    "check_data",
    "gradient_check",
    "gradient_stats",
    "hessian_spectrum",
    "init_depth_experiment",
    "loss_at_init",
    "overfit_small_batch",
    "run_doctor",
    "triage",
]
