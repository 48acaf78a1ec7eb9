"""One ceci pipeline from simulated scenes to a comparison report.

Simulate a training and a test field → train DeepDISC → estimate (forced, and detect for
completeness/purity) → measure photometry on the same scenes → BPZ and EAZY inform/estimate
→ RAIL's ``SingleEvaluator`` on each ensemble → a Markdown report with figures.

``JwstComparisonPipeline`` (9 NIRCam bands) and ``LsstComparisonPipeline`` (ugrizy) are
presets of :class:`DeepDiscComparisonPipeline`; :func:`write_pipeline` writes a pipeline
YAML and its ``_config.yml`` for ``ceci`` (RailPipeline.build_and_write is broken with ceci
2.7, so this uses ``initialize`` + ``save``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from rail.core.stage import RailPipeline
from rail.estimation.algos.bpz_lite import BPZliteEstimator, BPZliteInformer
from rail.evaluation.single_evaluator import SingleEvaluator

from rail.creation.engines.galaxy_scenes import GalaxyPopulationCreator, SceneRenderer
from rail.deepdisc.errors import OptionError
from rail.deepdisc.fit.bpz import (
    SURVEY_ZMAX,
    BPZDataOptions,
    bpz_stage_configs,
    describe_bpz_data,
)
from rail.deepdisc.fit.eazy_options import TemplateSetOptions
from rail.deepdisc.hybrid.options import PhotometryNetOptions
from rail.deepdisc.net.config import ComputeOptions, TrainConfig
from rail.deepdisc.options import Options, option, option_like
from rail.deepdisc.sim.field import FieldSpec, expected_galaxies
from rail.deepdisc.sim.render import RenderConfig
from rail.deepdisc.sim.surveys import get_survey
from rail.estimation.algos.deepdisc import DeepDiscEstimator, DeepDiscInformer
from rail.estimation.algos.eazy import EazyEstimator, EazyInformer
from rail.estimation.algos.hybrid import HybridCrossValidator
from rail.estimation.algos.photometry_network import PhotometryNetEstimator, PhotometryNetInformer
from rail.tools.bpz_tools import BPZDataPreparer
from rail.tools.report_tools import PhotoZComparisonReport
from rail.tools.scene_tools import ScenePhotometry

#: magnitude offset from a 5-sigma to a 1-sigma limit, 2.5 log10(5)
FIVE_TO_ONE_SIGMA = 1.7474250108400469


@dataclass(frozen=True, kw_only=True)
class ComparisonSettings(Options):
    """What the comparison pipeline simulates, trains and fits. The DeepDISC options are
    :class:`~rail.deepdisc.net.config.TrainConfig`'s and :class:`~rail.deepdisc.net.config.
    ComputeOptions`' (one help text and set of bounds, with the CPU-sized ``resnet18_fpn``);
    ``eazy_templates`` is ``EazyInformer``'s ``templates_file``.

    ``bpz_data_dir``: BPZ's data directory must exist when ceci loads the pipeline, because
    ``BPZliteEstimator`` checks it when it is constructed, before ceci creates any output
    directory: :func:`write_pipeline` creates it (building the pipeline object creates
    nothing), and the examples keep theirs in the repository.
    """

    survey: str = option("jades", "survey preset of the two simulated fields",
                         choices=("jades", "lsst"))
    n_train_scenes: int = option(300, "scenes of the simulated training field", ge=1)
    n_test_scenes: int = option(100, "scenes of the simulated test field", ge=1)
    scene_size: int = option_like(RenderConfig, "scene_size")
    objects_per_scene: float = option_like(RenderConfig, "objects_per_scene")
    train_seed: int = option(1, "seed of the training field and of the training", ge=0)
    test_seed: int = option(2, "seed of the test field (another than train_seed)", ge=0)
    backbone: str = option_like(TrainConfig, "backbone", "resnet18_fpn")
    epochs: int = option_like(TrainConfig, "epochs")
    num_components: int = option_like(TrainConfig, "num_components")
    bpz_templates: str = option_like(BPZDataOptions, "templates")
    eazy_templates: str = option_like(TemplateSetOptions, "templates_file")
    work_dir: str = option("output/comparison", "folder of the working files (relative to "
                           "where ceci runs)")
    bpz_data_dir: str = option("", "BPZ's data directory (bpz_ref_data_path; '': "
                               "<work_dir>/bpz_data)")
    log_dir: str = option("output/comparison/logs", "ceci's log folder, where the report "
                          "reads the stages' run times")
    num_threads: int = option_like(ComputeOptions, "num_threads")
    photometry_net: PhotometryNetOptions = field(default_factory=PhotometryNetOptions)

    def _check(self) -> None:
        if self.train_seed == self.test_seed:
            raise OptionError(f"train_seed and test_seed are both {self.train_seed}: the "
                              "training and test fields would be the same")


JWST_SETTINGS = ComparisonSettings(survey="jades", work_dir="output/jwst_comparison",
                                   bpz_data_dir="examples/bpz_data/jwst",
                                   log_dir="output/jwst_comparison/logs")
LSST_SETTINGS = ComparisonSettings(survey="lsst", scene_size=64, work_dir="output/lsst_comparison",
                                   bpz_data_dir="examples/bpz_data/lsst",
                                   log_dir="output/lsst_comparison/logs")


def _n_samples(survey: str, n_scenes: int, size: int, density: float, seed: int) -> int:
    spec = FieldSpec(survey=survey, n_scenes=n_scenes, scene_size=size, seed=seed,
                     objects_per_scene=density)
    return expected_galaxies(spec)


class DeepDiscComparisonPipeline(RailPipeline):
    """Simulated fields → DeepDISC, BPZ and EAZY on the same objects → evaluators → report."""

    default_input_dict: dict[str, str] = {}

    def __init__(self, settings: ComparisonSettings | None = None, **overrides: Any) -> None:
        RailPipeline.__init__(self)
        s = replace(settings or ComparisonSettings(), **overrides)
        s.validate()
        preset = get_survey(s.survey)
        bands = list(preset.bands)
        zmax = SURVEY_ZMAX.get(s.survey, preset.zmax)
        field_options = {"survey": s.survey, "scene_size": s.scene_size,
                         "objects_per_scene": s.objects_per_scene}

        for part, n_scenes, seed in (("train", s.n_train_scenes, s.train_seed),
                                     ("test", s.n_test_scenes, s.test_seed)):
            pop = GalaxyPopulationCreator.build(
                n_samples=_n_samples(s.survey, n_scenes, s.scene_size, s.objects_per_scene,
                                     seed),
                seed=seed, survey=s.survey)
            setattr(self, f"population_{part}", pop)
            render = SceneRenderer.build(connections={"input": pop.io.output},
                                         n_scenes=n_scenes, seed=seed, **field_options)
            setattr(self, f"scenes_{part}", render)
        train, test = self.scenes_train, self.scenes_test

        self.inform_deepdisc = DeepDiscInformer.build(
            connections={"input": train.io.output}, backbone=s.backbone, epochs=s.epochs,
            num_components=s.num_components, num_threads=s.num_threads, seed=s.train_seed)
        self.estimate_deepdisc = DeepDiscEstimator.build(
            connections={"input": test.io.output, "model": self.inform_deepdisc.io.model},
            mode="forced", num_threads=s.num_threads)
        self.detect_deepdisc = DeepDiscEstimator.build(
            connections={"input": test.io.output, "model": self.inform_deepdisc.io.model},
            mode="detect", num_threads=s.num_threads)

        self.photometry_train = ScenePhotometry.build(connections={"input": train.io.output})
        self.photometry_test = ScenePhotometry.build(connections={"input": test.io.output})

        mags = [f"mag_{b}" for b in bands]
        mag_errs = [f"mag_err_{b}" for b in bands]
        # 1-sigma limits for BPZ's non-detections from the preset's 5-sigma depths
        limits = {f"mag_{b}": preset.depths[b] + FIVE_TO_ONE_SIGMA for b in bands}
        ref = f"mag_{preset.detection_band}"
        bpz_dir = s.bpz_data_dir or os.path.join(s.work_dir, "bpz_data")
        setup = describe_bpz_data(bpz_dir, s.bpz_templates, bands, madau=True,
                                  band_filters=preset.filters)
        inform_cfg, estimate_cfg = bpz_stage_configs(setup, mags, mag_errs, limits, ref,
                                                     zmax=zmax)
        self.prepare_bpz = BPZDataPreparer.build(
            connections={"input": self.photometry_train.io.output}, data_path=bpz_dir,
            templates=s.bpz_templates, filters=bands, bands=mags, err_bands=mag_errs,
            ref_band=ref)
        self.inform_bpz = BPZliteInformer.build(
            connections={"input": self.prepare_bpz.io.output}, **inform_cfg)
        # BPZliteEstimator checks its data directory when constructed, and BPZDataPreparer
        # only writes it when the pipeline runs: build it on RAIL's own directory, then name
        # ours in its configuration (write_pipeline creates the directory)
        self.estimate_bpz = BPZliteEstimator.build(
            connections={"input": self.photometry_test.io.output,
                         "model": self.inform_bpz.io.model},
            **{**estimate_cfg, "bpz_ref_data_path": "None"})
        self.estimate_bpz.config["bpz_ref_data_path"] = estimate_cfg["bpz_ref_data_path"]
        self.bpz_data_dir = bpz_dir

        flux = [f"flux_{b}" for b in bands]
        flux_err = [f"flux_err_{b}" for b in bands]
        eazy_common = {"bands": flux, "err_bands": flux_err, "hdf5_groupname": "",
                       "input_type": "flux", "prior_band": f"flux_{preset.detection_band}"}
        self.inform_eazy = EazyInformer.build(
            connections={"input": self.photometry_train.io.output}, filter_list=bands,
            zmax=zmax, templates_file=s.eazy_templates, **eazy_common)
        self.estimate_eazy = EazyEstimator.build(
            connections={"input": self.photometry_test.io.output,
                         "model": self.inform_eazy.io.model}, id_col="object_id",
            **eazy_common)

        # the photometry network: trained on the survey's simulated catalog with the training
        # field's errors, fine-tuned on the training field's labels
        phot = {"bands": flux, "err_bands": flux_err, "hdf5_groupname": ""}
        self.inform_photometry_net = PhotometryNetInformer.build(
            connections={"input": self.photometry_train.io.output}, filter_list=bands,
            ref_band=f"flux_{preset.detection_band}", zmax=zmax, redshift_col="redshift",
            id_col="object_id", seed=s.train_seed,
            **s.photometry_net.given(PhotometryNetOptions.option_specs()), **phot)
        self.estimate_photometry_net = PhotometryNetEstimator.build(
            connections={"input": self.photometry_test.io.output,
                         "model": self.inform_photometry_net.io.model}, id_col="object_id",
            **phot)
        # the hybrid on the test field: exponents fitted out of fold on its known redshifts
        self.estimate_hybrid = HybridCrossValidator.build(
            connections={"image": self.estimate_deepdisc.io.output,
                         "templates": self.estimate_eazy.io.output,
                         "photometric": self.estimate_photometry_net.io.output},
            seed=s.test_seed)

        for method in ("deepdisc", "bpz", "eazy", "photometry_net", "hybrid"):
            estimate = getattr(self, f"estimate_{method}")
            setattr(self, f"evaluate_{method}", SingleEvaluator.build(
                connections={"input": estimate.io.output,
                             "truth": self.photometry_test.io.output},
                point_estimates=["zmode"], truth_point_estimates=["redshift"],
                metrics=["all"], hdf5_groupname="",
                exclude_metrics=["rmse", "ks", "kld", "cvm", "ad", "rbpe"],
                metric_config={"brier": {"limits": [0.0, zmax]},
                               "cdeloss": {"limits": [0.0, zmax]}}))

        names = ["DeepDISC", f"BPZ ({s.bpz_templates})", "EAZY", "photometry network",
                 "hybrid"]
        self.report = PhotoZComparisonReport.build(
            connections={"truth": test.io.output, "deepdisc": self.estimate_deepdisc.io.output,
                         "bpz": self.estimate_bpz.io.output,
                         "eazy": self.estimate_eazy.io.output,
                         "photometric": self.estimate_photometry_net.io.output,
                         "hybrid": self.estimate_hybrid.io.output,
                         "detections": self.detect_deepdisc.io.detections,
                         "eazy_model": self.inform_eazy.io.model},
            title=f"DeepDISC vs template fitting, {s.survey}-like field",
            method_names=names, log_dir=s.log_dir,
            timing_stages={
                names[0]: ["inform_deepdisc", "estimate_deepdisc"],
                names[1]: ["photometry_train", "photometry_test", "prepare_bpz", "inform_bpz",
                           "estimate_bpz"],
                names[2]: ["photometry_train", "photometry_test", "inform_eazy",
                           "estimate_eazy"],
                names[3]: ["photometry_train", "photometry_test", "inform_photometry_net",
                           "estimate_photometry_net"],
                names[4]: ["inform_deepdisc", "estimate_deepdisc", "photometry_train",
                           "photometry_test", "inform_eazy", "estimate_eazy",
                           "inform_photometry_net", "estimate_photometry_net",
                           "estimate_hybrid"],
            })
        self.settings = s


class JwstComparisonPipeline(DeepDiscComparisonPipeline):
    """The comparison on a JADES-like field (9 NIRCam bands)."""

    def __init__(self, **overrides: Any) -> None:
        DeepDiscComparisonPipeline.__init__(self, JWST_SETTINGS, **overrides)


class LsstComparisonPipeline(DeepDiscComparisonPipeline):
    """The comparison on an LSST-like field (ugrizy, 10-year depths)."""

    def __init__(self, **overrides: Any) -> None:
        DeepDiscComparisonPipeline.__init__(self, LSST_SETTINGS, **overrides)


def write_pipeline(pipeline: DeepDiscComparisonPipeline, yml_path: str, output_dir: str,
                   log_dir: str, resume: bool = True, relative_to: str = "") -> str:
    """Write the pipeline YAML (and its ``_config.yml``) for ``ceci``; returns the path.

    The survey's file (its preset's) is the pipeline's input ``survey``, as a path relative
    to ``relative_to`` when given. Creates the YAML's directory and the pipeline's BPZ data
    directory, which ceci needs to exist when it loads the pipeline.
    """
    from rail.deepdisc.sim.surveys import survey_file

    os.makedirs(os.path.dirname(os.path.abspath(yml_path)), exist_ok=True)
    os.makedirs(pipeline.bpz_data_dir, exist_ok=True)
    survey = survey_file(pipeline.settings.survey)
    if relative_to:  # a committed example: the path from where ceci is run
        survey = os.path.relpath(survey, relative_to)
    pipeline.initialize({"survey": survey},
                        {"output_dir": output_dir, "log_dir": log_dir, "resume": resume}, None)
    pipeline.save(yml_path)
    return yml_path


def write_examples(directory: str = "examples") -> list[str]:
    """Write ``jwst_comparison.yml`` and ``lsst_comparison.yml`` (+ ``_config.yml``).

    Outputs go to ``output/<name>/`` and logs to ``output/<name>/logs/``, relative to the
    directory ceci is run from (the repository root): ``ceci examples/jwst_comparison.yml``.
    """
    written = []
    for name, cls in (("jwst_comparison", JwstComparisonPipeline),
                      ("lsst_comparison", LsstComparisonPipeline)):
        pipe = cls()
        out = pipe.settings.work_dir
        written.append(write_pipeline(pipe, os.path.join(directory, f"{name}.yml"),
                                      os.path.join(out, "data"), pipe.settings.log_dir,
                                      relative_to=os.curdir))
    return written


if __name__ == "__main__":  # pragma: no cover
    for path in write_examples():
        print(f"wrote {path}")
