"""The identity of the files this package writes: a format name and a version, checked once."""

from __future__ import annotations

from typing import Any

from rail.deepdisc.errors import InputError


def check_format(source: str, found_format: Any, found_version: Any, expected_format: str,
                 expected_version: int, what: str, error: type[InputError] = InputError
                 ) -> None:
    """Refuse a file that is not of the expected format and version.

    Parameters
    ----------
    source
        The file (for the message).
    found_format, found_version
        What the file says it is.
    expected_format, expected_version
        What this package reads.
    what
        What the file should be, in words (e.g. ``"scene store"``).
    error
        The exception class to raise.
    """
    if isinstance(found_format, bytes):
        found_format = found_format.decode()
    if found_format != expected_format:
        raise error(f"{source} is not a {what} (format {found_format!r}, expected "
                    f"{expected_format!r})")
    try:
        version = int(found_version)
    except (TypeError, ValueError):
        version = found_version
    if version != expected_version:
        raise error(f"{source}: {what} version {found_version} is not supported (this "
                    f"package reads version {expected_version})")
