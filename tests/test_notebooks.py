"""The example notebook runs (tiny settings), failing on any cell error."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs the test extra (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="needs the test extra (nbclient)")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "deepdisc_walkthrough.ipynb"


@pytest.mark.slow
def test_walkthrough_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert "QUICK = True" in nb.cells[1].source
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "same order: True" in text
    assert (tmp_path / "walkthrough" / "report" / "report.md").exists()
