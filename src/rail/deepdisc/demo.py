"""The main job: a small JWST-like field end to end, through the comparison pipeline.

:func:`run_demo` builds the JWST comparison pipeline with demo-sized settings, writes its
YAML into the output directory, runs it with ceci (stages in their own processes, resumable)
while printing what each stage is doing, and returns the report.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from rail.deepdisc.errors import MissingDependencyError, PipelineError
from rail.deepdisc.hybrid.options import PhotometryNetOptions
from rail.deepdisc.store.atomic import check_output_path

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


def _ceci_command() -> list[str]:
    exe = shutil.which("ceci", path=os.path.dirname(sys.executable)) or shutil.which("ceci")
    if exe:
        return [exe]
    return [sys.executable, "-c", "import sys; from ceci.main import main; sys.exit(main())"]


def _last_line(path: str, limit: int = 4096) -> str:
    try:
        with open(path, "rb") as fin:
            fin.seek(max(0, os.path.getsize(path) - limit))
            text = fin.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [x.strip() for x in text.replace("\r", "\n").split("\n") if x.strip()]
    return lines[-1][:140] if lines else ""


def run_built_pipeline(pipe: Any, yml: str, data_dir: str, log_dir: str, progress: bool,
                       what: str = "pipeline") -> None:
    """Run a pipeline written to ``yml`` (:func:`run_pipeline_file`), saying where its
    outputs go.

    Raises
    ------
    PipelineError
        If ceci fails, naming the log directory.
    """
    names = list(pipe.stage_names)
    if progress:
        print(f"{what}: {yml} ({len(names)} stages); outputs in {data_dir}", flush=True)
    rc = run_pipeline_file(yml, log_dir, names, progress=progress)
    if rc != 0:
        raise PipelineError(f"the {what} failed (exit {rc}); see the logs in {log_dir}")


def run_pipeline_file(yml: str, log_dir: str, stage_names: list[str],
                      progress: bool = True, poll: float = 5.0) -> int:
    """Run a pipeline YAML with ceci, printing stage events and each running stage's
    latest log line (its progress bar) as it changes. Returns ceci's exit status."""
    # ceci launches every stage as ``python3 -m ceci ...``: make that this interpreter
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    proc = subprocess.Popen([*_ceci_command(), yml], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    start = time.time()
    shown: dict[str, str] = {}
    tail: list[str] = []
    while True:
        finished = proc.poll() is not None
        if finished:
            reader.join(timeout=10)
        while not lines.empty():
            line = lines.get().rstrip()
            tail = [*tail[-39:], line]
            if progress and (line.startswith(("Executing", "Skipping", "Pipeline", "Job"))
                             or "failed" in line.lower()):
                print(f"[{time.time() - start:6.0f} s] {line}", flush=True)
        if progress:
            for stage in stage_names:
                last = _last_line(os.path.join(log_dir, f"{stage}.out"))
                if last and shown.get(stage) != last and "Stage complete" not in last:
                    shown[stage] = last
                    print(f"[{time.time() - start:6.0f} s]   {stage}: {last}", flush=True)
        if finished:
            break
        time.sleep(poll)
    if proc.returncode != 0:
        print("\n".join(tail), file=sys.stderr)
    return proc.returncode


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
