"""Population + rendering in one go: a simulated field as a scene store."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rail.deepdisc.sim.population import PopulationConfig, sample_population
from rail.deepdisc.sim.render import RenderConfig, plan_scenes, render_catalog
from rail.deepdisc.store.provenance import provenance_json
from rail.deepdisc.store.tables import write_table
from rail.deepdisc.store.write_guard import check_writes

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FieldSpec(PopulationConfig, RenderConfig):
    """A simulated field: every population and rendering option (one ``survey`` and one
    ``seed`` for both). A FieldSpec is itself the :class:`PopulationConfig` and the
    :class:`RenderConfig` of the field; limits left at None are the survey preset's.
    """

    def _check(self) -> None:
        PopulationConfig._check(self)
        RenderConfig._check(self)


def simulate_field(spec: FieldSpec, output: str | os.PathLike, *,
                   catalog_output: str | os.PathLike | None = None,
                   n_workers: int | None = None, progress: bool = True,
                   stage: Mapping[str, Any] | None = None,
                   inputs: Sequence[str | os.PathLike] = ()) -> str:
    """Draw a population and render it into a scene store at ``output``.

    Exactly as many galaxies are drawn as the scenes need. The population catalog is
    also written to ``catalog_output`` when given. Nothing is written if any option or
    output path is bad (``output`` and ``catalog_output`` must be two files).
    """
    spec.validate()
    # the survey file (and the noise kernels and PSFs it names) is read: never written
    check_writes({"scene store (output)": output, "catalog (catalog_output)": catalog_output},
                 {"survey": spec.survey, "input": list(inputs)}, create_parents=True)
    plan = plan_scenes(spec)
    population = spec.resolved()
    log.info("drawing %d galaxies (%s, %s < %.2f, z < %.1f)", plan.n_needed, spec.survey,
             population.limit_band, population.mag_limit, population.zmax)
    catalog = sample_population(max(plan.n_needed, 1), spec, seed=spec.seed)
    config = {"field": spec.as_dict(), "population_meta": catalog.pop("_meta"),
              **({"stage": dict(stage)} if stage else {})}
    prov = provenance_json(config, "rail.deepdisc.sim.field.simulate_field")
    if catalog_output is not None:
        write_table(catalog, catalog_output, prov)
    return render_catalog(catalog, spec, output, n_workers=n_workers, provenance=prov,
                          progress=progress, inputs=inputs)


def expected_galaxies(spec: FieldSpec) -> int:
    """Number of galaxies the field's scenes need (margins included)."""
    return int(plan_scenes(spec).n_needed)
