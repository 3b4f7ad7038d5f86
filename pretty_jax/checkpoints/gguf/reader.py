"""One GGUF file's metadata and tensor directory, read through the `gguf` package
(pip install 'pretty_jax[gguf]'); the tensors are memory-mapped, read only when asked
for.

Parsing a file's metadata takes seconds when it holds a large vocabulary (Gemma 3's
262,144 tokens: about 11 s), so the tensor directory alone can be saved as JSON
(`TensorDirectory.as_json`) and memory-mapped again from it without the parse
(`TensorDirectory.from_json`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

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


@dataclasses.dataclass(frozen=True)
class GGUFTensor:
    """One tensor of a GGUF file.

    type_name: its ggml type, e.g. "F32", "Q4_K".
    shape: ggml's dimensions, innermost first.
    offset: where its data starts in the file, in bytes.
    data: the memory-mapped bytes or values, laid out as the gguf package's reader
      lays them out (what `quants.dequantize` takes).
    """

    name: str
    type_name: str
    shape: tuple[int, ...]
    offset: int
    data: np.ndarray


@dataclasses.dataclass(frozen=True)
class TensorDirectory:
    """A GGUF file's tensors and its architecture name, what a weight load needs."""

    path: Path
    architecture_name: str
    tensors: dict[str, GGUFTensor]

    def as_json(self) -> dict[str, Any]:
        """Where each tensor lies in the file: name, type, shape, byte offset and layout."""
        return {"architecture": self.architecture_name, "tensors": [
            {"name": t.name, "type": t.type_name, "shape": list(t.shape), "offset": t.offset,
             "dtype": t.data.dtype.str, "data_shape": list(t.data.shape)}
            for t in self.tensors.values()
        ]}

    @classmethod
    def from_json(cls, path: Path, record: dict[str, Any]) -> "TensorDirectory":
        """The directory `as_json` wrote, memory-mapped from `path` again."""
        mapped = np.memmap(path, mode="r")
        tensors = {}
        for entry in record["tensors"]:
            dtype, shape = np.dtype(entry["dtype"]), tuple(entry["data_shape"])
            data = np.ndarray(shape, dtype, buffer=mapped, offset=entry["offset"])
            tensors[entry["name"]] = GGUFTensor(entry["name"], entry["type"], tuple(entry["shape"]), entry["offset"], data)
        return cls(Path(path), record["architecture"], tensors)


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
        self.tensors = {
            t.name: GGUFTensor(t.name, t.tensor_type.name, tuple(int(d) for d in t.shape), int(t.data_offset), t.data)
            for t in self.reader.tensors
        }

    def tensor_directory(self) -> TensorDirectory:
        return TensorDirectory(self.path, self.architecture_name, self.tensors)

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
