"""Geometry of overlapping tiles on a mosaic: the grid, edge distances and tile ownership.

One rule serves both ends of a whole-field run. A point of the mosaic (a catalog object, a
detection) *belongs* to the tile, among those that contain it, where it lies farthest from
the tile's edge; among tiles where it is equally far (its nearest edge runs along the same
axis in each), the one where it also lies farthest from the edges across the other axis;
remaining ties go to the smaller ``y0``, then the smaller ``x0``. On a full grid this is the
tile whose centre is nearest along each axis separately, so the mosaic is partitioned into
rectangles, one per tile, each at least ``overlap / 2`` from its tile's inner edges.
:class:`~rail.deepdisc.store.mosaic.MosaicTiler` lists every catalog object only in the tile it
belongs to (so forced estimation gives one row per object), and whole-field detection keeps
a detection only in the tile its centre belongs to (see :mod:`rail.deepdisc.net.field_merge`).

Pixel coordinates are 0-based with pixel centres on integers; a tile with origin
``(x0, y0)`` and shape ``(height, width)`` holds the pixels ``x0 <= i < x0 + width``,
``y0 <= j < y0 + height``, and a point at ``(x, y)`` lies in pixel
``(floor(x + 0.5), floor(y + 0.5))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rail.deepdisc.errors import OptionError


def axis_origins(length: int, tile_size: int, overlap: int) -> np.ndarray:
    """Origins of the tiles along one axis of a mosaic.

    Tiles step by ``tile_size - overlap``; the last tile is moved back so that it ends at the
    mosaic's edge (its overlap with the one before is then larger), so every tile lies inside
    the mosaic. A mosaic shorter than a tile has one tile at 0 (padded beyond the edge).

    Parameters
    ----------
    length
        Mosaic size along the axis (pixels).
    tile_size, overlap
        Tile side and overlap of neighbouring tiles (pixels).
    """
    check_tiling(tile_size, overlap)
    if length <= 0:
        raise OptionError(f"mosaic length must be positive, got {length}")
    if length <= tile_size:
        return np.zeros(1, dtype=np.int64)
    step = tile_size - overlap
    origins = np.arange(0, length - tile_size + 1, step, dtype=np.int64)
    if origins[-1] + tile_size < length:
        origins = np.append(origins, length - tile_size)
    return origins


def check_tiling(tile_size: int, overlap: int) -> None:
    """Raise OptionError unless ``8 <= tile_size`` and ``0 <= overlap <= tile_size // 2``.

    The bound on the overlap keeps every point in at most three tiles per axis.
    """
    if int(tile_size) != tile_size or tile_size < 8:
        raise OptionError(f"tile_size must be an integer >= 8 pixels, got {tile_size}")
    if int(overlap) != overlap or not 0 <= overlap <= tile_size // 2:
        raise OptionError(f"overlap must be an integer in [0, tile_size // 2 = "
                          f"{tile_size // 2}] pixels, got {overlap}")


@dataclass(frozen=True)
class TileGrid:
    """The full grid of tiles of a mosaic (row-major: ``index = iy * nx + ix``).

    Attributes
    ----------
    height, width
        Mosaic shape (pixels).
    tile_size, overlap
        Tile side and overlap (pixels).
    """

    height: int
    width: int
    tile_size: int
    overlap: int

    @property
    def x_origins(self) -> np.ndarray:
        return axis_origins(self.width, self.tile_size, self.overlap)

    @property
    def y_origins(self) -> np.ndarray:
        return axis_origins(self.height, self.tile_size, self.overlap)

    @property
    def shape(self) -> tuple[int, int]:
        """Number of tiles along y and x."""
        return self.y_origins.size, self.x_origins.size

    def __len__(self) -> int:
        ny, nx = self.shape
        return ny * nx

    def origins(self) -> tuple[np.ndarray, np.ndarray]:
        """``x0``, ``y0`` of every tile, in index order."""
        yy, xx = np.meshgrid(self.y_origins, self.x_origins, indexing="ij")
        return xx.ravel(), yy.ravel()

    def owners(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Index of the tile each point belongs to (-1 outside the mosaic)."""
        x0, y0 = self.origins()
        inside = (x >= -0.5) & (x < self.width - 0.5) & (y >= -0.5) & (y < self.height - 0.5)
        owner = owner_tiles(x, y, x0, y0, self.tile_size, self.tile_size)
        return np.where(inside, owner, -1)


def edge_distance(x: np.ndarray, y: np.ndarray, height: int, width: int) -> np.ndarray:
    """Distance (pixels) from points in a scene to its nearest edge (negative outside)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    return np.minimum.reduce([x + 0.5, y + 0.5, width - 0.5 - x, height - 0.5 - y])


def owner_tiles(x: np.ndarray, y: np.ndarray, tile_x0: np.ndarray, tile_y0: np.ndarray,
                height: int, width: int, block: int = 65536) -> np.ndarray:
    """For each point, the tile (index into ``tile_x0``/``tile_y0``) it belongs to.

    The tiles are any set of equal-sized tiles on one mosaic (a full grid, or the tiles a
    scene store kept); a point belongs to the tile that contains it and where it lies
    farthest from the edge (see the module docstring for ties). Vectorised: the tiles
    containing a point form a contiguous run of the sorted origins along each axis.

    Parameters
    ----------
    x, y
        Points in mosaic pixels.
    tile_x0, tile_y0
        Origins of the tiles.
    height, width
        Tile shape.
    block
        Points handled at once (bounds the memory).

    Returns
    -------
    numpy.ndarray
        int64 tile index per point, -1 where no tile contains the point.
    """
    x = np.asarray(x, float).ravel()
    y = np.asarray(y, float).ravel()
    tile_x0 = np.asarray(tile_x0, np.int64).ravel()
    tile_y0 = np.asarray(tile_y0, np.int64).ravel()
    out = np.full(x.size, -1, dtype=np.int64)
    if x.size == 0 or tile_x0.size == 0:
        return out
    ux, ix = np.unique(tile_x0, return_inverse=True)
    uy, iy = np.unique(tile_y0, return_inverse=True)
    lookup = np.full((uy.size, ux.size), -1, dtype=np.int64)
    lookup[iy, ix] = np.arange(tile_x0.size)
    for s in range(0, x.size, block):
        out[s:s + block] = _owners_block(x[s:s + block], y[s:s + block], ux, uy, lookup,
                                         height, width)
    return out


def _axis_candidates(c: np.ndarray, origins: np.ndarray, size: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Candidate origin indices (n, m) along one axis and the edge distance (-inf if none)."""
    finite = np.isfinite(c)
    pixel = np.floor(np.where(finite, c, 0.0) + 0.5)
    lo = np.searchsorted(origins, pixel - size, side="right")
    hi = np.searchsorted(origins, pixel, side="right")  # exclusive
    m = max(int(np.max(hi - lo, initial=0)), 1)
    cand = lo[:, None] + np.arange(m)[None, :]
    valid = (cand < hi[:, None]) & finite[:, None]
    cand = np.minimum(cand, origins.size - 1)
    o = origins[cand]
    dist = np.minimum(c[:, None] - o + 0.5, o + size - 0.5 - c[:, None])
    return cand, np.where(valid, dist, -np.inf)


def _owners_block(x, y, ux, uy, lookup, height, width) -> np.ndarray:
    cx, dx = _axis_candidates(x, ux, width)
    cy, dy = _axis_candidates(y, uy, height)
    tile = lookup[cy[:, :, None], cx[:, None, :]].reshape(x.size, -1)
    near = np.minimum(dy[:, :, None], dx[:, None, :]).reshape(x.size, -1)
    far = np.maximum(dy[:, :, None], dx[:, None, :]).reshape(x.size, -1)
    near = np.where(tile >= 0, near, -np.inf)
    # farthest from the nearest edge; among equals, farthest from the edges across
    top = near == np.max(near, axis=1, keepdims=True)
    best = np.argmax(np.where(top & (tile >= 0), far, -np.inf), axis=1)
    rows = np.arange(x.size)
    return np.where(np.isfinite(near[rows, best]), tile[rows, best], -1)


def tile_wcs_header(wcs, x0: int, y0: int, height: int, width: int) -> str:
    """FITS header text of a tile's WCS: the mosaic's WCS shifted by ``(x0, y0)``.

    Parameters
    ----------
    wcs
        The mosaic's celestial ``astropy.wcs.WCS`` (SIP distortion is carried over).
    x0, y0
        Tile origin in mosaic pixels.
    height, width
        Tile shape (written as NAXIS2, NAXIS1).
    """
    tile = wcs.slice((slice(y0, y0 + height), slice(x0, x0 + width)))
    header = tile.to_header(relax=True)
    header["NAXIS1"], header["NAXIS2"] = int(width), int(height)
    return header.tostring()
