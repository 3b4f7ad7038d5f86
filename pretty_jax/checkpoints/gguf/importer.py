"""llama.cpp GGUF files read as Hugging Face checkpoints.

A GGUF file holds the architecture as metadata (`llama.block_count`, ...), the
tokenizer as metadata (`tokenizer.ggml.*`) and the tensors under llama.cpp's names
(`blk.0.attn_q.weight`), often quantised. This module turns it into what the rest of
pretty_jax already reads:

- `open_tensors`: a `TensorSource` whose keys are HF tensor names (`tensor_names`) and
  whose `read` dequantises (`quants`) and undoes llama.cpp's changes to the tensors, so
  the family layouts of `models/` apply unchanged;
- `cached_view`: a directory with the HF config (`metadata.hf_config`), the tokenizer
  transformers would rebuild from the metadata (`tokenizer`, without torch), and a
  pointer back to the file. `checkpoint.load_model` and `checkpoint.convert_checkpoint`
  take a `.gguf` path through it: the weights are read from the GGUF itself at every
  load (`open_view_tensors`, memory-mapped by the tensor index the view keeps), and
  only these small files are cached, under `$XDG_CACHE_HOME/pretty_jax/gguf/` (default
  `~/.cache/pretty_jax/gguf/`), keyed by the file's path and the digest of its content
  that a run's fingerprint records (`core.fingerprint.gguf_fingerprint`): a file
  replaced by another, even of the same size and modification time, gets its own view.

Architectures: those of `architectures.ARCHITECTURES`. The reference is transformers
loading the same file (`from_pretrained(dir, gguf_file=name)`): where it reads a file
differently from llama.cpp (settings it does not read and fills with its own defaults),
the file is refused rather than imported as either.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pretty_jax.checkpoints.gguf import quants
from pretty_jax.checkpoints.gguf.architectures import architecture_of
from pretty_jax.checkpoints.gguf.metadata import hf_config
from pretty_jax.checkpoints.gguf.reader import GGUFFile, TensorDirectory, is_gguf
from pretty_jax.checkpoints.gguf.tokenizer import save_tokenizer
from pretty_jax.core.cache_home import cache_dir
from pretty_jax.core.errors import CheckpointError
from pretty_jax.core.fingerprint import gguf_fingerprint
from pretty_jax.core.progress import Progress
from pretty_jax.models.conversion import TensorSource

__all__ = ["SOURCE_FILE", "cached_view", "is_gguf", "open_tensors", "open_view_tensors", "write_view"]

# In a cached view directory: which GGUF file holds the weights, and where in it each
# tensor lies (so a load memory-maps them without parsing the file's metadata again).
SOURCE_FILE = "gguf_source.json"
TENSORS_FILE = "gguf_tensors.json"
FORMAT = "pretty_jax/gguf-view/3"  # bump when the view's files change: caches rebuild


def _check_tensor_types(file: TensorDirectory) -> None:
    unsupported = [
        f"{name} ({tensor.type_name})" for name, tensor in file.tensors.items() if not quants.supported(tensor.type_name)
    ]
    if unsupported:
        shown = ", ".join(unsupported[:5]) + (f" and {len(unsupported) - 5} more" if len(unsupported) > 5 else "")
        raise CheckpointError(
            f"{file.path}: tensor type not supported: {shown}; every float type the installed "
            "gguf package dequantises is read. Re-quantise the model to one of them."
        )


def open_tensors(file: TensorDirectory, config: Mapping[str, Any]) -> TensorSource:
    """The file's tensors under HF names, read as float32 in HF's layout (integer
    tensor types, like every type `quants` does not know, are refused)."""
    architecture = architecture_of(file)
    _check_tensor_types(file)
    by_hf_name = {architecture.hf_name(name): tensor for name, tensor in file.tensors.items()}
    if len(by_hf_name) != len(file.tensors):
        raise CheckpointError(f"{file.path}: two tensors map to one HF name")

    def shape(key: str) -> tuple[int, ...]:
        return tuple(int(d) for d in reversed(by_hf_name[key].shape))  # ggml lists dims innermost first

    def read(key: str) -> np.ndarray:
        tensor = by_hf_name[key]
        array = quants.dequantize(tensor.data, tensor.type_name, shape(key))
        return architecture.undo_llama_cpp_changes(key, array, config)

    # Every type `_check_tensor_types` lets through is a float or a float quantisation.
    return TensorSource(
        description=f"GGUF file {file.path}", keys=tuple(by_hf_name), shape=shape, read=read,
        dtype=lambda key: "float32", location=lambda key: str(file.path),
    )


def _source_record(path: Path) -> dict[str, Any]:
    """What a view was made from: the view format, the file's path and fingerprint."""
    return {"format": FORMAT, "gguf": str(path), "fingerprint": gguf_fingerprint(path)}


def _refuse_tensorless(file: GGUFFile) -> None:
    if not file.tensors:
        raise CheckpointError(f"{file.path}: holds no tensors (a vocabulary-only GGUF file?); it is not a model")


def write_view(path: Path, directory: Path, record: dict[str, Any]) -> None:
    """Writes `config.json`, the tokenizer files and `SOURCE_FILE` (holding `record`)
    for the GGUF file `path` into the (new) `directory`."""
    file = GGUFFile(path)
    _refuse_tensorless(file)
    config = hf_config(file)
    tensors = file.tensor_directory()
    open_tensors(tensors, config)  # refuse unsupported tensor types before anything is written
    directory.mkdir(parents=True)
    progress = Progress(4, f"GGUF view of {path.name} (config, tensor index, tokenizer, source)", unit="files")
    (directory / "config.json").write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")
    progress.update()
    (directory / TENSORS_FILE).write_text(json.dumps(tensors.as_json()) + "\n")
    progress.update()
    save_tokenizer(file, directory)
    progress.update()
    (directory / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    progress.update()
    progress.close()


def cached_view(path: str | Path) -> Path:
    """The cached view directory of a GGUF file, written on first use."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    record = _source_record(path)
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]  # path and content
    directory = cache_dir("gguf") / f"{path.stem}-{key}"
    if (directory / SOURCE_FILE).exists():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}-", dir=directory.parent))
    try:
        write_view(path, staging / "view", record)
        if _source_record(path) != record:  # a view is made from one version of the file only
            raise CheckpointError(f"{path} changed while its view was made; load it again")
        try:
            (staging / "view").rename(directory)
        except OSError:  # another process wrote it first
            if not (directory / SOURCE_FILE).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def open_view_tensors(directory: Path) -> TensorSource:
    """The tensors of the GGUF file a view directory points at, memory-mapped by the
    view's tensor index."""
    record = json.loads((directory / SOURCE_FILE).read_text())
    path = Path(record["gguf"])
    # In the process that called `cached_view` the digest is remembered: no second read.
    if not path.is_file() or _source_record(path) != record:
        raise CheckpointError(
            f"{directory}: the GGUF file it was made from ({path}) is gone or has changed; "
            "load the .gguf file itself again"
        )
    tensors = TensorDirectory.from_json(path, json.loads((directory / TENSORS_FILE).read_text()))
    return open_tensors(tensors, json.loads((directory / "config.json").read_text()))
