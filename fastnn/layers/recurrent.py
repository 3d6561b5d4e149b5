"""Recurrent layers: RNN, LSTM and GRU with torch.nn's arguments, gate order, weight
names and shapes (a torch state_dict loads unchanged), on fused C kernels.

Each direction of each layer is one kernel call (csrc/recurrent.h): every step, block
by block of sequences, the input and recurrent products and one fused pass for the
gates and the state update while they are in cache; backpropagation through time runs
over the gate activations the forward pass stored. Weight gradients are one pass over
all steps. An eval-mode call (inference) keeps only one step's gates and states, which
stay in cache; a backward after it runs the forward again, keeping every step's.

Inputs. `layer(x)` with x of shape (N, T, input_size) when `batch_first=True`, else
(T, N, input_size) (torch's default). Two optional inputs, by keyword on a direct call
or as a list in a model (`layer([x, lengths])`, `layer([x, lengths, h0])`,
`layer([x, lengths, h0, c0])` for an LSTM; `lengths` may be None in that list):
- `lengths` (N,) or (N, 1) integers in [1, T] (in a model, an input of shape (1,)):
  sequence n is its first lengths[n] steps; the
  steps after it change neither outputs nor gradients and output zeros, as torch's
  packed sequences do. Any order (no sorting needed).
- `hx`: the initial state h0 of shape (num_layers * D, N, hidden_size) (D = 2 when
  bidirectional, else 1), for an LSTM a pair (h0, c0); zeros when omitted.
With the list form, backward returns [dx, None, dh0(, dc0)].

Output. With `return_sequences=True` (default) the last layer's output at every step:
(N, T, D * hidden_size) with batch_first, else (T, N, D * hidden_size). With
`return_sequences=False` the last layer's final hidden state, (N, D * hidden_size)
([forward, reverse] for a bidirectional layer: torch's h_n[-D:] side by side), so a
recurrent layer can sit in a Sequential before a Dense head. After a call, `h_n` (and
`c_n` for an LSTM) hold the final states of every layer, (num_layers * D, N,
hidden_size) as torch returns them.

In a Sequential or a Model trained by the Trainer (which batches along axis 0) use
`batch_first=True`.
"""

import math

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .. import _kernels, init as _init, rng
from ..module import Layer, Parameter
from ..validation import (
    as_array,
    as_float_input,
    choice,
    float_dtype,
    positive_int,
    probability,
)


class _Recurrent(Layer):
    """The machinery shared by RNN, LSTM and GRU (torch.nn.RNNBase)."""

    _blocks = 1  # gate blocks stacked in the weights: LSTM 4, GRU 3, RNN 1
    _transient = ("_last_ctx",)  # the last call's context, behind h_n / c_n
    # Benchmark hook (fastnn.bench.rnn): True runs only the kernels' matrix products,
    # to time them alone; the outputs are then meaningless.
    _gemm_only = False

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        return_sequences: bool = True,
        dtype: DTypeLike = np.float32,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.input_size = positive_int(input_size, f"{type(self).__name__} input_size")
        self.hidden_size = positive_int(hidden_size, f"{type(self).__name__} hidden_size")
        self.num_layers = positive_int(num_layers, f"{type(self).__name__} num_layers")
        self.dropout = probability(dropout, f"{type(self).__name__} dropout")
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.return_sequences = bool(return_sequences)
        self.num_directions = 2 if self.bidirectional else 1
        dt = float_dtype(dtype)
        H, D = self.hidden_size, self.num_directions
        rows = self._blocks * H
        self._where = f"{type(self).__name__}({self.input_size}, {H})"
        # Attributes in torch's order, so state_dict() lists the keys as torch does.
        for k in range(self.num_layers):
            width = self.input_size if k == 0 else D * H
            for d in range(D):
                sfx = self._suffix(k, d)
                self._add(f"weight_ih{sfx}", (rows, width), dt)
                self._add(f"weight_hh{sfx}", (rows, H), dt)
                if bias:
                    self._add(f"bias_ih{sfx}", (rows,), dt)
                    self._add(f"bias_hh{sfx}", (rows,), dt)
        self.bias = bool(bias)
        self.reset_parameters()

    @staticmethod
    def _suffix(k, d):
        return f"_l{k}" + ("_reverse" if d else "")

    def _add(self, name, shape, dtype):
        setattr(self, name, Parameter(np.empty(shape, dtype), name))

    def _cell(self, k, d):
        """(weight_ih, weight_hh, bias_ih, bias_hh) of layer k, direction d."""
        sfx = self._suffix(k, d)
        get = lambda n: getattr(self, n + sfx, None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def reset_parameters(self):
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for _, p in self._own_parameters():
            _init.uniform_(p, -bound, bound)

    # -- the mode-specific parts ---------------------------------------------------------
    @property
    def _mode(self):
        raise NotImplementedError

    def _combine_bias(self, b_ih, b_hh, out):
        """The kernel's bias: b_ih + b_hh (GRU overrides)."""
        if b_ih is None:
            out.fill(0)
        else:
            np.add(b_ih.data, b_hh.data, out=out)

    def _add_bias_grad(self, dbias, b_ih, b_hh):
        """Add the kernel's gate-gradient column sums to the bias gradients."""
        for b in (b_ih, b_hh):
            if b is not None and b.requires_grad:
                b.grad += dbias

    # -- inputs ---------------------------------------------------------------------------
    def forward(
        self,
        x: ArrayLike | list,
        hx: ArrayLike | tuple | None = None,
        lengths: ArrayLike | None = None,
    ) -> np.ndarray:
        """Output for x (see the module docstring); hx the initial state (h0, or (h0, c0)
        for an LSTM), lengths the valid steps of each sequence."""
        if hx is None and lengths is None:
            return super().forward(x)
        states = [] if hx is None else list(hx) if self._mode == _kernels.RNN_LSTM else [hx]
        return super().forward([x, lengths] + states)

    def _inputs(self, inputs):
        """x (3-D, this layer's dtype), lengths (int64 or None) and the initial states."""
        where = self._where
        parts = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        n_states = 2 if self._mode == _kernels.RNN_LSTM else 1
        if not 1 <= len(parts) <= 2 + n_states:
            raise ValueError(
                f"{where}: expected x, [x, lengths] or [x, lengths, initial "
                f"states ({n_states})], got {len(parts)} inputs"
            )
        dt = self.weight_ih_l0.dtype
        x = as_float_input(parts[0], dt, where, ndim=3, features=self.input_size)
        N, T = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        if N == 0 or T == 0:
            raise ValueError(
                f"{where}: expected at least one sequence and one step, got shape {x.shape}"
            )
        lengths = parts[1] if len(parts) > 1 else None
        if lengths is not None:
            lengths = self._lengths(lengths, N, T)
        states = [self._state(s, N, dt, name) for s, name in zip(parts[2:], ("h0", "c0"))]
        return x, N, T, lengths, states

    def _lengths(self, lengths, N, T):
        where = self._where
        a = as_array(lengths, f"{where} lengths")
        if a.shape == (N, 1):  # a model input: one column per sample
            a = a[:, 0]
        if a.shape != (N,):
            raise ValueError(f"{where}: lengths must have shape ({N},) or ({N}, 1), got {a.shape}")
        if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
            raise ValueError(f"{where}: lengths must be whole numbers")
        a = a.astype(np.int64)
        if a.min() < 1 or a.max() > T:
            raise ValueError(
                f"{where}: lengths must be in [1, {T}] (the number of steps), "
                f"got values in [{a.min()}, {a.max()}]"
            )
        return None if a.min() == T else np.ascontiguousarray(a)

    def _state(self, s, N, dtype, name):
        want = (self.num_layers * self.num_directions, N, self.hidden_size)
        if s is None:
            return None
        s = as_float_input(s, dtype, f"{self._where} {name}")
        if s.shape != want:
            raise ValueError(f"{self._where}: {name} must have shape {want}, got {s.shape}")
        return s

    # -- computation ----------------------------------------------------------------------
    def _forward(self, ctx, inputs):
        return self._run(ctx, inputs, self.training)

    def _run(self, ctx, inputs, training, keep=None):
        """The forward; `keep`: store every step's activations for a backward (by
        default only in training: an eval-mode call keeps one step's, and a backward
        after it runs the forward again keeping them)."""
        keep = training if keep is None else keep
        x, N, T, lengths, states = self._inputs(inputs)
        mode, H, D, L = self._mode, self.hidden_size, self.num_directions, self.num_layers
        lstm, gru = mode == _kernels.RNN_LSTM, mode == _kernels.RNN_GRU
        G = 4 * H if lstm or gru else H
        R, dt = N * T, x.dtype
        h0 = states[0] if states else None
        c0 = states[1] if len(states) > 1 else None
        ws = ctx.workspace
        xin = x.reshape(R, -1)
        ctx.x_shape, ctx.N, ctx.T, ctx.lengths = x.shape, N, T, lengths
        ctx.n_inputs = len(inputs) if isinstance(inputs, (list, tuple)) else None
        ctx.has_h0 = h0 is not None
        ctx.inputs, ctx.masks, ctx.cells = [], [], []
        ctx.raw_inputs, ctx.kept = inputs, keep
        S = R if keep else N  # rows of the gates, twice N for the states when not kept
        drop = training and self.dropout > 0
        for k in range(L):
            last = k == L - 1
            y = ws(f"y{k}", (R, D * H), dt) if not last or self.return_sequences else None
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh = self._cell(k, d)
                bias = ws(f"bias{k}_{d}", (G,), dt)
                self._combine_bias(b_ih, b_hh, bias)
                cell = dict(
                    gates=ws(f"gates{k}_{d}", (S, G), dt),
                    hprev=ws(f"hprev{k}_{d}", (S if keep else 2 * N, H), dt),
                    cprev=ws(f"cprev{k}_{d}", (S if keep else 2 * N, H), dt) if lstm else None,
                    hn=ws(f"hn{k}_{d}", (N, H), dt),
                    cn=ws(f"cn{k}_{d}", (N, H), dt) if lstm else None,
                )
                _kernels.rnn_forward(
                    mode,
                    self.batch_first,
                    d == 1,
                    D == 2,
                    xin,
                    w_ih.data,
                    w_hh.data,
                    bias,
                    None if h0 is None else h0[k * D + d],
                    None if c0 is None else c0[k * D + d],
                    lengths,
                    self._scratch(f"w_t{k}", (w_ih.data.shape[1] + H, w_hh.data.shape[0]), dt),
                    cell["gates"],
                    cell["hprev"],
                    cell["cprev"],
                    ws(f"gh{k}_{d}", (N, 3 * H), dt) if gru else None,
                    y,
                    cell["hn"],
                    cell["cn"],
                    self._gemm_only,
                    not keep,
                )
                ctx.cells.append(cell)
            ctx.inputs.append(xin)
            if last:
                break
            if drop:  # inverted dropout on the outputs of every layer but the last
                xin = ws(f"drop{k}", (R, D * H), dt)
                mask = ws(f"mask{k}", (R, D * H), np.uint8)
                key, counter = rng.next_dropout_stream()
                _kernels.dropout_forward(
                    y, xin, mask, self.dropout, 1 / (1 - self.dropout), key, counter
                )
                ctx.masks.append(mask)
            else:
                xin = y
                ctx.masks.append(None)
        self._last_ctx = ctx  # for the h_n / c_n attributes only
        if self.return_sequences:
            ctx.out_shape = x.shape[:2] + (D * H,)
            return y.reshape(ctx.out_shape)
        out = ws("last", (N, D * H), dt)
        for d in range(D):
            out[:, d * H : (d + 1) * H] = ctx.cells[(L - 1) * D + d]["hn"]
        ctx.out_shape = out.shape
        return out

    def _backward(self, ctx, grad_out, need_input_grad=True):
        where = f"{self._where}.backward"
        if not ctx.kept:  # an eval-mode forward: again, keeping the activations
            self._run(ctx, ctx.raw_inputs, False, keep=True)
        mode, H, D, L = self._mode, self.hidden_size, self.num_directions, self.num_layers
        lstm = mode == _kernels.RNN_LSTM
        G = 4 * H if mode in (_kernels.RNN_LSTM, _kernels.RNN_GRU) else H
        N, R = ctx.N, ctx.N * ctx.T
        dt = ctx.inputs[0].dtype
        g = as_float_input(grad_out, dt, where)
        if g.shape != ctx.out_shape:
            raise ValueError(f"{where}: expected gradient of shape {ctx.out_shape}, got {g.shape}")
        ws = ctx.workspace
        dy = g.reshape(R, D * H) if self.return_sequences else None
        dgates = ws("dgates", (R, G), dt)
        dbias = self._scratch("dbias", (G,), dt)
        scratch = self._scratch("colsum", (_kernels.COLSUM_SCRATCH_ROWS * G,), np.float64)
        dstates = [None] * (L * D)  # layer-major, as h0
        for k in range(L - 1, -1, -1):
            xin = ctx.inputs[k]
            dx = ws(f"dx{k}", xin.shape, dt) if k > 0 or need_input_grad else None
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh = self._cell(k, d)
                cell = ctx.cells[k * D + d]
                dhn = None
                if dy is None:  # return_sequences=False: the gradient reaches h_n only
                    dhn = ws(f"dhn{d}", (N, H), dt)
                    dhn[...] = g[:, d * H : (d + 1) * H]
                dh0 = ws(f"dh0{k}_{d}", (N, H), dt)
                dc0 = ws(f"dc0{k}_{d}", (N, H), dt) if lstm else None
                want_bias = b_ih is not None and (b_ih.requires_grad or b_hh.requires_grad)
                _kernels.rnn_backward(
                    mode,
                    self.batch_first,
                    d == 1,
                    D == 2,
                    xin,
                    w_ih.data,
                    w_hh.data,
                    ctx.lengths,
                    cell["gates"],
                    cell["hprev"],
                    cell["cprev"],
                    dy,
                    dhn,
                    None,
                    dgates,
                    dh0,
                    dc0,
                    ctx.has_h0,
                    dx,
                    d == 1,
                    w_ih.grad if w_ih.requires_grad else None,
                    w_hh.grad if w_hh.requires_grad else None,
                    dbias if want_bias else None,
                    scratch,
                    self._gemm_only,
                )
                if want_bias:
                    self._add_bias_grad(dbias, b_ih, b_hh)
                dstates[k * D + d] = (dh0, dc0)
            if k > 0:
                mask = ctx.masks[k - 1]
                if mask is not None:
                    _kernels.dropout_backward(dx, mask, 1 / (1 - self.dropout), dx)
                dy = dx
        gx = dx.reshape(ctx.x_shape) if need_input_grad else None
        if ctx.n_inputs is None:
            return gx
        grads = [gx, None]
        if ctx.n_inputs > 2:
            grads.append(np.stack([s[0] for s in dstates]) if ctx.has_h0 else None)
        if ctx.n_inputs > 3:
            grads.append(np.stack([s[1] for s in dstates]))
        return grads

    # -- final states ---------------------------------------------------------------------
    def _final(self, key):
        ctx = getattr(self, "_last_ctx", None)
        if ctx is None:
            raise AttributeError(f"{self._where}: {key.replace('n', '_n')} exists after a call")
        return np.stack([cell[key] for cell in ctx.cells])

    @property
    def h_n(self) -> np.ndarray:
        """Final hidden state of every layer and direction of the last call,
        (num_layers * D, N, hidden_size)."""
        return self._final("hn")

    # -- description ----------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list):  # [x, lengths, states]: x decides
            input_shape = input_shape[0]
        width = self.num_directions * self.hidden_size
        if not self.return_sequences:
            return (width,)
        return tuple(input_shape[:-1]) + (width,)

    def get_config(self):
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "return_sequences": self.return_sequences,
        }

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        for key, default in (
            ("num_layers", 1),
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
            ("return_sequences", True),
        ):
            if getattr(self, key) != default:
                s += f", {key}={getattr(self, key)}"
        return s


class RNN(_Recurrent):
    """Elman RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (or relu), as
    torch.nn.RNN; weights `weight_ih_l{k}` (H, in), `weight_hh_l{k}` (H, H). Inputs,
    outputs and options: see fastnn.layers.recurrent."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        return_sequences: bool = True,
        dtype: DTypeLike = np.float32,
        name: str | None = None,
    ):
        self.nonlinearity = choice(nonlinearity, {"tanh", "relu"}, "RNN nonlinearity")
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            return_sequences,
            dtype,
            name,
        )

    @property
    def _mode(self):
        return _kernels.RNN_TANH if self.nonlinearity == "tanh" else _kernels.RNN_RELU

    def get_config(self):
        return {**super().get_config(), "nonlinearity": self.nonlinearity}

    def extra_repr(self):
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(_Recurrent):
    """Long short-term memory, as torch.nn.LSTM: gates i, f, g, o stacked in that order
    in `weight_ih_l{k}` (4H, in) and `weight_hh_l{k}` (4H, H);
    c_t = f c_{t-1} + i g, h_t = o tanh(c_t). Inputs, outputs and options: see
    fastnn.layers.recurrent; the initial state is the pair (h0, c0), and `c_n` holds
    the final cell states after a call."""

    _blocks = 4

    @property
    def _mode(self):
        return _kernels.RNN_LSTM

    @property
    def c_n(self) -> np.ndarray:
        """Final cell state of every layer and direction of the last call,
        (num_layers * D, N, hidden_size)."""
        return self._final("cn")


class GRU(_Recurrent):
    """Gated recurrent unit, as torch.nn.GRU: gates r, z, n stacked in that order in
    `weight_ih_l{k}` (3H, in) and `weight_hh_l{k}` (3H, H);
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h_t = (1 - z) n + z h_{t-1}.
    Inputs, outputs and options: see fastnn.layers.recurrent."""

    _blocks = 3

    @property
    def _mode(self):
        return _kernels.RNN_GRU

    def _combine_bias(self, b_ih, b_hh, out):
        """[b_ir + b_hr, b_iz + b_hz, b_in, b_hn]: b_hn stays apart, inside r * (.)."""
        if b_ih is None:
            out.fill(0)
            return
        H2 = 2 * self.hidden_size
        np.add(b_ih.data[:H2], b_hh.data[:H2], out=out[:H2])
        out[H2 : H2 + self.hidden_size] = b_ih.data[H2:]
        out[H2 + self.hidden_size :] = b_hh.data[H2:]

    def _add_bias_grad(self, dbias, b_ih, b_hh):
        H, H2 = self.hidden_size, 2 * self.hidden_size
        if b_ih.requires_grad:
            b_ih.grad[:H2] += dbias[:H2]
            b_ih.grad[H2:] += dbias[3 * H :]
        if b_hh.requires_grad:
            b_hh.grad += dbias[: 3 * H]
