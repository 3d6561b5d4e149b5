"""Run by tests/test_distributed.py under mpiexec: rank 1 fails while the other ranks
wait in a collective. argv[1]: 'raise' (an uncaught exception) or 'die' (killed)."""
import os
import signal
import sys

import numpy as np

from fastnn import distributed

world = distributed.init()
world.allreduce_(np.ones(4))  # every rank is up
if world.rank == 1:
    if sys.argv[1] == "raise":
        raise RuntimeError("rank 1 failed on purpose")
    os.kill(os.getpid(), signal.SIGKILL)
world.allreduce_(np.ones(4))  # never completes: rank 1 is gone
print("unreachable", flush=True)
