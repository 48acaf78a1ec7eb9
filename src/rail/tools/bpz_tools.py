"""A pipeline stage that sets up BPZ's data directory before pz-rail-bpz runs.

pz-rail-bpz (unchanged) reads templates, filter curves and AB files from
``bpz_ref_data_path``. ``BPZDataPreparer`` builds that directory
(:func:`rail.deepdisc.fit.bpz.prepare_bpz_data`: the template set, ``.res`` curves from
astro-sedpy, and every AB file, in parallel), checks that the photometry has the columns
BPZ will read, and passes the table on, so in a ceci pipeline ``BPZliteInformer`` takes its
output and runs after it.
"""

from __future__ import annotations

import os
from typing import Any

from rail.core.data import TableHandle
from rail.core.stage import RailStage

from rail.deepdisc.fit.bpz import BPZDataOptions, check_bpz_input, prepare_bpz_data
from rail.deepdisc.spectra.bands import filters_json
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.handle import ProvenanceHdf5Handle
from rail.deepdisc.store.provenance import provenance_json
from rail.deepdisc.store.tables import table_filters


def _source(handle: Any) -> str:
    """How to name the input table in messages: its file, or that it is in memory."""
    path = getattr(handle, "path", None)
    return "input (in memory)" if path in (None, "", "None") else f"input {path}"


class BPZDataPreparer(StrictConfigMixin, RailStage):
    """Build a writable BPZ data directory and pass the photometry table through.

    Config (:class:`rail.deepdisc.fit.bpz.BPZDataOptions`): ``data_path`` (the directory,
    the same as BPZ's ``bpz_ref_data_path``), ``templates`` (``cww``, ``cosmos``,
    ``oracle``), ``filters`` (one per band column, e.g. ``jwst_f200w``; a band a survey file
    defines is found in the input table's ``filters`` attribute), ``madau`` (IGM in
    the AB files), ``bands``/``err_bands``/``ref_band`` (columns BPZ will read; checked here,
    before BPZ runs).
    """

    name = "BPZDataPreparer"
    entrypoint_function = "prepare"
    interactive_function = "bpz_data_preparer"
    config_options = RailStage.config_options.copy()
    config_options.update(BPZDataOptions.stage_params())
    inputs = [("input", TableHandle)]
    outputs = [("output", ProvenanceHdf5Handle)]

    def prepare(self, input_data: Any, **kwargs: Any) -> ProvenanceHdf5Handle:
        """Build the BPZ data directory for ``input_data`` and pass the table on.

        Parameters
        ----------
        input_data : TableHandle or dict
            The photometry table BPZ will fit (checked for the configured columns).
        **kwargs : Any
            Options of the stage (see the class docstring), set before it runs.

        Returns
        -------
        ProvenanceHdf5Handle
            The table, unchanged, with the set-up's provenance.
        """
        self.config.update(**kwargs)
        self.set_data("input", input_data)
        self.run()
        self.finalize()
        return self.get_handle("output")

    def run(self) -> None:
        from rail.deepdisc.workers import worker_count

        opts = self.library_options(BPZDataOptions)
        table = self.get_data("input")
        handle = self.get_handle("input", allow_missing=True)
        check_bpz_input(table, {"bands": opts.bands, "err_bands": opts.err_bands,
                                "ref_band": opts.ref_band,
                                "hdf5_groupname": opts.hdf5_groupname},
                        source=_source(handle))
        # bands a survey file defines: their curves travel in the photometry table's file
        band_filters = table_filters(getattr(handle, "path", None))
        setup = prepare_bpz_data(os.path.expandvars(opts.data_path), opts.templates,
                                 opts.filters, madau=opts.madau, make_ab=True,
                                 n_workers=worker_count(opts.n_workers),
                                 band_filters=band_filters)
        data = table[opts.hdf5_groupname] if opts.hdf5_groupname else table
        handle = self.add_handle("output", data={k: v for k, v in data.items()})
        handle.provenance = provenance_json(
            {"stage": self.options_dict(), "spectra_file": setup.spectra_file,
             "filter_list": list(setup.filter_list)}, f"rail.tools.bpz_tools.{self.name}")
        if band_filters:
            handle.attrs = {"filters": filters_json(band_filters)}
