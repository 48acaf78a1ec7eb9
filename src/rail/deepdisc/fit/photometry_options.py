"""The options of scene photometry, defined once.

:class:`PhotometryConfig` says how fluxes are measured (the library's configuration, recorded
in provenance); :class:`PhotometryOptions` adds what a run reads (chunk size, an optional
detections table). ``ScenePhotometry``'s ``config_options`` and the flags of
``rail-deepdisc photometry`` are both derived from :class:`PhotometryOptions`. Importing this
module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rail.deepdisc.errors import OptionError
from rail.deepdisc.options import Options, option

#: the measurement methods (see :mod:`rail.deepdisc.fit.apertures`)
METHODS = ("aperture", "kron")


@dataclass(frozen=True)
class PhotometryConfig(Options):
    """How fluxes are measured.

    Attributes
    ----------
    method
        ``aperture`` or ``kron`` (see :mod:`rail.deepdisc.fit.apertures`).
    aperture_radius
        Circular aperture radius in arcsec; None: 3 x the largest PSF half-light radius of
        the bands (about 1.5 FWHM; at least 2 pixels), which needs the store's PSF model.
    background_annulus
        Inner and outer radius (arcsec) of the local-background annulus; None: 2 and 4 x
        the aperture radius. For ``kron`` the annulus width sets photutils' rectangular
        ``local_bkg_width``.
    local_background
        Subtract a local background. Off by default: scene stores hold background-subtracted
        images, and on simulated JADES scenes the local estimate (contaminated by the faint
        wings of galaxies beyond their footprints) raises the oracle BPZ sigma_IQR of bright
        objects from 0.028 to 0.039. Turn it on for mosaics with residual backgrounds.
    kron_params
        photutils' Kron parameters: scale, minimum unscaled Kron radius (pixels), minimum
        circular radius (pixels).
    aperture_correction
        Correct fluxes for the PSF light outside the aperture (needs the PSF model).
    psf_match
        ``aperture``: convolve every band to the broadest PSF first (needs the PSF model).
    nondetect_snr
        S/N below which a band is a non-detection.
    nondetect_val, nonobserved_val
        Magnitudes of non-detections and of bands without data (RAIL's conventions).
    bands
        Bands to measure (empty: all of the store's).
    psf_survey
        A survey (preset name or survey file) whose PSF models replace the store's, e.g. for
        tiles cut from mosaics, which carry none: the survey measured from those mosaics
        (``rail-deepdisc survey``) holds their PSFs.
    """

    method: str = option("kron", "photometry method: kron (Kron apertures from the "
                         "footprints) or aperture (PSF-matched circular apertures)",
                         choices=METHODS)
    aperture_radius: float | None = option(None, "circular aperture radius in arcsec "
                                           "(default: 3 x the largest PSF half-light "
                                           "radius)", gt=0, metavar="ARCSEC")
    background_annulus: tuple[float, float] | None = option(
        None, "inner and outer radius (arcsec) of the local-background annulus (default: "
        "2 and 4 x the aperture radius)", gt=0, metavar="ARCSEC")
    local_background: bool = option(False, "subtract a local background (for images with "
                                    "residual backgrounds)")
    kron_params: tuple[float, ...] = option((2.5, 1.4, 0.0), "photutils Kron parameters: "
                                            "scale, minimum unscaled Kron radius (pixels), "
                                            "minimum circular radius (pixels)", ge=0)
    aperture_correction: bool = option(True, "correct fluxes for the PSF light outside the "
                                       "aperture (needs the stored PSF model)")
    psf_match: bool = option(True, "aperture method: convolve all bands to the broadest PSF")
    nondetect_snr: float = option(1.0, "S/N below which a band is a non-detection", ge=0)
    nondetect_val: float = option(99.0, "magnitude of a non-detection (its error is the "
                                  "1-sigma limiting magnitude)")
    nonobserved_val: float = option(-99.0, "magnitude and error of a band without data")
    bands: tuple[str, ...] = option((), "bands to measure (default: all of the store's)")
    psf_survey: str = option("", "survey (preset or survey file) whose PSF models to use "
                             "instead of the store's (tiles of mosaics carry none: give the "
                             "survey measured from the mosaics); '' for the store's own",
                             path=True, metavar="SURVEY")

    def _check(self) -> None:
        if self.background_annulus is not None:
            ann = tuple(self.background_annulus)
            if len(ann) != 2 or not ann[0] < ann[1]:
                raise OptionError("background_annulus must be (inner, outer) arcsec with "
                                  f"0 < inner < outer, got {list(ann)}")
        kp = tuple(self.kron_params)
        if len(kp) not in (2, 3) or not (kp[0] > 0 and kp[1] > 0):
            raise OptionError("kron_params must be (scale > 0, min Kron radius > 0[, min "
                              f"circular radius >= 0]), got {list(kp)}")
        if len(set(self.bands)) != len(self.bands):
            raise OptionError(f"bands names a band twice: {list(self.bands)}")


@dataclass(frozen=True)
class PhotometryOptions(Options):
    """A photometry run: how to measure, what to read at a time, what to measure."""

    photometry: PhotometryConfig = field(default_factory=PhotometryConfig)
    chunk_size: int = option(10000, "objects per chunk of whole scenes", ge=1)
    detections: str = option("", "detections table (hdf5) to measure instead of the store's "
                             "objects ('' for forced photometry of every object)", path=True,
                             metavar="HDF5")
