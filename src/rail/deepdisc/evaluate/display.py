"""Pictures of scenes: RGB composites with truth boxes and redshift labels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rail.deepdisc.errors import OptionError
from rail.deepdisc.store.atomic import atomic_output
from rail.deepdisc.store.scenes import SceneStore


def rgb_band_groups(bands: Sequence[str]) -> list[list[int]]:
    """Split the bands, blue to red, into three contiguous groups (B, G, R) of channels."""
    n = len(bands)
    if n < 3:
        return [[0], [min(1, n - 1)], [n - 1]]
    order = list(range(n))
    return [list(g) for g in np.array_split(order, 3)]


def rgb_composite(image: np.ndarray, bands: Sequence[str], noise: np.ndarray | None = None,
                  stretch: float | None = None, q: float = 8.0) -> np.ndarray:
    """Lupton et al. (2004) asinh RGB of a (C, H, W) scene (astropy's make_lupton_rgb).

    Channels are averaged within blue/green/red groups of bands after scaling each band
    by its noise, so colours show S/N-weighted colours rather than raw flux ratios.
    """
    from astropy.visualization import make_lupton_rgb

    img = np.asarray(image, dtype=float)
    if noise is None:
        noise = 1.4826 * np.median(np.abs(img - np.median(img, axis=(1, 2), keepdims=True)),
                                   axis=(1, 2))
    noise = np.where(np.asarray(noise) > 0, noise, 1.0)
    scaled = img / noise[:, None, None]
    b, g, r = (scaled[idx].mean(axis=0) for idx in rgb_band_groups(bands))
    if stretch is None:
        # noise-scaled channels: a few sigma sits at the foot of the asinh curve
        stretch = 3.0
    return make_lupton_rgb(r, g, b, minimum=0.5, stretch=stretch, Q=q)


def subplots(*args: Any, **kwargs: Any):
    """``(figure, axes)`` like ``pyplot.subplots``, without pyplot: the figure is drawn with
    matplotlib's Agg renderer and the caller's backend (e.g. a notebook's) is left alone."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(*args, **kwargs)


def show_scene(path: str | os.PathLike, scene: int, output: str | os.PathLike,
               labels: bool = True, dpi: int = 150) -> str:
    """Draw scene ``scene`` of a store as an RGB PNG with truth boxes and z labels.

    Raises
    ------
    OptionError
        If the store has no such scene.
    """
    from matplotlib.patches import Rectangle

    with SceneStore(path) as store:
        if not 0 <= scene < store.n_scenes:
            raise OptionError(f"{path} has scenes 0..{store.n_scenes - 1}, not {scene}")
        chunk = store.read_chunk(scene, scene + 1)
        info = store.info
    image = chunk.images[0]
    noise = None
    if chunk.ivar is not None:
        iv = chunk.ivar[0].reshape(image.shape[0], -1)
        noise = np.array([1.0 / np.sqrt(np.median(v[v > 0])) if np.any(v > 0) else 1.0
                          for v in iv])
    rgb = rgb_composite(image, info.bands, noise)
    obj = chunk.scene_objects(0)
    h, w = image.shape[1:]
    fig, ax = subplots(figsize=(6, 6 * h / w))
    ax.imshow(rgb, origin="lower", interpolation="nearest",
              extent=(-0.5, w - 0.5, -0.5, h - 0.5))
    for i in range(len(obj["object_id"])):
        x0, y0 = obj["bbox_x0"][i] - 0.5, obj["bbox_y0"][i] - 0.5
        bw, bh = obj["bbox_x1"][i] - obj["bbox_x0"][i], obj["bbox_y1"][i] - obj["bbox_y0"][i]
        ax.add_patch(Rectangle((x0, y0), bw, bh, fill=False, lw=0.8, ec="yellow"))
        z = obj["redshift"][i]
        if labels and np.isfinite(z):
            ax.text(x0 + 0.5, y0 + bh + 0.5, f"z={z:.2f}", color="yellow", fontsize=6,
                    va="bottom", ha="left", clip_on=True)
    groups = rgb_band_groups(info.bands)
    names = ["+".join(info.bands[i].split("_")[-1].upper() for i in g) for g in groups]
    ax.set_title(f"{os.path.basename(os.fspath(path))}, scene {scene} ({info.survey})\n"
                 f"R: {names[2]}   G: {names[1]}   B: {names[0]}", fontsize=8)
    ax.set_xlabel(f"x [pixel, {info.pixel_scale_arcsec:g}\"]")
    ax.set_ylabel("y [pixel]")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(-0.5, h - 0.5)
    fig.tight_layout()
    with atomic_output(output, "picture") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return os.fspath(output)
