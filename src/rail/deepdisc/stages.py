"""Early configuration checks for this package's RAIL stages.

ceci merges a stage's section of the pipeline configuration into the stage's config without
checking the names, so a misspelt option is silently ignored, and a missing file is only
noticed when the stage runs, perhaps after an hour of training upstream. Stages that mix in
:class:`StrictConfigMixin` refuse unknown options and check their file-path options when they
are constructed, which ceci does for every stage of a pipeline before it runs any of them.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

#: keys ceci itself puts into a stage's section
_CECI_KEYS = frozenset({"name", "config", "aliases", "module_name", "classname", "nprocess",
                        "threads_per_process", "site"})


def _stage_section(config: Any, instance_name: str) -> dict[str, Any]:
    if isinstance(config, dict):
        overall = config
    elif config in (None, "", "None", "none"):
        return {}
    else:
        with open(config, encoding="utf-8") as fin:
            overall = yaml.safe_load(fin) or {}
    section = overall.get(instance_name, {}) or {}
    return section if isinstance(section, dict) else {}


class StrictConfigMixin:
    """Refuse unknown options; check that file-path options name existing files.

    Subclasses list their file-path options in ``path_options``; a value may hold several
    comma-separated paths, and names in ``path_keywords`` (e.g. built-in template sets) are
    accepted as they are.
    """

    path_options: tuple[str, ...] = ()
    path_keywords: tuple[str, ...] = ()

    def read_config(self, args: Any) -> None:
        super().read_config(args)
        section = _stage_section(self.get_input("config"), self.instance_name)
        allowed = set(self.config_options) | _CECI_KEYS | set(self.input_tags()) \
            | set(self.output_tags())
        unknown = sorted(set(section) - allowed)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for {type(self).__name__}; "
                             f"its options are {sorted(self.config_options)}")
        self.check_path_options()

    def check_path_options(self) -> None:
        """Raise FileNotFoundError naming the option whose file does not exist."""
        for option in self.path_options:
            value = self.config[option] if option in self.config else None
            if not value:
                continue
            for path in str(value).split(","):
                path = path.strip()
                if path and path not in self.path_keywords and \
                        not os.path.exists(os.path.expandvars(path)):
                    raise FileNotFoundError(f"{type(self).__name__} option {option}: "
                                            f"{path} does not exist")
