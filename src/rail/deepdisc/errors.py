"""The package's error types.

Every error a user can cause (a bad option, a bad or missing input file, an output path that
would destroy something) is a :class:`DeepDiscError`, a ``ValueError``, and its message names
the option, file, column or scene at fault. The ``rail-deepdisc`` command prints these (and
``OSError``) as one line and exits with status 2; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations


class DeepDiscError(ValueError):
    """Something the user can fix: the message says what and where."""


class OptionError(DeepDiscError):
    """An option (stage configuration, command-line flag, dataclass field) is invalid."""


class InputError(DeepDiscError):
    """An input file or table is missing, malformed or inconsistent."""


class SceneStoreError(InputError):
    """A scene store is missing, malformed or inconsistent with what a stage needs."""


class ModelFileError(InputError):
    """A model file cannot be read, or does not fit the data it is applied to."""


class OutputPathError(DeepDiscError):
    """An output path would destroy something (a directory, an input) or cannot be written."""


class TrainingError(DeepDiscError):
    """Training cannot go on (e.g. its loss became non-finite); no model is written."""


class MissingDependencyError(DeepDiscError):
    """An optional dependency (an extra of the package) is needed and not installed."""


class PipelineError(DeepDiscError):
    """A ceci pipeline run by this package failed; its logs (named) say why."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT, SIGTERM); ``signum`` says which.

    A ``KeyboardInterrupt``, so that every ``finally`` and ``except BaseException`` on the
    way out removes its temporary files; the command reports it as one line and exits with
    ``128 + signum``.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)


def one_line(err: BaseException) -> str:
    """An error's message on one line (how the command and ceci's stage runner print a
    user's mistake)."""
    return " ".join(str(err).split())

