"""The comparison-report stage: DeepDISC, BPZ and EAZY on the same objects, as tables + plots.

The stage is thin: :mod:`rail.deepdisc.evaluate.report` computes the metrics and draws the figures.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

import numpy as np
import qp
import tables_io
from ceci.config import StageParameter as Param
from rail.core.data import DataHandle, Hdf5Handle, QPHandle
from rail.core.stage import RailStage

from rail.deepdisc.errors import OptionError
from rail.deepdisc.evaluate.report import Detections, MethodResult, write_report
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.atomic import atomic_output
from rail.deepdisc.store.handle import SceneHandle
from rail.deepdisc.store.mosaic import TilerConfig
from rail.deepdisc.store.scenes import SceneStore

_TOOK = re.compile(r"Stage complete: \S+ @ .* took ([0-9.]+) minutes")


def stage_seconds(log_dir: str, stage: str) -> float | None:
    """Wall time of a finished ceci stage, from its log (``<log_dir>/<stage>.out``)."""
    for path in glob.glob(os.path.join(log_dir, f"{stage}.out")):
        with open(path, encoding="utf-8", errors="replace") as fin:
            found = _TOOK.findall(fin.read())
        if found:
            return 60.0 * float(found[-1])
    return None


class MarkdownHandle(DataHandle):
    """A Markdown text file (suffix ``md``)."""

    suffix = "md"
    interactive_type = "str"

    @classmethod
    def _open(cls, path: str, **kwargs: Any):
        return open(path, encoding="utf-8")

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> str:
        with open(path, encoding="utf-8") as fin:
            return fin.read()

    @classmethod
    def _write(cls, data: str, path: str, **kwargs: Any) -> None:
        with atomic_output(path, "report") as tmp:
            tmp.write_text(data, encoding="utf-8")


class PhotoZComparisonReport(StrictConfigMixin, RailStage):
    """Compare photo-z ensembles row-aligned with a scene store's objects.

    Inputs: the test scene store (its ``/objects`` table is the truth), the ensembles of
    DeepDISC (forced), BPZ and EAZY, and a DeepDISC detect-mode detections table. Output:
    ``report.md`` (tables of σ_IQR, bias, outlier rates, σ_MAD, PIT KS/CvM/AD, CDE loss,
    Brier, object counts and seconds per method, for S/N > 10 and for all objects) with PNG
    figures and ``metrics.json`` beside it. Seconds come from the ceci logs in ``log_dir``
    (inform and estimate stages named in ``timing_stages``).
    """

    name = "PhotoZComparisonReport"
    entrypoint_function = "write"
    interactive_function = "photo_z_comparison_report"
    config_options = RailStage.config_options.copy()
    config_options.update(
        title=Param(str, "Photo-z comparison", msg="title of the report"),
        method_names=Param(list, ["DeepDISC", "BPZ", "EAZY"],
                           msg="names of the methods of inputs deepdisc, bpz, eazy"),
        log_dir=Param(str, "", msg="ceci log directory to read stage run times from"),
        timing_stages=Param(dict, {}, msg="method name -> list of stage names it ran"),
    )
    inputs = [("truth", SceneHandle), ("deepdisc", QPHandle), ("bpz", QPHandle),
              ("eazy", QPHandle), ("detections", Hdf5Handle)]
    outputs = [("report", MarkdownHandle)]

    def write(self, truth: Any, deepdisc: Any, bpz: Any, eazy: Any, detections: Any,
              **kwargs: Any) -> MarkdownHandle:
        """Write the report of three methods' ensembles on one scene store's objects.

        Parameters
        ----------
        truth : str | SceneStore | SceneHandle
            The scene store whose objects the ensembles' rows are.
        deepdisc : str | qp.Ensemble | QPHandle
            DeepDISC's (forced) ensemble.
        bpz : str | qp.Ensemble | QPHandle
            BPZ's ensemble.
        eazy : str | qp.Ensemble | QPHandle
            EAZY's ensemble.
        detections : str | dict | Hdf5Handle
            DeepDISC's detect-mode detections table.
        **kwargs : Any
            Options to change (``title``, ``method_names``, ...).

        Returns
        -------
        MarkdownHandle
            The handle of the report text.
        """
        inputs = {"truth": truth, "deepdisc": deepdisc, "bpz": bpz, "eazy": eazy,
                  "detections": detections}
        return self.run_on(inputs, "report", **kwargs)

    def _path(self, tag: str) -> str:
        handle = self.get_handle(tag, allow_missing=True)
        if isinstance(handle.data, SceneStore):
            return handle.data.path
        if handle.path in (None, "", "None", "none") or not os.path.exists(handle.path):
            raise FileNotFoundError(f"{self.name}: input '{tag}' has no file ({handle.path})")
        return handle.path

    def _seconds(self, method: str) -> float | None:
        stages = self.config.timing_stages.get(method, [])
        if not self.config.log_dir or not stages:
            return None
        times = [stage_seconds(self.config.log_dir, s) for s in stages]
        return float(sum(times)) if all(t is not None for t in times) else None

    def run(self) -> None:
        truth_path = self._path("truth")
        with SceneStore(truth_path) as store:
            truth = store.objects()
            survey = store.info.survey
        names = list(self.config.method_names)
        if len(names) != 3:
            raise OptionError(f"{self.name}: method_names needs three names (deepdisc, bpz, "
                             f"eazy), got {names}")
        results = []
        for tag, name in zip(("deepdisc", "bpz", "eazy"), names, strict=True):
            ens = qp.read(self._path(tag))
            results.append(MethodResult(name, ens, self._seconds(name)))
        det_table = tables_io.read(self._path("detections"))
        detections = _detections(det_table, truth["object_id"])
        out_dir = os.path.dirname(os.path.abspath(self.get_output(
            self.get_aliased_tag("report"))))
        provenance = {"stage": self.options_dict(), "truth": truth_path}
        paths = write_report(os.path.join(out_dir, "report_files"), results, truth,
                             survey=survey, detections=detections, title=self.config.title,
                             provenance=provenance)
        with open(paths["report"], encoding="utf-8") as fin:
            text = fin.read().replace("](", "](report_files/")
        self.add_data("report", text)


def _detections(table: dict[str, np.ndarray], object_ids: np.ndarray) -> Detections:
    """Map a detections table's matched ``object_id`` to rows of the truth table (-1: none)."""
    ids = np.asarray(object_ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    matched = np.asarray(table["object_id"], dtype=np.int64)
    pos = np.clip(np.searchsorted(ids[order], matched), 0, max(ids.size - 1, 0))
    found = (matched >= 0) & (ids.size > 0) & (ids[order][pos] == matched)
    rows = np.where(found, order[pos], -1)
    return Detections(object_row=rows, score=np.asarray(table["score"], float))


class FieldValidationReport(StrictConfigMixin, RailStage):
    """The validation report of a survey field (the field recipe's last stage).

    Inputs: ``oof``, the out-of-fold ensemble of the spectroscopic objects
    (``DeepDiscCrossValidator``: each PDF from a model that never saw that object's label;
    ancil ``redshift`` holds the spec-z); ``field``, the forced ensemble of every catalog
    object; ``detections``, the detect-mode ensemble of the field. Output: ``report.md``
    with the comparison report's tables (bright and all, by quality flag) and figures for
    the out-of-fold objects, the field map (RGB of the ``images`` mosaics with detections
    coloured by photo-z, flagged ones marked) and N(z) of the field by flag.
    """

    name = "FieldValidationReport"
    entrypoint_function = "write"
    interactive_function = "field_validation_report"
    config_options = RailStage.config_options.copy()
    config_options.update({k: v for k, v in TilerConfig.stage_params().items()
                           if k == "images"})
    config_options.update(
        title=Param(str, "Photo-z validation", msg="title of the report"),
        survey=Param(str, "", msg="survey name (chooses the band of the bright cut)"),
    )
    inputs = [("oof", QPHandle), ("field", QPHandle), ("detections", QPHandle)]
    outputs = [("report", MarkdownHandle)]

    def write(self, oof: Any, field: Any, detections: Any, **kwargs: Any) -> MarkdownHandle:
        """Write the validation report of a field.

        Parameters
        ----------
        oof : str | qp.Ensemble | QPHandle
            Out-of-fold ensemble of the spectroscopic objects.
        field : str | qp.Ensemble | QPHandle
            Forced ensemble of the field's catalog objects.
        detections : str | qp.Ensemble | QPHandle
            Detect-mode ensemble of the field.
        **kwargs : Any
            Options to change (``images``, ``title``, ``survey``).

        Returns
        -------
        MarkdownHandle
            The handle of the report text.
        """
        return self.run_on({"oof": oof, "field": field, "detections": detections}, "report",
                           **kwargs)

    def _ensemble(self, tag: str) -> Any:
        handle = self.get_handle(tag, allow_missing=True)
        if handle.data is not None:
            return handle.data
        if handle.path in (None, "", "None", "none") or not os.path.exists(handle.path):
            raise FileNotFoundError(f"{self.name}: input '{tag}' has no file ({handle.path})")
        return qp.read(handle.path)

    def run(self) -> None:
        from rail.deepdisc.evaluate.field_report import write_field_report

        images = dict(self.config.images or {})
        if not images:
            raise OptionError(f"{self.name}: images (band -> mosaic) is needed for the map")
        out_dir = os.path.dirname(os.path.abspath(self.get_output(
            self.get_aliased_tag("report"))))
        paths = write_field_report(
            os.path.join(out_dir, "report_files"), self._ensemble("oof"),
            self._ensemble("field"), self._ensemble("detections"), images, list(images),
            survey=self.config.survey, title=self.config.title,
            provenance={"stage": self.options_dict()})
        with open(paths["report"], encoding="utf-8") as fin:
            text = fin.read().replace("](", "](report_files/")
        self.add_data("report", text)
