"""Small file helpers: early checks of output paths and atomic writes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def check_output_path(path: str | os.PathLike, what: str = "output") -> Path:
    """Check, before any work, that a file can be written at ``path``.

    The parent directory is created if missing.

    Raises
    ------
    ValueError
        If the path names a directory or its directory cannot be created or written.
    """
    p = Path(os.path.expandvars(os.fspath(path))).expanduser()
    if p.is_dir():
        raise ValueError(f"{what} path {p} is a directory, not a file name")
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{what} path {p}: cannot create directory {parent}: {err}") from err
    probe = temporary_sibling(p)
    try:
        probe.touch(exist_ok=False)
    except OSError as err:
        raise ValueError(f"{what} path {p}: cannot write in {parent}: {err}") from err
    probe.unlink(missing_ok=True)
    if p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"{what} path {p} exists and is not writable")
    return p


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A unique hidden temporary name in the same directory as ``path``."""
    p = Path(path)
    return p.with_name(f".{p.name}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def atomic_output(path: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` only if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched, so a
    failed run never leaves a partial or corrupted output.
    """
    final = check_output_path(path, what)
    tmp = temporary_sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
