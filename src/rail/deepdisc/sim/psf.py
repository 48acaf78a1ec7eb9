"""Point-spread functions per band (GalSim).

Kinds:

* ``airy``: a diffraction-limited Airy pattern of the telescope's aperture and central
  obscuration at the band's effective wavelength;
* ``optical``: GalSim's ``OpticalPSF`` with the same aperture, support struts and small
  aberrations (defocus, astigmatism, coma, in waves; fixed values unless a survey file
  gives others);
* ``moffat`` (``fwhm`` arcsec, ``beta``) and ``gaussian`` (``fwhm``): analytic profiles;
* ``image``: a FITS image of the PSF (e.g. from STPSF/WebbPSF, or an empirical PSF) with its
  pixel scale, interpolated by GalSim (``InterpolatedImage``); the image is taken as the
  PSF before pixelisation (GalSim adds the pixel response when drawing), unless it is marked
  ``effective`` (already pixel-convolved, e.g. an EPSF built from stars: objects are then
  drawn without another pixel, :func:`draw_method`).

Ground-based surveys convolve ``airy`` and ``optical`` PSFs with a Kolmogorov atmosphere
whose FWHM scales as lambda^-0.2; the other kinds are the whole PSF.

The description (:func:`psf_description`, JSON-able, stored with simulated scenes as the
``psf`` root attribute) has one ``kind`` for all bands when the survey's bands share a
telescope PSF (the format of the first stores), or ``kind: bands`` and a ``bands`` mapping
of per-band specs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.sim.survey_preset import SurveyPreset
from rail.deepdisc.spectra.bands import effective_wavelength

if TYPE_CHECKING:
    import galsim

#: PSF kinds of the ``psf`` option (one kind for every band, from the telescope)
PSF_KINDS = ("airy", "optical")
TELESCOPE_PSF_KINDS = PSF_KINDS
#: PSF kinds a survey file may give
FILE_PSF_KINDS = ("airy", "optical", "moffat", "gaussian", "image")

#: fixed aberrations (waves) of the ``optical`` PSF; indices are Noll Zernike orders 4-8
_ABERRATIONS = {"defocus": 0.04, "astig1": 0.03, "astig2": -0.02, "coma1": 0.02, "coma2": 0.01}
#: struts of the first presets' ``optical`` PSFs (stores written before survey files)
_STRUTS = {"jades": (3, 0.05), "lsst": (4, 0.03)}


def default_aberrations() -> dict[str, float]:
    """The ``optical`` PSF's aberrations (waves) when a survey gives none."""
    return dict(_ABERRATIONS)


def _band_specs(survey: SurveyPreset) -> dict[str, dict[str, Any]]:
    return {b: survey.psfs.get(b, survey.psf_default) for b in survey.bands}


def _shared_kind(specs: dict[str, dict[str, Any]]) -> str | None:
    """The telescope kind all bands share with default parameters, else None."""
    kinds = {s["kind"] for s in specs.values()}
    if len(kinds) != 1 or not kinds <= set(TELESCOPE_PSF_KINDS):
        return None
    kind = kinds.pop()
    plain = {"kind": kind, **(_ABERRATIONS if kind == "optical" else {})}
    return kind if all(s == plain for s in specs.values()) else None


def psf_description(survey: SurveyPreset, kind: str | None = None) -> dict[str, Any]:
    """JSON-able description of the bands' PSFs (stored with the scenes).

    Parameters
    ----------
    survey
        The survey (bands, telescope, per-band PSFs).
    kind
        One of :data:`PSF_KINDS` for every band, or None for the survey's own PSFs.
    """
    if kind is not None and kind not in PSF_KINDS:
        raise OptionError(f"psf must be one of {list(PSF_KINDS)}, got {kind!r}")
    specs = _band_specs(survey)
    shared = kind or _shared_kind(specs)
    lam_nm = effective_wavelength(survey.bands, survey.filters) / 10.0
    description: dict[str, Any] = {
        "kind": shared or "bands",
        "survey": survey.name,
        "diameter_m": survey.diameter_m,
        "obscuration": survey.obscuration,
        "seeing_fwhm_arcsec_500nm": survey.seeing_fwhm_arcsec,
        "wavelength_nm": dict(zip(survey.bands, lam_nm.round(2).tolist(), strict=True)),
        "aberrations_waves": _ABERRATIONS if shared == "optical" else {},
    }
    if survey.struts is not None:
        description["struts"] = list(survey.struts)
    if shared is None:
        description["bands"] = specs
    return description


def draw_method(description: dict[str, Any], band: str) -> str:
    """GalSim's drawing method for objects seen through the band's PSF: ``no_pixel`` for an
    effective PSF image (``effective: true``, already convolved with the pixel, like an
    EPSF built from stars), else ``auto`` (GalSim adds the pixel response)."""
    spec = description.get("bands", {}).get(band, {})
    return "no_pixel" if spec.get("kind") == "image" and spec.get("effective") else "auto"


def make_psf(description: dict[str, Any], band: str) -> galsim.GSObject:
    """Build the GalSim PSF of one band from :func:`psf_description`'s output."""
    import galsim

    if "bands" in description:
        spec = description["bands"][band]
    else:
        spec = {"kind": description["kind"], **(description.get("aberrations_waves") or {})}
    kind = spec["kind"]
    if kind in TELESCOPE_PSF_KINDS:
        return _telescope_psf(description, spec, band)
    if kind == "moffat":
        return galsim.Moffat(beta=float(spec["beta"]), fwhm=float(spec["fwhm"]))
    if kind == "gaussian":
        return galsim.Gaussian(fwhm=float(spec["fwhm"]))
    if kind == "image":
        return _image_psf(str(spec["file"]), float(spec["pixel_scale"]), band)
    raise OptionError(f"PSF kind of band {band} must be one of {list(FILE_PSF_KINDS)}, got "
                      f"{kind!r}")


def _telescope_psf(description: dict[str, Any], spec: dict[str, Any], band: str):
    """Airy or optical PSF of the telescope at the band's wavelength (+ atmosphere)."""
    import galsim

    lam = float(description["wavelength_nm"][band])
    diam = float(description["diameter_m"])
    obsc = float(description["obscuration"])
    if spec["kind"] == "airy":
        psf = galsim.Airy(lam=lam, diam=diam, obscuration=obsc, scale_unit=galsim.arcsec)
    else:
        nstruts, thick = description.get("struts") or \
            _STRUTS.get(description.get("survey", ""), (3, 0.05))
        psf = galsim.OpticalPSF(
            lam=lam, diam=diam, obscuration=obsc, nstruts=int(nstruts),
            strut_thick=float(thick), defocus=spec["defocus"], astig1=spec["astig1"],
            astig2=spec["astig2"], coma1=spec["coma1"], coma2=spec["coma2"],
            scale_unit=galsim.arcsec)
    seeing = float(description.get("seeing_fwhm_arcsec_500nm", 0.0))
    if seeing > 0:
        psf = galsim.Convolve(galsim.Kolmogorov(fwhm=seeing * (lam / 500.0) ** -0.2), psf)
    return psf


@lru_cache(maxsize=64)
def _image_psf(path: str, pixel_scale: float, band: str):
    """An interpolated PSF image, flux 1."""
    import galsim

    from rail.deepdisc.sim.noise import read_fits_image

    try:
        data = read_fits_image(path, f"PSF image of band {band}")
    except InputError as err:
        raise InputError(f"{err} (the PSF model names this file)") from None
    image = galsim.Image(data / data.sum(), scale=pixel_scale)
    return galsim.InterpolatedImage(image, flux=1.0)


def psf_fwhm(description: dict[str, Any], band: str, pixel_scale: float) -> float:
    """FWHM (arcsec) of the band's PSF, measured on an oversampled image."""
    psf = make_psf(description, band)
    img = psf.drawImage(scale=pixel_scale / 8.0, method="no_pixel")
    return float(img.calculateFWHM())
