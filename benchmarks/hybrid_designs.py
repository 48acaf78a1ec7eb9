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

#: designs measured: name -> (methods, design, whether the spectra are weighted to the
#: catalog's S/N distribution in the fit)
ALL = ("image", "templates", "photometric")
DESIGNS = {
    "image only": (("image",), "product", False),
    "templates only": (("templates",), "product", False),
    "photometry network only": (("photometric",), "product", False),
    "(a) product image x templates": (("image", "templates"), "product", False),
    "(b) product image x templates x photometry network": (ALL, "product", False),
    "(c) gated image x templates x photometry network": (ALL, "gated", False),
    "(d) product, spectra weighted to the catalog's S/N": (ALL, "product", True),
    "templates x photometry network (no pixels)": (("templates", "photometric"), "product",
                                                   False),
}
#: bins (quantiles of the labelled objects' log S/N) and largest factor of the S/N weights
WEIGHT_BINS, WEIGHT_CLIP = 8, 5.0
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


def snr_weights(labelled_snr: np.ndarray, catalog_snr: np.ndarray) -> np.ndarray:
    """Weights that give the labelled objects the catalog's distribution of log S/N (the
    ratio of the two histograms in quantile bins of the labelled objects, clipped to
    [1 / WEIGHT_CLIP, WEIGHT_CLIP]): a spectroscopic selection is brighter than the
    catalog it is meant to calibrate."""
    lab = np.log10(np.clip(np.asarray(labelled_snr, float), 1.0, 1e5))
    cat = np.log10(np.clip(np.asarray(catalog_snr, float), 1.0, 1e5))
    edges = np.quantile(lab, np.linspace(0.0, 1.0, WEIGHT_BINS + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    n_lab = np.histogram(lab, edges)[0] / lab.size
    n_cat = np.histogram(cat, edges)[0] / cat.size
    ratio = np.clip(n_cat / np.maximum(n_lab, 1e-12), 1 / WEIGHT_CLIP, WEIGHT_CLIP)
    return ratio[np.clip(np.searchsorted(edges, lab, side="right") - 1, 0, WEIGHT_BINS - 1)]


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
    reweight = snr_weights(snr, np.asarray(field["image"].ancil["snr"], float))
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
    for name, (methods, design, weighted) in DESIGNS.items():
        logs = [base.logs[index[m]] for m in methods]
        cv = cov if design == "gated" else None
        sw = reweight if weighted else None
        pdf, fits = cross_fit(logs, z, fold, base.grid, design=design, covariates=cv,
                              features=FEATURES, sample_weight=sw)
        rec = {"methods": list(methods), "design": design,
               "oof_all": _metrics(pdf, base.grid, z),
               "oof_bright": _metrics(pdf[bright], base.grid, z[bright]),
               "exponents_by_fold": [f.central_exponents() for f in fits]}
        if ftruth is not None:
            w = fit_weights(logs, z, base.grid, design=design, covariates=cv,
                            features=FEATURES, sample_weight=sw)
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
