"""RAIL stages that turn scene stores into catalogs.

``ScenePhotometry`` measures every object (forced, in the store's ``/objects`` order) or every
detection of a scene store in all bands with photutils, for the template fitters. The
numerics live in :mod:`rail.deepdisc.photometry`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import tables_io
from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.core.data import DataHandle
from rail.core.stage import RailStage

from rail.deepdisc.photometry import (
    METHODS,
    PhotometryConfig,
    assemble,
    empty_table,
    iter_measurements,
    prepare,
    read_detections,
)
from rail.deepdisc.provenance import provenance_json
from rail.deepdisc.scenes import SceneHandle, SceneStore
from rail.deepdisc.stage_checks import StrictConfigMixin
from rail.deepdisc.tables import ProvenanceHdf5Handle


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
    ``flags`` (bits in :mod:`rail.deepdisc.photometry`).

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
