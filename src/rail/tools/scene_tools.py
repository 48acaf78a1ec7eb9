"""RAIL stages between scene stores and catalogs.

``MosaicTiler`` cuts real survey data (per-band FITS mosaics and a catalog) into a scene
store; ``ScenePhotometry`` measures every object (forced, in the store's ``/objects`` order)
or every detection of a scene store in all bands with photutils, for the template fitters.
The numerics live in :mod:`rail.deepdisc.store.mosaic` and :mod:`rail.deepdisc.fit.photometry`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import tables_io
from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.core.data import DataHandle, TableHandle
from rail.core.stage import RailStage

from rail.deepdisc.fit.photometry import (
    METHODS,
    PhotometryConfig,
    assemble,
    empty_table,
    iter_measurements,
    prepare,
    read_detections,
)
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.mosaic import TilerConfig, tile_mosaic
from rail.deepdisc.store.mosaic_io import split_spec
from rail.deepdisc.store.provenance import provenance_json
from rail.deepdisc.store.scenes import SceneHandle, SceneStore
from rail.deepdisc.store.tables import ProvenanceHdf5Handle


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
    config_options.update(
        images=Param(dict, {}, msg="band -> FITS mosaic (path or path[EXT]), channel order"),
        errors=Param(dict, {}, msg="band -> error map (standard deviation, path[EXT])"),
        weights=Param(dict, {}, msg="band -> weight map (inverse variance, path[EXT])"),
        segmap=Param(str, "", msg="segmentation map (values: catalog ids) or ''"),
        units=Param(dict, {}, msg="band -> unit of the mosaic's pixels (overrides BUNIT)"),
        id_col=SharedParams.copy_param("id_col"),
        ra_col=Param(str, "ra", msg="catalog RA column (degrees)"),
        dec_col=Param(str, "dec", msg="catalog Dec column (degrees)"),
        redshift_col=SharedParams.copy_param("redshift_col"),
        redshift_kind=Param(str, "spec", msg="what the catalog's redshifts are: spec or phot"),
        size_col=Param(str, "", msg="catalog radius column for boxes without a segmap, or ''"),
        size_unit=Param(str, "arcsec", msg="unit of size_col: arcsec or pixel"),
        size_scale=Param(float, 2.5, msg="box half-side in units of size_col"),
        min_box=Param(int, 5, msg="box side (pixels) of objects without footprint or size"),
        copy_columns=Param(list, [], msg="further catalog columns copied into /objects"),
        catalog_key=Param(str, "", msg="HDF5 group or FITS extension of the catalog"),
        tile_size=Param(int, 256, msg="tile side (pixels)"),
        overlap=Param(int, 32, msg="overlap of neighbouring tiles (pixels, <= tile_size/2)"),
        require_redshift=Param(bool, False, msg="keep only tiles listing an object with a "
                                                "known redshift (training sets)"),
        survey=Param(str, "", msg="survey name written into the store"),
    )
    inputs = [("input", TableHandle)]
    outputs = [("output", SceneHandle)]

    def check_path_options(self) -> None:
        """Every map named in the config must exist (FITS extensions allowed)."""
        maps = {**{f"images[{b}]": p for b, p in (self.config.images or {}).items()},
                **{f"errors[{b}]": p for b, p in (self.config.errors or {}).items()},
                **{f"weights[{b}]": p for b, p in (self.config.weights or {}).items()}}
        if self.config.segmap:
            maps["segmap"] = self.config.segmap
        for option, spec in maps.items():
            path = os.path.expandvars(split_spec(str(spec))[0])
            if not os.path.exists(path):
                raise FileNotFoundError(f"{self.name} option {option}: {path} does not exist")

    def tiler_config(self) -> TilerConfig:
        """The library configuration of this stage (checked)."""
        cfg = TilerConfig.from_options(self.config)
        try:
            cfg.validate()
        except ValueError as err:
            raise ValueError(f"{self.name}: {err}") from None
        return cfg

    def tile(self, catalog: Any, **kwargs: Any) -> SceneHandle:
        """Tile the configured mosaics with ``catalog`` (a path, a table or a handle)."""
        self.config.update(**kwargs)
        if isinstance(catalog, (str, os.PathLike)):
            self.set_data("input", None, path=os.fspath(catalog), do_read=False)
        else:
            self.set_data("input", catalog)
        self.run()
        self.finalize()
        return self.get_handle("output")

    def _catalog(self) -> Any:
        handle = self.get_handle("input", allow_missing=True)
        if handle.data is not None:
            return handle.data
        if handle.path in (None, "", "None", "none"):
            raise ValueError(f"{self.name}: no catalog given (input)")
        return handle.path

    def run(self) -> None:
        cfg = self.tiler_config()
        path = self.get_output(self.get_aliased_tag("output"))
        tile_mosaic(cfg, self._catalog(), path,
                    provenance={"stage": self.config.to_dict()})
        handle = self.add_handle("output", path=os.fspath(path))
        handle.partial = True  # written in place: finalize only moves it


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
    ``flags`` (bits in :mod:`rail.deepdisc.fit.photometry`).

    ceci treats every declared input as required, so the optional detections table is the
    ``detections`` option (a path) rather than a second input tag; interactively,
    ``measure(scenes, detections=table)`` also takes a table or handle.
    """

    path_options = ("detections",)
    name = "ScenePhotometry"
    entrypoint_function = "measure"
    interactive_function = "scene_photometry"
    config_options = RailStage.config_options.copy()
    config_options.update(
        method=Param(str, "kron", msg=f"photometry method, one of {METHODS}"),
        aperture_radius=Param(float, None, required=False,
                              msg="circular aperture radius in arcsec (default: 3 x the "
                                  "largest PSF half-light radius)"),
        background_annulus=Param(list, None, required=False,
                                 msg="[inner, outer] radius (arcsec) of the local-background "
                                     "annulus (default: 2 and 4 x aperture_radius)"),
        local_background=Param(bool, False, msg="subtract a local background (for images "
                                                "with residual backgrounds)"),
        kron_params=Param(list, [2.5, 1.4, 0.0],
                          msg="photutils Kron parameters: scale, minimum unscaled Kron "
                              "radius (pixels), minimum circular radius (pixels)"),
        aperture_correction=Param(bool, True, msg="correct for PSF light outside the "
                                                  "aperture (needs the stored PSF model)"),
        psf_match=Param(bool, True, msg="'aperture': convolve all bands to the broadest PSF"),
        nondetect_snr=Param(float, 1.0, msg="S/N below which a band is a non-detection"),
        nondetect_val=SharedParams.copy_param("nondetect_val"),
        nonobserved_val=SharedParams.copy_param("nonobserved_val"),
        bands=Param(list, [], msg="bands to measure (default: all of the store's)"),
        chunk_size=SharedParams.copy_param("chunk_size"),
        detections=Param(str, "", msg="detections table (hdf5) to measure instead of the "
                                      "store's objects ('' for forced photometry)"),
    )
    inputs = [("input", SceneHandle)]
    outputs = [("output", ProvenanceHdf5Handle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self._detections: Mapping[str, Any] | None = None

    def photometry_config(self) -> PhotometryConfig:
        """The library configuration of this stage (checked)."""
        c = self.config
        cfg = PhotometryConfig(
            method=c.method,
            aperture_radius=None if c.aperture_radius is None else float(c.aperture_radius),
            background_annulus=None if not c.background_annulus
            else tuple(float(v) for v in c.background_annulus),
            local_background=bool(c.local_background),
            kron_params=tuple(float(v) for v in c.kron_params),
            aperture_correction=bool(c.aperture_correction), psf_match=bool(c.psf_match),
            nondetect_snr=float(c.nondetect_snr), nondetect_val=float(c.nondetect_val),
            nonobserved_val=float(c.nonobserved_val),
            bands=tuple(c.bands) if c.bands else None)
        try:
            cfg.validate()
        except ValueError as err:
            raise ValueError(f"{self.name}: {err}") from None
        return cfg

    def measure(self, scenes: SceneHandle | SceneStore | str,
                detections: Mapping[str, Any] | DataHandle | str | None = None,
                **kwargs: Any) -> ProvenanceHdf5Handle:
        """Measure a scene store (interactive use); returns the output handle.

        Parameters
        ----------
        scenes
            A scene store (handle, :class:`SceneStore` or path).
        detections
            Optional detections table (dict of columns, table handle or path).
        """
        if isinstance(scenes, str):
            scenes = SceneStore(scenes)
        self.set_data("input", scenes)
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
        return self.get_handle("output")

    def _read_detections(self, n_scenes: int) -> Mapping[str, Any] | None:
        if self._detections is not None:
            return read_detections(self._detections, n_scenes)
        path = self.config.detections
        if not path:
            return None
        if not os.path.isfile(path):
            raise ValueError(f"{self.name}: detections table {path} does not exist")
        table = tables_io.read(path)
        if "scene" not in table and len(table) == 1:
            table = next(iter(table.values()))
        try:
            return read_detections(table, n_scenes)
        except ValueError as err:
            raise ValueError(f"{self.name}: {path}: {err}") from None

    def run(self) -> None:
        cfg = self.photometry_config()
        store = self.get_data("input")
        detections = self._read_detections(store.n_scenes)
        setup = prepare(store, cfg)
        n = store.n_objects if detections is None else len(detections["scene"])
        parts = list(iter_measurements(store, cfg, detections=detections,
                                       objects_per_chunk=self.config.chunk_size,
                                       rank=self.rank, size=self.size, setup=setup))
        if self.is_mpi():
            gathered = self.comm.gather(parts, root=0)
            if self.rank != 0:
                return
            parts = [p for ps in gathered for p in ps]
        table = assemble(parts, n) if n else empty_table(setup)
        handle = self.add_handle("output", data=table)
        handle.provenance = provenance_json(
            {"stage": self.config.to_dict(), "photometry": cfg.as_dict(),
             "measurement": setup.notes, "scenes": store.path,
             "mode": "forced" if detections is None else "detections"},
            f"rail.tools.scene_tools.{self.name}")
