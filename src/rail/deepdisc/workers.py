"""Worker processes that never outlive the run that started them, one thread each.

The simulator renders scenes, BPZ writes its AB files and EAZY integrates templates and fits
redshift blocks in pools of spawned processes (:func:`process_pool`). A worker whose parent
is killed (SIGKILL, the out-of-memory killer) must not live on, working for no one: every
worker exits as soon as its parent is gone. On Linux the kernel kills it at once
(``prctl(PR_SET_PDEATHSIG)``); everywhere a watchdog thread polls ``os.getppid()`` and exits
when the parent changes. When the consumer of the results stops (an error, Ctrl-C) the
queued tasks are cancelled rather than run.

A pool of N workers is the parallelism, so each worker uses one thread (OpenMP, BLAS,
torch): N processes each taking every core would oversubscribe the machine many times over.
Workers import only what their task needs (no torch, no ceci): spawned processes pay every
import again.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

from rail.deepdisc.options import Options, option

#: seconds between two looks of the watchdog at the parent process
WATCHDOG_INTERVAL = 0.25
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, kw_only=True)
class WorkerOptions(Options):
    """How many worker processes a job uses (rendering, BPZ's AB files, EAZY's fits): the
    one worker-count option of the package, with one meaning of 0 (all usable cores)."""

    n_workers: int = option(0, "worker processes (0: all usable cores)", ge=0, flag="workers")

    @property
    def count(self) -> int:
        """The number of processes (all usable cores for 0)."""
        return worker_count(self.n_workers)


def worker_count(n_workers: int) -> int:
    """The processes a worker-count option asks for: ``n_workers``, all usable cores for 0.
    """
    return int(n_workers) or usable_cores()


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: environment variables that set the threads of OpenMP and BLAS libraries
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_limits = None


def one_thread() -> None:
    """Limit this process to one thread: libraries loaded already (threadpoolctl, torch) and
    those loaded later (the environment variables they read)."""
    global _limits
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    from threadpoolctl import threadpool_limits

    _limits = threadpool_limits(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def init_worker(parent: int) -> None:
    """A pool worker's initializer: one thread, and exit with the parent."""
    one_thread()
    exit_with_parent(parent)


def exit_with_parent(parent: int) -> None:
    """Make this process exit when process ``parent`` (its parent) dies."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - no usable libc
            pass
    if os.getppid() != parent:  # the parent died before we got here
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_INTERVAL)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def process_pool(n_workers: int) -> ProcessPoolExecutor:
    """A pool of ``n_workers`` spawned processes, one thread each, that exit with this one."""
    return ProcessPoolExecutor(n_workers, mp_context=get_context("spawn"),
                               initializer=init_worker, initargs=(os.getpid(),))


def ordered_parallel_map(func: Callable, tasks: Iterable, n_workers: int,
                         window: int) -> Iterator:
    """``map(func, tasks)`` over spawned processes, in order, at most ``window`` in flight.

    With ``n_workers <= 1`` the tasks run in this process.
    """
    if n_workers <= 1:
        yield from map(func, tasks)
        return
    pool = process_pool(n_workers)
    try:
        pending: deque = deque()
        for task in tasks:
            pending.append(pool.submit(func, task))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
