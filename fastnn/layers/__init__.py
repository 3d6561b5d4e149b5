"""Layers: fully connected, activations, normalisation, dropout, merge and residual,
recurrent, embedding, attention pooling."""
from .activations import (
    ELU, GELU, RBF, AbsReLU, HardTanh, Identity, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid,
    Softmax, Softplus, Tanh,
)
from .attention import AttentionPooling
from .dense import Dense, Linear
from .dropout import DropConnect, Dropout
from .embedding import Embedding
from .merge import Add, Concatenate, Multiply, Residual
from .normalization import (
    BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm,
    Standardize, remove_weight_norm, weight_norm,
)
from .recurrent import GRU, LSTM, RNN
from .renorm import BatchRenorm1d
from .sync_batchnorm import SyncBatchNorm

__all__ = [
    "AbsReLU", "Add", "AttentionPooling", "BatchNorm1d", "BatchNorm2d", "BatchRenorm1d",
    "Concatenate", "Dense", "DropConnect", "Dropout", "ELU", "Embedding", "GELU", "GRU",
    "GroupNorm", "HardTanh", "Identity", "InstanceNorm1d", "InstanceNorm2d", "LSTM",
    "LayerNorm", "LeakyReLU", "Linear", "Maxout", "Multiply", "PReLU", "RBF", "RNN", "ReLU",
    "Residual", "Sigmoid", "Softmax", "Softplus", "Standardize", "SyncBatchNorm", "Tanh",
    "remove_weight_norm", "weight_norm",
]
