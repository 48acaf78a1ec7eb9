"""The photometry network as RAIL stages: a mixture-density network on S/N-scaled fluxes and
errors, trained on a simulated catalog of the survey and fine-tuned on the field's spectra.

``PhotometryNetInformer`` draws the survey's population (true fluxes in every band), trains
the network with noise borrowed from the field's own photometry
(:mod:`rail.deepdisc.hybrid.simulated_photometry`), fine-tunes it on the field's labelled
objects, and also gives those objects out-of-fold PDFs (fold f's from a copy fine-tuned
without fold f's labels). ``PhotometryNetEstimator`` applies the model to any photometry of
the survey's bands. The numerics live in :mod:`rail.deepdisc.hybrid.photometry_network`;
the options in :class:`rail.deepdisc.hybrid.options.PhotometryNetOptions`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rail.core.common_params import SharedParams
from rail.core.data import ModelHandle, QPHandle, TableHandle
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from rail.creation.engines.survey_field import SurveyFileHandle
from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.folds import FoldOptions
from rail.deepdisc.hybrid.options import PhotometryNetOptions
from rail.deepdisc.options import AncilColumnsOptions, copied_columns
from rail.deepdisc.parallel import PartedEstimatorMixin, PartedQPHandle
from rail.deepdisc.stages import StrictConfigMixin


class PhotometryNetworkHandle(ModelHandle):
    """A photometry network file (a torch state dict and a JSON description)."""

    suffix = "pt"
    interactive_type = "rail.deepdisc.hybrid.photometry_network.PhotometryNetwork"

    @classmethod
    def _open(cls, path: str, **kwargs: Any):
        from rail.deepdisc.hybrid.photometry_network import PhotometryNetwork

        return PhotometryNetwork.load(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any):
        return cls._open(path)

    @classmethod
    def _write(cls, data: Any, path: str, **kwargs: Any) -> None:
        data.save(path)


def _columns(stage: Any, data: Any) -> tuple[np.ndarray, np.ndarray]:
    """The (N, NB) fluxes and errors of the stage's ``bands`` / ``err_bands`` (linear)."""
    c = stage.config
    missing = [k for k in (*c.bands, *c.err_bands) if k not in data]
    if missing:
        raise InputError(f"{stage.name}: the input lacks columns {missing} (bands, err_bands)")
    return (np.stack([np.asarray(data[b], float) for b in c.bands], axis=1),
            np.stack([np.asarray(data[e], float) for e in c.err_bands], axis=1))


def _ensemble(lnp: np.ndarray, grid: np.ndarray, ancil: dict[str, np.ndarray]):
    from rail.deepdisc.hybrid.ensembles import pdf_ensemble

    return pdf_ensemble(np.exp(lnp - lnp.max(axis=1, keepdims=True)), grid, ancil)


class PhotometryNetInformer(StrictConfigMixin, CatInformer):
    """Train the photometry network for a survey and fine-tune it on the field's spectra.

    Inputs: ``input``, the field's photometry (``bands`` / ``err_bands`` linear fluxes and
    errors; rows with a redshift fine-tune the network), and ``survey``, the survey file (or
    preset file) whose population is simulated. Outputs: ``model`` and ``oof``, out-of-fold
    PDFs of the labelled rows (``qp.interp``, with ``object_id``, ``redshift``, ``fold``).
    Options: :class:`rail.deepdisc.hybrid.options.PhotometryNetOptions`, ``filter_list``
    (the survey's band names, one per column), ``ref_band`` (the detection band's flux
    column, which the noise model is sorted by), ``redshift_col``, ``id_col``, ``zmax``,
    ``folds`` and ``seed`` (the folds, the simulated catalog, its noise and the training).
    """

    name = "PhotometryNetInformer"
    entrypoint_function = "inform"
    interactive_function = "photometry_net_informer"
    config_options = CatInformer.config_options.copy()
    config_options.update({k: SharedParams.copy_param(k) for k in (
        "bands", "err_bands", "filter_list", "ref_band", "redshift_col", "id_col", "zmax")})
    config_options.update(PhotometryNetOptions.stage_params())
    config_options.update(FoldOptions.stage_params())
    inputs = [("input", TableHandle), ("survey", SurveyFileHandle)]
    outputs = [("model", PhotometryNetworkHandle), ("oof", QPHandle)]

    def inform(self, training_data: Any, survey: Any, **kwargs: Any) -> PhotometryNetworkHandle:
        """Train the network.

        Parameters
        ----------
        training_data : dict | str
            The field's photometry.
        survey : str
            The survey file.
        **kwargs : Any
            Options to change.

        Returns
        -------
        PhotometryNetworkHandle
            The trained network.
        """
        return self.run_on({"input": training_data, "survey": survey}, "model", **kwargs)

    def run(self) -> None:
        from rail.deepdisc.folds import fold_of_ids
        from rail.deepdisc.hybrid.grid import redshift_grid
        from rail.deepdisc.hybrid.photometry_network import fine_tune, train_network
        from rail.deepdisc.hybrid.simulated_photometry import NoiseModel, simulate_catalog
        from rail.deepdisc.store.provenance import provenance

        c = self.config
        opts = PhotometryNetOptions.from_mapping(c)
        folds = FoldOptions.from_mapping(c)
        seed = folds.seed
        if len(c.filter_list) != len(c.bands) or len(c.err_bands) != len(c.bands):
            raise OptionError(f"{self.name}: bands, err_bands and filter_list need one entry "
                              "per band")
        if c.ref_band not in c.bands:
            raise OptionError(f"{self.name}: ref_band {c.ref_band!r} is not one of bands")
        self.check_output_paths()
        data = self.get_data("input")
        if c.hdf5_groupname:
            data = data[c.hdf5_groupname]
        flux, err = _columns(self, data)
        z = np.asarray(data[c.redshift_col], float) if c.redshift_col in data else \
            np.full(flux.shape[0], np.nan)
        noise = NoiseModel.from_photometry(flux, err, list(c.bands).index(c.ref_band))
        survey = self.get_handle("survey", allow_missing=True).path
        catalog = simulate_catalog(str(survey), list(c.filter_list), opts.photnet_galaxies,
                                   seed, realism=opts.photnet_realism,
                                   sed_library=opts.photnet_sed_library or None, zmax=c.zmax,
                                   sed_distortion=opts.photnet_sed_distortion)
        record = {"simulation": catalog.meta, "columns": list(c.bands), "zmax": c.zmax,
                  "provenance": provenance(opts.as_dict(), self.name)}
        net = train_network(catalog.flux, catalog.redshift, noise, list(c.filter_list),
                            opts, seed, meta=record)
        anchor = (catalog.flux, catalog.redshift, noise)
        tune = {"epochs": opts.photnet_finetune_epochs,
                "learning_rate": opts.photnet_finetune_learning_rate, "seed": seed,
                "anchor": anchor}
        labelled = np.flatnonzero(np.isfinite(z))
        grid = redshift_grid(c.zmax)
        if labelled.size:
            if c.id_col not in data:
                raise InputError(f"{self.name}: the input has no id column {c.id_col!r}")
            ids = np.asarray(data[c.id_col]).astype(np.int64)
            fold = fold_of_ids(ids[labelled], folds.folds, seed)
            lnp = np.empty((labelled.size, grid.size))
            for f in range(folds.folds):
                rows = labelled[fold == f]
                zf = z.copy()
                zf[rows] = np.nan  # fold f's labels are never seen by its copy
                tuned = fine_tune(net, flux, err, zf, **tune)
                lnp[fold == f] = tuned.log_pdf(flux[rows], err[rows], grid)
            self.add_data("oof", _ensemble(lnp, grid, {"object_id": ids[labelled],
                                                       "redshift": z[labelled],
                                                       "fold": fold}))
            net = fine_tune(net, flux, err, z, **tune)
        else:
            self.add_data("oof", _ensemble(np.zeros((0, grid.size)), grid, {}))
        self.model = net
        self.add_data("model", net)


class PhotometryNetEstimator(StrictConfigMixin, PartedEstimatorMixin, CatEstimator):
    """PDFs of photometry from a trained photometry network (``qp.interp`` on a grid
    uniform in ln(1 + z) up to the model's ``zmax``), with ``zmode``, ``zmean``,
    ``zmedian``, the ``id_col`` column as ``object_id`` and the input columns
    ``ancil_columns`` names (e.g. ra dec, so a catalog can be made from the PDFs alone).
    Options: ``bands`` / ``err_bands`` (the model's, in its order), ``ancil_columns``."""

    name = "PhotometryNetEstimator"
    entrypoint_function = "estimate"
    interactive_function = "photometry_net_estimator"
    config_options = CatEstimator.config_options.copy()
    config_options.update({k: SharedParams.copy_param(k) for k in (
        "bands", "err_bands", "id_col")})
    config_options.update(AncilColumnsOptions.stage_params())
    inputs = [("model", PhotometryNetworkHandle), ("input", TableHandle)]
    outputs = [("output", PartedQPHandle)]

    def _process_chunk(self, start: int, end: int, data: Any, first: bool) -> None:
        from rail.deepdisc.hybrid.grid import redshift_grid

        model = self.model
        if list(self.config.bands) != list(model.meta.get("columns", self.config.bands)):
            raise OptionError(f"{self.name}: bands {list(self.config.bands)} are not the "
                              f"model's {model.meta.get('columns')}")
        flux, err = _columns(self, data)
        grid = redshift_grid(float(model.meta["zmax"]))
        ancil = copied_columns(data, tuple(self.config.ancil_columns), self.name)
        if self.config.id_col in data:
            ancil["object_id"] = np.asarray(data[self.config.id_col]).astype(np.int64)
        ens = _ensemble(model.log_pdf(flux, err, grid), grid, ancil)
        self._do_chunk_output(ens, start, end, first, data=data)
