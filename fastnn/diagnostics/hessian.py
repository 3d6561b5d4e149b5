r"""The Hessian of the training loss at a point: when the
loss stops falling the gradient is ~0, and the Hessian's eigenvalues tell a local
minimum (all >= 0) from a saddle point (some < 0); along an eigenvector of negative
curvature the loss still goes down.

Hessian-vector products come from central differences of gradients, in float64:

    H v ~ (g(theta + h u) - g(theta - h u)) / (2 h) * |v|,    u = v / |v|

whose error is (h^2 / 6) D^3g[u, u, u] (truncation) plus ~eps_mach |g| / h (round-off
in the gradients). For a smooth loss the best step is h ~ eps_mach^(1/3); but with
ReLU-type kinks a perturbation that moves a pre-activation across 0 makes the gradient
jump, and one such crossing adds an error of order jump / h - fatal for Lanczos. The
number of crossings grows with h, so the step is kept small: h = hvp_eps * max(1,
|theta|) with hvp_eps = sqrt(eps_mach) ~ 1.5e-8 by default. Truncation is then
negligible (O(h^2) ~ 1e-16 relative) and round-off O(sqrt(eps_mach)) ~ 1e-8 relative;
on the 670K-parameter MLP-BN model the eps^(1/3) rule (h ~ 2e-4) gave HVPs corrupted by
crossings (eigenvalues -147 .. 110), this rule gives eigenpairs whose residuals
|H v - lambda v|, re-measured with a 4x smaller step, are ~1e-8. Those residuals are
computed for every result (`.residuals`), and a warning is raised when they are large.

Tiny models (n_params <= dense_max, 200 by default) get the dense Hessian, one HVP per
unit vector, symmetrised and diagonalised by numpy.linalg.eigh. Larger ones never form
it: scipy.sparse.linalg.eigsh runs Lanczos (ARPACK) on a LinearOperator whose matvec
is the HVP, asking for both ends of the spectrum (which='BE'), so the cost is two
forward/backward passes per Lanczos step and the memory a few vectors of n_params."""

import math
import time
import warnings

import numpy as np

from ._objective import Objective, preserved_rng, trainable
from ._result import Result, fmt, table

EPS_MACH = float(np.finfo(np.float64).eps)


class EscapePath(Result):
    """The losses along the path of HessianResult.escape: `steps` (signed distances
    along the escape direction), `losses`, `sign` (+1 or -1, the side that lowers the
    loss), `decreased` (final loss below the starting one)."""

    title = "escape along negative curvature"

    def __init__(self, steps, losses, sign, curvature):
        self.steps = np.asarray(steps)
        self.losses = np.asarray(losses)
        self.sign = sign
        self.curvature = curvature
        self.decreased = bool(self.losses[-1] < self.losses[0])

    def _lines(self):
        rows = [
            (float(s), float(v), float(v - self.losses[0])) for s, v in zip(self.steps, self.losses)
        ]
        return [
            f"  moved {fmt(abs(float(self.steps[-1])))} along {'+' if self.sign > 0 else '-'}"
            f"escape direction (curvature {fmt(self.curvature)}): loss "
            f"{fmt(float(self.losses[0]))} -> {fmt(float(self.losses[-1]))}",
            table(("step", "loss", "change"), rows),
        ]


class HessianResult(Result):
    """Outcome of hessian_spectrum.

    eigenvalues: ascending, the extremes of the spectrum (k of them: the smallest and
    the largest); eigenvectors: (n_params, k), column i for eigenvalues[i], in the flat
    order of the trainable parameters (`parameter_names`, `split(v)` turns a vector into
    {name: array}); kind: 'minimum' (no eigenvalue below -tolerance, some above),
    'saddle' (eigenvalues of both signs), 'maximum' (none above +tolerance), 'flat'
    (all within +-tolerance); tolerance: the threshold used, rtol * max|eigenvalue| or
    atol if larger; escape_direction: the unit eigenvector of the most negative
    eigenvalue when it is below -tolerance, else None; gradient_norm and loss at the
    point; residuals: |H v - lambda v| / max|lambda| of each eigenpair, re-measured with
    a 4x smaller finite-difference step (~1e-8 when all is well); all_eigenvalues: the
    whole spectrum on the dense route (else None); method ('dense' or 'lanczos'),
    n_hvp (Hessian-vector products used), seconds."""

    title = "Hessian spectrum"

    def __init__(
        self,
        objective,
        theta0,
        eigenvalues,
        eigenvectors,
        rtol,
        atol,
        gradient_norm,
        loss,
        method,
        n_hvp,
        seconds,
        all_eigenvalues=None,
        residuals=None,
    ):
        self._objective = objective
        self._theta0 = theta0
        self.eigenvalues = eigenvalues
        self.eigenvectors = eigenvectors
        self.all_eigenvalues = all_eigenvalues
        self.residuals = residuals
        self.gradient_norm = gradient_norm
        self.loss = loss
        self.method, self.n_hvp, self.seconds = method, n_hvp, seconds
        self.n_params = int(theta0.size)
        self.parameter_names = list(objective.names)
        scale = float(np.max(np.abs(eigenvalues))) if eigenvalues.size else 0.0
        self.tolerance = max(rtol * scale, atol)
        lo, hi = float(eigenvalues[0]), float(eigenvalues[-1])
        neg, pos = lo < -self.tolerance, hi > self.tolerance
        self.kind = "saddle" if neg and pos else "maximum" if neg else "minimum" if pos else "flat"
        if neg:
            d = eigenvectors[:, 0].astype(np.float64)
            self.escape_direction = d / np.linalg.norm(d)
        else:
            self.escape_direction = None

    def split(self, vector):
        """{parameter name: array in the parameter's shape} for a flat vector (an
        eigenvector, the escape direction)."""
        return self._objective.split(vector)

    @property
    def critical(self):
        """Whether the gradient is small enough to call this a critical point: |g| below
        1e-3 * max(1, |loss|) (the kind describes the local curvature either way)."""
        return self.gradient_norm <= 1e-3 * max(1.0, abs(self.loss))

    def _lines(self):
        ev = ", ".join(fmt(float(v)) for v in self.eigenvalues)
        how = {
            "minimum": "no negative curvature: a local minimum (if the gradient is ~0)",
            "saddle": "negative and positive curvature: a saddle point; the loss falls "
            "along escape_direction",
            "maximum": "only negative curvature: a local maximum",
            "flat": "no curvature above the tolerance: flat here",
        }[self.kind]
        lines = [
            f"  kind: {self.kind} - {how}",
            f"  eigenvalues (extremes, ascending): {ev}",
            f"  tolerance {fmt(self.tolerance)}; loss {fmt(self.loss)}, gradient norm "
            f"{fmt(self.gradient_norm)}"
            + ("" if self.critical else " (not a critical point: the gradient is not ~0)"),
            f"  {self.n_params:,} parameters; {self.method}, {self.n_hvp} Hessian-vector "
            f"products, {self.seconds:.2f} s; max eigenpair residual "
            f"{fmt(float(np.max(self.residuals))) if self.residuals is not None else '-'}",
        ]
        return lines

    def escape(self, model, step=None, n_points=11):
        """Move `model`'s trainable parameters from the analysed point along the escape
        direction, on the side (+ or -) where the loss is lower, by `step` (default: the
        distance at which the quadratic model predicts a 10% lower loss, sqrt(0.2 |L| /
        |lambda_min|)). The model must still be at the point the spectrum was computed
        for. Returns an EscapePath with the loss at n_points distances from 0 to step;
        the model ends at the last of them."""
        if self.escape_direction is None:
            raise ValueError(
                f"escape: no direction of negative curvature (kind "
                f"{self.kind!r}); escaping needs a saddle point"
            )
        params = trainable(model)
        names = [n for n, _ in params]
        if names != self.parameter_names:
            raise ValueError(
                "escape: the model's trainable parameters are not those the "
                "spectrum was computed for"
            )
        current = np.concatenate([p.data.reshape(-1).astype(np.float64) for _, p in params])
        scale = max(1.0, float(np.linalg.norm(self._theta0)))
        if not np.allclose(current, self._theta0, rtol=1e-5, atol=1e-6 * scale):
            raise ValueError(
                "escape: the model's parameters changed since hessian_spectrum "
                "was computed; compute the spectrum again"
            )
        lam = float(self.eigenvalues[0])
        if step is None:
            step = math.sqrt(0.2 * max(abs(self.loss), 1e-12) / abs(lam))
        step = float(step)
        if not step > 0:
            raise ValueError(f"escape: step must be positive, got {step}")
        obj, d, theta0 = self._objective, self.escape_direction, self._theta0
        with preserved_rng():
            ends = {s: obj.value_at(theta0 + s * step * d) for s in (1.0, -1.0)}
            sign = 1.0 if ends[1.0] <= ends[-1.0] else -1.0
            ts = np.linspace(0.0, step, int(n_points)) * sign
            losses = [obj.value_at(theta0 + t * d) for t in ts]
        target = theta0 + ts[-1] * d
        for (_, p), lo, hi in zip(params, obj.offsets[:-1], obj.offsets[1:]):
            p.data = target[lo:hi].reshape(p.shape)
        return EscapePath(ts, losses, sign, lam)


def hessian_spectrum(
    model,
    loss,
    X,
    y,
    k=6,
    dense_max=200,
    hvp_eps=None,
    tol=1e-6,
    maxiter=None,
    ncv=None,
    rtol=1e-4,
    atol=1e-8,
    seed=0,
):
    """Extreme eigenvalues and eigenvectors of the Hessian of the mean loss on (X, y)
    with respect to all trainable parameters, at the model's current parameters.

    The objective is the training loss of a float64 copy of the model in training mode
    (BatchNorm with batch statistics) with dropout off, weight penalties included; the
    model is not changed (except by HessianResult.escape). k: number of eigenvalues
    (half from each end of the spectrum, one more from the top when k is odd).
    dense_max: models with at most this many parameters get the exact dense route.
    hvp_eps: relative finite-difference step (default sqrt(eps_mach), see the module
    docstring). tol, maxiter, ncv: passed to scipy.sparse.linalg.eigsh (relative
    accuracy of the eigenvalues, Lanczos iterations, Krylov basis size). rtol, atol:
    eigenvalues within +-max(rtol * max|eigenvalue|, atol) count as zero when judging
    the kind. seed: the Lanczos start vector.

    Returns a HessianResult: .eigenvalues, .eigenvectors, .kind, .tolerance,
    .escape_direction, .gradient_norm and .escape(model, step)."""
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    k = int(k)
    if k < 1:
        raise ValueError(f"hessian_spectrum: k must be >= 1, got {k}")
    start = time.perf_counter()
    with preserved_rng():
        obj = Objective(model, loss, X, y, np.float64, dropout="off", where="hessian_spectrum")
        theta0 = obj.get()
        n = obj.size
        g0 = obj.gradient(theta0)
        value = obj.value_at(theta0)
        rel = float(math.sqrt(EPS_MACH) if hvp_eps is None else hvp_eps)
        if not rel > 0:
            raise ValueError(f"hessian_spectrum: hvp_eps must be positive, got {hvp_eps}")
        h = rel * max(1.0, float(np.linalg.norm(theta0)))
        count = [0]

        def hvp(v, step=h):
            v = np.asarray(v, dtype=np.float64).reshape(-1)
            norm = float(np.linalg.norm(v))
            if norm == 0:
                return np.zeros(n)
            u = v / norm
            count[0] += 1
            gp = obj.gradient(theta0 + step * u)
            gm = obj.gradient(theta0 - step * u)
            return (gp - gm) * (norm / (2 * step))

        all_ev = None
        if n <= dense_max or k >= n:
            H = np.empty((n, n))
            eye = np.zeros(n)
            for i in range(n):
                eye[i] = 1.0
                H[:, i] = hvp(eye)
                eye[i] = 0.0
            H = 0.5 * (H + H.T)
            all_ev, vecs = np.linalg.eigh(H)
            if k >= n:
                idx = np.arange(n)
            else:
                low = k // 2
                idx = np.concatenate([np.arange(low), np.arange(n - (k - low), n)])
            evals, evecs, method = all_ev[idx], vecs[:, idx], "dense"
        else:
            op = LinearOperator((n, n), matvec=hvp, dtype=np.float64)
            v0 = np.random.default_rng(seed).standard_normal(n)
            if ncv is None:
                ncv = min(n, max(2 * k + 1, 20))
            try:
                if k == 1:
                    evals, evecs = eigsh(
                        op, k=1, which="LM", v0=v0, tol=tol, maxiter=maxiter, ncv=ncv
                    )
                else:
                    evals, evecs = eigsh(
                        op, k=k, which="BE", v0=v0, tol=tol, maxiter=maxiter, ncv=ncv
                    )
            except ArpackNoConvergence as e:
                if len(e.eigenvalues) < min(2, k):
                    raise RuntimeError(
                        f"hessian_spectrum: Lanczos did not converge after {count[0]} "
                        "Hessian-vector products; raise maxiter or tol, or use a smaller "
                        "batch"
                    ) from None
                evals, evecs = e.eigenvalues, e.eigenvectors
            order = np.argsort(evals)
            evals, evecs, method = evals[order], evecs[:, order], "lanczos"
        # Check each eigenpair with HVPs at a 4x smaller step: kink crossings or a
        # non-converged Lanczos show up as large residuals.
        scale = max(float(np.max(np.abs(evals))), atol)
        residuals = np.array(
            [
                np.linalg.norm(hvp(evecs[:, i], h / 4) - evals[i] * evecs[:, i]) / scale
                for i in range(evals.size)
            ]
        )
        obj.set(theta0)
    if np.any(residuals > 1e-3):
        warnings.warn(
            f"hessian_spectrum: eigenpair residuals up to {residuals.max():.2g} "
            "(relative to the largest eigenvalue): the Hessian-vector products are "
            "unreliable here (kinks crossed by the finite-difference step?); try a "
            "smaller hvp_eps or a smaller tol",
            RuntimeWarning,
            stacklevel=2,
        )
    seconds = time.perf_counter() - start
    return HessianResult(
        obj,
        theta0,
        np.asarray(evals, np.float64),
        np.asarray(evecs),
        rtol,
        atol,
        float(np.linalg.norm(g0)),
        value,
        method,
        count[0],
        seconds,
        all_ev,
        residuals,
    )
