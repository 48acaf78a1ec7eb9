"""Benchmark MosaicTiler on a survey-sized field: wall time and peak memory of tiling.

Usage::

    python benchmarks/mosaic_tiling.py --workdir DIR [--size 20000] [--bands 9]
        [--objects 100000] [--error-bands 1] [--tile-size 256] [--overlap 32] [--keep]

Writes a synthetic ``size`` x ``size`` x ``bands`` field under ``DIR/mosaic_tiling_<pid>/``
(:mod:`rail.deepdisc.sim.large_field`: one FITS file per band, ``SCI`` in MJy/sr, an ``ERR``
extension for the first ``error-bands`` bands, a rotated TAN WCS, a NaN border, streamed in
row blocks) and its catalog in one child process, then tiles it into a scene store in
another (this script with ``--write-only`` / ``--tile-only``). The parent imports nothing
beyond the standard library, because Linux carries a process's memory high-water mark over
``fork`` + ``exec``: the peak RSS the tiling child reports (``resource.getrusage`` of itself,
and of its children if any; ``VmHWM`` beside it) is then that of tiling alone. The
full-size field needs about 14.4 GB (+1.6 GB per error band) and the store about as much
again; free space is checked first. Everything written is removed at the end unless
``--keep``.
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

#: the issue's bound on the tiler's peak memory
RSS_LIMIT_GB = 3.0


def _gb(n_bytes: float) -> float:
    return n_bytes / 1e9


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _vm_hwm_kib() -> int | None:
    """Peak RSS of this process's memory (Linux ``VmHWM``), or None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return None


def write_only(job: dict) -> None:
    """Child process: check the free disk space, write the field, print a JSON line."""
    from rail.deepdisc.sim.large_field import LargeFieldSpec, write_large_field
    from rail.deepdisc.spectra.bands import NIRCAM_BANDS
    from rail.deepdisc.store.tiling import TileGrid

    spec = LargeFieldSpec(shape=(job["size"], job["size"]), bands=NIRCAM_BANDS[:job["bands"]],
                          n_objects=job["objects"], error_bands=job["error_bands"],
                          seed=job["seed"])
    spec.validate()
    n_tiles = len(TileGrid(job["size"], job["size"], job["tile_size"], job["overlap"]))
    # the store's images (the ivar of constant noise compresses away)
    store = int(1.02 * n_tiles * job["bands"] * job["tile_size"] ** 2 * 4)
    free = shutil.disk_usage(job["dir"]).free
    if spec.nbytes() + store + 1e9 > free:
        sys.exit(f"mosaic_tiling: needs about {_gb(spec.nbytes() + store):.1f} GB in "
                 f"{job['dir']}, {_gb(free):.1f} GB free")
    start = time.perf_counter()
    field = write_large_field(spec, Path(job["dir"]) / "field")
    print(json.dumps({"images": field.images, "errors": field.errors,
                      "catalog": field.catalog, "nbytes": spec.nbytes(),
                      "write_s": time.perf_counter() - start}))


def tile_only(job: dict) -> None:
    """Child process: tile the field and print a JSON line of figures."""
    from rail.deepdisc.store.catalogs import CatalogColumns
    from rail.deepdisc.store.mosaic import TilerConfig, tile_mosaic

    rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = TilerConfig(images=job["images"], errors=job["errors"],
                      columns=CatalogColumns(id_col="id", size_col="size"),
                      tile_size=job["tile_size"], overlap=job["overlap"])
    start = time.perf_counter()
    summary = tile_mosaic(cfg, job["catalog"], job["output"])
    wall = time.perf_counter() - start
    print(json.dumps({
        "wall_s": wall, "rss_after_imports_kib": rss_imports,
        "peak_rss_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "peak_rss_children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "vm_hwm_kib": _vm_hwm_kib(), "summary": summary.as_dict()}))


def _child(option: str, job: dict) -> tuple[dict, float]:
    """Run this script with ``option`` and ``job``; its JSON line and its wall time."""
    start = time.perf_counter()
    res = subprocess.run([sys.executable, __file__, option, json.dumps(job)],
                         capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"mosaic_tiling {option} failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", help="where the field and the store are written (in a "
                                          "subfolder made and removed here)")
    parser.add_argument("--size", type=int, default=20000, help="mosaic side (pixels)")
    parser.add_argument("--bands", type=int, default=9, help="NIRCam bands, 1..9")
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--error-bands", type=int, default=1,
                        help="bands that also get an ERR extension")
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the field and the store")
    parser.add_argument("--write-only", help=argparse.SUPPRESS)
    parser.add_argument("--tile-only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_only:
        write_only(json.loads(args.write_only))
        return
    if args.tile_only:
        tile_only(json.loads(args.tile_only))
        return
    if not args.workdir:
        parser.error("--workdir is required")
    if not 1 <= args.bands <= 9:
        parser.error("--bands must be in 1..9 (the NIRCam bands)")

    work = Path(args.workdir) / f"mosaic_tiling_{os.getpid()}"
    work.mkdir(parents=True)
    try:
        print(f"field: {args.size} x {args.size} pixels x {args.bands} bands "
              f"({args.error_bands} with ERR), {args.objects} objects, in {work}", flush=True)
        field, _ = _child("--write-only", {
            "dir": str(work), "size": args.size, "bands": args.bands,
            "objects": args.objects, "error_bands": args.error_bands, "seed": args.seed,
            "tile_size": args.tile_size, "overlap": args.overlap})
        nbytes = field["nbytes"]
        print(f"written: {_gb(nbytes):.1f} GB of pixels in {field['write_s']:.1f} s",
              flush=True)
        job = {"images": field["images"], "errors": field["errors"],
               "catalog": field["catalog"], "tile_size": args.tile_size,
               "overlap": args.overlap, "output": str(work / "tiles.hdf5")}
        figures, outer_wall = _child("--tile-only", job)
        s = figures["summary"]
        peak_gb = max(figures["peak_rss_self_kib"],
                      figures["peak_rss_children_kib"]) * 1024 / 1e9
        hwm = figures["vm_hwm_kib"]
        hwm_text = "n/a" if hwm is None else f"{hwm * 1024 / 1e9:.2f} GB"
        store = _gb(os.path.getsize(job["output"]))
        print(f"tiles: {s['n_tiles_written']} of {s['n_tiles_grid']} written "
              f"({args.tile_size} px, overlap {args.overlap}); objects listed "
              f"{s['n_listed']} of {s['n_catalog']} ({s['n_catalog'] - s['n_inside']} "
              f"outside, {s['n_no_data']} on blank pixels); store {store:.1f} GB")
        print(f"tiling wall time: {figures['wall_s']:.1f} s (process {outer_wall:.1f} s, "
              f"{_gb(nbytes) / figures['wall_s'] * 1e3:.0f} MB/s of input)")
        print(f"peak RSS of the tiling process: {peak_gb:.2f} GB (getrusage; VmHWM "
              f"{hwm_text}; after imports "
              f"{figures['rss_after_imports_kib'] * 1024 / 1e9:.2f} GB; limit "
              f"{RSS_LIMIT_GB:.0f} GB: {'ok' if peak_gb <= RSS_LIMIT_GB else 'EXCEEDED'})")
        if args.keep:
            print(f"kept {work} ({_gb(_tree_bytes(work)):.1f} GB)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
