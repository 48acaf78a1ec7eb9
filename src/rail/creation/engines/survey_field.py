"""RAIL stages that simulate the user's own survey: a survey file measured from the user's
FITS mosaics, and a simulated field of the survey a survey file describes.

``MosaicSurveyMeasurer`` writes the survey file (pixel scale from the WCS, per-band noise
and depth from the ERR/WHT maps, PSFs from files or from stars, the noise correlation of the
empty sky; :mod:`rail.deepdisc.sim.survey_from_mosaics`); ``SurveyFieldSimulator`` draws a
population and renders its scenes for the survey file it is given as input
(:func:`rail.deepdisc.sim.field.simulate_field`). Chained, they make a pre-training field
that looks like the user's data inside one pipeline.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from rail.core.data import DataHandle
from rail.core.stage import RailStage

from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.sim.survey_from_mosaics import MosaicSurveyOptions, survey_from_mosaics
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.handle import SceneHandle
from rail.deepdisc.workers import WorkerOptions


class SurveyFileHandle(DataHandle):
    """RAIL data handle for a survey file (YAML, suffix ``yml``); its data is the
    :class:`~rail.deepdisc.sim.surveys.SurveyPreset` the file describes."""

    suffix = "yml"
    interactive_type = "rail.deepdisc.sim.surveys.SurveyPreset"

    @classmethod
    def _open(cls, path: str, **kwargs: Any) -> Any:
        from rail.deepdisc.sim.survey_file import read_survey_file

        return read_survey_file(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> Any:
        return cls._open(path)

    @classmethod
    def _write(cls, data: Any, path: str, **kwargs: Any) -> None:
        raise NotImplementedError("a survey file is written by rail.deepdisc.sim."
                                  "survey_from_mosaics (or by hand), not from a handle")


class MosaicSurveyMeasurer(StrictConfigMixin, RailStage):
    """Measure a survey file from the user's FITS mosaics (the stage of ``rail-deepdisc
    survey``).

    Pixel scale from the WCS; per-band pixel noise (median, 16th/84th percentiles) from the
    error or weight maps, else from the source-masked sky; PSFs from the given FITS images
    (``psfs``) or built from isolated stars with photutils' ``EPSFBuilder``; the noise
    correlation of the empty sky (drizzled mosaics); depths from the noise. Companion FITS
    files (PSFs built from stars, noise kernels) are written beside the survey file. Options:
    :class:`rail.deepdisc.sim.survey_from_mosaics.MosaicSurveyOptions`.
    """

    name = "MosaicSurveyMeasurer"
    entrypoint_function = "measure"
    interactive_function = "mosaic_survey_measurer"
    config_options = RailStage.config_options.copy()
    config_options.update(MosaicSurveyOptions.stage_params())
    path_options = MosaicSurveyOptions.path_options()
    inputs: list = []
    outputs = [("output", SurveyFileHandle)]

    def measure(self, **kwargs: Any) -> SurveyFileHandle:
        """Measure the configured mosaics and write the survey file.

        Parameters
        ----------
        **kwargs : Any
            Options to change (``images``, ``errors``, ``psfs``, ... see the stage's config
            options).

        Returns
        -------
        SurveyFileHandle
            The handle of the written survey file.
        """
        self.config.update(**kwargs)
        self.run()
        self.finalize()
        return self.get_handle("output")

    def run(self) -> None:
        tag = self.get_aliased_tag("output")
        path = self.get_output(tag)
        final = Path(self.get_output(tag, final_name=True))
        opts = MosaicSurveyOptions.from_mapping(self.config)
        opts = dataclasses.replace(opts, survey_name=opts.survey_name or final.stem)
        survey_from_mosaics(opts, path, companion_stem=final.with_suffix(""))
        self.publish_written("output", path)


class SurveyFieldSimulator(StrictConfigMixin, RailStage):
    """Simulate a field of the survey a survey file describes: a population drawn for it and
    rendered into a scene store (PSFs, noise, correlated noise, blends, truth maps).

    Input: a survey file (e.g. ``MosaicSurveyMeasurer``'s output). Output: a scene store.
    Options: :class:`rail.deepdisc.sim.field.FieldSpec` (population and rendering; exactly
    as many galaxies are drawn as the scenes need), without ``survey``, which is the input.
    """

    name = "SurveyFieldSimulator"
    entrypoint_function = "simulate"
    interactive_function = "survey_field_simulator"
    config_options = RailStage.config_options.copy()
    config_options.update(**FieldSpec.stage_params(skip=("survey",)),
                          **WorkerOptions.stage_params())
    inputs = [("survey", SurveyFileHandle)]
    outputs = [("output", SceneHandle)]

    def simulate(self, survey: Any, **kwargs: Any) -> SceneHandle:
        """Simulate a field of a survey.

        Parameters
        ----------
        survey : str | SurveyFileHandle | SurveyPreset
            The survey file: a path, its handle, or the survey read from it.
        **kwargs : Any
            Options to change (``n_scenes``, ``seed``, ... see the stage's config options).

        Returns
        -------
        SceneHandle
            The handle of the written scene store.
        """
        source = getattr(survey, "source", None)  # a SurveyPreset read from a file
        return self.run_on({"survey": os.fspath(source) if source else survey}, "output",
                           **kwargs)

    def run(self) -> None:
        survey = self.get_handle("survey", allow_missing=True)
        survey_path = survey.path if survey is not None and survey.path else \
            self.get_input("survey")
        spec = FieldSpec.from_mapping(self.config, survey=os.fspath(survey_path))
        path = self.get_output(self.get_aliased_tag("output"))
        simulate_field(spec, path, n_workers=WorkerOptions.from_mapping(self.config).count,
                       progress=False, stage={"name": self.name, **self.options_dict()},
                       inputs=[os.fspath(survey_path)])
        self.publish_written("output", path)
