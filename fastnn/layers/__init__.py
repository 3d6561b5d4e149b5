"""Layers: fully connected, activations, normalisation, dropout, merge and residual,
recurrent, embedding, attention pooling."""

from .activations import (
    ELU,
    GELU,
    RBF,
    AbsReLU,
    HardTanh,
    Identity,
    LeakyReLU,
    Maxout,
    PReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from .attention import AttentionPooling
from .conv import Conv1d, Conv2d
from .dense import Dense, Linear
from .dropout import DropConnect, Dropout
from .embedding import Embedding
from .merge import Add, Concatenate, Multiply, Residual
from .normalization import (
    BatchNorm1d,
    BatchNorm2d,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    LayerNorm,
    Standardize,
    remove_weight_norm,
    weight_norm,
)
from .pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    Flatten,
    MaxPool1d,
    MaxPool2d,
)
from .recurrent import GRU, LSTM, RNN
from .renorm import BatchRenorm1d
from .spatial_dropout import Cutout, DropBlock2d, Dropout1d, Dropout2d, StochasticDepth
from .sync_batchnorm import SyncBatchNorm

__all__ = [
    "AbsReLU",
    "Add",
    "AttentionPooling",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchRenorm1d",
    "Concatenate",
    "Dense",
    "DropConnect",
    "Dropout",
    "ELU",
    "Embedding",
    "GELU",
    "GRU",
    "GroupNorm",
    "HardTanh",
    "Identity",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "LSTM",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "Maxout",
    "Multiply",
    "PReLU",
    "RBF",
    "RNN",
    "ReLU",
    "Residual",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Standardize",
    "SyncBatchNorm",
    "Tanh",
    "remove_weight_norm",
    "weight_norm",
]
__all__ += [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "Cutout",
    "DropBlock2d",
    "Dropout1d",
    "Dropout2d",
    "Flatten",
    "MaxPool1d",
    "MaxPool2d",
    "StochasticDepth",
]
