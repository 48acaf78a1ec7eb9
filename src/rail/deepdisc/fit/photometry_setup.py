"""What every chunk of a photometry run shares, checked against the store before any work.

:func:`prepare` checks a :class:`~rail.deepdisc.fit.photometry_options.PhotometryConfig`
against a scene store (bands with filter curves and in the store, an aperture radius or a
PSF model to derive it from) and precomputes the aperture radius in pixels, the background
annulus, the per-band noise, the point-source aperture corrections and, for PSF-matched
circular apertures, the matching kernels.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rail.deepdisc.errors import OptionError, SceneStoreError
from rail.deepdisc.fit.photometry_options import PhotometryConfig
from rail.deepdisc.fit.psf_photometry import (
    has_psf_model,
    psf_encircled_energy,
    psf_half_light_radius,
    psf_matching_kernels,
)
from rail.deepdisc.spectra.bands import filters_json
from rail.deepdisc.spectra.filters import unknown_filters
from rail.deepdisc.store.scenes import SceneStore, StoreInfo

log = logging.getLogger(__name__)


@dataclass
class PhotometrySetup:
    """The checked configuration of a run and what all its chunks share."""

    cfg: PhotometryConfig
    info: StoreInfo
    bands: list[str]
    band_index: np.ndarray
    radius_pix: float
    annulus_pix: tuple[float, float]
    has_psf: bool
    noise_sigma: np.ndarray | None
    aperture_corr: np.ndarray  # circular apertures, per band (1 without correction)
    noise_factor: np.ndarray  # circular apertures on PSF-matched images, per band
    kernels: list[np.ndarray | None]
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def table_attrs(self) -> dict[str, str]:
        """Root attributes of the photometry table (:func:`table_attrs`)."""
        return table_attrs(self.info, self.bands)

    @property
    def corrected(self) -> bool:
        """Whether fluxes are corrected for the PSF light outside the aperture."""
        return self.has_psf and self.cfg.aperture_correction

    def ee(self, b: int, radius_pix: np.ndarray) -> np.ndarray:
        """Encircled energy of band ``b``'s PSF at the radii (1 without correction)."""
        if not self.corrected:
            return np.ones_like(np.asarray(radius_pix, float))
        return psf_encircled_energy(self.info, self.bands[b], radius_pix)


def table_attrs(info: StoreInfo, bands: Sequence[str]) -> dict[str, str]:
    """Root attributes of a photometry table of ``bands`` measured on a store: the
    ``filters`` of those bands that the store defines (:mod:`rail.deepdisc.spectra.bands`,
    the store's attribute format), so template fitters of the table, in any process, find
    their curves; {} when the store defines none."""
    own = {b: info.filters[b] for b in bands if b in info.filters}
    return {"filters": filters_json(own)} if own else {}


def photometry_table_attrs(store: SceneStore, cfg: PhotometryConfig) -> dict[str, str]:
    """:func:`table_attrs` of a run of ``cfg`` on ``store`` (the bands it measures, with the
    filters of the store and of ``cfg.psf_survey``)."""
    info = _with_survey_psf(store.info, cfg.psf_survey)
    return table_attrs(info, measured_bands(store, cfg, info))


def measured_bands(store: SceneStore, cfg: PhotometryConfig,
                   info: StoreInfo | None = None) -> list[str]:
    """The bands a run measures: ``cfg.bands`` or all of the store's, each with a curve
    (the filters of ``info``, by default the store's own).

    Raises
    ------
    OptionError
        If ``bands`` names a band no filter curve knows, or one the store lacks.
    SceneStoreError
        If the store has a band no filter curve knows (template fitters could not use it).
    """
    info = store.info if info is None else info
    bands = list(cfg.bands) or list(info.bands)
    no_curve = unknown_filters(bands, filters=info.filters)
    if no_curve and cfg.bands:
        raise OptionError(f"bands: no filter curve knows {no_curve} (see "
                          "rail.deepdisc.spectra.filters for the names known)")
    if no_curve:
        raise SceneStoreError(f"scene store {store.path} has band(s) {no_curve} that no filter "
                              "curve knows, so template fitters could not use them; name "
                              "the bands as rail.deepdisc.spectra.filters knows them")
    missing = [b for b in bands if b not in info.bands]
    if missing:
        raise OptionError(f"bands {missing} are not in the scene store {store.path} "
                          f"(it has {list(info.bands)})")
    return bands


def _aperture_radius(store: SceneStore, info: StoreInfo, cfg: PhotometryConfig,
                     bands: list[str]) -> float:
    """The circular aperture radius in arcsec (given, or from the PSF model)."""
    if cfg.aperture_radius is not None:
        return float(cfg.aperture_radius)
    if not has_psf_model(info):
        raise SceneStoreError(f"scene store {store.path} has no PSF model: give "
                              "aperture_radius (arcsec) or psf_survey (a survey file with "
                              "the PSFs, e.g. measured from the mosaics)")
    scale = float(info.pixel_scale_arcsec)
    r50 = max(psf_half_light_radius(info, b) for b in bands) * scale
    return max(3.0 * r50, 2.0 * scale)


def _with_survey_psf(info: StoreInfo, survey: str) -> StoreInfo:
    """The store's metadata with the PSF model and the band filters of ``survey`` (a preset or
    survey file; the store's own filters first), or unchanged for ''. A store tiled from
    mosaics carries no filters: the survey measured from them names the bands' curves.

    Raises
    ------
    OptionError
        If the survey lacks one of the store's bands.
    """
    if not survey:
        return info
    from rail.deepdisc.sim.psf import psf_description
    from rail.deepdisc.sim.surveys import get_survey

    preset = get_survey(survey)
    missing = [b for b in info.bands if b not in preset.bands]
    if missing:
        raise OptionError(f"psf_survey {survey}: no PSF for the store's band(s) {missing} "
                          f"(it has {list(preset.bands)})")
    psf = json.dumps(psf_description(preset), sort_keys=True)
    return replace(info, attrs={**info.attrs, "psf": psf},
                   filters={**preset.filters, **info.filters})


def _store_noise(info: StoreInfo, band_index: np.ndarray) -> np.ndarray | None:
    """Per-band noise of the store's ``noise_sigma`` attribute, if it has one per band."""
    if "noise_sigma" not in info.attrs:
        return None
    sig = np.asarray(info.attrs["noise_sigma"], float)
    return sig[band_index] if sig.shape == (len(info.bands),) else None


def prepare(store: SceneStore, cfg: PhotometryConfig) -> PhotometrySetup:
    """Check the configuration against a store and precompute what all chunks share.

    Raises
    ------
    OptionError, SceneStoreError
        For bad options, bands without curves or missing from the store, or an automatic
        radius without a PSF model.
    """
    cfg.validate()
    info = _with_survey_psf(store.info, cfg.psf_survey)
    bands = measured_bands(store, cfg, info)
    scale = float(info.pixel_scale_arcsec)
    radius = _aperture_radius(store, info, cfg, bands)
    ann = tuple(cfg.background_annulus or (2.0 * radius, 4.0 * radius))
    nb = len(bands)
    band_index = np.array([info.bands.index(b) for b in bands])
    setup = PhotometrySetup(
        cfg=cfg, info=info, bands=bands, band_index=band_index, radius_pix=radius / scale,
        annulus_pix=(ann[0] / scale, ann[1] / scale), has_psf=has_psf_model(info),
        noise_sigma=_store_noise(info, band_index), aperture_corr=np.ones(nb),
        noise_factor=np.ones(nb), kernels=[None] * nb,
        notes={"method": cfg.method, "aperture_radius_arcsec": radius,
               "background_annulus_arcsec": list(ann)})
    if not setup.has_psf:
        log.warning("scene store %s has no PSF model: no PSF matching or aperture "
                    "correction", store.path)
        setup.notes["psf"] = "none: the store has no PSF model"
        return setup
    _add_psf_corrections(setup)
    return setup


def _add_psf_corrections(setup: PhotometrySetup) -> None:
    """Matching kernels (PSF-matched apertures) and point-source aperture corrections."""
    cfg, bands, nb = setup.cfg, setup.bands, len(setup.bands)
    if cfg.method == "aperture" and cfg.psf_match and nb > 1:
        target, kernels, corr, noise = psf_matching_kernels(setup.info, bands,
                                                            setup.radius_pix)
        setup.kernels, setup.noise_factor = kernels, noise
        setup.notes["psf_matched_to"] = target
        setup.notes["noise_factor"] = dict(zip(bands, noise.round(4).tolist(), strict=True))
    else:
        corr = 1.0 / np.array([float(setup.ee(b, setup.radius_pix)) for b in range(nb)])
    if cfg.aperture_correction:
        setup.aperture_corr = corr
        setup.notes["point_source_aperture_correction"] = dict(
            zip(bands, corr.round(5).tolist(), strict=True))
