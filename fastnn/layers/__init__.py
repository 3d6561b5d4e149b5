"""Layers: fully connected, activations, normalisation, dropout, recurrent, embedding,
attention pooling."""
from .activations import (
    ELU, GELU, RBF, AbsReLU, HardTanh, Identity, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid,
    Softmax, Softplus, Tanh,
)
from .attention import AttentionPooling
from .dense import Dense, Linear
from .dropout import DropConnect, Dropout
from .embedding import Embedding
from .normalization import (
    BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm,
    Standardize, remove_weight_norm, weight_norm,
)
from .recurrent import GRU, LSTM, RNN

__all__ = [
    "AbsReLU", "AttentionPooling", "BatchNorm1d", "BatchNorm2d", "Dense", "DropConnect",
    "Dropout", "ELU", "Embedding", "GELU", "GRU", "GroupNorm", "HardTanh", "Identity",
    "InstanceNorm1d", "InstanceNorm2d", "LSTM", "LayerNorm", "LeakyReLU", "Linear", "Maxout",
    "PReLU", "RBF", "RNN", "ReLU", "Sigmoid", "Softmax", "Softplus", "Standardize", "Tanh",
    "remove_weight_norm", "weight_norm",
]
