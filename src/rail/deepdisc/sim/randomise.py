"""Realism presets and image-level randomisation: PSF jitter, per-scene depth, masked pixels.

A simulated field is made more like real data (and a network pretrained on it more robust
to what our simulator does not model) by a set of seeded options, each off by default:

* population level (:mod:`rail.deepdisc.sim.morphology`, :mod:`rail.deepdisc.sim.stars`,
  :mod:`rail.deepdisc.spectra.library`): nebular emission lines, star-forming clumps, bulges
  older/redder than their disks, lopsided galaxies, stars (``sed_library`` can also mix
  template libraries, e.g. ``cosmos+cww``, and ``sed_distortion`` bends each galaxy's SED
  by a random smooth curve; the ``full`` preset keeps COSMOS and no distortion, which
  transferred better in ``benchmarks/domain_transfer.py``);
* image level (here, :class:`ImageRandomisation`): per-scene PSF size and ellipticity,
  per-scene depth, bad columns, cosmic-ray tracks and edges without data (ivar 0).

One switch, ``realism``, sets every option that is left unset (None) to its value in
:data:`REALISM_PRESETS` (``off``: all off, the simulator as before; ``full``: all on); an
option given explicitly overrides the preset. With everything off, stores and catalogs are
byte for byte those of a simulator without these options (only the provenance records the
new option names).

Scene ``k`` draws its conditions from ``numpy.random.default_rng([seed, 201, k])`` and its
masks from ``[seed, 202, k]``, streams no other part of the renderer uses, so switching an
option on changes nothing else. What was drawn is stored as columns of ``/scenes``:
``depth_offset_mag``, ``psf_fwhm_<band>`` (arcsec), ``psf_g1``, ``psf_g2`` and
``masked_fraction``; the masks themselves are the pixels with ``ivar = 0``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from rail.deepdisc.options import Options, option

if TYPE_CHECKING:
    import galsim

#: the values of the realism options under each preset of ``realism``
REALISM_PRESETS: dict[str, dict[str, float | bool]] = {
    "off": {
        "clumpy_fraction": 0.0, "bulge_colours": False, "asymmetric_fraction": 0.0,
        "star_fraction": 0.0, "psf_jitter": 0.0, "psf_ellipticity": 0.0, "depth_range": 0.0,
        "bad_columns": 0.0, "cosmic_rays": 0.0, "edge_masks": 0.0, "emission_lines": False,
        "sed_library": "cosmos", "sed_distortion": 0.0,
    },
    "full": {
        "clumpy_fraction": 0.5, "bulge_colours": True, "asymmetric_fraction": 0.3,
        "star_fraction": 0.02, "psf_jitter": 0.05, "psf_ellipticity": 0.03,
        "depth_range": 0.5, "bad_columns": 0.2, "cosmic_rays": 1.0, "edge_masks": 0.05,
        "emission_lines": True, "sed_library": "cosmos", "sed_distortion": 0.0,
    },
}
REALISM_LEVELS = tuple(REALISM_PRESETS)

#: cosmic-ray tracks are this many pixels long at most
_CR_MAX_LENGTH = 12
#: a masked edge strip covers up to this fraction of the scene side
_EDGE_MAX_FRACTION = 0.25


@dataclass(frozen=True, kw_only=True)
class RealismChoice(Options):
    """The ``realism`` switch shared by the population and rendering options."""

    realism: str = option(
        "off", "realism/randomisation preset for every realism option left unset: 'off' "
        "(smooth Sersic galaxies of one colour, no stars, fixed PSF and depth, no masks) or "
        "'full' (emission lines, clumps, bulge colours, lopsided galaxies, stars, PSF "
        "jitter, depth variation, masked pixels)",
        choices=REALISM_LEVELS)

    def setting(self, name: str) -> Any:
        """The value of a realism option: its own if given, else the preset's."""
        value = getattr(self, name)
        return REALISM_PRESETS[self.realism][name] if value is None else value


@dataclass(frozen=True, kw_only=True)
class ImageRandomisation(RealismChoice):
    """Per-scene PSF, depth and masks (None: the ``realism`` preset's value)."""

    psf_jitter: float | None = option(
        None, "log-normal scatter of each band's PSF size from scene to scene (0.05: ~5% "
        "FWHM scatter)", ge=0, le=0.5)
    psf_ellipticity: float | None = option(
        None, "largest PSF shear |g| of a scene (same for all bands, random direction)",
        ge=0, le=0.3)
    depth_range: float | None = option(
        None, "each scene's depth (all bands) is offset by a uniform draw in +-this (mag)",
        ge=0, le=3)
    bad_columns: float | None = option(
        None, "mean number of bad (ivar 0) columns per band and scene (Poisson)", ge=0,
        le=100)
    cosmic_rays: float | None = option(
        None, "mean number of masked cosmic-ray tracks per band and scene (Poisson)", ge=0,
        le=1000)
    edge_masks: float | None = option(
        None, "probability that a band of a scene has a strip without data along one edge",
        ge=0, le=1)

    @property
    def randomises_images(self) -> bool:
        """Whether any image-level option is on (scenes then get the condition columns)."""
        return any(self.setting(n) for n in ("psf_jitter", "psf_ellipticity", "depth_range",
                                             "bad_columns", "cosmic_rays", "edge_masks"))


@dataclass(frozen=True)
class SceneConditions:
    """What one scene drew: noise, PSF size factors and shear.

    Attributes
    ----------
    sigma
        Pixel noise (nJy) per band.
    depth_offset
        Depth offset (mag; positive is deeper) of the scene, all bands.
    psf_scale
        Dilation of each band's PSF.
    psf_g1, psf_g2
        Shear of the PSF (all bands).
    """

    sigma: np.ndarray
    depth_offset: float
    psf_scale: np.ndarray
    psf_g1: float
    psf_g2: float

    def apply(self, psfs: list[galsim.GSObject]) -> list[galsim.GSObject]:
        """The bands' PSFs with this scene's size and shear (flux kept)."""
        out = []
        for psf, scale in zip(psfs, self.psf_scale, strict=True):
            if scale != 1.0:
                psf = psf.dilate(float(scale))
            if self.psf_g1 or self.psf_g2:
                psf = psf.shear(g1=self.psf_g1, g2=self.psf_g2)
            out.append(psf)
        return out

    def columns(self, bands: tuple[str, ...], nominal_fwhm: np.ndarray) -> dict[str, Any]:
        """The scene-table columns recording the draw (FWHM = nominal x dilation)."""
        out: dict[str, Any] = {"depth_offset_mag": self.depth_offset,
                               "psf_g1": self.psf_g1, "psf_g2": self.psf_g2}
        for band, fwhm in zip(bands, nominal_fwhm * self.psf_scale, strict=True):
            out[f"psf_fwhm_{band}"] = float(fwhm)
        return out


def scene_conditions(cfg: ImageRandomisation, sigma: np.ndarray, scene: int,
                     seed: int) -> SceneConditions:
    """Draw scene ``scene``'s depth offset, PSF dilations and PSF shear.

    Parameters
    ----------
    cfg
        The options.
    sigma
        Nominal pixel noise per band.
    scene, seed
        Scene index and the render seed.
    """
    rng = np.random.default_rng([seed, 201, scene])
    nb = len(sigma)
    depth = float(rng.uniform(-1.0, 1.0)) * cfg.setting("depth_range")
    scale = np.exp(cfg.setting("psf_jitter") * rng.standard_normal(nb))
    # a shear uniform over the disc |g| <= psf_ellipticity
    g = cfg.setting("psf_ellipticity") * np.sqrt(rng.uniform())
    angle = rng.uniform(0.0, 2.0 * np.pi)
    return SceneConditions(sigma=np.asarray(sigma, float) * 10.0 ** (-0.4 * depth),
                           depth_offset=depth, psf_scale=scale,
                           psf_g1=float(g * np.cos(angle)), psf_g2=float(g * np.sin(angle)))


def mask_pixels(cfg: ImageRandomisation, shape: tuple[int, int, int], scene: int,
                seed: int) -> np.ndarray:
    """Pixels without data of scene ``scene``, per band: bad columns, cosmic rays, edges.

    Returns
    -------
    numpy.ndarray
        Boolean (C, H, W), True where masked.
    """
    rng = np.random.default_rng([seed, 202, scene])
    nb, h, w = shape
    mask = np.zeros(shape, bool)
    for b in range(nb):
        for x in rng.integers(0, w, rng.poisson(cfg.setting("bad_columns"))):
            mask[b, :, x] = True
        for _ in range(rng.poisson(cfg.setting("cosmic_rays"))):
            ys, xs = _track(rng, h, w)
            mask[b, ys, xs] = True
        if rng.uniform() < cfg.setting("edge_masks"):
            _mask_edge(rng, mask[b])
    return mask


def _track(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a straight cosmic-ray track (1 pixel wide) at a random place and angle."""
    length = rng.integers(2, _CR_MAX_LENGTH + 1)
    y0, x0 = rng.uniform(0, h), rng.uniform(0, w)
    angle = rng.uniform(0.0, np.pi)
    t = np.linspace(0.0, length, 2 * length + 1)
    ys = np.clip(np.round(y0 + t * np.sin(angle)), 0, h - 1).astype(int)
    xs = np.clip(np.round(x0 + t * np.cos(angle)), 0, w - 1).astype(int)
    return ys, xs


def _mask_edge(rng: np.random.Generator, band_mask: np.ndarray) -> None:
    """Mask a strip along one random edge (no coverage), up to a quarter of the side."""
    h, w = band_mask.shape
    side = int(rng.integers(4))
    depth = max(1, int(rng.uniform(0.02, _EDGE_MAX_FRACTION) * (h if side < 2 else w)))
    if side == 0:
        band_mask[:depth] = True
    elif side == 1:
        band_mask[-depth:] = True
    elif side == 2:
        band_mask[:, :depth] = True
    else:
        band_mask[:, -depth:] = True


def finish_scene(cfg: ImageRandomisation, cond: SceneConditions, images: np.ndarray,
                 ivar: np.ndarray, scene: int, seed: int, psf: dict[str, Any],
                 bands: tuple[str, ...], pixel_scale: float) -> dict[str, Any]:
    """Mask pixels of a noisy scene (value 0, ivar 0; in place) and return the scene-table
    columns recording its conditions (``masked_fraction`` included)."""
    mask = mask_pixels(cfg, images.shape, scene, seed)
    images[mask] = 0.0
    ivar[mask] = 0.0
    nominal = np.array([_nominal_fwhm(json.dumps(psf, sort_keys=True), b, pixel_scale)
                        for b in bands])
    return {**cond.columns(bands, nominal), "masked_fraction": float(mask.mean())}


@lru_cache(maxsize=256)
def _nominal_fwhm(psf_json: str, band: str, pixel_scale: float) -> float:
    """FWHM (arcsec) of a band's PSF, measured on a 96^2 window at 1/8 of the pixel scale
    (coarser while the FWHM exceeds 40% of the window): ~1,000 times faster than drawing the
    whole of an Airy pattern, for the same value."""
    from rail.deepdisc.sim.psf import make_psf

    psf = make_psf(json.loads(psf_json), band)
    step = pixel_scale / 8.0
    for _ in range(4):
        fwhm = psf.drawImage(nx=96, ny=96, scale=step, method="no_pixel").calculateFWHM()
        if fwhm < 0.4 * 96 * step:
            break
        step *= 4.0
    return float(fwhm)
