"""Shared fixtures: small simulated fields made by the project's own simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from rail.deepdisc.sim.field import FieldSpec, simulate_field


@pytest.fixture(scope="session")
def jades_store(tmp_path_factory) -> str:
    """Six 96x96 JADES-like scenes (seed 11)."""
    path = tmp_path_factory.mktemp("stores") / "jades.hdf5"
    spec = FieldSpec(survey="jades", n_scenes=6, scene_size=96, seed=11)
    return simulate_field(spec, path, n_workers=1, progress=False)


@pytest.fixture(scope="session")
def lsst_store(tmp_path_factory) -> str:
    """Four 64x64 LSST-like scenes (seed 12)."""
    path = tmp_path_factory.mktemp("stores") / "lsst.hdf5"
    spec = FieldSpec(survey="lsst", n_scenes=4, scene_size=64, seed=12)
    return simulate_field(spec, path, n_workers=1, progress=False)


# --- template fitting (issue 4) ---------------------------------------------------------
EAZY_TEMPLATES = Path(__file__).resolve().parents[2] / "shared" / "data" / "eazy-photoz" / \
    "templates"
FSPS_PARAM = EAZY_TEMPLATES / "fsps_full" / "tweak_fsps_QSF_12_v3.param"


@pytest.fixture(scope="session")
def jades_field(tmp_path_factory) -> str:
    """Twenty-four 128x128 JADES-like scenes (seed 21): ~100 objects with F200W S/N > 50."""
    path = tmp_path_factory.mktemp("stores") / "jades_field.hdf5"
    spec = FieldSpec(survey="jades", n_scenes=24, scene_size=128, seed=21)
    return simulate_field(spec, path, n_workers=1, progress=False)


@pytest.fixture(scope="session")
def jades_kron(jades_field) -> dict:
    """Forced Kron photometry of ``jades_field`` (default settings)."""
    from rail.deepdisc.fit.photometry import PhotometryConfig, measure_store

    return measure_store(jades_field, PhotometryConfig())[0]


@pytest.fixture(scope="session")
def fsps_param() -> str:
    """EAZY's fsps QSF 12 v3 templates from the shared data folder (read-only)."""
    if not FSPS_PARAM.is_file():
        raise FileNotFoundError(f"EAZY templates expected at {FSPS_PARAM} (shared/data)")
    return str(FSPS_PARAM)


# --- DeepDISC training (issue 3) ---------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_train_store(tmp_path_factory) -> str:
    """Eight 64x64 JADES-like scenes for quick training tests (seed 21)."""
    path = tmp_path_factory.mktemp("stores") / "tiny_train.hdf5"
    spec = FieldSpec(survey="jades", n_scenes=8, scene_size=64, seed=21, objects_per_scene=6)
    return simulate_field(spec, path, n_workers=1, progress=False)


@pytest.fixture(scope="session")
def tiny_model(tiny_train_store, tmp_path_factory) -> str:
    """A resnet18_fpn model trained for two epochs on ``tiny_train_store``."""
    from rail.deepdisc.net.config import TrainConfig
    from rail.deepdisc.net.model_file import save_model
    from rail.deepdisc.net.train import train

    cfg = TrainConfig.from_mapping(backbone="resnet18_fpn", epochs=2, batch_size=4, seed=3,
                                   num_threads=2, val_fraction=0.25)
    result = train(tiny_train_store, cfg, progress=False)
    return save_model(tmp_path_factory.mktemp("models") / "tiny.pt", result.model, result.meta,
                      result.extras)


# --- real-data path (issue 6) ---------------------------------------------------------
@pytest.fixture(scope="session")
def fits_field(tmp_path_factory):
    """A simulated 256x256 JADES-like field (seed 31) written as survey data: per-band FITS
    mosaics (MJy/sr, SCI + ERR, rotated TAN-SIP WCS, 8-pixel NaN border), a segmentation
    map and a FITS catalog; returns (truth scene store, FitsField)."""
    from rail.deepdisc.sim.fits_field import write_fits_field

    folder = tmp_path_factory.mktemp("fits_field")
    spec = FieldSpec(survey="jades", n_scenes=1, scene_size=256, seed=31, objects_per_scene=45)
    truth = simulate_field(spec, folder / "truth.hdf5", n_workers=1, progress=False)
    return truth, write_fits_field(truth, folder / "mosaics")


@pytest.fixture(scope="session")
def tiled_field(fits_field, tmp_path_factory) -> str:
    """``fits_field`` tiled into 96x96 tiles overlapping by 24 pixels (4 x 4 tiles)."""
    from rail.deepdisc.store.catalogs import CatalogColumns
    from rail.deepdisc.store.mosaic import TilerConfig, tile_mosaic

    _, field = fits_field
    cfg = TilerConfig(images=field.images, errors=field.errors, segmap=field.segmap,
                      columns=CatalogColumns(id_col="id"), tile_size=96, overlap=24)
    path = tmp_path_factory.mktemp("tiled") / "tiles.hdf5"
    return tile_mosaic(cfg, field.catalog, path).output
