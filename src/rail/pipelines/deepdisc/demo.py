"""The main job: a small JWST-like field end to end, through the comparison pipeline.

:func:`run_demo` builds the JWST comparison pipeline with demo-sized settings, writes its
YAML into the output directory, runs it with ceci (stages in their own processes, resumable)
while printing what each stage is doing (:mod:`rail.pipelines.deepdisc.runner`), and returns
the report.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from typing import Any

from rail.deepdisc.errors import MissingDependencyError, PipelineError
from rail.deepdisc.hybrid.options import PhotometryNetOptions
from rail.deepdisc.store.atomic import check_output_path
from rail.pipelines.deepdisc.runner import run_built_pipeline

#: module -> what provides it: the template fitters the demo compares DeepDISC with
FITTERS = {"rail.estimation.algos.bpz_lite": "pz-rail-bpz (BPZ)", "eazy": "eazy-py (EAZY)"}

#: demo-sized fields and schedule: about 10 minutes on 2 CPU cores
DEMO = {"n_train_scenes": 240, "n_test_scenes": 80, "epochs": 14}
#: a tiny run (CI, notebooks): a couple of minutes, numbers meaningless
QUICK = {"n_train_scenes": 12, "n_test_scenes": 6, "scene_size": 64, "epochs": 1,
         "photometry_net": PhotometryNetOptions(
             photnet_galaxies=3000, photnet_epochs=2, photnet_hidden=32, photnet_layers=1,
             photnet_finetune_epochs=2)}


def demo_pipeline(output_dir: str, quick: bool = False, eazy_templates: str | None = None,
                  **overrides: Any):
    """The JWST comparison pipeline with demo (or quick) settings, working in output_dir."""
    from rail.pipelines.deepdisc.comparison import JWST_SETTINGS, DeepDiscComparisonPipeline

    settings = replace(JWST_SETTINGS, **(QUICK if quick else DEMO),
                       work_dir=os.path.join(output_dir, "work"),
                       bpz_data_dir=os.path.join(output_dir, "work", "bpz_data"),
                       log_dir=os.path.join(output_dir, "logs"))
    if eazy_templates:
        settings = replace(settings, eazy_templates=eazy_templates)
    return DeepDiscComparisonPipeline(settings, **overrides)


def check_fitters() -> None:
    """Refuse at once when a template fitter of the comparison is not installed.

    Raises
    ------
    MissingDependencyError
        Naming what is missing and the extra that installs it.
    """
    import importlib.util

    missing = []
    for module, what in FITTERS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(what)
    if missing:
        raise MissingDependencyError(
            f"the demo compares DeepDISC with BPZ and EAZY, and {' and '.join(missing)} "
            "is not installed: pip install 'pz-rail-deepdisc[fitters]'")


def run_demo(output_dir: str, quick: bool = False, eazy_templates: str | None = None,
             progress: bool = True) -> str:
    """Simulate, train, estimate, fit templates, evaluate and report into ``output_dir``.

    Returns the path of ``report.md``. Running again resumes: finished stages are skipped.
    """
    check_fitters()
    from rail.pipelines.deepdisc.comparison import write_pipeline

    output_dir = os.path.abspath(output_dir)
    check_output_path(os.path.join(output_dir, "pipeline.yml"), "demo output")
    pipe = demo_pipeline(output_dir, quick=quick, eazy_templates=eazy_templates)
    data_dir = os.path.join(output_dir, "data")
    log_dir = pipe.settings.log_dir
    yml = write_pipeline(pipe, os.path.join(output_dir, "pipeline.yml"), data_dir, log_dir)
    run_built_pipeline(pipe, yml, data_dir, log_dir, progress)
    report = os.path.join(data_dir, "report_report.md")
    if not os.path.exists(report):
        found = [f for f in os.listdir(data_dir) if f.endswith(".md")]
        if not found:
            raise PipelineError(f"the pipeline finished but wrote no report in {data_dir}")
        report = os.path.join(data_dir, found[0])
    final = os.path.join(output_dir, "report.md")
    shutil.copyfile(report, final)
    files = os.path.join(data_dir, "report_files")
    if os.path.isdir(files):
        shutil.copytree(files, os.path.join(output_dir, "report_files"), dirs_exist_ok=True)
    return final
