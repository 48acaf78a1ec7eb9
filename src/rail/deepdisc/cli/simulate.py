"""``rail-deepdisc simulate`` and ``show``: simulated fields and pictures of scenes."""

from __future__ import annotations

import argparse

from rail.deepdisc.cli.common import positive_float, positive_int


def _cmd_simulate(args: argparse.Namespace) -> int:
    from rail.deepdisc.sim.field import FieldSpec, simulate_field
    from rail.deepdisc.sim.surveys import SURVEYS

    if args.survey not in SURVEYS:
        raise ValueError(f"unknown survey {args.survey!r}; choose one of {sorted(SURVEYS)}")
    spec = FieldSpec(survey=args.survey, n_scenes=args.scenes, scene_size=args.size,
                     seed=args.seed, objects_per_scene=args.objects_per_scene, psf=args.psf,
                     mag_limit=args.mag_limit, zmax=args.zmax)
    path = simulate_field(spec, args.output, catalog_output=args.catalog_output,
                          n_workers=args.workers, progress=not args.quiet)
    from rail.deepdisc.store.scenes import SceneStore

    with SceneStore(path) as store:
        print(f"wrote {path}: {store.n_scenes} scenes, {store.n_objects} objects, "
              f"bands {', '.join(store.bands)}")
    return 0

def _cmd_show(args: argparse.Namespace) -> int:
    from rail.deepdisc.evaluate.display import show_scene

    out = show_scene(args.scenes, args.scene, args.output, labels=not args.no_labels)
    print(f"wrote {out}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the commands of this module to the ``rail-deepdisc`` parser."""
    sim = sub.add_parser("simulate", parents=[common],
                         help="simulate a field (population + rendering)")
    sim.add_argument("--survey", default="jades", help="survey preset: jades or lsst")
    sim.add_argument("--scenes", type=positive_int, required=True, help="number of scenes")
    sim.add_argument("--size", type=positive_int, default=128, help="scene side (pixels)")
    sim.add_argument("--seed", type=int, default=0, help="random seed")
    sim.add_argument("--objects-per-scene", type=positive_float, default=10.0,
                     help="mean galaxies centred in a scene (Poisson)")
    sim.add_argument("--psf", default="airy", choices=("airy", "optical"), help="PSF model")
    sim.add_argument("--mag-limit", type=float, default=None,
                     help="faintest magnitude in the detection band (default: preset)")
    sim.add_argument("--zmax", type=positive_float, default=None,
                     help="highest redshift (default: preset)")
    sim.add_argument("--workers", type=positive_int, default=None,
                     help="rendering processes (default: all cores)")
    sim.add_argument("--catalog-output", default=None,
                     help="also write the population catalog (hdf5) here")
    sim.add_argument("--output", required=True, help="scene store to write (hdf5)")
    sim.set_defaults(func=_cmd_simulate)

    show = sub.add_parser("show", parents=[common],
                          help="draw a scene as an RGB PNG with truth boxes")
    show.add_argument("scenes", help="scene store (hdf5)")
    show.add_argument("--scene", type=int, default=0, help="scene index")
    show.add_argument("--no-labels", action="store_true", help="no redshift labels")
    show.add_argument("--output", required=True, help="PNG to write")
    show.set_defaults(func=_cmd_show)
