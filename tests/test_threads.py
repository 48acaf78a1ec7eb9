"""Threads: OMP_NUM_THREADS or cores / processes on the node, never more than the cores;
pool workers one thread each."""

from __future__ import annotations

import os

import pytest

from rail.deepdisc.net import device
from rail.deepdisc.workers import process_pool, usable_cores

LOCAL = ("LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
         "MV2_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE", "OMP_NUM_THREADS")


@pytest.fixture
def clean_env(monkeypatch):
    for name in LOCAL:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(device, "usable_cores", lambda: 8)
    return monkeypatch


def test_a_lone_process_takes_its_cores(clean_env):
    assert device.default_threads() == 8


@pytest.mark.parametrize("variable", ["LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS",
                                      "OMPI_COMM_WORLD_LOCAL_SIZE"])
def test_processes_on_the_node_share_the_cores(clean_env, variable):
    clean_env.setenv(variable, "4")
    assert device.default_threads() == 2
    clean_env.setenv(variable, "16")
    assert device.default_threads() == 1


def test_omp_num_threads_wins_but_never_more_than_the_cores(clean_env):
    clean_env.setenv("LOCAL_WORLD_SIZE", "4")
    clean_env.setenv("OMP_NUM_THREADS", "3")
    assert device.default_threads() == 3
    clean_env.setenv("OMP_NUM_THREADS", "64")
    assert device.default_threads() == 8


def test_set_threads_caps_at_the_cores(clean_env):
    import torch

    before = torch.get_num_threads()
    try:
        assert device.set_threads(100) == 8
    finally:
        torch.set_num_threads(before)


def test_pool_workers_use_one_thread():
    import numpy as np
    from threadpoolctl import threadpool_info

    with process_pool(2) as pool:
        assert pool.submit(os.getenv, "OMP_NUM_THREADS").result() == "1"
        pool.submit(np.dot, np.ones((4, 4)), np.ones((4, 4))).result()  # BLAS loaded
        info = [pool.submit(threadpool_info).result() for _ in range(4)]
    libs = [lib for worker in info for lib in worker]
    assert any(lib["user_api"] == "blas" for lib in libs)
    assert all(lib["num_threads"] == 1 for lib in libs)
    assert usable_cores() >= 1
