"""fastnn: fast, honest neural-network training on the CPU.

C/OpenMP kernels (BLAS GEMMs, fused epilogues, normalisation, dropout, losses,
optimizer updates) under a small PyTorch-shaped Python API."""
from . import init, losses, optim, regularizers, schedules
from .layers import *  # noqa: F403 - the layers are part of the top-level API
from .layers import __all__ as _layer_names
from .module import Layer, Module, Parameter, Sequential
from .rng import seed
from .threads import get_num_threads, set_num_threads
from .trainer import History, Trainer

__version__ = "0.1.0"

__all__ = _layer_names + [
    "History", "Layer", "Module", "Parameter", "Sequential", "Trainer", "get_num_threads",
    "init", "losses", "optim", "regularizers", "schedules", "seed", "set_num_threads",
]
