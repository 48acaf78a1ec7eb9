"""Multi-band photometry of scene-store objects for template fitting (photutils).

Every object of a store (forced, in ``/objects`` order) or every row of a detections table
is measured in all bands with the same apertures, so colours are matched; the methods are
described in :mod:`rail.deepdisc.fit.apertures`, the options in
:mod:`rail.deepdisc.fit.photometry_options`, the output columns, flags and magnitude
conventions in :mod:`rail.deepdisc.fit.photometry_table`. This module runs a whole store,
chunk by chunk of whole scenes (one rank's share of them under MPI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from rail.deepdisc.errors import SceneStoreError
from rail.deepdisc.fit.apertures import measure_scene
from rail.deepdisc.fit.photometry_options import PhotometryConfig
from rail.deepdisc.fit.photometry_setup import PhotometrySetup, prepare
from rail.deepdisc.fit.photometry_table import (
    DETECTION_COLUMNS,
    assemble,
    fluxes_to_mags,
    read_detections,
    read_detections_file,
)
from rail.deepdisc.store.scenes import SceneChunk, SceneStore

#: the columns of an output row that come from the object or detection, not the pixels
_BASE_COLUMNS = ("scene", "object_id", "x", "y", "ra", "dec", "redshift")


def iter_measurements(store: SceneStore, cfg: PhotometryConfig, *,
                      detections: Mapping[str, Any] | None = None,
                      objects_per_chunk: int = 10000, rank: int = 0, size: int = 1,
                      setup: PhotometrySetup | None = None
                      ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Measure this rank's chunks of scenes.

    Yields
    ------
    rows, columns
        The output row numbers (store object rows in forced mode, detection-table rows
        otherwise) and the output columns for them (see :func:`output_columns`).
    """
    setup = setup or prepare(store, cfg)
    det = None if detections is None else read_detections(detections, store.n_scenes)
    if det is None and cfg.method == "kron" and not store.has_segmap:
        raise SceneStoreError(f"method 'kron' needs /segmap, which scene store {store.path} "
                              "lacks; use method 'aperture' or give detections")
    if det is not None:
        det_order = np.argsort(det["scene"], kind="stable")
        det_scene = det["scene"][det_order]
        objects_all = store.objects(["object_id", "redshift"]) if "object_id" in det else None
    for chunk in store.iter_chunks(objects_per_chunk=objects_per_chunk, rank=rank, size=size):
        if det is None:
            rows = np.arange(chunk.obj_start, chunk.obj_end)
            base = {k: chunk.objects[k] for k in _BASE_COLUMNS}
        else:
            lo, hi = np.searchsorted(det_scene, [chunk.scene_start, chunk.scene_end])
            rows = det_order[lo:hi]
            base = _detection_base(det, rows, chunk, objects_all)
        meas = _measure_chunk(setup, chunk, base, det, rows)
        yield rows, output_columns(setup, base, meas)


def _detection_base(det: dict[str, np.ndarray], rows: np.ndarray, chunk: SceneChunk,
                    objects_all: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """The base columns of detections: ids, redshifts of matched objects, sky positions."""
    n = rows.size
    base = {"scene": det["scene"][rows], "x": det["x"][rows].astype(float),
            "y": det["y"][rows].astype(float)}
    base["object_id"] = (det["object_id"][rows].astype(np.int64) if "object_id" in det
                         else np.full(n, -1, np.int64))
    base["redshift"] = _object_redshifts(base["object_id"], objects_all)
    base["ra"], base["dec"] = _sky_positions(chunk, base["scene"], base["x"], base["y"])
    return base


def _object_redshifts(ids: np.ndarray, objects: dict[str, np.ndarray] | None) -> np.ndarray:
    """Redshift of the store object with each id (NaN for -1 or an id the store lacks)."""
    z = np.full(ids.size, np.nan)
    if objects is None or ids.size == 0 or objects["object_id"].size == 0:
        return z
    known = objects["object_id"]
    order = np.argsort(known)
    pos = np.clip(np.searchsorted(known[order], ids), 0, known.size - 1)
    hit = (ids >= 0) & (known[order][pos] == ids)
    z[hit] = objects["redshift"][order][pos[hit]]
    return z


def _sky_positions(chunk: SceneChunk, scene: np.ndarray, x: np.ndarray, y: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec (degrees) of pixel positions, with each scene's WCS."""
    from astropy.io import fits
    from astropy.wcs import WCS

    ra, dec = np.full(x.size, np.nan), np.full(x.size, np.nan)
    for i in range(len(chunk)):
        sel = scene == chunk.scene_start + i
        if sel.any():
            wcs = WCS(fits.Header.fromstring(_text(chunk.scenes["wcs"][i])))
            ra[sel], dec[sel] = wcs.all_pix2world(x[sel], y[sel], 0)
    return ra, dec


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _measure_chunk(setup: PhotometrySetup, chunk: SceneChunk, base: dict[str, np.ndarray],
                   det: dict[str, np.ndarray] | None, rows: np.ndarray
                   ) -> dict[str, np.ndarray]:
    n, nb = base["x"].size, len(setup.bands)
    out = {"flux": np.full((n, nb), np.nan), "flux_err": np.full((n, nb), np.nan),
           "flags": np.zeros(n, np.int64)}
    scenes = base["scene"]
    for i in range(len(chunk)):
        sel = np.flatnonzero(scenes == chunk.scene_start + i)
        if sel.size == 0:
            continue
        kwargs: dict[str, Any] = {}
        if det is None:
            kwargs["labels"] = base["object_id"][sel]
        else:
            r = rows[sel]
            kwargs["boxes"] = np.column_stack([det[c][r] for c in DETECTION_COLUMNS[3:]])
            kwargs["scores"] = det["score"][r] if "score" in det else None
        res = measure_scene(setup, chunk.images[i],
                            None if chunk.ivar is None else chunk.ivar[i],
                            None if chunk.segmap is None else chunk.segmap[i],
                            base["x"][sel], base["y"][sel], **kwargs)
        for k in out:
            out[k][sel] = res[k]
    return out


def output_columns(setup: PhotometrySetup, base: dict[str, np.ndarray],
                   meas: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Assemble the output table of a chunk (column order is the file's)."""
    cfg = setup.cfg
    out: dict[str, np.ndarray] = {
        "object_id": np.asarray(base["object_id"], np.int64),
        "scene": np.asarray(base["scene"], np.int64),
        "x": np.asarray(base["x"], float), "y": np.asarray(base["y"], float),
        "ra": np.asarray(base["ra"], float), "dec": np.asarray(base["dec"], float),
        "redshift": np.asarray(base["redshift"], float),
    }
    zp = setup.info.zeropoint_ab
    for b, band in enumerate(setup.bands):
        f, e = meas["flux"][:, b], meas["flux_err"][:, b]
        mag, mag_err = fluxes_to_mags(f, e, zp, cfg.nondetect_snr, cfg.nondetect_val,
                                      cfg.nonobserved_val)
        out[f"flux_{band}"] = f
        out[f"flux_err_{band}"] = e
        out[f"mag_{band}"] = mag
        out[f"mag_err_{band}"] = mag_err
    out["flags"] = np.asarray(meas["flags"], np.int32)
    return out


def empty_table(setup: PhotometrySetup) -> dict[str, np.ndarray]:
    """The output columns with no rows (a store or detections table without objects)."""
    base = {k: np.zeros(0) for k in _BASE_COLUMNS}
    nb = len(setup.bands)
    meas = {"flux": np.zeros((0, nb)), "flux_err": np.zeros((0, nb)),
            "flags": np.zeros(0, np.int64)}
    return output_columns(setup, base, meas)


def measure_store(path: str, cfg: PhotometryConfig, *,
                  detections: Mapping[str, Any] | str | os.PathLike | None = None,
                  objects_per_chunk: int = 10000, progress: bool = False
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Photometry of every object (or detection) of a scene store, in order.

    Parameters
    ----------
    path
        The scene store.
    cfg
        How to measure.
    detections
        A detections table (columns, or the path of an HDF5 file) to measure instead of the
        store's objects.
    objects_per_chunk
        Objects read at a time (whole scenes).
    progress
        Show a progress bar.

    Returns
    -------
    table, notes
        The output columns (one row per store object in ``/objects`` order, or per
        detection in the detections table's order) and notes for provenance (radii,
        aperture corrections). The table's root attributes are
        :func:`~rail.deepdisc.fit.photometry_setup.table_attrs`.
    """
    from tqdm.auto import tqdm

    with SceneStore(path) as store:
        store.require("photometry", objects=detections is None)
        if isinstance(detections, (str, os.PathLike)):
            detections = read_detections_file(detections, store.n_scenes)
        elif detections is not None:
            detections = read_detections(detections, store.n_scenes)
        setup = prepare(store, cfg)
        n = store.n_objects if detections is None else len(detections["scene"])
        parts = []
        with tqdm(total=n, desc="photometry", unit="obj", disable=not progress) as bar:
            for rows, cols in iter_measurements(store, cfg, detections=detections,
                                                objects_per_chunk=objects_per_chunk,
                                                setup=setup):
                parts.append((rows, cols))
                bar.update(rows.size)
    return (assemble(parts, n) if n else empty_table(setup)), setup.notes
