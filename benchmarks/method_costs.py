"""Cost of each photo-z method of a finished field run: seconds and peak memory per object.

Reads a ``rail-deepdisc field`` run folder: ceci's dry run of its ``pipeline.yml`` gives each
stage's command line; each method's *estimation* stage (the image network's forced
estimation, EAZY, the photometry network, the hybrid) is executed again, alone, in a child
process, with its outputs sent to a temporary folder (the run's files are only read), and
its wall time, CPU time and peak resident memory are measured (``os.wait4``). The
*training* stages' wall times come from the run's ceci logs (``logs/<stage>.out``). The
figures are per object of the field's catalog.

    python benchmarks/method_costs.py --run field_run --output results/method_costs.json

Threads: every stage runs with the thread settings of the pipeline (ceci sets
``OMP_NUM_THREADS=1``; the network stages use ``num_threads``); pin the whole benchmark to
one core (``taskset -c 0``) for figures comparable between methods on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

from rail.tools.report_tools import stage_seconds

#: method -> (its estimation stage, the stages that train it)
METHODS = {
    "DeepDISC (image network)": ("estimate_field", ["scenes_pretrain", "pretrain", "finetune"]),
    "EAZY (template fitting)": ("estimate_eazy", ["inform_eazy"]),
    "photometry network": ("estimate_photometry_net", ["inform_photometry_net"]),
    "hybrid (fusion of the three)": ("estimate_hybrid", ["inform_hybrid"]),
}
#: stages every method needs before it can run (photometry for the catalog-based methods)
SHARED = {"photometry_field": "photometry on the tiles (EAZY, photometry network)"}


def dry_run(pipeline: str) -> dict[str, str]:
    """Stage name -> its command line, from ``ceci --dry-run``."""
    ceci = [sys.executable, "-c", "import sys; from ceci.main import main; sys.exit(main())"]
    res = subprocess.run([*ceci, pipeline, "resume=False", "--dry-run"],
                         capture_output=True, text=True, check=True)
    commands = {}
    for line in res.stdout.splitlines():
        found = re.search(r"--name=(\S+)", line)
        if found and "python3 -m ceci" in line:
            commands[found.group(1)] = line.strip()
    return commands


#: options of a stage command that name what it reads (never redirected)
_INPUT_KEYS = ("--input", "--model", "--image", "--templates", "--photometric", "--survey",
               "--metrics", "--truth", "--config", "--name")


def redirect_outputs(command: str, folder: str) -> list[str]:
    """The command's arguments with every output path (``--output*``, ``--detections``, …:
    a file option that is not an input) moved into ``folder``, so the run's own files are
    never written; ``ENV=value`` prefixes are kept as they are."""
    out = []
    for arg in shlex.split(command):
        key, _, value = arg.partition("=")
        if key.startswith("--") and key not in _INPUT_KEYS and \
                value.endswith((".hdf5", ".fits", ".pt", ".json", ".parquet")):
            arg = f"{key}={os.path.join(folder, os.path.basename(value))}"
        out.append(arg)
    return out


def measure(argv: list[str], cwd: str) -> dict:
    """Run one stage command (``ENV=... python3 -m ceci ...``) and measure it."""
    env = dict(os.environ)
    while argv and "=" in argv[0] and not argv[0].startswith("-"):
        key, value = argv.pop(0).split("=", 1)
        env[key] = value
    if argv[0].startswith("python"):
        argv[0] = sys.executable
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    log = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} failed:\n{log[-2000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def n_objects(run: str) -> int:
    """Rows of the run's EAZY estimate (one per catalog object)."""
    with h5py.File(os.path.join(run, "data", "output_estimate_eazy.hdf5"), "r") as f:
        return int(np.asarray(f["ancil"]["zmode"]).size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a finished rail-deepdisc field run")
    parser.add_argument("--output", default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    pipeline = os.path.join(args.run, "pipeline.yml")
    commands = dry_run(pipeline)
    logs = os.path.join(args.run, "logs")
    n = n_objects(args.run)
    results: dict = {"run": os.path.abspath(args.run), "objects": n, "methods": {}}
    with tempfile.TemporaryDirectory(prefix="method_costs_") as tmp:
        for method, (stage, training) in METHODS.items():
            fig = measure(redirect_outputs(commands[stage], tmp), os.getcwd())
            train = {s: stage_seconds(logs, s) for s in training}
            fig.update({"estimate_ms_per_object": round(1e3 * fig["wall_s"] / n, 3),
                        "estimate_cpu_ms_per_object": round(1e3 * fig["cpu_s"] / n, 3),
                        "training_stages_s": train,
                        "training_s": round(sum(v for v in train.values() if v), 1)})
            results["methods"][method] = fig
            print(f"{method:32s} estimate {fig['wall_s']:7.1f} s wall, {fig['cpu_s']:7.1f} s "
                  f"CPU ({fig['estimate_ms_per_object']:.2f} ms/object), peak RSS "
                  f"{fig['peak_rss_mb']:.0f} MB; training {fig['training_s']:.0f} s",
                  flush=True)
    results["shared"] = {s: stage_seconds(logs, s) for s in SHARED}
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        tmp_path = f"{args.output}.tmp"
        with open(tmp_path, "w", encoding="utf-8") as fout:
            json.dump(results, fout, indent=1)
        os.replace(tmp_path, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
