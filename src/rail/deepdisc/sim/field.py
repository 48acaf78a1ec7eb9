"""Population + rendering in one go: a simulated field as a scene store."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from rail.deepdisc.sim.population import PopulationConfig, sample_population
from rail.deepdisc.sim.render import RenderConfig, plan_scenes, render_catalog
from rail.deepdisc.sim.surveys import SurveyPreset, get_survey
from rail.deepdisc.store.atomic import check_output_path
from rail.deepdisc.store.provenance import provenance_json
from rail.deepdisc.store.tables import write_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FieldSpec:
    """A simulated field: survey, number and size of scenes, density, seed, limits.

    ``mag_limit`` / ``zmax`` default to the survey preset's.
    """

    survey: str = "jades"
    n_scenes: int = 16
    scene_size: int = 128
    seed: int = 0
    objects_per_scene: float = 10.0
    psf: str = "airy"
    mag_limit: float | None = None
    zmax: float | None = None

    def preset(self) -> SurveyPreset:
        return get_survey(self.survey)

    def population_config(self) -> PopulationConfig:
        p = self.preset()
        return PopulationConfig(
            bands=p.bands, limit_band=p.detection_band,
            mag_limit=p.mag_limit if self.mag_limit is None else float(self.mag_limit),
            zmax=p.zmax if self.zmax is None else float(self.zmax),
        )

    def render_config(self) -> RenderConfig:
        return RenderConfig(survey=self.preset(), scene_size=int(self.scene_size),
                            objects_per_scene=float(self.objects_per_scene), psf=self.psf,
                            seed=int(self.seed))

    def validate(self) -> None:
        """Check every option before any work (ValueError naming the option)."""
        if int(self.n_scenes) != self.n_scenes or self.n_scenes < 1:
            raise ValueError(f"scenes must be a positive integer, got {self.n_scenes}")
        self.population_config().validate()
        self.render_config().validate()


def simulate_field(spec: FieldSpec, output: str | os.PathLike, *,
                   catalog_output: str | os.PathLike | None = None,
                   n_workers: int | None = None, progress: bool = True) -> str:
    """Draw a population and render it into a scene store at ``output``.

    Exactly as many galaxies are drawn as the scenes need. The population catalog is
    also written to ``catalog_output`` when given. Nothing is written if any option is bad.
    """
    spec.validate()
    check_output_path(output, "scene store")
    if catalog_output is not None:
        check_output_path(catalog_output, "catalog")
    rcfg = spec.render_config()
    plan = plan_scenes(spec.n_scenes, rcfg)
    pcfg = spec.population_config()
    config: dict[str, Any] = {"field": spec.__dict__, "population": pcfg.__dict__,
                              "render": rcfg.as_dict()}
    log.info("drawing %d galaxies (%s, %s < %.2f, z < %.1f)", plan.n_needed, spec.survey,
             pcfg.limit_band, pcfg.mag_limit, pcfg.zmax)
    catalog = sample_population(max(plan.n_needed, 1), pcfg, seed=spec.seed)
    meta = catalog.pop("_meta")
    config["population_meta"] = meta
    prov = provenance_json(config, "rail.deepdisc.sim.simulate_field")
    if catalog_output is not None:
        write_table(catalog, catalog_output, prov)
    return render_catalog(catalog, spec.n_scenes, rcfg, output, n_workers=n_workers,
                          provenance=prov, progress=progress)


def expected_galaxies(spec: FieldSpec) -> int:
    """Number of galaxies the field's scenes need (margins included)."""
    return int(plan_scenes(spec.n_scenes, spec.render_config()).n_needed)

