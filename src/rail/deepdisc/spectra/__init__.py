"""The spectral model: the ground floor that the simulator and the template fitters share.

Modules here import nothing from the simulator (:mod:`rail.deepdisc.sim`), the fitters
(:mod:`rail.deepdisc.fit`), the network, the stores or the RAIL stages
(``tests/test_architecture.py`` checks it):

* :mod:`~rail.deepdisc.spectra.bands`: band names and their filters (built-in, astro-sedpy,
  and those of a survey file, store or photometry table, given explicitly);
* :mod:`~rail.deepdisc.spectra.filters`: filter curves by name for the fitters;
* :mod:`~rail.deepdisc.spectra.sed_files`: readers of SED files, template lists and EAZY
  ``.param`` files;
* :mod:`~rail.deepdisc.spectra.library`: SED libraries, the one type of the simulator's
  SEDs and the fitters' template sets (entries on one grid, BPZ broad types);
* :mod:`~rail.deepdisc.spectra.templates`: the libraries read from files (CWW+SB, COSMOS, a
  user's list), as template sets and as the simulator's templates x dust;
* :mod:`~rail.deepdisc.spectra.named_libraries`: the libraries by ``sed_library`` name;
* :mod:`~rail.deepdisc.spectra.template_sets`: the fitters' built-in template sets by name;
* :mod:`~rail.deepdisc.spectra.photometer`: synthetic photometry of library entries;
* :mod:`~rail.deepdisc.spectra.dust`, :mod:`~rail.deepdisc.spectra.igm`,
  :mod:`~rail.deepdisc.spectra.nebular`: dust, intergalactic medium, emission lines;
* :mod:`~rail.deepdisc.spectra.sps`: stellar population synthesis (optional bagpipes);
* :mod:`~rail.deepdisc.spectra.sed_distortion`: random smooth SED distortions;
* :mod:`~rail.deepdisc.spectra.interpolate`: row-wise interpolation on a uniform grid.
"""
