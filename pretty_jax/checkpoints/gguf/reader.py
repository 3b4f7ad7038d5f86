"""One GGUF file's metadata and tensor directory, read through the `gguf` package
(pip install 'pretty_jax[gguf]'); the tensors are memory-mapped, read only when asked
for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pretty_jax.core.errors import CheckpointError, ConfigError, MissingDependencyError

GGUF_SUFFIX = ".gguf"


def _gguf():
    try:
        import gguf
    except ImportError:
        raise MissingDependencyError(
            "reading GGUF files needs the gguf package: pip install 'pretty_jax[gguf]'"
        ) from None
    return gguf


def is_gguf(path: str | Path) -> bool:
    """Whether `path` names a GGUF file (by its suffix; a directory never is one)."""
    return str(path).endswith(GGUF_SUFFIX) and not Path(path).is_dir()


class GGUFFile:
    """The metadata and tensor directory of one GGUF file (the tensors are
    memory-mapped, read only when asked for)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} does not exist")
        try:
            self.reader = _gguf().GGUFReader(self.path)
        except (ValueError, KeyError, IndexError) as e:
            raise CheckpointError(f"{self.path}: not a readable GGUF file ({e})") from None
        self.tensors = {tensor.name: tensor for tensor in self.reader.tensors}

    def value(self, key: str, default: Any = None) -> Any:
        """A scalar or string metadata value."""
        field = self.reader.fields.get(key)
        return default if field is None else field.contents()

    def one_value(self, key: str, default: Any = None) -> Any:
        """A per-model setting that llama.cpp may also write per layer (an array)."""
        value = self.value(key, default)
        if isinstance(value, list):
            if len(set(value)) != 1:
                raise ConfigError(f"{self.path}: {key} differs between layers ({value}); not supported")
            value = value[0]
        return value

    def count(self, key: str) -> int | None:
        """The length of an array metadata value, without decoding it."""
        field = self.reader.fields.get(key)
        return None if field is None else len(field.data)

    @property
    def architecture_name(self) -> str:
        name = self.value("general.architecture")
        if name is None:
            raise CheckpointError(f"{self.path}: no general.architecture in its metadata")
        return name
