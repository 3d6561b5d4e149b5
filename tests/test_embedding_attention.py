"""Embedding against torch.nn.Embedding, AttentionPooling against the same formula in
torch autograd and against finite differences, and their bad-input errors."""

import numpy as np
import pytest
from helpers import fd_check

from fastnn.layers import AttentionPooling, Embedding


def test_embedding_forward_and_gradient_match_torch():
    torch = pytest.importorskip("torch")
    ours = Embedding(10, 4, padding_idx=2, dtype=np.float64)
    theirs = torch.nn.Embedding(10, 4, padding_idx=2).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    assert not ours.weight.data[2].any()
    ids = np.random.default_rng(0).integers(0, 10, (3, 7))
    ids[0, :3] = 2
    out = ours.forward(ids)
    ref = theirs(torch.from_numpy(ids))
    np.testing.assert_array_equal(out, ref.detach().numpy())
    g = np.random.default_rng(1).standard_normal(out.shape)
    (ref * torch.from_numpy(g)).sum().backward()
    assert ours.backward(g) is None
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-12)
    assert not ours.weight.grad[2].any()


def test_embedding_accepts_whole_floats_and_negative_padding_idx():
    layer = Embedding(5, 3, padding_idx=-1)
    assert layer.padding_idx == 4
    np.testing.assert_array_equal(
        layer.forward(np.array([[1.0, 4.0]])), layer.weight.data[[[1, 4]]]
    )


@pytest.mark.parametrize(
    "ids,err,match",
    [
        (np.array([[0, 5]]), IndexError, r"token id 5 .* out of range \[0, 5\)"),
        (np.array([[-1, 2]]), IndexError, "out of range"),
        (np.array([[0.5, 2]]), ValueError, "whole numbers"),
        (np.array([[True]]), TypeError, "integers"),
    ],
)
def test_embedding_bad_ids_raise(ids, err, match):
    with pytest.raises(err, match=match):
        Embedding(5, 3).forward(ids)


def test_embedding_bad_arguments_raise():
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(5, 3, padding_idx=5)
    with pytest.raises(ValueError, match="positive"):
        Embedding(0, 3)


def torch_attention(x, q, valid):
    torch = pytest.importorskip("torch")
    e = x @ q
    e = e.masked_fill(~torch.from_numpy(valid), float("-inf"))
    a = torch.softmax(e, dim=1)
    return (a[:, :, None] * x).sum(1)


@pytest.mark.parametrize("second", ["none", "lengths", "mask"])
def test_attention_pooling_matches_torch(second):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    layer = AttentionPooling(5, dtype=np.float64)
    x = rng.standard_normal((4, 6, 5))
    valid = np.ones((4, 6), bool)
    inputs = x
    if second == "lengths":
        lengths = np.array([6, 1, 3, 4])
        valid = np.arange(6) < lengths[:, None]
        inputs = [x, lengths]
    elif second == "mask":
        valid = rng.random((4, 6)) < 0.6
        valid[:, 0] = True
        inputs = [x, valid.astype(np.float64)]
    out = layer.forward(inputs)
    xt = torch.tensor(x, requires_grad=True)
    qt = torch.tensor(layer.query.data, requires_grad=True)
    ref = torch_attention(xt, qt, valid)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    (ref * torch.from_numpy(g)).sum().backward()
    grads = layer.backward(g)
    gx = grads if second == "none" else grads[0]
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.query.grad, qt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert not gx[~valid].any()
    np.testing.assert_allclose(layer.attention_weights.sum(1), 1.0)


def test_attention_pooling_finite_differences(num_grad, fd_tol, rng):
    fd_check(
        AttentionPooling(4, dtype=np.float64), rng.standard_normal((3, 5, 4)), num_grad, fd_tol, rng
    )


def test_attention_pooling_bad_input_raises():
    layer = AttentionPooling(4)
    with pytest.raises(ValueError, match="3-D"):
        layer.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="features"):
        layer.forward(np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 3\]"):
        layer.forward([np.zeros((2, 3, 4)), np.array([0, 3])])
    with pytest.raises(ValueError, match="at least one unmasked step"):
        layer.forward([np.zeros((2, 3, 4)), np.array([[1, 0, 0], [0, 0, 0]])])
    with pytest.raises(ValueError, match="second input"):
        layer.forward([np.zeros((2, 3, 4)), np.zeros((2, 4))])
