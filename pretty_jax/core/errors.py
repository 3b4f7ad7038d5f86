"""Errors a user can fix. Command-line entry points print their message (which names
the file, line or flag, and what to do) instead of a traceback."""

from __future__ import annotations

from typing import Iterable


class UserError(Exception):
    """Bad input: a flag, a file, a checkpoint or data that cannot be used as given."""


def check_choice(name: str, value: object, choices: Iterable[str]) -> None:
    """Raises UserError `name=value: use one of ...` unless `value` is one of `choices`
    (`name`: the flag or setting, as the user wrote it)."""
    choices = list(choices)
    if value not in choices:
        raise UserError(f"{name}={value!r}: use one of {', '.join(choices)}")


class ConfigError(UserError, ValueError):
    """An HF config that pretty_jax cannot turn into an architecture."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that does not match what its config describes."""


class MissingDependencyError(UserError, ImportError):
    """An optional package is needed for this input (e.g. torch for .bin weights)."""


class SettingError(UserError, ValueError):
    """A library setting out of range (a decoding strategy's, a scorer's): the message
    names the parameter, `name=value`, and what it must be."""
