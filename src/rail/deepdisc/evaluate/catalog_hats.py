"""The photo-z catalog as a HATS catalog (hats-import), partitioned by HEALPix, read by LSDB.

No process holds all the rows. The catalog arrives as tables of a bounded number of rows
(:func:`rail.deepdisc.evaluate.catalog.catalog_chunks` reads an ensemble file a chunk at a
time); each is written as one Parquet part (:class:`HatsParts`, the Arrow layout of
:mod:`rail.deepdisc.evaluate.catalog_arrow`: the mixture nested); several processes (MPI
ranks) may each write parts into one folder. hats-import then partitions the parts by
HEALPix pixel (at most ``max_rows`` rows a partition) with a local Dask client whose workers
are threads of this process, reading each part in pieces and holding one partition at a
time (:func:`import_parts`).

The catalog is built in a hidden temporary folder beside the output and renamed into place
when it is complete; an existing catalog is refused unless ``overwrite`` is asked for (and a
folder that is not a HATS catalog is never replaced). Nothing is downloaded.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError, MissingDependencyError, OutputPathError

#: the install that brings hats, hats-import and lsdb
EXTRA = "pip install 'pz-rail-deepdisc[lsdb]'"
#: rows read from a part at a time (here and by hats-import)
_READ_ROWS = 100_000
#: the finest HEALPix order of the partitioning (hats-import's default; its mapping histogram
#: is dense: 12 x 4**order counts)
FINEST_ORDER = 10


def require_hats() -> None:
    """Raise MissingDependencyError unless hats-import and lsdb are installed."""
    import importlib.util

    missing = [m for m in ("hats_import", "lsdb") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"a HATS catalog needs {' and '.join(missing)}: {EXTRA}")


def is_hats_catalog(path: str | os.PathLike) -> bool:
    """Whether a folder holds a HATS catalog (its ``hats.properties``)."""
    return (Path(path) / "hats.properties").is_file()


def check_hats_output(path: str | os.PathLike, what: str = "output",
                      inputs: Iterable[str | os.PathLike | None] = (),
                      overwrite: bool = False) -> Path:
    """Check, before any work, that a HATS catalog can be written at ``path`` (a folder).

    Raises
    ------
    OutputPathError
        If ``path`` exists and ``overwrite`` is not given, or it exists and is not a HATS
        catalog (a file, or a folder of something else: never replaced), or it names an
        input, or its folder cannot be written.
    """
    from rail.deepdisc.store.atomic import check_output_path, same_file, temporary_sibling

    p = Path(os.path.expandvars(os.fspath(path))).expanduser()
    for source in inputs:
        if source not in (None, "") and same_file(p, source):
            raise OutputPathError(f"{what} {p} is also an input of this run; choose another "
                                  "name (nothing written)")
    if p.exists():
        if not (p.is_dir() and is_hats_catalog(p)):
            raise OutputPathError(f"{what} {p} exists and is not a HATS catalog; it is never "
                                  "replaced (nothing written)")
        if not overwrite:
            raise OutputPathError(f"{what} {p} exists; ask to overwrite it (--overwrite, "
                                  "stage option overwrite: true) or choose another name "
                                  "(nothing written)")
    check_output_path(temporary_sibling(p), what)  # its folder exists and can be written
    return p


class HatsParts:
    """Parquet parts of a catalog in a folder, one per table appended (the mixture nested).

    Parameters
    ----------
    folder
        Where the parts go (created).
    prefix
        Names the parts ``<prefix>-<k>.parquet``: one prefix per process sharing the folder.
    """

    def __init__(self, folder: str | os.PathLike, prefix: str = "part"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.n_rows = 0
        self.n_parts = 0

    def append(self, table: Any) -> None:
        """Write one catalog table (an astropy ``Table``) as the next part."""
        import pyarrow.parquet as pq

        from rail.deepdisc.evaluate.catalog_arrow import to_arrow

        if len(table) == 0:
            return
        unplaced = ~(np.isfinite(np.asarray(table["ra"], float))
                     & np.isfinite(np.asarray(table["dec"], float)))
        if unplaced.any():
            raise InputError(f"{int(unplaced.sum())} catalog rows (id "
                             f"{int(np.asarray(table['id'])[unplaced][0])}, ...) have no RA/Dec; "
                             "a HATS catalog is partitioned by position: give the scene store "
                             "the rows belong to (--scenes)")
        pq.write_table(to_arrow(table),
                       self.folder / f"{self.prefix}-{self.n_parts:06d}.parquet")
        self.n_parts += 1
        self.n_rows += len(table)


def _part_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("_"))


def _common_schema(files: list[Path]):
    """The schema every part shares (with the first part's metadata), or an InputError."""
    import pyarrow.parquet as pq

    first = pq.read_schema(files[0])
    for f in files[1:]:
        schema = pq.read_schema(f)
        if not schema.equals(first, check_metadata=False):
            raise InputError(f"the ensembles give catalogs with different columns "
                             f"({sorted(set(first.names) ^ set(schema.names)) or 'types'}); "
                             "one HATS catalog needs PDFs of one kind")
    return first


def partition_order(files: list[Path], max_rows: int, finest: int = FINEST_ORDER) -> int:
    """The coarsest HEALPix order (at most ``finest``) at which no pixel holds more than
    ``max_rows`` of the parts' rows: hats-import maps the rows at that order and merges
    pixels up to ``max_rows``, so a small field costs a small histogram."""
    import pyarrow.parquet as pq
    from hats.pixel_math.healpix_shim import radec2pix

    pixels, counts = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=_READ_ROWS,
                                                    columns=["ra", "dec"]):
            pix = radec2pix(finest, batch.column(0).to_numpy(), batch.column(1).to_numpy())
            u, c = np.unique(pix, return_counts=True)
            pixels.append(u)
            counts.append(c)
        u, inverse = np.unique(np.concatenate(pixels), return_inverse=True)
        pixels, counts = [u], [np.bincount(inverse, np.concatenate(counts)).astype(np.int64)]
    pix, count = pixels[0], counts[0]
    for order in range(finest + 1):
        _, inverse = np.unique(pix >> (2 * (finest - order)), return_inverse=True)
        if np.bincount(inverse, count).max(initial=0) <= max_rows:
            return order
    return finest


def import_parts(parts: str | os.PathLike, path: str | os.PathLike, *, max_rows: int = 250_000,
                 workers: int = 1, overwrite: bool = False) -> int:
    """Partition the Parquet parts of a folder into a HATS catalog at ``path``; returns the
    number of rows.

    Parameters
    ----------
    parts
        The folder of :class:`HatsParts` (left in place).
    path
        The catalog folder (published whole).
    max_rows
        Most rows in one HEALPix partition.
    workers
        Threads of the local Dask client.
    overwrite
        Replace a HATS catalog at ``path``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rail.deepdisc.store.atomic import temporary_sibling
    from rail.deepdisc.store.write_guard import publish_folder

    require_hats()
    final = check_hats_output(path, "HATS catalog", overwrite=overwrite)
    files = _part_files(Path(parts))
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    if total == 0:
        raise InputError(f"no catalog rows to write to {final} (the ensembles are empty); "
                         "nothing written")
    schema = _common_schema(files)
    schema_file = Path(parts) / "_schema.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=schema), schema_file)
    work = temporary_sibling(final)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", final.stem) or "catalog"
    try:
        work.mkdir()
        order = partition_order(files, max_rows)
        _run_import(files, schema_file, work, name, total, max_rows, order, workers)
        publish_folder(work / name, final)  # the write guard's: one publication rule
    finally:
        shutil.rmtree(work, ignore_errors=True)
        schema_file.unlink(missing_ok=True)
    return total


def _run_import(files: list[Path], schema_file: Path, work: Path, name: str, total: int,
                max_rows: int, order: int, workers: int) -> None:
    """hats-import's catalog pipeline on local files, offline, with threads of this
    process as Dask workers."""
    import logging

    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.catalog.file_readers import ParquetPyarrowReader
    from hats_import.pipeline import pipeline_with_client

    args = ImportArguments(
        output_path=work, output_artifact_name=name, input_file_list=[str(f) for f in files],
        file_reader=ParquetPyarrowReader(chunksize=_READ_ROWS), ra_column="ra",
        dec_column="dec", sort_columns="id", pixel_threshold=int(max_rows),
        highest_healpix_order=int(order),
        use_schema_file=str(schema_file), expected_total_rows=int(total),
        tmp_dir=work / "_import", dask_tmp=work / "_dask", resume=False, progress_bar=False)
    quiet = [logging.getLogger(n) for n in ("distributed", "dask")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.WARNING)
    try:
        with Client(processes=False, n_workers=1, threads_per_worker=int(workers),
                    dashboard_address=None, local_directory=str(work / "_dask")) as client:
            pipeline_with_client(args, client)
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)


def write_hats(tables: Iterable[Any], path: str | os.PathLike, *,
               inputs: Iterable[str | os.PathLike | None] = (), overwrite: bool = False,
               max_rows: int = 250_000, workers: int = 1) -> int:
    """Write catalog tables (e.g. :func:`~rail.deepdisc.evaluate.catalog.catalog_chunks`)
    as one HATS catalog at ``path``; returns the number of rows.

    The tables are written as Parquet parts in a hidden temporary folder beside ``path``
    (removed at the end), then partitioned (:func:`import_parts`).
    """
    from rail.deepdisc.store.atomic import remove_stale_temporaries, temporary_sibling

    require_hats()
    final = check_hats_output(path, "HATS catalog", inputs, overwrite)
    parts_name = final.with_name(final.name + ".parts")
    for stale in (final, parts_name):  # folders of runs killed before they could clean up
        remove_stale_temporaries(stale)
    parts = HatsParts(temporary_sibling(parts_name))
    try:
        for table in tables:
            parts.append(table)
        return import_parts(parts.folder, final, max_rows=max_rows, workers=workers,
                            overwrite=overwrite)
    finally:
        shutil.rmtree(parts.folder, ignore_errors=True)
