"""RAIL creation stages for simulated fields: a mock galaxy population and its images.

``GalaxyPopulationCreator`` draws a JAGUAR-like catalog (redshift, per-band fluxes and
magnitudes, SED entry, size, Sersic index, axis ratio, angle, bulge fraction);
``SceneRenderer`` renders a catalog into a scene store with PSF, noise, blending and truth
maps. The numerics live in :mod:`rail.deepdisc.sim`.
"""

from __future__ import annotations

import os
from typing import Any

from ceci.config import StageParameter as Param
from rail.core.data import TableHandle, TableLike
from rail.core.stage import RailStage
from rail.creation.engine import Creator

from rail.deepdisc.sim.population import PopulationConfig, sample_population
from rail.deepdisc.sim.psf import PSF_KINDS
from rail.deepdisc.sim.render import RenderConfig, render_catalog
from rail.deepdisc.sim.surveys import get_survey
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.provenance import provenance_json
from rail.deepdisc.store.scenes import SceneHandle
from rail.deepdisc.store.tables import ProvenanceHdf5Handle


class GalaxyPopulationCreator(StrictConfigMixin, Creator):
    """Draw a JAGUAR-like mock galaxy population for a survey preset.

    Luminosity functions evolving with redshift (to z~12 for ``jades``), sizes from van der
    Wel et al. (2014) / Shibuya et al. (2015), COSMOS SEDs with Calzetti dust and Madau IGM,
    astro-sedpy filters. Output columns: ``id``, ``redshift``, ``sed_index``/``sed_name``/
    ``ebv`` (the SED entry, for oracle template fits), ``Re_maj`` (arcsec), ``sersic_n``,
    ``axis_ratio``, ``position_angle``, ``bulge_fraction``, ``<band>_fnu`` (nJy) and
    ``mag_<band>``.
    """

    name = "GalaxyPopulationCreator"
    entrypoint_function = "sample"
    interactive_function = "galaxy_population_creator"
    config_options = Creator.config_options.copy()
    config_options.update(
        survey=Param(str, "jades", msg="survey preset: jades or lsst"),
        zmin=Param(float, 0.02, msg="lowest redshift drawn"),
        zmax=Param(float, None, required=False,
                   msg="highest redshift drawn (default: the survey preset's)"),
        mag_limit=Param(float, None, required=False,
                        msg="faintest AB magnitude in limit_band (default: the preset's)"),
        limit_band=Param(str, None, required=False,
                         msg="band of mag_limit (default: the preset's detection band)"),
    )
    inputs: list = []
    outputs = [("output", ProvenanceHdf5Handle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        # a population needs no trained model, so skip Creator's open_model
        RailStage.__init__(self, args, **kwargs)
        self.model = None

    def _population_config(self) -> PopulationConfig:
        preset = get_survey(self.config.survey)
        cfg = PopulationConfig(
            bands=preset.bands,
            limit_band=self.config.limit_band or preset.detection_band,
            mag_limit=preset.mag_limit if self.config.mag_limit is None
            else self.config.mag_limit,
            zmin=self.config.zmin,
            zmax=preset.zmax if self.config.zmax is None else self.config.zmax,
        )
        cfg.validate()
        return cfg

    def run(self) -> None:
        n = self.config.n_samples
        if n is None or int(n) != n or n <= 0:
            raise ValueError(f"{self.name}: n_samples must be a positive integer, got {n}")
        pcfg = self._population_config()
        catalog = sample_population(int(n), pcfg, seed=self.config.seed)
        meta = catalog.pop("_meta")
        handle = self.add_handle("output", data=catalog)
        handle.provenance = provenance_json(
            {"stage": self.config.to_dict(), "population": pcfg.__dict__, "meta": meta},
            f"rail.creation.engines.galaxy_scenes.{self.name}")


class SceneRenderer(StrictConfigMixin, RailStage):
    """Render a galaxy catalog into a scene store (GalSim; PSF, noise, blends, truth maps).

    Input: a catalog with ``id``, ``redshift``, ``Re_maj``, ``sersic_n``, ``axis_ratio``,
    ``position_angle`` and ``<band>_fnu`` (nJy) for every band of the survey (optionally
    ``bulge_fraction``, ``Re_bulge``, ``bulge_axis_ratio``), e.g. the output of
    ``GalaxyPopulationCreator``. Output: a scene store (see ``rail.deepdisc.store.scenes``).
    """

    name = "SceneRenderer"
    entrypoint_function = "render"
    interactive_function = "scene_renderer"
    config_options = RailStage.config_options.copy()
    config_options.update(
        survey=Param(str, "jades", msg="survey preset: jades or lsst"),
        n_scenes=Param(int, None, required=True, msg="number of scenes to render"),
        scene_size=Param(int, 128, msg="scene side in pixels"),
        objects_per_scene=Param(float, 10.0,
                                msg="mean number of galaxies centred in a scene (Poisson)"),
        psf=Param(str, "airy", msg=f"PSF model, one of {PSF_KINDS}"),
        depths=Param(dict, None, required=False,
                     msg="5-sigma depth per band (default: the preset's, e.g. JADES-deep)"),
        pixel_scale=Param(float, None, required=False,
                          msg="arcsec per pixel (default: 0.03 jades, 0.2 lsst)"),
        segmap_threshold=Param(float, 1.0,
                               msg="detection-image S/N per pixel that makes a footprint"),
        min_footprint_pixels=Param(int, 3, msg="smallest footprint listed in /objects"),
        margin_fraction=Param(float, 0.1,
                              msg="galaxies are also centred this fraction beyond the edges"),
        seed=Param(int, 0, msg="random seed for placement and noise"),
        n_workers=Param(int, 0, msg="rendering processes (0: all cores)"),
        hdf5_groupname=Param(str, "", msg="group of the input catalog ('' for a flat file)"),
    )
    inputs = [("input", TableHandle)]
    outputs = [("output", SceneHandle)]

    def _render_config(self) -> RenderConfig:
        preset = get_survey(self.config.survey)
        changes: dict[str, Any] = {}
        if self.config.depths:
            depths = dict(preset.depths)
            unknown = set(self.config.depths) - set(preset.bands)
            if unknown:
                raise ValueError(f"{self.name}: depths given for bands {sorted(unknown)} that "
                                 f"are not among {list(preset.bands)}")
            depths.update({k: float(v) for k, v in self.config.depths.items()})
            changes["depths"] = depths
        if self.config.pixel_scale is not None:
            changes["pixel_scale"] = float(self.config.pixel_scale)
        if changes:
            preset = preset.with_overrides(**changes)
        cfg = RenderConfig(
            survey=preset, scene_size=self.config.scene_size,
            objects_per_scene=self.config.objects_per_scene, psf=self.config.psf,
            seed=self.config.seed, segmap_threshold=self.config.segmap_threshold,
            min_footprint_pixels=self.config.min_footprint_pixels,
            margin_fraction=self.config.margin_fraction,
        )
        cfg.validate()
        return cfg

    def render(self, catalog: TableLike | TableHandle, **kwargs: Any) -> SceneHandle:
        """Render ``catalog`` into scenes (interactive use); returns the output handle."""
        self.set_data("input", catalog)
        self.config.update(**kwargs)
        self.run()
        self.finalize()
        return self.get_handle("output")

    def run(self) -> None:
        cfg = self._render_config()
        catalog = self.get_data("input")
        if self.config.hdf5_groupname:
            catalog = catalog[self.config.hdf5_groupname]
        path = self.get_output(self.get_aliased_tag("output"))
        prov = provenance_json({"stage": self.config.to_dict(), "render": cfg.as_dict()},
                               f"rail.creation.engines.galaxy_scenes.{self.name}")
        render_catalog(catalog, self.config.n_scenes, cfg, path,
                       n_workers=self.config.n_workers or None, provenance=prov)
        handle = self.add_handle("output", path=os.fspath(path))
        # written in place: finalize must only move it, not write it again
        handle.partial = True
