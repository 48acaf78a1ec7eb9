"""Benchmark: photometry + template fitting (BPZ, EAZY) on a simulated field.

Simulates a JADES-like (or LSST-like) field, measures it with ``ScenePhotometry`` and fits
it with pz-rail-bpz (the simulator's own templates = oracle, and CWW+SB4) and EAZY (fsps
QSF 12 v3, and + blue_sfhz_13; the package's offline sets ``sps`` and ``cww``, run as the
fallback runs them, without a template error function, and ``sps`` with EAZY's), all through
their RAIL stages, and prints objects per second and point-estimate metrics
(docs/architecture.md definitions, on ``zmode``) for the bright subsets.

    python benchmarks/template_fitting.py                  # 60 JADES scenes, ~5 min
    python benchmarks/template_fitting.py --quick          # 12 scenes, oracle limited
    python benchmarks/template_fitting.py --store s.hdf5   # an existing scene store
    python benchmarks/template_fitting.py --fits eazy_fsps,eazy_sps,eazy_cww
    python benchmarks/template_fitting.py --output results.json

EAZY's templates are read from ``--eazy-templates`` (default: ../shared/data/eazy-photoz/
templates next to the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from rail.estimation.algos.bpz_lite import BPZliteEstimator, BPZliteInformer

from rail.deepdisc.evaluate.metrics import point_metrics
from rail.deepdisc.fit.bpz import bpz_stage_configs, check_bpz_input, prepare_bpz_data
from rail.deepdisc.fit.eazy_options import EazyInputOptions
from rail.deepdisc.fit.photometry_table import FLAG_EDGE, mag_limits
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.spectra.bands import LSST_BANDS, NIRCAM_BANDS
from rail.deepdisc.spectra.template_sets import oracle_templates
from rail.deepdisc.store.scenes import read_objects
from rail.estimation.algos.eazy import EazyEstimator, EazyInformer
from rail.tools.scene_tools import ScenePhotometry

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATES = REPO.parent / "shared" / "data" / "eazy-photoz" / "templates"
#: the fits this benchmark runs (``--fits`` picks some)
FITS = ("bpz_oracle", "bpz_cww", "eazy_fsps", "eazy_fsps_sfhz", "eazy_sps", "eazy_cww",
        "eazy_sps_tef")


def _subsets(objects: dict, table: dict, band: str) -> dict[str, np.ndarray]:
    snr = objects[f"snr_{band}"]
    clean = (table["flags"] & FLAG_EDGE) == 0
    return {"snr10": snr > 10, "snr50": snr > 50, "snr50_clean": (snr > 50) & clean,
            "snr50_clean_isolated": (snr > 50) & clean & (objects["blendedness"] < 0.05)}


def _run_bpz(name, setup, table, bands, ref, zmax, workdir, prior="flat"):
    mags, errs = [f"mag_{b}" for b in bands], [f"mag_err_{b}" for b in bands]
    inform, estimate = bpz_stage_configs(setup, mags, errs, mag_limits(table, bands, 31.4),
                                         f"mag_{ref}", zmax=zmax, prior=prior)
    check_bpz_input(table, estimate, "photometry")
    inf = BPZliteInformer.make_stage(name=f"{name}_inform", model=f"{workdir}/{name}.pkl",
                                     **inform)
    inf.inform({k: v.copy() for k, v in table.items()})
    est = BPZliteEstimator.make_stage(name=name, model=inf.get_handle("model"),
                                      output=f"{workdir}/{name}.hdf5", **estimate)
    t0 = time.perf_counter()
    ens = est.estimate({k: v.copy() for k, v in table.items()}).data
    return ens, time.perf_counter() - t0


def _run_eazy(name, templates, tef, table, bands, zmax, workdir, n_workers):
    cfg = {"bands": [f"flux_{b}" for b in bands], "err_bands": [f"flux_err_{b}" for b in bands],
           "hdf5_groupname": "", "input_type": "flux"}
    t0 = time.perf_counter()
    inf = EazyInformer.make_stage(name=f"{name}_inform", model=f"{workdir}/{name}_model.hdf5",
                                  templates_file=templates, template_error_file=tef,
                                  filter_list=list(bands), zmax=zmax, training_prior=False,
                                  **cfg)
    model = inf.inform(table)
    t_model = time.perf_counter() - t0
    est = EazyEstimator.make_stage(name=name, model=model, output=f"{workdir}/{name}.hdf5",
                                   n_workers=n_workers, **cfg)
    t0 = time.perf_counter()
    ens = est.estimate(table).data
    return ens, time.perf_counter() - t0, t_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--survey", default="jades", choices=("jades", "lsst"))
    p.add_argument("--scenes", type=int, default=60)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--store", default=None, help="use this scene store instead of simulating")
    p.add_argument("--method", default="kron", choices=("kron", "aperture"))
    p.add_argument("--workers", type=int, default=2,
                   help="processes for simulation and BPZ's AB files")
    EazyInputOptions.add_argument(p, "n_workers", flag="--eazy-workers")
    p.add_argument("--eazy-templates", default=str(DEFAULT_TEMPLATES))
    p.add_argument("--quick", action="store_true",
                   help="12 scenes; oracle BPZ only with the entries present in the field")
    p.add_argument("--fits", default=",".join(FITS),
                   help=f"comma-separated fits to run, of {', '.join(FITS)}")
    p.add_argument("--workdir", default=None, help="keep intermediate files here")
    p.add_argument("--output", default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.scenes = min(args.scenes, 12)
    fits = [f.strip() for f in args.fits.split(",") if f.strip()]
    if unknown := sorted(set(fits) - set(FITS)):
        p.error(f"unknown fits {unknown}; known: {', '.join(FITS)}")

    bands = list(NIRCAM_BANDS if args.survey == "jades" else LSST_BANDS)
    ref = "jwst_f200w" if args.survey == "jades" else "lsst_i"
    zmax = 12.0 if args.survey == "jades" else 6.0
    workdir = args.workdir or tempfile.mkdtemp(prefix="template_fitting_")
    os.makedirs(workdir, exist_ok=True)
    results: dict = {"config": vars(args) | {"workdir": workdir}, "timing": {}, "subsets": {}}

    store = args.store
    if store is None:
        store = os.path.join(workdir, f"{args.survey}.hdf5")
        t0 = time.perf_counter()
        simulate_field(FieldSpec(survey=args.survey, n_scenes=args.scenes,
                                 scene_size=args.size, seed=args.seed), store,
                       n_workers=args.workers, progress=False)
        results["timing"]["simulate_s"] = time.perf_counter() - t0
    objects = read_objects(store)
    n = objects["object_id"].size
    print(f"scene store {store}: {n} objects")

    stage = ScenePhotometry.make_stage(name="bench_phot", method=args.method,
                                       output=f"{workdir}/photometry.hdf5")
    t0 = time.perf_counter()
    table = stage.measure(store).data
    dt = time.perf_counter() - t0
    results["timing"]["photometry"] = {"seconds": dt, "objects_per_s": n / dt}

    t_tz = {}
    ensembles = {}
    # BPZ, the simulator's own templates (oracle) and CWW+SB4
    entries = objects["sed_index"] if args.quick and "sed_index" in objects else None
    for name, tset in (("bpz_oracle", "oracle"), ("bpz_cww", "cww")):
        if name not in fits:
            continue
        if tset == "oracle":
            tset = oracle_templates(entries=entries)
        t0 = time.perf_counter()
        setup = prepare_bpz_data(f"{workdir}/{name}_data", tset, bands, madau=True,
                                 n_workers=args.workers)
        t_setup = time.perf_counter() - t0
        ens, dt = _run_bpz(name, setup, table, bands, ref, zmax, workdir)
        ensembles[name] = ens
        t_tz[name] = {"setup_s": t_setup, "seconds": dt, "objects_per_s": n / dt,
                      "templates": len(setup.templates)}
    # EAZY, fsps QSF 12 v3 (+ blue_sfhz_13) with its template error function; the built-in
    # sets as the offline fallback runs them (no eazy-photoz checkout: no template error)
    tdir = Path(args.eazy_templates)
    fsps = tdir / "fsps_full" / "tweak_fsps_QSF_12_v3.param"
    sfhz = tdir / "sfhz" / "blue_sfhz_13.param"
    fsps_tef = str(tdir / "TEMPLATE_ERROR.eazy_v1.0")
    for name, spec, tef in (("eazy_fsps", str(fsps), fsps_tef),
                            ("eazy_fsps_sfhz", f"{fsps},{sfhz}", fsps_tef),
                            ("eazy_sps", "sps", ""), ("eazy_cww", "cww", ""),
                            ("eazy_sps_tef", "sps", fsps_tef)):
        if name not in fits:
            continue
        ens, dt, t_model = _run_eazy(name, spec, tef, table, bands, zmax, workdir,
                                     args.n_workers)
        ensembles[name] = ens
        t_tz[name] = {"setup_s": t_model, "seconds": dt, "objects_per_s": n / dt}
    results["timing"].update(t_tz)

    subsets = _subsets(objects, table, ref)
    z = objects["redshift"]
    print(f"\nphotometry ({args.method}): {results['timing']['photometry']['objects_per_s']:.0f}"
          " objects/s")
    print(f"{'method':16s} {'obj/s':>8s} {'setup s':>8s}  " + "  ".join(
        f"{s:>28s}" for s in subsets))
    print(f"{'':16s} {'':8s} {'':8s}  " + "  ".join(
        f"{'n  sig_IQR   bias  outl':>28s}" for _ in subsets))
    for name, ens in ensembles.items():
        zmode = np.squeeze(ens.ancil["zmode"])
        results["subsets"].setdefault(name, {})
        cells = []
        for sname, mask in subsets.items():
            m = point_metrics(zmode[mask], z[mask])
            results["subsets"][name][sname] = m
            cells.append(f"{m['n']:4d} {m['sigma_iqr']:7.4f} {m['bias']:+7.4f} "
                         f"{m['outlier_rate']:5.3f}")
        t = t_tz[name]
        print(f"{name:16s} {t['objects_per_s']:8.1f} {t['setup_s']:8.1f}  " + "  ".join(
            f"{c:>28s}" for c in cells))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fout:
            json.dump(results, fout, indent=2, default=float)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
