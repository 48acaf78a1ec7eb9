"""The field recipe as one ceci pipeline: from a survey's mosaics, photometric catalog and
spectroscopic redshifts to a published photo-z catalog with an honest validation.

tile the field (every catalog object) and the tiles that hold spectroscopic redshifts →
a survey file measured from the mosaics (pixel scale, noise, depths, PSFs, noise
correlation) and a pre-training field simulated for it (or a survey preset/file given by
the user) → pre-train → fine-tune on the spectroscopic
tiles, and k-fold cross-validate the fine-tuning (every spec-z object gets a photo-z from a
model that never saw its label) → forced estimation of every catalog object and detect mode
on the whole field with the fine-tuned model → the photo-z catalog → a validation report on
the out-of-fold objects (the comparison report's tables by quality flag, photo-z vs spec-z,
the field map, N(z) by flag).

:func:`check_field_inputs` checks everything a user gives (mosaics, catalog, spectroscopic
catalog, pre-trained model, output names) before any work; :func:`write_field_pipeline`
writes the YAML for ``ceci`` (``initialize`` + ``save``, as ceci 2.7 needs) and
:func:`run_field` runs it (:mod:`rail.pipelines.deepdisc.runner`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rail.core.stage import RailPipeline

from rail.creation.engines.galaxy_scenes import GalaxyPopulationCreator, SceneRenderer
from rail.creation.engines.survey_field import MosaicSurveyMeasurer, SurveyFieldSimulator
from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.field_recipe import (
    FieldSettings,
    load_field_inputs,
    relative_paths,
    spectra_needed,
)
from rail.deepdisc.fit.eazy_options import TemplateSetOptions
from rail.deepdisc.hybrid.options import FusionOptions, PhotometryNetOptions
from rail.deepdisc.sim.field import FieldSpec, expected_galaxies
from rail.deepdisc.sim.survey_from_mosaics import MosaicSurveyOptions
from rail.deepdisc.store.atomic import check_output_path
from rail.deepdisc.store.mosaic import TilerConfig
from rail.deepdisc.store.mosaic_io import MosaicMapOptions
from rail.estimation.algos.deepdisc import DeepDiscEstimator, DeepDiscInformer
from rail.estimation.algos.deepdisc_cv import DeepDiscCrossValidator, DeepDiscFineTuner
from rail.estimation.algos.eazy import EazyCrossValidator, EazyEstimator, EazyInformer
from rail.estimation.algos.hybrid import HybridCrossValidator, HybridEstimator, HybridInformer
from rail.estimation.algos.photometry_network import PhotometryNetEstimator, PhotometryNetInformer
from rail.pipelines.deepdisc.runner import run_built_pipeline
from rail.tools.catalog_tools import HeadlineCatalog, PhotoZCatalog
from rail.tools.report_tools import FieldValidationReport
from rail.tools.scene_tools import MosaicTiler, ScenePhotometry, SurveyScenePhotometry

#: the catalog's file name (without ``.fits``) in the output directory: the output of the
#: stage ``photoz_catalog`` (``rail-deepdisc catalog`` writes Parquet, ECSV or HDF5 too)
CATALOG_NAME = "output_photoz_catalog"
#: the methods of the recipe: key of their stages (``catalog_<key>``) -> name in catalogs
#: and reports (``METHOD``)
METHODS = {"deepdisc": "DeepDISC", "eazy": "EAZY", "photometry_net": "photometry network",
           "hybrid": "hybrid"}
#: photometry columns the template fitter's PDFs carry, so its catalog needs no store
CATALOG_COLUMNS = ("scene", "x", "y", "ra", "dec")
#: inputs of the committed example (``rail-deepdisc fits-field --output-dir field_data``),
#: relative to the repository root, where ``ceci examples/field_pipeline.yml`` is run
EXAMPLE_INPUTS = "field_data/field_inputs.yml"


class DeepDiscFieldPipeline(RailPipeline):
    """Mosaics + catalog + spec-z → pre-train, fine-tune, cross-validate → catalog + report.

    Parameters
    ----------
    tiler
        The mosaics, the catalog columns and the spectroscopic catalog (``spec_catalog``
        required).
    settings
        How to train and validate.
    survey_options
        How the survey is measured from the mosaics (PSF files, filters, population
        limits), when ``settings.survey`` is empty; the mosaics are the tiler's.
    log_dir
        ceci's log directory.
    """

    default_input_dict: dict[str, str] = {}

    def __init__(self, tiler: TilerConfig, settings: FieldSettings | None = None,
                 survey_options: MosaicSurveyOptions | None = None, log_dir: str = "") -> None:
        RailPipeline.__init__(self)
        s = settings or FieldSettings()
        if not tiler.spectra.spec_catalog:
            raise OptionError("the field recipe needs a spectroscopic catalog (spec_catalog)")
        tiles = tiler.given(TilerConfig.option_specs())
        tiles.pop("require_redshift", None)
        self.tile_field = MosaicTiler.build(**tiles)
        self.tile_train = MosaicTiler.build(**{
            **tiles, "tile_size": s.train_tile_size, "overlap": s.train_overlap,
            "require_redshift": True})
        if not s.survey:
            measured = survey_options or MosaicSurveyOptions.from_mapping(
                {k: getattr(tiler, k) for k in MosaicMapOptions.option_specs()})
            self.measure_survey = MosaicSurveyMeasurer.build(
                **measured.given(MosaicSurveyOptions.option_specs()))
            survey_options = measured
        self._add_network(s)
        self._add_template_fitting(tiler, s, survey_options)
        self._add_hybrid(s)
        self._add_catalogs(tiler, s)
        self.settings = s
        self.survey_options = survey_options
        self.tiler = tiler
        self.log_dir = log_dir

    def _add_network(self, s: FieldSettings) -> None:
        """Pre-training (unless a model is given), fine-tuning, its cross-validation, and the
        field estimated in forced and detect mode (``pretrain``, ``finetune``, ``crossval``,
        ``estimate_field``, ``detect_field``)."""
        threads = {"num_threads": s.num_threads}
        finetune = {"backbone": s.backbone, "epochs": s.finetune_epochs,
                    "learning_rate": s.finetune_learning_rate, "warmup_steps": 20,
                    "seed": s.seed, "val_fraction": 0.1, **threads}
        init = {}
        if not s.pretrained_model:
            self._add_pretraining_field(s)
            self.pretrain = DeepDiscInformer.build(
                connections={"input": self.scenes_pretrain.io.output}, backbone=s.backbone,
                epochs=s.pretrain_epochs, seed=s.seed, **threads)
            init = {"init_model": self.pretrain.io.model}
        self.finetune = DeepDiscFineTuner.build(
            connections={"input": self.tile_train.io.output, **init}, **finetune)
        self.crossval = DeepDiscCrossValidator.build(
            connections={"input": self.tile_train.io.output, **init}, folds=s.folds,
            **finetune)
        model = {"model": self.finetune.io.model}
        self.estimate_field = DeepDiscEstimator.build(
            connections={"input": self.tile_field.io.output, **model}, mode="forced",
            **threads)
        self.detect_field = DeepDiscEstimator.build(
            connections={"input": self.tile_field.io.output, **model}, mode="detect",
            **threads)

    def _add_template_fitting(self, tiler: TilerConfig, s: FieldSettings,
                              survey_options: MosaicSurveyOptions | None) -> None:
        """Photometry of every catalog object on the field's tiles (with the survey's PSFs)
        → EAZY informed on the spectroscopic objects (prior and zero points), and the
        photometry network trained on the simulated survey and fine-tuned on them → every
        object, and out of fold (``photometry_field``, ``inform_eazy``, ``estimate_eazy``,
        ``crossval_eazy``, ``inform_photometry_net``, ``estimate_photometry_net``)."""
        if s.survey:
            self.photometry_field = ScenePhotometry.build(
                connections={"input": self.tile_field.io.output}, psf_survey=s.survey)
        else:
            self.photometry_field = SurveyScenePhotometry.build(
                connections={"input": self.tile_field.io.output,
                             "survey": self.measure_survey.io.output})
        zmax, detection = template_range(s, survey_options)
        bands = list(tiler.images)
        columns = {"bands": [f"flux_{b}" for b in bands],
                   "err_bands": [f"flux_err_{b}" for b in bands], "hdf5_groupname": "",
                   "input_type": "flux", "prior_band": f"flux_{detection}"}
        self.inform_eazy = EazyInformer.build(
            connections={"input": self.photometry_field.io.output}, filter_list=bands,
            zmax=zmax, redshift_col="redshift",
            **s.template_set.given(TemplateSetOptions.option_specs()), **columns)
        fit = {**columns, "id_col": "object_id", "ancil_columns": list(CATALOG_COLUMNS)}
        survey = {} if s.survey else {"survey": self.measure_survey.io.output}
        self.inform_photometry_net = PhotometryNetInformer.build(
            connections={"input": self.photometry_field.io.output, **survey},
            filter_list=bands, ref_band=columns["prior_band"], zmax=zmax,
            redshift_col="redshift", id_col="object_id", folds=s.folds, seed=s.seed,
            bands=columns["bands"], err_bands=columns["err_bands"], hdf5_groupname="",
            **s.photometry_net.given(PhotometryNetOptions.option_specs()))
        self.estimate_photometry_net = PhotometryNetEstimator.build(
            connections={"input": self.photometry_field.io.output,
                         "model": self.inform_photometry_net.io.model},
            bands=columns["bands"], err_bands=columns["err_bands"], hdf5_groupname="",
            id_col="object_id", ancil_columns=list(CATALOG_COLUMNS))
        self.estimate_eazy = EazyEstimator.build(
            connections={"input": self.photometry_field.io.output,
                         "model": self.inform_eazy.io.model}, **fit)
        self.crossval_eazy = EazyCrossValidator.build(
            connections={"input": self.photometry_field.io.output,
                         "model": self.inform_eazy.io.model},
            folds=s.folds, seed=s.seed, redshift_col="redshift", **fit)

    def _add_hybrid(self, s: FieldSettings) -> None:
        """The hybrid: fused out of fold on the spectroscopic objects, fitted on all of them
        and applied to every object (``crossval_hybrid``, ``inform_hybrid``,
        ``estimate_hybrid``)."""
        oof = {"image": self.crossval.io.output, "templates": self.crossval_eazy.io.output,
               "photometric": self.inform_photometry_net.io.oof}
        fusion = s.fusion.given(FusionOptions.option_specs())
        self.crossval_hybrid = HybridCrossValidator.build(connections=oof, folds=s.folds,
                                                          seed=s.seed, **fusion)
        self.inform_hybrid = HybridInformer.build(connections=oof, **fusion)
        self.estimate_hybrid = HybridEstimator.build(
            connections={"image": self.estimate_field.io.output,
                         "templates": self.estimate_eazy.io.output,
                         "photometric": self.estimate_photometry_net.io.output,
                         "model": self.inform_hybrid.io.model})

    def _add_catalogs(self, tiler: TilerConfig, s: FieldSettings) -> None:
        """One catalog per method (``catalog_<method>``), the report ranking the methods out
        of fold (``validate``), and the headline catalog, the best-ranked method's
        (``photoz_catalog``)."""
        field = {"deepdisc": self.estimate_field, "eazy": self.estimate_eazy,
                 "photometry_net": self.estimate_photometry_net,
                 "hybrid": self.estimate_hybrid}
        for key, method in METHODS.items():
            setattr(self, f"catalog_{key}", PhotoZCatalog.build(
                connections={"input": field[key].io.output}, method=method))
        self.validate = FieldValidationReport.build(
            connections={"oof": self.crossval.io.output,
                         "field": self.estimate_field.io.output,
                         "detections": self.detect_field.io.output,
                         "oof_templates": self.crossval_eazy.io.output,
                         "field_templates": self.estimate_eazy.io.output,
                         "oof_photometric": self.inform_photometry_net.io.oof,
                         "field_photometric": self.estimate_photometry_net.io.output,
                         "oof_hybrid": self.crossval_hybrid.io.output,
                         "field_hybrid": self.estimate_hybrid.io.output,
                         "template_model": self.inform_eazy.io.model},
            images=dict(tiler.images), survey=s.survey, title=s.title,
            truth_catalog=s.truth_catalog, method_names=list(METHODS.values()))
        self.photoz_catalog = HeadlineCatalog.build(
            connections={"metrics": self.validate.io.metrics,
                         **{key: getattr(self, f"catalog_{key}").io.output
                            for key in METHODS}})

    def _add_pretraining_field(self, s: FieldSettings) -> None:
        """The simulated pre-training field: of the survey measured from the mosaics, or of
        the survey preset/file the settings name (stage ``scenes_pretrain``)."""
        seds = {"sed_library": s.pretrain_sed_library} if s.pretrain_sed_library else {}
        if s.survey:
            n_galaxies = expected_galaxies(FieldSpec(survey=s.survey, n_scenes=s.pretrain_scenes,
                                                     seed=s.seed))
            self.population_pretrain = GalaxyPopulationCreator.build(
                n_samples=n_galaxies, seed=s.seed, survey=s.survey, realism=s.pretrain_realism,
                **seds)
            self.scenes_pretrain = SceneRenderer.build(
                connections={"input": self.population_pretrain.io.output},
                n_scenes=s.pretrain_scenes, seed=s.seed, survey=s.survey,
                realism=s.pretrain_realism)
            return
        self.scenes_pretrain = SurveyFieldSimulator.build(
            connections={"survey": self.measure_survey.io.output},
            n_scenes=s.pretrain_scenes, seed=s.seed, realism=s.pretrain_realism, **seds)

    def external_inputs(self) -> dict[str, str]:
        """The pipeline's inputs from outside: the catalog, a pre-trained model if any, and
        the survey file of a survey given by name or file (else it is measured)."""
        from rail.deepdisc.sim.surveys import survey_file

        inputs = {"input": self.catalog_path}
        if self.settings.pretrained_model:
            inputs["init_model"] = self.settings.pretrained_model
        if self.settings.survey:
            inputs["survey"] = survey_file(self.settings.survey)
        return inputs

    catalog_path: str = ""


def check_template_set(opts: TemplateSetOptions) -> str:
    """Resolve and read the template set now, so a missing or malformed template or
    template-error file stops the run before any work (an error naming the file); returns
    the set's description."""
    from rail.deepdisc.fit.eazy_data import resolve_template_set
    from rail.deepdisc.fit.eazy_model import read_template_error
    from rail.deepdisc.fit.eazy_templates import load_templates

    choice = resolve_template_set(opts.templates_file, opts.template_error_file,
                                  opts.eazy_photoz_dir)
    load_templates(choice.templates)
    if choice.template_error_file:
        read_template_error(choice.template_error_file)
    return choice.description


def template_range(s: FieldSettings, survey_options: MosaicSurveyOptions | None
                   ) -> tuple[float, str]:
    """Highest redshift of the template fits, and the band of their magnitude prior: the
    measured survey's (``zmax``, detection band) or the survey preset's."""
    if survey_options is not None:
        return float(survey_options.zmax), survey_options.detection
    from rail.deepdisc.sim.surveys import get_survey

    preset = get_survey(s.survey)
    return float(preset.zmax), preset.detection_band


def check_field_inputs(tiler: TilerConfig, catalog: str, settings: FieldSettings,
                       output_dir: str, survey_options: MosaicSurveyOptions | None = None
                       ) -> dict[str, Any]:
    """Check what the user gave before any work; returns a summary (bands, objects,
    matched spectra).

    Raises
    ------
    InputError, OptionError, OutputPathError
        Naming the file or option: a mosaic whose band the pre-training survey (or the
        pre-trained model) lacks, a spectroscopic catalog matching no catalog object, an
        output that is an input.
    """
    from rail.deepdisc.store.catalogs import attach_spectra, load_catalog
    from rail.deepdisc.store.mosaic import open_inputs

    inputs = [*tiler.input_paths(), catalog]
    if settings.pretrain_sed_library and not settings.pretrained_model:
        from rail.deepdisc.spectra.named_libraries import check_library_name

        try:
            check_library_name(settings.pretrain_sed_library)
        except OptionError as err:
            raise OptionError(f"pretrain_sed_library: {err}") from None
    if settings.pretrained_model:
        inputs.append(settings.pretrained_model)
    if settings.truth_catalog:
        inputs.append(settings.truth_catalog)
    if not settings.survey and survey_options is not None:
        survey_options.validate()  # a filter curve for every band, PSF files named
        inputs += survey_options.input_paths()
    templates = check_template_set(settings.template_set)
    catalog_out = os.path.join(output_dir, "data", f"{CATALOG_NAME}.fits")
    check_output_path(catalog_out, "photo-z catalog", inputs=inputs)
    _check_bands(tiler, settings)
    open_inputs(tiler)  # every mosaic readable, one pixel grid, units known
    cat = attach_spectra(load_catalog(catalog, tiler.columns), tiler.spectra)
    n_spec = int((cat.redshift == cat.redshift).sum())
    # each fold trains on (folds - 1) / folds of them, less the validation scenes
    need = spectra_needed(settings.folds)
    if n_spec < need:
        raise InputError(f"spectroscopic catalog {tiler.spectra.spec_catalog}: {n_spec} "
                         f"redshifts match catalog objects; {settings.folds}-fold "
                         f"cross-validation needs at least {need}")
    return {"bands": list(tiler.images), "n_objects": int(cat.ids.size),
            "n_spec": n_spec, "catalog": catalog_out, "templates": templates}


def _check_bands(tiler: TilerConfig, settings: FieldSettings) -> None:
    """The mosaics' bands must be the model's: the pre-training survey's or the given
    model's, same names, same order (a survey measured from the mosaics has theirs)."""
    if not settings.pretrained_model and not settings.survey:
        return
    if settings.pretrained_model:
        from rail.deepdisc.net.model_file import model_meta, read_model_file

        expected = list(model_meta(read_model_file(settings.pretrained_model))["bands"])
        source = f"the model {settings.pretrained_model}"
    else:
        from rail.deepdisc.sim.surveys import get_survey

        expected = list(get_survey(settings.survey).bands)
        source = f"the pre-training survey {settings.survey!r}"
    bands = list(tiler.images)
    if bands != expected:
        other = [b for b in bands if b not in expected]
        first = tiler.images[other[0]] if other else next(iter(tiler.images.values()))
        raise InputError(f"mosaic {first}: the mosaics have bands {bands} but {source} has "
                         f"bands {expected} (same bands, same order)")


def write_field_pipeline(pipeline: DeepDiscFieldPipeline, catalog: str, yml_path: str,
                         output_dir: str, log_dir: str, resume: bool = True) -> str:
    """Write the pipeline YAML (and its ``_config.yml``) for ``ceci``; returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(yml_path)), exist_ok=True)
    pipeline.catalog_path = catalog
    outputs = {"output_dir": output_dir, "log_dir": log_dir, "resume": resume}
    pipeline.initialize(pipeline.external_inputs(), outputs, None)
    pipeline.save(yml_path)
    return yml_path


def build_field_pipeline(options: dict[str, Any], log_dir: str = ""
                         ) -> tuple[DeepDiscFieldPipeline, str]:
    """The pipeline of the field inputs and recipe options in ``options`` (as
    :func:`~rail.deepdisc.field_recipe.load_field_inputs` reads them), and its catalog."""
    settings = FieldSettings.from_mapping(options)
    tiler = TilerConfig.from_mapping(options, survey=settings.survey)
    survey_options = None if settings.survey else MosaicSurveyOptions.from_mapping(options)
    catalog = options.get("catalog")
    if not catalog:
        raise InputError("no catalog given (catalog in the inputs file, or --catalog)")
    return DeepDiscFieldPipeline(tiler, settings, survey_options, log_dir=log_dir), str(catalog)


def write_field_example(directory: str = "examples", inputs: str = EXAMPLE_INPUTS) -> str:
    """Write ``field_pipeline.yml`` (+ ``_config.yml``) for the field that ``rail-deepdisc
    fits-field --output-dir field_data`` writes, with paths relative to the current
    directory (the repository root): ``ceci examples/field_pipeline.yml``."""
    work = os.path.join("output", "field")
    options = relative_paths(load_field_inputs(inputs))
    pipe, catalog = build_field_pipeline(options, os.path.join(work, "logs"))
    return write_field_pipeline(pipe, catalog, os.path.join(directory, "field_pipeline.yml"),
                                os.path.join(work, "data"), os.path.join(work, "logs"))


def run_field(options: Mapping[str, Any], output_dir: str, progress: bool = True
              ) -> dict[str, str]:
    """Check the inputs, write the pipeline and run it; returns ``catalog`` and ``report``.

    Parameters
    ----------
    options
        The catalog (``catalog``), the tiler's options and the recipe's
        (:class:`~rail.deepdisc.field_recipe.FieldSettings`).
    output_dir
        Directory for the pipeline YAML, its outputs (``data/``) and logs (``logs/``).
    """
    pipe, catalog = build_field_pipeline(dict(options))
    output_dir = os.path.abspath(output_dir)
    summary = check_field_inputs(pipe.tiler, catalog, pipe.settings, output_dir,
                                 pipe.survey_options)
    if progress:
        print(f"field: {summary['n_objects']} catalog objects (those on the mosaics' "
              f"footprint get a photo-z), {summary['n_spec']} with a "
              f"spectroscopic redshift, bands {summary['bands']}\n"
              f"template fitting: {summary['templates']}", flush=True)
    data_dir, log_dir = os.path.join(output_dir, "data"), os.path.join(output_dir, "logs")
    pipe.log_dir = log_dir
    yml = write_field_pipeline(pipe, catalog, os.path.join(output_dir, "pipeline.yml"),
                               data_dir, log_dir)
    run_built_pipeline(pipe, yml, data_dir, log_dir, progress, what="field pipeline")
    return {"catalog": os.path.join(data_dir, f"{CATALOG_NAME}.fits"),
            "report": os.path.join(data_dir, "report_validate.md")}


if __name__ == "__main__":  # pragma: no cover
    print(f"wrote {write_field_example()}")
