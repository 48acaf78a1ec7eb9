"""Import of LSSTDESC/rail_deepdisc's HDF5 layout (flattened images + JSON metadata dicts)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from astropy.wcs import WCS

from rail.deepdisc.cli import main
from rail.deepdisc.store.deepdisc_import import LSST_BANDS, import_deepdisc
from rail.deepdisc.store.scenes import SceneStore

H, W, C = 20, 24, 6  # not square: a transposed image or mask shows


def _pixels(n: int) -> np.ndarray:
    """(n, C, H, W) values that name their image, band, row and column."""
    i, c, y, x = np.meshgrid(np.arange(n), np.arange(C), np.arange(H), np.arange(W),
                             indexing="ij")
    return (i * 1e5 + c * 1e3 + y * W + x).astype(np.float32)


def _rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE: run lengths down the columns, starting with background."""
    counts, value, run = [], False, 0
    for v in mask.ravel(order="F"):
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return {"size": [H, W], "counts": counts}


def _tile_wcs() -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [56.1, -31.2]
    w.wcs.crpix = [12.5, 10.5]
    w.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    return w


def _rle_mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[4:12, 6:16] = True
    return mask


def _metadata() -> list[dict]:
    poly = {"bbox": [2, 3, 6, 5], "bbox_mode": 1, "segmentation": [[2, 3, 7, 3, 7, 7, 2, 7]],
            "redshift": 0.5, "obj_id": 9876543210123, "mag_i": 24.1, "category_id": 2}
    rle = {"bbox": [6, 4, 16, 12], "bbox_mode": 0, "segmentation": _rle(_rle_mask()),
           "redshift": None, "obj_id": 7, "category_id": 0}
    outside = {"bbox": [22, 18, 6, 6], "bbox_mode": 1, "redshift": 1.0, "obj_id": 8}
    boxed = {"bbox": [10, 10, 4, 4], "redshift": 2.25, "obj_id": 9, "mag_i": 26.0}
    return [
        {"height": H, "width": W, "image_id": 10, "annotations": [poly, rle, outside]},
        {"height": H, "width": W, "image_id": 11, "annotations": []},
        {"height": H, "width": W, "image_id": 12, "annotations": [boxed],
         "wcs": _tile_wcs().to_header().tostring()},
    ]


def _write(path, images: np.ndarray, metadata: list[dict], metadata_path=None) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images.reshape(len(images), -1))
    with h5py.File(metadata_path or path, "a") as f:
        f.create_dataset("metadata_dicts", data=[json.dumps(m) for m in metadata],
                         dtype=h5py.string_dtype())


@pytest.fixture
def deepdisc_file(tmp_path):
    images = _pixels(3)
    images[1, 2, 5, 7] = np.nan
    path = tmp_path / "dc2_flat.hdf5"
    _write(path, images, _metadata())
    return path, images


def test_import_reads_images_masks_boxes_and_redshifts(deepdisc_file, tmp_path):
    path, images = deepdisc_file
    summary = import_deepdisc(path, tmp_path / "scenes.hdf5", flux_unit="uJy")
    assert (summary.n_images, summary.n_annotations, summary.n_objects) == (3, 4, 3)
    assert summary.n_not_centred == 1 and summary.n_nan_pixels == 1
    with SceneStore(summary.output) as st:
        assert st.bands == LSST_BANDS and st.n_scenes == 3
        assert (st.info.height, st.info.width) == (H, W)
        assert st.info.flux_unit == "nJy" and st.info.pixel_scale_arcsec == pytest.approx(0.2)
        chunk = st.read_chunk(0, 3)
        scenes = st.scenes()
    expected = np.nan_to_num(images, nan=0.0) * 1000.0  # uJy -> nJy
    np.testing.assert_allclose(chunk.images, expected, rtol=1e-6)
    assert chunk.ivar is None
    assert scenes["tile"].tolist() == [10, 11, 12]
    o = chunk.objects
    assert o["scene"].tolist() == [0, 0, 2] and o["object_id"].tolist() == [1, 2, 3]
    assert o["source_id"].tolist() == [9876543210123, 7, 9]  # 64-bit ids kept beside
    boxes = np.stack([o[c] for c in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")], axis=1)
    assert boxes.tolist() == [[2, 3, 8, 8], [6, 4, 16, 12], [10, 10, 14, 14]]
    np.testing.assert_allclose(o["x"], [4.5, 10.5, 11.5])  # box centres, pixel centres at 0
    np.testing.assert_allclose(o["y"], [5.0, 7.5, 11.5])
    np.testing.assert_array_equal(o["redshift"], [0.5, np.nan, 2.25])
    assert o["redshift_kind"].tolist() == [b"true", b"none", b"true"]
    np.testing.assert_array_equal(o["mag_i"], [24.1, np.nan, 26.0])
    np.testing.assert_array_equal(o["category_id"], [2, 0, np.nan])
    # masks: the polygon filled with its boundary, the RLE mask decoded down the columns,
    # overlaps to the smaller mask; an annotation without a mask gets its box
    seg = chunk.segmap
    poly = np.zeros((H, W), bool)
    poly[3:8, 2:8] = True
    expected_seg = np.where(_rle_mask(), 2, 0)
    expected_seg[poly] = 1
    np.testing.assert_array_equal(seg[0], expected_seg)
    assert not seg[1].any()
    box = np.zeros((H, W), int)
    box[10:14, 10:14] = 3
    np.testing.assert_array_equal(seg[2], box)
    # RA/Dec from the image's WCS where the metadata carry one
    ra, dec = _tile_wcs().all_pix2world([11.5], [11.5], 0)
    np.testing.assert_allclose([o["ra"][2], o["dec"][2]], [ra[0], dec[0]])
    assert np.isnan(o["ra"][:2]).all()
    with SceneStore(summary.output) as st:
        prov = st.provenance()
    assert prov["created_by"] == "rail.deepdisc.store.deepdisc_import.import_deepdisc"
    assert prov["config"]["flux_unit"] == "uJy"


def test_import_command_with_metadata_in_another_file(tmp_path, capsys):
    images = _pixels(3)
    _write(tmp_path / "images.hdf5", images, _metadata(), tmp_path / "meta.hdf5")
    bands = ["b1", "b2", "b3", "b4", "b5", "b6"]
    out = tmp_path / "scenes.hdf5"
    rc = main(["import-deepdisc", "--images", str(tmp_path / "images.hdf5"), "--metadata",
               str(tmp_path / "meta.hdf5"), "--bands", *bands, "--redshift-kind", "spec",
               "--pixel-scale", "0.168", "--output", str(out), "-q"])
    assert rc == 0
    assert "3 scenes, 3 objects (1 annotations centred outside" in capsys.readouterr().out
    with SceneStore(out) as st:
        assert list(st.bands) == bands
        assert st.info.pixel_scale_arcsec == pytest.approx(0.168)
        np.testing.assert_allclose(st.read_chunk(0, 3).images, images)
        kinds = st.objects(["redshift_kind"])["redshift_kind"]
    assert kinds.tolist() == [b"spec", b"none", b"spec"]


@pytest.mark.parametrize(("change", "message"), [
    ("bands", r"the images have 5 bands; name them"),
    ("no_metadata", r"has no dataset 'metadata_dicts'"),
    ("sizes", r"images have different sizes"),
    ("bbox_mode", r"annotations\[0\]: bbox_mode 4 is not supported"),
])
def test_import_errors_name_the_problem(tmp_path, change, message):
    images = _pixels(3)
    metadata = _metadata()
    if change == "bands":
        images = images[:, :5]
    if change == "sizes":
        metadata[1]["height"] = 16
    if change == "bbox_mode":
        metadata[0]["annotations"][0]["bbox_mode"] = 4
    path = tmp_path / "in.hdf5"
    if change == "no_metadata":
        with h5py.File(path, "w") as f:
            f.create_dataset("images", data=images.reshape(3, -1))
    else:
        _write(path, images, metadata)
    out = tmp_path / "out" / "scenes.hdf5"
    with pytest.raises(ValueError, match=message):
        import_deepdisc(path, out)
    assert not out.exists()
