"""The header of a GGUF file, its metadata and tensor records, parsed and checked
against the file's size before anything trusts it: a truncated, corrupted or foreign
file is refused with one line naming the file and what is wrong, never a numpy
message from deep inside a reader.

The layout (little-endian; ggml's docs/gguf.md):

    magic "GGUF" | version u32 (2 or 3) | tensor count u64 | metadata count u64
    metadata entry:  key (string) | value type u32 | value
    tensor record:   name (string) | dimension count u32 | dimensions u64 each, innermost
                     first | ggml type u32 | offset u64 from the start of the tensor data
    padding to `general.alignment` (32 by default), then the tensor data

A string is its byte length (u64) and UTF-8 bytes; an array its item type (u32),
count (u64) and items. Whether each tensor's bytes lie where its records say is checked
by `reader`, which knows the ggml types' sizes.
"""

from __future__ import annotations

import dataclasses
import mmap
import struct
from pathlib import Path
from typing import Any

import numpy as np

from pretty_jax.core.errors import CheckpointError

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMENSIONS = 4  # GGML_MAX_DIMS
_STRING, _ARRAY = 8, 9
# Metadata value type -> struct format of one value (strings and arrays apart).
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
# The fewest bytes an entry can take: a metadata entry (empty key, a one-byte value)
# and a tensor record (empty name, one dimension).
_MIN_ENTRY_BYTES, _MIN_RECORD_BYTES = 8 + 4 + 1, 8 + 4 + 8 + 4 + 8


@dataclasses.dataclass(frozen=True)
class TensorRecord:
    """One tensor record: `dims` in ggml's order (innermost first), `type_id` ggml's
    type number, `offset` in bytes from the start of the tensor data."""

    name: str
    dims: tuple[int, ...]
    type_id: int
    offset: int


@dataclasses.dataclass(frozen=True)
class Header:
    """A parsed header; `data_start` is where the tensor data begins in the file."""

    metadata: dict[str, Any]
    tensors: tuple[TensorRecord, ...]
    alignment: int
    data_start: int
    file_size: int


class _Cursor:
    """Reads the header front to back, refusing any read past the file's end."""

    def __init__(self, buffer: mmap.mmap, path: Path):
        self.buffer, self.path, self.position = buffer, path, 0

    def fail(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: corrupted GGUF file: {what}; download or convert it again")

    def take(self, size: int, what: str) -> int:
        """The position of the next `size` bytes, which the cursor moves past."""
        if size > len(self.buffer) - self.position:
            raise CheckpointError(
                f"{self.path}: truncated GGUF file: it ends at byte {len(self.buffer):,}, inside {what} "
                f"(which needs bytes {self.position:,} to {self.position + size:,}); download or copy it again"
            )
        start, self.position = self.position, self.position + size
        return start

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack_from("<" + fmt, self.buffer, self.take(struct.calcsize("<" + fmt), what))

    def string(self, what: str) -> str:
        (length,) = self.unpack("Q", what)
        start = self.take(length, what)
        try:
            return self.buffer[start : start + length].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8 text") from None

    def value(self, value_type: int, what: str) -> Any:
        if value_type in _SCALAR_FORMATS:
            return self.unpack(_SCALAR_FORMATS[value_type], what)[0]
        if value_type == _STRING:
            return self.string(what)
        if value_type == _ARRAY:
            return self.array(what)
        raise self.fail(f"{what} has value type {value_type}, which GGUF does not define")

    def array(self, what: str) -> list:
        item_type, count = self.unpack("IQ", what)
        if item_type in _SCALAR_FORMATS:
            dtype = np.dtype("<" + _SCALAR_FORMATS[item_type])
            start = self.take(count * dtype.itemsize, f"{what} ({count:,} items)")
            return np.frombuffer(self.buffer, dtype, count, start).tolist()
        if count * 8 > len(self.buffer) - self.position:  # each item is at least a u64 length
            raise self.fail(f"{what} claims {count:,} items, more than the rest of the file holds")
        return [self.value(item_type, f"{what}, item {i:,}") for i in range(count)]


def _counts(cursor: _Cursor) -> tuple[int, int]:
    """Checks magic and version; the tensor and metadata counts, checked against the size."""
    size = len(cursor.buffer)
    if size >= len(MAGIC) and cursor.buffer[: len(MAGIC)] != MAGIC:
        raise CheckpointError(
            f"{cursor.path}: not a GGUF file (it starts with {cursor.buffer[:4]!r}, not {MAGIC!r})"
        )
    cursor.take(len(MAGIC), "the magic number")
    (version,) = cursor.unpack("I", "the version")
    if version not in VERSIONS:
        if version & 0xFFFF == 0:  # a small version number read in the other byte order
            raise CheckpointError(f"{cursor.path}: a big-endian GGUF file; only little-endian GGUF files are read")
        raise CheckpointError(
            f"{cursor.path}: GGUF version {version:,} is not supported (versions "
            f"{' and '.join(map(str, VERSIONS))} are): a corrupted file, or one newer than pretty_jax"
        )
    tensor_count, entry_count = cursor.unpack("QQ", "the tensor and metadata counts")
    room = size - cursor.position
    if entry_count * _MIN_ENTRY_BYTES + tensor_count * _MIN_RECORD_BYTES > room:
        raise cursor.fail(
            f"it claims {entry_count:,} metadata entries and {tensor_count:,} tensors, more than its "
            f"{size:,} bytes can hold"
        )
    return tensor_count, entry_count


def _metadata(cursor: _Cursor, count: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for index in range(count):
        where = f"metadata entry {index + 1:,} of {count:,}"
        key = cursor.string(f"the key of {where}")
        (value_type,) = cursor.unpack("I", f"the value type of {where} ({key!r})")
        if key in metadata:
            raise cursor.fail(f"metadata key {key!r} appears twice")
        metadata[key] = cursor.value(value_type, f"the value of {where} ({key!r})")
    return metadata


def _tensor_records(cursor: _Cursor, count: int, alignment: int) -> tuple[TensorRecord, ...]:
    records: dict[str, TensorRecord] = {}
    for index in range(count):
        where = f"tensor record {index + 1:,} of {count:,}"
        name = cursor.string(f"the name of {where}")
        where = f"{where} ({name!r})"
        (num_dims,) = cursor.unpack("I", f"the dimension count of {where}")
        if not 1 <= num_dims <= MAX_DIMENSIONS:
            raise cursor.fail(f"{where} has {num_dims:,} dimensions (GGUF tensors have 1 to {MAX_DIMENSIONS})")
        dims = cursor.unpack(f"{num_dims}Q", f"the dimensions of {where}")
        type_id, offset = cursor.unpack("IQ", f"the type and offset of {where}")
        if name in records:
            raise cursor.fail(f"two tensor records are named {name!r}")
        if offset % alignment:
            raise cursor.fail(f"{where} starts at data offset {offset:,}, not a multiple of the alignment {alignment}")
        records[name] = TensorRecord(name, tuple(int(d) for d in dims), int(type_id), int(offset))
    return tuple(records.values())


def _alignment(cursor: _Cursor, metadata: dict[str, Any]) -> int:
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if type(alignment) is not int or alignment <= 0 or alignment & (alignment - 1):
        raise cursor.fail(f"general.alignment={alignment!r} is not a power of two")
    return alignment


def read_header(path: Path) -> Header:
    """The header of the GGUF file at `path`; CheckpointError naming the file and the
    first thing wrong when it is not a well-formed GGUF header."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: not a GGUF file (it is empty)")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
        cursor = _Cursor(buffer, path)
        tensor_count, entry_count = _counts(cursor)
        metadata = _metadata(cursor, entry_count)
        alignment = _alignment(cursor, metadata)
        tensors = _tensor_records(cursor, tensor_count, alignment)
        data_start = -(-cursor.position // alignment) * alignment
    return Header(metadata, tensors, alignment, data_start, size)
