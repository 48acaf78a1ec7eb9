"""Output paths that never lose what the user owns: early checks and atomic writes.

* :func:`check_output_path` refuses, before any work, an output path that is a directory,
  that names one of the run's inputs, or that cannot be written;
* :func:`atomic_output` writes to a unique hidden temporary name beside the output (unique
  per process and call, so two runs writing one output never share it) and renames it onto
  the output only when the writing block succeeded: the rename is the only publication;
* :func:`remove_stale_temporaries` removes temporary files that dead processes left beside an
  output (the process id is part of the name).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from rail.deepdisc.errors import OutputPathError

#: hidden temporary names: ``.<final name>.<host>-<pid>-<random>.tmp``
_TMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<owner>[\w.]+-\d+)-[0-9a-f]{8}\.tmp$")


def process_tag() -> str:
    """``<host>-<pid>``: names this process among the runs sharing a file system."""
    host = re.sub(r"[^\w.]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def is_dead_process(tag: str) -> bool:
    """Whether a :func:`process_tag` names a process of this host that no longer runs."""
    host, _, pid = tag.rpartition("-")
    if host != process_tag().rpartition("-")[0] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _expand(path: str | os.PathLike) -> Path:
    return Path(os.path.expandvars(os.fspath(path))).expanduser()


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (also through links), existing or not."""
    pa, pb = _expand(a), _expand(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return os.path.realpath(pa) == os.path.realpath(pb)


def _input_pairs(inputs: Iterable[str | os.PathLike | None]
                 | Mapping[str, str | os.PathLike | Iterable[str | os.PathLike] | None]
                 ) -> list[tuple[str, str | os.PathLike]]:
    """(what, path) of every input given as paths or as ``{option: path(s)}``."""
    if isinstance(inputs, Mapping):
        pairs = []
        for what, value in inputs.items():
            values = [value] if isinstance(value, (str, os.PathLike)) or value is None \
                else list(value)
            pairs += [(what, v) for v in values if v not in (None, "")]
        return pairs
    return [("", v) for v in inputs if v not in (None, "")]


def nearest_existing(path: str | os.PathLike) -> Path:
    """The path itself or its nearest ancestor that exists."""
    p = Path(os.path.abspath(_expand(path)))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def missing_parents(path: str | os.PathLike) -> list[Path]:
    """The ancestors of ``path`` that do not exist yet, deepest first."""
    p = Path(os.path.abspath(_expand(path))).parent
    missing = []
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing


def check_output_path(path: str | os.PathLike, what: str = "output",
                      inputs: Iterable[str | os.PathLike | None]
                      | Mapping[str, str | os.PathLike | Iterable[str | os.PathLike] | None]
                      = (), *, create_parent: bool = True) -> Path:
    """Check, before any work, that a file can be written at ``path``.

    Parameters
    ----------
    path
        The output file.
    what
        How to name the output in messages (e.g. ``"model"``, ``"--output"``).
    inputs
        The run's input files (or ``{option: path(s)}``, so that messages name the option);
        the output may not be any of them.
    create_parent
        Create the missing parent directories once the checks pass (the write guard of a
        whole run checks every output first and creates nothing).

    Raises
    ------
    OutputPathError
        If the path names a directory or an input, or its directory cannot be written.
    """
    p = _expand(path)
    if not p.name or p.is_dir():
        raise OutputPathError(f"{what} {p} is a directory, not a file name; nothing written")
    for option, source in _input_pairs(inputs):
        if same_file(p, source):
            read_as = f" (read as {option})" if option else ""
            raise OutputPathError(f"{what} {p} is also an input of this run{read_as}; choose "
                                  "another file name (nothing written)")
    parent = p.parent if str(p.parent) else Path(".")
    existing = nearest_existing(parent)
    if not existing.is_dir():
        raise OutputPathError(f"{what} {p}: cannot create directory {parent}: {existing} is "
                              "not a directory (nothing written)")
    probe = temporary_sibling(existing / p.name)
    try:
        probe.touch(exist_ok=False)
    except OSError as err:
        raise OutputPathError(f"{what} {p}: cannot write in {existing}: {err.strerror or err}"
                              " (nothing written)") from err
    probe.unlink(missing_ok=True)
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputPathError(f"{what} {p} exists and is not writable")
    if create_parent:
        make_parents(p)
    return p


def make_parents(path: str | os.PathLike) -> None:
    """Create the missing parent directories of an output file."""
    parent = _expand(path).parent
    if str(parent):
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputPathError(f"output {path}: cannot create directory {parent}: {err}") \
                from err


def check_distinct_outputs(outputs: dict[str, str | os.PathLike | None]) -> None:
    """Refuse two outputs of one run that name the same file (e.g. PDFs and detections).

    Parameters
    ----------
    outputs
        What each output is (e.g. ``"--detections"``) -> its path.
    """
    named = [(k, v) for k, v in outputs.items() if v not in (None, "")]
    for i, (what_a, a) in enumerate(named):
        for what_b, b in named[i + 1:]:
            if same_file(a, b):
                raise OutputPathError(f"{what_a} and {what_b} are the same file {a}; one would "
                                      "overwrite the other (nothing written)")


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A unique hidden temporary name (this host and process, random) beside ``path``."""
    p = Path(path)
    return p.with_name(f".{p.name}.{process_tag()}-{uuid.uuid4().hex[:8]}.tmp")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporary files of ``path`` left by processes that no longer run.

    A run killed before it could clean up (SIGKILL, power loss) leaves its hidden temporary
    file (or folder, for outputs that are folders) beside the output; the next run writing
    that output removes it. Temporary files of live processes (another run writing the same
    output now) and of other hosts are left alone.

    Returns
    -------
    list of Path
        The files removed.
    """
    p = _expand(path)
    removed = []
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        return removed
    for candidate in parent.glob(f".{p.name}.*.tmp"):
        match = _TMP_PATTERN.match(candidate.name)
        if match and match["name"] == p.name and is_dead_process(match["owner"]):
            if candidate.is_dir() and not candidate.is_symlink():
                shutil.rmtree(candidate, ignore_errors=True)
            else:
                candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


@contextmanager
def atomic_output(path: str | os.PathLike, what: str = "output",
                  inputs: Iterable[str | os.PathLike | None] = ()) -> Iterator[Path]:
    """Yield a unique temporary path; rename it to ``path`` only if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched, so a
    failed run never leaves a partial or corrupted output; temporary files of dead runs of
    the same output are removed first.
    """
    final = check_output_path(path, what, inputs)
    remove_stale_temporaries(final)
    tmp = temporary_sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
