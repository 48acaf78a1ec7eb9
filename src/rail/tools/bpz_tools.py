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

from ceci.config import StageParameter as Param
from rail.core.data import TableHandle
from rail.core.stage import RailStage

from rail.deepdisc.fit.bpz import check_bpz_input, prepare_bpz_data
from rail.deepdisc.sim.render import default_workers
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.provenance import provenance_json
from rail.deepdisc.store.tables import ProvenanceHdf5Handle


class BPZDataPreparer(StrictConfigMixin, RailStage):
    """Build a writable BPZ data directory and pass the photometry table through.

    Config: ``data_path`` (the directory, the same as BPZ's ``bpz_ref_data_path``),
    ``templates`` (``cww``, ``cosmos``, ``oracle``), ``filters`` (one per band column, e.g.
    ``jwst_f200w``), ``madau`` (IGM in the AB files), ``bands``/``err_bands``/``ref_band``
    (columns BPZ will read; checked here, before BPZ runs).
    """

    name = "BPZDataPreparer"
    entrypoint_function = "prepare"
    interactive_function = "bpz_data_preparer"
    config_options = RailStage.config_options.copy()
    config_options.update(
        data_path=Param(str, None, required=True, msg="BPZ data directory to build"),
        templates=Param(str, "cww", msg="template set: cww, cosmos or oracle"),
        filters=Param(list, None, required=True, msg="filter names, one per band column"),
        madau=Param(bool, True, msg="include Madau (1995) IGM in the AB files"),
        bands=Param(list, None, required=True, msg="magnitude columns BPZ reads"),
        err_bands=Param(list, None, required=True, msg="magnitude-error columns BPZ reads"),
        ref_band=Param(str, None, required=True, msg="prior reference magnitude column"),
        n_workers=Param(int, 0, msg="processes for AB files (0: all cores)"),
        hdf5_groupname=Param(str, "", msg="group of the table ('' for a flat file)"),
    )
    inputs = [("input", TableHandle)]
    outputs = [("output", ProvenanceHdf5Handle)]

    def prepare(self, table: Any, **kwargs: Any):
        """Interactive use: prepare for ``table`` and return the output handle."""
        self.config.update(**kwargs)
        self.set_data("input", table)
        self.run()
        self.finalize()
        return self.get_handle("output")

    def run(self) -> None:
        c = self.config
        if not (len(c.filters) == len(c.bands) == len(c.err_bands)):
            raise ValueError(f"{self.name}: filters ({len(c.filters)}), bands ({len(c.bands)}) "
                             f"and err_bands ({len(c.err_bands)}) must have the same length")
        table = self.get_data("input")
        check_bpz_input(table, {"bands": c.bands, "err_bands": c.err_bands,
                                "ref_band": c.ref_band, "hdf5_groupname": c.hdf5_groupname},
                        source=str(self.get_handle("input", allow_missing=True).path))
        setup = prepare_bpz_data(os.path.expandvars(c.data_path), c.templates, c.filters,
                                 madau=c.madau, make_ab=True,
                                 n_workers=c.n_workers or default_workers())
        data = table[c.hdf5_groupname] if c.hdf5_groupname else table
        handle = self.add_handle("output", data={k: v for k, v in data.items()})
        handle.provenance = provenance_json(
            {"stage": c.to_dict(), "spectra_file": setup.spectra_file,
             "filter_list": list(setup.filter_list)}, f"rail.tools.bpz_tools.{self.name}")
