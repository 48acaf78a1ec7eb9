"""One write guard per run: every path it reads and writes, checked before any work.

A :class:`WriteGuard` is made once by a command (or a library entry point) from every path
the run reads -- each path option, and the files a YAML input names (a survey file's noise
kernels and PSFs, ``field_inputs.yml``'s mosaics and catalogs) -- and every path it writes.
Entering it refuses, before anything is created:

* a write path that is an existing directory, or that is (also through links or relative
  paths) one of the read paths;
* a write path whose folder cannot be created or written;
* two writes to one path;
* an output folder holding files (unless ``overwrite``), or holding one of the run's inputs.

Entering it then takes a lock per output (:func:`acquire_lock`: ``<folder>/.<name>.lock``,
created exclusively, holding the run's host and process id), so that a second run writing
the same output at the same time is refused with one line naming the output and the run
writing it; a lock a dead process of this host left is removed. The locks are released when
the guard exits, whether the run succeeded, failed or was interrupted (SIGINT, SIGTERM).

While it is entered, files are written atomically (:func:`~rail.deepdisc.store.atomic.\
atomic_output`: a temporary name renamed into place), an output folder is filled under a
fresh hidden name and renamed into place whole (:meth:`WriteGuard.folder`), SIGTERM stops the
run as SIGINT does (:class:`~rail.deepdisc.errors.Interrupted`), and on any failure or
interruption the run's own temporary files and the folders it created are removed. Temporary
files that dead runs left beside the outputs are removed on entry, and an output a dead run
had moved aside to rename its replacement in is put back if the replacement is missing
(:func:`recover_stale_asides`).

:func:`check_writes` is the check itself; the RAIL stages' early output checks use it too
(:meth:`rail.deepdisc.stages.StrictConfigMixin.check_output_paths`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rail.deepdisc.errors import Interrupted, OutputPathError
from rail.deepdisc.store.atomic import (
    _input_pairs,
    check_distinct_outputs,
    check_output_path,
    is_dead_process,
    make_parents,
    missing_parents,
    nearest_existing,
    process_tag,
    remove_stale_temporaries,
    same_file,
    temporary_sibling,
)

PathLike = str | os.PathLike
Reads = Mapping[str, PathLike | Iterable[PathLike] | None]
Paths = Mapping[str, PathLike | None]

#: ceci's and this package's stage temporaries: ``inprogress_<host>-<pid>-<hex6>_<name>``
#: and the MPI parts beside them (``<that>.part00000``)
STAGE_PREFIX = "inprogress_"
_STAGE_TMP = re.compile(r"^inprogress_(?P<owner>[\w.]+-\d+)-[0-9a-f]{6}_(?P<name>.+?)"
                        r"(?P<part>\.part\d{5})?$")
_YAML_SUFFIXES = (".yml", ".yaml")


# -- what a run reads ----------------------------------------------------------------------
def _existing(value: Any) -> str | None:
    """The file or folder a value names (``path[EXT]`` of a FITS extension too), or None."""
    from rail.deepdisc.store.mosaic_io import split_spec

    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value).strip():
        return None
    text = os.path.expanduser(os.path.expandvars(os.fspath(value).strip()))
    for candidate in (text, split_spec(text)[0]):
        if os.path.exists(candidate):
            return candidate
    return None


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, str) and "," in value and not os.path.exists(value):
        yield from value.split(",")  # comma-separated path options (template sets)
    else:
        yield value


def files_named_by(yaml_path: PathLike) -> list[str]:
    """The existing files a YAML file names (relative paths are relative to it): a survey
    file's PSFs and noise kernels, ``field_inputs.yml``'s mosaics and catalogs."""
    import yaml

    try:
        with open(yaml_path, encoding="utf-8") as fin:
            data = yaml.safe_load(fin)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    folder = Path(yaml_path).parent
    found = []
    for leaf in _leaves(data):
        if isinstance(leaf, str) and leaf.strip():
            text = os.path.expanduser(os.path.expandvars(leaf.strip()))
            candidate = _existing(text if os.path.isabs(text) else folder / text)
            if candidate is not None and os.path.isfile(candidate):
                found.append(candidate)
    return found


def resolve_reads(reads: Reads) -> dict[str, list[str]]:
    """``{option: paths}`` of the existing files and folders each option names, with the
    files named by the YAML files among them (a survey file's companions)."""
    out: dict[str, list[str]] = {}
    for what, value in reads.items():
        paths = []
        for leaf in _leaves(value):
            path = _existing(leaf)
            if path is None:
                continue
            paths.append(path)
            if path.lower().endswith(_YAML_SUFFIXES) and os.path.isfile(path):
                paths += files_named_by(path)
        if paths:
            out[what] = paths
    return out


def reads_of_args(args: argparse.Namespace | Mapping[str, Any],
                  skip: Iterable[str] = ()) -> dict[str, list[str]]:
    """The reads of a command: every option value naming an existing file or folder
    (options named in ``skip``, the outputs, left out), as ``{--flag: paths}``."""
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    skip = set(skip) | {"func", "command", "quiet"}
    named = {(k if k.startswith("-") else "--" + k.replace("_", "-")): v
             for k, v in values.items() if k not in skip}
    return resolve_reads(named)


# -- the check -----------------------------------------------------------------------------
def check_writes(writes: Mapping[str, PathLike | None], reads: Reads, *,
                 create_parents: bool = False) -> dict[str, Path]:
    """Refuse outputs that would lose something, before any work.

    Parameters
    ----------
    writes
        What each output is (an option, e.g. ``"--output"``) -> its file (None: not
        written this run).
    reads
        What each input is -> its path(s); the files YAML inputs name are added
        (:func:`resolve_reads`).
    create_parents
        Create the outputs' missing folders once every check passed.

    Returns
    -------
    dict
        What -> the output's path.

    Raises
    ------
    OutputPathError
        For an output that is a directory, that is one of the reads, that another output
        also names, or whose folder cannot be created or written (naming both).
    """
    check_distinct_outputs(dict(writes))
    # the reads as given (perhaps not written yet, by an upstream stage), then the files
    # they name (a survey file's noise kernels and PSFs)
    named = {f"{what} (a file it names)": paths for what, paths in resolve_reads(reads).items()}
    reads = {**reads, **named}
    for what, path in writes.items():
        if path not in (None, ""):
            _check_folder_is_no_input(path, what, reads)
    finals = {what: check_output_path(path, what, reads, create_parent=False)
              for what, path in writes.items() if path not in (None, "")}
    if create_parents:
        for path in finals.values():
            make_parents(path)
    return finals


def _check_folder_is_no_input(path: PathLike, what: str, reads: Reads) -> None:
    """Refuse an output inside a "folder" that is one of the reads, a file (e.g. a
    checkpoint folder given the input store's name): the message names that input."""
    folder = nearest_existing(Path(path).parent)
    if folder.is_dir():
        return
    for option, source in _input_pairs(reads):
        if same_file(folder, source):
            raise OutputPathError(f"{what} {path}: its folder {folder} is an input of this "
                                  f"run ({option}), a file; choose another folder (nothing "
                                  "written)")


def check_folder(path: PathLike, what: str, reads: Reads, overwrite: bool = False) -> Path:
    """Refuse an output folder that is a file, that holds one of the reads (or is one), that
    holds files and ``overwrite`` is not given, or whose place cannot be written."""
    p = Path(os.path.expanduser(os.path.expandvars(os.fspath(path))))
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{what} {p} is a file, not a folder; nothing written")
    for option, source in _input_pairs(reads):
        real, folder = os.path.realpath(source), os.path.realpath(p)
        if real == folder or real.startswith(folder + os.sep):
            raise OutputPathError(f"{what} {p} holds {source}, an input of this run "
                                  f"({option}); choose another folder (nothing written)")
    if p.is_dir():
        held = sorted(x.name for x in p.iterdir())
        if held and not overwrite:
            raise OutputPathError(f"{what} {p} exists and holds files ({', '.join(held[:3])}"
                                  f"{', ...' if len(held) > 3 else ''}); give a new or empty "
                                  "folder, or --overwrite to replace the folder whole "
                                  "(nothing written)")
    check_output_path(temporary_sibling(p), what, create_parent=False)
    return p


# -- temporaries ---------------------------------------------------------------------------
def _stage_temporaries(final: Path) -> Iterator[tuple[Path, str]]:
    """(path, owner) of the stage temporaries (and their parts) of ``final``."""
    parent = final.parent if str(final.parent) else Path(".")
    if not parent.is_dir():
        return
    for candidate in parent.glob(f"{STAGE_PREFIX}*_{final.name}*"):
        match = _STAGE_TMP.match(candidate.name)
        if match and match["name"] == final.name and candidate.is_file():
            yield candidate, match["owner"]


def remove_stale_stage_temporaries(final: PathLike) -> list[Path]:
    """Remove the ``inprogress_`` files (and ``.partNNNNN`` parts) of ``final`` that dead
    runs left; those of live runs and other hosts are left alone."""
    removed = []
    for candidate, owner in _stage_temporaries(Path(final)):
        if is_dead_process(owner):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def remove_own_temporaries(final: PathLike) -> None:
    """Remove this process's temporary files (and folders) of ``final``."""
    p = Path(final)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        return
    tag = process_tag()
    for candidate in parent.glob(f".{p.name}.{tag}-*.tmp"):
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
    for candidate, owner in _stage_temporaries(p):
        if owner == tag:
            candidate.unlink(missing_ok=True)


#: a replaced output moved aside while its replacement is renamed in:
#: ``.<name>.<host>-<pid>-<hex8>.old``
_ASIDE = re.compile(r"^\.(?P<name>.+)\.(?P<owner>[\w.]+-\d+)-[0-9a-f]{8}\.old$")


def aside_sibling(path: PathLike) -> Path:
    """A unique hidden name beside ``path`` to move the output it replaces to."""
    p = Path(path)
    return p.with_name(f".{p.name}.{process_tag()}-{uuid.uuid4().hex[:8]}.old")


def recover_stale_asides(final: PathLike) -> list[Path]:
    """Undo what a dead run left half done when replacing ``final``: killed (SIGKILL, power
    loss) between moving the old output aside and renaming its replacement in, the output
    is missing and the old one aside: it is put back; killed after, the aside copy is
    removed. Asides of live runs and of other hosts are left alone.

    Returns
    -------
    list of Path
        The asides put back or removed.
    """
    p = Path(os.path.expanduser(os.path.expandvars(os.fspath(final))))
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        return []
    found = []
    for candidate in parent.glob(f".{p.name}.*.old"):
        match = _ASIDE.match(candidate.name)
        if match and match["name"] == p.name and is_dead_process(match["owner"]):
            found.append(candidate)
    for candidate in sorted(found, key=lambda c: c.lstat().st_mtime, reverse=True):
        if not os.path.lexists(p):
            os.replace(candidate, p)  # the newest: the output as it was last
        elif candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
    return found


# -- output locks --------------------------------------------------------------------------
#: this process's held locks -> how many guards hold each (a guard inside a guard)
_HELD: dict[Path, int] = {}
#: how long a lock file may stay empty (its owner not written yet) before it is stale
_EMPTY_LOCK_GRACE_S = 30.0


def follower_rank() -> bool:
    """True in a process of a distributed job (``torchrun`` sets ``RANK``) other than rank 0:
    the job's outputs are rank 0's to lock, clean and write, so a follower's guard only
    checks them (otherwise the ranks of one job would refuse each other's lock)."""
    return os.environ.get("RANK", "0").strip() not in ("", "0")


def lock_path(final: PathLike) -> Path:
    """The lock of an output: ``<folder>/.<name>.lock``."""
    p = Path(os.path.abspath(os.path.expanduser(os.path.expandvars(os.fspath(final)))))
    return Path(os.path.realpath(p.parent)) / f".{p.name}.lock"  # one lock through links


def _lock_owner(lock: Path) -> str | None:
    """The process tag in a lock file ('' while its owner has not written it yet), None if
    the lock is gone."""
    for _ in range(20):
        try:
            owner = lock.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError:
            owner = ""
        if owner:
            return owner
        time.sleep(0.05)  # created an instant ago: its owner writes the tag next
    return ""


def _is_stale(lock: Path, owner: str) -> bool:
    """A lock of a process of this host that no longer runs, an old empty lock (its owner
    died between creating and writing it), or one with this process's tag this process does
    not hold (a dead process whose pid was reused)."""
    if owner == process_tag():
        return lock not in _HELD
    if not owner:
        try:
            return time.time() - lock.stat().st_mtime > _EMPTY_LOCK_GRACE_S
        except FileNotFoundError:
            return True
    return is_dead_process(owner)


def acquire_lock(final: PathLike, what: str) -> Path:
    """Take the lock of the output ``final`` (created with ``O_CREAT | O_EXCL``, holding this
    process's tag); a stale lock (:func:`_is_stale`) is removed first.

    Raises
    ------
    OutputPathError
        If another live run holds it (naming the output and that run's process id).
    """
    lock = lock_path(final)
    if lock in _HELD:
        _HELD[lock] += 1
        return lock
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is None:
                continue  # released meanwhile
            if _is_stale(lock, owner):
                try:  # unless another run took it over meanwhile
                    if lock.read_text(encoding="utf-8").strip() == owner:
                        lock.unlink(missing_ok=True)
                except OSError:
                    pass
                continue
            host, _, pid = owner.rpartition("-")
            who = f"pid {pid} on {host}" if owner else "a run starting now"
            raise OutputPathError(
                f"{what} {final} is being written by another run ({who}; lock {lock}); wait "
                "for it to finish or choose another name (nothing written)") from None
        except OSError as err:
            raise OutputPathError(f"{what} {final}: cannot create its lock {lock}: "
                                  f"{err.strerror or err} (nothing written)") from err
        try:
            os.write(fd, process_tag().encode())
        finally:
            os.close(fd)
        _HELD[lock] = 1
        return lock
    raise OutputPathError(f"{what} {final}: its lock {lock} keeps changing hands; another run "
                          "is writing it (nothing written)")


def release_lock(lock: Path) -> None:
    """Release a lock taken by :func:`acquire_lock` (the file is removed by its last
    holder in this process, and only if it still holds this process's tag)."""
    count = _HELD.get(lock, 0) - 1
    if count > 0:
        _HELD[lock] = count
        return
    _HELD.pop(lock, None)
    try:
        if lock.read_text(encoding="utf-8").strip() == process_tag():
            lock.unlink(missing_ok=True)
    except OSError:
        pass


# -- signals -------------------------------------------------------------------------------
def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise :class:`Interrupted` inside the block, so that every
    ``finally`` on the way out removes its temporary files; the handlers are restored
    after. Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, _raise_interrupted)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# -- the guard -----------------------------------------------------------------------------
class WriteGuard:
    """Every read and write of one run; refuses losses before any work (see the module).

    Parameters
    ----------
    reads
        What each input is (an option) -> its path(s); values naming no existing file are
        ignored, the files YAML inputs name are added (:func:`resolve_reads`).
    writes
        What each output file is -> its path (None: not written).
    folders
        What each output folder is -> its path: filled under a hidden name through
        :meth:`folder` and renamed into place whole.
    overwrite
        Replace output folders that hold files (the user asked for it).
    """

    def __init__(self, *, reads: Reads | None = None, writes: Paths | None = None,
                 folders: Paths | None = None, overwrite: bool = False):
        self.reads = resolve_reads(reads or {})
        self.writes = {k: v for k, v in (writes or {}).items() if v not in (None, "")}
        self.folders = {k: v for k, v in (folders or {}).items() if v not in (None, "")}
        self.overwrite = overwrite
        self._created: list[Path] = []
        self._locks: list[Path] = []
        self._signals = interruptible()

    @classmethod
    def for_args(cls, args: argparse.Namespace, *, writes: Paths | None = None,
                 folders: Paths | None = None, overwrite: bool = False,
                 reads: Reads | None = None, skip: Iterable[str] = ()) -> WriteGuard:
        """The guard of a command: its reads are every option value naming an existing
        path, but the outputs' (``--output`` -> ``output``) and those named in ``skip``
        (e.g. positional arguments, given in ``reads`` under their own name), plus
        ``reads``."""
        out_dests = {k.lstrip("-").replace("-", "_") for k in [*(writes or {}),
                                                                 *(folders or {})]}
        found = reads_of_args(args, skip=out_dests | set(skip))
        for what, paths in resolve_reads(reads or {}).items():
            found.setdefault(what, []).extend(paths)
        guard = cls(writes=writes, folders=folders, overwrite=overwrite)
        guard.reads = found
        return guard

    def check(self) -> None:
        """Refuse every hazard (OutputPathError); creates nothing."""
        check_writes(self.writes, self.reads)
        check_distinct_outputs({**self.writes, **self.folders})
        for what, path in self.folders.items():
            check_folder(path, what, self.reads, self.overwrite)
            for other, file in self.writes.items():
                if same_file(file, path):
                    raise OutputPathError(f"{other} and {what} are the same path {path}")

    def __enter__(self) -> WriteGuard:
        self.check()
        outputs = {**self.writes, **self.folders}
        self._created = sorted({p for path in outputs.values()
                                for p in missing_parents(Path(path).absolute())},
                               key=lambda p: len(p.parts), reverse=True)
        self._signals.__enter__()
        if follower_rank():  # rank 0 of the job locks, cleans and writes; the others check
            self._created = []
            return self
        try:
            for what, path in outputs.items():
                make_parents(Path(path).absolute())
                self._locks.append(acquire_lock(path, what))
            for path in outputs.values():
                recover_stale_asides(path)
                remove_stale_temporaries(path)
                remove_stale_stage_temporaries(path)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self._release()  # first: the lock files sit in the folders this run created
            if exc_type is not None:
                self.clean()  # its temporaries and the created folders left empty
            else:
                self._remove_created_if_empty()
        finally:
            self._signals.__exit__(exc_type, exc, tb)
        return False

    def _release(self) -> None:
        while self._locks:
            release_lock(self._locks.pop())

    def clean(self) -> None:
        """Remove this run's temporary files, and the folders it created if left empty."""
        for path in [*self.writes.values(), *self.folders.values()]:
            remove_own_temporaries(path)
        self._remove_created_if_empty()

    def _remove_created_if_empty(self) -> None:
        for folder in self._created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                pass

    @contextmanager
    def folder(self, what: str) -> Iterator[Path]:
        """Yield a fresh hidden folder beside the output folder ``what``; when the block
        succeeds it replaces the output folder whole (the old one, if any, is removed only
        once the new one is in place), else it is removed."""
        final = Path(self.folders[what]).absolute()
        make_parents(final)
        staging = temporary_sibling(final)
        staging.mkdir()
        try:
            yield staging
            publish_folder(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise



class FileSet:
    """Files of one output published together (a survey file and its companions): each is
    written under a temporary name (:meth:`stage`); :meth:`publish` renames them into place,
    moving the files they replace aside; :func:`file_set` puts those back if the block fails
    after (e.g. the file naming the others is refused when read back)."""

    def __init__(self) -> None:
        self.staged: dict[Path, Path] = {}
        self.backups: dict[Path, Path] = {}
        self.published: list[Path] = []

    def stage(self, final: PathLike) -> Path:
        """The temporary name to write ``final`` under."""
        final = Path(final)
        make_parents(final)
        self.staged[final] = temporary_sibling(final)
        return self.staged[final]

    def publish(self) -> None:
        """Rename every staged file into place (the replaced ones kept aside)."""
        for final, tmp in self.staged.items():
            if final.exists():
                self.backups[final] = aside_sibling(final)
                os.replace(final, self.backups[final])
            os.replace(tmp, final)
            self.published.append(final)

    def rollback(self) -> None:
        """Put back what was replaced; remove what was staged or published."""
        for final in reversed(self.published):
            if final in self.backups:
                os.replace(self.backups.pop(final), final)
            else:
                final.unlink(missing_ok=True)
        for tmp in self.staged.values():
            tmp.unlink(missing_ok=True)

    def commit(self) -> None:
        """Forget the replaced files."""
        for backup in self.backups.values():
            backup.unlink(missing_ok=True)


@contextmanager
def file_set() -> Iterator[FileSet]:
    """A :class:`FileSet`: committed if the block succeeds, rolled back if it fails."""
    files = FileSet()
    try:
        yield files
    except BaseException:
        files.rollback()
        raise
    files.commit()


def publish_folder(staging: Path, final: Path) -> None:
    """Rename a complete folder into place: over a missing or empty folder at once, over
    a full one by moving the old aside first (removed after)."""
    if final.is_dir() and any(final.iterdir()):
        old = aside_sibling(final)
        os.replace(final, old)
        try:
            os.replace(staging, final)
        except BaseException:
            os.replace(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    if final.is_dir():
        final.rmdir()
    os.replace(staging, final)

