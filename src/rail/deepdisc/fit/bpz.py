"""Everything pz-rail-bpz needs to fit NIRCam and LSST photometry, with BPZ itself unchanged.

``BPZliteEstimator`` reads its templates (``SED/``), filter curves (``FILTER/``) and the
synthetic photometry it makes from them (``AB/``) from one data directory,
``bpz_ref_data_path``. Left at its default, that is pz-rail-base's install directory, and
BPZ writes new AB files there. :func:`prepare_bpz_data` builds a *separate, writable* data
directory instead: the template set's ``.sed`` files and list, ``.res`` filter curves made
from astro-sedpy (or pz-rail-base's files, see :mod:`rail.deepdisc.spectra.filters`), and the AB
files, generated up front by BPZ's own ``ABflux`` (in worker processes). The AB files are
made before any estimator runs because ``desc_bpz`` fixes its data directory when first
imported, so a second data directory in the same process would otherwise be read and
written through the first one's paths; with every AB file present, the estimator only
reads. :func:`bpz_stage_configs` returns matching configurations for
``BPZliteInformer`` and ``BPZliteEstimator``, with a redshift grid reaching z = 12 for
NIRCam (BPZ's AB files stop at z = 11.99; the last grid point is extrapolated by BPZ's
linear ``match_resol``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.fit.bpz_files import sed_names, write_res, write_sed_files
from rail.deepdisc.options import Options, option, option_like
from rail.deepdisc.spectra.bands import FilterMap
from rail.deepdisc.spectra.filters import resolve_filters
from rail.deepdisc.spectra.library import SEDLibrary
from rail.deepdisc.spectra.template_sets import BUILTIN_SETS, builtin_templates
from rail.deepdisc.workers import WorkerOptions, process_pool

log = logging.getLogger(__name__)

#: default redshift range per survey preset (NIRCam sees dropouts to z ~ 12)
SURVEY_ZMAX = {"jades": 12.0, "lsst": 3.0}


@dataclass(frozen=True, kw_only=True)
class BPZDataOptions(Options):
    """The options of ``BPZDataPreparer``: the data directory and the columns BPZ reads."""

    data_path: str = option(help="BPZ data directory to build (BPZ's bpz_ref_data_path)")
    templates: str = option("cww", "template set: cww, cosmos, oracle or sps",
                            choices=BUILTIN_SETS)
    filters: list[str] = option(help="filter names, one per band column (e.g. jwst_f200w)")
    madau: bool = option(True, "include Madau (1995) IGM attenuation in the AB files")
    bands: list[str] = option(help="magnitude columns BPZ reads")
    err_bands: list[str] = option(help="magnitude-error columns BPZ reads")
    ref_band: str = option(help="prior reference magnitude column")
    n_workers: int = option_like(WorkerOptions, "n_workers")  # processes for the AB files
    hdf5_groupname: str = option("", "group of the table ('' for a flat file)")

    def _check(self) -> None:
        if not (len(self.filters) == len(self.bands) == len(self.err_bands)):
            raise OptionError(f"filters ({len(self.filters)}), bands ({len(self.bands)}) and "
                              f"err_bands ({len(self.err_bands)}) must have the same length")


@dataclass(frozen=True)
class BPZSetup:
    """A prepared BPZ data directory.

    Attributes
    ----------
    data_path
        The directory (``SED/``, ``FILTER/``, ``AB/``), for ``bpz_ref_data_path``.
    spectra_file
        Name of the template list in ``SED/`` (``spectra_file``).
    filter_list
        Filter names, one per band (``filter_list``).
    nt_array
        Templates per broad type (``nt_array``, for BPZ's prior).
    madau
        Whether the AB files include Madau (1995) IGM attenuation (``madau_flag``).
    templates
        Template names in list order.
    """

    data_path: str
    spectra_file: str
    filter_list: list[str]
    nt_array: list[int]
    madau: bool
    templates: list[str]

    @property
    def madau_flag(self) -> str:
        return "yes" if self.madau else "no"


def _ab_worker(args: tuple[str, str, str, str]) -> str:
    data_path, sed, filt, madau_flag = args
    from desc_bpz import paths
    from desc_bpz.bpz_tools_py3 import ABflux

    paths.set_data_dir(data_path)
    with contextlib.redirect_stdout(io.StringIO()):
        ABflux(sed, filt, madau_flag)
    return f"{sed}.{filt}"


def make_ab_files(data_path: str, seds: Sequence[str], filters: Sequence[str], madau: bool,
                  n_workers: int = 1) -> int:
    """Generate missing BPZ AB files with BPZ's own ``ABflux``; returns how many were made."""
    flag = "yes" if madau else "no"
    mflag = "withmadau" if madau else "nomadau"
    todo = [(data_path, s, f, flag) for s in seds for f in filters
            if not os.path.isfile(os.path.join(data_path, "AB", f"{s}.{f}.{mflag}.AB"))]
    if not todo:
        return 0
    log.info("BPZ: making %d AB files in %s", len(todo), data_path)
    if n_workers <= 1:
        for task in todo:
            _ab_worker(task)
    else:
        with process_pool(n_workers) as pool:
            list(pool.map(_ab_worker, todo, chunksize=max(1, len(todo) // (4 * n_workers))))
    missing = [f"{s}.{f}" for _, s, f, _ in todo
               if not os.path.isfile(os.path.join(data_path, "AB", f"{s}.{f}.{mflag}.AB"))]
    if missing:
        raise RuntimeError(f"BPZ's ABflux did not write AB files for {missing[:5]}")
    return len(todo)


def prepare_bpz_data(data_path: str | os.PathLike, templates: SEDLibrary | str,
                     filters: Sequence[str], *, madau: bool = True, make_ab: bool = True,
                     n_workers: int = 1,
                     filter_search_dirs: Sequence[str | os.PathLike] = (),
                     band_filters: FilterMap | None = None) -> BPZSetup:
    """Build a writable BPZ data directory for a template set and filters.

    Parameters
    ----------
    data_path
        Directory to create (or reuse: existing AB files of the same names are kept).
    templates
        An SED library (:class:`rail.deepdisc.spectra.library.SEDLibrary`: a template set
        or any library; its entries are sorted by broad type) or a built-in set name
        (``cww``, ``cosmos``, ``oracle``).
    filters
        Filter names (project bands, ``.res`` names or paths, astro-sedpy names), one per
        band column, in the order of the ``bands`` BPZ will be given.
    madau
        Include Madau (1995) IGM attenuation (needed at z > 3).
    make_ab
        Generate the AB files now (recommended, see the module docstring).
    n_workers
        Processes for AB-file generation.
    filter_search_dirs
        Directories of ``<name>.res`` files searched before pz-rail-base's.
    band_filters
        The filters of bands that a survey file defines (band -> filter: the survey's, or a
        photometry table's, :func:`rail.deepdisc.store.tables.table_filters`).

    Raises
    ------
    OptionError
        Naming filters without a curve or an unknown template set, before anything is
        written.
    """
    curves = resolve_filters(filters, filter_search_dirs, what="BPZ filters",
                             filters=band_filters)
    tset = _template_set(templates)
    setup = _describe(data_path, tset, curves, madau)
    root = Path(setup.data_path)
    for sub in ("SED", "FILTER", "AB"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    files = write_sed_files(tset, root / "SED")
    (root / "SED" / setup.spectra_file).write_text("\n".join(files) + "\n", encoding="ascii")
    for c, fname in zip(curves, setup.filter_list, strict=True):
        write_res(c, root / "FILTER" / f"{fname}.res")
    if make_ab:
        make_ab_files(os.fspath(root), setup.templates, setup.filter_list, madau, n_workers)
    return setup


def describe_bpz_data(data_path: str | os.PathLike, templates: SEDLibrary | str,
                      filters: Sequence[str], *, madau: bool = True,
                      filter_search_dirs: Sequence[str | os.PathLike] = (),
                      band_filters: FilterMap | None = None) -> BPZSetup:
    """The :class:`BPZSetup` that :func:`prepare_bpz_data` will make, without writing.

    For pipelines whose BPZ stages are configured before the directory is built (by
    ``rail.tools.bpz_tools.BPZDataPreparer``); ``band_filters`` as there.
    """
    curves = resolve_filters(filters, filter_search_dirs, what="BPZ filters",
                             filters=band_filters)
    return _describe(data_path, _template_set(templates), curves, madau)


def _template_set(templates: SEDLibrary | str) -> SEDLibrary:
    """The library BPZ is given, sorted by broad type (BPZ's order)."""
    lib = builtin_templates(templates) if isinstance(templates, str) else templates
    return lib.by_broad_type()


def _describe(data_path, tset: SEDLibrary, curves, madau: bool) -> BPZSetup:
    return BPZSetup(data_path=os.fspath(data_path),
                    spectra_file=f"{Path(tset.name).name}.list",
                    filter_list=[Path(c.name).name.removesuffix(".res") for c in curves],
                    nt_array=tset.nt_array(), madau=madau, templates=sed_names(tset))


def bpz_stage_configs(setup: BPZSetup, bands: Sequence[str], err_bands: Sequence[str],
                      mag_limits: Mapping[str, float], ref_band: str, *, zmin: float = 0.0,
                      zmax: float = 3.0, dz: float = 0.01, zp_error: float = 0.02,
                      prior: str = "flat", nondetect_val: float = 99.0,
                      redshift_col: str = "redshift", hdf5_groupname: str = "",
                      chunk_size: int = 10000) -> tuple[dict[str, Any], dict[str, Any]]:
    """Configurations for ``BPZliteInformer`` and ``BPZliteEstimator`` on a prepared setup.

    Parameters
    ----------
    setup
        From :func:`prepare_bpz_data` (its filters are in the order of ``bands``).
    bands, err_bands
        Magnitude and magnitude-error columns, one per filter.
    mag_limits
        1-sigma limiting magnitude per band column (used for non-detections).
    ref_band
        Column of the prior's reference magnitude (one of ``bands``).
    zmin, zmax, dz
        Redshift grid (``nzbins`` follows from them).
    zp_error
        Zero-point error (mag) added in quadrature to every band.
    prior
        ``flat`` (no prior) or ``hdfn`` (Benitez 2000's HDF-N prior on the three broad
        types; calibrated at z < 6, it suppresses high-redshift solutions).

    Raises
    ------
    OptionError
        For inconsistent lengths, a ``ref_band`` outside ``bands``, missing limits, an
        unknown prior or a bad grid.
    """
    bands, err_bands = list(bands), list(err_bands)
    if not (len(bands) == len(err_bands) == len(setup.filter_list)):
        raise OptionError(f"bands ({len(bands)}), err_bands ({len(err_bands)}) and the BPZ "
                         f"filters ({len(setup.filter_list)}) must have the same length")
    if ref_band not in bands:
        raise OptionError(f"ref_band {ref_band!r} is not one of bands {bands}")
    missing = [b for b in bands if b not in mag_limits]
    if missing:
        raise OptionError(f"mag_limits has no value for {missing}")
    if prior not in ("flat", "hdfn"):
        raise OptionError(f"prior must be 'flat' or 'hdfn', got {prior!r}")
    if prior == "hdfn" and len(setup.nt_array) != 3:
        raise OptionError(f"the HDFN prior needs three broad types; the template set has "
                         f"{len(setup.nt_array)} ({setup.nt_array})")
    if not (zmax > zmin >= 0 and dz > 0):
        raise OptionError(f"bad redshift grid zmin={zmin}, zmax={zmax}, dz={dz}")
    nzbins = round((zmax - zmin) / dz) + 1
    common = {
        "zmin": float(zmin), "zmax": float(zmax), "nzbins": nzbins,
        "bands": bands, "err_bands": err_bands, "ref_band": ref_band,
        "mag_limits": {b: float(mag_limits[b]) for b in bands},
        "nondetect_val": float(nondetect_val), "redshift_col": redshift_col,
        "hdf5_groupname": hdf5_groupname, "bpz_ref_data_path": setup.data_path,
        "spectra_file": setup.spectra_file, "nt_array": list(setup.nt_array),
    }
    inform = dict(common, output_hdfn=True, override_file_offsets=True,
                  zp_offsets=[0.0] * len(bands))
    estimate = dict(common, dz=float(dz), filter_list=list(setup.filter_list),
                    madau_flag=setup.madau_flag, no_prior=prior == "flat",
                    zp_errors=[float(zp_error)] * len(bands), chunk_size=int(chunk_size),
                    override_file_offsets=True, zp_offsets=[0.0] * len(bands))
    return inform, estimate


def rail_bpz_data_copy(data_path: str | os.PathLike) -> str:
    """Copy pz-rail-base's BPZ ``SED`` and ``FILTER`` files into a writable directory.

    For running ``BPZliteEstimator`` with RAIL's own defaults (CWWSB4, DC2LSST filters)
    without writing AB files into the installed package.
    """
    import shutil

    from rail.utils.path_utils import find_rail_file

    src = Path(find_rail_file("examples_data/estimation_data/data"))
    root = Path(data_path)
    for sub in ("SED", "FILTER"):
        shutil.copytree(src / sub, root / sub, dirs_exist_ok=True)
    (root / "AB").mkdir(parents=True, exist_ok=True)
    return os.fspath(root)


def check_bpz_input(table: Mapping[str, Any], estimate_config: Mapping[str, Any],
                    source: str = "input") -> None:
    """Check, before BPZ runs, that a table has every column a BPZ configuration reads.

    pz-rail-bpz itself fails with a bare ``KeyError`` inside its first chunk; this names the
    missing columns and the table.

    Raises
    ------
    InputError
        Naming the missing band, error or reference columns.
    """
    group = estimate_config.get("hdf5_groupname", "")
    if group and group not in table:
        raise InputError(f"BPZ {source} has no group {group!r} (hdf5_groupname); it has "
                         f"{sorted(table)}")
    data = table[group] if group else table
    wanted = [*estimate_config["bands"], *estimate_config["err_bands"],
              estimate_config["ref_band"]]
    missing = sorted({c for c in wanted if c not in data})
    if missing:
        raise InputError(f"BPZ {source} lacks columns {missing} (bands/err_bands/ref_band)")
