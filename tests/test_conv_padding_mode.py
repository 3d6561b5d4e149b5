"""padding_mode='reflect' | 'replicate' | 'circular' of Conv1d/Conv2d: the pad kernels
against NumPy's np.pad and their adjoint, the layers against torch in float64 (outputs,
input, weight and bias gradients) and central finite differences, and torch's errors."""

import numpy as np
import pytest
from helpers import fd_check
from test_conv_layers import torch_check

from fastnn import _kernels
from fastnn.layers import Conv1d, Conv2d

MODES = ["reflect", "replicate", "circular"]
NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@pytest.fixture
def th():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "shape,pads",
    [((2, 3, 5, 4), (1, 2, 3, 0)), ((1, 1, 4, 6), (3, 3, 4, 2)), ((3, 1, 1), (0, 0, 1, 1))],
)
def test_pad_kernel_matches_numpy_and_its_adjoint(dtype, mode, shape, pads, rng, use_threads):
    if mode == "reflect":  # reflect pads stay below the size
        pads = tuple(min(p, shape[-2 if i < 2 else -1] - 1) for i, p in enumerate(pads))
    x = rng.standard_normal(shape).astype(dtype)
    t, b, left, r = pads
    want = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(t, b), (left, r)], mode=NUMPY_MODE[mode])
    y = np.empty(want.shape, dtype)
    gy = rng.standard_normal(want.shape).astype(dtype)
    gx = np.empty_like(x)
    with use_threads(2):
        _kernels.pad_forward(x, y, pads, mode)
        _kernels.pad_backward(gy, gx, pads, mode)
    np.testing.assert_array_equal(y, want)
    # the adjoint: <pad(x), gy> = <x, pad_backward(gy)>, for every x (basis vectors)
    ref = np.zeros(x.size)
    for i in range(x.size):
        e = np.zeros(x.size, dtype)
        e[i] = 1
        padded = np.pad(
            e.reshape(shape), [(0, 0)] * (x.ndim - 2) + [(t, b), (left, r)], mode=NUMPY_MODE[mode]
        )
        ref[i] = np.sum(padded.astype(np.float64) * gy)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gx.ravel(), ref, rtol=tol, atol=tol)


def test_pad_kernel_refuses_what_would_read_outside_the_plane():
    x = np.zeros((1, 1, 3, 3))
    for mode, pads in (("reflect", (3, 0, 0, 0)), ("circular", (0, 0, 0, 4))):
        with pytest.raises(ValueError, match=f"{mode} padding"):
            _kernels.pad_forward(
                x, np.zeros((1, 1, 3 + sum(pads[:2]), 3 + sum(pads[2:]))), pads, mode
            )
    with pytest.raises(ValueError, match="mode must be one of"):
        _kernels.pad_forward(x, np.zeros((1, 1, 3, 3)), (0, 0, 0, 0), "zeros")
    with pytest.raises(ValueError, match="pads must be >= 0"):
        _kernels.pad_forward(x, np.zeros((1, 1, 3, 3)), (-1, 1, 0, 0), "replicate")
    with pytest.raises(ValueError, match="y must have shape"):
        _kernels.pad_forward(x, np.zeros((1, 1, 4, 3)), (1, 1, 0, 0), "replicate")
    with pytest.raises(TypeError, match="float64"):
        _kernels.pad_forward(x, np.zeros((1, 1, 5, 3), np.float32), (1, 1, 0, 0), "replicate")
    with pytest.raises(ValueError, match="gy must have shape"):
        _kernels.pad_backward(np.zeros((1, 1, 3, 3)), x, (1, 1, 0, 0), "replicate")


def _torch_pair(th, ours, cls, args, kwargs):
    theirs = cls(*args, **kwargs, dtype=th.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return theirs


CONV2D = [  # in, out, kernel, stride, padding, dilation, groups, bias, (H, W), N
    (3, 4, 3, 1, 1, 1, 1, True, (7, 9), 2),
    (4, 6, (3, 2), (2, 1), (2, 1), (2, 1), 2, True, (9, 8), 3),
    (4, 4, 3, 1, (1, 2), 1, 4, False, (5, 5), 1),  # depthwise, batch 1
    (3, 5, 4, 1, "same", 1, 1, True, (6, 7), 2),  # 'same' with an odd total padding
    (2, 3, 3, 1, 2, 1, 1, True, (3, 3), 2),  # padding = size - 1 (reflect's limit)
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CONV2D)
def test_conv2d_padding_mode_matches_torch(th, mode, case, rng):
    cin, cout, k, s, p, d, g, bias, hw, n = case
    args = (cin, cout, k)
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g, bias=bias, padding_mode=mode)
    ours = Conv2d(*args, **kwargs, dtype=np.float64)
    theirs = _torch_pair(th, ours, th.nn.Conv2d, args, kwargs)
    x = rng.standard_normal((n, cin) + hw)
    torch_check(th, ours, theirs, np.ascontiguousarray(x[:, :, ::1]), rng)
    torch_check(th, ours, theirs, np.swapaxes(np.swapaxes(x, 2, 3).copy(), 2, 3), rng)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "case",
    [(2, 3, 3, 1, 1, 1, 1, 7, 2), (4, 4, 4, 1, "same", 2, 2, 9, 1), (3, 6, 2, 2, 3, 1, 3, 8, 3)],
)
def test_conv1d_padding_mode_matches_torch(th, mode, case, rng):
    cin, cout, k, s, p, d, g, length, n = case
    args = (cin, cout, k)
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g, padding_mode=mode)
    ours = Conv1d(*args, **kwargs, dtype=np.float64)
    theirs = _torch_pair(th, ours, th.nn.Conv1d, args, kwargs)
    torch_check(th, ours, theirs, rng.standard_normal((n, cin, length)), rng)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cls,shape", [(Conv2d, (2, 2, 4, 5)), (Conv1d, (2, 2, 6))])
def test_padding_mode_gradients_match_finite_differences(cls, shape, mode, rng, num_grad, fd_tol):
    layer = cls(2, 3, 3, padding=2, padding_mode=mode, dtype=np.float64)
    fd_check(layer, rng.standard_normal(shape), num_grad, fd_tol, rng)


@pytest.mark.parametrize(
    "mode,padding,size,ok",
    [
        ("reflect", 2, 3, True),
        ("reflect", 3, 3, False),
        ("circular", 3, 3, True),
        ("circular", 4, 3, False),
        ("replicate", 5, 2, True),
    ],
)
def test_padding_mode_limits_as_torch(th, mode, padding, size, ok):
    x = np.zeros((1, 1, size, size))
    ours = Conv2d(1, 1, 1, padding=padding, padding_mode=mode, dtype=np.float64)
    theirs = th.nn.Conv2d(1, 1, 1, padding=padding, padding_mode=mode, dtype=th.float64)
    if ok:
        assert ours.forward(x).shape == tuple(theirs(th.tensor(x)).shape)
        return
    with pytest.raises(RuntimeError):
        theirs(th.tensor(x))
    with pytest.raises(ValueError, match=rf"Conv2d\(1, 1.*padding_mode='{mode}'"):
        ours.forward(x)


def test_padding_mode_is_kept_by_config_and_repr():
    conv = Conv2d(2, 3, 3, padding=1, padding_mode="circular")
    assert conv.get_config()["padding_mode"] == "circular"
    assert "padding_mode='circular'" in repr(conv)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        Conv2d(2, 3, 3, padding_mode="mirror")


def test_padding_mode_survives_save_and_load(tmp_path, rng):
    import fastnn

    model = fastnn.Sequential(Conv2d(2, 3, 3, padding=1, padding_mode="reflect"))
    x = rng.standard_normal((2, 2, 5, 4)).astype(np.float32)
    fastnn.save(model, tmp_path / "m.safetensors")
    loaded = fastnn.load(tmp_path / "m.safetensors")
    assert loaded[0].padding_mode == "reflect"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("mode", MODES)
def test_pad_kernels_do_not_depend_on_the_thread_count(mode, rng, use_threads):
    x = rng.standard_normal((64, 3, 9, 7)).astype(np.float32)
    gy = rng.standard_normal((64, 3, 13, 11)).astype(np.float32)
    out = []
    for n in (1, 2):
        y, gx = np.empty_like(gy), np.empty_like(x)
        with use_threads(n):
            _kernels.pad_forward(x, y, (2, 2, 3, 1), mode)
            _kernels.pad_backward(gy, gx, (2, 2, 3, 1), mode)
        out.append((y, gx))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
