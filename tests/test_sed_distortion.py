"""SED distortion: random smooth changes of galaxy colours, the limit band kept."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rail.deepdisc.errors import OptionError
from rail.deepdisc.magnitudes import mag_to_flux
from rail.deepdisc.sim.catalog_photometry import catalog_photometry
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.sim.population import PopulationConfig, catalog_magnitudes, sample_population
from rail.deepdisc.spectra import sed_distortion
from rail.deepdisc.store.scenes import read_objects

BANDS = ["jwst_f090w", "jwst_f150w", "jwst_f200w", "jwst_f277w", "jwst_f444w"]
RMS = 0.15


@pytest.fixture(scope="module")
def pair():
    """The same population without and with the distortion (stars included)."""
    cfg = PopulationConfig(survey="jades", realism="full", star_fraction=0.05)
    plain = sample_population(4000, cfg, seed=4)
    distorted = sample_population(4000, dataclasses.replace(cfg, sed_distortion=RMS), seed=4)
    return plain, distorted


def test_distortion_changes_colours_only(pair):
    plain, distorted = pair
    assert set(distorted) - set(plain) == set(sed_distortion.COLUMNS)
    for col in ("redshift", "abs_mag", "sed_index", "Re_maj", "is_star", "clump_fraction",
                "mag_jwst_f200w"):  # f200w: the limit band, so the selection is unchanged
        np.testing.assert_array_equal(plain[col], distorted[col], err_msg=col)
    galaxy = distorted["is_star"] == 0
    dm = {}
    for b in BANDS:  # galaxies beyond their Lyman break in a band have no flux there
        seen = galaxy & np.isfinite(plain[f"mag_{b}"])
        dm[b] = distorted[f"mag_{b}"][seen] - plain[f"mag_{b}"][seen]
        assert np.all(np.isfinite(distorted[f"mag_{b}"][seen]))
    # the farther from the limit band (in wavelength), the larger the change; never all
    # galaxies the same way (a random curve per galaxy, not one offset)
    assert 0.05 < np.std(dm["jwst_f150w"]) < np.std(dm["jwst_f090w"]) < 2 * RMS
    assert 0.05 < np.std(dm["jwst_f277w"]) < np.std(dm["jwst_f444w"]) < 2 * RMS
    assert all(abs(np.mean(d)) < 0.02 for d in dm.values())
    both = galaxy & np.isfinite(plain["mag_jwst_f090w"])
    assert np.corrcoef(*(distorted[f"mag_{b}"][both] - plain[f"mag_{b}"][both]
                         for b in ("jwst_f090w", "jwst_f444w")))[0, 1] < 0.5
    star = ~galaxy
    assert star.any()
    for b in BANDS:  # stars keep their spectra
        np.testing.assert_array_equal(plain[f"mag_{b}"][star], distorted[f"mag_{b}"][star])
        np.testing.assert_array_equal(plain[f"mag_{b}"][~np.isfinite(plain[f"mag_{b}"])],
                                      distorted[f"mag_{b}"][~np.isfinite(plain[f"mag_{b}"])])
    np.testing.assert_allclose(distorted["jwst_f444w_fnu"],
                               mag_to_flux(distorted["mag_jwst_f444w"]), rtol=1e-9)


def test_catalog_magnitudes_follow_the_knots(pair):
    _, distorted = pair
    galaxy = distorted["is_star"] == 0
    catalog = {k: v[galaxy] for k, v in distorted.items() if k != "_meta"}
    expected = np.column_stack([catalog[f"mag_{b}"] for b in BANDS])
    np.testing.assert_allclose(catalog_magnitudes(catalog, BANDS), expected, atol=2e-3)
    # photometry in bands the scenes were not rendered in carries the distortion too
    deep = catalog_photometry(catalog, ["hst_f606w"], {"hst_f606w": 40.0}, seed=1)
    undistorted = {k: v for k, v in catalog.items() if k not in sed_distortion.COLUMNS}
    plain = catalog_photometry(undistorted, ["hst_f606w"], {"hst_f606w": 40.0}, seed=1)
    seen = plain["mag_hst_f606w"] < 31.0  # noise (40 mag depth) < 0.1% of the flux
    assert seen.mean() > 0.5
    shift = (deep["mag_hst_f606w"] - plain["mag_hst_f606w"])[seen]
    offsets = sed_distortion.magnitude_offsets(catalog, ["hst_f606w"])[seen, 0]
    np.testing.assert_allclose(shift, offsets, atol=2e-3)
    assert np.std(offsets) > 0.05


def test_stores_keep_the_knots_and_the_option_is_checked(tmp_path):
    spec = FieldSpec(survey="lsst", n_scenes=2, scene_size=48, seed=3, sed_distortion=0.1)
    a = read_objects(simulate_field(spec, tmp_path / "a.hdf5", n_workers=1, progress=False))
    b = read_objects(simulate_field(spec, tmp_path / "b.hdf5", n_workers=1, progress=False))
    for col in sed_distortion.COLUMNS:
        assert np.all(np.isfinite(a[col])) and np.array_equal(a[col], b[col])
    assert np.std(np.column_stack([a[c] for c in sed_distortion.COLUMNS])) > 0.03
    with pytest.raises(OptionError, match="sed_distortion"):
        FieldSpec(survey="lsst", n_scenes=1, sed_distortion=-0.1).validate()
