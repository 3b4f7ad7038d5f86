"""Content fingerprints of a run's inputs, so that a resumed run notices an input that
changed in place (a corrected refined file, a retrained model in the same directory).

A file up to `HASH_LIMIT` bytes is hashed whole (sha256). A larger one, and every
weight file of a model directory, is described by its size, modification time and a
digest of its header (safetensors: the JSON header; others: the first MiB), which
reading is cheap even for a 7B checkpoint; small model files (config, index,
tokenizer) are hashed whole. A GGUF file is a whole model whose header (metadata,
tokenizer, tensor index) runs to megabytes with no length prefix (6.5 MB in Gemma 3
270M, whose special token ids lie past its first MiB): it is hashed whole, once per
process for each version of the file (`content_sha256`), and the cached view of it that
loading reads is keyed by that same digest (`checkpoints.gguf.importer`).

A fingerprint is a JSON-able dict {file name: {"size", "mtime_ns"?, "sha256" |
"header_sha256"}}; `describe_change` names the first file that differs and how.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from pathlib import Path
from typing import Mapping

HASH_LIMIT = 256 * 2**20
_HEAD_BYTES = 2**20
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".msgpack", ".h5")
# What pretty_jax itself keeps in an output directory (see run_dir): not model content.
_IGNORED = ("pretty_jax_manifest.json", ".pretty_jax.lock")


def _sha256(path: Path, limit: int | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if limit is not None:
            digest.update(f.read(limit))
        else:
            for block in iter(lambda: f.read(2**20), b""):
                digest.update(block)
    return digest.hexdigest()


def _header_sha256(path: Path) -> str:
    """The digest of a safetensors file's JSON header (tensor names, dtypes, shapes and
    offsets), or of the first MiB of any other file."""
    if path.suffix == ".safetensors":
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) == 8:
                (length,) = struct.unpack("<Q", prefix)
                if length < HASH_LIMIT:
                    return hashlib.sha256(prefix + f.read(length)).hexdigest()
    return _sha256(path, _HEAD_BYTES)


def file_fingerprint(path: Path) -> dict:
    """{"size", "sha256"} of a file up to HASH_LIMIT, else size, mtime and head digest."""
    stat = path.stat()
    if stat.st_size <= HASH_LIMIT:
        return {"size": stat.st_size, "sha256": _sha256(path)}
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "header_sha256": _header_sha256(path)}


def content_sha256(path: Path) -> str:
    """The sha256 of the file's content, read once per process for each version of the
    file: a version is known by device, inode, size, modification and change time, and
    the change time moves with every write or replacement and cannot be set back."""
    stat = Path(path).stat()
    version = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return _remembered_sha256(str(Path(path).resolve()), version)


@functools.lru_cache(maxsize=64)
def _remembered_sha256(path: str, version: tuple[int, ...]) -> str:
    del version  # part of the cache key only
    return _sha256(Path(path))


def gguf_fingerprint(path: Path) -> dict:
    """{"size", "sha256"} of a GGUF file, the digest of its whole content."""
    return {"size": Path(path).stat().st_size, "sha256": content_sha256(path)}


def _weight_fingerprint(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "header_sha256": _header_sha256(path)}


def input_fingerprint(path: Path) -> dict[str, dict]:
    """A data file, or every file directly in a data folder, by name."""
    path = Path(path)
    if path.is_dir():
        return {p.name: file_fingerprint(p) for p in sorted(path.iterdir()) if p.is_file()}
    return {path.name: file_fingerprint(path)}


def files_fingerprint(paths: list[Path]) -> dict[str, dict]:
    """The files a task read, by path."""
    return {str(p): file_fingerprint(p) for p in paths}


def model_fingerprint(path: Path) -> dict[str, dict]:
    """A model directory (every file in it; weights by size, mtime and header) or a GGUF
    file (by its size and the digest of its content)."""
    path = Path(path)
    if path.is_file():
        return {path.name: gguf_fingerprint(path)}
    fingerprint = {}
    for file in sorted(p for p in path.iterdir() if p.is_file() and p.name not in _IGNORED):
        if file.name.endswith(".tmp"):
            continue
        is_weight = file.suffix in _WEIGHT_SUFFIXES
        fingerprint[file.name] = _weight_fingerprint(file) if is_weight else file_fingerprint(file)
    return fingerprint


def describe_change(where: str, old: Mapping[str, dict], new: Mapping[str, dict]) -> str | None:
    """None when the fingerprints agree, else which file of `where` changed and how."""
    for name in sorted(set(old) | set(new)):
        if name not in new:
            return f"{where}: {name} is gone"
        if name not in old:
            return f"{where}: {name} is new"
        if old[name] != new[name]:
            fields = [k for k in ("size", "sha256", "header_sha256", "mtime_ns") if old[name].get(k) != new[name].get(k)]
            what = {"size": "size", "sha256": "content", "header_sha256": "tensor header", "mtime_ns": "modification time"}
            details = ", ".join(
                f"{what[k]} {old[name].get(k)} -> {new[name].get(k)}" if k in ("size", "mtime_ns")
                else f"{what[k]} changed" for k in fields
            )
            return f"{where}: {name} changed ({details})"
    return None
