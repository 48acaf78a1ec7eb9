"""Point-spread functions per band, from the telescope aperture (GalSim).

``airy``: a diffraction-limited Airy pattern of the telescope's aperture and central
obscuration at the band's effective wavelength. ``optical``: GalSim's ``OpticalPSF`` with
the same aperture, support struts and small fixed aberrations (defocus, astigmatism, coma,
in waves). Ground-based presets convolve either with a Kolmogorov atmosphere whose FWHM
scales as lambda^-0.2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rail.deepdisc.bands import effective_wavelength
from rail.deepdisc.errors import OptionError
from rail.deepdisc.sim.surveys import SurveyPreset

if TYPE_CHECKING:
    import galsim

PSF_KINDS = ("airy", "optical")

#: fixed aberrations (waves) of the ``optical`` PSF; indices are Noll Zernike orders 4-8
_ABERRATIONS = {"defocus": 0.04, "astig1": 0.03, "astig2": -0.02, "coma1": 0.02, "coma2": 0.01}
_STRUTS = {"jades": (3, 0.05), "lsst": (4, 0.03)}


def psf_description(survey: SurveyPreset, kind: str) -> dict[str, Any]:
    """JSON-able description of the PSF model (stored with the scenes)."""
    if kind not in PSF_KINDS:
        raise OptionError(f"psf must be one of {list(PSF_KINDS)}, got {kind!r}")
    lam_nm = effective_wavelength(survey.bands) / 10.0
    return {
        "kind": kind,
        "survey": survey.name,
        "diameter_m": survey.diameter_m,
        "obscuration": survey.obscuration,
        "seeing_fwhm_arcsec_500nm": survey.seeing_fwhm_arcsec,
        "wavelength_nm": dict(zip(survey.bands, lam_nm.round(2).tolist(), strict=True)),
        "aberrations_waves": _ABERRATIONS if kind == "optical" else {},
    }


def make_psf(description: dict[str, Any], band: str) -> galsim.GSObject:
    """Build the GalSim PSF of one band from :func:`psf_description`'s output."""
    import galsim

    lam = float(description["wavelength_nm"][band])
    diam = float(description["diameter_m"])
    obsc = float(description["obscuration"])
    if description["kind"] == "airy":
        psf = galsim.Airy(lam=lam, diam=diam, obscuration=obsc, scale_unit=galsim.arcsec)
    elif description["kind"] == "optical":
        ab = description["aberrations_waves"]
        nstruts, thick = _STRUTS.get(description.get("survey", ""), (3, 0.05))
        psf = galsim.OpticalPSF(
            lam=lam, diam=diam, obscuration=obsc, nstruts=nstruts, strut_thick=thick,
            defocus=ab["defocus"], astig1=ab["astig1"], astig2=ab["astig2"],
            coma1=ab["coma1"], coma2=ab["coma2"], scale_unit=galsim.arcsec,
        )
    else:
        raise OptionError(f"psf must be one of {list(PSF_KINDS)}, got "
                          f"{description['kind']!r}")
    seeing = float(description.get("seeing_fwhm_arcsec_500nm", 0.0))
    if seeing > 0:
        psf = galsim.Convolve(galsim.Kolmogorov(fwhm=seeing * (lam / 500.0) ** -0.2), psf)
    return psf


def psf_fwhm(description: dict[str, Any], band: str, pixel_scale: float) -> float:
    """FWHM (arcsec) of the band's PSF, measured on an oversampled image."""
    psf = make_psf(description, band)
    img = psf.drawImage(scale=pixel_scale / 8.0, method="no_pixel")
    return float(img.calculateFWHM())
