"""The DeepDISC network: architectures, training (one process or DDP), inference.

Importing this package sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set already, before
torch is loaded: torch's OpenMP threads otherwise spin while they wait, and processes
sharing cores (MPI ranks, two runs on one machine, shared virtual cores) then slow each
other down several times over. Measured here with two estimations at once on 2 cores: each
at 33% of its speed alone with spinning threads, 70% with passive ones, for 3% less speed
alone (``benchmarks/scaling.py``). It has no effect where torch was imported first.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
