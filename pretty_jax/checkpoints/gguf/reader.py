"""One GGUF file's metadata and tensor directory: the header parsed and checked by
`header`, each tensor's bytes checked to lie where llama.cpp puts them, and the
tensors memory-mapped, read only when asked for. The ggml types' sizes come from the
`gguf` package (pip install 'pretty_jax[gguf]'), which also dequantises them (`quants`).

The tensor directory alone can be saved as JSON (`TensorDirectory.as_json`) and
memory-mapped again from it without parsing the header (`TensorDirectory.from_json`):
a 262,144-token vocabulary makes the header megabytes long.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from pretty_jax.checkpoints.gguf.header import Header, TensorRecord, read_header
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
    data: the memory-mapped tensor, what `quants.dequantize` takes: numpy values
      [..., row] for the plain types (F16, F32, integers), raw bytes [..., row bytes]
      for block types (BF16, the quantisations), as the gguf package's reader lays them.
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


# ggml types stored as plain numpy values; every other type as raw blocks of bytes.
_PLAIN_TYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8, "I16": np.int16,
                "I32": np.int32, "I64": np.int64}


def _mapped_tensors(path: Path, header: Header) -> dict[str, GGUFTensor]:
    """Every tensor of the file, memory-mapped, once its bytes are checked to lie where
    llama.cpp's loader expects them: back to back in record order, each padded to the
    alignment, the last one ending inside the file. A tensor whose type or shape was
    changed (or whose offset was) breaks that chain, and is named."""
    gguf = _gguf()
    mapped = np.memmap(path, mode="r") if header.tensors else None
    tensors, expected, previous = {}, 0, None
    for record in header.tensors:
        type_name, size, data_shape = _layout(path, gguf, record)
        if record.offset != expected:
            where = f"{previous} ends at {expected:,}" if previous else "it is the first tensor (offset 0)"
            raise CheckpointError(
                f"{path}: corrupted GGUF file: tensor {record.name!r} starts at data offset {record.offset:,}, "
                f"but {where}: the type, shape or offset of a tensor is wrong; download or convert it again"
            )
        start = header.data_start + record.offset
        if start + size > header.file_size:
            raise CheckpointError(
                f"{path}: truncated GGUF file: tensor {record.name!r} ({type_name}, {size:,} bytes) needs bytes "
                f"{start:,} to {start + size:,} but the file ends at byte {header.file_size:,}; "
                "download or copy it again"
            )
        dtype = np.dtype(_PLAIN_TYPES.get(type_name, np.uint8))
        data = np.ndarray(data_shape, dtype, buffer=mapped, offset=start)
        tensors[record.name] = GGUFTensor(record.name, type_name, record.dims, start, data)
        expected += -(-size // header.alignment) * header.alignment
        shape = " x ".join(f"{d:,}" for d in reversed(record.dims))
        previous = f"the tensor before it, {record.name!r} ({type_name}, {shape}),"
    return tensors


def _layout(path: Path, gguf, record: TensorRecord) -> tuple[str, int, tuple[int, ...]]:
    """(type name, size in bytes, shape of the data as `quants.dequantize` takes it) of
    a tensor: values [..., row] for plain types, bytes [..., row bytes] for blocks."""
    try:
        kind = gguf.GGMLQuantizationType(record.type_id)
        block_size, type_size = gguf.GGML_QUANT_SIZES[kind]
    except (ValueError, KeyError):
        raise CheckpointError(
            f"{path}: tensor {record.name!r} has ggml type {record.type_id}, which the installed gguf "
            "package does not know (a corrupted file, or a type newer than the package)"
        ) from None
    row = record.dims[0]
    if row % block_size:
        raise CheckpointError(
            f"{path}: corrupted GGUF file: tensor {record.name!r} ({kind.name}) has rows of {row:,} values, "
            f"not a multiple of its {block_size}-value blocks; download or convert it again"
        )
    outer = tuple(reversed(record.dims[1:]))
    size = int(np.prod(record.dims, dtype=object)) // block_size * type_size
    if kind.name in _PLAIN_TYPES:
        return kind.name, size, (*outer, row)
    return kind.name, size, (*outer, row // block_size * type_size)


class GGUFFile:
    """The metadata and tensor directory of one GGUF file (the tensors are
    memory-mapped, read only when asked for)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} does not exist")
        _gguf()  # before the header is parsed: without the package no tensor can be read
        header = read_header(self.path)
        self.metadata = header.metadata
        self.tensors = _mapped_tensors(self.path, header)

    def tensor_directory(self) -> TensorDirectory:
        return TensorDirectory(self.path, self.architecture_name, self.tensors)

    def value(self, key: str, default: Any = None) -> Any:
        """A metadata value: a number, a string, or a list of them."""
        return self.metadata.get(key, default)

    def one_value(self, key: str, default: Any = None) -> Any:
        """A per-model setting that llama.cpp may also write per layer (an array)."""
        value = self.value(key, default)
        if isinstance(value, list):
            if len(set(value)) != 1:
                raise ConfigError(f"{self.path}: {key} differs between layers ({value}); not supported")
            value = value[0]
        return value

    def whole(self, key: str, default: int | None = None, minimum: int = 1) -> int:
        """A whole number of at least `minimum` stated at `key` (one value, see
        `one_value`), or `default`; refuses one missing, of another type or out of
        range, naming the key."""
        value = self.one_value(key, default)
        if value is None:
            raise ConfigError(f"{self.path}: missing metadata {key}")
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{self.path}: metadata {key}={value!r} is not a whole number >= {minimum}")
        return value

    def positive_real(self, key: str, default: float | None = None) -> float:
        """A finite number above 0 stated at `key`, or `default`; refused otherwise."""
        value = self.one_value(key, default)
        if value is None:
            raise ConfigError(f"{self.path}: missing metadata {key}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ConfigError(f"{self.path}: metadata {key}={value!r} is not a finite number above 0")
        return float(value)

    def count(self, key: str) -> int | None:
        """The length of an array metadata value (None for a missing or scalar one)."""
        value = self.metadata.get(key)
        return len(value) if isinstance(value, list) else None

    @property
    def architecture_name(self) -> str:
        name = self.value("general.architecture")
        if not isinstance(name, str):
            raise CheckpointError(f"{self.path}: no general.architecture in its metadata")
        return name
