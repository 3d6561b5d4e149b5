"""Embedding: a lookup table of learned vectors, as torch.nn.Embedding."""

import numpy as np
from numpy.typing import DTypeLike

from .. import _kernels, init as _init
from ..module import Layer, Parameter
from ..validation import as_array, float_dtype, positive_int


class Embedding(Layer):
    """y[..., :] = weight[ids[...]] for integer ids of any shape (N, *): output
    (N, *, embedding_dim). weight (num_embeddings, embedding_dim) ~ N(0, 1), as torch.

    `padding_idx` (negative counts from the end, as torch): that row starts at zero and
    gets no gradient, so padding tokens embed to a constant zero vector. The weight
    gradient is a scatter-add kernel whose sums do not depend on the thread count. Ids
    may arrive as floats holding whole numbers (a model's inputs are often cast to its
    float dtype); ids out of [0, num_embeddings) raise IndexError. The input gets no
    gradient."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        dtype: DTypeLike = np.float32,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.num_embeddings = positive_int(num_embeddings, "Embedding num_embeddings")
        self.embedding_dim = positive_int(embedding_dim, "Embedding embedding_dim")
        if padding_idx is not None:
            V = self.num_embeddings
            if not isinstance(padding_idx, (int, np.integer)) or not -V <= padding_idx < V:
                raise ValueError(
                    f"Embedding: padding_idx must be an integer in [{-V}, {V}), got {padding_idx!r}"
                )
            padding_idx = int(padding_idx) % V
        self.padding_idx = padding_idx
        self._where = f"Embedding({self.num_embeddings}, {self.embedding_dim})"
        self.weight = Parameter(
            np.empty((self.num_embeddings, self.embedding_dim), float_dtype(dtype)), "weight"
        )
        self.reset_parameters()

    def reset_parameters(self):
        _init.normal_(self.weight, 0.0, 1.0)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def _ids(self, ids):
        ids = as_array(ids, self._where)
        if ids.ndim == 0:
            raise ValueError(f"{self._where}: expected an array of token ids, got a scalar")
        if ids.dtype.kind == "f":
            if not np.array_equal(ids, np.trunc(ids)):
                raise ValueError(f"{self._where}: token ids must be whole numbers")
        elif ids.dtype.kind == "b":
            raise TypeError(f"{self._where}: token ids must be integers, got dtype bool")
        return np.ascontiguousarray(ids, dtype=np.int64)

    def _forward(self, ctx, ids):
        ids = self._ids(ids)
        W = self.weight.data
        flat = ids.reshape(-1)
        y = ctx.workspace("y", (flat.shape[0], self.embedding_dim), W.dtype)
        _kernels.embedding_forward(flat, W, y)  # checks the id range
        ctx.ids = flat
        ctx.out_shape = ids.shape + (self.embedding_dim,)
        return y.reshape(ctx.out_shape)

    def _backward(self, ctx, grad_out, need_input_grad=True):
        W = self.weight
        g = np.asarray(grad_out)
        if g.shape != ctx.out_shape:
            raise ValueError(
                f"{self._where}.backward: expected gradient of shape {ctx.out_shape}, got {g.shape}"
            )
        if W.requires_grad:
            g = np.ascontiguousarray(g, dtype=W.dtype).reshape(-1, self.embedding_dim)
            pad = -1 if self.padding_idx is None else self.padding_idx
            _kernels.embedding_backward(ctx.ids, g, pad, W.grad)
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.embedding_dim,)

    def get_config(self):
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "padding_idx": self.padding_idx,
        }

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
