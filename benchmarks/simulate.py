"""Benchmark the simulator: population draw and scene rendering speed, peak memory.

Usage::

    python benchmarks/simulate.py [--survey jades] [--scenes 200] [--size 128] [--workers N]
                                  [--realism off|full]

Prints galaxies/s for the population, scenes/s for rendering (all cores by default) and the
peak resident memory of the main process and of the rendering workers.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

from rail.deepdisc.sim.field import FieldSpec
from rail.deepdisc.sim.population import sample_population
from rail.deepdisc.sim.render import plan_scenes, render_catalog
from rail.deepdisc.workers import usable_cores


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux reports kB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--survey", default="jades")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--objects-per-scene", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--realism", default="off", choices=("off", "full"),
                        help="realism preset (full: lines, clumps, stars, PSF jitter, masks...)")
    args = parser.parse_args()

    spec = FieldSpec(survey=args.survey, n_scenes=args.scenes, scene_size=args.size,
                     seed=args.seed, objects_per_scene=args.objects_per_scene,
                     realism=args.realism)
    spec.validate()
    workers = args.workers or usable_cores()
    n_gal = plan_scenes(spec).n_needed

    t0 = time.perf_counter()
    catalog = sample_population(n_gal, spec, seed=spec.seed)
    catalog.pop("_meta")
    t_pop = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.hdf5")
        t0 = time.perf_counter()
        render_catalog(catalog, spec, out, n_workers=workers, progress=False)
        t_render = time.perf_counter() - t0
        size_mb = os.path.getsize(out) / 2**20

    bands = len(spec.preset.bands)
    print(f"survey {args.survey}, realism {args.realism}: {spec.n_scenes} scenes of "
          f"{args.size}x{args.size}x{bands}, "
          f"{args.objects_per_scene:g} objects/scene, {n_gal} galaxies, {workers} worker(s), "
          f"{os.cpu_count()} cores")
    print(f"population : {t_pop:7.2f} s  {n_gal / t_pop:9.0f} galaxies/s")
    print(f"rendering  : {t_render:7.2f} s  {spec.n_scenes / t_render:9.2f} scenes/s "
          f"(process start-up included)")
    print(f"store size : {size_mb:7.1f} MiB")
    print(f"peak RSS   : main {_peak_mb(resource.RUSAGE_SELF):.0f} MiB, "
          f"largest worker {_peak_mb(resource.RUSAGE_CHILDREN):.0f} MiB")


if __name__ == "__main__":
    main()
