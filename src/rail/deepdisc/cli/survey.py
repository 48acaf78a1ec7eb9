"""``rail-deepdisc survey``: a survey file measured from the user's own mosaics.

The flags are derived from :class:`~rail.deepdisc.sim.survey_from_mosaics.MosaicSurveyOptions`.
"""

from __future__ import annotations

import argparse

from rail.deepdisc.sim.survey_from_mosaics import MosaicSurveyOptions
from rail.deepdisc.store.write_guard import WriteGuard


def _cmd_survey(args: argparse.Namespace) -> int:
    from rail.deepdisc.sim.survey_from_mosaics import survey_from_mosaics

    opts = MosaicSurveyOptions.from_mapping(args)
    with WriteGuard.for_args(args, writes={"--output": args.output}):
        result = survey_from_mosaics(opts, args.output)  # its companions guarded there
    preset = result.preset
    print(f"wrote {result.output}: survey {preset.name}, {preset.pixel_scale:g}\"/pixel, "
          f"depths 5 sigma in r = {preset.depth_aperture_arcsec:g}\"")
    for m in result.bands:
        print(f"  {m.band}: pixel noise {m.sigma:.4g} nJy (16-84%: {m.sigma_p16:.4g}-"
              f"{m.sigma_p84:.4g}), depth {preset.depths[m.band]:.2f}, noise "
              f"{'correlated' if m.kernel is not None else 'white'}, PSF from {m.psf_source}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``survey`` to the ``rail-deepdisc`` parser."""
    survey = sub.add_parser(
        "survey", parents=[common],
        help="measure a survey file (pixels, noise, PSFs) from FITS mosaics, for simulate "
             "--survey")
    MosaicSurveyOptions.add_arguments(survey)
    survey.add_argument("--output", required=True, help="survey file to write (.yml)")
    survey.set_defaults(func=_cmd_survey)
