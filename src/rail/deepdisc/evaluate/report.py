"""Comparison reports: metric tables (methods x metrics) and figures, as Markdown + PNG.

Every method's ensemble is row-aligned with the same truth table (the scene store's
``/objects``): DeepDISC in forced mode, BPZ and EAZY on photometry of the same objects.
Metrics are those of :mod:`rail.deepdisc.evaluate.metrics`; the "bright" subset is S/N > 10 in the
survey's detection band (``snr_<band>``; F200W for JADES-like, i for LSST-like scenes).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.evaluate.display import subplots
from rail.deepdisc.evaluate.matching import completeness_purity
from rail.deepdisc.evaluate.metrics import (
    OUTLIER_CUT,
    delta_metrics,
    photoz_metrics,
    point_metrics,
)
from rail.deepdisc.sim.surveys import reference_band
from rail.deepdisc.store.atomic import atomic_output

log = logging.getLogger(__name__)

#: columns of the Markdown table: key, header, format
TABLE_COLUMNS = (
    ("n", "N", "{:d}"), ("sigma_iqr", "σ_IQR", "{:.3f}"), ("bias", "bias", "{:+.3f}"),
    ("outlier_rate", "η (|Δ|>0.15)", "{:.3f}"), ("sigma_mad", "σ_MAD", "{:.3f}"),
    ("outlier_rate_rail", "η RAIL", "{:.3f}"), ("pit_ks", "PIT KS", "{:.3f}"),
    ("pit_cvm", "PIT CvM", "{:.3f}"), ("pit_ad", "PIT AD", "{:.2f}"),
    ("cde_loss", "CDE loss", "{:.2f}"), ("brier", "Brier", "{:.3f}"),
    ("seconds", "seconds", "{:.0f}"),
)

#: quality flags of an estimator's ancil (DeepDISC's) that the report splits metrics by
QUALITY_FLAGS = ("flag_ood", "flag_blend", "flag_low_snr", "flag_edge")


@dataclass
class MethodResult:
    """One method's PDFs for the truth rows, with its point estimate and cost."""

    name: str
    ensemble: Any
    seconds: float | None = None
    z_phot: np.ndarray | None = None

    def point(self) -> np.ndarray:
        if self.z_phot is not None:
            return np.asarray(self.z_phot, float)
        return np.asarray(self.ensemble.ancil["zmode"], float).ravel()


@dataclass
class Detections:
    """A detect-mode run: matched object per detection (-1: none) and scores."""

    object_row: np.ndarray
    score: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


def detection_band(truth: Mapping[str, np.ndarray], survey: str = "", band: str = "") -> str:
    """The band of the "bright" cut: among the bands with an ``snr_`` column, the survey's
    detection band ``band`` (a store's or survey file's; else the preset ``survey``'s, see
    :func:`rail.deepdisc.sim.surveys.reference_band`)."""
    bands = [k.removeprefix("snr_") for k in truth if k.startswith("snr_")]
    if not bands:
        raise InputError("the truth table has no snr_<band> column for the bright subset")
    return reference_band(bands, survey, band)


def subsets(truth: Mapping[str, np.ndarray], band: str) -> dict[str, np.ndarray]:
    """Boolean masks of the standard subsets: all objects with a redshift, and bright ones."""
    z = np.asarray(truth["redshift"], float)
    known = np.isfinite(z)
    return {"all": known, "bright": known & (np.asarray(truth[f"snr_{band}"]) > 10)}


def metrics_table(results: Sequence[MethodResult], truth: Mapping[str, np.ndarray],
                  masks: Mapping[str, np.ndarray]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{subset: {method: metrics}}`` for every subset mask and method."""
    z = np.asarray(truth["redshift"], float)
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for name, mask in masks.items():
        rows = np.flatnonzero(mask)
        table[name] = {}
        for res in results:
            if res.ensemble.npdf != z.size:
                raise InputError(f"{res.name}: {res.ensemble.npdf} PDFs for {z.size} objects; "
                                 "ensembles must be row-aligned with the truth table")
            m = photoz_metrics(res.ensemble[rows], z[rows], res.point()[rows]) if rows.size \
                else point_metrics([], [])
            m["seconds"] = res.seconds
            table[name][res.name] = m
    return table


def flag_table(results: Sequence[MethodResult], truth: Mapping[str, np.ndarray],
               mask: np.ndarray) -> dict[str, dict[str, dict[str, Any]]]:
    """``{method: {"<flag>=0|1": metrics}}`` within ``mask`` for every method whose ensemble
    carries quality flags in its ancil (:data:`QUALITY_FLAGS`); methods without are left out.
    """
    z = np.asarray(truth["redshift"], float)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for res in results:
        ancil = res.ensemble.ancil or {}
        flags = [f for f in QUALITY_FLAGS if f in ancil]
        if not flags:
            continue
        out[res.name] = {}
        for flag in flags:
            values = np.asarray(ancil[flag]).ravel().astype(bool)
            for v in (False, True):
                rows = np.flatnonzero(mask & (values == v))
                m = photoz_metrics(res.ensemble[rows], z[rows], res.point()[rows]) \
                    if rows.size >= 10 else point_metrics(res.point()[rows], z[rows])
                out[res.name][f"{flag}={int(v)}"] = m
    return out


def markdown_table(metrics: Mapping[str, Mapping[str, Any]], label: str = "method") -> str:
    """A Markdown table, one row per method (or per ``label``)."""
    head = f"| {label} | " + " | ".join(h for _, h, _ in TABLE_COLUMNS) + " |"
    sep = "|---|" + "---:|" * len(TABLE_COLUMNS)
    lines = [head, sep]
    for method, m in metrics.items():
        cells = []
        for key, _, fmt in TABLE_COLUMNS:
            v = m.get(key)
            ok = v is not None and not (isinstance(v, float) and not np.isfinite(v))
            cells.append(fmt.format(int(v) if key == "n" else v) if ok else "–")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures
def _binned(x: np.ndarray, dz: np.ndarray, bins: np.ndarray, min_n: int = 10):
    centers, sig, eta, counts = [], [], [], []
    idx = np.digitize(x, bins) - 1
    for i in range(len(bins) - 1):
        d = dz[idx == i]
        if d.size >= min_n:
            m = delta_metrics(d)
            centers.append(0.5 * (bins[i] + bins[i + 1]))
            sig.append(m["sigma_iqr"])
            eta.append(m["outlier_rate"])
            counts.append(d.size)
    return np.array(centers), np.array(sig), np.array(eta), np.array(counts)


def plot_zphot_ztrue(results, z, mask, path, title):
    """Photo-z against true z, one panel per method."""
    n = len(results)
    zmax = float(np.nanpercentile(z[mask], 99.5)) * 1.1 if mask.any() else 6.0
    fig, axes = subplots(1, n, figsize=(3.6 * n, 3.8), squeeze=False, sharey=True)
    line = np.array([0, zmax])
    for ax, res in zip(axes[0], results, strict=True):
        zp = res.point()[mask]
        zt = z[mask]
        ax.hexbin(zt, zp, gridsize=45, extent=(0, zmax, 0, zmax), mincnt=1, bins="log",
                  cmap="viridis")
        ax.plot(line, line, "w-", lw=0.8)
        for s in (-1, 1):
            ax.plot(line, line + s * OUTLIER_CUT * (1 + line), "w--", lw=0.6)
        m = point_metrics(zp, zt)
        ax.set_title(f"{res.name}: σ_IQR={m['sigma_iqr']:.3f}, η={m['outlier_rate']:.2f}",
                     fontsize=9)
        ax.set_xlim(0, zmax)
        ax.set_ylim(0, zmax)
        ax.set_xlabel("true z")
    axes[0][0].set_ylabel("photo-z (mode)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_pit(results, z, mask, path, title):
    """PIT histograms, one panel per method (flat = calibrated)."""
    n = len(results)
    fig, axes = subplots(1, n, figsize=(3.4 * n, 3.0), squeeze=False, sharey=True)
    rows = np.flatnonzero(mask)
    for ax, res in zip(axes[0], results, strict=True):
        pit = np.ravel(res.ensemble[rows].cdf(z[rows][:, None])) if rows.size else np.zeros(0)
        ax.hist(pit, bins=20, range=(0, 1), density=True, color="C0", alpha=0.8)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_title(res.name, fontsize=9)
        ax.set_xlabel("PIT")
    axes[0][0].set_ylabel("density")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_metrics_vs(results, z, x, mask, bins, xlabel, path, title):
    """σ_IQR and outlier rate against a quantity (magnitude or redshift), one line per method."""
    fig, axes = subplots(1, 2, figsize=(9.5, 3.6))
    for i, res in enumerate(results):
        dz = (res.point() - z) / (1 + z)
        c, s, e, _ = _binned(x[mask], dz[mask], bins)
        axes[0].plot(c, s, "o-", color=f"C{i}", label=res.name, ms=3)
        axes[1].plot(c, e, "o-", color=f"C{i}", label=res.name, ms=3)
    axes[0].set_ylabel("σ_IQR")
    axes[1].set_ylabel("outlier rate (|Δ| > 0.15)")
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_nz(results, z, mask, path, title):
    """True N(z) (histogram) against each method's stacked PDFs."""
    zt = z[mask]
    zmax = float(np.nanpercentile(zt, 99.5)) * 1.15 if zt.size else 6.0
    grid = np.linspace(0, zmax, 300)
    fig, ax = subplots(figsize=(6, 3.6))
    ax.hist(zt, bins=60, range=(0, zmax), density=True, color="0.75", label="true")
    rows = np.flatnonzero(mask)
    for i, res in enumerate(results):
        stack = res.ensemble[rows].pdf(grid).sum(axis=0) if rows.size else np.zeros_like(grid)
        norm = np.trapezoid(stack, grid)
        ax.plot(grid, stack / norm if norm > 0 else stack, color=f"C{i}", label=res.name)
    ax.set_xlabel("z")
    ax.set_ylabel("N(z) (normalised)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_detection(det: Detections, truth, band, path, title):
    """Completeness (of all objects) and purity (of detections) against magnitude."""
    mag = np.asarray(truth[f"mag_{band}"], float)
    bins = np.arange(np.floor(np.nanmin(mag[np.isfinite(mag)])), np.ceil(
        np.nanmax(mag[np.isfinite(mag)])) + 0.5, 0.5)
    keep = det.score >= 0.5
    found = np.zeros(mag.size, bool)
    found[det.object_row[keep & (det.object_row >= 0)]] = True
    idx = np.digitize(mag, bins) - 1
    comp = [found[idx == i].mean() if np.any(idx == i) else np.nan for i in range(len(bins) - 1)]
    det_mag = np.where(det.object_row >= 0, mag[np.maximum(det.object_row, 0)], np.nan)
    centers = 0.5 * (bins[1:] + bins[:-1])
    fig, ax = subplots(figsize=(6, 3.6))
    ax.plot(centers, comp, "o-", label="completeness (objects)")
    cp = completeness_purity(det.object_row, det.score, mag.size)
    ax.axhline(cp["purity"], color="C1", ls="--",
               label=f"purity of detections (all): {cp['purity']:.2f}")
    matched_mag = det_mag[keep & np.isfinite(det_mag)]
    if matched_mag.size:
        ax2 = ax.twinx()
        ax2.hist(matched_mag, bins=bins, color="0.85", zorder=0)
        ax2.set_ylabel("matched detections")
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
    ax.set_xlabel(f"mag_{band}")
    ax.set_ylabel("fraction")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path) -> None:
    with atomic_output(path, "figure") as tmp:
        fig.savefig(tmp, dpi=120, format="png")


# --------------------------------------------------------------------------- the report
def write_report(output_dir: str | os.PathLike, results: Sequence[MethodResult],
                 truth: Mapping[str, np.ndarray], *, survey: str = "",
                 detections: Detections | None = None, title: str = "Photo-z comparison",
                 provenance: Mapping[str, Any] | None = None,
                 survey_detection_band: str = "") -> dict[str, str]:
    """Write ``report.md``, ``metrics.json`` and the figures into ``output_dir``.

    The "bright" subset is S/N > 10 in :func:`detection_band` (``survey_detection_band``:
    the survey's detection band, from the truth's store or the survey file).

    Returns the paths written, by name.
    """
    os.makedirs(output_dir, exist_ok=True)
    band = detection_band(truth, survey, survey_detection_band)
    z = np.asarray(truth["redshift"], float)
    masks = subsets(truth, band)
    table = metrics_table(results, truth, masks)
    if detections is not None:
        bright = masks["bright"]
        table["detection"] = {
            "bright": completeness_purity(detections.object_row, detections.score, z.size,
                                          bright),
            "all": completeness_purity(detections.object_row, detections.score, z.size),
        }
    out = {name: os.path.join(output_dir, f"{name}.png") for name in
           ("zphot_vs_ztrue", "pit", "metrics_vs_magnitude", "metrics_vs_redshift", "nz")}
    bright_label = f"S/N({band.split('_')[-1].upper()}) > 10"
    plot_zphot_ztrue(results, z, masks["bright"], out["zphot_vs_ztrue"],
                     f"{title}: {bright_label}")
    plot_pit(results, z, masks["bright"], out["pit"], f"PIT, {bright_label}")
    mag = np.asarray(truth.get(f"mag_{band}", np.full(z.size, np.nan)), float)
    finite = np.isfinite(mag) & masks["all"]
    if finite.any():  # real data may have no magnitudes
        mbins = np.arange(np.floor(mag[finite].min()), np.ceil(mag[finite].max()) + 0.5, 0.5)
        plot_metrics_vs(results, z, mag, finite, mbins, f"mag_{band}",
                        out["metrics_vs_magnitude"], "all objects, by magnitude")
    else:
        del out["metrics_vs_magnitude"]
    zbins = np.array([0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 13])
    plot_metrics_vs(results, z, z, masks["bright"], zbins, "true z",
                    out["metrics_vs_redshift"], f"{bright_label}, by redshift")
    plot_nz(results, z, masks["all"], out["nz"], "N(z), all objects")
    if detections is not None:
        out["detection"] = os.path.join(output_dir, "detection.png")
        plot_detection(detections, truth, band, out["detection"],
                       "detect mode (IoU ≥ 0.5, score ≥ 0.5)")
    md = [f"# {title}", ""]
    for name, label in (("bright", bright_label), ("all", "all objects with a redshift")):
        md += [f"## {label}", "", markdown_table(table[name]), ""]
    flags = flag_table(results, truth, masks["all"])
    if flags:
        table["flags"] = flags
        md += ["## By quality flag (all objects with a redshift)", "",
               "Metrics of the objects with each flag unset (=0) and set (=1): `flag_ood` "
               "out of the training set's colour–magnitude distribution, `flag_blend` box "
               "overlapping another by > 10%, `flag_low_snr` core S/N < 10, `flag_edge` box "
               "touching the scene edge.", ""]
        for method, rows in flags.items():
            md += [f"### {method}", "", markdown_table(rows, "subset"), ""]
    if detections is not None:
        d = table["detection"]
        md += ["## Detection (detect mode)", "",
               f"Completeness {d['bright']['completeness']:.3f} of {bright_label} objects "
               f"({d['bright']['n_objects']}), {d['all']['completeness']:.3f} of all; purity "
               f"{d['all']['purity']:.3f} of {d['all']['n_detections']} detections "
               "(IoU ≥ 0.5, score ≥ 0.5).", ""]
    md += ["## Figures", ""] + [f"![{k}]({os.path.basename(v)})" for k, v in out.items()]
    md += ["", "Δ = (z_phot − z_true)/(1 + z_true) with z_phot the PDF mode; σ_IQR = IQR(Δ)/1.349;"
           " η = fraction with |Δ| > 0.15; η RAIL uses RAIL's max(0.06, 3σ_IQR) cut; PIT"
           " statistics and the CDE loss are qp's."]
    out["report"] = os.path.join(output_dir, "report.md")
    with atomic_output(out["report"], "report") as tmp:
        tmp.write_text("\n".join(md) + "\n", encoding="utf-8")
    out["metrics"] = os.path.join(output_dir, "metrics.json")
    with atomic_output(out["metrics"], "metrics") as tmp:
        tmp.write_text(json.dumps({"metrics": table, "provenance": provenance or {}},
                                  indent=1, default=_json_default), encoding="utf-8")
    log.info("report written to %s", out["report"])
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able: {type(value)}")
