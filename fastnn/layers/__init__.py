"""Layers: fully connected, activations, normalisation, dropout, merge and residual."""
from .activations import (
    ELU, GELU, RBF, AbsReLU, HardTanh, Identity, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid,
    Softmax, Softplus, Tanh,
)
from .conv import Conv1d, Conv2d
from .dense import Dense, Linear
from .dropout import DropConnect, Dropout
from .merge import Add, Concatenate, Multiply, Residual
from .normalization import (
    BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm,
    Standardize, remove_weight_norm, weight_norm,
)
from .pooling import (
    AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, Flatten, MaxPool1d, MaxPool2d,
)
from .spatial_dropout import Cutout, DropBlock2d, Dropout1d, Dropout2d, StochasticDepth

__all__ = [
    "AbsReLU", "Add", "BatchNorm1d", "BatchNorm2d", "Concatenate", "Dense", "DropConnect",
    "Dropout", "ELU", "GELU", "GroupNorm", "HardTanh", "Identity", "InstanceNorm1d",
    "InstanceNorm2d", "LayerNorm", "LeakyReLU", "Linear", "Maxout", "Multiply", "PReLU", "RBF",
    "ReLU", "Residual", "Sigmoid", "Softmax", "Softplus", "Standardize", "Tanh",
    "remove_weight_norm", "weight_norm",
]
__all__ += [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "Conv1d", "Conv2d",
    "Cutout", "DropBlock2d", "Dropout1d", "Dropout2d", "Flatten", "MaxPool1d", "MaxPool2d",
    "StochasticDepth",
]
