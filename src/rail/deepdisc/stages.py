"""What every RAIL stage of this package checks before it does any work.

ceci merges a stage's section of the pipeline configuration into the stage's config without
checking the names, so a misspelt option is silently ignored; a missing file is only noticed
when the stage runs, perhaps after an hour of training upstream; an output path that is a
directory is deleted by ceci's finalisation; and two runs writing one output share ceci's
temporary name ``inprogress_<name>``. Stages that mix in :class:`StrictConfigMixin`:

* refuse unknown options and check their file-path options when they are constructed (ceci
  constructs every stage of a pipeline before it runs any of them);
* refuse, when their inputs and outputs are known, an output path that is a directory, that
  names one of the stage's inputs, or that another output of the stage also names;
* write their outputs under a temporary name unique to the run (host, process, random),
  renamed onto the final name at the end, and remove such files of dead runs;
* run by ceci's stage runner (``python -m ceci module.Stage``, every stage of a pipeline),
  name an input file that does not exist before they run, and hold the write guard's lock
  of each output while they run (a second run writing one of them is refused in one line).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

import yaml

from rail.deepdisc.errors import DeepDiscError, OptionError, OutputPathError, one_line
from rail.deepdisc.options import path_items
from rail.deepdisc.store.atomic import process_tag
from rail.deepdisc.store.write_guard import (
    STAGE_PREFIX,
    acquire_lock,
    check_writes,
    follower_rank,
    release_lock,
    remove_stale_stage_temporaries,
)

#: keys ceci itself puts into a stage's section
_CECI_KEYS = frozenset({"name", "config", "aliases", "module_name", "classname", "nprocess",
                        "threads_per_process", "site"})


_CECI_MISSING_OPTION = re.compile(r"^Missing configuration option (?P<key>\S+)$")
_CECI_MISSING_NAMES = re.compile(r"Input names:\s*(?P<names>.+)$", re.S)


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


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and str(value) not in ("", "None", "none")


_SESSION_FOLDER: list[str] = []
#: the output locks of the stage ceci's runner executes in this process (see ``validate``)
_STAGE_LOCKS: list[Path] = []


def session_folder() -> str:
    """A temporary folder of this Python session for the files behind outputs returned
    interactively (created once, removed when the session ends)."""
    if not _SESSION_FOLDER:
        import atexit
        import logging
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="rail-deepdisc-")
        atexit.register(shutil.rmtree, folder, True)
        logging.getLogger(__name__).info("outputs returned interactively are kept in %s "
                                         "(name an output to keep its file)", folder)
        _SESSION_FOLDER.append(folder)
    return _SESSION_FOLDER[0]


class StrictConfigMixin:
    """Refuse unknown options, missing files and destructive outputs; unique temporary names.

    Subclasses list their file-path options in ``path_options`` (or mark them ``path=True``
    in their option dataclass); a value may hold several comma-separated paths, and names in
    ``path_keywords`` (e.g. built-in template sets) are accepted as they are.
    """

    path_options: tuple[str, ...] = ()
    path_keywords: tuple[str, ...] = ()

    @classmethod
    def execute(cls, args: Any, comm: Any = None) -> Any:
        """ceci's stage runner (``python -m ceci module.Stage ...``, every stage of a
        pipeline): a user's mistake (a bad option, input or output path) ends the stage
        with one line naming it and exit status 2, Ctrl-C with one line and 130 — no
        traceback; anything else is a bug and keeps its traceback."""
        import sys

        try:
            return super().execute(args, comm)
        except (DeepDiscError, OSError) as err:
            print(f"{cls.name}: error: {one_line(err)}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print(f"{cls.name}: interrupted; outputs not complete were not written",
                  file=sys.stderr, flush=True)
            raise SystemExit(130) from None
        finally:
            while _STAGE_LOCKS:  # taken in validate
                release_lock(_STAGE_LOCKS.pop())

    def read_config(self, args: Any) -> None:
        config = self.get_input("config")
        if _is_path(config) and not os.path.exists(os.path.expandvars(os.fspath(config))):
            raise FileNotFoundError(f"{type(self).__name__} --config: {config} does not exist")
        try:
            super().read_config(args)
        except TypeError as err:
            # ceci's "Value of type <x>, when <y> was expected." names no option
            key = self._mistyped_option(args)
            if key is None:
                raise
            raise OptionError(f"{type(self).__name__}: option {key}: {one_line(err)}") from None
        except ValueError as err:
            # ceci's "Missing configuration option <key>", raised with a traceback
            missing = _CECI_MISSING_OPTION.match(str(err))
            if missing is None:
                raise
            raise OptionError(f"{type(self).__name__}: option {missing['key']} must be given "
                              f"(in the stage's section of the config file or as "
                              f"--{missing['key']}=...)") from None
        section = _stage_section(self.get_input("config"), self.instance_name)
        allowed = set(self.config_options) | _CECI_KEYS | set(self.input_tags()) \
            | set(self.output_tags())
        unknown = sorted(set(section) - allowed)
        if unknown:
            raise OptionError(f"unknown option(s) {unknown} for {type(self).__name__}; "
                              f"its options are {sorted(self.config_options)}")
        self.check_path_options()

    def _mistyped_option(self, args: Any) -> str | None:
        """The first option whose value (config file section, then command line) ceci's
        type check refuses, or None."""
        import copy

        given = dict(_stage_section(self.get_input("config"), self.instance_name))
        values = args if isinstance(args, dict) else vars(args)
        given.update({k: v for k, v in values.items() if v is not None})
        for key, value in given.items():
            param = self.config_options.get(key)
            if param is None or not hasattr(param, "set"):
                continue
            try:
                copy.deepcopy(param).set(value)
            except TypeError:
                return key
        return None

    def check_path_options(self) -> None:
        """Raise FileNotFoundError naming the option whose file does not exist (a value
        may list several paths, comma-separated; a mapping names one file per key, e.g.
        a band's mosaic; a FITS extension ``path[EXT]`` is allowed)."""
        for where, path in self._path_option_files().items():
            if path not in self.path_keywords and not os.path.exists(os.path.expandvars(path)):
                raise FileNotFoundError(f"{type(self).__name__} option "
                                        f"{where.partition('#')[0]}: {path} does not exist")

    def _path_option_files(self) -> dict[str, str]:
        """The files the path options name (FITS extensions dropped), by option."""
        from rail.deepdisc.store.mosaic_io import split_spec

        files: dict[str, str] = {}
        for option in self.path_options:
            value = self.config[option] if option in self.config else None
            if value:
                files.update({where: split_spec(text)[0]
                              for where, text in path_items(option, value).items()})
        return files

    def run_on(self, inputs: dict[str, Any], output: str, **kwargs: Any) -> Any:
        """The body of an interactive entrypoint: set each input (a path, read lazily, or
        data), change the given options, run, finalize; returns the ``output`` handle."""
        self.config.update(**kwargs)
        for tag, value in inputs.items():
            if isinstance(value, (str, os.PathLike)):
                self.set_data(tag, None, path=os.fspath(value), do_read=False)
            else:
                self.set_data(tag, value)
        self.run()
        self.finalize()
        return self.get_handle(output)

    def options_dict(self) -> dict[str, Any]:
        """The stage's options and their values (for provenance): only its declared options,
        not whatever else was passed to it (data given interactively, for instance)."""
        return {name: self.config[name] for name in self.config_options if name in self.config}

    def library_options(self, cls: type) -> Any:
        """The stage's config as the library's option class ``cls`` (an
        :class:`~rail.deepdisc.options.Options`), checked; an OptionError names the stage."""
        try:
            return cls.from_mapping(self.config)
        except OptionError as err:
            raise OptionError(f"{self.name}: {err}") from None

    # -- outputs ---------------------------------------------------------------------------
    def check_io(self, args: Any = None) -> None:
        try:
            super().check_io(args)
        except ValueError as err:
            # ceci's multi-line "Missing these names on the command line"
            missing = _CECI_MISSING_NAMES.search(str(err))
            if missing is None or isinstance(err, DeepDiscError):
                raise
            names = " ".join(missing["names"].split())
            raise OptionError(f"{type(self).__name__}: input(s) {names} must be given on the "
                              "command line") from None
        if getattr(self, "_in_progress_token", None) is None:
            self._in_progress_token = f"{process_tag()}-{uuid.uuid4().hex[:6]}"
            self._share_token()
        self.check_output_paths()

    def validate(self) -> None:
        """Before the stage runs (ceci's hook in its stage runner): an input file that does
        not exist is named with its tag, instead of the traceback of the reader that first
        tries to open it; then the lock of every output is taken (rank 0; refused in one line
        on every rank if another live run holds one), released when the runner ends."""
        for tag in self.input_tags():
            value = (self._inputs or {}).get(self.get_aliased_tag(tag))
            store = getattr(self, "data_store", None) or {}
            handle = store.get(self.get_aliased_tag(tag))
            if handle is not None and handle.data is not None:
                continue  # given as data (interactively)
            if _is_path(value) and not os.path.exists(os.path.expandvars(os.fspath(value))):
                raise FileNotFoundError(f"{type(self).__name__} input {tag!r}: {value} does not "
                                        "exist")
        super().validate()
        refused = None
        if self.rank == 0 and not follower_rank():  # MPI rank 0, torchrun rank 0
            try:
                for what, final in self.declared_writes().items():
                    _STAGE_LOCKS.append(acquire_lock(final, what))
            except OutputPathError as err:
                refused = str(err)
        if self.comm is not None and self.size > 1:
            refused = self.comm.bcast(refused, root=0)
        if refused is not None:
            raise OutputPathError(refused)

    def setup_mpi(self, comm: Any = None) -> None:
        # ceci sets up MPI on every rank after constructing the stage, before it runs
        super().setup_mpi(comm)
        self._share_token()

    def _share_token(self) -> None:
        """Every rank of an MPI run uses rank 0's temporary names (collective)."""
        if getattr(self, "_in_progress_token", None) is not None and \
                self.comm is not None and self.size > 1:
            self._in_progress_token = self.comm.bcast(self._in_progress_token, root=0)

    def set_data(self, tag: str, data: Any, path: str | None = None, do_read: bool = True):
        """Connect an input (RailStage.set_data), then refuse outputs that would overwrite it:
        interactive runs (``stage.estimate(path)``) give their inputs only now."""
        handle = super().set_data(tag, data, path=path, do_read=do_read)
        if tag in self.input_tags():
            self.check_output_paths()
        return handle

    def input_paths(self) -> list[str]:
        """The files this stage reads: its inputs (paths, or open stores' files) and path
        options."""
        paths = []
        config = (self._inputs or {}).get("config")
        if _is_path(config):
            paths.append(os.fspath(config))  # ceci's --config file
        for tag in self.input_tags():
            # RailStage sets data_store after ceci's check_io, which calls this
            store = getattr(self, "data_store", None) or {}
            handle = store.get(self.get_aliased_tag(tag))
            value = (self._inputs or {}).get(self.get_aliased_tag(tag))
            if handle is not None:
                value = handle.path or getattr(handle.data, "path", None) or value
            if _is_path(value):
                paths.append(os.fspath(value))
        paths.extend(p for p in self._path_option_files().values()
                     if p not in self.path_keywords)
        return paths

    def check_output_paths(self) -> None:
        """Refuse outputs that are directories, inputs (or files the inputs name, such as a
        survey file's companions), each other, or unwritable: the write guard's check
        (:func:`rail.deepdisc.store.write_guard.check_writes`); folders are created only
        once every output passed.

        Also removes temporary files that dead runs of this stage left beside its outputs.
        """
        name = type(self).__name__
        reads = {f"{name} input": self.input_paths()}
        finals = self.declared_writes()
        try:
            check_writes(finals, reads, create_parents=True)
        except OutputPathError as err:
            message = str(err)
            raise OutputPathError(message if message.startswith(name) else f"{name}: {message}"
                                  ) from None
        if self.rank == 0:
            for final in finals.values():
                remove_stale_stage_temporaries(final)

    def declared_writes(self) -> dict[str, str]:
        """Every file the stage writes (what -> final path): its outputs and
        :meth:`option_writes`."""
        name = type(self).__name__
        finals = {f"{name} output {tag!r}": self.get_output(tag, final_name=True)
                  for tag in self.output_tags()}
        finals.update(self.option_writes())
        return finals

    def option_writes(self) -> dict[str, str]:
        """Files the stage writes that its options name, not its outputs (what -> path):
        a training stage's checkpoint in ``checkpoint_dir``."""
        folder = self.config["checkpoint_dir"] if "checkpoint_dir" in self.config_options \
            and "checkpoint_dir" in self.config else None
        if not _is_path(folder):
            return {}
        from rail.deepdisc.net.train import checkpoint_file

        return {f"{type(self).__name__} option checkpoint_dir": checkpoint_file(folder)}

    def publish_written(self, tag: str, path: str | os.PathLike):
        """Hand over an output the library wrote itself at ``path`` (this run's temporary
        name): finalisation only moves it to its final name. Run interactively
        (``output_mode='return'``) the file is moved now and the handle holds it opened
        (a scene store), so nothing is left under a temporary name.
        """
        existing = self.data_store.get(self.get_aliased_tag(tag))
        if existing is not None and existing.creator == self.instance_name:
            handle = existing  # e.g. RAIL's chunked-output handle of this run
            handle.path, handle.data = os.fspath(path), None
        else:
            handle = self.add_handle(tag, path=os.fspath(path))
        handle.partial = True
        if self.config.output_mode == "return":
            final = self.get_output(tag, final_name=True)
            os.replace(path, final)
            handle.path = final
            handle.read(force=True)
        return handle

    def _returned_default(self, tag: str) -> str | None:
        """Run interactively (``output_mode='return'``), the path in this session's temporary
        folder (:func:`session_folder`) of an output the user did not name (ceci would put
        it in the current directory under its default name); None otherwise."""
        if getattr(self.config, "output_mode", None) != "return":
            return None
        aliased = self.get_aliased_tag(tag)
        types = dict(self.outputs)
        ftype = types.get(tag) or types.get(aliased)
        default = ftype.make_name(aliased) if ftype is not None else None
        if default is None or self._outputs.get(aliased) != default:
            return None
        # one name per stage instance and output, unique in the session (two calls never
        # share a file, and a stage's output is never named like its input)
        names = self.__dict__.setdefault("_returned_paths", {})
        if aliased not in names:
            names[aliased] = os.path.join(
                session_folder(), f"{self.instance_name}_{uuid.uuid4().hex[:8]}_{default}")
        return names[aliased]

    def get_output(self, tag: str, final_name: bool = False) -> str:
        """The path of an output: its final name, or this run's unique temporary name
        (outputs returned interactively and not named: in this session's temporary
        folder, never the current directory)."""
        returned = self._returned_default(tag)
        if returned is not None:
            token = getattr(self, "_in_progress_token", None)
            if final_name or token is None:
                return returned
            p = Path(returned)
            return str(p.parent / f"{STAGE_PREFIX}{token}_{p.name}")
        path = super().get_output(tag, final_name=True)
        token = getattr(self, "_in_progress_token", None)
        if final_name or token is None:
            return super().get_output(tag, final_name=final_name)
        p = Path(path)
        return str(p.parent / f"{STAGE_PREFIX}{token}_{p.name}")


def rail_shared_params(options: type, names: tuple[str, ...]) -> dict[str, Any]:
    """RAIL's own shared stage parameters ``names`` (``zmin``, ``zmax``, ``nzbins``,
    ``chunk_size``, ...) for a stage whose option class has options of the same names and
    meaning: the parameter is RAIL's (its name and help, as every RAIL estimator shows it)
    with the option class's default (e.g. a redshift grid to z = 15 for JWST fields rather
    than RAIL's 3), so a stage offers one parameter, not a second one shadowing RAIL's.
    Use with ``options.stage_params(skip=names)``.
    """
    from rail.core.common_params import SharedParams

    specs = options.option_specs()
    params = {}
    for name in names:
        param = SharedParams.copy_param(name)
        param.set_default(specs[name][2])
        params[name] = param
    return params
