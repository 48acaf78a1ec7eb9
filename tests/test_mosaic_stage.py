"""MosaicTiler as a RAIL stage and as ``rail-deepdisc tile``; the acceptance round trip from
FITS mosaics through the stage to forced estimation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import qp
import yaml
from astropy.io import fits
from astropy.table import Table

from rail.deepdisc.cli import main
from rail.deepdisc.net.estimate import pixel_to_sky
from rail.deepdisc.store.scenes import SceneStore
from rail.estimation.algos.deepdisc import DeepDiscEstimator
from rail.tools.scene_tools import MosaicTiler


def _stage_options(field) -> dict:
    return {"images": field.images, "errors": field.errors, "segmap": field.segmap,
            "id_col": "id", "tile_size": 96, "overlap": 24}


def _same_store(a: str, b: str) -> None:
    with SceneStore(a) as sa, SceneStore(b) as sb:
        assert sa.n_scenes == sb.n_scenes and sa.bands == sb.bands
        oa, ob = sa.objects(), sb.objects()
        for c in ("object_id", "scene", "bbox_x0", "bbox_y1", "catalog_row"):
            np.testing.assert_array_equal(oa[c], ob[c], err_msg=c)
        np.testing.assert_allclose(oa["x"], ob["x"], atol=1e-9)
        np.testing.assert_array_equal(sa.read_chunk(0, sa.n_scenes).images,
                                      sb.read_chunk(0, sb.n_scenes).images)


def test_round_trip_through_the_stages(tiny_model, fits_field, tiled_field, tmp_path):
    """FITS mosaics (rotated TAN-SIP WCS, NaN border, MJy/sr, ERR) + catalog -> MosaicTiler
    -> forced DeepDiscEstimator: one row per catalog object inside the footprint, at the
    catalog's RA/Dec to 0.05 pixel."""
    _, field = fits_field
    tiler = MosaicTiler.make_stage(name="tiler", output=str(tmp_path / "tiles.hdf5"),
                                   **_stage_options(field))
    handle = tiler.tile(field.catalog)
    assert handle.path == str(tmp_path / "tiles.hdf5")
    assert not list(tmp_path.glob("inprogress_*"))
    _same_store(handle.path, tiled_field)
    with SceneStore(handle.path) as st:
        assert st.provenance()["config"]["stage"]["tile_size"] == 96
        scenes = st.scenes()

    est = DeepDiscEstimator.make_stage(name="forced_tiles", model=tiny_model, mode="forced",
                                       output=str(tmp_path / "pz.hdf5"),
                                       detections=str(tmp_path / "pz_det.hdf5"),
                                       num_threads=1, chunk_size=10)
    est.estimate(handle)
    ens = qp.read(str(tmp_path / "pz.hdf5"))
    ids = np.ravel(ens.ancil["object_id"])
    # one row per catalog object inside the footprint (on pixels with data), none outside
    assert ens.npdf == ids.size == np.unique(ids).size == field.object_id.size
    assert set(ids.tolist()) == set(field.object_id.tolist())
    assert not set(ids.tolist()) & set(field.outside_ids.tolist())
    assert len(Table.read(field.catalog)) == ids.size + field.outside_ids.size
    # each row's position: scene pixels + the tile's origin = the truth; the tile's WCS at
    # the scene pixels = the catalog's RA/Dec
    scene = np.ravel(ens.ancil["scene"]).astype(int)
    mx = np.ravel(ens.ancil["x"]) + scenes["x0"][scene]
    my = np.ravel(ens.ancil["y"]) + scenes["y0"][scene]
    truth = {int(i): (x, y) for i, x, y in zip(field.object_id, field.x, field.y, strict=True)}
    tx = np.array([truth[int(i)][0] for i in ids])
    ty = np.array([truth[int(i)][1] for i in ids])
    err = np.hypot(mx - tx, my - ty)
    assert err.max() < 0.05
    cat = Table.read(field.catalog)
    row = {int(i): k for k, i in enumerate(cat["id"])}
    k = np.array([row[int(i)] for i in ids])
    sep = np.zeros(ids.size)
    for s in np.unique(scene):
        sel = scene == s
        ra, dec = pixel_to_sky(scenes["wcs"][s], np.ravel(ens.ancil["x"])[sel],
                               np.ravel(ens.ancil["y"])[sel])
        dra = (ra - np.asarray(cat["ra"])[k[sel]]) * np.cos(np.radians(dec))
        sep[sel] = np.hypot(dra, dec - np.asarray(cat["dec"])[k[sel]]) * 3600
    assert sep.max() / field.pixel_scale_arcsec < 0.05
    np.testing.assert_allclose(np.ravel(ens.ancil["ra"]), np.asarray(cat["ra"])[k])


def test_stage_refuses_missing_maps_and_unknown_options_at_construction(fits_field, tmp_path):
    _, field = fits_field
    images = dict(field.images)
    images["jwst_f200w"] = str(tmp_path / "nowhere.fits") + "[SCI]"
    with pytest.raises(FileNotFoundError, match=r"images\[jwst_f200w\]: .*nowhere.fits"):
        MosaicTiler.make_stage(name="bad_tiler", **{**_stage_options(field),
                                                     "images": images})
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"typo_tiler": {"tile_sise": 64}}))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['tile_sise'\]"):
        MosaicTiler.make_stage(name="typo_tiler", config=str(config), **_stage_options(field))
    stage = MosaicTiler.make_stage(name="overlap_tiler", output=str(tmp_path / "t.hdf5"),
                                   **{**_stage_options(field), "overlap": 60})
    with pytest.raises(ValueError, match="MosaicTiler: overlap"):
        stage.tile(field.catalog)
    assert not (tmp_path / "t.hdf5").exists()


def test_stage_runs_the_ceci_way(fits_field, tiled_field, tmp_path):
    _, field = fits_field
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"MosaicTiler": _stage_options(field)}))
    res = subprocess.run([sys.executable, "-m", "ceci", "rail.tools.scene_tools.MosaicTiler",
                          f"--input={field.catalog}", "--output=tiles.hdf5",
                          f"--config={config}"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    _same_store(str(tmp_path / "tiles.hdf5"), tiled_field)


# --- rail-deepdisc tile ---------------------------------------------------------------
def _tile_args(field, output) -> list[str]:
    args = ["tile"]
    for k, (band, spec) in enumerate(field.images.items()):
        # PATH[EXT] for some bands, plain PATH (the first image HDU: SCI) for others
        args += ["--image", f"{band}={spec if k % 2 else spec.removesuffix('[SCI]')}"]
    for band, spec in field.errors.items():
        args += ["--error", f"{band}={spec}"]
    return [*args, "--segmap", field.segmap, "--catalog", field.catalog, "--id-col", "id",
            "--ra-col", "ra", "--dec-col", "dec", "--redshift-col", "redshift",
            "--tile-size", "96", "--overlap", "24", "--output", str(output), "-q"]


def test_tile_command_matches_the_library(fits_field, tiled_field, tmp_path, capsys):
    _, field = fits_field
    out = tmp_path / "cli.hdf5"
    assert main(_tile_args(field, out)) == 0
    n_out = field.outside_ids.size
    assert f"16 tiles of 96 x 96 pixels, {field.object_id.size} of " \
        f"{field.object_id.size + n_out} catalog objects" in capsys.readouterr().out
    _same_store(str(out), tiled_field)
    with SceneStore(out) as st:
        assert st.provenance()["config"]["command"] == "rail-deepdisc tile"
    # --require-redshift keeps only tiles with a known redshift
    out = tmp_path / "train.hdf5"
    assert main([*_tile_args(field, out), "--require-redshift"]) == 0
    with SceneStore(out) as st:
        obj = st.objects()
        assert 0 < st.n_scenes < 16
    for s in range(int(obj["scene"].max()) + 1):
        assert np.isfinite(obj["redshift"][obj["scene"] == s]).any()


def _args_with(args: list[str], option: str, value: str) -> list[str]:
    i = args.index(option)
    return [*args[:i + 1], value, *args[i + 2:]]


def test_tile_command_errors_are_clear(fits_field, tmp_path, capsys):
    _, field = fits_field
    out = tmp_path / "bad.hdf5"
    args = _tile_args(field, out)
    # catalog without the RA column
    table = Table.read(field.catalog)
    table.rename_column("ra", "RA_DEG")
    table.write(tmp_path / "nora.fits")
    assert main(_args_with(args, "--catalog", str(tmp_path / "nora.fits"))) == 2
    assert "no RA column 'ra'" in capsys.readouterr().err
    # a band on another grid, named
    path = field.images["jwst_f356w"].removesuffix("[SCI]")
    with fits.open(path) as hdul:
        data, header = hdul["SCI"].data, hdul["SCI"].header.copy()
    header["CRVAL1"] += 1.0 / 3600
    fits.PrimaryHDU(data, header).writeto(tmp_path / "shifted.fits")
    shifted = [a if not a.startswith("jwst_f356w=") else f"jwst_f356w={tmp_path}/shifted.fits"
               for a in args]
    assert main(shifted) == 2
    assert "band jwst_f356w" in capsys.readouterr().err
    # a mosaic without WCS, named by its file
    fits.PrimaryHDU(data, fits.Header({"BUNIT": "MJy/sr"})).writeto(tmp_path / "nowcs.fits")
    nowcs = [a if not a.startswith("jwst_f356w=") else f"jwst_f356w={tmp_path}/nowcs.fits"
             for a in args]
    assert main(nowcs) == 2
    assert "nowcs.fits has no celestial WCS" in capsys.readouterr().err
    # a catalog with nothing inside the footprint
    table = Table.read(field.catalog)
    table["ra"] += 1.0
    table.write(tmp_path / "far.fits")
    assert main(_args_with(args, "--catalog", str(tmp_path / "far.fits"))) == 2
    assert "lies inside the footprint" in capsys.readouterr().err
    # a malformed --image
    with pytest.raises(SystemExit):
        main(["tile", "--image", "jwst_f200w", "--catalog", "c.fits", "--tile-size", "64",
              "--overlap", "8", "--output", str(out)])
    assert "expected BAND=PATH" in capsys.readouterr().err
    assert not out.exists()
