"""Whole-field estimation over a tiled mosaic: forced rows per catalog object, detect-mode
deduplication of overlapping tiles, matching over the field."""

from __future__ import annotations

import numpy as np
import pytest
import qp
import tables_io
from astropy.table import Table
from scipy.spatial import cKDTree

from rail.deepdisc.evaluate.matching import box_iou, greedy_match
from rail.deepdisc.net import estimate
from rail.deepdisc.net.config import EstimateConfig
from rail.deepdisc.net.field_merge import (
    TileLayout,
    deduplicate,
    greedy_suppression,
    match_field,
)
from rail.deepdisc.net.predict import Mixtures
from rail.deepdisc.store.scenes import SceneStore
from rail.deepdisc.store.tiling import owner_tiles
from rail.estimation.algos.deepdisc import DeepDiscEstimator

BOX = ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")


# --- library ----------------------------------------------------------------------------
def test_greedy_suppression_equals_sequential_greedy():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 25))
        pairs = rng.integers(0, n, (int(rng.integers(0, 60)), 2))
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        winner, loser = pairs.min(axis=1), pairs.max(axis=1)  # item 0 is the best
        keep = np.ones(n, bool)
        for i in range(n):  # sequential greedy, best first
            if keep[i]:
                keep[loser[(winner == i)]] = False
        np.testing.assert_array_equal(greedy_suppression(winner, loser, n), keep)


def test_match_field_equals_the_dense_per_scene_matching():
    """On one scene the sparse whole-field matching is the project's greedy matching."""
    rng = np.random.default_rng(1)
    layout = TileLayout(np.array([0]), np.array([0]), 200, 200, (200, 200))
    for _ in range(30):
        n_obj, n_det = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        ox, oy = rng.uniform(10, 190, n_obj), rng.uniform(10, 190, n_obj)
        half = rng.uniform(2, 8, n_obj)
        obj = {"scene": np.zeros(n_obj, int), "object_id": np.arange(1, n_obj + 1), "x": ox,
               "y": oy, "bbox_x0": ox - half, "bbox_y0": oy - half, "bbox_x1": ox + half,
               "bbox_y1": oy + half, "redshift": rng.uniform(0, 5, n_obj)}
        pick = rng.integers(0, n_obj, n_det)
        jitter = rng.normal(0, 2, (n_det, 4))
        det = {"x": ox[pick], "y": oy[pick],
               **{c: obj[c][pick] + jitter[:, k] for k, c in enumerate(BOX)}}
        score = rng.uniform(0, 1, n_det)
        got = match_field(layout, np.zeros(n_det, int), det, score, obj, 0.03, 0.1)
        dboxes = np.stack([det[c] for c in BOX], axis=1)
        oboxes = np.stack([obj[c] for c in BOX], axis=1)
        expected = greedy_match(box_iou(dboxes, oboxes), score, 0.5)
        np.testing.assert_array_equal(got["object_id"],
                                      np.where(expected >= 0, expected + 1, -1))
        ok = expected >= 0
        np.testing.assert_allclose(got["iou"][ok],
                                   box_iou(dboxes[ok], oboxes[expected[ok]], paired=True))


def oracle_detections(truth_segmap, truth_ids, scenes, rng):
    """What a perfect detector returns on each tile: every object whose footprint reaches
    into the tile, with the box of its visible pixels, their centroid (+0.2 px jitter), a
    random score. Returns per-scene column dicts."""
    out = []
    for s in range(len(scenes["x0"])):
        x0, y0 = int(scenes["x0"][s]), int(scenes["y0"][s])
        seg = truth_segmap[y0:y0 + 96, x0:x0 + 96]
        ids = np.intersect1d(np.unique(seg[seg > 0]), truth_ids)
        rows = {c: [] for c in ("x", "y", *BOX)}
        for oid in ids:
            ys, xs = np.nonzero(seg == oid)
            for c, v in zip(BOX, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1),
                            strict=True):
                rows[c].append(float(v))
            rows["x"].append(xs.mean() + rng.normal(0, 0.2))
            rows["y"].append(ys.mean() + rng.normal(0, 0.2))
        cols = {k: np.asarray(v, float) for k, v in rows.items()}
        cols["score"] = rng.uniform(0.5, 1.0, ids.size)
        cols["scene"] = np.full(ids.size, s)
        out.append(cols)
    return out


def _truth(fits_field):
    truth_store, field = fits_field
    with SceneStore(truth_store) as st:
        segmap = st.read_chunk(0, 1).segmap[0]
    return segmap, field


def _extent(segmap, ids):
    """Largest side (pixels) of each object's footprint in the truth segmentation."""
    out = {}
    for oid in ids:
        ys, xs = np.nonzero(segmap == oid)
        out[int(oid)] = int(max(np.ptp(xs), np.ptp(ys)) + 1)
    return out


STEP = 96 - 24  # tile step of ``tiled_field``


def test_deduplicate_keeps_one_detection_per_source(fits_field, tiled_field):
    segmap, field = _truth(fits_field)
    with SceneStore(tiled_field) as st:
        layout = TileLayout.from_store(st)
        scenes, obj = st.scenes(), st.objects()
    per_scene = oracle_detections(segmap, field.object_id, scenes, np.random.default_rng(2))
    det = {k: np.concatenate([p[k] for p in per_scene]) for k in per_scene[0]}
    truth_id = np.concatenate([np.intersect1d(
        np.unique(segmap[int(y0):int(y0) + 96, int(x0):int(x0) + 96]), field.object_id)
        for x0, y0 in zip(scenes["x0"], scenes["y0"], strict=True)])
    assert truth_id.size == det["x"].size
    assert truth_id.size > 1.3 * field.object_id.size  # overlaps give many copies
    keep = deduplicate(layout, det["scene"], det, det["score"])
    ids, counts = np.unique(truth_id[keep], return_counts=True)
    assert ids.tolist() == sorted(field.object_id.tolist())  # every source kept
    extent = _extent(segmap, field.object_id)
    # each source smaller than the tile step exactly once; larger sources (this field has
    # one of 196 pixels, in 96-pixel tiles) may keep one fragment per part of the mosaic,
    # every fragment cut by its tile's edge (flag_edge)
    small = np.array([extent[int(i)] < STEP for i in ids])
    assert (~small).sum() == 1 and np.all(counts[small] == 1)
    frag = np.isin(truth_id[keep], ids[counts > 1])
    b = np.stack([det[c][keep][frag] for c in BOX], axis=1)
    assert np.all((b[:, 0] <= 0) | (b[:, 1] <= 0) | (b[:, 2] >= 96) | (b[:, 3] >= 96))
    # the copy kept is the one of the tile that lists the object (farthest from the edge)
    listed_in = dict(zip(obj["object_id"].tolist(), obj["scene"].tolist(), strict=True))
    kept_scene = det["scene"][keep]
    same = np.array([listed_in[int(i)] == s for i, s in zip(truth_id[keep], kept_scene,
                                                             strict=True)])
    assert same[~frag].mean() > 0.95
    # and the whole-field match finds every object once
    matched = match_field(layout, det["scene"][keep],
                          {c: det[c][keep] for c in ("x", "y", *BOX)}, det["score"][keep],
                          obj, 0.03, 0.1)
    found = matched["object_id"][matched["object_id"] >= 0]
    assert sorted(found.tolist()) == sorted(field.object_id.tolist())
    assert np.all(frag[matched["object_id"] < 0])  # only extra fragments stay unmatched


def test_cross_tile_suppression_catches_copies_either_side_of_a_border():
    """Two tiles put one source's centre on either side of their ownership border: ownership
    keeps both, the cross-tile NMS keeps the higher score; one tile's own blends stay."""
    layout = TileLayout(np.array([0, 72]), np.array([0, 0]), 96, 96, (96, 168))
    # ownership border between the tiles at x = 83.5; the copies sit at 83.3 and 83.7, their
    # boxes overlap at IoU 10/11
    det = {"x": np.array([83.3, 83.7 - 72, 83.0]), "y": np.array([40.0, 40.0, 46.0]),
           "bbox_x0": np.array([78.0, 6.0, 78.0]), "bbox_y0": np.array([35.0, 35.0, 41.0]),
           "bbox_x1": np.array([89.0, 16.0, 89.0]), "bbox_y1": np.array([45.0, 45.0, 51.0])}
    scene = np.array([0, 1, 0])
    mx, my = layout.to_mosaic(scene, det["x"], det["y"])
    assert owner_tiles(mx, my, layout.x0, layout.y0, 96, 96).tolist() == [0, 1, 0]
    keep = deduplicate(layout, scene, det, np.array([0.6, 0.9, 0.7]))
    assert keep.tolist() == [1, 2]  # the lower-scored copy goes; the blend in tile 0 stays
    keep = deduplicate(layout, scene, det, np.array([0.6, 0.9, 0.7]), iou_threshold=0.99)
    assert keep.tolist() == [0, 1, 2]


# --- through the estimator --------------------------------------------------------------
def _estimate(model, store, tmp_path, name, **options):
    stage = DeepDiscEstimator.make_stage(
        name=name, model=model, output=str(tmp_path / f"{name}.hdf5"),
        detections=str(tmp_path / f"{name}_det.hdf5"), num_threads=2, **options)
    stage.set_data("input", None, path=store, do_read=False)
    stage.run()
    stage.finalize()
    return qp.read(str(tmp_path / f"{name}.hdf5")), \
        tables_io.read(str(tmp_path / f"{name}_det.hdf5"))


def test_forced_mode_gives_one_row_per_catalog_object(tiny_model, fits_field, tiled_field,
                                                      tmp_path):
    _, field = fits_field
    ens, _ = _estimate(tiny_model, tiled_field, tmp_path, "forced_field", mode="forced",
                         chunk_size=10)
    ids = np.ravel(ens.ancil["object_id"])
    assert ens.npdf == field.object_id.size == np.unique(ids).size
    assert set(ids.tolist()) == set(field.object_id.tolist())
    with SceneStore(tiled_field) as st:
        obj = st.objects()
    np.testing.assert_array_equal(ids, obj["object_id"])  # store order
    cat = Table.read(field.catalog)
    row = {int(i): k for k, i in enumerate(cat["id"])}
    k = np.array([row[int(i)] for i in ids])
    np.testing.assert_allclose(np.ravel(ens.ancil["ra"]), cat["ra"][k])
    z = np.asarray(cat["redshift"])[k]
    np.testing.assert_array_equal(np.isnan(np.ravel(ens.ancil["redshift"])), np.isnan(z))


def _sky_duplicates(det, field, radius_arcsec=0.1):
    """Catalog objects that more than one detection lands on (sky positions)."""
    cat = Table.read(field.catalog)
    dec0 = np.radians(np.mean(cat["dec"]))
    c = np.stack([np.asarray(cat["ra"]) * np.cos(dec0), cat["dec"]], axis=1) * 3600
    d = np.stack([det["ra"] * np.cos(dec0), det["dec"]], axis=1) * 3600
    dist, idx = cKDTree(c).query(d, distance_upper_bound=radius_arcsec)
    hits = idx[np.isfinite(dist)]
    counts = np.bincount(hits, minlength=len(cat))
    return int(np.sum(counts > 1)), int(np.sum(counts >= 1))


def test_detect_mode_gives_one_row_per_source(tiny_model, fits_field, tiled_field, tmp_path,
                                              monkeypatch):
    """With a perfect detector (truth footprints per tile) the estimator's output lists each
    source of the field exactly once, matched to its object, at its catalog position."""
    segmap, field = _truth(fits_field)
    with SceneStore(tiled_field) as st:
        scenes = st.scenes()
    per_scene = oracle_detections(segmap, field.object_id, scenes, np.random.default_rng(4))

    def oracle(net, chunk, batch_size, device, score_threshold, nms_threshold):
        parts = per_scene[chunk.scene_start:chunk.scene_end]
        cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        n = cols["x"].size
        cols["scene"] = cols["scene"].astype(np.int64)
        cols["mask_area"] = (cols["bbox_x1"] - cols["bbox_x0"]) * \
            (cols["bbox_y1"] - cols["bbox_y0"])
        cols["mixtures"] = Mixtures(np.full((n, 2), 0.5), np.ones((n, 2)), np.ones((n, 2)))
        # photometric features: the core S/N of the reference band (F200W, the 4th of 9)
        # grows with the score, so each row's snr / flag_low_snr can be followed
        cols["features"] = np.zeros((n, 2 * 9 + 2))
        cols["features"][:, 9 + 3] = np.arcsinh(40.0 * cols["score"] - 20.0)
        return cols

    monkeypatch.setattr(estimate, "predict_detect", oracle)
    ens, det = _estimate(tiny_model, tiled_field, tmp_path, "oracle", mode="detect",
                         chunk_size=10)
    n = field.object_id.size
    oid = det["object_id"]
    matched = oid >= 0
    assert ens.npdf == oid.size
    np.testing.assert_array_equal(np.ravel(ens.ancil["object_id"]), oid)
    assert sorted(oid[matched].tolist()) == sorted(field.object_id.tolist())
    # at most the one source larger than a tile left as an extra, edge-flagged fragment
    assert oid.size - n == (~matched).sum() <= 1
    assert np.all(np.ravel(ens.ancil["flag_edge"])[~matched] == 1)
    # no catalog position has two detections on it (a kept copy cut by its tile's edge
    # centres on the visible part, so not every object has one within 0.1")
    duplicated, found = _sky_duplicates(det, field)
    assert duplicated == 0 and found >= n - 2
    whole = matched & (np.ravel(ens.ancil["flag_edge"]) == 0)
    assert whole.sum() > 0.8 * n
    assert np.all(det["separation"][whole] < 0.1)  # arcsec, detection to its object
    ens_all, det_all = _estimate(tiny_model, tiled_field, tmp_path, "oracle_all",
                                 mode="detect", chunk_size=10, deduplicate=False)
    duplicated_all, found_all = _sky_duplicates(det_all, field)
    # without deduplication many sources are listed twice or more; with it, every source
    # some tile found at its catalog position still is, once
    assert ens_all.npdf > 1.3 * n and duplicated_all > 5 and found == found_all
    # a kept row is its tile's row: every column, the quality flags included
    key_all = {(int(s), round(float(x), 6), round(float(y), 6)): k for k, (s, x, y) in
               enumerate(zip(det_all["scene"], det_all["x"], det_all["y"], strict=True))}
    rows = np.array([key_all[(int(s), round(float(x), 6), round(float(y), 6))] for s, x, y in
                     zip(det["scene"], det["x"], det["y"], strict=True)])
    flags = ("snr", "flag_low_snr", "blend", "flag_blend", "flag_edge", "flag_low_score",
             "score", "zmode", "ra", "dec")
    for c in flags:
        np.testing.assert_array_equal(np.ravel(ens.ancil[c]),
                                      np.ravel(ens_all.ancil[c])[rows], err_msg=c)
    for c in ("bbox_x0", "bbox_y1", "score", "mask_area", "ra"):
        np.testing.assert_array_equal(det[c], det_all[c][rows], err_msg=c)
    snr = np.ravel(ens.ancil["snr"])
    assert 0 < np.mean(snr < 10) < 1  # both values of flag_low_snr occur
    np.testing.assert_array_equal(np.ravel(ens.ancil["flag_low_snr"]), snr < 10)


def test_detect_mode_with_a_network(tiny_model, tiled_field, tmp_path):
    """The tiny network's detections: after merging, each is in the tile that owns its
    centre, no two tiles keep overlapping copies, RA/Dec come from each tile's WCS."""
    ens, det = _estimate(tiny_model, tiled_field, tmp_path, "net", mode="detect",
                         score_threshold=0.1)
    ens_all, _ = _estimate(tiny_model, tiled_field, tmp_path, "net_all", mode="detect",
                           score_threshold=0.1, deduplicate=False)
    assert 0 < ens.npdf < ens_all.npdf
    with SceneStore(tiled_field) as st:
        layout = TileLayout.from_store(st)
        scenes = st.scenes()
    scene = det["scene"].astype(int)
    mx, my = layout.to_mosaic(scene, det["x"], det["y"])
    np.testing.assert_array_equal(owner_tiles(mx, my, layout.x0, layout.y0, 96, 96), scene)
    boxes = layout.boxes(scene, det)
    iou = box_iou(boxes, boxes)
    other = scene[:, None] != scene[None, :]
    assert not np.any((iou >= 0.5) & other)
    for s in np.unique(scene):
        sel = scene == s
        ra, dec = estimate.pixel_to_sky(scenes["wcs"][s], det["x"][sel], det["y"][sel])
        np.testing.assert_allclose(det["ra"][sel], ra)
        np.testing.assert_allclose(det["dec"][sel], dec)


def test_simulated_stores_are_not_merged(jades_store):
    with SceneStore(jades_store) as st:
        assert TileLayout.from_store(st) is None
        assert estimate.field_selector(st, EstimateConfig(mode="detect")) is None


@pytest.mark.parametrize("mode", ["forced"])
def test_field_selector_only_in_detect_mode(tiled_field, mode):
    with SceneStore(tiled_field) as st:
        assert estimate.field_selector(st, EstimateConfig(mode=mode)) is None
        assert estimate.field_selector(st, EstimateConfig(mode="detect")) is not None
