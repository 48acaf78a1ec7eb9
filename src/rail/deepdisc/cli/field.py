"""``rail-deepdisc fits-field`` and ``field``: the field recipe, from a survey's mosaics,
catalog and spectroscopic redshifts to a photo-z catalog and its validation report.

The flags of ``field`` are the tiler's (:class:`~rail.deepdisc.store.mosaic.TilerConfig`),
the recipe's (:class:`~rail.deepdisc.field_recipe.FieldSettings`) and those of the survey
measured from the mosaics
(:class:`~rail.deepdisc.sim.survey_from_mosaics.MosaicSurveyOptions`); ``--inputs`` reads
them from a YAML file first (flags given on the command line win).
"""

from __future__ import annotations

import argparse
import sys

from rail.deepdisc.field_recipe import FieldSettings, spectra_needed
from rail.deepdisc.sim.example_field import ExampleFieldOptions
from rail.deepdisc.sim.survey_from_mosaics import MosaicSurveyOptions
from rail.deepdisc.store.mosaic import TilerConfig
from rail.deepdisc.store.mosaic_io import MosaicMapOptions
from rail.deepdisc.store.write_guard import WriteGuard


def _cmd_fits_field(args: argparse.Namespace) -> int:
    from rail.deepdisc.sim.example_field import write_example_field

    opts = ExampleFieldOptions.from_mapping(args)
    with WriteGuard.for_args(args, folders={"--output-dir": args.output_dir},
                             overwrite=opts.overwrite):
        field = write_example_field(args.output_dir, opts, progress=not args.quiet)
    print(f"wrote {field.inputs}: {field.n_catalog} catalog objects, {field.n_objects} of "
          f"them on the mosaics' footprint (the field recipe gives those a photo-z), "
          f"{field.n_spec} spectroscopic redshifts (truth: {field.truth})")
    from rail.deepdisc.evaluate.field_report import MIN_JUDGE_OBJECTS

    folds = FieldSettings().folds
    if field.n_spec < spectra_needed(folds):
        print(f"warning: {field.n_spec} spectroscopic redshifts are too few for the field "
              f"recipe's {folds}-fold cross-validation (it needs {spectra_needed(folds)}): "
              "raise --mosaic-size or --spec-mag-50", file=sys.stderr)
    elif field.n_spec < MIN_JUDGE_OBJECTS:
        print(f"warning: {field.n_spec} spectroscopic redshifts: the field recipe runs, but "
              f"with fewer than {MIN_JUDGE_OBJECTS} its out-of-fold figures cannot tell the "
              "methods apart (raise --mosaic-size or --spec-mag-50)", file=sys.stderr)
    return 0


def _cmd_field(args: argparse.Namespace) -> int:
    from rail.deepdisc.field_recipe import load_field_inputs
    from rail.pipelines.deepdisc.field import run_field

    options = load_field_inputs(args.inputs) if args.inputs else {}
    options.update({k: v for k, v in vars(args).items()
                    if k not in ("func", "inputs", "output_dir", "quiet", "verbose")})
    # the folder is filled stage by stage and resumed: checked, not replaced
    with WriteGuard.for_args(args, folders={"--output-dir": args.output_dir}, overwrite=True,
                             reads={"--inputs": args.inputs}):
        paths = run_field(options, args.output_dir, progress=not args.quiet)
    print(f"catalog: {paths['catalog']}\nreport: {paths['report']}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``fits-field`` and ``field`` to the ``rail-deepdisc`` parser."""
    fits = sub.add_parser("fits-field", parents=[common],
                          help="write a simulated survey field as FITS mosaics, a catalog "
                          "and a spectroscopic catalog (input of `field`)")
    ExampleFieldOptions.add_arguments(fits)
    fits.add_argument("--output-dir", required=True, help="directory for the files")
    fits.set_defaults(func=_cmd_fits_field)

    field = sub.add_parser("field", parents=[common],
                           help="mosaics + catalog + spec-z -> pre-train, fine-tune, "
                           "cross-validate -> photo-z catalog and validation report")
    field.add_argument("--inputs", help="YAML of the catalog and tiler options (e.g. "
                       "field_inputs.yml of fits-field); relative paths are relative to it")
    field.add_argument("--catalog", default=argparse.SUPPRESS,
                       help="photometric catalog: FITS, CSV, ECSV, HDF5 or Parquet")
    TilerConfig.add_arguments(field, skip=("survey", "require_redshift"),
                              optional=("images",))
    FieldSettings.add_arguments(field)
    # how the survey is measured from the mosaics (survey ''); the mosaics are the tiler's
    MosaicSurveyOptions.add_arguments(field, skip=tuple(MosaicMapOptions.option_specs()))
    field.add_argument("--output-dir", required=True,
                       help="directory for the pipeline, its outputs and logs")
    field.set_defaults(func=_cmd_field)
