"""A survey field delivered as surveys deliver theirs, for the field recipe: FITS mosaics
(``SCI`` + ``ERR``), model PSF images, a segmentation map, a photometric catalog without
redshifts and a
separate spectroscopic catalog whose redshifts were chosen like a real spectroscopic
selection (:class:`rail.deepdisc.sim.labels.SpecSelection`: bright objects more often, a dip
in the redshift desert), plus ``field_inputs.yml`` naming them with the tiler's options.

The field is one large simulated scene (:func:`rail.deepdisc.sim.field.simulate_field`)
written by :func:`rail.deepdisc.sim.fits_field.write_fits_field`; the scene store is kept
as ``truth.hdf5``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from rail.deepdisc.options import Options, option
from rail.deepdisc.sim.sed_options import SEDOptions

log = logging.getLogger(__name__)

#: galaxies per 128 x 128 pixels of the pre-training fields (RenderConfig's default)
_DENSITY_PER_SCENE = 10.0


@dataclass(frozen=True, kw_only=True)
class ExampleFieldOptions(Options):
    """What ``rail-deepdisc fits-field`` writes."""

    survey: str = option("jades", "survey preset of the field")
    mosaic_size: int = option(2816, "mosaic side in pixels (2816 at 0.03\"/pixel: 2.0 "
                              "arcmin^2)", ge=256, le=4096)
    density: float = option(_DENSITY_PER_SCENE, "galaxies per 128 x 128 pixels", gt=0,
                            le=100)
    spec_mag_50: float = option(26.5, "magnitude (survey's detection band) at which half of "
                                "the spectroscopic targets get a redshift")
    seed: int = option(0, "random seed", ge=0)
    overwrite: bool = option(False, "replace an output folder that already holds files, "
                             "whole (the new field is renamed into place once complete)")
    seds: SEDOptions = field(default_factory=SEDOptions)


@dataclass
class ExampleField:
    """Paths of a written example field."""

    inputs: str
    catalog: str
    spectra: str
    truth: str
    n_objects: int
    n_spec: int
    n_catalog: int = 0


def write_example_field(out_dir: str | os.PathLike, opts: ExampleFieldOptions,
                        progress: bool = True) -> ExampleField:
    """Simulate the field and write its mosaics, catalogs and ``field_inputs.yml``.

    The files are written into a fresh hidden folder renamed into place once complete: an
    ``out_dir`` holding files is refused unless ``opts.overwrite``, and then replaced
    whole, never mixed with an earlier field (:class:`~rail.deepdisc.store.write_guard.\
WriteGuard`).
    """
    from rail.deepdisc.store.write_guard import WriteGuard

    opts.validate()
    what = "output folder (--output-dir)"
    guard = WriteGuard(folders={what: out_dir}, overwrite=opts.overwrite)
    with guard, guard.folder(what) as out:  # published whole once complete
        paths = _write_field(out, opts, progress)
    final = Path(out_dir).absolute()
    moved = {k: str(final / Path(v).relative_to(out)) if isinstance(v, str) else v
             for k, v in paths.items()}
    return ExampleField(**moved)


def _write_field(out: Path, opts: ExampleFieldOptions, progress: bool) -> dict:
    """Write the field into the (new, empty) folder ``out``; the ExampleField's fields."""
    import yaml
    from astropy.table import Table

    from rail.deepdisc.sim.field import FieldSpec, simulate_field
    from rail.deepdisc.sim.fits_field import write_fits_field, write_psf_images
    from rail.deepdisc.sim.labels import SpecSelection
    from rail.deepdisc.sim.surveys import get_survey
    from rail.deepdisc.store.atomic import atomic_output

    truth = out / "truth.hdf5"
    truth_table = out / "truth_catalog.fits"
    inputs_path = out / "field_inputs.yml"
    preset = get_survey(opts.survey)
    spec = FieldSpec(survey=opts.survey, n_scenes=1, scene_size=opts.mosaic_size,
                     objects_per_scene=opts.density * (opts.mosaic_size / 128.0) ** 2,
                     seed=opts.seed, **opts.seds.given(SEDOptions.option_specs()))
    log.info("simulating a %d x %d pixel %s field", opts.mosaic_size, opts.mosaic_size,
             opts.survey)
    simulate_field(spec, truth, n_workers=1, progress=progress)
    selection = SpecSelection(band=preset.detection_band, mag_50=opts.spec_mag_50)
    field = write_fits_field(truth, out, spec_fraction=0.0, spec_selection=selection,
                             seed=opts.seed)
    n_spec = len(Table.read(field.spectra))
    psfs = write_psf_images(truth, out)
    write_truth_table(truth, truth_table)

    def rel(spec: str) -> str:
        return os.path.relpath(spec, out)

    inputs = {"catalog": rel(field.catalog),
              "images": {b: rel(p) for b, p in field.images.items()},
              "errors": {b: rel(p) for b, p in field.errors.items()},
              "segmap": rel(field.segmap), "id_col": "id", "redshift_col": "",
              "spec_catalog": rel(field.spectra),
              # the survey of the pre-training field is measured from the mosaics, with
              # the survey's model PSFs and the redshift range of the field
              "psfs": {b: rel(p) for b, p in psfs.items()},
              "zmax": preset.zmax, "detection_band": preset.detection_band,
              # the simulation's true redshifts of every catalog object, for the report
              "truth_catalog": rel(str(truth_table))}
    with atomic_output(inputs_path, "field inputs") as tmp:
        tmp.write_text("# the field's catalog, and its mosaics and spectra as options of the "
                       "tiler (rail-deepdisc field --inputs);\n# relative paths are "
                       "relative to this file\n"
                       + yaml.safe_dump(inputs, sort_keys=False), encoding="utf-8")
    n_catalog = field.object_id.size + field.outside_ids.size  # the rows it wrote
    log.info("wrote %s: %d catalog objects, %d of them on the mosaics' footprint, %d "
             "spectroscopic redshifts", inputs_path, n_catalog, field.object_id.size, n_spec)
    return {"inputs": str(inputs_path), "catalog": str(field.catalog),
            "spectra": str(field.spectra), "truth": str(truth),
            "n_objects": int(field.object_id.size), "n_spec": n_spec, "n_catalog": n_catalog}


def write_truth_table(store: str | os.PathLike, path: str | os.PathLike) -> str:
    """The true redshift, S/N and magnitude of every object of a simulated store, as a FITS
    table (``id`` = the catalog's id, ``redshift``, ``snr_<band>``, ``mag_<band>``): what
    the field recipe's report compares the catalogs with on the objects without spectra."""
    from astropy.table import Table

    from rail.deepdisc.store.atomic import atomic_output
    from rail.deepdisc.store.scenes import SceneStore

    with SceneStore(os.fspath(store)) as st:
        names = [c for c in st.object_columns if c.startswith(("snr_", "mag_"))
                 and not c.startswith("mag_err_")]
        cols = st.objects(["object_id", "redshift", *names])
    table = Table({"id": cols.pop("object_id"), **cols})
    with atomic_output(path, "truth catalog") as tmp:
        table.write(tmp, format="fits")
    return os.fspath(path)
