"""``rail-deepdisc demo``: the main job, a JWST-like field end to end with the report."""

from __future__ import annotations

import argparse

from rail.deepdisc.fit.eazy_options import TemplateSetOptions


def _cmd_demo(args: argparse.Namespace) -> int:
    from rail.deepdisc.store.write_guard import WriteGuard
    from rail.pipelines.deepdisc.demo import run_demo

    # the folder is filled stage by stage and resumed: checked, not replaced
    with WriteGuard.for_args(args, folders={"--output-dir": args.output_dir}, overwrite=True):
        report = run_demo(args.output_dir, quick=args.quick,
                          eazy_templates=args.templates_file, progress=not args.quiet)
    with open(report, encoding="utf-8") as fin:
        text = fin.read()
    section = text.split("## ")[1] if "## " in text else text
    print("\n## " + section.strip())
    print(f"\nreport: {report}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the commands of this module to the ``rail-deepdisc`` parser."""
    demo = sub.add_parser("demo", parents=[common],
                          help="the main job: a JWST-like field end to end, with the report")
    demo.add_argument("--output-dir", required=True, help="directory for everything")
    demo.add_argument("--quick", action="store_true",
                      help="tiny settings (a few minutes; numbers are meaningless)")
    # EAZY's template option, as EazyInformer offers it (the report says which set ran)
    TemplateSetOptions.add_argument(demo, "templates_file", flag="--eazy-templates")
    demo.set_defaults(func=_cmd_demo)
