"""fastnn: fast, honest neural-network training on the CPU.

C/OpenMP kernels (BLAS GEMMs, fused epilogues, batch norm, dropout, losses, optimizer
updates) under a small PyTorch-shaped Python API."""
from . import init, losses, optim
from .layers import (
    BatchNorm1d, Dense, Dropout, Identity, LeakyReLU, Linear, ReLU, Sigmoid, Tanh,
)
from .module import Layer, Module, Parameter, Sequential
from .rng import seed
from .threads import get_num_threads, set_num_threads
from .trainer import History, Trainer

__version__ = "0.1.0"

__all__ = [
    "BatchNorm1d", "Dense", "Dropout", "History", "Identity", "Layer", "LeakyReLU",
    "Linear", "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh", "Trainer",
    "get_num_threads", "init", "losses", "optim", "seed", "set_num_threads",
]
