"""Transfer, measured: does a network pretrained on our simulations work on images our
simulator's default configuration did not make?

Three configurations of a JWST/NIRCam-like field (same nine bands):

* ``home``: the ``jades`` preset as the package simulates it by default (COSMOS templates
  with dust, smooth Sersic bulge + disk of one colour, Airy PSFs, white noise);
* ``randomised``: ``home`` with every realism and randomisation option on
  (``realism=full``: nebular emission lines, clumps, bulges with their own SED, lopsided
  disks, stars, per-scene PSF size/ellipticity jitter, per-scene depth, masked pixels);
  ``--randomised-seds cosmos+fsps`` mixes EAZY's 12 FSPS templates into its COSMOS SEDs
  galaxy by galaxy, ``--randomised-seds cosmos,sps`` joins half its scenes with COSMOS SEDs
  and half with BC03 + CLOUDY ones;
* ``foreign``: what neither training saw: another SED library (BC03 + CLOUDY stellar
  population synthesis from bagpipes, else CWW+SB), other profiles (clumpy and lopsided
  galaxies), another PSF family (Gaussian, with the Airy core's FWHM per band) and depths
  0.5 mag shallower (a survey file written into the work directory); ``--foreign-seds
  fsps`` gives it EAZY's FSPS templates instead (another population-synthesis code), for
  trainings that use BC03 + CLOUDY.

A resnet18_fpn network is trained on a ``home`` field and on a ``randomised`` field (every
true redshift), and each is tested, forced mode, on a ``home`` and a ``foreign`` test field;
then the randomised model is fine-tuned on N = 100, 300, 1,000 labelled objects of a
``foreign`` training field (a spectroscopic-like selection: bright objects more often; 15
epochs on the scenes holding a label, ``labelled_scenes_only``) and tested on the foreign
test field again. Beside them, BPZ with the training configuration's
templates (the simulator's own COSMOS x dust set: the template fitter's equivalent of
training on our simulations) on photometry of the same test objects.

With ``--seeds 1,2,3`` the home and randomised models are trained with each seed and the
figures of every seed, their mean and spread, and each configuration's ensemble (the seeds'
PDFs averaged) are reported too: one seed's transfer figures are not reliable at these sizes.
``--finetune-seeds all`` fine-tunes every seed's randomised model, not only the first's, and
reports each seed's closed gap, their mean and spread, and the share of the seeds' mean gap
closed (the seeds' mean ratio before and after).
``--continue-epochs 3`` trains each pretrained model 3 more epochs on its own field (from
its weights, at ``--continue-lr``) and reports and fine-tunes those instead.
``--calibrate-on-home`` recalibrates each randomised model's PDFs (width factor and mean
shift, ``rail-deepdisc calibrate``) on the labelled objects of the home training field, the
unrandomised simulation of the survey the home model trained on, and reports and fine-tunes
those instead: a model pretrained on several domains is calibrated on their mixture, and
this puts its in-domain calibration back.

Printed and written (``--output`` JSON, ``--markdown``, ``--plot``): bright (F200W S/N > 10)
sigma_IQR, outlier rate and PIT KS for each model on each test field; the foreign/home
sigma_IQR ratio of each model, and the share of the remaining gap that fine-tuning closes,
each with a 68% bootstrap interval over the test objects.

    python benchmarks/domain_transfer.py --seeds 1,2,3 --output transfer.json \
        --markdown transfer.md --plot docs/transfer.png   # default sizes, ~4 h on 2 CPU cores
    python benchmarks/domain_transfer.py --quick        # a smoke test, ~15 minutes

Fields and models are kept in ``--workdir`` (default ``transfer_work/``) and reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (
    add_network_flags,
    fit_bpz,
    labelled_rows,
    measure_photometry,
    method_metrics,
    train_model,
)

from rail.deepdisc.net.config import EstimateConfig, TrainConfig
from rail.deepdisc.net.device import resolve_device, set_threads
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.sim.labels import SpecSelection, relabel_store, spectroscopic_subset
from rail.deepdisc.spectra.bands import NIRCAM_BANDS
from rail.deepdisc.store.join import join_stores
from rail.deepdisc.store.provenance import package_versions
from rail.deepdisc.store.scenes import SceneStore, read_objects
from rail.deepdisc.workers import worker_count

REPO = Path(__file__).resolve().parents[1]
#: the metrics reported per model and test field
REPORTED = ("sigma_iqr", "outlier_rate", "pit_ks", "bias", "n")
#: the in-domain figures the randomised model is compared on with the home model
IN_DOMAIN = ("sigma_iqr", "outlier_rate", "pit_ks")
#: bootstrap resamples of the test objects behind the intervals of the summary figures
BOOTSTRAP = 1000
#: EAZY's templates folder (not shipped with the package; ``--eazy-templates``)
DEFAULT_TEMPLATES = REPO.parent / "shared" / "data" / "eazy-photoz" / "templates"
#: JWST's aperture (m): the Gaussian PSFs of the foreign survey have the Airy core's FWHM
_JWST_DIAMETER_M = 6.5


def foreign_survey_file(path: Path, depth_offset: float = -0.5) -> str:
    """The foreign survey: the jades preset with Gaussian PSFs (FWHM 1.03 lambda / D per
    band) and every depth ``depth_offset`` mag (shallower when negative)."""
    import yaml

    data = yaml.safe_load((REPO / "src/rail/deepdisc/sim/presets/jades.yml").read_text())
    data["name"] = "jades_foreign"
    data["description"] = "jades with Gaussian PSFs, 0.5 mag shallower (transfer benchmark)"
    data.pop("telescope", None)
    data.pop("psf", None)
    for band, entry in data["bands"].items():
        wavelength_m = float(band.split("_f")[1][:3]) / 100.0 * 1e-6
        fwhm = 1.03 * wavelength_m / _JWST_DIAMETER_M * 206264.806
        entry["depth"] = round(entry["depth"] + depth_offset, 3)
        entry["psf"] = {"kind": "gaussian", "fwhm": round(max(fwhm, 0.035), 4)}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(path)


def eazy_fsps_list(path: Path, eazy_templates: Path) -> str:
    """A template list of EAZY's 12 FSPS templates (``fsps_full/tweak_fsps_QSF_12_v3``:
    Flexible Stellar Population Synthesis with nebular emission, Brammer et al. 2008),
    for mixing into the randomised configuration's SEDs."""
    from rail.deepdisc.spectra.sed_files import parse_param_file

    param = eazy_templates / "fsps_full" / "tweak_fsps_QSF_12_v3.param"
    if not param.is_file():
        raise SystemExit(f"{param} not found: give EAZY's templates folder with "
                         "--eazy-templates, or --randomised-seds without 'fsps'")
    files = [f for f, _ in parse_param_file(param)]
    path.write_text("\n".join(files) + "\n", encoding="utf-8")
    return str(path)


def _sed_library(seds: str, workdir: Path, eazy_templates: Path) -> str:
    """A ``sed_library`` value from a benchmark SED choice: libraries joined by '+', with
    ``fsps`` standing for EAZY's FSPS templates (:func:`eazy_fsps_list`)."""
    parts = [eazy_fsps_list(workdir / "eazy_fsps.list", Path(eazy_templates))
             if part == "fsps" else part for part in seds.split("+")]
    return "+".join(parts)


def configurations(workdir: Path, randomised_seds: str = "cosmos",
                   eazy_templates: Path = DEFAULT_TEMPLATES,
                   foreign_seds: str = "auto") -> dict[str, dict | list[dict]]:
    """FieldSpec options of the three configurations.

    ``randomised_seds`` is the randomised field's SED library: libraries joined by '+' mix
    galaxy by galaxy in one field; libraries separated by ',' make a field each, whose
    scenes are joined in equal shares (a scene-by-scene mix: ``randomised`` is then a list
    of options). ``foreign_seds`` is the foreign fields' library (``auto``: ``sps`` where
    bagpipes is installed, else ``cww``). ``fsps`` stands for EAZY's FSPS templates. The
    foreign library may be none of the training fields': the foreign SEDs are ones no
    training saw.
    """
    from rail.deepdisc.spectra.sps import bagpipes_available

    if foreign_seds == "auto":
        foreign_seds = "sps" if bagpipes_available() else "cww"
    seen = set(randomised_seds.replace(",", "+").split("+")) | {"cosmos"}  # home's: cosmos
    clash = sorted(seen & set(foreign_seds.split("+")))
    if clash:
        raise SystemExit(f"--foreign-seds {foreign_seds!r} shares {clash} with the training "
                         "fields' SEDs: the foreign field's must be ones no training saw")
    randomised = []
    for seds in randomised_seds.split(","):
        options = {"survey": "jades", "realism": "full"}
        if seds != "cosmos":  # (the realism preset's own library)
            options["sed_library"] = _sed_library(seds, workdir, eazy_templates)
        randomised.append(options)
    return {
        "home": {"survey": "jades", "realism": "off"},
        "randomised": randomised[0] if len(randomised) == 1 else randomised,
        "foreign": {"survey": foreign_survey_file(workdir / "jades_foreign.yml"),
                    "realism": "off",
                    "sed_library": _sed_library(foreign_seds, workdir, eazy_templates),
                    "emission_lines": True, "clumpy_fraction": 0.6,
                    "asymmetric_fraction": 0.4},
    }


def options_key(options: dict) -> str:
    """Eight hex digits naming a configuration's resolved options (the realism preset's
    values filled in, a survey file by its content), so a cached field is reused only for
    the same options."""
    from rail.deepdisc.sim.randomise import REALISM_PRESETS

    spec = FieldSpec(**options, n_scenes=1)  # n and seed are in the file name
    resolved = {**spec.as_dict(), **{k: spec.setting(k) for k in REALISM_PRESETS["off"]}}
    if Path(str(spec.survey)).is_file():
        resolved["survey"] = Path(spec.survey).read_text()
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def field(workdir: Path, name: str, options: dict | list[dict], n: int, seed: int,
          workers: int) -> str:
    """Simulate (or reuse) a field of ``n`` 128^2 scenes of a configuration; for a list of
    configurations, a field of each joined in equal shares of consecutive scenes (the k-th
    configuration gives scenes ``k n / K .. (k + 1) n / K`` of its own field, so no two
    shares repeat a scene's PSF, depth and mask draws)."""
    if isinstance(options, list):
        parts = [field(workdir, name, o, n, seed, workers) for o in options]
        key = hashlib.sha256(" ".join(Path(p).stem for p in parts).encode()).hexdigest()[:8]
        path = workdir / f"{name}_{n}_seed{seed}_joined{len(parts)}_{key}.hdf5"
        if not path.exists():
            edges = np.linspace(0, n, len(parts) + 1).round().astype(int)
            join_stores(parts, path, [slice(lo, hi) for lo, hi in pairwise(edges)])
        return str(path)
    path = workdir / f"{name}_{n}_seed{seed}_{options_key(options)}.hdf5"
    if not path.exists():
        print(f"simulating {name}: {n} scenes (seed {seed})", flush=True)
        t0 = time.perf_counter()
        simulate_field(FieldSpec(**options, n_scenes=n, seed=seed), path, n_workers=workers,
                       progress=True)
        print(f"  {n / (time.perf_counter() - t0):.2f} scenes/s", flush=True)
    return str(path)


def forced(model_obj, store: str, device):
    """Forced-mode qp ensemble of every object of a store (in store order)."""
    import qp

    from rail.deepdisc.net.density import FeatureDensity
    from rail.deepdisc.net.estimate import forced_rows
    from rail.deepdisc.net.model_file import build_from_state

    net = build_from_state(model_obj, device).eval()
    density = FeatureDensity.from_state(model_obj["feature_density"]) \
        if "feature_density" in model_obj else None
    with SceneStore(store) as st:
        chunks = list(st.iter_chunks(objects_per_chunk=2000))
    return qp.concatenate([forced_rows(net, c, EstimateConfig(), device, density)[0]
                           for c in chunks])


def bright_metrics(ens, store: str) -> dict:
    """The reported metrics on the store's bright objects (F200W S/N > 10), and under
    ``delta`` their (z_mode - z) / (1 + z) (for the bootstrap intervals; not written)."""
    truth = read_objects(store)
    z = np.asarray(truth["redshift"], float)
    rows = np.flatnonzero((truth["snr_jwst_f200w"] > 10) & np.isfinite(z))
    zmode = np.ravel(ens.ancil["zmode"]).astype(float)
    m = method_metrics(ens, z, zmode, rows)
    return {**{k: float(m[k]) for k in REPORTED},
            "delta": (zmode[rows] - z[rows]) / (1.0 + z[rows])}


def summary_intervals(results: dict, seed: int = 0) -> dict[str, list[float]]:
    """16th and 84th percentiles of each :func:`summary` figure over bootstrap resamples of
    the bright test objects; every model (and BPZ) on a test field gets the same resample,
    so the intervals of ratios and closed gaps count only what the test sample adds.
    Removes the ``delta`` arrays from ``results``."""
    rng = np.random.default_rng(seed)
    resamples: dict[str, np.ndarray] = {}

    def boot(figures: dict) -> dict:
        out = {}
        for test, m in figures.items():
            delta = m.pop("delta")
            if test not in resamples:
                resamples[test] = rng.integers(0, delta.size, (BOOTSTRAP, delta.size))
            q25, q75 = np.percentile(delta[resamples[test]], [25, 75], axis=1)
            out[test] = {"sigma_iqr": (q75 - q25) / 1.349,
                         "outlier_rate": np.mean(np.abs(delta[resamples[test]]) > 0.15,
                                                 axis=1)}
        return out

    booted = {"deepdisc": {name: boot(f) for name, f in results["deepdisc"].items()},
              "bpz": boot(results["bpz"]) if results.get("bpz") else {}}
    # (a closed gap is undefined on the rare resamples where the gap itself is <= 0)
    return {k: np.nanpercentile(v, [16, 84]).tolist() for k, v in summary(booted).items()}


def labelled_subset(store: str, n_labels: int, seed: int, out: Path) -> str:
    """A copy of a store where ``n_labels`` objects, drawn from a spectroscopic-like
    selection, keep their redshift."""
    path = out / f"{Path(store).stem}_labels{n_labels}.hdf5"
    if not path.exists():
        objects = read_objects(store)
        chosen = np.flatnonzero(spectroscopic_subset(objects, SpecSelection(mag_50=27.5),
                                                     seed=seed))
        if chosen.size < n_labels:
            raise SystemExit(f"{store}: only {chosen.size} objects selected, fewer than "
                             f"{n_labels}; give more --foreign-train-scenes")
        keep = np.zeros(objects["redshift"].size, bool)
        keep[np.random.default_rng(seed).choice(chosen, n_labels, replace=False)] = True
        relabel_store(store, path, keep, note=f"{n_labels} foreign labels")
    return str(path)


def _seed_tag(seed: int) -> str:
    """Model-file suffix of a training seed (none for seed 1, the benchmark's first)."""
    return "" if seed == 1 else f"_s{seed}"


def average_pdfs(ensembles: list):
    """The mixture of several models' Gaussian-mixture PDFs of the same objects, each
    with equal weight (a deep ensemble), with its mode as ``zmode``."""
    from rail.deepdisc.net.predict import Mixtures

    parts = [e.objdata for e in ensembles]
    mix = Mixtures(np.concatenate([p["weights"] for p in parts], axis=1) / len(parts),
                   np.concatenate([p["means"] for p in parts], axis=1),
                   np.concatenate([p["stds"] for p in parts], axis=1))
    ens = mix.ensemble()
    ens.set_ancil({"zmode": mix.mode(EstimateConfig().zgrid)})
    return ens


def _without_delta(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if k != "delta"}


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-scenes", type=int, default=400)
    p.add_argument("--test-scenes", type=int, default=120)
    p.add_argument("--foreign-train-scenes", type=int, default=600,
                   help="scenes of the foreign field the labels are drawn from")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--continue-epochs", type=int, default=0,
                   help="after each pretraining, this many more epochs on its field "
                   "(init_model, no warm-up, --continue-lr, cosine schedule); every figure "
                   "and the fine-tuning then use the continued models")
    p.add_argument("--continue-lr", type=float, default=2.0e-4,
                   help="peak learning rate of the continued epochs")
    p.add_argument("--calibrate-on-home", action="store_true",
                   help="recalibrate each randomised model's PDFs (widths and mean shift) "
                   "on the home training field's labelled objects; every figure and the "
                   "fine-tuning then use the recalibrated models")
    p.add_argument("--finetune-epochs", type=int, default=15)
    p.add_argument("--finetune-lr", type=float, default=3.0e-4)
    p.add_argument("--finetune-all-scenes", action="store_true",
                   help="fine-tune on every scene of the foreign training field, not only "
                   "on those with a label")
    p.add_argument("--finetune-seeds", choices=("first", "all"), default="first",
                   help="fine-tune the first seed's randomised model (default) or every "
                   "seed's: then each seed's closed gap, their mean and spread, and the "
                   "share of the seeds' mean gap are reported too")
    p.add_argument("--labels", default="100,300,1000", help="numbers of foreign labels")
    p.add_argument("--seeds", default="1",
                   help="training seeds of the home and randomised models, e.g. 1,2,3: "
                   "figures per seed, their mean and spread, and each configuration's "
                   "ensemble (the seeds' PDFs averaged); fine-tuning starts from the first")
    p.add_argument("--randomised-seds", default="cosmos",
                   help="SED library of the randomised field: 'cosmos' (the realism "
                   "preset's, default), libraries joined by '+' (mixed galaxy by galaxy, "
                   "e.g. cosmos+fsps, 'fsps' standing for EAZY's FSPS templates), or "
                   "separated by ',' (a field each, joined scene by scene in equal shares, "
                   "e.g. cosmos,sps)")
    p.add_argument("--foreign-seds", default="auto",
                   help="SED library of the foreign fields: 'auto' (BC03 + CLOUDY, 'sps', "
                   "where bagpipes is installed, else 'cww'), or libraries joined by '+' "
                   "as for --randomised-seds; none of them may be a training field's")
    p.add_argument("--eazy-templates", default=str(DEFAULT_TEMPLATES),
                   help="EAZY's templates folder (for 'fsps' in the SED options)")
    add_network_flags(p, batch_size=False)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-bpz", action="store_true", help="skip the template fits")
    p.add_argument("--quick", action="store_true",
                   help="120 training and 40 test scenes, 4 + 3 epochs, N = 100, 300")
    p.add_argument("--workdir", default="transfer_work")
    p.add_argument("--output", default=None, help="results as JSON")
    p.add_argument("--markdown", default=None, help="the tables as Markdown")
    p.add_argument("--plot", default=None, help="a figure of sigma_IQR (PNG)")
    args = p.parse_args(argv)
    if args.quick:  # options given explicitly still win
        p.set_defaults(train_scenes=120, test_scenes=40, foreign_train_scenes=150, epochs=4,
                       finetune_epochs=3, labels="100,300")
        args = p.parse_args(argv)
    if args.finetune_seeds == "all" and len(args.seeds.split(",")) < 2:
        p.error("--finetune-seeds all needs two or more --seeds")
    return args


def _continued(store: str, pretrained: Path, cfg: TrainConfig, epochs: int, lr: float
               ) -> tuple[Path, dict]:
    """A pretrained model trained ``epochs`` more on its own field (``cfg`` carries its
    seed), from its weights, without warm-up, at peak learning rate ``lr``."""
    path = pretrained.with_name(f"{pretrained.stem}_cont{epochs}_lr{lr:g}.pt")
    more = replace(cfg, epochs=epochs, warmup_steps=0, learning_rate=lr)
    return path, train_model(store, str(path), more, init=str(pretrained))


def _home_calibrated(home_store: str, pretrained: Path, threads: int) -> tuple[Path, dict]:
    """A pretrained model with its PDFs recalibrated on every scene of the home training
    field (``rail-deepdisc calibrate``; reused when written before)."""
    from rail.deepdisc.net.model_file import read_model_file
    from rail.deepdisc.net.recalibrate import recalibrate_model

    path = pretrained.with_name(f"{pretrained.stem}_homecal.pt")
    if not path.exists():
        recalibrate_model(str(pretrained), home_store, str(path), num_threads=threads,
                          progress=True)
    return path, read_model_file(path)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    threads = set_threads(args.num_threads)
    device = resolve_device(args.device)
    workers = worker_count(args.n_workers)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    configs = configurations(work, args.randomised_seds, Path(args.eazy_templates),
                             args.foreign_seds)
    t_start = time.perf_counter()
    n, nt, nf = args.train_scenes, args.test_scenes, args.foreign_train_scenes
    stores = {
        "home_train": field(work, "home", configs["home"], n, 11, workers),
        "randomised_train": field(work, "randomised", configs["randomised"], n, 12, workers),
        "home_test": field(work, "home", configs["home"], nt, 21, workers),
        "foreign_test": field(work, "foreign", configs["foreign"], nt, 22, workers),
        "foreign_train": field(work, "foreign", configs["foreign"], nf, 23, workers),
    }
    labelled = {k: labelled_subset(stores["foreign_train"], k, 23, work)  # checked first
                for k in (int(x) for x in args.labels.split(","))}
    cfg = TrainConfig.from_mapping(dict(backbone=args.backbone, epochs=args.epochs,
                                        device=args.device, num_threads=args.num_threads, seed=1))
    seeds = [int(x) for x in args.seeds.split(",")]
    minutes, seed_models, seed_paths = {}, {}, {}
    for name in ("home", "randomised"):
        store = Path(stores[f"{name}train_model"]).stem
        for seed in seeds:
            path = work / f"model_{store}_{args.backbone}_e{args.epochs}{_seed_tag(seed)}.pt"
            trained = train_model(stores[f"{name}train_model"], str(path), replace(cfg, seed=seed))
            minutes[f"{name} seed {seed}"] = trained["minutes"]
            if args.continue_epochs:
                path, trained = _continued(stores[f"{name}train_model"], path,
                                           replace(cfg, seed=seed), args.continue_epochs,
                                           args.continue_lr)
                minutes[f"{name} seed {seed}"] += trained["minutes"]
            model_obj = trained["obj"]
            if name == "randomised" and args.calibrate_on_home:
                path, model_obj = _home_calibrated(stores["home_train"], path, threads)
            seed_models[name, seed], seed_paths[name, seed] = model_obj, path
    ft_cfg = replace(cfg, epochs=args.finetune_epochs, learning_rate=args.finetune_lr,
                     freeze_backbone_epochs=1,
                     labelled_scenes_only=not args.finetune_all_scenes)
    recipe = (f"e{args.finetune_epochs}_lr{args.finetune_lr:g}"
              f"{'_all' if args.finetune_all_scenes else ''}")
    finetuned_seeds: dict = {}  # label count's model name -> {seed: model}
    for n_labels, labelled_store in labelled.items():
        name = f"randomised+{n_labels} foreign labels"
        for seed in seeds if args.finetune_seeds == "all" else seeds[:1]:
            base = seed_paths["randomised", seed]
            path = work / f"{base.stem}_ft{n_labels}of{nf}_{recipe}.pt"
            trained = train_model(labelled_store, str(path), ft_cfg, init=str(base))
            finetuned_seeds.setdefault(name, {})[seed] = trained["obj"]
            minutes[f"{name} seed {seed}"] = trained["minutes"]

    results: dict = {"deepdisc": {}, "bpz": {}, "minutes": minutes, "seeds": {},
                     "finetuned_seeds": {}}
    per_seed = {t: {key: forced(obj, stores[t], device) for key, obj in seed_models.items()}
                for t in ("home_test", "foreign_test")}
    finetuned_forced = {name: {seed: forced(obj, stores["foreign_test"], device)
                               for seed, obj in by_seed.items()}
                        for name, by_seed in finetuned_seeds.items()}  # foreign test only
    for name in ("home", "randomised", *finetuned_forced):  # each the first seed's
        tests = ("foreign_test",) if "+" in name else ("home_test", "foreign_test")
        results["deepdisc"][name] = {
            t: bright_metrics(per_seed[t][name, seeds[0]] if "+" not in name
                              else finetuned_forced[name][seeds[0]], stores[t]) for t in tests}
        print(name, json.dumps(results["deepdisc"][name], default=_scalars), flush=True)
    if len(seeds) > 1:
        for name in ("home", "randomised"):
            results["seeds"][name] = {
                seed: {t: _without_delta(bright_metrics(per_seed[t][name, seed], stores[t]))
                       for t in per_seed} for seed in seeds}
            results["deepdisc"][f"{name} ensemble"] = {
                t: bright_metrics(average_pdfs([per_seed[t][name, s] for s in seeds]),
                                  stores[t]) for t in per_seed}
            print(f"{name}: per seed", json.dumps(results["seeds"][name]), flush=True)
    if args.finetune_seeds == "all":
        for name, by_seed in finetuned_forced.items():
            results["finetuned_seeds"][name] = {
                seed: {"foreign_test": _without_delta(bright_metrics(ens,
                                                                     stores["foreign_test"]))}
                for seed, ens in by_seed.items()}
            print(f"{name}: per seed", json.dumps(results["finetuned_seeds"][name]),
                  flush=True)
    if not args.no_bpz:
        results["bpz"] = bpz_figures(stores, work, workers)
    results["summary"] = summary(results)
    results["intervals_68"] = summary_intervals(results)
    results["config"] = {**vars(args), "configurations": configs, "threads": threads,
                         "device": str(device), "versions": package_versions(),
                         "total_minutes": (time.perf_counter() - t_start) / 60}
    text = markdown(results)
    print(text)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1, default=float))
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
    if args.plot:
        plot(results, args.plot)
    return 0


def bpz_figures(stores: dict[str, str], work: Path, workers: int) -> dict:
    """BPZ with the simulator's own COSMOS x dust templates (the home configuration's),
    prior trained on the home training field, on both test fields."""
    from rail.deepdisc.spectra.template_sets import oracle_templates

    train_table = labelled_rows(measure_photometry(stores["home_train"]))
    out = {}
    for test in ("home_test", "foreign_test"):
        table = measure_photometry(stores[test])
        ens, _, _ = fit_bpz(f"bpz_{test}", oracle_templates(), train_table, table, str(work),
                         workers, list(NIRCAM_BANDS))
        out[test] = bright_metrics(ens, stores[test])
        print(f"BPZ (home templates) on {test}", json.dumps(out[test], default=_scalars),
              flush=True)
    return out


def _scalars(value):
    """JSON stand-in for the per-object arrays in printed figures."""
    return f"<{np.size(value)} values>"


def summary(results: dict) -> dict:
    """Foreign/home sigma_IQR ratios and the share of the remaining gap fine-tuning closes
    (against the randomised model's home figure)."""
    dd = results["deepdisc"]
    out = {}
    for name in ("home", "randomised"):
        out[f"ratio_{name}"] = dd[name]["foreign_test"]["sigma_iqr"] / \
            dd[name]["home_test"]["sigma_iqr"]
    home_rand = dd["randomised"]["home_test"]["sigma_iqr"]
    out.update(_in_domain_changes(dd["randomised"]["home_test"], dd["home"]["home_test"]))
    gap = out["ratio_randomised"] - 1.0
    for name, figures in dd.items():
        if "+" in name:
            ratio = figures["foreign_test"]["sigma_iqr"] / home_rand
            out[f"ratio_{name}"] = ratio
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"gap_closed_{name}"] = np.where(gap > 0, (gap - (ratio - 1.0)) / gap,
                                                     np.nan)[()]
    for name in ("home", "randomised"):
        if f"{name} ensemble" in dd:
            e = dd[f"{name} ensemble"]
            out[f"ratio_{name}_ensemble"] = e["foreign_test"]["sigma_iqr"] / \
                e["home_test"]["sigma_iqr"]
    if "home ensemble" in dd and "randomised ensemble" in dd:
        out.update(_in_domain_changes(dd["randomised ensemble"]["home_test"],
                                      dd["home ensemble"]["home_test"], "_ensemble"))
    for name, by_seed in results.get("seeds", {}).items():
        ratios = [f["foreign_test"]["sigma_iqr"] / f["home_test"]["sigma_iqr"]
                  for f in by_seed.values()]
        out[f"ratio_{name}_seed_mean"] = float(np.mean(ratios))
        out[f"ratio_{name}_seed_sd"] = float(np.std(ratios, ddof=1))
    if {"home", "randomised"} <= set(results.get("seeds", {})):
        seed_means = {name: {metric: float(np.mean([f["home_test"][metric] for f in
                                                    results["seeds"][name].values()]))
                             for metric in IN_DOMAIN} for name in ("home", "randomised")}
        out.update(_in_domain_changes(seed_means["randomised"], seed_means["home"],
                                      "_seed_mean"))
    for name, closed in finetuned_gaps(results).items():
        before, after = closed["before"], closed["after"]
        finite = closed["closed"][np.isfinite(closed["closed"])]  # seeds with a gap
        out[f"gap_closed_{name}_seed_mean"] = float(finite.mean()) if finite.size else np.nan
        out[f"gap_closed_{name}_seed_sd"] = (float(finite.std(ddof=1)) if finite.size > 1
                                             else np.nan)
        out[f"gap_closed_{name}_of_mean_gap"] = (
            (before.mean() - after.mean()) / (before.mean() - 1.0) if before.mean() > 1.0
            else np.nan)
    if results.get("bpz"):
        b = results["bpz"]
        out["ratio_bpz"] = b["foreign_test"]["sigma_iqr"] / b["home_test"]["sigma_iqr"]
    return out


def _in_domain_changes(randomised: dict, home: dict, suffix: str = "") -> dict[str, float]:
    """The randomised model's relative change of each in-domain figure against the home
    model's (``in_domain_change`` for sigma_IQR, ``in_domain_<figure>_change`` for the
    others, each + ``suffix``; arrays for bootstrap resamples, which lack PIT: left out)."""
    return {("in_domain_change" if metric == "sigma_iqr" else f"in_domain_{metric}_change")
            + suffix: randomised[metric] / home[metric] - 1.0
            for metric in IN_DOMAIN if metric in randomised}


def finetuned_gaps(results: dict) -> dict[str, dict]:
    """For each fine-tuned model run on every seed (``--finetune-seeds all``): each seed's
    foreign/home sigma_IQR ratio before and after fine-tuning (both against that seed's
    randomised home figure) and the share of its gap closed (NaN where it had none)."""
    by_seed = results.get("seeds", {}).get("randomised", {})
    out = {}
    for name, tuned in results.get("finetuned_seeds", {}).items():
        home = np.array([by_seed[s]["home_test"]["sigma_iqr"] for s in tuned])
        before = np.array([by_seed[s]["foreign_test"]["sigma_iqr"] for s in tuned]) / home
        after = np.array([f["foreign_test"]["sigma_iqr"] for f in tuned.values()]) / home
        with np.errstate(invalid="ignore", divide="ignore"):
            closed = np.where(before > 1.0, (before - after) / (before - 1.0), np.nan)
        out[name] = {"seeds": list(tuned), "before": before, "after": after,
                     "closed": closed}
    return out


def markdown(results: dict) -> str:
    rows = ["| model | test field | σ_IQR | η (\\|Δ\\|>0.15) | PIT KS | bias | N |",
            "|---|---|---:|---:|---:|---:|---:|"]
    if results.get("config", {}).get("calibrate_on_home"):
        rows = ["The randomised models' PDFs are recalibrated (widths and mean shift) on the "
                "home training field.", "", *rows]
    entries = [(f"DeepDISC, {k}", v) for k, v in results["deepdisc"].items()]
    if results.get("bpz"):
        entries.append(("BPZ, home templates", results["bpz"]))
    for name, figures in entries:
        for test, m in figures.items():
            rows.append(f"| {name} | {test.replace('_test', '')} | {m['sigma_iqr']:.3f} | "
                        f"{m['outlier_rate']:.3f} | {m['pit_ks']:.3f} | {m['bias']:+.3f} | "
                        f"{m['n']:.0f} |")
    if results.get("seeds"):
        rows += ["", "| model | seed | home σ_IQR | foreign σ_IQR | ratio | home η | "
                 "home PIT KS | foreign η |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, by_seed in results["seeds"].items():
            for seed, f in by_seed.items():
                home, foreign = f["home_test"], f["foreign_test"]
                rows.append(f"| {name} | {seed} | {home['sigma_iqr']:.3f} | "
                            f"{foreign['sigma_iqr']:.3f} | "
                            f"{foreign['sigma_iqr'] / home['sigma_iqr']:.2f} | "
                            f"{home['outlier_rate']:.3f} | {home['pit_ks']:.3f} | "
                            f"{foreign['outlier_rate']:.3f} |")
    tuned = results.get("finetuned_seeds", {})
    if tuned:
        rows += ["", "| fine-tuned | seed | ratio before | ratio after | gap closed | "
                 "foreign σ_IQR after | foreign η after |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, gaps in finetuned_gaps(results).items():
            for k, seed in enumerate(gaps["seeds"]):
                f = tuned[name][seed]["foreign_test"]
                rows.append(f"| {name} | {seed} | {gaps['before'][k]:.2f} | "
                            f"{gaps['after'][k]:.2f} | {gaps['closed'][k]:.0%} | "
                            f"{f['sigma_iqr']:.3f} | {f['outlier_rate']:.3f} |")
    s, intervals = results["summary"], results.get("intervals_68", {})
    rows += ["", "| figure | value | 68% bootstrap interval (test objects) |",
             "|---|---:|---:|"]
    for k, v in s.items():
        lo, hi = intervals.get(k, (np.nan, np.nan))
        shown = f"{lo:.3f} – {hi:.3f}" if np.isfinite(lo) else "—"  # a seed spread has none
        value = f"{v:.3f}" if np.isfinite(v) else "— (no gap left)"  # ratio <= 1 already
        rows.append(f"| {k} | {value} | {shown} |")
    return "\n".join(rows) + "\n"


def plot(results: dict, path: str) -> None:
    """Bright sigma_IQR of each model on the home and foreign test fields."""
    from rail.deepdisc.evaluate.display import subplots

    fig, ax = subplots(figsize=(8.5, 4.0))
    names = list(results["deepdisc"]) + (["BPZ (home templates)"] if results.get("bpz")
                                         else [])
    values = [results["deepdisc"].get(n, results.get("bpz")) for n in names]
    x = np.arange(len(names))
    for k, (test, colour) in enumerate((("home_test", "tab:blue"),
                                        ("foreign_test", "tab:red"))):
        heights = [v.get(test, {}).get("sigma_iqr", np.nan) for v in values]
        ax.bar(x + (k - 0.5) * 0.38, heights, 0.38, color=colour,
               label=test.replace("_test", " test field"))
    for k, (test, colour) in enumerate((("home_test", "navy"), ("foreign_test", "darkred"))):
        for i, name in enumerate(names):  # each training seed of a model, as a dot
            by_seed = (results.get("seeds", {}).get(name)
                       or results.get("finetuned_seeds", {}).get(name, {}))
            ys = [f[test]["sigma_iqr"] for f in by_seed.values() if test in f]
            ax.plot(np.full(len(ys), x[i] + (k - 0.5) * 0.38), ys, "o", ms=3, color=colour,
                    label="training seeds" if (k == 0 and ys and i == 0) else None)
    ax.set_xticks(x, [n.replace("+", "\n+ ").replace(" foreign labels", "\nforeign labels")
                      .replace(" ensemble", "\nensemble").replace(" (", "\n(") for n in names],
                  fontsize=7)
    ax.set_ylabel("σ_IQR, F200W S/N > 10")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
