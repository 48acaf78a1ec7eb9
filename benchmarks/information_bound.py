"""How much redshift a field's colours carry: a learned bound, the same for every field.

For a simulated field the galaxies' true fluxes are known, so one can ask how well *any*
photometric estimator could do there, given far more labels than a survey has: draw many
galaxies of the field's own population, add the noise of a measurement, train a
k-nearest-neighbour regressor on N of them and test it on held-out bright galaxies
(detection-band S/N > 10). With N = 70,000 this is an upper bound on what colours can
give (a practical one: kNN on colours is what data-driven photo-z codes do with ample
labels); with N = 600 it is what a spectroscopic sample of a field alone can teach. Both
fields are measured the same way, so the bound says whether a field's SEDs are as
informative about redshift as another's, independently of any method of the package.

Sources: ``simulator`` (the package's population for a survey preset, e.g. ``jades``, and
an SED library: ``cosmos``, ``sps``) and ``second_renderer`` (benchmarks/second_renderer).
Noise: per band a sky term, the 1-sigma flux of the band's 5-sigma depth scaled by
``--aperture-factor`` (a Kron aperture is larger than the depths' 0.2"), and a
multiplicative scatter (``--scatter``: photometry of real mosaics scatters 5-8% about the
truth for bright objects, docs/second_renderer.md). Noiseless colours give the bound of the
SED family itself.

Usage::

    python benchmarks/information_bound.py --output docs/results/information_bound.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rail.deepdisc.magnitudes import NJY_ZEROPOINT

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TRAIN_SIZES = (600, 3000, 20000, 70000)
#: redshift ranges reported besides all bright test galaxies (NIRCam alone sees the Balmer
#: break only from z ~ 1.3 on)
ZRANGES = {"": lambda z: np.ones(z.size, bool), "_z<1.5": lambda z: z < 1.5,
           "_z>=1.5": lambda z: z >= 1.5}


def simulator_catalog(survey: str, sed_library: str, n: int, seed: int
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, float], int]:
    """True fluxes (nJy), redshifts, 5-sigma depths and detection-band index of ``n``
    galaxies of the package's population."""
    from rail.deepdisc.hybrid.simulated_photometry import simulate_catalog
    from rail.deepdisc.sim.surveys import get_survey

    preset = get_survey(survey)
    bands = list(preset.bands)
    cat = simulate_catalog(survey, bands, n, seed, realism="full", sed_library=sed_library)
    return cat.flux, cat.redshift, dict(preset.depths), bands.index(preset.detection_band)


def second_renderer_catalog(n: int, seed: int, sed_family: str = "synthesis"
                            ) -> tuple[np.ndarray, np.ndarray, dict[str, float], int]:
    """The same for the second renderer's population (its SEDs of ``sed_family`` and its
    depths)."""
    from second_renderer.config import DEPTHS, DETECTION_BAND
    from second_renderer.field import galaxy_fluxes
    from second_renderer.population import PopulationModel, draw_population
    from second_renderer.seds import BandIntegrator

    bands = list(DEPTHS)
    pop = draw_population(np.random.default_rng(seed), n, 1000.0, 1000.0, 0.0,
                          PopulationModel(sed_family=sed_family))
    flux = galaxy_fluxes(pop, BandIntegrator(bands), bands)
    return flux, np.asarray(pop.z, float), dict(DEPTHS), bands.index(DETECTION_BAND)


def bound(flux: np.ndarray, z: np.ndarray, depths: dict[str, float], det: int, *,
          scatter: float, aperture_factor: float, n_test: int, seed: int
          ) -> dict[str, dict[str, float]]:
    """kNN σ_IQR / η on bright held-out galaxies for each training-set size, with noise and
    without."""
    from sklearn.neighbors import KNeighborsRegressor

    from rail.deepdisc.evaluate.metrics import point_metrics

    rng = np.random.default_rng(seed)
    sky = np.array([10.0 ** (-0.4 * (d - NJY_ZEROPOINT)) / 5.0 * aperture_factor
                    for d in depths.values()])
    observed = flux * (1.0 + scatter * rng.normal(size=flux.shape)) + \
        sky * rng.normal(size=flux.shape)
    error = np.hypot(sky, scatter * flux)
    bright = observed[:, det] / error[:, det] > 10.0
    # asinh magnitudes relative to the detection band, and the detection magnitude
    noisy = np.hstack([np.arcsinh(observed / (3 * sky)) - np.arcsinh(
        observed[:, det:det + 1] / (3 * sky[det])),
        np.arcsinh(observed[:, det:det + 1] / sky[det]) / 3.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        clean = np.hstack([np.log(np.maximum(flux, 1e-6) / flux[:, det:det + 1]),
                           (NJY_ZEROPOINT - 2.5 * np.log10(flux[:, det:det + 1]) - 25) / 3])
    rows = rng.permutation(np.flatnonzero(bright))
    test, pool = rows[:n_test], rows[n_test:]
    out: dict[str, dict[str, float]] = {}
    for name, feat in (("noisy", noisy), ("noiseless", clean)):
        for n_train in TRAIN_SIZES:
            if n_train > pool.size:
                continue
            train = pool[:n_train]
            knn = KNeighborsRegressor(n_neighbors=15, weights="distance").fit(
                feat[train], np.log1p(z[train]))
            z_phot = np.expm1(knn.predict(feat[test]))
            for label, sel in ZRANGES.items():
                rows = sel(z[test])
                m = point_metrics(z_phot[rows], z[test][rows])
                out[f"{name}_{n_train}{label}"] = {
                    k: round(float(m[k]), 4) for k in ("sigma_iqr", "outlier_rate", "bias", "n")}
    out["bright_test_median_z"] = round(float(np.median(z[test])), 3)
    out["bright_test_fraction_z<1.5"] = round(float(np.mean(z[test] < 1.5)), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fields", default="simulator:jades:cosmos,simulator:jades:sps,"
                        "second_renderer:synthesis,second_renderer:analytic",
                        help="comma-separated sources: simulator:<survey>:<SED library>, "
                        "second_renderer:<SED family>")
    parser.add_argument("--galaxies", type=int, default=200_000,
                        help="galaxies drawn per field (about half are bright)")
    parser.add_argument("--test", type=int, default=5000, help="bright test galaxies")
    parser.add_argument("--scatter", type=float, default=0.05,
                        help="multiplicative flux scatter of the measurement")
    parser.add_argument("--aperture-factor", type=float, default=1.5,
                        help="sky noise of the photometry over the 0.2\"-aperture depth's")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", default="", help="JSON file to write")
    args = parser.parse_args(argv)
    results = {}
    for spec in args.fields.split(","):
        t0 = time.perf_counter()
        kind, *rest = spec.split(":")
        if kind == "simulator":
            survey, library = [*rest, *("jades", "cosmos")[len(rest):]][:2]
            data = simulator_catalog(survey, library, args.galaxies, args.seed)
        elif kind == "second_renderer":
            data = second_renderer_catalog(args.galaxies, args.seed, *rest[:1])
        else:
            parser.error(f"unknown field source {spec!r}")
        results[spec] = bound(*data, scatter=args.scatter,
                              aperture_factor=args.aperture_factor, n_test=args.test,
                              seed=args.seed)
        results[spec]["seconds"] = round(time.perf_counter() - t0, 1)
        print(spec, json.dumps(results[spec]), flush=True)
    if args.output:
        from rail.deepdisc.store.atomic import atomic_output
        from rail.deepdisc.store.provenance import package_versions

        payload = {"results": results, "settings": vars(args), "train_sizes": TRAIN_SIZES,
                   "command": " ".join(["python", "benchmarks/information_bound.py",
                                        *(argv if argv is not None else sys.argv[1:])]),
                   "versions": package_versions()}
        with atomic_output(args.output) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
