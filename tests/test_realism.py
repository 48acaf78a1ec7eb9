"""Realism and randomisation options: clumps, bulge colours, lopsided galaxies, stars, PSF
jitter, per-scene depth, masked pixels; reproducible, and the simulator unchanged when off."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import h5py
import numpy as np
import pytest

from rail.deepdisc.errors import OptionError
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.sim.morphology import MorphologyOptions, add_components
from rail.deepdisc.sim.population import PopulationConfig, sample_population
from rail.deepdisc.sim.psf import psf_description, psf_fwhm
from rail.deepdisc.sim.randomise import REALISM_PRESETS, ImageRandomisation, _nominal_fwhm
from rail.deepdisc.sim.render import RenderConfig, _psf, render_scene
from rail.deepdisc.sim.stars import StarOptions
from rail.deepdisc.spectra.templates import cosmos_library
from rail.deepdisc.store.layout import SCENE_COLUMNS
from rail.deepdisc.store.scenes import SceneStore

REALISM_OPTIONS = sorted(REALISM_PRESETS["off"])
ALL_OFF = {name: REALISM_PRESETS["off"][name] for name in REALISM_OPTIONS}


def _task(catalog, rows, x, y, config):
    return {"scene": 0, "config": config, "psf": psf_description(config.preset, config.psf),
            "catalog": {k: np.asarray(v)[rows] for k, v in catalog.items() if k != "_meta"},
            "x": np.asarray(x, float), "y": np.asarray(y, float), "keep_noiseless": True}


def _datasets(path) -> dict[str, str]:
    """sha256 of every dataset and of every root attribute but the provenance."""
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(
            name, hashlib.sha256(obj[()].tobytes()).hexdigest())
            if isinstance(obj, h5py.Dataset) else None)
        out.update({f"@{k}": repr(v) for k, v in f.attrs.items() if k != "provenance"})
    return out


@pytest.fixture(scope="module")
def full_catalog():
    """A JADES population with every morphology option on for every eligible galaxy."""
    cfg = PopulationConfig(survey="jades", realism="full", clumpy_fraction=1.0,
                           asymmetric_fraction=1.0, star_fraction=0.1)
    return sample_population(600, cfg, seed=5)


def test_presets_name_every_realism_option():
    names = set()
    for cls in (MorphologyOptions, StarOptions, ImageRandomisation):
        names |= set(cls.option_specs()) - {"realism"}
    assert names <= set(REALISM_OPTIONS) <= set(FieldSpec.option_specs())
    assert all(set(values) == set(REALISM_OPTIONS) for values in REALISM_PRESETS.values())
    # off: every option off; both presets draw from the default (COSMOS) library
    assert not any(v for k, v in ALL_OFF.items() if k != "sed_library")
    assert ALL_OFF["sed_library"] == REALISM_PRESETS["full"]["sed_library"] == "cosmos"
    spec = FieldSpec.from_mapping({"n_scenes": 1, "realism": "full", "star_fraction": 0.0,
                                   "bulge_colours": False})
    assert spec.setting("star_fraction") == 0.0 and spec.setting("bulge_colours") is False
    assert spec.setting("psf_jitter") == REALISM_PRESETS["full"]["psf_jitter"]
    with pytest.raises(OptionError, match="realism"):
        FieldSpec.from_mapping({"n_scenes": 1, "realism": "maximal"})
    with pytest.raises(OptionError, match="cosmic_rays"):
        FieldSpec.from_mapping({"n_scenes": 1, "cosmic_rays": -1})


def test_options_off_leave_the_store_unchanged(tmp_path):
    """Default (realism off) == every option explicitly off under the full preset; no new
    columns. (Byte-identity with the simulator before these options was checked once by
    comparing stores made with and without this change.)"""
    base = dict(survey="lsst", n_scenes=3, scene_size=48, seed=9)
    off = simulate_field(FieldSpec(**base), tmp_path / "off.hdf5", n_workers=1,
                         progress=False)
    explicit = simulate_field(FieldSpec(**base, realism="full", **ALL_OFF),
                              tmp_path / "explicit.hdf5", n_workers=1, progress=False)
    assert _datasets(off) == _datasets(explicit)
    with SceneStore(off) as store:
        assert set(store.scenes()) == set(SCENE_COLUMNS)
        assert not {"is_star", "clump_fraction", "asym_fraction"} & set(store.object_columns)
    catalog = sample_population(50, PopulationConfig(survey="lsst"), seed=3)
    assert not any(k.startswith(("bulge_frac_", "clump_", "asym_", "is_star")) for k in catalog)


def test_full_realism_is_reproducible(tmp_path):
    from rail.deepdisc.cli import main

    spec = FieldSpec(survey="lsst", n_scenes=4, scene_size=48, seed=7, realism="full")
    a = simulate_field(spec, tmp_path / "a.hdf5", n_workers=1, progress=False)
    b = simulate_field(spec, tmp_path / "b.hdf5", n_workers=2, progress=False)
    c = tmp_path / "c.hdf5"
    assert main(["simulate", "--survey", "lsst", "--scenes", "4", "--size", "48", "--seed", "7",
                 "--realism", "full", "--workers", "1", "--output", str(c), "-q"]) == 0
    digest = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in (a, b, c)]
    assert digest[0] == digest[1] == digest[2]
    d = simulate_field(dataclasses.replace(spec, seed=8), tmp_path / "d.hdf5", n_workers=1,
                       progress=False)
    assert hashlib.sha256(open(d, "rb").read()).hexdigest() != digest[0]
    with SceneStore(a) as store:
        scenes = store.scenes()
    for col in ("depth_offset_mag", "psf_g1", "psf_g2", "masked_fraction", "psf_fwhm_lsst_i"):
        assert scenes[col].shape == (4,) and np.all(np.isfinite(scenes[col]))


def test_clumpy_and_lopsided_galaxies_conserve_flux(full_catalog):
    """Clumps and offset components inside a 256^2 scene: pixel sums equal catalog fluxes
    within 2% in every band."""
    cat = full_catalog
    rows = np.flatnonzero((cat["n_clumps"] > 0) & (cat["asym_fraction"] > 0)
                          & (cat["Re_maj"] < 0.12))[:5]
    assert rows.size == 5
    assert np.all(cat["clump_fraction"][rows] > 0.04)
    config = RenderConfig(survey="jades", n_scenes=1, scene_size=256, seed=1)
    x = 128 + np.array([-40.0, 35.3, 0.4, 42.7, -29.1])
    y = 128 + np.array([30.0, -38.6, 0.2, 39.9, -41.5])
    res = render_scene(_task(cat, rows, x, y, config))
    bands = config.preset.bands
    expected = np.array([cat[f"{b}_fnu"][rows].sum() for b in bands])
    np.testing.assert_allclose(res["noiseless"].sum(axis=(1, 2)), expected, rtol=0.02)
    assert np.all(res["objects"]["clump_fraction"] > 0)


def test_clumps_are_bluer_than_the_galaxy(full_catalog):
    """Clumps have a young SED: their share falls from the bluest to the reddest band
    (at z < 4, where no band is below the Lyman break)."""
    cat = full_catalog
    sel = (cat["clump_fraction"] > 0) & (cat["redshift"] < 4)
    assert sel.sum() > 20
    blue, red = cat["clump_frac_jwst_f115w"][sel], cat["clump_frac_jwst_f444w"][sel]
    assert np.mean(blue > red) > 0.9


def test_bulge_and_disk_colours_differ():
    """A bulge's share changes from band to band as its SED (an old elliptical) and the
    disk's differ, and the rendered galaxy's centre-minus-outskirts colour moves with it."""
    cat = sample_population(300, PopulationConfig(survey="lsst", zmax=1.0), seed=2)
    cat.pop("_meta")
    sf = np.flatnonzero(cat["is_quiescent"] == 0)[:40]  # bulges are rare: give some
    cat["bulge_fraction"][sf] = 0.3
    cat["Re_bulge"][sf] = 0.3 * cat["Re_maj"][sf]
    cat["bulge_axis_ratio"][sf] = 0.8
    bands = RenderConfig(survey="lsst", n_scenes=1).preset.bands
    add_components(cat, MorphologyOptions(bulge_colours=True), 1, cosmos_library(), bands,
                   "lsst_i", 0.2)
    np.testing.assert_allclose(cat["bulge_frac_lsst_i"][sf], 0.3)  # the limit band's share
    assert np.all(cat["bulge_sed_index"][sf] >= 0)
    assert np.mean(cat["bulge_frac_lsst_g"][sf] < 0.3) > 0.8  # bulges redder (g - i)
    plain = {k: v for k, v in cat.items() if not k.startswith("bulge_frac_")}
    config = RenderConfig(survey="lsst", n_scenes=1, scene_size=96, seed=1)
    j = sf[np.argmax(cat["Re_maj"][sf] * (cat["bulge_frac_lsst_g"][sf] < 0.25))]
    yy, xx = np.mgrid[:96, :96]
    r = np.hypot(xx - 48, yy - 48)
    g_b, i_b = bands.index("lsst_g"), bands.index("lsst_i")
    gradient = []
    for catalog in (cat, plain):
        img = render_scene(_task(catalog, [j], [48.0], [48.0], config))["noiseless"]
        np.testing.assert_allclose(img.sum(axis=(1, 2)), [cat[f"{b}_fnu"][j] for b in bands],
                                   rtol=0.02)
        colour = [-2.5 * np.log10(img[g_b][m].sum() / img[i_b][m].sum())
                  for m in (r < 2, (r > 4) & (r < 12))]
        gradient.append(colour[0] - colour[1])
    assert gradient[0] > gradient[1] + 0.02  # redder centre with the bulge's own SED


def test_stars_are_point_sources_without_redshift(full_catalog, tmp_path):
    cat = full_catalog
    star = np.flatnonzero(cat["is_star"] == 1)
    assert star.size > 20
    assert np.all(np.isnan(cat["redshift"][star])) and np.all(cat["sed_index"][star] == -1)
    assert np.all(np.isfinite(cat["mag_jwst_f200w"][star]))
    assert np.all(np.isnan(cat["star_teff"][cat["is_star"] == 0]))
    config = RenderConfig(survey="jades", n_scenes=1, scene_size=64, seed=1, psf="optical")
    task = _task(cat, star[:1], [32.3], [31.6], config)
    res = render_scene(task)
    import galsim

    for b, band in enumerate(config.preset.bands):
        psf = _psf(task["psf"], band).withFlux(float(cat[f"{band}_fnu"][star[0]]))
        expected = galsim.ImageD(64, 64, scale=config.preset.pixel_scale, xmin=0, ymin=0)
        psf.drawImage(expected, center=galsim.PositionD(32.3, 31.6), add_to_image=True)
        # the same PSF image, up to FFT round-off in the faint wings
        np.testing.assert_allclose(res["noiseless"][b], expected.array, rtol=1e-3,
                                   atol=1e-5 * expected.array.max())
    assert res["objects"]["is_star"].tolist() == [1]
    assert res["objects"]["redshift_kind"].tolist() == [b"none"]
    spec = FieldSpec(survey="jades", n_scenes=3, scene_size=64, seed=3, star_fraction=0.3)
    with SceneStore(simulate_field(spec, tmp_path / "stars.hdf5", n_workers=1,
                                   progress=False)) as store:
        obj = store.objects()
    stars = obj["is_star"] == 1
    assert stars.any() and (~stars).any()
    assert np.all(np.isnan(obj["redshift"][stars])) and np.all(obj["redshift_kind"][stars]
                                                               == b"none")
    assert np.all(np.isfinite(obj["redshift"][~stars]))


def test_psf_jitter_is_recorded():
    """The stored FWHM and shear are those of the PSF a scene's stars were drawn with."""
    import galsim

    cfg = PopulationConfig(survey="lsst", star_fraction=0.5)
    cat = sample_population(40, cfg, seed=1)
    star = np.flatnonzero(cat["is_star"] == 1)[:1]
    config = RenderConfig(survey="lsst", n_scenes=1, scene_size=48, seed=4, psf_jitter=0.2,
                          psf_ellipticity=0.1)
    task = _task(cat, star, [24.0], [23.5], config)
    res = render_scene(task)
    row = res["scene"]
    assert 0 < np.hypot(row["psf_g1"], row["psf_g2"]) <= 0.1
    scales = []
    for b, band in enumerate(config.preset.bands):
        nominal = _nominal_fwhm(json.dumps(task["psf"], sort_keys=True), band,
                                config.preset.pixel_scale)
        scale = row[f"psf_fwhm_{band}"] / nominal
        psf = _psf(task["psf"], band).dilate(scale).shear(g1=row["psf_g1"], g2=row["psf_g2"])
        img = galsim.ImageD(48, 48, scale=config.preset.pixel_scale, xmin=0, ymin=0)
        psf.withFlux(float(cat[f"{band}_fnu"][star[0]])).drawImage(
            img, center=galsim.PositionD(24.0, 23.5), add_to_image=True)
        core = (slice(16, 32), slice(16, 32))  # inside GalSim's stamp of the star
        np.testing.assert_allclose(res["noiseless"][b][core], img.array[core], rtol=1e-3,
                                   atol=1e-5 * img.array.max())
        scales.append(scale)
    assert np.std(np.log(scales)) > 0.02  # each band drew its own size
    # the fast FWHM is the one measured on the whole PSF image
    desc = task["psf"]
    for band in ("lsst_u", "lsst_y"):
        assert _nominal_fwhm(json.dumps(desc, sort_keys=True), band, 0.2) == pytest.approx(
            psf_fwhm(desc, band, 0.2), rel=0.01)


def test_depth_varies_between_scenes(tmp_path):
    """Empty-sky noise of each scene follows its recorded depth offset (within 3%)."""
    spec = FieldSpec(survey="jades", n_scenes=6, scene_size=96, seed=6, objects_per_scene=2,
                     depth_range=0.6)
    with SceneStore(simulate_field(spec, tmp_path / "depth.hdf5", n_workers=1,
                                   progress=False)) as store:
        chunk = store.read_chunk(0, store.n_scenes)
        scenes = store.scenes()
    offsets = scenes["depth_offset_mag"]
    assert offsets.max() - offsets.min() > 0.4 and np.all(np.abs(offsets) <= 0.6)
    nominal = spec.noise_sigma
    for k in range(len(chunk)):
        # white noise from differences of neighbouring empty-sky pixels (blind to the smooth
        # wings of galaxies)
        sky = (chunk.segmap[k][:, 1:] == 0) & (chunk.segmap[k][:, :-1] == 0)
        diff = np.diff(chunk.images[k], axis=2)[:, sky]
        mad = 1.4826 * np.median(np.abs(diff), axis=1) / np.sqrt(2)
        expected = nominal * 10 ** (-0.4 * offsets[k])
        assert np.median(mad / expected) == pytest.approx(1.0, abs=0.03)
        np.testing.assert_allclose(chunk.ivar[k, :, 0, 0], 1 / expected**2, rtol=1e-5)


def test_masked_pixels_have_zero_ivar(tmp_path):
    spec = FieldSpec(survey="lsst", n_scenes=4, scene_size=64, seed=2, bad_columns=2.0,
                     cosmic_rays=6.0, edge_masks=1.0)
    with SceneStore(simulate_field(spec, tmp_path / "masks.hdf5", n_workers=1,
                                   progress=False)) as store:
        chunk = store.read_chunk(0, store.n_scenes)
        scenes = store.scenes()
    masked = chunk.ivar == 0
    assert np.all(chunk.images[masked] == 0)
    np.testing.assert_allclose(scenes["masked_fraction"], masked.mean(axis=(1, 2, 3)))
    assert np.all(scenes["masked_fraction"] > 0.02)
    for k in range(len(chunk)):
        for b in range(chunk.images.shape[1]):
            m = masked[k, b]
            assert m[0].all() or m[-1].all() or m[:, 0].all() or m[:, -1].all()  # an edge
    sigma = spec.noise_sigma
    np.testing.assert_allclose(chunk.ivar[~masked].max(), (1 / sigma**2).max(), rtol=1e-6)
