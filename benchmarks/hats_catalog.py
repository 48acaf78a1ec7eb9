"""Benchmark the HATS photo-z catalog: wall time and peak memory of converting a survey-sized
ensemble (1,000,000 rows by default) into a HATS catalog.

Usage::

    taskset -c 1 python benchmarks/hats_catalog.py --workdir DIR [--rows 1000000]
        [--parts 10] [--components 5] [--patch-deg 2.0] [--workers 1] [--keep]

One child process writes ``parts`` qp ensemble files (HDF5, as the estimator's MPI ranks or
several fields give them) of Gaussian-mixture PDFs with DeepDISC's ancillary columns
(ids, positions uniform over a ``patch-deg`` x ``patch-deg`` patch of sky at RA 150, Dec 2,
score, S/N, blendedness, the five quality flags), each part made and written on its own.
Another child converts them with ``rail-deepdisc catalog --pdfs PARTS... --output
CAT.hats`` (the ensembles read a chunk at a time, summarised, written as Parquet parts,
partitioned by hats-import with a local Dask client whose workers are threads of that
process) and reports its wall and CPU time and peak RSS: ``getrusage`` of itself and of its
children, and the largest sum of RSS over its process tree sampled every 0.1 s with psutil.
The parent imports only the standard library, because Linux carries a process's memory
high-water mark over ``fork`` + ``exec``; it reads the catalog's ``hats.properties`` (rows,
order) and counts its partitions. Everything written is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

#: the issue's bound on the conversion's peak memory
RSS_LIMIT_GB = 2.0


def write_only(job: dict) -> None:
    """Child process: write the ensemble parts, print a JSON line."""
    import numpy as np
    import qp

    rng = np.random.default_rng(job["seed"])
    rows, parts, k = job["rows"], job["parts"], job["components"]
    edges = np.linspace(0, rows, parts + 1).astype(int)
    cos_dec = np.cos(np.radians(2.0))
    paths = []
    t0 = time.time()
    for i in range(parts):
        n = edges[i + 1] - edges[i]
        means = np.clip(rng.uniform(0, 4, (n, 1)) + rng.normal(0, 0.3, (n, k)), 0, 8)
        stds = (1 + means) * rng.uniform(0.02, 0.12, (n, k))
        ancil = {"object_id": np.arange(edges[i], edges[i + 1], dtype=np.int64),
                 "ra": 150.0 + rng.uniform(0, job["patch_deg"], n) / cos_dec,
                 "dec": 2.0 + rng.uniform(0, job["patch_deg"], n),
                 "scene": np.full(n, i, np.int64), "x": rng.uniform(0, 256, n),
                 "y": rng.uniform(0, 256, n), "score": rng.uniform(0, 1, n),
                 "snr": rng.lognormal(2, 1, n), "blend": rng.uniform(0, 0.5, n)}
        for flag in ("flag_low_snr", "flag_ood", "flag_blend", "flag_edge", "flag_low_score"):
            ancil[flag] = (rng.uniform(0, 1, n) < 0.1).astype(np.int8)
        ens = qp.Ensemble(qp.mixmod, data={"weights": rng.dirichlet(np.ones(k), n),
                                           "means": means, "stds": stds}, ancil=ancil)
        path = Path(job["workdir"]) / f"pz_part{i:03d}.hdf5"
        ens.write_to(str(path))
        paths.append(str(path))
    print(json.dumps({"paths": paths, "write_s": time.time() - t0}))


def convert_only(job: dict) -> None:
    """Child process: convert the parts into a HATS catalog, print a JSON line."""
    import threading

    import psutil

    from rail.deepdisc.cli import main

    me = psutil.Process()
    peak_tree = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak_tree[0] = max(peak_tree[0], total)
            done.wait(0.1)

    watcher = threading.Thread(target=sample, daemon=True)
    rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    watcher.start()
    t0, cpu0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    status = main(["catalog", "--pdfs", *job["paths"], "--method", "benchmark",
                   "--hats-workers", str(job["workers"]), "--output", job["output"], "-q"])
    wall = time.time() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    done.set()
    watcher.join()
    print(json.dumps({
        "status": status, "wall_s": wall, "cpu_s": cpu, "rss_after_imports_kib": rss_imports,
        "peak_rss_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "peak_rss_children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "peak_tree_rss_bytes": peak_tree[0]}))


def _child(mode: str, job: dict) -> dict:
    res = subprocess.run([sys.executable, __file__, mode, json.dumps(job)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{mode} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _properties(catalog: Path) -> dict[str, str]:
    props = {}
    for line in (catalog / "hats.properties").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("--write-only", "--convert-only"):
        job = json.loads(sys.argv[2])
        (write_only if sys.argv[1] == "--write-only" else convert_only)(job)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="scratch folder")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=10, help="ensemble files")
    parser.add_argument("--components", type=int, default=5, help="mixture components")
    parser.add_argument("--patch-deg", type=float, default=2.0, help="side of the sky patch")
    parser.add_argument("--workers", type=int, default=1, help="Dask threads of the import")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep what was written")
    args = parser.parse_args()
    work = Path(args.workdir) / f"hats_catalog_{os.getpid()}"
    work.mkdir(parents=True)
    try:
        job = {"workdir": str(work), "rows": args.rows, "parts": args.parts,
               "components": args.components, "patch_deg": args.patch_deg, "seed": args.seed}
        written = _child("--write-only", job)
        output = work / "photoz.hats"
        figures = _child("--convert-only", {"paths": written["paths"], "output": str(output),
                                            "workers": args.workers})
        props = _properties(output)
        partitions = len(list((output / "dataset").rglob("Npix=*")))
        peak_kib = max(figures["peak_rss_self_kib"], figures["peak_rss_children_kib"])
        peak_gb = peak_kib * 1024 / 1e9
        tree_gb = figures["peak_tree_rss_bytes"] / 1e9
        print(f"ensemble: {args.rows:,} rows of {args.components}-component mixtures in "
              f"{args.parts} HDF5 files over {args.patch_deg:g} x {args.patch_deg:g} deg "
              f"(written in {written['write_s']:.1f} s)")
        print(f"HATS catalog: {int(props['hats_nrows']):,} rows, "
              f"{partitions} partitions (max order {props.get('hats_order')}, "
              f"at most {props.get('hats_max_rows')} rows each)")
        print(f"conversion wall time: {figures['wall_s']:.1f} s "
              f"({args.rows / figures['wall_s']:,.0f} rows/s); CPU time {figures['cpu_s']:.1f} s "
              f"(a busy shared core makes the wall time longer)")
        print(f"peak RSS of the converting process: {peak_gb:.2f} GB (getrusage; after "
              f"imports {figures['rss_after_imports_kib'] * 1024 / 1e9:.2f} GB); its process "
              f"tree, sampled: {tree_gb:.2f} GB")
        verdict = "within" if max(peak_gb, tree_gb) <= RSS_LIMIT_GB else "ABOVE"
        print(f"{verdict} the {RSS_LIMIT_GB:g} GB bound")
        if figures["status"] != 0:
            sys.exit("the conversion failed")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
