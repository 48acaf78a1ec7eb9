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

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rail.deepdisc.bands import reference_band
from rail.deepdisc.evaluate.catalog import QUALITY_BITS
from rail.deepdisc.evaluate.display import rgb_composite, subplots
from rail.deepdisc.evaluate.report import MethodResult, _save, write_report


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


def write_field_report(output_dir: str | os.PathLike, oof: Any, field: Any, detections: Any,
                       images: Mapping[str, str], bands: Sequence[str], *, survey: str = "",
                       title: str = "Photo-z validation",
                       provenance: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Write ``report.md``, ``metrics.json`` and the figures into ``output_dir``.

    Parameters
    ----------
    oof
        Out-of-fold ensemble of the spectroscopic objects (ancil ``redshift``, ``snr``,
        quality flags).
    field, detections
        The field's forced and detect-mode ensembles.
    images
        ``band -> path[EXT]`` of the mosaics (for the map).
    bands
        The bands (the reference band's S/N defines "bright").
    """
    os.makedirs(output_dir, exist_ok=True)
    ref = reference_band(bands, survey)
    truth = {"redshift": np.asarray(oof.ancil["redshift"], float),
             f"snr_{ref}": np.asarray(oof.ancil["snr"], float)}
    paths = write_report(output_dir, [MethodResult("DeepDISC, out of fold", oof)], truth,
                         survey=survey, title=title, provenance=provenance)
    extra = {"field_map": os.path.join(output_dir, "field_map.png"),
             "field_nz": os.path.join(output_dir, "field_nz.png")}
    plot_field_map(images, detections, extra["field_map"],
                   f"{title}: detections coloured by photo-z")
    plot_field_nz(field, extra["field_nz"], f"{title}: N(z) of the field")
    with open(paths["report"], "a", encoding="utf-8") as fout:
        fout.write(f"\n## The field\n\n{field.npdf} catalog objects, {detections.npdf} "
                   "detections.\n\n![field map](field_map.png)\n\n![N(z)](field_nz.png)\n")
    return {**paths, **extra}
