"""Survey description files: presets, a survey the package has no preset for, bad files."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rail.deepdisc.cli import main
from rail.deepdisc.errors import InputError
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.sim.surveys import get_survey, preset_names
from rail.deepdisc.store.scenes import SceneStore

DECAM = """\
name: decam_grz
reference: DES-like depths for a test; astro-sedpy DECam curves
pixel_scale: 0.26
depth_aperture_arcsec: 1.0
detection_band: decam_r
population: {mag_limit: 23.0, zmax: 3.0}
field_center: [36.0, -4.5]
bands:
  decam_g: {filter: decam_g, depth: 24.8, psf: {kind: moffat, fwhm: 1.1, beta: 3.5}}
  decam_r: {filter: decam_r, depth: 24.5, psf: {kind: moffat, fwhm: 1.0, beta: 3.5}}
  decam_z: {filter: decam_z, depth: 23.8, psf: {kind: moffat, fwhm: 0.95, beta: 3.5}}
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _write_fits(path: Path, data: np.ndarray) -> Path:
    from astropy.io import fits

    fits.PrimaryHDU(np.asarray(data, np.float32)).writeto(path)
    return path


def _robust_std(values: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


# --- presets ------------------------------------------------------------------------------
def test_jades_and_lsst_presets_keep_their_numbers():
    jades, lsst = get_survey("jades"), get_survey("lsst")
    assert jades.depths == {"jwst_f090w": 29.7, "jwst_f115w": 29.9, "jwst_f150w": 29.9,
                            "jwst_f200w": 30.0, "jwst_f277w": 30.3, "jwst_f335m": 29.8,
                            "jwst_f356w": 30.3, "jwst_f410m": 29.8, "jwst_f444w": 30.0}
    assert (jades.pixel_scale, jades.depth_aperture_arcsec, jades.diameter_m,
            jades.obscuration, jades.seeing_fwhm_arcsec, jades.detection_band,
            jades.mag_limit, jades.zmax, jades.field_center) == \
        (0.03, 0.2, 6.5, 0.11, 0.0, "jwst_f200w", 30.0, 12.0, (53.1625, -27.7914))
    assert lsst.depths == {"lsst_u": 26.1, "lsst_g": 27.4, "lsst_r": 27.5, "lsst_i": 26.8,
                           "lsst_z": 26.1, "lsst_y": 24.9}
    assert (lsst.pixel_scale, lsst.depth_aperture_arcsec, lsst.diameter_m, lsst.obscuration,
            lsst.seeing_fwhm_arcsec, lsst.detection_band, lsst.mag_limit, lsst.zmax,
            lsst.field_center) == (0.2, 0.6, 8.36, 0.61, 0.7, "lsst_i", 27.0, 6.0,
                                   (62.0, -37.0))
    # the white-noise sigma of the former presets: f5 / 5 / sqrt(pi r^2 / s^2)
    f5 = 10 ** (-0.4 * (30.0 - 31.4))
    assert jades.pixel_noise_njy()[3] == pytest.approx(f5 / 5 / np.sqrt(np.pi * (0.2 / 0.03)
                                                                         ** 2), rel=1e-12)
    assert {"hsc", "roman", "hst", "cfhtls"} <= set(preset_names())
    assert all(get_survey(n).reference for n in preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_each_preset_renders_noise_matching_its_depth(name, tmp_path):
    """Empty scenes of every preset: per-pixel noise is the survey's sigma and the noise of
    sums in the depth aperture (whole pixels, as the depth's pi r^2 counts them) gives back
    the depths (correlated noise included)."""
    from photutils.aperture import CircularAperture, aperture_photometry

    preset = get_survey(name)
    spec = FieldSpec(survey=name, n_scenes=3, scene_size=200, objects_per_scene=1e-4,
                     seed=4)
    path = simulate_field(spec, tmp_path / f"{name}.hdf5", n_workers=1, progress=False)
    radius = preset.depth_aperture_arcsec / preset.pixel_scale
    step = 2 * int(np.ceil(radius)) + 1
    centres = np.arange(step, 200 - step, step, dtype=float)
    # random sub-pixel centres: on average the aperture holds pi r^2 whole pixels
    xy = np.array([(x, y) for x in centres for y in centres])
    xy += np.random.default_rng(0).uniform(-0.5, 0.5, xy.shape)
    sigma = preset.pixel_noise_njy()
    with SceneStore(path) as store:
        assert store.info.survey == name
        np.testing.assert_allclose(store.info.attrs["noise_sigma"], sigma)
        assert ("noise_correlation" in store.info.attrs) == bool(preset.noise_correlation)
        images = store.read_chunk(0, 3).images
    for b, band in enumerate(preset.bands):
        assert _robust_std(images[:, b].ravel()) == pytest.approx(sigma[b], rel=0.03)
        sums = np.concatenate([
            np.asarray(aperture_photometry(img, CircularAperture(xy, radius),
                                           method="center")["aperture_sum"])
            for img in images[:, b]])
        depth = 31.4 - 2.5 * np.log10(5 * np.std(sums))
        assert depth == pytest.approx(preset.depths[band], abs=0.1), band


# --- a survey the package has no preset for ----------------------------------------------
def test_decam_survey_file_simulates_trains_and_estimates(tmp_path, capsys):
    import qp

    survey = tmp_path / "decam.yml"
    survey.write_text(DECAM)
    store = tmp_path / "decam.hdf5"
    assert main(["simulate", "--survey", str(survey), "--scenes", "6", "--size", "64",
                 "--objects-per-scene", "8", "--seed", "3", "--workers", "1", "--output",
                 str(store), "-q"]) == 0
    with SceneStore(store) as st:
        assert st.bands == ("decam_g", "decam_r", "decam_z")
        assert st.info.survey == "decam_grz" and st.info.pixel_scale_arcsec == 0.26
        assert st.info.attrs["detection_band"] == "decam_r"
        n_objects = st.n_objects
    assert n_objects > 0
    model = tmp_path / "decam.pt"
    assert main(["train", "--input", str(store), "--model", str(model), "--epochs", "1",
                 "--backbone", "resnet18_fpn", "--num-threads", "2", "-q"]) == 0
    out = tmp_path / "pz.hdf5"
    assert main(["estimate", "--input", str(store), "--model", str(model), "--output",
                 str(out), "--mode", "forced", "--num-threads", "2", "-q"]) == 0
    ensemble = qp.read(str(out))
    assert ensemble.npdf == n_objects
    assert np.all(np.isfinite(ensemble.ancil["zmode"]))
    assert "wrote" in capsys.readouterr().out


def test_stages_take_a_survey_file(tmp_path):
    from rail.creation.engines.galaxy_scenes import GalaxyPopulationCreator, SceneRenderer

    survey = tmp_path / "decam.yml"
    survey.write_text(DECAM)
    creator = GalaxyPopulationCreator.make_stage(name="decam_pop", n_samples=300, seed=2,
                                                 survey=str(survey),
                                                 output=str(tmp_path / "cat.hdf5"))
    catalog = creator.sample(n_samples=300, seed=2)
    assert np.all(catalog.data["mag_decam_r"] <= 23.0)
    renderer = SceneRenderer.make_stage(name="decam_render", n_scenes=2, scene_size=48,
                                        survey=str(survey), seed=2, n_workers=1,
                                        output=str(tmp_path / "scenes.hdf5"))
    with SceneStore(renderer.render(catalog).path) as store:
        assert store.bands == ("decam_g", "decam_r", "decam_z")


def test_a_band_from_a_curve_file_travels_with_the_store(tmp_path):
    """A band named only by a survey file (its curve a text file) is known to photometry and
    template fitters in a fresh process that opens the store: the store carries the curve
    (``filters``) and the detection band, and they are handed on explicitly."""
    from sedpy.observate import Filter

    curve = Filter("decam_r")
    (tmp_path / "curves").mkdir()
    np.savetxt(tmp_path / "curves" / "r.dat", np.column_stack([curve.wavelength,
                                                               curve.transmission]))
    survey = tmp_path / "mycam.yml"
    survey.write_text(DECAM.replace("name: decam_grz", "name: mycam").replace(
        "decam_r: {filter: decam_r", "mycam_r: {filter: curves/r.dat").replace(
        "detection_band: decam_r", "detection_band: mycam_r"))
    store = simulate_field(FieldSpec(survey=str(survey), n_scenes=1, scene_size=48, seed=1),
                           tmp_path / "mycam.hdf5", n_workers=1, progress=False)
    code = textwrap.dedent(f"""
        from rail.deepdisc.sim.surveys import reference_band
        from rail.deepdisc.spectra.bands import effective_wavelength
        from rail.deepdisc.spectra.filters import resolve_filter
        from rail.deepdisc.store.scenes import SceneStore
        with SceneStore({str(store)!r}) as st:
            bands, survey, filters, det = st.bands, st.info.survey, st.filters, st.detection_band
        print(round(resolve_filter("mycam_r", filters=filters).pivot),
              round(effective_wavelength(["mycam_r"], filters)[0]),
              reference_band(bands, survey, det))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    pivot, weff, ref = res.stdout.split()
    assert abs(float(pivot) - curve.wave_pivot) < 5
    assert abs(float(weff) - curve.wave_effective) < 5
    assert ref == "mycam_r"


def test_a_psf_image_in_a_survey_file(tmp_path):
    """An ``image`` PSF (a FITS Moffat at 4x the pixel resolution) keeps its FWHM."""
    import galsim

    from rail.deepdisc.sim.psf import psf_description, psf_fwhm

    image = galsim.Moffat(beta=3.0, fwhm=1.0).drawImage(nx=81, ny=81, scale=0.065,
                                                         method="no_pixel").array
    _write_fits(tmp_path / "psf_g.fits", image)
    survey = tmp_path / "img.yml"
    survey.write_text(DECAM.replace("psf: {kind: moffat, fwhm: 1.1, beta: 3.5}",
                                    "psf: {kind: image, file: psf_g.fits, oversampling: 4}"))
    preset = get_survey(str(survey))
    assert preset.psfs["decam_g"]["pixel_scale"] == pytest.approx(0.065)
    assert psf_fwhm(psf_description(preset), "decam_g", 0.26) == pytest.approx(1.0, rel=0.03)
    store = simulate_field(FieldSpec(survey=str(survey), n_scenes=1, scene_size=48, seed=2),
                           tmp_path / "img.hdf5", n_workers=1, progress=False)
    with SceneStore(store) as st:
        assert st.n_scenes == 1


# --- bad survey files ---------------------------------------------------------------------
def _psf_files(folder: Path) -> None:
    rng = np.random.default_rng(0)
    _write_fits(folder / "even.fits", rng.random((20, 20)))
    _write_fits(folder / "oblong.fits", rng.random((25, 21)))
    _write_fits(folder / "cube.fits", rng.random((3, 21, 21)))
    _write_fits(folder / "kernel_even.fits", rng.random((4, 4)))


_G = "decam_g: {filter: decam_g, depth: 24.8, psf: {kind: moffat, fwhm: 1.1, beta: 3.5}}"
BAD_FILES = {
    "unknown filter": (_G.replace("filter: decam_g", "filter: nosuch_g"), "bands.decam_g.filter"),
    "missing depth": (_G.replace("depth: 24.8, ", ""), "bands.decam_g.depth"),
    "depth and noise": (_G.replace("depth: 24.8", "depth: 24.8, pixel_noise: 3"),
                        "bands.decam_g.depth"),
    "even PSF image": (_G.replace("{kind: moffat, fwhm: 1.1, beta: 3.5}",
                                  "{kind: image, file: even.fits, oversampling: 2}"),
                       "bands.decam_g.psf.file"),
    "oblong PSF image": (_G.replace("{kind: moffat, fwhm: 1.1, beta: 3.5}",
                                    "{kind: image, file: oblong.fits, pixel_scale: 0.1}"),
                         "bands.decam_g.psf.file"),
    "3-D PSF image": (_G.replace("{kind: moffat, fwhm: 1.1, beta: 3.5}",
                                 "{kind: image, file: cube.fits, pixel_scale: 0.1}"),
                      "bands.decam_g.psf.file"),
    "missing PSF image": (_G.replace("{kind: moffat, fwhm: 1.1, beta: 3.5}",
                                     "{kind: image, file: none.fits, pixel_scale: 0.1}"),
                          "bands.decam_g.psf.file"),
    "unknown PSF kind": (_G.replace("kind: moffat", "kind: lorentz"), "bands.decam_g.psf.kind"),
    "Moffat without beta": (_G.replace(", beta: 3.5", ""), "bands.decam_g.psf.beta"),
    "unknown band key": (_G.replace("depth:", "deph:"), "bands.decam_g.deph"),
    "even noise kernel": (_G.replace("}}", "}, noise_correlation: {kind: image, file: "
                                           "kernel_even.fits}}"),
                          "bands.decam_g.noise_correlation.file"),
    "airy without telescope": (_G.replace("{kind: moffat, fwhm: 1.1, beta: 3.5}",
                                          "{kind: airy}"), "telescope"),
    "a project band redefined": (_G.replace("decam_g: {filter: decam_g",
                                            "lsst_g: {filter: decam_g"), "lsst_g"),
}
BAD_TOP = {
    "negative pixel scale": (("pixel_scale: 0.26", "pixel_scale: -0.26"), "pixel_scale"),
    "unknown key": (("pixel_scale: 0.26", "pixel_scael: 0.26"), "pixel_scael"),
    "unknown detection band": (("detection_band: decam_r", "detection_band: decam_i"),
                               "detection_band"),
    "not YAML": (("bands:", "bands: [:"), "not valid YAML"),
}


def _bad_survey(folder: Path, case: str) -> tuple[Path, str]:
    text, key = DECAM, ""
    if case in BAD_FILES:
        line, key = BAD_FILES[case]
        text = DECAM.replace(_G, line)
    else:
        (old, new), key = BAD_TOP[case]
        text = DECAM.replace(old, new)
    path = folder / "bad.yml"
    path.write_text(text)
    return path, key


@pytest.mark.parametrize("case", [*BAD_FILES, *BAD_TOP])
def test_bad_survey_files_fail_at_once_naming_the_key(case, tmp_path, capsys):
    _psf_files(tmp_path)
    path, key = _bad_survey(tmp_path, case)
    before = {p.name: _sha(p) for p in tmp_path.iterdir()}
    out = tmp_path / "out.hdf5"
    assert main(["simulate", "--survey", str(path), "--scenes", "2", "--output", str(out),
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and key in err, err
    assert {p.name: _sha(p) for p in tmp_path.iterdir()} == before
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        get_survey(str(path))


def test_missing_survey_file_and_unknown_preset(tmp_path, capsys):
    out = tmp_path / "out.hdf5"
    assert main(["simulate", "--survey", str(tmp_path / "none.yml"), "--scenes", "2",
                 "--output", str(out), "-q"]) == 2
    assert "none.yml" in capsys.readouterr().err
    assert main(["simulate", "--survey", "euclid", "--scenes", "2", "--output", str(out),
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert "unknown survey 'euclid'" in err and "hsc" in err
    assert list(tmp_path.iterdir()) == []


def test_an_effective_psf_image_is_not_convolved_with_the_pixel_again(tmp_path):
    """A pixel-convolved (effective) PSF image at the survey's pixels, marked ``effective``,
    is drawn as it is; unmarked, GalSim adds a second pixel and broadens it."""
    import galsim

    from rail.deepdisc.sim.psf import draw_method, make_psf, psf_description

    effective = galsim.Moffat(beta=3.0, fwhm=0.9).drawImage(nx=41, ny=41, scale=0.26).array
    _write_fits(tmp_path / "epsf_g.fits", effective)
    drawn = {}
    for flag in ("true", "false"):
        survey = tmp_path / f"eff_{flag}.yml"
        survey.write_text(DECAM.replace(
            "psf: {kind: moffat, fwhm: 1.1, beta: 3.5}",
            f"psf: {{kind: image, file: epsf_g.fits, oversampling: 1, effective: {flag}}}"))
        description = psf_description(get_survey(str(survey)))
        drawn[flag] = make_psf(description, "decam_g").drawImage(
            nx=41, ny=41, scale=0.26, method=draw_method(description, "decam_g")).array
    target = effective / effective.sum()
    np.testing.assert_allclose(drawn["true"], target, atol=1e-4 * target.max())
    assert drawn["false"].max() < 0.97 * target.max()  # the pixel counted twice (-4.4%)
