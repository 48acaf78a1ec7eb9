"""Simulated scenes written as survey cutouts, the files cutout services deliver.

For tests and benchmarks of :mod:`rail.deepdisc.store.cutouts` (what a user holds, made from
scenes whose truth is known):

* :func:`centred_cutouts`: a scene store of one scene per object, a square window of its
  scene centred on the object's pixel (neighbours stay in the pixels, unlisted; pixels
  beyond the scene are zero padding with inverse variance 0, as services pad cutouts that
  reach beyond the survey);
* :func:`write_legacy_cutouts`, :func:`write_hsc_cutouts`, :func:`write_array_cutouts`: one
  cutout per object of a store, holding its scene's pixels, in the Legacy Surveys (cube in
  nanomaggies, band list and WCS in the header, inverse variance as a second HDU), HSC-SSP
  (one file per band: FLUXMAG0, IMAGE in counts of zero point 27, MASK with ``NO_DATA``,
  VARIANCE) or array (``.npz`` in MJy/sr, with ``ivar`` and ``id``) format, and a FITS
  catalog (``id``, ``ra``, ``dec``, ``redshift``, the object's box ``box_x0`` ...
  ``box_y1`` in cutout pixels, and the store's ``mag_<band>``). :class:`CutoutFiles` says how
  to read them back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rail.deepdisc.magnitudes import NJY_ZEROPOINT
from rail.deepdisc.store.atomic import atomic_output
from rail.deepdisc.store.cutout_formats import (
    HSC_DEFAULT_PLANES,
    celestial_wcs,
    shifted_wcs_header,
    tangent_header,
    to_njy_factor,
)
from rail.deepdisc.store.provenance import provenance_json
from rail.deepdisc.store.scenes import SceneStore, SceneWriter
from rail.deepdisc.store.tiling import edge_distance

#: nJy per nanomaggy
_NMGY = 3631.0
#: AB zero point of HSC-SSP coadd counts
HSC_ZEROPOINT = 27.0
#: catalog columns of the object's box in its cutout
BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")
_OWN_ATTRS = {"format", "version", "bands", "pixel_scale_arcsec", "zeropoint_ab", "flux_unit",
              "survey", "provenance"}


@dataclass
class CutoutFiles:
    """Cutout files written from a store, and how :func:`~rail.deepdisc.store.cutouts.
    import_cutouts` reads them back (:meth:`config`)."""

    format: str
    cutouts: str
    catalog: str
    bands: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)

    def config(self, **overrides: Any):
        """The :class:`~rail.deepdisc.store.cutouts.CutoutConfig` that reads them, with the
        catalog's ``id`` and ``redshift`` columns and its boxes."""
        from rail.deepdisc.store.cutouts import CutoutConfig

        return CutoutConfig.from_mapping({
            "format": self.format, "cutouts": self.cutouts, "bands": list(self.bands),
            "id_col": "id", "redshift_col": "redshift", "box_cols": list(BOX_COLUMNS),
            **self.options, **overrides})


def _objects(store: SceneStore) -> Iterator[tuple[np.ndarray, np.ndarray, str, dict]]:
    """Each object of a store with its scene's pixels, ivar and WCS (scene order)."""
    for chunk in store.iter_chunks(scenes_per_chunk=16):
        for i in range(len(chunk)):
            objs = chunk.scene_objects(i)
            wcs = chunk.scenes["wcs"][i]
            wcs = wcs.decode() if isinstance(wcs, bytes) else str(wcs)
            ivar = chunk.ivar[i] if chunk.ivar is not None else \
                np.broadcast_to(np.float32(1.0 / np.square(store.info.attrs["noise_sigma"]))
                                [:, None, None], chunk.images[i].shape)
            for j in range(len(objs["object_id"])):
                yield chunk.images[i], ivar, wcs, {k: v[j] for k, v in objs.items()}, \
                    (chunk.segmap[i] if chunk.segmap is not None else None), \
                    {k: v[i] for k, v in chunk.scenes.items()}


def centred_cutouts(source: str | os.PathLike, output: str | os.PathLike, size: int,
                    keep: np.ndarray | None = None) -> str:
    """A scene store of ``size`` x ``size`` windows of ``source``'s scenes, one per object
    (those where ``keep``, in store order), centred on the object's pixel.

    Objects and their columns are copied, positions and boxes shifted into the window
    (boxes clipped to it), ``edge_distance`` recomputed; ``/segmap`` keeps the object's own
    footprint only; pixels beyond the scene are 0 with inverse variance 0.
    """
    with SceneStore(source) as store:
        info = store.info
        keep = np.ones(store.n_objects, bool) if keep is None else np.asarray(keep, bool)
        attrs = {k: v for k, v in info.attrs.items() if k not in _OWN_ATTRS}
        prov = provenance_json({"source": os.fspath(source), "size": int(size),
                                "n_objects": int(keep.sum())},
                               "rail.deepdisc.sim.cutout_files.centred_cutouts")
        with SceneWriter(output, info.bands, size, size,
                         pixel_scale_arcsec=info.pixel_scale_arcsec,
                         zeropoint_ab=info.zeropoint_ab, flux_unit=info.flux_unit,
                         survey=info.survey, with_ivar=True, with_segmap=store.has_segmap,
                         provenance=prov, attrs=attrs, inputs=[source]) as writer:
            for k, (image, ivar, wcs, obj, segmap, scene) in enumerate(_objects(store)):
                if keep[k]:
                    writer.add_scenes(*_window(image, ivar, wcs, obj, segmap, scene, size))
    return os.fspath(output)


def _window(image, ivar, wcs, obj, segmap, scene, size):
    c, h, w = image.shape
    x0 = int(np.floor(obj["x"] + 0.5)) - size // 2
    y0 = int(np.floor(obj["y"] + 0.5)) - size // 2
    sy = slice(max(y0, 0), min(y0 + size, h))
    sx = slice(max(x0, 0), min(x0 + size, w))
    dy = slice(sy.start - y0, sy.stop - y0)
    dx = slice(sx.start - x0, sx.stop - x0)
    out = np.zeros((1, c, size, size), np.float32)
    out_ivar = np.zeros_like(out)
    out[0, :, dy, dx] = image[:, sy, sx]
    out_ivar[0, :, dy, dx] = ivar[:, sy, sx]
    seg = None
    if segmap is not None:
        seg = np.zeros((1, size, size), np.int32)
        seg[0, dy, dx] = np.where(segmap[sy, sx] == obj["object_id"], obj["object_id"], 0)
    row = {k: np.asarray([v]) for k, v in obj.items() if k != "scene"}
    row["x"], row["y"] = row["x"] - x0, row["y"] - y0
    for name, shift, top in (("bbox_x0", x0, size), ("bbox_x1", x0, size),
                             ("bbox_y0", y0, size), ("bbox_y1", y0, size)):
        row[name] = np.clip(row[name] - shift, 0, top)
    if "edge_distance" in row:
        row["edge_distance"] = edge_distance(row["x"], row["y"], size, size).astype(
            row["edge_distance"].dtype)
    new_scene = {k: v for k, v in scene.items() if k not in ("scene", "wcs", "x0", "y0")}
    new_scene.update({"wcs": shifted_wcs_header(wcs, -x0, -y0, size, size),
                      "x0": int(scene["x0"]) + x0, "y0": int(scene["y0"]) + y0,
                      "tile": int(scene["scene"])})
    return out, [row], [new_scene], out_ivar, seg


def _catalog(path: Path, rows: list[dict[str, Any]]) -> str:
    from astropy.table import Table

    table = Table({k: np.array([r[k] for r in rows]) for k in rows[0]})
    with atomic_output(path, "cutout catalog") as tmp:
        table.write(tmp, format="fits")
    return os.fspath(path)


def _catalog_row(obj: dict, bands: tuple[str, ...]) -> dict[str, Any]:
    row = {"id": int(obj["object_id"]), "ra": float(obj["ra"]), "dec": float(obj["dec"]),
           "redshift": float(obj["redshift"])}
    row.update({n: int(obj[f"bbox_{n[4:]}"]) for n in BOX_COLUMNS})
    row.update({f"mag_{b}": float(obj[f"mag_{b}"]) for b in bands if f"mag_{b}" in obj})
    return row


def _wcs_cards(wcs: str):
    """A header holding a scene's WCS, without its image-size keywords."""
    from astropy.io import fits

    header = fits.Header.fromstring(wcs)
    for key in ("NAXIS", "NAXIS1", "NAXIS2", "NAXIS3"):
        header.remove(key, ignore_missing=True)
    return header


def _letter(band: str) -> str:
    return band.rsplit("_", 1)[-1]


def write_legacy_cutouts(source: str | os.PathLike, folder: str | os.PathLike, *,
                         invvar: bool = True) -> CutoutFiles:
    """One Legacy Surveys cutout file per object of ``source`` (``<folder>/<id>.fits``): a
    cube in nanomaggies with ``BANDS`` and ``BAND<i>``, the scene's WCS, and (``invvar``)
    the inverse variance as a second HDU; pixels without data are 0 (with ivar 0)."""
    from astropy.io import fits

    folder = Path(folder)
    rows = []
    with SceneStore(source) as store:
        bands = store.bands
        letters = "".join(_letter(b) for b in bands)
        for image, ivar, wcs, obj, _, _ in _objects(store):
            header = _wcs_cards(wcs)
            header["BANDS"] = letters
            for i, letter in enumerate(letters):
                header[f"BAND{i}"] = letter
            hdus = [fits.PrimaryHDU((image / _NMGY).astype(np.float32), header)]
            if invvar:
                hdus.append(fits.ImageHDU((ivar * _NMGY**2).astype(np.float32), header,
                                          name="INVVAR"))
            with atomic_output(folder / f"{int(obj['object_id'])}.fits", "cutout") as tmp:
                fits.HDUList(hdus).writeto(tmp)
            rows.append(_catalog_row(obj, bands))
    header_bands = {_letter(b): b for b in bands}
    return CutoutFiles("legacy", os.fspath(folder / "{id}.fits"),
                       _catalog(folder / "catalog.fits", rows), tuple(bands),
                       {"header_bands": header_bands})


def write_hsc_cutouts(source: str | os.PathLike, folder: str | os.PathLike) -> CutoutFiles:
    """HSC-SSP cutouts of every object of ``source``, one file per band
    (``<folder>/<id>-HSC-<LETTER>.fits``): FLUXMAG0 in the primary header, IMAGE in counts
    (zero point 27), MASK with the ``NO_DATA`` plane where there are no data, VARIANCE."""
    from astropy.io import fits

    folder = Path(folder)
    to_counts = 10.0 ** (0.4 * (HSC_ZEROPOINT - NJY_ZEROPOINT))
    rows = []
    with SceneStore(source) as store:
        bands = store.bands
        file_bands = {b: f"HSC-{_letter(b).upper()}" for b in bands}
        for image, ivar, wcs, obj, _, _ in _objects(store):
            header = _wcs_cards(wcs)
            for b, band in enumerate(bands):
                primary = fits.PrimaryHDU()
                primary.header["FLUXMAG0"] = 10.0 ** (0.4 * HSC_ZEROPOINT)
                nodata = ivar[b] <= 0
                mask_header = fits.Header()
                for plane, bit in HSC_DEFAULT_PLANES.items():
                    mask_header[f"HIERARCH MP_{plane}"] = bit
                mask = np.where(nodata, 1 << HSC_DEFAULT_PLANES["NO_DATA"], 0).astype(np.int32)
                with np.errstate(divide="ignore"):
                    variance = np.where(nodata, np.nan, 1.0 / (ivar[b] * to_counts**-2))
                hdul = fits.HDUList([
                    primary,
                    fits.ImageHDU(np.where(nodata, np.nan, image[b] * to_counts)
                                  .astype(np.float32), header, name="IMAGE"),
                    fits.ImageHDU(mask, mask_header, name="MASK"),
                    fits.ImageHDU(variance.astype(np.float32), header, name="VARIANCE")])
                name = f"{int(obj['object_id'])}-{file_bands[band]}.fits"
                with atomic_output(folder / name, "cutout") as tmp:
                    hdul.writeto(tmp)
            rows.append(_catalog_row(obj, bands))
    return CutoutFiles("hsc", os.fspath(folder / "{id}-{band}.fits"),
                       _catalog(folder / "catalog.fits", rows), tuple(bands),
                       {"file_bands": file_bands})


def write_array_cutouts(source: str | os.PathLike, path: str | os.PathLike,
                        unit: str = "MJy/sr") -> CutoutFiles:
    """Every object's cutout of ``source`` in one ``.npz`` (``images`` in ``unit``,
    ``ivar``, ``id``; N x bands x H x W) and a FITS catalog beside it
    (``<stem>_catalog.fits``)."""
    path = Path(path)
    images, ivars, ids, rows = [], [], [], []
    with SceneStore(source) as store:
        bands, scale = store.bands, store.info.pixel_scale_arcsec
        for image, ivar, _, obj, _, _ in _objects(store):
            images.append(image)
            ivars.append(ivar)
            ids.append(int(obj["object_id"]))
            rows.append(_catalog_row(obj, bands))
    h, w = images[0].shape[1:]
    header = tangent_header(rows[0]["ra"], rows[0]["dec"], scale, h, w)
    factor = to_njy_factor(unit, None, header, celestial_wcs(header, "arrays"), os.fspath(path))
    with atomic_output(path, "cutout array file") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, images=(np.stack(images) / factor).astype(np.float32),
                     ivar=(np.stack(ivars) * factor**2).astype(np.float32),
                     id=np.array(ids, np.int64))
    catalog = _catalog(path.with_name(f"{path.stem}_catalog.fits"), rows)
    return CutoutFiles("array", os.fspath(path), catalog, tuple(bands),
                       {"unit": unit, "pixel_scale": scale})
