"""Cutouts as the services deliver them (Legacy Surveys, HSC-SSP, arrays) into scene stores.

Simulated Legacy-Surveys-like scenes are cut into windows centred on each object (one scene
per object, neighbours unlisted, zero padding beyond the scene), written in each format,
read back, and estimated in forced mode with a model trained here: the read-back stores
must give the photo-zs of the stores they came from.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table, vstack

from rail.deepdisc.cli import main
from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.sim.cutout_files import (
    BOX_COLUMNS,
    centred_cutouts,
    write_array_cutouts,
    write_hsc_cutouts,
    write_legacy_cutouts,
)
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.sim.surveys import get_survey
from rail.deepdisc.store.cutouts import CutoutConfig, import_cutouts
from rail.deepdisc.store.scenes import SceneStore

BANDS = ("decam_g", "decam_r", "decam_i", "decam_z")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("cutouts")


@pytest.fixture(scope="module")
def ls_store(folder) -> str:
    """Four 64x64 Legacy-Surveys-like scenes (lowz population, seed 41)."""
    spec = FieldSpec(survey="legacy_dr10", n_scenes=4, scene_size=64, seed=41,
                     objects_per_scene=5)
    return simulate_field(spec, folder / "ls.hdf5", n_workers=1, progress=False)


@pytest.fixture(scope="module")
def centred(ls_store, folder) -> str:
    """One 33x33 scene per object of ``ls_store``, centred on it."""
    return centred_cutouts(ls_store, folder / "centred.hdf5", 33)


@pytest.fixture(scope="module")
def ls_model(ls_store, folder) -> str:
    """A resnet18_fpn model trained for one epoch on ``ls_store``."""
    from rail.deepdisc.net.config import TrainConfig
    from rail.deepdisc.net.model_file import save_model
    from rail.deepdisc.net.train import train

    cfg = TrainConfig.from_mapping(backbone="resnet18_fpn", epochs=1, batch_size=4, seed=3,
                                   num_threads=1, val_fraction=0.25)
    result = train(ls_store, cfg, progress=False)
    return save_model(folder / "ls.pt", result.model, result.meta, result.extras)


@pytest.fixture(scope="module")
def written(centred, folder) -> dict:
    """``centred`` written in the three formats."""
    return {"legacy": write_legacy_cutouts(centred, folder / "legacy"),
            "hsc": write_hsc_cutouts(centred, folder / "hsc"),
            "array": write_array_cutouts(centred, folder / "arrays.npz")}


def _forced(model: str, store: str):
    """Mixtures (weights, means, stds) of every object of a store, forced mode."""
    import torch

    from rail.deepdisc.net.model_file import build_from_state, read_model_file
    from rail.deepdisc.net.predict import predict_forced

    net = build_from_state(read_model_file(model), torch.device("cpu")).eval()
    with SceneStore(store) as st:
        mix = predict_forced(net, st.read_chunk(0, st.n_scenes), 8,
                             torch.device("cpu"))["mixtures"]
    return np.concatenate([mix.weights, mix.means, mix.stds], axis=1)


def _all(store: str):
    with SceneStore(store) as st:
        return st.read_chunk(0, st.n_scenes), st.info


@pytest.mark.parametrize("fmt", ["legacy", "hsc", "array"])
def test_each_format_reads_back_to_the_same_forced_photozs(fmt, written, centred, ls_model,
                                                           folder):
    files = written[fmt]
    out = folder / f"{fmt}.hdf5"
    summary = import_cutouts(files.config(), files.catalog, out)
    orig, orig_info = _all(centred)
    back, info = _all(out)
    assert summary.n_cutouts == len(orig) and summary.boxes["catalog"] == len(orig)
    assert info.bands == BANDS and info.flux_unit == "nJy"
    assert info.pixel_scale_arcsec == pytest.approx(orig_info.pixel_scale_arcsec, rel=1e-6)
    assert info.survey == {"legacy": "legacy_dr10", "hsc": "hsc_wide", "array": ""}[fmt]
    # identical pixels, ivar (to float32 unit conversions) and missing data
    np.testing.assert_allclose(back.images, orig.images, rtol=1e-5,
                               atol=1e-6 * np.abs(orig.images).max())
    np.testing.assert_allclose(back.ivar, orig.ivar, rtol=1e-5)
    np.testing.assert_array_equal(back.ivar == 0, orig.ivar == 0)
    assert (orig.ivar == 0).any()          # some windows reach beyond their scene
    for col in ("object_id", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"):
        np.testing.assert_array_equal(back.objects[col], orig.objects[col])
    np.testing.assert_allclose(back.objects["redshift"], orig.objects["redshift"])
    np.testing.assert_allclose(back.objects["ra"], orig.objects["ra"])
    assert set(back.objects["redshift_kind"].tolist()) == {b"spec"}
    # positions from the WCS (arrays: the window's centre, within half a pixel)
    tol = 0.51 if fmt == "array" else 1e-6
    np.testing.assert_allclose(back.objects["x"], orig.objects["x"], atol=tol)
    np.testing.assert_allclose(back.objects["y"], orig.objects["y"], atol=tol)
    np.testing.assert_allclose(_forced(ls_model, out), _forced(ls_model, centred), rtol=1e-4,
                               atol=1e-5)


def test_small_cutouts_through_the_command_and_forced_estimation(ls_store, ls_model, folder,
                                                                 capsys):
    """23-pixel cutouts without inverse variance (ivar from the survey's depths), boxes from
    their footprints, through ``rail-deepdisc cutouts`` and ``estimate --mode forced``."""
    import qp

    small = centred_cutouts(ls_store, folder / "small.hdf5", 23)
    files = write_legacy_cutouts(small, folder / "small", invvar=False)
    out, pz = folder / "small_read.hdf5", folder / "small_pz.hdf5"
    assert main(["cutouts", "--format", "legacy", "--cutouts", files.cutouts, "--catalog",
                 files.catalog, "--id-col", "id", "--copy-column", "mag_decam_r",
                 "--output", str(out), "-q"]) == 0
    assert "23 x 23 pixels" in capsys.readouterr().out
    back, info = _all(out)
    orig, _ = _all(small)
    sigma = get_survey("legacy_dr10").pixel_noise_njy()
    has = orig.ivar > 0
    np.testing.assert_array_equal(back.ivar > 0, has)
    np.testing.assert_allclose(back.ivar[has],
                               np.broadcast_to(1 / sigma[None, :, None, None] ** 2,
                                               back.ivar.shape)[has], rtol=1e-5)
    np.testing.assert_allclose(back.objects["mag_decam_r"], orig.objects["mag_decam_r"])
    assert info.attrs["detection_band"] == "decam_r"
    # footprint boxes hold the object and overlap its truth box
    x, y = back.objects["x"], back.objects["y"]
    box = np.stack([back.objects[c] for c in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")], 1)
    truth = np.stack([orig.objects[c] for c in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")],
                     1)
    assert np.all((box[:, 0] <= x) & (x < box[:, 2]) & (box[:, 1] <= y) & (y < box[:, 3]))
    from rail.deepdisc.evaluate.matching import box_iou

    iou = np.diag(box_iou(box.astype(float), truth.astype(float)))
    assert np.median(iou) > 0.4
    assert set(back.objects["box_origin"].tolist()) <= {1, 2, 3}
    assert np.all(back.segmap[np.arange(len(back)), np.floor(y + 0.5).astype(int),
                              np.floor(x + 0.5).astype(int)][back.objects["box_origin"] == 1]
                  == back.objects["object_id"][back.objects["box_origin"] == 1])
    assert main(["estimate", "--input", str(out), "--model", ls_model, "--output", str(pz),
                 "--mode", "forced", "--num-threads", "1", "-q"]) == 0
    ens = qp.read(str(pz))
    assert ens.npdf == len(back)
    np.testing.assert_array_equal(ens.ancil["object_id"], back.objects["object_id"])
    assert np.all(np.isfinite(ens.ancil["zmode"]))


def test_cutouts_of_two_sizes_are_padded_to_one(ls_store, folder):
    """Smaller cutouts are padded evenly with no-data pixels; the WCS moves with them."""
    from astropy.wcs import WCS

    with SceneStore(ls_store) as st:
        n = st.n_objects
    half = np.arange(n) < n // 2
    small = centred_cutouts(ls_store, folder / "pad23.hdf5", 23, keep=half)
    big = centred_cutouts(ls_store, folder / "pad33.hdf5", 33, keep=~half)
    files = write_legacy_cutouts(small, folder / "pad")
    other = write_legacy_cutouts(big, folder / "pad_big")
    for path in (folder / "pad_big").glob("*[0-9].fits"):
        shutil.copy(path, folder / "pad" / path.name)
    catalog = folder / "pad_catalog.fits"
    vstack([Table.read(files.catalog), Table.read(other.catalog)]).write(catalog)
    out = folder / "padded.hdf5"
    summary = import_cutouts(files.config(), str(catalog), out)
    assert (summary.height, summary.width, summary.n_padded) == (33, 33, int(half.sum()))
    back, _ = _all(out)
    orig, _ = _all(small)
    k = int(half.sum())
    np.testing.assert_allclose(back.images[:k, :, 5:28, 5:28], orig.images, rtol=1e-5,
                               atol=1e-6 * np.abs(orig.images).max())
    assert np.all(back.ivar[:k, :, :5] == 0) and np.all(back.ivar[:k, :, :, 28:] == 0)
    np.testing.assert_allclose(back.objects["x"][:k], orig.objects["x"] + 5)
    wcs = WCS(fits.Header.fromstring(back.scenes["wcs"][0].decode()))
    ra, dec = wcs.all_pix2world(back.objects["x"][0], back.objects["y"][0], 0)
    assert ra == pytest.approx(back.objects["ra"][0], abs=1e-9)
    assert dec == pytest.approx(back.objects["dec"][0], abs=1e-9)


def test_hsc_mask_planes_and_calibration(written, folder):
    """Pixels with a chosen MASK plane get no weight; without FLUXMAG0 the zeropoint
    option calibrates the counts."""
    files = written["hsc"]
    src = folder / "hsc"
    work = folder / "hsc_masked"
    shutil.copytree(src, work)
    first = Table.read(files.catalog)["id"][0]
    path = work / f"{first}-HSC-R.fits"
    with fits.open(path, mode="update") as hdul:
        hdul["MASK"].data[16, 16] |= 1 << hdul["MASK"].header["MP_SAT"]
        del hdul[0].header["FLUXMAG0"]
    cfg = files.config(cutouts=str(work / "{id}-{band}.fits"))
    with pytest.raises(InputError, match=f"{path}.*unit of its pixels is missing"):
        import_cutouts(cfg, files.catalog, folder / "never.hdf5")
    assert not (folder / "never.hdf5").exists()
    out = folder / "hsc_masked.hdf5"
    import_cutouts(files.config(cutouts=str(work / "{id}-{band}.fits"), zeropoint=27.0),
                   files.catalog, out)
    back, _ = _all(out)
    assert back.ivar[0, 1, 16, 16] == 0 and back.images[0, 1, 16, 16] == 0
    assert back.ivar[0, 0, 16, 16] > 0 and back.ivar[0, 1, 16, 15] > 0
    out2 = folder / "hsc_unmasked.hdf5"
    import_cutouts(files.config(cutouts=str(work / "{id}-{band}.fits"), zeropoint=27.0,
                                hsc_mask_planes=["NO_DATA"]), files.catalog, out2)
    assert _all(out2)[0].ivar[0, 1, 16, 16] > 0


def test_the_stage_reads_cutouts(written, folder):
    import rail.deepdisc_stages  # noqa: F401  (registers the stages)
    from rail.tools.scene_tools import CutoutImporter

    files = written["array"]
    stage = CutoutImporter.make_stage(name="cutouts_stage", format="array",
                                      cutouts=files.cutouts, bands=list(BANDS),
                                      unit="MJy/sr", pixel_scale=0.262, id_col="id",
                                      output=str(folder / "stage.hdf5"))
    handle = stage.import_cutouts(files.catalog)
    with SceneStore(handle.path) as st:
        assert st.n_scenes == st.n_objects == len(Table.read(files.catalog))
        assert np.all(st.objects(["box_origin"])["box_origin"] == 1)


def test_options_are_checked(written):
    with pytest.raises(OptionError, match=r"\{id\}"):
        CutoutConfig.from_mapping(format="legacy", cutouts="ls/cutout.fits")
    with pytest.raises(OptionError, match="needs the store band names"):
        CutoutConfig.from_mapping(format="array", cutouts="x.npz")
    with pytest.raises(OptionError, match="box_cols needs four"):
        CutoutConfig.from_mapping(format="legacy", cutouts="{id}.fits", box_cols=["a", "b"])


# --- bad inputs: one line naming the file, exit status 2, nothing written ---------------
def _legacy_copy(written, folder, name):
    files = written["legacy"]
    work = folder / name
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(folder / "legacy", work)
    first = int(Table.read(files.catalog)["id"][0])
    return files, work, work / f"{first}.fits"


def _fails(args, needle, out, capsys):
    assert main([*args, "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*"))
    return err


def test_cube_band_count_differs_from_band_list(written, folder, capsys):
    files, work, path = _legacy_copy(written, folder, "bad_bands")
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["BANDS"] = "gri"
        del hdul[0].header["BAND3"]
    err = _fails(["cutouts", "--format", "legacy", "--cutouts", str(work / "{id}.fits"),
                  "--catalog", files.catalog, "--id-col", "id"], str(path),
                 folder / "bad_bands.hdf5", capsys)
    assert "holds 4 bands but its header lists 3" in err


def test_no_wcs_and_no_pixel_scale(written, folder, capsys):
    files, work, path = _legacy_copy(written, folder, "no_wcs")
    wcs_key = re.compile(r"^(CTYPE|CRVAL|CRPIX|CUNIT|CDELT)\d$|^(CD|PC)\d_\d$")
    with fits.open(path, mode="update") as hdul:
        for hdu in hdul:
            for key in [k for k in hdu.header if wcs_key.match(k)]:
                del hdu.header[key]
    args = ["cutouts", "--format", "legacy", "--cutouts", str(work / "{id}.fits"),
            "--catalog", files.catalog, "--id-col", "id", "-q"]
    err = _fails(args, str(path), folder / "no_wcs.hdf5", capsys)
    assert "no WCS and no pixel scale" in err
    # with the pixel scale stated, a TAN WCS centred on the catalog position is made
    assert main([*args, "--pixel-scale", "0.262", "--output",
                 str(folder / "no_wcs_ok.hdf5")]) == 0


def test_all_nan_cutout(written, folder, capsys):
    files, work, path = _legacy_copy(written, folder, "all_nan")
    with fits.open(path, mode="update") as hdul:
        hdul[0].data[...] = np.nan
    err = _fails(["cutouts", "--format", "legacy", "--cutouts", str(work / "{id}.fits"),
                  "--catalog", files.catalog, "--id-col", "id", "-q"], str(path),
                 folder / "all_nan.hdf5", capsys)
    assert "no pixel with data" in err


def test_catalog_ids_matching_no_cutout(written, folder, capsys):
    for fmt in ("legacy", "array"):
        files = written[fmt]
        table = Table.read(files.catalog)
        table.add_row({**{c: table[c][0] for c in table.colnames}, "id": 999_999})
        catalog = folder / f"extra_{fmt}.fits"
        table.write(catalog, overwrite=True)
        extra = ["--bands", *BANDS, "--unit", "MJy/sr", "--pixel-scale", "0.262"] \
            if fmt == "array" else []
        err = _fails(["cutouts", "--format", fmt, "--cutouts", files.cutouts, "--catalog",
                      str(catalog), "--id-col", "id", "-q", *extra], "999999",
                     folder / f"extra_{fmt}.hdf5", capsys)
        assert ("999999.fits" in err) if fmt == "legacy" else (files.cutouts in err)


def test_units_missing(written, folder, capsys):
    files = written["array"]
    err = _fails(["cutouts", "--format", "array", "--cutouts", files.cutouts, "--bands",
                  *BANDS, "--pixel-scale", "0.262", "--catalog", files.catalog, "--id-col",
                  "id", "-q"], files.cutouts, folder / "no_unit.hdf5", capsys)
    assert "unit of its pixels is missing" in err
    err = _fails(["cutouts", "--format", "array", "--cutouts", files.cutouts, "--bands",
                  *BANDS[:3], "--unit", "nJy", "--pixel-scale", "0.262", "--catalog",
                  files.catalog, "--id-col", "id", "-q"], files.cutouts,
                 folder / "three_bands.hdf5", capsys)
    assert "hold 4 bands but the band list has 3" in err
    err = _fails(["cutouts", "--format", "array", "--cutouts", files.cutouts, "--bands",
                  *BANDS, "--unit", "nJy", "--catalog", files.catalog, "--id-col", "id",
                  "-q"], files.cutouts, folder / "no_scale.hdf5", capsys)
    assert "no pixel scale" in err


def test_catalog_box_columns_are_checked(written, folder):
    files = written["legacy"]
    table = Table.read(files.catalog)
    table[BOX_COLUMNS[2]][0] = table[BOX_COLUMNS[0]][0]
    catalog = folder / "empty_box.fits"
    table.write(catalog, overwrite=True)
    with pytest.raises(InputError, match=f"{catalog}.*box .* of id {table['id'][0]}"):
        import_cutouts(files.config(), str(catalog), folder / "empty_box.hdf5")


def test_64_bit_catalog_ids_are_kept_beside_row_numbers(written, folder):
    """Ids beyond int32 (DESI TARGETIDs) match their files, but the store numbers its
    objects by catalog row (its /segmap is int32) and keeps the ids as catalog_id."""
    files = written["legacy"]
    table = Table.read(files.catalog)
    work = folder / "big_ids"
    work.mkdir()
    big = np.asarray(table["id"], np.int64) + 39_627_000_000_000_000
    for old, new in zip(table["id"], big, strict=True):
        shutil.copy(folder / "legacy" / f"{old}.fits", work / f"{new}.fits")
    table["id"] = big
    catalog = folder / "big_ids.fits"
    table.write(catalog)
    out = folder / "big_ids.hdf5"
    import_cutouts(files.config(cutouts=str(work / "{id}.fits")), str(catalog), out)
    back, _ = _all(out)
    np.testing.assert_array_equal(back.objects["catalog_id"], big)
    np.testing.assert_array_equal(back.objects["object_id"], np.arange(1, len(table) + 1))
    assert set(np.unique(back.segmap)) <= {0, *range(1, len(table) + 1)}
