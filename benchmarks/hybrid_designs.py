"""Hybrid designs measured out of fold on a finished field run.

Reads a ``rail-deepdisc field`` run's out-of-fold ensembles (the network's cross-validation,
EAZY's, the photometry network's) and, for each design of :mod:`rail.deepdisc.hybrid.fusion`
and each choice of methods, fuses them out of fold (exponents of fold f fitted without fold
f's labels) and reports σ_IQR, bias, outlier rate and PIT on the spectroscopic objects, all
and bright (the network's core S/N > 10). With ``--truth`` (a simulated field's truth
catalog) each design's exponents, fitted on all the spectra, are applied to the field's
catalog PDFs and evaluated on the bright objects without spectra.

    python benchmarks/hybrid_designs.py --run field_run --truth field_data/truth_catalog.fits \\
        --output results/hybrid_designs_example.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import qp

from rail.deepdisc.evaluate.metrics import point_metrics
from rail.deepdisc.hybrid.ensembles import prepare
from rail.deepdisc.hybrid.fusion import apply_weights, covariate_matrix, cross_fit, fit_weights

#: designs measured: name -> (methods, design)
DESIGNS = {
    "image only": (("image",), "product"),
    "templates only": (("templates",), "product"),
    "photometry network only": (("photometric",), "product"),
    "(a) product image x templates": (("image", "templates"), "product"),
    "(b) product image x templates x photometry network":
        (("image", "templates", "photometric"), "product"),
    "(c) gated image x templates x photometry network":
        (("image", "templates", "photometric"), "gated"),
    "templates x photometry network (no pixels)": (("templates", "photometric"), "product"),
}
FILES = {"image": ("output_crossval.hdf5", "output_estimate_field.hdf5"),
         "templates": ("output_crossval_eazy.hdf5", "output_estimate_eazy.hdf5"),
         "photometric": ("oof_inform_photometry_net.hdf5",
                         "output_estimate_photometry_net.hdf5")}
FEATURES = ["log_snr", "blend", "ood_score", "log_chi2"]


def _metrics(pdf: np.ndarray, grid: np.ndarray, z: np.ndarray) -> dict:
    m = point_metrics(grid[np.argmax(pdf, axis=1)], z)
    cdf = np.cumsum(pdf * np.gradient(grid), axis=1)
    cdf /= cdf[:, -1:]
    pit = np.array([np.interp(zi, grid, c) for zi, c in zip(z, cdf, strict=True)])
    m["pit_tails"] = float(np.mean((pit < 0.025) | (pit > 0.975)))
    m["pit_68"] = float(np.mean((pit > 0.16) & (pit < 0.84)))
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}


def measure(run: str, truth: str | None, floor: float = 1e-3) -> dict:
    data = os.path.join(run, "data")
    oof = {k: qp.read(os.path.join(data, f[0])) for k, f in FILES.items()}
    field = {k: qp.read(os.path.join(data, f[1])) for k, f in FILES.items()}
    out: dict = {"run": os.path.abspath(run), "designs": {}}
    # one grid and row order for everything: the image network's out-of-fold rows
    base = prepare([oof["image"], oof["templates"], oof["photometric"]], floor=floor)
    z = base.redshift
    fold = np.asarray(oof["image"].ancil["fold"]).astype(int)
    snr = np.asarray(oof["image"].ancil["snr"], float)
    bright = snr > 10
    cov = covariate_matrix(base.ensembles, FEATURES)
    full = prepare([field["image"], field["templates"], field["photometric"]], floor=floor)
    fcov = covariate_matrix(full.ensembles, FEATURES)
    ftruth = None
    if truth:
        from rail.deepdisc.evaluate.field_report import _truth_rows, load_truth
        from rail.deepdisc.hybrid.ensembles import ids_of

        rows = _truth_rows(load_truth(truth), ids_of(field["image"]))
        spec = np.isfinite(np.asarray(field["image"].ancil.get("redshift"), float))
        tsnr = rows.get("snr_jwst_f200w", np.asarray(field["image"].ancil["snr"], float))
        keep = ~spec & np.isfinite(rows["redshift"]) & (tsnr > 10)
        ftruth = (keep, rows["redshift"][keep])
    index = {"image": 0, "templates": 1, "photometric": 2}
    for name, (methods, design) in DESIGNS.items():
        logs = [base.logs[index[m]] for m in methods]
        cv = cov if design == "gated" else None
        pdf, fits = cross_fit(logs, z, fold, base.grid, design=design, covariates=cv,
                              features=FEATURES)
        rec = {"methods": list(methods), "design": design,
               "oof_all": _metrics(pdf, base.grid, z),
               "oof_bright": _metrics(pdf[bright], base.grid, z[bright]),
               "exponents_by_fold": [f.central_exponents() for f in fits]}
        if ftruth is not None:
            w = fit_weights(logs, z, base.grid, design=design, covariates=cv,
                            features=FEATURES)
            keep, zt = ftruth
            flogs = [full.logs[index[m]][keep] for m in methods]
            fpdf = apply_weights(w, flogs, full.grid,
                                 fcov[keep] if design == "gated" else None)
            rec["photometric_bright"] = _metrics(fpdf, full.grid, zt)
        out["designs"][name] = rec
        print(f"{name:55s} OOF all {rec['oof_all']['sigma_iqr']:.4f}/"
              f"{rec['oof_all']['outlier_rate']:.3f}"
              + (f"  no-spec bright {rec['photometric_bright']['sigma_iqr']:.4f}/"
                 f"{rec['photometric_bright']['outlier_rate']:.3f}" if ftruth else ""),
              flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a field run's output directory")
    parser.add_argument("--truth", default="", help="truth catalog of a simulated field")
    parser.add_argument("--output", default="", help="JSON file for the figures")
    args = parser.parse_args(argv)
    result = measure(args.run, args.truth or None)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as fout:
            json.dump(result, fout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
