"""The scene store: format, tables_io compatibility, chunked/MPI iteration, atomic writes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tables_io

from rail.deepdisc.store.handle import SceneHandle
from rail.deepdisc.store.scenes import (
    FORMAT,
    OBJECT_COLUMNS,
    SCENE_COLUMNS,
    VERSION,
    SceneStore,
    SceneStoreError,
    SceneWriter,
)


def test_layout_matches_design(jades_store):
    with h5py.File(jades_store, "r") as f:
        assert f.attrs["format"] == FORMAT and f.attrs["version"] == VERSION
        n, c, h, w = f["images"].shape
        assert (c, h, w) == (9, 96, 96) and n == 6
        assert f["images"].dtype == np.float32 and f["images"].chunks == (1, 9, 96, 96)
        assert f["ivar"].shape == f["images"].shape and f["ivar"].dtype == np.float32
        assert f["segmap"].shape == (n, h, w) and f["segmap"].dtype == np.int32
        assert set(OBJECT_COLUMNS) <= set(f["objects"])
        assert set(SCENE_COLUMNS) <= set(f["scenes"])
        for key in ("bands", "pixel_scale_arcsec", "zeropoint_ab", "survey", "flux_unit"):
            assert key in f.attrs
        assert list(f.attrs["bands"]) == [
            "jwst_f090w", "jwst_f115w", "jwst_f150w", "jwst_f200w", "jwst_f277w",
            "jwst_f335m", "jwst_f356w", "jwst_f410m", "jwst_f444w"]
        assert f.attrs["pixel_scale_arcsec"] == pytest.approx(0.03)
        assert f.attrs["zeropoint_ab"] == pytest.approx(31.4)


def test_objects_readable_by_tables_io_alone(jades_store):
    table = tables_io.read(jades_store, keys=["objects"])["objects"]
    with SceneStore(jades_store) as store:
        ours = store.objects()
    assert set(table) == set(ours)
    for k in ours:
        np.testing.assert_array_equal(np.asarray(table[k]), ours[k])


def test_wcs_and_positions_agree(jades_store):
    from astropy.io import fits
    from astropy.wcs import WCS

    with SceneStore(jades_store) as store:
        scenes, obj = store.scenes(), store.objects()
    for k in range(len(scenes["scene"])):
        wcs = WCS(fits.Header.fromstring(scenes["wcs"][k].decode()))
        sel = obj["scene"] == k
        ra, dec = wcs.all_pix2world(obj["x"][sel], obj["y"][sel], 0)
        np.testing.assert_allclose(ra, obj["ra"][sel], atol=1e-9)
        np.testing.assert_allclose(dec, obj["dec"][sel], atol=1e-9)
        assert abs(wcs.proj_plane_pixel_scales()[0].to_value("arcsec") - 0.03) < 1e-6
    # neighbouring scenes sit side by side on the virtual mosaic
    assert len(set(zip(scenes["x0"], scenes["y0"], strict=True))) == len(scenes["scene"])


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_mpi_split_covers_every_scene_once(jades_store, size):
    with SceneStore(jades_store) as store:
        seen_scenes, seen_rows = [], []
        for rank in range(size):
            for chunk in store.iter_chunks(objects_per_chunk=15, rank=rank, size=size,
                                           pixels=False):
                seen_scenes.extend(range(chunk.scene_start, chunk.scene_end))
                seen_rows.extend(range(chunk.obj_start, chunk.obj_end))
                assert np.all(chunk.objects["scene"] >= chunk.scene_start)
                assert np.all(chunk.objects["scene"] < chunk.scene_end)
        assert sorted(seen_scenes) == list(range(store.n_scenes))
        assert sorted(seen_rows) == list(range(store.n_objects))


def test_scene_handle_is_a_rail_handle(jades_store):
    handle = SceneHandle("input", path=jades_store)
    with SceneStore(jades_store) as store:
        n_obj, n_sc = store.n_objects, store.n_scenes
        objects = store.objects()
    assert handle.size() == n_obj
    rows, scenes = 0, 0
    for start, end, chunk in handle.iterator(chunk_size=20, rank=0, parallel_size=1):
        assert (start, end) == (chunk.obj_start, chunk.obj_end)
        assert chunk.images.shape[0] == len(chunk)
        for i in range(len(chunk)):
            obj = chunk.scene_objects(i)
            np.testing.assert_array_equal(obj["object_id"],
                                          objects["object_id"][objects["scene"] ==
                                                               chunk.scene_start + i])
        rows += end - start
        scenes += len(chunk)
    assert (rows, scenes) == (n_obj, n_sc)
    store = handle.read()
    assert isinstance(store, SceneStore) and store.n_objects == n_obj
    assert sum(1 for _ in handle.iterator(scenes_per_chunk=4)) == 2
    store.close()


def _tiny_scene(n_obj: int, scene_seed: int = 0):
    rng = np.random.default_rng(scene_seed)
    obj = {c: np.zeros(n_obj) for c in ("x", "y", "ra", "dec", "redshift")}
    obj.update({c: np.zeros(n_obj, np.int32) for c in ("bbox_x0", "bbox_y0")})
    obj.update({c: np.full(n_obj, 3, np.int32) for c in ("bbox_x1", "bbox_y1")})
    obj["object_id"] = np.arange(1, n_obj + 1) + 100 * scene_seed
    obj["redshift_kind"] = np.array(["spec"] * n_obj)
    return rng.normal(size=(2, 8, 8)), obj, {"wcs": "", "x0": 0, "y0": 0, "tile": 0}


def test_writer_round_trip_and_missing_redshifts(tmp_path):
    path = tmp_path / "tiny.hdf5"
    with SceneWriter(path, ["lsst_g", "lsst_r"], 8, 8, pixel_scale_arcsec=0.2,
                     zeropoint_ab=27.0, with_ivar=False, with_segmap=False) as w:
        for k, n in enumerate([2, 0, 3]):
            img, obj, row = _tiny_scene(n, k)
            obj["redshift"][:] = np.nan
            w.add_scenes(img[None], [obj], [row])
    with SceneStore(path) as store:
        assert (store.n_scenes, store.n_objects) == (3, 5)
        assert not store.has_ivar and not store.has_segmap
        np.testing.assert_array_equal(store.objects_per_scene(), [2, 0, 3])
        chunk = store.read_chunk(1, 2)
        assert chunk.n_objects == 0 and chunk.ivar is None
        assert np.all(np.isnan(store.objects(["redshift"])["redshift"]))


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "store.hdf5"
    path.write_bytes(b"previous result")
    with pytest.raises(SceneStoreError, match="NaN"):
        with SceneWriter(path, ["lsst_g", "lsst_r"], 8, 8, pixel_scale_arcsec=0.2,
                         zeropoint_ab=27.0, with_ivar=False, with_segmap=False) as w:
            img, obj, row = _tiny_scene(1)
            w.add_scenes(img[None], [obj], [row])
            img[0, 0, 0] = np.nan
            w.add_scenes(img[None], [obj], [row])
    assert path.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.hdf5"]


def test_writer_checks_columns(tmp_path):
    img, obj, row = _tiny_scene(2)
    del obj["redshift_kind"]
    with pytest.raises(SceneStoreError, match="redshift_kind"):
        with SceneWriter(tmp_path / "s.hdf5", ["lsst_g", "lsst_r"], 8, 8,
                         pixel_scale_arcsec=0.2, zeropoint_ab=27.0, with_ivar=False,
                         with_segmap=False) as w:
            w.add_scenes(img[None], [obj], [row])
    assert list(tmp_path.iterdir()) == []


def test_reader_rejects_other_files(tmp_path):
    with pytest.raises(SceneStoreError, match="does not exist"):
        SceneStore(tmp_path / "missing.hdf5")
    plain = tmp_path / "plain.hdf5"
    tables_io.write({"a": np.arange(3)}, str(plain))
    with pytest.raises(SceneStoreError, match="not a scene store"):
        SceneStore(plain)
    text = tmp_path / "text.hdf5"
    text.write_text("hello")
    with pytest.raises(SceneStoreError, match="not a readable HDF5"):
        SceneStore(text)


def test_unwritable_output_is_refused_early(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot"):
        SceneWriter(blocker / "sub" / "s.hdf5", ["lsst_g"], 8, 8, pixel_scale_arcsec=0.2,
                    zeropoint_ab=27.0)
    with pytest.raises(ValueError, match="is a directory"):
        SceneWriter(tmp_path, ["lsst_g"], 8, 8, pixel_scale_arcsec=0.2, zeropoint_ab=27.0)
