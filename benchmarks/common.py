"""What the benchmarks share: simulated stores, DeepDISC training and forced estimation,
photometry, BPZ and EAZY fits on the same objects, and their metrics (one definition each).

The benchmark scripts (``jwst_benchmark.py``, ``domain_transfer.py``, ``legacy_surveys.py``)
import these public helpers; no script imports another script's private names.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from rail.deepdisc.evaluate.metrics import cde_loss, pit_metrics, point_metrics
from rail.deepdisc.net.config import ComputeOptions, EstimateConfig, TrainConfig
from rail.deepdisc.net.density import FeatureDensity
from rail.deepdisc.net.estimate import detect_rows, forced_rows
from rail.deepdisc.net.model_file import build_from_state, read_model_file, save_model
from rail.deepdisc.net.train import train
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.store.scenes import SceneStore
from rail.deepdisc.workers import WorkerOptions

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATES = REPO.parent / "shared" / "data" / "eazy-photoz" / "templates"
METRICS = ("sigma_iqr", "bias", "outlier_rate", "sigma_mad", "pit_ks", "pit_cvm", "cde_loss", "n")
ZGRID = np.linspace(0.0, 12.0, 1201)


def add_network_flags(parser, *, batch_size: bool = True, workers: bool = True) -> None:
    """The benchmarks' flags that are the package's options (their help, bounds and meaning
    of 0 are the options'): ``--backbone`` (TrainConfig's, CPU preset by default),
    ``--batch-size`` (TrainConfig's), ``--threads`` (ComputeOptions' ``num_threads``) and
    ``--workers`` (WorkerOptions' ``n_workers``: 0 is all usable cores)."""
    TrainConfig.add_argument(parser, "backbone", default="resnet18_fpn")
    if batch_size:
        TrainConfig.add_argument(parser, "batch_size")
    ComputeOptions.add_argument(parser, "num_threads", flag="--threads")
    if workers:
        WorkerOptions.add_argument(parser, "n_workers", flag="--workers")


def simulated_store(workdir: str, name: str, n: int, seed: int, size: int, workers: int) -> str:
    path = os.path.join(workdir, f"{name}_{n}x{size}_seed{seed}.hdf5")
    if not os.path.exists(path):
        print(f"simulating {name}: {n} scenes (seed {seed})", flush=True)
        simulate_field(FieldSpec(survey="jades", n_scenes=n, scene_size=size, seed=seed), path,
                       n_workers=workers, progress=True)
    return path


def train_model(store: str, path: str, cfg: TrainConfig, init: str | None = None) -> dict:
    """Train (or reuse) a model; returns the loaded model object and minutes."""
    if not os.path.exists(path):
        t0 = time.perf_counter()
        result = train(store, replace(cfg, init_model=init or ""))
        minutes = (time.perf_counter() - t0) / 60.0
        result.meta["training"]["minutes"] = minutes
        save_model(path, result.model, result.meta, result.extras)
    obj = read_model_file(path)
    meta = json.loads(obj["meta"])
    return {"obj": obj, "minutes": meta["training"].get("minutes",
                                                         meta["training"]["seconds"] / 60)}


def deepdisc_forced(model_obj, test: str, device, batch: int):
    net = build_from_state(model_obj, device).eval()
    density = FeatureDensity.from_state(model_obj["feature_density"]) \
        if "feature_density" in model_obj else None
    cfg = EstimateConfig()
    with SceneStore(test) as store:
        chunks = list(store.iter_chunks(objects_per_chunk=2000))
    t0 = time.perf_counter()
    parts = [forced_rows(net, c, cfg, device, density) for c in chunks]
    t_forced = time.perf_counter() - t0
    import qp

    ens = qp.concatenate([p[0] for p in parts])
    t0 = time.perf_counter()
    parts = [detect_rows(net, c, cfg, device, density) for c in chunks]
    det = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    t_detect = time.perf_counter() - t0
    return ens, det, t_forced, t_detect


def measure_photometry(store: str):
    from rail.deepdisc.fit.photometry import measure_store
    from rail.deepdisc.fit.photometry_options import PhotometryConfig

    return measure_store(store, PhotometryConfig())[0]


def fit_bpz(name, tset, train_table, test_table, workdir, workers, bands, ref="jwst_f200w",
         zmax=12.0, prior="flat"):
    """BPZ (pz-rail-bpz) with template set ``tset``, prior magnitude in band ``ref``;
    returns the test ensemble, the estimation and the set-up seconds."""
    from rail.estimation.algos.bpz_lite import BPZliteEstimator, BPZliteInformer

    from rail.deepdisc.fit.bpz import bpz_stage_configs, prepare_bpz_data
    from rail.deepdisc.fit.photometry_table import mag_limits

    t0 = time.perf_counter()
    setup = prepare_bpz_data(os.path.join(workdir, f"{name}_data"), tset, bands, madau=True,
                             n_workers=workers)
    t_setup = time.perf_counter() - t0
    inform, estimate = bpz_stage_configs(setup, [f"mag_{b}" for b in bands],
                                         [f"mag_err_{b}" for b in bands],
                                         mag_limits(test_table, bands, 31.4),
                                         f"mag_{ref}", zmax=zmax, prior=prior)
    inf = BPZliteInformer.make_stage(name=f"{name}_inform",
                                     model=os.path.join(workdir, f"{name}.pkl"), **inform)
    inf.inform({k: v.copy() for k, v in train_table.items()})
    est = BPZliteEstimator.make_stage(name=name, model=inf.get_handle("model"),
                                      output=os.path.join(workdir, f"{name}.hdf5"), **estimate)
    t0 = time.perf_counter()
    ens = est.estimate({k: v.copy() for k, v in test_table.items()}).data
    return ens, time.perf_counter() - t0, t_setup


def eazy_template_files(folder: str) -> tuple[str, str]:
    """EAZY's fsps QSF 12 v3 + blue_sfhz_13 template lists and template error file in an
    eazy-photoz ``templates/`` folder (the run stops at once, naming a missing file)."""
    tdir = Path(folder)
    fsps = tdir / "fsps_full" / "tweak_fsps_QSF_12_v3.param"
    sfhz = tdir / "sfhz" / "blue_sfhz_13.param"
    tef = tdir / "TEMPLATE_ERROR.eazy_v1.0"
    for f in (fsps, sfhz, tef):
        if not f.exists():
            raise SystemExit(f"EAZY template file {f} not found (--eazy-templates)")
    return f"{fsps},{sfhz}", str(tef)


def fit_eazy(name, templates, tef, train_table, test_table, workdir, prior: bool, bands,
          prior_band="jwst_f200w", zmax=12.0):
    """EAZY (eazy-py) with ``templates``, with or without a magnitude prior in
    ``prior_band`` from the (labelled) training table; returns the test ensemble, the
    estimation and the set-up seconds."""
    from rail.estimation.algos.eazy import EazyEstimator, EazyInformer

    cfg = {"bands": [f"flux_{b}" for b in bands], "err_bands": [f"flux_err_{b}" for b in bands],
           "hdf5_groupname": "", "input_type": "flux"}
    if prior:
        cfg["prior_band"] = f"flux_{prior_band}"
    t0 = time.perf_counter()
    model = EazyInformer.make_stage(
        name=f"{name}_inform", model=os.path.join(workdir, f"{name}_model.hdf5"),
        templates_file=templates, template_error_file=tef, filter_list=bands, zmax=zmax,
        training_prior=prior, **cfg).inform(train_table)
    t_setup = time.perf_counter() - t0
    est = EazyEstimator.make_stage(name=name, model=model,
                                   output=os.path.join(workdir, f"{name}.hdf5"), **cfg)
    t0 = time.perf_counter()
    ens = est.estimate(test_table).data
    return ens, time.perf_counter() - t0, t_setup


def method_metrics(ens, z, zphot, rows) -> dict:
    m = point_metrics(zphot[rows], z[rows])
    if m["n"] >= 10:  # PIT statistics of a handful of objects are noise (and qp fails)
        sub = ens[rows]
        m.update({k: v for k, v in pit_metrics(sub, z[rows]).items() if k in METRICS})
        m["cde_loss"] = cde_loss(sub, z[rows], ZGRID)
    return {k: m.get(k, float("nan")) for k in METRICS}


def labelled_rows(table: dict) -> dict:
    keep = np.isfinite(table["redshift"])
    return {k: np.asarray(v)[keep] for k, v in table.items()}
