"""Reading the files of a Hugging Face checkpoint directory without torch.

Safetensors (one file, or shards listed by `model.safetensors.index.json`) are read
with numpy, lazily, tensor by tensor. `pytorch_model*.bin` needs torch, which is only
imported when such a file is the sole source of weights. A GGUF file's cached view
directory (see `checkpoints.gguf.importer`) reads its weights from the GGUF file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
from safetensors import safe_open

from pretty_jax.checkpoints.gguf import importer
from pretty_jax.core.errors import CheckpointError, MissingDependencyError, UserError
from pretty_jax.core.manifest import LOCK, MANIFEST
from pretty_jax.models.conversion import SAFETENSORS_DTYPES, TensorSource

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"
TORCH_INDEX = "pytorch_model.bin.index.json"
TORCH_SINGLE = "pytorch_model.bin"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5", ".gguf")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file as a dict, with an error naming the file when it is broken."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid UTF-8 JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_hf_configs(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """`config.json` and (if present) `generation_config.json` of a checkpoint."""
    config_path = directory / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(
            f"{directory} has no config.json: point at a Hugging Face checkpoint directory "
            "(or a directory written by `python -m pretty_jax.convert`)"
        )
    generation_path = directory / "generation_config.json"
    generation = read_json(generation_path) if generation_path.exists() else {}
    return read_json(config_path), generation


def open_hf_weights(directory: Path) -> TensorSource:
    """All weight tensors of an HF checkpoint directory, each name exactly once."""
    if (directory / importer.SOURCE_FILE).exists():
        return importer.open_view_tensors(directory)
    if (directory / SAFETENSORS_INDEX).exists():
        return _safetensors_source(directory, _indexed_files(directory / SAFETENSORS_INDEX))
    if (directory / SAFETENSORS_SINGLE).exists():
        return _safetensors_source(directory, [directory / SAFETENSORS_SINGLE])
    torch_files = []
    if (directory / TORCH_INDEX).exists():
        torch_files = _indexed_files(directory / TORCH_INDEX)
    elif (directory / TORCH_SINGLE).exists():
        torch_files = [directory / TORCH_SINGLE]
    if torch_files:
        return _torch_source(directory, torch_files)
    raise FileNotFoundError(
        f"{directory} holds no weights: looked for {SAFETENSORS_SINGLE}, "
        f"{SAFETENSORS_INDEX}, {TORCH_SINGLE} and {TORCH_INDEX}"
    )


def _indexed_files(index_path: Path) -> list[Path]:
    weight_map = read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path}: no 'weight_map' object")
    files = sorted({index_path.parent / name for name in weight_map.values()})
    absent = [str(f.name) for f in files if not f.exists()]
    if absent:
        raise FileNotFoundError(f"{index_path} lists shards that do not exist: {', '.join(absent)}")
    return files


def _key_to_file(directory: Path, files_keys: list[tuple[Path, list[str]]]) -> dict[str, Path]:
    owner: dict[str, Path] = {}
    duplicated = []
    for path, keys in files_keys:
        for key in keys:
            if key in owner:
                duplicated.append(f"{key} (in {owner[key].name} and {path.name})")
            owner[key] = path
    if duplicated:
        raise CheckpointError(
            f"{directory}: tensors stored more than once (duplicated):\n    "
            + "\n    ".join(sorted(duplicated))
        )
    return owner


def safetensors_dtype(tensor_slice) -> str:
    """The element type of a safetensors tensor (`safe_open(...).get_slice(key)`) as a
    numpy-style name, from the header alone."""
    code = tensor_slice.get_dtype()
    return SAFETENSORS_DTYPES.get(code, code)


def _safetensors_source(directory: Path, files: list[Path]) -> TensorSource:
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    files_keys = []
    for path in files:
        try:
            with safe_open(path, framework="np") as f:
                keys = list(f.keys())
                for key in keys:
                    tensor_slice = f.get_slice(key)
                    shapes[key] = tuple(tensor_slice.get_shape())
                    dtypes[key] = safetensors_dtype(tensor_slice)
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
        files_keys.append((path, keys))
    owner = _key_to_file(directory, files_keys)

    def read(key: str) -> np.ndarray:
        with safe_open(owner[key], framework="np") as f:
            return f.get_tensor(key)

    return TensorSource(
        description=f"checkpoint {directory}",
        keys=tuple(owner),
        shape=shapes.__getitem__,
        read=read,
        dtype=dtypes.__getitem__,
        location=lambda key: str(owner[key]),
    )


def _torch_source(directory: Path, files: list[Path]) -> TensorSource:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            f"{directory} stores its weights as {files[0].name} (PyTorch pickle), which needs "
            "torch to read. Install it (pip install torch==2.13.0) or convert the checkpoint "
            "to safetensors first."
        ) from None
    state: dict[str, Any] = {}
    files_keys = []
    for path in files:
        tensors = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        files_keys.append((path, list(tensors)))
        state |= tensors
    owner = _key_to_file(directory, files_keys)

    def read(key: str) -> np.ndarray:
        return _torch_to_numpy(state[key], torch)

    return TensorSource(
        description=f"checkpoint {directory}",
        keys=tuple(state),
        shape=lambda key: tuple(state[key].shape),
        read=read,
        dtype=lambda key: str(state[key].dtype).removeprefix("torch."),
        location=lambda key: str(owner[key]),
    )


def _torch_to_numpy(tensor: Any, torch: Any) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def is_weight_file(path: Path) -> bool:
    """Weights, or where they are: an index, or a GGUF view's pointer to its file and
    that file's tensor index."""
    indexes = (SAFETENSORS_INDEX, TORCH_INDEX, importer.SOURCE_FILE, importer.TENSORS_FILE)
    return path.name.endswith(WEIGHT_SUFFIXES) or path.name in indexes


def is_bookkeeping_file(path: Path) -> bool:
    """pretty_jax's own records in an output directory (its manifest and lock) and
    temporary files of an unfinished write: never part of a model, never copied."""
    return path.name in (MANIFEST, LOCK) or path.name.endswith(".tmp")


def is_side_file(path: Path) -> bool:
    """A file of a checkpoint directory that goes with its weights (config, tokenizer,
    README, ...): a plain file that holds no weights and no pretty_jax bookkeeping."""
    return path.is_file() and not is_weight_file(path) and not is_bookkeeping_file(path)
