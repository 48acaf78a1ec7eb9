"""Filter transmission curves for template fitters (BPZ, EAZY), found by name.

A filter name is resolved, in this order, as

1. a project band name (``jwst_f200w``, ``lsst_i``; see :mod:`rail.deepdisc.spectra.bands`), whose
   curve comes from astro-sedpy, or a band of the ``filters`` mapping given (the bands of a
   survey file, scene store or photometry table: an astro-sedpy filter or a curve);
2. the path of a two-column text file (wavelength in Angstrom, throughput), e.g. a BPZ
   ``.res`` file;
3. ``<name>.res`` in one of the search directories, which always end with pz-rail-base's
   BPZ filter directory (``DC2LSST_u`` ... ``DC2LSST_y``, HSC, DECam, Euclid, Roman, ...);
4. an astro-sedpy filter name (``wfc3_ir_f160w``, ``lsst_baseline_r``, ...).

Nothing is downloaded. :func:`eazy_res_text` writes curves as EAZY ``FILTER.RES`` text (BPZ's
``.res`` files: :func:`rail.deepdisc.fit.bpz_files.write_res`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rail.deepdisc.errors import DeepDiscError, InputError, OptionError
from rail.deepdisc.spectra.bands import (
    SEDPY_FILTER_NAMES,
    BandFilter,
    FilterMap,
    load_filter,
    project_filter,
)


@dataclass(frozen=True)
class FilterCurve:
    """One filter's transmission curve.

    Attributes
    ----------
    name
        The name it was asked for (used for file names: BPZ ``<name>.res``).
    wave
        Wavelength in Angstrom, strictly increasing.
    throughput
        Transmission (photon-counting response), non-negative.
    source
        Where the curve came from (for provenance).
    """

    name: str
    wave: np.ndarray
    throughput: np.ndarray
    source: str

    @property
    def pivot(self) -> float:
        """Pivot wavelength (Angstrom) of a photon-counting filter."""
        from scipy.integrate import trapezoid

        num = trapezoid(self.wave * self.throughput, self.wave)
        den = trapezoid(self.throughput / self.wave, self.wave)
        return float(np.sqrt(num / den))

    def resampled(self, dlnwave: float = 0.002) -> FilterCurve:
        """The curve on a grid uniform in ln(wavelength) with step ``dlnwave``.

        Filter curves are smooth; astro-sedpy's tabulations are much finer than needed
        (up to 7,000 points), which makes synthetic photometry slow in eazy-py's pure-Python
        integration. Curves already coarser than the step are returned unchanged.
        """
        if self.wave.size <= np.log(self.wave[-1] / self.wave[0]) / dlnwave + 2:
            return self
        n = int(np.ceil(np.log(self.wave[-1] / self.wave[0]) / dlnwave)) + 1
        wave = self.wave[0] * np.exp(np.linspace(0.0, np.log(self.wave[-1] / self.wave[0]), n))
        thr = np.interp(wave, self.wave, self.throughput)
        return FilterCurve(self.name, wave, thr,
                           f"{self.source} (resampled, dln(lambda) = {dlnwave:g})")


def rail_filter_dir() -> str:
    """pz-rail-base's directory of BPZ ``.res`` filter files."""
    from rail.utils.path_utils import find_rail_file

    return find_rail_file("examples_data/estimation_data/data/FILTER")


def _check_curve(wave: np.ndarray, thr: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    wave = np.asarray(wave, dtype=float)
    thr = np.asarray(thr, dtype=float)
    if wave.ndim != 1 or wave.size < 3 or wave.shape != thr.shape:
        raise InputError(f"filter curve {source} needs at least 3 (wavelength, throughput) rows")
    if not (np.all(np.isfinite(wave)) and np.all(np.isfinite(thr))):
        raise InputError(f"filter curve {source} holds non-finite values")
    order = np.argsort(wave, kind="stable")
    wave, thr = wave[order], thr[order]
    keep = np.concatenate([[True], np.diff(wave) > 0])
    wave, thr = wave[keep], np.clip(thr[keep], 0.0, None)
    if not np.any(thr > 0):
        raise InputError(f"filter curve {source} has no positive throughput")
    if wave[0] <= 0:
        raise InputError(f"filter curve {source}: wavelengths must be positive Angstrom")
    return wave, thr


def read_filter_file(path: str | os.PathLike, name: str | None = None) -> FilterCurve:
    """Read a two-column text filter file (wavelength in Angstrom, throughput).

    Raises
    ------
    InputError
        If the file cannot be read or does not hold a usable curve, naming the file.
    """
    path = os.fspath(path)
    try:
        data = np.loadtxt(path, comments="#", usecols=(0, 1), ndmin=2)
    except (OSError, ValueError, IndexError) as err:
        raise InputError(f"cannot read filter file {path}: {err}") from err
    wave, thr = _check_curve(data[:, 0], data[:, 1], path)
    return FilterCurve(name or Path(path).name.removesuffix(".res"), wave, thr, path)


def _sedpy_curve(name: str, sedpy_name: str, filters: FilterMap | None = None) -> FilterCurve:
    from sedpy.observate import Filter

    filt = load_filter(name, filters) if project_filter(name, filters) is not None else \
        Filter(sedpy_name)
    wave, thr = _check_curve(filt.wavelength, filt.transmission, f"astro-sedpy:{sedpy_name}")
    # astro-sedpy trims zeros; give the curve zero wings so every integrator sees its edges
    step = np.diff(wave)
    wave = np.concatenate([[wave[0] - step[0]], wave, [wave[-1] + step[-1]]])
    thr = np.concatenate([[0.0], thr, [0.0]])
    return FilterCurve(name, wave, thr, f"astro-sedpy:{sedpy_name}")


def _band_curve(name: str, band: BandFilter, filters: FilterMap | None) -> FilterCurve:
    if band.sedpy_name:
        return _sedpy_curve(name, band.sedpy_name, filters)
    return FilterCurve(name, *_check_curve(band.wave, band.transmission, band.source),
                       band.source)


def resolve_filter(name: str, search_dirs: Sequence[str | os.PathLike] = (),
                   filters: FilterMap | None = None) -> FilterCurve:
    """Find the transmission curve of a filter by name (see the module docstring).

    ``filters`` maps the bands of a survey file, scene store or photometry table that are
    not built in to their filters (:mod:`rail.deepdisc.spectra.bands`).

    Raises
    ------
    OptionError
        If no curve is found, naming the filter and every place looked in.
    InputError
        If the filter's file holds no usable curve.
    """
    if not isinstance(name, str) or not name:
        raise OptionError(f"filter name must be a non-empty string, got {name!r}")
    band = project_filter(name, filters)
    if band is not None:
        return _band_curve(name, band, filters)
    if os.path.isfile(name):
        return read_filter_file(name)
    dirs = [os.fspath(d) for d in search_dirs] + [rail_filter_dir()]
    for d in dirs:
        candidate = os.path.join(d, f"{name}.res")
        if os.path.isfile(candidate):
            return read_filter_file(candidate, name)
    try:
        return _sedpy_curve(name, name)
    except (ValueError, OSError):
        pass
    raise OptionError(
        f"no filter curve for {name!r}: it is not a project band "
        f"({', '.join(SEDPY_FILTER_NAMES)}), not a file, not <name>.res in {dirs}, "
        "and not an astro-sedpy filter name")


def resolve_filters(names: Iterable[str], search_dirs: Sequence[str | os.PathLike] = (),
                    what: str = "filters", filters: FilterMap | None = None
                    ) -> list[FilterCurve]:
    """Resolve several filters; the error names every filter that has no curve."""
    names = list(names)
    if not names:
        raise OptionError(f"{what}: no filters given")
    curves, problems = [], []
    for n in names:
        try:
            curves.append(resolve_filter(n, search_dirs, filters))
        except DeepDiscError as err:
            problems.append(err)
    if problems:
        kind = OptionError if all(isinstance(e, OptionError) for e in problems) else InputError
        raise kind(f"{what}: " + "; ".join(str(e) for e in problems))
    return curves


def unknown_filters(names: Iterable[str], search_dirs: Sequence[str | os.PathLike] = (),
                    filters: FilterMap | None = None) -> list[str]:
    """The names for which :func:`resolve_filter` finds no usable curve, in order."""
    unknown = []
    for name in names:
        if project_filter(name, filters) is not None:
            continue
        try:
            resolve_filter(name, search_dirs, filters)
        except DeepDiscError:
            unknown.append(name)
    return unknown


def eazy_res_text(curves: Sequence[FilterCurve]) -> str:
    """The curves as an EAZY ``FILTER.RES`` file (filter *k* is number *k*, 1-based)."""
    lines = []
    for c in curves:
        lines.append(f"{c.wave.size:>6d} {c.name} {c.source} lambda_c= {c.pivot:.4e}")
        lines.extend(f"{i + 1:>6d} {w:.5e} {t:.5e}"
                     for i, (w, t) in enumerate(zip(c.wave, c.throughput, strict=True)))
    return "\n".join(lines) + "\n"
