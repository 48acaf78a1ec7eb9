"""Rendering processes that never outlive the run that started them.

The simulator renders scenes in a pool of spawned processes. A worker whose parent is killed
(SIGKILL, the out-of-memory killer) must not live on, rendering for no one: every worker
exits as soon as its parent is gone. On Linux the kernel kills it at once
(``prctl(PR_SET_PDEATHSIG)``); everywhere a watchdog thread polls ``os.getppid()`` and exits
when the parent changes. When the consumer of the results stops (an error, Ctrl-C) the
queued tasks are cancelled rather than rendered.

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
    """How many processes render."""

    n_workers: int = option(0, "rendering processes (0: all cores)", ge=0, flag="workers")

    @property
    def count(self) -> int:
        """The number of processes (all cores for 0)."""
        return self.n_workers or default_workers()


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def exit_with_parent(parent: int) -> None:
    """Make this process exit when process ``parent`` (its parent) dies.

    Runs as the pool's initializer in every worker.
    """
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


def ordered_parallel_map(func: Callable, tasks: Iterable, n_workers: int,
                         window: int) -> Iterator:
    """``map(func, tasks)`` over spawned processes, in order, at most ``window`` in flight.

    With ``n_workers <= 1`` the tasks run in this process.
    """
    if n_workers <= 1:
        yield from map(func, tasks)
        return
    pool = ProcessPoolExecutor(n_workers, mp_context=get_context("spawn"),
                               initializer=exit_with_parent, initargs=(os.getpid(),))
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
