"""The Legacy-Surveys-like benchmark: bright galaxies at 0 < z < 1, DeepDISC beside EAZY and
BPZ on the same objects, and the test field as Legacy Surveys cutout files read back.

Fields from the ``legacy_dr10`` preset (DECam g r i z, 0.262"/pixel, DR10 depths, Moffat
PSFs; the ``lowz`` population of red-sequence and blue-cloud galaxies to r = 22 at z < 1.5):
a training field (seed 501) and a test field (seed 502) of ``--size``-pixel scenes holding
``--objects-per-scene`` galaxies each on average (denser than the sky, ~2.8 galaxies/arcmin^2
to r = 22, so that the compute goes into galaxies, not empty sky).

1. DeepDISC (``--backbone resnet18_fpn``) trained on the training field with every true
   redshift (a simulation pretraining for the survey; the default sizes take about 30 min
   on 2 CPU cores), forced mode on the test field;
2. the same test objects measured (ScenePhotometry, Kron) and fitted with BPZ (CWW+SB4 with
   the HDF-N prior on DECam i; the simulator's own templates = oracle) and EAZY (fsps QSF 12
   v3 + blue_sfhz_13 from ``--eazy-templates``, with and without a magnitude prior from the
   training field's SDSS/DESI-like spectroscopic targets, which also inform BPZ);
3. σ_IQR, bias, outlier rate (|Δ| > 0.15), σ_MAD, PIT and CDE loss (as docs/architecture.md
   defines them) on the bright test galaxies (true r < 21) at 0 < z < 1, and on the
   spectroscopic targets among them;
4. the test field's bright galaxies as Legacy Surveys cutout files (a ``--cutout-size``
   cube per object centred on it, nanomaggies, BANDS / WCS header, inverse-variance HDU;
   :mod:`rail.deepdisc.sim.cutout_files`) and a catalog, read back with
   ``rail.deepdisc.store.cutouts.import_cutouts``: forced photo-zs from the read-back store
   against those from the centred scenes the files were written from (boxes from the
   catalog: they must agree to float precision), and the metrics of the cutouts read with
   boxes from their own footprints (what a user without boxes gets).

    python benchmarks/legacy_surveys.py --output ls.json    # default sizes, ~40 min on 2 cores
    python benchmarks/legacy_surveys.py --quick              # a smoke test, ~6 min on 1 core

Training time: resnet18_fpn took 1.6 s per batch of four 64 x 64 x 4 scenes on one shared
core (the smoke test); 1,200 scenes (10% held out) x 5 epochs is ~1,350 batches, about 25
minutes with the 2 threads of 2 cores (~1.3x one thread on these machines, docs/architecture.md).

Fields and the model are kept in ``--workdir`` (default ``legacy_work/``) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (
    add_network_flags,
    eazy_template_files,
    fit_bpz,
    fit_eazy,
    measure_photometry,
    method_metrics,
    train_model,
)

from rail.deepdisc.net.config import EstimateConfig, TrainConfig
from rail.deepdisc.net.device import resolve_device, set_threads
from rail.deepdisc.sim.cutout_files import centred_cutouts, write_legacy_cutouts
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.sim.surveys import get_survey
from rail.deepdisc.store.cutouts import import_cutouts
from rail.deepdisc.store.provenance import package_versions
from rail.deepdisc.store.scenes import SceneStore, read_objects
from rail.deepdisc.workers import worker_count

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATES = REPO.parent / "shared" / "data" / "eazy-photoz" / "templates"
SURVEY = "legacy_dr10"
BANDS = list(get_survey(SURVEY).bands)
ZMAX = 2.0  # template fitters' redshift grid: above the population's 1.5
SUMMARY = ("sigma_iqr", "bias", "outlier_rate", "sigma_mad", "pit_ks", "cde_loss", "n")


def _legacy_field(workdir: str, name: str, n: int, seed: int, size: int, per_scene: float,
                  workers: int) -> str:
    path = os.path.join(workdir, f"{name}_{n}x{size}_o{per_scene:g}_seed{seed}.hdf5")
    if not os.path.exists(path):
        print(f"simulating {name}: {n} scenes (seed {seed})", flush=True)
        t0 = time.perf_counter()
        simulate_field(FieldSpec(survey=SURVEY, n_scenes=n, scene_size=size, seed=seed,
                                 objects_per_scene=per_scene), path, n_workers=workers,
                       progress=True)
        print(f"  {n / (time.perf_counter() - t0):.2f} scenes/s", flush=True)
    return path


def _forced(model_obj, store: str, device):
    """Forced-mode qp ensemble of every object of a store, and its seconds."""
    import qp

    from rail.deepdisc.net.density import FeatureDensity
    from rail.deepdisc.net.estimate import forced_rows
    from rail.deepdisc.net.model_file import build_from_state

    net = build_from_state(model_obj, device).eval()
    density = FeatureDensity.from_state(model_obj["feature_density"]) \
        if "feature_density" in model_obj else None
    t0 = time.perf_counter()
    with SceneStore(store) as st:
        ens = qp.concatenate([forced_rows(net, c, EstimateConfig(), device, density)[0]
                              for c in st.iter_chunks(objects_per_chunk=2000)])
    return ens, time.perf_counter() - t0


def _mixtures(ens) -> np.ndarray:
    data = ens.objdata
    data = data() if callable(data) else data
    return np.concatenate([np.asarray(data[k]) for k in ("weights", "means", "stds")], axis=1)


def _zmode(ens) -> np.ndarray:
    return np.ravel(ens.ancil["zmode"]).astype(float)


def _subset_metrics(ens, z: np.ndarray, subsets: dict[str, np.ndarray]) -> dict:
    return {name: method_metrics(ens, z, _zmode(ens), np.flatnonzero(mask))
            for name, mask in subsets.items()}


def _cutouts(test: str, objects: dict, bright: np.ndarray, ens_full, model_obj, device,
             workdir: str, size: int) -> dict:
    """The bright test galaxies as Legacy Surveys cutout files, read back, estimated."""
    t0 = time.perf_counter()
    centred = os.path.join(workdir, f"test_centred_{size}.hdf5")
    if not os.path.exists(centred):
        centred_cutouts(test, centred, size, keep=bright)
    files = write_legacy_cutouts(centred, os.path.join(workdir, f"ls_cutouts_{size}"))
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    read = os.path.join(workdir, f"ls_cutouts_{size}_read.hdf5")
    summary = import_cutouts(files.config(), files.catalog, read)
    t_read = time.perf_counter() - t0
    footprints = os.path.join(workdir, f"ls_cutouts_{size}_footprints.hdf5")
    import_cutouts(files.config(box_cols=[]), files.catalog, footprints)
    ens_centred, _ = _forced(model_obj, centred, device)
    ens_read, _ = _forced(model_obj, read, device)
    ens_foot, _ = _forced(model_obj, footprints, device)
    z = read_objects(read)["redshift"]
    every = {"bright_z<1": np.ones(z.size, bool)}
    diff = np.abs(_mixtures(ens_read) - _mixtures(ens_centred))
    return {
        "n": summary.n_cutouts, "size": size, "write_seconds": t_write,
        "read_cutouts_per_s": summary.n_cutouts / t_read,
        "max_abs_mixture_difference": float(diff.max()),
        "max_abs_zmode_difference": float(np.max(np.abs(_zmode(ens_read) -
                                                        _zmode(ens_centred)))),
        "footprint_boxes": summary.boxes,
        # the cutouts see less of their neighbourhood than the full scenes do
        "median_abs_zmode_difference_full_scenes": float(np.median(np.abs(
            _zmode(ens_read) - _zmode(ens_full)[bright]))),
        "metrics": {"centred_scenes": _subset_metrics(ens_centred, z, every),
                    "cutouts_catalog_boxes": _subset_metrics(ens_read, z, every),
                    "cutouts_footprint_boxes": _subset_metrics(ens_foot, z, every)},
        "same_rows_as_full_scenes": bool(np.array_equal(
            read_objects(read)["object_id"], objects["object_id"][bright])),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-scenes", type=int, default=1200)
    p.add_argument("--test-scenes", type=int, default=400)
    p.add_argument("--size", type=int, default=64, help="scene side (pixels)")
    p.add_argument("--objects-per-scene", type=float, default=2.5)
    p.add_argument("--epochs", type=int, default=5)
    add_network_flags(p)
    p.add_argument("--cutout-size", type=int, default=41,
                   help="side (pixels) of the Legacy Surveys cutouts of the test galaxies")
    p.add_argument("--bright-mag", type=float, default=21.0,
                   help="'bright': true (noiseless) r magnitude below this")
    p.add_argument("--device", default="auto")
    p.add_argument("--eazy-templates", default=str(DEFAULT_TEMPLATES),
                   help="EAZY's templates/ folder (an eazy-photoz checkout)")
    p.add_argument("--quick", action="store_true",
                   help="60 + 30 scenes, one epoch: a smoke test of every step")
    p.add_argument("--workdir", default="legacy_work")
    p.add_argument("--output", default=None, help="write the results as JSON")
    args = p.parse_args(argv)
    if args.quick:  # smaller defaults; options given explicitly still win
        p.set_defaults(train_scenes=60, test_scenes=30, epochs=1)
        args = p.parse_args(argv)
    threads = set_threads(args.num_threads)
    device = resolve_device(args.device)
    workers = worker_count(args.n_workers)
    os.makedirs(args.workdir, exist_ok=True)
    templates, tef = eazy_template_files(args.eazy_templates)
    t_start = time.perf_counter()
    timing: dict = {}

    t0 = time.perf_counter()
    train_store = _legacy_field(args.workdir, "train", args.train_scenes, 501, args.size,
                                args.objects_per_scene, workers)
    test = _legacy_field(args.workdir, "test", args.test_scenes, 502, args.size,
                         args.objects_per_scene, workers)
    timing["simulation_minutes"] = (time.perf_counter() - t0) / 60

    # DeepDISC: trained on the simulated training field, every true redshift
    cfg = TrainConfig.from_mapping(dict(backbone=args.backbone, epochs=args.epochs,
                                        batch_size=args.batch_size, device=args.device,
                                        num_threads=args.num_threads, seed=1))
    tag = f"{args.backbone}_e{args.epochs}_n{args.train_scenes}x{args.size}"
    trained = train_model(train_store, os.path.join(args.workdir, f"model_{tag}.pt"), cfg)
    timing["training_minutes"] = trained["minutes"]
    ens_dd, t_forced = _forced(trained["obj"], test, device)

    # template fitting on photometry of the same objects; priors from the spectra
    test_table = measure_photometry(test)
    train_objects = read_objects(train_store, ["spec_target"])
    train_table = measure_photometry(train_store)
    spec = train_objects["spec_target"] > 0
    train_table = {k: np.asarray(v)[spec] for k, v in train_table.items()}
    ensembles = {"deepdisc": ens_dd}
    with SceneStore(test) as store:
        n_obj = store.n_objects
    timing["deepdisc"] = {"forced_objects_per_s": n_obj / t_forced}
    from rail.deepdisc.spectra.template_sets import oracle_templates

    for name, tset, prior in (("bpz_cww_hdfn", "cww", "hdfn"),
                              ("bpz_oracle", oracle_templates(), "flat")):
        ens, dt, t_setup = fit_bpz(name, tset, train_table, test_table, args.workdir, workers,
                                BANDS, ref="decam_i", zmax=ZMAX, prior=prior)
        ensembles[name] = ens
        timing[name] = {"objects_per_s": n_obj / dt, "setup_seconds": t_setup}
    for name, prior in (("eazy_prior", True), ("eazy_noprior", False)):
        ens, dt, t_setup = fit_eazy(name, templates, tef, train_table, test_table,
                                 args.workdir, prior, BANDS, prior_band="decam_r", zmax=ZMAX)
        ensembles[name] = ens
        timing[name] = {"objects_per_s": n_obj / dt, "setup_seconds": t_setup}

    # metrics on the bright test galaxies at 0 < z < 1
    truth = read_objects(test)
    z = truth["redshift"]
    bright = (truth["mag_decam_r"] < args.bright_mag) & (z > 0) & (z < 1)
    subsets = {"bright_z<1": bright, "bright_z<1_spec_targets": bright &
               (truth["spec_target"] > 0), "all": np.isfinite(z)}
    results: dict = {"subsets": {s: {} for s in subsets}, "timing": timing}
    for name, ens in ensembles.items():
        for sname, m in _subset_metrics(ens, z, subsets).items():
            results["subsets"][sname][name] = m

    # the bright test galaxies as Legacy Surveys cutout files, read back
    results["cutouts"] = _cutouts(test, truth, bright, ens_dd, trained["obj"], device,
                                  args.workdir, args.cutout_size)
    timing["total_minutes"] = (time.perf_counter() - t_start) / 60
    results["config"] = {**vars(args), "device": str(device), "threads": threads,
                         "n_train_objects": int(read_objects(train_store, ["scene"])[
                             "scene"].size), "n_train_spec_targets": int(spec.sum()),
                         "versions": package_versions()}
    _print(results)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fout:
            json.dump(results, fout, indent=1, default=float)
        print(f"wrote {args.output}")
    return 0


def _print(results: dict) -> None:
    t = results["timing"]
    print(f"\nsimulation {t['simulation_minutes']:.1f} min, training "
          f"{t['training_minutes']:.1f} min, total {t['total_minutes']:.1f} min")
    head = f"{'subset':24s} {'method':13s} " + " ".join(f"{m:>10s}" for m in SUMMARY)
    print(head)
    print("-" * len(head))
    for sname, methods in results["subsets"].items():
        for name, m in methods.items():
            cells = " ".join(f"{m[k]:10.0f}" if k == "n" else f"{m[k]:10.4f}" for k in SUMMARY)
            print(f"{sname:24s} {name:13s} {cells}")
    c = results["cutouts"]
    print(f"\n{c['n']} bright test galaxies as {c['size']}-pixel Legacy Surveys cutouts, read "
          f"back at {c['read_cutouts_per_s']:.1f} cutouts/s: largest difference from the "
          f"scenes they came from {c['max_abs_mixture_difference']:.2e} (mixture "
          f"parameters), {c['max_abs_zmode_difference']:.2e} (z_mode); median |z_mode "
          f"difference| from the full scenes {c['median_abs_zmode_difference_full_scenes']:.3f}")
    for name, by in c["metrics"].items():
        m = by["bright_z<1"]
        print(f"  {name:26s} " + " ".join(
            f"{k} {m[k]:.0f}" if k == "n" else f"{k} {m[k]:.4f}" for k in SUMMARY))


if __name__ == "__main__":
    raise SystemExit(main())
