"""Data-parallel training over MPI (mpi4py), with the results of one process.

    pip install "fastnn[mpi]"            # mpi4py and the MPICH wheel: no compiler, no system MPI
    mpiexec -n 4 python train.py         # or: mpiexec -n 4 fastnn train data.csv ...

A script launched by mpiexec needs no change: `Trainer.fit` finds the MPI world (or call
`fastnn.distributed.init()` first). `batch_size` stays the global batch: every global
batch of the shared per-epoch permutation is cut into one contiguous shard per rank
(sizes differ by at most one row), each rank gathers only its rows (from a memory-mapped
array, only those rows are read), runs forward and backward on them, and the gradient is
all-reduced over the model's flat gradient store (one MPI call per dtype bucket) with
each rank's share weighted by its row count, so the update is that of the global mean
loss. Ranks start from rank 0's weights and random state, draw the same permutations and
step identical optimizers, so they hold the same weights throughout. See
docs/distributed.md for what is bit-identical to one process and what is equal to
float32 round-off.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any, Callable, Sequence

import numpy as np

from . import rng

# Environment variables set by the launchers of MPICH (hydra), Open MPI and PMIx.
_WORLD_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")

_world = None


class World:
    """The processes training together: `comm` (an mpi4py communicator), `rank`, `size`."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.batch_weight = 1.0  # this rank's share of the current global batch
        self.batch_rows = 0  # the current global batch's rows

    @property
    def is_main(self):
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """slice of rows [start, stop) of an n-row global batch that this rank takes."""
        return shard_slice(n, self.size, self.rank)

    def check_batches(self, n: int, batch_size: int, drop_last: bool) -> None:
        """ValueError unless every global batch of an epoch (n rows in batches of
        batch_size) gives each rank at least one row."""
        last = n % batch_size
        smallest = batch_size if drop_last or last == 0 or n < batch_size else last
        smallest = min(smallest, n)
        if smallest < self.size:
            raise ValueError(
                f"fastnn.distributed: a global batch of {smallest} rows cannot "
                f"give each of the {self.size} ranks a row; use batch_size >= "
                f"{self.size} (and drop_last=True when the last batch is "
                "smaller)"
            )

    def begin_batch(self, n: int) -> slice:
        """This rank's slice of an n-row global batch; records the rank's share of it
        (`batch_weight`, the weight of its mean loss in the global mean loss)."""
        if n < self.size:
            self.check_batches(n, n, False)
        part = self.shard(n)
        self.batch_rows = n
        self.batch_weight = (part.stop - part.start) / n
        rng.set_dropout_row_offset(part.start)
        return part

    def allreduce_(self, array: np.ndarray) -> np.ndarray:
        """Sum `array` (contiguous) over the ranks, in place; returns it."""
        from mpi4py import MPI

        self.comm.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
        return array

    def sum(self, values: Sequence[float]) -> np.ndarray:
        """The sums over the ranks of a sequence of floats (one MPI call), float64."""
        return self.allreduce_(np.asarray(values, np.float64).copy())

    def broadcast_(self, array, root=0):
        self.comm.Bcast(array, root=root)
        return array

    def broadcast_object(self, obj, root=0):
        return self.comm.bcast(obj, root=root)

    def abort(self, code=1):
        self.comm.Abort(code)

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size})"


def shard_slice(n: int, size: int, rank: int) -> slice:
    """Rows [start, stop) of rank `rank` when n rows are cut into `size` contiguous shards
    whose sizes differ by at most one (the first n % size ranks take one more)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def launched_by_mpiexec() -> bool:
    """Whether this process was started by an MPI launcher with more than one rank."""
    for var in _WORLD_SIZE_VARS:
        value = os.environ.get(var)
        if value is not None and value.isdigit() and int(value) > 1:
            return True
    return False


def _abort_on_uncaught(world):
    """An exception escaping one rank aborts every rank (MPI_Abort) after printing its
    traceback, instead of leaving the others blocked in a collective forever."""

    def hook(kind, value, tb):
        sys.stderr.write(
            f"fastnn.distributed: rank {world.rank} of {world.size} raised; aborting all ranks\n"
        )
        traceback.print_exception(kind, value, tb)
        sys.stderr.flush()
        time.sleep(0.5)  # let the launcher forward the message before it kills everyone
        world.abort(1)
        os._exit(1)  # pragma: no cover - in case Abort returns before the kill arrives

    sys.excepthook = hook


def sharded_check(check: Callable[[Any, str], None], X: Any, where: str) -> None:
    """check(X, where) (which raises ValueError) on this rank's contiguous block of X
    only, under MPI; every rank raises the first rank's error, so none is left waiting.
    Without MPI: check(X, where)."""
    w = world()
    if w is None:
        return check(X, where)
    try:
        check(X[w.shard(X.shape[0])], where)
        error = None
    except ValueError as e:
        error = str(e)
    errors = [e for e in w.comm.allgather(error) if e is not None]
    if errors:
        raise ValueError(errors[0])


def init(comm: Any = None) -> World:
    """Join the MPI world (COMM_WORLD, or `comm`) and return the World; idempotent.
    Requires mpi4py (`pip install "fastnn[mpi]"`). An uncaught exception on any rank
    then aborts all of them, and a rank that dies makes the launcher stop the others."""
    global _world
    if _world is not None and (comm is None or comm is _world.comm):
        return _world
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            'fastnn.distributed needs mpi4py and an MPI library: pip install "fastnn[mpi]"'
        ) from e
    _world = World(MPI.COMM_WORLD if comm is None else comm)
    if _world.size > 1:
        _abort_on_uncaught(_world)
    return _world


def world() -> World | None:
    """The World to train in: the initialised one, or COMM_WORLD when this process was
    launched by mpiexec with several ranks (auto-detection), else None (one process)."""
    if _world is None and launched_by_mpiexec():
        init()
    return _world if _world is not None and _world.size > 1 else None


def rank() -> int:
    """This process's rank (0 without MPI)."""
    w = world()
    return 0 if w is None else w.rank


def world_size() -> int:
    w = world()
    return 1 if w is None else w.size


def is_main_process() -> bool:
    """True on rank 0 (and without MPI): the process that writes files and prints."""
    return rank() == 0


class DataParallel:
    """What Trainer.fit does on each of several ranks: start from rank 0's weights,
    buffers and random state; all-reduce the gradient after every backward; reduce the
    epoch's figures. `start(model)` and `stop()` bracket a fit."""

    def __init__(self, world):
        self.world = world
        self._handles = []

    def start(self, model, store, stream=None):
        """Rank 0's weights, buffers and random state (of `stream`, the trainer's; default
        the current one) on every rank, and the gradient all-reduce hooked in."""
        self.sync_state(model, everything=True)
        state = rng.get_state(stream) if self.world.is_main else None
        rng.set_state(self.world.broadcast_object(state), stream)
        self._handles.append(
            store.register_hook("after_backward", self.allreduce_gradients, order=200)
        )

    def stop(self):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        rng.set_dropout_row_offset(0)

    def allreduce_gradients(self, store, **info):
        """The gradient of the global mean loss on every rank: each rank's gradient (of
        its shard's mean loss) weighted by its share of the global batch, summed; one
        MPI call per buffer (bucket) of the store."""
        w = self.world.batch_weight
        for buf in store.buffers:
            if w != 1.0:
                buf.grad *= buf.grad.dtype.type(w)
            self.world.allreduce_(buf.grad)

    def sync_state(self, model, everything=False):
        """Rank 0's buffers (running statistics; with everything=True also the
        parameters) on every rank."""
        params = set() if everything else {id(p.data) for p in model.parameters()}
        for _, value in model._state_items():
            if id(value) not in params:
                self.world.broadcast_(value)

    def step_loss(self, value, stop):
        """(the global batch's mean loss, whether any rank asks to stop): this rank's
        loss weighted by its share, and its stop flag, summed over the ranks. A
        non-finite loss on one rank is non-finite on all, so every rank decides alike."""
        total = self.world.sum([self.world.batch_weight * value, float(bool(stop))])
        return float(total[0]), bool(total[1])

    def sum(self, values):
        return self.world.sum(values)

    def callbacks(self, callbacks):
        """The callbacks this rank runs: all of them on rank 0; elsewhere only those
        that write nothing (ProgressBar, EpochLogger, CSVLogger, ModelCheckpoint and any
        callback with a true `rank_zero_only` attribute stay on rank 0)."""
        if self.world.is_main:
            return list(callbacks)
        from .callbacks import CSVLogger, EpochLogger, ModelCheckpoint, ProgressBar

        output = (CSVLogger, EpochLogger, ModelCheckpoint, ProgressBar)
        return [
            c
            for c in callbacks
            if not isinstance(c, output) and not getattr(c, "rank_zero_only", False)
        ]
