"""The photo-z catalog stage: any qp ensemble (+ its scene store) -> a published catalog.

The numerics live in :mod:`rail.deepdisc.evaluate.catalog`; the HATS catalog in
:mod:`rail.deepdisc.evaluate.catalog_hats`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from rail.core.common_params import SharedParams
from rail.core.data import DataHandle, QPHandle
from rail.core.stage import RailStage

from rail.deepdisc.evaluate.catalog import CatalogOptions
from rail.deepdisc.stages import StrictConfigMixin
from rail.tools.report_tools import JsonHandle


class PhotoZCatalogHandle(DataHandle):
    """A photo-z catalog: FITS, Parquet, ECSV or HDF5 by its suffix (an astropy Table), or a
    HATS catalog folder (``.hats``, opened lazily with ``lsdb.read_hats``)."""

    suffix = "fits"
    interactive_type = "astropy.table.Table"

    @classmethod
    def _open(cls, path: str, **kwargs: Any):
        return cls._read(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any):
        from rail.deepdisc.evaluate.catalog import catalog_format
        from rail.deepdisc.evaluate.catalog_files import read_catalog

        if catalog_format(path) == "hats":
            import lsdb

            return lsdb.read_hats(path)
        return read_catalog(path)

    @classmethod
    def _write(cls, data: Any, path: str, **kwargs: Any) -> None:
        from rail.deepdisc.evaluate.catalog_files import write_catalog

        write_catalog(data, path)


class PhotoZCatalog(StrictConfigMixin, RailStage):
    """Turn a qp ensemble into a photo-z catalog: one row per object with id, RA/Dec,
    RAIL's summary statistics under RAIL's names (z_mode, z_mean, z_std, z_q2p5, z_q16,
    z_median, z_q84, z_97p5), odds, the mixture parameters, the detection score, the quality
    flags and their bit mask, and provenance. The output format follows the output's suffix
    (``.fits``, ``.parquet``, ``.ecsv``, ``.hdf5``, or ``.hats`` for a HATS catalog that LSDB
    reads, built ``chunk_size`` rows at a time; under MPI the ranks share the chunks)."""

    name = "PhotoZCatalog"
    entrypoint_function = "make_catalog"
    interactive_function = "photo_z_catalog"
    path_options = CatalogOptions.path_options()
    config_options = RailStage.config_options.copy()
    config_options.update(CatalogOptions.stage_params())
    config_options["chunk_size"] = SharedParams.copy_param("chunk_size")
    inputs = [("input", QPHandle)]
    outputs = [("output", PhotoZCatalogHandle)]

    def make_catalog(self, input_data: Any, **kwargs: Any) -> PhotoZCatalogHandle:
        """Make the catalog of an ensemble.

        Parameters
        ----------
        input_data : str | qp.Ensemble | QPHandle
            The PDFs: a path, an ensemble or a handle.
        **kwargs : Any
            Options to change (``scenes``, ``method``, ``overwrite``, ...).

        Returns
        -------
        PhotoZCatalogHandle
            The handle of the catalog (an astropy Table; a lazy LSDB catalog for HATS).
        """
        return self.run_on({"input": input_data}, "output", **kwargs)

    def _is_hats(self) -> bool:
        from rail.deepdisc.evaluate.catalog import catalog_format

        final = self.get_output(self.get_aliased_tag("output"), final_name=True)
        return catalog_format(final) == "hats"

    def check_output_paths(self) -> None:
        """As every stage's (an OutputPathError), but a HATS catalog is a folder: one that
        exists is refused unless ``overwrite`` is set."""
        if not self._is_hats():
            super().check_output_paths()
            return
        from rail.deepdisc.evaluate.catalog_hats import check_hats_output

        final = self.get_output(self.get_aliased_tag("output"), final_name=True)
        check_hats_output(final, "PhotoZCatalog output 'output'", self.input_paths(),
                          bool(self.config["overwrite"]))

    def run(self) -> None:
        from rail.deepdisc.evaluate.catalog import catalog_table
        from rail.deepdisc.store.provenance import provenance

        opts = CatalogOptions.from_mapping(self.config)
        self.check_output_paths()
        record = provenance({"stage": self.options_dict(), "inputs": self.input_paths()},
                            f"rail.tools.catalog_tools.{self.name}")
        if self._is_hats():
            self._run_hats(opts, record)
            return
        self.add_data("output", catalog_table(self.get_data("input"), opts.scenes or None,
                                              record, opts.method))

    def _run_hats(self, opts: CatalogOptions, record: dict[str, Any]) -> None:
        """Convert this rank's share of the rows into Parquet parts, then (rank 0) partition
        every rank's parts into the HATS catalog."""
        from rail.deepdisc.evaluate.catalog import catalog_chunks
        from rail.deepdisc.evaluate.catalog_hats import HatsParts, import_parts, require_hats
        from rail.deepdisc.parallel import barrier

        require_hats()
        tag = self.get_aliased_tag("output")
        final = self.get_output(tag, final_name=True)
        returned = self.config.output_mode == "return"
        target = Path(final if returned else self.get_output(tag))
        handle = self.get_handle("input", allow_missing=True)
        source = handle.data if handle.data is not None else handle.path
        parts = HatsParts(target.with_name(f".{target.name}.parts"),
                          prefix=f"rank{self.rank:05d}")
        try:
            for table in catalog_chunks(source, opts.scenes or None, record, opts.method,
                                        rows=int(self.config.chunk_size), rank=self.rank,
                                        size=self.size):
                parts.append(table)
        except BaseException:
            shutil.rmtree(parts.folder, ignore_errors=True)
            raise
        barrier(self)  # every rank's parts are written
        if self.rank != 0:
            return
        try:
            import_parts(parts.folder, target, max_rows=opts.hats_max_rows,
                         workers=opts.hats_workers, overwrite=opts.overwrite or not returned)
        finally:
            shutil.rmtree(parts.folder, ignore_errors=True)
        if returned:
            import lsdb

            self.add_data("output", lsdb.read_hats(os.fspath(target)))
        else:
            self.add_handle("output", path=os.fspath(target)).partial = True


#: the per-method catalogs a field run publishes (input tags of HeadlineCatalog)
HEADLINE_CANDIDATES = ("deepdisc", "eazy", "photometry_net", "hybrid")


class HeadlineCatalog(StrictConfigMixin, RailStage):
    """The headline catalog of a field run: of the per-method catalogs (the image network's
    ``deepdisc``, template fitting's ``eazy``, the photometry network's ``photometry_net``,
    the ``hybrid``), the one whose method the validation ranked best out of fold
    (``metrics``: the report's JSON, its ``headline``). The catalog is copied with its
    ``METHOD`` and a ``RANKING`` keyword saying why."""

    name = "HeadlineCatalog"
    entrypoint_function = "select"
    interactive_function = "headline_catalog"
    config_options = RailStage.config_options.copy()
    inputs = [("metrics", JsonHandle), *((tag, PhotoZCatalogHandle) for tag in
                                         HEADLINE_CANDIDATES)]
    outputs = [("output", PhotoZCatalogHandle)]

    def select(self, metrics: Any, deepdisc: Any, eazy: Any, photometry_net: Any,
               hybrid: Any, **kwargs: Any) -> PhotoZCatalogHandle:
        """Pick the best-ranked method's catalog.

        Parameters
        ----------
        metrics : dict | str
            The validation report's metrics (``headline``, ``ranking``).
        deepdisc : astropy.table.Table | str
            The image network's catalog.
        eazy : astropy.table.Table | str
            Template fitting's catalog.
        photometry_net : astropy.table.Table | str
            The photometry network's catalog.
        hybrid : astropy.table.Table | str
            The hybrid's catalog.
        **kwargs : Any
            Options to change.

        Returns
        -------
        PhotoZCatalogHandle
            The headline catalog.
        """
        return self.run_on({"metrics": metrics, "deepdisc": deepdisc, "eazy": eazy,
                            "photometry_net": photometry_net, "hybrid": hybrid}, "output",
                           **kwargs)

    def run(self) -> None:
        from rail.deepdisc.errors import InputError
        from rail.deepdisc.evaluate.catalog import catalog_format

        catalog_format(self.get_output(self.get_aliased_tag("output"), final_name=True))
        self.check_output_paths()
        metrics = self.get_data("metrics")
        tables = {tag: self.get_data(tag) for tag in HEADLINE_CANDIDATES}
        by_method = {str(t.meta.get("METHOD", tag)): t for tag, t in tables.items()}
        headline = metrics.get("headline") if isinstance(metrics, dict) else None
        if headline not in by_method:
            raise InputError(f"{self.name}: the metrics name headline method {headline!r}, "
                             f"but the catalogs are {sorted(by_method)}")
        ids = [np.asarray(t["id"]) for t in tables.values()]
        if any(not np.array_equal(ids[0], i) for i in ids[1:]):
            raise InputError(f"{self.name}: the per-method catalogs do not list the same "
                             "objects in the same order")
        table = by_method[headline].copy()
        table.meta["RANKING"] = ", ".join(metrics.get("ranking", [])) + \
            f" (out-of-fold {metrics.get('rank_metric', '')}, best first)"
        self.add_data("output", table)
