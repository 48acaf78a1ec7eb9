"""Options defined once: a dataclass field carries its default, help text and bounds.

Each configuration of the library (training, estimation, photometry, tiling, simulation, ...)
is a dataclass deriving from :class:`Options` whose fields are made with :func:`option`.
Everything else is derived from those fields, so an option is written in one place:

* :meth:`Options.validate` checks types, bounds and choices (an :class:`~rail.deepdisc.errors.
  OptionError` naming the option), then the class's own cross-field checks (``_check``);
* :meth:`Options.stage_params` gives the ceci ``StageParameter`` of a RAIL stage's
  ``config_options`` (help text, default, required);
* :meth:`Options.add_arguments` adds the ``rail-deepdisc`` command-line flags
  (``--batch-size``; booleans as ``--augment/--no-augment``; lists as several values or a
  repeated flag; mappings as repeated ``KEY=VALUE``), with the bounds checked as the flags
  are parsed;
* :meth:`Options.from_mapping` builds a checked instance from a stage's config or parsed
  flags (only the names it knows are read; absent ones keep their defaults).

A field whose type is itself an :class:`Options` class is flattened: its options appear
beside the parent's, under their own names.

Nothing heavy is imported here: ceci is imported only when stage parameters are built.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar

from rail.deepdisc.errors import OptionError

_KEY = "deepdisc_option"


@dataclass(frozen=True)
class OptionSpec:
    """What :func:`option` records about a field (in ``field.metadata``)."""

    help: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    cli: bool = True
    stage: bool = True
    flag: str | None = None
    path: bool = False
    metavar: str | None = None

    def bounds_text(self) -> str:
        """The bounds as words, e.g. ``> 0`` or ``in [0, 1)``."""
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" \
            if self.gt is not None else None
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" \
            if self.lt is not None else None
        if low and high:
            return f"in {low}, {high}"
        if low:
            return (">= " if low[0] == "[" else "> ") + low[1:]
        if high:
            return ("<= " if high[-1] == "]" else "< ") + high[:-1]
        return ""

    def check_value(self, name: str, value: Any) -> None:
        """Raise OptionError if a scalar value is outside the bounds or choices."""
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"{name} must be one of {list(self.choices)}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                  and (self.le is None or value <= self.le)
                  and (self.lt is None or value < self.lt))
            if not ok:
                raise OptionError(f"{name} must be {self.bounds_text()}, got {value!r}")


def option(default: Any = MISSING, help: str = "", *, ge: float | None = None,
           gt: float | None = None, le: float | None = None, lt: float | None = None,
           choices: Sequence[Any] | None = None, cli: bool = True, stage: bool = True,
           flag: str | None = None, path: bool = False, metavar: str | None = None) -> Any:
    """A dataclass field that is a user-facing option.

    Parameters
    ----------
    default
        Default value (mutable defaults are copied for each instance); none means required.
    help
        One line saying what the option does (stage help and ``--help``).
    ge, gt, le, lt
        Bounds of a number (>=, >, <=, <).
    choices
        The allowed values.
    cli, stage
        Whether the option is a command-line flag / a stage option.
    flag
        Command-line flag name if not the field's (e.g. ``image`` for ``images``).
    path
        The value names files (comma-separated) that must exist before any work.
    metavar
        Placeholder of the value in ``--help``.
    """
    spec = OptionSpec(help=help, ge=ge, gt=gt, le=le, lt=lt,
                      choices=tuple(choices) if choices is not None else None, cli=cli,
                      stage=stage, flag=flag, path=path, metavar=metavar)
    return _option_field(default, spec)


def _option_field(default: Any, spec: OptionSpec) -> Any:
    """The dataclass field of an option (a mutable default copied for each instance)."""
    meta = {_KEY: spec}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d),
                                 metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def option_like(owner: type, name: str, default: Any = MISSING, **changes: Any) -> Any:
    """The option ``name`` of another options class, for a class that offers the same
    option (one help text and one set of bounds): its default, or ``default`` where this
    use needs another one, and any :class:`OptionSpec` field in ``changes``.

    Example: the field recipe's ``backbone`` is :class:`~rail.deepdisc.net.config.
    TrainConfig`'s, with the CPU-sized default ``resnet18_fpn``.
    """
    try:
        spec, _, own = owner.option_specs()[name]
    except KeyError:
        raise TypeError(f"{owner.__name__} has no option {name!r}") from None
    return _option_field(own if default is MISSING else default,
                         dataclasses.replace(spec, **changes))


# --------------------------------------------------------------------------- field types
@dataclass(frozen=True)
class _Kind:
    """A field's type reduced to what option handling needs."""

    base: str  # int, float, str, bool, list, dict, options, any
    optional: bool = False
    item: str = "any"  # element type of a list, value type of a dict
    tuple_: bool = False
    options_class: type | None = None


_SCALARS = {int: "int", float: "float", str: "str", bool: "bool"}


def _kind(annotation: Any) -> _Kind:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return dataclasses.replace(_kind(inner[0]), optional=True)
        return _Kind("any", optional=type(None) in args)
    if annotation in _SCALARS:
        return _Kind(_SCALARS[annotation])
    if isinstance(annotation, type) and issubclass(annotation, Options):
        return _Kind("options", options_class=annotation)
    if origin in (tuple, list) or origin in (Sequence, typing.Sequence) or \
            (isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str):
        item = args[0] if args else Any
        return _Kind("list", item=_SCALARS.get(item, "any"), tuple_=origin is tuple)
    if origin in (dict, Mapping) or annotation in (dict, Mapping) or \
            (isinstance(origin, type) and issubclass(origin, Mapping)):
        value = args[1] if len(args) == 2 else Any
        return _Kind("dict", item=_SCALARS.get(value, "any"))
    if annotation in (list, tuple):
        return _Kind("list", tuple_=annotation is tuple)
    return _Kind("any")


def _coerce_scalar(name: str, kind: str, value: Any) -> Any:
    if kind == "any" or value is None:
        return value
    if kind == "bool":
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            return bool(value)
        raise OptionError(f"{name} must be true or false, got {value!r}")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise OptionError(f"{name} must be a string, got {value!r}")
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and \
            type(value).__module__ != "numpy"):
        raise OptionError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise OptionError(f"{name} must be a finite number, got {value!r}")
    if kind == "int":
        if number != int(number):
            raise OptionError(f"{name} must be an integer, got {value!r}")
        return int(number)
    return number


def _coerce(name: str, kind: _Kind, value: Any) -> Any:
    if value is None:
        if kind.optional or kind.base == "any":
            return None
        raise OptionError(f"{name} must be given (got None)")
    if kind.base == "list":
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise OptionError(f"{name} must be a list, got {value!r}")
        items = [_coerce_scalar(f"{name}[{i}]", kind.item, v) for i, v in enumerate(value)]
        return tuple(items) if kind.tuple_ else items
    if kind.base == "dict":
        if isinstance(value, Sequence) and not isinstance(value, str):
            # KEY=VALUE pairs from the command line: values are text, read as YAML
            # (numbers, booleans) unless the mapping holds strings
            value = _pairs_to_dict(name, value)
            if kind.item != "str":
                value = {k: _scalar(v) for k, v in value.items()}
        if not isinstance(value, Mapping):
            raise OptionError(f"{name} must be a mapping (KEY: VALUE), got {value!r}")
        return {str(k): _coerce_scalar(f"{name}[{k}]", kind.item, v) for k, v in value.items()}
    return _coerce_scalar(name, kind.base, value)


def _pairs_to_dict(name: str, pairs: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise OptionError(f"{name} must be KEY=VALUE pairs, got {pair!r}")
        key, value = pair
        if key in out:
            raise OptionError(f"{name} given twice for {key}")
        out[key] = value
    return out


# --------------------------------------------------------------------------- the base class
class Options:
    """Base of the option dataclasses (see the module docstring)."""

    #: cached ``(field, spec, kind)`` of each class
    _option_cache: ClassVar[dict[type, list[tuple[dataclasses.Field, OptionSpec | None,
                                                  _Kind]]]] = {}

    @classmethod
    def _fields(cls) -> list[tuple[dataclasses.Field, OptionSpec | None, _Kind]]:
        cached = Options._option_cache.get(cls)
        if cached is None:
            hints = typing.get_type_hints(cls)
            cached = [(f, f.metadata.get(_KEY), _kind(hints.get(f.name, Any)))
                      for f in dataclasses.fields(cls)]
            Options._option_cache[cls] = cached
        return cached

    @classmethod
    def option_specs(cls) -> dict[str, tuple[OptionSpec, _Kind, Any]]:
        """Every option, nested classes flattened: name -> (spec, kind, default)."""
        out: dict[str, tuple[OptionSpec, _Kind, Any]] = {}
        for f, spec, kind in cls._fields():
            if kind.base == "options":
                nested = kind.options_class.option_specs()
                clash = sorted(set(nested) & set(out))
                out.update(nested)
            elif spec is not None:
                default = f.default if f.default is not MISSING else (
                    f.default_factory() if f.default_factory is not MISSING else MISSING)
                clash = [f.name] if f.name in out else []
                out[f.name] = (spec, kind, default)
            else:
                continue
            if clash:  # a flattened name given twice would silently be one option
                raise TypeError(f"{cls.__name__}: option(s) {clash} defined twice")
        return out

    # -- building and checking -------------------------------------------------------------
    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | Any = (), /, **overrides: Any):
        """A validated instance from a mapping (stage config, parsed flags) and overrides.

        Only the names of this class's options are read; absent ones keep their defaults.
        """
        source = dict(mapping or {}) if not isinstance(mapping, argparse.Namespace) \
            else vars(mapping)
        source.update(overrides)
        obj = cls._build(source)
        obj.validate()
        return obj

    @classmethod
    def _build(cls, source: Mapping[str, Any]):
        values: dict[str, Any] = {}
        for f, spec, kind in cls._fields():
            if kind.base == "options":
                values[f.name] = kind.options_class._build(source)
            elif spec is not None and f.name in source:
                values[f.name] = _coerce(f.name, kind, source[f.name])
        try:
            return cls(**values)
        except TypeError as err:
            raise OptionError(f"{cls.__name__}: {err}") from None

    def validate(self) -> None:
        """Check every option (types, bounds, choices), then the cross-field rules.

        Raises
        ------
        OptionError
            Naming the first bad option.
        """
        for f, spec, kind in self._fields():
            value = getattr(self, f.name)
            if kind.base == "options":
                value.validate()
                continue
            if spec is None:
                continue
            value = _coerce(f.name, kind, value)
            if value is None:
                continue
            if kind.base == "list":
                for v in value:
                    spec.check_value(f.name, v)
            elif kind.base == "dict":
                for k, v in value.items():
                    spec.check_value(f"{f.name}[{k}]", v)
            else:
                spec.check_value(f.name, value)
        self._check()

    def _check(self) -> None:
        """Cross-field checks of a subclass (raise OptionError)."""

    def given(self, names: Any) -> dict[str, Any]:
        """The options among ``names`` (e.g. the flags given on a command line) with their
        values, as a stage's config takes them (lists for tuples)."""
        specs = self.option_specs()
        out = {}
        for name in names:
            if name in specs:
                value = self.value_of(name)
                out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def as_dict(self) -> dict[str, Any]:
        """The options as a JSON-able dict (for provenance)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def path_values(self) -> dict[str, str]:
        """Every file named by a path option of this instance, as given (perhaps with a
        FITS extension, ``path[EXT]``): ``option`` -> value, ``option[key]`` -> value for
        a mapping (a band's mosaic), empty values left out."""
        out: dict[str, str] = {}
        for name, (spec, kind, _) in self.option_specs().items():
            value = self.value_of(name)
            if not spec.path or not value:
                continue
            if kind.base == "list":
                out.update({f"{name}[{i}]": str(v) for i, v in enumerate(value) if v})
            else:
                out.update(path_items(name, value))
        return out

    @classmethod
    def path_options(cls) -> tuple[str, ...]:
        """Names of the options whose values name files (a stage's ``path_options``)."""
        return tuple(name for name, (spec, _, _) in cls.option_specs().items() if spec.path)

    def value_of(self, name: str) -> Any:
        """The value of an option by its (flattened) name."""
        for f, _, kind in self._fields():
            if kind.base == "options":
                inner = getattr(self, f.name)
                if name in inner.option_specs():
                    return inner.value_of(name)
            elif f.name == name:
                return getattr(self, name)
        raise KeyError(name)

    # -- derived interfaces ----------------------------------------------------------------
    @classmethod
    def stage_params(cls, *, skip: Sequence[str] = ()) -> dict[str, Any]:
        """ceci ``StageParameter`` for each stage option (for a stage's ``config_options``)."""
        from ceci.config import StageParameter

        params = {}
        for name, (spec, kind, default) in cls.option_specs().items():
            if not spec.stage or name in skip:
                continue
            dtype = {"int": int, "float": float, "str": str, "bool": bool, "list": list,
                     "dict": dict}.get(kind.base)
            msg = spec.help + (f" ({spec.bounds_text()})" if spec.bounds_text() else "")
            if default is MISSING:
                params[name] = StageParameter(dtype, None, required=True, msg=msg)
            else:
                value = list(default) if isinstance(default, tuple) else default
                params[name] = StageParameter(dtype, value, required=False, msg=msg)
        return params

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, *, skip: Sequence[str] = (),
                      required: Sequence[str] = (), optional: Sequence[str] = ()) -> None:
        """Add a command-line flag for every CLI option (unset flags keep the defaults;
        options without a default are required flags, unless named in ``optional``)."""
        for name, (spec, kind, default) in cls.option_specs().items():
            if not spec.cli or name in skip:
                continue
            shown = MISSING if name in required else default  # no default for required flags
            kwargs: dict[str, Any] = {"dest": name, "help": _help(spec, shown)}
            if name in required or (default is MISSING and name not in optional):
                kwargs["required"] = True
            else:
                kwargs["default"] = argparse.SUPPRESS
            if spec.metavar:
                kwargs["metavar"] = spec.metavar
            parser.add_argument(_flag(name, spec), **{**kwargs, **_value_kwargs(name, spec, kind)})

    @classmethod
    def add_argument(cls, parser: argparse.ArgumentParser, name: str, *,
                     default: Any = MISSING, flag: str = "") -> None:
        """Add one flag for the option ``name`` with a concrete default (this class's
        unless ``default`` is given) and the option's help, bounds and choices; for scripts
        (benchmarks) and commands that offer one option of a configuration they do not
        build whole. ``flag`` renames the flag (e.g. ``--threads``)."""
        spec, kind, own = cls.option_specs()[name]
        value = own if default is MISSING else default
        if kind.base not in _SCALARS.values():
            raise TypeError(f"{cls.__name__}.{name}: add_argument takes scalar options")
        parser.add_argument(flag or _flag(name, spec), dest=name, default=value,
                            help=_help(spec, value), **_value_kwargs(name, spec, kind))


def _flag(name: str, spec: OptionSpec) -> str:
    """An option's command-line flag (``--batch-size``)."""
    return "--" + (spec.flag or name).replace("_", "-")


def _value_kwargs(name: str, spec: OptionSpec, kind: _Kind) -> dict[str, Any]:
    """How argparse reads an option's value: booleans as ``--x/--no-x``, lists as several
    values or a repeated flag, mappings as repeated ``KEY=VALUE``, scalars checked against
    their bounds and choices as they are parsed."""
    if kind.base == "bool":
        return {"action": argparse.BooleanOptionalAction}
    if kind.base == "list":  # --flag A B and --flag A --flag B alike
        return {"nargs": "+", "action": "extend", "type": _flag_parser(name, spec, kind.item)}
    if kind.base == "dict":
        metavar = spec.metavar or "KEY=VALUE"
        return {"action": "append", "type": _key_value(metavar), "metavar": metavar}
    out: dict[str, Any] = {"type": _flag_parser(name, spec, kind.base)}
    if spec.choices is not None:
        out["choices"] = spec.choices
    return out


def path_items(name: str, value: Any) -> dict[str, str]:
    """The files a path option's value names, by where they sit: ``name[key]`` -> path for a
    mapping (one file per key, e.g. a band's mosaic), else ``name`` (``name#i`` for the
    i-th of several): a text lists several paths comma-separated unless it holds a FITS
    extension (``path[SCI,2]``), which it keeps whole. Empty entries are left out."""
    if isinstance(value, Mapping):
        return {f"{name}[{k}]": str(v).strip() for k, v in value.items() if str(v).strip()}
    text = str(value)
    parts = [p.strip() for p in (text.split(",") if "[" not in text else [text]) if p.strip()]
    return {name: parts[0]} if len(parts) == 1 else \
        {f"{name}#{i}": p for i, p in enumerate(parts)}


def _help(spec: OptionSpec, default: Any) -> str:
    text = spec.help
    bounds = spec.bounds_text()
    if bounds:
        text += f"; {bounds}"
    if isinstance(default, bool):
        text += f" (default: {'on' if default else 'off'})"
    elif default not in (MISSING, None, "", (), [], {}):
        text += f" (default: {default})"
    return text.replace("%", "%%")


def _flag_parser(name: str, spec: OptionSpec, kind: str):
    def parse(text: str) -> Any:
        if kind in ("int", "float"):
            try:
                value: Any = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
            if kind == "int":
                if value != int(value):
                    raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
                value = int(value)
        else:
            value = text
        try:
            spec.check_value(name, value)
        except OptionError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"{name} ")) from None
        return value

    parse.__name__ = kind
    return parse


def _key_value(metavar: str):
    """Parser of ``KEY=VALUE`` (e.g. ``jwst_f200w=mosaic.fits[SCI]``) into a pair of strings;
    errors show the flag's ``metavar`` (e.g. ``BAND=PATH``)."""
    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise argparse.ArgumentTypeError(f"expected {metavar}, got {text!r}")
        return key.strip(), value.strip()

    parse.__name__ = metavar
    return parse


def _scalar(text: Any) -> Any:
    """A command-line value read as YAML if it is a number, boolean or list, else text."""
    import yaml

    if not isinstance(text, str):
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, list)) else text


@dataclass(frozen=True)
class AncilColumnsOptions(Options):
    """Input columns an estimator copies into its output's ancillary data (one definition
    for every catalog-input estimator)."""

    ancil_columns: tuple[str, ...] = option(
        (), "input columns copied into the output's ancillary data (e.g. ra dec scene x y), "
        "so a catalog can be made from the PDFs alone")


def copied_columns(data: Any, names: Sequence[str], stage: str) -> dict[str, Any]:
    """The input columns ``names`` (``ancil_columns``) as arrays.

    Raises
    ------
    InputError
        Naming the stage and the columns the input lacks.
    """
    import numpy as np

    from rail.deepdisc.errors import InputError

    missing = [k for k in names if k not in data]
    if missing:
        raise InputError(f"{stage}: ancil_columns names {missing}, which the input lacks")
    return {k: np.asarray(data[k]) for k in names}
