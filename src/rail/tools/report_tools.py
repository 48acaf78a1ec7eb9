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
from rail.estimation.algos.eazy import EazyModelHandle

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


#: the comparison report's methods: input tag -> default name
COMPARISON_METHODS = {"deepdisc": "DeepDISC", "bpz": "BPZ", "eazy": "EAZY",
                      "photometric": "photometry network", "hybrid": "hybrid"}


class PhotoZComparisonReport(StrictConfigMixin, RailStage):
    """Compare photo-z ensembles row-aligned with a scene store's objects.

    Inputs: the test scene store (its ``/objects`` table is the truth), the ensembles of
    DeepDISC (forced), BPZ, EAZY, the photometry network and the hybrid, a DeepDISC
    detect-mode detections table, and EAZY's model (the template set it ran, as its informer
    resolved it, is named in the report). Output:
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
        method_names=Param(list, list(COMPARISON_METHODS.values()),
                           msg="names of the methods of inputs "
                           + ", ".join(COMPARISON_METHODS)),
        log_dir=Param(str, "", msg="ceci log directory to read stage run times from"),
        timing_stages=Param(dict, {}, msg="method name -> list of stage names it ran"),
    )
    inputs = [("truth", SceneHandle), *((tag, QPHandle) for tag in COMPARISON_METHODS),
              ("detections", Hdf5Handle), ("eazy_model", EazyModelHandle)]
    outputs = [("report", MarkdownHandle)]

    def write(self, truth: Any, deepdisc: Any, bpz: Any, eazy: Any, photometric: Any,
              hybrid: Any, detections: Any, eazy_model: Any, **kwargs: Any
              ) -> MarkdownHandle:
        """Write the report of the methods' ensembles on one scene store's objects.

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
        photometric : str | qp.Ensemble | QPHandle
            The photometry network's ensemble.
        hybrid : str | qp.Ensemble | QPHandle
            The hybrid's ensemble.
        detections : str | dict | Hdf5Handle
            DeepDISC's detect-mode detections table.
        eazy_model : str | EazyModel | EazyModelHandle
            The model EAZY's ensemble came from (its template set is named in the report).
        **kwargs : Any
            Options to change (``title``, ``method_names``, ...).

        Returns
        -------
        MarkdownHandle
            The handle of the report text.
        """
        inputs = {"truth": truth, "deepdisc": deepdisc, "bpz": bpz, "eazy": eazy,
                  "photometric": photometric, "hybrid": hybrid, "detections": detections,
                  "eazy_model": eazy_model}
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
            survey, detection = store.info.survey, store.detection_band
        names = list(self.config.method_names)
        if len(names) != len(COMPARISON_METHODS):
            raise OptionError(f"{self.name}: method_names needs {len(COMPARISON_METHODS)} "
                              f"names ({', '.join(COMPARISON_METHODS)}), got {names}")
        meta = self.get_data("eazy_model").meta  # the template set EAZY ran, as it resolved it
        eazy_set = str(meta.get("template_set", "templates"))
        results = []
        for tag, name in zip(COMPARISON_METHODS, names, strict=True):
            ens = qp.read(self._path(tag))
            shown = f"{name} ({eazy_set})" if tag == "eazy" else name
            results.append(MethodResult(shown, ens, self._seconds(name)))
        det_table = tables_io.read(self._path("detections"))
        detections = _detections(det_table, truth["object_id"])
        out_dir = os.path.dirname(os.path.abspath(self.get_output(
            self.get_aliased_tag("report"))))
        provenance = {"stage": self.options_dict(), "truth": truth_path}
        paths = write_report(os.path.join(out_dir, "report_files"), results, truth,
                             survey=survey, detections=detections, title=self.config.title,
                             provenance=provenance, survey_detection_band=detection)
        with open(paths["report"], encoding="utf-8") as fin:
            text = fin.read().replace("](", "](report_files/")
        text += (f"\n## Template sets\n\n- {names[2]}: "
                 f"{meta.get('template_set_description', '')}\n")
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


class JsonHandle(DataHandle):
    """A JSON file (suffix ``json``); its data is the decoded object."""

    suffix = "json"
    interactive_type = "dict"

    @classmethod
    def _open(cls, path: str, **kwargs: Any):
        return open(path, encoding="utf-8")

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> Any:
        import json

        with open(path, encoding="utf-8") as fin:
            return json.load(fin)

    @classmethod
    def _write(cls, data: Any, path: str, **kwargs: Any) -> None:
        import json

        from rail.deepdisc.evaluate.report import _json_default

        with atomic_output(path, "metrics") as tmp:
            tmp.write_text(json.dumps(data, indent=1, default=_json_default),
                           encoding="utf-8")


#: the field report's methods: input-tag suffix -> default name
REPORT_METHODS = {"": "DeepDISC", "_templates": "EAZY", "_photometric": "photometry network",
                  "_hybrid": "hybrid"}


class FieldValidationReport(StrictConfigMixin, RailStage):
    """The validation report of a survey field (the field recipe's last stage).

    Every method side by side: the image network (``oof``, ``field``), template fitting
    (``oof_templates``, ``field_templates``, with the EAZY model ``template_model`` that
    says which template set ran), the photometry network (``oof_photometric``,
    ``field_photometric``) and the hybrid (``oof_hybrid``, ``field_hybrid``). The ``oof*``
    inputs are out-of-fold ensembles of the spectroscopic objects (each PDF from a model that
    never saw that object's label; ancil ``redshift``), the ``field*`` inputs the ensembles
    of every catalog object (same rows for all methods); ``detections`` is the detect-mode
    ensemble of the field. With ``truth_catalog`` (true redshifts of a simulated field)
    every method is also evaluated on the objects without spectra. Outputs: ``report.md``
    (tables by subset, magnitude, redshift and quality flag; figures; the field map and
    N(z)) and ``metrics`` (JSON, with the methods ranked out of fold and the headline one).
    """

    name = "FieldValidationReport"
    entrypoint_function = "write"
    interactive_function = "field_validation_report"
    config_options = RailStage.config_options.copy()
    config_options.update({k: v for k, v in TilerConfig.stage_params().items()
                           if k == "images"})
    config_options.update(
        title=Param(str, "Photo-z validation", msg="title of the report"),
        survey=Param(str, "", msg="survey preset or file (its detection band is the band of "
                     "the bright cut)"),
        truth_catalog=Param(str, "", msg="table of true redshifts of the catalog objects "
                            "(id, redshift, optional snr_<band>), simulated fields only"),
        method_names=Param(list, list(REPORT_METHODS.values()),
                           msg="names of the image, template, photometry-network and hybrid "
                           "methods"),
    )
    path_options = ("truth_catalog",)
    inputs = [("oof", QPHandle), ("field", QPHandle), ("detections", QPHandle),
              ("oof_templates", QPHandle), ("field_templates", QPHandle),
              ("oof_photometric", QPHandle), ("field_photometric", QPHandle),
              ("oof_hybrid", QPHandle), ("field_hybrid", QPHandle),
              ("template_model", EazyModelHandle)]
    outputs = [("report", MarkdownHandle), ("metrics", JsonHandle)]

    def write(self, oof: Any, field: Any, detections: Any, oof_templates: Any,
              field_templates: Any, oof_photometric: Any, field_photometric: Any,
              oof_hybrid: Any, field_hybrid: Any, template_model: Any,
              **kwargs: Any) -> MarkdownHandle:
        """Write the validation report of a field.

        Parameters
        ----------
        oof : str | qp.Ensemble | QPHandle
            Out-of-fold ensemble of the spectroscopic objects (image network).
        field : str | qp.Ensemble | QPHandle
            Forced ensemble of the field's catalog objects (image network).
        detections : str | qp.Ensemble | QPHandle
            Detect-mode ensemble of the field.
        oof_templates : str | qp.Ensemble | QPHandle
            Out-of-fold ensemble of the spectroscopic objects (template fitting).
        field_templates : str | qp.Ensemble | QPHandle
            Ensemble of the field's catalog objects (template fitting).
        oof_photometric : str | qp.Ensemble | QPHandle
            Out-of-fold ensemble of the spectroscopic objects (photometry network).
        field_photometric : str | qp.Ensemble | QPHandle
            Ensemble of the field's catalog objects (photometry network).
        oof_hybrid : str | qp.Ensemble | QPHandle
            Out-of-fold ensemble of the spectroscopic objects (hybrid).
        field_hybrid : str | qp.Ensemble | QPHandle
            Ensemble of the field's catalog objects (hybrid).
        template_model : str | EazyModel
            The EAZY model (which template set ran).
        **kwargs : Any
            Options to change (``images``, ``title``, ``survey``, ``truth_catalog``).

        Returns
        -------
        MarkdownHandle
            The handle of the report text.
        """
        return self.run_on({"oof": oof, "field": field, "detections": detections,
                            "oof_templates": oof_templates, "field_templates": field_templates,
                            "oof_photometric": oof_photometric,
                            "field_photometric": field_photometric,
                            "oof_hybrid": oof_hybrid, "field_hybrid": field_hybrid,
                            "template_model": template_model}, "report", **kwargs)

    def _ensemble(self, tag: str) -> Any:
        handle = self.get_handle(tag, allow_missing=True)
        if handle.data is not None:
            return handle.data
        if handle.path in (None, "", "None", "none") or not os.path.exists(handle.path):
            raise FileNotFoundError(f"{self.name}: input '{tag}' has no file ({handle.path})")
        return qp.read(handle.path)

    def run(self) -> None:
        from rail.deepdisc.evaluate.field_report import (
            FieldMethod,
            load_truth,
            write_field_report,
        )
        from rail.deepdisc.sim.surveys import survey_detection_band

        images = dict(self.config.images or {})
        if not images:
            raise OptionError(f"{self.name}: images (band -> mosaic) is needed for the map")
        names = list(self.config.method_names)
        if len(names) != len(REPORT_METHODS):
            raise OptionError(f"{self.name}: method_names needs {len(REPORT_METHODS)} names "
                              f"(image, templates, photometry network, hybrid), got {names}")
        self.check_output_paths()
        truth = load_truth(self.config.truth_catalog) if self.config.truth_catalog else None
        model = self.get_data("template_model")
        methods = [FieldMethod(name, self._ensemble(f"oof{suffix}"),
                               self._ensemble(f"field{suffix}"))
                   for name, suffix in zip(names, REPORT_METHODS, strict=True)]
        notes = [f"{names[1]}: {model.meta.get('template_set_description', 'templates')}; "
                 "zero points and prior from the spectroscopic objects"]
        out_dir = os.path.dirname(os.path.abspath(self.get_output(
            self.get_aliased_tag("report"))))
        paths = write_field_report(
            os.path.join(out_dir, "report_files"), methods, self._ensemble("detections"),
            images, list(images), survey=self.config.survey,
            survey_detection_band=survey_detection_band(self.config.survey),
            title=self.config.title,
            truth=truth, notes=notes, provenance={"stage": self.options_dict()})
        with open(paths["report"], encoding="utf-8") as fin:
            text = fin.read().replace("](", "](report_files/")
        self.add_data("report", text)
        self.add_data("metrics", JsonHandle._read(paths["metrics"]))
