"""Errors a user can fix. Command-line entry points print their message (which names
the file, line or flag, and what to do) instead of a traceback."""


class UserError(Exception):
    """Bad input: a flag, a file, a checkpoint or data that cannot be used as given."""


class ConfigError(UserError, ValueError):
    """An HF config that pretty_jax cannot turn into an architecture."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that does not match what its config describes."""


class MissingDependencyError(UserError, ImportError):
    """An optional package is needed for this input (e.g. torch for .bin weights)."""


class SettingError(UserError, ValueError):
    """A library setting out of range (a decoding strategy's, a scorer's): the message
    names the parameter, `name=value`, and what it must be."""
