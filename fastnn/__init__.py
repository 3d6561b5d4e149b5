"""fastnn: fast, honest neural-network training on the CPU.

C/OpenMP kernels (BLAS GEMMs, fused epilogues, normalisation, dropout, losses,
optimizer updates) under a small PyTorch-shaped Python API."""
__version__ = "0.1.0"

# First: it chooses the OpenMP runtime's settings, which are read when the kernels load.
from . import threads  # noqa: E402,I001
from . import (  # noqa: E402
    callbacks, datasets, init, losses, metrics, optim, preprocessing, regularizers, schedules,
)
from .io import load, save  # noqa: E402
from .layers import *  # noqa: E402,F403 - the layers are part of the top-level API
from .layers import __all__ as _layer_names  # noqa: E402
from .module import Layer, Module, Parameter, Sequential  # noqa: E402
from .rng import seed  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402
from .trainer import History, Trainer  # noqa: E402

__all__ = _layer_names + [
    "History", "Layer", "Module", "Parameter", "Sequential", "Trainer", "callbacks",
    "datasets", "get_num_threads", "init", "load", "losses", "metrics", "optim",
    "preprocessing", "regularizers", "save", "schedules", "seed", "set_num_threads",
]
