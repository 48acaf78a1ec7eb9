"""FITS mosaics: extensions, windows through memory maps, scaling, units, grids."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from rail.deepdisc.sim.fits_field import mosaic_wcs
from rail.deepdisc.store import mosaic_io
from rail.deepdisc.store.mosaic_io import (
    MosaicError,
    MosaicImage,
    check_same_grid,
    flux_factor,
    pixel_area_sr,
    split_spec,
)

WCS = mosaic_wcs((50, 60), (150.1, 2.2), 0.05, rotation_deg=10)


def _write(path, data, header=None, ext=None, **keys):
    hdr = WCS.to_header() if header is None else header
    for k, v in keys.items():
        hdr[k] = v
    if ext:
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, hdr, name=ext)]).writeto(path)
    else:
        fits.PrimaryHDU(data, hdr).writeto(path)
    return str(path)


def test_split_spec():
    assert split_spec("a/m.fits") == ("a/m.fits", None)
    assert split_spec("m.fits[SCI]") == ("m.fits", "SCI")
    assert split_spec("m.fits[sci, 2]") == ("m.fits", ("sci", 2))
    assert split_spec("m.fits[3]") == ("m.fits", 3)
    with pytest.raises(MosaicError, match="version"):
        split_spec("m.fits[SCI,x]")


def test_windows_match_astropy_and_pad_outside(tmp_path):
    data = np.arange(50 * 60, dtype=">f4").reshape(50, 60)
    path = _write(tmp_path / "m.fits", data, ext="SCI")
    img = MosaicImage.open(f"{path}[SCI]")
    assert img.shape == (50, 60) and not img.compressed
    np.testing.assert_array_equal(img.read(5, 20, 7, 33), data[5:20, 7:33])
    win = img.read(-3, 10, 50, 70)
    np.testing.assert_array_equal(win[3:, :10], data[:10, 50:60])
    assert np.all(np.isnan(win[:3])) and np.all(np.isnan(win[:, 10:]))
    assert win.dtype == np.float32
    # without an extension: the first image HDU (the primary is empty here)
    assert MosaicImage.open(path).hdu_index == 1


def test_reads_map_only_the_rows_of_the_window(tmp_path, monkeypatch):
    """Bounded memory by construction: every read maps just the rows it needs."""
    data = np.ones((200, 80), ">f4")
    img = MosaicImage.open(_write(tmp_path / "m.fits", data))
    shapes = []
    real = np.memmap

    def recording(*args, **kwargs):
        shapes.append(kwargs["shape"])
        return real(*args, **kwargs)

    monkeypatch.setattr(mosaic_io.np, "memmap", recording)
    img.read(100, 132, 0, 32)
    img.read_labels(0, 16, 16, 48)
    assert shapes == [(32, 80), (16, 80)]


def test_scaled_integers_and_blank(tmp_path):
    raw = np.array([[1, 2], [3, -32768]], dtype=np.int16)
    hdr = WCS.to_header()
    hdu = fits.PrimaryHDU(raw, hdr)
    hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = 0.5, 10.0, -32768
    path = tmp_path / "s.fits"
    hdu.writeto(path)
    values = MosaicImage.open(path).read(0, 2, 0, 2)
    np.testing.assert_allclose(values[:1], [[10.5, 11.0]])
    assert values[1, 0] == pytest.approx(11.5) and np.isnan(values[1, 1])


def test_tile_compressed_images_are_read_by_section(tmp_path):
    data = np.random.default_rng(0).normal(size=(50, 60)).astype(np.float32)
    comp = fits.CompImageHDU(data, WCS.to_header(), compression_type="GZIP_1", name="SCI")
    fits.HDUList([fits.PrimaryHDU(), comp]).writeto(tmp_path / "c.fits")
    img = MosaicImage.open(f"{tmp_path / 'c.fits'}[SCI]")
    assert img.compressed and img.shape == (50, 60)
    with fits.open(tmp_path / "c.fits") as hdul:  # float compression quantizes: compare
        stored = hdul["SCI"].data                 # with what astropy decompresses
    np.testing.assert_array_equal(img.read(10, 30, 5, 45), stored[10:30, 5:45])
    np.testing.assert_allclose(stored, data, atol=0.05)


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", "does not exist"), ("gz", "decompress"), ("ext", "no extension 'ERR'"),
    ("table", "not an image"), ("cube", "2-D image"),
])
def test_open_errors(tmp_path, setup, message):
    path = tmp_path / "m.fits"
    spec = str(path)
    if setup == "gz":
        spec = _write(tmp_path / "m.fits.gz", np.zeros((4, 4), np.float32))
    elif setup == "ext":
        spec = _write(path, np.zeros((4, 4), np.float32), ext="SCI") + "[ERR]"
    elif setup == "table":
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
            [fits.Column("a", "E", array=np.ones(3))], name="CAT")]).writeto(path)
        spec = f"{path}[CAT]"
    elif setup == "cube":
        fits.PrimaryHDU(np.zeros((2, 4, 4), np.float32)).writeto(path)
    with pytest.raises(MosaicError, match=message):
        MosaicImage.open(spec)


def test_a_mosaic_without_wcs_is_named(tmp_path):
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(tmp_path / "m.fits")
    img = MosaicImage.open(tmp_path / "m.fits", "band jwst_f200w mosaic")
    with pytest.raises(MosaicError, match="no celestial WCS"):
        _ = img.wcs


def test_flux_factors():
    hdr = fits.Header()
    area = pixel_area_sr(WCS)
    assert area == pytest.approx((0.05 / 206264.806) ** 2, rel=1e-6)
    assert flux_factor("MJy/sr", hdr, WCS, "b") == pytest.approx(1e15 * area, rel=1e-9)
    assert flux_factor("uJy/arcsec2", hdr, WCS, "b") == pytest.approx(1e3 * 0.05**2, rel=1e-9)
    assert flux_factor("nJy", hdr, WCS, "b") == 1.0
    assert flux_factor("Jy", hdr, WCS, "b") == pytest.approx(1e9)
    assert flux_factor("uJy/pix", hdr, WCS, "b") == pytest.approx(1e3)
    hdr["PHOTFNU"] = 1.5e-7
    assert flux_factor("ELECTRONS/S", hdr, WCS, "b") == pytest.approx(150.0)
    assert flux_factor("counts/s", hdr, WCS, "b") == pytest.approx(150.0)
    for unit, message in ((None, "no BUNIT"), ("ELECTRONS/S", "PHOTFNU"),
                          ("furlong", "cannot parse"), ("K", "not a flux")):
        with pytest.raises(MosaicError, match=message):
            flux_factor(unit, fits.Header(), WCS, "band x")


def test_grids(tmp_path):
    a = MosaicImage.open(_write(tmp_path / "a.fits", np.zeros((50, 60), np.float32)))
    # the same grid written with CDELT + PC instead of CD passes
    hdr = WCS.to_header()
    b = MosaicImage.open(_write(tmp_path / "b.fits", np.zeros((50, 60), np.float32), hdr))
    check_same_grid(a, b, "band b", "band a")
    shifted = WCS.deepcopy()
    shifted.wcs.crpix = shifted.wcs.crpix + np.array([0.5, 0.0])
    c = MosaicImage.open(_write(tmp_path / "c.fits", np.zeros((50, 60), np.float32),
                                shifted.to_header()))
    with pytest.raises(MosaicError, match=r"band c .* not on the pixel grid of band a"):
        check_same_grid(a, c, "band c", "band a")
    d = MosaicImage.open(_write(tmp_path / "d.fits", np.zeros((50, 61), np.float32)))
    with pytest.raises(MosaicError, match=r"band d .* 61 x 50 pixels but band a"):
        check_same_grid(a, d, "band d", "band a")
    bare = tmp_path / "seg.fits"
    fits.PrimaryHDU(np.zeros((50, 60), np.int32)).writeto(bare)
    check_same_grid(a, MosaicImage.open(bare), "segmap", "band a", require_wcs=False)
