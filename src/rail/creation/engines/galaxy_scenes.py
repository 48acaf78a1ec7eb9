"""RAIL creation stages for simulated fields: a mock galaxy population and its images.

``GalaxyPopulationCreator`` draws a JAGUAR-like catalog (redshift, per-band fluxes and
magnitudes, SED entry, size, Sersic index, axis ratio, angle, bulge fraction);
``SceneRenderer`` renders a catalog into a scene store with PSF, noise, blending and truth
maps. The numerics live in :mod:`rail.deepdisc.sim`.
"""

from __future__ import annotations

from typing import Any

from ceci.config import StageParameter as Param
from rail.core.data import TableHandle, TableLike
from rail.core.stage import RailStage
from rail.creation.engine import Creator

from rail.deepdisc.errors import OptionError
from rail.deepdisc.sim.population import PopulationConfig, sample_population
from rail.deepdisc.sim.render import RenderConfig, render_catalog
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.handle import ProvenanceHdf5Handle, SceneHandle
from rail.deepdisc.store.provenance import provenance_json
from rail.deepdisc.workers import WorkerOptions


class GalaxyPopulationCreator(StrictConfigMixin, Creator):
    """Draw a JAGUAR-like mock galaxy population for a survey preset.

    Luminosity functions evolving with redshift (to z~12 for ``jades``), sizes from van der
    Wel et al. (2014) / Shibuya et al. (2015), COSMOS SEDs with Calzetti dust and Madau IGM,
    astro-sedpy filters. Output columns: ``id``, ``redshift``, ``sed_index``/``sed_name``/
    ``ebv`` (the SED entry, for oracle template fits), ``Re_maj`` (arcsec), ``sersic_n``,
    ``axis_ratio``, ``position_angle``, ``bulge_fraction``, ``<band>_fnu`` (nJy) and
    ``mag_<band>``. Options: :class:`rail.deepdisc.sim.population.PopulationConfig`.
    """

    name = "GalaxyPopulationCreator"
    entrypoint_function = "sample"
    interactive_function = "galaxy_population_creator"
    config_options = Creator.config_options.copy()
    config_options.update(PopulationConfig.stage_params())
    inputs: list = []
    outputs = [("output", ProvenanceHdf5Handle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        # a population needs no trained model, so skip Creator's open_model
        RailStage.__init__(self, args, **kwargs)
        self.model = None

    def run(self) -> None:
        n = self.config.n_samples
        if n is None:
            raise OptionError(f"{self.name}: n_samples must be given")
        pcfg = PopulationConfig.from_mapping(self.config)
        catalog = sample_population(n, pcfg, seed=self.config.seed)
        meta = catalog.pop("_meta")
        handle = self.add_handle("output", data=catalog)
        handle.provenance = provenance_json(
            {"stage": self.options_dict(), "population": pcfg.resolved().as_dict(),
             "meta": meta}, f"rail.creation.engines.galaxy_scenes.{self.name}")


class SceneRenderer(StrictConfigMixin, RailStage):
    """Render a galaxy catalog into a scene store (GalSim; PSF, noise, blends, truth maps).

    Input: a catalog with ``id``, ``redshift``, ``Re_maj``, ``sersic_n``, ``axis_ratio``,
    ``position_angle`` and ``<band>_fnu`` (nJy) for every band of the survey (optionally
    ``bulge_fraction``, ``Re_bulge``, ``bulge_axis_ratio``), e.g. the output of
    ``GalaxyPopulationCreator``. Output: a scene store (see ``rail.deepdisc.store.scenes``).
    Options: :class:`rail.deepdisc.sim.render.RenderConfig`.
    """

    name = "SceneRenderer"
    entrypoint_function = "render"
    interactive_function = "scene_renderer"
    config_options = RailStage.config_options.copy()
    config_options.update(
        **RenderConfig.stage_params(),
        **WorkerOptions.stage_params(),
        hdf5_groupname=Param(str, "", msg="group of the input catalog ('' for a flat file)"),
    )
    inputs = [("input", TableHandle)]
    outputs = [("output", SceneHandle)]

    def render(self, input_data: TableLike | TableHandle, **kwargs: Any) -> SceneHandle:
        """Render a galaxy catalog into scenes.

        Parameters
        ----------
        input_data : TableLike | TableHandle
            The catalog (e.g. GalaxyPopulationCreator's output).
        **kwargs : Any
            Options to change (see the stage's config options).

        Returns
        -------
        SceneHandle
            The handle of the written scene store.
        """
        self.set_data("input", input_data)
        self.config.update(**kwargs)
        self.run()
        self.finalize()
        return self.get_handle("output")

    def run(self) -> None:
        cfg = RenderConfig.from_mapping(self.config)
        catalog = self.get_data("input")
        if self.config.hdf5_groupname:
            catalog = catalog[self.config.hdf5_groupname]
        path = self.get_output(self.get_aliased_tag("output"))
        prov = provenance_json({"stage": self.options_dict(), "render": cfg.as_dict()},
                               f"rail.creation.engines.galaxy_scenes.{self.name}")
        render_catalog(catalog, cfg, path, n_workers=WorkerOptions.from_mapping(self.config).count,
                       provenance=prov, inputs=[self.get_handle("input").path])
        self.publish_written("output", path)
