"""The scene simulator: mock populations, SEDs + IGM + filters, PSFs, rendering, presets."""

from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.sim.population import PopulationConfig, sample_population
from rail.deepdisc.sim.render import RenderConfig, render_catalog
from rail.deepdisc.sim.surveys import SURVEYS, SurveyPreset, get_survey

__all__ = [
    "SURVEYS",
    "FieldSpec",
    "PopulationConfig",
    "RenderConfig",
    "SurveyPreset",
    "get_survey",
    "render_catalog",
    "sample_population",
    "simulate_field",
]
