"""The architectures llama.cpp files may hold (`general.architecture`), each as one
`Architecture` entry: the HF model type it becomes, how llama.cpp changed its tensors,
and its own config settings. Adding an architecture is one entry in `ARCHITECTURES`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from pretty_jax.checkpoints.gguf.reader import GGUFFile, TensorDirectory
from pretty_jax.checkpoints.gguf.tensor_names import (
    GEMMA3_BLOCK_TENSORS,
    LLAMA_BLOCK_TENSORS,
    LLAMA_GLOBAL_TENSORS,
    unpermute_qk,
)
from pretty_jax.core.errors import ConfigError
from pretty_jax.models import gemma3


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
    block_tensors, global_tensors: llama.cpp tensor names -> HF's (`tensor_names`).
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

    def hf_name(self, gguf_name: str) -> str:
        """The HF name of a llama.cpp tensor; names the tables lack pass through as they
        are, so the layout check lists them as unmapped."""
        if gguf_name in self.global_tensors:
            return self.global_tensors[gguf_name]
        parts = gguf_name.split(".", 2)
        if len(parts) == 3 and parts[0] == "blk" and parts[2] in self.block_tensors:
            return f"model.layers.{parts[1]}.{self.block_tensors[parts[2]]}"
        return gguf_name

    def undo_llama_cpp_changes(self, hf_key: str, array: np.ndarray, config: Mapping[str, Any]) -> np.ndarray:
        """The tensor `hf_key` in HF's layout, from the float32 `array` llama.cpp stored:
        Q/K rows (and biases) unpermuted per head, the norm offset subtracted."""
        if self.permute_qk:
            heads = {
                ".self_attn.q_proj.": config["num_attention_heads"],
                ".self_attn.k_proj.": config["num_key_value_heads"],
            }
            for part, num_heads in heads.items():
                if part in hf_key:
                    array = unpermute_qk(array, num_heads)
        if self.norm_offset and hf_key.endswith("norm.weight"):
            array = array - np.float32(self.norm_offset)
        return array


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
    window = file.whole("gemma3.attention.sliding_window")
    local_rope = {"rope_type": "default", "rope_theta": gemma3.HF_DEFAULTS["rope_local_base_freq"]}
    return config | {
        "sliding_window": window,
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


def architecture_of(file: GGUFFile | TensorDirectory) -> Architecture:
    """The `Architecture` of the model in `file`; ConfigError when it is not supported."""
    name = file.architecture_name
    if name not in ARCHITECTURES:
        raise ConfigError(
            f"{file.path}: GGUF architecture {name!r} is not supported; supported: "
            f"{', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[name]
