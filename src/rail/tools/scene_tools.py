"""RAIL stages between scene stores and catalogs.

``MosaicTiler`` cuts real survey data (per-band FITS mosaics and a catalog) into a scene
store; ``CutoutImporter`` reads per-object cutouts (Legacy Surveys, HSC-SSP, arrays) and a
catalog into one, a scene per cutout; ``ScenePhotometry`` measures every object (forced, in
the store's ``/objects`` order) or every detection of a scene store in all bands with
photutils, for the template fitters.
The numerics live in :mod:`rail.deepdisc.store.mosaic`, :mod:`rail.deepdisc.store.cutouts` and
:mod:`rail.deepdisc.fit.photometry`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from rail.core.data import DataHandle, TableHandle
from rail.core.stage import RailStage

from rail.creation.engines.survey_field import SurveyFileHandle
from rail.deepdisc.errors import InputError
from rail.deepdisc.fit.photometry import empty_table, iter_measurements
from rail.deepdisc.fit.photometry_options import PhotometryOptions
from rail.deepdisc.fit.photometry_setup import prepare
from rail.deepdisc.fit.photometry_table import (
    ROW_COLUMN,
    put_rows_in_order,
    read_detections,
    read_detections_file,
)
from rail.deepdisc.parallel import RankParts
from rail.deepdisc.sim.surveys import preset_names
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.cutouts import CutoutConfig, import_cutouts
from rail.deepdisc.store.handle import ProvenanceHdf5Handle, SceneHandle
from rail.deepdisc.store.mosaic import TilerConfig, tile_mosaic
from rail.deepdisc.store.provenance import provenance_json
from rail.deepdisc.store.scenes import SceneStore


class MosaicTiler(StrictConfigMixin, RailStage):
    """Cut per-band FITS mosaics and a catalog into overlapping tiles (a scene store).

    The mosaics (``images``: band -> ``path`` or ``path[EXT]``, in channel order) must share
    one pixel grid and carry a celestial WCS and ``BUNIT`` (or ``units``); pixels become nJy
    per pixel. ``errors`` (standard deviation) or ``weights`` (inverse variance) per band
    give ``ivar``; without them one noise per band is estimated from the mosaic's pixels.
    NaN and zero-weight pixels become image 0 and ivar 0. The input is the catalog (FITS,
    CSV, HDF5, Parquet; ``id_col``, ``ra_col``, ``dec_col`` in degrees, ``redshift_col``),
    placed with the WCS; boxes come from ``segmap`` (values: catalog ids), else from
    ``size_col``. Pixels are read through memory maps, tile by tile, so memory does not
    grow with the mosaic.

    Each catalog object on pixels with data is listed once, in the tile where it lies
    farthest from the edge (its light also appears in overlapping tiles), so forced
    estimation gives one row per object, in store order (tiles row-major, then catalog
    order; ``object_id`` and ``catalog_row`` join back to the catalog). ``require_redshift``
    keeps only tiles listing an object with a known redshift (training sets). All inputs are
    checked before any pixel is read; see :mod:`rail.deepdisc.store.mosaic`.
    """

    name = "MosaicTiler"
    entrypoint_function = "tile"
    interactive_function = "mosaic_tiler"
    config_options = RailStage.config_options.copy()
    config_options.update(TilerConfig.stage_params())
    path_options = TilerConfig.path_options()
    inputs = [("input", TableHandle)]
    outputs = [("output", SceneHandle)]

    def tiler_config(self) -> TilerConfig:
        """The library configuration of this stage (checked)."""
        return self.library_options(TilerConfig)

    def tile(self, input_data: Any, **kwargs: Any) -> SceneHandle:
        """Tile the configured mosaics with a catalog.

        Parameters
        ----------
        input_data : str | TableLike | TableHandle
            The catalog: a path (FITS, CSV, ECSV, HDF5, Parquet), a table or a handle.
        **kwargs : Any
            Options to change (``images``, ``id_col``, ... see the stage's config options).

        Returns
        -------
        SceneHandle
            The handle of the written scene store.
        """
        return self.run_on({"input": input_data}, "output", **kwargs)

    def run(self) -> None:
        cfg = self.tiler_config()
        path = self.get_output(self.get_aliased_tag("output"))
        tile_mosaic(cfg, _catalog_input(self), path,
                    provenance={"stage": self.options_dict()})
        self.publish_written("output", path)


def _catalog_input(stage: RailStage) -> Any:
    """A stage's ``input`` catalog: its data when given in memory, else its path."""
    handle = stage.get_handle("input", allow_missing=True)
    if handle.data is not None:
        return handle.data
    if handle.path in (None, "", "None", "none"):
        raise InputError(f"{stage.name}: no catalog given (input)")
    return handle.path


class CutoutImporter(StrictConfigMixin, RailStage):
    """Read per-object survey cutouts and their catalog into a scene store, one scene per
    cutout, for forced estimation.

    ``format``: ``legacy`` (Legacy Surveys cutout: one FITS cube per object, band list and
    WCS in the header, nanomaggies, optional inverse-variance HDU; ``cutouts`` a template
    such as ``ls/{id}.fits``), ``hsc`` (HSC-SSP: one FITS file per band per object with
    IMAGE, MASK and VARIANCE, calibrated by FLUXMAG0; ``cutouts`` such as
    ``hsc/{id}_{band}.fits``) or ``array`` (N x bands x H x W in ``.npy``/``.npz``/HDF5
    with ``bands``, ``pixel_scale`` and ``unit`` stated). The input is the catalog (FITS,
    CSV, HDF5, Parquet; ``id_col``, ``ra_col``, ``dec_col``, ``redshift_col``): each object
    gets its cutout, a catalog id without one is an error. The object is listed with its
    catalog redshift, its neighbours stay in the pixels unlisted; pixels become nJy, the
    inverse variance comes from the cutout's planes or the ``survey``'s depths, pixels
    without data (masked, NaN, zero padding along the edge) get inverse variance 0; its box
    comes from ``box_cols``, else its footprint in a photutils segmentation, else
    ``size_col``. Cutouts of different sizes are padded to the largest. Forced estimation
    of the store gives one row per catalog object, in catalog order; see
    :mod:`rail.deepdisc.store.cutouts`.
    """

    name = "CutoutImporter"
    entrypoint_function = "import_cutouts"
    interactive_function = "cutout_importer"
    config_options = RailStage.config_options.copy()
    config_options.update(CutoutConfig.stage_params())
    inputs = [("input", TableHandle)]
    outputs = [("output", SceneHandle)]

    def check_path_options(self) -> None:
        """An array file named in the config must exist (templates name files per id)."""
        if self.config.format == "array" and self.config.cutouts:
            path = os.path.expandvars(str(self.config.cutouts))
            if not os.path.exists(path):
                raise FileNotFoundError(f"{self.name} option cutouts: {path} does not exist")

    def cutout_config(self) -> CutoutConfig:
        """The library configuration of this stage (checked)."""
        return self.library_options(CutoutConfig)

    def import_cutouts(self, input_data: Any, **kwargs: Any) -> SceneHandle:
        """Read the configured cutouts of a catalog's objects.

        Parameters
        ----------
        input_data : str | TableLike | TableHandle
            The catalog: a path (FITS, CSV, ECSV, HDF5, Parquet), a table or a handle.
        **kwargs : Any
            Options to change (``format``, ``cutouts``, ``id_col``, ... see the stage's
            config options).

        Returns
        -------
        SceneHandle
            The handle of the written scene store.
        """
        return self.run_on({"input": input_data}, "output", **kwargs)

    def run(self) -> None:
        cfg = self.cutout_config()
        path = self.get_output(self.get_aliased_tag("output"))
        import_cutouts(cfg, _catalog_input(self), path,
                       provenance={"stage": self.options_dict()})
        self.publish_written("output", path)


class ScenePhotometry(StrictConfigMixin, RailStage):
    """Fluxes and magnitudes of scene-store objects in every band (photutils).

    Forced mode (default) gives exactly one row per object of the store, in ``/objects``
    order, so template-fitting ensembles line up row by row with DeepDISC's forced output;
    with ``detections`` (an HDF5 table with ``scene``, ``x``, ``y``, ``bbox_x0/y0/x1/y1`` and
    optionally ``score``, ``object_id``) one row per detection, in its order. Methods:
    ``kron`` (Kron apertures from the segmentation, neighbours corrected) or ``aperture``
    (circular apertures of ``aperture_radius`` arcsec on PSF-matched images); both are
    aperture-corrected with the stored PSF model. Output columns: ``object_id``, ``scene``,
    ``x``, ``y``, ``ra``, ``dec``, ``redshift``, ``flux_<band>``, ``flux_err_<band>`` (store
    units, nJy for simulated stores), ``mag_<band>``, ``mag_err_<band>`` (AB; non-detections
    ``nondetect_val`` with the 1-sigma limit as error, no data ``nonobserved_val``) and
    ``flags`` (bits in :mod:`rail.deepdisc.fit.photometry_table`). Options:
    :class:`rail.deepdisc.fit.photometry_options.PhotometryOptions`; every measured band
    must have a filter curve (:mod:`rail.deepdisc.spectra.filters`), checked before any work.

    ceci treats every declared input as required, so the optional detections table is the
    ``detections`` option (a path) rather than a second input tag; interactively,
    ``measure(input_data, detections=table)`` also takes a table or handle.
    """

    path_options = PhotometryOptions.path_options()
    #: ``psf_survey`` takes a survey preset's name as well as a survey file
    path_keywords = tuple(preset_names())
    name = "ScenePhotometry"
    entrypoint_function = "measure"
    interactive_function = "scene_photometry"
    config_options = RailStage.config_options.copy()
    config_options.update(PhotometryOptions.stage_params())
    inputs = [("input", SceneHandle)]
    outputs = [("output", ProvenanceHdf5Handle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self._detections: Mapping[str, Any] | None = None

    def photometry_options(self) -> PhotometryOptions:
        """The options of this stage, checked (an OptionError names the option)."""
        return self.library_options(PhotometryOptions)

    def measure(self, input_data: SceneHandle | SceneStore | str,
                detections: Mapping[str, Any] | DataHandle | str | None = None,
                **kwargs: Any) -> ProvenanceHdf5Handle:
        """Measure a scene store (interactive use); returns the output handle.

        Parameters
        ----------
        input_data : SceneHandle, SceneStore or str
            The scene store (handle, :class:`SceneStore` or path).
        detections : dict, DataHandle or str, optional
            Detections table to measure instead of the store's objects (dict of columns,
            table handle or path).
        **kwargs : Any
            Options of the stage, set before it runs.

        Returns
        -------
        ProvenanceHdf5Handle
            The photometry table (one row per object or detection).
        """
        if isinstance(input_data, (str, os.PathLike)):
            input_data = SceneStore(os.fspath(input_data))
        self.set_data("input", input_data)
        self.config.update(**kwargs)
        if detections is not None:
            if isinstance(detections, DataHandle):
                detections = detections() if detections.has_data else detections.read()
            if isinstance(detections, str):
                self.config.detections = detections
            else:
                self._detections = detections
        self.run()
        self.finalize()
        handle = self.get_handle("output")
        if handle.data is None:
            handle.read()
        return handle

    def _read_detections(self, path: str, n_scenes: int) -> Mapping[str, Any] | None:
        if self._detections is not None:
            return read_detections(self._detections, n_scenes)
        return read_detections_file(path, n_scenes) if path else None

    def run(self) -> None:
        opts = self.photometry_options()
        cfg = opts.photometry
        store = self.get_data("input")
        detections = self._read_detections(opts.detections, store.n_scenes)
        store.require("photometry", objects=detections is None)
        setup = prepare(store, cfg)
        n = store.n_objects if detections is None else len(detections["scene"])
        prov = provenance_json(
            {"stage": self.options_dict(), "photometry": cfg.as_dict(),
             "measurement": setup.notes, "scenes": store.path,
             "mode": "forced" if detections is None else "detections"},
            f"rail.tools.scene_tools.{self.name}")
        # each rank appends its rows to a part of its own; rank 0 joins them in order
        parts = RankParts(self, "output", attrs={"provenance": prov, **setup.table_attrs})
        for rows, columns in iter_measurements(store, cfg, detections=detections,
                                               objects_per_chunk=opts.chunk_size,
                                               rank=self.rank, size=self.size, setup=setup):
            parts.append({ROW_COLUMN: rows, **columns})
        if n == 0 and self.rank == 0:
            parts.append({ROW_COLUMN: np.zeros(0, np.int64), **empty_table(setup)})
        parts.join(finish=lambda path: put_rows_in_order(path, n))


class SurveyScenePhotometry(ScenePhotometry):
    """``ScenePhotometry`` of a store whose PSFs are a survey file's: the tiles of a user's
    mosaics carry no PSF model, and the survey measured from those mosaics
    (``MosaicSurveyMeasurer``) holds them (files or stars). Inputs: the scene store and the
    survey file; everything else as ``ScenePhotometry`` (``psf_survey`` is the input)."""

    name = "SurveyScenePhotometry"
    entrypoint_function = "measure_with_survey"
    interactive_function = "survey_scene_photometry"
    inputs = [("input", SceneHandle), ("survey", SurveyFileHandle)]

    def measure_with_survey(self, input_data: SceneHandle | SceneStore | str,
                            survey: str, **kwargs: Any) -> ProvenanceHdf5Handle:
        """Measure a scene store with a survey file's PSFs (interactive use).

        Parameters
        ----------
        input_data : SceneHandle, SceneStore or str
            The scene store (handle, :class:`SceneStore` or path).
        survey : str
            Path of the survey file whose PSFs are used.
        **kwargs : Any
            Options of the stage, set before it runs.

        Returns
        -------
        ProvenanceHdf5Handle
            The photometry table (one row per object).
        """
        self.set_data("survey", None, path=os.fspath(survey), do_read=False)
        return self.measure(input_data, **kwargs)

    def run(self) -> None:
        handle = self.get_handle("survey", allow_missing=True)
        if handle is None or handle.path in (None, "", "None"):
            raise InputError(f"{self.name}: no survey file given (input 'survey')")
        self.config["psf_survey"] = os.fspath(handle.path)
        super().run()
