"""Saving a pretty_jax model as a Hugging Face checkpoint directory.

The output is what `save_pretrained` writes, so transformers (and the rest of
pretty_jax) load it like any downloaded checkpoint:

    config.json             the HF config the model came from, its dtype set to the saved one
    generation_config.json  when known
    model.safetensors       HF tensor names and layouts, metadata {"format": "pt"}
    tokenizer files         copied from a directory, or saved from a tokenizer object

Names and layouts come from the family's `checkpoint_layout`, the same map that loads
checkpoints, read backwards through each transform's `to_hf`: a tensor the config ties
to another (BLOOM's head) is not in the layout, so it is never written twice.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import jax
import ml_dtypes
import numpy as np
from flax import nnx
from safetensors.numpy import save_file

from pretty_jax.checkpoints import hf_files
from pretty_jax.checkpoints.loading import model_directory
from pretty_jax.core.errors import UserError, check_choice
from pretty_jax.core.own_files import refuse_link
from pretty_jax.core.progress import Progress
from pretty_jax.models import Model, ModelConfig, family_of
from pretty_jax.models.conversion import PROGRESS_LOG_SECONDS

WEIGHTS_FILE = "model.safetensors"
NUMPY_DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16)}
# Every file a transformers tokenizer may consist of.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "chat_template.jinja",
    "chat_template.json",
)


def flat_params(params: nnx.State) -> dict[str, jax.Array]:
    """Our parameter path (`layers.0.attn.q_proj`) -> array."""
    return {
        ".".join(map(str, path)): variable.get_value()
        for path, variable in nnx.to_flat_state(params)
    }


def hf_tensors(
    config: ModelConfig, params: nnx.State | Mapping[str, Any], dtype: str = "float32"
) -> dict[str, np.ndarray]:
    """HF tensor name -> host array in HF layout and `dtype`, for every parameter."""
    if config.model_type == "gemma3":
        raise UserError(
            "exporting the language model of a multimodal gemma3 checkpoint is not supported: "
            "its config.json describes a vision tower that pretty_jax neither reads nor writes. "
            "Export a gemma3_text (Gemma3ForCausalLM) checkpoint instead."
        )
    flat = flat_params(params) if isinstance(params, nnx.State) else dict(params)
    layout = family_of(config).checkpoint_layout(config)
    if set(flat) != set(layout.tensors):
        raise AssertionError(
            f"parameters and layout disagree: {sorted(set(flat) ^ set(layout.tensors))}"
        )
    numpy_dtype = _numpy_dtype(dtype)
    tensors = {}
    with Progress(len(layout.tensors), f"export {dtype} tensors", unit="tensors",
                  log_interval=PROGRESS_LOG_SECONDS) as progress:
        for path, spec in layout.tensors.items():
            tensors[spec.key] = np.ascontiguousarray(spec.transform.to_hf(np.asarray(flat[path]))).astype(numpy_dtype)
            progress.update()
    return tensors


def save_hf_checkpoint(
    out_dir: str | Path,
    config: ModelConfig,
    params: nnx.State | Mapping[str, Any],
    hf_config: Mapping[str, Any],
    *,
    dtype: str = "float32",
    generation_config: Mapping[str, Any] | None = None,
    tokenizer_dir: str | Path | None = None,
    tokenizer: Any = None,
    overwrite: bool = False,
) -> Path:
    """Writes an HF checkpoint directory and returns it.

    hf_config: the HF `config.json` dict of the model's architecture (the source
      checkpoint's, or the one a model trained from scratch was built from).
    tokenizer_dir / tokenizer: where the tokenizer files come from (at most one).
    overwrite: replace the files an export writes in an existing non-empty `out_dir`
      (other files there stay); without it that is refused, so that a source
      checkpoint is never overwritten by mistake.

    The files are written into a fresh hidden directory beside `out_dir` (created by
    this call, so everything in it is its own) and then moved into place: a new
    `out_dir` appears complete or not at all; an existing one has its files replaced
    one by one, each atomically, and never through a link.
    """
    out_dir = Path(out_dir)
    if tokenizer_dir is not None and tokenizer is not None:
        raise ValueError("give tokenizer_dir or tokenizer, not both")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True to replace it")
    tensors = hf_tensors(config, params, dtype)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write_json(staging / "config.json", with_dtype(hf_config, dtype))
        if generation_config:
            _write_json(staging / "generation_config.json", dict(generation_config))
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        elif tokenizer_dir is not None:
            copy_tokenizer_files(Path(tokenizer_dir), staging)
        _move_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # created above: all of it is this call's
    return out_dir


def export_loaded(
    model: Model, source: str | Path, out_dir: str | Path, dtype: str = "float32", overwrite: bool = False
) -> Path:
    """Writes a model loaded from `source` (HF or converted directory) back as an HF
    checkpoint, with the config, generation config and tokenizer files of `source`."""
    directory = model_directory(source)
    hf_config, generation = hf_files.read_hf_configs(directory)
    return save_hf_checkpoint(
        out_dir, model.config, model.params, hf_config, dtype=dtype,
        generation_config=generation, tokenizer_dir=directory, overwrite=overwrite,
    )


def with_dtype(hf_config: Mapping[str, Any], dtype: str) -> dict[str, Any]:
    """The config with its stored dtype set: `dtype` (transformers 5), and the older
    `torch_dtype` too where the config has that key."""
    config = dict(hf_config) | {"dtype": dtype}
    if "torch_dtype" in config:
        config["torch_dtype"] = dtype
    return config


def copy_tokenizer_files(source: Path, destination: Path) -> list[str]:
    """Copies the tokenizer files of `source`; returns their names."""
    names = [name for name in TOKENIZER_FILES if (source / name).is_file()]
    if not names:
        raise UserError(
            f"{source} has no tokenizer files (looked for {', '.join(TOKENIZER_FILES)})"
        )
    for name in names:
        shutil.copy2(source / name, destination / name)
    return names


def _numpy_dtype(dtype: str) -> np.dtype:
    check_choice("export dtype", dtype, NUMPY_DTYPES)
    return NUMPY_DTYPES[dtype]


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Moves the files of `staging` into `out_dir`: the whole folder when `out_dir` is
    missing, else file by file (a link where one goes is refused); a file of `out_dir`
    that the export does not write is left as it is."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    for file in sorted(staging.iterdir()):
        refuse_link(out_dir / file.name)
        os.replace(file, out_dir / file.name)
