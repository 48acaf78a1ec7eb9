"""The comparison pipeline through ceci: runs, resumes, refuses bad config at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rail.pipelines.deepdisc.comparison import write_examples, write_pipeline
from rail.pipelines.deepdisc.demo import demo_pipeline

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("rail.estimation.algos.bpz_lite", reason="needs the fitters extra")
pytest.importorskip("eazy", reason="needs the fitters extra (eazy-py)")


def _ceci(yml, cwd, timeout=1200):
    cmd = [sys.executable, "-c", "import sys; from ceci.main import main; sys.exit(main())",
           str(yml)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _quick(tmp_path, name="run"):
    out = tmp_path / name
    pipe = demo_pipeline(str(out), quick=True)
    yml = write_pipeline(pipe, str(out / "pipeline.yml"), str(out / "data"),
                         pipe.settings.log_dir)
    return out, yml


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out, yml = _quick(tmp_path_factory.mktemp("pipeline"))
    res = _ceci(yml, out)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return out, yml


@pytest.mark.slow
def test_pipeline_writes_the_comparison_report(quick_run):
    out, _ = quick_run
    report = (out / "data" / "report_report.md").read_text()
    metrics = json.loads((out / "data" / "report_files" / "metrics.json").read_text())
    rows = metrics["metrics"]["all"]
    from rail.deepdisc.fit.eazy_data import resolve_template_set

    eazy_set = resolve_template_set("auto")  # what EAZY found here: fsps, else sps or cww
    names = {"DeepDISC", "BPZ (cww)", f"EAZY ({eazy_set.name})", "photometry network",
             "hybrid"}
    assert set(rows) == names
    assert "## Template sets" in report and eazy_set.description in report
    assert len({m["n"] for m in rows.values()}) == 1  # the same objects for every method
    for name in names:
        assert f"| {name} |" in report
        assert rows[name]["seconds"] is not None and rows[name]["seconds"] >= 0
    for fig in ("zphot_vs_ztrue", "pit", "metrics_vs_magnitude", "metrics_vs_redshift", "nz",
                "detection"):
        assert (out / "data" / "report_files" / f"{fig}.png").stat().st_size > 10_000
    # RAIL's evaluators ran on each ensemble
    for method in ("deepdisc", "bpz", "eazy", "photometry_net", "hybrid"):
        assert (out / "data" / f"summary_evaluate_{method}.hdf5").exists()


@pytest.mark.slow
def test_rerun_resumes(quick_run):
    out, yml = quick_run
    before = {p: p.stat().st_mtime_ns for p in (out / "data").glob("*.hdf5")}
    res = _ceci(yml, out, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Executing" not in res.stdout
    assert {p: p.stat().st_mtime_ns for p in (out / "data").glob("*.hdf5")} == before


def _edit_config(yml, stage, **options):
    config_path = Path(yaml.safe_load(Path(yml).read_text())["config"])
    config = yaml.safe_load(config_path.read_text())
    config[stage].update(options)
    config_path.write_text(yaml.safe_dump(config))


@pytest.mark.parametrize(("stage", "options", "message"), [
    ("inform_deepdisc", {"epochz": 3}, "unknown option(s) ['epochz']"),
    ("inform_eazy", {"templates_file": "/nowhere/templates.param"},
     "/nowhere/templates.param does not exist"),
    ("inform_deepdisc", {"init_model": "/nowhere/model.pt"}, "/nowhere/model.pt"),
])
def test_bad_config_fails_at_once(tmp_path, stage, options, message):
    out, yml = _quick(tmp_path)
    _edit_config(yml, stage, **options)
    res = _ceci(yml, out, timeout=300)
    assert res.returncode != 0
    assert message in res.stdout + res.stderr
    assert "Executing" not in res.stdout  # nothing ran
    assert not list((out / "data").glob("*.hdf5")) if (out / "data").exists() else True


def test_committed_examples_are_current(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the examples' paths are relative to the repository root
    written = write_examples(str(tmp_path))
    assert [os.path.basename(p) for p in written] == ["jwst_comparison.yml",
                                                      "lsst_comparison.yml"]
    for name in ("jwst_comparison", "lsst_comparison"):
        ours = yaml.safe_load((tmp_path / f"{name}_config.yml").read_text())
        committed = yaml.safe_load((REPO / "examples" / f"{name}_config.yml").read_text())
        assert ours == committed, f"examples/{name}_config.yml is out of date"
        stages = yaml.safe_load((tmp_path / f"{name}.yml").read_text())["stages"]
        assert stages == yaml.safe_load((REPO / "examples" / f"{name}.yml").read_text())[
            "stages"]
