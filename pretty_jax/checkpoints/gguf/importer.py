"""llama.cpp GGUF files read as Hugging Face checkpoints.

A GGUF file holds the architecture as metadata (`llama.block_count`, ...), the
tokenizer as metadata (`tokenizer.ggml.*`) and the tensors under llama.cpp's names
(`blk.0.attn_q.weight`), often quantised. This module turns it into what the rest of
pretty_jax already reads:

- `hf_config`: an HF `config.json` dict built from the metadata;
- `open_tensors`: a `TensorSource` whose keys are HF tensor names and whose `read`
  dequantises (`gguf_quants`) and undoes llama.cpp's changes to the tensors (LLaMA's
  Q/K row permutation, Gemma's norms stored as 1 + w), so the family layouts of
  `models/` apply unchanged;
- `cached_view`: a directory with that config, the tokenizer transformers rebuilds
  from the metadata, and a pointer back to the file. `checkpoint.load_model` and
  `checkpoint.convert_checkpoint` take a `.gguf` path through it: the weights are read
  from the GGUF itself at every load, and only these small files are cached, under
  `$XDG_CACHE_HOME/pretty_jax/gguf/` (default `~/.cache/pretty_jax/gguf/`), keyed by
  the file's path, size and modification time.

Architectures: `llama`, `qwen2`, `gemma3`. The reference is transformers loading the
same file (`from_pretrained(dir, gguf_file=name)`): where it reads a file differently
from llama.cpp (settings it does not read and fills with its own defaults), the file is
refused rather than imported as either. Adding an architecture is one entry in
`ARCHITECTURES`. Needs the `gguf` package (pip install 'pretty_jax[gguf]').
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pretty_jax.checkpoints.gguf import quants
from pretty_jax.core.errors import CheckpointError, ConfigError, MissingDependencyError
from pretty_jax.models import gemma3
from pretty_jax.models.conversion import TensorSource

GGUF_SUFFIX = ".gguf"
# In a cached view directory: which GGUF file holds the weights.
SOURCE_FILE = "gguf_source.json"
FORMAT = "pretty_jax/gguf-view/1"  # bump when the view's files change: caches rebuild

# llama.cpp's names of one decoder block's tensors -> HF's (`model.layers.N.` + name).
LLAMA_BLOCK_TENSORS = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
    "ffn_gate.bias": "mlp.gate_proj.bias",
    "ffn_up.bias": "mlp.up_proj.bias",
    "ffn_down.bias": "mlp.down_proj.bias",
}
# Gemma 3's block: four norms per block and norms on queries and keys. HF's
# post_attention_layernorm is the norm *after* attention here, and llama.cpp's ffn_norm
# the one before the MLP.
GEMMA3_BLOCK_TENSORS = {
    **LLAMA_BLOCK_TENSORS,
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
}
# Tensors outside the blocks, llama.cpp's name -> HF's.
LLAMA_GLOBAL_TENSORS = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


@dataclasses.dataclass(frozen=True)
class Architecture:
    """How llama.cpp stores one architecture (`general.architecture`).

    model_type: the HF `model_type` it becomes.
    permute_qk: llama.cpp reorders the rows of Q and K (and their biases) so each
      head's two rotary halves are interleaved (`convert_hf_to_gguf.py`,
      `LlamaModel.permute`); undone on read.
    norm_offset: what llama.cpp added to every `*norm.weight` (Gemma's RMSNorm scales
      by 1 + w, and llama.cpp stores 1 + w); subtracted on read.
    extra_config: HF config entries the metadata does not state.
    block_tensors, global_tensors: llama.cpp tensor names -> HF's (see above).
    finish_config: the architecture's own settings: takes the file and the config
      built from the metadata every architecture shares, returns the whole config, and
      refuses what pretty_jax cannot import as transformers does.
    """

    model_type: str
    permute_qk: bool = False
    norm_offset: float = 0.0
    extra_config: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"hidden_act": "silu"})
    block_tensors: Mapping[str, str] = dataclasses.field(default_factory=lambda: LLAMA_BLOCK_TENSORS)
    global_tensors: Mapping[str, str] = dataclasses.field(default_factory=lambda: LLAMA_GLOBAL_TENSORS)
    finish_config: Callable[[GGUFFile, dict[str, Any]], dict[str, Any]] | None = None


def _refuse_what_transformers_misreads(file: GGUFFile, config: Mapping[str, Any]) -> None:
    """Refuses a Gemma 3 file that transformers' GGUF loader would build as another model
    than llama.cpp runs: one stating a setting transformers does not read (it uses
    Gemma3TextConfig's default instead), or one llama.cpp scales differently."""
    layers = config["num_hidden_layers"]
    every = gemma3.HF_DEFAULTS["sliding_window_pattern"]
    # Metadata transformers does not read -> the values it builds the model as if it had.
    unread = {
        "rope.scaling.type": ("none",),  # Gemma 3 4B/12B/27B: linear, factor 8 (global layers)
        "rope.scaling.factor": (1.0,),
        "rope.scale_linear": (1.0,),
        "rope.freq_base_swa": (gemma3.HF_DEFAULTS["rope_local_base_freq"],),
        "attention.sliding_window_pattern": (every, [(i + 1) % every != 0 for i in range(layers)]),
        "final_logit_softcapping": (0.0,),
    }
    for key, assumed in unread.items():
        value = file.value(f"gemma3.{key}")
        if value is not None and value not in assumed:
            raise ConfigError(
                f"{file.path}: gemma3.{key}={value!r} is not supported: transformers' GGUF loader "
                f"does not read it and builds the model as if it were {assumed[0]!r}"
            )
    # llama.cpp scales attention scores by head_dim**-0.5 (by (hidden / heads)**-0.5 in
    # the 62-layer 27B); transformers by query_pre_attn_scalar**-0.5.
    llama_cpp_scalar = config["hidden_size"] // config["num_attention_heads"] if layers == 62 else config["head_dim"]
    hf_scalar = gemma3.HF_DEFAULTS["query_pre_attn_scalar"]
    if llama_cpp_scalar != hf_scalar:
        raise ConfigError(
            f"{file.path}: llama.cpp scales this model's attention scores by 1/sqrt({llama_cpp_scalar}), "
            f"transformers' GGUF loader by 1/sqrt({hf_scalar}) (its default query_pre_attn_scalar); "
            "not supported"
        )


def _gemma3_config(file: GGUFFile, config: dict[str, Any]) -> dict[str, Any]:
    """Gemma 3's sliding window and local RoPE. transformers' GGUF loader reads only the
    window; the rest comes from Gemma3TextConfig's defaults (every 6th layer global,
    local RoPE base 10000, no RoPE scaling, query_pre_attn_scalar 256), which llama.cpp
    hard-codes too, so this config leaves them out or writes those defaults."""
    _refuse_what_transformers_misreads(file, config)
    window = _one_value(file, "gemma3.attention.sliding_window")
    if window is None:
        raise ConfigError(f"{file.path}: missing metadata gemma3.attention.sliding_window")
    local_rope = {"rope_type": "default", "rope_theta": gemma3.HF_DEFAULTS["rope_local_base_freq"]}
    return config | {
        "sliding_window": int(window),
        "rope_parameters": {"full_attention": config["rope_parameters"], "sliding_attention": local_rope},
    }


ARCHITECTURES = {
    "llama": Architecture("llama", permute_qk=True),
    "qwen2": Architecture("qwen2"),
    # llama.cpp stores every Gemma RMSNorm weight w as 1 + w, as transformers' GGUF
    # loader assumes (it subtracts 1 from each `*norm.weight`).
    "gemma3": Architecture(
        "gemma3_text",
        norm_offset=1.0,
        extra_config={"hidden_activation": "gelu_pytorch_tanh"},
        block_tensors=GEMMA3_BLOCK_TENSORS,
        finish_config=_gemma3_config,
    ),
}


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

    def architecture(self) -> Architecture:
        name = self.architecture_name
        if name not in ARCHITECTURES:
            raise ConfigError(
                f"{self.path}: GGUF architecture {name!r} is not supported; supported: "
                f"{', '.join(sorted(ARCHITECTURES))}"
            )
        return ARCHITECTURES[name]


def _one_value(file: GGUFFile, key: str, default: Any = None) -> Any:
    """A per-model setting that llama.cpp may also write per layer (an array)."""
    value = file.value(key, default)
    if isinstance(value, list):
        if len(set(value)) != 1:
            raise ConfigError(f"{file.path}: {key} differs between layers ({value}); not supported")
        value = value[0]
    return value


def _rope_parameters(file: GGUFFile, arch: str) -> dict[str, Any]:
    theta = float(file.value(f"{arch}.rope.freq_base", 10000.0))
    scaling = file.value(f"{arch}.rope.scaling.type", "none")
    factor = file.value(f"{arch}.rope.scaling.factor", file.value(f"{arch}.rope.scale_linear"))
    if scaling == "none" and factor not in (None, 1.0):
        scaling = "linear"  # old files: rope.scale_linear alone
    if "rope_freqs.weight" in file.tensors:
        raise ConfigError(
            f"{file.path}: per-frequency RoPE factors (rope_freqs.weight, Llama 3.1-style "
            "rope scaling) are not supported yet"
        )
    if scaling == "none":
        return {"rope_type": "default", "rope_theta": theta}
    if scaling == "linear":
        return {"rope_type": "linear", "rope_theta": theta, "factor": float(factor)}
    raise ConfigError(f"{file.path}: {arch}.rope.scaling.type {scaling!r} is not supported (none, linear)")


def _stored_dtype(file: GGUFFile) -> str:
    """float32 when every tensor is stored in F32, else bfloat16 (what a converted
    checkpoint and a direct load use by default)."""
    return "float32" if all(t.tensor_type.name == "F32" for t in file.tensors.values()) else "bfloat16"


def hf_config(file: GGUFFile) -> dict[str, Any]:
    """The HF `config.json` dict of the model in `file`."""
    architecture = file.architecture()
    arch = file.architecture_name

    def required(key: str) -> Any:
        value = _one_value(file, f"{arch}.{key}")
        if value is None:
            raise ConfigError(f"{file.path}: missing metadata {arch}.{key}")
        return value

    hidden, num_heads = int(required("embedding_length")), int(required("attention.head_count"))
    head_dim = int(_one_value(file, f"{arch}.attention.key_length", 0) or hidden // num_heads)
    rotary_dims = _one_value(file, f"{arch}.rope.dimension_count")
    if rotary_dims is not None and int(rotary_dims) != head_dim:
        raise ConfigError(
            f"{file.path}: {arch}.rope.dimension_count={rotary_dims} but heads have {head_dim} "
            "dimensions; partial rotary embeddings are not supported"
        )
    vocab_size = file.value(f"{arch}.vocab_size") or file.count("tokenizer.ggml.tokens")
    if vocab_size is None:
        vocab_size = int(file.tensors["token_embd.weight"].shape[1])
    names = set(file.tensors)
    config = {
        "model_type": architecture.model_type,
        "vocab_size": int(vocab_size),
        "hidden_size": hidden,
        "intermediate_size": int(required("feed_forward_length")),
        "num_hidden_layers": int(required("block_count")),
        "num_attention_heads": num_heads,
        "num_key_value_heads": int(_one_value(file, f"{arch}.attention.head_count_kv", num_heads)),
        "head_dim": head_dim,
        "rms_norm_eps": float(required("attention.layer_norm_rms_epsilon")),
        "max_position_embeddings": int(required("context_length")),
        "rope_parameters": _rope_parameters(file, arch),
        # llama.cpp writes the output head only when it is not the embedding matrix.
        "tie_word_embeddings": "output.weight" not in names,
        "attention_bias": "blk.0.attn_output.bias" in names,
        "mlp_bias": "blk.0.ffn_up.bias" in names,
        "dtype": _stored_dtype(file),
        **architecture.extra_config,
    }
    for hf_key, gguf_key in (
        ("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"), ("pad_token_id", "padding_token_id")
    ):
        value = file.value(f"tokenizer.ggml.{gguf_key}")
        if value is not None:
            config[hf_key] = int(value)
    if architecture.finish_config is not None:
        config = architecture.finish_config(file, config)
    return config


def _hf_name(architecture: Architecture, gguf_name: str) -> str:
    """The HF name of a llama.cpp tensor; names the table lacks pass through as they
    are, so the layout check lists them as unmapped."""
    if gguf_name in architecture.global_tensors:
        return architecture.global_tensors[gguf_name]
    parts = gguf_name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in architecture.block_tensors:
        return f"model.layers.{parts[1]}.{architecture.block_tensors[parts[2]]}"
    return gguf_name


def _unpermute_qk(rows: np.ndarray, num_heads: int) -> np.ndarray:
    """Inverse of llama.cpp's `LlamaModel.permute`: per head, rows (i, half) stored
    interleaved [i0h0, i0h1, i1h0, ...] go back to [half 0 rows, half 1 rows]."""
    return (
        rows.reshape(num_heads, rows.shape[0] // num_heads // 2, 2, *rows.shape[1:])
        .swapaxes(1, 2)
        .reshape(rows.shape)
    )


def _check_tensor_types(file: GGUFFile) -> None:
    unsupported = [
        f"{name} ({tensor.tensor_type.name})"
        for name, tensor in file.tensors.items()
        if tensor.tensor_type.name not in quants.BLOCK_TYPES
    ]
    if unsupported:
        shown = ", ".join(unsupported[:5]) + (f" and {len(unsupported) - 5} more" if len(unsupported) > 5 else "")
        raise CheckpointError(
            f"{file.path}: tensor type not supported: {shown}; supported types: "
            f"{', '.join(quants.BLOCK_TYPES)}. Re-quantise the model to one of them."
        )


def open_tensors(file: GGUFFile, config: Mapping[str, Any]) -> TensorSource:
    """The file's tensors under HF names, read as float32 in HF's layout (integer
    tensor types, like every type `gguf_quants` does not know, are refused)."""
    architecture = file.architecture()
    _check_tensor_types(file)
    by_hf_name = {_hf_name(architecture, name): tensor for name, tensor in file.tensors.items()}
    if len(by_hf_name) != len(file.tensors):
        raise CheckpointError(f"{file.path}: two tensors map to one HF name")
    heads = {".self_attn.q_proj.": config["num_attention_heads"], ".self_attn.k_proj.": config["num_key_value_heads"]}

    def shape(key: str) -> tuple[int, ...]:
        return tuple(int(d) for d in reversed(by_hf_name[key].shape))  # ggml lists dims innermost first

    def read(key: str) -> np.ndarray:
        tensor = by_hf_name[key]
        array = quants.dequantize(tensor.data, tensor.tensor_type.name, shape(key))
        if architecture.permute_qk:
            for part, num_heads in heads.items():
                if part in key:
                    array = _unpermute_qk(array, num_heads)
        if architecture.norm_offset and key.endswith("norm.weight"):
            array = array - np.float32(architecture.norm_offset)
        return array

    # Every type `_check_tensor_types` lets through is a float or a float quantisation.
    return TensorSource(
        description=f"GGUF file {file.path}", keys=tuple(by_hf_name), shape=shape, read=read,
        dtype=lambda key: "float32", location=lambda key: str(file.path),
    )


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pretty_jax" / "gguf"


def _source_record(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"format": FORMAT, "gguf": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_view(path: Path, directory: Path) -> None:
    """Writes `config.json`, the tokenizer files and `SOURCE_FILE` for the GGUF file
    `path` into the (new) `directory`."""
    from transformers import AutoTokenizer

    file = GGUFFile(path)
    config = hf_config(file)
    open_tensors(file, config)  # refuse unsupported tensor types before anything is written
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: transformers cannot rebuild its tokenizer ({e})") from None
    tokenizer.save_pretrained(directory)
    (directory / SOURCE_FILE).write_text(json.dumps(_source_record(path), indent=2) + "\n")


def cached_view(path: str | Path) -> Path:
    """The cached view directory of a GGUF file, written on first use."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    record = _source_record(path)
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    directory = _cache_root() / f"{path.stem}-{key}"
    if (directory / SOURCE_FILE).exists():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}-", dir=directory.parent))
    try:
        write_view(path, staging / "view")
        try:
            (staging / "view").rename(directory)
        except OSError:  # another process wrote it first
            if not (directory / SOURCE_FILE).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def open_view_tensors(directory: Path) -> TensorSource:
    """The tensors of the GGUF file a view directory points at."""
    record = json.loads((directory / SOURCE_FILE).read_text())
    path = Path(record["gguf"])
    if not path.is_file() or _source_record(path) != record:
        raise CheckpointError(
            f"{directory}: the GGUF file it was made from ({path}) is gone or has changed; "
            "load the .gguf file itself again"
        )
    file = GGUFFile(path)
    return open_tensors(file, json.loads((directory / "config.json").read_text()))
