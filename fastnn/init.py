"""Weight initialisation, with torch.nn.init's names, arguments and formulas.

Every function fills a Parameter (or ndarray) in place and returns it; draws come from
the generator seeded by `fastnn.seed`. Fans follow torch: a weight of shape
(out, in, *kernel) has fan_in = in * prod(kernel) and fan_out = out * prod(kernel).
"""

import contextlib
import functools
import math
import threading
import warnings

import numpy as np

from . import _kernels, rng, state_version
from .validation import choice, real_number

_local = threading.local()


@contextlib.contextmanager
def skipped():
    """Within the block (in this thread), the initialisers leave tensors as they are
    and draw nothing: for building a model whose weights are loaded next."""
    previous = getattr(_local, "skip", False)
    _local.skip = True
    try:
        yield
    finally:
        _local.skip = previous


def skip_init(module_cls, *args, **kwargs):
    """`module_cls(*args, **kwargs)` without drawing initial weights (as
    torch.nn.utils.skip_init): the parameters hold whatever memory held; load or
    assign them before use."""
    with skipped():
        return module_cls(*args, **kwargs)


def _initialiser(fn):
    """fn, made a no-op inside `skipped()`."""

    @functools.wraps(fn)
    def wrapper(tensor, *args, **kwargs):
        if getattr(_local, "skip", False):
            return tensor
        out = fn(tensor, *args, **kwargs)
        state_version.bump()  # (some initialisers fill in place, past _fill)
        return out

    return wrapper


_GAINS = {
    "linear": 1.0,
    "identity": 1.0,
    "conv1d": 1.0,
    "conv2d": 1.0,
    "conv3d": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3,
    "relu": math.sqrt(2.0),
    "selu": 3.0 / 4,
}


def calculate_gain(nonlinearity, param=None):
    """Recommended gain for the nonlinearity (as torch.nn.init.calculate_gain):
    1 for linear/sigmoid, 5/3 tanh, sqrt(2) relu, sqrt(2 / (1 + slope^2)) leaky_relu."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    choice(nonlinearity, set(_GAINS) | {"leaky_relu"}, "nonlinearity")
    return _GAINS[nonlinearity]


def _array(tensor):
    # An ndarray is used as is (ndarray.data is a memoryview, not the values).
    return tensor if isinstance(tensor, np.ndarray) else tensor.data


def _fans(tensor):
    shape = _array(tensor).shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fill(tensor, values):
    arr = _array(tensor)
    arr[...] = values
    state_version.bump()
    return tensor


def _in_place(arr):
    """True when arr can be filled where it lies (a C-contiguous float array): no
    temporary the size of the tensor is made."""
    return arr.dtype in (np.float32, np.float64) and arr.flags.c_contiguous and arr.flags.writeable


def _draw(tensor, kernel, *args):
    """Fill tensor by `kernel(array, key, *args)` (a C kernel of csrc/init.c) under a
    key drawn from the generator seeded by fastnn.seed: in place when it can be (values
    that do not depend on the thread count), else through a float64 temporary."""
    arr = _array(tensor)
    key = int(rng.generator().integers(0, 2**63, dtype=np.int64))
    if _in_place(arr):
        kernel(arr, key, *args)
        return tensor
    tmp = np.empty(arr.shape, arr.dtype if arr.dtype == np.float32 else np.float64)
    kernel(tmp, key, *args)
    return _fill(tensor, tmp)


def _mean_std(mean, std, where):
    mean = real_number(mean, f"{where}: mean")
    std = real_number(std, f"{where}: std")
    if std < 0:
        raise ValueError(f"{where}: std must be >= 0, got {std}")
    return mean, std


@_initialiser
def uniform_(tensor, a=0.0, b=1.0):
    """U(a, b). Filled in place by a C kernel at memory speed, from a key drawn from
    the generator seeded by fastnn.seed (the values do not depend on the thread count)."""
    return _draw(tensor, _kernels.init_uniform, float(a), float(b))


@_initialiser
def normal_(tensor, mean=0.0, std=1.0):
    """N(mean, std^2). Filled in place by a C kernel (the inverse normal CDF of uniform
    draws) at memory speed; the values do not depend on the thread count."""
    mean, std = _mean_std(mean, std, "normal_")
    return _draw(tensor, _kernels.init_normal, mean, std)


@_initialiser
def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """N(mean, std^2) restricted to [a, b] (absolute bounds, as torch). Each value is
    the inverse normal CDF of a uniform draw over the interval's share of the CDF (no
    rejection, so any interval works), filled in place by a C kernel."""
    mean, std = _mean_std(mean, std, "trunc_normal_")
    a, b = real_number(a, "trunc_normal_: a"), real_number(b, "trunc_normal_: b")
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    if std == 0:
        raise ValueError("trunc_normal_: std must be > 0, got 0.0")
    return _draw(tensor, _kernels.init_trunc_normal, mean, std, a, b)


@_initialiser
def constant_(tensor, val):
    """Fill with val. Warns for weight matrices: identical weights give identical units
    that receive identical gradients, so symmetry is never broken."""
    if _array(tensor).ndim >= 2:
        warnings.warn(
            "constant initialisation of a weight matrix: every unit computes the same "
            "function and gets the same gradient, so they never become different; "
            "use a random init (xavier_*, kaiming_*) for weights",
            stacklevel=2,
        )
    return _fill(tensor, val)


@_initialiser
def zeros_(tensor):
    """Fill tensor (a Parameter or array) with 0, in place; returns it."""
    return constant_(tensor, 0.0)


@_initialiser
def ones_(tensor):
    """Fill tensor (a Parameter or array) with 1, in place; returns it."""
    return constant_(tensor, 1.0)


@_initialiser
def xavier_uniform_(tensor, gain=1.0):
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _fans(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a)


@_initialiser
def xavier_normal_(tensor, gain=1.0):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan_in, fan_out = _fans(tensor)
    fan = fan_in if choice(mode, {"fan_in", "fan_out"}, "mode") == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


@_initialiser
def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-b, b), b = gain * sqrt(3 / fan) (He et al., 2015)."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


@_initialiser
def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std^2), std = gain / sqrt(fan)."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


@_initialiser
def orthogonal_(tensor, gain=1.0):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal draw, with the
    signs fixed so that it is uniformly distributed (Saxe et al., 2013)."""
    arr = _array(tensor)
    if arr.ndim < 2:
        raise ValueError(f"orthogonal_ needs at least 2 dimensions, got shape {arr.shape}")
    rows, cols = arr.shape[0], arr.size // arr.shape[0]
    flat = _draw(np.empty((rows, cols)), _kernels.init_normal, 0.0, 1.0)
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(arr.shape))


# Names accepted by Dense(init=...): weight initialisers with their usual arguments.
BY_NAME = {
    "xavier_uniform": xavier_uniform_,
    "glorot_uniform": xavier_uniform_,
    "xavier_normal": xavier_normal_,
    "glorot_normal": xavier_normal_,
    "kaiming_uniform": lambda t: kaiming_uniform_(t, nonlinearity="relu"),
    "he_uniform": lambda t: kaiming_uniform_(t, nonlinearity="relu"),
    "kaiming_normal": lambda t: kaiming_normal_(t, nonlinearity="relu"),
    "he_normal": lambda t: kaiming_normal_(t, nonlinearity="relu"),
    "orthogonal": orthogonal_,
    "trunc_normal": lambda t: trunc_normal_(t, std=0.02),
    "normal": lambda t: normal_(t, 0.0, 0.01),
    "uniform": lambda t: uniform_(t, -0.05, 0.05),
    "zeros": zeros_,
}
