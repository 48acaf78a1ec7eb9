"""RAIL's interactive layer: installing this package must not break ``import rail.interactive``
for anyone, and every stage's interactive function must import and run on tiny data.

RAIL parses the docstring of each stage's entrypoint function to build the interactive
function, and its plugin scan silently drops a plugin whose stage modules fail to import;
so these tests look the functions up by name and call them.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import qp
import tables_io

from rail.deepdisc.store.scenes import SceneStore

#: interactive module -> functions this package must provide there
FUNCTIONS = {
    "rail.interactive.creation.engines.galaxy_scenes": ("galaxy_population_creator",
                                                        "scene_renderer"),
    "rail.interactive.creation.engines.survey_field": ("mosaic_survey_measurer",
                                                       "survey_field_simulator"),
    "rail.interactive.estimation.algos.deepdisc": ("deep_disc_informer",
                                                   "deep_disc_estimator"),
    "rail.interactive.estimation.algos.deepdisc_cv": ("deep_disc_fine_tuner",
                                                      "deep_disc_cross_validator"),
    "rail.interactive.estimation.algos.eazy": ("eazy_informer", "eazy_estimator",
                                               "eazy_cross_validator"),
    "rail.interactive.estimation.algos.hybrid": ("hybrid_informer", "hybrid_estimator",
                                                 "hybrid_cross_validator"),
    "rail.interactive.estimation.algos.photometry_network": ("photometry_net_informer",
                                                             "photometry_net_estimator"),
    "rail.interactive.tools.scene_tools": ("mosaic_tiler", "scene_photometry",
                                           "survey_scene_photometry"),
    "rail.interactive.tools.bpz_tools": ("bpz_data_preparer",),
    "rail.interactive.tools.report_tools": ("photo_z_comparison_report",
                                            "field_validation_report"),
    "rail.interactive.tools.catalog_tools": ("photo_z_catalog", "headline_catalog"),
}


@pytest.fixture(scope="module")
def interactive():
    import functools

    import rail.interactive  # must not raise

    # the interactive modules are virtual: attributes of their parents
    return {name: functools.reduce(getattr, name.split(".")[2:], rail.interactive)
            for name in FUNCTIONS}


def test_import_rail_interactive_in_a_fresh_interpreter():
    code = "import rail.interactive; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_every_stage_has_its_interactive_function(interactive):
    for module, names in FUNCTIONS.items():
        for name in names:
            func = getattr(interactive[module], name)
            assert callable(func) and "Parameters" in (func.__doc__ or ""), (module, name)


def test_creation_functions_run(interactive, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engines = interactive["rail.interactive.creation.engines.galaxy_scenes"]
    catalog = engines.galaxy_population_creator(n_samples=60, seed=3, survey="lsst")["output"]
    assert len(catalog["redshift"]) == 60
    scenes = engines.scene_renderer(input_data=catalog, n_scenes=2, scene_size=32, survey="lsst",
                                    n_workers=1, seed=3)["output"]
    assert isinstance(scenes, SceneStore) and scenes.n_scenes == 2
    # nothing dropped where the user works: the store returned lives in a session folder
    assert list(tmp_path.iterdir()) == []


def test_survey_functions_run(interactive, fits_field, tmp_path, monkeypatch):
    from rail.deepdisc.sim.fits_field import write_psf_images

    monkeypatch.chdir(tmp_path)
    truth, field = fits_field
    psfs = write_psf_images(truth, tmp_path)
    engines = interactive["rail.interactive.creation.engines.survey_field"]
    survey = engines.mosaic_survey_measurer(images=field.images, errors=field.errors,
                                            psfs=psfs, zmax=4.0)["output"]
    assert survey.bands == tuple(field.images) and survey.zmax == 4.0
    scenes = engines.survey_field_simulator(survey=survey, n_scenes=2,
                                            scene_size=32, n_workers=1, seed=3)["output"]
    assert isinstance(scenes, SceneStore) and scenes.n_scenes == 2
    assert list(scenes.bands) == list(field.images)


def test_deepdisc_functions_run(interactive, tiny_train_store, tiny_model, tmp_path,
                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    algos = interactive["rail.interactive.estimation.algos.deepdisc"]
    model = algos.deep_disc_informer(training_data=tiny_train_store, epochs=1,
                                     backbone="resnet18_fpn", num_threads=1)["model"]
    assert model["format"] == "deepdisc-model"
    ens = algos.deep_disc_estimator(input_data=tiny_train_store, model=tiny_model,
                                    num_threads=1)["output"]
    with SceneStore(tiny_train_store) as store:
        assert ens.npdf == store.n_objects
    assert np.all(np.isfinite(ens.ancil["zmode"]))
    assert list(tmp_path.iterdir()) == []  # nothing dropped in the current directory


def test_tools_and_template_fitters_run(interactive, jades_store, fits_field, tmp_path,
                                        monkeypatch, fsps_param):
    monkeypatch.chdir(tmp_path)
    tools = interactive["rail.interactive.tools.scene_tools"]
    _, field = fits_field
    tiles = tools.mosaic_tiler(input_data=field.catalog, images=field.images,
                               errors=field.errors, id_col="id", tile_size=128,
                               overlap=16)["output"]
    assert tiles.n_scenes >= 4
    phot = tools.scene_photometry(input_data=jades_store)["output"]
    with SceneStore(jades_store) as store:
        assert len(phot["object_id"]) == store.n_objects
        bands = list(store.bands)
    flux = [f"flux_{b}" for b in bands]
    err = [f"flux_err_{b}" for b in bands]
    common = {"bands": flux, "err_bands": err, "input_type": "flux", "hdf5_groupname": "",
              "prior_band": "flux_jwst_f200w"}
    eazy = interactive["rail.interactive.estimation.algos.eazy"]
    model = eazy.eazy_informer(training_data=phot, filter_list=bands, zmax=8.0,
                               **common)["model"]
    ens = eazy.eazy_estimator(input_data=phot, model=model, **common)["output"]
    assert ens.npdf == len(phot["object_id"])

    bpz = interactive["rail.interactive.tools.bpz_tools"]
    mags = [f"mag_{b}" for b in bands]
    out = bpz.bpz_data_preparer(input_data=phot, data_path=str(tmp_path / "bpz"), filters=bands,
                                bands=mags, err_bands=[f"mag_err_{b}" for b in bands],
                                ref_band="mag_jwst_f200w", templates="cww")["output"]
    assert len(out["object_id"]) == len(phot["object_id"])
    assert (tmp_path / "bpz" / "AB").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["bpz"]  # only what was asked for


def test_report_function_runs(interactive, jades_store, tiny_model, tmp_path, monkeypatch):
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    monkeypatch.chdir(tmp_path)
    stage = DeepDiscEstimator.make_stage(name="est_for_report", model=tiny_model,
                                         output=str(tmp_path / "pz.hdf5"),
                                         detections=str(tmp_path / "det.hdf5"), num_threads=1)
    stage.estimate(jades_store)
    from rail.deepdisc.spectra.bands import NIRCAM_BANDS
    from rail.estimation.algos.eazy import EazyInformer

    fluxes = {f"{c}_{b}": np.full(5, v) for b in NIRCAM_BANDS
              for c, v in (("flux", 100.0), ("flux_err", 10.0))}
    EazyInformer.make_stage(
        name="eazy_for_report", model=str(tmp_path / "eazy.hdf5"), templates_file="cww",
        template_error_file="", zmax=6.0, input_type="flux", training_prior=False,
        zeropoints=False,
        bands=[f"flux_{b}" for b in NIRCAM_BANDS], hdf5_groupname="",
        err_bands=[f"flux_err_{b}" for b in NIRCAM_BANDS],
        filter_list=list(NIRCAM_BANDS)).inform(fluxes)
    report = interactive["rail.interactive.tools.report_tools"]
    text = report.photo_z_comparison_report(
        truth=jades_store, deepdisc=str(tmp_path / "pz.hdf5"), bpz=str(tmp_path / "pz.hdf5"),
        eazy=str(tmp_path / "pz.hdf5"), photometric=str(tmp_path / "pz.hdf5"),
        hybrid=str(tmp_path / "pz.hdf5"), detections=str(tmp_path / "det.hdf5"),
        eazy_model=str(tmp_path / "eazy.hdf5"),
        method_names=["DeepDISC", "again", "and again", "once more", "last"])["report"]
    assert "σ_IQR" in text
    # the template set is the one EAZY's model was built with, read from the model
    assert "and again (cww)" in text and "## Template sets\n\n- and again: " in text
    catalog = interactive["rail.interactive.tools.catalog_tools"]
    table = catalog.photo_z_catalog(input_data=str(tmp_path / "pz.hdf5"), scenes=jades_store,
                                    method="DeepDISC")["output"]
    with SceneStore(jades_store) as store:
        assert len(table) == store.n_objects
    assert tables_io.read(str(tmp_path / "det.hdf5"))["object_id"].size > 0
    assert qp.read(str(tmp_path / "pz.hdf5")).npdf > 0
