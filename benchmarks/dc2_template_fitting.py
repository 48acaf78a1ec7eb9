"""EAZY and BPZ on RAIL's DC2 test files, through RAIL stages, offline.

Informs on pz-rail-base's ``test_dc2_training_9816.hdf5`` and estimates on
``test_dc2_validation_9816.hdf5`` (20,449 galaxies, LSST ugrizy, DC2LSST filter curves):

* BPZ: ``BPZliteInformer``/``BPZliteEstimator`` with RAIL's defaults (CWW+SB4, HDF-N prior,
  no IGM, z 0-3), only given a writable copy of pz-rail-base's BPZ data directory so that the
  AB files are not written into the installed package;
* EAZY: ``EazyInformer``/``EazyEstimator`` with EAZY's fsps QSF 12 v3 templates, its
  template error function and a p(z | i) prior built from the training set (default
  options otherwise, i.e. RAIL's column names and DC2LSST filters); and, for reference,
  with no template options at all (CWW+SB4 from pz-rail-base).

Prints sigma_IQR, bias, outlier rate (|dz| > 0.15 and RAIL's rate) on ``zmode`` and timings.

    python benchmarks/dc2_template_fitting.py [--limit N] [--output dc2.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import tables_io
from rail.estimation.algos.bpz_lite import BPZliteEstimator, BPZliteInformer
from rail.utils.path_utils import find_rail_file

from rail.deepdisc.evaluate.metrics import point_metrics
from rail.deepdisc.fit.bpz import make_ab_files, rail_bpz_data_copy
from rail.estimation.algos.eazy import EazyEstimator, EazyInformer

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATES = REPO.parent / "shared" / "data" / "eazy-photoz" / "templates"
CWWSB4 = ["El_B2004a", "Sbc_B2004a", "Scd_B2004a", "Im_B2004a", "SB3_B2004a", "SB2_B2004a",
          "ssp_25Myr_z008", "ssp_5Myr_z008"]
DC2_FILTERS = [f"DC2LSST_{b}" for b in "ugrizy"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=0, help="estimate only the first N galaxies")
    p.add_argument("--eazy-templates", default=str(DEFAULT_TEMPLATES))
    p.add_argument("--workdir", default=None)
    p.add_argument("--output", default=None)
    args = p.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="dc2_tf_"))
    work.mkdir(parents=True, exist_ok=True)

    train = tables_io.read(find_rail_file("examples_data/testdata/test_dc2_training_9816.hdf5"))
    test = tables_io.read(find_rail_file(
        "examples_data/testdata/test_dc2_validation_9816.hdf5"))
    if args.limit:
        test = {"photometry": {k: v[:args.limit] for k, v in test["photometry"].items()}}
    z = np.asarray(test["photometry"]["redshift"])
    n = z.size
    results: dict = {"n": int(n), "methods": {}}

    def copy(d):
        return {"photometry": {k: np.array(v) for k, v in d["photometry"].items()}}

    # BPZ with RAIL's defaults, on a writable copy of its data directory
    data_path = rail_bpz_data_copy(work / "bpz_data")
    t0 = time.perf_counter()
    make_ab_files(data_path, CWWSB4, DC2_FILTERS, madau=False)
    t_ab = time.perf_counter() - t0
    inf = BPZliteInformer.make_stage(name="dc2_bpz_inform", model=str(work / "bpz.pkl"),
                                     bpz_ref_data_path=data_path)
    inf.inform(copy(train))
    est = BPZliteEstimator.make_stage(name="dc2_bpz", model=inf.get_handle("model"),
                                      bpz_ref_data_path=data_path,
                                      output=str(work / "bpz_pz.hdf5"))
    t0 = time.perf_counter()
    ens = est.estimate(copy(test)).data
    results["methods"]["bpz_rail_defaults"] = {
        **point_metrics(np.squeeze(ens.ancil["zmode"]), z), "seconds": time.perf_counter() - t0,
        "ab_files_seconds": t_ab}

    tdir = Path(args.eazy_templates)
    runs = {
        "eazy_fsps": {"templates_file": str(tdir / "fsps_full" / "tweak_fsps_QSF_12_v3.param"),
                      "template_error_file": str(tdir / "TEMPLATE_ERROR.eazy_v1.0")},
        "eazy_no_options": {},
    }
    for name, opts in runs.items():
        t0 = time.perf_counter()
        inf = EazyInformer.make_stage(name=f"dc2_{name}_inform",
                                      model=str(work / f"{name}.hdf5"), **opts)
        model = inf.inform(copy(train))
        t_inform = time.perf_counter() - t0
        est = EazyEstimator.make_stage(name=f"dc2_{name}", model=model,
                                       output=str(work / f"{name}_pz.hdf5"))
        t0 = time.perf_counter()
        ens = est.estimate(copy(test)).data
        results["methods"][name] = {**point_metrics(np.squeeze(ens.ancil["zmode"]), z),
                                    "seconds": time.perf_counter() - t0,
                                    "inform_seconds": t_inform}

    print(f"\nRAIL DC2 validation file, {n} galaxies (z_phot = zmode)")
    print(f"{'method':20s} {'sigma_IQR':>9s} {'bias':>8s} {'outl>0.15':>9s} {'outl RAIL':>9s} "
          f"{'obj/s':>8s}")
    for name, m in results["methods"].items():
        print(f"{name:20s} {m['sigma_iqr']:9.4f} {m['bias']:+8.4f} {m['outlier_rate']:9.4f} "
              f"{m['outlier_rate_rail']:9.4f} {n / m['seconds']:8.1f}")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2, default=float))
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
