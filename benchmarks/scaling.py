"""Scale-out on one machine: MPI ranks, threads, two runs at once, DDP training, memory.

Everything runs through the user-facing paths (``python -m ceci ... --mpi`` under
``mpiexec``, ``rail-deepdisc train --nproc``), and every figure of a comparison is measured
in this one run (the cores of shared machines are noisy: compare ratios, not seconds
between runs). Prints a table (``--markdown`` for docs) and writes ``--output`` JSON.

    python benchmarks/scaling.py --output scaling.json --markdown

Measures:

* forced estimation objects/s: 1 rank x 1 thread, 1 rank x 2 threads, 2 MPI ranks x 1 thread
  (the stage's own timing line, which excludes imports and model loading);
* two estimations started at once (default threads), each against its speed alone;
* DDP training scenes/s: 1 process x 1 thread against 2 processes x 1 thread;
* peak memory (RSS) of each rank of a 2-rank forced estimation on stores of 10^4 and 10^5
  objects (synthetic scenes written directly: many small boxes per scene), which must not
  grow with the number of objects.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

RATE = re.compile(r"forced estimation: .* ([0-9.]+) s, ([0-9.]+) objects/s")
BIN = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=str(BIN)) or shutil.which("mpiexec")


def _run(cmd: list[str], env: dict | None = None, cwd: Path | None = None,
         watch_memory: bool = False) -> tuple[str, list[float]]:
    """Run a command; returns its output and the peak RSS (GB) of each of its processes that
    ran Python (the ranks), sampled every 0.1 s."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, cwd=cwd)
    peaks: dict[int, float] = {}

    def sample() -> None:
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                for p in [parent, *parent.children(recursive=True)]:
                    if "python" in p.name():
                        peaks[p.pid] = max(peaks.get(p.pid, 0.0), p.memory_info().rss / 1e9)
            except psutil.Error:
                pass
            time.sleep(0.1)

    watcher = threading.Thread(target=sample, daemon=True)
    if watch_memory:
        watcher.start()
    out, _ = proc.communicate()
    if watch_memory:
        watcher.join(timeout=1)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed:\n{out[-3000:]}")
    return out, sorted(peaks.values(), reverse=True)


def _estimate(store: Path, model: Path, out: Path, ranks: int = 1, threads: int | None = None,
              watch_memory: bool = False) -> dict:
    cmd = [sys.executable, "-m", "ceci", "rail.estimation.algos.deepdisc.DeepDiscEstimator",
           f"--input={store}", f"--model={model}", f"--output={out}",
           f"--detections={out.with_suffix('.det.hdf5')}", "--mode=forced",
           f"--name=est_{out.stem}"]
    env = {}
    if threads is not None:
        cmd.append(f"--num_threads={threads}")
        env["OMP_NUM_THREADS"] = str(threads)
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd, "--mpi"]
    text, peaks = _run(cmd, env=env, cwd=out.parent, watch_memory=watch_memory)
    match = RATE.search(text)
    if not match:
        raise RuntimeError(f"no timing line in:\n{text[-2000:]}")
    return {"seconds": float(match[1]), "objects_per_s": float(match[2]),
            "peak_rss_gb": peaks[:ranks] if watch_memory else None}


def _simulate(path: Path, scenes: int, seed: int, size: int = 128) -> None:
    _run([str(BIN / "rail-deepdisc"), "simulate", "--scenes", str(scenes), "--size", str(size),
          "--seed", str(seed), "--output", str(path), "-q"])


def _train(store: Path, model: Path, nproc: int, epochs: int) -> dict:
    _run([str(BIN / "rail-deepdisc"), "train", "--input", str(store), "--model",
                   str(model), "--backbone", "resnet18_fpn", "--epochs", str(epochs),
                   "--batch-size", "4", "--nproc", str(nproc), "--num-threads", "1",
                   "--val-fraction", "0", "--no-calibrate", "-q"])
    import torch

    meta = json.loads(torch.load(model, weights_only=True)["meta"])["training"]
    history = meta["history"][1:]  # the first epoch pays the start-up
    seconds = sum(h["seconds"] for h in history)
    return {"scenes_per_s": meta["n_train_scenes"] * len(history) / seconds,
            "epoch_seconds": [round(h["seconds"], 2) for h in meta["history"]]}


def _synthetic_store(path: Path, n_objects: int, per_scene: int = 250, size: int = 128) -> None:
    """Scenes of noise with ``per_scene`` small boxes each (memory, not photo-z quality)."""
    from rail.deepdisc.store.scenes import SceneWriter

    rng = np.random.default_rng(5)
    bands = ["jwst_f090w", "jwst_f115w", "jwst_f150w", "jwst_f200w", "jwst_f277w",
             "jwst_f335m", "jwst_f356w", "jwst_f410m", "jwst_f444w"]
    n_scenes = n_objects // per_scene
    next_id = 1
    with SceneWriter(path, bands, size, size, pixel_scale_arcsec=0.03, zeropoint_ab=31.4,
                     survey="jades", with_segmap=False) as writer:
        for _ in range(n_scenes):
            images = rng.normal(0, 1.0, (1, len(bands), size, size)).astype(np.float32)
            x = rng.uniform(4, size - 4, per_scene)
            y = rng.uniform(4, size - 4, per_scene)
            ids = np.arange(next_id, next_id + per_scene)
            next_id += per_scene
            objects = {"object_id": ids, "x": x, "y": y,
                       "bbox_x0": (x - 3).astype(int), "bbox_y0": (y - 3).astype(int),
                       "bbox_x1": (x + 4).astype(int), "bbox_y1": (y + 4).astype(int),
                       "ra": np.zeros(per_scene), "dec": np.zeros(per_scene),
                       "redshift": rng.uniform(0, 6, per_scene),
                       "redshift_kind": np.full(per_scene, b"true")}
            writer.add_scenes(images, [objects], [{"wcs": "", "x0": 0, "y0": 0, "tile": -1}],
                              ivar=np.ones_like(images))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=120, help="scenes of the test store")
    parser.add_argument("--train-scenes", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--memory-objects", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workdir", default=None, help="working directory (default: temp)")
    parser.add_argument("--output", default=None, help="JSON results")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = parser.parse_args(argv)
    if MPIEXEC is None:
        raise SystemExit("mpiexec not found: pip install 'pz-rail-deepdisc[mpi]'")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="scaling_"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"cores": len(os.sched_getaffinity(0)), "machine": os.uname().nodename}

    train_store, test_store = work / "train.hdf5", work / "test.hdf5"
    _simulate(train_store, args.train_scenes, 1)
    _simulate(test_store, args.scenes, 2)
    model = work / "model.pt"
    res["train_1x1"] = _train(train_store, model, 1, args.epochs)
    res["train_2x1"] = _train(train_store, work / "model2.pt", 2, args.epochs)
    res["ddp_speedup"] = res["train_2x1"]["scenes_per_s"] / res["train_1x1"]["scenes_per_s"]

    est = {name: _estimate(test_store, model, work / f"{name}.hdf5", ranks, threads)
           for name, ranks, threads in (("1x1", 1, 1), ("1x2", 1, 2), ("2x1", 2, 1))}
    res["forced"] = est
    res["mpi_speedup_vs_1x1"] = est["2x1"]["objects_per_s"] / est["1x1"]["objects_per_s"]
    res["mpi_vs_1x2"] = est["2x1"]["objects_per_s"] / est["1x2"]["objects_per_s"]

    alone = _estimate(test_store, model, work / "alone.hdf5")
    together: list[dict] = []
    runners = [threading.Thread(target=lambda i=i: together.append(
        _estimate(test_store, model, work / f"together{i}.hdf5"))) for i in range(2)]
    for t in runners:
        t.start()
    for t in runners:
        t.join()
    res["concurrent"] = {"alone": alone["objects_per_s"],
                         "together": [t["objects_per_s"] for t in together],
                         "fraction": [t["objects_per_s"] / alone["objects_per_s"]
                                      for t in together]}

    res["memory"] = {}
    for n in args.memory_objects:
        store = work / f"synthetic_{n}.hdf5"
        _synthetic_store(store, n)
        m = _estimate(store, model, work / f"mem_{n}.hdf5", ranks=2, threads=1,
                      watch_memory=True)
        res["memory"][n] = {"peak_rss_gb_per_rank": m["peak_rss_gb"],
                            "objects_per_s": m["objects_per_s"]}
        store.unlink()
    _report(res, args.markdown)
    if args.output:
        Path(args.output).write_text(json.dumps(res, indent=2))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return res


def _report(res: dict, markdown: bool) -> None:
    f = res["forced"]
    rows = [
        ("forced estimation, 1 rank x 1 thread", f"{f['1x1']['objects_per_s']:.1f} objects/s"),
        ("forced estimation, 1 rank x 2 threads", f"{f['1x2']['objects_per_s']:.1f} objects/s"),
        ("forced estimation, 2 MPI ranks x 1 thread",
         f"{f['2x1']['objects_per_s']:.1f} objects/s ({res['mpi_speedup_vs_1x1']:.2f}x 1x1, "
         f"{res['mpi_vs_1x2']:.2f}x 1x2)"),
        ("two estimations at once (each vs alone)",
         ", ".join(f"{x:.0%}" for x in res["concurrent"]["fraction"])),
        ("DDP training, 1 process x 1 thread", f"{res['train_1x1']['scenes_per_s']:.2f} scenes/s"),
        ("DDP training, 2 processes x 1 thread",
         f"{res['train_2x1']['scenes_per_s']:.2f} scenes/s ({res['ddp_speedup']:.2f}x)"),
    ]
    for n, m in res["memory"].items():
        rows.append((f"peak RSS per rank, 2-rank forced estimation, {int(n):,} objects",
                     ", ".join(f"{x:.2f} GB" for x in m["peak_rss_gb_per_rank"])))
    if markdown:
        print(f"| `benchmarks/scaling.py` ({res['cores']} cores) | |\n|---|---|")
        for k, v in rows:
            print(f"| {k} | {v} |")
    else:
        for k, v in rows:
            print(f"{k:60s} {v}")


if __name__ == "__main__":
    main()
