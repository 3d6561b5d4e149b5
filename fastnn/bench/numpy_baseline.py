"""The MLP-BN training step in pure NumPy, written as well as NumPy allows.

It is the anchor "competent NumPy" of docs/performance.md and a correctness oracle for
fastnn: the same network, the same math and the same state_dict keys.

Network (PyTorch layout, indices as in a fastnn/torch Sequential):

    0 Dense(784, 512)  1 BatchNorm1d(512)  2 ReLU  3 Dropout(0.5)
    4 Dense(512, 512)  5 BatchNorm1d(512)  6 ReLU  7 Dropout(0.5)
    8 Dense(512, 10)   -> softmax cross-entropy (mean) -> Adam(lr=1e-3)

Math, identical to fastnn's and torch's:
- Dense: weight (out, in), y = x @ W.T + b.
- BatchNorm1d (training): normalise with the batch mean and the *biased* batch
  variance, y = (x - mean) / sqrt(var + eps) * gamma + beta; running statistics
  `running = (1 - momentum) * running + momentum * stat`, with the *unbiased* variance
  var * m / (m - 1) for running_var.
- Dropout: inverted, y = x * keep / (1 - p), keep = (u >= p) for u ~ U[0, 1).
- Adam as torch.optim.Adam: m = lerp(m, g, 1 - beta1), v = beta2 v + (1 - beta2) g^2,
  p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).

How it is written: all parameters live as views in one flat buffer, gradients in
another, Adam's moments in two more (so the optimizer is a handful of whole-buffer
ufunc calls); every intermediate array is allocated once per batch size; every
operation writes through `out=`; the GEMMs are `np.matmul(..., out=)` on transposed
views (BLAS with transpose flags, no copies). ReLU and dropout are folded into one
multiplier per element (keep * scale * [y > 0]) that serves forward and backward.

As an oracle: `load_state_dict` takes a fastnn (or torch) state_dict, and
`train_step(x, y, masks=...)` takes the dropout keep-masks to use, so that fastnn's
masks can be replayed exactly.
"""

import math
import time

import numpy as np

__all__ = [
    "NumpyMLPBN",
    "adam_step",
    "batchnorm_backward",
    "batchnorm_forward_train",
    "softmax_cross_entropy",
    "main",
]


# --------------------------------------------------------------------------------------
# Building blocks (also used by the kernel benchmarks as the NumPy counterparts).
# --------------------------------------------------------------------------------------
def batchnorm_forward_train(
    z, gamma, beta, eps, momentum, running_mean, running_var, xhat, y, mean, var, invstd, tmp
):
    """Training-mode batch norm of z (m, n) into y; keeps xhat and invstd for backward.

    mean, var, invstd: (n,) outputs; tmp: (m, n) scratch. running_mean/var are updated
    in place (torch's momentum convention, unbiased variance) unless None."""
    m = z.shape[0]
    np.mean(z, axis=0, out=mean)
    np.subtract(z, mean, out=xhat)
    np.multiply(xhat, xhat, out=tmp)
    np.mean(tmp, axis=0, out=var)  # biased: normalisation uses it
    np.add(var, eps, out=invstd)
    np.sqrt(invstd, out=invstd)
    np.divide(1.0, invstd, out=invstd)
    np.multiply(xhat, invstd, out=xhat)
    np.multiply(xhat, gamma, out=y)
    np.add(y, beta, out=y)
    if running_mean is not None:
        # running = (1 - momentum) running + momentum stat; tmp's first row is scratch
        s = tmp[0]
        np.multiply(mean, momentum, out=s)
        np.multiply(running_mean, 1.0 - momentum, out=running_mean)
        np.add(running_mean, s, out=running_mean)
        np.multiply(var, momentum * m / (m - 1), out=s)
        np.multiply(running_var, 1.0 - momentum, out=running_var)
        np.add(running_var, s, out=running_var)


def batchnorm_backward(gy, xhat, gamma, invstd, gx, ggamma, gbeta, tmp, c0, c1):
    """Gradients of training-mode batch norm:
        gbeta = sum_i gy, ggamma = sum_i gy * xhat,
        gx = gamma * invstd * (gy - gbeta / m - xhat * ggamma / m).
    ggamma and gbeta are written (not accumulated); tmp (m, n), c0 and c1 (n,) scratch."""
    m = gy.shape[0]
    np.sum(gy, axis=0, out=gbeta)
    np.multiply(gy, xhat, out=tmp)
    np.sum(tmp, axis=0, out=ggamma)
    np.multiply(gbeta, 1.0 / m, out=c0)
    np.multiply(ggamma, 1.0 / m, out=c1)
    np.multiply(xhat, c1, out=tmp)
    np.subtract(gy, c0, out=gx)
    np.subtract(gx, tmp, out=gx)
    np.multiply(gamma, invstd, out=c0)
    np.multiply(gx, c0, out=gx)


def softmax_cross_entropy(logits, flat_index, grad, rowmax, rowsum, rowlog, picked):
    """Mean softmax cross-entropy; its gradient (softmax - onehot) / m into grad.

    flat_index[i] = i * classes + label_i (int64, (m,)); rowmax, rowsum, rowlog (m, 1)
    and picked (m,) are scratch. Returns the loss as a Python float:
        loss_i = log(sum_k exp(z_ik - max_i)) + max_i - z_i,label."""
    m = logits.shape[0]
    np.max(logits, axis=1, keepdims=True, out=rowmax)
    np.subtract(logits, rowmax, out=grad)
    np.exp(grad, out=grad)
    np.sum(grad, axis=1, keepdims=True, out=rowsum)
    np.log(rowsum, out=rowlog)
    np.add(rowlog, rowmax, out=rowlog)
    np.take(logits.reshape(-1), flat_index, out=picked)
    loss = (float(rowlog.sum(dtype=np.float64)) - float(picked.sum(dtype=np.float64))) / m
    np.divide(grad, rowsum, out=grad)
    flat = grad.reshape(-1)
    np.take(flat, flat_index, out=picked)
    np.subtract(picked, 1.0, out=picked)
    np.put(flat, flat_index, picked)
    np.multiply(grad, 1.0 / m, out=grad)
    return loss


def adam_step(
    param, grad, exp_avg, exp_avg_sq, tmp, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8
):
    """One torch.optim.Adam update (step >= 1) over flat buffers; tmp is scratch of
    the same size. Scalars are rounded to the buffers' dtype, as fastnn's kernel does."""
    dt = param.dtype.type
    bc1 = 1.0 - beta1**step
    bc2_sqrt = math.sqrt(1.0 - beta2**step)
    # m = m + (1 - beta1) (g - m)   (torch's lerp)
    np.subtract(grad, exp_avg, out=tmp)
    np.multiply(tmp, dt(1.0 - beta1), out=tmp)
    np.add(exp_avg, tmp, out=exp_avg)
    # v = beta2 v + (1 - beta2) g^2
    np.multiply(exp_avg_sq, dt(beta2), out=exp_avg_sq)
    np.multiply(grad, dt(1.0 - beta2), out=tmp)
    np.multiply(tmp, grad, out=tmp)
    np.add(exp_avg_sq, tmp, out=exp_avg_sq)
    # p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
    np.sqrt(exp_avg_sq, out=tmp)
    np.divide(tmp, dt(bc2_sqrt), out=tmp)
    np.add(tmp, dt(eps), out=tmp)
    np.divide(exp_avg, tmp, out=tmp)
    np.multiply(tmp, dt(lr / bc1), out=tmp)
    np.subtract(param, tmp, out=param)


# --------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------
class _Workspace:
    """Every array one training step or forward pass needs at batch size m."""

    def __init__(self, m, in_features, widths, classes, dtype):
        e = lambda *shape: np.empty(shape, dtype)  # noqa: E731
        self.z = [e(m, h) for h in widths]  # GEMM + bias (BN input)
        self.xhat = [e(m, h) for h in widths]  # normalised z
        self.y = [e(m, h) for h in widths]  # BN output
        self.mul = [e(m, h) for h in widths]  # keep * scale * [y > 0]
        self.a = [e(m, h) for h in widths]  # block output (dropout(relu(y)))
        self.mean = [e(h) for h in widths]
        self.var = [e(h) for h in widths]
        self.invstd = [e(h) for h in widths]
        self.c0 = [e(h) for h in widths]
        self.c1 = [e(h) for h in widths]
        self.uniform = [e(m, h) for h in widths]  # dropout draws
        self.keep = [np.empty((m, h), np.bool_) for h in widths]
        self.pos = [np.empty((m, h), np.bool_) for h in widths]
        self.ga = [e(m, h) for h in widths]  # dL/d(block output)
        self.gy = [e(m, h) for h in widths]  # dL/d(BN output)
        self.gz = [e(m, h) for h in widths]  # dL/d(GEMM output)
        self.tmp = [e(m, h) for h in widths]
        self.logits = e(m, classes)
        self.glogits = e(m, classes)
        self.rowmax = e(m, 1)
        self.rowsum = e(m, 1)
        self.rowlog = e(m, 1)
        self.picked = e(m)
        self.flat_index = np.empty(m, np.int64)
        self.row_offset = np.arange(m, dtype=np.int64) * classes
        self.labels = np.empty(m, np.int64)


class NumpyMLPBN:
    """784 -> [Dense(h) -> BatchNorm1d -> ReLU -> Dropout(p)] x len(hidden) -> Dense(10),
    softmax cross-entropy (mean), Adam; pure NumPy, flat buffers, preallocated.

    Parameters are initialised as torch.nn.Linear does (U(+-1/sqrt(fan_in))), BN with
    gamma 1, beta 0, running_mean 0, running_var 1; `load_state_dict` overwrites them.
    """

    def __init__(
        self,
        in_features=784,
        hidden=(512, 512),
        classes=10,
        p=0.5,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        bn_eps=1e-5,
        momentum=0.1,
        dtype=np.float32,
        seed=0,
    ):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.in_features, self.widths, self.classes = in_features, tuple(hidden), classes
        self.p, self.lr, self.betas, self.eps = float(p), float(lr), tuple(betas), float(eps)
        self.bn_eps, self.momentum = float(bn_eps), float(momentum)
        self.step_count = 0
        self._rng = np.random.default_rng(seed)
        self._ws = {}
        self.last_keep = None

        # Parameter layout, in the order of model.parameters() in fastnn and torch.
        shapes, fan_in = [], in_features
        for i, h in enumerate(self.widths):
            d, b = 4 * i, 4 * i + 1
            shapes += [
                (f"{d}.weight", (h, fan_in)),
                (f"{d}.bias", (h,)),
                (f"{b}.weight", (h,)),
                (f"{b}.bias", (h,)),
            ]
            fan_in = h
        out = 4 * len(self.widths)
        shapes += [(f"{out}.weight", (classes, fan_in)), (f"{out}.bias", (classes,))]
        total = sum(math.prod(s) for _, s in shapes)
        self.flat_params = np.empty(total, self.dtype)
        self.flat_grads = np.zeros(total, self.dtype)
        self.exp_avg = np.zeros(total, self.dtype)
        self.exp_avg_sq = np.zeros(total, self.dtype)
        self._adam_tmp = np.empty(total, self.dtype)
        self.params, self.grads, offset = {}, {}, 0
        for name, shape in shapes:
            n = math.prod(shape)
            self.params[name] = self.flat_params[offset : offset + n].reshape(shape)
            self.grads[name] = self.flat_grads[offset : offset + n].reshape(shape)
            offset += n
        self.running_mean = [np.zeros(h, self.dtype) for h in self.widths]
        self.running_var = [np.ones(h, self.dtype) for h in self.widths]
        self.num_batches_tracked = [0 for _ in self.widths]

        init = np.random.default_rng(seed)
        for name, arr in self.params.items():
            index, kind = name.split(".")
            if int(index) % 4 == 1:  # BatchNorm
                arr[...] = 1.0 if kind == "weight" else 0.0
            else:
                fan = self.params[f"{index}.weight"].shape[1]
                bound = 1.0 / math.sqrt(fan)
                arr[...] = init.uniform(-bound, bound, arr.shape)

        # Per-layer views used by the step.
        self._dense = [
            (
                self.params[f"{4 * i}.weight"],
                self.params[f"{4 * i}.bias"],
                self.grads[f"{4 * i}.weight"],
                self.grads[f"{4 * i}.bias"],
            )
            for i in range(len(self.widths))
        ]
        self._bn = [
            (
                self.params[f"{4 * i + 1}.weight"],
                self.params[f"{4 * i + 1}.bias"],
                self.grads[f"{4 * i + 1}.weight"],
                self.grads[f"{4 * i + 1}.bias"],
            )
            for i in range(len(self.widths))
        ]
        self._out = (
            self.params[f"{out}.weight"],
            self.params[f"{out}.bias"],
            self.grads[f"{out}.weight"],
            self.grads[f"{out}.bias"],
        )

    @property
    def n_params(self):
        """The number of trainable parameters (the flat buffer's size)."""
        return self.flat_params.size

    # -- state --------------------------------------------------------------------------
    def state_dict(self):
        """Copies of parameters and buffers under torch.nn.Sequential keys."""
        sd = {k: v.copy() for k, v in self.params.items()}
        for i in range(len(self.widths)):
            b = 4 * i + 1
            sd[f"{b}.running_mean"] = self.running_mean[i].copy()
            sd[f"{b}.running_var"] = self.running_var[i].copy()
            sd[f"{b}.num_batches_tracked"] = np.array(self.num_batches_tracked[i], np.int64)
        return dict(sorted(sd.items(), key=lambda kv: (int(kv[0].split(".")[0]), kv[0])))

    def load_state_dict(self, state):
        """Copy weights and BN buffers from a fastnn (or torch, converted to NumPy)
        state_dict with keys '0.weight', '1.running_mean', ...; values are cast to
        this model's dtype. Missing or unexpected keys and wrong shapes are errors."""
        own = set(self.state_dict())
        missing, unexpected = own - set(state), set(state) - own
        if missing or unexpected:
            raise KeyError(
                f"state_dict mismatch: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
            )
        for name, arr in self.params.items():
            src = np.asarray(state[name])
            if src.shape != arr.shape:
                raise ValueError(
                    f"state_dict[{name!r}]: expected shape {arr.shape}, got {src.shape}"
                )
            np.copyto(arr, src, casting="unsafe")
        for i in range(len(self.widths)):
            b = 4 * i + 1
            np.copyto(self.running_mean[i], state[f"{b}.running_mean"], casting="unsafe")
            np.copyto(self.running_var[i], state[f"{b}.running_var"], casting="unsafe")
            self.num_batches_tracked[i] = int(np.asarray(state[f"{b}.num_batches_tracked"]))
        return self

    def optimizer_state(self):
        """Adam's state as fastnn's optimizer keeps it: flat exp_avg, exp_avg_sq, step."""
        return {
            "exp_avg": self.exp_avg.copy(),
            "exp_avg_sq": self.exp_avg_sq.copy(),
            "step": self.step_count,
        }

    # -- computation --------------------------------------------------------------------
    def _workspace(self, m):
        ws = self._ws.get(m)
        if ws is None:
            ws = self._ws[m] = _Workspace(
                m, self.in_features, self.widths, self.classes, self.dtype
            )
        return ws

    def _check_input(self, x):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected input of shape (m, {self.in_features}), got {x.shape}")
        if x.dtype != self.dtype or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, self.dtype)
        return x

    def _forward(self, x, ws, training, masks):
        a = x
        scale = 1.0 / (1.0 - self.p) if self.p > 0 else 1.0
        for i in range(len(self.widths)):
            W, b = self._dense[i][0], self._dense[i][1]
            gamma, beta = self._bn[i][0], self._bn[i][1]
            z, y = ws.z[i], ws.y[i]
            np.matmul(a, W.T, out=z)
            np.add(z, b, out=z)
            if training:
                self.num_batches_tracked[i] += 1
                batchnorm_forward_train(
                    z,
                    gamma,
                    beta,
                    self.bn_eps,
                    self.momentum,
                    self.running_mean[i],
                    self.running_var[i],
                    ws.xhat[i],
                    y,
                    ws.mean[i],
                    ws.var[i],
                    ws.invstd[i],
                    ws.tmp[i],
                )
                keep, pos, mul = ws.keep[i], ws.pos[i], ws.mul[i]
                if self.p > 0:
                    if masks is not None:
                        np.not_equal(masks[i], 0, out=keep)
                    else:
                        self._rng.random(out=ws.uniform[i], dtype=self.dtype)
                        np.greater_equal(ws.uniform[i], self.p, out=keep)
                    np.greater(y, 0, out=pos)
                    np.logical_and(pos, keep, out=pos)
                else:
                    np.greater(y, 0, out=pos)
                # relu then dropout: y * (keep * scale * [y > 0]); mul serves backward.
                # (copyto then scale: a bool * float ufunc would allocate cast buffers)
                np.copyto(mul, pos)
                if scale != 1.0:
                    np.multiply(mul, scale, out=mul)
                np.multiply(y, mul, out=ws.a[i])
            else:
                # eval: y = (z - running_mean) / sqrt(running_var + eps) * gamma + beta
                s, t = ws.invstd[i], ws.mean[i]
                np.add(self.running_var[i], self.bn_eps, out=s)
                np.sqrt(s, out=s)
                np.divide(gamma, s, out=s)
                np.multiply(self.running_mean[i], s, out=t)
                np.subtract(beta, t, out=t)
                np.multiply(z, s, out=y)
                np.add(y, t, out=y)
                np.maximum(y, 0, out=ws.a[i])
            a = ws.a[i]
        W, b = self._out[0], self._out[1]
        np.matmul(a, W.T, out=ws.logits)
        np.add(ws.logits, b, out=ws.logits)
        return ws.logits

    def predict(self, x):
        """Eval-mode logits (a new array)."""
        x = self._check_input(x)
        return self._forward(x, self._workspace(x.shape[0]), False, None).copy()

    def train_step(self, x, labels, masks=None):
        """One training step (forward, loss, backward, Adam); returns the mean loss.

        masks: optional sequence of one keep-mask per dropout layer, (m, width) arrays
        of 0/1 (bool or uint8, e.g. fastnn's); by default masks are drawn from this
        model's own NumPy generator."""
        x = self._check_input(x)
        m = x.shape[0]
        if m < 2:
            raise ValueError("BatchNorm needs more than one sample per batch in training")
        ws = self._workspace(m)
        if masks is not None and len(masks) != len(self.widths):
            raise ValueError(f"expected {len(self.widths)} dropout masks, got {len(masks)}")
        np.copyto(ws.labels, labels, casting="same_kind")
        np.add(ws.row_offset, ws.labels, out=ws.flat_index)

        logits = self._forward(x, ws, True, masks)
        loss = softmax_cross_entropy(
            logits, ws.flat_index, ws.glogits, ws.rowmax, ws.rowsum, ws.rowlog, ws.picked
        )

        # Output layer.
        W, _, gW, gb = self._out
        g = ws.glogits
        last = len(self.widths) - 1
        np.sum(g, axis=0, out=gb)
        np.matmul(g.T, ws.a[last], out=gW)
        np.matmul(g, W, out=ws.ga[last])
        # Hidden blocks, last to first.
        for i in range(last, -1, -1):
            gamma = self._bn[i][0]
            ggamma, gbeta = self._bn[i][2], self._bn[i][3]
            W, _, gW, gb = self._dense[i]
            gy, gz = ws.gy[i], ws.gz[i]
            np.multiply(ws.ga[i], ws.mul[i], out=gy)  # dropout and relu backward
            batchnorm_backward(
                gy,
                ws.xhat[i],
                gamma,
                ws.invstd[i],
                gz,
                ggamma,
                gbeta,
                ws.tmp[i],
                ws.c0[i],
                ws.c1[i],
            )
            np.sum(gz, axis=0, out=gb)
            a_in = x if i == 0 else ws.a[i - 1]
            np.matmul(gz.T, a_in, out=gW)
            if i > 0:
                np.matmul(gz, W, out=ws.ga[i - 1])

        self.step_count += 1
        b1, b2 = self.betas
        adam_step(
            self.flat_params,
            self.flat_grads,
            self.exp_avg,
            self.exp_avg_sq,
            self._adam_tmp,
            self.step_count,
            self.lr,
            b1,
            b2,
            self.eps,
        )
        self.last_keep = ws.keep if self.p > 0 else None
        return loss


def main(argv=None):
    """Time a few training steps of the baseline at batch 16, 128 and 2048."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batches", default="16,128,2048")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16384, 784), dtype=np.float32)
    y = rng.integers(0, 10, 16384)
    net = NumpyMLPBN()
    print(f"NumPy {np.__version__}, MLP-BN, {net.n_params:,} parameters, float32")
    for m in (int(b) for b in args.batches.split(",")):
        for s in range(3):  # warm-up
            net.train_step(X[s * m : (s + 1) * m], y[s * m : (s + 1) * m])
        t0 = time.perf_counter()
        for s in range(args.steps):
            lo = (s * m) % (X.shape[0] - m + 1)
            loss = net.train_step(X[lo : lo + m], y[lo : lo + m])
        dt = (time.perf_counter() - t0) / args.steps
        print(
            f"batch {m:5d}: {dt * 1e3:8.3f} ms/step  {m / dt:10,.0f} samples/s  (loss {loss:.4f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
