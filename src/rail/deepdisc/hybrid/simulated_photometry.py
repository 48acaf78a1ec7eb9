"""A simulated photometric catalog of a survey, with the noise of the user's own photometry.

Images are expensive to simulate and label; catalogs are not. The population the
pre-training field is drawn from (:func:`rail.deepdisc.sim.population.sample_population`,
for the survey measured from the user's mosaics) gives every galaxy's true flux in every
band; the user's photometry of their own field gives what a measurement adds: for each
simulated galaxy the error vector of a real object of about the same detection-band flux
(one of the ``neighbours`` nearest in flux, drawn at random), and Gaussian noise of those
errors on the true fluxes. So the errors, their correlation across bands and their
dependence on size and depth are the field's own, for as many labelled galaxies as the
training needs; each epoch draws new noise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rail.deepdisc.errors import InputError

log = logging.getLogger(__name__)

#: errors are borrowed from one of this many field objects nearest in detection-band flux
NEIGHBOURS = 15
#: fewest field objects with a full set of errors that the noise model needs
MIN_FIELD_OBJECTS = 50


@dataclass
class NoiseModel:
    """Error vectors of the field's objects, sorted by their detection-band flux.

    Attributes
    ----------
    flux
        (M,) detection-band fluxes, sorted.
    errors
        (M, NB) the objects' errors in every band, in that order.
    reference
        Index of the detection band.
    """

    flux: np.ndarray
    errors: np.ndarray
    reference: int

    @classmethod
    def from_photometry(cls, flux: np.ndarray, errors: np.ndarray, reference: int
                        ) -> NoiseModel:
        """The noise model of a photometry table's (N, NB) fluxes and errors.

        Raises
        ------
        InputError
            If fewer than :data:`MIN_FIELD_OBJECTS` objects have a finite detection-band flux
            and positive, finite errors in every band.
        """
        flux = np.asarray(flux, float)
        errors = np.asarray(errors, float)
        good = np.isfinite(flux[:, reference]) & np.all(np.isfinite(errors) & (errors > 0), 1)
        if good.sum() < MIN_FIELD_OBJECTS:
            raise InputError(f"the photometry has {int(good.sum())} objects with errors in "
                             f"every band; the noise model needs {MIN_FIELD_OBJECTS}")
        order = np.argsort(flux[good, reference])
        return cls(flux=flux[good, reference][order], errors=errors[good][order],
                   reference=reference)

    def draw(self, true_flux: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, NB) errors for galaxies of the given (N, NB) true fluxes."""
        pos = np.searchsorted(self.flux, true_flux[:, self.reference])
        pos = np.clip(pos + rng.integers(-(NEIGHBOURS // 2), NEIGHBOURS // 2 + 1, pos.size),
                      0, self.flux.size - 1)
        return self.errors[pos]


@dataclass
class SimulatedCatalog:
    """True fluxes and redshifts of simulated galaxies (nJy), and how they were drawn."""

    flux: np.ndarray
    redshift: np.ndarray
    bands: list[str]
    meta: dict


def simulate_catalog(survey: str, bands: Sequence[str], n: int, seed: int, *,
                     realism: str = "full", sed_library: str | None = None,
                     zmax: float | None = None, sed_distortion: float = 0.0
                     ) -> SimulatedCatalog:
    """``n`` galaxies of the survey's population with their true fluxes in ``bands``.

    Parameters
    ----------
    survey
        Survey preset or file (its bands, depths, magnitude limit and redshift range).
    bands
        Bands of the photometry (must be the survey's).
    n, seed
        Number of galaxies and seed of the draw.
    realism, sed_library
        The population's SEDs: the realism preset (``full`` has emission lines) and SED
        library (None: the preset's), as for the pre-training field.
    zmax
        Highest redshift (None: the survey's).
    sed_distortion
        rms (mag) of a random smooth distortion of each galaxy's SED (0: none).

    Raises
    ------
    InputError
        If the survey lacks one of the bands.
    """
    from rail.deepdisc.sim.population import PopulationConfig, sample_population
    from rail.deepdisc.sim.surveys import get_survey

    preset = get_survey(survey)
    missing = [b for b in bands if b not in preset.bands]
    if missing:
        raise InputError(f"survey {survey}: no band(s) {missing} (it has {list(preset.bands)})")
    options = {"survey": survey, "realism": realism, "star_fraction": 0.0}
    if sed_library:
        options["sed_library"] = sed_library
    if zmax:
        options["zmax"] = zmax
    if sed_distortion:
        options["sed_distortion"] = float(sed_distortion)
    cat = sample_population(int(n), PopulationConfig(**options), seed)
    meta = dict(cat.pop("_meta"))
    flux = np.stack([np.asarray(cat[f"{b}_fnu"], float) for b in bands], axis=1)
    z = np.asarray(cat["redshift"], float)
    ok = np.isfinite(z) & np.all(np.isfinite(flux), axis=1)
    log.info("simulated catalog: %d galaxies of %s (%s), %s", int(ok.sum()), survey,
             meta.get("sed_library"), realism)
    return SimulatedCatalog(flux=flux[ok], redshift=z[ok], bands=list(bands),
                            meta={**meta, "survey": str(survey), "realism": realism,
                                  "sed_distortion": float(sed_distortion),
                                  "n": int(ok.sum()), "seed": int(seed)})
