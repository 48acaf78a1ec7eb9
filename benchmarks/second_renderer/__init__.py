"""A second, independent renderer of JWST-like survey fields, for transfer tests.

Nothing of the main simulator's physics is used: its own population (:mod:`.population`),
analytic SEDs with SMC dust, nebular lines and the Inoue (2014) IGM (:mod:`.seds`,
:mod:`.igm`), Gaussian-mixture profiles with clumps (:mod:`.profiles`), double-Moffat PSFs
(:mod:`.psf`) and drizzle-like correlated noise (:mod:`.noise`), rendered with numpy and
scipy (no GalSim), by :mod:`.field`. The files follow ``rail-deepdisc fits-field``'s layout
(:mod:`.outputs`, options in :mod:`.config`);
only file conventions come from the package (units, WCS, atomic output, the spectroscopic
selection rule). ``benchmarks/second_renderer.py`` is the command; docs/second_renderer.md
describes the field.
"""

from .config import DEPTHS, FieldConfig
from .field import WrittenField, write_field
from .outputs import truth_table_from_store

__all__ = ["DEPTHS", "FieldConfig", "WrittenField", "truth_table_from_store", "write_field"]
