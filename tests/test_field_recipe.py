"""The field recipe: mosaics + catalog + spectroscopic catalog -> pre-train, fine-tune,
k-fold cross-validation -> photo-z catalog and validation report (one ceci pipeline).

The end-to-end run is tiny (a 512 x 512 field, one-epoch trainings): the numbers mean
nothing, the contracts are checked: one catalog row per catalog object on the mosaic's
footprint, percentiles in order, the bit mask agrees with the flags, the catalog reads back
with astropy (units) and pandas, and no out-of-fold photo-z comes from a model whose
training scenes held that object's label. Bad inputs fail at once, naming the file.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import qp
from astropy.table import Table

from rail.deepdisc.cli import main
from rail.deepdisc.errors import InputError, OutputPathError
from rail.deepdisc.evaluate.catalog import QUALITY_BITS
from rail.deepdisc.field_recipe import load_field_inputs
from rail.deepdisc.sim.example_field import ExampleFieldOptions, write_example_field
from rail.deepdisc.spectra.sed_files import rail_sed_dir
from rail.deepdisc.store.catalogs import SpectraColumns, attach_spectra, load_catalog

TINY = ["--pretrain-scenes", "8", "--pretrain-epochs", "1", "--finetune-epochs", "1",
        "--folds", "3", "--num-threads", "1", "--photnet-galaxies", "3000",
        "--photnet-epochs", "2", "--photnet-hidden", "32", "--photnet-layers", "1",
        "--photnet-finetune-epochs", "2"]
#: EAZY's own templates for the recipe's template fitting (read-only, from shared/data)
EAZY_ROOT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared", "data",
                         "eazy-photoz")


@pytest.fixture(scope="module")
def example_field(tmp_path_factory):
    """A 512 x 512 JADES-like field with a generous spectroscopic sample."""
    folder = tmp_path_factory.mktemp("example_field")
    return write_example_field(folder, ExampleFieldOptions(mosaic_size=512, spec_mag_50=28.5,
                                                           seed=3), progress=False)


@pytest.fixture(scope="module")
def field_run(example_field, tmp_path_factory):
    out = tmp_path_factory.mktemp("field_run") / "run"
    assert main(["field", "--inputs", example_field.inputs, *TINY, "--output-dir", str(out),
                 "--eazy-photoz-dir", EAZY_ROOT, "-q"]) == 0
    return out / "data"


@pytest.mark.slow
def test_every_method_has_a_row_aligned_catalog_and_the_best_is_the_headline(field_run):
    import json

    tables = {key: Table.read(field_run / f"output_catalog_{key}.fits")
              for key in ("deepdisc", "eazy", "photometry_net", "hybrid")}
    ids = np.asarray(tables["deepdisc"]["id"])
    for key, table in tables.items():
        np.testing.assert_array_equal(np.asarray(table["id"]), ids)  # same objects, order
        assert np.all(np.isfinite(table["z_mode"])), key
        assert np.all(np.isfinite(table["ra"])), key
    assert {t.meta["METHOD"] for t in tables.values()} == {
        "DeepDISC", "EAZY", "photometry network", "hybrid"}
    metrics = json.loads((field_run / "metrics_validate.json").read_text())
    headline = Table.read(field_run / "output_photoz_catalog.fits")
    assert headline.meta["METHOD"] == metrics["headline"] == metrics["ranking"][0]
    best = next(t for t in tables.values() if t.meta["METHOD"] == metrics["headline"])
    np.testing.assert_array_equal(np.asarray(headline["z_mode"]), np.asarray(best["z_mode"]))
    assert "RANKING" in headline.meta
    oof = metrics["oof"]["all"]
    assert set(oof) == set(metrics["ranking"])
    ranked = [oof[m]["cde_loss"] for m in metrics["ranking"]]
    assert ranked == sorted(ranked)
    # the simulation's truth: every method also judged on the objects without spectra
    assert set(metrics["photometric"]["all"]) == set(oof)


@pytest.mark.slow
def test_every_method_holds_out_the_networks_folds(field_run):
    """Each out-of-fold method uses the network's folds (the unit tests of the template
    fitter, the photometry network and the fusion check that a fold's zero points, prior,
    fine-tuning and exponents never see its labels: tests/test_eazy_training.py,
    tests/test_photometry_network.py, tests/test_hybrid.py)."""
    import tables_io

    labels = tables_io.read(str(field_run / "training_labels_crossval.hdf5"))
    network = {f: set(np.asarray(labels["object_id"])[np.asarray(labels["fold"]) == f])
               for f in range(3)}
    for name in ("output_crossval_eazy", "oof_inform_photometry_net",
                 "output_crossval_hybrid"):
        ens = qp.read(str(field_run / f"{name}.hdf5"))
        ids = np.asarray(ens.ancil["object_id"]).ravel()
        fold = np.asarray(ens.ancil["fold"]).ravel()
        for f in range(3):
            # the same folds as the network's: what fold f's network trained on, fold f's
            # template zero points, prior, photometry network and fusion never saw either
            assert not set(ids[fold == f]) & network[f], name


def _footprint_ids(example_field) -> np.ndarray:
    """Ids of the catalog objects on the mosaic's data (the truth store's objects minus
    those on the blank border)."""
    from rail.deepdisc.sim.fits_field import blank_border
    from rail.deepdisc.store.scenes import read_objects

    obj = read_objects(example_field.truth, ["object_id", "x", "y"])
    px = np.floor(obj["x"] + 0.5).astype(int)
    py = np.floor(obj["y"] + 0.5).astype(int)
    blank = blank_border(np.arange(512), 512, 512, 8)
    inside = (px >= 0) & (px < 512) & (py >= 0) & (py < 512)
    on_data = inside.copy()
    on_data[inside] = ~blank[py[inside], px[inside]]
    return np.sort(obj["object_id"][on_data])


@pytest.mark.slow
def test_catalog_has_one_row_per_object_on_the_footprint(field_run, example_field):
    import pandas as pd

    table = Table.read(field_run / "output_photoz_catalog.fits")
    np.testing.assert_array_equal(np.sort(np.asarray(table["id"])),
                                  _footprint_ids(example_field))
    assert len(np.unique(table["id"])) == len(table)
    assert str(table["ra"].unit) == "deg" and str(table["dec"].unit) == "deg"
    order = ["z_q2p5", "z_q16", "z_median", "z_q84", "z_97p5"]
    for lo, hi in itertools.pairwise(order):
        assert np.all(np.asarray(table[lo]) <= np.asarray(table[hi]) + 1e-9), (lo, hi)
    for bit, name in enumerate(QUALITY_BITS):
        if name in table.colnames:
            np.testing.assert_array_equal((np.asarray(table["quality"]) >> bit) & 1,
                                          np.asarray(table[name]))
    assert np.all(np.isfinite(table["z_mode"]))
    frame = table[[c for c in table.colnames if table[c].ndim == 1]].to_pandas()
    assert len(frame) == len(table)
    parquet = field_run.parent / "catalog.parquet"
    assert main(["catalog", "--pdfs", str(field_run / "output_estimate_field.hdf5"),
                 "--output", str(parquet), "-q"]) == 0
    assert len(pd.read_parquet(parquet)) == len(table)


@pytest.mark.slow
def test_out_of_fold_photoz_never_from_a_model_trained_on_that_label(field_run,
                                                                        example_field):
    import tables_io

    oof = qp.read(str(field_run / "output_crossval.hdf5"))
    labels = tables_io.read(str(field_run / "training_labels_crossval.hdf5"))
    ids = np.asarray(oof.ancil["object_id"])
    fold = np.asarray(oof.ancil["fold"])
    assert np.all(np.isfinite(oof.ancil["redshift"]))
    assert set(np.unique(fold)) == {0, 1, 2}
    for f in range(3):
        trained_on = np.asarray(labels["object_id"])[np.asarray(labels["fold"]) == f]
        assert trained_on.size > 0
        assert not np.isin(ids[fold == f], trained_on).any()
    # every spec-z object of the training tiles got exactly one out-of-fold photo-z
    spec = attach_spectra(load_catalog(example_field.catalog, _columns()),
                          SpectraColumns(spec_catalog=example_field.spectra))
    matched = spec.ids[np.isfinite(spec.redshift)]
    assert np.unique(ids).size == ids.size
    assert np.isin(ids, matched).all()


@pytest.mark.slow
def test_validation_report_and_pictures(field_run):
    report = (field_run / "report_validate.md").read_text()
    assert "Out of fold" in report and "By quality flag" in report
    assert "Headline catalog" in report and "objects without spectra" in report
    for name in ("DeepDISC", "EAZY", "photometry network", "hybrid"):
        assert f"| {name} |" in report
    assert "fsps QSF 12 v3" in report  # which template set ran
    import json

    metrics = json.loads((field_run / "report_files" / "metrics.json").read_text())
    shares = metrics["ranking_stability"]
    assert set(shares) == {"DeepDISC", *(m for m in metrics["ranking"] if m != "DeepDISC")}
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    assert metrics["judgement"] in report and "bootstrap resamples" in report
    # the headline against every other method, bright objects, with bootstrap intervals
    for sample in ("oof", "photometric"):
        compared = metrics["comparison"][sample]
        assert set(compared) == set(metrics["ranking"]) - {metrics["headline"]}
        bright = metrics[sample]["bright"]
        for name, c in compared.items():
            expected = bright[metrics["headline"]]["sigma_iqr"] / bright[name]["sigma_iqr"]
            assert c["sigma_iqr_ratio"] == pytest.approx(expected, rel=1e-6)
            assert c["sigma_iqr_ratio_16"] <= c["sigma_iqr_ratio"] <= c["sigma_iqr_ratio_84"]
    assert report.count("paired bootstrap interval") == 2
    for name in ("field_map.png", "field_nz.png", "oof/zphot_vs_ztrue.png",
                 "photometric/zphot_vs_ztrue.png", "oof/metrics_vs_redshift.png"):
        assert (field_run / "report_files" / name).stat().st_size > 1000


def _columns():
    from rail.deepdisc.store.catalogs import CatalogColumns

    return CatalogColumns(id_col="id", redshift_col="")


def test_spectra_match_by_position_and_by_id(example_field, tmp_path):
    cat = load_catalog(example_field.catalog, _columns())
    by_pos = attach_spectra(cat, SpectraColumns(spec_catalog=example_field.spectra))
    spectra = Table.read(example_field.spectra)
    assert np.isfinite(by_pos.redshift).sum() == len(spectra)
    np.testing.assert_allclose(np.sort(by_pos.redshift[np.isfinite(by_pos.redshift)]),
                               np.sort(spectra["z_spec"]))
    with_id = Table({"cat_id": cat.ids[:5], "z": np.arange(5) + 0.5})
    path = tmp_path / "ids.csv"
    with_id.write(path, format="ascii.csv")
    by_id = attach_spectra(cat, SpectraColumns(spec_catalog=str(path), spec_id_col="cat_id",
                                               spec_z_col="z"))
    np.testing.assert_array_equal(by_id.redshift[:5], np.arange(5) + 0.5)
    assert np.isnan(by_id.redshift[5:]).all()


def test_spectra_matching_no_object_fail_at_once(example_field, tmp_path, capsys):
    far = Table({"ra": [10.0, 10.1], "dec": [-5.0, -5.1], "z_spec": [1.0, 2.0]})
    path = tmp_path / "far_spectra.fits"
    far.write(path)
    out = tmp_path / "run"
    assert main(["field", "--inputs", example_field.inputs, "--spec-catalog", str(path),
                 *TINY, "--output-dir", str(out), "-q"]) == 2
    _one_line_refusal(capsys, out, "far_spectra.fits", "none of its 2")
    with pytest.raises(InputError, match=r"far_spectra\.fits"):
        attach_spectra(load_catalog(example_field.catalog, _columns()),
                       SpectraColumns(spec_catalog=str(path)))


def test_mosaics_with_other_bands_than_the_model_fail_at_once(example_field, tmp_path,
                                                              capsys):
    out = tmp_path / "run"
    assert main(["field", "--inputs", example_field.inputs, "--survey", "lsst", *TINY,
                 "--output-dir", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "jwst_f090w.fits" in err and "lsst" in err
    assert not (out / "pipeline.yml").exists()


def test_pretraining_sed_library_reaches_the_simulation_and_a_bad_one_fails_at_once(
        example_field, tmp_path, capsys):
    from rail.pipelines.deepdisc.field import build_field_pipeline

    mix = f"cosmos+{tmp_path / 'mine.list'}"
    (tmp_path / "mine.list").write_text(f"{rail_sed_dir()}/SB3_B2004a.sed\n")
    options = {**load_field_inputs(example_field.inputs), "survey": "jades",
               "pretrain_sed_library": mix}
    pipe, _ = build_field_pipeline(options)
    assert pipe.population_pretrain.config["sed_library"] == mix
    out = tmp_path / "run"
    assert main(["field", "--inputs", example_field.inputs, "--pretrain-sed-library",
                 "cosmos+no_such_templates.list", *TINY, "--output-dir", str(out),
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert "pretrain_sed_library" in err and "no_such_templates.list" in err
    assert not (out / "pipeline.yml").exists()


def test_model_with_other_bands_fails_at_once(example_field, tiny_model, tmp_path, capsys):
    import yaml

    inputs = load_field_inputs(example_field.inputs)
    for key in ("images", "errors", "psfs"):
        inputs[key].pop("jwst_f444w")  # a survey without the model's reddest band
    path = tmp_path / "eight_bands.yml"
    path.write_text(yaml.safe_dump(inputs))
    out = tmp_path / "run"
    assert main(["field", "--inputs", str(path), "--pretrained-model", tiny_model, *TINY,
                 "--output-dir", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert os.path.basename(tiny_model) in err and "jwst_f090w.fits" in err
    assert not (out / "pipeline.yml").exists()


def test_output_catalog_equal_to_an_input_is_refused(example_field, tmp_path, capsys):
    import hashlib
    import shutil

    out = tmp_path / "run"
    (out / "data").mkdir(parents=True)
    victim = out / "data" / "output_photoz_catalog.fits"
    shutil.copyfile(example_field.catalog, victim)
    before = hashlib.sha256(victim.read_bytes()).hexdigest()
    assert main(["field", "--inputs", example_field.inputs, "--catalog", str(victim), *TINY,
                 "--output-dir", str(out), "-q"]) == 2
    assert "output_photoz_catalog.fits" in capsys.readouterr().err
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == before
    from rail.pipelines.deepdisc.field import run_field

    options = {**load_field_inputs(example_field.inputs), "catalog": str(victim)}
    with pytest.raises(OutputPathError):
        run_field(options, str(out), progress=False)


@pytest.mark.slow
def test_pretraining_field_is_simulated_from_the_survey_measured_on_the_mosaics(
        field_run, example_field):
    from rail.deepdisc.sim.survey_file import read_survey_file
    from rail.deepdisc.store.scenes import SceneStore

    survey = read_survey_file(field_run / "output_measure_survey.yml")
    inputs = load_field_inputs(example_field.inputs)
    assert survey.bands == tuple(inputs["images"])
    assert survey.pixel_scale == pytest.approx(0.03, rel=1e-9)
    assert survey.detection_band == "jwst_f200w" and survey.zmax == 12.0
    assert all(survey.psfs[b]["kind"] == "image" for b in survey.bands)
    with SceneStore(field_run / "output_scenes_pretrain.hdf5") as store:
        assert list(store.bands) == list(survey.bands)
        assert store.n_scenes == 8
        assert store.info.attrs["filters"]  # the survey's filter curves, recorded


def test_committed_field_example_is_current(example_field, tmp_path, monkeypatch):
    """examples/field_pipeline.yml is what write_field_example writes for the field of
    ``rail-deepdisc fits-field --output-dir field_data`` (paths relative to the repository
    root; the stages and their options do not depend on the field's size)."""
    import yaml

    from rail.pipelines.deepdisc.field import write_field_example

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.dirname(example_field.inputs), "field_data")
    written = write_field_example("ex")
    ours, committed = (yaml.safe_load(open(p, encoding="utf-8")) for p in
                       (written, os.path.join(repo, "examples", "field_pipeline.yml")))
    assert ours["stages"] == committed["stages"] and ours["inputs"] == committed["inputs"]
    ours, committed = (yaml.safe_load(open(p, encoding="utf-8")) for p in
                       ("ex/field_pipeline_config.yml",
                        os.path.join(repo, "examples", "field_pipeline_config.yml")))
    assert ours == committed, "examples/field_pipeline_config.yml is out of date"


def _one_line_refusal(capsys, out, *names: str) -> None:
    """The run stopped with exit 2 (asserted by the caller), its error is one line naming
    each of ``names``, and nothing was written under the output folder."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in err, (name, err)
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


@pytest.mark.parametrize("case", ["missing", "unreadable_template", "bad_template_error"])
def test_bad_template_files_fail_at_once(example_field, tmp_path, capsys, case):
    """A missing templates file, a template that is not a spectrum, a template error file
    that is not two numeric columns: one line naming the file, exit 2, nothing written."""
    param = tmp_path / "mine.param"
    args = ["--eazy-photoz-dir", EAZY_ROOT]
    if case == "missing":
        args += ["--templates-file", str(tmp_path / "nowhere.param")]
        named = "nowhere.param"
    elif case == "unreadable_template":
        (tmp_path / "broken.dat").write_text("wavelength flux\nnot numbers at all\n")
        param.write_text("1 broken.dat 1.0\n")
        args += ["--templates-file", str(param)]
        named = "broken.dat"
    else:
        (tmp_path / "TEMPLATE_ERROR.bad").write_text("1000 0.1\nabc def\n")
        args += ["--template-error-file", str(tmp_path / "TEMPLATE_ERROR.bad")]
        named = "TEMPLATE_ERROR.bad"
    out = tmp_path / "run"
    assert main(["field", "--inputs", example_field.inputs, *TINY, *args,
                 "--output-dir", str(out), "-q"]) == 2
    _one_line_refusal(capsys, out, named)


def test_band_without_a_filter_curve_fails_at_once(example_field, tmp_path, capsys):
    """A mosaic whose band has no filter curve (photometry and template fitting need one):
    one line naming the band, exit 2, nothing written."""
    import yaml

    inputs = load_field_inputs(example_field.inputs)
    for key in ("images", "errors"):
        inputs[key]["acme_f999w"] = inputs[key].pop("jwst_f444w")
    path = tmp_path / "unknown_band.yml"
    path.write_text(yaml.safe_dump(inputs))
    out = tmp_path / "run"
    assert main(["field", "--inputs", str(path), *TINY, "--eazy-photoz-dir", EAZY_ROOT,
                 "--output-dir", str(out), "-q"]) == 2
    _one_line_refusal(capsys, out, "acme_f999w")
