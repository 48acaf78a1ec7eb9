"""MosaicTiler's library: a simulated field through FITS mosaics and back, options, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from rail.deepdisc.net.estimate import pixel_to_sky
from rail.deepdisc.store.catalogs import CatalogColumns
from rail.deepdisc.store.mosaic import TilerConfig, tile_mosaic
from rail.deepdisc.store.mosaic_io import MosaicError
from rail.deepdisc.store.scenes import SceneStore
from rail.deepdisc.store.tiling import TileGrid


def _truth(truth_store):
    with SceneStore(truth_store) as st:
        chunk = st.read_chunk(0, 1)
    return chunk.images[0], chunk.ivar[0], chunk.segmap[0], chunk.objects


def _config(field, **changes):
    cfg = TilerConfig(images=field.images, errors=field.errors, segmap=field.segmap,
                      columns=CatalogColumns(id_col="id"), tile_size=96, overlap=24)
    return replace(cfg, **changes)


def test_round_trip_lists_each_object_inside_the_footprint_once(fits_field, tiled_field):
    _, field = fits_field
    with SceneStore(tiled_field) as st:
        obj, scenes = st.objects(), st.scenes()
        assert st.n_scenes == 16 and st.info.height == st.info.width == 96
    ids = obj["object_id"]
    assert np.unique(ids).size == ids.size
    assert set(ids.tolist()) == set(field.object_id.tolist())
    assert not set(ids.tolist()) & set(field.outside_ids.tolist())
    # objects sorted by tile, each in the tile where it lies farthest from the edge
    assert np.all(np.diff(obj["scene"]) >= 0)
    mx = obj["x"] + scenes["x0"][obj["scene"]]
    my = obj["y"] + scenes["y0"][obj["scene"]]
    grid = TileGrid(256, 256, 96, 24)
    np.testing.assert_array_equal(grid.owners(mx, my), scenes["tile"][obj["scene"]])
    interior = (mx > 96) & (mx < 160) & (my > 96) & (my < 160)
    assert np.all(obj["edge_distance"][interior] >= 12)


def test_round_trip_positions_agree_with_the_catalog_to_005_pixel(fits_field, tiled_field):
    _, field = fits_field
    with SceneStore(tiled_field) as st:
        obj, scenes = st.objects(), st.scenes()
    truth = {int(i): (x, y) for i, x, y in zip(field.object_id, field.x, field.y, strict=True)}
    tx = np.array([truth[int(i)][0] for i in obj["object_id"]])
    ty = np.array([truth[int(i)][1] for i in obj["object_id"]])
    mx = obj["x"] + scenes["x0"][obj["scene"]]
    my = obj["y"] + scenes["y0"][obj["scene"]]
    assert np.max(np.hypot(mx - tx, my - ty)) < 0.05
    # and through each tile's own WCS, from tile pixels back to the catalog's RA/Dec
    cat = Table.read(field.catalog)
    rows = {int(i): k for k, i in enumerate(cat["id"])}
    k = np.array([rows[int(i)] for i in obj["object_id"]])
    sep_pix = np.zeros(len(k))
    for s in np.unique(obj["scene"]):
        sel = obj["scene"] == s
        ra, dec = pixel_to_sky(scenes["wcs"][s], obj["x"][sel], obj["y"][sel])
        dra = (ra - cat["ra"][k[sel]]) * np.cos(np.radians(dec))
        sep_pix[sel] = np.hypot(dra, dec - cat["dec"][k[sel]]) * 3600 / field.pixel_scale_arcsec
    assert len(k) > 20 and np.max(sep_pix) < 0.05
    np.testing.assert_allclose(obj["ra"], cat["ra"][k])


def test_pixels_become_njy_and_blank_pixels_image_0_ivar_0(fits_field, tiled_field):
    truth_store, _ = fits_field
    images, ivar, _, _ = _truth(truth_store)
    blank = np.zeros((256, 256), bool)
    blank[:8], blank[-8:], blank[:, :8], blank[:, -8:] = True, True, True, True
    with SceneStore(tiled_field) as st:
        assert st.info.flux_unit == "nJy" and st.info.zeropoint_ab == pytest.approx(31.4)
        assert st.info.pixel_scale_arcsec == pytest.approx(0.03)
        chunk = st.read_chunk(0, st.n_scenes)
    for i in range(len(chunk)):
        x0, y0 = int(chunk.scenes["x0"][i]), int(chunk.scenes["y0"][i])
        win = (slice(y0, y0 + 96), slice(x0, x0 + 96))
        b = blank[win]
        np.testing.assert_allclose(chunk.images[i][:, ~b], images[:, win[0], win[1]][:, ~b],
                                   rtol=2e-6, atol=1e-6 * np.abs(images).max())
        np.testing.assert_allclose(chunk.ivar[i][:, ~b], ivar[:, win[0], win[1]][:, ~b],
                                   rtol=2e-5)
        assert np.all(chunk.images[i][:, b] == 0) and np.all(chunk.ivar[i][:, b] == 0)
    assert np.all(np.isfinite(chunk.images))


def test_segmap_and_boxes_follow_the_segmentation_map(fits_field, tiled_field):
    truth_store, _ = fits_field
    _, _, segmap, _ = _truth(truth_store)
    with SceneStore(tiled_field) as st:
        chunk = st.read_chunk(0, st.n_scenes)
    for i in range(len(chunk)):
        o = chunk.scene_objects(i)
        seg = chunk.segmap[i]
        assert set(np.unique(seg[seg > 0]).tolist()) <= set(o["object_id"].tolist())
        x0, y0 = int(chunk.scenes["x0"][i]), int(chunk.scenes["y0"][i])
        truth = segmap[y0:y0 + 96, x0:x0 + 96]
        for j, oid in enumerate(o["object_id"]):
            ys, xs = np.nonzero(truth == oid)
            assert (o["bbox_x0"][j], o["bbox_y0"][j], o["bbox_x1"][j], o["bbox_y1"][j]) == \
                (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            np.testing.assert_array_equal(seg == oid, truth == oid)


def test_provenance_records_inputs_units_and_counts(fits_field, tiled_field):
    _, field = fits_field
    with SceneStore(tiled_field) as st:
        prov = st.provenance()
        attrs = st.info.attrs
    assert prov["created_by"] == "rail.deepdisc.store.mosaic.tile_mosaic"
    band = prov["config"]["inputs"]["bands"]["jwst_f200w"]
    assert band["unit"] == "MJy/sr" and band["ivar"] == "error map"
    assert band["image"] == field.images["jwst_f200w"]
    summary = prov["config"]["summary"]
    assert summary["n_listed"] == len(field.object_id)
    assert summary["n_catalog"] == len(field.object_id) + len(field.outside_ids)
    assert "astropy" in prov["versions"]
    assert list(attrs["mosaic_shape"]) == [256, 256] and attrs["tile_overlap"] == 24


def test_require_redshift_keeps_tiles_with_known_redshifts(fits_field, tiled_field, tmp_path):
    _, field = fits_field
    out = tile_mosaic(_config(field, require_redshift=True), field.catalog,
                      tmp_path / "train.hdf5")
    with SceneStore(out.output) as st, SceneStore(tiled_field) as full:
        obj, scenes = st.objects(), st.scenes()
        fobj, fscenes = full.objects(), full.scenes()
    assert 0 < len(scenes["tile"]) < 16 and out.n_tiles_no_redshift > 0
    for s, tile in enumerate(scenes["tile"]):
        sel = obj["scene"] == s
        assert np.isfinite(obj["redshift"][sel]).any()
        same = fobj["scene"] == np.flatnonzero(fscenes["tile"] == tile)[0]
        np.testing.assert_array_equal(obj["object_id"][sel], fobj["object_id"][same])
    kinds = obj["redshift_kind"]
    assert set(kinds[np.isfinite(obj["redshift"])].tolist()) == {b"spec"}
    assert set(kinds[np.isnan(obj["redshift"])].tolist()) <= {b"none"}


def test_size_boxes_and_noise_from_the_pixels_without_error_maps(fits_field, tmp_path):
    truth_store, field = fits_field
    _, ivar, _, _ = _truth(truth_store)
    cfg = _config(field, errors={}, segmap="",
                  columns=CatalogColumns(id_col="id", size_col="size"), size_scale=2.0)
    out = tile_mosaic(cfg, field.catalog, tmp_path / "t.hdf5")
    cat = Table.read(field.catalog)
    size = dict(zip(cat["id"].tolist(), cat["size"].tolist(), strict=True))
    with SceneStore(out.output) as st:
        assert not st.has_segmap
        chunk = st.read_chunk(0, st.n_scenes)
        prov = st.provenance()
    band = prov["config"]["inputs"]["bands"]["jwst_f090w"]
    assert band["ivar"] == "noise estimated from the pixels" and band["noise_njy"] > 0
    o = chunk.objects
    half = np.array([2.0 * size[int(i)] / 0.03 for i in o["object_id"]])
    cx = (o["bbox_x0"] + o["bbox_x1"]) / 2 - 0.5
    inside = (o["x"] - half > 0) & (o["x"] + half < 95) & (o["y"] - half > 0) & \
        (o["y"] + half < 95)
    assert inside.sum() > 5
    np.testing.assert_allclose(cx[inside], o["x"][inside], atol=1.0)
    np.testing.assert_allclose((o["bbox_x1"] - o["bbox_x0"])[inside], 2 * half[inside],
                               atol=2.0)
    # one noise per band from the pixels: within 20% of the simulator's (crowded red bands
    # read high), constant where there are data, 0 on blank pixels
    sigma_true = 1 / np.sqrt(ivar[:, 128, 128])
    iv = chunk.ivar.transpose(1, 0, 2, 3).reshape(9, -1)
    sigma = np.array([1 / np.sqrt(np.unique(v[v > 0])) for v in iv]).ravel()
    assert sigma.size == 9
    np.testing.assert_allclose(sigma, sigma_true, rtol=0.2)
    assert np.all((chunk.ivar == 0) == (chunk.images == 0))


def test_weight_maps_give_the_same_ivar_as_error_maps(fits_field, tiled_field, tmp_path):
    _, field = fits_field
    weights = {}
    for band, spec in field.errors.items():
        path = spec.split("[")[0]
        with fits.open(path) as hdul:
            err, hdr = hdul["ERR"].data, hdul["ERR"].header
        wht = np.where(np.isfinite(err), 1.0 / err**2, 0.0).astype(np.float32)
        fits.PrimaryHDU(wht, hdr).writeto(tmp_path / f"{band}_wht.fits")
        weights[band] = str(tmp_path / f"{band}_wht.fits")
    out = tile_mosaic(_config(field, errors={}, weights=weights), field.catalog,
                      tmp_path / "w.hdf5")
    with SceneStore(out.output) as a, SceneStore(tiled_field) as b:
        np.testing.assert_allclose(a.read_chunk(0, 16).ivar, b.read_chunk(0, 16).ivar,
                                   rtol=1e-5)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_other_catalog_formats_give_the_same_store(fits_field, tiled_field, tmp_path, fmt):
    _, field = fits_field
    table = Table.read(field.catalog)
    path = tmp_path / f"cat.{fmt}"
    if fmt == "csv":
        table.write(path, format="ascii.csv")
    else:
        table.to_pandas().to_parquet(path)
    out = tile_mosaic(_config(field), str(path), tmp_path / "t.hdf5")
    with SceneStore(out.output) as a, SceneStore(tiled_field) as b:
        np.testing.assert_array_equal(a.objects(["object_id"])["object_id"],
                                      b.objects(["object_id"])["object_id"])
        np.testing.assert_allclose(a.objects(["x"])["x"], b.objects(["x"])["x"], atol=1e-6)


# --- bad inputs: each a clear error before any pixel is read, nothing written ----------------
def _copy_band(field, tmp_path, band, change):
    path = field.images[band].split("[")[0]
    with fits.open(path) as hdul:
        sci = hdul["SCI"]
        data, header = sci.data, sci.header.copy()
    data, header = change(data, header)
    out = tmp_path / f"{band}_bad.fits"
    fits.PrimaryHDU(data, header).writeto(out)
    return str(out)


def _fails(cfg, catalog, tmp_path, message):
    out = tmp_path / "out" / "bad.hdf5"
    with pytest.raises(MosaicError, match=message):
        tile_mosaic(cfg, catalog, out)
    assert not out.exists()
    assert not (out.parent.exists() and any(out.parent.iterdir()))  # no temporary left


def test_bands_on_different_grids(fits_field, tmp_path):
    _, field = fits_field

    def shift(data, header):
        header["CRPIX1"] += 2.0
        return data, header

    def crop(data, header):
        return data[:, :250], header

    for change, message in ((shift, r"band jwst_f277w .* not on the pixel grid of band "
                                    r"jwst_f090w.*differs by up to 2"),
                            (crop, r"band jwst_f277w .* 250 x 256 pixels")):
        folder = tmp_path / change.__name__
        folder.mkdir()
        images = dict(field.images)
        images["jwst_f277w"] = _copy_band(field, folder, "jwst_f277w", change)
        _fails(_config(field, images=images), field.catalog, tmp_path, message)


def test_catalog_without_ra_dec_columns(fits_field, tmp_path):
    _, field = fits_field
    table = Table.read(field.catalog)
    table.rename_column("ra", "alpha")
    table.write(tmp_path / "c.fits")
    _fails(_config(field), str(tmp_path / "c.fits"), tmp_path,
           r"no RA column 'ra' \(set ra_col\).*'alpha'")
    _fails(_config(field, columns=CatalogColumns(id_col="id", dec_col="DEC")), field.catalog,
           tmp_path, r"no Dec column 'DEC'")


def test_mosaic_without_wcs(fits_field, tmp_path):
    _, field = fits_field

    def strip(data, header):
        return data, fits.Header({"BUNIT": "MJy/sr"})

    for band in ("jwst_f090w", "jwst_f444w"):  # the reference band and another
        images = dict(field.images)
        (tmp_path / band).mkdir()
        images[band] = _copy_band(field, tmp_path / band, band, strip)
        _fails(_config(field, images=images), field.catalog, tmp_path,
               rf"band {band} mosaic .* has no celestial WCS")


def test_catalog_with_no_object_inside_the_footprint(fits_field, tmp_path):
    _, field = fits_field
    table = Table.read(field.catalog)
    table["dec"] += 0.5
    table.write(tmp_path / "far.fits")
    _fails(_config(field), str(tmp_path / "far.fits"), tmp_path,
           r"no object of .*far.fits lies inside the footprint.*corners")
    # inside the bounds but all on blank pixels: found during the pass, still nothing written
    table = Table.read(field.catalog)
    wcs = field.wcs
    ra, dec = wcs.all_pix2world(np.full(len(table), 3.0), np.linspace(3, 250, len(table)), 0)
    table["ra"], table["dec"] = ra, dec
    table.write(tmp_path / "blank.fits")
    _fails(_config(field), str(tmp_path / "blank.fits"), tmp_path, r"blank \(NaN")


def test_other_bad_inputs(fits_field, tmp_path):
    _, field = fits_field

    def no_unit(data, header):
        del header["BUNIT"]
        return data, header

    (tmp_path / "u").mkdir()
    images = dict(field.images)
    images["jwst_f150w"] = _copy_band(field, tmp_path / "u", "jwst_f150w", no_unit)
    _fails(_config(field, images=images), field.catalog, tmp_path,
           r"band jwst_f150w .* no BUNIT")
    errors = dict(field.errors)
    errors["jwst_f150w"] = field.errors["jwst_f150w"].replace("[ERR]", "[WHT]")
    _fails(_config(field, errors=errors), field.catalog, tmp_path, r"no extension 'WHT'")
    with pytest.raises(ValueError, match="overlap"):
        tile_mosaic(_config(field, overlap=60), field.catalog, tmp_path / "x.hdf5")
    with pytest.raises(ValueError, match="both an error and a weight map"):
        tile_mosaic(_config(field, weights={"jwst_f090w": field.errors["jwst_f090w"]}),
                    field.catalog, tmp_path / "x.hdf5")
    with pytest.raises(ValueError, match=r"errors names bands \['hst_f160w'\]"):
        tile_mosaic(_config(field, errors={"hst_f160w": "x.fits"}), field.catalog,
                    tmp_path / "x.hdf5")
    assert not (tmp_path / "x.hdf5").exists()


MEMORY_SCRIPT = """
import json, sys
import numpy as np
from rail.deepdisc.store.catalogs import CatalogColumns
from rail.deepdisc.store.mosaic import TilerConfig, tile_mosaic


def status(key):  # kB
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def reset_peak():  # the peak RSS (VmHWM) restarts from the current RSS
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status("VmRSS")


# what tiling imports, imported first: module code is not pixel memory
import astropy.io.fits, astropy.stats, astropy.table, astropy.wcs, scipy.ndimage, tqdm.auto  # noqa

job = json.loads(sys.argv[1])
cfg = TilerConfig(images=job["images"], errors=job["errors"],
                  columns=CatalogColumns(id_col="id", size_col="size"),
                  tile_size=256, overlap=32)
base = reset_peak()
summary = tile_mosaic(cfg, job["catalog"], job["output"])
growth = status("VmHWM") - base
base = reset_peak()
band = np.ones(job["band_pixels"], np.float32)  # control: one band in memory shows up
control = status("VmHWM") - base
print(json.dumps({"growth_kib": growth, "control_kib": control,
                  "tiles": summary.n_tiles_written, "listed": summary.n_listed}))
"""


def test_peak_memory_does_not_grow_with_the_mosaic(tmp_path):
    """Tiling a 3 x 4000 x 4000 field (64 MB a band; written as the benchmark writes its
    20,000 x 20,000 x 9 field) raises the peak RSS by far less than one band: pixels are
    read window by window and the maps are released tile by tile."""
    from rail.deepdisc.sim.large_field import LargeFieldSpec, write_large_field

    n = 4000
    spec = LargeFieldSpec(shape=(n, n), bands=("jwst_f150w", "jwst_f200w", "jwst_f277w"),
                          n_objects=2000, error_bands=1, seed=3)
    field = write_large_field(spec, tmp_path / "field")
    job = {"images": field.images, "errors": field.errors, "catalog": field.catalog,
           "output": str(tmp_path / "t.hdf5"), "band_pixels": n * n}
    res = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, json.dumps(job)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["tiles"] == 18 * 18
    inner = (field.x > 63.5) & (field.x < n - 64.5) & (field.y > 63.5) & (field.y < n - 64.5)
    assert out["listed"] == inner.sum()  # every object on data, none on the NaN border
    band_kib = n * n * 4 / 1024
    assert out["control_kib"] > 0.8 * band_kib, out  # the measure sees a band's worth
    assert out["growth_kib"] < 0.5 * band_kib, out
