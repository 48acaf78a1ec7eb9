"""Whole-field detection over a tiled mosaic: one row per source on the sky.

Overlapping tiles see the sources of their overlaps twice (or four times at corners), so
detect mode over a store written by :func:`rail.deepdisc.store.mosaic.tile_mosaic` would list
them more than once. :func:`merge_tiles` removes the duplicates in two steps:

1. **ownership** (:func:`rail.deepdisc.store.tiling.owner_tiles`): a detection is kept only by the
   tile where its centre lies farthest from the tile's edge, the rule that also lists each
   catalog object in one tile. The copies cut by a tile edge, whose boxes and redshifts are
   the least reliable, go first;
2. **cross-tile suppression**: two kept detections from different tiles are one source when
   their boxes, clipped to the area both tiles cover, overlap with IoU >= ``iou_threshold``
   (clipping makes the copies of a source cut by either tile's edge comparable). This
   catches sources on the border between two tiles' areas, and sources larger than the
   overlap, whose visible parts the two tiles centre on either side of the border. The copy
   kept is an uncut one (its box does not touch an inner tile edge) if there is one, else
   the cut copy that sees most of the source, then the higher score. Detections of one tile
   are never suppressed against each other here (the network's NMS did that).

Limit: a source larger than the step between tiles (``tile_size - overlap``) is cut in
every tile that holds it, and its parts in tiles that do not overlap cannot be compared, so
it can remain as one fragment per part (each with ``flag_edge``, its box touching its tile's
edge). Tiles should be larger than the largest sources.

Candidate pairs come from a KD-tree (``scipy.spatial.cKDTree``) on the centres; greedy
suppression in score order is solved with a vectorised fixed-point iteration.

The kept detections are then matched to the store's objects over the whole field (mosaic
pixels) with the project's rule: IoU >= 0.5, one to one, highest score first (objects
without a box: by distance within ``match_radius`` arcsec). Boxes are compared where both
tiles see them (:func:`view_iou`), so a detection whose tile differs from the one listing
its object, each box cut by its own tile, still finds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rail.deepdisc.evaluate.matching import box_area, box_iou
from rail.deepdisc.store.tiling import owner_tiles

_BOX = ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")


@dataclass(frozen=True)
class TileLayout:
    """Where the scenes of a tiled store lie on their mosaic."""

    x0: np.ndarray
    y0: np.ndarray
    height: int
    width: int
    mosaic_shape: tuple[int, int]

    @classmethod
    def from_store(cls, store) -> TileLayout | None:
        """The layout of a store written by the tiler, or None for other stores (e.g.
        simulated scenes, which are independent images)."""
        if "tile_overlap" not in store.info.attrs:
            return None
        scenes = store.scenes()
        shape = tuple(int(v) for v in store.info.attrs["mosaic_shape"])
        return cls(np.asarray(scenes["x0"], np.int64), np.asarray(scenes["y0"], np.int64),
                   store.info.height, store.info.width, shape)

    def to_mosaic(self, scene: np.ndarray, x: np.ndarray, y: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Scene pixel positions in mosaic pixels."""
        scene = np.asarray(scene, np.int64)
        return x + self.x0[scene], y + self.y0[scene]

    def boxes(self, scene: np.ndarray, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Boxes (n, 4) of rows with ``scene`` and ``bbox_*`` columns, in mosaic pixels."""
        scene = np.asarray(scene, np.int64)
        shift = np.stack([self.x0[scene], self.y0[scene]] * 2, axis=1)
        return np.stack([np.asarray(columns[c], float) for c in _BOX], axis=1) + shift


def _centres(boxes: np.ndarray) -> np.ndarray:
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)


def _half_diagonal(boxes: np.ndarray) -> np.ndarray:
    return 0.5 * np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def greedy_suppression(winner: np.ndarray, loser: np.ndarray, n: int) -> np.ndarray:
    """Which of ``n`` items survive greedy suppression along (winner, loser) pairs.

    Processing items from the best down, an item survives unless a surviving item beats
    it. With pairs oriented by a total order the pairs form a DAG, and the greedy result is
    the unique fixed point of ``keep[i] = not any(keep[w] for (w, i))``, reached after at
    most (longest chain + 1) vectorised iterations.
    """
    keep = np.ones(n, bool)
    for _ in range(n + 1):
        beaten = np.zeros(n, bool)
        beaten[loser[keep[winner]]] = True
        new = ~beaten
        if np.array_equal(new, keep):
            return keep
        keep = new
    raise RuntimeError("greedy suppression did not converge")  # pragma: no cover


def _truncated(layout: TileLayout, scene: np.ndarray, columns: dict[str, np.ndarray]
               ) -> np.ndarray:
    """Whether each box is cut by an edge of its tile that is not the mosaic's edge."""
    ny, nx = layout.mosaic_shape
    x0, y0 = layout.x0[scene], layout.y0[scene]
    b = [np.asarray(columns[c], float) for c in _BOX]
    return ((b[0] < 1) & (x0 > 0)) | ((b[1] < 1) & (y0 > 0)) | \
        ((b[2] > layout.width - 1) & (x0 + layout.width < nx)) | \
        ((b[3] > layout.height - 1) & (y0 + layout.height < ny))


def view_iou(layout: TileLayout, scene_a: np.ndarray, a: np.ndarray, scene_b: np.ndarray,
             b: np.ndarray) -> np.ndarray:
    """IoU of corresponding boxes (mosaic pixels) of two tiles, as both tiles see them.

    Each pair of boxes is clipped to the area both tiles cover, so the copies of a source
    cut by either tile's edge compare equal (boxes of one tile get their plain IoU).
    """
    scene_a, scene_b = np.asarray(scene_a, np.int64), np.asarray(scene_b, np.int64)
    common = np.stack([np.maximum(layout.x0[scene_a], layout.x0[scene_b]),
                       np.maximum(layout.y0[scene_a], layout.y0[scene_b]),
                       np.minimum(layout.x0[scene_a], layout.x0[scene_b]) + layout.width,
                       np.minimum(layout.y0[scene_a], layout.y0[scene_b]) + layout.height],
                      axis=1).astype(float)
    return box_iou(_clip(a, common), _clip(b, common), paired=True)


def same_source_pairs(layout: TileLayout, scene: np.ndarray, boxes: np.ndarray,
                      iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) of detections of different tiles that are copies of one source: their
    boxes (mosaic pixels) overlap with :func:`view_iou` >= ``iou_threshold``. Candidates
    come from a KD-tree on the box centres (overlapping boxes have centres closer than the
    sum of their half diagonals)."""
    from scipy.spatial import cKDTree

    empty = np.zeros(0, np.int64)
    if len(boxes) < 2:
        return empty, empty
    radius = 2.0 * float(np.max(_half_diagonal(boxes))) + 1e-6
    pairs = cKDTree(_centres(boxes)).query_pairs(radius, output_type="ndarray")
    if pairs.size == 0:
        return empty, empty
    a, b = pairs[:, 0], pairs[:, 1]
    other = scene[a] != scene[b]
    a, b = a[other], b[other]
    same = view_iou(layout, scene[a], boxes[a], scene[b], boxes[b]) >= iou_threshold
    return a[same], b[same]


def deduplicate(layout: TileLayout, scene: np.ndarray, columns: dict[str, np.ndarray],
                score: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Indices of the detections to keep (see the module docstring), in input order.

    Parameters
    ----------
    layout
        The store's tiles.
    scene, columns, score
        Per detection: scene index, ``x``, ``y`` (centre) and ``bbox_*`` (scene pixels),
        score.
    iou_threshold
        IoU (of the boxes clipped to the area both tiles cover) from which detections of
        different tiles are copies of one source.
    """
    scene = np.asarray(scene, np.int64)
    if scene.size == 0:
        return np.zeros(0, np.int64)
    mx, my = layout.to_mosaic(scene, np.asarray(columns["x"], float),
                              np.asarray(columns["y"], float))
    owner = owner_tiles(mx, my, layout.x0, layout.y0, layout.height, layout.width)
    kept = np.flatnonzero(owner == scene)
    if kept.size < 2:
        return kept
    sk = scene[kept]
    cols = {c: np.asarray(columns[c])[kept] for c in _BOX}
    boxes = layout.boxes(sk, cols)
    a, b = same_source_pairs(layout, sk, boxes, iou_threshold)
    if a.size == 0:
        return kept
    # priority: an uncut copy; among cut copies the one that sees most of the source; then
    # the higher score; then the earlier row
    cut = _truncated(layout, sk, cols)
    order = np.lexsort((np.arange(kept.size), -np.asarray(score, float)[kept],
                        -np.where(cut, box_area(boxes), 0.0), cut))
    rank = np.empty(kept.size, np.int64)
    rank[order] = np.arange(kept.size)
    a_wins = rank[a] < rank[b]
    winner, loser = np.where(a_wins, a, b), np.where(a_wins, b, a)
    return kept[greedy_suppression(winner, loser, kept.size)]


def _clip(boxes: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Boxes clipped to regions (row by row); empty results have zero size."""
    x0 = np.maximum(boxes[:, 0], region[:, 0])
    y0 = np.maximum(boxes[:, 1], region[:, 1])
    x1 = np.maximum(np.minimum(boxes[:, 2], region[:, 2]), x0)
    y1 = np.maximum(np.minimum(boxes[:, 3], region[:, 3]), y0)
    return np.stack([x0, y0, x1, y1], axis=1)


def match_field(layout: TileLayout, det_scene: np.ndarray, det: dict[str, np.ndarray],
                score: np.ndarray, objects: dict[str, np.ndarray], pixel_scale: float,
                match_radius: float) -> dict[str, np.ndarray]:
    """Match detections to the store's objects over the whole mosaic.

    IoU >= 0.5 for objects with a box (:func:`view_iou`: a detection in another tile than
    the one listing its object is compared where both tiles see it), else a centre
    distance within ``match_radius`` arcsec; one to one, detections in decreasing score,
    each taking its most similar free object (the rule of
    :func:`rail.deepdisc.evaluate.matching.greedy_match`).

    Returns
    -------
    dict
        Per detection: ``object_id`` (-1 if none), ``redshift`` (NaN if none),
        ``separation`` (arcsec), ``iou``.
    """
    from scipy.spatial import cKDTree

    det_scene = np.asarray(det_scene, np.int64)
    n = det_scene.size
    out = {"object_id": np.full(n, -1, np.int64), "redshift": np.full(n, np.nan),
           "separation": np.full(n, np.nan), "iou": np.zeros(n)}
    n_obj = np.asarray(objects["object_id"]).size
    if n == 0 or n_obj == 0:
        return out
    dbox = layout.boxes(det_scene, det)
    dxy = np.stack(layout.to_mosaic(det_scene, np.asarray(det["x"], float),
                                    np.asarray(det["y"], float)), axis=1)
    obox = layout.boxes(objects["scene"], objects)
    oxy = np.stack(layout.to_mosaic(objects["scene"], np.asarray(objects["x"], float),
                                    np.asarray(objects["y"], float)), axis=1)
    has_box = (obox[:, 2] > obox[:, 0]) & (obox[:, 3] > obox[:, 1])
    radius_px = match_radius / pixel_scale
    reach = float(np.max(_half_diagonal(dbox))) + float(np.max(_half_diagonal(obox))) + \
        radius_px + 1.0
    sparse = cKDTree(dxy).sparse_distance_matrix(cKDTree(oxy), reach, output_type="ndarray")
    if sparse.size == 0:
        return out
    d, o, dist = sparse["i"], sparse["j"], sparse["v"]
    iou = view_iou(layout, det_scene[d], dbox[d], objects["scene"][o], obox[o])
    near = dist <= radius_px
    sim = np.where(has_box[o], iou, np.where(near, 1.0 - 0.5 * dist / max(radius_px, 1e-12),
                                             0.0))
    ok = sim >= 0.5
    d, o, dist, sim, iou = d[ok], o[ok], dist[ok], sim[ok], iou[ok]
    # detections in decreasing score (ties: row order), each its most similar object first
    order = np.lexsort((-sim, d, -np.asarray(score, float)[d]))
    taken_det = np.zeros(n, bool)
    taken_obj = np.zeros(n_obj, bool)
    for k in order:  # greedy one-to-one: each step depends on the ones before
        i, j = d[k], o[k]
        if not taken_det[i] and not taken_obj[j]:
            taken_det[i] = taken_obj[j] = True
            out["object_id"][i] = objects["object_id"][j]
            out["redshift"][i] = objects["redshift"][j]
            out["separation"][i] = dist[k] * pixel_scale
            out["iou"][i] = iou[k]
    return out


def merge_tiles(columns: dict[str, Any], layout: TileLayout, objects: dict[str, np.ndarray],
                pixel_scale: float, iou_threshold: float = 0.5, match_radius: float = 0.1
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Deduplicate the detections of a tiled store and match the rest over the field.

    Parameters
    ----------
    columns
        Detection rows (``scene``, ``x``, ``y``, ``bbox_*``, ``score``, ...).
    layout
        The store's tiles.
    objects
        The store's ``/objects`` (``scene``, ``object_id``, ``x``, ``y``, ``bbox_*``,
        ``redshift``).
    pixel_scale
        Arcsec per pixel.
    iou_threshold
        Of the cross-tile suppression.
    match_radius
        Arcsec; matches objects without a box.

    Returns
    -------
    keep, matched
        Indices of the kept rows, and their new ``object_id``, ``redshift``,
        ``separation``, ``iou``.
    """
    scene = np.asarray(columns["scene"], np.int64)
    keep = deduplicate(layout, scene, columns, np.asarray(columns["score"]), iou_threshold)
    kept = {c: np.asarray(columns[c])[keep] for c in ("x", "y", *_BOX)}
    matched = match_field(layout, scene[keep], kept, np.asarray(columns["score"])[keep],
                          objects, pixel_scale, match_radius)
    return keep, matched
