"""Joining scene stores: a training set that mixes simulated configurations scene by scene."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rail.deepdisc.errors import OutputPathError, SceneStoreError
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.store.join import join_stores
from rail.deepdisc.store.scenes import SceneStore


@pytest.fixture(scope="module")
def realism_store(tmp_path_factory) -> str:
    """Three 96x96 JADES-like scenes with every realism option on (seed 13)."""
    path = tmp_path_factory.mktemp("join") / "jades_full.hdf5"
    spec = FieldSpec(survey="jades", n_scenes=3, scene_size=96, seed=13, realism="full")
    return simulate_field(spec, path, n_workers=1, progress=False)


def test_join_keeps_pixels_objects_and_segmaps(jades_store, realism_store, tmp_path):
    out = join_stores([jades_store, realism_store], tmp_path / "joined.hdf5",
                      scenes=[slice(2, 6), None], progress=False)
    with SceneStore(jades_store) as a, SceneStore(realism_store) as b, SceneStore(out) as j:
        assert j.n_scenes == 4 + b.n_scenes
        a_rows = slice(*a.object_range(2, 6))
        assert j.n_objects == a_rows.stop - a_rows.start + b.n_objects
        joined = j.scenes()
        for k, (src, scene) in enumerate([(a, 2), (a, 3), (a, 4), (a, 5), (b, 0), (b, 1),
                                          (b, 2)]):
            src_chunk, chunk = src.read_chunk(scene, scene + 1), j.read_chunk(k, k + 1)
            np.testing.assert_array_equal(chunk.images, src_chunk.images)
            np.testing.assert_array_equal(chunk.ivar, src_chunk.ivar)
            np.testing.assert_array_equal(chunk.objects["redshift"],
                                          src_chunk.objects["redshift"])
            # the segmentation names the joined ids, pixel for pixel where the source did
            ids = chunk.objects["object_id"]
            src_ids = src_chunk.objects["object_id"]
            for new_id, src_id in zip(ids, src_ids, strict=True):
                np.testing.assert_array_equal(chunk.segmap == new_id,
                                              src_chunk.segmap == src_id)
            np.testing.assert_array_equal(chunk.segmap == 0, src_chunk.segmap == 0)
            assert joined["wcs"][k] == src.scenes()["wcs"][scene]
        ids = j.objects(["object_id"])["object_id"]
        assert np.unique(ids).size == ids.size and ids.min() > 0
        columns = set(j.object_columns)
        assert columns == set(a.object_columns) & set(b.object_columns)
        prov = j.provenance()
        assert [p["scenes"] for p in prov["joined"]] == [[2, 6], [0, 3]]
        assert prov["joined"][1]["provenance"] == b.provenance()
        assert sorted(prov["dropped_object_columns"]) == sorted(
            (set(a.object_columns) | set(b.object_columns)) - columns)
        assert j.info.bands == a.info.bands
        assert set(joined) == set(a.scenes()) & set(b.scenes())
        assert prov["dropped_scene_columns"]  # the realism store's PSF and depth draws
    json.dumps(prov, default=str)


def test_join_refuses_other_surveys_bad_counts_and_inputs(jades_store, lsst_store, tmp_path):
    with pytest.raises(SceneStoreError, match=r"lsst\.hdf5: bands"):
        join_stores([jades_store, lsst_store], tmp_path / "x.hdf5", progress=False)
    with pytest.raises(SceneStoreError, match="holds 6 scenes; cannot take 7"):
        join_stores([jades_store, jades_store], tmp_path / "x.hdf5", scenes=[7, None],
                    progress=False)
    with pytest.raises(SceneStoreError, match="at least two"):
        join_stores([jades_store], tmp_path / "x.hdf5", progress=False)
    with pytest.raises(OutputPathError):
        join_stores([jades_store, jades_store], jades_store, progress=False)
    with pytest.raises(OutputPathError):
        join_stores([jades_store, jades_store], tmp_path, progress=False)
    assert not (tmp_path / "x.hdf5").exists()


def test_join_command(jades_store, realism_store, tmp_path, capsys):
    from rail.deepdisc.cli import main

    out = tmp_path / "mix.hdf5"
    assert main(["join", jades_store, realism_store, "--scenes", "1:3", "2",
                 "--output", str(out), "-q"]) == 0
    assert f"wrote {out}: 4 scenes" in capsys.readouterr().out
    with SceneStore(jades_store) as a, SceneStore(realism_store) as b, SceneStore(out) as j:
        np.testing.assert_array_equal(j.read_chunk(0, 2).images, a.read_chunk(1, 3).images)
        np.testing.assert_array_equal(j.read_chunk(2, 4).images, b.read_chunk(0, 2).images)
        assert [p["scenes"] for p in j.provenance()["joined"]] == [[1, 3], [0, 2]]
    # a bad selection fails while parsing, naming the entry; an input as output, at once
    with pytest.raises(SystemExit):
        main(["join", jades_store, realism_store, "--scenes", "1-3", "all",
              "--output", str(tmp_path / "x.hdf5")])
    assert "--scenes entry '1-3'" in capsys.readouterr().err
    assert main(["join", jades_store, realism_store, "--output", jades_store, "-q"]) == 2
    assert "rail-deepdisc join: error:" in capsys.readouterr().err
    assert main(["join", jades_store, realism_store, "--scenes", "2",
                 "--output", str(tmp_path / "y.hdf5"), "-q"]) == 2
    assert "2 stores" in capsys.readouterr().err
