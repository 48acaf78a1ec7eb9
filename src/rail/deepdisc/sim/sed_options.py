"""The simulator's SED options: the library galaxies draw from and their emission lines."""

from __future__ import annotations

from dataclasses import dataclass

from rail.deepdisc.options import option
from rail.deepdisc.sim.randomise import RealismChoice
from rail.deepdisc.spectra.named_libraries import check_library_name


@dataclass(frozen=True, kw_only=True)
class SEDOptions(RealismChoice):
    """Which SEDs galaxies get: the library and nebular emission lines."""

    sed_library: str | None = option(
        None, "SED library: 'cosmos' (COSMOS templates x dust), 'cww' (CWW+SB), 'sps' "
        "(BC03 + CLOUDY stellar population synthesis, needs the sps extra: bagpipes), a "
        "template-list file (one SED file per line, or an EAZY templates .param file), "
        "or template libraries joined by '+' "
        "(their entries mixed, e.g. 'cosmos+cww'); None: the realism preset's value "
        "('cosmos')", metavar="NAME|FILE")
    emission_lines: bool | None = option(
        None, "add nebular emission lines to template SEDs (rest EW([OIII]+Hb) ~100 A at "
        "z~2 to ~760 A at z>=7; None: the realism preset's value; sps SEDs always have "
        "theirs unless this is False)")
    line_ew_scale: float = option(
        1.0, "factor on every emission-line equivalent width", ge=0, le=10)
    sed_distortion: float | None = option(
        None, "rms (mag) of a random smooth distortion of each galaxy's SED (knots every "
        "factor ~1.6 in rest wavelength; the limit band's magnitude kept): colours beyond "
        "the library's; None: the realism preset's value", ge=0, le=1)

    @property
    def library(self) -> str:
        """The SED library galaxies draw from (``sed_library`` or the preset's)."""
        return self.setting("sed_library")

    def lines_on(self) -> bool:
        """Whether galaxies get emission lines."""
        if self.emission_lines is not None:
            return self.emission_lines
        return self.library == "sps" or bool(self.setting("emission_lines"))

    def _check(self) -> None:
        check_library_name(self.library)
