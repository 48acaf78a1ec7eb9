"""Run a pipeline YAML with ceci, showing what each stage is doing.

The runner of the demo (:mod:`rail.pipelines.deepdisc.demo`) and of the field recipe
(:func:`rail.pipelines.deepdisc.field.run_field`): ceci launches the stages in their own
processes (resumable: finished stages are skipped); stage events and each running stage's
latest log line are printed as they change.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from typing import Any

from rail.deepdisc.errors import PipelineError


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
