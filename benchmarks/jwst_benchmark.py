"""The JWST-like benchmark: DeepDISC against BPZ and EAZY on the same simulated objects.

A training field (default 1,000 JADES-like scenes, seed 101) with spectroscopic-like labels
(a realistic, incomplete, brighter subset keeps its redshift, the rest only trains detection)
and a separate test field (200 scenes, seed 202, every true redshift kept for evaluation).
DeepDISC is pre-trained in domain on a larger simulated field with every true redshift
(default 2,000 scenes, seed 303; ``--pretrain-scenes 0`` trains from scratch), fine-tuned on
the labelled training field and run in forced and detect mode on the test field; the same
test objects are measured (ScenePhotometry) and fitted with BPZ (the simulator's own
templates = oracle, and CWW+SB4) and EAZY (fsps QSF 12 v3 + blue_sfhz_13, with and without a
magnitude prior from the labelled training objects). One table is printed: σ_IQR, bias,
outlier rate, σ_MAD, PIT KS/CvM, CDE loss per method for all objects, bright ones (F200W
S/N > 10), blended and isolated bright ones (true blendedness above/below 0.1); completeness
and purity; objects/s; training minutes; DeepDISC's metrics by quality flag.

    python benchmarks/jwst_benchmark.py --output results.json          # default, CPU
    python benchmarks/jwst_benchmark.py --quick                         # ~10 minutes
    python benchmarks/jwst_benchmark.py --device cuda --train-scenes 4000 --epochs 30
    python benchmarks/jwst_benchmark.py --backbone swin_t_fpn           # a study
    python benchmarks/jwst_benchmark.py --pretrain-scenes 0 --epochs 20  # from scratch
    python benchmarks/jwst_benchmark.py --template-bands nircam+hst     # unmatched bands

Simulated fields, the labelled store and models are kept in ``--workdir`` (default
``benchmark_work/``) and reused when a run asks for the same ones again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from rail.deepdisc.evaluate.matching import completeness_purity
from rail.deepdisc.net.config import TrainConfig
from rail.deepdisc.net.device import resolve_device, set_threads
from rail.deepdisc.sim.labels import (
    SpecSelection,
    relabel_store,
    selection_record,
    spectroscopic_subset,
)
from rail.deepdisc.spectra.bands import NIRCAM_BANDS
from rail.deepdisc.store.provenance import package_versions
from rail.deepdisc.store.scenes import SceneStore, read_objects
from rail.deepdisc.workers import worker_count

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (
    DEFAULT_TEMPLATES,
    METRICS,
    add_network_flags,
    deepdisc_forced,
    eazy_template_files,
    fit_bpz,
    fit_eazy,
    labelled_rows,
    measure_photometry,
    method_metrics,
    simulated_store,
    train_model,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-scenes", type=int, default=1000)
    p.add_argument("--test-scenes", type=int, default=200)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=5,
                   help="epochs on the labelled training field (fine-tuning after pretraining)")
    add_network_flags(p)
    p.add_argument("--pretrain-scenes", type=int, default=2000,
                   help="pre-train on a simulated field of this many scenes with every true "
                        "redshift, then fine-tune on the labelled training field (0: train "
                        "from scratch on the labelled field)")
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--finetune-lr", type=float, default=3.0e-4,
                   help="learning rate of the fine-tuning after pretraining")
    p.add_argument("--template-bands", default="nircam", choices=("nircam", "nircam+hst"),
                   help="bands given to BPZ and EAZY: NIRCam only (matched to the images "
                        "DeepDISC sees) or with HST ACS photometry as real catalogs have")
    p.add_argument("--spec-mag50", type=float, default=27.5,
                   help="F200W magnitude where the spectroscopic success rate halves")
    p.add_argument("--device", default="auto")
    p.add_argument("--eazy-templates", default=str(DEFAULT_TEMPLATES))
    p.add_argument("--quick", action="store_true",
                   help="150 + 50 scenes (pretraining on 300, 6 + 4 epochs): about 10 minutes "
                        "on 2 CPU cores")
    p.add_argument("--workdir", default="benchmark_work")
    p.add_argument("--output", default=None, help="write the results as JSON")
    p.add_argument("--markdown", default=None, help="also write the tables as Markdown")
    args = p.parse_args(argv)
    if args.quick:  # smaller defaults; options given explicitly still win
        p.set_defaults(train_scenes=150, test_scenes=50, epochs=4, pretrain_scenes=300,
                       pretrain_epochs=6)
        args = p.parse_args(argv)
    threads = set_threads(args.num_threads)
    device = resolve_device(args.device)
    workers = worker_count(args.n_workers)
    os.makedirs(args.workdir, exist_ok=True)
    templates, tef = eazy_template_files(args.eazy_templates)
    t_start = time.perf_counter()
    timing: dict = {}

    # fields: training (labelled subset), test (all true redshifts)
    t0 = time.perf_counter()
    train_all = simulated_store(args.workdir, "train", args.train_scenes, 101, args.size, workers)
    test = simulated_store(args.workdir, "test", args.test_scenes, 202, args.size, workers)
    timing["simulation_minutes"] = (time.perf_counter() - t0) / 60
    selection = SpecSelection(mag_50=args.spec_mag50)
    objects = read_objects(train_all)
    keep = spectroscopic_subset(objects, selection, seed=101)
    labelled = os.path.join(args.workdir, f"train_{args.train_scenes}_spec{args.spec_mag50}.hdf5")
    if not os.path.exists(labelled):
        relabel_store(train_all, labelled, keep)
    print(f"training field: {keep.size} objects, {keep.sum()} with a spectroscopic redshift",
          flush=True)

    # DeepDISC: optional in-domain pre-training, then training on the labelled field
    cfg = TrainConfig.from_mapping(dict(backbone=args.backbone, epochs=args.epochs,
                                        batch_size=args.batch_size, device=args.device,
                                        num_threads=args.num_threads, seed=1))
    tag = f"{args.backbone}_e{args.epochs}_n{args.train_scenes}_spec{args.spec_mag50}"
    init, pre_minutes = None, 0.0
    if args.pretrain_scenes:
        pre_store = simulated_store(args.workdir, "pretrain", args.pretrain_scenes, 303, args.size,
                           workers)
        init = os.path.join(args.workdir, f"pretrain_{args.backbone}_e{args.pretrain_epochs}_"
                            f"n{args.pretrain_scenes}.pt")
        pre_cfg = replace(cfg, epochs=args.pretrain_epochs)
        pre_minutes = train_model(pre_store, init, pre_cfg)["minutes"]
        tag += f"_pre{args.pretrain_scenes}e{args.pretrain_epochs}_lr{args.finetune_lr:g}"
        cfg = replace(cfg, learning_rate=args.finetune_lr, freeze_backbone_epochs=1)
    trained = train_model(labelled, os.path.join(args.workdir, f"model_{tag}.pt"), cfg, init)
    timing["training_minutes"] = trained["minutes"] + pre_minutes
    timing["pretraining_minutes"] = pre_minutes
    ens_dd, det, t_forced, t_detect = deepdisc_forced(trained["obj"], test, device,
                                                args.batch_size)

    # template fitting on photometry of the same objects (+ HST catalog photometry)
    test_table = measure_photometry(test)
    train_table = measure_photometry(labelled)
    fit_bands = list(NIRCAM_BANDS)
    if args.template_bands == "nircam+hst":
        from rail.deepdisc.sim.catalog_photometry import HST_DEPTHS, catalog_photometry
        from rail.deepdisc.spectra.bands import HST_ACS_BANDS

        # HST fluxes from the true redshifts (the labelled store hides most of them)
        for table, store, seed in ((test_table, test, 202), (train_table, train_all, 101)):
            table.update(catalog_photometry(read_objects(store), HST_ACS_BANDS, HST_DEPTHS,
                                            seed))
        fit_bands = [*HST_ACS_BANDS, *NIRCAM_BANDS]
    train_table = labelled_rows(train_table)
    ensembles = {"deepdisc": ens_dd}
    with SceneStore(test) as store:
        n_obj = store.n_objects
    timing["deepdisc"] = {"forced_objects_per_s": n_obj / t_forced,
                          "detect_objects_per_s": n_obj / t_detect}
    from rail.deepdisc.spectra.template_sets import oracle_templates

    for name, tset in (("bpz_oracle", oracle_templates()), ("bpz_cww", "cww")):
        name = name if args.template_bands == "nircam" else f"{name}_hst"
        ens, dt, t_setup = fit_bpz(name, tset, train_table, test_table, args.workdir, workers,
                                fit_bands)
        ensembles[name] = ens
        timing[name] = {"objects_per_s": n_obj / dt, "setup_seconds": t_setup}
    for name, prior in (("eazy", True), ("eazy_noprior", False)):
        name = name if args.template_bands == "nircam" else f"{name}_hst"
        ens, dt, t_setup = fit_eazy(name, templates, tef, train_table, test_table,
                                 args.workdir, prior, fit_bands)
        ensembles[name] = ens
        timing[name] = {"objects_per_s": n_obj / dt, "setup_seconds": t_setup}

    # metrics
    truth = read_objects(test)
    z = truth["redshift"]
    bright = truth["snr_jwst_f200w"] > 10
    blended = truth["blendedness"] > 0.1
    subsets = {"all": np.ones(z.size, bool), "snr10": bright, "blended": bright & blended,
               "isolated": bright & ~blended}
    results: dict = {"subsets": {}, "detection": {}, "flags": {}, "timing": timing}
    for sname, mask in subsets.items():
        rows = np.flatnonzero(mask & np.isfinite(z))
        results["subsets"][sname] = {
            name: method_metrics(ens, z, np.ravel(ens.ancil["zmode"]).astype(float), rows)
            for name, ens in ensembles.items()}
    order = np.argsort(truth["object_id"])
    pos = np.searchsorted(truth["object_id"][order], det["object_id"])
    pos = np.clip(pos, 0, z.size - 1)
    rows = np.where((det["object_id"] >= 0) & (truth["object_id"][order][pos] ==
                                               det["object_id"]), order[pos], -1)
    results["detection"] = completeness_purity(rows, det["score"], z.size, bright)
    zdd = np.ravel(ens_dd.ancil["zmode"]).astype(float)
    for sname in ("all", "snr10"):
        results["flags"][sname] = {}
        for flag in ("flag_ood", "flag_blend", "flag_low_snr", "flag_edge"):
            values = np.ravel(ens_dd.ancil[flag]).astype(bool)
            results["flags"][sname][flag] = {
                str(v): method_metrics(ens_dd, z, zdd,
                                       np.flatnonzero(subsets[sname] & (values == v)))
                for v in (False, True)}
    timing["total_minutes"] = (time.perf_counter() - t_start) / 60
    results["config"] = {**vars(args), "spec_selection": selection_record(selection, keep),
                         "device": str(device), "threads": threads,
                         "versions": package_versions()}
    _print(results)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fout:
            json.dump(results, fout, indent=1, default=float)
        print(f"wrote {args.output}")
    if args.markdown:
        Path(args.markdown).write_text(markdown(results), encoding="utf-8")
        print(f"wrote {args.markdown}")
    return 0


def markdown(results: dict) -> str:
    """The benchmark's tables in Markdown (metrics per subset and method, flags, timing)."""
    heads = ("N", "σ_IQR", "bias", "η", "σ_MAD", "PIT KS", "PIT CvM", "CDE loss")
    keys = ("n", "sigma_iqr", "bias", "outlier_rate", "sigma_mad", "pit_ks", "pit_cvm",
            "cde_loss")

    def row(label: str, m: dict) -> str:
        cells = [f"{m[k]:.0f}" if k == "n" else f"{m[k]:+.3f}" if k == "bias" else
                 f"{m[k]:.2f}" if k in ("pit_cvm", "cde_loss") else f"{m[k]:.3f}"
                 for k in keys]
        return f"| {label} | " + " | ".join(cells).replace("nan", "–") + " |"

    def table(label: str, rows: dict) -> list[str]:
        return [f"| {label} | " + " | ".join(heads) + " |",
                "|---|" + "---:|" * len(heads), *(row(k, m) for k, m in rows.items()), ""]

    titles = {"all": "All objects", "snr10": "F200W S/N > 10", "blended": "S/N > 10, blended",
              "isolated": "S/N > 10, isolated"}
    out: list[str] = []
    for sname, methods in results["subsets"].items():
        out += [f"#### {titles.get(sname, sname)}", "", *table("method", methods)]
    d = results["detection"]
    out += [f"Detect mode: completeness {d['completeness']:.3f} of the F200W S/N > 10 objects, "
            f"purity {d['purity']:.3f}.", ""]
    for sname, flags in results["flags"].items():
        rows = {f"{flag}={int(v == 'True')}": m for flag, byv in flags.items()
                for v, m in byv.items()}
        out += [f"#### DeepDISC by quality flag ({titles.get(sname, sname)})", "",
                *table("subset", rows)]
    return "\n".join(out)


def _print(results: dict) -> None:
    t = results["timing"]
    print(f"\ntraining {t['training_minutes']:.1f} min; detection (F200W S/N > 10): "
          f"completeness {results['detection']['completeness']:.3f}, "
          f"purity {results['detection']['purity']:.3f}")
    head = f"{'subset':9s} {'method':13s} " + " ".join(f"{m:>9s}" for m in METRICS) + \
        f" {'obj/s':>8s}"
    print(head)
    print("-" * len(head))
    for sname, methods in results["subsets"].items():
        for name, m in methods.items():
            speed = t[name].get("objects_per_s", t[name].get("forced_objects_per_s"))
            cells = " ".join(f"{m[k]:9.0f}" if k == "n" else f"{m[k]:9.4f}" for k in METRICS)
            print(f"{sname:9s} {name:13s} {cells} {speed:8.1f}")
    for sname, flags in results["flags"].items():
        print(f"\nDeepDISC ({sname}) by quality flag: flag=0 | flag=1 "
              "(sigma_iqr, outlier rate, PIT KS, n)")
        for flag, byv in flags.items():
            a, b = byv["False"], byv["True"]
            print(f"  {flag:14s} " + " | ".join(
                f"{m['sigma_iqr']:.4f} {m['outlier_rate']:.3f} {m['pit_ks']:.3f} {m['n']:5.0f}"
                for m in (a, b)))


if __name__ == "__main__":
    raise SystemExit(main())
