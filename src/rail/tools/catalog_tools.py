"""The photo-z catalog stage: any qp ensemble (+ its scene store) -> a published catalog.

The numerics live in :mod:`rail.deepdisc.evaluate.catalog`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rail.core.data import DataHandle, QPHandle
from rail.core.stage import RailStage

from rail.deepdisc.evaluate.catalog import CatalogOptions
from rail.deepdisc.stages import StrictConfigMixin
from rail.tools.report_tools import JsonHandle


class PhotoZCatalogHandle(DataHandle):
    """A photo-z catalog: FITS, Parquet, ECSV or HDF5 by its suffix (astropy Table)."""

    suffix = "fits"
    interactive_type = "astropy.table.Table"

    @classmethod
    def _open(cls, path: str, **kwargs: Any):
        return cls._read(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any):
        from astropy.table import Table

        from rail.deepdisc.evaluate.catalog import catalog_format

        fmt = catalog_format(path)
        return Table.read(path, format=fmt, **({"path": "catalog"} if fmt == "hdf5" else {}))

    @classmethod
    def _write(cls, data: Any, path: str, **kwargs: Any) -> None:
        from rail.deepdisc.evaluate.catalog import write_catalog

        write_catalog(data, path)


class PhotoZCatalog(StrictConfigMixin, RailStage):
    """Turn a qp ensemble into a photo-z catalog: one row per object with id, RA/Dec,
    z_mode/z_mean/z_median, the 2.5/16/84/97.5 percentiles, odds, the mixture parameters,
    the detection score, the quality flags and their bit mask, and provenance. The output
    format follows the output's suffix (``.fits``, ``.parquet``, ``.ecsv``, ``.hdf5``)."""

    name = "PhotoZCatalog"
    entrypoint_function = "make_catalog"
    interactive_function = "photo_z_catalog"
    path_options = CatalogOptions.path_options()
    config_options = RailStage.config_options.copy()
    config_options.update(CatalogOptions.stage_params())
    inputs = [("input", QPHandle)]
    outputs = [("output", PhotoZCatalogHandle)]

    def make_catalog(self, input_data: Any, **kwargs: Any) -> PhotoZCatalogHandle:
        """Make the catalog of an ensemble.

        Parameters
        ----------
        input_data : str | qp.Ensemble | QPHandle
            The PDFs: a path, an ensemble or a handle.
        **kwargs : Any
            Options to change (``scenes``, ``method``).

        Returns
        -------
        PhotoZCatalogHandle
            The handle of the catalog (an astropy Table).
        """
        return self.run_on({"input": input_data}, "output", **kwargs)

    def run(self) -> None:
        from rail.deepdisc.evaluate.catalog import build_catalog, catalog_format
        from rail.deepdisc.store.provenance import provenance
        from rail.deepdisc.store.scenes import read_objects

        opts = CatalogOptions.from_mapping(self.config)
        catalog_format(self.get_output(self.get_aliased_tag("output"), final_name=True))
        self.check_output_paths()
        ens = self.get_data("input")
        objects = read_objects(opts.scenes, ["object_id", "ra", "dec", "scene", "x", "y"]) \
            if opts.scenes else None
        record = provenance({"stage": self.options_dict(), "inputs": self.input_paths()},
                            f"rail.tools.catalog_tools.{self.name}")
        self.add_data("output", build_catalog(ens, objects, record, opts.method))


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
