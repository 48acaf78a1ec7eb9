"""The scene simulator: mock populations, SEDs + IGM + filters, PSFs, rendering, presets."""

from .field import FieldSpec, simulate_field
from .population import PopulationConfig, sample_population
from .render import RenderConfig, render_catalog
from .surveys import SURVEYS, SurveyPreset, get_survey

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
