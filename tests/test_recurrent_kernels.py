"""The recurrent and embedding kernels (csrc/recurrent.h) against plain NumPy: forward
against a step-by-step reference, backward against central finite differences of that
reference in float64, thread-count independence, and the binding's checks."""

import numpy as np
import pytest

import fastnn
from fastnn import _kernels as K

MODES = {"tanh": K.RNN_TANH, "relu": K.RNN_RELU, "lstm": K.RNN_LSTM, "gru": K.RNN_GRU}
GATES = {"tanh": 1, "relu": 1, "lstm": 4, "gru": 3}


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def reference(mode, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse):
    """One direction over time-major x (T, N, I): y (T, N, H), hn, cn, step by step."""
    T, N, _ = x.shape
    H = w_hh.shape[1]
    h, c = h0.copy(), c0.copy()
    y = np.zeros((T, N, H), x.dtype)
    for t in range(T - 1, -1, -1) if reverse else range(T):
        gx = x[t] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        if mode == "lstm":
            i, f, g, o = np.split(gx + gh, 4, axis=1)
            c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h_new = sigmoid(o) * np.tanh(c_new)
        elif mode == "gru":
            xr, xz, xn = np.split(gx, 3, axis=1)
            hr, hz, hn = np.split(gh, 3, axis=1)
            r, z = sigmoid(xr + hr), sigmoid(xz + hz)
            n = np.tanh(xn + r * hn)
            h_new, c_new = (1 - z) * n + z * h, c
        else:
            a = gx + gh
            h_new, c_new = (np.tanh(a) if mode == "tanh" else np.maximum(a, 0)), c
        active = (t < lengths)[:, None]
        h, c = np.where(active, h_new, h), np.where(active, c_new, c)
        y[t] = np.where(active, h_new, 0)
    return y, h, c


def combined_bias(mode, b_ih, b_hh):
    if mode == "gru":
        H = b_hh.shape[0] // 3
        return np.concatenate([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :], b_hh[2 * H :]])
    return b_ih + b_hh


def split_bias_grad(mode, dbias):
    if mode == "gru":
        H = dbias.shape[0] // 4
        return np.concatenate([dbias[: 2 * H], dbias[3 * H :]]), dbias[: 3 * H]
    return dbias, dbias


def rows(a, batch_first):
    """(T, N, F) -> the kernel's (N*T, F) rows."""
    return np.ascontiguousarray(a.transpose(1, 0, 2) if batch_first else a).reshape(-1, a.shape[2])


def unrows(a, T, N, batch_first):
    return a.reshape(N, T, -1).transpose(1, 0, 2) if batch_first else a.reshape(T, N, -1)


class Case:
    """Random problem and the kernel's forward and backward on it."""

    def __init__(
        self, mode, T, N, I, H, dtype, batch_first, reverse, lengths, seed=0, with_state=True
    ):
        rng = np.random.default_rng(seed)
        W = GATES[mode] * H
        self.mode, self.T, self.N, self.H = mode, T, N, H
        self.batch_first, self.reverse = batch_first, reverse
        u = lambda *s: rng.uniform(-0.6, 0.6, s).astype(dtype)
        self.x, self.w_ih, self.w_hh = u(T, N, I), u(W, I), u(W, H)
        self.b_ih, self.b_hh = u(W), u(W)
        self.h0 = u(N, H) if with_state else np.zeros((N, H), dtype)
        self.c0 = u(N, H) if with_state and mode == "lstm" else np.zeros((N, H), dtype)
        self.with_state = with_state
        self.lengths = np.full(N, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
        self.given_lengths = lengths is not None
        self.gy, self.ghn, self.gcn = u(T, N, H), u(N, H), u(N, H)
        self.dx0 = None  # (T, N, I): the backward adds dx to it (accumulate_dx)

    def run(self, one_step=False):
        """Forward and backward; with one_step the forward alone, keeping one step."""
        mode, T, N, H = self.mode, self.T, self.N, self.H
        dt = self.x.dtype
        G = 4 * H if mode in ("lstm", "gru") else H
        lstm, gru = mode == "lstm", mode == "gru"
        x = rows(self.x, self.batch_first)
        rows_g, rows_h = (N, 2 * N) if one_step else (N * T, N * T)
        gates, hprev = np.empty((rows_g, G), dt), np.empty((rows_h, H), dt)
        cprev = np.empty((rows_h, H), dt) if lstm else None
        gh = np.empty((N, 3 * H), dt) if gru else None
        y = np.full((N * T, H), np.nan, dt)
        hn = np.empty((N, H), dt)
        cn = np.empty((N, H), dt) if lstm else None
        lengths = self.lengths if self.given_lengths else None
        h0 = self.h0 if self.with_state else None
        c0 = self.c0 if self.with_state and lstm else None
        K.rnn_forward(
            MODES[mode],
            self.batch_first,
            self.reverse,
            False,
            x,
            self.w_ih,
            self.w_hh,
            combined_bias(mode, self.b_ih, self.b_hh),
            h0,
            c0,
            lengths,
            np.empty((self.w_ih.shape[1] + self.w_hh.shape[1], self.w_hh.shape[0]), dt),
            gates,
            hprev,
            cprev,
            gh,
            y,
            hn,
            cn,
            one_step=one_step,
        )
        out = {"y": unrows(y, T, N, self.batch_first), "hn": hn, "cn": cn}
        if one_step:
            return out
        dgates = np.empty_like(gates)
        dh0 = np.empty((N, H), dt)
        dc0 = np.empty((N, H), dt) if lstm else None
        accumulate = self.dx0 is not None
        dx = rows(self.dx0.copy(), self.batch_first) if accumulate else np.empty_like(x)
        dw_ih, dw_hh = np.zeros_like(self.w_ih), np.zeros_like(self.w_hh)
        dbias = np.empty(G, dt)
        scratch = np.empty(K.COLSUM_SCRATCH_ROWS * G)
        K.rnn_backward(
            MODES[mode],
            self.batch_first,
            self.reverse,
            False,
            x,
            self.w_ih,
            self.w_hh,
            lengths,
            gates,
            hprev,
            cprev,
            rows(self.gy, self.batch_first),
            self.ghn,
            self.gcn if lstm else None,
            dgates,
            dh0,
            dc0,
            True,
            dx,
            accumulate,
            dw_ih,
            dw_hh,
            dbias,
            scratch,
        )
        db_ih, db_hh = split_bias_grad(mode, dbias)
        out.update(
            x=unrows(dx, T, N, self.batch_first) - (self.dx0 if accumulate else 0),
            w_ih=dw_ih,
            w_hh=dw_hh,
            b_ih=db_ih,
            b_hh=db_hh,
            h0=dh0,
            c0=dc0,
            rows_x=x,
            hprev=hprev,
            dgates=dgates,
        )
        return out

    def reference(self):
        return reference(
            self.mode,
            self.x,
            self.w_ih,
            self.w_hh,
            self.b_ih,
            self.b_hh,
            self.h0,
            self.c0,
            self.lengths,
            self.reverse,
        )

    def loss(self):
        y, hn, cn = self.reference()
        out = np.sum(y * self.gy) + np.sum(hn * self.ghn)
        return out + (np.sum(cn * self.gcn) if self.mode == "lstm" else 0.0)


LAYOUTS = [
    (False, False, None),
    (True, False, None),
    (False, True, None),
    (True, True, [3, 1, 4, 2]),
    (False, False, [4, 4, 1, 3]),
    (False, True, [2, 4, 3, 1]),
]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("batch_first,reverse,lengths", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_numpy(mode, batch_first, reverse, lengths, dtype):
    check_forward(Case(mode, 4, 4, 3, 5, dtype, batch_first, reverse, lengths), 1e-5)


def check_forward(case, tol32):
    out = case.run()
    y, hn, cn = case.reference()
    tol = tol32 if case.x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out["y"], y, atol=tol, rtol=tol)
    np.testing.assert_allclose(out["hn"], hn, atol=tol, rtol=tol)
    if case.mode == "lstm":
        np.testing.assert_allclose(out["cn"], cn, atol=tol, rtol=tol)


TILE_LENGTHS = [5, 2, 4, 1, 5, 3, 5, 5, 2, 4, 1, 5, 3]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize(
    "batch_first,reverse,lengths",
    [(False, False, None), (True, False, None), (True, True, None), (False, True, TILE_LENGTHS)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("H", [8, 32])
def test_forward_in_register_tiles_matches_numpy(mode, batch_first, reverse, lengths, dtype, H):
    """Gate widths in whole panels of 32 columns (float32; 16 in float64) take the
    per-step products through fastnn's register tiles on AVX-512: 13 sequences are
    tiles of 8, 4 and 1 rows. An LSTM whose hidden size is a whole vector (16 in
    float32, 8 in float64: H = 32 in both, H = 8 in float64) runs its cell update in
    the tiles' epilogue (tiles of 4 and 1 rows); H = 8 in float32 does not."""
    case = Case(mode, 5, 13, 11, H, dtype, batch_first, reverse, lengths)
    check_forward(case, 2e-5)
    one = case.run(one_step=True)  # the same pass keeping one step's states
    for name, value in case.run().items():
        if name in one:
            np.testing.assert_array_equal(one[name], value, err_msg=name)


@pytest.mark.parametrize(
    "batch_first,reverse,lengths",
    [(False, False, None), (True, True, [5, 2, 4, 1, 5]), (False, True, [3, 5, 5, 1, 2])],
)
def test_lstm_cell_in_the_tiles_matches_finite_differences(
    batch_first, reverse, lengths, num_grad, fd_tol
):
    """H = 8 in float64, a whole vector: the forward's products and cell updates run in
    one pass of register tiles on AVX-512 (tiles of 4 and 1 sequences), with the gate
    columns of the weights interleaved; the backward reads the gates it stored."""
    case = Case("lstm", 5, 5, 3, 8, np.float64, batch_first, reverse, lengths)
    grads = case.run()
    for name in ["x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0"]:
        num = num_grad(lambda _: case.loss(), getattr(case, name))
        np.testing.assert_allclose(grads[name], num, **fd_tol, err_msg=name)


@pytest.mark.parametrize("I", [16, 3])
@pytest.mark.parametrize(
    "batch_first,reverse,lengths",
    [
        (False, False, None),
        (True, True, [5, 2, 4, 1, 5, 5, 3, 2, 5, 4, 1, 3, 5]),
        (False, True, [3, 5, 5, 1, 2, 4, 5, 2, 1, 5, 3, 4, 4]),
    ],
)
@pytest.mark.parametrize("with_state", [True, False])
def test_gru_backward_in_the_tiles_matches_finite_differences(
    I, batch_first, reverse, lengths, with_state, num_grad, fd_tol
):
    """H = 16 in float64, whole panels: on AVX-512 the backward's recurrent products run
    on register tiles (13 sequences: tiles of 8, 4 and 1) with the gate derivatives in
    their epilogue, and with I = 16 the input gradient too, step by step, added to what
    dx held (accumulate_dx, as the second direction of a bidirectional layer does);
    I = 3 leaves it to one BLAS product."""
    case = Case(
        "gru", 5, 13, I, 16, np.float64, batch_first, reverse, lengths, with_state=with_state
    )
    case.dx0 = np.random.default_rng(1).standard_normal(case.x.shape)
    grads = case.run()
    names = ["x", "w_ih", "w_hh", "b_ih", "b_hh"] + (["h0"] if with_state else [])
    for name in names:
        num = num_grad(lambda _: case.loss(), getattr(case, name))
        np.testing.assert_allclose(grads[name], num, **fd_tol, err_msg=name)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_float32_gates_over_the_whole_range(mode):
    """The float32 cells' sigmoid and tanh (rational, clamped beyond |x| = 7.9, within
    2.8e-7 of tanh's limits) against float64 for pre-activations over [-40, 40] in one
    step from a zero state (LSTM: c = sigmoid(i) tanh(g), h = sigmoid(o) tanh(c); GRU:
    h = (1 - sigmoid(z)) tanh(n)), through the tiles' epilogue (H = 16) and the separate
    pass (H = 8), within 4e-7 (the functions' own error: the reference takes the same
    float32 inputs); infinities saturate and a NaN propagates."""
    rng = np.random.default_rng(3)
    N, G = 2000, GATES[mode]
    x = rng.uniform(-2, 2, (1, N, 1)).astype(np.float32)
    x[0, :3, 0] = [np.inf, -np.inf, np.nan]
    for H in (8, 16):
        case = Case(mode, 1, N, 1, H, np.float32, False, False, None, with_state=False)
        w_ih = rng.uniform(-20, 20, (G * H, 1)).astype(np.float32)
        case.x, case.w_ih = x, w_ih
        case.b_ih[:] = case.b_hh[:] = 0
        out = case.run(one_step=True)
        b, state = np.zeros(G * H), np.zeros((N, H))
        with np.errstate(over="ignore", invalid="ignore"):
            w_hh = np.zeros((G * H, H))
            _, hn, cn = reference(
                mode,
                x.astype(np.float64),
                w_ih.astype(np.float64),
                w_hh,
                b,
                b,
                state,
                state,
                np.ones(N),
                False,
            )
        assert np.isnan(out["hn"][2]).all()
        np.testing.assert_allclose(out["hn"][3:], hn[3:], rtol=0, atol=4e-7)
        np.testing.assert_allclose(out["hn"][:2], hn[:2], rtol=0, atol=4e-7)
        if mode == "lstm":
            assert np.isnan(out["cn"][2]).all()
            np.testing.assert_allclose(out["cn"][3:], cn[3:], rtol=0, atol=4e-7)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
@pytest.mark.parametrize("H", [8, 16])
@pytest.mark.parametrize("one_step", [True, False])
def test_float32_states_stay_within_one(mode, H, one_step):
    """Saturated gates for 20 steps (weights 100x the usual): the float32 sigmoid and
    tanh never leave [0, 1] and [-1, 1], so neither do h and y. Clamped at |x| = 9, the
    rounded fraction gave tanh up to 1 + 2^-22, and a GRU's state, a mix of those,
    drifted up to 4 ulps above 1. Through the tiles' epilogue (H = 16) and the separate
    pass (H = 8), inference and training forward."""
    case = Case(mode, 20, 64, 4, H, np.float32, False, False, None)
    case.x *= 100
    case.w_ih *= 100
    case.w_hh *= 100
    out = case.run(one_step=one_step)
    for name in ("y", "hn"):
        assert np.isfinite(out[name]).all()
        assert np.abs(out[name]).max() <= 1, name


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("batch_first,reverse,lengths", LAYOUTS)
@pytest.mark.parametrize("with_state", [True, False])
def test_backward_matches_finite_differences(
    mode, batch_first, reverse, lengths, with_state, num_grad, fd_tol
):
    case = Case(mode, 4, 4, 3, 5, np.float64, batch_first, reverse, lengths, with_state=with_state)
    if mode == "relu":  # keep pre-activations away from the kink
        case.b_ih += 0.3
    grads = case.run()
    names = ["x", "w_ih", "w_hh", "b_ih", "b_hh"] + (["h0"] if with_state else [])
    names += ["c0"] if with_state and mode == "lstm" else []
    for name in names:
        num = num_grad(lambda _: case.loss(), getattr(case, name))
        np.testing.assert_allclose(grads[name], num, **fd_tol, err_msg=name)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "T,N,I,H", [(7, 9, 11, 20), (7, 9, 32, 21), (11, 30, 11, 32), (11, 30, 32, 32)]
)
def test_weight_gradients_match_numpy(mode, dtype, T, N, I, H):
    """The weight gradients (on AVX-512 register tiles over panels of gate columns, whole
    and narrower, and over columns of x and h, 8 at a time and one by one; where x's or
    h's width is whole panels (32 in float32, 16 in float64) tiles of 8 and 1 gate
    columns by a panel of theirs, over several passes of rows at 330 of them; where both
    are, with the bias gradients' column sums in the same tiles) and the bias gradients
    against dgates^T x, dgates^T hprev and the column sums of dgates in NumPy, from the
    kernel's own dgates."""
    lengths = (np.arange(N) * 5) % T + 1
    case = Case(mode, T, N, I, H, dtype, True, False, lengths)
    out = case.run()
    dg = out["dgates"].astype(np.float64)
    x, hprev = out["rows_x"].astype(np.float64), out["hprev"].astype(np.float64)
    W = GATES[mode] * H
    hid = np.arange(W)
    inp = np.r_[0 : 2 * H, 3 * H : 4 * H] if mode == "gru" else hid
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["w_ih"], dg[:, inp].T @ x, **tol)
    np.testing.assert_allclose(out["w_hh"], dg[:, hid].T @ hprev, **tol)
    np.testing.assert_allclose(out["b_ih"], dg.sum(0)[inp], **tol)
    np.testing.assert_allclose(out["b_hh"], dg.sum(0)[hid], **tol)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("batch_first,reverse,lengths", LAYOUTS)
@pytest.mark.parametrize("with_state", [True, False])
def test_one_step_forward_equals_the_stored_one(mode, batch_first, reverse, lengths, with_state):
    """The forward keeping one step's gates and states (no backward follows) gives the
    outputs and final states of the one keeping every step's, bit for bit."""
    case = Case(mode, 4, 4, 3, 5, np.float32, batch_first, reverse, lengths, with_state=with_state)
    stored, one = case.run(), case.run(one_step=True)
    for name in ("y", "hn", "cn"):
        np.testing.assert_array_equal(one[name], stored[name], err_msg=name)


def test_padded_steps_have_no_effect():
    """Changing x at padded steps changes no output and no gradient."""
    case = Case("lstm", 5, 3, 2, 4, np.float64, True, False, [5, 2, 3])
    first = case.run()
    case.x[2:, 1] = 7.0
    case.x[3:, 2] = -3.0
    second = case.run()
    for name in ["y", "hn", "cn", "w_ih", "w_hh", "b_ih", "h0", "c0"]:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
# (40, 128): products cut in blocks; (32, 64): the GRU's input gradient step by step
@pytest.mark.parametrize("I,H", [(8, 16), (40, 128), (32, 64)])
def test_results_do_not_depend_on_thread_count(mode, I, H):
    case = Case(mode, 6, 70, I, H, np.float32, False, True, None)
    with _threads(1):
        one = case.run()
    with _threads(2):
        two = case.run()
    for name, value in one.items():
        if value is not None:
            np.testing.assert_array_equal(value, two[name], err_msg=name)


class _threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = fastnn.get_num_threads()
        fastnn.set_num_threads(self.n)

    def __exit__(self, *exc):
        fastnn.set_num_threads(self.old)


def test_binding_rejects_bad_lengths_and_modes():
    """Value checks (shapes, dtypes, layout and None: tests/test_binding.py)."""
    case = Case("gru", 3, 2, 3, 4, np.float32, False, False, None)
    H, N, T = 4, 2, 3
    x = rows(case.x, False)
    bias = combined_bias("gru", case.b_ih, case.b_hh)

    def call(mode=K.RNN_GRU, lengths=None):
        K.rnn_forward(
            mode,
            False,
            False,
            False,
            x,
            case.w_ih,
            case.w_hh,
            bias,
            None,
            None,
            lengths,
            np.empty((3 + H, 3 * H), np.float32),
            np.empty((N * T, 4 * H), np.float32),
            np.empty((N * T, H), np.float32),
            None,
            np.empty((N, 3 * H), np.float32),
            None,
            np.empty((N, H), np.float32),
            None,
        )

    call()
    for bad in ([0, 3], [1, 4]):
        with pytest.raises(ValueError, match=r"lengths must be in \[1, 3\]"):
            call(lengths=np.array(bad))
    with pytest.raises(ValueError, match="w_hh must have 4 rows"):
        call(mode=K.RNN_TANH)
    with pytest.raises(ValueError, match="unknown recurrent mode"):
        call(mode=7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_matches_numpy(dtype):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((7, 5)).astype(dtype)
    idx = rng.integers(0, 7, 40)
    y = np.empty((40, 5), dtype)
    K.embedding_forward(idx, w, y)
    np.testing.assert_array_equal(y, w[idx])
    gy = rng.standard_normal((40, 5)).astype(dtype)
    for pad in (-1, 3):
        gw = np.ones_like(w)
        K.embedding_backward(idx, gy, pad, gw)
        ref = np.ones_like(w)
        keep = idx != pad
        np.add.at(ref, idx[keep], gy[keep])
        np.testing.assert_allclose(gw, ref, rtol=1e-6)
    with pytest.raises(IndexError, match="out of range"):
        K.embedding_forward(np.array([0, 7]), w, np.empty((2, 5), dtype))
    with pytest.raises(IndexError, match="out of range"):
        K.embedding_backward(np.array([-1, 2]), np.zeros((2, 5), dtype), -1, gw)


def test_embedding_scatter_is_deterministic():
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 50, 20000)
    gy = rng.standard_normal((20000, 16)).astype(np.float32)
    out = []
    for n in (1, 2):
        with _threads(n):
            gw = np.zeros((50, 16), np.float32)
            K.embedding_backward(idx, gy, -1, gw)
            out.append(gw)
    np.testing.assert_array_equal(out[0], out[1])
