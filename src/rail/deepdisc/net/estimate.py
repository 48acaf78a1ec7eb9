"""From network outputs to rows: qp ensembles with ancillary columns, detection tables.

Used by ``DeepDiscEstimator`` (and ``rail-deepdisc estimate``) chunk by chunk: forced rows
(one per object of the chunk, in order) and detect rows (one per detection, matched to the
chunk's objects). Quality columns come from :mod:`rail.deepdisc.net.quality`. A row
whose mixture is not finite is never written: the chunk is refused, naming its scenes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np
import torch

from rail.deepdisc.errors import InputError, ModelFileError
from rail.deepdisc.evaluate.matching import box_iou, greedy_match
from rail.deepdisc.net.config import EstimateConfig
from rail.deepdisc.net.density import FeatureDensity
from rail.deepdisc.net.field_merge import TileLayout, merge_tiles
from rail.deepdisc.net.model_file import model_meta
from rail.deepdisc.net.network import DeepDiscNet
from rail.deepdisc.net.predict import Mixtures, object_boxes, predict_detect, predict_forced
from rail.deepdisc.net.quality import quality_flags
from rail.deepdisc.sim.surveys import reference_band
from rail.deepdisc.store.scenes import SceneChunk, SceneStore

_BOX = ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")


def check_bands(model: dict[str, Any], bands, source: str) -> None:
    """Fail at once if the scenes' bands are not the model's (same names, same order)."""
    model_bands = list(model_meta(model)["bands"])
    if list(bands) != model_bands:
        raise ModelFileError(f"{source} has bands {list(bands)} but the model was trained "
                             f"on bands {model_bands}")


def pixel_to_sky(header: bytes | str, x: np.ndarray, y: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec (deg) of 0-based scene pixels from a scene's WCS header text."""
    if len(x) == 0:
        return np.zeros(0), np.zeros(0)
    text = header.decode() if isinstance(header, bytes) else str(header)
    if not text.strip():
        return np.full(len(x), np.nan), np.full(len(x), np.nan)
    from astropy.io import fits
    from astropy.wcs import WCS

    ra, dec = WCS(fits.Header.fromstring(text)).all_pix2world(x, y, 0)
    return np.asarray(ra, float), np.asarray(dec, float)


def _point_estimates(mix: Mixtures, cfg: EstimateConfig, chunk: SceneChunk,
                     scenes: np.ndarray) -> dict[str, np.ndarray]:
    """``zmode``, ``zmean``, ``zmedian`` of the mixtures; refuses non-finite mixtures."""
    bad = ~(np.isfinite(mix.weights).all(axis=1) & np.isfinite(mix.means).all(axis=1)
            & np.isfinite(mix.stds).all(axis=1))
    if bad.any():
        raise InputError(f"{chunk.info.path}: the network gave non-finite redshift PDFs for "
                         f"{int(bad.sum())} objects of scenes "
                         f"{sorted(set(scenes[bad].tolist()))[:10]}; their pixels hold values "
                         "it cannot use (nothing written)")
    grid = cfg.zgrid
    return {"zmode": mix.mode(grid), "zmean": mix.mean(), "zmedian": mix.median(grid)}


def _quality(net: DeepDiscNet, chunk: SceneChunk, features: np.ndarray, boxes: np.ndarray,
             scenes: np.ndarray, scores: np.ndarray, density: FeatureDensity | None
             ) -> dict[str, np.ndarray]:
    h, w = chunk.images.shape[-2:]
    info = chunk.info
    ref = info.bands.index(reference_band(info.bands, info.survey, info.detection_band))
    return quality_flags(features, boxes, scenes, scores, h, w, ref, net.n_bands, density)


def forced_rows(net: DeepDiscNet, chunk: SceneChunk, cfg: EstimateConfig,
                device: torch.device, density: FeatureDensity | None = None):
    """The qp ensemble (one row per object, in order) and detections table of a chunk."""
    pred = predict_forced(net, chunk, cfg.batch_size, device)
    obj = chunk.objects
    mix: Mixtures = pred["mixtures"]
    scenes = obj["scene"].astype(np.int64)
    boxes = object_boxes(obj) if len(mix) else np.zeros((0, 4))
    ancil = {
        "object_id": obj["object_id"].astype(np.int64), "scene": scenes,
        "x": obj["x"], "y": obj["y"], "ra": obj["ra"], "dec": obj["dec"],
        "score": pred["score"], **_point_estimates(mix, cfg, chunk, scenes),
        "redshift": obj["redshift"].astype(float), "mask_area": pred["mask_area"],
        **_quality(net, chunk, pred["features"], boxes, scenes, pred["score"], density),
    }
    ens = mix.ensemble()
    ens.set_ancil(ancil)
    table = {"scene": ancil["scene"], "object_id": ancil["object_id"],
             "bbox_x0": boxes[:, 0], "bbox_y0": boxes[:, 1], "bbox_x1": boxes[:, 2],
             "bbox_y1": boxes[:, 3], "score": pred["score"], "mask_area": pred["mask_area"],
             "x": obj["x"], "y": obj["y"], "ra": obj["ra"], "dec": obj["dec"],
             "separation": np.zeros(len(mix)), "iou": np.ones(len(mix))}
    return ens, table


def detect_rows(net: DeepDiscNet, chunk: SceneChunk, cfg: EstimateConfig,
                device: torch.device, density: FeatureDensity | None = None
                ) -> dict[str, Any]:
    """Detections of a chunk, matched to its objects: the detection and ancillary columns,
    and the mixtures (``weights``, ``means``, ``stds``, two-dimensional)."""
    det = predict_detect(net, chunk, cfg.batch_size, device, cfg.score_threshold,
                         cfg.nms_threshold)
    n = len(det["score"])
    obj = chunk.objects
    pixel = chunk.info.pixel_scale_arcsec
    ra, dec = np.full(n, np.nan), np.full(n, np.nan)
    oid = np.full(n, -1, dtype=np.int64)
    z = np.full(n, np.nan)
    sep = np.full(n, np.nan)
    iou_best = np.zeros(n)
    dboxes = np.stack([det[c] for c in _BOX], axis=1)
    for i in range(len(chunk)):
        scene = chunk.scene_start + i
        d = np.flatnonzero(det["scene"] == scene)
        if d.size == 0:
            continue
        ra[d], dec[d] = pixel_to_sky(chunk.scenes["wcs"][i], det["x"][d], det["y"][d])
        sl = chunk.object_slice(i)
        o = {k: v[sl] for k, v in obj.items()}
        if len(o["object_id"]) == 0:
            continue
        oboxes = np.stack([o[c] for c in _BOX], axis=1)
        has_box = (oboxes[:, 2] > oboxes[:, 0]) & (oboxes[:, 3] > oboxes[:, 1])
        dist = np.hypot(det["x"][d, None] - o["x"][None, :], det["y"][d, None] - o["y"][None, :])
        match = greedy_match(_match_similarity(dboxes[d], oboxes, has_box, dist * pixel,
                                               cfg.match_radius), det["score"][d], 0.5)
        ok = match >= 0
        oid[d[ok]] = o["object_id"][match[ok]]
        z[d[ok]] = o["redshift"][match[ok]]
        sep[d[ok]] = dist[np.flatnonzero(ok), match[ok]] * pixel
        iou_best[d[ok]] = box_iou(dboxes[d[ok]], oboxes[match[ok]], paired=True)
    mix: Mixtures = det["mixtures"]
    return {"scene": det["scene"], "object_id": oid, "bbox_x0": det["bbox_x0"],
            "bbox_y0": det["bbox_y0"], "bbox_x1": det["bbox_x1"], "bbox_y1": det["bbox_y1"],
            "score": det["score"], "mask_area": det["mask_area"], "x": det["x"], "y": det["y"],
            "ra": ra, "dec": dec, "separation": sep, "iou": iou_best, "redshift": z,
            **_quality(net, chunk, det["features"], dboxes, det["scene"], det["score"],
                       density),
            **_point_estimates(mix, cfg, chunk, det["scene"]),
            "weights": mix.weights, "means": mix.means, "stds": mix.stds}


def _match_similarity(det_boxes: np.ndarray, obj_boxes: np.ndarray, has_box: np.ndarray,
                      dist_arcsec: np.ndarray, radius: float) -> np.ndarray:
    """IoU for objects with a box; for objects without one, a score in [0.5, 1] that falls
    with distance inside ``radius`` (arcsec) and 0 beyond, so both pass a 0.5 threshold."""
    iou = box_iou(det_boxes, obj_boxes)
    near = dist_arcsec <= radius
    by_distance = np.where(near, 1.0 - 0.5 * dist_arcsec / max(radius, 1e-12), 0.0)
    return np.where(has_box[None, :], iou, by_distance)


#: columns of the detections table
DETECTION_COLUMNS = ("scene", "object_id", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
                     "score", "mask_area", "x", "y", "ra", "dec", "separation", "iou")
#: ancillary columns of the ensembles
ANCIL_COLUMNS = ("object_id", "scene", "x", "y", "ra", "dec", "score", "zmode", "zmean",
                 "zmedian", "redshift", "mask_area", "flag_edge", "flag_low_score", "snr",
                 "flag_low_snr", "ood_score", "flag_ood", "blend", "flag_blend")
#: what the whole-field selection reads of every detection
SELECTION_COLUMNS = ("scene", "x", "y", *_BOX, "score")
_MIXTURE = ("weights", "means", "stds")

Selector = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, dict[str, np.ndarray]]]


def field_selector(store: SceneStore, cfg: EstimateConfig) -> Selector | None:
    """For detect mode on a tiled mosaic (a store written by the tiler), the selection that
    removes the duplicates of overlapping tiles and matches the rest over the whole field
    (:func:`rail.deepdisc.net.field_merge.merge_tiles`); None for other stores."""
    layout = TileLayout.from_store(store)
    if layout is None or cfg.mode != "detect":
        return None
    objects = store.objects(["scene", "object_id", "x", "y", *_BOX, "redshift"])
    pixel = store.info.pixel_scale_arcsec

    def select(columns: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return merge_tiles(columns, layout, objects, pixel, cfg.nms_threshold,
                           cfg.match_radius)

    return select


def _selection(parts: list[h5py.File], select: Selector | None
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The kept rows (ascending) of the joined parts and their updated columns."""
    n = sum(int(h.attrs.get("n_rows", 0)) for h in parts)
    if select is None:
        return np.arange(n), {}
    columns = {c: np.concatenate([h[c][:] if c in h else np.zeros(0) for h in parts])
               for c in SELECTION_COLUMNS}
    keep, updates = select(columns)
    order = np.argsort(keep, kind="stable")
    return np.asarray(keep)[order], {k: np.asarray(v)[order] for k, v in updates.items()}


def write_detect_outputs(parts: list[str], select: Selector | None, ensemble_path: str,
                         table_path: str, n_components: int) -> int:
    """Join detect-mode parts (one per rank, in rank order) into the ensemble and the
    detections table, keeping the rows ``select`` keeps (all without one), a bounded number of
    rows at a time; removes the parts. Returns the number of rows written."""
    import qp

    from rail.deepdisc.store.parts import JOIN_ROWS, PartWriter

    handles = [h5py.File(p, "r") for p in parts]
    try:
        keep, updates = _selection(handles, select)
        empty = np.zeros((0, n_components))
        meta = qp.Ensemble(qp.mixmod, data={"weights": empty, "means": empty,
                                            "stds": empty}).build_tables()["meta"]
        ens, table = PartWriter(ensemble_path), PartWriter(table_path)
        offset = 0
        for h in handles:
            n = int(h.attrs.get("n_rows", 0))
            for s in range(0, n, JOIN_ROWS):
                e = min(s + JOIN_ROWS, n)
                lo, hi = np.searchsorted(keep, [offset + s, offset + e])
                local = keep[lo:hi] - offset - s
                rows = {c: h[c][s:e][local] for c in h if c in (*_MIXTURE, *ANCIL_COLUMNS,
                                                                 *DETECTION_COLUMNS)}
                rows.update({k: v[lo:hi] for k, v in updates.items()})
                _append_detect_rows(ens, table, rows, meta)
            offset += n
        if ens.n_rows == 0:
            _append_detect_rows(ens, table, {**{c: empty for c in _MIXTURE},
                                             **{c: np.zeros(0) for c in (*ANCIL_COLUMNS,
                                                                         *DETECTION_COLUMNS)}},
                                meta)
        ens.close()
        table.close()
    finally:
        for h in handles:
            h.close()
    for p in parts:
        os.remove(p)
    return int(keep.size)


def _append_detect_rows(ens, table, rows: dict[str, np.ndarray], meta) -> None:
    ens.append({**{f"data/{c}": rows[c] for c in _MIXTURE},
                **{f"ancil/{c}": rows[c] for c in ANCIL_COLUMNS}}, meta=meta)
    table.append({c: rows[c] for c in DETECTION_COLUMNS})
