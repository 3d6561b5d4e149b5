"""RNN, LSTM and GRU against torch.nn in float64: outputs, final states, input and
initial-state gradients and every parameter gradient, over layers, directions, layouts,
batch 1, one step and variable lengths (against torch's packed sequences); bad input."""

import numpy as np
import pytest

from fastnn.layers import GRU, LSTM, RNN

torch = pytest.importorskip("torch")

KINDS = {
    "rnn_tanh": (lambda *a, **k: RNN(*a, **k), lambda *a, **k: torch.nn.RNN(*a, **k)),
    "rnn_relu": (
        lambda *a, **k: RNN(*a, nonlinearity="relu", **k),
        lambda *a, **k: torch.nn.RNN(*a, nonlinearity="relu", **k),
    ),
    "lstm": (LSTM, torch.nn.LSTM),
    "gru": (GRU, torch.nn.GRU),
}


def make_pair(kind, I, H, **kw):
    ours = KINDS[kind][0](I, H, dtype=np.float64, **kw)
    kw.pop("return_sequences", None)
    theirs = KINDS[kind][1](I, H, **kw).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return ours, theirs


def torch_run(theirs, x, batch_first, lengths=None, hx=None):
    """Output (zero-padded when packed), h_n and c_n (or None)."""
    inp = x
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.as_tensor(lengths), batch_first=batch_first, enforce_sorted=False
        )
    out, state = theirs(inp, hx)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0]
        )
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    return out, h_n, c_n


def check_grads(ours, theirs, atol=1e-10):
    for name, p in ours.named_parameters():
        tp = dict(theirs.named_parameters())[name]
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), atol=atol, rtol=1e-8, err_msg=name)


def compare(
    kind,
    N=3,
    T=4,
    I=5,
    H=6,
    num_layers=1,
    bidirectional=False,
    batch_first=False,
    lengths=None,
    with_state=False,
    return_sequences=True,
    seed=0,
):
    rng = np.random.default_rng(seed)
    ours, theirs = make_pair(
        kind,
        I,
        H,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        return_sequences=return_sequences,
    )
    D = 2 if bidirectional else 1
    x = rng.standard_normal((N, T, I) if batch_first else (T, N, I))
    xt = torch.tensor(x, requires_grad=True)
    hx = thx = None
    if with_state:
        h0 = rng.standard_normal((num_layers * D, N, H))
        c0 = rng.standard_normal((num_layers * D, N, H))
        hx = (h0, c0) if kind == "lstm" else h0
        thx = (
            tuple(torch.tensor(a, requires_grad=True) for a in hx)
            if kind == "lstm"
            else torch.tensor(h0, requires_grad=True)
        )
    out_t, h_n, c_n = torch_run(theirs, xt, batch_first, lengths, thx)
    if return_sequences:
        ref = out_t
    else:
        ref = h_n[-D:].permute(1, 0, 2).reshape(N, D * H)
    out = ours.forward(x, hx=hx, lengths=lengths)
    np.testing.assert_allclose(out, ref.detach().numpy(), atol=1e-12, rtol=1e-10)
    np.testing.assert_allclose(ours.h_n, h_n.detach().numpy(), atol=1e-12, rtol=1e-10)
    if kind == "lstm":
        np.testing.assert_allclose(ours.c_n, c_n.detach().numpy(), atol=1e-12, rtol=1e-10)
    g = rng.standard_normal(out.shape)
    (ref * torch.tensor(g)).sum().backward()
    grads = ours.backward(g)
    gx = grads[0] if isinstance(grads, list) else grads
    np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-10, rtol=1e-8)
    check_grads(ours, theirs)
    if with_state:
        tstates = thx if kind == "lstm" else (thx,)
        for ours_g, t in zip(grads[2:], tstates):
            np.testing.assert_allclose(ours_g, t.grad.numpy(), atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_matches_torch(kind, num_layers, bidirectional, batch_first):
    compare(kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("batch_first", [False, True])
def test_blocked_products_match_torch(kind, batch_first):
    """Shapes whose per-step products the kernels cut into blocks: 70 sequences (two
    chunks, row blocks of 32 and a remainder, register tiles of 8, 4 and 1 rows), hidden
    128 (whole panels of gate columns forward, the product's depth cut back through
    time) and input 200."""
    compare(
        kind,
        N=70,
        T=3,
        I=200,
        H=128,
        num_layers=2,
        bidirectional=True,
        batch_first=batch_first,
        with_state=True,
    )


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("N,T", [(1, 4), (3, 1), (1, 1)])
def test_batch_one_and_one_step(kind, N, T):
    compare(kind, N=N, T=T, num_layers=2, bidirectional=True, batch_first=True)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_variable_lengths_match_packed_sequences(kind, bidirectional, batch_first):
    compare(
        kind,
        N=4,
        T=5,
        num_layers=2,
        bidirectional=bidirectional,
        batch_first=batch_first,
        lengths=[5, 2, 4, 1],
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_initial_state_and_its_gradient(kind):
    compare(
        kind, num_layers=2, bidirectional=True, batch_first=True, with_state=True, lengths=[4, 3, 1]
    )


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_return_sequences_false_is_the_final_hidden_state(kind, bidirectional):
    compare(
        kind,
        num_layers=2,
        bidirectional=bidirectional,
        batch_first=True,
        return_sequences=False,
        lengths=[2, 4, 3],
    )


def test_float32_close_to_torch():
    ours = LSTM(5, 8, num_layers=2, batch_first=True)
    theirs = torch.nn.LSTM(5, 8, num_layers=2, batch_first=True)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 7, 5)).astype(np.float32)
    np.testing.assert_allclose(ours.forward(x), theirs(torch.from_numpy(x))[0].detach(), atol=2e-6)


def test_parameters_follow_torch_names_shapes_and_init():
    ours = GRU(5, 8, num_layers=2, bidirectional=True)
    theirs = torch.nn.GRU(5, 8, num_layers=2, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (k, v), (_, t) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert v.shape == tuple(t.shape), k
        assert np.abs(v).max() <= 1 / np.sqrt(8)
    assert LSTM(3, 4, bias=False).state_dict().keys() == {"weight_ih_l0", "weight_hh_l0"}


def test_gradients_accumulate_and_frozen_parameters_get_none():
    ours = LSTM(3, 4, batch_first=True, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 3, 3))
    ours.forward(x)
    ours.backward(np.ones((2, 3, 4)))
    once = ours.weight_hh_l0.grad.copy()
    ours.forward(x)
    ours.backward(np.ones((2, 3, 4)))
    np.testing.assert_allclose(ours.weight_hh_l0.grad, 2 * once)
    ours.zero_grad()
    ours.weight_ih_l0.requires_grad = False
    ours.forward(x)
    ours.backward(np.ones((2, 3, 4)))
    assert not ours.weight_ih_l0.grad.any()
    assert ours.weight_hh_l0.grad.any()


def test_dropout_between_layers_is_training_only_and_differentiable():
    ours = GRU(3, 4, num_layers=2, dropout=0.5, batch_first=True, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((5, 6, 3))
    a, b = ours.forward(x), ours.forward(x)
    assert not np.allclose(a, b)  # a fresh mask each call
    ours.eval()
    np.testing.assert_array_equal(ours.forward(x), ours.forward(x))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_backward_after_an_eval_forward_matches_torch(kind):
    """An eval-mode call keeps one step's activations, not every step's; a backward
    after it runs the forward again keeping them, and gets torch's eval-mode gradients."""
    ours, theirs = make_pair(
        kind, 5, 6, num_layers=2, bidirectional=True, dropout=0.5, batch_first=True
    )
    ours.eval()
    theirs.eval()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 5))
    xt = torch.tensor(x, requires_grad=True)
    ref, h_n, _ = torch_run(theirs, xt, True)
    out = ours.forward(x)
    np.testing.assert_allclose(out, ref.detach().numpy(), atol=1e-12, rtol=1e-10)
    np.testing.assert_allclose(ours.h_n, h_n.detach().numpy(), atol=1e-12, rtol=1e-10)
    g = rng.standard_normal(out.shape)
    (ref * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), atol=1e-10, rtol=1e-8)
    check_grads(ours, theirs)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((4, 3)), "3-D"),
        (np.zeros((2, 4, 7)), "features"),
    ],
)
def test_bad_input_raises(bad, match):
    with pytest.raises(ValueError, match=match):
        LSTM(3, 4, batch_first=True).forward(bad)


def test_bad_lengths_and_states_raise():
    layer = GRU(3, 4, batch_first=True)
    x = np.zeros((2, 5, 3), np.float32)
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 5\]"):
        layer.forward(x, lengths=[6, 2])
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 5\]"):
        layer.forward(x, lengths=[0, 2])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        layer.forward(x, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match="h0 must have shape"):
        layer.forward(x, hx=np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="gradient of shape"):
        layer.forward(x)
        layer.backward(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        LSTM(3, 4, dropout=1.0)


def test_per_step_cross_entropy_with_padding_matches_torch():
    """Sequence tagging: the LSTM's output at each step is the logits of that step's
    class; padded steps (label -100 in torch) count for neither loss nor gradient. Here
    the logits of the valid steps go to the 2-D cross-entropy."""
    from fastnn.losses import CrossEntropyLoss

    rng = np.random.default_rng(5)
    N, T, C = 3, 6, 4
    ours, theirs = make_pair("lstm", 5, C, batch_first=True)
    x = rng.standard_normal((N, T, 5))
    lengths = np.array([6, 2, 4])
    labels = rng.integers(0, C, (N, T))
    valid = np.arange(T) < lengths[:, None]
    xt = torch.tensor(x, requires_grad=True)
    out_t, _, _ = torch_run(theirs, xt, True, lengths)
    tl = torch.tensor(np.where(valid, labels, -100))
    ref = torch.nn.functional.cross_entropy(out_t.permute(0, 2, 1), tl, ignore_index=-100)
    ref.backward()
    out = ours.forward(x, lengths=lengths)
    loss = CrossEntropyLoss()
    value = loss(out[valid], labels[valid])
    g = np.zeros_like(out)
    g[valid] = loss.backward()
    gx = ours.backward(g)[0]
    np.testing.assert_allclose(value, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-12, rtol=1e-8)
    check_grads(ours, theirs)


def test_copies_leave_the_last_call_behind():
    import copy
    import pickle

    layer = LSTM(3, 4, batch_first=True, dtype=np.float64)
    x = np.random.default_rng(6).standard_normal((2, 5, 3))
    y = layer.forward(x)
    for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert "_last_ctx" not in vars(twin)
        with pytest.raises(AttributeError, match="after a call"):
            twin.h_n  # noqa: B018 - the attribute access is the test
        np.testing.assert_array_equal(twin.forward(x), y)


@pytest.mark.parametrize("cls", [LSTM, GRU, RNN])
def test_finite_differences_with_dropout_between_layers(cls, num_grad, fd_tol):
    """Two bidirectional layers with inter-layer dropout (the same mask at every call:
    the generator is reseeded before each forward)."""
    import fastnn
    from helpers import fd_check

    layer = cls(
        3, 4, num_layers=2, bidirectional=True, batch_first=True, dropout=0.4, dtype=np.float64
    )
    x = np.random.default_rng(7).standard_normal((2, 4, 3))
    fd_check(layer, x, num_grad, fd_tol, np.random.default_rng(8), before=lambda: fastnn.seed(3))
