"""Detection-to-catalog matching and detection completeness/purity.

A detection matches an object of the same scene at IoU >= ``iou_threshold`` (default 0.5),
one to one, taking detections in decreasing score; without boxes, by distance within a
radius instead.
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of half-open boxes ``[x0, y0, x1, y1]`` (n, 4) x (m, 4)."""
    a = np.asarray(a, float).reshape(-1, 4)
    b = np.asarray(b, float).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def greedy_match(similarity: np.ndarray, scores: np.ndarray, threshold: float
                 ) -> np.ndarray:
    """One-to-one matching, detections in decreasing score.

    Parameters
    ----------
    similarity
        (n_detections, n_objects); larger is better (IoU, or minus a distance).
    scores
        Detection scores.
    threshold
        Smallest similarity that counts as a match.

    Returns
    -------
    numpy.ndarray
        For each detection the index of its object, or -1.
    """
    n_det, n_obj = similarity.shape
    match = np.full(n_det, -1, dtype=np.int64)
    if n_det == 0 or n_obj == 0:
        return match
    sim = np.where(similarity >= threshold, similarity, -np.inf)
    taken = np.zeros(n_obj, dtype=bool)
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        row = np.where(taken, -np.inf, sim[d])
        j = int(np.argmax(row))
        if np.isfinite(row[j]):
            match[d] = j
            taken[j] = True
    return match


def match_scene(det_boxes: np.ndarray, det_scores: np.ndarray, obj_boxes: np.ndarray,
                iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Match one scene's detections to its objects by IoU.

    Returns the matched object index per detection (-1 if none) and the IoU of the match.
    """
    iou = box_iou(det_boxes, obj_boxes)
    match = greedy_match(iou, det_scores, iou_threshold)
    best = np.where(match >= 0, iou[np.arange(len(match)), np.maximum(match, 0)], 0.0)
    return match, best


def match_by_distance(det_xy: np.ndarray, det_scores: np.ndarray, obj_xy: np.ndarray,
                      radius: float) -> np.ndarray:
    """Match by centre distance (same units as ``radius``), one to one, best score first."""
    d = np.hypot(det_xy[:, None, 0] - obj_xy[None, :, 0], det_xy[:, None, 1] - obj_xy[None, :, 1])
    return greedy_match(-d, det_scores, -radius)


def completeness_purity(matched_object: np.ndarray, scores: np.ndarray, n_objects: int,
                        object_selected: np.ndarray | None = None,
                        score_threshold: float = 0.5) -> dict[str, float]:
    """Completeness and purity of detections at a score threshold.

    Parameters
    ----------
    matched_object
        Global object index matched by each detection (-1: none).
    scores
        Detection scores.
    n_objects
        Number of objects.
    object_selected
        Boolean mask of the objects counted for completeness (e.g. the bright ones);
        purity counts every detection above the threshold.
    score_threshold
        Detections below it are ignored.
    """
    keep = np.asarray(scores) >= score_threshold
    matched = np.asarray(matched_object)[keep]
    sel = np.ones(n_objects, bool) if object_selected is None else np.asarray(object_selected)
    found = np.zeros(n_objects, bool)
    found[matched[matched >= 0]] = True
    n_sel = int(sel.sum())
    return {
        "completeness": float(found[sel].sum() / n_sel) if n_sel else np.nan,
        "purity": float(np.mean(matched >= 0)) if matched.size else np.nan,
        "n_objects": n_sel,
        "n_detections": int(matched.size),
    }
