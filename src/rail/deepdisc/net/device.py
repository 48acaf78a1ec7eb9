"""Where the network runs: the torch device and the number of CPU threads.

Threads: a process uses ``OMP_NUM_THREADS`` when it is set, else the cores it may run on
divided by the processes of its job on this node (MPI ranks, torchrun workers), and never
more threads than cores. On shared virtual cores a process with more threads than it really
gets slows down many times over, and several ranks per node each taking every core is how
clusters are used, so oversubscription is the failure to avoid.
"""

from __future__ import annotations

import logging
import os
import sys

import torch

from rail.deepdisc.errors import OptionError
from rail.deepdisc.workers import usable_cores

log = logging.getLogger(__name__)

#: environment variables giving the number of processes of a job on this node
_LOCAL_SIZE_VARIABLES = ("LOCAL_WORLD_SIZE",  # torchrun
                         "OMPI_COMM_WORLD_LOCAL_SIZE",  # Open MPI
                         "MPI_LOCALNRANKS",  # MPICH (hydra)
                         "MV2_COMM_WORLD_LOCAL_SIZE",  # MVAPICH
                         "SLURM_NTASKS_PER_NODE")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an unavailable device is an error."""
    mps = getattr(torch.backends, "mps", None)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError("device 'cuda' was asked for but torch sees no CUDA device")
    if name == "mps" and not (mps and mps.is_available()):
        raise OptionError("device 'mps' was asked for but is not available")
    return torch.device(name)


def processes_on_node() -> int:
    """Processes of this job on this node: MPI ranks (from mpi4py when it is in use, else
    the launcher's environment) or torchrun workers; 1 for a lone process."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and mpi.COMM_WORLD.Get_size() > 1:
        return int(mpi.COMM_WORLD.Split_type(mpi.COMM_TYPE_SHARED).Get_size())
    for name in _LOCAL_SIZE_VARIABLES:
        value = os.environ.get(name, "").split("(")[0]
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def default_threads() -> int:
    """``OMP_NUM_THREADS`` if set, else usable cores / processes on this node (>= 1)."""
    cores = usable_cores()
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return min(int(env), cores)
    return max(1, cores // processes_on_node())


def set_threads(num_threads: int) -> int:
    """Use ``num_threads`` CPU threads (0: :func:`default_threads`), at most one per usable
    core; returns the number set."""
    cores = usable_cores()
    if num_threads <= 0:
        num_threads = default_threads()
    elif num_threads > cores:
        log.warning("num_threads %d is more than the %d cores this process may use; "
                    "using %d", num_threads, cores, cores)
        num_threads = cores
    torch.set_num_threads(num_threads)
    return num_threads
