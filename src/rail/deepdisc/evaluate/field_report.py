"""The validation report of a survey field: out-of-fold photo-z vs spec-z, the field map,
N(z) by quality flag.

The metrics and the photo-z vs spec-z figures are the comparison report's
(:func:`rail.deepdisc.evaluate.report.write_report`), computed on the out-of-fold PDFs of the
spectroscopic objects (each from a model that never saw its label) and split by quality
flag; the field map shows an RGB of the mosaics (block-averaged to at most
``max_pixels`` a side) with the detections coloured by photo-z and the flagged ones
marked; N(z) is the field's, for all objects and without each flag.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.evaluate.catalog import QUALITY_BITS
from rail.deepdisc.evaluate.display import rgb_composite, subplots
from rail.deepdisc.evaluate.report import MethodResult, _json_default, _save, write_report
from rail.deepdisc.sim.surveys import reference_band
from rail.deepdisc.store.atomic import atomic_output

#: the out-of-fold metric (lower is better) that ranks the methods and picks the headline
#: catalog: the CDE loss, a proper score of the whole PDF (scatter, outliers and
#: calibration together)
RANK_METRIC = "cde_loss"
#: fewer bright out-of-fold objects than this, or a headline that ranks first in fewer than
#: JUDGE_FRACTION of bootstrap resamples: the report says the run is too small to judge
MIN_JUDGE_OBJECTS = 100
JUDGE_FRACTION = 0.9
#: bootstrap resamples of the headline-against-each-method comparison
COMPARE_BOOT = 1000


def mosaic_rgb(images: Mapping[str, str], max_pixels: int = 1200
               ) -> tuple[np.ndarray, Any, int]:
    """An RGB of per-band FITS mosaics (``band -> path[EXT]``), block-averaged so its
    larger side is at most ``max_pixels``; returns the RGB, the mosaic WCS and the block."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from rail.deepdisc.store.mosaic_io import split_spec

    planes, wcs, block = [], None, 1
    for spec in images.values():
        path, ext = split_spec(spec)
        with fits.open(path, memmap=True) as hdul:
            hdu = hdul[ext if ext is not None else next(
                i for i, h in enumerate(hdul) if h.data is not None and h.data.ndim == 2)]
            if wcs is None:
                wcs = WCS(hdu.header).celestial
                block = max(1, int(np.ceil(max(hdu.data.shape) / max_pixels)))
            data = np.nan_to_num(np.asarray(hdu.data, dtype=np.float32))
        ny, nx = (s // block * block for s in data.shape)
        planes.append(data[:ny, :nx].reshape(ny // block, block, nx // block, block)
                      .mean(axis=(1, 3)))
    return rgb_composite(np.stack(planes), list(images)), wcs, block


def plot_field_map(images: Mapping[str, str], detections: Any, path: str, title: str,
                   max_pixels: int = 1200) -> None:
    """The mosaic's RGB with the detections coloured by ``zmode`` (flagged: open circles)."""
    rgb, wcs, block = mosaic_rgb(images, max_pixels)
    ancil = detections.ancil
    x, y = wcs.all_world2pix(np.asarray(ancil["ra"]), np.asarray(ancil["dec"]), 0)
    x, y = (x + 0.5) / block - 0.5, (y + 0.5) / block - 0.5
    flagged = np.zeros(len(x), bool)
    for flag in QUALITY_BITS:
        if flag in ancil:
            flagged |= np.asarray(ancil[flag]).astype(bool)
    fig, ax = subplots(figsize=(8, 8 * rgb.shape[0] / rgb.shape[1]))
    ax.imshow(rgb, origin="lower", interpolation="nearest")
    good = ~flagged
    sc = ax.scatter(x[good], y[good], c=np.asarray(ancil["zmode"])[good], s=10, cmap="turbo",
                    vmin=0, vmax=max(float(np.nanpercentile(ancil["zmode"], 99)), 1.0),
                    edgecolors="none")
    ax.scatter(x[flagged], y[flagged], s=14, facecolors="none", edgecolors="white", lw=0.5,
               label=f"flagged ({int(flagged.sum())})")
    fig.colorbar(sc, ax=ax, label="photo-z (mode)", shrink=0.8)
    ax.set_xlim(-0.5, rgb.shape[1] - 0.5)
    ax.set_ylim(-0.5, rgb.shape[0] - 0.5)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_xlabel(f"x [{block} mosaic pixels]")
    _save(fig, path)


def plot_field_nz(field: Any, path: str, title: str) -> None:
    """N(z_mode) of the field: all objects, and those without each flag."""
    ancil = field.ancil
    z = np.asarray(ancil["zmode"], float)
    bins = np.linspace(0, max(float(np.nanpercentile(z, 99.5)), 1.0), 40)
    fig, ax = subplots(figsize=(6.5, 3.8))
    ax.hist(z, bins, histtype="step", color="k", lw=1.5, label=f"all ({z.size})")
    for flag in QUALITY_BITS:
        if flag in ancil:
            ok = ~np.asarray(ancil[flag]).astype(bool)
            ax.hist(z[ok], bins, histtype="step", lw=1, label=f"{flag}=0 ({int(ok.sum())})")
    ax.set_xlabel("photo-z (mode)")
    ax.set_ylabel("objects")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)


@dataclass
class FieldMethod:
    """One method of a field run: its out-of-fold PDFs of the spectroscopic objects and its
    PDFs of every catalog object (row-aligned with the other methods')."""

    name: str
    oof: Any
    field: Any


def ranking_stability(results: Sequence[MethodResult], z_true: np.ndarray,
                      n_boot: int = 500, seed: int = 0) -> dict[str, float]:
    """How often each method ranks first by the CDE loss when the out-of-fold objects are
    resampled with replacement (``n_boot`` bootstrap samples)."""
    from rail.deepdisc.evaluate.metrics import cde_loss_terms, default_zgrid

    z = np.asarray(z_true, float)
    grid = default_zgrid(z)
    terms = np.stack([cde_loss_terms(r.ensemble, z, grid) for r in results])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, z.size, size=(n_boot, z.size))
    winners = np.argmin(terms[:, idx].mean(axis=2), axis=0)
    counts = np.bincount(winners, minlength=len(results))
    return {r.name: float(c / n_boot) for r, c in zip(results, counts, strict=True)}


def headline_comparison(results: Sequence[MethodResult], z_true: np.ndarray,
                        mask: np.ndarray, headline: str, n_boot: int = COMPARE_BOOT,
                        seed: int = 0) -> dict[str, dict[str, float]]:
    """The headline method against every other on the masked objects, with paired bootstrap
    intervals: is it better on *this* sample, or within its noise?

    For each other method: the ratio of the headline's σ_IQR to the method's and the
    difference of their outlier rates (|Δz| / (1 + z) > 0.15), each with its 16th-84th
    percentile over ``n_boot`` resamples of the objects drawn with replacement (the same
    objects for both methods in a resample).
    """
    from rail.deepdisc.evaluate.metrics import OUTLIER_CUT

    z = np.asarray(z_true, float)
    rows = np.flatnonzero(np.asarray(mask, bool) & np.isfinite(z))
    names = [r.name for r in results]
    if headline not in names or rows.size < 2:
        return {}
    dz = np.stack([(r.point()[rows] - z[rows]) / (1.0 + z[rows]) for r in results])
    rng = np.random.default_rng(seed)
    h = names.index(headline)
    out = {}
    for k, name in enumerate(names):
        both = np.isfinite(dz[h]) & np.isfinite(dz[k])  # paired: objects both estimated
        if k == h or both.sum() < 2:
            continue
        pair = dz[[h, k]][:, both]
        pick = np.concatenate([np.arange(pair.shape[1])[None],
                               rng.integers(0, pair.shape[1], (n_boot, pair.shape[1]))])
        q25, q75 = np.percentile(pair[:, pick], [25, 75], axis=2)  # (2, 1 + n_boot)
        sigma = (q75 - q25) / 1.349
        ratio = sigma[0] / np.where(sigma[1] > 0, sigma[1], np.nan)
        diff = np.diff((np.abs(pair[:, pick]) > OUTLIER_CUT).mean(axis=2)[::-1], axis=0)[0]
        out[name] = {"n": int(both.sum()), "sigma_iqr_ratio": float(ratio[0]),
                     "sigma_iqr_ratio_16": float(np.nanpercentile(ratio[1:], 16)),
                     "sigma_iqr_ratio_84": float(np.nanpercentile(ratio[1:], 84)),
                     "outlier_rate_difference": float(diff[0]),
                     "outlier_rate_difference_16": float(np.percentile(diff[1:], 16)),
                     "outlier_rate_difference_84": float(np.percentile(diff[1:], 84))}
    return out


def comparison_lines(comparison: Mapping[str, Mapping[str, float]], headline: str,
                     sample: str) -> list[str]:
    """Markdown lines of :func:`headline_comparison`."""
    if not comparison:
        return []
    n = next(iter(comparison.values()))["n"]
    lines = [f"{headline} against each method on the {n} bright {sample} (S/N > 10; 68% "
             "paired bootstrap interval in brackets):", "",
             "| method | σ_IQR ratio (headline / method) | outlier rate difference |",
             "|---|---|---|"]
    for name, c in comparison.items():
        lines.append(f"| {name} | {c['sigma_iqr_ratio']:.3f} [{c['sigma_iqr_ratio_16']:.3f}, "
                     f"{c['sigma_iqr_ratio_84']:.3f}] | {c['outlier_rate_difference']:+.3f} "
                     f"[{c['outlier_rate_difference_16']:+.3f}, "
                     f"{c['outlier_rate_difference_84']:+.3f}] |")
    return [*lines, ""]


def judgement_note(stability: Mapping[str, float], headline: str, n_objects: int) -> str:
    """One line on whether the out-of-fold sample can tell the methods apart."""
    share = stability.get(headline, 0.0)
    text = (f"the headline method ranks first in {100 * share:.0f}% of {n_objects}-object "
            "bootstrap resamples of the out-of-fold sample")
    if n_objects < MIN_JUDGE_OBJECTS or share < JUDGE_FRACTION:
        return (f"**Too few spectroscopic objects to judge between the methods**: {text} "
                f"(judged at >= {MIN_JUDGE_OBJECTS} objects and >= "
                f"{100 * JUDGE_FRACTION:.0f}%); a larger spectroscopic sample or longer "
                "training would settle it.")
    return f"Ranking: {text}."


def rank_methods(oof_metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Method names, best first, by the out-of-fold :data:`RANK_METRIC` (lower is better;
    ties by σ_IQR)."""
    def key(name: str) -> tuple[float, float]:
        m = oof_metrics[name]
        v = m.get(RANK_METRIC)
        return (float(v) if v is not None and np.isfinite(v) else np.inf,
                float(m.get("sigma_iqr") or np.inf))
    return sorted(oof_metrics, key=key)


def load_truth(path: str) -> dict[str, np.ndarray]:
    """A truth table (``id``, ``redshift``, optional ``snr_<band>``, ``mag_<band>``), from
    any table format :func:`rail.deepdisc.store.catalogs.read_table` reads.

    Raises
    ------
    InputError
        Naming the file and the missing column.
    """
    from rail.deepdisc.store.catalogs import read_table

    table, _ = read_table(path)
    missing = [c for c in ("id", "redshift") if c not in table]
    if missing:
        raise InputError(f"truth catalog {path}: no column {missing[0]!r} (it has "
                         f"{sorted(table)[:12]})")
    return {k: np.asarray(v) for k, v in table.items()
            if k in ("id", "redshift") or k.startswith(("snr_", "mag_"))}


def _truth_rows(truth: Mapping[str, np.ndarray], ids: np.ndarray) -> dict[str, np.ndarray]:
    """The truth table's rows of the given ids (NaN where an id has no truth)."""
    tid = np.asarray(truth["id"]).astype(np.int64)
    order = np.argsort(tid)
    pos = np.clip(np.searchsorted(tid[order], ids), 0, max(tid.size - 1, 0))
    hit = (tid.size > 0) & (tid[order][pos] == ids)
    out = {}
    for k, v in truth.items():
        if k == "id":
            continue
        col = np.full(ids.size, np.nan)
        col[hit] = np.asarray(v, float)[order][pos[hit]]
        out[k] = col
    return out


def write_field_report(output_dir: str | os.PathLike, methods: Sequence[FieldMethod],
                       detections: Any, images: Mapping[str, str], bands: Sequence[str], *,
                       survey: str = "", survey_detection_band: str = "",
                       title: str = "Photo-z validation",
                       truth: Mapping[str, np.ndarray] | None = None,
                       notes: Sequence[str] = (),
                       provenance: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Write ``report.md``, ``metrics.json`` and the figures into ``output_dir``.

    Parameters
    ----------
    methods
        Every method, the image network's first: out-of-fold ensembles of the spectroscopic
        objects (ancil ``redshift``; the first also ``snr`` and the quality flags, which
        define "bright" and the flag subsets for all) and the field's ensembles (forced, one
        row per catalog object, all in the same order).
    detections
        The field's detect-mode ensemble (for the map).
    images
        ``band -> path[EXT]`` of the mosaics (for the map).
    bands
        The bands (the reference band's S/N defines "bright").
    survey, survey_detection_band
        The survey's name and its detection band (the reference band when ``bands`` hold
        it, :func:`rail.deepdisc.sim.surveys.reference_band`).
    truth
        True redshifts of the catalog objects (:func:`load_truth`), for simulated fields:
        every method is then also evaluated on the objects without spectra.
    notes
        Lines on what ran (template set, fusion), printed under the title.
    """
    from rail.deepdisc.hybrid.ensembles import align

    os.makedirs(output_dir, exist_ok=True)
    ref = reference_band(bands, survey, survey_detection_band)
    image = methods[0]
    flags = {k: np.asarray(v) for k, v in (image.oof.ancil or {}).items()
             if k.startswith("flag_")}
    oof = [MethodResult(m.name, _with_ancil(align(image.oof, m.oof, m.name), flags))
           for m in methods]
    truth_oof = {"redshift": np.asarray(image.oof.ancil["redshift"], float).ravel(),
                 f"snr_{ref}": np.asarray(image.oof.ancil["snr"], float).ravel()}
    paths = write_report(os.path.join(output_dir, "oof"), oof, truth_oof, survey=survey,
                         survey_detection_band=ref,
                         title=f"{title}: out of fold, spectroscopic objects",
                         provenance=provenance)
    metrics = {"oof": _read_metrics(paths["metrics"])}
    ranking = rank_methods(metrics["oof"]["all"])
    stability = ranking_stability(oof, truth_oof["redshift"])
    judged = judgement_note(stability, ranking[0], truth_oof["redshift"].size)
    compared = {"oof": headline_comparison(oof, truth_oof["redshift"],
                                           truth_oof[f"snr_{ref}"] > 10, ranking[0])}
    metrics.update(ranking=ranking, headline=ranking[0], rank_metric=RANK_METRIC,
                   ranking_stability=stability, judgement=judged, comparison=compared)
    md = [f"# {title}", "", *[f"- {n}" for n in notes], "",
          f"**Headline catalog: {ranking[0]}** (methods ranked by the out-of-fold "
          f"{RANK_METRIC.replace('_', ' ')} of all spectroscopic objects: "
          + ", ".join(f"{n} {metrics['oof']['all'][n][RANK_METRIC]:.3f}" for n in ranking)
          + ").", "", judged, "",
          *comparison_lines(compared["oof"], ranking[0], "spectroscopic objects, out of fold"),
          "## Out of fold, on the spectroscopic objects", "",
          "Each PDF comes from a model (network weights, template zero points and prior, "
          "fusion exponents) that never saw that object's redshift.", "",
          _section(paths["report"], "oof")]
    if truth is not None:
        md += _photometric_section(output_dir, methods, truth, ref, survey, title, metrics)
    extra = {"field_map": os.path.join(output_dir, "field_map.png"),
             "field_nz": os.path.join(output_dir, "field_nz.png")}
    plot_field_map(images, detections, extra["field_map"],
                   f"{title}: detections coloured by photo-z")
    plot_field_nz(image.field, extra["field_nz"], f"{title}: N(z) of the field")
    md += ["## The field", "", f"{image.field.npdf} catalog objects, {detections.npdf} "
           "detections.", "", "![field map](field_map.png)", "", "![N(z)](field_nz.png)", ""]
    out = {"report": os.path.join(output_dir, "report.md"),
           "metrics": os.path.join(output_dir, "metrics.json"), **extra}
    with atomic_output(out["report"], "report") as tmp:
        tmp.write_text("\n".join(md) + "\n", encoding="utf-8")
    with atomic_output(out["metrics"], "metrics") as tmp:
        tmp.write_text(json.dumps({**metrics, "notes": list(notes),
                                   "provenance": provenance or {}}, indent=1,
                                  default=_json_default), encoding="utf-8")
    return out


def _photometric_section(output_dir: str, methods: Sequence[FieldMethod],
                         truth: Mapping[str, np.ndarray], ref: str, survey: str, title: str,
                         metrics: dict[str, Any]) -> list[str]:
    """Every method on the catalog objects without spectra, against the simulation's truth
    (rows of the field ensembles)."""
    from rail.deepdisc.hybrid.ensembles import ids_of

    field = methods[0].field
    ids = ids_of(field)
    if ids is None:
        raise InputError("the field ensemble has no object ids to match the truth catalog")
    rows = _truth_rows(truth, ids)
    spec = np.isfinite(np.asarray((field.ancil or {}).get("redshift", np.full(ids.size, np.nan)),
                                  float).ravel())
    keep = np.flatnonzero(~spec & np.isfinite(rows["redshift"]))
    if f"snr_{ref}" not in rows:
        rows[f"snr_{ref}"] = np.asarray(field.ancil["snr"], float).ravel()
    sub = {k: v[keep] for k, v in rows.items()}
    flags = {k: np.asarray(v).ravel()[keep] for k, v in (field.ancil or {}).items()
             if k.startswith("flag_")}
    results = [MethodResult(m.name, _with_ancil(m.field[keep], flags)) for m in methods]
    paths = write_report(os.path.join(output_dir, "photometric"), results, sub, survey=survey,
                         survey_detection_band=ref,
                         title=f"{title}: objects without spectra (simulation's truth)")
    metrics["photometric"] = _read_metrics(paths["metrics"])
    headline = metrics["headline"]
    compared = headline_comparison(results, sub["redshift"], sub[f"snr_{ref}"] > 10, headline)
    metrics["comparison"]["photometric"] = compared
    return ["## The objects without spectra (truth from the simulation)", "",
            *comparison_lines(compared, headline, "objects without spectra"),
            f"{keep.size} catalog objects without a spectroscopic redshift, each method's "
            "catalog PDFs against the true redshifts: the sample a photometric catalog "
            "exists for (fainter and redder than the spectroscopic one).", "",
            _section(paths["report"], "photometric")]


def _with_ancil(ens: Any, columns: Mapping[str, np.ndarray]) -> Any:
    """The ensemble with extra ancillary columns (e.g. the image network's flags)."""
    ancil = {k: np.asarray(v).ravel() for k, v in (ens.ancil or {}).items()}
    for k, v in columns.items():
        ancil.setdefault(k, v)
    ens.set_ancil(ancil)
    return ens


def _read_metrics(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)["metrics"]


def _section(report: str, folder: str) -> str:
    """The body of a sub-report (its title dropped, headings one level down, figures
    linked into its folder)."""
    with open(report, encoding="utf-8") as fin:
        lines = fin.read().splitlines()[1:]
    text = "\n".join("#" + x if x.startswith("#") else x for x in lines)
    return text.replace("](", f"]({folder}/")
