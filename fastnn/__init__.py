"""fastnn: fast, honest neural-network training on the CPU.

C/OpenMP kernels (BLAS GEMMs, fused epilogues, normalisation, dropout, losses,
optimizer updates) under a small PyTorch-shaped Python API."""

__version__ = "0.1.0"

try:
    # threads first: it chooses the OpenMP runtime's settings, which are read when the
    # kernels (the compiled core, which everything below needs) load.
    from . import threads  # noqa: F401
except ImportError as e:  # a source tree without the built extension
    raise ImportError(
        "fastnn's compiled kernels (fastnn._kernels) are not built here: this is the "
        "source tree, imported instead of an installed fastnn. Either work on it with an "
        'editable install, which builds the extension in place (`pip install -e ".[test]"`), '
        "or run from outside the source tree (e.g. `pytest` rather than `python -m "
        f"pytest`, which puts the current directory first on sys.path). ({e})"
    ) from None

from . import (  # noqa: E402
    callbacks,
    datasets,
    inference,
    init,
    losses,
    metrics,
    optim,
    preprocessing,
    regularizers,
    schedules,
)
from .io import load, save  # noqa: E402
from .layers import *  # noqa: E402,F403 - the layers are part of the top-level API
from .layers import __all__ as _layer_names  # noqa: E402
from .graph import Input, Model  # noqa: E402
from .module import Context, Layer, Module, Parameter  # noqa: E402
from .sequential import Sequential  # noqa: E402
from .store import ParameterStore  # noqa: E402
from .rng import seed  # noqa: E402
from .threads import get_num_threads, set_dynamic_threads, set_num_threads  # noqa: E402
from .trainer import History, Trainer  # noqa: E402

__all__ = _layer_names + [
    "Context",
    "History",
    "Input",
    "Layer",
    "Model",
    "Module",
    "Parameter",
    "ParameterStore",
    "Sequential",
    "Trainer",
    "callbacks",
    "datasets",
    "get_num_threads",
    "inference",
    "init",
    "load",
    "losses",
    "metrics",
    "optim",
    "preprocessing",
    "regularizers",
    "save",
    "schedules",
    "seed",
    "set_dynamic_threads",
    "set_num_threads",
]
