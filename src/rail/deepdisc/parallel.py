"""Per-object stages under MPI (ceci's ``--mpi``, ``nprocess``) with pip's serial h5py.

Ranks take contiguous blocks of whole scenes (:meth:`rail.deepdisc.store.scenes.SceneStore.
chunk_ranges`), so the rows of rank 0, then rank 1, ... are the rows of a one-process run, in
order. Each rank appends its rows, chunk by chunk, to a part file of its own
(:class:`RankParts`); when every rank is done, rank 0 joins the parts into the output
(:func:`rail.deepdisc.store.parts.join_parts`), copying a bounded number of rows at a time, so
no process holds all the PDFs. Where h5py is built with MPI, ensembles go through RAIL's own
parallel writer instead (:class:`PartedEstimatorMixin`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import h5py
from rail.core.data import QPHandle

from rail.deepdisc.store.parts import PartWriter, join_parts, part_path


def parallel_hdf5() -> bool:
    """Whether this h5py can write one file from several MPI processes."""
    return bool(h5py.get_config().mpi)


def barrier(stage: Any) -> None:
    """Wait for every rank of a stage's MPI job (nothing without MPI)."""
    if stage.comm is not None and stage.size > 1:
        stage.comm.Barrier()


class RankParts:
    """The parts of one output of a stage: this rank's writer, and their join on rank 0.

    Parameters
    ----------
    stage
        The running stage (its rank, size, communicator and output names).
    tag
        The output tag.
    attrs
        Root attributes of the output (e.g. provenance).
    """

    def __init__(self, stage: Any, tag: str, attrs: Mapping[str, Any] | None = None):
        self.stage, self.tag = stage, tag
        self.output = stage.get_output(stage.get_aliased_tag(tag))
        self.writer = PartWriter(part_path(self.output, stage.rank), attrs)

    def append(self, rows: Mapping[str, Any], meta: Mapping[str, Any] | None = None,
               start: int | None = None) -> None:
        """Append rows (``{name: array}``; ``start``: their first row in the output, if
        known) to this rank's part."""
        self.writer.append(rows, meta, start)

    def parts(self) -> list[str]:
        """Every rank's part file, in rank order."""
        return [str(part_path(self.output, r)) for r in range(self.stage.size)]

    def close(self) -> None:
        """Close this rank's part and wait for the other ranks to close theirs."""
        self.writer.close()
        barrier(self.stage)

    def join(self, finish: Callable[[str], None] | None = None) -> int | None:
        """Close, then (rank 0) join the parts into the output and hand it to the stage.

        Parameters
        ----------
        finish
            Called with the joined file's path before it is handed over (e.g. to check or
            reorder its rows).

        Returns
        -------
        int or None
            The number of rows (None on other ranks).
        """
        self.close()
        if self.stage.rank != 0:
            return None
        n = join_parts(self.parts(), self.output)
        if finish is not None:
            finish(self.output)
        self.stage.publish_written(self.tag, self.output)
        return n


class PartedQPHandle(QPHandle):
    """RAIL's ``QPHandle``, whose chunked write goes to this rank's part in an MPI run where
    h5py cannot write one file from several processes (else RAIL's writer, unchanged)."""

    _part: PartWriter | None = None

    def initialize_write(self, data_length: int, communicator: Any = None,
                         **kwargs: Any) -> None:
        if communicator is None or communicator.Get_size() == 1 or parallel_hdf5():
            self._part = None
            super().initialize_write(data_length, communicator=communicator, **kwargs)
            return
        self._part = PartWriter(part_path(os.path.expandvars(self.path),
                                          communicator.Get_rank()))

    def write_chunk(self, start: int, end: int, **kwargs: Any) -> None:
        if self._part is None:
            super().write_chunk(start, end, **kwargs)
            return
        self._part.append_ensemble(self.data, start=start)

    def finalize_write(self, **kwargs: Any) -> None:
        if self._part is None:
            super().finalize_write(**kwargs)
            return
        self._part.close()


class PartedEstimatorMixin:
    """A ``CatEstimator`` whose chunked ensemble output works under MPI with serial h5py.

    Its ``output`` must be a :class:`PartedQPHandle`. With one process, or with a parallel
    h5py, RAIL's own chunked writer is used; otherwise each rank writes a part (RAIL's
    point estimates and ancillary columns included) and rank 0 joins them, so the rows are
    those of a one-process run.
    """

    def input_iterator(self, tag: str, **kwargs: Any):
        # with fewer chunks than ranks RAIL shrinks the chunks, but its warning about it
        # raises a TypeError (rail-base 2.0): shrink them here, so every rank gets some
        if self.size > 1:
            handle = self.get_handle(tag, allow_missing=True)
            n = handle.size(groupname=self.config.hdf5_groupname or None) if handle.path \
                not in (None, "None", "none") else 0
            if 0 < n < self.config.chunk_size * self.size:
                self.config.chunk_size = max(1, -(-n // self.size))
        return super().input_iterator(tag, **kwargs)

    def _finalize_run(self) -> None:
        if self.size == 1 or parallel_hdf5():
            super()._finalize_run()
            return
        output = self.get_output(self.get_aliased_tag("output"))
        if self._output_handle is None:  # a rank given no scenes writes an empty part
            PartWriter(part_path(output, self.rank)).close()
        else:
            super()._finalize_run()
        barrier(self)
        if self.rank == 0:
            join_parts([part_path(output, r) for r in range(self.size)], output)
            self.publish_written("output", output)
