"""Detection-to-catalog matching and detection completeness/purity.

A detection matches an object of the same scene at IoU >= ``iou_threshold`` (default 0.5),
one to one, taking detections in decreasing score; without boxes, by distance within a
radius instead. Box geometry (areas, intersections, IoU) is defined here once.
"""

from __future__ import annotations

import numpy as np


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of half-open boxes ``[x0, y0, x1, y1]`` (n, 4)."""
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_intersection(a: np.ndarray, b: np.ndarray, paired: bool = False) -> np.ndarray:
    """Intersection areas of half-open boxes: the (n, m) matrix of every pair, or with
    ``paired`` the n areas of corresponding rows."""
    a = np.asarray(a, float).reshape(-1, 4)
    b = np.asarray(b, float).reshape(-1, 4)
    if not paired:
        a, b = a[:, None, :], b[None, :, :]
    ix = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    iy = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    return ix * iy


def box_iou(a: np.ndarray, b: np.ndarray, paired: bool = False) -> np.ndarray:
    """IoU of half-open boxes ``[x0, y0, x1, y1]``: the (n, m) matrix of every pair, or with
    ``paired`` the n IoUs of corresponding rows (0 where both boxes are empty)."""
    inter = box_intersection(a, b, paired)
    area_a, area_b = box_area(a), box_area(b)
    union = (area_a + area_b if paired else area_a[:, None] + area_b[None, :]) - inter
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
