"""``rail-deepdisc survey``: a survey file measured from FITS mosaics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from rail.deepdisc.cli import main
from rail.deepdisc.errors import InputError
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.sim.fits_field import mosaic_wcs
from rail.deepdisc.sim.noise import correlation_factor, draw_noise, gaussian_kernel
from rail.deepdisc.sim.survey_from_mosaics import (
    MosaicSurveyOptions,
    robust_std,
    sky_mask,
    survey_from_mosaics,
)
from rail.deepdisc.sim.surveys import get_survey
from rail.deepdisc.store.scenes import SceneStore


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(str(path).split("[")[0]).read_bytes()).hexdigest()


def _psf_files(truth: str, folder: Path) -> dict[str, str]:
    """The truth store's PSFs as FITS images (4x oversampled, PIXELSCL in the header)."""
    import json

    from astropy.io import fits

    from rail.deepdisc.sim.psf import make_psf

    folder.mkdir(exist_ok=True)
    with SceneStore(truth) as st:
        description, scale, bands = json.loads(st.info.attrs["psf"]), \
            st.info.pixel_scale_arcsec, st.bands
    paths = {}
    for band in bands:
        image = make_psf(description, band).drawImage(nx=129, ny=129, scale=scale / 4,
                                                      method="no_pixel").array
        header = fits.Header({"PIXELSCL": scale / 4})
        paths[band] = str(folder / f"psf_{band}.fits")
        fits.PrimaryHDU(image.astype(np.float32), header).writeto(paths[band])
    return paths


def sky_noise(path: str | Path) -> np.ndarray:
    """Per band, the empty-sky pixel noise of a store: the robust spread of differences of
    horizontal neighbours on source-masked sky, over sqrt(2) (light left in the sky cancels
    in the differences)."""
    out = []
    with SceneStore(path) as st:
        chunk = st.read_chunk(0, st.n_scenes)
    for b in range(chunk.images.shape[1]):
        diffs = []
        for image, ivar in zip(chunk.images[:, b].astype(float), chunk.ivar[:, b],
                               strict=True):
            sky = sky_mask(image * np.sqrt(ivar))
            pair = sky[:, 1:] & sky[:, :-1]
            diffs.append((image[:, 1:] - image[:, :-1])[pair])
        out.append(robust_std(np.concatenate(diffs)) / np.sqrt(2))
    return np.array(out)


@pytest.fixture(scope="module")
def measured(fits_field, tmp_path_factory):
    """``rail-deepdisc survey`` on the FITS field (error maps, PSF files, r = 0.2")."""
    truth, field = fits_field
    folder = tmp_path_factory.mktemp("survey")
    psfs = _psf_files(truth, folder / "psfs")
    args = []
    for band, spec in field.images.items():
        args += ["--image", f"{band}={spec}", "--error", f"{band}={field.errors[band]}",
                 "--psf", f"{band}={psfs[band]}"]
    inputs = [*field.images.values(), *psfs.values()]
    before = {p: _sha(p) for p in inputs}
    out = folder / "mine.yml"
    assert main(["survey", *args, "--depth-aperture-arcsec", "0.2", "--output", str(out),
                 "-q"]) == 0
    assert {p: _sha(p) for p in inputs} == before
    return truth, field, out


def test_survey_recovers_pixel_scale_and_depths(measured):
    truth, field, out = measured
    survey = get_survey(str(out))
    with SceneStore(truth) as st:
        truth_survey = get_survey(st.info.survey)
        noise = np.asarray(st.info.attrs["noise_sigma"])
        assert survey.bands == st.bands
    assert survey.pixel_scale == field.pixel_scale_arcsec
    for b, band in enumerate(survey.bands):
        assert survey.depths[band] == pytest.approx(truth_survey.depths[band], abs=0.1)
        assert survey.pixel_noise[band] == pytest.approx(noise[b], rel=1e-3)
    assert not survey.noise_correlation  # the writer's noise is white
    assert survey.psfs[survey.bands[0]]["kind"] == "image"


def test_a_simulation_from_the_file_has_the_same_sky_noise(measured, tmp_path):
    truth, _, out = measured
    sim = simulate_field(FieldSpec(survey=str(out), n_scenes=2, scene_size=128, seed=5),
                         tmp_path / "sim.hdf5", n_workers=1, progress=False)
    ratio = sky_noise(sim) / sky_noise(truth)
    np.testing.assert_allclose(ratio, 1.0, atol=0.05)


def test_weight_maps_give_the_same_noise(measured, tmp_path):
    """Inverse-variance maps in place of error maps."""
    from astropy.io import fits

    _, field, out = measured
    band = "jwst_f200w"
    path, _ = field.errors[band].split("[")
    with fits.open(path) as hdul:
        err = hdul["ERR"]
        weight = fits.ImageHDU(1.0 / err.data.astype(float) ** 2, err.header, name="WHT")
    weight.writeto(tmp_path / "wht.fits")
    opts = MosaicSurveyOptions(images={band: field.images[band]},
                               weights={band: str(tmp_path / "wht.fits")},
                               psfs={band: str(Path(out).parent / "psfs" /
                                               f"psf_{band}.fits")},
                               depth_aperture_arcsec=0.2)
    result = survey_from_mosaics(opts, tmp_path / "w.yml")
    assert result.preset.pixel_noise[band] == pytest.approx(
        get_survey(str(out)).pixel_noise[band], rel=1e-4)


def _mosaic(path: Path, sci: np.ndarray, sigma: float, scale: float) -> str:
    from astropy.io import fits

    n = sci.shape[0]
    header = mosaic_wcs((n, n), (150.0, 2.0), scale).to_header()
    header["BUNIT"] = "nJy"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci.astype(np.float32), header, name="SCI"),
                  fits.ImageHDU(np.full((n, n), sigma, np.float32), header, name="ERR")]
                 ).writeto(path)
    return str(path)


def test_correlated_noise_is_measured(tmp_path):
    """Noise convolved with a Gaussian (FWHM 1.6 pixels), as drizzling makes it: the kernel
    written has the true correlation factor within 10%, so the depth is within 0.1 mag."""
    import galsim

    rng = np.random.default_rng(7)
    kernel = gaussian_kernel(1.6)
    sci = draw_noise(rng, (1, 400, 400), np.array([2.0]), [kernel])[0]
    psf = galsim.Gaussian(fwhm=0.5).drawImage(nx=41, ny=41, scale=0.05).array
    path = tmp_path / "psf.fits"
    from astropy.io import fits

    fits.PrimaryHDU(psf, fits.Header({"PIXELSCL": 0.05})).writeto(path)
    mosaic = _mosaic(tmp_path / "m.fits", sci, 2.0, 0.1)
    opts = MosaicSurveyOptions(images={"decam_r": f"{mosaic}[SCI]"},
                               errors={"decam_r": f"{mosaic}[ERR]"},
                               psfs={"decam_r": str(path)}, depth_aperture_arcsec=0.5)
    result = survey_from_mosaics(opts, tmp_path / "corr.yml")
    got = result.preset.correlation_factors()[0]
    assert got == pytest.approx(correlation_factor(kernel, 5.0), rel=0.1)
    assert (tmp_path / "corr_noise_decam_r.fits").is_file()
    true_depth = 31.4 - 2.5 * np.log10(5 * 2.0 * np.sqrt(np.pi * 25 *
                                                         correlation_factor(kernel, 5.0)))
    assert result.preset.depths["decam_r"] == pytest.approx(true_depth, abs=0.1)


def test_psf_built_from_stars(tmp_path):
    """Without --psf, an effective PSF from the point sources of the mosaic (Moffat stars
    among galaxies) has the stars' FWHM and noise-equivalent radius within 5%."""
    import galsim

    from rail.deepdisc.sim.psf import psf_description, psf_fwhm

    rng = np.random.default_rng(3)
    n, scale = 400, 0.2
    image = galsim.ImageD(n, n, scale=scale)
    psf = galsim.Moffat(beta=3.0, fwhm=0.8)
    for k in range(50):
        x, y = rng.uniform(30, n - 30, 2)
        obj = psf if k < 25 else galsim.Convolve(
            galsim.Exponential(half_light_radius=rng.uniform(0.5, 1.5)), psf)
        obj.withFlux(rng.uniform(2e4, 1e5)).drawImage(
            image=image, add_to_image=True, center=galsim.PositionD(x + 1, y + 1))
    mosaic = _mosaic(tmp_path / "stars.fits", image.array + rng.normal(0, 10.0, (n, n)),
                     10.0, scale)
    out = tmp_path / "stars.yml"
    assert main(["survey", "--image", f"decam_r={mosaic}[SCI]", "--error",
                 f"decam_r={mosaic}[ERR]", "--output", str(out), "-q"]) == 0
    survey = get_survey(str(out))
    assert (tmp_path / "stars_psf_decam_r.fits").is_file()
    effective = galsim.Convolve(psf, galsim.Pixel(scale))
    true_fwhm = effective.drawImage(scale=scale / 8, method="no_pixel").calculateFWHM()
    assert psf_fwhm(psf_description(survey), "decam_r", scale) == pytest.approx(true_fwhm,
                                                                               rel=0.05)
    drawn = effective.drawImage(nx=81, ny=81, scale=scale, method="no_pixel").array
    nea_radius = np.sqrt(1.0 / np.sum((drawn / drawn.sum()) ** 2) / np.pi) * scale
    assert survey.depth_aperture_arcsec == pytest.approx(nea_radius, rel=0.05)


def test_too_few_stars_and_bad_options_fail_before_writing(fits_field, tmp_path, capsys):
    _, field = fits_field
    band = "jwst_f200w"
    out = tmp_path / "x.yml"
    with pytest.raises(InputError, match=rf"band {band}: found \d+ isolated point sources"):
        survey_from_mosaics(MosaicSurveyOptions(images={band: field.images[band]}), out)
    assert main(["survey", "--image", f"{band}={field.images[band]}", "--error",
                 f"jwst_f090w={field.errors[band]}", "--output", str(out), "-q"]) == 2
    assert "errors names bands ['jwst_f090w']" in capsys.readouterr().err
    assert main(["survey", "--image", f"mycam_x={field.images[band]}", "--output", str(out),
                 "-q"]) == 2
    assert "--filter" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_output_equal_to_an_input_is_refused(fits_field, tmp_path, capsys):
    _, field = fits_field
    band = "jwst_f200w"
    path = field.images[band].split("[")[0]
    before = _sha(path)
    assert main(["survey", "--image", f"{band}={field.images[band]}", "--output", path,
                 "-q"]) == 2
    assert "also an input" in capsys.readouterr().err
    assert _sha(path) == before


@pytest.mark.parametrize("case", ["sci_all_nan", "err_all_zero", "err_all_nan", "sci_all_zero"])
def test_a_map_without_data_is_one_line_naming_the_file(tmp_path, capsys, case):
    """An all-NaN or all-zero image or error map: one line naming the band and the file,
    exit 2, nothing written (it used to be photutils' 'mask must not be True for every
    pixel' traceback)."""
    from astropy.io import fits

    n = 200
    rng = np.random.default_rng(3)
    sci = rng.normal(0.0, 2.0, (n, n))
    mosaic = Path(_mosaic(tmp_path / "m.fits", sci, 2.0, 0.1))
    with fits.open(mosaic, mode="update") as hdul:
        if case == "sci_all_nan":
            hdul["SCI"].data[...] = np.nan
        elif case == "sci_all_zero":
            hdul["SCI"].data[...] = 0.0
        elif case == "err_all_zero":
            hdul["ERR"].data[...] = 0.0
        else:
            hdul["ERR"].data[...] = np.nan
    before = _sha(mosaic)
    out = tmp_path / "s.yml"
    assert main(["survey", "--image", f"decam_r={mosaic}[SCI]", "--error",
                 f"decam_r={mosaic}[ERR]", "--output", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "band decam_r" in err and "m.fits" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fits"]
    assert _sha(mosaic) == before
