"""Synthetic survey-sized mosaics written in row blocks, and the tiling benchmark that uses
them (at a small size: the same code path as the 20,000 x 20,000 x 9 run)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from rail.deepdisc.sim.large_field import LargeFieldSpec, write_large_field
from rail.deepdisc.store.tiling import TileGrid

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "mosaic_tiling.py"


def test_written_field_has_survey_layout_units_wcs_and_border(tmp_path):
    spec = LargeFieldSpec(shape=(301, 203), bands=("jwst_f150w", "jwst_f444w"),
                          n_objects=40, error_bands=1, nan_border=8, block_rows=37,
                          noise_njy=2.0, flux_range_njy=(5000.0, 5001.0), seed=4)
    field = write_large_field(spec, tmp_path)
    sr = (0.03 / 206264.80624709636) ** 2
    to_mjy_sr = 1e-15 / sr
    path = field.images["jwst_f150w"].removesuffix("[SCI]")
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR"]
        sci, hdr = hdul["SCI"].data, hdul["SCI"].header
        err = hdul["ERR"].data
    with fits.open(field.images["jwst_f444w"].removesuffix("[SCI]")) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI"]
        red = hdul["SCI"].data
    assert sci.shape == (301, 203) and hdr["BUNIT"] == "MJy/sr"
    blank = np.ones(sci.shape, bool)
    blank[8:-8, 8:-8] = False
    for image in (sci, err, red):
        assert np.isnan(image[blank]).all() and np.isfinite(image[~blank]).all()
    np.testing.assert_allclose(err[~blank], 2.0 * to_mjy_sr, rtol=1e-6)
    # the WCS in the header places the catalog on the true positions
    from astropy.wcs import WCS

    cat = Table.read(field.catalog)
    x, y = WCS(hdr).all_world2pix(cat["ra"], cat["dec"], 0)
    np.testing.assert_allclose(x, field.x, atol=1e-6)
    np.testing.assert_allclose(y, field.y, atol=1e-6)
    assert cat["id"].tolist() == list(range(1, 41))
    # the sources are there (5000 nJy over a few pixels, noise 2 nJy), redder ones brighter
    inside = (field.x > 20) & (field.x < 182) & (field.y > 20) & (field.y < 280)
    px = np.floor(field.x[inside] + 0.5).astype(int)
    py = np.floor(field.y[inside] + 0.5).astype(int)
    peak = sci[py, px] / to_mjy_sr
    assert inside.sum() > 10 and np.all(peak > 10 * 2.0)
    assert np.all(red[py, px] > sci[py, px])
    # and the noise far from sources is the one asked for
    far = np.ones(sci.shape, bool)
    for xx, yy in zip(field.x, field.y, strict=True):
        far[max(int(yy) - 16, 0):int(yy) + 17, max(int(xx) - 16, 0):int(xx) + 17] = False
    far &= ~blank
    assert far.sum() > 1000
    np.testing.assert_allclose(np.std(sci[far]) / to_mjy_sr, 2.0, rtol=0.1)


def test_bad_specs_are_named(tmp_path):
    with pytest.raises(ValueError, match="error_bands"):
        write_large_field(LargeFieldSpec(shape=(64, 64), bands=("a",), error_bands=2),
                          tmp_path)
    with pytest.raises(ValueError, match="nan_border"):
        write_large_field(LargeFieldSpec(shape=(64, 64), nan_border=32), tmp_path)


def _run(*args):
    return subprocess.run([sys.executable, str(BENCHMARK), *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_tiling_benchmark_prints_time_and_memory_and_cleans_up(tmp_path):
    res = _run("--workdir", str(tmp_path), "--size", "700", "--bands", "2", "--objects",
               "300", "--tile-size", "128", "--overlap", "16")
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert "field: 700 x 700 pixels x 2 bands (1 with ERR), 300 objects" in out
    assert re.search(r"written: [0-9.]+ GB of pixels in [0-9.]+ s", out)
    n_tiles = len(TileGrid(700, 700, 128, 16))
    assert f"tiles: {n_tiles} of {n_tiles} written" in out
    assert re.search(r"tiling wall time: [0-9.]+ s", out)
    rss = float(re.search(r"peak RSS of the tiling process: ([0-9.]+) GB", out).group(1))
    assert 0.05 < rss < 3.0 and "limit 3 GB: ok" in out
    assert list(tmp_path.iterdir()) == []  # the field and the store are gone
    res = _run("--workdir", str(tmp_path), "--size", "300", "--bands", "1", "--objects",
               "20", "--error-bands", "0", "--keep")
    assert res.returncode == 0, res.stderr[-3000:]
    kept = list(tmp_path.iterdir())
    assert len(kept) == 1 and (kept[0] / "tiles.hdf5").is_file()
    assert (kept[0] / "field" / "jwst_f090w.fits").is_file()
