"""Loading a script of ``benchmarks/`` or ``examples/`` as a module, for the tests of it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str | Path, name: str, register: bool = False) -> ModuleType:
    """Execute the script at ``path`` (relative to the repository root) as module ``name``;
    ``register`` also puts it in ``sys.modules`` (for dataclasses and pickling)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module
