"""Rendering: flux conservation, noise vs depth, truth maps, reproducibility, bad input."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from astropy.stats import sigma_clipped_stats
from photutils.aperture import CircularAperture, aperture_photometry

from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.sim.population import PopulationConfig, sample_population
from rail.deepdisc.sim.psf import psf_description, psf_fwhm
from rail.deepdisc.sim.render import RenderConfig, render_catalog, render_scene
from rail.deepdisc.sim.surveys import JADES, LSST
from rail.deepdisc.store.scenes import SceneStore


@pytest.fixture(scope="module")
def jades_catalog():
    return sample_population(400, PopulationConfig(bands=JADES.bands, limit_band="jwst_f200w",
                                                   mag_limit=30.0), seed=21)


def _task(catalog, rows, x, y, config, keep_noiseless=True):
    return {"scene": 0, "n_scenes": 1, "config": config,
            "psf": psf_description(config.preset, config.psf),
            "catalog": {k: np.asarray(v)[rows] for k, v in catalog.items() if k != "_meta"},
            "x": np.asarray(x, float), "y": np.asarray(y, float),
            "keep_noiseless": keep_noiseless}


@pytest.mark.parametrize("psf", ["airy", "optical"])
def test_noiseless_scene_sums_to_catalog_fluxes(jades_catalog, psf):
    """Objects fully inside a 256^2 scene: pixel sums equal catalog fluxes within 2%."""
    cat = jades_catalog
    small = np.flatnonzero(cat["Re_maj"] < 0.15)[:5]
    config = RenderConfig(survey="jades", n_scenes=1, scene_size=256, psf=psf, seed=1)
    x = 128 + np.array([-20.0, 15.3, 0.4, 22.7, -9.1])
    y = 128 + np.array([10.0, -18.6, 0.2, 19.9, -21.5])
    res = render_scene(_task(cat, small, x, y, config))
    sums = res["noiseless"].sum(axis=(1, 2))
    expected = np.array([cat[f"{b}_fnu"][small].sum() for b in JADES.bands])
    np.testing.assert_allclose(sums, expected, rtol=0.02)


def test_noise_matches_depth(tmp_path):
    """Empty-sky pixel noise and 0.2"-aperture noise give the configured 5-sigma depths."""
    spec = FieldSpec(survey="jades", n_scenes=8, scene_size=256, seed=4, objects_per_scene=4)
    path = simulate_field(spec, tmp_path / "noise.hdf5", n_workers=2, progress=False)
    sigma = JADES.pixel_noise_njy()
    r_pix = JADES.depth_aperture_arcsec / JADES.pixel_scale
    with SceneStore(path) as store:
        chunk = store.read_chunk(0, store.n_scenes)
    np.testing.assert_allclose(chunk.ivar[:, :, 0, 0], np.tile(1 / sigma**2, (8, 1)), rtol=1e-6)
    # non-overlapping apertures on a grid, kept where no object owns any pixel
    step = 2 * r_pix + 1
    grid = np.arange(r_pix + 1, 256 - r_pix - 1, step)
    xy = np.array([(x, y) for x in grid for y in grid])
    apertures = CircularAperture(xy, r_pix)
    masks = apertures.to_mask(method="center")
    for b, band in enumerate(JADES.bands):
        pix, sums = [], []
        for k in range(len(chunk)):
            img, empty = chunk.images[k, b], chunk.segmap[k] == 0
            pix.append(img[empty])
            clean = np.array([m.get_values(~empty).sum() == 0 for m in masks])
            phot = aperture_photometry(img, apertures[clean], method="center")
            sums.append(np.asarray(phot["aperture_sum"]))
        pix, sums = np.concatenate(pix), np.concatenate(sums)
        mad = 1.4826 * np.median(np.abs(pix - np.median(pix)))
        assert mad == pytest.approx(sigma[b], rel=0.05), band
        assert sums.size > 1500
        ap_sigma = sigma_clipped_stats(sums, sigma=4.0)[2]
        f5_measured, f5_config = 5 * ap_sigma, 10 ** (-0.4 * (JADES.depths[band] - 31.4))
        assert f5_measured == pytest.approx(f5_config, rel=0.05), band


def test_segmap_and_boxes_agree(jades_store):
    with SceneStore(jades_store) as store:
        chunk = store.read_chunk(0, store.n_scenes)
    n_checked = 0
    for k in range(len(chunk)):
        seg = chunk.segmap[k]
        obj = chunk.scene_objects(k)
        assert set(np.unique(seg)) - {0} == set(obj["object_id"].tolist())
        for i, oid in enumerate(obj["object_id"]):
            ys, xs = np.nonzero(seg == oid)
            assert (obj["bbox_x0"][i], obj["bbox_y0"][i]) == (xs.min(), ys.min())
            assert (obj["bbox_x1"][i], obj["bbox_y1"][i]) == (xs.max() + 1, ys.max() + 1)
            assert obj["footprint_area"][i] == xs.size >= 3
            if obj["edge_distance"][i] > 2:  # well inside: the centre is in its own box
                assert obj["bbox_x0"][i] - 1 <= obj["x"][i] <= obj["bbox_x1"][i]
                assert obj["bbox_y0"][i] - 1 <= obj["y"][i] <= obj["bbox_y1"][i]
            n_checked += 1
        # the scene's catalog lists the galaxies centred in it
        assert np.all((obj["x"] >= -0.5) & (obj["x"] < seg.shape[1] - 0.5))
        assert np.all((obj["y"] >= -0.5) & (obj["y"] < seg.shape[0] - 0.5))
        assert np.all(obj["edge_distance"] >= 0)
    assert n_checked > 30


def test_truth_columns(jades_store):
    with SceneStore(jades_store) as store:
        obj = store.objects()
        assert store.info.survey == "jades"
        assert store.info.flux_unit == "nJy"
    assert np.all(obj["redshift_kind"] == b"true")
    assert np.all(np.isfinite(obj["redshift"]))
    bright = obj["snr_jwst_f200w"] > 10
    assert 0.2 < bright.mean() < 0.95
    # catalog magnitudes and fluxes agree; the S/N error model is 1.0857 / S/N
    np.testing.assert_allclose(obj["mag_jwst_f200w"],
                               31.4 - 2.5 * np.log10(obj["flux_jwst_f200w"]))
    np.testing.assert_allclose(obj["mag_err_jwst_f200w"][bright],
                               1.0857 / obj["snr_jwst_f200w"][bright], rtol=1e-3)
    assert np.all((obj["blendedness"] >= -1e-6) & (obj["blendedness"] <= 1))


def test_psf_widths_follow_the_aperture():
    desc = psf_description(JADES, "airy")
    f090, f444 = (psf_fwhm(desc, b, JADES.pixel_scale) for b in ("jwst_f090w", "jwst_f444w"))
    assert f444 / f090 == pytest.approx(4.44 / 0.90, rel=0.15)  # lambda / D
    assert f444 == pytest.approx(1.03 * 4.4e-6 / 6.5 * 206265, rel=0.15)
    lsst = psf_description(LSST, "airy")
    assert 0.6 < psf_fwhm(lsst, "lsst_r", LSST.pixel_scale) < 0.85  # seeing-dominated


def test_same_seed_same_bytes(tmp_path):
    spec = FieldSpec(survey="lsst", n_scenes=4, scene_size=48, seed=7)
    a = simulate_field(spec, tmp_path / "a.hdf5", n_workers=1, progress=False)
    b = simulate_field(spec, tmp_path / "b.hdf5", n_workers=2, progress=False)
    c = simulate_field(FieldSpec(survey="lsst", n_scenes=4, scene_size=48, seed=8),
                       tmp_path / "c.hdf5", n_workers=1, progress=False)
    digest = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in (a, b, c)]
    assert digest[0] == digest[1]
    assert digest[0] != digest[2]


def test_catalog_too_small_fails_before_rendering(jades_catalog, tmp_path):
    out = tmp_path / "x.hdf5"
    cat = {k: v[:20] for k, v in jades_catalog.items() if k != "_meta"}
    with pytest.raises(ValueError, match="catalog has 20 galaxies"):
        render_catalog(cat, RenderConfig(survey="jades", n_scenes=50), out, n_workers=1,
                       progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_missing_catalog_column_is_named(jades_catalog, tmp_path):
    cat = {k: v for k, v in jades_catalog.items() if k not in ("_meta", "jwst_f444w_fnu")}
    with pytest.raises(ValueError, match="jwst_f444w_fnu"):
        render_catalog(cat, RenderConfig(survey="jades", n_scenes=2), tmp_path / "x.hdf5",
                       n_workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("change", "match"), [
    ({"scene_size": 0}, "scene_size"),
    ({"objects_per_scene": -1.0}, "objects_per_scene"),
    ({"psf": "gaussian"}, "psf"),
])
def test_bad_render_options_are_named(jades_catalog, tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        render_catalog(jades_catalog, RenderConfig(survey="jades", n_scenes=1, **change),
                       tmp_path / "x.hdf5", n_workers=1)
    assert list(tmp_path.iterdir()) == []


def test_failed_render_leaves_no_file(jades_catalog, tmp_path, monkeypatch):
    """An error in the middle of rendering removes the partial output."""
    import rail.deepdisc.sim.render as render_mod

    calls = {"n": 0}
    real = render_mod.render_scene

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(task)

    monkeypatch.setattr(render_mod, "render_scene", flaky)
    out = tmp_path / "partial.hdf5"
    with pytest.raises(RuntimeError, match="disk on fire"):
        render_catalog(jades_catalog, RenderConfig(survey="jades", n_scenes=5, scene_size=48),
                       out, n_workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_every_render_option_is_a_simulate_flag(tmp_path, capsys):
    """The flags come from FieldSpec: options the old command lacked reach the renderer."""
    from rail.deepdisc.cli import main

    out = tmp_path / "field.hdf5"
    assert main(["simulate", "--survey", "lsst", "--scenes", "2", "--size", "32",
                 "--depth", "lsst_i=25", "--pixel-scale", "0.3", "--workers", "1",
                 "--output", str(out), "-q"]) == 0
    expected = LSST.with_overrides(depths={**LSST.depths, "lsst_i": 25.0},
                                   pixel_scale=0.3).pixel_noise_njy()
    with SceneStore(out) as store:
        assert store.info.pixel_scale_arcsec == pytest.approx(0.3)
        np.testing.assert_allclose(store.info.attrs["noise_sigma"], expected)
        assert store.provenance()["config"]["field"]["depths"] == {"lsst_i": 25.0}
