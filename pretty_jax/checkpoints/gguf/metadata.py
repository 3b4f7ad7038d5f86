"""GGUF metadata -> the HF `config.json` dict of the model: the settings every
architecture states the same way (`{arch}.embedding_length`, ...), what the tensor
directory shows (a tied head, biases, the stored dtype), the special token ids, then
the architecture's own settings (`Architecture.finish_config`)."""

from __future__ import annotations

from typing import Any

from pretty_jax.checkpoints.gguf.architectures import architecture_of
from pretty_jax.checkpoints.gguf.reader import GGUFFile
from pretty_jax.core.errors import ConfigError

# HF config key -> its `tokenizer.ggml.*` metadata key.
_SPECIAL_TOKEN_KEYS = {"bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id", "pad_token_id": "padding_token_id"}


def _head_dim(file: GGUFFile, arch: str, hidden: int, num_heads: int) -> int:
    """The head width; refuses rotary embeddings over only part of it."""
    stated = file.one_value(f"{arch}.attention.key_length")
    head_dim = hidden // num_heads if not stated else file.whole(f"{arch}.attention.key_length")
    rotary_dims = file.one_value(f"{arch}.rope.dimension_count")
    if rotary_dims is not None and file.whole(f"{arch}.rope.dimension_count") != head_dim:
        raise ConfigError(
            f"{file.path}: {arch}.rope.dimension_count={rotary_dims} but heads have {head_dim} "
            "dimensions; partial rotary embeddings are not supported"
        )
    return head_dim


def _vocab_size(file: GGUFFile, arch: str) -> int:
    """Stated, or the tokenizer's length, or the embedding matrix's rows."""
    if file.value(f"{arch}.vocab_size"):
        return file.whole(f"{arch}.vocab_size")
    if file.count("tokenizer.ggml.tokens"):
        return file.count("tokenizer.ggml.tokens")
    if "token_embd.weight" not in file.tensors:
        raise ConfigError(f"{file.path}: no vocabulary size: no {arch}.vocab_size, tokens or token_embd.weight")
    return file.tensors["token_embd.weight"].shape[1]


def _dimensions(file: GGUFFile, arch: str) -> dict[str, Any]:
    """The sizes of the model and its norm epsilon."""
    hidden = file.whole(f"{arch}.embedding_length")
    num_heads = file.whole(f"{arch}.attention.head_count")
    head_dim = _head_dim(file, arch, hidden, num_heads)
    return {
        "vocab_size": _vocab_size(file, arch),
        "hidden_size": hidden,
        "intermediate_size": file.whole(f"{arch}.feed_forward_length"),
        "num_hidden_layers": file.whole(f"{arch}.block_count"),
        "num_attention_heads": num_heads,
        "num_key_value_heads": file.whole(f"{arch}.attention.head_count_kv", num_heads),
        "head_dim": head_dim,
        "rms_norm_eps": file.positive_real(f"{arch}.attention.layer_norm_rms_epsilon"),
        "max_position_embeddings": file.whole(f"{arch}.context_length"),
    }


def _rope_parameters(file: GGUFFile, arch: str) -> dict[str, Any]:
    theta = file.positive_real(f"{arch}.rope.freq_base", 10000.0)
    scaling = file.value(f"{arch}.rope.scaling.type", "none")
    stated = [f"{arch}.rope.{key}" for key in ("scaling.factor", "scale_linear") if file.value(f"{arch}.rope.{key}") is not None]
    factor = file.positive_real(stated[0]) if stated else None
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
        if factor is None:
            raise ConfigError(f"{file.path}: {arch}.rope.scaling.type is linear but no {arch}.rope.scaling.factor")
        return {"rope_type": "linear", "rope_theta": theta, "factor": factor}
    raise ConfigError(f"{file.path}: {arch}.rope.scaling.type {scaling!r} is not supported (none, linear)")


def _stored_dtype(file: GGUFFile) -> str:
    """float32 when every tensor is stored in F32, else bfloat16 (what a converted
    checkpoint and a direct load use by default)."""
    return "float32" if all(t.type_name == "F32" for t in file.tensors.values()) else "bfloat16"


def _tensor_directory_facts(file: GGUFFile) -> dict[str, Any]:
    """What the tensor names and types say: a tied head, biases, the dtype."""
    names = set(file.tensors)
    return {
        # llama.cpp writes the output head only when it is not the embedding matrix.
        "tie_word_embeddings": "output.weight" not in names,
        "attention_bias": "blk.0.attn_output.bias" in names,
        "mlp_bias": "blk.0.ffn_up.bias" in names,
        "dtype": _stored_dtype(file),
    }


def _special_token_ids(file: GGUFFile, vocab_size: int) -> dict[str, int]:
    """The special token ids the file states, each refused unless it is a token id."""
    ids = {}
    for hf_key, gguf_key in _SPECIAL_TOKEN_KEYS.items():
        key = f"tokenizer.ggml.{gguf_key}"
        if file.value(key) is not None:
            ids[hf_key] = file.whole(key, minimum=0)
            if ids[hf_key] >= vocab_size:
                raise ConfigError(f"{file.path}: metadata {key}={ids[hf_key]} is past the vocabulary ({vocab_size:,} tokens)")
    return ids


def hf_config(file: GGUFFile) -> dict[str, Any]:
    """The HF `config.json` dict of the model in `file`."""
    architecture = architecture_of(file)
    arch = file.architecture_name
    dimensions = _dimensions(file, arch)
    config = {
        "model_type": architecture.model_type,
        **dimensions,
        "rope_parameters": _rope_parameters(file, arch),
        **_tensor_directory_facts(file),
        **architecture.extra_config,
        **_special_token_ids(file, dimensions["vocab_size"]),
    }
    if architecture.finish_config is not None:
        config = architecture.finish_config(file, config)
    return config
