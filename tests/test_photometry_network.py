"""The photometry network: trained on a simulated catalog of the survey with the field's own
errors, fine-tuned on labelled objects out of fold, applied to any photometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rail.deepdisc.errors import InputError
from rail.deepdisc.hybrid.options import PhotometryNetOptions
from rail.deepdisc.hybrid.photometry_network import (
    PhotometryNetwork,
    fine_tune,
    photometry_features,
    train_network,
)
from rail.deepdisc.hybrid.simulated_photometry import NoiseModel, simulate_catalog
from rail.deepdisc.spectra.bands import NIRCAM_BANDS
from rail.estimation.algos.photometry_network import (
    PhotometryNetEstimator,
    PhotometryNetInformer,
)

BANDS = list(NIRCAM_BANDS)


@pytest.fixture(scope="module")
def catalog():
    return simulate_catalog("jades", BANDS, 6000, seed=4, realism="off")


@pytest.fixture(scope="module")
def noise(catalog):
    rng = np.random.default_rng(0)
    flux = catalog.flux[:800]
    err = np.full(flux.shape, 3.0) * (1 + rng.random(flux.shape))
    return NoiseModel.from_photometry(flux + err * rng.standard_normal(flux.shape), err, 3)


def test_catalog_is_the_surveys_population(catalog):
    assert catalog.flux.shape == (catalog.redshift.size, len(BANDS))
    assert catalog.redshift.size > 5000
    assert np.all(np.isfinite(catalog.flux)) and np.all(catalog.redshift > 0)
    assert catalog.meta["survey"] == "jades" and catalog.meta["sed_library"] == "cosmos"
    mag = 31.4 - 2.5 * np.log10(np.clip(catalog.flux[:, 3], 1e-3, None))
    assert np.percentile(mag, 99) <= 30.0 + 1e-6  # the survey's limit in F200W
    with pytest.raises(InputError, match="no band"):
        simulate_catalog("jades", ["lsst_u"], 10, seed=1)


def test_sed_distortion_changes_colours_not_the_population(catalog):
    """``photnet_sed_distortion`` distorts each simulated SED smoothly: same galaxies and
    redshifts, colours moved by about the rms asked for."""
    distorted = simulate_catalog("jades", BANDS, 6000, seed=4, realism="off",
                                 sed_distortion=0.1)
    assert distorted.meta["sed_distortion"] == pytest.approx(0.1)
    n = min(catalog.redshift.size, distorted.redshift.size)
    assert np.array_equal(catalog.redshift[:n], distorted.redshift[:n])
    seen = (catalog.flux[:n, 2] > 0) & (distorted.flux[:n, 2] > 0)  # F150W (no dropouts)
    colour = -2.5 * np.log10(catalog.flux[:n, 2] / catalog.flux[:n, -1])
    moved = -2.5 * np.log10(distorted.flux[:n, 2] / distorted.flux[:n, -1]) - colour
    assert seen.mean() > 0.9 and 0.03 < np.std(moved[seen]) < 0.5


def test_noise_is_borrowed_from_objects_of_similar_flux(noise, catalog):
    rng = np.random.default_rng(1)
    err = noise.draw(catalog.flux[:2000], rng)
    assert err.shape == (2000, len(BANDS)) and np.all(err > 0)
    # every drawn error vector is one of the field's
    field = {tuple(row) for row in noise.errors}
    assert all(tuple(row) in field for row in err[:200])
    with pytest.raises(InputError, match="noise model needs"):
        NoiseModel.from_photometry(np.ones((10, 9)), np.ones((10, 9)), 3)


def test_features_mark_missing_bands():
    f = np.array([[10.0, 5.0, np.nan]])
    e = np.array([[1.0, -1.0, 1.0]])
    x = photometry_features(f, e)
    assert x.shape == (1, 9)
    np.testing.assert_allclose(x[0, :3], [np.arcsinh(5.0), 0.0, 0.0])
    np.testing.assert_allclose(x[0, 6:], [0.0, 1.0, 1.0])


def test_network_learns_redshifts_and_saves_without_pickles(catalog, noise, tmp_path):
    torch.set_num_threads(1)
    net = train_network(catalog.flux, catalog.redshift, noise, BANDS,
                        PhotometryNetOptions(photnet_epochs=20, photnet_batch_size=256,
                                             photnet_hidden=64, photnet_layers=2))
    history = net.meta["training"]["history"]
    assert history[-1] < history[0]
    rng = np.random.default_rng(9)
    test = simulate_catalog("jades", BANDS, 1500, seed=99, realism="off")
    err = noise.draw(test.flux, rng)
    flux = test.flux + err * rng.standard_normal(err.shape)
    grid = np.expm1(np.linspace(0, np.log1p(12.0), 800))
    zmode = grid[np.argmax(net.log_pdf(flux, err, grid), axis=1)]
    bright = test.flux[:, 3] / err[:, 3] > 30
    good = np.abs(zmode - test.redshift) / (1 + test.redshift) < 0.15
    assert good[bright].mean() > 0.6
    path = net.save(tmp_path / "net.pt")
    data = torch.load(path, weights_only=True)
    assert data["format"] == "deepdisc-photometry-network"
    again = PhotometryNetwork.load(path)
    np.testing.assert_array_equal(again.log_pdf(flux[:50], err[:50], grid),
                                  net.log_pdf(flux[:50], err[:50], grid))


def test_informer_folds_never_see_their_labels(catalog, noise, tmp_path):
    rng = np.random.default_rng(3)
    n = 240
    flux = catalog.flux[:n]
    err = noise.draw(flux, rng)
    table = {"object_id": np.arange(1, n + 1), "redshift": catalog.redshift[:n].copy()}
    table["redshift"][::4] = np.nan
    for b, name in enumerate(BANDS):
        table[f"flux_{name}"] = flux[:, b] + err[:, b] * rng.standard_normal(n)
        table[f"flux_err_{name}"] = err[:, b]
    options = {"bands": [f"flux_{b}" for b in BANDS],
               "err_bands": [f"flux_err_{b}" for b in BANDS], "filter_list": BANDS,
               "ref_band": "flux_jwst_f200w", "redshift_col": "redshift",
               "id_col": "object_id", "zmax": 8.0, "hdf5_groupname": "",
               "photnet_galaxies": 3000, "photnet_epochs": 2, "photnet_hidden": 32,
               "photnet_layers": 1, "photnet_finetune_epochs": 3, "folds": 3, "seed": 2,
               "photnet_realism": "off"}

    def run(tab, tag):
        stage = PhotometryNetInformer.make_stage(
            name=f"pn_{tag}", model=str(tmp_path / f"{tag}.pt"),
            oof=str(tmp_path / f"{tag}_oof.hdf5"), **options)
        stage.inform(tab, "src/rail/deepdisc/sim/presets/jades.yml")
        return stage.get_data("model"), stage.get_data("oof")

    model, oof = run(table, "a")
    labelled = np.isfinite(table["redshift"])
    assert oof.npdf == labelled.sum()
    fold = np.asarray(oof.ancil["fold"])
    np.testing.assert_array_equal(oof.ancil["object_id"], table["object_id"][labelled])
    grid = np.asarray(oof.metadata["xvals"]).ravel()
    held = fold == 0
    scrambled = dict(table)
    z = table["redshift"].copy()
    rows = np.flatnonzero(labelled)[held]
    z[rows] = rng.uniform(0, 8, rows.size)
    scrambled["redshift"] = z
    _, oof2 = run(scrambled, "b")
    np.testing.assert_allclose(oof2.pdf(grid)[held], oof.pdf(grid)[held], rtol=1e-6)
    assert not np.allclose(oof2.pdf(grid)[~held], oof.pdf(grid)[~held])
    est = PhotometryNetEstimator.make_stage(name="pn_est", output=str(tmp_path / "est.hdf5"),
                                            model=model, bands=options["bands"],
                                            err_bands=options["err_bands"],
                                            hdf5_groupname="", id_col="object_id")
    ens = est.estimate(table).data
    assert ens.npdf == n
    np.testing.assert_array_equal(np.asarray(ens.ancil["object_id"]).ravel(),
                                  table["object_id"])
    assert model.meta["fine_tuning"]["n_labels"] == labelled.sum()


def test_fine_tuning_moves_the_network_towards_the_labels(catalog, noise):
    net = train_network(catalog.flux, catalog.redshift, noise, BANDS,
                        PhotometryNetOptions(photnet_epochs=2, photnet_batch_size=256,
                                             photnet_hidden=32, photnet_layers=1))
    rng = np.random.default_rng(5)
    flux = catalog.flux[:300]
    err = noise.draw(flux, rng)
    noisy = flux + err * rng.standard_normal(err.shape)
    z = np.full(300, 2.0)  # labels that disagree with the simulation
    tuned = fine_tune(net, noisy, err, z, epochs=30, learning_rate=3e-3)
    grid = np.expm1(np.linspace(0, np.log1p(8.0), 400))
    before = np.abs(grid[np.argmax(net.log_pdf(noisy, err, grid), 1)] - 2.0).mean()
    after = np.abs(grid[np.argmax(tuned.log_pdf(noisy, err, grid), 1)] - 2.0).mean()
    assert after < 0.5 * before
    assert tuned.meta["fine_tuning"]["n_labels"] == 300
