"""The Gemma 3 text family: HF `Gemma3ForCausalLM` (`gemma3_text`) and the language
model inside a multimodal `gemma3` checkpoint (`Gemma3ForConditionalGeneration`).

Differences from LLaMA, each as transformers computes it:
- RMSNorm scales by (1 + weight), in float32 before casting back; weights sit near 0.
- Every block normalises the input *and* the output of attention and of the MLP
  (pre- and post-norms), and queries/keys get their own RMSNorm over the head width.
- The MLP is GeGLU with GELU's tanh approximation.
- Embeddings are multiplied by sqrt(hidden_size), the factor cast to the weights'
  dtype first; the head is tied to the embedding.
- Attention scores are scaled by query_pre_attn_scalar**-0.5, not head_dim**-0.5.
- Layers interleave sliding-window attention (the `local` RoPE base, unscaled) and
  full attention (the `global` base and its scaling), as `layer_types` says. The
  window mask is by position (a query at p sees keys at p - window < q <= p), so it
  holds during cached decoding too, however far a row has generated.

Dimension letters as in `layers`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from pretty_jax.core.errors import ConfigError
from pretty_jax.models import hf_layouts, layers
from pretty_jax.models.attention import RotaryAttention
from pretty_jax.models.conversion import CheckpointLayout, HFTensor
from pretty_jax.models.hf_config import (
    GroupedQueryConfig,
    check_model_type,
    grouped_query_fields,
    number,
    size,
    windows_of_layer_types,
)
from pretty_jax.models.rope import RopeConfig, rope_config_from_hf

MODEL_TYPES = ("gemma3_text", "gemma3")

# Gemma3TextConfig's defaults in transformers 5: published configs leave these out
# (a multimodal checkpoint's `text_config` often gives only a handful of keys).
HF_DEFAULTS: Mapping[str, Any] = {
    "vocab_size": 262_208,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 131_072,
    "rms_norm_eps": 1e-6,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
    "tie_word_embeddings": True,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "sliding_window_pattern": 6,
    "rope_theta": 1_000_000.0,
    "rope_local_base_freq": 10_000.0,
}
# HF names of GELU's tanh approximation.
_TANH_GELU = ("gelu_pytorch_tanh", "gelu_tanh", "gelu_new", "gelu_fast")
# In a `gemma3` checkpoint: older (transformers 4) and newer (5) homes of the
# language model's tensors, and the vision tensors we do not use.
_MULTIMODAL_ALIASES = (
    ("model.language_model.", "model."),
    ("language_model.model.", "model."),
    ("language_model.lm_head.", "lm_head."),
)
_VISION_TENSORS = (r"^(model\.)?vision_tower\.", r"^(model\.)?multi_modal_projector\.")


@dataclasses.dataclass(frozen=True)
class Gemma3Config(GroupedQueryConfig):
    """Architecture of a Gemma 3 language model (the fields it shares with the LLaMA
    family: `GroupedQueryConfig`).

    layer_ropes: per layer, its RoPE: the local one on sliding-window layers, the
      global one (with its scaling) on full-attention layers.
    query_pre_attn_scalar: attention scores are scaled by its inverse square root.
    """

    query_pre_attn_scalar: float
    layer_ropes: tuple[RopeConfig, ...]


def text_config(hf: Mapping[str, Any]) -> dict[str, Any]:
    """The language model's settings with transformers' defaults filled in: a
    `gemma3_text` config itself, or a `gemma3` config's `text_config` (special token ids
    and the head tying may sit at the top level there)."""
    if hf.get("model_type") != "gemma3":
        return {**HF_DEFAULTS, **hf}
    text = dict(hf.get("text_config") or {})
    for key in ("bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings"):
        if key not in text and key in hf:
            text[key] = hf[key]
    return {**HF_DEFAULTS, **text}


def _refuse_unsupported(hf: Mapping[str, Any], where: str) -> None:
    activation = hf.get("hidden_activation") or hf.get("hidden_act")
    if activation not in _TANH_GELU:
        raise ConfigError(
            f"{where}: hidden_activation {activation!r} is not supported (only GELU's tanh "
            f"approximation: {', '.join(_TANH_GELU)})"
        )
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if hf.get(key) is not None:
            raise ConfigError(f"{where}: {key}={hf[key]!r} is not supported (Gemma 3 has null)")
    if hf.get("use_bidirectional_attention"):
        raise ConfigError(f"{where}: use_bidirectional_attention=true is not supported (causal only)")
    if hf.get("attention_bias"):
        raise ConfigError(f"{where}: attention_bias=true is not supported (Gemma 3 has none)")


def _layer_windows(hf: Mapping[str, Any], num_layers: int, where: str) -> tuple[int | None, ...]:
    """`layer_types`, or (older configs) every `sliding_window_pattern`-th layer full."""
    layer_types = hf.get("layer_types")
    if layer_types is None:
        pattern = size(hf, ["_sliding_window_pattern", "sliding_window_pattern"], where)
        layer_types = [
            "full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(num_layers)
        ]
    if hf.get("sliding_window") is None and "sliding_attention" in layer_types:
        raise ConfigError(f"{where}: layer_types has sliding_attention layers but sliding_window is null")
    window = size(hf, ["sliding_window"], where) if "sliding_attention" in layer_types else None
    return windows_of_layer_types(layer_types, num_layers, window, where)


def _ropes(hf: Mapping[str, Any], where: str) -> tuple[RopeConfig, RopeConfig]:
    """(local, global) RoPE. transformers 5 writes `rope_parameters` keyed by layer type;
    older configs give the global base as `rope_theta` with `rope_scaling`, and the local
    base as `rope_local_base_freq` (never scaled)."""
    params = hf.get("rope_parameters") or {}
    if {"full_attention", "sliding_attention"} & set(params):
        full = dict(params.get("full_attention") or {})
        sliding = dict(params.get("sliding_attention") or {})
    else:
        full, sliding = dict(params or hf.get("rope_scaling") or {}), {}
    full.setdefault("rope_theta", hf["rope_theta"])
    sliding.setdefault("rope_theta", hf["rope_local_base_freq"])
    rope = lambda p, kind: rope_config_from_hf(
        {"rope_parameters": p, "max_position_embeddings": hf["max_position_embeddings"]},
        f"{where} ({kind} layers)",
    )
    return rope(sliding, "sliding_attention"), rope(full, "full_attention")


def config_from_hf(
    hf: Mapping[str, Any], where: str, generation: Mapping[str, Any] | None = None
) -> Gemma3Config:
    """Builds the architecture from an HF config dict (`where` names it in errors)."""
    model_type = check_model_type(hf, MODEL_TYPES, "Gemma 3", where)
    if model_type == "gemma3":
        where = f"{where} text_config"
    text = text_config(hf)
    _refuse_unsupported(text, where)
    shared = grouped_query_fields(text, where, generation, defaults={})
    local_rope, global_rope = _ropes(text, where)
    layer_windows = _layer_windows(text, shared["num_layers"], where)
    return Gemma3Config(
        model_type=model_type,
        **shared,
        query_pre_attn_scalar=number(text, ["query_pre_attn_scalar"], where, positive=True),
        layer_windows=layer_windows,
        layer_ropes=tuple(global_rope if w is None else local_rope for w in layer_windows),
    )


class RMSNorm(nnx.Module):
    """Gemma's RMSNorm: normalise and scale by (1 + weight) in float32, then cast back."""

    def __init__(self, width: int, eps: float, axis: str, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.scale = layers.param(rngs, (width,), (axis,), dtype, init="zeros")
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x.astype(jnp.float32)
        y = y * jax.lax.rsqrt(jnp.mean(y * y, axis=-1, keepdims=True) + self.eps)
        return (y * (1.0 + self.scale[...].astype(jnp.float32))).astype(x.dtype)


class Block(nnx.Module):
    """x + post_norm(attn(pre_norm(x))), then the same around the MLP."""

    def __init__(
        self, cfg: Gemma3Config, window: int | None, rope: RopeConfig, *, dtype, rngs: nnx.Rngs
    ):
        norm = lambda: RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, "embed", dtype=dtype, rngs=rngs)
        self.attn_norm = norm()
        self.attn = RotaryAttention(
            cfg, window, rope, scale=cfg.query_pre_attn_scalar**-0.5,
            qk_norm=lambda: RMSNorm(cfg.head_dim, cfg.rms_norm_eps, "head_dim", dtype=dtype, rngs=rngs),
            dtype=dtype, rngs=rngs,
        )
        self.attn_post_norm = norm()
        self.mlp_norm = norm()
        self.mlp = layers.GatedMLP(
            cfg.hidden_size, cfg.intermediate_size, "gelu_tanh", False, dtype=dtype, rngs=rngs
        )
        self.mlp_post_norm = norm()

    def __call__(self, x_BTD, positions_BT, key_positions_BS, cache_kv, write_slot):
        h_BTD, kv = self.attn(
            self.attn_norm(x_BTD), positions_BT, key_positions_BS, cache_kv, write_slot
        )
        x_BTD = x_BTD + self.attn_post_norm(h_BTD)
        x_BTD = x_BTD + self.mlp_post_norm(self.mlp(self.mlp_norm(x_BTD)))
        return x_BTD, kv


class Gemma3(layers.CausalLM):
    """A Gemma 3 causal LM (call interface: `layers.CausalLM`)."""

    def __init__(self, cfg: Gemma3Config, *, dtype=jnp.float32, rngs: nnx.Rngs):
        super().__init__(
            cfg,
            blocks=lambda: [
                Block(cfg, window, rope, dtype=dtype, rngs=rngs)
                for window, rope in zip(cfg.layer_windows, cfg.layer_ropes, strict=True)
            ],
            final_norm=lambda: RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, "embed", dtype=dtype, rngs=rngs),
            dtype=dtype,
            rngs=rngs,
        )

    def embed_tokens(self, tokens_BT: jax.Array) -> jax.Array:
        """The embeddings [B, T, D] times sqrt(hidden_size), the factor in their dtype."""
        embed_VD = self.embed[...]
        normalizer = jnp.asarray(math.sqrt(self.config.hidden_size), embed_VD.dtype)
        return jnp.take(embed_VD, tokens_BT, axis=0) * normalizer


def _block_tensors(ours: str, hf: str) -> dict[str, HFTensor]:
    """One `Gemma3DecoderLayer`'s tensors: four norms, q/k norms and the projections."""
    return {
        f"{ours}.attn_norm.scale": HFTensor(f"{hf}.input_layernorm.weight"),
        f"{ours}.attn_post_norm.scale": HFTensor(f"{hf}.post_attention_layernorm.weight"),
        f"{ours}.mlp_norm.scale": HFTensor(f"{hf}.pre_feedforward_layernorm.weight"),
        f"{ours}.mlp_post_norm.scale": HFTensor(f"{hf}.post_feedforward_layernorm.weight"),
        f"{ours}.attn.q_norm.scale": HFTensor(f"{hf}.self_attn.q_norm.weight"),
        f"{ours}.attn.k_norm.scale": HFTensor(f"{hf}.self_attn.k_norm.weight"),
        **hf_layouts.attention_projections(ours, hf),
        **hf_layouts.gated_mlp_projections(ours, hf),
    }


def checkpoint_layout(cfg: Gemma3Config) -> CheckpointLayout:
    """Where each parameter lives in an HF `Gemma3ForCausalLM` checkpoint; for a
    `gemma3` config also the language-model names of `Gemma3ForConditionalGeneration`
    checkpoints, whose vision tower and projector are left unread."""
    multimodal = cfg.model_type == "gemma3"
    return hf_layouts.decoder_layout(
        cfg.num_layers, cfg.tie_word_embeddings, _block_tensors,
        ignored=_VISION_TENSORS if multimodal else (),
        aliases=_MULTIMODAL_ALIASES if multimodal else (),
    )
