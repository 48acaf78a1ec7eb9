"""The photo-z catalog stage: any qp ensemble (+ its scene store) -> a published catalog.

The numerics live in :mod:`rail.deepdisc.evaluate.catalog`.
"""

from __future__ import annotations

from typing import Any

from rail.core.data import DataHandle, QPHandle
from rail.core.stage import RailStage

from rail.deepdisc.evaluate.catalog import CatalogOptions
from rail.deepdisc.stages import StrictConfigMixin


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
