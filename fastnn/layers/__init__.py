"""Layers: fully connected, activations, normalisation, dropout."""
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from .dense import Dense, Linear
from .dropout import Dropout
from .normalization import BatchNorm1d

__all__ = [
    "Dense", "Linear", "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
    "BatchNorm1d", "Dropout",
]
