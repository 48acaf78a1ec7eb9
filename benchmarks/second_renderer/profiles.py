"""Galaxy light profiles: elliptical Gaussian mixtures plus clumps, not Sersic profiles.

The smooth part of a galaxy is a mixture of four concentric elliptical Gaussians with
widths ``s (0.2, 0.5, 1, 2)`` and weights set by a concentration ``c`` in [0, 1]:
``w(c) = (0.02 + 0.28 c, 0.25 + 0.10 c, 0.65 - 0.42 c, 0.08 + 0.04 c)`` (c = 0: a
near-Gaussian disc with faint wings; c = 1: a peaked core with extended wings). The
scale ``s`` gives the requested half-light radius along the major axis. Clumpy galaxies
add 2-5 round Gaussian clumps (sigma 0.012"-0.035") inside 1.3 half-light radii, with
their own (young, bluer) SED, so colours vary across the galaxy.

Stamps are evaluated directly on a sub-pixel grid, brought to each band's grid (``S`` x
``S`` samples per pixel, ``S`` from the band's PSF width), convolved with the band's PSF
sampled on that grid (``scipy.signal.fftconvolve``) and summed into pixels (the pixel
response); flux is conserved exactly (the sampled profile and PSF both sum to 1), apart
from the light beyond the stamp (3.5 sigma of the widest Gaussian).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: widths of the mixture's Gaussians in units of the scale s
SIGMA_RATIOS = np.array([0.2, 0.5, 1.0, 2.0])


def mixture_weights(c: np.ndarray | float) -> np.ndarray:
    """Weights of the four Gaussians for concentration ``c`` (last axis)."""
    c = np.asarray(c, float)[..., None]
    return np.concatenate([0.02 + 0.28 * c, 0.25 + 0.10 * c, 0.65 - 0.42 * c,
                           0.08 + 0.04 * c], axis=-1)


@lru_cache(maxsize=1)
def _half_light_table() -> tuple[np.ndarray, np.ndarray]:
    """Half-light radius (units of s) on a grid of concentrations."""
    cs = np.linspace(0.0, 1.0, 101)
    r = np.linspace(0.01, 5.0, 5000)
    w = mixture_weights(cs)  # (101, 4)
    enclosed = w @ (1.0 - np.exp(-0.5 * (r[None, :] / SIGMA_RATIOS[:, None]) ** 2))
    half = np.array([np.interp(0.5, e, r) for e in enclosed])
    return cs, half


def mixture_scale(r_e: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The scale ``s`` giving half-light radius ``r_e`` at concentration ``c``."""
    cs, half = _half_light_table()
    return np.asarray(r_e, float) / np.interp(c, cs, half)


@dataclass
class Clumps:
    """Clumps of one galaxy: offsets from its centre (arcsec), widths, flux shares."""

    dx: np.ndarray
    dy: np.ndarray
    sigma: np.ndarray
    share: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, r_e: float, q: float, pa: float
             ) -> Clumps:
        a = r_e * rng.uniform(0.2, 1.3, n)
        phi = rng.uniform(0, 2 * np.pi, n)
        u, v = a * np.cos(phi), a * q * np.sin(phi)
        c, s = np.cos(pa), np.sin(pa)
        return cls(dx=c * u - s * v, dy=s * u + c * v, sigma=rng.uniform(0.012, 0.035, n),
                   share=rng.dirichlet(np.ones(n)))

    @property
    def extent(self) -> float:
        """Largest reach (arcsec) of a clump's light (4 sigma)."""
        return float(np.max(np.hypot(self.dx, self.dy) + 4 * self.sigma)) if self.dx.size \
            else 0.0


@dataclass
class Galaxy:
    """What a stamp needs of one galaxy (position in mosaic pixels, sizes in arcsec)."""

    x: float
    y: float
    r_e: float
    concentration: float
    axis_ratio: float
    position_angle: float
    clumps: Clumps | None = None

    @property
    def sigmas(self) -> np.ndarray:
        return mixture_scale(self.r_e, self.concentration) * SIGMA_RATIOS

    def extent(self, flux_over_noise: float = np.inf, scale: float = 1.0) -> float:
        """Radius (arcsec) of the stamp: the clumps' 4 sigma, and 2.5-3.5 sigma of the
        widest Gaussian (weight <= 0.12, so < 0.5% of the light lies beyond 2.5 sigma),
        out to where that Gaussian's light per pixel (of side ``scale``) falls below 5% of
        the pixel noise, for a total flux of ``flux_over_noise`` pixel noises."""
        sig = float(self.sigmas[-1])
        w = float(mixture_weights(self.concentration)[-1])
        peak = w * flux_over_noise * scale**2 / (2 * np.pi * self.axis_ratio * sig * sig)
        k = np.sqrt(2.0 * np.log(peak / 0.05)) if peak > 0.05 * np.e ** 3.125 else 2.5
        reach = float(np.clip(k, 2.5, 3.5)) * sig
        return max(reach, self.clumps.extent if self.clumps else 0.0)


def smooth_image(g: Galaxy, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The mixture at sub-pixel offsets ``u`` (x, columns) and ``v`` (y, rows) in arcsec
    from the galaxy centre, normalised to unit sum."""
    c, s = np.cos(g.position_angle), np.sin(g.position_angle)
    xp = c * u[None, :] + s * v[:, None]
    yp = -s * u[None, :] + c * v[:, None]
    q = g.axis_ratio
    img = np.zeros((v.size, u.size))
    for w, sig in zip(mixture_weights(g.concentration), g.sigmas, strict=True):
        img += w / (q * sig * sig) * np.exp(-0.5 * (xp * xp + (yp / q) ** 2) / (sig * sig))
    return img / img.sum()


def clump_image(cl: Clumps, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The clumps at sub-pixel offsets (arcsec), unit sum."""
    img = np.zeros((v.size, u.size))
    for dx, dy, sig, share in zip(cl.dx, cl.dy, cl.sigma, cl.share, strict=True):
        gx = np.exp(-0.5 * ((u - dx) / sig) ** 2)
        gy = np.exp(-0.5 * ((v - dy) / sig) ** 2)
        tot = gx.sum() * gy.sum()
        if tot > 0:
            img += share * np.outer(gy, gx) / tot
    return img / img.sum()


@dataclass(frozen=True)
class BandKernel:
    """A band's PSF sampled ``subsample`` x finer than the pixels, with a half-width of
    ``radius_px`` whole pixels (``radius_px * subsample`` samples each side)."""

    kernel: np.ndarray
    subsample: int
    radius_px: int


def render_stamp(g: Galaxy, smooth_flux: np.ndarray, clump_flux: np.ndarray,
                 kernels: list[BandKernel], scale: float, noise: np.ndarray | None = None
                 ) -> tuple[np.ndarray, int, int]:
    """PSF-convolved, pixel-integrated stamps of one galaxy in every band.

    The galaxy is evaluated on a grid of 4 x 4 samples per pixel (2 x 2 for stamps wider
    than 31 pixels), taken as sub-pixel integrals, summed (or split) to each band's grid,
    convolved there with the band's point-sampled PSF and summed into pixels: the pixel
    response enters once.

    Parameters
    ----------
    g
        The galaxy.
    smooth_flux, clump_flux
        Per band, the flux of the smooth part and of the clumps.
    kernels
        Per band, the PSF on its sub-pixel grid.
    scale
        Pixel side (arcsec).
    noise
        Per band, the pixel noise (flux units): the stamp's extent stops where the
        widest band's wings fall well below it (:meth:`Galaxy.extent`).

    Returns
    -------
    stack, x0, y0
        (C, n, n) stamps on one pixel grid whose pixel [0, 0] is mosaic pixel (x0, y0).
    """
    from scipy.signal import fftconvolve

    ix, iy = int(np.floor(g.x + 0.5)), int(np.floor(g.y + 0.5))
    if noise is None:
        reach = g.extent()
    else:
        total = np.asarray(smooth_flux) + np.asarray(clump_flux)
        reach = g.extent(float(np.max(total / noise)), scale)
    h = int(np.clip(np.ceil(reach / scale) + 1, 2, 200))
    r_max = max(k.radius_px for k in kernels)
    side = 2 * (h + r_max) + 1
    stack = np.zeros((len(kernels), side, side), np.float32)
    ev = 4 if h <= 15 else 2
    t = (np.arange((2 * h + 1) * ev) + 0.5) / ev - 0.5 - h
    u, v = (t - (g.x - ix)) * scale, (t - (g.y - iy)) * scale
    base = [smooth_image(g, u, v).astype(np.float32)]
    if g.clumps is not None:
        base.append(clump_image(g.clumps, u, v).astype(np.float32))
    grids: dict[int, list[np.ndarray]] = {}
    for b, k in enumerate(kernels):
        sub = k.subsample
        if sub not in grids:
            grids[sub] = [_resample(a, ev, sub) for a in base]
        parts = grids[sub]
        img = smooth_flux[b] * parts[0]
        if len(parts) > 1 and clump_flux[b] != 0:
            img = img + np.float32(clump_flux[b]) * parts[1]
        conv = fftconvolve(img, k.kernel)
        n = 2 * (h + k.radius_px) + 1
        pix = conv.reshape(n, sub, n, sub).sum(axis=(1, 3))
        off = r_max - k.radius_px
        stack[b, off:off + n, off:off + n] = pix
    return stack, ix - h - r_max, iy - h - r_max


def _resample(a: np.ndarray, have: int, want: int) -> np.ndarray:
    """Sub-pixel integrals on a grid of ``have`` samples per pixel, summed (or split
    evenly) to ``want`` per pixel."""
    if want == have:
        return a
    if want < have:
        f = have // want
        n = a.shape[0] // f
        return a.reshape(n, f, n, f).sum(axis=(1, 3))
    f = want // have
    return np.kron(a, np.full((f, f), 1.0 / (f * f), np.float32))
