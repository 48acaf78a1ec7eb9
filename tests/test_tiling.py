"""Tile geometry: the grid, edge distances, ownership, tile WCS."""

from __future__ import annotations

import numpy as np
import pytest

from rail.deepdisc.store.tiling import (
    TileGrid,
    axis_origins,
    edge_distance,
    owner_tiles,
    tile_wcs_header,
)


@pytest.mark.parametrize(("length", "expected"), [
    (100, [0]), (64, [0]), (160, [0, 48, 96]), (208, [0, 48, 96, 144]), (176, [0, 48, 96, 112]),
])
def test_axis_origins_cover_the_mosaic_inside_it(length, expected):
    origins = axis_origins(length, 64 if length != 100 else 128, 16)
    if length == 100:
        assert origins.tolist() == [0]  # shorter than a tile: one padded tile
        return
    assert origins.tolist() == expected
    assert origins[-1] + 64 == length  # the last tile ends at the edge
    # every pixel is in a tile, and neighbours overlap by at least the overlap
    covered = np.zeros(length, bool)
    for o in origins:
        covered[o:o + 64] = True
    assert covered.all()
    assert np.all(origins[:-1] + 64 - origins[1:] >= 16)


@pytest.mark.parametrize(("size", "overlap", "message"), [
    (4, 0, "tile_size"), (64, 33, "overlap"), (64, -1, "overlap"), (64.5, 8, "tile_size"),
])
def test_bad_tiling_is_named(size, overlap, message):
    with pytest.raises(ValueError, match=message):
        axis_origins(200, size, overlap)


def _brute_owner(x, y, x0s, y0s, size):
    best, best_key = -1, None
    for k, (a, b) in enumerate(zip(x0s, y0s, strict=True)):
        px, py = np.floor(x + 0.5), np.floor(y + 0.5)
        if not (a <= px < a + size and b <= py < b + size):
            continue
        dx = min(x - a + 0.5, a + size - 0.5 - x)
        dy = min(y - b + 0.5, b + size - 0.5 - y)
        # farthest from the nearest edge, then from the edges across; then smaller y0, x0
        key = (min(dx, dy), max(dx, dy), -b, -a)
        if best_key is None or key > best_key:
            best, best_key = k, key
    return best


def test_owner_is_the_tile_farthest_from_the_edge():
    grid = TileGrid(300, 260, 64, 20)
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.5, 259.5, 2000)
    y = rng.uniform(-0.5, 299.5, 2000)
    x[:50] = np.round(x[:50])  # exact ties on pixel centres
    owner = grid.owners(x, y)
    x0s, y0s = grid.origins()
    expected = [_brute_owner(a, b, x0s, y0s, 64) for a, b in zip(x, y, strict=True)]
    np.testing.assert_array_equal(owner, expected)
    # the owner always contains the point, at least half the overlap from interior edges
    d = edge_distance(x - x0s[owner], y - y0s[owner], 64, 64)
    assert np.all(d > 0)
    interior = (x > 64) & (x < 260 - 64) & (y > 64) & (y < 300 - 64)
    assert np.all(d[interior] >= 20 / 2)
    # on a full grid: the tile whose centre is nearest along each axis separately
    cx, cy = x0s + 31.5, y0s + 31.5
    ix = np.argmin(np.abs(x[:, None] - np.unique(cx)[None, :]), axis=1)
    iy = np.argmin(np.abs(y[:, None] - np.unique(cy)[None, :]), axis=1)
    np.testing.assert_array_equal(owner, iy * grid.shape[1] + ix)


def test_owner_among_a_sparse_set_of_tiles_and_outside():
    x0s = np.array([0, 48, 96, 0])
    y0s = np.array([0, 0, 0, 48])
    x = np.array([50.0, 70.0, 10.0, 200.0, np.nan])
    y = np.array([10.0, 60.0, 60.0, 10.0, 5.0])
    owner = owner_tiles(x, y, x0s, y0s, 64, 64)
    expected = [_brute_owner(a, b, x0s, y0s, 64) if np.isfinite(a) else -1
                for a, b in zip(x, y, strict=True)]
    assert owner.tolist() == expected
    assert owner[3] == -1 and owner[4] == -1
    assert TileGrid(100, 100, 64, 16).owners(np.array([-3.0]), np.array([5.0])).tolist() == [-1]


def test_edge_distance_matches_the_simulator_convention():
    np.testing.assert_allclose(edge_distance([0.0, 63.0, 31.5], [10.0, 10.0, 31.5], 64, 64),
                               [0.5, 0.5, 32.0])


def test_tile_wcs_is_the_mosaic_wcs_shifted():
    from astropy.io import fits
    from astropy.wcs import WCS

    from rail.deepdisc.sim.fits_field import mosaic_wcs

    wcs = mosaic_wcs((400, 300), (53.1, -27.8), 0.03, rotation_deg=25, sip_coefficient=3e-6)
    header = tile_wcs_header(wcs, 120, 200, 64, 64)
    tile = WCS(fits.Header.fromstring(header))
    assert tile.sip is not None
    h = fits.Header.fromstring(header)
    assert (h["NAXIS1"], h["NAXIS2"]) == (64, 64)
    x = np.array([0.0, 10.3, 63.0])
    y = np.array([0.0, 40.7, 63.0])
    np.testing.assert_allclose(tile.all_pix2world(x, y, 0),
                               wcs.all_pix2world(x + 120, y + 200, 0), rtol=0, atol=1e-12)
