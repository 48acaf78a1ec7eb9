"""The second renderer (benchmarks/second_renderer.py): a field written by code independent
of the simulator has fits-field's layout, fluxes that add up to its truth magnitudes, and
SEDs that are not the simulator's templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "second_renderer.py"


sr = load_script(SCRIPT, "second_renderer_script")
BANDS = list(sr.FieldConfig().bands)


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """A 320 x 320 pixel field (0.045 arcmin^2), denser than the default so it holds a
    few bright isolated galaxies."""
    out = tmp_path_factory.mktemp("second") / "field"
    cfg = sr.FieldConfig(mosaic_size=320, surface_density=4000.0, seed=3)
    written = sr.write_field(out, cfg)
    return out, cfg, written


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """A 512 x 512 pixel field with few galaxies: empty sky and isolated objects."""
    out = tmp_path_factory.mktemp("sparse") / "field"
    cfg = sr.FieldConfig(mosaic_size=512, surface_density=600.0, seed=9)
    sr.write_field(out, cfg)
    return out, cfg


def _isolated(truth, x, y, r_in: float, r_out: float, frac: float = 0.01) -> np.ndarray:
    """Objects without a catalog neighbour brighter than ``frac`` of them (F200W) at
    ``r_in <= distance < r_out`` pixels."""
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    f200 = 10 ** (-0.4 * np.asarray(truth["mag_jwst_f200w"]))
    near = (d >= r_in) & (d < r_out) & (f200[None, :] > frac * f200[:, None])
    np.fill_diagonal(near, False)
    return ~near.any(axis=1)


def _positions(out, truth, size: int, margin: float):
    wcs = WCS(fits.getheader(out / "jwst_f200w.fits", "SCI"))
    x, y = wcs.all_world2pix(truth["ra"], truth["dec"], 0)
    inside = (x > margin) & (x < size - margin) & (y > margin) & (y < size - margin)
    return x, y, inside


@pytest.fixture(scope="module")
def fits_field(tmp_path_factory):
    """The project's own example field, small."""
    out = tmp_path_factory.mktemp("first") / "field"
    subprocess.run([sys.executable, "-m", "rail.deepdisc.cli", "fits-field", "-q",
                    "--mosaic-size", "256", "--output-dir", str(out)], check=True)
    return out


def test_field_has_the_fits_field_layout(field, fits_field):
    out, cfg, _ = field
    ours = yaml.safe_load((out / "field_inputs.yml").read_text())
    theirs = yaml.safe_load((fits_field / "field_inputs.yml").read_text())
    assert list(ours) == list(theirs)
    assert list(ours["images"]) == list(theirs["images"]) == BANDS
    assert ours["id_col"] == "id" and ours["redshift_col"] == ""
    assert ours["detection_band"] == "jwst_f200w"
    assert Table.read(out / "catalog.fits").colnames == \
        Table.read(fits_field / "catalog.fits").colnames
    assert Table.read(out / "spectra.fits").colnames == \
        Table.read(fits_field / "spectra.fits").colnames
    for band in BANDS:
        with fits.open(out / f"{band}.fits") as hdul:
            assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR"]
            assert hdul[0].data is None
            for h in hdul[1:]:
                assert h.header["BUNIT"] == "MJy/sr"
                assert h.data.shape == (cfg.mosaic_size, cfg.mosaic_size)
            wcs = WCS(hdul["SCI"].header)
            assert wcs.wcs.ctype[0].startswith("RA---TAN")
            scale = np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600
            assert scale == pytest.approx(0.04, rel=1e-6)
            sci, err = hdul["SCI"].data, hdul["ERR"].data
            border = np.ones(sci.shape, bool)
            border[8:-8, 8:-8] = False
            assert np.isnan(sci[border]).all() and np.isnan(err[border]).all()
            assert np.isfinite(sci[~border]).all() and (err[~border] > 0).all()
        with fits.open(out / f"psf_{band}.fits") as hdul:
            psf, hdr = hdul[0].data, hdul[0].header
        theirs_hdr = fits.getheader(fits_field / f"psf_{band}.fits")
        assert {"PIXELSCL", "OVERSAMP", "FILTER"} <= set(hdr) and \
            {"PIXELSCL", "OVERSAMP"} <= set(theirs_hdr)
        assert hdr["OVERSAMP"] == 4 and hdr["PIXELSCL"] == pytest.approx(0.01)
        assert psf.shape[0] == psf.shape[1] and psf.shape[0] % 2 == 1
        assert psf.sum() == pytest.approx(1.0, rel=1e-4)
        # core FWHM from the image: ~0.03" at F090W growing to ~0.15" at F444W
        fwhm = 2 * np.sqrt((psf > psf.max() / 2).sum() / np.pi) * hdr["PIXELSCL"]
        lo, hi = {"jwst_f090w": (0.025, 0.04), "jwst_f444w": (0.13, 0.17)}.get(band,
                                                                                (0.03, 0.16))
        assert lo < fwhm < hi, (band, fwhm)


def test_segmap_catalog_spectra_and_truth_agree(field):
    out, cfg, written = field
    cat = Table.read(out / "catalog.fits")
    truth = Table.read(out / "truth_catalog.fits")
    seg = fits.getdata(out / "segmap.fits")
    spec = Table.read(out / "spectra.fits")
    assert truth.colnames == ["id", "ra", "dec", "redshift",
                              *(f"mag_{b}" for b in BANDS), *(f"snr_{b}" for b in BANDS)]
    assert written.n_objects == len(truth) > 100
    assert np.isnan(np.ma.filled(cat["redshift"], np.nan)).all()
    # segmap values are catalog ids; every listed object owns >= 3 pixels
    ids, counts = np.unique(seg[seg > 0], return_counts=True)
    assert set(ids) <= set(cat["id"]) and set(ids) == set(truth["id"])
    assert counts.min() >= cfg.min_footprint_pixels
    # catalog positions land on the owned pixels (the catalog's RA/Dec through the WCS)
    wcs = WCS(fits.getheader(out / "jwst_f200w.fits", "SCI"))
    x, y = wcs.all_world2pix(truth["ra"], truth["dec"], 0)
    assert np.all((x > -1) & (x < cfg.mosaic_size) & (y > -1) & (y < cfg.mosaic_size))
    owned = seg[np.clip(np.rint(y).astype(int), 0, cfg.mosaic_size - 1),
                np.clip(np.rint(x).astype(int), 0, cfg.mosaic_size - 1)]
    assert np.mean(owned == truth["id"]) > 0.8
    # the objects off the mosaic are in the catalog only
    extra = set(cat["id"]) - set(truth["id"])
    assert len(extra) == cfg.n_outside
    # spectra: a subset of the catalog, at its positions, with the true redshifts, and
    # brighter than the photometric sample
    assert 0 < len(spec) < len(truth)
    sep = np.hypot((spec["ra"][:, None] - truth["ra"][None, :])
                   * np.cos(np.radians(truth["dec"][None, :])),
                   spec["dec"][:, None] - truth["dec"][None, :]) * 3600
    match = np.argmin(sep, axis=1)
    assert np.all(sep[np.arange(len(spec)), match] < 0.2)
    np.testing.assert_allclose(spec["z_spec"], truth["redshift"][match])
    assert np.median(truth["mag_jwst_f200w"][match]) < np.median(truth["mag_jwst_f200w"]) - 1


def test_noise_matches_the_error_map_and_is_correlated(sparse):
    from scipy.ndimage import binary_dilation

    out, _ = sparse
    seg = fits.getdata(out / "segmap.fits")
    sky = ~binary_dilation(seg > 0, iterations=10)
    sky[:12, :] = sky[-12:, :] = sky[:, :12] = sky[:, -12:] = False
    assert sky.mean() > 0.5
    # drizzle-like kernels: neighbour correlations 0.18 (0.031" pixels) and 0.42 (0.063")
    for band, expected in (("jwst_f090w", 0.18), ("jwst_f444w", 0.42)):
        with fits.open(out / f"{band}.fits") as hdul:
            chi = hdul["SCI"].data / hdul["ERR"].data
        mad = np.median(np.abs(chi[sky] - np.median(chi[sky]))) * 1.4826
        assert mad == pytest.approx(1.0, abs=0.06), band
        both = sky[:, 1:] & sky[:, :-1]
        rho = np.corrcoef(chi[:, 1:][both], chi[:, :-1][both])[0, 1]
        assert rho == pytest.approx(expected, abs=0.06), band


def test_bright_isolated_fluxes_match_the_truth_magnitudes(sparse):
    from photutils.aperture import CircularAperture, aperture_photometry

    from rail.deepdisc.sim.fits_field import mjy_sr_per_njy

    out, cfg = sparse
    truth = Table.read(out / "truth_catalog.fits")
    size = Table.read(out / "catalog.fits")["size"][:len(truth)]
    assert np.array_equal(Table.read(out / "catalog.fits")["id"][:len(truth)], truth["id"])
    radius = 40  # pixels: 1.6", beyond the PSF's truncation and the wings of galaxies
    x, y, inside = _positions(out, truth, cfg.mosaic_size, radius + 10)
    # the aperture holds the whole light of the objects centred well inside it, and
    # little of the others (none brighter than 2% of the target near its edge)
    pick = np.flatnonzero(inside & _isolated(truth, x, y, radius - 12, radius + 20, 0.02)
                          & (truth["mag_jwst_f200w"] < 26.0) & (size < 0.3))
    assert pick.size >= 3
    within = np.hypot(x[pick, None] - x[None, :], y[pick, None] - y[None, :]) < radius - 12
    aperture = CircularAperture(np.column_stack([x[pick], y[pick]]), radius)
    for band in BANDS:
        with fits.open(out / f"{band}.fits") as hdul:
            sci = hdul["SCI"].data / mjy_sr_per_njy(0.04)
            err = hdul["ERR"].data / mjy_sr_per_njy(0.04)
        measured = np.asarray(aperture_photometry(sci, aperture)["aperture_sum"])
        flux = within @ 10 ** (-0.4 * (np.asarray(truth[f"mag_{band}"]) - 31.4))
        # correlated noise: at most ~3.5x the white-noise variance in the aperture
        sigma = np.nanmedian(err) * np.sqrt(np.pi * radius**2 * 3.5)
        assert np.all(np.abs(measured - flux) < 4 * sigma + 0.03 * flux), \
            (band, measured, flux, sigma)


def test_snr_is_the_aperture_signal_over_its_noise(sparse):
    """``snr_<band>`` against a noisy measurement in the same 0.2" aperture (isolated
    objects with S/N > 20: the noise is small next to the signal)."""
    from photutils.aperture import CircularAperture, aperture_photometry
    from second_renderer.noise import NATIVE_LW, NATIVE_SW, band_kernel, correlation_factor

    out, cfg = sparse
    truth = Table.read(out / "truth_catalog.fits")
    x, y, inside = _positions(out, truth, cfg.mosaic_size, 15)
    alone = _isolated(truth, x, y, 0, 30)
    r = 0.2 / 0.04
    for band, native in (("jwst_f115w", NATIVE_SW), ("jwst_f356w", NATIVE_LW)):
        snr = np.asarray(truth[f"snr_{band}"])
        pick = (snr > 20) & inside & alone
        assert pick.sum() >= 3
        with fits.open(out / f"{band}.fits") as hdul:
            sci, err = hdul["SCI"].data, hdul["ERR"].data
        ap = CircularAperture(np.column_stack([x[pick], y[pick]]), r)
        measured = np.asarray(aperture_photometry(sci, ap)["aperture_sum"])
        noise = err[np.rint(y[pick]).astype(int), np.rint(x[pick]).astype(int)] * \
            np.sqrt(np.pi * r * r * correlation_factor(band_kernel(native, 0.04), r))
        assert np.all(np.abs(measured / noise - snr[pick]) < 4), \
            (band, measured / noise, snr[pick])


@pytest.mark.parametrize(("family", "floor", "share", "median"),
                         [("analytic", 0.05, 0.9, 0.08), ("synthesis", 0.02, 0.95, 0.045)])
def test_seds_are_not_the_simulators_templates(family, floor, share, median):
    """At each galaxy's redshift, its continuum colours differ from those of every COSMOS
    template of the simulator (with its Calzetti E(B-V) grid and Madau IGM): the best
    template leaves an rms colour residual (over the eight adjacent NIRCam colours) above
    ``floor`` for ``share`` of the galaxies and above ``median`` for the median galaxy.
    The analytic family: above 0.05 mag for nearly all (0.11 mag median). The synthesised
    populations look like real galaxies, as COSMOS's templates do, so they come closer:
    0.054 mag median, 0.039 mag for the 10th percentile (seed 5) — far from the ~0.001 mag
    of a copy of the library, and about the 5% scatter of measured bright-object fluxes."""
    from second_renderer.population import PopulationModel, draw_population
    from second_renderer.seds import BandIntegrator

    from rail.deepdisc.spectra.photometer import Photometer
    from rail.deepdisc.spectra.templates import cosmos_library

    pop = draw_population(np.random.default_rng(5), 300, 100, 100, 0,
                          PopulationModel(sed_family=family))
    sed = pop.sed
    sed.ew_ha = np.zeros(len(sed))  # continua only, as the library's entries are
    sed.lya_escape = np.zeros(len(sed))
    ours = BandIntegrator(BANDS).fluxes(sed)
    keep = (sed.z < 6.5) & np.all(ours > 0, axis=1)  # every band above the Lyman break
    lib = cosmos_library()
    phot = Photometer(lib, BANDS)
    n_entries = len(lib)
    z = np.repeat(sed.z[keep], n_entries)
    entries = np.tile(np.arange(n_entries), keep.sum())
    theirs = phot.maggies(entries, z).reshape(keep.sum(), n_entries, len(BANDS))

    def colours(f):
        m = -2.5 * np.log10(np.maximum(f, 1e-300))
        return np.diff(m, axis=-1)

    resid = colours(theirs) - colours(ours[keep])[:, None, :]
    rms = np.sqrt(np.mean(resid**2, axis=-1))
    ok = np.all(theirs > 0, axis=-1)
    best = np.min(np.where(ok, rms, np.inf), axis=1)
    assert keep.sum() > 200
    assert np.mean(best > floor) > share and np.median(best) > median, \
        np.percentile(best, [10, 50, 90])


def test_truth_table_from_a_fits_field(fits_field, field, tmp_path):
    theirs = sr.truth_table_from_store(fits_field / "truth.hdf5",
                                       output=tmp_path / "truth_catalog.fits")
    ours = Table.read(field[0] / "truth_catalog.fits")
    assert theirs.colnames == ours.colnames
    written = Table.read(tmp_path / "truth_catalog.fits")
    assert len(written) == len(theirs) > 10
    cat = Table.read(fits_field / "catalog.fits")
    row = {int(i): k for k, i in enumerate(cat["id"])}
    k = np.array([row[int(i)] for i in theirs["id"]])
    np.testing.assert_allclose(theirs["ra"], cat["ra"][k])
    assert np.isfinite(theirs["redshift"]).all() and (theirs["snr_jwst_f200w"] > 0).any()


def test_command_writes_a_field_and_a_truth_table(tmp_path, fits_field):
    run = subprocess.run([sys.executable, str(SCRIPT), "--output-dir", str(tmp_path / "f"),
                          "--mosaic-size", "96", "--seed", "2"], capture_output=True,
                         text=True, check=True)
    assert '"catalog_objects"' in run.stdout
    assert (tmp_path / "f" / "field_inputs.yml").is_file()
    assert (tmp_path / "f" / "truth_catalog.fits").is_file()
    # the truth table of a fits-field directory
    first = tmp_path / "first"
    first.mkdir()
    for name in ("truth.hdf5", "catalog.fits"):
        shutil.copyfile(fits_field / name, first / name)
    subprocess.run([sys.executable, str(SCRIPT), "--truth-from-store", str(first)],
                   capture_output=True, text=True, check=True)
    assert Table.read(first / "truth_catalog.fits").colnames == \
        Table.read(tmp_path / "f" / "truth_catalog.fits").colnames
    # an output that is a directory is refused before any work
    (tmp_path / "g" / "catalog.fits").mkdir(parents=True)
    bad = subprocess.run([sys.executable, str(SCRIPT), "--output-dir", str(tmp_path / "g"),
                          "--mosaic-size", "96"], capture_output=True, text=True)
    assert bad.returncode == 2 and "directory" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "g" / "jwst_f090w.fits").exists()
    # an empty field is refused, nothing written
    empty = subprocess.run([sys.executable, str(SCRIPT), "--output-dir", str(tmp_path / "e"),
                            "--mosaic-size", "64", "--surface-density", "0.01"],
                           capture_output=True, text=True)
    assert empty.returncode == 2 and "no galaxy" in empty.stderr
    assert not any((tmp_path / "e").glob("*.fits"))


def test_synthesised_populations_age_like_stellar_populations():
    """The renderer's own SSPs: the 4000-A break grows with age (young ~1.0, old ~2), the
    Balmer jump peaks at A-star ages (0.1-1 Gyr), the UV fades by orders of magnitude;
    metal-rich populations have the stronger break; star-formation weights sum to one and
    100 Myr of constant star formation gives the calibrated H-alpha EW."""
    from second_renderer import synthesis as syn

    lam = syn.rest_grid()

    def ratio(table, red, blue):
        fnu = table * lam**2
        return fnu[..., (lam > red[0]) & (lam < red[1])].mean(-1) / \
            fnu[..., (lam > blue[0]) & (lam < blue[1])].mean(-1)

    ssp = syn.ssp_table()
    d4000 = ratio(ssp, (4000, 4100), (3850, 3950))
    balmer = ratio(ssp, (3800, 3900), (3500, 3600))
    uv = ratio(ssp, (1500, 1600), (5400, 5600))
    ages = syn.AGE_CENTRES
    assert d4000[ages < 0.005].max() < 1.1 and d4000[ages > 4].min() > 1.75
    assert np.all(np.diff(d4000[ages > 0.05]) > -0.02)
    assert 1.9 < d4000[np.argmin(np.abs(ages - 10.0))] < 2.3  # old solar population
    peak = ages[np.argmax(balmer)]
    assert 0.1 < peak < 1.0 and balmer.max() > 1.8
    assert uv[0] > 1.0 and uv[ages > 4].max() < 1e-3
    rich, poor = ratio(syn.ssp_table(0.2), (4000, 4100), (3850, 3950)), \
        ratio(syn.ssp_table(-1.0), (4000, 4100), (3850, 3950))
    assert rich[-1] > poor[-1] + 0.2
    w = syn.sfh_weights(np.array([1.0, 3.0]), np.array([0.2, 5.0]), np.array([0.0, 0.01]),
                        np.array([0.0, 0.05]))
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    older = syn.AGE_EDGES[None, :-1] >= np.array([[1.0], [3.0]])  # before the start
    assert np.all(w[older] == 0)
    overlap = np.clip(np.minimum(syn.AGE_EDGES[1:], 0.1) - syn.AGE_EDGES[:-1], 0, None)
    constant = (overlap / overlap.sum())[None, :]
    np.testing.assert_allclose(syn.ew_halpha(constant), syn.EW_CONSTANT_100MYR)
    # UV slope of 100 Myr of constant star formation, as for real young galaxies
    uv_lam = (lam > 1300) & (lam < 2600)
    beta = np.polyfit(np.log(lam[uv_lam]), np.log(syn.galaxy_table(constant)[0, uv_lam]), 1)[0]
    assert -2.6 < beta < -2.0
    ew = syn.ew_halpha(syn.sfh_weights(np.array([2.0, 3.0]), np.array([0.05, 5.0]),
                                       np.zeros(2), np.zeros(2)))
    assert ew[0] < 1.0 and ew[1] > 50.0  # quenched long ago vs still forming stars


def test_clumps_of_synthesised_galaxies_are_young():
    from second_renderer.population import PopulationModel, clump_seds, draw_population
    from second_renderer.synthesis import AGE_EDGES

    pop = draw_population(np.random.default_rng(1), 400, 100, 100, 0,
                          PopulationModel(sed_family="synthesis"))
    rows = np.flatnonzero(pop.clump_fraction > 0)
    assert rows.size > 20
    clumps = clump_seds(pop, rows)
    assert np.all(clumps.sfh[:, AGE_EDGES[1:] > 0.1] == 0)
    np.testing.assert_allclose(clumps.sfh.sum(axis=1), 1.0)
    assert pop.sed.sfh.shape == (400, AGE_EDGES.size - 1)
    assert np.all((pop.sed.log_z >= -1.0) & (pop.sed.log_z <= 0.2))
